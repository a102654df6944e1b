//! The simulated world: time that moves only from one scheduled happening to the next, a seeded
//! RNG, seeded ids, and the in-memory log every accepted command appends to. `execute` is the
//! same sequence an actor shell runs (decide at `now`, append with the exact expected version,
//! evolve with the event's recorded time), minus the actor; aggregates' deadlines are collected
//! into a timer queue and fed back when simulated time reaches them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use engine::{Aggregate, stamp};
use events::log::memory::MemoryLog;
use events::{EventLog, ExpectedVersion, IdGen, SeededIds, StreamId, TenantId};
use futures_util::FutureExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// What a run reports. Everything here is a function of the seed and the scenario.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub scenario: String,
    pub seed: u64,
    pub events: u64,
    pub commands: u64,
    /// Commands an aggregate refused (normal: e.g. an answer racing a cancel).
    pub rejected: u64,
    /// Counters the scenario keeps (calls offered, answered, …), in a stable order.
    pub counters: BTreeMap<&'static str, u64>,
    /// Invariant violations, each with the simulated time and what was wrong.
    pub violations: Vec<String>,
    /// SHA-256 of the log in the portable export format.
    pub log_sha256: String,
    pub simulated_seconds: i64,
}

/// The simulated instant every world starts at: Monday 2026-01-05 09:00:00 UTC.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A time span of `s` seconds, to the microsecond.
pub fn secs(s: f64) -> TimeDelta {
    TimeDelta::microseconds((s * 1e6) as i64)
}

/// The deadlines in `after` that were not already armed in `before` (the agenda holds those).
pub fn new_deadlines<C: PartialEq>(
    before: &[engine::Deadline<C>],
    after: Vec<engine::Deadline<C>>,
) -> impl Iterator<Item = engine::Deadline<C>> {
    after.into_iter().filter(move |d| !before.contains(d))
}

/// One aggregate instance in the world: its state and stream version.
#[derive(Debug, Clone, Default)]
pub struct Instance<A> {
    pub state: A,
    pub version: u64,
}

/// Time, randomness, ids and the log.
#[derive(Debug)]
pub struct World {
    pub now: DateTime<Utc>,
    pub rng: ChaCha20Rng,
    ids: SeededIds,
    log: Arc<MemoryLog>,
    tenant: TenantId,
    events: u64,
    pub commands: u64,
    pub rejected: u64,
    pub violations: Vec<String>,
}

impl World {
    pub fn new(seed: u64, tenant: TenantId) -> Self {
        Self {
            now: start_time(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            ids: SeededIds::new(seed ^ 0x1ed9_e211),
            log: Arc::new(MemoryLog::new()),
            tenant,
            events: 0,
            commands: 0,
            rejected: 0,
            violations: Vec::new(),
        }
    }

    /// A fresh UUID from the world's seeded generator.
    pub fn uuid(&self) -> uuid::Uuid {
        self.ids.next_uuid()
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.log.clone()
    }

    /// Records an invariant violation at the current simulated time.
    pub fn violation(&mut self, what: impl std::fmt::Display) {
        let at = self.now.format("%H:%M:%S%.3f");
        self.violations.push(format!("{at}: {what}"));
    }

    /// An exponentially distributed delay until the next of a stream of happenings arriving at
    /// `rate_per_sec`.
    pub fn exp_delay(&mut self, rate_per_sec: f64) -> TimeDelta {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        secs(-u.ln() / rate_per_sec.max(1e-9))
    }

    /// A delay drawn uniformly from `lo..hi` seconds.
    pub fn uniform_secs(&mut self, lo: f64, hi: f64) -> TimeDelta {
        secs(self.rng.random_range(lo..hi))
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    /// Runs one command against one aggregate: decide at `now`, append durably with the exact
    /// expected version, evolve with the recorded time. A rejection changes nothing.
    pub fn execute<A: Aggregate>(
        &mut self,
        stream: &StreamId,
        instance: &mut Instance<A>,
        command: &A::Command,
    ) -> Result<Vec<A::Event>, A::Rejection> {
        self.commands += 1;
        let produced = match instance.state.decide(command, self.now) {
            Ok(events) => events,
            Err(rejection) => {
                self.rejected += 1;
                return Err(rejection);
            }
        };
        if produced.is_empty() {
            return Ok(produced);
        }
        let (metadata, records) = stamp(
            &produced,
            self.now,
            &self.ids,
            Some(&self.tenant),
            None,
            None,
        );
        let appended = self
            .log
            .append(stream, ExpectedVersion::Exact(instance.version), records)
            .now_or_never();
        match appended {
            Some(Ok(outcome)) => {
                instance.version = outcome.next_expected;
                self.events += produced.len() as u64;
                for (e, m) in produced.iter().zip(&metadata) {
                    instance.state.evolve(e, m.occurred_at);
                }
            }
            Some(Err(e)) => self.violation(format!("append to {stream} failed: {e}")),
            None => self.violation(format!("append to {stream} did not complete at once")),
        }
        Ok(produced)
    }

    /// [`execute`](Self::execute), handing `arm` each deadline the command armed (the ones its
    /// new state has and the old one had not), for the caller's timer queue.
    pub fn execute_arming<A: Aggregate>(
        &mut self,
        stream: &StreamId,
        instance: &mut Instance<A>,
        command: &A::Command,
        mut arm: impl FnMut(engine::Deadline<A::Command>),
    ) -> Result<Vec<A::Event>, A::Rejection>
    where
        A::Command: PartialEq,
    {
        let before = instance.state.deadlines();
        let result = self.execute(stream, instance, command);
        // Deadlines only change with the state.
        if matches!(&result, Ok(events) if !events.is_empty()) {
            new_deadlines(&before, instance.state.deadlines()).for_each(&mut arm);
        }
        result
    }

    /// Rebuilds an aggregate from its stream in the world's log, each event folded at its recorded
    /// time, as an actor shell does after a restart.
    pub fn rebuild<A: Aggregate>(&self, stream: &StreamId) -> Result<A, String> {
        let log = self.log();
        let mut after = 0u64;
        let mut history: Vec<(A::Event, DateTime<Utc>)> = Vec::new();
        loop {
            let page = match log.read_stream(stream, after, 4096).now_or_never() {
                Some(Ok(page)) => page,
                Some(Err(e)) => return Err(format!("reading {stream}: {e}")),
                None => return Err(format!("reading {stream} did not complete at once")),
            };
            let Some(last) = page.last() else { break };
            after = last.version;
            for stored in &page {
                let recorded = events::codec::decode(stored)
                    .map_err(|e| format!("{stream} v{}: {e}", stored.version))?;
                let at = recorded.metadata.occurred_at;
                let event = A::Event::try_from(recorded.event)
                    .map_err(|other| format!("{stream}: foreign event {}", other.event_type()))?;
                history.push((event, at));
            }
        }
        Ok(A::replay(history.iter().map(|(e, at)| (e, *at))))
    }

    /// SHA-256 of the whole log in the portable export format.
    pub fn log_sha256(&self) -> String {
        struct HashWriter(Sha256);
        impl Write for HashWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = HashWriter(Sha256::new());
        if self.log.export(&mut out).is_err() {
            return String::from("unhashable");
        }
        hex(&out.0.finalize())
    }

    /// The report of a finished run: the world's tallies, the scenario's counters, the log hash.
    pub fn into_report(
        self,
        scenario: String,
        seed: u64,
        counters: BTreeMap<&'static str, u64>,
    ) -> Report {
        Report {
            scenario,
            seed,
            events: self.events,
            commands: self.commands,
            rejected: self.rejected,
            counters,
            log_sha256: self.log_sha256(),
            simulated_seconds: (self.now - start_time()).num_seconds(),
            violations: self.violations,
        }
    }
}

/// A scenario as [`run`] drives it: a world, an agenda of the scenario's happenings, and what
/// the scenario does with each.
pub trait Scenario {
    type Happening: std::fmt::Debug;

    fn world(&mut self) -> &mut World;

    fn agenda(&mut self) -> &mut Agenda<Self::Happening>;

    /// Whether `what`, due `at`, is no happening at all (a timer disarmed since it was queued, a
    /// generator due after `load_ends`): it is dropped without a step and without moving the
    /// clock. By default everything is a happening.
    fn dropped(
        &self,
        _what: &Self::Happening,
        _at: DateTime<Utc>,
        _load_ends: DateTime<Utc>,
    ) -> bool {
        false
    }

    /// Handles `what` at the world's current time and checks the step's invariants. `load_on`
    /// is true until the load stops; after that the scenario starts nothing new.
    fn step(&mut self, what: Self::Happening, load_on: bool);

    /// Queues the next `what` of a Poisson process at `rate_per_sec`: after an exponential
    /// wait from the world's current time.
    fn next_arrival(&mut self, rate_per_sec: f64, what: Self::Happening) {
        let world = self.world();
        let at = world.now + world.exp_delay(rate_per_sec);
        self.agenda().at(at, what);
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The load lasts this many minutes from the start.
    pub minutes: u32,
    /// Liveness bound: draining may take at most this long after the load stops.
    pub drain: TimeDelta,
    /// Liveness bound: at most this many steps in all.
    pub steps: u64,
}

/// Runs `sim` from the world's current time until its agenda is empty: happenings in time order,
/// the load for `limits.minutes`, then the drain. Overrunning either liveness bound is a
/// violation that ends the run. Calls `progress(simulated seconds done, load seconds)` about
/// once a simulated minute and once at the end.
pub fn run<S: Scenario>(sim: &mut S, limits: Limits, progress: &mut dyn FnMut(u64, u64)) {
    let start = sim.world().now;
    let load_ends = start + TimeDelta::minutes(i64::from(limits.minutes));
    let drain_limit = load_ends + limits.drain;
    let total = (load_ends - start).num_seconds().max(1) as u64;
    let mut last_report = 0u64;
    let mut steps = 0u64;
    while let Some((at, what)) = sim.agenda().pop() {
        if sim.dropped(&what, at, load_ends) {
            continue;
        }
        steps += 1;
        if at > drain_limit || steps > limits.steps {
            let pending = sim.agenda().len();
            sim.world().violation(format!(
                "liveness: still busy after {steps} steps ({pending} pending): {what:?}"
            ));
            break;
        }
        let world = sim.world();
        world.now = at.max(world.now);
        let load_on = world.now < load_ends;
        sim.step(what, load_on);
        let done = (sim.world().now - start).num_seconds().max(0) as u64;
        if done >= last_report + 60 {
            last_report = done;
            progress(done.min(total), total);
        }
    }
    progress(total, total);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One agenda entry: when, insertion sequence (breaks ties), what.
type Entry<T> = Reverse<(DateTime<Utc>, u64, Slot<T>)>;

/// The agenda: what happens next, in time order; ties keep insertion order.
#[derive(Debug)]
pub struct Agenda<T> {
    heap: BinaryHeap<Entry<T>>,
    seq: u64,
}

/// Wrapper so the payload does not take part in ordering.
#[derive(Debug)]
struct Slot<T>(T);

impl<T> PartialEq for Slot<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Slot<T> {}
impl<T> PartialOrd for Slot<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Slot<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> Agenda<T> {
    pub fn at(&mut self, when: DateTime<Utc>, what: T) {
        self.seq += 1;
        self.heap.push(Reverse((when, self.seq, Slot(what))));
    }

    pub fn pop(&mut self) -> Option<(DateTime<Utc>, T)> {
        self.heap.pop().map(|Reverse((at, _, Slot(t)))| (at, t))
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
