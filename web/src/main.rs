//! The `ledgerline` binary: the composition root. It parses the command line, opens the event
//! log chosen by `--store` (the embedded SQLite file in the data directory by default), and runs
//! the chosen command: `serve` (the default) answers HTTP, `demo` does the same with simulated
//! phones calling each other, `bench log` measures the log.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use events::{StoreOptions, StoreUrl};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the SIP edge and the actors allocate many small,
/// short-lived buffers (a calls/s run spent 20–35 % of its samples in glibc malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod demo;
mod http;
mod panel;
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
    /// How long the SQLite writer waits for more appends before committing, while appends
    /// arrive together, so that they share one commit and one fsync (0 turns it off).
    #[arg(long, global = true, env = "LEDGERLINE_COMMIT_WINDOW_US", value_name = "MICROSECONDS",
        default_value_t = events::log::DEFAULT_COMMIT_WINDOW.as_micros() as u64)]
    commit_window_us: u64,
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
    /// Serve as `serve` does, with simulated phones (real SIP user agents on loopback) that
    /// register, call, hold, hang up and change presence, so the panel shows life.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        demo: demo::DemoArgs,
    },
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
    /// Address for the HTTP server (the panel, its websocket and the health endpoint).
    #[arg(long, env = "LEDGERLINE_HTTP", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Address and port of the SIP listeners (UDP and TCP on the same port; port 0 picks one).
    #[arg(long, env = "LEDGERLINE_SIP", default_value = "0.0.0.0:5060")]
    sip: SocketAddr,
    /// Source addresses the SIP flood protection never bans (comma-separated), e.g. a trusted
    /// proxy or a load generator. Authentication and sanity checks still apply.
    #[arg(
        long = "sip-exempt",
        env = "LEDGERLINE_SIP_EXEMPT",
        value_delimiter = ',',
        value_name = "IP,..."
    )]
    sip_exempt: Vec<std::net::IpAddr>,
    /// Receive and send buffer asked for on the SIP UDP socket, in bytes; 0 keeps the kernel's
    /// default. A full buffer drops datagrams (retransmitted 500 ms later); the kernel caps it
    /// at net.core.rmem_max / wmem_max.
    #[arg(long = "sip-udp-buffer", env = "LEDGERLINE_SIP_UDP_BUFFER", value_name = "BYTES",
        default_value_t = sip::SipConfig::default().udp_buffer)]
    sip_udp_buffer: usize,
    /// Where the SIP edge's tasks run: `engine` on the engine's thread, beside the actors, so a
    /// command and its reply cross no thread; `own` on the process's worker threads, in
    /// parallel with the engine; `auto` picks `engine` when the process may use only one CPU
    /// (there a second thread only adds switches) and `own` otherwise.
    #[arg(long = "sip-thread", env = "LEDGERLINE_SIP_THREAD", value_enum,
        default_value_t = SipThread::Auto)]
    sip_thread: SipThread,
}

/// `serve --sip-thread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SipThread {
    Auto,
    Engine,
    Own,
}

impl SipThread {
    /// Whether the edge shares the engine's thread, `cpus` being how many CPUs the process may
    /// use.
    fn shares_engine(self, cpus: usize) -> bool {
        match self {
            SipThread::Engine => true,
            SipThread::Own => false,
            SipThread::Auto => cpus <= 1,
        }
    }
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
            commit_window: std::time::Duration::from_micros(self.commit_window_us),
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
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rsipstack=warn")),
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
        Some(Command::Serve(args)) => runtime.block_on(serve(&cli, args, None)),
        Some(Command::Demo { serve: args, demo }) => {
            runtime.block_on(serve(&cli, args, Some(demo)))
        }
        Some(Command::Simulate(args)) => simulate::run(args),
        Some(Command::Export(args)) => {
            runtime.block_on(async { transfer::export(open_store(&cli).await?, args).await })
        }
        Some(Command::Import(args)) => {
            runtime.block_on(async { transfer::import(open_store(&cli).await?, args).await })
        }
        Some(Command::Replay(args)) => replay::run(args),
        None => runtime.block_on(serve(&cli, &ServeArgs::parse_from(["serve"]), None)),
    }
}

/// A progress bar on standard error drawn with `template`, over `length` steps (a spinner when
/// the length is unknown); hidden when standard error is not a terminal.
pub(crate) fn progress_bar(length: Option<u64>, template: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressStyle};
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = match length {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

async fn open_store(cli: &Cli) -> anyhow::Result<std::sync::Arc<dyn events::EventLog>> {
    let url = cli.store_url()?;
    events::open(&url, &cli.store_options())
        .await
        .with_context(|| format!("opening the event log {url}"))
}

/// Runs the server until it is stopped (Ctrl-C); with `demo`, simulated phones too, which end
/// their calls and unregister before the engine stops.
async fn serve(cli: &Cli, args: &ServeArgs, demo: Option<&demo::DemoArgs>) -> anyhow::Result<()> {
    let http = args.http;
    use engine::directory::{config, demo};
    use engine::runtime::{Engine, EngineConfig};

    // The directory first: a mistake in the file stops the start before the store is touched.
    // Its error already names the file, line, column and key.
    let (loaded, on_demo) = match &cli.config {
        Some(path) => (config::load_file(path)?, false),
        None => (demo::demo_directory()?, true),
    };
    let queues = crate::demo::Queues::of(&loaded);
    let accounts = std::sync::Arc::new(sip::StaticAccounts::from_directory(&loaded.tenants));
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
        crate::demo::print_logins(&engine);
    }
    // The last run's SIP dialogs and browser websockets died with it: its open calls can never
    // carry on, and its websocket bindings reach no one.
    let settled = engine
        .settle_last_run(events::model::HangupCause::SystemShutdown)
        .await
        .context("settling what the last run left")?;
    if settled.calls_ended > 0 {
        println!(
            "  calls      {} left open by the last run: ended (system_shutdown)",
            settled.calls_ended
        );
    }
    if settled.websocket_users > 0 {
        println!(
            "  bindings   websocket ones of {} extension(s) from the last run: unregistered",
            settled.websocket_users
        );
    }
    // Phones reach the engine through the SIP edge; it is up before the panel is.
    let mut sip_config = sip::SipConfig {
        bind: args.sip,
        udp_buffer: args.sip_udp_buffer,
        ..sip::SipConfig::default()
    };
    sip_config.flood.exempt = args.sip_exempt.clone();
    let registries = sip::Registries::from(&engine);
    let edge_accounts = accounts.clone();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let on_engine_thread = args.sip_thread.shares_engine(cpus);
    let edge = if on_engine_thread {
        engine_thread
            .run_on(move || sip::SipEdge::start(sip_config, registries, edge_accounts))
            .await
            .context("the engine's thread stopped")?
    } else {
        sip::SipEdge::start(sip_config, registries, edge_accounts).await
    }
    .with_context(|| format!("starting the SIP edge on {}", args.sip))?;
    let sip_at = edge.udp_addr().unwrap_or(args.sip);
    let thread = if on_engine_thread {
        "on the engine's thread"
    } else {
        "on the worker threads"
    };
    println!("  SIP        udp and tcp {sip_at} (digest realm per tenant domain; {thread})");
    // The panel and CDR projections follow the log beside the engine (caught up before the
    // HTTP server starts).
    let projections = http::start_projections(log.clone(), &cli.store_url()?).await?;
    println!("  panel      http://{http}/  (health: http://{http}/health)");
    let mut site = http::Site::new(&projections, cli.data_dir.clone());
    site.click_to_call = Some(std::sync::Arc::new(edge.call_control()));
    site.sip_websocket = Some(edge.websocket());
    let phones = match demo {
        Some(args) => Some(
            crate::demo::start(
                args,
                crate::demo::Server {
                    engine: &engine,
                    accounts: accounts.as_ref(),
                    log: log.clone(),
                    sip: sip_at,
                    http,
                    queues,
                },
            )
            .await
            .context("starting the demo phones")?,
        ),
        None => None,
    };
    let served = http::serve(log, engine.clone(), site, http).await;
    if let Some(phones) = phones {
        phones.stop().await;
    }
    if let Err(e) = projections.stop().await {
        tracing::warn!(error = %e, "the projections stopped with an error");
    }
    edge.shutdown();
    engine.shutdown().await;
    tokio::task::spawn_blocking(move || engine_thread.stop()).await?;
    served
}
