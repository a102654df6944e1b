//! The rsipstack boundary: builds its transport layer (UDP and TCP listeners, and SIP over
//! WebSocket flows as channel connections) and endpoint (transactions), and installs our ingress
//! filters in the two hooks it offers, so nothing refused ever reaches its transaction layer.
//! Everything that names rsipstack's transport and endpoint types lives here; when its API
//! churns, this is the file that changes.
//!
//! Ingress, in order:
//! 1. UDP datagrams are read through our [`Intake`]: a banned source is dropped, every
//!    datagram counts against its source's packet budget, and the raw bytes must pass
//!    [`sanity::check_datagram`] before rsipstack parses them; while the ingress is behind,
//!    what arrives waits there, ongoing work first (the intake's module says how). TCP
//!    connections from a banned source are refused at accept (the transport whitelist hook),
//!    and one address may hold only so many at once. A WebSocket [`Flow`] does the same per
//!    frame: its source's budget, the raw checks, then the parse; its connection counts with
//!    the TCP ones.
//! 2. Every parsed message passes [`Ingress`] (the transport-event inspector), which first
//!    takes the intake's number off a UDP message and reports it (that paces the reader); TCP
//!    messages count against the packet budget, requests must pass [`sanity::check_request`];
//!    a refused one is answered statelessly to the address it came from (never to a Via a
//!    spoofer chose) and dropped before a transaction exists.
//! 3. A request that passed and needs no transaction (REGISTER, and OPTIONS outside a dialog:
//!    [`answered_outside`]) is handed to the edge as an [`Outside`] instead of becoming one,
//!    and answered statelessly to its source, as Kamailio's `sl` module answers a registrar's
//!    requests. A server transaction would keep every answer for 32 s as a parsed message with
//!    its timers and channel; the edge keeps only the bytes of what it must repeat
//!    (`answers`).
//!
//! A WebSocket flow is a `ChannelConnection` whose address is the browser's (`WS` or `WSS`):
//! the transport layer caches it under that address, so a request to a contact registered over
//! it (the registration remembers transport and source) goes down the same socket, and dialogs
//! reuse it by flow affinity (RFC 7118 §5). rsipstack calls every channel "UDP";
//! [`connection_transport`] gives its real transport.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use events::Clock;
use rsipstack::platform::CancellationToken;
use rsipstack::sip::{Header, Request, Response, SipMessage, StatusCode, Transport};
use rsipstack::transaction::endpoint::{EndpointInnerRef, TransportEventInspector};
use rsipstack::transaction::{EndpointBuilder, TransactionReceiver};
use rsipstack::transport::channel::ChannelConnection;
use rsipstack::transport::connection::{TransportReceiver, TransportSender};
use rsipstack::transport::tcp_listener::TcpListenerConnection;
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TransportEvent, TransportLayer};

use crate::SipError;
use crate::auth::warning;
use crate::config::{Limits, SipConfig};
use crate::intake::{Intake, Progress, STAMP};
use crate::ratelimit::{FloodGuard, Verdict};
use crate::sanity::{self, Datagram, RejectKind};
use crate::stats::Stats;

/// The running stack: the endpoint, where it listens, and what stops it.
pub(crate) struct Stack {
    pub(crate) endpoint: EndpointInnerRef,
    pub(crate) cancel: CancellationToken,
    pub(crate) udp: Option<SocketAddr>,
    pub(crate) tcp: Option<SocketAddr>,
    /// Opens WebSocket flows into this stack.
    pub(crate) flows: Arc<Flows>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

/// What the ingress filters share.
pub(crate) struct Shared {
    pub(crate) guard: Arc<FloodGuard>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) user_agent: String,
    pub(crate) max_tcp_per_ip: usize,
    /// Told of every SIP over WebSocket flow that closed: the browser's address, which is the
    /// `source` of whatever registered over it.
    pub(crate) ended: tokio::sync::mpsc::UnboundedSender<SocketAddr>,
    /// Where requests answered without a transaction go ([`answered_outside`]).
    pub(crate) outside: tokio::sync::mpsc::UnboundedSender<Outside>,
    /// UDP messages the ingress took, which paces the reader ([`Intake`]).
    pub(crate) udp: Progress,
}

impl Shared {
    /// Counts a packet from `ip`; false when it must be dropped.
    pub(crate) fn admit(&self, ip: IpAddr) -> bool {
        match self.guard.packet(ip, self.clock.now()) {
            Verdict::Pass => true,
            Verdict::Banned => {
                self.stats.banned_drop();
                false
            }
            Verdict::NewlyBanned => {
                self.stats.ban();
                self.stats.banned_drop();
                tracing::warn!(target: "ledgerline::sip::security", source = %ip,
                    "banned: over the packet budget");
                false
            }
        }
    }

    /// Whether `ip` is banned now, counted as a dropped packet when it is: what refuses a TCP
    /// connection at accept and a WebSocket upgrade before its handshake.
    pub(crate) fn banned(&self, ip: IpAddr) -> bool {
        let banned = self.guard.is_banned(ip, self.clock.now());
        if banned {
            self.stats.banned_drop();
        }
        banned
    }

    /// Counts a message from `ip` refused for `kind`, and against the source's failure budget.
    pub(crate) fn refuse(&self, ip: IpAddr, kind: RejectKind) {
        self.stats.reject(kind);
        if self.guard.failure(ip, self.clock.now()) == Verdict::NewlyBanned {
            self.stats.ban();
            tracing::warn!(target: "ledgerline::sip::security", source = %ip,
                "banned: too many refused requests");
        }
    }

    /// One datagram or WebSocket frame from `ip`, before any parse: the source's packet budget,
    /// then the raw checks (`cut_off`: it filled the read buffer, so it is too large).
    pub(crate) fn screen(&self, ip: IpAddr, bytes: &[u8], cut_off: bool) -> Screened {
        if !self.admit(ip) {
            return Screened::Banned;
        }
        let checked = if cut_off {
            Err(RejectKind::TooLarge)
        } else {
            sanity::check_datagram(bytes, &self.limits)
        };
        match checked {
            Ok(datagram) => Screened::Passed(datagram),
            Err(kind) => {
                self.refuse(ip, kind);
                Screened::Refused
            }
        }
    }
}

/// What the screening of one datagram or frame found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Screened {
    /// The source is banned (now, or by this very packet): dropped.
    Banned,
    /// Refused by the raw checks, counted: dropped.
    Refused,
    Passed(Datagram),
}

/// Binds the listeners and starts the endpoint. Returns the stack and the stream of new server
/// transactions (requests that passed every ingress check).
pub(crate) async fn start(
    config: &SipConfig,
    shared: Arc<Shared>,
) -> Result<(Stack, TransactionReceiver), SipError> {
    let cancel = CancellationToken::new();
    let layer = TransportLayer::new(cancel.child_token());
    let (udp_socket, tcp) = bind(config).await?;
    let mut udp = None;
    if let Some(socket) = udp_socket {
        let local = socket.local_addr().map_err(|e| SipError::Bind {
            transport: "UDP",
            addr: config.bind,
            source: e,
        })?;
        if config.udp_buffer > 0 {
            size_buffers(&socket, config.udp_buffer);
        }
        let guarded: Arc<dyn rsipstack::platform::net::UdpSocket> =
            Arc::new(GuardedUdp(Intake::new(socket, shared.clone())));
        let connection = UdpConnection::from_socket(guarded, None, Some(cancel.child_token()))
            .await
            .map_err(|e| SipError::Stack(e.to_string()))?;
        layer.add_transport(connection.into());
        udp = Some(local);
    }
    if let Some(addr) = tcp {
        let listener = TcpListenerConnection::new(addr, None)
            .await
            .map_err(|e| SipError::Stack(e.to_string()))?;
        layer.add_transport(listener.into());
    }
    let whitelist = shared.clone();
    layer.set_whitelist(move |ip: IpAddr| std::future::ready(!whitelist.banned(ip)));
    layer.set_stream_idle_timeout(config.tcp_idle_timeout);

    let endpoint = EndpointBuilder::new()
        .with_user_agent(&config.user_agent)
        .with_transport_layer(layer)
        .with_cancel_token(cancel.clone())
        .with_transport_inspector(Box::new(Ingress {
            shared: shared.clone(),
            tcp_connections: Mutex::new(HashMap::new()),
        }))
        .build();
    let incoming = endpoint
        .incoming_transactions()
        .map_err(|e| SipError::Stack(e.to_string()))?;
    let inner = endpoint.inner.clone();
    let serving = inner.clone();
    tokio::spawn(async move {
        if let Err(e) = serving.serve().await {
            tracing::error!(error = %e, "the SIP endpoint stopped");
        }
    });
    if let Some(addr) = tcp {
        wait_until_listening(addr).await?;
    }
    let flows = Arc::new(Flows {
        endpoint: inner.clone(),
        cancel: cancel.child_token(),
        shared,
        runtime: tokio::runtime::Handle::current(),
    });
    Ok((
        Stack {
            endpoint: inner,
            cancel,
            udp,
            tcp,
            flows,
        },
        incoming,
    ))
}

/// Asks for `bytes` of receive and send buffer on the UDP socket (the kernel may grant less).
fn size_buffers(socket: &tokio::net::UdpSocket, bytes: usize) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(bytes) {
        tracing::warn!(error = %e, bytes, "cannot size the UDP receive buffer");
    }
    if let Err(e) = sock.set_send_buffer_size(bytes) {
        tracing::warn!(error = %e, bytes, "cannot size the UDP send buffer");
    }
    // Linux reports twice what it granted (the doubling is its bookkeeping).
    let granted = sock.recv_buffer_size().unwrap_or(0) / 2;
    if granted < bytes {
        tracing::warn!(
            asked = bytes,
            granted,
            "the kernel granted a smaller UDP receive buffer than asked (net.core.rmem_max): bursts of datagrams beyond it are dropped"
        );
    }
    tracing::debug!(
        receive = ?sock.recv_buffer_size(),
        send = ?sock.send_buffer_size(),
        "UDP socket buffers"
    );
}

/// Binds the UDP socket and checks the TCP port, on the same port number. rsipstack binds its TCP
/// listener only when the endpoint starts, and then only logs a failure: binding here first
/// makes a taken port an error now. With port 0, UDP picks a free port and TCP takes the same
/// number, trying again (a few times) when that number is taken for TCP.
async fn bind(
    config: &SipConfig,
) -> Result<(Option<tokio::net::UdpSocket>, Option<SocketAddr>), SipError> {
    let attempts = if config.bind.port() == 0 && config.udp && config.tcp {
        16
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let udp = if config.udp {
            Some(
                tokio::net::UdpSocket::bind(config.bind)
                    .await
                    .map_err(|e| SipError::Bind {
                        transport: "UDP",
                        addr: config.bind,
                        source: e,
                    })?,
            )
        } else {
            None
        };
        if !config.tcp {
            return Ok((udp, None));
        }
        let mut addr = config.bind;
        if let Some(port) = udp
            .as_ref()
            .and_then(|u| u.local_addr().ok())
            .map(|a| a.port())
        {
            addr.set_port(port);
        }
        let probe = std::net::TcpListener::bind(addr).and_then(|l| l.local_addr());
        match probe {
            Ok(bound) => return Ok((udp, Some(bound))),
            Err(e) => {
                last = Some(SipError::Bind {
                    transport: "TCP",
                    addr,
                    source: e,
                })
            }
        }
    }
    Err(last.unwrap_or(SipError::Stack("no port to bind".into())))
}

/// rsipstack starts its TCP listener on a task of its own: connect to it until it answers, so
/// the edge is ready when `start` returns.
async fn wait_until_listening(addr: SocketAddr) -> Result<(), SipError> {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(match addr {
            SocketAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    let mut last = None;
    for _ in 0..400 {
        match tokio::net::TcpStream::connect(probe).await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Err(SipError::Bind {
        transport: "TCP",
        addr,
        source: last.unwrap_or_else(|| std::io::Error::other("the listener never started")),
    })
}

/// Opens SIP over WebSocket flows into the stack.
pub(crate) struct Flows {
    endpoint: EndpointInnerRef,
    cancel: CancellationToken,
    shared: Arc<Shared>,
    /// The edge's runtime: a flow's connection is served there, whichever HTTP worker upgraded
    /// it.
    runtime: tokio::runtime::Handle,
}

impl Flows {
    /// Whether `ip` is banned now: its upgrade is refused, as a TCP connection is at accept.
    pub(crate) fn is_banned(&self, ip: IpAddr) -> bool {
        self.shared.banned(ip)
    }

    /// Whether the edge has stopped.
    pub(crate) fn stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Adds a flow from `peer` (over `WSS` when `secure`, else `WS`) to the transport layer:
    /// what comes in, and what the stack sends down it.
    pub(crate) async fn open(
        &self,
        peer: SocketAddr,
        secure: bool,
    ) -> Result<(Flow, Downstream), SipError> {
        let transport = if secure {
            Transport::Wss
        } else {
            Transport::Ws
        };
        let (to_stack, incoming) = tokio::sync::mpsc::unbounded_channel();
        let (outgoing, from_stack) = tokio::sync::mpsc::unbounded_channel();
        let addr = SipAddr {
            r#type: Some(transport),
            addr: peer.into(),
        };
        let closed = self.cancel.child_token();
        let connection = ChannelConnection::create_connection(
            incoming,
            outgoing,
            addr.clone(),
            Some(closed.clone()),
        )
        .await
        .map_err(|e| SipError::Stack(e.to_string()))?;
        {
            let _edge = self.runtime.enter();
            self.endpoint
                .transport_layer
                .add_connection(connection.clone().into());
        }
        let flow = Flow {
            connection,
            addr,
            peer,
            to_stack,
            shared: self.shared.clone(),
            closed,
        };
        Ok((flow, Downstream(from_stack)))
    }
}

/// One SIP over WebSocket connection as the stack sees it: frames in, messages out. Dropping it
/// ends the connection in the stack (its serve loop sees the channel close).
pub(crate) struct Flow {
    connection: ChannelConnection,
    addr: SipAddr,
    peer: SocketAddr,
    to_stack: TransportSender,
    shared: Arc<Shared>,
    closed: CancellationToken,
}

/// What the stack sends down a flow.
pub(crate) struct Downstream(TransportReceiver);

impl Downstream {
    /// The next message, as text; `None` once the edge stopped.
    pub(crate) async fn next(&mut self) -> Option<String> {
        loop {
            if let TransportEvent::Incoming(msg, _, _) = self.0.recv().await? {
                return Some(msg.to_string());
            }
        }
    }
}

/// What became of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Parsed and handed to the stack (which still runs the request checks).
    Delivered,
    /// A CRLF keep-alive: answer CRLF.
    Keepalive,
    /// Refused by the raw checks or the parser, counted; nothing is answered.
    Refused,
    /// The source is banned now, or the stack is gone: close the connection.
    Close,
}

impl Flow {
    /// Takes one frame (one whole SIP message, RFC 7118 §5): the source's packet budget, the
    /// raw checks, the parse, then Via `received`/`rport` as for any stream.
    pub(crate) fn receive(&self, bytes: &[u8]) -> Frame {
        let shared = &self.shared;
        let ip = self.peer.ip();
        match shared.screen(ip, bytes, false) {
            Screened::Banned => return Frame::Close,
            Screened::Refused => return Frame::Refused,
            Screened::Passed(Datagram::Keepalive) => return Frame::Keepalive,
            Screened::Passed(Datagram::Ongoing | Datagram::Initial) => {}
        }
        let transport = self.addr.r#type.unwrap_or(Transport::Ws);
        let parsed = match SipMessage::try_from(bytes) {
            Ok(m) => SipConnection::update_msg_received(m, self.peer, transport)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(msg) => {
                let event = TransportEvent::Incoming(
                    msg,
                    self.connection.clone().into(),
                    self.addr.clone(),
                );
                if self.to_stack.send(event).is_err() {
                    return Frame::Close;
                }
                Frame::Delivered
            }
            Err(e) => {
                tracing::debug!(source = %self.peer, error = %e, "unparseable SIP over WebSocket");
                shared.refuse(ip, RejectKind::Malformed);
                Frame::Refused
            }
        }
    }

    /// Cancelled when the edge refuses this flow, retires it, or stops.
    pub(crate) fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        // Dialogs stop choosing it at once (flow affinity checks the token).
        self.closed.cancel();
    }
}

/// The UDP socket as rsipstack reads it: our [`Intake`].
struct GuardedUdp(Intake);

#[async_trait]
impl rsipstack::platform::net::UdpSocket for GuardedUdp {
    async fn recv_from(&self, buf: &mut [u8]) -> rsipstack::Result<(usize, SocketAddr)> {
        Ok(self.0.recv(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> rsipstack::Result<usize> {
        Ok(self.0.socket().send_to(buf, addr).await?)
    }

    fn local_addr(&self) -> rsipstack::Result<SocketAddr> {
        Ok(self.0.socket().local_addr()?)
    }
}

/// The transport-event inspector: sanity checks before transactions, TCP connection limits.
struct Ingress {
    shared: Arc<Shared>,
    tcp_connections: Mutex<HashMap<IpAddr, usize>>,
}

impl Ingress {
    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.tcp_connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn incoming(
        &self,
        msg: SipMessage,
        connection: SipConnection,
        from: rsipstack::transport::SipAddr,
    ) -> Option<TransportEvent> {
        let shared = &self.shared;
        let mut msg = msg;
        if let SipConnection::Udp(_) = connection
            && let Some(n) = unstamp(&mut msg)
        {
            shared.udp.took(n);
        }
        let Ok(source) = from.get_socketaddr() else {
            return None;
        };
        // UDP datagrams were counted by the intake, WebSocket frames by their flow.
        let counted = matches!(
            connection,
            SipConnection::Udp(_) | SipConnection::Channel(_)
        );
        if !counted && !shared.admit(source.ip()) {
            return None;
        }
        let SipMessage::Request(req) = msg else {
            return Some(TransportEvent::Incoming(msg, connection, from));
        };
        match sanity::check_request(&req, connection_transport(&connection), &shared.limits) {
            Ok(()) if acknowledges_stateless(&req) => None,
            Ok(()) if answered_outside(&req) => {
                let outside = Outside {
                    request: req,
                    connection,
                    from,
                };
                // Closed only when the edge stops.
                let _ = shared.outside.send(outside);
                None
            }
            Ok(()) => Some(TransportEvent::Incoming(
                SipMessage::Request(req),
                connection,
                from,
            )),
            Err(rejection) => {
                shared.refuse(source.ip(), rejection.kind);
                if req.method != rsipstack::sip::Method::Ack {
                    let mut extra = vec![warning(&rejection.detail)];
                    if let Some(tags) = &rejection.unsupported {
                        extra.push(Header::Unsupported(tags.clone().into()));
                    }
                    let response =
                        stateless_response(&req, rejection.status, extra, &shared.user_agent);
                    let destination = (!connection.is_reliable()).then_some(&from);
                    if let Err(e) = connection.send(response.into(), destination).await {
                        tracing::debug!(%source, error = %e, "could not answer a refused request");
                    }
                }
                None
            }
        }
    }
}

#[async_trait]
impl TransportEventInspector for Ingress {
    async fn handle(&self, event: TransportEvent) -> Option<TransportEvent> {
        match event {
            TransportEvent::Incoming(msg, connection, from) => {
                self.incoming(msg, connection, from).await
            }
            TransportEvent::New(connection) => {
                let Some(ip) = remote_ip(&connection) else {
                    return Some(TransportEvent::New(connection));
                };
                let count = {
                    let mut connections = self.connections();
                    let n = connections.entry(ip).or_default();
                    *n += 1;
                    *n
                };
                let admitted = self.shared.admit(ip);
                if count > self.shared.max_tcp_per_ip || !admitted {
                    if admitted {
                        self.shared.stats.tcp_refused();
                    }
                    close(&connection).await;
                }
                Some(TransportEvent::New(connection))
            }
            TransportEvent::Closed(connection) => {
                if let Some(ip) = remote_ip(&connection) {
                    let mut connections = self.connections();
                    if let Some(n) = connections.get_mut(&ip) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            connections.remove(&ip);
                        }
                    }
                }
                let peer = connection
                    .get_remote_addr()
                    .and_then(|a| a.get_socketaddr().ok());
                // A WebSocket flow: the browser behind it accepts no connection, so what it
                // registered over it is unreachable from now on (RFC 7118 §5). A phone on TCP
                // may be reached on its contact again, and keeps its bindings.
                let flow = matches!(connection, SipConnection::Channel(_));
                if let Some(peer) = peer.filter(|_| flow) {
                    let _ = self.shared.ended.send(peer);
                }
                Some(TransportEvent::Closed(connection))
            }
        }
    }
}

/// Takes the intake's number off a UDP message (its last header, [`STAMP`]), so nothing past
/// the ingress ever sees it.
fn unstamp(msg: &mut SipMessage) -> Option<u64> {
    let headers = match msg {
        SipMessage::Request(r) => &mut r.headers,
        SipMessage::Response(r) => &mut r.headers,
    };
    let n = match headers.0.last()? {
        Header::Other(name, value) if name == STAMP => value.parse().ok()?,
        _ => return None,
    };
    headers.0.pop();
    Some(n)
}

/// Closes a connection the edge refuses. A WebSocket flow ends when its token is cancelled.
async fn close(connection: &SipConnection) {
    if let SipConnection::Channel(_) = connection {
        if let Some(token) = connection.cancel_token() {
            token.cancel();
        }
    } else if let Err(e) = connection.close().await {
        tracing::debug!(remote = ?connection.get_remote_addr(), error = %e,
            "closing a refused connection");
    }
}

fn remote_ip(connection: &SipConnection) -> Option<IpAddr> {
    if !connection.is_reliable() {
        return None;
    }
    connection
        .get_remote_addr()
        .and_then(|a| a.get_socketaddr().ok())
        .map(|a| a.ip())
}

/// Whether `req` is answered without a transaction: REGISTER (a registrar's answer depends only
/// on the request and the log, so a stateless one is what RFC 3261 §10.3 needs), OPTIONS
/// outside a dialog, and an INVITE outside a dialog without credentials (it can only be
/// challenged or refused, as Kamailio's `auth_challenge` does statelessly; its ACK is absorbed
/// by [`acknowledges_stateless`]). Every other request gets a server transaction.
pub(crate) fn answered_outside(req: &Request) -> bool {
    use rsipstack::sip::Method;
    let tagged = || to_tag(req).is_some();
    match req.method {
        Method::Register => true,
        Method::Options => !tagged(),
        Method::Invite => {
            !req.headers
                .iter()
                .any(|h| matches!(h, Header::ProxyAuthorization(_)))
                && !tagged()
        }
        _ => false,
    }
}

/// Whether `req` is the ACK of a stateless answer to an INVITE: its To tag is the one
/// [`stateless_response`] gave (the ACK of a non-2xx answer repeats the INVITE's Call-ID, From
/// and Via, RFC 3261 §17.1.1.3). No transaction waits for it, so it ends here.
fn acknowledges_stateless(req: &Request) -> bool {
    req.method == rsipstack::sip::Method::Ack
        && to_tag(req).is_some_and(|tag| tag == stateless_tag(req))
}

/// The tag of `req`'s To header (the first To), read from its text.
pub(crate) fn to_tag(req: &Request) -> Option<&str> {
    req.headers.iter().find_map(|h| match h {
        Header::To(to) => Some(header_tag(to.value())),
        _ => None,
    })?
}

/// The `tag` parameter of a From or To value (RFC 3261 §20.20, §20.39), read from its text
/// instead of parsing the whole name-addr: a registration storm looks at two per REGISTER.
/// Header parameters follow the `<…>` of a name-addr (skipping a quoted display name), or
/// the first `;` of a bare addr-spec, whose own parameters they are (§20). Read as rsipstack's
/// parameter parser reads them (`tag=` exactly, any case), so the sanity checks, the dialog
/// layer and the stateless answers agree on which requests carry a tag.
pub(crate) fn header_tag(value: &str) -> Option<&str> {
    let bytes = value.as_bytes();
    let (mut i, mut quoted, mut escaped) = (0, false, false);
    let mut params = None;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => quoted = true,
                b'<' => {
                    let close = value[i..].find('>')? + i;
                    params = Some(&value[close + 1..]);
                    break;
                }
                b';' => {
                    params = Some(&value[i..]);
                    break;
                }
                _ => {}
            }
        }
        i += 1;
    }
    params?.split(';').skip(1).find_map(|p| {
        let (name, tag) = p.trim().split_once('=')?;
        name.eq_ignore_ascii_case("tag").then_some(tag)
    })
}

/// A request the ingress passed that is answered without a transaction, with what answers it.
pub(crate) struct Outside {
    pub(crate) request: Request,
    connection: SipConnection,
    from: SipAddr,
}

impl Outside {
    /// The address it came from: the UDP source, or the TCP or WebSocket peer.
    pub(crate) fn source(&self) -> Option<SocketAddr> {
        self.connection
            .get_remote_addr()
            .unwrap_or(&self.from)
            .get_socketaddr()
            .ok()
    }

    /// The transport it came over.
    pub(crate) fn transport(&self) -> Transport {
        connection_transport(&self.connection)
    }

    /// For a request over a SIP over WebSocket flow: the token cancelled once the flow closed
    /// (before the stack learns of it, so before its close is handled).
    pub(crate) fn flow(&self) -> Option<CancellationToken> {
        match &self.connection {
            SipConnection::Channel(_) => self.connection.cancel_token(),
            _ => None,
        }
    }

    /// Whether it came over a connection (TCP, WebSocket): nothing is retransmitted there.
    pub(crate) fn reliable(&self) -> bool {
        self.connection.is_reliable()
    }

    /// Answers with `status` and `extra` headers, to the address it came from. Returns the
    /// datagram sent over UDP, which a retransmission of the request gets again.
    pub(crate) async fn answer(
        &self,
        status: u16,
        extra: Vec<Header>,
        server: &str,
    ) -> Option<Box<[u8]>> {
        let sent = match &self.connection {
            SipConnection::Udp(udp) => {
                let bytes = stateless_datagram(&self.request, status, &extra, server);
                udp.send_raw(&bytes, &self.from).await.map(|()| Some(bytes))
            }
            connection => {
                let response = stateless_response(&self.request, status, extra, server);
                connection.send(response.into(), None).await.map(|()| None)
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(source = %self.from, error = %e, "could not answer");
            None
        })
    }

    /// Sends an earlier answer's datagram again (a retransmitted request over UDP).
    pub(crate) async fn repeat(&self, datagram: &[u8]) {
        if let SipConnection::Udp(udp) = &self.connection
            && let Err(e) = udp.send_raw(datagram, &self.from).await
        {
            tracing::debug!(source = %self.from, error = %e, "could not repeat an answer");
        }
    }
}

/// A response to `req` sent without a transaction: its [`copied_headers`], then `extra`,
/// `Server` and `Content-Length: 0`.
fn stateless_response(req: &Request, status: u16, extra: Vec<Header>, server: &str) -> Response {
    let mut headers = rsipstack::sip::Headers::default();
    for h in copied_headers(req) {
        headers.push(h.into_owned());
    }
    for h in extra {
        headers.push(h);
    }
    headers.push(Header::Server(server.to_owned().into()));
    headers.push(Header::ContentLength(0u32.into()));
    Response {
        status_code: StatusCode::from(status),
        wire_reason: None,
        version: rsipstack::sip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// The bytes of [`stateless_response`], written straight from the request's headers: the same
/// text rsipstack writes for that response, without copying every header into a `Response`
/// first and joining one string per header (a registration storm answers every REGISTER so).
fn stateless_datagram(req: &Request, status: u16, extra: &[Header], server: &str) -> Box<[u8]> {
    let code = StatusCode::from(status);
    let mut out = String::with_capacity(640);
    // Written into `out` in place: no String for the code.
    let _ = write!(out, "SIP/2.0 {} {}\r\n", code.code(), code.text());
    // Name and value side by side, as every header's Display writes them (checked by a test),
    // without the formatting machinery per header.
    let mut line = |h: &Header| {
        out.push_str(h.name());
        out.push_str(": ");
        out.push_str(h.value());
        out.push_str("\r\n");
    };
    for h in copied_headers(req) {
        line(&h);
    }
    for h in extra {
        line(h);
    }
    out.push_str("Server: ");
    out.push_str(server);
    out.push_str("\r\nContent-Length: 0\r\n\r\n");
    out.into_bytes().into_boxed_slice()
}

/// What a stateless answer to `req` copies from it, in its order: the Vias, From, Call-ID, CSeq
/// and To, the To tagged with [`stateless_tag`] when it has no tag yet.
fn copied_headers(req: &Request) -> impl Iterator<Item = Cow<'_, Header>> {
    req.headers.iter().filter_map(move |h| match h {
        Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
            Some(Cow::Borrowed(h))
        }
        Header::To(to) => Some(match header_tag(to.value()) {
            Some(_) => Cow::Borrowed(h),
            None => Cow::Owned(Header::To(
                format!("{};tag={}", to.value().trim_end(), stateless_tag(req)).into(),
            )),
        }),
        _ => None,
    })
}

/// The To tag of a stateless answer to `req`: a hash of its Call-ID, From and top Via, so every
/// retransmission gets the same one (RFC 3261 §8.2.6.2), and so does the ACK of a non-2xx
/// answer, which repeats exactly those (§17.1.1.3).
fn stateless_tag(req: &Request) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    let mut top_via = true;
    for h in req.headers.iter() {
        match h {
            Header::CallId(v) => v.value().hash(&mut hasher),
            Header::From(v) => v.value().hash(&mut hasher),
            Header::Via(v) if top_via => {
                v.value().hash(&mut hasher);
                top_via = false;
            }
            _ => {}
        }
    }
    format!("{:016x}", hasher.finish())
}

/// The transport a message on `connection` came over. rsipstack reports every channel connection
/// as UDP; ours are WebSocket flows, whose address carries `WS` or `WSS`.
pub(crate) fn connection_transport(connection: &SipConnection) -> Transport {
    match connection {
        SipConnection::Channel(channel) => channel.get_addr().r#type.unwrap_or(Transport::Ws),
        other => other.transport(),
    }
}

/// The event model's name for an rsipstack transport.
pub(crate) fn event_transport(t: Transport) -> events::model::Transport {
    use events::model::Transport as T;
    match t {
        Transport::Tcp => T::Tcp,
        Transport::Tls | Transport::TlsSctp => T::Tls,
        Transport::Ws => T::Ws,
        Transport::Wss => T::Wss,
        _ => T::Udp,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsipstack::sip::HeadersExt;

    /// A request of `method` from 1002 to 1003, its To tagged with `to_tag`, with `extra`
    /// header lines.
    pub(crate) fn request(method: &str, to_tag: Option<&str>, extra: &str) -> Request {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let raw = format!(
            "{method} sip:1003@192.0.2.9 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
             From: <sip:1002@192.0.2.9>;tag=f1\r\n\
             To: <sip:1003@192.0.2.9>{tag}\r\n\
             Call-ID: c1\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).expect("a request")
    }

    #[test]
    fn the_ingress_takes_the_intakes_number_off_and_only_its_own() {
        // A sender's own header of that name, not last, is not the number and stays.
        let raw = "MESSAGE sip:1003@192.0.2.9 SIP/2.0\r\n\
                   Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n\
                   X-Ledgerline-Intake: 999\r\n\
                   Content-Length: 5\r\n\r\nhello";
        let mut buf = vec![0u8; 512];
        buf[..raw.len()].copy_from_slice(raw.as_bytes());
        let len = crate::intake::stamp(&mut buf, raw.len(), 7).expect("room");
        let mut msg = SipMessage::try_from(&buf[..len]).expect("parsed");
        assert_eq!(unstamp(&mut msg), Some(7));
        let SipMessage::Request(req) = &msg else {
            panic!("a request")
        };
        let ours: Vec<&str> = req
            .headers
            .iter()
            .filter(|h| h.name() == STAMP)
            .map(|h| h.value())
            .collect();
        assert_eq!(ours, ["999"]);
        assert_eq!(req.body, b"hello");
        // Nothing numbered: nothing taken off.
        let mut plain = SipMessage::try_from(raw.as_bytes()).expect("parsed");
        assert_eq!(unstamp(&mut plain), None);
        assert_eq!(
            plain.to_string(),
            SipMessage::try_from(raw.as_bytes()).unwrap().to_string()
        );
    }

    #[test]
    fn a_stateless_datagram_is_the_response_rsipstack_would_write() {
        let challenge = Header::WwwAuthenticate(
            "Digest realm=\"acme\", nonce=\"n1\", algorithm=MD5, qop=\"auth\"".into(),
        );
        let contacts = [
            Header::Contact("<sip:1003@192.0.2.1:5060>;expires=120".into()),
            Header::Contact("<sip:1003@192.0.2.2:5060>;expires=60".into()),
        ];
        let two_vias = "Via: SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK-2;received=192.0.2.1\r\n\
                        User-Agent: phone\r\n";
        let busy = vec![
            Header::RetryAfter("5".into()),
            Header::Warning("399 ledgerline \"busy\"".into()),
            Header::Allow("INVITE, ACK, BYE".into()),
            Header::Accept("application/sdp".into()),
            Header::ProxyAuthenticate("Digest realm=\"acme\", nonce=\"n2\"".into()),
            Header::Other("X-Reason".into(), "test".into()),
        ];
        let cases: [(Request, u16, Vec<Header>); 6] = [
            (request("OPTIONS", None, ""), 503, busy),
            (request("REGISTER", None, ""), 401, vec![challenge.clone()]),
            (request("REGISTER", None, two_vias), 200, contacts.to_vec()),
            (request("INVITE", None, ""), 407, vec![challenge]),
            (request("OPTIONS", Some("known"), ""), 200, vec![]),
            (
                request("REGISTER", None, ""),
                423,
                vec![Header::MinExpires("60".into())],
            ),
        ];
        for (req, status, extra) in cases {
            let fast = stateless_datagram(&req, status, &extra, "Ledgerline test");
            let typed =
                SipMessage::Response(stateless_response(&req, status, extra, "Ledgerline test"))
                    .to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&fast),
                String::from_utf8_lossy(&typed),
                "{status} to {}",
                req.method
            );
        }
    }

    #[test]
    fn only_requests_that_need_no_transaction_are_answered_outside() {
        assert!(answered_outside(&request("REGISTER", None, "")));
        assert!(answered_outside(&request("OPTIONS", None, "")));
        assert!(!answered_outside(&request("OPTIONS", Some("t"), "")));
        assert!(answered_outside(&request("INVITE", None, "")));
        let credentials = "Proxy-Authorization: Digest username=\"1002\"\r\n";
        assert!(!answered_outside(&request("INVITE", None, credentials)));
        assert!(!answered_outside(&request("INVITE", Some("t"), "")));
        assert!(!answered_outside(&request("BYE", Some("t"), "")));
    }

    #[test]
    fn a_tag_is_read_from_the_header_parameters_only() {
        let cases = [
            ("<sip:1003@192.0.2.9>", None),
            ("<sip:1003@192.0.2.9>;tag=abc", Some("abc")),
            ("<sip:1003@192.0.2.9>;expires=5 ; TAG=x1", Some("x1")),
            ("<sip:1003@192.0.2.9>;tag", None),
            ("sip:1003@192.0.2.9;tag=bare", Some("bare")),
            ("sip:1003@192.0.2.9", None),
            // Parameters inside the brackets are the URI's.
            ("<sip:1003@192.0.2.9;tag=uri>", None),
            ("<sip:1003@192.0.2.9;tag=uri>;tag=hdr", Some("hdr")),
            // A quoted display name may hold anything.
            ("\"a;tag=no <x>\" <sip:1003@192.0.2.9>", None),
            (
                "\"say \\\"hi\\\";tag=no\" <sip:1003@192.0.2.9>;tag=t9",
                Some("t9"),
            ),
            ("Bob <sip:1003@192.0.2.9>;tag=t2", Some("t2")),
        ];
        for (value, tag) in cases {
            assert_eq!(header_tag(value), tag, "{value}");
            // rsipstack's full parse agrees.
            let typed = rsipstack::sip::headers::To::new(value).tag().unwrap();
            assert_eq!(
                typed.as_ref().map(|t| t.value()),
                tag,
                "{value} (rsipstack)"
            );
        }
    }

    #[test]
    fn the_ack_of_a_stateless_answer_is_recognised_by_its_to_tag() {
        let invite = request("INVITE", None, "");
        let answer = stateless_response(&invite, 407, vec![], "test");
        let tag = answer.to_header().unwrap().tag().unwrap().unwrap();
        // The same request always gets the same tag.
        let again = stateless_response(&invite, 407, vec![], "test");
        assert_eq!(again.to_header().unwrap().tag().unwrap(), Some(tag.clone()));
        assert!(acknowledges_stateless(&request(
            "ACK",
            Some(tag.value()),
            ""
        )));
        assert!(!acknowledges_stateless(&request("ACK", Some("other"), "")));
        assert!(!acknowledges_stateless(&request(
            "BYE",
            Some(tag.value()),
            ""
        )));
    }

    #[tokio::test]
    async fn the_udp_buffers_are_sized_as_asked_within_the_kernels_cap() {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sock = socket2::SockRef::from(&socket);
        let before = sock.recv_buffer_size().unwrap();
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let asked = (before * 4).min(cap).max(before + 1);
        size_buffers(&socket, asked);
        // Linux grants what was asked (doubled, for its bookkeeping) up to rmem_max.
        let granted = sock.recv_buffer_size().unwrap();
        if cap > before {
            assert!(granted >= asked, "asked {asked}, granted {granted}");
        } else {
            assert_eq!(granted, before);
        }
        assert!(sock.send_buffer_size().unwrap() > 0);
    }
}
