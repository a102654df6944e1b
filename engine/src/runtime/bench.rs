//! Throughput measurement through the real actor path: commands go through the registry, the
//! actix actors and the event log, and the figure is events made durable per second. This is a
//! helper for `ledgerline simulate` and benchmarks, not a timed test: nothing here asserts a
//! speed. Every actor gets its commands one after another (as a real aggregate does), while the
//! actors run concurrently, which is what lets the embedded log group their commits.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::log::sqlite::SqliteLog;
use events::{LogError, RandomIds, StoreOptions, SystemClock};
use futures_util::future::join_all;

use super::{Execute, ExecuteError, Instance, Registry, RegistryConfig, Services};
use crate::aggregate::Aggregate;

/// What one run pushed through and how long it took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throughput {
    pub actors: usize,
    pub commands: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub failed: usize,
    /// The first failure, for the report.
    pub first_failure: Option<String>,
    pub events: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events from {} commands through {} actors in {:.3} s: {:.0} events/s \
             ({} rejected, {} failed)",
            self.events,
            self.commands,
            self.actors,
            self.elapsed.as_secs_f64(),
            self.events_per_second(),
            self.rejected,
            self.failed
        )
    }
}

/// Sends `per_actor` commands to each of `instances` (`command(actor, n)` builds the n-th
/// command of an actor) and measures the wall time until every reply is in.
pub async fn push_commands<A, F>(
    registry: &Registry<A>,
    instances: &[Instance],
    per_actor: usize,
    command: F,
) -> Throughput
where
    A: Aggregate,
    F: Fn(usize, usize) -> A::Command,
{
    let started = Instant::now();
    let command = &command;
    let runs = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| async move {
            let mut t = Throughput::default();
            for n in 0..per_actor {
                t.commands += 1;
                match registry
                    .execute(instance, Execute::new(command(i, n)))
                    .await
                {
                    Ok(done) => {
                        t.accepted += 1;
                        t.events += done.events as u64;
                    }
                    Err(ExecuteError::Rejected(_)) => t.rejected += 1,
                    Err(e) => {
                        t.failed += 1;
                        t.first_failure.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            t
        });
    let mut total = Throughput {
        actors: instances.len(),
        ..Throughput::default()
    };
    for t in join_all(runs).await {
        total.commands += t.commands;
        total.accepted += t.accepted;
        total.rejected += t.rejected;
        total.failed += t.failed;
        total.events += t.events;
        if total.first_failure.is_none() {
            total.first_failure = t.first_failure;
        }
    }
    total.elapsed = started.elapsed();
    total
}

/// [`push_commands`] against a fresh embedded SQLite log at `path`, with the system clock and
/// random ids. Must run inside an actix `System`.
pub async fn measure_sqlite<A, F>(
    path: PathBuf,
    options: StoreOptions,
    config: RegistryConfig,
    instances: &[Instance],
    per_actor: usize,
    command: F,
) -> Result<Throughput, LogError>
where
    A: Aggregate,
    F: Fn(usize, usize) -> A::Command,
{
    let log = Arc::new(SqliteLog::open(path, options).await?);
    let services = Services::new(log, Arc::new(SystemClock), Arc::new(RandomIds), 1024);
    let registry = Registry::<A>::new(services, config);
    let throughput = push_commands(&registry, instances, per_actor, command).await;
    registry.shutdown().await;
    Ok(throughput)
}
