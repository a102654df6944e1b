//! Deterministic simulations: a manual clock, a seeded RNG and an in-memory log drive the engine
//! through scenarios (busy hour, queue storm, …) and check invariants after every step. The same
//! seed always yields a byte-identical log. Grown by the engine issue.

pub use events;
