//! The built-in demo directory, used when no configuration is given: tenant `acme` with sales,
//! support and management, a receptionist (1001) and a supervisor (1011) on the call panel, the
//! support queue on 2000, conference room 3000 and the seeds' presence states. It is a TOML text
//! loaded through the same loader as a real file, so the loader is exercised on every start.
//! Its credentials are public; whoever runs on it must say so.

use super::config::{ClearPasswords, ConfigError, LoadedDirectory, load_str};

/// The demo directory file.
pub const DEMO_TOML: &str = include_str!("demo.toml");

/// Shown when the engine runs on the demo directory.
pub const DEMO_WARNING: &str = "no directory file given: running on the built-in demo directory \
     (tenant `acme`), whose web and SIP passwords are public; do not expose it to a network you \
     do not trust";

/// Loads the demo directory. Its clear web passwords are hashed with the cheap demo argon2
/// parameters, which keeps this to milliseconds.
pub fn demo_directory() -> Result<LoadedDirectory, ConfigError> {
    load_str(DEMO_TOML, "built-in demo", ClearPasswords::HashForDemo)
}
