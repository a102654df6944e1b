//! `ledgerline simulate`: runs a seeded scenario through the engine's aggregates in simulated
//! time and prints a summary — calls, events, events per second of wall time, invariant checks —
//! and the SHA-256 of the resulting log. The same seed and parameters always print the same
//! hash. A progress bar shows simulated time on a terminal.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use simulations::{BusyHour, run_busy_hour};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Registered extensions calling each other at random, with DND and presence churn.
    BusyHour,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, value_enum, default_value = "busy-hour")]
    scenario: Scenario,
    #[arg(long, default_value_t = 100)]
    extensions: u32,
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// Calls per hour across the system (default: 3.6 per extension).
    #[arg(long)]
    calls_per_hour: Option<u32>,
}

pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let Scenario::BusyHour = args.scenario;
    let params = BusyHour {
        extensions: args.extensions,
        minutes: args.minutes,
        calls_per_hour: args.calls_per_hour,
        ..BusyHour::default()
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(u64::from(args.minutes) * 60);
        if let Ok(style) = ProgressStyle::with_template(
            "simulating {bar:40} {pos}/{len} simulated seconds ({elapsed})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let report = run_busy_hour(&params, args.seed, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    let wall = started.elapsed();
    bar.finish_and_clear();

    println!("scenario   {}", report.scenario);
    println!("seed       {}", report.seed);
    for (what, n) in &report.counters {
        println!("  {what:<28} {n}");
    }
    println!(
        "events     {} from {} commands ({} refused by an aggregate)",
        report.events, report.commands, report.rejected
    );
    println!(
        "wall time  {:.2} s ({:.0} events/s through the pure cores)",
        wall.as_secs_f64(),
        report.events as f64 / wall.as_secs_f64().max(1e-9)
    );
    println!(
        "simulated  {} s (load, then draining until everything ended)",
        report.simulated_seconds
    );
    println!("invariants {} violations", report.violations.len());
    for v in &report.violations {
        println!("  {v}");
    }
    println!("log sha256 {}", report.log_sha256);
    if !report.violations.is_empty() {
        bail!(
            "seed {} violated {} invariant(s)",
            report.seed,
            report.violations.len()
        );
    }
    Ok(())
}
