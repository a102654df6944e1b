//! The SIP edge as a running service: it starts the stack, takes each new server transaction,
//! bounds how many requests starting new work are handled at once (503 beyond; requests inside
//! a dialog and CANCELs are never refused for load), and dispatches: an INVITE outside a dialog
//! goes to the call edge (`calls`), any request inside one to its dialog (481 when there is
//! none), everything else is 405. REGISTER, OPTIONS outside a dialog and an INVITE without
//! credentials never become transactions: the ingress hands them over as they are, and they are
//! answered statelessly within the same bound (REGISTER by the registrar, OPTIONS with 200, the
//! INVITE with its challenge), a retransmission over UDP getting the first answer again
//! (`answers`). A task logs the security summary periodically; another follows the call actors'
//! feed for the sessions. SIP over WebSocket feeds the same endpoint through a channel
//! connection from the HTTP server ([`SipEdge::websocket`]), so it meets the same ingress
//! checks; when such a flow closes, a third task unregisters what was registered over it.

use std::net::SocketAddr;
use std::sync::Arc;

use engine::call::Call;
use engine::extension::Extension;
use engine::runtime::{Engine, Registry};
use events::ids::{CallId, ExtensionNumber, PhoneNumber, TenantId, UserId};
use events::{Clock, IdGen};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::{Header, Method, Request, StatusCode, Transport};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::Semaphore;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::SipError;
use crate::accounts::Accounts;
use crate::answers::{self, Answers, Seen};
use crate::auth::Authenticator;
use crate::bindings::Bindings;
use crate::calls::{self, ClickToCallError};
use crate::config::SipConfig;
use crate::digest::{DigestAlgorithm, Nonces};
use crate::ratelimit::FloodGuard;
use crate::registrar;
use crate::stats::{SecurityStats, Stats};
use crate::transport::{self, Outside, Shared, Stack, event_transport};
use crate::websocket::WebSocketAcceptor;

/// Methods answered.
const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, UPDATE, INFO";

/// The parts of the engine the edge sends commands to. Their services (log, clock, ids) must be
/// the same; the edge uses the extensions' ones.
#[derive(Debug, Clone)]
pub struct Registries {
    pub extensions: Registry<Extension>,
    pub calls: Registry<Call>,
}

impl From<&Engine> for Registries {
    fn from(engine: &Engine) -> Self {
        Self {
            extensions: engine.extensions().clone(),
            calls: engine.calls().clone(),
        }
    }
}

/// What every request handler reaches.
pub(crate) struct Core {
    pub(crate) config: SipConfig,
    pub(crate) accounts: Arc<dyn Accounts>,
    pub(crate) extensions: Registry<Extension>,
    pub(crate) bindings: Arc<Bindings>,
    pub(crate) calls: Arc<calls::Shared>,
    pub(crate) auth: Authenticator,
    pub(crate) stats: Arc<Stats>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGen>,
    /// Which extensions registered over each open WebSocket flow.
    pub(crate) flows: registrar::Flows,
    /// The stateless answers kept for retransmissions.
    pub(crate) answers: Answers,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A final response: status and extra headers.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<Header>,
}

impl Reply {
    pub(crate) fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
        }
    }

    pub(crate) fn with(mut self, header: Header) -> Self {
        self.headers.push(header);
        self
    }

    pub(crate) fn with_all(mut self, headers: Vec<Header>) -> Self {
        self.headers.extend(headers);
        self
    }
}

/// A running SIP edge. Dropping it stops it.
#[derive(Debug)]
pub struct SipEdge {
    stack: Stack,
    core: Arc<Core>,
    guard: Arc<FloodGuard>,
}

impl SipEdge {
    /// Binds the listeners of `config` and starts serving: registrations become commands to
    /// the extensions, calls commands to the calls of `engine` (whose log, clock and id generator
    /// the edge uses too), authenticated against `accounts`. Must run inside a tokio runtime; the
    /// registries need the actix system they were created in to keep running.
    pub async fn start(
        config: SipConfig,
        engine: Registries,
        accounts: Arc<dyn Accounts>,
    ) -> Result<Self, SipError> {
        let Registries { extensions, calls } = engine;
        let services = extensions.services();
        let (log, clock, ids) = (
            services.log.clone(),
            services.clock.clone(),
            services.ids.clone(),
        );
        let available = accounts.algorithms();
        let algorithms: Vec<DigestAlgorithm> = config
            .digest
            .algorithms
            .iter()
            .copied()
            .filter(|a| available.contains(a))
            .collect();
        if algorithms.is_empty() {
            return Err(SipError::NoDigestAlgorithm);
        }
        if algorithms.len() < config.digest.algorithms.len() {
            tracing::info!(offered = ?algorithms, configured = ?config.digest.algorithms,
                "some accounts lack secrets for every configured digest algorithm; offering only those all have");
        }
        let stats = Arc::new(Stats::default());
        let guard = Arc::new(FloodGuard::new(config.flood.clone()));
        let nonces = Nonces::new(
            &*ids,
            config.digest.nonce_lifetime,
            config.digest.max_tracked_nonces,
        );
        let auth = Authenticator::new(
            accounts.clone(),
            nonces,
            algorithms,
            clock.clone(),
            guard.clone(),
            stats.clone(),
        );
        let (ended, closed_flows) = tokio::sync::mpsc::unbounded_channel();
        let (outside, outside_requests) = tokio::sync::mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            guard: guard.clone(),
            stats: stats.clone(),
            clock: clock.clone(),
            limits: config.limits.clone(),
            user_agent: config.user_agent.clone(),
            max_tcp_per_ip: config.max_tcp_connections_per_ip,
            ended,
            outside,
            udp: Default::default(),
        });
        let (stack, incoming) = transport::start(&config, shared).await?;
        let bindings = Arc::new(Bindings::of(&extensions));
        let call_edge = calls::Shared::new(
            Arc::new(DialogLayer::new(stack.endpoint.clone())),
            calls,
            extensions.clone(),
            bindings.clone(),
            log,
            clock.clone(),
            ids.clone(),
            config.calls.clone(),
        );
        call_edge.follow_feed(stack.cancel.child_token());
        let core = Arc::new(Core {
            bindings,
            calls: call_edge,
            config,
            accounts,
            extensions,
            auth,
            stats,
            clock,
            ids,
            flows: registrar::Flows::default(),
            answers: Answers::new(answers::KEEP),
        });
        tokio::spawn(registrar::unbind_closed_flows(
            core.clone(),
            closed_flows,
            stack.cancel.child_token(),
        ));
        let slots = Arc::new(Semaphore::new(core.config.max_in_flight.max(1)));
        tokio::spawn(dispatch(core.clone(), incoming, slots.clone()));
        tokio::spawn(dispatch_outside(core.clone(), outside_requests, slots));
        tokio::spawn(summaries(
            core.clone(),
            guard.clone(),
            stack.cancel.child_token(),
        ));
        tracing::info!(udp = ?stack.udp, tcp = ?stack.tcp,
            digest = ?core.auth.algorithms(), "SIP edge listening");
        Ok(Self { stack, core, guard })
    }

    /// Where the UDP listener is bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.stack.udp
    }

    /// Where the TCP listener is bound.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.stack.tcp
    }

    /// Takes SIP over WebSocket connections (RFC 7118) that the HTTP server upgrades, into this
    /// edge.
    pub fn websocket(&self) -> WebSocketAcceptor {
        WebSocketAcceptor::new(self.stack.flows.clone(), self.core.config.tcp_idle_timeout)
    }

    /// The digest algorithms challenged with, most preferred first.
    pub fn digest_algorithms(&self) -> Vec<DigestAlgorithm> {
        self.core.auth.algorithms().to_vec()
    }

    /// What was refused since the start.
    pub fn stats(&self) -> SecurityStats {
        self.core.stats.snapshot()
    }

    /// Server transactions in progress in the stack.
    pub fn transactions_in_progress(&self) -> usize {
        self.stack.endpoint.get_stats().running_transactions
    }

    /// Requests answered without a transaction whose answers are kept for retransmissions.
    pub fn answers_kept(&self) -> usize {
        self.core.answers.len()
    }

    /// Sources banned now.
    pub fn banned(&self) -> Vec<std::net::IpAddr> {
        self.guard.banned(self.core.clock.now())
    }

    /// Calls with a session on this edge (ringing, answered, or finishing on the wire).
    pub fn calls_in_progress(&self) -> usize {
        self.core.calls.in_progress()
    }

    /// Click-to-call: rings `user`'s registered phones, and when one answers, rings `target`
    /// and bridges them. Returns the call's id once the call is recorded; the rest happens in
    /// the background, in the call's stream.
    pub async fn click_to_call(
        &self,
        tenant: &TenantId,
        user: &ExtensionNumber,
        target: &PhoneNumber,
        requested_by: Option<UserId>,
    ) -> Result<CallId, ClickToCallError> {
        self.call_control()
            .click_to_call(tenant, user, target, requested_by)
            .await
    }

    /// A cheap handle for placing calls from elsewhere (the panel), valid while the edge runs.
    pub fn call_control(&self) -> CallControl {
        CallControl {
            calls: self.core.calls.clone(),
        }
    }

    /// Stops listening; transactions in progress end with their timers.
    pub fn shutdown(&self) {
        self.stack.cancel.cancel();
    }
}

impl Drop for SipEdge {
    fn drop(&mut self) {
        self.stack.cancel.cancel();
    }
}

/// Places calls on a running edge; clone it freely.
#[derive(Debug, Clone)]
pub struct CallControl {
    calls: Arc<calls::Shared>,
}

impl CallControl {
    /// See [`SipEdge::click_to_call`].
    pub async fn click_to_call(
        &self,
        tenant: &TenantId,
        user: &ExtensionNumber,
        target: &PhoneNumber,
        requested_by: Option<UserId>,
    ) -> Result<CallId, ClickToCallError> {
        calls::click_to_call(&self.calls, tenant, user, target, requested_by).await
    }
}

/// Takes each new transaction and handles it on its own task. Those that start new work take
/// one of the `slots` (503 when none is free); those that finish admitted work do not
/// ([`sheddable`]).
async fn dispatch(core: Arc<Core>, mut incoming: TransactionReceiver, slots: Arc<Semaphore>) {
    while let Some(mut tx) = incoming.recv().await {
        let permit = if sheddable(&tx.original) {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    respond(&mut tx, overloaded(&core)).await;
                    continue;
                }
            }
        } else {
            None
        };
        let core = core.clone();
        crate::spawn(async move {
            handle(&core, tx).await;
            drop(permit);
        });
    }
}

/// The 503 that refuses new work for load, counted.
pub(crate) fn overloaded(core: &Core) -> Reply {
    core.stats.overloaded();
    Reply::new(503).with(Header::RetryAfter("5".into()))
}

/// Whether `req` may be refused for load: a request that starts new work (a call, a
/// registration) may; one inside a dialog (BYE, ACK, re-INVITE, UPDATE), or an ACK, BYE or
/// CANCEL without a To tag, finishes work already admitted or starts none, and refusing it
/// would only leave a call hanging (RFC 6357 §3.3: shed new sessions, not their ends). The
/// UDP intake tells its lanes apart by the same rule ([`crate::sanity::Datagram`]).
fn sheddable(req: &Request) -> bool {
    !matches!(req.method, Method::Ack | Method::Bye | Method::Cancel) && !calls::in_a_dialog(req)
}

/// Answers each request the ingress hands over without a transaction on its own task, within
/// the same `slots` as transactions. Over UDP, a retransmission of an authenticated request is
/// dropped while its first copy is being answered, and gets the same datagram once it was.
async fn dispatch_outside(
    core: Arc<Core>,
    mut requests: UnboundedReceiver<Outside>,
    slots: Arc<Semaphore>,
) {
    while let Some(request) = requests.recv().await {
        let Some(source) = request.source() else {
            continue;
        };
        let key = if request.reliable() {
            None
        } else {
            core.answers.key(&request.request, source)
        };
        match key.map(|k| core.answers.seen(k, std::time::Instant::now())) {
            Some(Seen::Answering) => continue,
            Some(Seen::Answered(datagram)) => {
                request.repeat(&datagram).await;
                continue;
            }
            Some(Seen::First) | None => {}
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            answer(&core, &request, key, overloaded(&core)).await;
            continue;
        };
        let core = core.clone();
        crate::spawn(async move {
            let reply = reply_outside(
                &core,
                &request.request,
                source,
                request.transport(),
                request.flow(),
            )
            .await;
            answer(&core, &request, key, reply).await;
            drop(permit);
        });
    }
}

/// Sends `reply` to a request outside a transaction, and keeps the datagram under `key`.
async fn answer(core: &Core, request: &Outside, key: Option<u64>, reply: Reply) {
    let sent = request
        .answer(reply.status, reply.headers, &core.config.user_agent)
        .await;
    match (key, sent) {
        (Some(key), Some(datagram)) => {
            core.answers
                .answered(key, datagram, std::time::Instant::now());
        }
        (Some(key), None) => core.answers.forget(key),
        (None, _) => {}
    }
}

/// The answer to a request handed over without a transaction (REGISTER, OPTIONS, an INVITE
/// without credentials), from `source` over `transport` (over a WebSocket `flow`).
async fn reply_outside(
    core: &Core,
    req: &Request,
    source: SocketAddr,
    transport: Transport,
    flow: Option<rsipstack::platform::CancellationToken>,
) -> Reply {
    match req.method {
        Method::Options => Reply::new(200)
            .with(Header::Allow(ALLOW.into()))
            .with(Header::Accept("application/sdp".into())),
        Method::Register => {
            registrar::register(core, req, source, event_transport(transport), flow).await
        }
        Method::Invite => calls::refuse_uncredentialed(core, req, source),
        _ => Reply::new(405).with(Header::Allow(ALLOW.into())),
    }
}

async fn handle(core: &Core, mut tx: Transaction) {
    let method = tx.original.method;
    let in_dialog = calls::in_a_dialog(&tx.original);
    if method == Method::Invite && !in_dialog {
        return calls::incoming(core, tx).await;
    }
    if in_dialog {
        return calls::in_dialog(core, tx).await;
    }
    // REGISTER, OPTIONS and INVITEs without credentials never get here: the ingress hands them
    // over without a transaction (`transport::answered_outside`, [`dispatch_outside`]).
    let reply = match method {
        Method::Bye | Method::Update | Method::Info | Method::PRack => Reply::new(481),
        _ => Reply::new(405).with(Header::Allow(ALLOW.into())),
    };
    respond(&mut tx, reply).await;
}

pub(crate) async fn respond(tx: &mut Transaction, reply: Reply) {
    if let Err(e) = tx
        .reply_with(StatusCode::from(reply.status), reply.headers, None)
        .await
    {
        tracing::debug!(key = %tx.key, error = %e, "could not send a response");
    }
}

/// Logs the security summary every `report_every` while the edge runs.
async fn summaries(
    core: Arc<Core>,
    guard: Arc<FloodGuard>,
    cancel: rsipstack::platform::CancellationToken,
) {
    let mut previous = SecurityStats::default();
    let mut every = tokio::time::interval(core.config.report_every);
    every.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => {
                crate::stats::report(core.stats.snapshot(), &previous, guard.banned(core.clock.now()).len());
                return;
            }
            _ = every.tick() => {
                let banned = guard.banned(core.clock.now()).len();
                previous = crate::stats::report(core.stats.snapshot(), &previous, banned);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tests::request;

    #[test]
    fn new_work_may_be_shed_the_end_of_admitted_work_may_not() {
        assert!(sheddable(&request("INVITE", None, "")));
        assert!(sheddable(&request("MESSAGE", None, "")));
        for (method, tag) in [
            ("BYE", Some("t")),
            ("ACK", Some("t")),
            ("INVITE", Some("t")),
            ("UPDATE", Some("t")),
            ("CANCEL", None),
            ("BYE", None),
            ("ACK", None),
        ] {
            assert!(!sheddable(&request(method, tag, "")), "{method} {tag:?}");
        }
    }
}
