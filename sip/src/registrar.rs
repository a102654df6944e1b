//! The registrar (RFC 3261 §10.3): an authenticated REGISTER becomes commands to the extension
//! aggregate, and the answer lists what the log then holds.
//!
//! - The To user is the extension; the authenticated user must be the same (403 otherwise).
//! - Each Contact is a binding with its own expiry (`;expires=`, else `Expires:`, else the
//!   default), clamped to the maximum; below the minimum the whole request gets 423 with
//!   `Min-Expires`. `Contact: *` with `Expires: 0` removes every binding; an expiry of 0 removes
//!   one. No Contact is a query.
//! - A binding the extension does not hold is registered; one it holds from the same place
//!   (transport, source, user agent) with the same requested expiry and at least half of it left
//!   is left alone: the answer grants what remains of it, and no event is written. Any other
//!   refresh is recorded (the expiry moves), so a phone refreshing at half-time writes one event
//!   per two REGISTERs, and a restart never loses a binding a phone was told about.
//! - Commands go through `Registry::try_execute` (bounded): a full mailbox is 503, a log failure
//!   503, an unprovisioned or retired extension 404, too many contacts 403. Nothing is answered
//!   200 before its events are durable.
//! - The 200 lists every live binding with its remaining lifetime, as of at least the version
//!   the last command reported (from the extensions' live feed, else read back from the log).
//! - Bindings made over a SIP over WebSocket flow are unregistered (`ConnectionLost`) when it
//!   closes: the browser accepts no connection, so nothing else reaches them. The flow is noted
//!   for its extension only after the binding is durable (a refused REGISTER notes nothing), and
//!   a flow found closed by then is unbound at once: its close may have been handled first.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use engine::extension::{ExtensionCommand, ExtensionRejection, RegisterContact};
use engine::runtime::{Execute, ExecuteError, Instance};
use events::ids::DeviceContactId;
use events::model::{Transport as EventTransport, UnregisterReason};
use events::{IdGen, LogError, StreamId};
use rsipstack::platform::CancellationToken;
use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{Header, HeadersExt, Request, Uri};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::auth::{Scheme, warning};
use crate::bindings::{Snapshot, live_contacts};
use crate::config::{Limits, RegistrarConfig};
use crate::edge::{Core, Reply};
use crate::sanity::split_commas;

/// What a REGISTER asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Requested {
    /// No Contact: list the bindings.
    Query,
    /// `Contact: *` with `Expires: 0`.
    RemoveAll,
    Bindings(Vec<RequestedBinding>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestedBinding {
    /// The contact URI as sent (inside the angle brackets).
    pub(crate) uri: String,
    /// Granted expiry; 0 removes the binding.
    pub(crate) expires: u32,
}

/// A REGISTER the registrar will not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest(&'static str),
    IntervalTooBrief { min: u32 },
}

/// Reads the Contact headers of a REGISTER (`contacts`: each header's value) with its
/// `Expires` header.
pub(crate) fn requested(
    contacts: &[&str],
    expires_header: Option<&str>,
    config: &RegistrarConfig,
    limits: &Limits,
) -> Result<Requested, Refusal> {
    let default = match expires_header {
        Some(e) => e
            .trim()
            .parse::<u32>()
            .map_err(|_| Refusal::BadRequest("Expires is not a number"))?,
        None => config.default_expires,
    };
    let values: Vec<&str> = contacts.iter().flat_map(|c| split_commas(c)).collect();
    if values.is_empty() {
        return Ok(Requested::Query);
    }
    if values.contains(&"*") {
        return if values.len() == 1 && expires_header.is_some() && default == 0 {
            Ok(Requested::RemoveAll)
        } else {
            Err(Refusal::BadRequest(
                "Contact: * needs Expires: 0 and no other contact",
            ))
        };
    }
    if values.len() > limits.max_contacts {
        return Err(Refusal::BadRequest("too many contacts in one REGISTER"));
    }
    let mut bindings: Vec<RequestedBinding> = Vec::with_capacity(values.len());
    for value in values {
        let (uri, params) = split_contact(value)?;
        if uri.len() > limits.max_uri_bytes
            || uri.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Refusal::BadRequest("contact URI too long or malformed"));
        }
        let parsed =
            Uri::try_from(uri).map_err(|_| Refusal::BadRequest("contact URI unparseable"))?;
        if !matches!(
            parsed.scheme,
            Some(rsipstack::sip::Scheme::Sip) | Some(rsipstack::sip::Scheme::Sips)
        ) {
            return Err(Refusal::BadRequest("contact URI is not sip:"));
        }
        let mut expires = default;
        for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((name, v)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("expires")
            {
                expires = v
                    .trim()
                    .parse()
                    .map_err(|_| Refusal::BadRequest("contact expires is not a number"))?;
            }
        }
        if expires > 0 && expires < config.min_expires {
            return Err(Refusal::IntervalTooBrief {
                min: config.min_expires,
            });
        }
        let expires = expires.min(config.max_expires);
        if bindings.iter().any(|b| b.uri == uri) {
            return Err(Refusal::BadRequest("the same contact twice"));
        }
        bindings.push(RequestedBinding {
            uri: uri.to_owned(),
            expires,
        });
    }
    Ok(Requested::Bindings(bindings))
}

/// `"name" <uri>;params` or `uri;params` → (uri, params).
fn split_contact(value: &str) -> Result<(&str, &str), Refusal> {
    let value = value.trim();
    if let Some(open) = value.find('<') {
        let close = value[open..]
            .find('>')
            .map(|i| open + i)
            .ok_or(Refusal::BadRequest("contact without '>'"))?;
        Ok((&value[open + 1..close], &value[close + 1..]))
    } else {
        // Without brackets, parameters after the URI belong to the header (RFC 3261 §20).
        Ok(value.split_once(';').unwrap_or((value, "")))
    }
}

/// Where a REGISTER came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Device {
    pub(crate) transport: EventTransport,
    pub(crate) source: SocketAddr,
    pub(crate) user_agent: Option<String>,
}

/// The commands that apply `requested` to an extension in state `snapshot` at `now`; bindings
/// a command would only refresh early are left out (see the module docs).
pub(crate) fn plan(
    requested: &Requested,
    snapshot: &Snapshot,
    device: &Device,
    now: DateTime<Utc>,
    ids: &dyn IdGen,
) -> Vec<ExtensionCommand> {
    let contacts = snapshot.state.contacts();
    match requested {
        Requested::Query => Vec::new(),
        Requested::RemoveAll if contacts.is_empty() => Vec::new(),
        Requested::RemoveAll => vec![ExtensionCommand::UnregisterAll {
            reason: UnregisterReason::Requested,
        }],
        Requested::Bindings(bindings) => {
            let source = device.source.to_string();
            bindings
                .iter()
                .filter_map(|b| {
                    let existing = contacts.values().find(|c| c.contact_uri == b.uri);
                    if b.expires == 0 && existing.is_none() {
                        return None;
                    }
                    if let Some(c) = existing {
                        let left = (c.expires_at - now).num_seconds();
                        let unchanged = b.expires > 0
                            && c.transport == device.transport
                            && c.source == source
                            && c.user_agent == device.user_agent
                            && c.expires_secs == b.expires
                            && left.saturating_mul(2) >= i64::from(b.expires);
                        if unchanged {
                            return None;
                        }
                    }
                    Some(ExtensionCommand::Register(RegisterContact {
                        contact: DeviceContactId::from_uuid(ids.next_uuid()),
                        contact_uri: b.uri.clone(),
                        transport: device.transport,
                        source: source.clone(),
                        user_agent: device.user_agent.clone(),
                        expires_secs: b.expires,
                    }))
                })
                .collect()
        }
    }
}

/// Answers one REGISTER from `source` that arrived over `transport` (over a WebSocket `flow`:
/// its token, cancelled once it closed).
pub(crate) async fn register(
    core: &Core,
    req: &Request,
    source: SocketAddr,
    transport: EventTransport,
    flow: Option<CancellationToken>,
) -> Reply {
    let Ok(to) = req.to_header().and_then(|t| t.typed()) else {
        return Reply::new(400).with(warning("To unparseable"));
    };
    let host = to.uri.host().to_string();
    let Some(realm) = core.accounts.realm_for(&host) else {
        return Reply::new(404).with(warning("domain not served here"));
    };
    let authenticated =
        match core
            .auth
            .authenticate(req, source.ip(), &realm, to.uri.user(), Scheme::Www)
        {
            Ok(a) => a,
            Err(refusal) => return Reply::new(refusal.status).with_all(refusal.headers),
        };
    let account = authenticated.account;

    let contacts: Vec<&str> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Contact(c) => Some(c.value()),
            _ => None,
        })
        .collect();
    let expires = req.expires_header().map(|e| e.value());
    let requested = match requested(
        &contacts,
        expires,
        &core.config.registrar,
        &core.config.limits,
    ) {
        Ok(r) => r,
        Err(Refusal::BadRequest(why)) => return Reply::new(400).with(warning(why)),
        Err(Refusal::IntervalTooBrief { min }) => {
            return Reply::new(423).with(Header::MinExpires(min.to_string().into()));
        }
    };

    let stream = StreamId::extension(&account.tenant, &account.extension);
    let instance = Instance::new(stream.clone()).in_tenant(account.tenant.clone());
    let user_agent = req
        .user_agent_header()
        .map(|ua| truncate(ua.value().trim(), core.config.limits.max_user_agent_bytes).to_owned());
    let device = Device {
        transport,
        source,
        user_agent,
    };
    // Read in place (a few microseconds under the follower's lock): the plan and, when nothing
    // changes, the answer's bindings, not a copy of the whole extension.
    let planned = core.bindings.current_with(&stream, 0, |snapshot| {
        snapshot.state.in_service().then(|| {
            let now = core.clock.now();
            let commands = plan(&requested, snapshot, &device, now, &*core.ids);
            if commands.is_empty() {
                Planned::Unchanged(listed(snapshot, now))
            } else {
                Planned::Changes(snapshot.version, commands)
            }
        })
    });
    let (mut version, commands) = match planned.await {
        Ok(Some(Planned::Changes(version, commands))) => (version, commands),
        Ok(Some(Planned::Unchanged(contacts))) => return Reply::new(200).with_all(contacts),
        Ok(None) => return Reply::new(404).with(warning("no such extension in service")),
        Err(e) => return unavailable(&stream, &e, "cannot read registrations"),
    };
    for command in commands {
        let outcome = core
            .extensions
            .try_execute(&instance, Execute::new(command))
            .await;
        match outcome {
            Ok(executed) => version = version.max(executed.version),
            Err(e) => return refused(core, &stream, e),
        }
    }
    if let Some(flow) = flow {
        // Noted once what the flow registered is in the log; a flow that closed meanwhile may
        // have been handled without it, so what it registered goes now.
        core.flows.bound(source, &instance);
        if flow.is_cancelled() {
            unbind(core, source).await;
        }
    }
    let read_back = core
        .bindings
        .current_with(&stream, version, |snapshot| {
            listed(snapshot, core.clock.now())
        })
        .await;
    match read_back {
        Ok(contacts) => Reply::new(200).with_all(contacts),
        Err(e) => unavailable(&stream, &e, "cannot read registrations back"),
    }
}

/// What a REGISTER asks of an extension in service, as its first read found it.
enum Planned {
    /// Nothing to write: the answer's `Contact` headers.
    Unchanged(Vec<Header>),
    /// The commands to run, after the version read.
    Changes(u64, Vec<ExtensionCommand>),
}

/// The 503 of a REGISTER whose registrations cannot be read, logged with `what` failed.
fn unavailable(stream: &StreamId, error: &LogError, what: &str) -> Reply {
    tracing::error!(%stream, %error, "{what}");
    Reply::new(503).with(warning("registrations unavailable"))
}

/// The answer's `Contact` headers: every live binding of `snapshot` with its remaining lifetime.
fn listed(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<Header> {
    live_contacts(snapshot, now)
        .into_iter()
        .map(|(contact, left)| {
            Header::Contact(format!("<{}>;expires={left}", contact.contact_uri).into())
        })
        .collect()
}

/// Which extensions registered over each open SIP over WebSocket flow, by the browser's
/// address (the `source` of its bindings): what to unregister when the flow closes.
#[derive(Debug, Default)]
pub(crate) struct Flows(Mutex<HashMap<SocketAddr, HashSet<Instance>>>);

impl Flows {
    fn bound(&self, peer: SocketAddr, instance: &Instance) {
        let mut flows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        flows.entry(peer).or_default().insert(instance.clone());
    }

    fn closed(&self, peer: SocketAddr) -> HashSet<Instance> {
        let mut flows = self.0.lock().unwrap_or_else(|p| p.into_inner());
        flows.remove(&peer).unwrap_or_default()
    }
}

/// Unregisters (`ConnectionLost`) the bindings made over each WebSocket flow that closes, until
/// the edge stops: a browser accepts no connection, so nothing can reach them any more. Flows
/// that close because the edge stops keep their bindings (the log then holds what the phones
/// were told; they expire).
pub(crate) async fn unbind_closed_flows(
    core: Arc<Core>,
    mut closed: UnboundedReceiver<SocketAddr>,
    stop: CancellationToken,
) {
    loop {
        let peer = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            next = closed.recv() => match next {
                Some(peer) => peer,
                None => return,
            },
        };
        let core = core.clone();
        crate::spawn(async move { unbind(&core, peer).await });
    }
}

/// Tells each extension registered over the flow from `peer` that it closed; the extension
/// drops the bindings it holds from there.
async fn unbind(core: &Core, peer: SocketAddr) {
    for instance in core.flows.closed(peer) {
        let command = ExtensionCommand::WebSocketsClosed {
            source: Some(peer.to_string()),
        };
        if let Err(e) = core
            .extensions
            .execute(&instance, Execute::new(command))
            .await
        {
            tracing::warn!(stream = %instance.stream, %peer, error = %e,
                "could not unregister the bindings of a closed websocket; they stay until they expire");
        }
    }
}

fn refused(core: &Core, stream: &StreamId, error: ExecuteError<ExtensionRejection>) -> Reply {
    match error {
        ExecuteError::Rejected(
            ExtensionRejection::NotProvisioned | ExtensionRejection::Retired,
        ) => Reply::new(404).with(warning("no such extension in service")),
        ExecuteError::Rejected(ExtensionRejection::TooManyContacts) => {
            Reply::new(403).with(warning("too many registered contacts"))
        }
        ExecuteError::Rejected(other) => {
            tracing::warn!(%stream, rejection = %other, "registration refused");
            Reply::new(403).with(warning("registration refused"))
        }
        ExecuteError::Overloaded { .. } => {
            core.stats.overloaded();
            Reply::new(503).with(Header::RetryAfter("5".into()))
        }
        e @ (ExecuteError::Log(_) | ExecuteError::Unavailable { .. }) => {
            tracing::error!(%stream, error = %e, "registration not recorded");
            Reply::new(503).with(Header::RetryAfter("5".into()))
        }
        e @ ExecuteError::Panicked { .. } => {
            tracing::error!(%stream, error = %e, "registration not recorded");
            Reply::new(500)
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use engine::Aggregate;
    use engine::extension::Extension;
    use events::SeededIds;
    use events::ids::{DepartmentId, ExtensionNumber, UserId};
    use events::model::ExtensionEvent;

    fn config() -> RegistrarConfig {
        RegistrarConfig::default()
    }

    fn req(contacts: &[&str], expires: Option<&str>) -> Result<Requested, Refusal> {
        requested(contacts, expires, &config(), &Limits::default())
    }

    fn binding(uri: &str, expires: u32) -> RequestedBinding {
        RequestedBinding {
            uri: uri.into(),
            expires,
        }
    }

    #[test]
    fn contacts_expiries_and_wildcards_are_read_strictly() {
        assert_eq!(req(&[], None), Ok(Requested::Query));
        assert_eq!(
            req(
                &["<sip:1001@192.0.2.1:5060;transport=udp>;expires=120"],
                None
            ),
            Ok(Requested::Bindings(vec![binding(
                "sip:1001@192.0.2.1:5060;transport=udp",
                120
            )]))
        );
        // Several contacts, in one header or many; header expiry as the default; clamped.
        assert_eq!(
            req(
                &[
                    "\"Desk\" <sip:1001@192.0.2.1>, <sip:1001@192.0.2.2>;expires=0",
                    "sip:1001@192.0.2.3;expires=90000"
                ],
                Some("600")
            ),
            Ok(Requested::Bindings(vec![
                binding("sip:1001@192.0.2.1", 600),
                binding("sip:1001@192.0.2.2", 0),
                binding("sip:1001@192.0.2.3", 3600),
            ]))
        );
        assert_eq!(req(&["*"], Some("0")), Ok(Requested::RemoveAll));
        assert!(matches!(req(&["*"], None), Err(Refusal::BadRequest(_))));
        assert!(matches!(
            req(&["*, <sip:1001@192.0.2.1>"], Some("0")),
            Err(Refusal::BadRequest(_))
        ));
        assert_eq!(
            req(&["<sip:1001@192.0.2.1>;expires=30"], None),
            Err(Refusal::IntervalTooBrief { min: 60 })
        );
        for bad in [
            "<sip:1001@192.0.2.1>;expires=soon",
            "<sip:1001@192.0.2.1",
            "<tel:+4930123>",
            "<sip:1001@192.0.2.1>, <sip:1001@192.0.2.1>",
        ] {
            assert!(
                matches!(req(&[bad], None), Err(Refusal::BadRequest(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            req(&["<sip:1@x>"], Some("x")),
            Err(Refusal::BadRequest(_))
        ));
        let many: Vec<String> = (0..11).map(|i| format!("<sip:1001@192.0.2.{i}>")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(req(&many, None), Err(Refusal::BadRequest(_))));
    }

    fn t0() -> DateTime<Utc> {
        engine::testing::t0()
    }

    fn device() -> Device {
        Device {
            transport: EventTransport::Udp,
            source: "192.0.2.1:5060".parse().unwrap(),
            user_agent: Some("desk".into()),
        }
    }

    /// An extension holding `sip:1001@192.0.2.1` registered from `device()` for 3600 s at t0.
    fn registered() -> Snapshot {
        let number = ExtensionNumber::parse("1001").unwrap();
        let mut state = Extension::default();
        state.evolve(
            &ExtensionEvent::ExtensionProvisioned {
                extension: number.clone(),
                user: UserId::parse("1001").unwrap(),
                display_name: "Reception".into(),
                department: DepartmentId::parse("sales").unwrap(),
            },
            t0(),
        );
        state.evolve(
            &ExtensionEvent::DeviceRegistered {
                extension: number,
                contact: DeviceContactId::from_uuid(SeededIds::new(9).next_uuid()),
                contact_uri: "sip:1001@192.0.2.1".into(),
                transport: EventTransport::Udp,
                source: "192.0.2.1:5060".into(),
                user_agent: Some("desk".into()),
                expires_secs: 3600,
                expires_at: t0() + Duration::seconds(3600),
            },
            t0(),
        );
        Snapshot { version: 2, state }
    }

    #[test]
    fn an_early_refresh_from_the_same_device_is_absorbed_a_late_or_different_one_is_not() {
        let s = registered();
        let ids = SeededIds::new(1);
        let refresh = Requested::Bindings(vec![binding("sip:1001@192.0.2.1", 3600)]);
        let at = |secs| t0() + Duration::seconds(secs);
        assert!(plan(&refresh, &s, &device(), at(10), &ids).is_empty());
        assert!(plan(&refresh, &s, &device(), at(1800), &ids).is_empty());
        // Less than half left: recorded.
        assert_eq!(plan(&refresh, &s, &device(), at(1801), &ids).len(), 1);
        // Another expiry, source, transport or user agent: recorded at once.
        let other = Requested::Bindings(vec![binding("sip:1001@192.0.2.1", 600)]);
        assert_eq!(plan(&other, &s, &device(), at(10), &ids).len(), 1);
        for d in [
            Device {
                source: "192.0.2.1:5062".parse().unwrap(),
                ..device()
            },
            Device {
                transport: EventTransport::Tcp,
                ..device()
            },
            Device {
                user_agent: None,
                ..device()
            },
        ] {
            assert_eq!(plan(&refresh, &s, &d, at(10), &ids).len(), 1, "{d:?}");
        }
        // A new contact is registered with a fresh id and the device's details.
        let new = Requested::Bindings(vec![binding("sip:1001@192.0.2.9", 600)]);
        match plan(&new, &s, &device(), at(10), &ids).as_slice() {
            [ExtensionCommand::Register(r)] => {
                assert_eq!(r.contact_uri, "sip:1001@192.0.2.9");
                assert_eq!(r.source, "192.0.2.1:5060");
                assert_eq!(r.expires_secs, 600);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn removals_touch_only_what_is_bound() {
        let s = registered();
        let ids = SeededIds::new(1);
        let remove_unknown = Requested::Bindings(vec![binding("sip:1001@192.0.2.7", 0)]);
        assert!(plan(&remove_unknown, &s, &device(), t0(), &ids).is_empty());
        let remove = Requested::Bindings(vec![binding("sip:1001@192.0.2.1", 0)]);
        assert!(matches!(
            plan(&remove, &s, &device(), t0(), &ids).as_slice(),
            [ExtensionCommand::Register(RegisterContact {
                expires_secs: 0,
                ..
            })]
        ));
        assert_eq!(
            plan(&Requested::RemoveAll, &s, &device(), t0(), &ids),
            vec![ExtensionCommand::UnregisterAll {
                reason: UnregisterReason::Requested
            }]
        );
        let empty = Snapshot {
            version: 1,
            state: Extension::default(),
        };
        assert!(plan(&Requested::RemoveAll, &empty, &device(), t0(), &ids).is_empty());
        assert!(plan(&Requested::Query, &s, &device(), t0(), &ids).is_empty());
    }

    #[test]
    fn live_contacts_report_whole_seconds_left() {
        let s = registered();
        let left: Vec<u32> = live_contacts(&s, t0() + Duration::milliseconds(1_500))
            .iter()
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(left, vec![3598]);
        assert!(live_contacts(&s, t0() + Duration::seconds(3600)).is_empty());
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 8), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }
}
