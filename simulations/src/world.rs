//! The simulated world: time that moves only from one scheduled happening to the next, a seeded
//! RNG, seeded ids, and the in-memory log every accepted command appends to. `execute` is the
//! same sequence an actor shell runs (decide at `now`, append with the exact expected version,
//! evolve with the event's recorded time), minus the actor; aggregates' deadlines are collected
//! into a timer queue and fed back when simulated time reaches them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use engine::{Aggregate, stamp};
use events::log::memory::MemoryLog;
use events::{EventLog, ExpectedVersion, IdGen, SeededIds, StreamId, TenantId};
use futures_util::FutureExt;
use rand::SeedableRng;
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
