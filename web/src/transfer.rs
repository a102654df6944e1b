//! `ledgerline export` and `ledgerline import`: move a whole log between stores through the
//! portable JSON-lines file (`events::export`). Export streams every event in position order;
//! import appends them to an empty store stream by stream with exact expected versions, so the
//! copy holds the same streams, versions, ids and payloads. Both show a progress bar on a
//! terminal.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use events::export::{Reader, write_event};
use events::log::prefetch_all;
use events::{EventLog, ExpectedVersion, GlobalPosition, StoredEvent};
use indicatif::ProgressBar;

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// File to write (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// A file written by `ledgerline export` (`-` for standard input).
    file: PathBuf,
}

fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    crate::progress_bar(
        total,
        &format!("{what} {{bar:40}} {{pos}}/{{len}} events ({{per_sec}}, eta {{eta}})"),
    )
}

pub(crate) async fn export(log: Arc<dyn EventLog>, args: &ExportArgs) -> anyhow::Result<()> {
    let head = log.head().await?;
    let bar = progress(Some(head.0), "exporting");
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut pages = prefetch_all(log.clone(), GlobalPosition::START, 4096, 2);
    let mut count = 0u64;
    while let Some(page) = pages.recv().await {
        for e in page? {
            write_event(&mut out, &e)?;
            count += 1;
        }
        bar.set_position(count);
    }
    out.flush()?;
    bar.finish_and_clear();
    tracing::info!(events = count, store = %log.describe(), "exported");
    eprintln!("exported {count} events from {}", log.describe());
    Ok(())
}

pub(crate) async fn import(log: Arc<dyn EventLog>, args: &ImportArgs) -> anyhow::Result<()> {
    if log.head().await? != GlobalPosition::START {
        bail!(
            "{} is not empty; import only into an empty store",
            log.describe()
        );
    }
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let file =
            File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(BufReader::new(file))
    };
    let bar = progress(None, "importing");
    let mut reader = Reader::new(input);
    let mut run: Vec<StoredEvent> = Vec::new();
    let mut count = 0u64;
    loop {
        let next = reader
            .next_event()
            .with_context(|| format!("reading {}", args.file.display()))?;
        let flush = match (&next, run.first()) {
            (Some(e), Some(first)) => e.stream != first.stream || run.len() >= 1000,
            (None, Some(_)) => true,
            _ => false,
        };
        if flush {
            count += append_run(&log, std::mem::take(&mut run)).await?;
            bar.set_position(count);
        }
        match next {
            Some(e) => run.push(e),
            None => break,
        }
    }
    bar.finish_and_clear();
    eprintln!("imported {count} events into {}", log.describe());
    Ok(())
}

/// Appends consecutive events of one stream, expecting the version just before the first.
async fn append_run(log: &Arc<dyn EventLog>, run: Vec<StoredEvent>) -> anyhow::Result<u64> {
    let Some(first) = run.first() else {
        return Ok(0);
    };
    let stream = first.stream.clone();
    let expected = ExpectedVersion::Exact(first.version - 1);
    let at = first.position;
    let n = run.len() as u64;
    let records = run.into_iter().map(|e| e.record).collect();
    log.append(&stream, expected, records)
        .await
        .with_context(|| format!("importing {stream} at exported position {at}"))?;
    Ok(n)
}
