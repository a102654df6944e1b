//! What the SIP edge can be told: where it listens, how large a message may be, how hard a
//! source may push before it is banned, which digest algorithms it offers and how long nonces
//! live, the expiry policy of the registrar, and the ring and forward limits of calls. Every field has a default a small office can
//! run with; `ledgerline serve` overrides the addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::digest::DigestAlgorithm;

/// The whole edge's configuration.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// Address and port of both listeners (SIP runs UDP and TCP on the same port). Port 0 picks
    /// a free UDP port and uses the same number for TCP.
    pub bind: SocketAddr,
    pub udp: bool,
    pub tcp: bool,
    /// Receive and send buffer asked for on the UDP socket, in bytes (default 2 MiB; 0 keeps the
    /// kernel's default, 208 KiB on Linux). A datagram that finds the buffer full is dropped, and
    /// its sender retransmits it 500 ms later, which adds load just when there is too much:
    /// with the kernel's default, a registration storm of 15,000 REGISTERs/s (10,000 of them
    /// new bindings) lost 119-4,100 datagrams per 6 s step, and 1,500 calls/s (near
    /// saturation) lost 56,578 and failed 7.2 % of calls; with 2 MiB neither lost one and every
    /// call succeeded. Past saturation the edge's UDP intake reads the buffer empty into its own
    /// bounded lanes, which serve responses and in-dialog requests first and drop new requests
    /// older than T1 (before it, 2,000 calls/s failed 41 % with 2 MiB and 27 % with the
    /// kernel's default; with it, none of 20,000 failed); new work being handled is bounded by
    /// `max_in_flight`. The kernel caps it at `net.core.rmem_max` / `wmem_max` (a warning says
    /// so at start), so raise those on a busy server, as for any SIP server.
    pub udp_buffer: usize,
    /// `Server`/`User-Agent` text of our responses.
    pub user_agent: String,
    pub limits: Limits,
    pub flood: FloodConfig,
    pub digest: DigestConfig,
    pub registrar: RegistrarConfig,
    pub calls: CallConfig,
    /// A TCP connection that carries nothing (not even a CRLF keep-alive) for this long is closed;
    /// so is a WebSocket one that does not even answer the pings (sent four times as often).
    pub tcp_idle_timeout: Duration,
    /// Concurrent TCP connections one address may hold, WebSocket ones included; more are closed
    /// at once.
    pub max_tcp_connections_per_ip: usize,
    /// Requests that start new work (calls, registrations) handled at once; beyond this they
    /// get 503 straight away. Requests inside a dialog and CANCELs are never refused for load.
    pub max_in_flight: usize,
    /// How often the security summary line is logged (only when something was refused).
    pub report_every: Duration,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5060),
            udp: true,
            tcp: true,
            udp_buffer: 2 << 20,
            user_agent: concat!("Ledgerline/", env!("CARGO_PKG_VERSION")).to_owned(),
            limits: Limits::default(),
            flood: FloodConfig::default(),
            digest: DigestConfig::default(),
            registrar: RegistrarConfig::default(),
            calls: CallConfig::default(),
            tcp_idle_timeout: Duration::from_secs(120),
            max_tcp_connections_per_ip: 32,
            max_in_flight: 1024,
            report_every: Duration::from_secs(60),
        }
    }
}

/// Size limits a request must respect before anything else looks at it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Whole datagram (UDP). TCP is bounded by rsipstack's framing at 64 KiB.
    pub max_message_bytes: usize,
    pub max_headers: usize,
    /// One header's value.
    pub max_header_bytes: usize,
    pub max_body_bytes: usize,
    pub max_via: usize,
    /// Contacts one REGISTER may carry.
    pub max_contacts: usize,
    /// A contact URI, as stored in the log.
    pub max_uri_bytes: usize,
    /// A User-Agent is cut to this many bytes before it is stored.
    pub max_user_agent_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 8_000,
            max_headers: 64,
            max_header_bytes: 2_048,
            max_body_bytes: 6_000,
            max_via: 8,
            max_contacts: engine::extension::MAX_CONTACTS,
            max_uri_bytes: 512,
            max_user_agent_bytes: 128,
        }
    }
}

/// Flood protection per source address (Kamailio's pike and ban table, PJSIP's unidentified
/// request limit). Two budgets feed one ban list: every packet counts against
/// `max_packets_per_window`, and every refused request (malformed, failed authentication)
/// against `max_failures_per_window`. A banned address is dropped without reply until the ban
/// ends.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    pub window: Duration,
    pub max_packets_per_window: u32,
    pub failure_window: Duration,
    pub max_failures_per_window: u32,
    pub ban_for: Duration,
    /// Never rate limited or banned (a trusted proxy, a monitoring host).
    pub exempt: Vec<IpAddr>,
    /// Sources tracked at once; when full, the oldest quiet ones are forgotten first.
    pub max_tracked_sources: usize,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(2),
            max_packets_per_window: 400,
            failure_window: Duration::from_secs(60),
            max_failures_per_window: 20,
            ban_for: Duration::from_secs(300),
            exempt: Vec::new(),
            max_tracked_sources: 100_000,
        }
    }
}

/// Digest authentication policy.
#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// Challenges offered, most preferred first (RFC 8760: SHA-256 before MD5). Only the
    /// algorithms every account has a secret for are offered, so the challenge stays the same
    /// for every user.
    pub algorithms: Vec<DigestAlgorithm>,
    /// A nonce older than this is answered with a fresh challenge and `stale=true`.
    pub nonce_lifetime: Duration,
    /// Nonces whose counts (`nc`) are remembered against replay.
    pub max_tracked_nonces: usize,
}

impl Default for DigestConfig {
    fn default() -> Self {
        Self {
            algorithms: vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5],
            nonce_lifetime: Duration::from_secs(300),
            max_tracked_nonces: 100_000,
        }
    }
}

/// Registration expiry policy (seconds).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    /// Shorter requests get 423 Interval Too Brief with this as Min-Expires.
    pub min_expires: u32,
    /// Longer requests are granted this.
    pub max_expires: u32,
    /// Granted when the REGISTER names no expiry.
    pub default_expires: u32,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3_600,
            default_expires: 3_600,
        }
    }
}

/// Limits of calls between extensions.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// No extension rings longer than this in one step, whatever its settings ask for (a
    /// no-answer forward's ring time, follow-me's phases, the 30 s default).
    pub max_ring: Duration,
    /// With a no-answer forward, the call aggregate's own ring timeout is the ring time plus
    /// this: the edge forwards at the ring time, and the aggregate ends the call (480) only if
    /// the forward could not ring anyone.
    pub forward_grace: Duration,
    /// Forwards followed from one extension to the next before the call is refused (482).
    pub max_forwards: u8,
    /// How long click-to-call rings the user's own phone before giving up.
    pub click_to_call_ring: Duration,
    /// Calls in progress on the edge at once; beyond this, new INVITEs get 503.
    pub max_calls: usize,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            max_ring: Duration::from_secs(120),
            forward_grace: Duration::from_secs(2),
            max_forwards: 5,
            click_to_call_ring: Duration::from_secs(30),
            max_calls: 10_000,
        }
    }
}
