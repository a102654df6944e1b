//! The engine: commands, the pure `decide`/`evolve` core of every aggregate (extension, call,
//! queue, conference, channel room, voicemail box, directory, the call panel's watch list), the actor shells that append their
//! events to the log, and the runtime that finds, rebuilds and supervises them. Each aggregate is
//! a module with `command`, `state`, `decide` and tests; the shells are generic over
//! [`aggregate::Aggregate`].

pub mod aggregate;
pub mod call;
pub mod conference;
pub mod directory;
pub mod extension;
pub mod panel;
pub mod queue;
pub mod replay;
pub mod room;
pub mod runtime;
pub mod testing;
pub mod voicemail;

pub use aggregate::{Aggregate, Deadline, decide_all, stamp};
pub use events;
