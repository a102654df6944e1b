//! The runtime through its public surface: a toy call aggregate (hold, resume, park with a
//! timeout held in state as a deadline, DTMF, and a poison command whose `decide` panics) run by
//! the registry over the memory and the embedded SQLite logs. The toy stands in for the real
//! aggregates so these tests do not depend on them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::runtime::{
    Execute, ExecuteError, Instance, Registry, RegistryConfig, Services, measure_sqlite,
};
use engine::testing::t0;
use engine::{Aggregate, Deadline};
use events::log::memory::MemoryLog;
use events::log::sqlite::SqliteLog;
use events::model::CallEvent;
use events::{
    CallId, EventLog, IdGen, LegId, ManualClock, PhoneNumber, SeededIds, StoreOptions, StreamId,
};

#[derive(Debug, Clone, Default)]
struct ToyCall {
    id: Option<CallId>,
    held: bool,
    parked_until: Option<DateTime<Utc>>,
    timed_out: u32,
    digits: String,
}

#[derive(Debug, Clone)]
enum Toy {
    Hold(CallId),
    Resume(CallId),
    Park(CallId, DateTime<Utc>),
    ParkTimeout,
    Dtmf(CallId, char),
    Poison,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ToyRejected {
    #[error("the call is already on hold")]
    AlreadyHeld,
    #[error("the call is not on hold")]
    NotHeld,
}

fn leg() -> LegId {
    LegId::parse("00000000-0000-4000-8000-00000000001e").unwrap()
}

fn slot() -> PhoneNumber {
    PhoneNumber::parse("700").unwrap()
}

impl Aggregate for ToyCall {
    type Command = Toy;
    type Event = CallEvent;
    type Rejection = ToyRejected;

    fn decide(&self, command: &Toy, now: DateTime<Utc>) -> Result<Vec<CallEvent>, ToyRejected> {
        let leg = leg();
        match command {
            Toy::Hold(call) if self.held => {
                let _ = call;
                Err(ToyRejected::AlreadyHeld)
            }
            Toy::Hold(call) => Ok(vec![CallEvent::CallHeld { call: *call, leg }]),
            Toy::Resume(call) if self.held || self.parked_until.is_some() => {
                Ok(vec![CallEvent::CallResumed { call: *call, leg }])
            }
            Toy::Resume(_) => Err(ToyRejected::NotHeld),
            Toy::Park(call, at) => Ok(vec![CallEvent::CallParked {
                call: *call,
                leg,
                slot: slot(),
                timeout_at: *at,
                parked_by: None,
            }]),
            Toy::ParkTimeout => match (self.id, self.parked_until) {
                (Some(call), Some(at)) if now >= at => Ok(vec![CallEvent::ParkTimedOut {
                    call,
                    leg,
                    slot: slot(),
                    return_to: None,
                }]),
                _ => Ok(vec![]),
            },
            Toy::Dtmf(call, digit) => Ok(vec![CallEvent::DtmfReceived {
                call: *call,
                leg,
                digit: *digit,
                duration_ms: 80,
            }]),
            Toy::Poison => panic!("poison command"),
        }
    }

    fn evolve(&mut self, event: &CallEvent, _at: DateTime<Utc>) {
        match event {
            CallEvent::CallHeld { call, .. } => {
                self.id = Some(*call);
                self.held = true;
            }
            CallEvent::CallResumed { call, .. } => {
                self.id = Some(*call);
                self.held = false;
                self.parked_until = None;
            }
            CallEvent::CallParked {
                call, timeout_at, ..
            } => {
                self.id = Some(*call);
                self.parked_until = Some(*timeout_at);
            }
            CallEvent::ParkTimedOut { .. } => {
                self.parked_until = None;
                self.timed_out += 1;
            }
            CallEvent::DtmfReceived { call, digit, .. } => {
                self.id = Some(*call);
                self.digits.push(*digit);
            }
            _ => {}
        }
    }

    fn deadlines(&self) -> Vec<Deadline<Toy>> {
        self.parked_until
            .map(|at| Deadline::new(at, Toy::ParkTimeout))
            .into_iter()
            .collect()
    }
}

struct World {
    log: Arc<dyn EventLog>,
    clock: Arc<ManualClock>,
    ids: Arc<SeededIds>,
}

impl World {
    fn memory() -> Self {
        Self::on(Arc::new(MemoryLog::new()), 42)
    }

    /// `seed` must differ between worlds sharing a log: repeated event ids make an append an
    /// idempotent retry of an earlier one.
    fn on(log: Arc<dyn EventLog>, seed: u64) -> Self {
        Self {
            log,
            clock: Arc::new(ManualClock::new(t0())),
            ids: Arc::new(SeededIds::new(seed)),
        }
    }

    fn registry(&self, config: RegistryConfig) -> Registry<ToyCall> {
        let services = Services::new(self.log.clone(), self.clock.clone(), self.ids.clone(), 256);
        Registry::new(services, config)
    }

    fn call(&self) -> (CallId, Instance) {
        let call = CallId::from(self.ids.next_uuid());
        (call, Instance::new(StreamId::call(call)))
    }

    async fn types(&self, stream: &StreamId) -> Vec<String> {
        self.log
            .read_stream(stream, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.record.event_type)
            .collect()
    }

    /// Waits (real time, bounded) until `stream` holds an event of type `ty`.
    async fn eventually_has(&self, stream: &StreamId, ty: &str) -> bool {
        for _ in 0..100 {
            if self.types(stream).await.iter().any(|t| t == ty) {
                return true;
            }
            actix::clock::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

fn ms(n: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(n)
}

#[actix::test]
async fn one_of_100_live_calls_panics_and_the_other_99_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    let log = SqliteLog::open(dir.path().join("log.db"), StoreOptions::default())
        .await
        .unwrap();
    let world = World::on(Arc::new(log), 1);
    let registry = world.registry(RegistryConfig::default());
    let calls: Vec<(CallId, Instance)> = (0..100).map(|_| world.call()).collect();

    // Every call is live and has history.
    let first = futures_util::future::join_all(
        calls
            .iter()
            .map(|(c, i)| registry.execute(i, Execute::new(Toy::Dtmf(*c, '1')))),
    )
    .await;
    assert!(first.iter().all(|r| matches!(r, Ok(e) if e.version == 1)));
    assert_eq!(registry.live(), 100);

    // Call 42 is poisoned while the others take commands concurrently.
    let poisoned = &calls[42];
    let round = futures_util::future::join_all(calls.iter().enumerate().map(|(n, (c, i))| {
        let command = if n == 42 { Toy::Poison } else { Toy::Hold(*c) };
        registry.execute(i, Execute::new(command))
    }))
    .await;
    for (n, reply) in round.iter().enumerate() {
        if n == 42 {
            assert!(
                matches!(reply, Err(ExecuteError::Panicked { stream }) if *stream == poisoned.1.stream),
                "{reply:?}"
            );
        } else {
            assert!(
                matches!(reply, Ok(e) if e.version == 2),
                "call {n}: {reply:?}"
            );
        }
    }

    // The 99 keep accepting commands; their state survived (a second hold is rejected).
    for (n, (c, i)) in calls.iter().enumerate().filter(|(n, _)| *n != 42) {
        let again = registry.execute(i, Execute::new(Toy::Hold(*c))).await;
        assert!(
            matches!(again, Err(ExecuteError::Rejected(ToyRejected::AlreadyHeld))),
            "call {n}: {again:?}"
        );
        let resumed = registry
            .execute(i, Execute::new(Toy::Resume(*c)))
            .await
            .unwrap();
        assert_eq!(resumed.version, 3);
        assert_eq!(
            world.types(&i.stream).await,
            ["DtmfReceived", "CallHeld", "CallResumed"]
        );
    }

    // The poisoned call was rebuilt from its stream (the same actor, still live) and takes the
    // next valid command at the right version.
    assert!(registry.is_live(&poisoned.1.stream));
    assert_eq!(world.types(&poisoned.1.stream).await, ["DtmfReceived"]);
    let next = registry
        .execute(&poisoned.1, Execute::new(Toy::Hold(poisoned.0)))
        .await
        .unwrap();
    assert_eq!((next.events, next.version), (1, 2));
    assert_eq!(registry.live(), 100);
    assert_eq!(world.log.head().await.unwrap().0, 100 + 99 * 2 + 1);
}

#[actix::test]
async fn a_deadline_feeds_its_command_back_when_it_passes() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig::default());
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Park(call, t0() + ms(50))))
        .await
        .unwrap();
    world.clock.advance(ms(100));
    assert!(world.eventually_has(&instance.stream, "ParkTimedOut").await);
    assert_eq!(
        world.types(&instance.stream).await,
        ["CallParked", "ParkTimedOut"]
    );
}

#[actix::test]
async fn a_deadline_waits_for_the_injected_clock() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig::default());
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Park(call, t0() + ms(30))))
        .await
        .unwrap();
    // The timer fires after 30 ms of real time, but the clock has not reached the deadline:
    // nothing happens until it does.
    actix::clock::sleep(Duration::from_millis(150)).await;
    assert_eq!(world.types(&instance.stream).await, ["CallParked"]);
    world.clock.advance(ms(30));
    assert!(world.eventually_has(&instance.stream, "ParkTimedOut").await);
}

#[actix::test]
async fn a_deadline_cancelled_by_an_event_does_not_fire() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig::default());
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Park(call, t0() + ms(40))))
        .await
        .unwrap();
    registry
        .execute(&instance, Execute::new(Toy::Resume(call)))
        .await
        .unwrap();
    world.clock.advance(ms(100));
    actix::clock::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        world.types(&instance.stream).await,
        ["CallParked", "CallResumed"]
    );
}

#[actix::test]
async fn deadlines_are_rearmed_from_the_rebuilt_state_after_a_restart() {
    let world = World::memory();
    let (call, instance) = world.call();
    {
        let before = world.registry(RegistryConfig::default());
        before
            .execute(&instance, Execute::new(Toy::Park(call, t0() + ms(200))))
            .await
            .unwrap();
        before.shutdown().await;
    }
    world.clock.advance(ms(500));
    actix::clock::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        world.types(&instance.stream).await,
        ["CallParked"],
        "nothing fires while no actor holds the call"
    );

    let after = world.registry(RegistryConfig::default());
    after.activate(&instance);
    assert!(world.eventually_has(&instance.stream, "ParkTimedOut").await);
    // The rebuilt actor continues from the right version.
    let next = after
        .execute(&instance, Execute::new(Toy::Dtmf(call, '5')))
        .await
        .unwrap();
    assert_eq!(next.version, 3);
}

#[actix::test]
async fn idle_actors_stop_and_the_next_command_rebuilds_them() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig {
        idle_after: Some(Duration::from_millis(80)),
        ..RegistryConfig::default()
    });
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Hold(call)))
        .await
        .unwrap();
    assert!(registry.is_live(&instance.stream));
    for _ in 0..50 {
        if !registry.is_live(&instance.stream) {
            break;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !registry.is_live(&instance.stream),
        "the idle actor stopped"
    );
    assert_eq!(registry.live(), 0);
    // Rebuilt from the stream: it still knows the call is held.
    let again = registry
        .execute(&instance, Execute::new(Toy::Hold(call)))
        .await;
    assert!(matches!(
        again,
        Err(ExecuteError::Rejected(ToyRejected::AlreadyHeld))
    ));
    let resumed = registry
        .execute(&instance, Execute::new(Toy::Resume(call)))
        .await
        .unwrap();
    assert_eq!(resumed.version, 2);
}

#[actix::test]
async fn actors_holding_deadlines_are_not_stopped_for_idleness() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig {
        idle_after: Some(Duration::from_millis(40)),
        ..RegistryConfig::default()
    });
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Park(call, t0() + ms(60_000))))
        .await
        .unwrap();
    actix::clock::sleep(Duration::from_millis(250)).await;
    assert!(registry.is_live(&instance.stream));
}

#[actix::test]
async fn try_execute_refuses_commands_when_the_mailbox_is_full() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig {
        mailbox_capacity: 4,
        ..RegistryConfig::default()
    });
    let (call, instance) = world.call();
    registry
        .execute(&instance, Execute::new(Toy::Dtmf(call, '0')))
        .await
        .unwrap();
    // The actor runs on this thread, so it cannot take a command while we queue.
    let mut pending = Vec::new();
    let mut overloaded = 0;
    for _ in 0..50 {
        match registry.try_submit(&instance, Execute::new(Toy::Dtmf(call, '1'))) {
            Ok(p) => pending.push(p),
            Err(ExecuteError::Overloaded { stream }) => {
                assert_eq!(stream, instance.stream);
                overloaded += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(
        (pending.len(), overloaded),
        (4, 46),
        "the mailbox holds 4 commands"
    );
    let accepted = pending.len() as u64;
    let mut versions = Vec::new();
    for p in pending {
        versions.push(p.await.unwrap().version);
    }
    assert!(
        versions.iter().copied().eq(2..=accepted + 1),
        "{versions:?}"
    );
    // Once drained, it takes commands again.
    let more = registry
        .try_execute(&instance, Execute::new(Toy::Dtmf(call, '2')))
        .await
        .unwrap();
    assert_eq!(more.version, accepted + 2);
}

#[actix::test]
async fn the_registry_handle_works_from_plain_tokio_tasks() {
    let world = World::memory();
    let registry = world.registry(RegistryConfig {
        arbiters: 2,
        ..RegistryConfig::default()
    });
    let calls: Vec<(CallId, Instance)> = (0..8).map(|_| world.call()).collect();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = registry.clone();
    let work = calls.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let versions = rt.block_on(async move {
            let tasks: Vec<_> = work
                .into_iter()
                .map(|(c, i)| {
                    let r = handle.clone();
                    tokio::spawn(async move {
                        r.execute(&i, Execute::new(Toy::Hold(c))).await.unwrap();
                        r.try_execute(&i, Execute::new(Toy::Resume(c)))
                            .await
                            .unwrap()
                            .version
                    })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let _ = tx.send(versions);
    });
    let versions = rx.await.unwrap();
    assert_eq!(versions, vec![2; 8]);
    for (_, i) in &calls {
        assert_eq!(world.types(&i.stream).await, ["CallHeld", "CallResumed"]);
    }
}

#[actix::test]
async fn the_embedded_log_survives_a_restart_of_registry_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let call = CallId::parse("00000000-0000-4000-8000-0000000000ca").unwrap();
    let instance = Instance::new(StreamId::call(call));
    {
        let log = SqliteLog::open(path.clone(), StoreOptions::default())
            .await
            .unwrap();
        let world = World::on(Arc::new(log), 2);
        let registry = world.registry(RegistryConfig::default());
        for d in ['1', '2', '3'] {
            registry
                .execute(&instance, Execute::new(Toy::Dtmf(call, d)))
                .await
                .unwrap();
        }
        registry
            .execute(&instance, Execute::new(Toy::Hold(call)))
            .await
            .unwrap();
        registry.shutdown().await;
    }
    // Let the retired actors drop their handles on the log before it is reopened.
    actix::clock::sleep(Duration::from_millis(50)).await;
    let log = SqliteLog::open(path, StoreOptions::default())
        .await
        .unwrap();
    let world = World::on(Arc::new(log), 3);
    let registry = world.registry(RegistryConfig::default());
    let held = registry
        .execute(&instance, Execute::new(Toy::Hold(call)))
        .await;
    assert!(matches!(
        held,
        Err(ExecuteError::Rejected(ToyRejected::AlreadyHeld))
    ));
    let resumed = registry
        .execute(&instance, Execute::new(Toy::Resume(call)))
        .await
        .unwrap();
    assert_eq!(resumed.version, 5);
}

/// The figure for the issue: events/s through the actix actors with the embedded log.
/// `cargo test -p engine --release --test runtime -- --ignored --nocapture`
#[actix::test]
#[ignore = "a measurement, not a test; run it in a release build"]
async fn throughput_through_the_actors_with_the_embedded_log() {
    for (actors, per_actor, arbiters) in [(100, 200, 0), (500, 40, 0), (500, 40, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let ids = SeededIds::new(7);
        let calls: Vec<(CallId, Instance)> = (0..actors)
            .map(|_| {
                let c = CallId::from(ids.next_uuid());
                (c, Instance::new(StreamId::call(c)))
            })
            .collect();
        let instances: Vec<Instance> = calls.iter().map(|(_, i)| i.clone()).collect();
        let config = RegistryConfig {
            arbiters,
            mailbox_capacity: 16,
            ..RegistryConfig::default()
        };
        let t = measure_sqlite::<ToyCall, _>(
            dir.path().join("bench.db"),
            StoreOptions::default(),
            config,
            &instances,
            per_actor,
            |a, n| {
                let digit = char::from(b'0' + (n % 10) as u8);
                Toy::Dtmf(calls[a].0, digit)
            },
        )
        .await
        .unwrap();
        assert_eq!(t.failed, 0, "{:?}", t.first_failure);
        println!("arbiters {arbiters}: {t}");
    }
}
