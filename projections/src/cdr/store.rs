//! Where CDRs live: beside the log, in a SQLite file next to the log's (see [`cdr_file`]) or the
//! PostgreSQL database, or in memory for a `memory:` log. Every store keeps three things and
//! writes them in one transaction per [`CdrCommit`]: the finished rows, the fold's state for
//! calls in progress, and the checkpoint.
//! A row's key is (call, leg): inserting one twice is an error, never a silent duplicate.
//!
//! Stores are cheap to clone (shared handles), so the web layer can query while the projection
//! writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use events::GlobalPosition;
use events::StoreUrl;
use events::ids::{CallId, LegId};

use super::{Cdr, CdrQuery, OpenCall, PgCdrStore, SqliteCdrStore};
use crate::ProjectionError;

/// The SQLite file holding the CDRs of the log in `log`: `NAME-cdr.db` beside `NAME.db`.
///
/// A file of its own, not a second writer on the log's file: SQLite lets one connection write
/// at a time, and a writer that finds the lock taken sleeps in its busy handler (milliseconds at
/// a time), so every projection commit stalled the log's group commit behind it.
pub fn cdr_file(log: &Path) -> PathBuf {
    let stem = log.file_stem().unwrap_or_default().to_string_lossy();
    log.with_file_name(format!("{stem}-cdr.db"))
}

/// One batch's writes, committed atomically with the checkpoint `position`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdrCommit {
    pub position: GlobalPosition,
    pub rows: Vec<Cdr>,
    /// Calls in progress whose state changed (replaced whole).
    pub open: Vec<OpenCall>,
    /// Calls that ended: their stored state is deleted.
    pub closed: Vec<CallId>,
}

/// A CDR store.
#[derive(Debug, Clone)]
pub enum CdrStore {
    Memory(MemoryCdrStore),
    Sqlite(SqliteCdrStore),
    Postgres(PgCdrStore),
}

impl CdrStore {
    /// The store beside the log at `url`: a SQLite file next to the log's ([`cdr_file`]), the
    /// same PostgreSQL database, or memory for a memory log. Creates the tables if needed.
    pub async fn open(url: &StoreUrl) -> Result<Self, ProjectionError> {
        match url {
            StoreUrl::Memory => Ok(CdrStore::Memory(MemoryCdrStore::default())),
            StoreUrl::Sqlite(path) => Ok(CdrStore::Sqlite(
                SqliteCdrStore::open(&cdr_file(path)).await?,
            )),
            StoreUrl::Postgres(url) => Ok(CdrStore::Postgres(PgCdrStore::connect(url).await?)),
            StoreUrl::KurrentDb(_) => Err(ProjectionError::Unsupported(
                "KurrentDB (store the log there, and the projections in SQLite or PostgreSQL)"
                    .into(),
            )),
        }
    }

    /// Identity of the store, without secrets.
    pub fn describe(&self) -> String {
        match self {
            CdrStore::Memory(_) => "memory".into(),
            CdrStore::Sqlite(s) => s.describe(),
            CdrStore::Postgres(s) => s.describe(),
        }
    }

    /// The checkpoint `name` has committed, and the stored states of calls in progress.
    pub async fn load(
        &self,
        name: &str,
    ) -> Result<(GlobalPosition, Vec<OpenCall>), ProjectionError> {
        match self {
            CdrStore::Memory(s) => Ok(s.load(name)),
            CdrStore::Sqlite(s) => s.load(name).await,
            CdrStore::Postgres(s) => s.load(name).await,
        }
    }

    /// Writes `batch` and moves checkpoint `name` to its position, in one transaction.
    pub async fn commit(&self, name: &str, batch: CdrCommit) -> Result<(), ProjectionError> {
        match self {
            CdrStore::Memory(s) => s.commit(name, batch),
            CdrStore::Sqlite(s) => s.commit(name, batch).await,
            CdrStore::Postgres(s) => s.commit(name, batch).await,
        }
    }

    /// Deletes every row and call state and sets checkpoint `name` back to 0, in one
    /// transaction: the next run rebuilds from the start of the log.
    pub async fn reset(&self, name: &str) -> Result<(), ProjectionError> {
        match self {
            CdrStore::Memory(s) => {
                s.reset(name);
                Ok(())
            }
            CdrStore::Sqlite(s) => s.reset(name).await,
            CdrStore::Postgres(s) => s.reset(name).await,
        }
    }

    /// The rows answering `query`, in order.
    pub async fn query(&self, query: &CdrQuery) -> Result<Vec<Cdr>, ProjectionError> {
        match self {
            CdrStore::Memory(s) => Ok(s.query(query)),
            CdrStore::Sqlite(s) => s.query(query).await,
            CdrStore::Postgres(s) => s.query(query).await,
        }
    }

    /// How many rows the store holds, over all tenants.
    pub async fn count(&self) -> Result<u64, ProjectionError> {
        match self {
            CdrStore::Memory(s) => Ok(s.count()),
            CdrStore::Sqlite(s) => s.count().await,
            CdrStore::Postgres(s) => s.count().await,
        }
    }
}

/// CDRs in memory, for memory logs and tests.
#[derive(Debug, Clone, Default)]
pub struct MemoryCdrStore {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    checkpoints: BTreeMap<String, GlobalPosition>,
    rows: BTreeMap<(CallId, LegId), Cdr>,
    open: BTreeMap<CallId, OpenCall>,
}

impl MemoryCdrStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn load(&self, name: &str) -> (GlobalPosition, Vec<OpenCall>) {
        let inner = self.lock();
        (
            inner.checkpoints.get(name).copied().unwrap_or_default(),
            inner.open.values().cloned().collect(),
        )
    }

    fn commit(&self, name: &str, batch: CdrCommit) -> Result<(), ProjectionError> {
        let mut inner = self.lock();
        if let Some(dup) = batch
            .rows
            .iter()
            .find(|c| inner.rows.contains_key(&(c.linkedid, c.uniqueid)))
        {
            return Err(ProjectionError::Store {
                target: "memory".into(),
                detail: format!(
                    "duplicate CDR for leg {} of call {}",
                    dup.uniqueid, dup.linkedid
                ),
            });
        }
        for c in batch.rows {
            inner.rows.insert((c.linkedid, c.uniqueid), c);
        }
        for call in batch.open {
            inner.open.insert(call.call(), call);
        }
        for id in batch.closed {
            inner.open.remove(&id);
        }
        inner.checkpoints.insert(name.to_owned(), batch.position);
        Ok(())
    }

    fn reset(&self, name: &str) {
        let mut inner = self.lock();
        inner.rows.clear();
        inner.open.clear();
        inner
            .checkpoints
            .insert(name.to_owned(), GlobalPosition::START);
    }

    fn query(&self, query: &CdrQuery) -> Vec<Cdr> {
        let inner = self.lock();
        let mut rows: Vec<Cdr> = inner
            .rows
            .values()
            .filter(|c| query.matches(c))
            .cloned()
            .collect();
        CdrQuery::sort(&mut rows);
        rows.truncate(query.limit);
        rows
    }

    fn count(&self) -> u64 {
        self.lock().rows.len() as u64
    }
}
