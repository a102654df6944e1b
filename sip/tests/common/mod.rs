//! The harness of the SIP edge's integration tests: the edge on loopback inside the test's actix
//! system, over a real SQLite log in a temporary directory with the demo directory provisioned,
//! a raw UDP/TCP peer for hand-made requests, sipp for the scenarios, and readers of exactly
//! what the edge wrote to the log.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use engine::call::Call;
use engine::directory::demo::demo_directory;
use engine::extension::{Extension, ExtensionCommand};
use engine::runtime::{Execute, Instance, Registry, RegistryConfig, Services};
use events::ids::{DeviceContactId, ExtensionNumber};
use events::log::sqlite::SqliteLog;
use events::model::{Event, ExtensionEvent};
use events::{
    Clock, EventLog, GlobalPosition, ManualClock, SeededIds, StoreOptions, StreamId, TenantId,
    codec,
};
use md5::Md5;
use sha2::{Digest, Sha256};
use sip::{Accounts, DigestAlgorithm, Ha1, Registries, SipConfig, SipEdge, StaticAccounts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub(crate) fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// The test clock's start, 2026-01-01T00:00:00Z.
pub(crate) fn t0() -> DateTime<Utc> {
    engine::testing::t0()
}

/// A running edge with its log.
pub(crate) struct Harness {
    pub(crate) edge: SipEdge,
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) registry: Registry<Extension>,
    pub(crate) calls: Registry<Call>,
    pub(crate) clock: Arc<ManualClock>,
    /// The log's head once the demo extensions were provisioned: what came after is the edge's.
    pub(crate) baseline: GlobalPosition,
    pub(crate) dir: tempfile::TempDir,
}

/// Which secrets the demo accounts have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// What the directory's credential store holds: MD5 HA1 only.
    Directory,
    /// Plus the SHA-256 HA1 of the demo's public password `sip-<ext>`.
    WithSha256,
}

/// A config for loopback tests: a free port, generous flood limits (tests that want a ban set
/// their own), and short reports.
pub(crate) fn config() -> SipConfig {
    let mut c = SipConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ..SipConfig::default()
    };
    c.flood.max_packets_per_window = 10_000;
    c.flood.max_failures_per_window = 1_000;
    c.report_every = Duration::from_secs(1);
    c
}

pub(crate) async fn start(config: SipConfig, secrets: Secrets) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(
        SqliteLog::open(dir.path().join("log.db"), StoreOptions::default())
            .await
            .unwrap(),
    );
    let clock = Arc::new(ManualClock::new(t0()));
    let ids: Arc<dyn events::IdGen> = Arc::new(SeededIds::new(7));
    let services = Services::new(
        log.clone(),
        clock.clone() as Arc<dyn Clock>,
        ids.clone(),
        1024,
    );
    let registry = Registry::<Extension>::new(services, RegistryConfig::default());
    let calls = Registry::<Call>::new(
        Services::new(log.clone(), clock.clone() as Arc<dyn Clock>, ids, 1024),
        RegistryConfig::default(),
    );
    let loaded = demo_directory().unwrap();
    for tenant in &loaded.tenants {
        for (number, command) in &tenant.extensions {
            let instance = Instance::new(StreamId::extension(&tenant.tenant, number))
                .in_tenant(tenant.tenant.clone());
            registry
                .execute(&instance, Execute::new(command.clone()))
                .await
                .unwrap();
        }
    }
    let baseline = log.head().await.unwrap();
    let mut accounts = StaticAccounts::from_directory(&loaded.tenants);
    if secrets == Secrets::WithSha256 {
        for (realm, user, account) in accounts.accounts_mut() {
            let sha =
                Ha1::from_password(DigestAlgorithm::Sha256, user, realm, &format!("sip-{user}"));
            account.secrets = account.secrets.clone().with(sha);
        }
    }
    let accounts: Arc<dyn Accounts> = Arc::new(accounts);
    let engine = Registries {
        extensions: registry.clone(),
        calls: calls.clone(),
    };
    let edge = SipEdge::start(config, engine, accounts).await.unwrap();
    Harness {
        edge,
        log,
        registry,
        calls,
        clock,
        baseline,
        dir,
    }
}

impl Harness {
    pub(crate) fn udp(&self) -> SocketAddr {
        self.edge.udp_addr().unwrap()
    }

    pub(crate) fn tcp(&self) -> SocketAddr {
        self.edge.tcp_addr().unwrap()
    }

    /// Every event the edge caused, in log order, with its stream.
    pub(crate) async fn written(&self) -> Vec<(StreamId, ExtensionEvent)> {
        let stored = self.log.read_all(self.baseline, 10_000).await.unwrap();
        stored
            .iter()
            .map(|s| {
                let recorded = codec::decode(s).unwrap();
                assert_eq!(recorded.metadata.tenant, Some(acme()), "tenant of {s:?}");
                let event = match recorded.event {
                    Event::Extension(e) => e,
                    other => panic!("the edge wrote a non-extension event: {other:?}"),
                };
                (recorded.stream, event)
            })
            .collect()
    }

    /// Waits (real time) until the log has `n` events after the baseline.
    pub(crate) async fn wait_for_events(
        &self,
        n: usize,
        within: Duration,
    ) -> Vec<(StreamId, ExtensionEvent)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let written = self.written().await;
            if written.len() >= n || tokio::time::Instant::now() >= deadline {
                return written;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn ext_number(number: &str) -> ExtensionNumber {
    ExtensionNumber::parse(number).unwrap()
}

pub(crate) fn ext_stream(number: &str) -> StreamId {
    StreamId::extension(&acme(), &ext_number(number))
}

/// The contact id the edge chose for the first registration it wrote.
pub(crate) fn first_contact(written: &[(StreamId, ExtensionEvent)]) -> DeviceContactId {
    written
        .iter()
        .find_map(|(_, e)| match e {
            ExtensionEvent::DeviceRegistered { contact, .. } => Some(*contact),
            _ => None,
        })
        .expect("a DeviceRegistered was written")
}

/// A free port on 127.0.0.1 (for sipp's listener).
pub(crate) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- A parsed SIP message, as a peer sees it ----

#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) start: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) raw: String,
}

impl Msg {
    pub(crate) fn parse(raw: &str) -> Msg {
        let head = raw.split("\r\n\r\n").next().unwrap_or("");
        let mut lines = head.split("\r\n");
        let start = lines.next().unwrap_or("").to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Msg {
            start,
            headers,
            raw: raw.to_owned(),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.all(name).first().copied()
    }
}

/// A parameter of a challenge (`name="value"` or `name=value`).
pub(crate) fn param(challenge: &str, name: &str) -> Option<String> {
    let at = challenge.find(&format!("{name}="))?;
    let rest = &challenge[at + name.len() + 1..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().map(str::to_owned)
    } else {
        rest.split([',', ' ']).next().map(str::to_owned)
    }
}

/// The digest response to `challenge` for `user`/`password`, computed here with the hash crates
/// directly (not with the code under test).
pub(crate) fn authorization(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let realm = param(challenge, "realm").unwrap();
    let nonce = param(challenge, "nonce").unwrap();
    let algorithm = param(challenge, "algorithm").unwrap_or_else(|| "MD5".into());
    let h = |s: String| -> String {
        if algorithm == "SHA-256" {
            hex(&Sha256::digest(s.as_bytes()))
        } else {
            hex(&Md5::digest(s.as_bytes()))
        }
    };
    let cnonce = "0a4f113b";
    let nc = format!("{nc:08x}");
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("{method}:{uri}"));
    let response = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={algorithm}, cnonce=\"{cnonce}\", nc={nc}, qop=auth"
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ends a message whose start line and headers are `head`: the `extra` header lines, the
/// Content-Length of `body`, and the body.
pub(crate) fn end_message(mut head: String, extra: &[String], body: &str) -> String {
    for e in extra {
        head.push_str(e);
        head.push_str("\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    head
}

// ---- A raw peer ----

/// A phone that writes its own requests, over UDP or TCP.
pub(crate) struct Peer {
    pub(crate) server: SocketAddr,
    pub(crate) local: SocketAddr,
    udp: Option<UdpSocket>,
    tcp: Option<TcpStream>,
    /// Bytes read over TCP past the last message returned.
    pending: Vec<u8>,
    pub(crate) call_id: String,
    pub(crate) cseq: u32,
    branch: u32,
}

impl Peer {
    /// A UDP peer bound on `ip` (any 127.0.0.0/8 address works on Linux loopback).
    pub(crate) async fn udp(server: SocketAddr, ip: Ipv4Addr) -> Peer {
        let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .await
            .unwrap();
        let local = socket.local_addr().unwrap();
        Peer {
            server,
            local,
            udp: Some(socket),
            tcp: None,
            pending: Vec::new(),
            call_id: format!("call-{}@{local}", local.port()),
            cseq: 0,
            branch: 0,
        }
    }

    pub(crate) async fn tcp(server: SocketAddr) -> Peer {
        let stream = TcpStream::connect(server).await.unwrap();
        let local = stream.local_addr().unwrap();
        Peer {
            server,
            local,
            udp: None,
            tcp: Some(stream),
            pending: Vec::new(),
            call_id: format!("tcp-{}@{local}", local.port()),
            cseq: 0,
            branch: 0,
        }
    }

    pub(crate) fn transport(&self) -> &'static str {
        if self.tcp.is_some() { "TCP" } else { "UDP" }
    }

    pub(crate) async fn send(&mut self, text: &str) {
        if let Some(s) = &self.udp {
            s.send_to(text.as_bytes(), self.server).await.unwrap();
        } else if let Some(s) = &mut self.tcp {
            s.write_all(text.as_bytes()).await.unwrap();
        }
    }

    /// The next message, or `None` after `wait`.
    pub(crate) async fn recv(&mut self, wait: Duration) -> Option<Msg> {
        let mut buf = vec![0u8; 65_536];
        if let Some(s) = &self.udp {
            let (n, _) = tokio::time::timeout(wait, s.recv_from(&mut buf))
                .await
                .ok()?
                .ok()?;
            return Some(Msg::parse(&String::from_utf8_lossy(&buf[..n])));
        }
        let s = self.tcp.as_mut()?;
        let got = &mut self.pending;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // A message is its head and then Content-Length bytes of body; what follows is the
            // next message's.
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = Msg::parse(&String::from_utf8_lossy(&got[..end + 4]));
                let body = ["content-length", "l"]
                    .iter()
                    .find_map(|name| head.header(name))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let whole = end + 4 + body;
                if got.len() >= whole {
                    let text = String::from_utf8_lossy(&got[..whole]).to_string();
                    got.drain(..whole);
                    return Some(Msg::parse(&text));
                }
            }
            let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends and waits for the final response (skipping provisional ones).
    pub(crate) async fn request(&mut self, text: &str) -> Msg {
        self.send(text).await;
        loop {
            let msg = self
                .recv(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no response to\n{text}"));
            if msg.status() >= 200 {
                return msg;
            }
        }
    }

    /// A REGISTER of `user` for `contacts` (whole Contact values), with extra header lines.
    pub(crate) fn register(&mut self, user: &str, contacts: &[&str], extra: &[String]) -> String {
        self.cseq += 1;
        self.branch += 1;
        let mut head = format!(
            "REGISTER sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {local};branch=z9hG4bK-{port}-{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag=peer{port}\r\n\
             To: <sip:{user}@{host}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             User-Agent: raw-peer\r\n",
            server = self.server,
            t = self.transport(),
            local = self.local,
            port = self.local.port(),
            b = self.branch,
            host = self.server.ip(),
            call_id = self.call_id,
            cseq = self.cseq,
        );
        for c in contacts {
            head.push_str(&format!("Contact: {c}\r\n"));
        }
        end_message(head, extra, "")
    }

    /// The Request-URI this peer uses.
    pub(crate) fn uri(&self) -> String {
        format!("sip:{}", self.server)
    }

    /// REGISTER without credentials: the (first) challenge of the 401.
    pub(crate) async fn challenge(
        &mut self,
        user: &str,
        contacts: &[&str],
        extra: &[String],
    ) -> String {
        let first = self.register(user, contacts, extra);
        let challenge = self.request(&first).await;
        assert_eq!(challenge.status(), 401, "{}", challenge.raw);
        challenge.header("www-authenticate").unwrap().to_owned()
    }

    /// REGISTER, answer the (first) challenge with `password`, return the final response.
    pub(crate) async fn register_with_auth(
        &mut self,
        user: &str,
        password: &str,
        contacts: &[&str],
        extra: &[String],
    ) -> Msg {
        let www = self.challenge(user, contacts, extra).await;
        let auth = authorization(&www, user, password, "REGISTER", &self.uri(), 1);
        let mut extra = extra.to_vec();
        extra.push(format!("Authorization: {auth}"));
        let second = self.register(user, contacts, &extra);
        self.request(&second).await
    }
}

// ---- sipp ----

pub(crate) fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

/// Runs sipp against `target` with `scenario`, one call per CSV line of `users` (each line
/// `field0;field1;…`). Returns whether every call succeeded, with sipp's output.
pub(crate) async fn sipp(
    target: SocketAddr,
    scenario_name: &str,
    transport: &str,
    local_port: u16,
    users: &[String],
) -> (bool, String) {
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("users.csv");
    std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", users.join("\n"))).unwrap();
    let output = tokio::process::Command::new("sipp")
        .current_dir(work.path())
        .arg(target.to_string())
        .arg("-sf")
        .arg(scenario(scenario_name))
        .arg("-inf")
        .arg(&csv)
        .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
        .args(["-t", transport])
        .args(["-m", &users.len().to_string(), "-l", "1", "-r", "10"])
        .args(["-timeout", "20s", "-timeout_error", "-recv_timeout", "5000"])
        .args(["-trace_err", "-nostdin"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("sipp is installed (apt-get install sip-tester)");
    let errors = sipp_errors(work.path());
    let text = format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- errors\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        errors
    );
    (output.status.success(), text)
}

/// What sipp wrote to its `*_errors.log` files (`-trace_err`) in `dir`.
fn sipp_errors(dir: &std::path::Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_errors.log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

// ---- Calls ----

/// How long a sipp phone of a call test may take to finish its scenario.
pub(crate) const WITHIN: Duration = Duration::from_secs(30);

/// The event types of a call answered and then hung up by either side.
pub(crate) const ANSWERED_CALL: [&str; 9] = [
    "CallCreated",
    "LegCreated",
    "LegCreated",
    "LegRinging",
    "CallAnswered",
    "CallAnswered",
    "LegEnded",
    "LegEnded",
    "CallEnded",
];

/// Waits for a sipp phone to end its scenario, which must have succeeded.
pub(crate) async fn finished(running: Running) {
    let (ok, out) = running.finish(WITHIN).await;
    assert!(ok, "{out}");
}

impl Harness {
    /// Moves the test clock along with real time from now on: the call aggregate's ring timeout
    /// is a deadline on the injected clock, armed as a real-time timer.
    pub(crate) fn tick(&self) {
        let clock = self.clock.clone();
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = tokio::time::Instant::now();
                clock.advance(chrono::Duration::from_std(now - last).unwrap_or_default());
                last = now;
            }
        });
    }

    /// The log's head now.
    pub(crate) async fn head(&self) -> GlobalPosition {
        self.log.head().await.unwrap()
    }

    /// Every event after `from`, in log order, with its stream.
    pub(crate) async fn events_since(&self, from: GlobalPosition) -> Vec<(StreamId, Event)> {
        let mut events = Vec::new();
        let mut after = from;
        loop {
            let stored = self.log.read_all(after, 10_000).await.unwrap();
            let Some(last) = stored.last() else {
                return events;
            };
            after = last.position;
            for s in &stored {
                let recorded = codec::decode(s).unwrap();
                assert_eq!(recorded.metadata.tenant, Some(acme()), "tenant of {s:?}");
                events.push((recorded.stream, recorded.event));
            }
        }
    }

    /// Runs `command` on extension `number` (a setting the test needs).
    pub(crate) async fn extension(&self, number: &str, command: ExtensionCommand) {
        let instance = Instance::new(ext_stream(number)).in_tenant(acme());
        self.registry
            .execute(&instance, Execute::new(command))
            .await
            .unwrap();
    }

    /// Registers `<sip:EXT@127.0.0.1:PORT>` for extension `ext` (password `sip-EXT`) from a raw
    /// peer: the phone (a sipp instance) listens on `port`.
    pub(crate) async fn register_phone(&self, ext: &str, port: u16) {
        let mut peer = Peer::udp(self.udp(), Ipv4Addr::LOCALHOST).await;
        let contact = format!("<sip:{ext}@127.0.0.1:{port}>");
        let ok = peer
            .register_with_auth(ext, &format!("sip-{ext}"), &[&contact], &[])
            .await;
        assert_eq!(ok.status(), 200, "{}", ok.raw);
    }

    /// The one call made since `mark`, once every session ended: its stream, and every event
    /// since `mark`.
    pub(crate) async fn the_call(
        &self,
        mark: GlobalPosition,
    ) -> (StreamId, Vec<(StreamId, Event)>) {
        self.settle(Duration::from_secs(10)).await;
        let events = self.events_since(mark).await;
        let calls = call_streams(&events);
        assert_eq!(calls.len(), 1, "{events:#?}");
        (calls[0].clone(), events)
    }

    /// Waits (real time) until no call has a session left on the edge.
    pub(crate) async fn settle(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.edge.calls_in_progress() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} call(s) still in progress",
                self.edge.calls_in_progress()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The call streams written, in order of first appearance.
pub(crate) fn call_streams(events: &[(StreamId, Event)]) -> Vec<StreamId> {
    let mut streams: Vec<StreamId> = Vec::new();
    for (stream, event) in events {
        if matches!(event, Event::Call(_)) && !streams.contains(stream) {
            streams.push(stream.clone());
        }
    }
    streams
}

/// The types of the events written to `stream`, in order.
pub(crate) fn types_of(events: &[(StreamId, Event)], stream: &StreamId) -> Vec<&'static str> {
    events
        .iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, e)| e.event_type())
        .collect()
}

/// The line states extension `ext` went through.
pub(crate) fn lines_of(events: &[(StreamId, Event)], ext: &str) -> Vec<events::model::LineState> {
    events
        .iter()
        .filter(|(s, _)| *s == ext_stream(ext))
        .filter_map(|(_, e)| match e {
            Event::Extension(ExtensionEvent::LineStateChanged { state, .. }) => Some(*state),
            _ => None,
        })
        .collect()
}

/// The parts in calls extension `ext` was told.
pub(crate) fn parts_of(
    events: &[(StreamId, Event)],
    ext: &str,
) -> Vec<events::model::ExtensionCallState> {
    events
        .iter()
        .filter(|(s, _)| *s == ext_stream(ext))
        .filter_map(|(_, e)| match e {
            Event::Extension(ExtensionEvent::ExtensionCallObserved { state, .. }) => Some(*state),
            _ => None,
        })
        .collect()
}

/// A sipp process running in the background.
pub(crate) struct Running {
    child: tokio::process::Child,
    dir: tempfile::TempDir,
    what: String,
}

fn sipp_command(
    dir: &tempfile::TempDir,
    scenario_name: &str,
    port: u16,
    transport: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sipp");
    command
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario(scenario_name))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", transport, "-m", "1"])
        .args([
            "-timeout",
            "30s",
            "-timeout_error",
            "-recv_timeout",
            "15000",
        ])
        .args(["-trace_err", "-nostdin"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Waits until something listens on UDP `port` of 127.0.0.1.
async fn wait_bound(port: u16) {
    for _ in 0..250 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing listens on UDP port {port}");
}

/// A sipp phone answering on `port` with `scenario` (server mode, one call).
pub(crate) async fn sipp_uas(scenario_name: &str, port: u16) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let child = sipp_command(&dir, scenario_name, port, "u1")
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    wait_bound(port).await;
    Running {
        child,
        dir,
        what: format!("UAS {scenario_name} on {port}"),
    }
}

/// A sipp phone on `port` calling `callee` through `target` as extension `caller`
/// (password `sip-CALLER`), with `scenario`, hanging up (where it does) after 300 ms.
pub(crate) fn sipp_uac(
    target: SocketAddr,
    scenario_name: &str,
    port: u16,
    caller: &str,
    callee: &str,
) -> Running {
    sipp_uac_with(target, scenario_name, port, caller, callee, &["-d", "300"])
}

fn sipp_uac_command(
    target: SocketAddr,
    scenario_name: &str,
    port: u16,
    caller: &str,
    callee: &str,
    transport: &str,
) -> (tempfile::TempDir, tokio::process::Command) {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        format!("SEQUENTIAL\n{caller};[authentication username={caller} password=sip-{caller}];\n"),
    )
    .unwrap();
    let mut command = sipp_command(&dir, scenario_name, port, transport);
    command
        .arg(target.to_string())
        .arg("-inf")
        .arg(&csv)
        .args(["-s", callee])
        // sipp's digest `uri` is remote_ip:remote_port unless told; ours must be the
        // Request-URI's.
        .args(["-auth_uri", &format!("{callee}@{target}")]);
    (dir, command)
}

impl Running {
    /// Waits for the scenario to end (killed after `within`): whether it succeeded, and what
    /// sipp said.
    pub(crate) async fn finish(self, within: Duration) -> (bool, String) {
        let Running { child, dir, what } = self;
        let outcome = tokio::time::timeout(within, child.wait_with_output()).await;
        let errors = sipp_errors(dir.path());
        match outcome {
            Ok(Ok(output)) => (
                output.status.success(),
                format!(
                    "{what}: exit {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- errors\n{}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr),
                    errors
                ),
            ),
            Ok(Err(e)) => (false, format!("{what}: {e}")),
            Err(_) => (
                false,
                format!("{what}: still running after {within:?}\n{errors}"),
            ),
        }
    }
}

impl Peer {
    /// An INVITE from `user` to `number` (Request-URI `sip:NUMBER@server`) with a small SDP
    /// offer, and extra header lines.
    pub(crate) fn invite(&mut self, user: &str, number: &str, extra: &[String]) -> String {
        self.cseq += 1;
        self.branch += 1;
        let sdp = format!(
            "v=0\r\no=peer 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = self.local.ip()
        );
        let head = format!(
            "INVITE sip:{number}@{server} SIP/2.0\r\n\
             Via: SIP/2.0/{t} {local};branch=z9hG4bK-{port}-{b};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{host}>;tag=peer{port}\r\n\
             To: <sip:{number}@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Content-Type: application/sdp\r\n",
            server = self.server,
            t = self.transport(),
            local = self.local,
            port = self.local.port(),
            b = self.branch,
            host = self.server.ip(),
            call_id = self.call_id,
            cseq = self.cseq,
        );
        end_message(head, extra, &sdp)
    }

    /// INVITE, answer the 407 with `password`, and return the final response to the second
    /// INVITE. (The ACKs of the non-2xx responses are left out: the transactions time out.)
    pub(crate) async fn invite_with_auth(
        &mut self,
        user: &str,
        password: &str,
        number: &str,
    ) -> Msg {
        let first = self.invite(user, number, &[]);
        let challenge = self.request(&first).await;
        assert_eq!(challenge.status(), 407, "{}", challenge.raw);
        let proxy = challenge.header("proxy-authenticate").unwrap().to_owned();
        let uri = format!("sip:{number}@{}", self.server);
        let auth = authorization(&proxy, user, password, "INVITE", &uri, 1);
        let second = self.invite(user, number, &[format!("Proxy-Authorization: {auth}")]);
        self.request(&second).await
    }
}

/// A sipp caller like [`sipp_uac`], with more sipp arguments (e.g. `-d` for the call length,
/// `-t t1` for TCP).
pub(crate) fn sipp_uac_with(
    target: SocketAddr,
    scenario_name: &str,
    port: u16,
    caller: &str,
    callee: &str,
    extra: &[&str],
) -> Running {
    let transport = match extra.iter().position(|a| *a == "-t") {
        Some(i) => extra.get(i + 1).copied().unwrap_or("u1"),
        None => "u1",
    };
    let extra: Vec<&str> = match extra.iter().position(|a| *a == "-t") {
        Some(i) => [&extra[..i], &extra[(i + 2).min(extra.len())..]].concat(),
        None => extra.to_vec(),
    };
    let mut running = sipp_uac_command(target, scenario_name, port, caller, callee, transport);
    running.1.args(&extra);
    let child = running
        .1
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    Running {
        child,
        dir: running.0,
        what: format!("UAC {scenario_name} {caller} -> {callee}"),
    }
}

// ---- baresip ----

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A headless baresip phone: registered as one extension through the edge, no audio device
/// (a sine tone as its microphone, which only runs at 48 kHz stereo, resampled; the audio
/// bridge as its speaker), driven through its
/// `ctrl_tcp` module (netstring-framed JSON commands, and the events it reports back).
pub(crate) struct Baresip {
    child: tokio::process::Child,
    ctrl: TcpStream,
    buffer: Vec<u8>,
    dir: tempfile::TempDir,
    pub(crate) ext: String,
}

impl Baresip {
    /// Starts baresip as extension `ext` (password `sip-EXT`) registering with `edge`.
    pub(crate) async fn start(edge: SocketAddr, ext: &str) -> Baresip {
        let dir = tempfile::tempdir().unwrap();
        let (sip_port, ctrl_port) = (free_port(), free_tcp_port());
        std::fs::write(
            dir.path().join("config"),
            format!(
                "poll_method\tepoll\n\
                 sip_listen\t127.0.0.1:{sip_port}\n\
                 call_local_timeout\t120\n\
                 audio_player\taubridge,speaker\n\
                 audio_alert\taubridge,speaker\n\
                 audio_source\tausine,440\n\
                 ausrc_srate\t48000\n\
                 ausrc_channels\t2\n\
                 module_path\t/usr/lib/baresip/modules\n\
                 module\tg711.so\n\
                 module\tausine.so\n\
                 module\taubridge.so\n\
                 module\tctrl_tcp.so\n\
                 module_tmp\tuuid.so\n\
                 module_tmp\taccount.so\n\
                 module_app\tmenu.so\n\
                 ctrl_tcp_listen\t127.0.0.1:{ctrl_port}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{ext}@{edge};transport=udp>;auth_pass=sip-{ext};regint=600\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let child = tokio::process::Command::new("baresip")
            .arg("-f")
            .arg(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("baresip is installed (apt-get install baresip)");
        let mut ctrl = None;
        for _ in 0..250 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", ctrl_port)).await {
                ctrl = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Baresip {
            child,
            ctrl: ctrl.expect("baresip's ctrl_tcp never listened"),
            buffer: Vec::new(),
            dir,
            ext: ext.to_owned(),
        }
    }

    /// What baresip logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Sends a command (`dial`, `accept`, `hangup`, …).
    pub(crate) async fn command(&mut self, command: &str, params: &str) {
        let json = format!(
            "{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"{command}\"}}"
        );
        let framed = format!("{}:{json},", json.len());
        self.ctrl.write_all(framed.as_bytes()).await.unwrap();
    }

    /// Waits for an event of type `kind` (`CALL_INCOMING`, `CALL_ESTABLISHED`, …); its JSON.
    pub(crate) async fn event(&mut self, kind: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        let wanted = format!("\"type\":\"{kind}\"");
        loop {
            while let Some(message) = self.next_netstring() {
                if message.contains("\"event\":true") && message.contains(&wanted) {
                    return message;
                }
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout_at(deadline, self.ctrl.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.buffer.extend_from_slice(&chunk[..n]),
                _ => panic!(
                    "{}: no {kind} event within {within:?}\n{}",
                    self.ext,
                    self.log()
                ),
            }
        }
    }

    fn next_netstring(&mut self) -> Option<String> {
        let colon = self.buffer.iter().position(|b| *b == b':')?;
        let len: usize = std::str::from_utf8(&self.buffer[..colon])
            .ok()?
            .parse()
            .ok()?;
        if self.buffer.len() < colon + 1 + len + 1 {
            return None;
        }
        let message = String::from_utf8_lossy(&self.buffer[colon + 1..colon + 1 + len]).to_string();
        self.buffer.drain(..colon + 1 + len + 1);
        Some(message)
    }

    /// Stops baresip.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A sipp load run: `calls` calls from `caller` to `callee` at `rate` per second (at most
/// `limit` at once), each hung up as soon as it is answered.
pub(crate) fn sipp_load(
    target: SocketAddr,
    port: u16,
    caller: &str,
    callee: &str,
    rate: u32,
    calls: u32,
) -> Running {
    let (dir, mut command) = sipp_uac_command(target, "call-uac.xml", port, caller, callee, "u1");
    // Later arguments win: many calls instead of one.
    command.args([
        "-d",
        "0",
        "-r",
        &rate.to_string(),
        "-m",
        &calls.to_string(),
        "-l",
        &(rate * 4).to_string(),
    ]);
    let child = command
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    Running {
        child,
        dir,
        what: format!("load {caller} -> {callee}, {calls} calls at {rate}/s"),
    }
}

/// A sipp phone answering `calls` calls on `port` with `scenario`.
pub(crate) async fn sipp_uas_many(scenario_name: &str, port: u16, calls: u32) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let child = sipp_command(&dir, scenario_name, port, "u1")
        .args(["-m", &calls.to_string()])
        .spawn()
        .expect("sipp is installed (apt-get install sip-tester)");
    wait_bound(port).await;
    Running {
        child,
        dir,
        what: format!("UAS {scenario_name} on {port} (many calls)"),
    }
}

/// What the panel projection showed on `user`'s card from the first event of stream `from` on
/// (a call, or an extension for its whole life): each
/// distinct rendering, in order, as `"<status> [<side> <state> <peer extension>, ...]"`. The
/// projection folds the whole log (directory, registrations, calls) exactly as the panel's does.
pub(crate) async fn panel_story(h: &Harness, from: &StreamId, user: &str) -> Vec<String> {
    use projections::panel::PanelView;
    let user = events::ids::UserId::parse(user).unwrap();
    let mut view = PanelView::new();
    let mut story: Vec<String> = Vec::new();
    let mut recording = false;
    let mut after = GlobalPosition::START;
    loop {
        let stored = h.log.read_all(after, 10_000).await.unwrap();
        let Some(last) = stored.last() else {
            return story;
        };
        after = last.position;
        for s in &stored {
            let recorded = codec::decode(s).unwrap();
            recording |= recorded.stream == *from;
            view.apply(&recorded);
            if !recording {
                continue;
            }
            let card = view.card(&acme(), &user).expect("the user has a card");
            let calls: Vec<String> = card
                .calls
                .iter()
                .map(|c| {
                    let peer = c.peer.extension.as_ref().map(|e| e.to_string());
                    format!(
                        "{:?} {:?} {}",
                        c.direction,
                        c.state,
                        peer.unwrap_or_default()
                    )
                })
                .collect();
            let shown = format!("{:?} [{}]", card.status, calls.join(", "));
            if story.last() != Some(&shown) {
                story.push(shown);
            }
        }
    }
}
