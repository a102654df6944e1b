//! `ledgerline replay FILE`: reads a log file `ledgerline export` wrote (from any backend),
//! folds it through the aggregates (`engine::replay`) and prints what it found: events and
//! streams per category, the streams whose final state still holds timers (and those whose
//! timer had already passed when the log ended), every divergence between the log and the
//! aggregates (the first ones listed, the rest counted by kind), and the fold's throughput. A
//! read error (a torn last line, an altered record) names its line. Any divergence or read error
//! makes the command fail. A progress bar shows the bytes read on a terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use engine::replay::{Folded, Replay, overdue, pending_deadlines};
use events::export::Reader;
use indicatif::ProgressBar;

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// A file written by `ledgerline export` (`-` for standard input).
    file: PathBuf,
    /// Divergences to list before only counting the rest.
    #[arg(long, default_value_t = 20)]
    show: usize,
}

/// Overdue timers listed in the summary.
const OVERDUE_SHOWN: usize = 5;

fn progress(total: Option<u64>) -> ProgressBar {
    crate::progress_bar(
        total,
        match total {
            Some(_) => "replaying {bar:40} {bytes}/{total_bytes} ({msg}, eta {eta})",
            None => "replaying {spinner} {bytes} ({msg})",
        },
    )
}

pub(crate) fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let (input, size): (Box<dyn Read>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file).with_context(|| format!("opening {name}"))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let bar = progress(size);
    let input: Box<dyn BufRead> = Box::new(BufReader::with_capacity(1 << 16, bar.wrap_read(input)));

    let started = Instant::now();
    let mut reader = Reader::new(input);
    let mut replay = Replay::new();
    let read_error = loop {
        match reader.next_event() {
            Ok(Some(event)) => {
                replay.push_stored(&event);
                if replay.events().is_multiple_of(8192) {
                    bar.set_message(format!("{} events", replay.events()));
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let wall = started.elapsed();
    bar.finish_and_clear();
    let folded = replay.finish();

    print_summary(&name, &folded, args.show, wall.as_secs_f64());
    if let Some(e) = read_error {
        bail!(
            "reading {name}: {e} (the {} events before it were folded)",
            folded.events()
        );
    }
    if let Some(first) = folded.divergences().first() {
        bail!(
            "{name} diverges from the aggregates in {} place(s); the first: {first}",
            folded.divergence_count()
        );
    }
    Ok(())
}

fn print_summary(name: &str, folded: &Folded, show: usize, wall_secs: f64) {
    let streams: u64 = folded.categories().values().map(|c| c.streams).sum();
    println!("replay      {name}");
    match (folded.last_position(), folded.log_end()) {
        (Some(last), Some(end)) => println!(
            "events      {} in {streams} streams (last position {last}, log ends {})",
            folded.events(),
            end.to_rfc3339()
        ),
        _ => println!("events      0"),
    }
    if !folded.categories().is_empty() {
        println!("  {:<14} {:>9} {:>12}", "category", "streams", "events");
        for (category, count) in folded.categories() {
            println!(
                "  {:<14} {:>9} {:>12}",
                category.as_str(),
                count.streams,
                count.events
            );
        }
    }

    let pending = pending_deadlines(folded);
    let holding: usize = pending.values().map(Vec::len).sum();
    let due = folded
        .log_end()
        .map(|end| overdue(&pending, end))
        .unwrap_or_default();
    println!(
        "deadlines   {holding} stream(s) still hold timers; {} already due when the log ends",
        due.len()
    );
    for (category, list) in &pending {
        println!("  {:<14} {:>9}", category.as_str(), list.len());
    }
    for p in due.iter().take(OVERDUE_SHOWN) {
        println!(
            "  overdue: {} due {}{}",
            p.stream,
            p.earliest.to_rfc3339(),
            folded
                .log_end()
                .map(|end| format!(" ({} before the log ends)", ago(p.earliest, end)))
                .unwrap_or_default()
        );
    }
    if due.len() > OVERDUE_SHOWN {
        println!("  … and {} more overdue", due.len() - OVERDUE_SHOWN);
    }

    println!("divergences {}", folded.divergence_count());
    for d in folded.divergences().iter().take(show) {
        println!("  {d}");
    }
    let listed = folded.divergences().len().min(show) as u64;
    if folded.divergence_count() > listed {
        println!("  … and {} more", folded.divergence_count() - listed);
    }
    if !folded.is_clean() {
        let by_kind: Vec<String> = folded
            .divergences_by_kind()
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        println!("  by kind: {}", by_kind.join(", "));
    }

    println!(
        "fold        {} events in {:.3} s: {:.0} events/s ({:.0} events/s reading, decoding and folding)",
        folded.events(),
        folded.fold_time().as_secs_f64(),
        folded.events_per_second(),
        folded.events() as f64 / wall_secs.max(1e-9)
    );
}

/// `end - at`, roughly, for people.
fn ago(at: DateTime<Utc>, end: DateTime<Utc>) -> String {
    let secs = (end - at).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}
