//! The checkpointed runner: one reader of the log feeding any number of projections. At start
//! each projection says which position it has already applied (its checkpoint; 0 for in-memory
//! projections, which rebuild); the runner reads from the smallest with `read_all` (pages
//! fetched ahead while the previous one is applied), hands each projection only the events after
//! its own checkpoint, and once it has caught up follows the log with [`events::subscribe`].
//!
//! Events are decoded once, and only those some projection is interested in (each declares the
//! event types it folds, [`Interest`]); the others only move the positions on. While catching
//! up, reading, decoding and folding run as a pipeline: the log's pages are fetched ahead,
//! decoded on the blocking pool, and applied in batches. A persistent projection commits its
//! rows and its new checkpoint in one transaction (as often as it likes while catching up, and
//! at the latest when flushed), so a crash leaves both at the same position and a restart
//! neither skips nor repeats anything. While following, a batch is whatever the subscription
//! can hand out without waiting (bounded), and every batch is flushed: a quiet log costs one
//! commit per event and a busy one far fewer (a batch that moved only a projection's checkpoint
//! may wait for a later commit, [`Projection::flush_live`]). An event that arrives within the linger time
//! ([`LIVE_LINGER`]) of the last flush waits out the rest of it, so that what the
//! log commits meanwhile joins its batch: under load a projection flushes at most once per
//! linger time, and an event is never held longer than that.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use events::codec::{Recorded, decode};
use events::log::prefetch_all;
use events::{EventLog, GlobalPosition, StoredEvent, subscribe};

use crate::ProjectionError;

/// How long after a flush, at most, the next event waits for company while following: what a
/// browser's panel or a CDR query may lag behind the log under load.
pub const LIVE_LINGER: Duration = Duration::from_millis(10);

/// Which events a projection folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    All,
    /// Only events of these stored types; every other event must leave the projection as it
    /// is (apart from its position). The runner may still hand it other events (another
    /// projection's interest), which it must ignore.
    Only(&'static [&'static str]),
}

/// A fold of the log the runner drives.
#[async_trait]
pub trait Projection: Send + fmt::Debug {
    /// Short stable name; persistent projections key their checkpoint by it.
    fn name(&self) -> &'static str;

    /// The events this projection folds; the runner decodes nothing else for it.
    fn interest(&self) -> Interest {
        Interest::All
    }

    /// Prepares the projection and returns the position it has already applied: its stored
    /// checkpoint, or `START` for a projection that rebuilds.
    async fn start(&mut self) -> Result<GlobalPosition, ProjectionError>;

    /// Applies `events` (in log order, all after the last applied position, only those of
    /// interest) and moves the projection's position to `through`, the last position the batch
    /// covered (events between that were of no interest). A persistent projection makes its
    /// rows and checkpoint durable together, or neither.
    async fn apply(
        &mut self,
        events: &[Recorded],
        through: GlobalPosition,
    ) -> Result<(), ProjectionError>;

    /// Makes anything applied but not yet stored durable (called when the runner has caught
    /// up and when it stops).
    async fn flush(&mut self) -> Result<(), ProjectionError> {
        Ok(())
    }

    /// Called after every batch while following: makes what the batch changed durable. A
    /// persistent projection may leave a batch that changed nothing but its checkpoint for a
    /// later commit (a restart then folds those events again, changing nothing), so that a
    /// stretch of events it does not fold costs no transaction per batch.
    async fn flush_live(&mut self) -> Result<(), ProjectionError> {
        self.flush().await
    }
}

struct Entry {
    projection: Box<dyn Projection>,
    applied: GlobalPosition,
}

/// What [`Runner::catch_up`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUp {
    /// Events read and decoded.
    pub events: u64,
    /// The position every projection has applied now.
    pub position: GlobalPosition,
}

/// Reads the log once for several projections.
pub struct Runner {
    log: Arc<dyn EventLog>,
    entries: Vec<Entry>,
    batch: usize,
    live_batch: usize,
    position: GlobalPosition,
    started: bool,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("log", &self.log.describe())
            .field(
                "projections",
                &self
                    .entries
                    .iter()
                    .map(|e| (e.projection.name(), e.applied))
                    .collect::<Vec<_>>(),
            )
            .field("position", &self.position)
            .finish()
    }
}

impl Runner {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            entries: Vec::new(),
            batch: 8192,
            live_batch: 1024,
            position: GlobalPosition::START,
            started: false,
        }
    }

    /// Adds a projection (before the first `start`). Every batch is applied to the projections
    /// in the order they were added.
    pub fn with(mut self, projection: impl Projection + 'static) -> Self {
        self.entries.push(Entry {
            projection: Box::new(projection),
            applied: GlobalPosition::START,
        });
        self
    }

    /// Events per catch-up page (and so per commit while catching up).
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Most events applied as one batch while following.
    pub fn with_live_batch(mut self, batch: usize) -> Self {
        self.live_batch = batch.max(1);
        self
    }

    /// The position every projection has applied.
    pub fn position(&self) -> GlobalPosition {
        self.position
    }

    /// Asks every projection for its checkpoint; the runner reads on from the smallest.
    pub async fn start(&mut self) -> Result<GlobalPosition, ProjectionError> {
        let mut lowest: Option<GlobalPosition> = None;
        for entry in &mut self.entries {
            entry.applied = entry.projection.start().await?;
            lowest = Some(lowest.map_or(entry.applied, |l| l.min(entry.applied)));
            tracing::debug!(projection = entry.projection.name(), checkpoint = %entry.applied, "projection started");
        }
        self.position = lowest.unwrap_or(GlobalPosition::START);
        self.started = true;
        Ok(self.position)
    }

    /// Reads and applies everything stored up to the head as it is when each page is read,
    /// then flushes. Starts the projections first if that was not done.
    pub async fn catch_up(&mut self) -> Result<CatchUp, ProjectionError> {
        if !self.started {
            self.start().await?;
        }
        let wanted = self.wanted();
        let mut pages = prefetch_all(self.log.clone(), self.position, self.batch, 2);
        let (decoded, mut batches) = tokio::sync::mpsc::channel(2);
        // Decoding runs beside folding: each page is decoded on the blocking pool while the
        // previous one is applied.
        let decoder = tokio::spawn(async move {
            while let Some(page) = pages.recv().await {
                let batch = match page {
                    Ok(page) => {
                        let wanted = wanted.clone();
                        tokio::task::spawn_blocking(move || decode_page(&page, wanted.as_deref()))
                            .await
                            .unwrap_or_else(|e| {
                                Err(ProjectionError::Store {
                                    target: "decoder".into(),
                                    detail: format!("decoding task failed: {e}"),
                                })
                            })
                    }
                    Err(e) => Err(e.into()),
                };
                let failed = batch.is_err();
                if decoded.send(batch).await.is_err() || failed {
                    break;
                }
            }
        });
        let mut count = 0u64;
        while let Some(batch) = batches.recv().await {
            let batch = batch?;
            count += batch.read;
            self.apply(&batch.events, batch.through).await?;
        }
        let _ = decoder.await;
        self.flush(false).await?;
        Ok(CatchUp {
            events: count,
            position: self.position,
        })
    }

    /// The union of the projections' interests (`None`: everything).
    fn wanted(&self) -> Option<Arc<HashSet<&'static str>>> {
        let mut all = HashSet::new();
        for entry in &self.entries {
            match entry.projection.interest() {
                Interest::All => return None,
                Interest::Only(types) => all.extend(types.iter().copied()),
            }
        }
        Some(Arc::new(all))
    }

    /// Catches up, then follows the log until `stop` completes; flushes before returning.
    pub async fn run(&mut self, stop: impl Future<Output = ()>) -> Result<(), ProjectionError> {
        self.catch_up().await?;
        self.follow(stop).await
    }

    /// Follows the log from the current position until `stop` completes.
    pub async fn follow(&mut self, stop: impl Future<Output = ()>) -> Result<(), ProjectionError> {
        if !self.started {
            self.start().await?;
        }
        tokio::pin!(stop);
        let wanted = self.wanted();
        let wants = |e: &StoredEvent| wanted_by(wanted.as_deref(), e);
        let hint = self.log.wake_ups();
        let mut sub = subscribe(self.log.clone(), self.position).with_batch(self.batch);
        let mut last_flush: Option<Instant> = None;
        loop {
            let first = tokio::select! {
                biased;
                () = &mut stop => break,
                next = sub.next() => next?,
            };
            let linger = last_flush.map_or(Duration::ZERO, |at| {
                LIVE_LINGER.saturating_sub(at.elapsed())
            });
            if !linger.is_zero() {
                tokio::time::sleep(linger).await;
            }
            let mut read = 1;
            let mut batch = Vec::new();
            if wants(&first) {
                batch.push(decode_one(&first)?);
            }
            // Take what is already there without waiting for more: the hint is only ever moved
            // after a commit, so a position below it can be read at once.
            while read < self.live_batch && *hint.borrow() > sub.position() {
                let next = sub.next().await?;
                read += 1;
                if wants(&next) {
                    batch.push(decode_one(&next)?);
                }
            }
            self.apply(&batch, sub.position()).await?;
            // Following: what was applied becomes durable (and visible) now.
            self.flush(true).await?;
            last_flush = Some(Instant::now());
        }
        self.flush(false).await
    }

    /// Applies a batch that covered the log up to `through`.
    async fn apply(
        &mut self,
        batch: &[Recorded],
        through: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        for entry in &mut self.entries {
            if through <= entry.applied {
                continue;
            }
            let from = batch.partition_point(|r| r.position <= entry.applied);
            entry.projection.apply(&batch[from..], through).await?;
            entry.applied = through;
        }
        self.position = self.position.max(through);
        Ok(())
    }

    /// Flushes every projection; `live`: after a batch while following
    /// ([`Projection::flush_live`]).
    async fn flush(&mut self, live: bool) -> Result<(), ProjectionError> {
        for entry in &mut self.entries {
            if live {
                entry.projection.flush_live().await?;
            } else {
                entry.projection.flush().await?;
            }
        }
        Ok(())
    }
}

/// Whether some projection folds `e` (`wanted`: the union of their interests; `None`: all).
fn wanted_by(wanted: Option<&HashSet<&'static str>>, e: &StoredEvent) -> bool {
    wanted.is_none_or(|w| w.contains(e.record.event_type.as_str()))
}

fn decode_one(stored: &StoredEvent) -> Result<Recorded, ProjectionError> {
    decode(stored).map_err(|source| ProjectionError::Decode {
        position: stored.position,
        source,
    })
}

/// A decoded page: the events of interest, how many were read, and the last position read.
struct Decoded {
    events: Vec<Recorded>,
    read: u64,
    through: GlobalPosition,
}

fn decode_page(
    page: &[StoredEvent],
    wanted: Option<&HashSet<&'static str>>,
) -> Result<Decoded, ProjectionError> {
    let events = page
        .iter()
        .filter(|e| wanted_by(wanted, e))
        .map(decode_one)
        .collect::<Result<_, _>>()?;
    Ok(Decoded {
        events,
        read: page.len() as u64,
        through: page.last().map_or(GlobalPosition::START, |e| e.position),
    })
}
