//! The engine: commands, the pure `decide`/`evolve` core of every aggregate (extension, call,
//! queue, conference, channel room, voicemail box, directory), the actor shells that append their
//! events to the log, and the SIP and media edges. This crate is grown by the engine and SIP
//! issues; for now it only fixes its place in the dependency graph (it depends on `events`).

pub use events;
