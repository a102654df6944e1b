//! Shared support for the cross-crate tests: the event-log conformance suite and the
//! per-backend harnesses that plug into it.
#![allow(clippy::disallowed_methods)] // tests may use random ids and the wall clock

pub mod conformance;
pub mod pg;
pub mod sqlite;
