//! `ledgerline bench log`: measures the chosen event store and prints figures — append
//! throughput at 1 and 100 events per append with 1 and 8 concurrent streams, read-all
//! throughput including decoding into typed events, and subscription latency from the moment an
//! append is issued to the moment a subscriber holds the event (p50, p99, max).
//!
//! Without `--store` it measures a fresh embedded log in a temporary directory; with one, it
//! appends its own streams to that store, so point it at a scratch database. `bench actors`
//! ([`actors`]) measures the actor shells over a fresh embedded log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use events::codec::{Metadata, decode, encode};
use events::log::prefetch_all;
use events::model::Event;
use events::{
    Clock, EventId, EventLog, EventRecord, ExpectedVersion, GlobalPosition, IdGen, RandomIds,
    StoreUrl, StreamId, SystemClock, TenantId, subscribe,
};

use crate::Cli;

mod actors;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Append, read-all and subscription figures for the chosen store.
    Log(LogBenchArgs),
    /// Events/s through the actix actor shells (extension aggregates) with the embedded log.
    Actors(actors::ActorBenchArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct LogBenchArgs {
    /// Events appended in each batched configuration (100 events per append).
    #[arg(long, default_value_t = 200_000)]
    batched_events: u64,
    /// Events appended in each single-event configuration.
    #[arg(long, default_value_t = 5_000)]
    single_events: u64,
    /// Appends timed for the subscription latency figure.
    #[arg(long, default_value_t = 2_000)]
    latency_samples: usize,
}

pub(crate) async fn run(cli: &Cli, what: &BenchCommand) -> anyhow::Result<()> {
    let args = match what {
        BenchCommand::Log(args) => args,
        BenchCommand::Actors(args) => {
            // The actors run in their own actix system, which cannot start inside this runtime.
            let (args, options) = (args.clone(), cli.store_options());
            return std::thread::spawn(move || actors::run(&args, &options))
                .join()
                .map_err(|_| anyhow::anyhow!("the actor benchmark panicked"))?;
        }
    };
    let scratch;
    let url = match &cli.store {
        Some(s) => StoreUrl::parse(s)?,
        None => {
            scratch = ScratchDir::new()?;
            StoreUrl::Sqlite(scratch.0.join("bench.db"))
        }
    };
    let log = events::open(&url, &cli.store_options())
        .await
        .with_context(|| format!("opening {url}"))?;
    println!("bench log — store {}", log.describe());
    let source = Generator::new();
    let start = log.head().await?;

    println!("{:<34} {:>12} {:>14}", "append", "events", "events/s");
    for (per_append, streams, total) in [
        (1u64, 1u64, args.single_events),
        (1, 8, args.single_events),
        (100, 1, args.batched_events),
        (100, 8, args.batched_events),
    ] {
        let rate = append_rate(&log, &source, per_append, streams, total).await?;
        let label = format!("{per_append} per append, {streams} stream(s)");
        println!("{label:<34} {total:>12} {rate:>14.0}");
    }

    let (events, raw_rate, decoded_rate) = read_all_rate(&log, start).await?;
    println!(
        "{:<34} {:>12} {:>14.0}",
        "read-all (raw records)", events, raw_rate
    );
    println!(
        "{:<34} {:>12} {:>14.0}",
        "read-all (decoded, prefetching)", events, decoded_rate
    );

    let lat = subscription_latency(log.clone(), &source, args.latency_samples).await?;
    println!(
        "subscription append→delivered     p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms   ({} samples)",
        ms(lat.p50),
        ms(lat.p99),
        ms(lat.max),
        lat.samples
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Realistic events: the model's examples, re-stamped with fresh ids and the current time.
struct Generator {
    examples: Vec<Event>,
    ids: RandomIds,
    clock: SystemClock,
    tenant: TenantId,
}

impl Generator {
    fn new() -> Self {
        Self {
            examples: Event::examples(),
            ids: RandomIds,
            clock: SystemClock,
            tenant: TenantId::parse("bench").expect("valid tenant id"),
        }
    }
    fn record(&self, n: u64) -> EventRecord {
        let event = &self.examples[n as usize % self.examples.len()];
        encode(
            event,
            Metadata {
                event_id: EventId::from_uuid(self.ids.next_uuid()),
                occurred_at: self.clock.now(),
                tenant: Some(self.tenant.clone()),
                causation_id: None,
                correlation_id: None,
            },
        )
    }
    fn stream(&self) -> StreamId {
        StreamId::call(events::CallId::from_uuid(self.ids.next_uuid()))
    }
}

async fn append_rate(
    log: &Arc<dyn EventLog>,
    source: &Generator,
    per_append: u64,
    streams: u64,
    total: u64,
) -> anyhow::Result<f64> {
    let per_stream = total / streams;
    let mut work = Vec::new();
    for s in 0..streams {
        let batches: Vec<Vec<EventRecord>> = (0..per_stream.div_ceil(per_append))
            .map(|b| {
                let from = s * per_stream + b * per_append;
                let to = (from + per_append).min(s * per_stream + per_stream);
                (from..to).map(|n| source.record(n)).collect()
            })
            .collect();
        work.push((source.stream(), batches));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (stream, batches) in work {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut version = 0;
            for batch in batches {
                let out = log
                    .append(&stream, ExpectedVersion::Exact(version), batch)
                    .await?;
                version = out.next_expected;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per_stream * streams) as f64 / started.elapsed().as_secs_f64())
}

async fn read_all_rate(
    log: &Arc<dyn EventLog>,
    from: GlobalPosition,
) -> anyhow::Result<(u64, f64, f64)> {
    let mut raw = 0u64;
    let started = Instant::now();
    let mut after = from;
    loop {
        let page = log.read_all(after, 4096).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        raw += page.len() as u64;
    }
    let raw_rate = raw as f64 / started.elapsed().as_secs_f64();

    // Decoding overlaps with fetching the next page, as a projection runner does.
    let mut decoded = 0u64;
    let started = Instant::now();
    let mut pages = prefetch_all(log.clone(), from, 4096, 2);
    while let Some(page) = pages.recv().await {
        for stored in &page? {
            decode(stored).with_context(|| format!("decoding position {}", stored.position))?;
            decoded += 1;
        }
    }
    let decoded_rate = decoded as f64 / started.elapsed().as_secs_f64();
    Ok((raw, raw_rate, decoded_rate))
}

struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
    samples: usize,
}

async fn subscription_latency(
    log: Arc<dyn EventLog>,
    source: &Generator,
    samples: usize,
) -> anyhow::Result<Latency> {
    let issued: Arc<Mutex<HashMap<EventId, Instant>>> = Arc::default();
    let mut sub = subscribe(log.clone(), log.head().await?);
    let reader = {
        let issued = issued.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(samples);
            while lat.len() < samples {
                let e = sub.next().await?;
                let now = Instant::now();
                let at = issued
                    .lock()
                    .map_err(|_| anyhow::anyhow!("lock"))?
                    .remove(&e.record.event_id);
                if let Some(at) = at {
                    lat.push(now - at);
                }
            }
            anyhow::Ok(lat)
        })
    };
    let stream = source.stream();
    for n in 0..samples as u64 {
        let record = source.record(n);
        issued
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .insert(record.event_id, Instant::now());
        log.append(&stream, ExpectedVersion::Exact(n), vec![record])
            .await?;
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let mut lat = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .context("the subscriber did not receive every event within 60 s")???;
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1];
    Ok(Latency {
        p50: pick(0.50),
        p99: pick(0.99),
        max: *lat.last().unwrap_or(&Duration::ZERO),
        samples: lat.len(),
    })
}

/// A temporary directory removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!(
            "ledgerline-bench-{}-{}",
            std::process::id(),
            RandomIds.next_uuid().simple()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
