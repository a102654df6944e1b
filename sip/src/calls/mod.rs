//! Calls between extensions, with the engine as a back-to-back user agent (B2BUA): the caller's
//! INVITE ends at the edge, and each contact of the callee gets an INVITE of its own in a new
//! dialog. Every step is a command to the call actor (`Registry<Call>`), and the edge acts on the
//! wire only from what the call's stream then holds.
//!
//! - An out-of-dialog INVITE is authenticated with 407 (`Proxy-Authenticate`, the same digest
//!   machinery as REGISTER; the From user must be the authenticated user), the callee is the
//!   Request-URI user as an extension of the caller's tenant; anything else is refused before
//!   any actor or event exists: 403 for what looks like an external number (there are no trunks),
//!   404 for an unknown extension, 488 without an SDP offer (late offer is not supported: the
//!   engine could not relay the answer in the ACK), 483 when Max-Forwards runs out, 503 beyond
//!   [`CallConfig::max_calls`].
//! - Each accepted INVITE gets a [`session`]: one task per call that owns the dialogs of both
//!   sides, issues the call commands (Offer, Ring, Ringing, EarlyMedia, Answer, Reject, HangUp,
//!   Terminate, Hold, Resume), folds the call back from the log ([`view`]), tells the extensions
//!   involved their part ([`observe`]) and brings the dialogs in line with the call ([`plan`]).
//!   The aggregate's ring timeout reaches the session through the call registry's live feed,
//!   used as a wake-up only: the session always re-reads its stream.
//! - Routing follows the callee's state ([`route`]). SDP crosses between the legs through one
//!   function ([`media`]). Click-to-call ([`click`]) is a session whose caller side the engine
//!   dials itself.
//! - In-dialog requests (BYE, re-INVITE, UPDATE, INFO, OPTIONS) are matched to their dialog by
//!   rsipstack's dialog layer; a BYE is recorded (HangUp) before its 200 is sent.

mod click;
#[cfg(test)]
mod fixtures;
mod media;
mod observe;
mod plan;
mod route;
mod session;
mod view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use engine::call::Call;
use engine::extension::Extension;
use engine::runtime::{Follower, Registry};
use events::ids::{DeviceContactId, ExtensionNumber, PhoneNumber, TenantId};
use events::model::Party;
use events::{Clock, EventLog, IdGen, StreamId};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Method, Param, Request, Transport, Uri};
use rsipstack::transaction::transaction::Transaction;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::accounts::Account;
use crate::auth::{Scheme, warning};
use crate::bindings::Bindings;
use crate::config::CallConfig;
use crate::edge::{Core, Reply};

pub use click::ClickToCallError;
pub(crate) use click::click_to_call;
pub(crate) use media::{MediaDirection, Sdp};
pub(crate) use session::{Input, Session};

/// What every call session reaches.
pub(crate) struct Shared {
    pub(crate) dialogs: Arc<DialogLayer>,
    pub(crate) calls: Registry<Call>,
    pub(crate) extensions: Registry<Extension>,
    pub(crate) bindings: Arc<Bindings>,
    /// The calls of the sessions, followed from the call actors' feed (read back from the log
    /// only when the feed cannot vouch for one).
    pub(crate) views: Follower<Call>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGen>,
    pub(crate) config: CallConfig,
    /// What the extensions in calls are told, batched per extension.
    pub(crate) reports: Arc<observe::Reports>,
    table: Mutex<Table>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("calls::Shared")
            .field("config", &self.config)
            .field("in_progress", &self.in_progress())
            .finish_non_exhaustive()
    }
}

/// The live sessions, by call stream and by the SIP Call-ID of each of their dialogs.
#[derive(Default)]
struct Table {
    sessions: HashMap<StreamId, mpsc::UnboundedSender<Input>>,
    dialogs: HashMap<String, StreamId>,
}

impl Shared {
    #[allow(
        clippy::too_many_arguments,
        reason = "the handles a session needs, once"
    )]
    pub(crate) fn new(
        dialogs: Arc<DialogLayer>,
        calls: Registry<Call>,
        extensions: Registry<Extension>,
        bindings: Arc<Bindings>,
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
        config: CallConfig,
    ) -> Arc<Self> {
        let views = Follower::new(log.clone(), calls.subscribe());
        Arc::new(Self {
            dialogs,
            calls,
            extensions,
            bindings,
            views,
            clock,
            ids,
            config,
            reports: Arc::default(),
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, stream: &StreamId, inputs: mpsc::UnboundedSender<Input>) {
        self.table().sessions.insert(stream.clone(), inputs);
    }

    fn bind_dialog(&self, sip_call_id: &str, stream: &StreamId) {
        self.table()
            .dialogs
            .insert(sip_call_id.to_owned(), stream.clone());
    }

    fn forget(&self, stream: &StreamId, sip_call_ids: &[String]) {
        self.views.forget(stream);
        self.calls.unseed(stream);
        let mut table = self.table();
        table.sessions.remove(stream);
        for id in sip_call_ids {
            if table.dialogs.get(id) == Some(stream) {
                table.dialogs.remove(id);
            }
        }
    }

    fn session_of_dialog(&self, sip_call_id: &str) -> Option<mpsc::UnboundedSender<Input>> {
        let table = self.table();
        let stream = table.dialogs.get(sip_call_id)?;
        table.sessions.get(stream).cloned()
    }

    fn wake(&self, stream: &StreamId, version: u64) {
        if let Some(s) = self.table().sessions.get(stream) {
            let _ = s.send(Input::Wake { version });
        }
    }

    fn wake_all(&self) {
        for s in self.table().sessions.values() {
            let _ = s.send(Input::Wake { version: u64::MAX });
        }
    }

    /// Calls with a live session.
    pub(crate) fn in_progress(&self) -> usize {
        self.table().sessions.len()
    }

    /// Our Contact for dialogs over `transport`: the listener of that transport. SIP over
    /// WebSocket has no listener of its own (it comes in on the HTTP port), so its Contact names
    /// the first listener with `;transport=ws` (or `wss`): the browser keeps sending in-dialog
    /// requests down its own connection (RFC 7118 §5), and the parameter tells it to.
    pub(crate) fn local_contact(&self, transport: Transport) -> Option<Uri> {
        let listens = self.dialogs.endpoint.transport_layer.get_listen_addrs();
        let addr = listens
            .iter()
            .find(|a| a.r#type == Some(transport))
            .or_else(|| listens.first())?;
        let named = match transport {
            Transport::Ws | Transport::Wss => Some(transport),
            _ => addr.r#type,
        };
        let mut params = Vec::new();
        if let Some(t) = named.filter(|t| *t != Transport::Udp) {
            params.push(Param::Transport(t));
        }
        Some(Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            host_with_port: addr.addr.clone(),
            params,
            ..Default::default()
        })
    }

    /// Follows the call registry's live feed and wakes the session of each call that changed
    /// (the ring timeout is recorded by the actor itself). On a lag, every session is woken:
    /// each re-reads its own stream, so nothing is missed.
    pub(crate) fn follow_feed(self: &Arc<Self>, cancel: rsipstack::platform::CancellationToken) {
        let mut feed = self.calls.subscribe();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = feed.recv() => r,
                };
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                match received {
                    Ok(recorded) => shared.wake(&recorded.stream, recorded.version),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "call feed lagged; waking every session");
                        shared.wake_all();
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }
}

/// An out-of-dialog INVITE, admitted: who calls whom, and what they offer.
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) tenant: TenantId,
    pub(crate) caller: Party,
    pub(crate) caller_contact: Option<DeviceContactId>,
    pub(crate) callee: Party,
    pub(crate) dialled: PhoneNumber,
    pub(crate) offer: Sdp,
    /// For the INVITEs the engine sends on: the caller's less one.
    pub(crate) max_forwards: u32,
    pub(crate) transport: Transport,
}

/// Whether a number that is no extension of the tenant would be an external one.
fn looks_external(number: &str) -> bool {
    number.starts_with('+') || number.starts_with("00") || number.len() >= 7
}

/// Handles an out-of-dialog INVITE: refused, or handed to a new session.
pub(crate) async fn incoming(core: &Core, mut tx: Transaction) {
    if let Some(reply) = at_call_limit(core) {
        crate::edge::respond(&mut tx, reply).await;
        return;
    }
    match admit(core, &tx).await {
        Ok(admitted) => Session::start_incoming(core.calls.clone(), admitted, tx),
        Err(reply) => crate::edge::respond(&mut tx, reply).await,
    }
}

/// The answer to an INVITE outside a dialog that carries no credentials, sent without a
/// transaction (`transport::answered_outside`): 503 when the edge is at its call limit, else
/// the refusal of [`identify`]: a challenge, or what is wrong with its From.
pub(crate) fn refuse_uncredentialed(core: &Core, req: &Request, source: SocketAddr) -> Reply {
    if let Some(reply) = at_call_limit(core) {
        return reply;
    }
    match identify(core, req, source) {
        Err(reply) => reply,
        // Only credentials authenticate, and the ingress hands over only INVITEs without.
        Ok(_) => Reply::new(500).with(warning("an INVITE without credentials authenticated")),
    }
}

/// 503 when the edge holds as many calls as it may.
fn at_call_limit(core: &Core) -> Option<Reply> {
    (core.calls.in_progress() >= core.calls.config.max_calls).then(|| crate::edge::overloaded(core))
}

/// Who an INVITE from `source` is from, by its credentials (407 challenges when it has none).
fn identify(core: &Core, req: &Request, source: SocketAddr) -> Result<Account, Reply> {
    let from = req
        .from_header()
        .and_then(|f| f.typed())
        .map_err(|_| Reply::new(400).with(warning("From unparseable")))?;
    let Some(realm) = core.accounts.realm_for(&from.uri.host().to_string()) else {
        return Err(Reply::new(404).with(warning("domain not served here")));
    };
    core.auth
        .authenticate(req, source.ip(), &realm, from.uri.user(), Scheme::Proxy)
        .map(|authenticated| authenticated.account)
        .map_err(|refusal| Reply::new(refusal.status).with_all(refusal.headers))
}

/// Authenticates and resolves an INVITE, or the reply that refuses it. Nothing is written.
async fn admit(core: &Core, tx: &Transaction) -> Result<Admitted, Reply> {
    let req = &tx.original;
    let Some(connection) = tx.connection.as_ref() else {
        return Err(Reply::new(500));
    };
    let source = connection
        .get_remote_addr()
        .and_then(|a| a.get_socketaddr().ok())
        .ok_or_else(|| Reply::new(500))?;
    let account = identify(core, req, source)?;

    let max_forwards = req
        .max_forwards_header()
        .ok()
        .and_then(|m| m.value().trim().parse::<u32>().ok())
        .unwrap_or(70);
    if max_forwards <= 1 {
        return Err(Reply::new(483));
    }
    let content_type = content_type(req);
    let Some(offer) = Sdp::from_body(&req.body, content_type.as_deref()) else {
        return Err(Reply::new(488).with(warning("an SDP offer is required in the INVITE")));
    };
    let Some(user) = req.uri.user() else {
        return Err(Reply::new(404).with(warning("no number in the Request-URI")));
    };
    let Ok(dialled) = PhoneNumber::parse(user) else {
        return Err(Reply::new(404).with(warning("not a number")));
    };

    let calls = &core.calls;
    let router = route::Router {
        bindings: &calls.bindings,
        tenant: &account.tenant,
        config: &calls.config,
        now: calls.clock.now(),
    };
    let unavailable = |e: events::LogError| {
        tracing::error!(error = %e, "cannot read extensions to route a call");
        Reply::new(503).with(Header::RetryAfter("5".into()))
    };
    let Some(caller) = router
        .extension(&account.extension)
        .await
        .map_err(unavailable)?
    else {
        return Err(Reply::new(403).with(warning("the calling extension is not in service")));
    };
    let callee = match ExtensionNumber::parse(user) {
        Ok(n) => router.extension(&n).await.map_err(unavailable)?,
        Err(_) => None,
    };
    let Some(callee) = callee else {
        return Err(if looks_external(user) {
            Reply::new(403).with(warning("no route to external numbers"))
        } else {
            Reply::new(404).with(warning("no such extension"))
        });
    };
    let (Some(caller_party), Some(callee_party)) =
        (route::party_of(&caller), route::party_of(&callee))
    else {
        return Err(Reply::new(404).with(warning("no such extension")));
    };
    let contact_uri = req
        .typed_contact_headers()
        .ok()
        .and_then(|c| c.first().map(|c| c.uri.to_string()));
    let caller_contact = caller
        .contacts()
        .iter()
        .find(|(_, c)| {
            Some(&c.contact_uri) == contact_uri.as_ref() || c.source == source.to_string()
        })
        .map(|(id, _)| *id);
    Ok(Admitted {
        tenant: account.tenant,
        caller: caller_party,
        caller_contact,
        callee: callee_party,
        dialled,
        offer,
        max_forwards: max_forwards - 1,
        transport: crate::transport::connection_transport(connection),
    })
}

/// The content type of a message's body.
pub(crate) fn content_type(headers: &impl rsipstack::sip::HasHeaders) -> Option<String> {
    headers.headers().iter().find_map(|h| match h {
        Header::ContentType(ct) => Some(ct.value().to_owned()),
        _ => None,
    })
}

/// Handles a request inside a dialog: matched by rsipstack's dialog layer to one of ours, or
/// 481. A BYE is recorded by its session before the dialog answers it.
pub(crate) async fn in_dialog(core: &Core, mut tx: Transaction) {
    let calls = &core.calls;
    let Some(mut dialog) = calls.dialogs.match_dialog(&tx) else {
        let reply = Reply::new(481);
        crate::edge::respond(&mut tx, reply).await;
        return;
    };
    if tx.original.method == Method::Bye
        && let Ok(call_id) = tx.original.call_id_header()
        && let Some(session) = calls.session_of_dialog(call_id.value())
    {
        let (done, recorded) = oneshot::channel();
        let bye = Input::Bye {
            sip_call_id: call_id.value().to_owned(),
            done,
        };
        if session.send(bye).is_ok() {
            // The session answers once the hang-up is durable (or it could not be recorded).
            let _ = recorded.await;
        }
    }
    if let Err(e) = dialog.handle(&mut tx).await {
        tracing::debug!(method = %tx.original.method, error = %e, "in-dialog request not handled");
    }
}

/// Whether `req` belongs to a dialog (its To has a tag).
pub(crate) fn in_a_dialog(req: &Request) -> bool {
    crate::transport::to_tag(req).is_some()
}

#[cfg(test)]
mod tests {
    use super::looks_external;

    #[test]
    fn long_or_international_numbers_look_external() {
        assert!(looks_external("+4930123456"));
        assert!(looks_external("004930123"));
        assert!(looks_external("0301234567"));
        assert!(!looks_external("1099"));
        assert!(!looks_external("*97"));
    }
}
