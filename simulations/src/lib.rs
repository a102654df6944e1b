//! Deterministic simulations. A [`world::World`] holds simulated time, a seeded ChaCha RNG, seeded
//! ids and an in-memory event log, and drives the engine's pure aggregates (`decide` → append →
//! `evolve`) through a scenario, with the aggregates' own deadlines fired by simulated time. No
//! wall clock, no OS randomness and no unordered iteration reach the log, so the same seed and
//! scenario always produce a byte-identical log; its SHA-256 is part of every report. Invariants
//! are checked after every step and once more after a liveness phase in which the load stops and
//! everything must drain.

pub mod busy_hour;
pub mod chat_burst;
pub mod conference_storm;
pub mod edge;
pub mod queue_storm;
pub mod world;

pub use busy_hour::{BusyHour, run_busy_hour};
pub use chat_burst::{ChatBurst, run_chat_burst};
pub use conference_storm::{ConferenceStorm, run_conference_storm};
pub use queue_storm::{QueueStorm, run_queue_storm};
pub use world::Report;
