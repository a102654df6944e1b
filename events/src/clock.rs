//! Time and identity, injected. `Clock` gives "now" and `IdGen` gives fresh UUIDs; the system
//! implementations read the wall clock and the OS RNG, the manual and seeded ones make runs
//! reproducible. This is the only module allowed to call `Utc::now()` or `Uuid::new_v4()`
//! (enforced by `clippy.toml`): everything else receives a `Clock` and an `IdGen`.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use uuid::Uuid;

/// Source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; microsecond resolution (what the log stores).
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: AtomicI64::new(start.timestamp_micros()),
        }
    }
    /// 2026-01-01T00:00:00Z: a fixed origin for tests and simulations.
    pub fn at_epoch() -> Self {
        Self::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }
    pub fn advance(&self, by: chrono::Duration) {
        let step = by.num_microseconds().unwrap_or(i64::MAX);
        self.micros.fetch_add(step, Ordering::SeqCst);
    }
    pub fn set(&self, at: DateTime<Utc>) {
        self.micros.store(at.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// Source of fresh UUIDs (event ids, call ids, …).
pub trait IdGen: Send + Sync + fmt::Debug {
    fn next_uuid(&self) -> Uuid;
}

/// Time-ordered random UUIDs (version 7: a millisecond timestamp, then random bits). Ids made
/// one after another sort one after another, so the log's event-id index grows at its right
/// edge instead of touching a random page per event. The random bits come from a per-thread
/// generator seeded by the OS (uuid's `fast-rng`), not a system call per id.
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomIds;

impl IdGen for RandomIds {
    #[allow(clippy::disallowed_methods)]
    fn next_uuid(&self) -> Uuid {
        Uuid::now_v7()
    }
}

/// Deterministic v4-shaped UUIDs from a ChaCha20 stream: the same seed yields the same ids.
pub struct SeededIds {
    rng: Mutex<ChaCha20Rng>,
}

impl SeededIds {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(ChaCha20Rng::seed_from_u64(seed)),
        }
    }
}

impl fmt::Debug for SeededIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededIds")
    }
}

impl IdGen for SeededIds {
    fn next_uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        match self.rng.lock() {
            Ok(mut rng) => rng.fill_bytes(&mut bytes),
            Err(poisoned) => poisoned.into_inner().fill_bytes(&mut bytes),
        }
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_epoch();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::milliseconds(1500));
        assert_eq!((c.now() - t0).num_milliseconds(), 1500);
    }

    #[test]
    fn seeded_ids_repeat_per_seed_and_differ_across_seeds() {
        let a: Vec<_> = (0..4)
            .map(|_| SeededIds::new(7))
            .map(|g| g.next_uuid())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let g = SeededIds::new(7);
        let first = g.next_uuid();
        assert_ne!(first, g.next_uuid());
        assert_ne!(SeededIds::new(8).next_uuid(), first);
        assert_eq!(first.get_version_num(), 4);
    }

    #[test]
    fn system_ids_are_time_ordered_and_unique() {
        let ids: Vec<_> = (0..1000).map(|_| RandomIds.next_uuid()).collect();
        assert!(ids.iter().all(|u| u.get_version_num() == 7));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        // Ordered by their millisecond prefix.
        let millis: Vec<u64> = ids
            .iter()
            .map(|u| {
                u.get_timestamp().map_or(0, |t| {
                    t.to_unix().0 * 1000 + u64::from(t.to_unix().1) / 1_000_000
                })
            })
            .collect();
        assert!(millis.windows(2).all(|w| w[0] <= w[1]));
    }
}
