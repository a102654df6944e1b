//! The event-log conformance suite: one body of test code that every `EventLog` backend must
//! pass (memory, SQLite, PostgreSQL, and KurrentDB where a server is available). A backend
//! plugs in through [`Backend`]; each case opens its own named store.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use events::{
    CorrelationId, EventId, EventLog, EventRecord, ExpectedVersion, GlobalPosition, LogError,
    StoredEvent, StreamId, Subscription, TenantId, subscribe,
};
use futures_util::future::BoxFuture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

/// A backend under test.
pub trait Backend: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Opens the store named `key`, creating it empty if it does not exist. Opening the same key
    /// again after the previous handle was dropped must reopen the same, durable, content.
    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Arc<dyn EventLog>>;
    /// Whether global positions are consecutive integers (false for KurrentDB).
    fn gap_free(&self) -> bool {
        true
    }
}

/// One conformance case.
type Case = fn(Arc<dyn Backend>) -> BoxFuture<'static, ()>;

/// Runs every case. Each prints its name so a failure is easy to place.
pub async fn run_all(backend: Arc<dyn Backend>) {
    let cases: Vec<(&str, Case)> = vec![
        ("append_and_read_back", |b| {
            Box::pin(append_and_read_back(b))
        }),
        ("expected_version_is_enforced", |b| {
            Box::pin(expected_version_is_enforced(b))
        }),
        ("retries_are_idempotent", |b| {
            Box::pin(retries_are_idempotent(b))
        }),
        ("bad_appends_are_refused", |b| {
            Box::pin(bad_appends_are_refused(b))
        }),
        ("racing_writers_one_winner_per_version", |b| {
            Box::pin(racing_writers_one_winner_per_version(b))
        }),
        ("refused_appends_leave_their_neighbours_alone", |b| {
            Box::pin(refused_appends_leave_their_neighbours_alone(b))
        }),
        ("read_all_is_in_order", |b| {
            Box::pin(read_all_is_in_order(b))
        }),
        ("subscription_hands_over_to_live", |b| {
            Box::pin(subscription_hands_over_to_live(b))
        }),
        ("close_and_reopen_keeps_everything", |b| {
            Box::pin(close_and_reopen_keeps_everything(b))
        }),
    ];
    for (name, case) in cases {
        eprintln!("[{}] {name}", backend.name());
        case(backend.clone()).await;
    }
}

/// Collects the first `total` events `sub` delivers on a task of its own; the test fails if the
/// subscription stalls for 30 s or returns an error.
pub fn tail(mut sub: Subscription, total: u64) -> tokio::task::JoinHandle<Vec<StoredEvent>> {
    tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total as usize);
        while (seen.len() as u64) < total {
            let e = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .unwrap_or_else(|_| panic!("subscriber stalled after {} events", seen.len()))
                .expect("subscription error");
            seen.push(e);
        }
        seen
    })
}

/// A fresh key for one case.
pub fn key(case: &str) -> String {
    format!("{case}_{}", &Uuid::new_v4().simple().to_string()[..12])
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 30, 0)
        .single()
        .expect("valid time")
}

/// A test event with a random id; `n` goes into the payload.
pub fn event(n: u64) -> EventRecord {
    EventRecord {
        event_id: EventId::from_uuid(Uuid::new_v4()),
        event_type: "ProbeRecorded".into(),
        schema_version: 1,
        occurred_at: t0() + chrono::Duration::microseconds(n as i64 * 1_001),
        tenant: Some(TenantId::parse("acme").expect("valid tenant")),
        causation_id: None,
        correlation_id: None,
        payload: format!("{{\"n\":{n},\"text\":\"caf\\u00e9 ☎\"}}"),
    }
}

pub fn events(from: u64, count: u64) -> Vec<EventRecord> {
    (from..from + count).map(event).collect()
}

pub fn stream(name: &str) -> StreamId {
    StreamId::parse(format!("call-{name}")).expect("valid stream id")
}

pub async fn append_and_read_back(b: Arc<dyn Backend>) {
    let log = b.open(&key("append")).await;
    assert_eq!(log.head().await.expect("head"), GlobalPosition::START);
    let s = stream(&Uuid::new_v4().to_string());
    let mut batch = events(0, 3);
    batch[1].causation_id = Some(batch[0].event_id);
    batch[1].correlation_id = Some(CorrelationId::from_uuid(Uuid::new_v4()));
    batch[2].tenant = None;
    batch[2].occurred_at += chrono::Duration::nanoseconds(999); // below storage precision
    let out = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("first append");
    assert_eq!(out.next_expected, 3);
    assert!(out.first_position < out.last_position);
    if b.gap_free() {
        assert_eq!(out.first_position, GlobalPosition(1));
        assert_eq!(out.last_position, GlobalPosition(3));
    }

    let read = log.read_stream(&s, 0, 100).await.expect("read stream");
    assert_eq!(read.len(), 3);
    for (i, (got, sent)) in read.iter().zip(&batch).enumerate() {
        assert_eq!(got.stream, s);
        assert_eq!(got.version, i as u64 + 1);
        assert_eq!(got.record.event_id, sent.event_id);
        assert_eq!(got.record.event_type, sent.event_type);
        assert_eq!(
            got.record.payload, sent.payload,
            "payload bytes kept exactly"
        );
        assert_eq!(got.record.tenant, sent.tenant);
        assert_eq!(got.record.causation_id, sent.causation_id);
        assert_eq!(got.record.correlation_id, sent.correlation_id);
        assert_eq!(
            got.record.occurred_at.timestamp_micros(),
            sent.occurred_at.timestamp_micros(),
            "occurred_at is the record's own time, to the microsecond"
        );
    }
    assert_eq!(read[0].position, out.first_position);
    assert_eq!(read[2].position, out.last_position);

    // Paging by version.
    let tail = log.read_stream(&s, 1, 1).await.expect("page");
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 2);
    assert!(
        log.read_stream(&s, 3, 10)
            .await
            .expect("past end")
            .is_empty()
    );
    let missing = stream("does-not-exist");
    assert!(
        log.read_stream(&missing, 0, 10)
            .await
            .expect("missing")
            .is_empty()
    );
    assert_eq!(log.head().await.expect("head"), out.last_position);
}

pub async fn expected_version_is_enforced(b: Arc<dyn Backend>) {
    let log = b.open(&key("expected")).await;
    let s = stream(&Uuid::new_v4().to_string());
    log.append(&s, ExpectedVersion::NoStream, events(0, 2))
        .await
        .expect("create");
    let err = log
        .append(&s, ExpectedVersion::NoStream, events(10, 1))
        .await
        .expect_err("stream exists");
    match &err {
        LogError::WrongExpectedVersion {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream, &s);
            assert_eq!(*expected, ExpectedVersion::NoStream);
            assert_eq!(actual.0, 2);
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("expected no stream, actual version 2"),
        "{err}"
    );

    let err = log
        .append(&s, ExpectedVersion::Exact(1), events(11, 1))
        .await
        .expect_err("stale");
    assert!(
        err.to_string()
            .contains("expected version 1, actual version 2"),
        "{err}"
    );
    let err = log
        .append(&s, ExpectedVersion::Exact(5), events(12, 1))
        .await
        .expect_err("ahead");
    assert!(
        matches!(err, LogError::WrongExpectedVersion { .. }),
        "{err}"
    );

    let ok = log
        .append(&s, ExpectedVersion::Exact(2), events(13, 2))
        .await
        .expect("exact");
    assert_eq!(ok.next_expected, 4);
    let any = log
        .append(&s, ExpectedVersion::Any, events(15, 1))
        .await
        .expect("any");
    assert_eq!(any.next_expected, 5);
    let other = stream(&Uuid::new_v4().to_string());
    let err = log
        .append(&other, ExpectedVersion::Exact(1), events(16, 1))
        .await
        .expect_err("no stream yet");
    assert!(err.to_string().contains("actual no stream"), "{err}");
    // Rejected appends wrote nothing.
    assert_eq!(log.read_stream(&s, 0, 100).await.expect("read").len(), 5);
    assert!(
        log.read_stream(&other, 0, 100)
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn retries_are_idempotent(b: Arc<dyn Backend>) {
    let log = b.open(&key("idem")).await;
    let s = stream(&Uuid::new_v4().to_string());
    let batch = events(0, 3);
    let first = log
        .append(&s, ExpectedVersion::NoStream, batch.clone())
        .await
        .expect("append");
    // The same append again (a client that lost the reply): same outcome, nothing duplicated.
    for _ in 0..3 {
        let again = log
            .append(&s, ExpectedVersion::NoStream, batch.clone())
            .await
            .expect("retry succeeds");
        assert_eq!(again, first);
    }
    let head = log.head().await.expect("head");
    assert_eq!(log.read_stream(&s, 0, 100).await.expect("read").len(), 3);
    // A different batch that reuses one stored id is refused, and writes nothing.
    let mut mixed = events(100, 2);
    mixed.push(batch[1].clone());
    let err = log
        .append(&s, ExpectedVersion::Any, mixed)
        .await
        .expect_err("reused id");
    assert!(matches!(err, LogError::EventIdConflict { .. }), "{err}");
    // A stored id sent to another stream is refused too.
    let other = stream(&Uuid::new_v4().to_string());
    let err = log
        .append(&other, ExpectedVersion::Any, vec![batch[0].clone()])
        .await
        .expect_err("id of another stream");
    assert!(matches!(err, LogError::EventIdConflict { .. }), "{err}");
    assert_eq!(log.head().await.expect("head"), head);
    assert!(
        log.read_stream(&other, 0, 10)
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn bad_appends_are_refused(b: Arc<dyn Backend>) {
    let log = b.open(&key("bad")).await;
    let s = stream(&Uuid::new_v4().to_string());
    let err = log
        .append(&s, ExpectedVersion::Any, vec![])
        .await
        .expect_err("empty");
    assert!(err.to_string().contains("no events"), "{err}");
    let e = event(1);
    let err = log
        .append(&s, ExpectedVersion::Any, vec![e.clone(), e])
        .await
        .expect_err("dup in batch");
    assert!(err.to_string().contains("appears twice"), "{err}");
    let mut e = event(2);
    e.payload = "[1,2]".into();
    let err = log
        .append(&s, ExpectedVersion::Any, vec![e])
        .await
        .expect_err("not an object");
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    let mut e = event(3);
    e.payload = "{\"n\":".into();
    let err = log
        .append(&s, ExpectedVersion::Any, vec![e])
        .await
        .expect_err("torn JSON");
    assert!(err.to_string().contains("not valid JSON"), "{err}");
    assert_eq!(log.head().await.expect("head"), GlobalPosition::START);
}

/// Several writers race on one stream, each reading the version and appending with it. Whatever
/// the interleaving, each version is won by exactly one append, losers get a conflict naming the
/// actual version, and the stream holds exactly the winners' events.
pub async fn racing_writers_one_winner_per_version(b: Arc<dyn Backend>) {
    let log = b.open(&key("race")).await;
    // Interleavings are generated from seeds (a property over schedules): per writer, a number
    // of rounds and a pause before each attempt.
    for seed in 0..12u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let writers = rng.random_range(2..=8usize);
        let s = stream(&format!("race-{seed}-{}", Uuid::new_v4()));
        let schedules: Vec<Vec<u64>> = (0..writers)
            .map(|_| {
                (0..rng.random_range(1..=6))
                    .map(|_| rng.random_range(0..3u64))
                    .collect()
            })
            .collect();
        let mut tasks = Vec::new();
        for (w, schedule) in schedules.into_iter().enumerate() {
            let log = log.clone();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut won = Vec::new();
                let mut lost = 0u32;
                for (round, pause) in schedule.into_iter().enumerate() {
                    let current = log
                        .read_stream(&s, 0, 10_000)
                        .await
                        .expect("read")
                        .last()
                        .map_or(0, |e| e.version);
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    let ev = event((w * 100 + round) as u64);
                    let id = ev.event_id;
                    match log
                        .append(&s, ExpectedVersion::Exact(current), vec![ev])
                        .await
                    {
                        Ok(out) => {
                            assert_eq!(out.next_expected, current + 1);
                            won.push((current + 1, id));
                        }
                        Err(LogError::WrongExpectedVersion { actual, .. }) => {
                            assert_ne!(actual.0, current, "a conflict names another version");
                            lost += 1;
                        }
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
                (won, lost)
            }));
        }
        let mut winners: BTreeMap<u64, EventId> = BTreeMap::new();
        for t in tasks {
            let (won, _lost) = t.await.expect("writer task");
            for (version, id) in won {
                assert!(
                    winners.insert(version, id).is_none(),
                    "seed {seed}: version {version} won twice"
                );
            }
        }
        let stored = log.read_stream(&s, 0, 10_000).await.expect("read");
        assert_eq!(stored.len(), winners.len(), "seed {seed}");
        for (e, (v, id)) in stored.iter().zip(&winners) {
            assert_eq!(e.version, *v, "seed {seed}");
            assert_eq!(e.record.event_id, *id, "seed {seed}");
        }
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(i, e)| e.version == i as u64 + 1),
            "seed {seed}: versions are 1..n"
        );
    }
}

/// Appends sent at once (a backend with group commit writes them in one transaction): good
/// ones, batches refused half-way (their last event reuses a stored id) and appends at a wrong
/// version. Each refused append writes nothing, and takes nothing from the others.
pub async fn refused_appends_leave_their_neighbours_alone(b: Arc<dyn Backend>) {
    let log = b.open(&key("neighbours")).await;
    let stored = stream(&Uuid::new_v4().to_string());
    let taken = event(0);
    log.append(&stored, ExpectedVersion::NoStream, vec![taken.clone()])
        .await
        .expect("the stored event");
    let start = log.head().await.expect("head");
    // (stream, events, expected version, whether it must be written)
    let mut appends = Vec::new();
    for i in 0..60u64 {
        let s = stream(&format!("n{i}-{}", Uuid::new_v4()));
        let append = match i % 3 {
            0 => (
                s,
                events(i * 10, 1 + i % 4),
                ExpectedVersion::NoStream,
                true,
            ),
            1 => {
                let mut batch = events(i * 10, 2);
                batch.push(taken.clone());
                (s, batch, ExpectedVersion::Any, false)
            }
            _ => (s, events(i * 10, 1), ExpectedVersion::Exact(5), false),
        };
        appends.push(append);
    }
    let outcomes = futures_util::future::join_all(appends.iter().map(|(s, batch, expected, _)| {
        let log = log.clone();
        async move { log.append(s, *expected, batch.clone()).await }
    }))
    .await;
    let mut written = 0;
    for ((s, batch, _, good), outcome) in appends.iter().zip(outcomes) {
        let back = log.read_stream(s, 0, 100).await.expect("read");
        if *good {
            let out = outcome.unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(out.next_expected, batch.len() as u64);
            let ids: Vec<EventId> = back.iter().map(|e| e.record.event_id).collect();
            let sent: Vec<EventId> = batch.iter().map(|e| e.event_id).collect();
            assert_eq!(ids, sent, "{s}");
            written += batch.len();
        } else {
            assert!(outcome.is_err(), "{s} was written");
            assert!(back.is_empty(), "{s}: a refused append left {back:?}");
        }
    }
    let after = log.read_all(start, 10_000).await.expect("read all");
    assert_eq!(after.len(), written);
    if b.gap_free() {
        for (i, e) in after.iter().enumerate() {
            assert_eq!(
                e.position.0,
                start.0 + 1 + i as u64,
                "positions stay gap-free"
            );
        }
    }
    assert_eq!(
        log.read_stream(&stored, 0, 10).await.expect("read").len(),
        1
    );
}

pub async fn read_all_is_in_order(b: Arc<dyn Backend>) {
    let log = b.open(&key("readall")).await;
    let streams: Vec<StreamId> = (0..5)
        .map(|i| stream(&format!("ra{i}-{}", Uuid::new_v4())))
        .collect();
    let mut written = Vec::new();
    let mut versions = vec![0u64; streams.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for n in 0..60u64 {
        let i = rng.random_range(0..streams.len());
        let count = rng.random_range(1..=4u64);
        let batch = events(n * 10, count);
        let ids: Vec<EventId> = batch.iter().map(|e| e.event_id).collect();
        log.append(&streams[i], ExpectedVersion::Exact(versions[i]), batch)
            .await
            .expect("append");
        for (k, id) in ids.into_iter().enumerate() {
            written.push((streams[i].clone(), versions[i] + 1 + k as u64, id));
        }
        versions[i] += count;
    }
    let mut read = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = log.read_all(after, 7).await.expect("read all");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().expect("non-empty").position;
        read.extend(page);
    }
    assert_eq!(read.len(), written.len());
    for (i, (e, (s, v, id))) in read.iter().zip(&written).enumerate() {
        assert_eq!(
            (&e.stream, e.version, e.record.event_id),
            (s, *v, *id),
            "at {i}"
        );
        if i > 0 {
            assert!(e.position > read[i - 1].position);
            if b.gap_free() {
                assert_eq!(e.position.0, read[i - 1].position.0 + 1, "gap-free");
            }
        }
    }
    // Reading from the middle starts right after the given position.
    let mid = read[read.len() / 2].position;
    let rest = log.read_all(mid, 10_000).await.expect("read rest");
    assert_eq!(rest.len(), read.len() - read.len() / 2 - 1);
    assert!(rest[0].position > mid);
    assert_eq!(
        log.head().await.expect("head"),
        read.last().expect("some").position
    );
}

/// A subscriber starts behind, catches up, and is handed over to live delivery while writers keep
/// appending: it sees every event exactly once, in position order.
pub async fn subscription_hands_over_to_live(b: Arc<dyn Backend>) {
    let log = b.open(&key("sub")).await;
    let pre = stream(&format!("pre-{}", Uuid::new_v4()));
    for chunk in 0..10u64 {
        log.append(&pre, ExpectedVersion::Any, events(chunk * 50, 50))
            .await
            .expect("preload");
    }
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 300;
    let total = 500 + WRITERS * PER_WRITER;
    let sub = subscribe(log.clone(), GlobalPosition::START).with_batch(64);
    let reader = tail(sub, total);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            let s = stream(&format!("live{w}-{}", Uuid::new_v4()));
            let mut n = 0;
            while n < PER_WRITER {
                let count = (1 + n % 3).min(PER_WRITER - n);
                log.append(
                    &s,
                    ExpectedVersion::Any,
                    events(10_000 * (w + 1) + n, count),
                )
                .await
                .expect("live append");
                n += count;
                if n % 20 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    let mut ids = HashSet::new();
    for (i, e) in seen.iter().enumerate() {
        assert!(ids.insert(e.record.event_id), "duplicate delivery at {i}");
        if i > 0 {
            assert!(e.position > seen[i - 1].position, "reordered at {i}");
            if b.gap_free() {
                assert_eq!(e.position.0, seen[i - 1].position.0 + 1, "gap at {i}");
            }
        }
    }
    assert_eq!(seen.len() as u64, total);
    // What the subscriber saw is exactly what read_all returns.
    let all = log
        .read_all(GlobalPosition::START, 100_000)
        .await
        .expect("read all");
    assert_eq!(all, seen);
    // A subscription from the middle starts right after it.
    let mid = seen[700].position;
    let mut sub = subscribe(log.clone(), mid);
    let next = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("no stall")
        .expect("ok");
    assert_eq!(next, seen[701]);
}

pub async fn close_and_reopen_keeps_everything(b: Arc<dyn Backend>) {
    let k = key("reopen");
    let s = stream(&Uuid::new_v4().to_string());
    let (written, head) = {
        let log = b.open(&k).await;
        let mut written = Vec::new();
        for n in 0..20u64 {
            let batch = events(n * 5, 5);
            log.append(&s, ExpectedVersion::Exact(n * 5), batch.clone())
                .await
                .expect("append");
            written.extend(batch);
        }
        (written, log.head().await.expect("head"))
    };
    let log = b.open(&k).await;
    assert_eq!(log.head().await.expect("head after reopen"), head);
    let read = log.read_stream(&s, 0, 1000).await.expect("read");
    assert_eq!(read.len(), written.len());
    for (got, sent) in read.iter().zip(&written) {
        assert_eq!(got.record.event_id, sent.event_id);
        assert_eq!(got.record.payload, sent.payload);
    }
    // Appending continues where it stopped; a stale writer is still refused.
    let out = log
        .append(&s, ExpectedVersion::Exact(100), events(1000, 1))
        .await
        .expect("continue");
    assert_eq!(out.next_expected, 101);
    assert!(out.first_position > head);
    if b.gap_free() {
        assert_eq!(out.first_position.0, head.0 + 1);
    }
    assert!(
        log.append(&s, ExpectedVersion::Exact(100), events(1001, 1))
            .await
            .is_err()
    );
    // An acknowledged retry from before the restart is still recognised.
    let again = log
        .append(&s, ExpectedVersion::NoStream, written[..5].to_vec())
        .await
        .expect("idempotent across restart");
    assert_eq!(again.next_expected, 5);
}
