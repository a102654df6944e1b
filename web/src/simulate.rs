//! `ledgerline simulate`: runs a seeded scenario (`busy-hour`, `queue-storm`, `conference-storm`,
//! `chat-burst`) through the engine's aggregates in simulated time and prints a summary — calls, events, events per second of wall time, invariant checks —
//! and the SHA-256 of the resulting log. The same seed and parameters always print the same
//! hash. A progress bar shows simulated time on a terminal.

use std::time::Instant;

use anyhow::bail;
use simulations::{
    BusyHour, ChatBurst, ConferenceStorm, QueueStorm, Report, run_busy_hour, run_chat_burst,
    run_conference_storm, run_queue_storm,
};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Registered extensions calling each other at random, with DND and presence churn.
    BusyHour,
    /// Callers queueing for agents who pause, log out and ring out; callers abandon.
    QueueStorm,
    /// Conference rooms with PINs, capacity, locks, mutes and kicks.
    ConferenceStorm,
    /// Channel rooms and direct conversations under bursts of posts, edits and moderation.
    ChatBurst,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, value_enum, default_value = "busy-hour")]
    scenario: Scenario,
    /// Extensions (busy-hour).
    #[arg(long, default_value_t = 100)]
    extensions: u32,
    /// Queue agents (queue-storm).
    #[arg(long, default_value_t = 20)]
    agents: u32,
    /// Conference rooms (conference-storm) or channel rooms (chat-burst).
    #[arg(long, default_value_t = 8)]
    rooms: u32,
    /// Chat users (chat-burst).
    #[arg(long, default_value_t = 40)]
    users: u32,
    #[arg(long, default_value_t = 60)]
    minutes: u32,
    /// Arrivals per hour across the system: calls (busy-hour, default 3.6 per extension),
    /// callers (queue-storm, default 18 per agent), joins (conference-storm, default 40 per room).
    #[arg(long)]
    calls_per_hour: Option<u32>,
}

pub(crate) fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let bar = crate::progress_bar(
        Some(u64::from(args.minutes) * 60),
        "simulating {bar:40} {pos}/{len} simulated seconds ({elapsed})",
    );
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let mut progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = scenario(args, &mut progress);
    let wall = started.elapsed();
    let cpu = process_cpu_seconds()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
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
        "wall time  {:.2} s ({:.0} events/s through the pure cores, one thread)",
        wall.as_secs_f64(),
        report.events as f64 / wall.as_secs_f64().max(1e-9)
    );
    if let Some(cpu) = cpu {
        // The scenario runs on this one thread: CPU time is what one core spent, whatever else
        // the machine was doing meanwhile.
        println!(
            "cpu time   {:.2} s ({:.0} events/s per CPU second)",
            cpu,
            report.events as f64 / cpu.max(1e-9)
        );
    }
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

/// Runs the chosen scenario with the command line's parameters.
fn scenario(args: &SimulateArgs, progress: &mut dyn FnMut(u64, u64)) -> Report {
    match args.scenario {
        Scenario::BusyHour => {
            let params = BusyHour {
                extensions: args.extensions,
                minutes: args.minutes,
                calls_per_hour: args.calls_per_hour,
                ..BusyHour::default()
            };
            run_busy_hour(&params, args.seed, progress)
        }
        Scenario::QueueStorm => {
            let params = QueueStorm {
                agents: args.agents,
                minutes: args.minutes,
                callers_per_hour: args.calls_per_hour,
                ..QueueStorm::default()
            };
            run_queue_storm(&params, args.seed, progress)
        }
        Scenario::ConferenceStorm => {
            let params = ConferenceStorm {
                rooms: args.rooms,
                minutes: args.minutes,
                joins_per_hour: args.calls_per_hour,
                ..ConferenceStorm::default()
            };
            run_conference_storm(&params, args.seed, progress)
        }
        Scenario::ChatBurst => {
            let params = ChatBurst {
                users: args.users,
                rooms: args.rooms,
                minutes: args.minutes,
                ..ChatBurst::default()
            };
            run_chat_burst(&params, args.seed, progress)
        }
    }
}

/// User plus system CPU time of this process so far, from `/proc/self/stat` (Linux; its clock
/// ticks are always 1/100 s there). `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime: fields 14 and 15 of the line, 11 and 12 counting from the state field.
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}
