//! PostgreSQL backend: `tokio-postgres` with a `deadpool-postgres` pool, schema from
//! `migrations/postgres` applied by refinery at start.
//!
//! # Positions
//! Global positions come from the one-row `event_head` counter, whose row lock every append holds
//! until it commits. Appends are therefore serialised, positions are gap-free, and position order
//! is commit order: a reader that sees position N has already been able to see every position
//! below it, so `WHERE position > cursor` never skips a late commit (a bare `bigserial` would;
//! see `rust-deps.md` §7). A rolled-back append rolls the counter back with it.
//!
//! # The append path
//! Everything an append does — take the head lock, check idempotency by event id, check the
//! expected version, insert all rows with explicit positions from UNNESTed arrays, bump the
//! counter and `pg_notify` — is one call of the plpgsql function `ledgerline_append` (defined in
//! the migration), so an uncontended append is **one round trip** and one commit.
//!
//! Appends from this process go through one writer task that groups whatever requests are
//! queued into one transaction: `BEGIN`, one `ledgerline_append` call per request and `COMMIT`
//! are pipelined in a single round trip, so concurrent writers share one WAL flush. A request
//! that fails a check (wrong version, id conflict) does not raise: the function reports it and
//! writes nothing, so it cannot spoil the others. If a statement does raise (e.g. a payload the
//! server rejects as JSON), the whole group rolls back and each request is retried on its own so
//! only the offending one fails.
//!
//! Checksums cover the stream version, which the database assigns. For `NoStream` and
//! `Exact(n)` the versions are known in advance. For `Any` the writer assumes the version it last
//! saw for the stream (or 0 for one it has not seen); if the stream is elsewhere (another process
//! appended, or the cache is cold) the function writes nothing and reports the actual version,
//! and the writer redoes the append in an explicit transaction that takes the head lock first and
//! reads the version under it (five round trips, but it cannot be overtaken).
//!
//! Measured on the 2-core development machine (release build, `tests::pg::throughput`): about
//! 3,000 single-event appends/s from one writer and 5,000/s from eight; 60,000–90,000 events/s
//! at 100 events per append; read-all about 700,000 events/s decoded and checksummed;
//! append→delivered p99 about 1.3 ms.
//!
//! # Query plans
//! Connections are opened with `enable_seqscan=off` (see `connect`), so the generic plans
//! PostgreSQL caches per connection stay on their indexes however small the table was when they
//! were made.
//!
//! # Wake-ups
//! One dedicated connection (outside the pool) `LISTEN`s on `ledgerline_events` and turns each
//! notification into the `wake_ups` watch channel. It reconnects with backoff and sends a wake-up
//! after every (re)connect, because notifications sent while it was away are lost. Appends made
//! through this handle also advance the channel directly, without waiting for the notification.
//!
//! # Errors
//! A refused or dropped connection, a pool timeout, or a server shutting down is
//! `LogError::Unreachable` (transient: subscriptions retry). Everything else the server reports is
//! `Backend` with its message, except data errors in an append (`InvalidAppend`) and a missing
//! schema (`Migration`).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use futures_util::future::{MaybeDone, maybe_done, poll_fn};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::DbError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Config, NoTls, Row};
use uuid::Uuid;

use super::store_url::redact;
use super::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoreOptions, StoredEvent, checksum, idempotent_outcome, to_micros, validate_append,
};
use crate::ids::{CorrelationId, EventId, StreamId, TenantId};

mod embedded {
    #![allow(unreachable_pub, missing_debug_implementations)]
    refinery::embed_migrations!("../migrations/postgres");
}

/// The NOTIFY channel `ledgerline_append` signals on.
const CHANNEL: &str = "ledgerline_events";
/// Connect timeout used when the URL does not set `connect_timeout`.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection before the store counts as unreachable.
const POOL_WAIT: Duration = Duration::from_secs(30);
/// Requests and events one grouped append transaction may carry.
const MAX_GROUP_REQUESTS: usize = 128;
const MAX_GROUP_EVENTS: usize = 10_000;
/// Most events a read reserves room for before it has seen them.
const READ_PREALLOCATE: usize = 4096;
/// Queued append requests before `append` waits for room.
const QUEUE_DEPTH: usize = 1024;
/// Streams whose last version the writer remembers (for `Any` appends) before it forgets all.
const VERSION_CACHE_LIMIT: usize = 100_000;
/// Key of the session advisory lock that serialises concurrent migrations (the projections'
/// schema takes it too).
pub const MIGRATION_LOCK_KEY: i64 = 0x4c65_6467_6572_6c6e; // "Ledgerln"
/// How long `connect` waits for another process's migration to finish.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);
/// The listener checks its connection this often, to notice a peer that vanished silently.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(15);

const APPEND_SQL: &str = "SELECT kind, o_event_id, o_stream_id, o_version, o_position \
     FROM ledgerline_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
const HEAD_SQL: &str = "SELECT position FROM event_head WHERE id = 1";
const LOCK_HEAD_SQL: &str = "SELECT position FROM event_head WHERE id = 1 FOR UPDATE";
const STREAM_VERSION_SQL: &str =
    "SELECT coalesce(max(version), 0)::bigint FROM events WHERE stream_id = $1";
const COLUMNS: &str = "position, stream_id, version, event_id, event_type, schema_version, \
     occurred_at, tenant, causation_id, correlation_id, payload::text, checksum";

fn read_all_sql() -> String {
    format!("SELECT {COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2")
}

fn read_stream_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 \
         ORDER BY version LIMIT $3"
    )
}

/// The PostgreSQL backend. Cheap to share behind an `Arc`; dropping it stops its background
/// tasks (appends already queued are still written).
pub struct PostgresLog {
    shared: Arc<Shared>,
    writer: mpsc::Sender<AppendRequest>,
    listener: JoinHandle<()>,
    read_all_sql: String,
    read_stream_sql: String,
}

/// What the pool, the writer task and the listener share.
struct Shared {
    pool: Pool,
    /// `postgres://user@host:port/db`, never the password.
    target: String,
    head: watch::Sender<GlobalPosition>,
}

impl fmt::Debug for PostgresLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLog")
            .field("target", &self.shared.target)
            .field("head_hint", &*self.shared.head.borrow())
            .finish()
    }
}

impl Drop for PostgresLog {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl PostgresLog {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`, or the
    /// key=value form), checks that it answers, applies pending migrations when
    /// `options.migrate`, and starts the writer and the notification listener.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<PostgresLog, LogError> {
        let mut config = parse_config(url)?;
        let connect_timeout = *config
            .get_connect_timeout()
            .unwrap_or(&DEFAULT_CONNECT_TIMEOUT);
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("ledgerline");
        }
        // Every query this backend runs has an index made for it. Connections are long-lived and
        // PostgreSQL caches generic plans per connection (prepared statements and the statements
        // inside `ledgerline_append`): a plan made while the table was still small would be a
        // sequential scan, and would stay one as the log grows to millions of rows. Ruling out
        // sequential scans keeps every cached plan on its index whatever the table size was.
        let session_options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} -c enable_seqscan=off"),
            _ => "-c enable_seqscan=off".to_owned(),
        };
        config.options(session_options);
        // Notice a server that vanished without closing the connection (a network cut) within
        // a minute rather than the two hours of the TCP defaults, unless the URL says otherwise.
        if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(60));
        }
        let target = describe_config(&config);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(connect_timeout + Duration::from_secs(1)))
            .wait_timeout(Some(POOL_WAIT))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| LogError::Backend {
                target: target.clone(),
                detail: format!("cannot build the connection pool: {e}"),
            })?;
        let shared = Arc::new(Shared {
            pool,
            target,
            head: watch::channel(GlobalPosition::START).0,
        });

        let mut conn = shared.conn().await?;
        if options.migrate {
            shared.migrate(&mut conn).await?;
        }
        let head = shared.head_on(&conn).await?;
        drop(conn);
        shared.advance(head);

        let listener = tokio::spawn(listen_loop(
            config,
            shared.head.clone(),
            shared.target.clone(),
        ));
        let (writer, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(Writer::new(shared.clone()).run(requests));
        Ok(PostgresLog {
            shared,
            writer,
            listener,
            read_all_sql: read_all_sql(),
            read_stream_sql: read_stream_sql(),
        })
    }

    /// Test hook for the out-of-order-commit test: appends exactly like [`EventLog::append`] but
    /// in its own transaction (not through the grouping writer), and keeps that transaction open
    /// for `hold` after the positions are allocated and the rows inserted, before COMMIT. While
    /// it is held, every other append waits for the head lock.
    #[doc(hidden)]
    pub async fn append_holding(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<EventRecord>,
        hold: Duration,
    ) -> Result<AppendOutcome, LogError> {
        validate_append(stream, &events)?;
        normalise(&mut events);
        let mut conn = self.shared.conn().await?;
        let outcome = self
            .shared
            .append_locked(&mut conn, stream, expected, &events, hold)
            .await;
        if let Ok(o) = &outcome {
            self.shared.advance(o.last_position);
        }
        outcome
    }

    /// Runs a read query and decodes its rows as they arrive, so decoding on this side overlaps
    /// with the server producing the rest.
    async fn read(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        expected_rows: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let conn = self.shared.conn().await?;
        let stmt = conn
            .prepare_cached(sql)
            .await
            .map_err(|e| self.shared.error(&e))?;
        let rows = conn
            .query_raw(&stmt, params.iter().copied())
            .await
            .map_err(|e| self.shared.error(&e))?;
        let mut rows = std::pin::pin!(rows);
        let mut seen = Recent::default();
        let mut events = Vec::with_capacity(expected_rows.min(READ_PREALLOCATE));
        while let Some(row) = rows.try_next().await.map_err(|e| self.shared.error(&e))? {
            events.push(decode_row(&self.shared.target, &row, &mut seen)?);
        }
        Ok(events)
    }
}

#[async_trait]
impl EventLog for PostgresLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError> {
        validate_append(stream, &events)?;
        normalise(&mut events);
        let (reply, outcome) = oneshot::channel();
        let request = AppendRequest {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        let closed = || LogError::Closed {
            target: self.shared.target.clone(),
        };
        self.writer.send(request).await.map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let Ok(after) = i64::try_from(after) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.read(
            &self.read_stream_sql,
            &[&stream.as_str(), &after, &limit],
            max,
        )
        .await
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let Ok(after) = i64::try_from(after.0) else {
            return Ok(Vec::new());
        };
        if max == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        self.read(&self.read_all_sql, &[&after, &limit], max).await
    }

    async fn head(&self) -> Result<GlobalPosition, LogError> {
        let conn = self.shared.conn().await?;
        self.shared.head_on(&conn).await
    }

    fn wake_ups(&self) -> watch::Receiver<GlobalPosition> {
        self.shared.head.subscribe()
    }

    fn describe(&self) -> String {
        self.shared.target.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Connection set-up and errors

fn parse_config(url: &str) -> Result<Config, LogError> {
    let invalid = |reason: String| LogError::InvalidUrl {
        url: redact(url),
        reason,
    };
    let config: Config = url
        .trim()
        .parse()
        .map_err(|e: tokio_postgres::Error| invalid(error_chain(&e)))?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(invalid(
            "a PostgreSQL URL needs a host, e.g. postgres://postgres@127.0.0.1:5432/ledgerline"
                .into(),
        ));
    }
    if matches!(config.get_ssl_mode(), SslMode::Require) {
        return Err(invalid(
            "sslmode=require is not supported: this build connects without TLS (use sslmode=disable or prefer, or a local or tunnelled connection)".into(),
        ));
    }
    Ok(config)
}

/// `postgres://user@host:port/db` for messages and `describe()`; never the password.
fn describe_config(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => config
            .get_hostaddrs()
            .first()
            .map(|a| a.to_string())
            .unwrap_or_default(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}

/// An error and its sources, joined with ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(db) = s.downcast_ref::<DbError>() {
            out.push_str(": ");
            out.push_str(&db_message(db));
            break;
        }
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The server's message with its detail and hint, on one line.
fn db_message(db: &DbError) -> String {
    let mut out = db.message().to_owned();
    if let Some(d) = db.detail() {
        out.push_str(" (");
        out.push_str(d);
        out.push(')');
    }
    if let Some(h) = db.hint() {
        out.push_str("; hint: ");
        out.push_str(h);
    }
    out
}

impl Shared {
    fn unreachable(&self, detail: String) -> LogError {
        LogError::Unreachable {
            target: self.target.clone(),
            detail,
        }
    }

    /// Classifies a driver error (see the module documentation).
    fn error(&self, e: &tokio_postgres::Error) -> LogError {
        if let Some(db) = e.as_db_error() {
            let code = db.code().code();
            let message = db_message(db);
            return match code {
                c if c.starts_with("08") => self.unreachable(message),
                // admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now,
                // query_canceled, too_many_connections.
                "57P01" | "57P02" | "57P03" | "57014" | "53300" => self.unreachable(message),
                "3D000" => LogError::Backend {
                    target: self.target.clone(),
                    detail: format!(
                        "{message}; create it first (e.g. `createdb`) or name an existing database in the store URL"
                    ),
                },
                "28000" | "28P01" => LogError::Backend {
                    target: self.target.clone(),
                    detail: format!(
                        "the server refused the login: {message}; check the user and password in the store URL"
                    ),
                },
                "42P01" | "42883" => LogError::Migration {
                    target: self.target.clone(),
                    detail: format!(
                        "the event log schema is missing or incomplete ({message}); open the store with migrations enabled"
                    ),
                },
                _ => LogError::Backend {
                    target: self.target.clone(),
                    detail: format!("{message} [SQLSTATE {code}]"),
                },
            };
        }
        let has_io_source = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        let text = e.to_string();
        if e.is_closed()
            || has_io_source
            || text.starts_with("error connecting")
            || text.starts_with("error communicating")
            || text.starts_with("timeout")
        {
            self.unreachable(error_chain(e))
        } else {
            LogError::Backend {
                target: self.target.clone(),
                detail: error_chain(e),
            }
        }
    }

    /// Like [`Shared::error`], but data errors the server raises while appending (a payload that
    /// is not JSON, a NUL byte in a text field, a timestamp out of range) name the append.
    fn append_error(&self, stream: &StreamId, e: &tokio_postgres::Error) -> LogError {
        match e.as_db_error() {
            Some(db) if db.code().code().starts_with("22") || db.code().code() == "23514" => {
                LogError::InvalidAppend {
                    stream: stream.clone(),
                    reason: format!("the database refused it: {}", db_message(db)),
                }
            }
            _ => self.error(e),
        }
    }

    async fn conn(&self) -> Result<Object, LogError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.error(&e),
            PoolError::Timeout(TimeoutType::Wait) => self.unreachable(format!(
                "every pooled connection stayed busy for {} s",
                POOL_WAIT.as_secs()
            )),
            PoolError::Timeout(_) => {
                self.unreachable("the server did not answer in time".to_owned())
            }
            PoolError::Closed => LogError::Closed {
                target: self.target.clone(),
            },
            other => LogError::Backend {
                target: self.target.clone(),
                detail: other.to_string(),
            },
        })
    }

    async fn migrate(&self, conn: &mut Object) -> Result<(), LogError> {
        let failed = |detail: String| LogError::Migration {
            target: self.target.clone(),
            detail,
        };
        // Two processes starting at once must not both create the schema.
        let deadline = Instant::now() + MIGRATION_LOCK_WAIT;
        loop {
            let row = conn
                .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
                .await
                .map_err(|e| self.error(&e))?;
            if row.try_get::<_, bool>(0).map_err(|e| self.error(&e))? {
                break;
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "another connection has held the migration lock (advisory lock {MIGRATION_LOCK_KEY}) for {} s; is a migration stuck?",
                    MIGRATION_LOCK_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let client: &mut tokio_postgres::Client = conn;
        let result = embedded::migrations::runner().run_async(client).await;
        let unlocked = conn
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
            .await;
        result.map_err(|e| failed(error_chain(&e)))?;
        unlocked.map_err(|e| self.error(&e))?;
        Ok(())
    }

    async fn head_on(&self, conn: &Object) -> Result<GlobalPosition, LogError> {
        let stmt = conn
            .prepare_cached(HEAD_SQL)
            .await
            .map_err(|e| self.error(&e))?;
        let row = conn
            .query_opt(&stmt, &[])
            .await
            .map_err(|e| self.error(&e))?;
        let Some(row) = row else {
            return Err(LogError::Corrupt {
                target: self.target.clone(),
                detail: "the event_head row is missing".into(),
            });
        };
        let head: i64 = row.try_get(0).map_err(|e| self.error(&e))?;
        to_position(head).ok_or_else(|| LogError::Corrupt {
            target: self.target.clone(),
            detail: format!("event_head holds a negative position {head}"),
        })
    }

    /// Moves the wake-up hint forward (never back); receivers wake only on a new maximum.
    fn advance(&self, to: GlobalPosition) {
        self.head.send_if_modified(|h| {
            if to > *h {
                *h = to;
                true
            } else {
                false
            }
        });
    }

    /// One append in its own explicit transaction that takes the head lock before reading the
    /// stream's version: the path for `Any` appends whose assumed version went stale, and for
    /// `append_holding`. Holds the transaction open for `hold` before committing.
    async fn append_locked(
        &self,
        conn: &mut Object,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[EventRecord],
        hold: Duration,
    ) -> Result<AppendOutcome, LogError> {
        let lock = conn
            .prepare_cached(LOCK_HEAD_SQL)
            .await
            .map_err(|e| self.error(&e))?;
        let version = conn
            .prepare_cached(STREAM_VERSION_SQL)
            .await
            .map_err(|e| self.error(&e))?;
        let append = conn
            .prepare_cached(APPEND_SQL)
            .await
            .map_err(|e| self.error(&e))?;
        let tx = conn.transaction().await.map_err(|e| self.error(&e))?;
        tx.query(&lock, &[]).await.map_err(|e| self.error(&e))?;
        let assumed = match expected {
            ExpectedVersion::Any => {
                let row = tx
                    .query_one(&version, &[&stream.as_str()])
                    .await
                    .map_err(|e| self.error(&e))?;
                let v: i64 = row.try_get(0).map_err(|e| self.error(&e))?;
                u64::try_from(v).unwrap_or(0)
            }
            other => assumed_version(other, 0),
        };
        let params = AppendParams::new(stream, expected, assumed, events);
        let rows = tx
            .query(&append, &params.refs())
            .await
            .map_err(|e| self.append_error(stream, &e))?;
        let verdict = verdict(&self.target, stream, expected, events, &rows)?;
        if !hold.is_zero() {
            tokio::time::sleep(hold).await;
        }
        tx.commit().await.map_err(|e| self.error(&e))?;
        match verdict {
            Verdict::Appended(outcome) => Ok(outcome),
            Verdict::Refused(e) => Err(e),
            Verdict::Stale(actual) => Err(LogError::Backend {
                target: self.target.clone(),
                detail: format!(
                    "stream {stream} moved to version {actual} while the head lock was held"
                ),
            }),
        }
    }
}

fn to_position(p: i64) -> Option<GlobalPosition> {
    u64::try_from(p).ok().map(GlobalPosition)
}

/// Timestamps are stored with microsecond precision; the checksum is computed over what is
/// stored.
fn normalise(events: &mut [EventRecord]) {
    for e in events {
        e.occurred_at = to_micros(e.occurred_at);
    }
}

fn expected_param(expected: ExpectedVersion) -> i64 {
    match expected {
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(n) => i64::try_from(n).unwrap_or(i64::MAX),
        ExpectedVersion::Any => -1,
    }
}

/// The current version an append's checksums are computed for: the expected one when there is
/// one, otherwise `guess`.
fn assumed_version(expected: ExpectedVersion, guess: u64) -> u64 {
    match expected {
        ExpectedVersion::NoStream => 0,
        ExpectedVersion::Exact(n) => n,
        ExpectedVersion::Any => guess,
    }
}

// ---------------------------------------------------------------------------------------------
// Append: parameters and the function's answer

/// The twelve parameters of `ledgerline_append`, borrowed from the request.
struct AppendParams<'a> {
    stream: &'a str,
    expected: i64,
    assumed: i64,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    occurred_at: Vec<DateTime<Utc>>,
    tenants: Vec<Option<&'a str>>,
    causation: Vec<Option<Uuid>>,
    correlation: Vec<Option<Uuid>>,
    payloads: Vec<&'a str>,
    checksums: Vec<i64>,
}

impl<'a> AppendParams<'a> {
    fn new(
        stream: &'a StreamId,
        expected: ExpectedVersion,
        assumed: u64,
        events: &'a [EventRecord],
    ) -> Self {
        let n = events.len();
        let mut p = AppendParams {
            stream: stream.as_str(),
            expected: expected_param(expected),
            assumed: i64::try_from(assumed).unwrap_or(i64::MAX),
            ids: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            schema_versions: Vec::with_capacity(n),
            occurred_at: Vec::with_capacity(n),
            tenants: Vec::with_capacity(n),
            causation: Vec::with_capacity(n),
            correlation: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            checksums: Vec::with_capacity(n),
        };
        for (i, e) in events.iter().enumerate() {
            let version = assumed.saturating_add(i as u64 + 1);
            p.ids.push(e.event_id.as_uuid());
            p.types.push(&e.event_type);
            p.schema_versions.push(i32::from(e.schema_version));
            p.occurred_at.push(e.occurred_at);
            p.tenants.push(e.tenant.as_ref().map(TenantId::as_str));
            p.causation.push(e.causation_id.map(|c| c.as_uuid()));
            p.correlation.push(e.correlation_id.map(|c| c.as_uuid()));
            p.payloads.push(&e.payload);
            p.checksums.push(i64::from(checksum(stream, version, e)));
        }
        p
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.stream,
            &self.expected,
            &self.assumed,
            &self.ids,
            &self.types,
            &self.schema_versions,
            &self.occurred_at,
            &self.tenants,
            &self.causation,
            &self.correlation,
            &self.payloads,
            &self.checksums,
        ]
    }
}

/// What `ledgerline_append` answered.
enum Verdict {
    /// Written (or, for a faithful retry, written before).
    Appended(AppendOutcome),
    /// Nothing written; the caller gets this error.
    Refused(LogError),
    /// `Any` append computed for a version the stream is no longer at (the actual one).
    Stale(u64),
}

fn verdict(
    target: &str,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[EventRecord],
    rows: &[Row],
) -> Result<Verdict, LogError> {
    let bad = |detail: String| LogError::Backend {
        target: target.to_owned(),
        detail: format!("unexpected answer from ledgerline_append: {detail}"),
    };
    let Some(first) = rows.first() else {
        return Err(bad("no rows".into()));
    };
    let kind: i16 = first.try_get(0).map_err(|e| bad(error_chain(&e)))?;
    let version = |row: &Row| -> Result<u64, LogError> {
        let v: i64 = row.try_get(3).map_err(|e| bad(error_chain(&e)))?;
        u64::try_from(v).map_err(|_| bad(format!("negative version {v}")))
    };
    let stored = |row: &Row| -> Result<(EventId, StreamId, u64, GlobalPosition), LogError> {
        let id: Uuid = row.try_get(1).map_err(|e| bad(error_chain(&e)))?;
        let s: &str = row.try_get(2).map_err(|e| bad(error_chain(&e)))?;
        let s = StreamId::parse(s).map_err(|e| bad(e.to_string()))?;
        let p: i64 = row.try_get(4).map_err(|e| bad(error_chain(&e)))?;
        let p = to_position(p).ok_or_else(|| bad(format!("negative position {p}")))?;
        Ok((EventId::from_uuid(id), s, version(row)?, p))
    };
    Ok(match kind {
        0 => {
            let p: i64 = first.try_get(4).map_err(|e| bad(error_chain(&e)))?;
            let last = to_position(p).ok_or_else(|| bad(format!("negative position {p}")))?;
            let n = events.len() as u64;
            let first_position = (last.0 + 1)
                .checked_sub(n)
                .ok_or_else(|| bad(format!("last position {last} for {n} events")))?;
            Verdict::Appended(AppendOutcome {
                first_position: GlobalPosition(first_position),
                last_position: last,
                next_expected: version(first)?,
            })
        }
        1 => {
            let existing = rows.iter().map(stored).collect::<Result<Vec<_>, _>>()?;
            match idempotent_outcome(stream, events, &existing) {
                Ok(outcome) => Verdict::Appended(outcome),
                Err(e) => Verdict::Refused(e),
            }
        }
        2 => {
            let (event_id, existing_stream, existing_version, _) = stored(first)?;
            Verdict::Refused(LogError::EventIdConflict {
                event_id,
                existing_stream,
                existing_version,
            })
        }
        3 => Verdict::Refused(LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: CurrentVersion(version(first)?),
        }),
        4 => Verdict::Stale(version(first)?),
        other => return Err(bad(format!("unknown kind {other}"))),
    })
}

/// Copies an error for each request of a failed group (`LogError` is not `Clone`).
fn replicate(e: &LogError) -> LogError {
    match e {
        LogError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        } => LogError::WrongExpectedVersion {
            stream: stream.clone(),
            expected: *expected,
            actual: *actual,
        },
        LogError::EventIdConflict {
            event_id,
            existing_stream,
            existing_version,
        } => LogError::EventIdConflict {
            event_id: *event_id,
            existing_stream: existing_stream.clone(),
            existing_version: *existing_version,
        },
        LogError::InvalidAppend { stream, reason } => LogError::InvalidAppend {
            stream: stream.clone(),
            reason: reason.clone(),
        },
        LogError::InvalidUrl { url, reason } => LogError::InvalidUrl {
            url: url.clone(),
            reason: reason.clone(),
        },
        LogError::Unreachable { target, detail } => LogError::Unreachable {
            target: target.clone(),
            detail: detail.clone(),
        },
        LogError::Corrupt { target, detail } => LogError::Corrupt {
            target: target.clone(),
            detail: detail.clone(),
        },
        LogError::Migration { target, detail } => LogError::Migration {
            target: target.clone(),
            detail: detail.clone(),
        },
        LogError::Backend { target, detail } => LogError::Backend {
            target: target.clone(),
            detail: detail.clone(),
        },
        LogError::Closed { target } => LogError::Closed {
            target: target.clone(),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The writer task

struct AppendRequest {
    stream: StreamId,
    expected: ExpectedVersion,
    events: Vec<EventRecord>,
    reply: oneshot::Sender<Result<AppendOutcome, LogError>>,
}

impl AppendRequest {
    fn answer(self, result: Result<AppendOutcome, LogError>) {
        // The caller may have given up waiting; the append stands either way.
        let _ = self.reply.send(result);
    }
}

/// Groups queued appends into one transaction each (see the module documentation).
struct Writer {
    shared: Arc<Shared>,
    /// Last version seen per stream, to compute `Any` appends' checksums.
    versions: HashMap<StreamId, u64>,
}

impl Writer {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            versions: HashMap::new(),
        }
    }

    async fn run(mut self, mut requests: mpsc::Receiver<AppendRequest>) {
        while let Some(first) = requests.recv().await {
            let mut events = first.events.len();
            let mut group = vec![first];
            while group.len() < MAX_GROUP_REQUESTS && events < MAX_GROUP_EVENTS {
                match requests.try_recv() {
                    Ok(r) => {
                        events += r.events.len();
                        group.push(r);
                    }
                    Err(_) => break,
                }
            }
            self.write_group(group).await;
        }
    }

    fn remember(&mut self, stream: &StreamId, version: u64) {
        if self.versions.len() >= VERSION_CACHE_LIMIT && !self.versions.contains_key(stream) {
            self.versions.clear();
        }
        self.versions.insert(stream.clone(), version);
    }

    async fn write_group(&mut self, mut group: Vec<AppendRequest>) {
        let shared = self.shared.clone();
        let mut conn = match shared.conn().await {
            Ok(c) => c,
            Err(e) => {
                for r in group {
                    r.answer(Err(replicate(&e)));
                }
                return;
            }
        };
        if group.len() == 1 {
            if let Some(r) = group.pop() {
                let result = self.write_one(&mut conn, &r).await;
                r.answer(result);
            }
            return;
        }

        // Versions the checksums are computed for; `Any` appends assume the last version seen,
        // advanced by earlier requests of this group on the same stream.
        let mut predicted: HashMap<&StreamId, u64> = HashMap::new();
        let assumed: Vec<u64> = group
            .iter()
            .map(|r| {
                let guess = predicted
                    .get(&r.stream)
                    .or_else(|| self.versions.get(&r.stream))
                    .copied()
                    .unwrap_or(0);
                let a = assumed_version(r.expected, guess);
                predicted.insert(&r.stream, a.saturating_add(r.events.len() as u64));
                a
            })
            .collect();
        let params: Vec<AppendParams<'_>> = group
            .iter()
            .zip(&assumed)
            .map(|(r, &a)| AppendParams::new(&r.stream, r.expected, a, &r.events))
            .collect();

        let results = match run_statements(&conn, &params).await {
            Ok(results) => results,
            Err(e) => {
                let e = shared.error(&e);
                drop(params);
                for r in group {
                    r.answer(Err(replicate(&e)));
                }
                return;
            }
        };
        drop(params);

        let GroupResult::Committed(rows) = results else {
            // A statement raised, so the transaction rolled back: redo each request alone so
            // only the offending one fails.
            let mut results = Vec::with_capacity(group.len());
            for r in &group {
                results.push(self.write_one(&mut conn, r).await);
            }
            for (r, result) in group.into_iter().zip(results) {
                r.answer(result);
            }
            return;
        };

        let verdicts: Vec<_> = group
            .iter()
            .zip(&rows)
            .map(|(r, rows)| verdict(&shared.target, &r.stream, r.expected, &r.events, rows))
            .collect();
        drop(rows);
        let mut last = GlobalPosition::START;
        for (r, v) in group.iter().zip(&verdicts) {
            if let Ok(v) = v {
                self.learn(&r.stream, v);
                if let Verdict::Appended(o) = v {
                    last = last.max(o.last_position);
                }
            }
        }
        // Wake subscribers before answering, so an append's caller can count on it.
        shared.advance(last);
        let mut stale = Vec::new();
        for (r, v) in group.into_iter().zip(verdicts) {
            match v {
                Ok(Verdict::Appended(o)) => r.answer(Ok(o)),
                Ok(Verdict::Refused(e)) | Err(e) => r.answer(Err(e)),
                Ok(Verdict::Stale(_)) => stale.push(r),
            }
        }
        for r in stale {
            let result = shared
                .append_locked(&mut conn, &r.stream, r.expected, &r.events, Duration::ZERO)
                .await;
            if let Ok(o) = &result {
                self.remember(&r.stream, o.next_expected);
                shared.advance(o.last_position);
            }
            r.answer(result);
        }
    }

    /// Updates the version cache from a verdict.
    fn learn(&mut self, stream: &StreamId, verdict: &Verdict) {
        match verdict {
            Verdict::Appended(o) => self.remember(stream, o.next_expected),
            Verdict::Refused(LogError::WrongExpectedVersion { actual, .. }) => {
                self.remember(stream, actual.0)
            }
            Verdict::Stale(actual) => self.remember(stream, *actual),
            Verdict::Refused(_) => {}
        }
    }

    /// One request in its own (implicit) transaction.
    async fn write_one(
        &mut self,
        conn: &mut Object,
        r: &AppendRequest,
    ) -> Result<AppendOutcome, LogError> {
        let shared = self.shared.clone();
        let guess = self.versions.get(&r.stream).copied().unwrap_or(0);
        let params = AppendParams::new(
            &r.stream,
            r.expected,
            assumed_version(r.expected, guess),
            &r.events,
        );
        let stmt = conn
            .prepare_cached(APPEND_SQL)
            .await
            .map_err(|e| shared.error(&e))?;
        let rows = conn
            .query(&stmt, &params.refs())
            .await
            .map_err(|e| shared.append_error(&r.stream, &e))?;
        drop(params);
        let verdict = verdict(&shared.target, &r.stream, r.expected, &r.events, &rows)?;
        self.learn(&r.stream, &verdict);
        let result = match verdict {
            Verdict::Appended(o) => Ok(o),
            Verdict::Refused(e) => Err(e),
            Verdict::Stale(_) => {
                shared
                    .append_locked(conn, &r.stream, r.expected, &r.events, Duration::ZERO)
                    .await
            }
        };
        if let Ok(o) = &result {
            self.remember(&r.stream, o.next_expected);
            shared.advance(o.last_position);
        }
        result
    }
}

enum GroupResult {
    /// Every statement succeeded and the transaction committed: the rows of each call.
    Committed(Vec<Vec<Row>>),
    /// A statement raised, so the transaction rolled back: nothing was written.
    RolledBack,
}

/// Runs the appends of a group of two or more: `BEGIN`, one call each and `COMMIT`, pipelined
/// in one round trip. `Err` is a failure that leaves the outcome unknown (the connection broke)
/// or a failure to prepare.
async fn run_statements(
    conn: &Object,
    params: &[AppendParams<'_>],
) -> Result<GroupResult, tokio_postgres::Error> {
    let append = conn.prepare_cached(APPEND_SQL).await?;
    let begin = conn.prepare_cached("BEGIN").await?;
    let commit = conn.prepare_cached("COMMIT").await?;
    let refs: Vec<_> = params.iter().map(AppendParams::refs).collect();
    let mut futures = Vec::with_capacity(params.len() + 2);
    futures.push(conn.query(&begin, &[]));
    for r in &refs {
        futures.push(conn.query(&append, r));
    }
    futures.push(conn.query(&commit, &[]));
    let results = pipelined(futures).await;
    // A statement that raised aborts the transaction: the later ones fail too and COMMIT rolls
    // back. A broken connection leaves the outcome unknown and wins over everything else.
    let mut raised = false;
    let mut broken = None;
    let mut rows = Vec::with_capacity(params.len());
    let count = results.len();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(r) if i > 0 && i + 1 < count => rows.push(r),
            Ok(_) => {}
            Err(e) if e.as_db_error().is_some() && !is_connection_db_error(&e) => raised = true,
            Err(e) => {
                broken.get_or_insert(e);
            }
        }
    }
    if let Some(e) = broken {
        return Err(e);
    }
    if raised {
        return Ok(GroupResult::RolledBack);
    }
    Ok(GroupResult::Committed(rows))
}

fn is_connection_db_error(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        let c = db.code().code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    })
}

/// Polls `futures` together, always in vector order, so tokio-postgres sends their requests in
/// that order and pipelines them on one connection; returns their outputs in the same order.
async fn pipelined<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut slots: Vec<Pin<Box<MaybeDone<F>>>> = futures
        .into_iter()
        .map(|f| Box::pin(maybe_done(f)))
        .collect();
    poll_fn(|cx| {
        let mut all_done = true;
        for slot in &mut slots {
            if slot.as_mut().poll(cx).is_pending() {
                all_done = false;
            }
        }
        if all_done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    slots
        .iter_mut()
        .filter_map(|slot| slot.as_mut().take_output())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The stream and tenant of the previous row: consecutive events usually share them, and a
/// clone is cheaper than validating the text again.
#[derive(Default)]
struct Recent {
    stream: Option<StreamId>,
    tenant: Option<TenantId>,
}

impl Recent {
    fn stream(&mut self, s: &str) -> Result<StreamId, crate::ids::IdError> {
        match &self.stream {
            Some(known) if known.as_str() == s => Ok(known.clone()),
            _ => {
                let parsed = StreamId::parse(s)?;
                self.stream = Some(parsed.clone());
                Ok(parsed)
            }
        }
    }

    fn tenant(&mut self, t: &str) -> Result<TenantId, crate::ids::IdError> {
        match &self.tenant {
            Some(known) if known.as_str() == t => Ok(known.clone()),
            _ => {
                let parsed = TenantId::parse(t)?;
                self.tenant = Some(parsed.clone());
                Ok(parsed)
            }
        }
    }
}

/// Decodes one row of `COLUMNS` and verifies its checksum.
fn decode_row(target: &str, row: &Row, seen: &mut Recent) -> Result<StoredEvent, LogError> {
    let position: i64 = row.try_get(0).map_err(|e| LogError::Corrupt {
        target: target.to_owned(),
        detail: format!("unreadable position: {}", error_chain(&e)),
    })?;
    let corrupt = |what: String| LogError::Corrupt {
        target: target.to_owned(),
        detail: format!("event at position {position}: {what}"),
    };
    let col = |e: tokio_postgres::Error| corrupt(error_chain(&e));
    let stream: &str = row.try_get(1).map_err(col)?;
    let stream = seen.stream(stream).map_err(|e| corrupt(e.to_string()))?;
    let version: i64 = row.try_get(2).map_err(col)?;
    let version = u64::try_from(version).map_err(|_| corrupt(format!("version {version}")))?;
    let event_id: Uuid = row.try_get(3).map_err(col)?;
    let event_type: &str = row.try_get(4).map_err(col)?;
    let schema_version: i32 = row.try_get(5).map_err(col)?;
    let schema_version = u16::try_from(schema_version)
        .map_err(|_| corrupt(format!("schema version {schema_version}")))?;
    let occurred_at: DateTime<Utc> = row.try_get(6).map_err(col)?;
    let tenant: Option<&str> = row.try_get(7).map_err(col)?;
    let tenant = tenant
        .map(|t| seen.tenant(t))
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    let causation_id: Option<Uuid> = row.try_get(8).map_err(col)?;
    let correlation_id: Option<Uuid> = row.try_get(9).map_err(col)?;
    let payload: &str = row.try_get(10).map_err(col)?;
    let stored_checksum: i64 = row.try_get(11).map_err(col)?;
    let record = EventRecord {
        event_id: EventId::from_uuid(event_id),
        event_type: event_type.to_owned(),
        schema_version,
        occurred_at,
        tenant,
        causation_id: causation_id.map(EventId::from_uuid),
        correlation_id: correlation_id.map(CorrelationId::from_uuid),
        payload: payload.to_owned(),
    };
    let computed = checksum(&stream, version, &record);
    if i64::from(computed) != stored_checksum {
        return Err(corrupt(format!(
            "checksum mismatch (stream {stream}, version {version}, event {event_id}): stored {stored_checksum:#010x}, computed {computed:#010x}"
        )));
    }
    Ok(StoredEvent {
        position: to_position(position).ok_or_else(|| corrupt("negative position".into()))?,
        stream,
        version,
        record,
    })
}

// ---------------------------------------------------------------------------------------------
// The LISTEN connection

/// Keeps one connection listening on `CHANNEL`, reconnecting with backoff, and feeds the
/// wake-up channel. Runs until aborted (when the log is dropped).
async fn listen_loop(config: Config, head: watch::Sender<GlobalPosition>, target: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let ended = listen_once(&config, &head).await;
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        tracing::warn!(store = %target, reason = %ended, retry_in = ?backoff, "event notification listener disconnected; reconnecting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop(JoinHandle<Result<(), String>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One listening session; returns why it ended.
async fn listen_once(config: &Config, head: &watch::Sender<GlobalPosition>) -> String {
    // `connect_timeout` bounds the TCP connect only; bound the start-up exchange too.
    let limit = *config
        .get_connect_timeout()
        .unwrap_or(&DEFAULT_CONNECT_TIMEOUT)
        + Duration::from_secs(1);
    let (client, mut connection) = match tokio::time::timeout(limit, config.connect(NoTls)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return error_chain(&e),
        Err(_) => return "the server did not answer in time".into(),
    };
    let notify = head.clone();
    let mut driver = AbortOnDrop(tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    match n.payload().parse::<u64>() {
                        Ok(p) => {
                            notify.send_if_modified(|h| {
                                if p > h.0 {
                                    *h = GlobalPosition(p);
                                    true
                                } else {
                                    false
                                }
                            });
                        }
                        Err(_) => notify.send_modify(|_| {}),
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(error_chain(&e)),
            }
        }
        Ok(())
    }));

    let setup = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        let row = client.query_one(HEAD_SQL, &[]).await?;
        row.try_get::<_, i64>(0)
    };
    let position = match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, setup).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return error_chain(&e),
        Err(_) => return "LISTEN did not complete in time".into(),
    };
    // Notifications sent while we were away are lost: wake every subscriber anyway (they
    // re-read from their own position, so a spurious wake-up is harmless).
    let position = to_position(position).unwrap_or_default();
    head.send_modify(|h| *h = (*h).max(position));

    loop {
        tokio::select! {
            ended = &mut driver.0 => {
                return match ended {
                    Ok(Ok(())) => "the connection closed".into(),
                    Ok(Err(e)) => e,
                    Err(e) => format!("the listener task failed: {e}"),
                };
            }
            _ = tokio::time::sleep(LISTEN_PING_EVERY) => {
                match tokio::time::timeout(DEFAULT_CONNECT_TIMEOUT, client.simple_query("")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return error_chain(&e),
                    Err(_) => return "the server stopped answering".into(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_user_host_port_and_database_but_no_password() {
        let c = parse_config("postgres://bob:hunter2@db.example:6543/ledger").unwrap();
        assert_eq!(describe_config(&c), "postgres://bob@db.example:6543/ledger");
        let c = parse_config("host=10.0.0.5 user=alice dbname=x password=secret").unwrap();
        assert_eq!(describe_config(&c), "postgres://alice@10.0.0.5:5432/x");
        let c = parse_config("postgresql://postgres@[::1]/ledger").unwrap();
        assert_eq!(describe_config(&c), "postgres://postgres@[::1]:5432/ledger");
    }

    #[test]
    fn malformed_urls_are_refused_without_leaking_the_password() {
        for (url, needle) in [
            ("postgres://bob:hunter2@h:5432/x?sslmode=bogus", "sslmode"),
            ("postgres://bob:hunter2@h:5432/x?sslmode=require", "TLS"),
            ("user=bob dbname=x", "needs a host"),
            ("not a url at all", "invalid connection string"),
        ] {
            let e = parse_config(url).unwrap_err();
            assert!(matches!(e, LogError::InvalidUrl { .. }), "{url}: {e:?}");
            let msg = e.to_string();
            assert!(msg.contains(needle), "{url}: {msg}");
            assert!(!msg.contains("hunter2"), "{url}: {msg}");
        }
    }

    #[test]
    fn expected_versions_map_to_the_function_parameters() {
        assert_eq!(expected_param(ExpectedVersion::Any), -1);
        assert_eq!(expected_param(ExpectedVersion::NoStream), 0);
        assert_eq!(expected_param(ExpectedVersion::Exact(7)), 7);
        assert_eq!(expected_param(ExpectedVersion::Exact(u64::MAX)), i64::MAX);
        assert_eq!(assumed_version(ExpectedVersion::Any, 9), 9);
        assert_eq!(assumed_version(ExpectedVersion::NoStream, 9), 0);
        assert_eq!(assumed_version(ExpectedVersion::Exact(4), 9), 4);
    }

    #[tokio::test]
    async fn pipelined_futures_finish_in_order_of_the_vector() {
        let futures: Vec<_> = [30u64, 0, 10]
            .into_iter()
            .map(|ms| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ms
            })
            .collect();
        assert_eq!(pipelined(futures).await, vec![30, 0, 10]);
    }
}
