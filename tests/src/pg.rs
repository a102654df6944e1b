//! PostgreSQL test support: a fresh database per test (`ll_<hex>`, dropped at the end; leftovers
//! older than an hour are swept at the start), the conformance-suite [`PgBackend`], and a quick
//! throughput check ([`throughput`]).
//!
//! The server comes from `LEDGERLINE_TEST_PG` (an admin URL whose user may create databases),
//! default `postgres://postgres@127.0.0.1:5432/postgres`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use events::log::postgres::PostgresLog;
use events::{
    EventId, EventLog, EventRecord, ExpectedVersion, GlobalPosition, StoreOptions, StreamId,
    subscribe,
};
use futures_util::future::BoxFuture;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::conformance::Backend;

/// Databases this harness creates start with this prefix.
pub const PREFIX: &str = "ll_";
/// Leftover test databases older than this are dropped by the next test run.
const LEFTOVER_AGE_SECS: i64 = 3600;

/// The admin URL (`LEDGERLINE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`).
pub fn admin_url() -> String {
    std::env::var("LEDGERLINE_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

/// A connection to the admin database, driven on the current runtime.
pub async fn admin() -> tokio_postgres::Client {
    let url = admin_url();
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL at {url}: {e} (set LEDGERLINE_TEST_PG)")
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// A fresh database name: `ll_<creation time, hex seconds>_<random hex>[_<suffix>]`, at most 63
/// bytes (PostgreSQL's identifier limit).
pub fn fresh_name(suffix: &str) -> String {
    let random = Uuid::new_v4().simple().to_string();
    let mut name = format!("{PREFIX}{:x}_{}", now_secs(), &random[..12]);
    let suffix: String = suffix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !suffix.is_empty() {
        name.push('_');
        name.push_str(&suffix);
    }
    name.truncate(63);
    name
}

/// Creation time encoded in a name made by [`fresh_name`].
fn created_at(name: &str) -> Option<i64> {
    let rest = name.strip_prefix(PREFIX)?;
    let hex = rest.split('_').next()?;
    i64::from_str_radix(hex, 16).ok()
}

/// Drops this harness's databases older than an hour (left behind by killed test runs).
pub async fn sweep_leftovers(admin: &tokio_postgres::Client) {
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'll\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    let now = now_secs();
    for row in rows {
        let name: String = row.get(0);
        if created_at(&name).is_some_and(|t| now - t > LEFTOVER_AGE_SECS) {
            // Another test run may be sweeping the same one; ignore failures.
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Creates database `name` unless it exists.
pub async fn create_database(admin: &tokio_postgres::Client, name: &str) {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await
        .expect("look up database")
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
    }
}

/// Drops database `name` (closing its connections) from a thread of its own, so it also works
/// from `Drop` inside an async test.
pub fn drop_database_blocking(name: &str) {
    let name = name.to_owned();
    let url = admin_url();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await else {
                return;
            };
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        });
    })
    .join();
}

/// A database for one test, dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Sweeps leftovers, then creates a fresh, empty database.
    pub async fn create() -> TestDb {
        Self::create_with_suffix("").await
    }

    pub async fn create_with_suffix(suffix: &str) -> TestDb {
        let admin = admin().await;
        sweep_leftovers(&admin).await;
        let name = fresh_name(suffix);
        create_database(&admin, &name).await;
        TestDb {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    /// Opens the event log in this database with `pool_size` pooled connections.
    pub async fn open(&self, pool_size: usize) -> Arc<PostgresLog> {
        Arc::new(
            PostgresLog::connect(&self.url, options(pool_size))
                .await
                .unwrap_or_else(|e| panic!("connect to {}: {e}", self.name)),
        )
    }

    /// Terminates every server connection to this database except the caller's (what a
    /// restarted server or a network cut does to clients); returns how many were cut.
    pub async fn terminate_connections(&self) -> i64 {
        admin()
            .await
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("terminate connections")
            .get(0)
    }

    /// A direct connection to this database (for inspecting or tampering with it).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop_database_blocking(&self.name);
    }
}

/// Store options for tests: a small pool, since many tests share one server.
pub fn options(pool_size: usize) -> StoreOptions {
    StoreOptions {
        pool_size,
        ..StoreOptions::default()
    }
}

/// The PostgreSQL backend for the conformance suite: key → its own database (created on first
/// open, reopened afterwards); every database it created is dropped with the harness.
#[derive(Debug, Default)]
pub struct PgBackend {
    databases: Mutex<HashMap<String, String>>,
}

impl PgBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The database behind `key`, created on first use.
    async fn database(&self, key: &str) -> String {
        let known = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some(name) = known {
            return name;
        }
        let admin = admin().await;
        sweep_leftovers(&admin).await;
        let name = fresh_name(key);
        create_database(&admin, &name).await;
        self.databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned(), name.clone());
        name
    }
}

impl Backend for PgBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Arc<dyn EventLog>> {
        Box::pin(async move {
            let name = self.database(key).await;
            let url = with_database(&admin_url(), &name);
            let log = PostgresLog::connect(&url, options(4))
                .await
                .unwrap_or_else(|e| panic!("connect to {name}: {e}"));
            Arc::new(log) as Arc<dyn EventLog>
        })
    }
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        let names: Vec<String> = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for name in names {
            drop_database_blocking(&name);
        }
    }
}

/// A small test event; `n` goes into the payload (about 120 bytes of JSON).
pub fn record(n: u64) -> EventRecord {
    EventRecord {
        event_id: EventId::from_uuid(Uuid::new_v4()),
        event_type: "CallAnswered".into(),
        schema_version: 1,
        occurred_at: chrono::DateTime::from_timestamp_micros(1_767_225_600_000_000 + n as i64)
            .unwrap_or_default(),
        tenant: Some(events::TenantId::parse("acme").expect("tenant")),
        causation_id: None,
        correlation_id: None,
        payload: format!(
            "{{\"n\":{n},\"call\":\"{}\",\"leg\":\"a\",\"from\":\"1001\",\"to\":\"1002\"}}",
            n % 9973
        ),
    }
}

pub fn records(from: u64, count: u64) -> Vec<EventRecord> {
    (from..from + count).map(record).collect()
}

pub fn stream(name: &str) -> StreamId {
    StreamId::parse(format!("call-{name}")).expect("stream id")
}

/// Figures from [`throughput`].
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// (events per append, concurrent streams, events/s)
    pub append: Vec<(u64, usize, f64)>,
    pub read_all_events: u64,
    pub read_all_per_sec: f64,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub latency_max: Duration,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (batch, streams, rate) in &self.append {
            writeln!(
                f,
                "append {batch:>3} events/append, {streams} stream(s): {rate:>10.0} events/s"
            )?;
        }
        writeln!(
            f,
            "read-all ({} events, decoded, checksummed): {:>10.0} events/s",
            self.read_all_events, self.read_all_per_sec
        )?;
        write!(
            f,
            "subscription latency append→delivered: p50 {:?}, p99 {:?}, max {:?}",
            self.latency_p50, self.latency_p99, self.latency_max
        )
    }
}

/// Appends `batch`-event appends to `streams` concurrent streams for about `duration`; events/s.
async fn append_rate(
    log: &Arc<PostgresLog>,
    batch: u64,
    streams: usize,
    duration: Duration,
) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let stream = stream(&format!("bench-{batch}-{streams}-{s}-{}", Uuid::new_v4()));
            let mut version = 0u64;
            while started.elapsed() < duration {
                let out = log
                    .append(
                        &stream,
                        ExpectedVersion::Exact(version),
                        records(version, batch),
                    )
                    .await
                    .expect("bench append");
                version = out.next_expected;
            }
            version
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("bench task");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// A quick throughput check on a fresh database: appends at 1 and 100 events per append with 1
/// and 8 concurrent streams (`per_config` each), read-all of everything written, and
/// append→delivered latency of a live subscriber over `latency_samples` single-event appends.
pub async fn throughput(per_config: Duration, latency_samples: usize) -> Figures {
    let db = TestDb::create_with_suffix("bench").await;
    let log = db.open(16).await;
    let mut figures = Figures::default();
    for (batch, streams) in [(1, 1), (1, 8), (100, 1), (100, 8)] {
        let rate = append_rate(&log, batch, streams, per_config).await;
        figures.append.push((batch, streams, rate));
    }

    let head = log.head().await.expect("head");
    let started = Instant::now();
    let mut after = GlobalPosition::START;
    let mut count = 0u64;
    loop {
        let page = log.read_all(after, 10_000).await.expect("read all");
        let Some(last) = page.last() else { break };
        after = last.position;
        count += page.len() as u64;
    }
    assert_eq!(count, head.0);
    figures.read_all_events = count;
    figures.read_all_per_sec = count as f64 / started.elapsed().as_secs_f64();

    // Latency: one subscriber following live, one writer appending single events at a steady pace.
    let sent: Arc<Mutex<HashMap<EventId, Instant>>> = Arc::default();
    let log_dyn: Arc<dyn EventLog> = log.clone();
    let mut sub = subscribe(log_dyn, head);
    let receiver = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(latency_samples);
            while latencies.len() < latency_samples {
                let e = tokio::time::timeout(Duration::from_secs(30), sub.next())
                    .await
                    .expect("subscriber stalled")
                    .expect("subscriber error");
                let now = Instant::now();
                if let Some(t) = sent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&e.record.event_id)
                {
                    latencies.push(now - t);
                }
            }
            latencies
        })
    };
    let s = stream(&format!("latency-{}", Uuid::new_v4()));
    for n in 0..latency_samples as u64 {
        let e = record(n);
        sent.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(e.event_id, Instant::now());
        log.append(&s, ExpectedVersion::Exact(n), vec![e])
            .await
            .expect("latency append");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut latencies = receiver.await.expect("receiver");
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    figures.latency_p50 = pick(0.50);
    figures.latency_p99 = pick(0.99);
    figures.latency_max = latencies.last().copied().unwrap_or_default();
    drop(log);
    drop(db);
    figures
}
