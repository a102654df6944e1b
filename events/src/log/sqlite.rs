//! The embedded default backend: one SQLite file in the data directory, WAL mode, one writer
//! thread with group commit, a small pool of reader connections.
//!
//! Durability: with `fsync_every_commit` (the default) the database runs `synchronous=FULL`, so
//! every commit is fsynced before any append in it is acknowledged; appends that arrive while a
//! commit is in flight are grouped into the next transaction (group commit), so many concurrent
//! writers share one fsync. Without it, `synchronous=NORMAL`: commits survive a crash of the
//! process but the last ones may be lost if the machine loses power before a WAL checkpoint.
//!
//! Positions are assigned inside the writer's `BEGIN IMMEDIATE` transaction from the current
//! maximum, so they are gap-free and in commit order. A conflict undoes its own request only: a
//! request of several events runs under a savepoint, one of a single event is one statement.
//!
//! Integrity: every row carries a crc32 checksum verified on read; opening verifies the file is
//! a database, the schema is migrated and the newest records are intact (a torn or corrupted
//! tail is reported, never silently skipped).
//!
//! Reads near the head: the writer keeps the newest events it committed in memory ([`Tail`]),
//! and `read_all` after a position they cover is answered from there, with no read connection,
//! no trip to the blocking pool and no decoding. Subscribers (the projections) follow the head,
//! so their reads are nearly all of this kind; older positions, and everything before the first
//! commit of this process, are read from the file. So is everything once the writer has seen
//! another process commit to the same file.
//!
//! Appends without lookups: the writer remembers the version its commits left each stream at
//! ([`Versions`]). An append whose expected version that settles (or that starts a new stream)
//! is inserted at once; the table's unique keys refuse it if the memory was wrong or the ids are
//! stored already, and only then is the request looked up (an idempotent retry, a conflict).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoreOptions, StoredEvent, checksum, idempotent_outcome, to_micros, validate_append,
};
use crate::ids::{CorrelationId, EventId, StreamId, TenantId};

mod embedded {
    refinery::embed_migrations!("../migrations/sqlite");
}

/// How many queued appends one group commit takes at most.
const MAX_GROUP: usize = 512;
/// How many of the newest records are verified when the file is opened.
const TAIL_CHECK: usize = 1024;
/// How many of the newest committed events the writer keeps for reads near the head.
const TAIL_KEPT: usize = 8192;

const SELECT_COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, \
     occurred_at, tenant, causation_id, correlation_id, payload, checksum";

struct AppendRequest {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<EventRecord>,
    reply: oneshot::Sender<Result<AppendOutcome, LogError>>,
}

/// The embedded SQLite event log.
pub struct SqliteLog {
    path: PathBuf,
    writer: Option<mpsc::Sender<AppendRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// One permit per read connection: reads beyond [`READERS`] at once wait for one, instead of
    /// opening (and parsing the schema of) a connection that is closed again right after.
    reader_slots: Arc<tokio::sync::Semaphore>,
    head: watch::Sender<GlobalPosition>,
    tail: Arc<Tail>,
}

/// The newest events this process committed, in position order without holes, exactly as they
/// were written: the writer adds each commit's events before it moves the head, so the last one
/// held is always the head. A commit that does not follow the last one held (another process
/// wrote to the file in between) starts it over.
///
/// It stands for the head of the log only while this process is the file's one writer. Once the
/// writer sees that another process committed to the file ([`Versions::check`]), it is given up
/// for good ([`Tail::share`]) and every read goes to the file: what the other process appends
/// after this one's last commit is in no tail.
#[derive(Debug, Default)]
struct Tail {
    events: Mutex<VecDeque<StoredEvent>>,
    shared: std::sync::atomic::AtomicBool,
}

impl Tail {
    fn events(&self) -> std::sync::MutexGuard<'_, VecDeque<StoredEvent>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Another process writes the file too: nothing is kept or answered from here on.
    fn share(&self) {
        if !self.shared.swap(true, std::sync::atomic::Ordering::AcqRel) {
            tracing::info!(
                "another process writes this event log too: reads near the head now go to the file"
            );
        }
        self.events().clear();
    }

    /// Adds a commit's events (positions following the last one held).
    fn extend(&self, committed: Vec<StoredEvent>) {
        if committed.is_empty() || self.is_shared() {
            return;
        }
        let mut events = self.events();
        if events
            .back()
            .is_some_and(|last| last.position.0 + 1 != committed[0].position.0)
        {
            // Another process committed in between: what is held no longer runs on to this
            // commit, so it starts over here, and reads before it go to the file.
            events.clear();
        }
        events.extend(committed);
        let excess = events.len().saturating_sub(TAIL_KEPT);
        events.drain(..excess);
    }

    /// Up to `max` events after `after`, or `None` when the tail does not reach back that far.
    fn after(&self, after: GlobalPosition, max: usize) -> Option<Vec<StoredEvent>> {
        if self.is_shared() {
            return None;
        }
        let events = self.events();
        let first = events.front()?.position.0;
        let skip = usize::try_from((after.0 + 1).checked_sub(first)?).ok()?;
        Some(
            events
                .range(skip.min(events.len())..)
                .take(max)
                .cloned()
                .collect(),
        )
    }
}

/// Read connections kept open (and reads run at once).
const READERS: usize = 8;

impl fmt::Debug for SqliteLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLog")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteLog {
    /// Opens (creating if needed) the log file at `path`, applies migrations and checks the tail.
    pub async fn open(path: PathBuf, options: StoreOptions) -> Result<Self, LogError> {
        let opened = {
            let p = path.clone();
            let options = options.clone();
            tokio::task::spawn_blocking(move || open_blocking(&p, &options))
                .await
                .map_err(|e| LogError::Backend {
                    target: describe(&path),
                    detail: format!("opening task failed: {e}"),
                })??
        };
        let (conn, head_position) = opened;
        let (head, _) = watch::channel(head_position);
        let tail = Arc::new(Tail::default());
        let (tx, rx) = mpsc::channel(4096);
        let thread = {
            let head = head.clone();
            let tail = tail.clone();
            let target = describe(&path);
            let window = options.commit_window;
            std::thread::Builder::new()
                .name("sqlite-log-writer".into())
                .spawn(move || writer_loop(conn, rx, head, tail, target, window))
                .map_err(|e| LogError::Backend {
                    target: describe(&path),
                    detail: format!("cannot start the writer thread: {e}"),
                })?
        };
        tracing::info!(store = %describe(&path), head = %head_position, "event log opened");
        Ok(Self {
            path,
            writer: Some(tx),
            writer_thread: Some(thread),
            readers: Arc::new(Mutex::new(Vec::new())),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(READERS)),
            head,
            tail,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a pooled read connection on the blocking pool.
    async fn with_reader<T, F>(&self, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &str) -> Result<T, LogError> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        let slot = self
            .reader_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| LogError::Backend {
                target: describe(&self.path),
                detail: format!("no read connection: {e}"),
            })?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let target = describe(&path);
            let conn = pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match conn {
                Some(c) => c,
                None => open_reader(&path)?,
            };
            let out = f(&conn, &target);
            let mut pool = pool.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| LogError::Backend {
            target: describe(&self.path),
            detail: format!("read task failed: {e}"),
        })?
    }
}

impl Drop for SqliteLog {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds and exit; joining releases the
        // file before anyone reopens it.
        self.writer.take();
        if let Some(t) = self.writer_thread.take() {
            let _ = t.join();
        }
    }
}

fn describe(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

fn sql_err(target: &str, e: rusqlite::Error) -> LogError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => LogError::Corrupt {
            target: target.to_owned(),
            detail: e.to_string(),
        },
        Some(ErrorCode::CannotOpen) | Some(ErrorCode::PermissionDenied) => LogError::Backend {
            target: target.to_owned(),
            detail: format!("cannot open the file: {e}"),
        },
        _ => LogError::Backend {
            target: target.to_owned(),
            detail: e.to_string(),
        },
    }
}

/// Keeps each cached statement's plan: by default SQLite (3.47+) re-prepares a statement whose
/// `LIMIT ?` is bound again, which our reads and the writer's lookups do on every use. Our
/// queries have one right plan (the primary key or the stream index) whatever the values.
fn stable_plans(conn: &Connection, target: &str) -> Result<(), LogError> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map(drop)
        .map_err(|e| sql_err(target, e))
}

fn configure(conn: &Connection, target: &str, fsync_every_commit: bool) -> Result<(), LogError> {
    let sync = if fsync_every_commit { "FULL" } else { "NORMAL" };
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sql_err(target, e))?;
    stable_plans(conn, target)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| sql_err(target, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::Backend {
            target: target.to_owned(),
            detail: format!("could not switch to WAL mode (got {mode})"),
        });
    }
    // SQLite's default page cache (2 MB) holds the pages appends and live reads touch (the
    // ends of the table and its indexes). A larger one costs at every commit: SQLite walks the
    // cache's hash table when a write transaction ends, and a reader clears its cache whenever
    // another connection wrote (measured at 1,000 calls/s: 32 MB cost 6 % more CPU).
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; PRAGMA cache_size=-2000;"
    ))
    .map_err(|e| sql_err(target, e))
}

fn open_blocking(
    path: &Path,
    options: &StoreOptions,
) -> Result<(Connection, GlobalPosition), LogError> {
    let target = describe(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| LogError::Backend {
            target: target.clone(),
            detail: format!("cannot create the data directory {}: {e}", dir.display()),
        })?;
    }
    if path.is_dir() {
        return Err(LogError::Backend {
            target,
            detail: "the path is a directory; give a file path such as data/ledgerline.db".into(),
        });
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sql_err(&target, e))?;
    // The first real read of the header happens here: a non-database file fails now, clearly.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| sql_err(&target, e))?;
    configure(&conn, &target, options.fsync_every_commit)?;
    if options.migrate {
        embedded::migrations::runner()
            .run(&mut conn)
            .map_err(|e| LogError::Migration {
                target: target.clone(),
                detail: e.to_string(),
            })?;
    }
    let head = check_tail(&conn, &target)?;
    Ok((conn, head))
}

/// Verifies the newest records and that positions below the head have no holes.
fn check_tail(conn: &Connection, target: &str) -> Result<GlobalPosition, LogError> {
    let (count, max): (i64, Option<i64>) = conn
        .query_row("SELECT count(*), max(position) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(|e| sql_err(target, e))?;
    let max = max.unwrap_or(0);
    if count != max {
        return Err(LogError::Corrupt {
            target: target.to_owned(),
            detail: format!(
                "the log holds {count} events but its last position is {max}: records are missing"
            ),
        });
    }
    let after = (max - TAIL_CHECK as i64).max(0) as u64;
    read_all_blocking(conn, target, GlobalPosition(after), TAIL_CHECK)?;
    Ok(GlobalPosition(max as u64))
}

fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let target = describe(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sql_err(&target, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sql_err(&target, e))?;
    stable_plans(&conn, &target)?;
    Ok(conn)
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<AppendRequest>,
    head: watch::Sender<GlobalPosition>,
    tail: Arc<Tail>,
    target: String,
    window: Duration,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut window = CommitWindow::new(window);
    let mut versions = Versions::default();
    while let Some(first) = rx.blocking_recv() {
        group.push(first);
        window.gather(&mut rx, &mut group);
        let replies = commit_group(&conn, &target, &mut group, &mut versions);
        if versions.others_wrote {
            tail.share();
        }
        match replies {
            Ok((results, new_head)) => {
                tail.extend(committed(&mut group, &results));
                head.send_if_modified(|h| {
                    let moved = new_head > *h;
                    if moved {
                        *h = new_head;
                    }
                    moved
                });
                for (req, res) in group.drain(..).zip(results) {
                    let _ = req.reply.send(res.map(|w| w.outcome));
                }
            }
            Err(e) => {
                tracing::error!(store = %target, error = %e, "group commit failed");
                for req in group.drain(..) {
                    let _ = req.reply.send(Err(LogError::Backend {
                        target: target.clone(),
                        detail: format!("commit failed: {e}"),
                    }));
                }
            }
        }
    }
}

/// Group commit's wait for company ([`StoreOptions::commit_window`]).
#[derive(Debug)]
struct CommitWindow {
    window: Duration,
    /// Whether the last commit took several appends: appends are arriving together, and the
    /// next ones are worth waiting for. A writer working alone never waits.
    together: bool,
}

impl CommitWindow {
    fn new(window: Duration) -> Self {
        Self {
            window,
            together: false,
        }
    }

    /// Completes `group` (which holds the append that woke the writer) with what is queued, and
    /// while appends arrive together, with what arrives within the window.
    fn gather<T>(&mut self, rx: &mut mpsc::Receiver<T>, group: &mut Vec<T>) {
        take_queued(rx, group);
        if self.together && !self.window.is_zero() && group.len() < MAX_GROUP {
            std::thread::sleep(self.window);
            take_queued(rx, group);
        }
        self.together = group.len() > 1;
    }
}

/// Moves the appends already queued into `group`, up to [`MAX_GROUP`].
fn take_queued<T>(rx: &mut mpsc::Receiver<T>, group: &mut Vec<T>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(r) => group.push(r),
            Err(_) => break,
        }
    }
}

/// What one request of a group did.
struct Written {
    outcome: AppendOutcome,
    /// Its events were inserted now (not an idempotent retry of ones stored before).
    fresh: bool,
}

type GroupResult = (Vec<Result<Written, LogError>>, GlobalPosition);

/// The events a committed group inserted, in position order, taken out of its requests.
fn committed(
    group: &mut [AppendRequest],
    results: &[Result<Written, LogError>],
) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    for (req, res) in group.iter_mut().zip(results) {
        let Ok(Written {
            outcome,
            fresh: true,
        }) = res
        else {
            continue;
        };
        let records = std::mem::take(&mut req.events);
        let first_version = outcome.next_expected + 1 - records.len() as u64;
        for (i, record) in records.into_iter().enumerate() {
            out.push(StoredEvent {
                position: GlobalPosition(outcome.first_position.0 + i as u64),
                stream: req.stream.clone(),
                version: first_version + i as u64,
                record,
            });
        }
    }
    out
}

/// A commit (its fsync, mostly) this slow is logged: every append of the group, and every phone
/// or browser waiting on one, waited that long.
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs `group` in one transaction. Every statement, `BEGIN` and `COMMIT` included, is prepared
/// once and taken from the connection's cache: parsing SQL per commit was a third of the
/// writer's time.
fn commit_group(
    conn: &Connection,
    target: &str,
    group: &mut [AppendRequest],
    versions: &mut Versions,
) -> Result<GroupResult, rusqlite::Error> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let applied = versions
        .check(conn)
        .and_then(|()| apply_group(conn, target, group, versions))
        .and_then(|applied| {
        let started = std::time::Instant::now();
        conn.prepare_cached("COMMIT")?.execute([])?;
        let took = started.elapsed();
        if took >= SLOW_COMMIT {
            tracing::warn!(target: "ledgerline::log", took_ms = took.as_millis() as u64,
                appends = group.len(),
                "slow commit: the disk took this long to make a group durable, and every append in it waited");
        }
        Ok(applied)
    });
    match &applied {
        Ok(_) => versions.committed(),
        Err(_) => {
            // What the group knew of versions is forgotten with it.
            versions.forget();
            if !conn.is_autocommit() {
                // Nothing of the group is kept; the error goes to every request of it.
                let _ = conn
                    .prepare_cached("ROLLBACK")
                    .and_then(|mut s| s.execute([]));
            }
        }
    }
    applied
}

/// How many stream versions the writer remembers before it starts over (a call is a stream of
/// its own, so they would otherwise grow without bound).
const VERSIONS_KEPT: usize = 65_536;

/// The versions the writer's own commits left streams at, so that an append to a stream it
/// wrote to needs no lookup of the stream's current version. They hold while the file changes
/// only through this writer: `PRAGMA data_version` moves when another connection (another
/// process) commits to the file, and then they are forgotten ([`Versions::check`]).
#[derive(Debug, Default)]
struct Versions {
    known: HashMap<StreamId, u64>,
    /// What the group being committed appended, kept once it is committed.
    staged: HashMap<StreamId, u64>,
    /// `PRAGMA data_version` when `known` was last vouched for.
    data_version: Option<i64>,
    /// Another connection has committed to the file since this writer's first group.
    others_wrote: bool,
}

impl Versions {
    /// Starts a group: forgets everything if another connection committed since the last one.
    /// Run inside the group's `BEGIN IMMEDIATE`, so no other commit can come before its own.
    fn check(&mut self, conn: &Connection) -> Result<(), rusqlite::Error> {
        self.staged.clear();
        let now: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.data_version != Some(now) {
            self.known.clear();
            self.others_wrote |= self.data_version.is_some();
            self.data_version = Some(now);
        }
        Ok(())
    }

    /// The version of `stream` as the group or earlier commits left it, if known.
    fn get(&self, stream: &StreamId) -> Option<u64> {
        self.staged
            .get(stream)
            .or_else(|| self.known.get(stream))
            .copied()
    }

    /// Notes that the group appended to `stream`, leaving it at `version`.
    fn stage(&mut self, stream: &StreamId, version: u64) {
        self.staged.insert(stream.clone(), version);
    }

    /// Keeps what the committed group appended.
    fn committed(&mut self) {
        if self.known.len() + self.staged.len() > VERSIONS_KEPT {
            self.known.clear();
        }
        self.known.extend(self.staged.drain());
    }

    fn forget(&mut self) {
        self.known.clear();
        self.staged.clear();
        // Checked again from scratch; whether others wrote is not forgotten.
        self.data_version = None;
    }
}

fn apply_group(
    tx: &Connection,
    target: &str,
    group: &mut [AppendRequest],
    versions: &mut Versions,
) -> Result<GroupResult, rusqlite::Error> {
    let mut head: i64 = tx
        .prepare_cached("SELECT coalesce(max(position), 0) FROM events")?
        .query_row([], |r| r.get(0))?;
    let mut results = Vec::with_capacity(group.len());
    for req in group.iter_mut() {
        // A request of one event writes one row: SQLite undoes a failed statement by itself, so
        // only a request of several needs a savepoint to be undone whole. The savepoint
        // statements are prepared once, not parsed per request.
        let guarded = req.events.len() > 1;
        if guarded {
            tx.prepare_cached("SAVEPOINT request")?.execute([])?;
        }
        let before = head;
        let known = versions.get(&req.stream);
        match apply(tx, target, &mut head, req, known) {
            Ok(out) => {
                if guarded {
                    tx.prepare_cached("RELEASE request")?.execute([])?;
                }
                if out.fresh {
                    versions.stage(&req.stream, out.outcome.next_expected);
                }
                results.push(Ok(out));
            }
            Err(e) => {
                if guarded {
                    // Undoes this request only.
                    tx.prepare_cached("ROLLBACK TO request")?.execute([])?;
                    tx.prepare_cached("RELEASE request")?.execute([])?;
                }
                head = before;
                results.push(Err(e));
            }
        }
    }
    Ok((results, GlobalPosition(head as u64)))
}

/// Appends `req` at `*head`. With the stream's version `known` (the writer's own commits left
/// it there) and an expected version it admits, the events are simply inserted: that is nearly
/// every append of a running engine. So is the first append to a new stream (`NoStream`):
/// versions start at 1 without gaps, so inserting version 1 fails exactly when the stream
/// exists. Only when the insert is refused (an id already stored: a retry or a conflict; or the
/// stream exists) or the version is not known does it look the request up.
fn apply(
    conn: &Connection,
    target: &str,
    head: &mut i64,
    req: &AppendRequest,
    known: Option<u64>,
) -> Result<Written, LogError> {
    let new_stream = matches!(
        req.expected,
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0)
    );
    let guess = known.or(new_stream.then_some(0));
    if let Some(current) = guess.filter(|v| req.expected.admits(*v)) {
        match insert(conn, head, req, current as i64) {
            Err(Refused { index: 0, err }) if is_constraint(&err) => {}
            other => return other.map_err(|r| r.into_error(conn, target, req)),
        }
    }
    apply_checked(conn, target, head, req)
}

/// [`apply`] with every check made against the file: the idempotency of a retry, then the
/// stream's version.
fn apply_checked(
    conn: &Connection,
    target: &str,
    head: &mut i64,
    req: &AppendRequest,
) -> Result<Written, LogError> {
    let stream = &req.stream;
    let e = |err| sql_err(target, err);
    // Idempotent retry: the first id is already stored.
    let first_id = req.events[0].event_id;
    let known: Option<i64> = conn
        .prepare_cached("SELECT position FROM events WHERE event_id = ?1")
        .and_then(|mut s| {
            s.query_row(params![first_id.as_uuid().as_bytes()], |r| r.get(0))
                .optional()
        })
        .map_err(e)?;
    if known.is_some() {
        let mut stmt = conn
            .prepare_cached(
                "SELECT event_id, stream_id, version, position FROM events WHERE event_id = ?1",
            )
            .map_err(e)?;
        let mut existing = Vec::with_capacity(req.events.len());
        for ev in &req.events {
            let row = stmt
                .query_row(params![ev.event_id.as_uuid().as_bytes()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .optional()
                .map_err(e)?;
            if let Some((id, s, v, p)) = row {
                existing.push((
                    uuid_col(target, p, &id).map(EventId::from_uuid)?,
                    parse_stream(target, p, &s)?,
                    v as u64,
                    GlobalPosition(p as u64),
                ));
            }
        }
        return idempotent_outcome(stream, &req.events, &existing).map(|outcome| Written {
            outcome,
            fresh: false,
        });
    }
    let current: i64 = conn
        .prepare_cached("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?1")
        .and_then(|mut s| s.query_row(params![stream.as_str()], |r| r.get(0)))
        .map_err(e)?;
    if !req.expected.admits(current as u64) {
        return Err(LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected: req.expected,
            actual: CurrentVersion(current as u64),
        });
    }
    insert(conn, head, req, current).map_err(|r| r.into_error(conn, target, req))
}

/// Why [`insert`] stopped, and at which of the request's events. A refusal of the first row
/// leaves nothing of the request behind (a failed statement undoes itself); a later one leaves
/// the rows before it, which the request's savepoint undoes.
struct Refused {
    index: usize,
    err: rusqlite::Error,
}

impl Refused {
    /// The error the request gets: an `EventIdConflict` when the refused row's id is stored
    /// already, else the database's error.
    fn into_error(self, conn: &Connection, target: &str, req: &AppendRequest) -> LogError {
        let Refused { index, err } = self;
        let event_id = req.events[index].event_id;
        let holder = if is_constraint(&err) {
            conn.query_row(
                "SELECT stream_id, version FROM events WHERE event_id = ?1",
                params![event_id.as_uuid().as_bytes()],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
            )
            .optional()
        } else {
            Ok(None)
        };
        match holder {
            Ok(Some((s, v))) => match parse_stream(target, 0, &s) {
                Ok(existing_stream) => LogError::EventIdConflict {
                    event_id,
                    existing_stream,
                    existing_version: v as u64,
                },
                Err(e) => e,
            },
            Ok(None) => sql_err(target, err),
            Err(e) => sql_err(target, e),
        }
    }
}

fn is_constraint(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ffi::ErrorCode::ConstraintViolation)
    )
}

/// Inserts `req`'s events after version `current` of the stream, at positions after `*head`.
fn insert(
    conn: &Connection,
    head: &mut i64,
    req: &AppendRequest,
    current: i64,
) -> Result<Written, Refused> {
    let stream = &req.stream;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, \
             occurred_at, tenant, causation_id, correlation_id, payload, checksum) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(|err| Refused { index: 0, err })?;
    let first_position = *head + 1;
    for (i, ev) in req.events.iter().enumerate() {
        let position = first_position + i as i64;
        let version = current + 1 + i as i64;
        let sum = checksum(stream, version as u64, ev);
        insert
            .execute(params![
                position,
                stream.as_str(),
                version,
                ev.event_id.as_uuid().as_bytes(),
                ev.event_type,
                ev.schema_version,
                ev.occurred_at.timestamp_micros(),
                ev.tenant.as_ref().map(|t| t.as_str()),
                ev.causation_id.map(|c| c.as_uuid().into_bytes()),
                ev.correlation_id.map(|c| c.as_uuid().into_bytes()),
                ev.payload,
                sum as i64,
            ])
            .map_err(|err| Refused { index: i, err })?;
    }
    let n = req.events.len() as i64;
    *head += n;
    Ok(Written {
        outcome: AppendOutcome {
            first_position: GlobalPosition(first_position as u64),
            last_position: GlobalPosition(*head as u64),
            next_expected: (current + n) as u64,
        },
        fresh: true,
    })
}

fn corrupt(target: &str, position: i64, detail: impl fmt::Display) -> LogError {
    LogError::Corrupt {
        target: target.to_owned(),
        detail: format!("event at position {position}: {detail}"),
    }
}

fn uuid_col(target: &str, position: i64, bytes: &[u8]) -> Result<Uuid, LogError> {
    Uuid::from_slice(bytes).map_err(|_| corrupt(target, position, "an id column is not 16 bytes"))
}

fn parse_stream(target: &str, position: i64, s: &str) -> Result<StreamId, LogError> {
    StreamId::parse(s).map_err(|e| corrupt(target, position, e))
}

fn row_to_event(target: &str, r: &rusqlite::Row<'_>) -> Result<StoredEvent, LogError> {
    let position: i64 = r.get(0).map_err(|e| sql_err(target, e))?;
    let bad = |e: rusqlite::Error| corrupt(target, position, e);
    let stream = parse_stream(
        target,
        position,
        r.get_ref(1).and_then(|v| Ok(v.as_str()?)).map_err(bad)?,
    )?;
    let version: i64 = r.get(2).map_err(bad)?;
    let event_id = EventId::from_uuid(uuid_col(
        target,
        position,
        r.get_ref(3).and_then(|v| Ok(v.as_blob()?)).map_err(bad)?,
    )?);
    let occurred_micros: i64 = r.get(6).map_err(bad)?;
    let occurred_at = chrono::DateTime::from_timestamp_micros(occurred_micros)
        .ok_or_else(|| corrupt(target, position, "occurred_at is out of range"))?;
    let tenant = match r
        .get_ref(7)
        .map_err(bad)?
        .as_str_or_null()
        .map_err(|e| bad(e.into()))?
    {
        Some(t) => Some(TenantId::parse(t).map_err(|e| corrupt(target, position, e))?),
        None => None,
    };
    let opt_uuid = |i: usize| -> Result<Option<Uuid>, LogError> {
        match r
            .get_ref(i)
            .map_err(bad)?
            .as_blob_or_null()
            .map_err(|e| bad(e.into()))?
        {
            Some(b) => Ok(Some(uuid_col(target, position, b)?)),
            None => Ok(None),
        }
    };
    let record = EventRecord {
        event_id,
        event_type: r.get(4).map_err(bad)?,
        schema_version: r.get(5).map_err(bad)?,
        occurred_at,
        tenant,
        causation_id: opt_uuid(8)?.map(EventId::from_uuid),
        correlation_id: opt_uuid(9)?.map(CorrelationId::from_uuid),
        payload: r.get(10).map_err(bad)?,
    };
    let stored_sum: i64 = r.get(11).map_err(bad)?;
    let version = version as u64;
    if checksum(&stream, version, &record) as i64 != stored_sum {
        return Err(corrupt(
            target,
            position,
            "checksum mismatch (the record was altered or torn)",
        ));
    }
    Ok(StoredEvent {
        position: GlobalPosition(position as u64),
        stream,
        version,
        record,
    })
}

fn read_all_blocking(
    conn: &Connection,
    target: &str,
    after: GlobalPosition,
    max: usize,
) -> Result<Vec<StoredEvent>, LogError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        ))
        .map_err(|e| sql_err(target, e))?;
    let mut rows = stmt
        .query(params![after.0 as i64, max as i64])
        .map_err(|e| sql_err(target, e))?;
    // Grown as rows come: most reads of a follower find a handful of new events, and a
    // capacity of `max` would be a megabyte allocated (and faulted in) per read for nothing.
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(|e| sql_err(target, e))? {
        out.push(row_to_event(target, r)?);
    }
    Ok(out)
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError> {
        validate_append(stream, &events)?;
        for ev in &mut events {
            ev.occurred_at = to_micros(ev.occurred_at);
        }
        let closed = || LogError::Closed {
            target: describe(&self.path),
        };
        let writer = self.writer.as_ref().ok_or_else(closed)?;
        let (reply, rx) = oneshot::channel();
        writer
            .send(AppendRequest {
                stream: stream.clone(),
                expected,
                events,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let stream = stream.clone();
        self.with_reader(move |conn, target| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SELECT_COLUMNS} FROM events WHERE stream_id = ?1 AND version > ?2 \
                     ORDER BY version LIMIT ?3"
                ))
                .map_err(|e| sql_err(target, e))?;
            let mut rows = stmt
                .query(params![stream.as_str(), after as i64, max as i64])
                .map_err(|e| sql_err(target, e))?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(|e| sql_err(target, e))? {
                out.push(row_to_event(target, r)?);
            }
            Ok(out)
        })
        .await
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        if let Some(events) = self.tail.after(after, max) {
            return Ok(events);
        }
        self.with_reader(move |conn, target| read_all_blocking(conn, target, after, max))
            .await
    }

    async fn head(&self) -> Result<GlobalPosition, LogError> {
        self.with_reader(|conn, target| {
            conn.query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|p| GlobalPosition(p as u64))
            .map_err(|e| sql_err(target, e))
        })
        .await
    }

    fn wake_ups(&self) -> watch::Receiver<GlobalPosition> {
        self.head.subscribe()
    }

    fn describe(&self) -> String {
        describe(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `n` values 10 ms apart from another thread, the first at once.
    fn trickle(tx: mpsc::Sender<u32>, n: u32) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for i in 0..n {
                tx.blocking_send(i).unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    }

    fn next_group(rx: &mut mpsc::Receiver<u32>, window: &mut CommitWindow) -> Vec<u32> {
        let mut group = vec![rx.blocking_recv().unwrap()];
        window.gather(rx, &mut group);
        group
    }

    #[test]
    fn appends_arriving_together_wait_for_each_other_and_a_lone_one_does_not() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut window = CommitWindow::new(Duration::from_millis(500));
        // Alone: the first append is committed by itself, straight away.
        let started = std::time::Instant::now();
        let sender = trickle(tx.clone(), 1);
        assert_eq!(next_group(&mut rx, &mut window), [0]);
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "a lone append waited"
        );
        sender.join().unwrap();
        // Two queued at once: the writer is busy, so the commit after takes what trickles in
        // within the window (five appends 10 ms apart) in one group.
        tx.blocking_send(7).unwrap();
        tx.blocking_send(8).unwrap();
        assert_eq!(next_group(&mut rx, &mut window), [7, 8]);
        let sender = trickle(tx.clone(), 5);
        assert_eq!(next_group(&mut rx, &mut window), [0, 1, 2, 3, 4]);
        sender.join().unwrap();
        // No window: each commit takes only what is queued.
        let mut none = CommitWindow::new(Duration::ZERO);
        tx.blocking_send(1).unwrap();
        tx.blocking_send(2).unwrap();
        assert_eq!(next_group(&mut rx, &mut none), [1, 2]);
        let sender = trickle(tx, 3);
        assert_eq!(next_group(&mut rx, &mut none), [0]);
        sender.join().unwrap();
    }
}
