//! The CDR projection under the runner: the pure [`CdrFold`] plus its store. At start it loads
//! the checkpoint and the states of calls in progress (so a call that began before a restart
//! still gets its rows); each batch's finished rows, changed call states and new checkpoint are
//! committed in one transaction. While catching up, batches are gathered into commits of about
//! [`COMMIT_ROWS`] rows (or [`COMMIT_EVENTS`] events, whichever comes first); the runner flushes
//! after catching up and after every batch while following, so a live row is committed as soon
//! as its leg ends. Events gathered but not committed when the process dies are simply folded
//! again from the checkpoint. While following, a batch that made no row and changed no call
//! (a registration storm, presence changes) only moves the checkpoint: that waits until
//! [`LIVE_CHECKPOINT_EVENTS`] events or [`LIVE_CHECKPOINT_EVERY`] have passed, or the next
//! commit with rows, instead of a write transaction per batch on the log's file (where it took
//! the write lock from the log's writer up to a hundred times a second).
//!
//! A commit runs in the background while the next batch is folded (one at a time, in order);
//! the next commit, and every flush, first waits for it. A failed commit leaves the store at its
//! previous checkpoint and this projection unusable (its fold is ahead of the store): the error
//! comes back from the next `apply` or `flush`, the runner stops, and a new projection resumes
//! from the store.

use async_trait::async_trait;
use events::GlobalPosition;
use events::codec::Recorded;
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use super::{CDR_EVENTS, CHECKPOINT, Cdr, CdrCommit, CdrFold, CdrStore};
use crate::ProjectionError;
use crate::runner::{Interest, Projection};

/// Rows gathered before a commit while catching up.
pub const COMMIT_ROWS: usize = 8_192;
/// Events folded before a commit while catching up, however few rows they made.
pub const COMMIT_EVENTS: u64 = 131_072;
/// While following, events past the checkpoint, none of which made a row or changed a call,
/// that are folded before the checkpoint alone is committed.
pub const LIVE_CHECKPOINT_EVENTS: u64 = 16_384;
/// While following, how long a checkpoint that alone moved waits at most for its commit.
pub const LIVE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct CdrProjection {
    store: CdrStore,
    fold: CdrFold,
    pending: Vec<Cdr>,
    applied: GlobalPosition,
    /// The position of the last commit started.
    scheduled: GlobalPosition,
    committed: GlobalPosition,
    in_flight: Option<InFlight>,
    /// When the last commit started.
    last_commit: Instant,
    rebuild: bool,
    failed: bool,
    rows_written: u64,
}

/// A commit running in the background.
#[derive(Debug)]
struct InFlight {
    handle: JoinHandle<Result<(), ProjectionError>>,
    position: GlobalPosition,
    rows: u64,
}

impl CdrProjection {
    /// Resumes from the store's checkpoint.
    pub fn new(store: CdrStore) -> Self {
        Self {
            store,
            fold: CdrFold::new(),
            pending: Vec::new(),
            applied: GlobalPosition::START,
            scheduled: GlobalPosition::START,
            committed: GlobalPosition::START,
            in_flight: None,
            last_commit: Instant::now(),
            rebuild: false,
            failed: false,
            rows_written: 0,
        }
    }

    /// Empties the store at start and rebuilds from position 0.
    pub fn rebuilding(store: CdrStore) -> Self {
        Self {
            rebuild: true,
            ..Self::new(store)
        }
    }

    pub fn store(&self) -> &CdrStore {
        &self.store
    }

    /// Rows this projection has committed since it started.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// The checkpoint last committed.
    pub fn committed(&self) -> GlobalPosition {
        self.committed
    }

    /// Waits for the commit in flight, if any.
    async fn settle(&mut self) -> Result<(), ProjectionError> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let result = flight.handle.await.unwrap_or_else(|e| {
            Err(ProjectionError::Store {
                target: self.store.describe(),
                detail: format!("the commit task failed: {e}"),
            })
        });
        if let Err(e) = result {
            self.failed = true;
            return Err(e);
        }
        self.committed = flight.position;
        self.rows_written += flight.rows;
        Ok(())
    }

    /// Starts committing everything folded so far, after the previous commit.
    async fn commit(&mut self) -> Result<(), ProjectionError> {
        self.settle().await?;
        let dirty = self.fold.take_dirty();
        let rows = std::mem::take(&mut self.pending);
        let count = rows.len() as u64;
        let batch = CdrCommit {
            position: self.applied,
            rows,
            open: dirty.open,
            closed: dirty.closed,
        };
        let store = self.store.clone();
        self.in_flight = Some(InFlight {
            handle: tokio::spawn(async move { store.commit(CHECKPOINT, batch).await }),
            position: self.applied,
            rows: count,
        });
        self.scheduled = self.applied;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Events folded since the last commit started.
    fn since_commit(&self) -> u64 {
        self.applied.0 - self.scheduled.0
    }

    fn usable(&self) -> Result<(), ProjectionError> {
        if self.failed {
            return Err(ProjectionError::Store {
                target: self.store.describe(),
                detail: "an earlier commit failed; restart the projection from the store".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Projection for CdrProjection {
    fn name(&self) -> &'static str {
        CHECKPOINT
    }

    fn interest(&self) -> Interest {
        Interest::Only(CDR_EVENTS)
    }

    async fn start(&mut self) -> Result<GlobalPosition, ProjectionError> {
        self.settle().await?;
        if self.rebuild {
            self.store.reset(CHECKPOINT).await?;
        }
        let (position, open) = self.store.load(CHECKPOINT).await?;
        self.fold = CdrFold::resume(open);
        self.pending.clear();
        self.applied = position;
        self.scheduled = position;
        self.committed = position;
        self.failed = false;
        Ok(position)
    }

    async fn apply(
        &mut self,
        events: &[Recorded],
        through: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        self.usable()?;
        for r in events {
            if r.position <= self.applied {
                continue;
            }
            if let Some(cdr) = self.fold.apply(r) {
                self.pending.push(cdr);
            }
        }
        self.applied = self.applied.max(through);
        if self.pending.len() >= COMMIT_ROWS || self.since_commit() >= COMMIT_EVENTS {
            self.commit().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProjectionError> {
        self.usable()?;
        if self.applied > self.scheduled || self.fold.is_dirty() || !self.pending.is_empty() {
            self.commit().await?;
        }
        self.settle().await
    }

    async fn flush_live(&mut self) -> Result<(), ProjectionError> {
        self.usable()?;
        let only_checkpoint = self.pending.is_empty() && !self.fold.is_dirty();
        if only_checkpoint
            && self.since_commit() < LIVE_CHECKPOINT_EVENTS
            && self.last_commit.elapsed() < LIVE_CHECKPOINT_EVERY
        {
            return Ok(());
        }
        self.flush().await
    }
}
