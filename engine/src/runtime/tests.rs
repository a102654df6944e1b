//! Unit tests of the shell's helpers and of one actor driven through a registry over the memory
//! log. The behaviours that span many actors, restarts and the SQLite log are in
//! `engine/tests/runtime.rs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use events::log::memory::MemoryLog;
use events::model::CallEvent;
use events::{
    AppendOutcome, CallId, CorrelationId, EventLog, ExpectedVersion, GlobalPosition, LegId,
    ManualClock, RecordingId, SeededIds, StreamId,
};

use super::shell::{delay_until, positions};
use super::*;
use crate::testing::t0;

/// A keypad: each press is a `DtmfReceived` on one call. It remembers when the first and the
/// last press happened, as folded, and `Report` writes both into the stream.
#[derive(Debug, Clone, Default)]
struct Keypad {
    digits: String,
    first_at: Option<DateTime<Utc>>,
    last_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
enum Key {
    Press(char),
    Twice(char),
    Nothing,
    Refuse,
    Boom,
    /// Writes when the first and the last press were folded, as nanoseconds after `t0()`, into
    /// a `CallRecordingStopped` (`duration_ms` and `size_bytes`), which the keypad ignores.
    Report,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("refused")]
struct Refused;

fn call() -> CallId {
    CallId::parse("00000000-0000-4000-8000-000000000001").unwrap()
}

fn leg() -> LegId {
    LegId::parse("00000000-0000-4000-8000-000000000002").unwrap()
}

fn press(digit: char) -> CallEvent {
    CallEvent::DtmfReceived {
        call: call(),
        leg: leg(),
        digit,
        duration_ms: 100,
    }
}

impl Aggregate for Keypad {
    type Command = Key;
    type Event = CallEvent;
    type Rejection = Refused;

    fn decide(
        &self,
        command: &Key,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<CallEvent>, Refused> {
        match command {
            Key::Press(d) => Ok(vec![press(*d)]),
            Key::Twice(d) => Ok(vec![press(*d), press(*d)]),
            Key::Nothing => Ok(vec![]),
            Key::Refuse => Err(Refused),
            Key::Boom => panic!("boom"),
            Key::Report => {
                let nanos = |at: Option<DateTime<Utc>>| {
                    at.and_then(|at| (at - t0()).num_nanoseconds())
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(u64::MAX)
                };
                Ok(vec![CallEvent::CallRecordingStopped {
                    call: call(),
                    recording: RecordingId::parse("00000000-0000-4000-8000-0000000000aa").unwrap(),
                    duration_ms: nanos(self.first_at),
                    size_bytes: nanos(self.last_at),
                    by: None,
                }])
            }
        }
    }

    /// A keypad is done once `#` was pressed.
    fn finished(&self) -> bool {
        self.digits.ends_with('#')
    }

    fn evolve(&mut self, event: &CallEvent, at: DateTime<Utc>) {
        if let CallEvent::DtmfReceived { digit, .. } = event {
            self.digits.push(*digit);
            self.first_at.get_or_insert(at);
            self.last_at = Some(at);
        }
    }
}

fn stream() -> StreamId {
    StreamId::call(call())
}

fn setup() -> (Arc<MemoryLog>, Registry<Keypad>) {
    setup_at(Arc::new(ManualClock::new(t0())))
}

fn setup_at(clock: Arc<ManualClock>) -> (Arc<MemoryLog>, Registry<Keypad>) {
    let log = Arc::new(MemoryLog::new());
    let services = Services::new(log.clone(), clock, Arc::new(SeededIds::new(1)), 64);
    (log, Registry::new(services, RegistryConfig::default()))
}

/// Runs `Report` and reads back what it wrote: when the first and the last press were folded,
/// in nanoseconds after `t0()`.
async fn report(log: &MemoryLog, registry: &Registry<Keypad>, keypad: &Instance) -> (u64, u64) {
    let done = registry
        .execute(keypad, Execute::new(Key::Report))
        .await
        .unwrap();
    let stored = log
        .read_stream(&stream(), done.version - 1, 1)
        .await
        .unwrap();
    let recorded = events::codec::decode(&stored[0])
        .unwrap()
        .narrow::<CallEvent>()
        .unwrap();
    match recorded.event {
        CallEvent::CallRecordingStopped {
            duration_ms,
            size_bytes,
            ..
        } => (duration_ms, size_bytes),
        other => panic!("not a report: {other:?}"),
    }
}

#[test]
fn delay_is_zero_for_a_past_deadline() {
    assert_eq!(
        delay_until(t0(), t0() + ChronoDuration::milliseconds(1500)),
        std::time::Duration::from_millis(1500)
    );
    assert_eq!(
        delay_until(t0(), t0() - ChronoDuration::seconds(5)),
        std::time::Duration::ZERO
    );
}

#[test]
fn positions_are_exact_when_contiguous_and_the_last_otherwise() {
    let outcome = |first, last| AppendOutcome {
        first_position: GlobalPosition(first),
        last_position: GlobalPosition(last),
        next_expected: 3,
    };
    assert_eq!(
        positions(&outcome(7, 9), 3),
        vec![GlobalPosition(7), GlobalPosition(8), GlobalPosition(9)]
    );
    assert_eq!(
        positions(&outcome(7, 40), 2),
        vec![GlobalPosition(40), GlobalPosition(40)]
    );
}

#[actix::test]
async fn commands_append_in_order_and_fold() {
    let (log, registry) = setup();
    let keypad = Instance::new(stream());
    let first = registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    assert_eq!((first.events, first.version), (1, 1));
    let second = registry
        .execute(&keypad, Execute::new(Key::Twice('2')))
        .await
        .unwrap();
    assert_eq!((second.events, second.version), (2, 3));
    let stored = log.read_stream(&stream(), 0, 10).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().map(|e| e.version).eq(1..=3));
}

#[actix::test]
async fn a_finished_instance_stops_after_its_linger_and_a_late_command_rebuilds_it() {
    let log = Arc::new(MemoryLog::new());
    let clock = Arc::new(ManualClock::new(t0()));
    let services = Services::new(log.clone(), clock, Arc::new(SeededIds::new(1)), 64);
    let linger = Duration::from_millis(150);
    let config = RegistryConfig {
        finished_linger: linger,
        ..RegistryConfig::default()
    };
    let registry = Registry::<Keypad>::new(services, config);
    let keypad = Instance::new(stream());

    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    tokio::time::sleep(linger * 2).await;
    assert!(registry.is_live(&stream()), "an unfinished instance stays");

    registry
        .execute(&keypad, Execute::new(Key::Press('#')))
        .await
        .unwrap();
    // A command within the linger postpones the stop.
    tokio::time::sleep(linger / 2).await;
    registry
        .execute(&keypad, Execute::new(Key::Nothing))
        .await
        .unwrap();
    tokio::time::sleep(linger * 3 / 4).await;
    assert!(registry.is_live(&stream()), "a command postponed the stop");
    // The postponed stop comes at most two lingers after `#`.
    tokio::time::sleep(linger * 2).await;
    assert!(!registry.is_live(&stream()), "stopped after the linger");
    assert_eq!(registry.live(), 0, "and forgotten");

    // A late command finds the whole history.
    let late = registry
        .execute(&keypad, Execute::new(Key::Press('2')))
        .await
        .unwrap();
    assert_eq!(late.version, 3);
    let stored = log.read_stream(&stream(), 0, 10).await.unwrap();
    assert_eq!(stored.len(), 3);
}

#[actix::test]
async fn commands_executed_together_are_one_append_or_none() {
    let (log, registry) = setup();
    let keypad = Instance::new(stream());
    let refused = registry
        .execute(
            &keypad,
            Execute::new(Key::Press('1'))
                .then(Key::Press('2'))
                .then(Key::Refuse),
        )
        .await;
    assert!(matches!(refused, Err(ExecuteError::Rejected(Refused))));
    assert!(log.read_stream(&stream(), 0, 10).await.unwrap().is_empty());

    let together = registry
        .execute(&keypad, Execute::new(Key::Press('1')).then(Key::Twice('2')))
        .await
        .unwrap();
    assert_eq!((together.events, together.version), (3, 3));
    let outcome = together.outcome.expect("appended");
    assert_eq!(
        (outcome.first_position.0, outcome.last_position.0),
        (1, 3),
        "one append"
    );
    let reported = registry
        .execute(&keypad, Execute::new(Key::Report))
        .await
        .unwrap();
    assert_eq!(reported.version, 4);
}

#[actix::test]
async fn rejections_and_empty_decisions_write_nothing() {
    let (log, registry) = setup();
    let keypad = Instance::new(stream());
    let refused = registry.execute(&keypad, Execute::new(Key::Refuse)).await;
    assert!(matches!(refused, Err(ExecuteError::Rejected(Refused))));
    let nothing = registry
        .execute(&keypad, Execute::new(Key::Nothing))
        .await
        .unwrap();
    assert_eq!(
        (nothing.events, nothing.version, nothing.outcome),
        (0, 0, None)
    );
    assert_eq!(log.head().await.unwrap(), GlobalPosition::START);
}

#[actix::test]
async fn envelope_carries_tenant_causation_and_correlation_and_is_published() {
    let (log, registry) = setup();
    let mut feed = registry.subscribe();
    let tenant = events::TenantId::parse("acme").unwrap();
    let keypad = Instance::new(stream()).in_tenant(tenant.clone());
    let correlation = CorrelationId::parse("00000000-0000-4000-8000-0000000000cc").unwrap();
    registry
        .execute(
            &keypad,
            Execute::new(Key::Twice('5')).correlated(correlation),
        )
        .await
        .unwrap();
    let stored = log.read_stream(&stream(), 0, 10).await.unwrap();
    for (e, version) in stored.iter().zip(1..) {
        assert_eq!(e.record.tenant.as_ref(), Some(&tenant));
        assert_eq!(e.record.correlation_id, Some(correlation));
        assert_eq!(e.record.occurred_at, t0());
        let published = feed.recv().await.unwrap();
        assert_eq!(published.version, version);
        assert_eq!(published.position, e.position);
        assert_eq!(published.metadata.event_id, e.record.event_id);
        assert_eq!(published.event, press('5'));
    }
}

#[actix::test]
async fn a_stale_version_is_caught_up_and_decided_again() {
    let (log, registry) = setup();
    let keypad = Instance::new(stream());
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    // Another writer appends behind the actor's back.
    let other = events::codec::encode(
        &press('9').into(),
        events::codec::Metadata::new(
            events::EventId::parse("00000000-0000-4000-8000-0000000000ee").unwrap(),
            t0(),
        ),
    );
    log.append(&stream(), ExpectedVersion::Exact(1), vec![other])
        .await
        .unwrap();
    let done = registry
        .execute(&keypad, Execute::new(Key::Press('2')))
        .await
        .unwrap();
    assert_eq!(done.version, 3);
    let digits: Vec<String> = log
        .read_stream(&stream(), 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.record.payload.clone())
        .collect();
    assert!(digits[1].contains("\"9\"") && digits[2].contains("\"2\""));
}

#[actix::test]
async fn events_are_folded_at_their_stored_occurred_at_live_rebuilt_and_caught_up() {
    // A clock with sub-microsecond digits: the log keeps microseconds, so the live fold must
    // see the truncated instant too, or a rebuilt state would differ from the live one.
    let clock = Arc::new(ManualClock::new(
        t0() + ChronoDuration::nanoseconds(1_234_567),
    ));
    let (log, registry) = setup_at(clock.clone());
    let keypad = Instance::new(stream());
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    let stored = log.read_stream(&stream(), 0, 1).await.unwrap();
    assert_eq!(
        stored[0].record.occurred_at,
        t0() + ChronoDuration::microseconds(1_234)
    );
    clock.set(t0() + ChronoDuration::seconds(5));
    assert_eq!(
        report(&log, &registry, &keypad).await,
        (1_234_000, 1_234_000)
    );
    assert!(registry.retire(&stream()).await);
    assert_eq!(
        report(&log, &registry, &keypad).await,
        (1_234_000, 1_234_000),
        "a rebuild folds the stored instants"
    );

    // Another writer appends a press at 7 s; the actor catches up on its next command.
    let version = log.read_stream(&stream(), 0, 100).await.unwrap().len() as u64;
    let other = events::codec::encode(
        &press('9').into(),
        events::codec::Metadata::new(
            events::EventId::parse("00000000-0000-4000-8000-0000000000ee").unwrap(),
            t0() + ChronoDuration::seconds(7),
        ),
    );
    log.append(&stream(), ExpectedVersion::Exact(version), vec![other])
        .await
        .unwrap();
    assert_eq!(
        report(&log, &registry, &keypad).await,
        (1_234_000, 7_000_000_000),
        "a catch-up folds the other writer's occurred_at"
    );
    assert!(registry.retire(&stream()).await);
    assert_eq!(
        report(&log, &registry, &keypad).await,
        (1_234_000, 7_000_000_000)
    );
}

#[actix::test]
async fn a_panic_fails_the_command_and_the_actor_keeps_serving() {
    let (_log, registry) = setup();
    let keypad = Instance::new(stream());
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    let boom = registry.execute(&keypad, Execute::new(Key::Boom)).await;
    assert!(matches!(boom, Err(ExecuteError::Panicked { .. })));
    let next = registry
        .execute(&keypad, Execute::new(Key::Press('2')))
        .await
        .unwrap();
    assert_eq!(next.version, 2);
}

#[test]
fn registry_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Registry<Keypad>>();
    send_sync::<actix::Addr<AggregateActor<Keypad>>>();
}

#[actix::test]
async fn a_follower_folds_the_feed_and_reads_the_log_only_past_a_gap() {
    let (log, registry) = setup();
    let follower = Follower::<Keypad>::new(log.clone(), registry.subscribe());
    let keypad = Instance::new(stream());
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    // First sight of the stream: read from the log.
    let first = follower.current(&stream(), 0).await.unwrap();
    assert_eq!((first.version, first.state.digits.as_str()), (1, "1"));
    let done = registry
        .execute(&keypad, Execute::new(Key::Twice('2')))
        .await
        .unwrap();
    let fed = follower.current(&stream(), done.version).await.unwrap();
    assert_eq!((fed.version, fed.state.digits.as_str()), (3, "122"));
    // Another writer appends behind the actor's back: the feed never brings it, so the
    // follower still vouches for version 3 ...
    let foreign = press('9');
    let (_, records) = crate::aggregate::stamp(
        std::slice::from_ref(&foreign),
        t0(),
        &SeededIds::new(99),
        None,
        None,
        None,
    );
    log.append(&stream(), ExpectedVersion::Exact(3), records)
        .await
        .unwrap();
    assert_eq!(follower.current(&stream(), 3).await.unwrap().version, 3);
    // ... until the actor's next event leaves a gap: then the log is read, foreign event and all.
    let done = registry
        .execute(&keypad, Execute::new(Key::Press('3')))
        .await
        .unwrap();
    assert_eq!(done.version, 5);
    let caught = follower.current(&stream(), done.version).await.unwrap();
    assert_eq!((caught.version, caught.state.digits.as_str()), (5, "12293"));
    // A stream known to be new needs no read; a forgotten one is read again.
    let other = StreamId::call(CallId::parse("00000000-0000-4000-8000-000000000009").unwrap());
    follower.track_new(&other);
    assert_eq!(follower.current(&other, 0).await.unwrap().version, 0);
    follower.forget(&stream());
    assert_eq!(follower.current(&stream(), 0).await.unwrap().version, 5);
}

#[actix::test]
async fn a_seed_stands_for_the_stream_until_the_first_append() {
    let (log, registry) = setup();
    let keypad = Instance::new(stream());
    // A seed the log does not hold: what the actor and a follower start from shows it was used.
    let seed = Folded {
        version: 0,
        state: Keypad {
            digits: "5".into(),
            ..Keypad::default()
        },
    };
    registry.seed([(stream(), seed)]);
    let follower = Follower::of(&registry);
    let seeded = follower.current(&stream(), 0).await.unwrap();
    assert_eq!((seeded.version, seeded.state.digits.as_str()), (0, "5"));
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    let done = registry
        .execute(&keypad, Execute::new(Key::Report))
        .await
        .unwrap();
    assert_eq!(done.version, 2);
    let fed = follower.current(&stream(), 1).await.unwrap();
    assert_eq!((fed.version, fed.state.digits.as_str()), (2, "51"));
    // The append dropped the seed: a new follower reads what the log holds.
    let late = Follower::of(&registry);
    let read = late.current(&stream(), 0).await.unwrap();
    assert_eq!((read.version, read.state.digits.as_str()), (2, "1"));

    // A stream seeded as new that another writer appended to first: the first append conflicts,
    // the actor catches up and decides again.
    let other = StreamId::call(CallId::parse("00000000-0000-4000-8000-000000000009").unwrap());
    registry.seed_new(&other);
    let (_, records) =
        crate::aggregate::stamp(&[press('9')], t0(), &SeededIds::new(99), None, None, None);
    log.append(&other, ExpectedVersion::Exact(0), records)
        .await
        .unwrap();
    let done = registry
        .execute(&Instance::new(other.clone()), Execute::new(Key::Press('1')))
        .await
        .unwrap();
    assert_eq!(done.version, 2);
    let caught = late.current(&other, 2).await.unwrap();
    assert_eq!(caught.state.digits, "91");
}

/// A memory log whose next stream read, once armed, waits after reading until the test lets it
/// go: what the log returned is fixed, and the test acts before the reader sees it.
#[derive(Debug)]
struct HeldRead {
    inner: Arc<MemoryLog>,
    /// Stream reads begun.
    reads: std::sync::atomic::AtomicUsize,
    armed: std::sync::atomic::AtomicBool,
    read: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

type LogFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, events::LogError>> + Send + 'a>>;

impl EventLog for HeldRead {
    fn append<'a, 'b, 'c>(
        &'a self,
        stream: &'b StreamId,
        expected: ExpectedVersion,
        events: Vec<events::EventRecord>,
    ) -> LogFuture<'c, AppendOutcome>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.inner.append(stream, expected, events)
    }

    fn read_stream<'a, 'b, 'c>(
        &'a self,
        stream: &'b StreamId,
        after: u64,
        max: usize,
    ) -> LogFuture<'c, Vec<events::StoredEvent>>
    where
        'a: 'c,
        'b: 'c,
        Self: 'c,
    {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let page = self.inner.read_stream(stream, after, max).await;
            if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
                self.read.notify_one();
                self.release.notified().await;
            }
            page
        })
    }

    fn read_all<'a, 'c>(
        &'a self,
        after: GlobalPosition,
        max: usize,
    ) -> LogFuture<'c, Vec<events::StoredEvent>>
    where
        'a: 'c,
        Self: 'c,
    {
        self.inner.read_all(after, max)
    }

    fn head<'a, 'c>(&'a self) -> LogFuture<'c, GlobalPosition>
    where
        'a: 'c,
        Self: 'c,
    {
        self.inner.head()
    }

    fn wake_ups(&self) -> tokio::sync::watch::Receiver<GlobalPosition> {
        self.inner.wake_ups()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A keypad pressed once ('1', version 1), and a follower over a log whose next stream read is
/// held until released.
async fn pressed_once_behind_a_held_read()
-> (Registry<Keypad>, Arc<HeldRead>, Follower<Keypad>, Instance) {
    let (log, registry) = setup();
    let held = Arc::new(HeldRead {
        inner: log,
        reads: 0.into(),
        armed: true.into(),
        read: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let follower = Follower::<Keypad>::new(held.clone(), registry.subscribe());
    let keypad = Instance::new(stream());
    registry
        .execute(&keypad, Execute::new(Key::Press('1')))
        .await
        .unwrap();
    (registry, held, follower, keypad)
}

#[actix::test]
async fn a_follower_does_not_vouch_for_a_read_the_feed_overtook() {
    let (registry, held, follower, keypad) = pressed_once_behind_a_held_read().await;
    // The first read of the stream returns version 1; before the follower stores it, version 2
    // is recorded and its feed event is drained (by a read of another stream).
    let other = StreamId::call(CallId::parse("00000000-0000-4000-8000-000000000009").unwrap());
    let watched = stream();
    let (first, ()) = tokio::join!(follower.current(&watched, 0), async {
        held.read.notified().await;
        registry
            .execute(&keypad, Execute::new(Key::Press('2')))
            .await
            .unwrap();
        follower.current(&other, 0).await.unwrap();
        held.release.notify_one();
    });
    assert_eq!(first.unwrap().version, 1);
    // The follower saw version 2 go by unfolded: it reads again instead of answering version 1.
    let now = follower.current(&stream(), 0).await.unwrap();
    assert_eq!((now.version, now.state.digits.as_str()), (2, "12"));
}

#[actix::test]
async fn callers_asking_for_a_stream_being_read_wait_for_that_read() {
    let (registry, held, follower, keypad) = pressed_once_behind_a_held_read().await;
    let watched = stream();
    // The first caller's read is held; three more ask meanwhile, then it is let go.
    let (first, (others, ())) = tokio::join!(follower.current(&watched, 0), async {
        held.read.notified().await;
        tokio::join!(
            futures_util::future::join_all((0..3).map(|_| follower.current(&watched, 0))),
            async {
                tokio::task::yield_now().await;
                held.release.notify_one();
            }
        )
    });
    assert_eq!(first.unwrap().version, 1);
    for other in others {
        let other = other.unwrap();
        assert_eq!((other.version, other.state.digits.as_str()), (1, "1"));
    }
    assert_eq!(held.reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    // One that needs more than that read brought reads again, once.
    let done = registry
        .execute(&keypad, Execute::new(Key::Press('2')))
        .await
        .unwrap();
    let after = follower.current(&watched, done.version).await.unwrap();
    assert_eq!((after.version, after.state.digits.as_str()), (2, "12"));
    // Every caller is done: the stream keeps no read gate.
    assert_eq!(follower.read_gates(), 0);
}
