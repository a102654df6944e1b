//! The directory aggregate: one stream per tenant holding the hierarchy reseller → client
//! (tenant) → users, departments, profiles with their feature flags, call-panel grants and the
//! presence-state list, with the queries the panel and the SIP edge ask of it. Secrets are not
//! part of it: the log records that a credential changed, the value lives in [`Credentials`].
//! [`config`] loads a TOML directory file into commands, credentials and the queue and conference
//! settings; [`demo`] is the built-in directory used when no file is given.

mod command;
pub mod config;
mod credentials;
mod decide;
pub mod demo;
mod state;
#[cfg(test)]
mod tests;

pub use command::DirectoryCommand;
pub use credentials::{
    CredentialError, Credentials, SipDigestHa1, UserCredentials, WebPasswordHash,
};
pub use decide::DirectoryRejection;
pub use state::{Department, Directory, PresenceStateEntry, Profile, Tenant, User};
