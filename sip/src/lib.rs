//! The SIP edge: where phones meet the engine. It listens on UDP and TCP, and takes SIP over
//! WebSocket from the HTTP server for browser phones (RFC 7118); it refuses anything
//! malformed, oversized or flooding before any business logic, authenticates with digest (MD5 and
//! SHA-256, `qop=auth`, nonces bound to the source), and turns accepted REGISTERs into commands
//! to the extension aggregate, answering only once their events are durable. SIP traffic itself
//! never becomes an event: challenges, refusals and keep-alives are counted in aggregate
//! ([`SecurityStats`]), only outcomes (a device registered, unregistered, expired) reach the log.
//!
//! rsipstack (a 0.x crate that changes often) is wrapped here so its churn lands in one place:
//! `transport` owns its transport layer and endpoint, and the other modules only read its
//! message types. Modules:
//!
//! - [`config`]: addresses, limits, flood, digest and expiry policy;
//! - [`sanity`]: strict pre-parse and parsed-request checks (Kamailio's list);
//! - [`ratelimit`]: per-source packet and failure budgets with a temporary ban;
//! - [`digest`]: algorithms, HA1 secrets, credentials parsing, responses, nonces;
//! - [`accounts`]: the account lookup the edge is given ([`Accounts`]);
//! - `auth`: the authentication policy (401/407, identity must match);
//! - `registrar` and `bindings`: REGISTER → `ExtensionCommand`s, and the registrations read
//!   back from the log;
//! - `calls`: calls between extensions as a B2BUA (INVITE authenticated with 407, routed by the
//!   callee's state, each step a command to the call actor, the extensions told their part),
//!   and click-to-call;
//! - [`websocket`]: SIP over WebSocket, a connection the HTTP server upgrades
//!   ([`WebSocketAcceptor`]);
//! - `edge`: the running service ([`SipEdge`]); `answers`: what it keeps of the requests it
//!   answers without a transaction (REGISTER, OPTIONS), for their retransmissions; `stats`: the
//!   counters and summary line.

pub mod accounts;
mod answers;
mod auth;
mod bindings;
mod calls;
pub mod config;
pub mod digest;
mod edge;
mod intake;
pub mod phone;
pub mod ratelimit;
mod registrar;
pub mod sanity;
mod stats;
mod transport;
pub mod websocket;

use std::net::SocketAddr;

pub use accounts::{Account, Accounts, StaticAccounts};
pub use calls::ClickToCallError;
pub use config::{CallConfig, DigestConfig, FloodConfig, Limits, RegistrarConfig, SipConfig};
pub use digest::{DigestAlgorithm, DigestSecrets, Ha1};
pub use edge::{CallControl, Registries, SipEdge};
pub use stats::{AuthOutcome, SecurityStats};
pub use websocket::{WebSocketAcceptor, WebSocketRefused};

/// Runs `future` as a task of its own, boxed first. Tokio moves a future by value several times
/// on its way into a task and writes over it once more when it completes, and the futures of
/// the request and call paths are kilobytes (a call session holds the state of every step it
/// awaits): unboxed, each task cost tens of kilobytes of copying. Boxed, only a pointer moves.
pub(crate) fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(Box::pin(future))
}

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot listen for SIP over {transport} on {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the SIP stack failed to start: {0}")]
    Stack(String),
    #[error(
        "no digest algorithm is both configured and held by every account; nobody could register"
    )]
    NoDigestAlgorithm,
}
