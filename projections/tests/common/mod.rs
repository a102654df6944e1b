//! Shared support for the projections' integration tests: the engine-driven PBX ([`pbx`]),
//! throw-away stores ([`stores`]: a SQLite file in a temporary directory, a fresh PostgreSQL
//! database), and the runner scenarios every store must pass ([`flows`]).

#![allow(dead_code)]

pub(crate) mod flows;
pub(crate) mod pbx;
pub(crate) mod stores;
