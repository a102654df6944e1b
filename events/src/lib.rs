//! Ledgerline's vocabulary and its log. This crate owns the typed ids, the past-tense domain
//! events of every aggregate, the envelope and stored format (the only place that defines it),
//! the `EventLog` trait with its backends (embedded SQLite, PostgreSQL, KurrentDB, memory), and
//! the injected `Clock` and `IdGen`.
//!
//! Naming and versioning rules: event types are past tense (`CallAnswered`); events change only
//! by adding variants or optional fields; a change to an existing variant's shape bumps its
//! schema version and adds an upcaster in `codec`, and a golden fixture per variant guards the
//! stored form.

pub mod clock;
pub mod codec;
pub mod export;
pub mod ids;
pub mod log;
pub mod model;

pub use clock::{Clock, IdGen, ManualClock, RandomIds, SeededIds, SystemClock};
pub use ids::*;
pub use log::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoreOptions, StoreUrl, StoredEvent, Subscription, open, subscribe,
};
