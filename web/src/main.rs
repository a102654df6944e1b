//! The `ledgerline` binary: the composition root. It parses the command line, opens the event
//! log chosen by `--store` (the embedded SQLite file in the data directory by default), and runs
//! the chosen command: `serve` (the default) answers HTTP, `bench log` measures the log.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use events::{StoreOptions, StoreUrl};
use tracing_subscriber::EnvFilter;

mod bench;
mod http;
mod replay;
mod simulate;
mod transfer;

/// Ledgerline: an event-sourced business telephony engine.
#[derive(Debug, Parser)]
#[command(name = "ledgerline", version)]
struct Cli {
    /// Directory for the embedded log and other local state.
    #[arg(
        long,
        global = true,
        env = "LEDGERLINE_DATA_DIR",
        default_value = "data"
    )]
    data_dir: PathBuf,
    /// Event store: `sqlite:PATH`, `postgres://USER@HOST:PORT/DB`, `kurrentdb://HOST:PORT`
    /// (build with `--features kurrentdb`) or `memory:`. Default: `sqlite:DATA_DIR/ledgerline.db`.
    #[arg(long, global = true, env = "LEDGERLINE_STORE")]
    store: Option<String>,
    /// Only fsync at WAL checkpoints instead of on every commit (SQLite store only).
    #[arg(long, global = true, env = "LEDGERLINE_RELAXED_FSYNC")]
    relaxed_fsync: bool,
    /// Directory file (TOML): tenants, users, credentials, queues, conference rooms. Without it
    /// the built-in demo directory runs, whose passwords are public.
    #[arg(long, global = true, env = "LEDGERLINE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Open the log and serve HTTP (the default command).
    Serve(ServeArgs),
    /// Write every event of the store, in order, as JSON lines (portable between stores).
    Export(transfer::ExportArgs),
    /// Append an exported log to an empty store.
    Import(transfer::ImportArgs),
    /// Fold an exported log through the aggregates and report any divergence (fails if any).
    Replay(replay::ReplayArgs),
    /// Run a seeded scenario in simulated time and print a summary and the log's SHA-256.
    Simulate(simulate::SimulateArgs),
    /// Measure a component and print figures.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

#[derive(Debug, Parser)]
struct ServeArgs {
    /// Address for the HTTP server (health endpoint, later the panel).
    #[arg(long, env = "LEDGERLINE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
}

impl Cli {
    fn store_url(&self) -> anyhow::Result<StoreUrl> {
        match &self.store {
            Some(s) => Ok(StoreUrl::parse(s)?),
            None => Ok(StoreUrl::default_in(&self.data_dir)),
        }
    }
    fn store_options(&self) -> StoreOptions {
        StoreOptions {
            fsync_every_commit: !self.relaxed_fsync,
            ..StoreOptions::default()
        }
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain on one line; no backtrace for an operator's mistake.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // Exactly one TLS crypto provider for every rustls user (KurrentDB's client compiles two).
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match &cli.command {
        Some(Command::Bench { what }) => runtime.block_on(bench::run(&cli, what)),
        Some(Command::Serve(args)) => runtime.block_on(serve(&cli, args.http)),
        Some(Command::Simulate(args)) => simulate::run(args),
        Some(Command::Export(args)) => {
            runtime.block_on(async { transfer::export(open_store(&cli).await?, args).await })
        }
        Some(Command::Import(args)) => {
            runtime.block_on(async { transfer::import(open_store(&cli).await?, args).await })
        }
        Some(Command::Replay(args)) => replay::run(args),
        None => runtime.block_on(serve(&cli, ServeArgs::parse_from(["serve"]).http)),
    }
}

async fn open_store(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn events::EventLog>> {
    let url = cli.store_url()?;
    events::open(&url, &cli.store_options())
        .await
        .with_context(|| format!("opening the event log {url}"))
}

async fn serve(cli: &Cli, http: SocketAddr) -> anyhow::Result<()> {
    use engine::directory::{config, demo};
    use engine::runtime::{Engine, EngineConfig};
    use events::model::UserRole;

    // The directory first: a mistake in the file stops the start before the store is touched.
    // Its error already names the file, line, column and key.
    let (loaded, on_demo) = match &cli.config {
        Some(path) => (config::load_file(path)?, false),
        None => (demo::demo_directory()?, true),
    };
    let log = open_store(cli).await?;
    let (engine, engine_thread) = Engine::start_on_own_thread(
        log.clone(),
        std::sync::Arc::new(events::SystemClock),
        std::sync::Arc::new(events::RandomIds),
        loaded,
        EngineConfig::default(),
    )
    .await
    .context("starting the engine")?;
    let head = log.head().await?;
    let provisioned = engine.provisioned();
    println!("Ledgerline {}", env!("CARGO_PKG_VERSION"));
    println!("  event log  {} (head position {head})", log.describe());
    let origin = match &cli.config {
        Some(path) => path.display().to_string(),
        None => "built-in demo".to_owned(),
    };
    println!(
        "  directory  {origin}: {} tenant(s), {} event(s) written at start",
        engine.tenants().len(),
        provisioned.events
    );
    for note in &provisioned.not_applied {
        println!("             not applied: {note}");
    }
    if on_demo {
        eprintln!("warning: {}", demo::DEMO_WARNING);
        for tenant in engine.tenants() {
            let Some(d) = engine.directory(&tenant) else {
                continue;
            };
            let domain = d.tenant().map(|t| t.sip_domain.clone()).unwrap_or_default();
            let mut lines: Vec<String> = d
                .users()
                .iter()
                .filter(|(id, u)| {
                    u.role == UserRole::User
                        && engine.verify_web_password(&tenant, id, &format!("demo-{}", u.extension))
                })
                .map(|(_, u)| u.extension.to_string())
                .collect();
            lines.sort();
            let panel: Vec<String> = d
                .users()
                .iter()
                .filter(|(id, _)| d.can_use_panel(id))
                .map(|(id, u)| format!("{id} ({})", u.display_name))
                .collect();
            let admins: Vec<String> = d
                .users()
                .iter()
                .filter(|(id, u)| {
                    u.role != UserRole::User
                        && engine.verify_web_password(&tenant, id, &format!("demo-{id}"))
                })
                .map(|(id, _)| format!("{id} / demo-{id}"))
                .collect();
            println!("  demo logins of tenant {tenant} (public, for trying it out only):");
            println!(
                "    users      {}–{}: web password demo-<ext>; panel: {}",
                lines.first().map_or("", String::as_str),
                lines.last().map_or("", String::as_str),
                panel.join(", ")
            );
            println!("    SIP        username <ext>, password sip-<ext>, domain {domain}");
            println!(
                "    admin      {} (directory administration)",
                admins.join(", ")
            );
        }
    }
    println!("  HTTP       http://{http}/  (health: http://{http}/health)");
    let served = http::serve(log, engine.clone(), http).await;
    engine.shutdown().await;
    tokio::task::spawn_blocking(move || engine_thread.stop()).await?;
    served
}
