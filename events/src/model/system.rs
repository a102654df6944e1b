//! System events: facts about the engine itself rather than any tenant. Node start and stop
//! (timers are re-armed from rebuilt state after a start), configuration reloads, and the
//! self-repair loop: an invariant found violated (an agent stuck "in call", a call that never
//! ended) is recorded, the repair is appended as ordinary compensating events on the affected
//! stream (their causation id is the detection event), and its completion is recorded here.
//! Stream `system-<node>` or `system-invariants`.

use crate::ids::{EventId, StreamId};
use crate::log::GlobalPosition;

event_enum! {
    /// Facts about the engine. Variants are never renamed or removed; add a new one.
    pub enum SystemEvent in System {
        EngineStarted = "EngineStarted" {
            /// Node name.
            node: String,
            /// Build version.
            version: String,
            /// The log it runs on, as `EventLog::describe` gives it (no secrets).
            store: String,
        },
        /// A clean shutdown; a start without a stop before it means a crash.
        EngineStopped = "EngineStopped" {
            node: String,
            reason: String,
        },
        /// The engine configuration was re-read and applied.
        SystemConfigReloaded = "SystemConfigReloaded" {
            node: String,
            /// Where it was read from (a path).
            source: String,
            /// SHA-256 of the file, hex.
            digest: String,
            /// Top-level sections whose values changed.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            changed: Vec<String>,
        },
        /// An invariant check failed.
        InvariantViolationDetected = "InvariantViolationDetected" {
            /// The invariant's name, e.g. `agent-in-one-call`.
            invariant: String,
            /// The stream found in the wrong state.
            stream: StreamId,
            /// What was wrong, for people.
            detail: String,
            /// The log position the check looked at.
            at_position: GlobalPosition,
        },
        /// The violation was repaired by the listed compensating events.
        InvariantViolationCompensated = "InvariantViolationCompensated" {
            invariant: String,
            stream: StreamId,
            /// The `InvariantViolationDetected` event this resolves.
            violation: EventId,
            /// What was done, for people.
            action: String,
            /// The events appended to `stream` to repair it.
            compensating_events: Vec<EventId>,
        },
    }
}
