//! The PostgreSQL backend: the conformance suite, plus what only a server can get wrong —
//! commits landing out of order, a server that is not there, connections cut under a live
//! subscriber, migrations run twice, rows tampered with behind the log's back.
//!
//! Needs a PostgreSQL server (`LEDGERLINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); every test works in a database of its own.
#![allow(clippy::disallowed_methods)] // tests may use random ids and the wall clock

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use events::log::postgres::PostgresLog;
use events::{
    AppendOutcome, EventId, EventLog, EventRecord, ExpectedVersion, GlobalPosition, LogError,
    StoreOptions, StoreUrl, StoredEvent, StreamId, subscribe,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tests::conformance::{run_all, tail};
use tests::pg::{PgBackend, TestDb, admin_url, options, record, records, stream, with_database};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_log_conforms() {
    run_all(Arc::new(PgBackend::new())).await;
}

/// 8 writers append 100,000 events; now and then one holds its transaction open for up to
/// 500 ms after its positions are allocated and its rows inserted. A subscriber that started
/// before the writers tails the log and must see every event exactly once, at consecutive
/// positions, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_order_commits_are_never_skipped() {
    const WRITERS: u64 = 8;
    const TOTAL: u64 = 100_000;
    const PER_WRITER: u64 = TOTAL / WRITERS;
    let started = Instant::now();
    let db = TestDb::create_with_suffix("ooo").await;
    let log = db.open(12).await;

    let tail = {
        let log: Arc<dyn EventLog> = log.clone();
        tail(subscribe(log, GlobalPosition::START), TOTAL)
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(0x00c0_ffee + w);
            let streams: Vec<_> = (0..4).map(|s| stream(&format!("ooo-w{w}-s{s}"))).collect();
            let shared = stream("ooo-shared");
            let mut versions = [0u64; 4];
            let mut ids = Vec::with_capacity(PER_WRITER as usize);
            let mut written = 0u64;
            let mut holds = 0u32;
            while written < PER_WRITER {
                let count = rng.random_range(1..=25u64).min(PER_WRITER - written);
                let batch = records(w * 1_000_000 + written, count);
                let batch_ids: Vec<EventId> = batch.iter().map(|e| e.event_id).collect();
                let (target, expected, slot) = if rng.random_ratio(1, 10) {
                    (&shared, ExpectedVersion::Any, None)
                } else {
                    let i = rng.random_range(0..streams.len());
                    (&streams[i], ExpectedVersion::Exact(versions[i]), Some(i))
                };
                let out = if rng.random_ratio(1, 250) {
                    holds += 1;
                    let hold = Duration::from_millis(rng.random_range(0..=500));
                    log.append_holding(target, expected, batch, hold).await
                } else {
                    log.append(target, expected, batch).await
                }
                .expect("append");
                assert_eq!(out.last_position.0 - out.first_position.0 + 1, count);
                if let Some(i) = slot {
                    versions[i] = out.next_expected;
                }
                ids.extend(batch_ids);
                written += count;
            }
            (ids, holds)
        }));
    }
    let mut appended = HashSet::with_capacity(TOTAL as usize);
    let mut holds = 0;
    for w in writers {
        let (ids, h) = w.await.expect("writer");
        holds += h;
        for id in ids {
            assert!(appended.insert(id), "an id was acknowledged twice");
        }
    }
    assert!(holds > 0, "the seeds must produce some held transactions");

    let delivered = delivered_once_in_order(tail, TOTAL).await;
    assert_eq!(
        delivered, appended,
        "the subscriber saw exactly what was acknowledged"
    );
    assert_eq!(log.head().await.expect("head"), GlobalPosition(TOTAL));
    let elapsed = started.elapsed();
    eprintln!("out-of-order test: {TOTAL} events, {holds} held transactions, {elapsed:?}");
    assert!(elapsed < Duration::from_secs(90), "took {elapsed:?}");
}

/// Waits for the subscriber `tail` started and checks it saw `total` events at consecutive
/// positions from 1, each once; returns their ids.
async fn delivered_once_in_order(
    tail: tokio::task::JoinHandle<Vec<StoredEvent>>,
    total: u64,
) -> HashSet<EventId> {
    let seen = tail.await.expect("subscriber");
    assert_eq!(seen.len() as u64, total);
    let mut delivered = HashSet::with_capacity(seen.len());
    for (i, e) in seen.iter().enumerate() {
        let id = e.record.event_id;
        assert_eq!(
            e.position.0,
            i as u64 + 1,
            "positions are consecutive from 1"
        );
        assert!(delivered.insert(id), "event {id} delivered twice");
    }
    delivered
}

/// Appends `batch`, retrying transient failures (a cut connection) with the same events, which
/// the log takes idempotently; the outcome and how many retries it took.
async fn append_retrying(
    log: &PostgresLog,
    stream: &StreamId,
    expected: ExpectedVersion,
    batch: &[EventRecord],
) -> (AppendOutcome, u32) {
    let mut retries = 0;
    loop {
        match log.append(stream, expected, batch.to_vec()).await {
            Ok(out) => return (out, retries),
            Err(e) if e.is_transient() => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("append failed: {e}"),
        }
    }
}

fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[tokio::test]
async fn an_unreachable_server_is_reported_quickly() {
    let port = unused_port();
    let url = format!("postgres://bob:hunter2@127.0.0.1:{port}/ledgerline");
    let started = Instant::now();
    let err = PostgresLog::connect(&url, StoreOptions::default())
        .await
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, LogError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}")),
        "names host and port: {msg}"
    );
    assert!(
        msg.to_lowercase().contains("refused"),
        "names the cause: {msg}"
    );
    assert!(!msg.contains("hunter2"), "no password in messages: {msg}");

    // Through the store URL, as the binary does.
    let store = StoreUrl::parse(&url).expect("well-formed");
    let err = events::open(&store, &StoreOptions::default())
        .await
        .expect_err("unreachable");
    assert!(matches!(err, LogError::Unreachable { .. }), "{err:?}");

    // An address that never answers is bounded by the connect timeout.
    let started = Instant::now();
    let err = PostgresLog::connect(
        "postgres://postgres@10.255.255.1:5432/x?connect_timeout=1",
        StoreOptions::default(),
    )
    .await
    .expect_err("black hole");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, LogError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("10.255.255.1:5432"), "{err}");

    // A port that accepts connections but never answers (not a PostgreSQL server, or a hung
    // one) is bounded too.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let started = Instant::now();
    let err = PostgresLog::connect(
        &format!("postgres://postgres@127.0.0.1:{port}/x?connect_timeout=1"),
        StoreOptions::default(),
    )
    .await
    .expect_err("silent server");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, LogError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer"), "{err}");
    drop(silent);
}

#[tokio::test]
async fn a_wrong_database_or_a_malformed_url_gives_a_clear_error() {
    let url = with_database(&admin_url(), "ll_no_such_database");
    let err = PostgresLog::connect(&url, StoreOptions::default())
        .await
        .expect_err("no such database");
    assert!(!err.is_transient(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ll_no_such_database") && msg.contains("does not exist"),
        "{msg}"
    );

    for (bad, needle) in [
        (
            "postgres://postgres@127.0.0.1:5432/test?sslmode=bogus",
            "invalid",
        ),
        (
            "postgres://postgres@127.0.0.1:5432/test?connect_timeout=soon",
            "invalid",
        ),
        ("host=127.0.0.1 port=notaport dbname=test", "invalid"),
        ("dbname=test user=postgres", "needs a host"),
        (
            "postgres://postgres@127.0.0.1:5432/test?sslmode=require",
            "TLS",
        ),
        ("definitely not a url", "invalid"),
    ] {
        let err = PostgresLog::connect(bad, StoreOptions::default())
            .await
            .expect_err(bad);
        assert!(matches!(err, LogError::InvalidUrl { .. }), "{bad}: {err:?}");
        assert!(err.to_string().contains(needle), "{bad}: {err}");
    }
    let err = PostgresLog::connect(
        "postgres://bob:hunter2@127.0.0.1:5432/test?sslmode=bogus",
        StoreOptions::default(),
    )
    .await
    .expect_err("bad sslmode");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// Connections are cut (`pg_terminate_backend`) several times while writers append through one
/// handle and a subscriber follows through another that only learns of new events from
/// LISTEN/NOTIFY (its poll interval is a minute). Writers retry transient failures with the same
/// events (idempotent); the subscriber must end up with every event, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscription_survives_dropped_connections() {
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 3_000;
    const TOTAL: u64 = WRITERS * PER_WRITER;
    let db = TestDb::create_with_suffix("drop").await;
    let writer_log = db.open(6).await;
    let reader_log = db.open(4).await;

    let tail = {
        let log: Arc<dyn EventLog> = reader_log.clone();
        tail(
            subscribe(log, GlobalPosition::START)
                .with_batch(500)
                .with_poll_interval(Duration::from_secs(60)),
            TOTAL,
        )
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = writer_log.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(w);
            let s = stream(&format!("drop-{w}"));
            let mut ids = Vec::new();
            let mut version = 0;
            let mut retries = 0u32;
            while version < PER_WRITER {
                let count = rng.random_range(1..=10u64).min(PER_WRITER - version);
                let batch = records(w * 1_000_000 + version, count);
                let (out, r) =
                    append_retrying(&log, &s, ExpectedVersion::Exact(version), &batch).await;
                retries += r;
                assert_eq!(out.next_expected, version + count);
                ids.extend(batch.iter().map(|e| e.event_id));
                version = out.next_expected;
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..2_000))).await;
            }
            (ids, retries)
        }));
    }

    // Cut every connection to the database a few times while the writers run.
    let mut cuts = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cuts += db.terminate_connections().await;
    }
    assert!(cuts > 0, "some connections were cut");

    let mut appended = HashSet::new();
    let mut retries = 0;
    for w in writers {
        let (ids, r) = w.await.expect("writer");
        retries += r;
        appended.extend(ids);
    }
    let delivered = delivered_once_in_order(tail, TOTAL).await;
    assert_eq!(delivered, appended);
    eprintln!("dropped-connection test: {cuts} connections cut, {retries} append retries");

    // Both handles keep working afterwards, and a NOTIFY still reaches the reader.
    db.terminate_connections().await;
    let mut sub = subscribe(reader_log.clone(), GlobalPosition(TOTAL))
        .with_poll_interval(Duration::from_secs(60));
    let extra = record(42);
    let extra_id = extra.event_id;
    let s = stream("drop-after");
    append_retrying(&writer_log, &s, ExpectedVersion::NoStream, &[extra]).await;
    let next = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("woken by NOTIFY after the listener reconnected")
        .expect("read");
    assert_eq!(next.record.event_id, extra_id);
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::create_with_suffix("migr").await;
    let first = db.open(2).await;
    first
        .append(&stream("m"), ExpectedVersion::NoStream, records(0, 3))
        .await
        .expect("append");
    // A second handle while the first is open, and a third after both are gone.
    let second = db.open(2).await;
    assert_eq!(second.head().await.expect("head"), GlobalPosition(3));
    drop(first);
    drop(second);
    let third = db.open(2).await;
    assert_eq!(
        third
            .read_stream(&stream("m"), 0, 10)
            .await
            .expect("read")
            .len(),
        3
    );
    let applied: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .expect("history")
        .get(0);
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
    .expect("the migrations directory")
    .filter_map(Result::ok)
    .filter(|f| f.file_name().to_string_lossy().starts_with('V'))
    .count() as i64;
    assert_eq!(applied, files, "each migration applied once");

    // Concurrent first opens of a fresh database do not trip over each other.
    let fresh = TestDb::create_with_suffix("migr2").await;
    let (a, b) = tokio::join!(
        PostgresLog::connect(&fresh.url, options(2)),
        PostgresLog::connect(&fresh.url, options(2))
    );
    a.expect("first concurrent open");
    b.expect("second concurrent open");
}

#[tokio::test]
async fn a_store_opened_without_migrations_says_what_is_missing() {
    let db = TestDb::create_with_suffix("nomigr").await;
    let err = PostgresLog::connect(
        &db.url,
        StoreOptions {
            migrate: false,
            ..options(2)
        },
    )
    .await
    .expect_err("no schema");
    assert!(matches!(err, LogError::Migration { .. }), "{err:?}");
    assert!(err.to_string().contains("schema"), "{err}");
}

#[tokio::test]
async fn a_tampered_row_is_reported_with_its_position() {
    let db = TestDb::create_with_suffix("tamper").await;
    let log = db.open(2).await;
    let s = stream("tamper");
    log.append(&s, ExpectedVersion::NoStream, records(0, 10))
        .await
        .expect("append");
    let client = db.client().await;
    // The table refuses changes…
    let refused = client
        .batch_execute("UPDATE events SET payload = '{\"n\":999}' WHERE position = 4")
        .await
        .expect_err("append-only");
    assert!(
        format!("{refused:?}").contains("append-only"),
        "{refused:?}"
    );
    // …unless someone goes out of their way; the checksum catches it on read.
    client
        .batch_execute(
            "ALTER TABLE events DISABLE TRIGGER events_append_only; \
             UPDATE events SET payload = '{\"n\":999}' WHERE position = 4; \
             ALTER TABLE events ENABLE TRIGGER events_append_only;",
        )
        .await
        .expect("tamper");
    for err in [
        log.read_all(GlobalPosition::START, 100)
            .await
            .expect_err("read_all"),
        log.read_stream(&s, 0, 100).await.expect_err("read_stream"),
    ] {
        assert!(matches!(err, LogError::Corrupt { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("position 4") && msg.contains("checksum"),
            "{msg}"
        );
    }
    // Reading around it still works.
    assert_eq!(
        log.read_all(GlobalPosition(4), 100)
            .await
            .expect("after")
            .len(),
        6
    );
    assert_eq!(
        log.read_all(GlobalPosition::START, 3)
            .await
            .expect("before")
            .len(),
        3
    );
}

/// A payload that is not JSON fails its own append only, even among concurrent appends that the
/// writer groups into one transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_payload_fails_only_its_own_append() {
    let db = TestDb::create_with_suffix("badjson").await;
    let log = db.open(4).await;
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut e = record(i);
            if i == 17 {
                e.payload = "{\"unterminated\": ".into();
            }
            log.append(
                &stream(&format!("j{i}")),
                ExpectedVersion::NoStream,
                vec![e],
            )
            .await
        }));
    }
    let mut ok = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(i, 17, "only the bad one fails: {e}");
                assert!(matches!(e, LogError::InvalidAppend { .. }), "{e:?}");
                assert!(e.to_string().to_lowercase().contains("json"), "{e}");
            }
        }
    }
    assert_eq!(ok, 39);
    let all = log
        .read_all(GlobalPosition::START, 100)
        .await
        .expect("read");
    assert_eq!(all.len(), 39);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.position.0 == i as u64 + 1)
    );
}

/// Two handles (two processes, as far as the database can tell) append to one stream with
/// `ExpectedVersion::Any`: each one's idea of the stream's version goes stale all the time, and
/// every append must still land once, with versions 1..n and valid checksums.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn any_appends_from_two_handles_interleave_correctly() {
    let db = TestDb::create_with_suffix("any").await;
    let a = db.open(3).await;
    let b = db.open(3).await;
    let s = stream("any-shared");
    let mut tasks = Vec::new();
    for (h, log) in [a.clone(), b.clone()].into_iter().enumerate() {
        for t in 0..3u64 {
            let log = log.clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..50u64 {
                    let count = 1 + n % 3;
                    log.append(
                        &s,
                        ExpectedVersion::Any,
                        records(h as u64 * 10_000 + t * 1000 + n * 10, count),
                    )
                    .await
                    .expect("any append");
                }
            }));
        }
    }
    for t in tasks {
        t.await.expect("task");
    }
    let expected: u64 = 2 * 3 * (0..50u64).map(|n| 1 + n % 3).sum::<u64>();
    let read = a.read_stream(&s, 0, 10_000).await.expect("read");
    assert_eq!(read.len() as u64, expected);
    assert!(
        read.iter()
            .enumerate()
            .all(|(i, e)| e.version == i as u64 + 1)
    );
    let all = b
        .read_all(GlobalPosition::START, 10_000)
        .await
        .expect("read all");
    assert_eq!(all.len() as u64, expected);
}

/// `append_holding` keeps its transaction open: nothing it wrote is visible, and other appends
/// wait, until it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_append_blocks_later_appends_until_it_commits() {
    let db = TestDb::create_with_suffix("hold").await;
    let log = db.open(4).await;
    let held = {
        let log = log.clone();
        tokio::spawn(async move {
            log.append_holding(
                &stream("held"),
                ExpectedVersion::NoStream,
                records(0, 5),
                Duration::from_millis(600),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(log.head().await.expect("head"), GlobalPosition::START);
    assert!(
        log.read_all(GlobalPosition::START, 10)
            .await
            .expect("read")
            .is_empty()
    );
    let started = Instant::now();
    let later = log
        .append(&stream("later"), ExpectedVersion::NoStream, records(10, 1))
        .await
        .expect("later append");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    let held = held.await.expect("task").expect("held append");
    assert_eq!(held.first_position, GlobalPosition(1));
    assert_eq!(
        later.first_position,
        GlobalPosition(6),
        "commit order is position order"
    );
}

#[tokio::test]
async fn describe_names_the_server_without_secrets() {
    let db = TestDb::create_with_suffix("desc").await;
    let log = db.open(1).await;
    let d = log.describe();
    assert!(d.starts_with("postgres://") && d.ends_with(&db.name), "{d}");
    assert!(d.contains(':'), "{d}");
    let url = StoreUrl::parse(&db.url).expect("url");
    let log = events::open(&url, &options(1)).await.expect("open by url");
    assert_eq!(log.describe(), d);
}

/// `cargo test -p tests --release --test log_postgres -- --ignored --nocapture throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run explicitly"]
async fn throughput() {
    let figures = tests::pg::throughput(Duration::from_secs(3), 2_000).await;
    println!("{figures}");
}
