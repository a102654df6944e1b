//! The projections a running server needs, wired together: the panel (rebuilt from position 0)
//! and the CDRs (resumed from their checkpoint in the store beside the log), read by one
//! [`Runner`]. [`LiveProjections::start`] returns once both have caught up with the log, then
//! keeps following it in the background until [`LiveProjections::stop`].
//!
//! Following runs on a thread of its own (with its own single-threaded async runtime), so a
//! large batch of projection work never holds up the server's other tasks, even when the
//! process is pinned to one CPU and the main runtime has a single worker. On Linux that thread
//! runs at a lower priority ([`NICER`]): when the CPU is short, answering phones goes first and
//! the read models lag behind the log for a moment, catching up in larger batches.
//!
//! The panel is applied before the CDRs in every batch, so a CDR commit never delays what the
//! panel shows.

use std::fmt;
use std::sync::Arc;

use events::EventLog;
use tokio::sync::oneshot;

use crate::ProjectionError;
use crate::cdr::{CdrProjection, CdrStore};
use crate::panel::{PanelHandle, PanelProjection};
use crate::runner::{CatchUp, Runner};

/// How much nicer the following thread is than the thread that starts it (Linux; niceness
/// stops at 19, the lowest priority). 10,000 phones registering at once (8,000 REGISTERs/s with
/// digest auth, one core) were answered with a p99 of 32-112 ms at 19, against 112-252 ms at
/// 10: at 10 the thread still took the tenth of the core its work asked for during the burst;
/// at 19 it gets about 1.5 % of the core until the burst has passed, then catches up.
pub const NICER: i32 = 19;

/// The panel and CDR projections following a log.
pub struct LiveProjections {
    pub panel: PanelHandle,
    /// Where the CDRs are, for queries.
    pub cdrs: CdrStore,
    /// What the initial catch-up read.
    pub caught_up: CatchUp,
    stop: Option<oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<()>,
    outcome: oneshot::Receiver<Result<(), ProjectionError>>,
}

impl fmt::Debug for LiveProjections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveProjections")
            .field("cdrs", &self.cdrs.describe())
            .field("caught_up", &self.caught_up)
            .field("running", &self.is_running())
            .finish()
    }
}

impl LiveProjections {
    /// Catches the panel and the CDRs up with `log`, then follows it in the background.
    pub async fn start(log: Arc<dyn EventLog>, cdrs: CdrStore) -> Result<Self, ProjectionError> {
        let (panel, handle) = PanelProjection::new();
        let mut runner = Runner::new(log)
            .with(panel)
            .with(CdrProjection::new(cdrs.clone()));
        let caught_up = runner.catch_up().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (report, outcome) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("projections".into())
            .spawn(move || {
                lower_priority();
                let result = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(runner.follow(async {
                        let _ = stopped.await;
                    })),
                    Err(e) => Err(ProjectionError::Store {
                        target: "the projection thread".into(),
                        detail: format!("cannot start its runtime: {e}"),
                    }),
                };
                let _ = report.send(result);
            })
            .map_err(|e| ProjectionError::Store {
                target: "the projection thread".into(),
                detail: format!("cannot start it: {e}"),
            })?;
        Ok(Self {
            panel: handle,
            cdrs,
            caught_up,
            stop: Some(stop),
            thread,
            outcome,
        })
    }

    /// Whether the background runner is still following (it stops on a store or log error).
    pub fn is_running(&self) -> bool {
        !self.thread.is_finished()
    }

    /// Stops following, flushes, and returns the runner's outcome.
    pub async fn stop(mut self) -> Result<(), ProjectionError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.outcome)
            .await
            .map_err(|_| ProjectionError::Store {
                target: self.cdrs.describe(),
                detail: "the projection thread ended without a result (it panicked)".into(),
            })?
    }
}

/// Makes the calling thread [`NICER`] than it was (on Linux, niceness is per thread and a new
/// thread starts with its parent's).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me)
            .and_then(|nice| setpriority_process(me, nice.saturating_add(NICER).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "cannot lower the projection thread's priority");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use events::codec::{Metadata, encode};
    use events::ids::{DepartmentId, EventId, StreamId, TenantId};
    use events::log::memory::MemoryLog;
    use events::model::DirectoryEvent;
    use events::{ExpectedVersion, GlobalPosition};

    use super::*;
    use crate::bench::{Synthetic, populate};
    use crate::cdr::{CdrQuery, MemoryCdrStore};

    #[tokio::test]
    async fn starts_caught_up_then_follows_until_stopped() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let params = Synthetic {
            events: 5_000,
            users: 40,
            ..Synthetic::default()
        };
        let written = populate(&log, &params).await.unwrap();
        let cdrs = CdrStore::Memory(MemoryCdrStore::default());
        let live = LiveProjections::start(log.clone(), cdrs.clone())
            .await
            .unwrap();
        assert_eq!(live.caught_up.position, GlobalPosition(written));
        assert_eq!(live.panel.read().position(), GlobalPosition(written));
        let bench = TenantId::parse("bench").unwrap();
        let rows = cdrs.query(&CdrQuery::new(bench.clone())).await.unwrap();
        assert!(!rows.is_empty());

        let mut changes = live.panel.changes();
        let stream = StreamId::directory(&bench);
        let version = log.read_stream(&stream, 0, 100_000).await.unwrap().len() as u64;
        let event = DirectoryEvent::DepartmentCreated {
            department: DepartmentId::parse("night-shift").unwrap(),
            name: "Night shift".into(),
        };
        let meta = Metadata::new(
            EventId::from_uuid(uuid::Uuid::from_u128(7)),
            chrono::DateTime::UNIX_EPOCH,
        )
        .with_tenant(bench.clone());
        log.append(
            &stream,
            ExpectedVersion::Exact(version),
            vec![encode(&event.into(), meta)],
        )
        .await
        .unwrap();
        while *changes.borrow_and_update() <= GlobalPosition(written) {
            tokio::time::timeout(Duration::from_secs(10), changes.changed())
                .await
                .expect("followed")
                .unwrap();
        }
        let names: Vec<String> = live
            .panel
            .read()
            .all_departments(&bench)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert!(names.contains(&"Night shift".to_owned()), "{names:?}");
        assert!(live.is_running());
        #[cfg(target_os = "linux")]
        {
            // Started from this test's thread.
            let expected = (niceness("/proc/thread-self") + NICER).min(19);
            let nice = projection_threads_niceness();
            assert!(
                !nice.is_empty() && nice.iter().all(|n| *n == expected),
                "{nice:?}"
            );
        }
        live.stop().await.unwrap();
    }

    /// The niceness of each thread of this process named `projections`, from `/proc`.
    #[cfg(target_os = "linux")]
    fn projection_threads_niceness() -> Vec<i32> {
        let mut nice = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
                continue;
            };
            if name.trim() != "projections" {
                continue;
            }
            nice.push(niceness(&dir.to_string_lossy()));
        }
        nice
    }

    /// The niceness of the thread whose `/proc` directory is `dir`.
    #[cfg(target_os = "linux")]
    fn niceness(dir: &str) -> i32 {
        let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap();
        // After the name in parentheses: state is field 3, nice field 19.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        fields[19 - 3].parse().unwrap()
    }
}
