//! The rebuild benchmark: how fast the panel and CDR projections fold a log from position 0,
//! in events per second (read, checksummed, decoded, folded, CDRs committed). It is a function,
//! not a timed test: `cargo run --release -p projections --example rebuild` calls it on a
//! synthetic log ([`synthetic`]) and prints the figures.

pub mod synthetic;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::{EventLog, GlobalPosition};

use crate::ProjectionError;
use crate::cdr::{CdrProjection, CdrStore};
use crate::panel::PanelProjection;
use crate::runner::Runner;

pub use synthetic::{Synthetic, populate};

/// What a rebuild measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildFigures {
    pub events: u64,
    pub position: GlobalPosition,
    /// From the first read to the last commit (the store's reset before it is not counted).
    pub elapsed: Duration,
    pub events_per_sec: f64,
    /// CDR rows in the store afterwards.
    pub cdrs: u64,
    /// Cards in the rebuilt panel, over all tenants.
    pub users: usize,
    /// The rebuilt panel's digest.
    pub panel_digest: String,
}

impl fmt::Display for RebuildFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rebuilt panel + CDRs from {} events in {:.2} s: {:.0} events/s ({} CDRs, {} cards, up to position {})",
            self.events,
            self.elapsed.as_secs_f64(),
            self.events_per_sec,
            self.cdrs,
            self.users,
            self.position
        )
    }
}

/// Empties `store`, then rebuilds the panel and the CDRs from the whole of `log`.
pub async fn rebuild(
    log: Arc<dyn EventLog>,
    store: CdrStore,
) -> Result<RebuildFigures, ProjectionError> {
    let (panel, handle) = PanelProjection::new();
    let mut runner = Runner::new(log)
        .with(panel)
        .with(CdrProjection::rebuilding(store.clone()));
    runner.start().await?;
    let started = Instant::now();
    let caught = runner.catch_up().await?;
    let elapsed = started.elapsed();
    let (users, panel_digest) = {
        let view = handle.read();
        let users = view.tenants().map(|t| view.user_count(t)).sum::<usize>();
        (users, view.digest())
    };
    Ok(RebuildFigures {
        events: caught.events,
        position: caught.position,
        elapsed,
        events_per_sec: caught.events as f64 / elapsed.as_secs_f64().max(1e-9),
        cdrs: store.count().await?,
        users,
        panel_digest,
    })
}

#[cfg(test)]
mod tests {
    use events::log::memory::MemoryLog;

    use super::*;
    use crate::cdr::MemoryCdrStore;

    fn small() -> Synthetic {
        Synthetic {
            seed: 9,
            events: 20_000,
            users: 60,
            departments: 3,
            calls_per_sec: 0.5,
        }
    }

    async fn built(params: &Synthetic) -> (Arc<dyn EventLog>, u64) {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let written = populate(&log, params).await.expect("populate");
        (log, written)
    }

    #[tokio::test]
    async fn a_rebuild_folds_the_whole_synthetic_log() {
        let (log, written) = built(&small()).await;
        assert!(written >= 20_000, "{written}");
        assert_eq!(log.head().await.unwrap().0, written);
        let mut legs_ended = 0u64;
        let mut after = GlobalPosition::START;
        loop {
            let page = log.read_all(after, 4096).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            legs_ended += page
                .iter()
                .filter(|e| e.record.event_type == "LegEnded")
                .count() as u64;
        }
        let store = CdrStore::Memory(MemoryCdrStore::default());
        let figures = rebuild(log.clone(), store.clone()).await.unwrap();
        assert_eq!(figures.events, written);
        assert_eq!(figures.position, GlobalPosition(written));
        assert_eq!(figures.cdrs, legs_ended, "one row per ended leg");
        assert_eq!(figures.users, 60);
        assert!(figures.events_per_sec > 0.0);
        assert!(
            figures
                .to_string()
                .contains(&format!("from {written} events"))
        );
        // Rebuilding again gives the same panel and the same rows (the store was reset).
        let again = rebuild(log, store).await.unwrap();
        assert_eq!(again.panel_digest, figures.panel_digest);
        assert_eq!(again.cdrs, figures.cdrs);
    }

    #[tokio::test]
    async fn the_same_parameters_write_the_same_log() {
        let (a, _) = built(&small()).await;
        let (b, _) = built(&small()).await;
        let (c, _) = built(&Synthetic {
            seed: 10,
            ..small()
        })
        .await;
        let records = |log: Arc<dyn EventLog>| async move {
            let page = log.read_all(GlobalPosition::START, 100_000).await.unwrap();
            page.into_iter()
                .map(|e| (e.stream, e.version, e.record))
                .collect::<Vec<_>>()
        };
        let (ra, rb, rc) = (records(a).await, records(b).await, records(c).await);
        assert_eq!(ra.len(), rb.len());
        let same_streams = |x: &Vec<(events::StreamId, u64, events::EventRecord)>| {
            let mut v: Vec<_> = x
                .iter()
                .map(|(s, n, r)| (s.clone(), *n, r.clone()))
                .collect();
            v.sort_by(|p, q| (p.0.as_str(), p.1).cmp(&(q.0.as_str(), q.1)));
            v
        };
        // Streams are appended concurrently, so the interleaving may differ; every stream's
        // events do not.
        assert_eq!(same_streams(&ra), same_streams(&rb));
        assert_ne!(same_streams(&ra), same_streams(&rc));
    }
}
