//! A small SIP user agent over UDP: what a desk phone does on the wire, for simulated phones
//! (`ledgerline demo`) and tests. It owns one UDP socket on a loopback (or any) address and
//! speaks plain SIP to one server (the edge): REGISTER with digest authentication (and refresh,
//! and unregister), outgoing calls (INVITE with the 407 retry, ACK, CANCEL, BYE, hold and resume
//! by re-INVITE), and incoming calls (180 at once, then 200, a refusal such as 486, or nothing
//! until the caller cancels), with the retransmissions RFC 3261 asks for over UDP. Media is a
//! fixed SDP offer and answer; no RTP is sent.
//!
//! The phone decides nothing by itself: whoever drives it says when to call, answer, refuse,
//! hold or hang up ([`Phone`]), and hears what happened as [`PhoneEvent`]s. Its tags, branches
//! and Call-IDs come from the injected [`IdGen`], so a seeded run sends the same identifiers.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use events::IdGen;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::calls::{MediaDirection, Sdp};
use crate::digest::{DigestChallenge, DigestCredentials, DigestSecrets};
use crate::sanity::split_commas;

/// First retransmission interval over UDP (RFC 3261 T1).
const T1: Duration = Duration::from_millis(500);
/// Longest retransmission interval of non-INVITE requests and 2xx answers (T2).
const T2: Duration = Duration::from_secs(4);
/// A transaction without any answer gives up after this long (64·T1).
const GIVE_UP: Duration = Duration::from_secs(32);

/// Where a phone runs and who it is.
#[derive(Clone)]
pub struct PhoneConfig {
    /// The SIP server (UDP).
    pub server: SocketAddr,
    /// The address the phone's socket binds (port 0 picks one).
    pub bind: SocketAddr,
    /// The SIP domain of the account (the host of its address of record).
    pub domain: String,
    /// The account's user name (the extension).
    pub user: String,
    /// The account's digest secrets.
    pub secrets: DigestSecrets,
    /// Requested registration lifetime, seconds (refreshed at three quarters of what is granted).
    pub expires: u32,
    pub user_agent: String,
}

impl fmt::Debug for PhoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneConfig")
            .field("server", &self.server)
            .field("bind", &self.bind)
            .field("user", &self.user)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

/// A call of one phone, as the phone numbers it.
pub type CallRef = u64;

/// How a call ended, as the phone saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Our call was refused with this final status (486 busy, 480 unavailable, 404...).
    Refused(u16),
    /// The call was cancelled before it was answered (by us, or by the caller of a ringing call).
    Cancelled,
    /// The other side hung up (BYE received).
    ByPeer,
    /// We hung up (our BYE was answered), or refused a call ringing here.
    ByUs,
    /// The server stopped answering.
    TimedOut,
}

/// What the phone tells its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneEvent {
    /// Registered for this many seconds (also after each refresh).
    Registered {
        expires: u32,
    },
    /// The registrar refused (status), or did not answer (0).
    RegistrationFailed {
        status: u16,
    },
    /// A call rings here; `from` is the caller's user part.
    Incoming {
        call: CallRef,
        from: String,
    },
    /// A call we placed rings at the other end.
    Ringing {
        call: CallRef,
    },
    /// A call is established (ours answered, or our answer acknowledged).
    Answered {
        call: CallRef,
    },
    /// Our hold (`true`) or resume (`false`) was accepted.
    Held {
        call: CallRef,
        held: bool,
    },
    Ended {
        call: CallRef,
        how: Ended,
    },
}

/// Why the phone could not do something.
#[derive(Debug, thiserror::Error)]
pub enum PhoneError {
    #[error("cannot bind the phone's socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the registrar answered {0}")]
    Refused(u16),
    #[error("the registrar did not answer")]
    NoAnswer,
    #[error("the phone has stopped")]
    Stopped,
}

enum Command {
    Register(u32, oneshot::Sender<Result<u32, PhoneError>>),
    Call(CallRef, String),
    Answer(CallRef),
    Reject(CallRef, u16),
    Hold(CallRef, bool),
    HangUp(CallRef),
    Stop(oneshot::Sender<()>),
}

/// A running phone. Dropping it stops its task (without unregistering; see [`Phone::stop`]).
#[derive(Debug)]
pub struct Phone {
    commands: mpsc::UnboundedSender<Command>,
    local: SocketAddr,
    next: AtomicU64,
}

impl Phone {
    /// Binds the socket and starts the phone (not yet registered). Events arrive on the
    /// receiver returned.
    pub async fn start(
        config: PhoneConfig,
        ids: Arc<dyn IdGen>,
    ) -> Result<(Phone, mpsc::UnboundedReceiver<PhoneEvent>), PhoneError> {
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|source| PhoneError::Bind {
                addr: config.bind,
                source,
            })?;
        let local = socket.local_addr().map_err(|source| PhoneError::Bind {
            addr: config.bind,
            source,
        })?;
        let (commands, inbox) = mpsc::unbounded_channel();
        let (events, heard) = mpsc::unbounded_channel();
        let ua = Ua {
            reg_call_id: format!("{}@{local}", short(ids.as_ref())),
            config,
            ids,
            socket,
            local,
            events,
            cseq: 0,
            txs: HashMap::new(),
            calls: HashMap::new(),
            registration: None,
            refresh_at: None,
            stopping: None,
            incoming: 0,
        };
        tokio::spawn(ua.run(inbox));
        Ok((
            Phone {
                commands,
                local,
                next: AtomicU64::new(1),
            },
            heard,
        ))
    }

    /// The phone's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Registers (digest-authenticated); the granted lifetime in seconds.
    pub async fn register(&self) -> Result<u32, PhoneError> {
        self.registration(None).await
    }

    /// Removes the phone's binding.
    pub async fn unregister(&self) -> Result<(), PhoneError> {
        self.registration(Some(0)).await.map(|_| ())
    }

    async fn registration(&self, expires: Option<u32>) -> Result<u32, PhoneError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Register(expires.unwrap_or(u32::MAX), tx));
        rx.await.map_err(|_| PhoneError::Stopped)?
    }

    fn send(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Calls `to` (a user or number of the phone's domain); progress arrives as events.
    pub fn call(&self, to: &str) -> CallRef {
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Call(call, to.to_owned()));
        call
    }

    /// Answers a call ringing here.
    pub fn answer(&self, call: CallRef) {
        self.send(Command::Answer(call));
    }

    /// Refuses a call ringing here with `status` (486 busy, 603 decline...).
    pub fn reject(&self, call: CallRef, status: u16) {
        self.send(Command::Reject(call, status));
    }

    /// Puts an established call on hold (`true`) or resumes it.
    pub fn hold(&self, call: CallRef, on: bool) {
        self.send(Command::Hold(call, on));
    }

    /// Ends a call in whatever state it is: BYE when established, CANCEL while ours rings, 480
    /// for one ringing here.
    pub fn hang_up(&self, call: CallRef) {
        self.send(Command::HangUp(call));
    }

    /// Ends every call, unregisters and stops (within a few seconds whatever the server does).
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Stop(tx));
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }
}

fn short(ids: &dyn IdGen) -> String {
    let mut s = ids.next_uuid().simple().to_string();
    s.truncate(16);
    s
}

// ---- Messages ----

/// A received message, read just enough to act on it.
#[derive(Debug, Clone)]
struct Msg {
    /// Request method, or empty for a response.
    method: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Msg {
    fn parse(raw: &str) -> Option<Msg> {
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
        let mut lines = head.split("\r\n");
        let start = lines.next()?;
        let mut parts = start.splitn(3, ' ');
        let (a, b) = (parts.next()?, parts.next()?);
        let (method, status) = if a == "SIP/2.0" {
            (String::new(), b.parse().ok()?)
        } else {
            (a.to_owned(), 0)
        };
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (canonical(n.trim()), v.trim().to_owned()))
            .collect();
        Some(Msg {
            method,
            status,
            headers,
            body: body.to_owned(),
        })
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> &str {
        self.all(name).next().unwrap_or("")
    }

    fn cseq(&self) -> (u32, &str) {
        let mut it = self.header("cseq").split_whitespace();
        let n = it.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (n, it.next().unwrap_or(""))
    }

    fn branch(&self) -> &str {
        param(self.header("via"), "branch").unwrap_or("")
    }

    fn call_id(&self) -> &str {
        self.header("call-id")
    }
}

/// Lower-case header name, compact forms expanded.
fn canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "i" => "call-id",
        "f" => "from",
        "t" => "to",
        "v" => "via",
        "m" => "contact",
        "l" => "content-length",
        "c" => "content-type",
        _ => return lower,
    }
    .to_owned()
}

/// A `;name=value` parameter of a header value.
fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_end_matches(['>', ',']).split(',').next())?
    })
}

/// The URI of a name-addr (`"x" <sip:a@b>;tag=...`) or addr-spec.
fn uri_of(value: &str) -> &str {
    match (value.find('<'), value.find('>')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.split(';').next().unwrap_or(value).trim(),
    }
}

/// The user part of a SIP URI.
fn user_of(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    rest.split_once('@').map_or("", |(u, _)| u)
}

/// The SDP answer direction for an offer's (read as the edge reads it: the first audio
/// stream's, `c=0.0.0.0` counting as inactive).
fn answer_direction(offer: &str) -> &'static str {
    Sdp::from_body(offer.as_bytes(), None)
        .map_or(MediaDirection::SendRecv, |sdp| sdp.direction())
        .answer()
        .attribute()
}

/// A request we send, kept so it can be retransmitted and re-sent with credentials.
#[derive(Debug, Clone)]
struct Out {
    method: &'static str,
    uri: String,
    call_id: String,
    from: String,
    to: String,
    cseq: u32,
    branch: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
}

// ---- The user agent task ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Ours: INVITE sent; theirs: ringing here.
    Early,
    /// Theirs: 200 sent, waiting for the ACK.
    Answering,
    Confirmed,
    /// BYE or CANCEL sent, or a refusal sent and its ACK awaited.
    Ending,
}

struct CallState {
    role: Role,
    state: State,
    call_id: String,
    local: String,
    remote: String,
    remote_target: String,
    routes: Vec<String>,
    cseq: u32,
    sdp_version: u32,
    /// Ours: the INVITE in progress (for CANCEL and the ACK of a refusal).
    invite: Option<Out>,
    provisional: bool,
    cancel_wanted: bool,
    ringing_told: bool,
    /// Theirs: the INVITE being answered (for responses), its last response and, for a 2xx, the
    /// retransmission schedule until the ACK.
    request: Option<Msg>,
    from: SocketAddr,
    last_response: Option<String>,
    resend: Option<(Instant, Duration, Instant)>,
    hold_pending: Option<bool>,
}

/// A REGISTER in progress: the lifetime asked for, and who waits for the outcome.
type RegisterTx = (u32, Option<Reply>);
type Reply = oneshot::Sender<Result<u32, PhoneError>>;

struct ClientTx {
    out: Out,
    call: Option<CallRef>,
    authenticated: bool,
    next: Instant,
    interval: Duration,
    deadline: Instant,
    /// INVITE after a provisional answer: no more retransmissions.
    quiet: bool,
    register: Option<RegisterTx>,
}

struct Ua {
    config: PhoneConfig,
    ids: Arc<dyn IdGen>,
    socket: UdpSocket,
    local: SocketAddr,
    events: mpsc::UnboundedSender<PhoneEvent>,
    reg_call_id: String,
    cseq: u32,
    txs: HashMap<String, ClientTx>,
    calls: HashMap<CallRef, CallState>,
    registration: Option<u32>,
    refresh_at: Option<Instant>,
    stopping: Option<(oneshot::Sender<()>, Instant, bool)>,
    incoming: u64,
}

impl Ua {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 65_536];
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                got = self.socket.recv_from(&mut buf) => match got {
                    Ok((n, from)) => {
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if let Some(msg) = Msg::parse(&text) {
                            self.on_message(msg, from).await;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "phone socket"),
                },
                command = inbox.recv() => match command {
                    Some(c) => self.on_command(c).await,
                    None => return,
                },
                _ = tick.tick() => self.on_tick().await,
            }
            if self.stopping.is_some() && self.advance_stop().await {
                return;
            }
        }
    }

    fn tell(&self, event: PhoneEvent) {
        let _ = self.events.send(event);
    }

    fn id(&self) -> String {
        short(self.ids.as_ref())
    }

    fn aor(&self) -> String {
        format!("<sip:{}@{}>", self.config.user, self.config.domain)
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.config.user, self.local)
    }

    fn render(&self, out: &Out) -> String {
        let mut s = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {cmethod}\r\nUser-Agent: {ua}\r\n",
            method = out.method,
            uri = out.uri,
            local = self.local,
            branch = out.branch,
            from = out.from,
            to = out.to,
            call_id = out.call_id,
            cseq = out.cseq,
            cmethod = out.method,
            ua = self.config.user_agent,
        );
        for (name, value) in &out.headers {
            s += &format!("{name}: {value}\r\n");
        }
        finish(s, out.body.as_deref())
    }

    async fn send_to(&self, text: &str, to: SocketAddr) {
        if let Err(e) = self.socket.send_to(text.as_bytes(), to).await {
            tracing::debug!(error = %e, "phone send");
        }
    }

    /// Sends `out` as a new client transaction.
    async fn start_tx(
        &mut self,
        out: Out,
        call: Option<CallRef>,
        authenticated: bool,
        register: Option<RegisterTx>,
    ) {
        let text = self.render(&out);
        self.send_to(&text, self.config.server).await;
        let now = Instant::now();
        self.txs.insert(
            out.branch.clone(),
            ClientTx {
                out,
                call,
                authenticated,
                next: now + T1,
                interval: T1,
                deadline: now + GIVE_UP,
                quiet: false,
                register,
            },
        );
    }

    fn sdp(&self, version: u32, direction: &str) -> String {
        let ip = self.local.ip();
        let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
        // A media port that nothing listens on: no RTP flows in a simulated call.
        let port = self.local.port().wrapping_add(2) & !1;
        format!(
            "v=0\r\no={user} 1 {version} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a={direction}\r\n",
            user = self.config.user
        )
    }

    // -- commands --

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Register(expires, reply) => {
                let expires = if expires == u32::MAX {
                    self.config.expires
                } else {
                    expires
                };
                self.send_register(expires, Some(reply)).await;
            }
            Command::Call(call, to) => self.place(call, &to).await,
            Command::Answer(call) => self.answer(call).await,
            Command::Reject(call, status) => self.refuse(call, status).await,
            Command::Hold(call, on) => self.reinvite(call, on).await,
            Command::HangUp(call) => self.hang_up(call).await,
            Command::Stop(done) => {
                let calls: Vec<CallRef> = self.calls.keys().copied().collect();
                for call in calls {
                    self.hang_up(call).await;
                }
                self.stopping = Some((done, Instant::now() + Duration::from_secs(5), false));
            }
        }
    }

    async fn send_register(&mut self, expires: u32, reply: Option<Reply>) {
        self.cseq += 1;
        let out = Out {
            method: "REGISTER",
            uri: format!("sip:{}", self.config.domain),
            call_id: self.reg_call_id.clone(),
            from: format!("{};tag={}", self.aor(), self.id()),
            to: self.aor(),
            cseq: self.cseq,
            branch: format!("z9hG4bK{}", self.id()),
            headers: vec![
                ("Contact", self.contact()),
                ("Expires", expires.to_string()),
            ],
            body: None,
        };
        self.start_tx(out, None, false, Some((expires, reply)))
            .await;
    }

    async fn place(&mut self, call: CallRef, to: &str) {
        let call_id = format!("{}@{}", self.id(), self.local.ip());
        let sdp = self.sdp(1, "sendrecv");
        let out = Out {
            method: "INVITE",
            uri: format!("sip:{to}@{}", self.config.domain),
            call_id: call_id.clone(),
            from: format!("{};tag={}", self.aor(), self.id()),
            to: format!("<sip:{to}@{}>", self.config.domain),
            cseq: 1,
            branch: format!("z9hG4bK{}", self.id()),
            headers: vec![
                ("Contact", self.contact()),
                ("Content-Type", "application/sdp".to_owned()),
            ],
            body: Some(sdp),
        };
        self.calls.insert(
            call,
            CallState {
                role: Role::Caller,
                state: State::Early,
                call_id,
                local: out.from.clone(),
                remote: out.to.clone(),
                remote_target: out.uri.clone(),
                routes: Vec::new(),
                cseq: 1,
                sdp_version: 1,
                invite: Some(out.clone()),
                provisional: false,
                cancel_wanted: false,
                ringing_told: false,
                request: None,
                from: self.config.server,
                last_response: None,
                resend: None,
                hold_pending: None,
            },
        );
        self.start_tx(out, Some(call), false, None).await;
    }

    /// A response to the INVITE ringing here.
    fn response(&self, c: &CallState, status: u16, reason: &str, body: Option<&str>) -> String {
        let Some(req) = &c.request else {
            return String::new();
        };
        let mut s = format!("SIP/2.0 {status} {reason}\r\n");
        for via in req.all("via") {
            s += &format!("Via: {via}\r\n");
        }
        s += &format!(
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {}\r\nUser-Agent: {}\r\n",
            req.header("from"),
            c.local,
            req.call_id(),
            req.header("cseq"),
            self.contact(),
            self.config.user_agent
        );
        if body.is_some() {
            s += "Content-Type: application/sdp\r\n";
        }
        finish(s, body)
    }

    async fn answer(&mut self, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.role != Role::Callee || c.state != State::Early {
            return;
        }
        let sdp = self.sdp(c.sdp_version, "sendrecv");
        let text = self.response(c, 200, "OK", Some(&sdp));
        let to = c.from;
        self.send_to(&text, to).await;
        let now = Instant::now();
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = State::Answering;
            c.last_response = Some(text);
            c.resend = Some((now + T1, T1, now + GIVE_UP));
        }
    }

    async fn refuse(&mut self, call: CallRef, status: u16) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.role != Role::Callee || c.state != State::Early {
            return;
        }
        let reason = match status {
            486 => "Busy Here",
            480 => "Temporarily Unavailable",
            487 => "Request Terminated",
            603 => "Decline",
            _ => "Refused",
        };
        let text = self.response(c, status, reason, None);
        let to = c.from;
        self.send_to(&text, to).await;
        let now = Instant::now();
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = State::Ending;
            c.last_response = Some(text);
            c.resend = Some((now + T1, T1, now + GIVE_UP));
        }
        let how = if status == 487 {
            Ended::Cancelled
        } else {
            Ended::ByUs
        };
        self.tell(PhoneEvent::Ended { call, how });
    }

    /// An in-dialog request of `call`.
    fn in_dialog(&mut self, call: CallRef, method: &'static str) -> Option<Out> {
        let branch = format!("z9hG4bK{}", self.id());
        let contact = self.contact();
        let c = self.calls.get_mut(&call)?;
        c.cseq += 1;
        let mut headers = vec![("Contact", contact)];
        headers.extend(c.routes.iter().map(|r| ("Route", r.clone())));
        Some(Out {
            method,
            uri: c.remote_target.clone(),
            call_id: c.call_id.clone(),
            from: c.local.clone(),
            to: c.remote.clone(),
            cseq: c.cseq,
            branch,
            headers,
            body: None,
        })
    }

    async fn reinvite(&mut self, call: CallRef, on: bool) {
        let ok = self.calls.get(&call).is_some_and(|c| {
            c.state == State::Confirmed && c.hold_pending.is_none() && c.invite.is_none()
        });
        if !ok {
            return;
        }
        let Some(mut out) = self.in_dialog(call, "INVITE") else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.sdp_version += 1;
        c.hold_pending = Some(on);
        let version = c.sdp_version;
        out.headers
            .push(("Content-Type", "application/sdp".to_owned()));
        out.body = Some(self.sdp(version, if on { "sendonly" } else { "sendrecv" }));
        if let Some(c) = self.calls.get_mut(&call) {
            c.invite = Some(out.clone());
        }
        self.start_tx(out, Some(call), false, None).await;
    }

    async fn hang_up(&mut self, call: CallRef) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.role, c.state) {
            (_, State::Confirmed) | (Role::Callee, State::Answering) => {
                if let Some(out) = self.in_dialog(call, "BYE") {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.state = State::Ending;
                        c.resend = None;
                    }
                    self.start_tx(out, Some(call), false, None).await;
                }
            }
            (Role::Caller, State::Early) => {
                if c.provisional {
                    self.cancel(call).await;
                } else if let Some(c) = self.calls.get_mut(&call) {
                    c.cancel_wanted = true;
                }
            }
            (Role::Callee, State::Early) => self.refuse(call, 480).await,
            _ => {}
        }
    }

    async fn cancel(&mut self, call: CallRef) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(invite) = c.invite.clone() else {
            return;
        };
        c.state = State::Ending;
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        headers.extend(
            invite
                .headers
                .iter()
                .filter(|(n, _)| *n == "Route")
                .cloned(),
        );
        let out = Out {
            method: "CANCEL",
            headers,
            body: None,
            ..invite
        };
        // The CANCEL shares the INVITE's branch; its own transaction is keyed apart.
        let text = self.render(&out);
        self.send_to(&text, self.config.server).await;
        let now = Instant::now();
        self.txs.insert(
            format!("{}:CANCEL", out.branch),
            ClientTx {
                out,
                call: Some(call),
                authenticated: true,
                next: now + T1,
                interval: T1,
                deadline: now + GIVE_UP,
                quiet: false,
                register: None,
            },
        );
    }

    // -- the wire --

    async fn on_message(&mut self, msg: Msg, from: SocketAddr) {
        if msg.method.is_empty() {
            self.on_response(msg).await;
        } else {
            self.on_request(msg, from).await;
        }
    }

    fn call_by_id(&self, call_id: &str) -> Option<CallRef> {
        self.calls
            .iter()
            .find(|(_, c)| c.call_id == call_id)
            .map(|(k, _)| *k)
    }

    async fn on_response(&mut self, msg: Msg) {
        let (_, method) = msg.cseq();
        let key = if method == "CANCEL" {
            format!("{}:CANCEL", msg.branch())
        } else {
            msg.branch().to_owned()
        };
        let Some(tx) = self.txs.get_mut(&key) else {
            // A retransmitted 2xx to an INVITE of ours: acknowledge it again.
            if method == "INVITE"
                && (200..300).contains(&msg.status)
                && let Some(call) = self.call_by_id(msg.call_id())
            {
                let (n, _) = msg.cseq();
                self.ack(call, n).await;
            }
            return;
        };
        if msg.status < 200 {
            if tx.out.method == "INVITE" {
                tx.quiet = true;
                tx.deadline = Instant::now() + Duration::from_secs(300);
            }
            if let Some(call) = tx.call {
                self.on_provisional(call, &msg).await;
            }
            return;
        }
        let Some(tx) = self.txs.remove(&key) else {
            return;
        };
        if (msg.status == 401 || msg.status == 407) && !tx.authenticated {
            self.retry_with_credentials(tx, &msg).await;
            return;
        }
        if let Some((expires, reply)) = tx.register {
            self.on_register_answer(expires, reply, &msg);
            return;
        }
        let Some(call) = tx.call else {
            return;
        };
        match tx.out.method {
            "INVITE" => self.on_invite_final(call, tx.out, &msg).await,
            "BYE" => {
                self.calls.remove(&call);
                self.tell(PhoneEvent::Ended {
                    call,
                    how: Ended::ByUs,
                });
            }
            _ => {}
        }
    }

    async fn retry_with_credentials(&mut self, tx: ClientTx, msg: &Msg) {
        let (header, answer) = if msg.status == 407 {
            ("proxy-authenticate", "Proxy-Authorization")
        } else {
            ("www-authenticate", "Authorization")
        };
        let mut out = tx.out;
        if out.method == "INVITE" {
            // The refusal of the first INVITE is acknowledged in its own transaction.
            let ack = Out {
                method: "ACK",
                to: msg.header("to").to_owned(),
                headers: Vec::new(),
                body: None,
                ..out.clone()
            };
            let text = self.render(&ack);
            self.send_to(&text, self.config.server).await;
        }
        // The first challenge of an algorithm we hold a secret for.
        let chosen = msg.all(header).find_map(|c| {
            let challenge = DigestChallenge::parse(c).ok()?;
            let ha1 = self.config.secrets.get(challenge.algorithm)?.clone();
            Some((challenge, ha1))
        });
        let Some((challenge, ha1)) = chosen else {
            self.fail(tx.call, tx.register, msg.status);
            return;
        };
        let credentials = DigestCredentials::answer(
            &challenge,
            &self.config.user,
            &ha1,
            out.method,
            &out.uri,
            1,
            self.id(),
        );
        out.headers
            .retain(|(n, _)| *n != "Authorization" && *n != "Proxy-Authorization");
        out.headers.push((answer, credentials.to_string()));
        out.branch = format!("z9hG4bK{}", self.id());
        if out.method == "REGISTER" {
            self.cseq += 1;
            out.cseq = self.cseq;
        } else if let Some(call) = tx.call
            && let Some(c) = self.calls.get_mut(&call)
        {
            c.cseq += 1;
            out.cseq = c.cseq;
            if out.method == "INVITE" {
                c.invite = Some(out.clone());
            }
        }
        self.start_tx(out, tx.call, true, tx.register).await;
    }

    fn fail(&mut self, call: Option<CallRef>, register: Option<RegisterTx>, status: u16) {
        if let Some((_, reply)) = register {
            self.tell(PhoneEvent::RegistrationFailed { status });
            if let Some(reply) = reply {
                let _ = reply.send(Err(if status == 0 {
                    PhoneError::NoAnswer
                } else {
                    PhoneError::Refused(status)
                }));
            }
        }
        if let Some(call) = call
            && self.calls.remove(&call).is_some()
        {
            let how = if status == 0 {
                Ended::TimedOut
            } else {
                Ended::Refused(status)
            };
            self.tell(PhoneEvent::Ended { call, how });
        }
    }

    fn on_register_answer(&mut self, requested: u32, reply: Option<Reply>, msg: &Msg) {
        if !(200..300).contains(&msg.status) {
            self.fail(None, Some((requested, reply)), msg.status);
            return;
        }
        let ours = self.local.to_string();
        let granted = msg
            .all("contact")
            .flat_map(split_commas)
            .find(|c| uri_of(c).contains(&ours))
            .and_then(|c| param(c, "expires"))
            .or_else(|| Some(msg.header("expires")).filter(|e| !e.is_empty()))
            .and_then(|e| e.parse().ok())
            .unwrap_or(if requested == 0 { 0 } else { requested });
        if requested == 0 {
            self.registration = None;
            self.refresh_at = None;
        } else {
            self.registration = Some(granted);
            self.refresh_at =
                Some(Instant::now() + Duration::from_secs(u64::from(granted) * 3 / 4));
            self.tell(PhoneEvent::Registered { expires: granted });
        }
        if let Some(reply) = reply {
            let _ = reply.send(Ok(granted));
        }
    }

    async fn on_provisional(&mut self, call: CallRef, msg: &Msg) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.role != Role::Caller || c.invite.as_ref().is_none_or(|i| i.cseq != msg.cseq().0) {
            return;
        }
        c.provisional = true;
        let ringing = (msg.status == 180 || msg.status == 183) && !c.ringing_told;
        if ringing {
            c.ringing_told = true;
        }
        let cancel = c.cancel_wanted && c.state == State::Early;
        if ringing && c.state == State::Early {
            self.tell(PhoneEvent::Ringing { call });
        }
        if cancel {
            self.cancel(call).await;
        }
    }

    async fn ack(&mut self, call: CallRef, cseq: u32) {
        let branch = format!("z9hG4bK{}", self.id());
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let out = Out {
            method: "ACK",
            uri: c.remote_target.clone(),
            call_id: c.call_id.clone(),
            from: c.local.clone(),
            to: c.remote.clone(),
            cseq,
            branch,
            headers: c.routes.iter().map(|r| ("Route", r.clone())).collect(),
            body: None,
        };
        let text = self.render(&out);
        self.send_to(&text, self.config.server).await;
    }

    async fn on_invite_final(&mut self, call: CallRef, invite: Out, msg: &Msg) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if (200..300).contains(&msg.status) {
            let target = uri_of(msg.header("contact")).to_owned();
            if !target.is_empty() {
                c.remote_target = target;
            }
            c.remote = msg.header("to").to_owned();
            if let Some(held) = c.hold_pending.take() {
                c.invite = None;
                self.ack(call, invite.cseq).await;
                self.tell(PhoneEvent::Held { call, held });
                return;
            }
            if c.routes.is_empty() {
                let mut routes: Vec<String> = msg
                    .all("record-route")
                    .flat_map(split_commas)
                    .map(str::to_owned)
                    .collect();
                routes.reverse();
                c.routes = routes;
            }
            c.invite = None;
            let wanted_gone = c.state == State::Ending || c.cancel_wanted;
            c.state = State::Confirmed;
            self.ack(call, invite.cseq).await;
            if wanted_gone {
                // Answered as we cancelled: hang up straight away.
                self.hang_up(call).await;
            } else {
                self.tell(PhoneEvent::Answered { call });
            }
            return;
        }
        let held = c.hold_pending.take();
        if held.is_some() {
            c.invite = None;
        }
        // A refusal: acknowledged in the INVITE's transaction.
        let ack = Out {
            method: "ACK",
            to: msg.header("to").to_owned(),
            headers: Vec::new(),
            body: None,
            ..invite
        };
        let text = self.render(&ack);
        self.send_to(&text, self.config.server).await;
        if let Some(held) = held {
            // A refused re-INVITE leaves the call as it was.
            tracing::debug!(call, held, status = msg.status, "hold refused");
            return;
        }
        let how = if msg.status == 487 {
            Ended::Cancelled
        } else {
            Ended::Refused(msg.status)
        };
        self.calls.remove(&call);
        self.tell(PhoneEvent::Ended { call, how });
    }

    async fn respond(&self, req: &Msg, status: u16, reason: &str, to: SocketAddr) {
        let mut s = format!("SIP/2.0 {status} {reason}\r\n");
        for via in req.all("via") {
            s += &format!("Via: {via}\r\n");
        }
        let mut to_header = req.header("to").to_owned();
        if param(&to_header, "tag").is_none() {
            to_header += &format!(";tag={}", self.id());
        }
        s += &format!(
            "From: {}\r\nTo: {to_header}\r\nCall-ID: {}\r\nCSeq: {}\r\nUser-Agent: {}\r\n",
            req.header("from"),
            req.call_id(),
            req.header("cseq"),
            self.config.user_agent
        );
        self.send_to(&finish(s, None), to).await;
    }

    async fn on_request(&mut self, req: Msg, from: SocketAddr) {
        let call = self.call_by_id(req.call_id());
        let method = req.method.clone();
        match (method.as_str(), call) {
            ("INVITE", None) => self.incoming(req, from).await,
            ("INVITE", Some(call)) => self.incoming_reinvite(call, req, from).await,
            ("ACK", Some(call)) => {
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.resend = None;
                match c.state {
                    State::Answering => {
                        c.state = State::Confirmed;
                        self.tell(PhoneEvent::Answered { call });
                    }
                    State::Ending if c.role == Role::Callee && c.request.is_some() => {
                        self.calls.remove(&call);
                    }
                    _ => {}
                }
            }
            ("ACK", None) => {}
            ("BYE", Some(call)) => {
                self.respond(&req, 200, "OK", from).await;
                self.calls.remove(&call);
                self.tell(PhoneEvent::Ended {
                    call,
                    how: Ended::ByPeer,
                });
            }
            ("CANCEL", Some(call)) => {
                self.respond(&req, 200, "OK", from).await;
                if self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.role == Role::Callee && c.state == State::Early)
                {
                    self.refuse(call, 487).await;
                }
            }
            ("OPTIONS" | "NOTIFY" | "INFO" | "UPDATE", _) => {
                self.respond(&req, 200, "OK", from).await
            }
            ("BYE" | "CANCEL", None) => {
                self.respond(&req, 481, "Call/Transaction Does Not Exist", from)
                    .await
            }
            _ => self.respond(&req, 405, "Method Not Allowed", from).await,
        }
    }

    async fn incoming(&mut self, req: Msg, from: SocketAddr) {
        if self.stopping.is_some() {
            self.respond(&req, 480, "Temporarily Unavailable", from)
                .await;
            return;
        }
        // Calls placed here are numbered by the handle from 1; calls that ring here from 2^32.
        self.incoming += 1;
        let call = (1 << 32) | self.incoming;
        let caller = user_of(uri_of(req.header("from"))).to_owned();
        let local = format!("{};tag={}", req.header("to"), self.id());
        let mut c = CallState {
            role: Role::Callee,
            state: State::Early,
            call_id: req.call_id().to_owned(),
            local,
            remote: req.header("from").to_owned(),
            remote_target: uri_of(req.header("contact")).to_owned(),
            routes: req
                .all("record-route")
                .flat_map(split_commas)
                .map(str::to_owned)
                .collect(),
            cseq: 0,
            sdp_version: 1,
            invite: None,
            provisional: true,
            cancel_wanted: false,
            ringing_told: true,
            request: Some(req),
            from,
            last_response: None,
            resend: None,
            hold_pending: None,
        };
        let ringing = self.response(&c, 180, "Ringing", None);
        self.send_to(&ringing, from).await;
        c.last_response = Some(ringing);
        self.calls.insert(call, c);
        self.tell(PhoneEvent::Incoming { call, from: caller });
    }

    async fn incoming_reinvite(&mut self, call: CallRef, req: Msg, from: SocketAddr) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let same = c
            .request
            .as_ref()
            .is_some_and(|r| r.cseq() == req.cseq() && r.branch() == req.branch());
        if same {
            // A retransmission: the same answer again.
            if let Some(last) = c.last_response.clone() {
                self.send_to(&last, from).await;
            }
            return;
        }
        if c.state != State::Confirmed {
            self.respond(&req, 491, "Request Pending", from).await;
            return;
        }
        let version = c.sdp_version + 1;
        let sdp = self.sdp(version, answer_direction(&req.body));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.sdp_version = version;
        c.request = Some(req);
        c.from = from;
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let text = self.response(c, 200, "OK", Some(&sdp));
        self.send_to(&text, from).await;
        let now = Instant::now();
        if let Some(c) = self.calls.get_mut(&call) {
            c.last_response = Some(text);
            c.resend = Some((now + T1, T1, now + GIVE_UP));
        }
    }

    // -- timers --

    async fn on_tick(&mut self) {
        let now = Instant::now();
        // Client retransmissions and give-ups.
        let due: Vec<String> = self
            .txs
            .iter()
            .filter(|(_, t)| now >= t.deadline || (!t.quiet && now >= t.next))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            let Some(tx) = self.txs.get_mut(&key) else {
                continue;
            };
            if now >= tx.deadline {
                let Some(tx) = self.txs.remove(&key) else {
                    continue;
                };
                if tx.out.method == "BYE" || tx.out.method == "CANCEL" {
                    if let Some(call) = tx.call
                        && self.calls.remove(&call).is_some()
                    {
                        self.tell(PhoneEvent::Ended {
                            call,
                            how: Ended::TimedOut,
                        });
                    }
                } else {
                    self.fail(tx.call, tx.register, 0);
                }
                continue;
            }
            let cap = if tx.out.method == "INVITE" {
                GIVE_UP
            } else {
                T2
            };
            tx.interval = (tx.interval * 2).min(cap);
            tx.next = now + tx.interval;
            let out = tx.out.clone();
            let text = self.render(&out);
            self.send_to(&text, self.config.server).await;
        }
        // 2xx retransmissions until the ACK.
        let mut resend = Vec::new();
        let mut lost = Vec::new();
        for (k, c) in self.calls.iter_mut() {
            if let Some((next, interval, deadline)) = c.resend {
                if now >= deadline {
                    lost.push(*k);
                } else if now >= next {
                    let interval = (interval * 2).min(T2);
                    c.resend = Some((now + interval, interval, deadline));
                    if let Some(last) = &c.last_response {
                        resend.push((last.clone(), c.from));
                    }
                }
            }
        }
        for (text, to) in resend {
            self.send_to(&text, to).await;
        }
        for call in lost {
            // A refusal already told its end; an answer never acknowledged ends here.
            if self
                .calls
                .remove(&call)
                .is_some_and(|c| c.state != State::Ending)
            {
                self.tell(PhoneEvent::Ended {
                    call,
                    how: Ended::TimedOut,
                });
            }
        }
        if self.refresh_at.is_some_and(|at| now >= at) && self.stopping.is_none() {
            self.refresh_at = None;
            self.send_register(self.config.expires, None).await;
        }
    }

    /// During a stop: unregisters once the calls are gone (or after a few seconds); true when
    /// everything is done.
    async fn advance_stop(&mut self) -> bool {
        let Some((_, deadline, unregistering)) = &self.stopping else {
            return false;
        };
        let (deadline, unregistering) = (*deadline, *unregistering);
        let now = Instant::now();
        if !unregistering {
            if !self.calls.is_empty() && now < deadline {
                return false;
            }
            if let Some(s) = &mut self.stopping {
                s.2 = true;
            }
            self.refresh_at = None;
            if self.registration.is_some() {
                self.send_register(0, None).await;
                return false;
            }
        }
        let pending = self.txs.values().any(|t| t.register.is_some());
        if pending && now < deadline + Duration::from_secs(4) {
            return false;
        }
        if let Some((done, _, _)) = self.stopping.take() {
            let _ = done.send(());
        }
        true
    }
}

/// Ends a message: the body's length and the body.
fn finish(mut head: String, body: Option<&str>) -> String {
    let body = body.unwrap_or("");
    head += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    head
}

/// The loopback address of phone `n` (1-based): 127.1.x.y, one address per phone, so each phone
/// is its own source to the server's per-address flood budgets.
pub fn loopback_address(n: u32) -> IpAddr {
    let n = n.max(1);
    IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        1,
        ((n >> 8) & 0xff) as u8,
        (n & 0xff) as u8,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_response_with_compact_headers() {
        let m = Msg::parse(
            "SIP/2.0 180 Ringing\r\nv: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bKx;rport\r\n\
             i: abc\r\nCSeq: 2 INVITE\r\nt: <sip:1002@acme>;tag=t1\r\nl: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.status, 180);
        assert_eq!(m.branch(), "z9hG4bKx");
        assert_eq!(m.call_id(), "abc");
        assert_eq!(m.cseq(), (2, "INVITE"));
        assert_eq!(param(m.header("to"), "tag"), Some("t1"));
    }

    #[test]
    fn reads_uris_and_sdp_directions() {
        // (Challenges are read by `digest::DigestChallenge`, tested there.)
        assert_eq!(uri_of("\"A\" <sip:1001@acme>;tag=x"), "sip:1001@acme");
        assert_eq!(user_of("sip:1001@acme"), "1001");
        assert_eq!(answer_direction("a=sendonly\r\n"), "recvonly");
        assert_eq!(answer_direction("a=sendrecv\r\n"), "sendrecv");
        assert_eq!(answer_direction(""), "sendrecv");
        assert_eq!(
            answer_direction("c=IN IP4 0.0.0.0\r\nm=audio 4000 RTP/AVP 0\r\n"),
            "inactive"
        );
        assert_eq!(loopback_address(258).to_string(), "127.1.1.2");
    }
}
