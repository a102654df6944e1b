//! Signing in and out, and who is asking. A user signs in with their user name (`1001`, or
//! `1001@acme` when the name exists in several tenants; the tenant may be given by id or SIP
//! domain) and web password (argon2, checked on the blocking pool). Only user-level accounts
//! whose profile has the call-panel feature get a session; an administrator, or a user whose
//! profile lacks the feature, is told so plainly — after the password was checked, so the
//! refusal reveals nothing to someone without it. Repeated failures for one name are slowed
//! down ([`Throttle`]).
//!
//! Every API request is made by a [`Viewer`]: from the session cookie, or — for API clients such
//! as a desk phone app, which have no cookie — from HTTP Basic credentials of a user-level
//! account. A Basic viewer without the panel feature can still set their own presence and DND
//! and read their own CDRs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, TimeDelta, Utc};
use engine::extension::ExtensionCommand;
use engine::runtime::{Execute, Instance};
use events::StreamId;
use events::ids::{DepartmentId, ExtensionNumber, TenantId, UserId};
use events::model::{FeatureFlag, PresenceSource, UserRole};
use serde::{Deserialize, Serialize};

use super::protocol::CloseWhy;
use super::session::{COOKIE, Session, Sessions};
use super::{ApiError, PanelState, csrf};

/// Failed sign-ins for one name before it is slowed down.
const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and how long a name waits after too many.
const FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Remembers failed sign-ins per user name.
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

impl Throttle {
    fn key(name: &str) -> String {
        name.trim().to_ascii_lowercase()
    }

    fn check(&self, name: &str, now: DateTime<Utc>) -> Result<(), ApiError> {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.retain(|_, (_, last)| now - *last < FAILURE_WINDOW);
        match failures.get(&Self::key(name)) {
            Some((n, last)) if *n >= MAX_FAILURES => {
                let wait = (*last + FAILURE_WINDOW - now).num_seconds().max(1);
                Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    format!("too many failed sign-ins for this name; try again in {wait} s"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, name: &str, now: DateTime<Utc>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = failures.entry(Self::key(name)).or_insert((0, now));
        e.0 += 1;
        e.1 = now;
    }

    fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Self::key(name));
    }
}

/// How a viewer proved who they are.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    Session { token: String, session: Session },
    Basic,
}

/// Who is asking, as the directory knows them now.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) name: String,
    pub(crate) extension: ExtensionNumber,
    pub(crate) department: DepartmentId,
    pub(crate) via: Via,
    /// The departments they may watch; `None`: no call-panel access.
    pub(crate) panel: Option<BTreeSet<DepartmentId>>,
}

impl Viewer {
    /// The departments the viewer may watch (none without panel access).
    pub(crate) fn departments(&self) -> BTreeSet<DepartmentId> {
        self.panel.clone().unwrap_or_default()
    }

    /// The watched departments, or a refusal for a viewer without panel access.
    pub(crate) fn require_panel(&self) -> Result<&BTreeSet<DepartmentId>, ApiError> {
        self.panel.as_ref().ok_or_else(|| {
            ApiError::forbidden("no_panel_access", "this account may not use the call panel")
        })
    }

    /// The cross-site checks for a state-changing request by this viewer.
    pub(crate) fn check_state_change(&self, req: &HttpRequest) -> Result<(), ApiError> {
        match &self.via {
            Via::Session { session, .. } => csrf::check_token(req, &session.csrf),
            Via::Basic => csrf::check_json(req),
        }
    }

    pub(crate) fn presence_source(&self) -> PresenceSource {
        match self.via {
            Via::Session { .. } => PresenceSource::User,
            Via::Basic => PresenceSource::Api,
        }
    }

    pub(crate) fn session(&self) -> Option<&Session> {
        match &self.via {
            Via::Session { session, .. } => Some(session),
            Via::Basic => None,
        }
    }
}

/// Finds the account a sign-in name means: `user` or `user@tenant` (tenant id or SIP domain).
fn resolve(state: &PanelState, name: &str) -> Result<(TenantId, UserId), ApiError> {
    let wrong = || ApiError::unauthorized("wrong user name or password");
    let name = name.trim();
    let (user, domain) = match name.rsplit_once('@') {
        Some((u, d)) => (u, Some(d.to_ascii_lowercase())),
        None => (name, None),
    };
    let user = UserId::parse(user.to_ascii_lowercase()).map_err(|_| wrong())?;
    let engine = &state.engine;
    let found: Vec<TenantId> = engine
        .tenants()
        .into_iter()
        .filter(|t| {
            engine
                .read_directory(t, |d| {
                    let domain_ok = domain.as_deref().is_none_or(|dom| {
                        t.as_str() == dom || d.tenant().is_some_and(|x| x.sip_domain == dom)
                    });
                    domain_ok && d.user(&user).is_some()
                })
                .unwrap_or(false)
        })
        .collect();
    match found.as_slice() {
        [tenant] => Ok((tenant.clone(), user)),
        [] => Err(wrong()),
        _ => Err(ApiError::bad_request(format!(
            "the user name {user} exists in several organisations: sign in as {user}@<organisation>"
        ))),
    }
}

/// Checks a password on the blocking pool (argon2 takes its time).
async fn verify(
    state: &PanelState,
    tenant: &TenantId,
    user: &UserId,
    password: String,
) -> Result<bool, ApiError> {
    let engine = state.engine.clone();
    let (tenant, user) = (tenant.clone(), user.clone());
    web::block(move || engine.verify_web_password(&tenant, &user, &password))
        .await
        .map_err(|_| ApiError::internal("the password check failed"))
}

/// The account `name` signs in to with `password`, throttled: a name with too many recent
/// failures is refused before anything is checked, and every failure counts against it.
async fn authenticate(
    state: &PanelState,
    name: &str,
    password: String,
) -> Result<(TenantId, UserId), ApiError> {
    let now = state.clock.now();
    state.throttle.check(name, now)?;
    let (tenant, user) = match resolve(state, name) {
        Ok(found) => found,
        Err(e) => {
            state.throttle.failed(name, now);
            return Err(e);
        }
    };
    if !verify(state, &tenant, &user, password).await? {
        state.throttle.failed(name, now);
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    state.throttle.succeeded(name);
    Ok((tenant, user))
}

/// The viewer for `tenant`/`user` as the directory has them now.
fn viewer_for(state: &PanelState, tenant: TenantId, user: UserId, via: Via) -> Option<Viewer> {
    let (name, extension, department, role) = state
        .engine
        .read_directory(&tenant, |d| {
            if d.is_suspended() {
                return None;
            }
            d.user(&user).map(|u| {
                (
                    u.display_name.clone(),
                    u.extension.clone(),
                    u.department.clone(),
                    u.role,
                )
            })
        })
        .flatten()?;
    if role != UserRole::User {
        return None;
    }
    let panel = state.access.panel_departments(&tenant, &user);
    Some(Viewer {
        tenant,
        user,
        name,
        extension,
        department,
        via,
        panel,
    })
}

/// `viewer` again, as the directory has them now, with their session as it is now.
pub(crate) fn refresh(state: &PanelState, viewer: &Viewer, session: Session) -> Option<Viewer> {
    let via = match &viewer.via {
        Via::Session { token, .. } => Via::Session {
            token: token.clone(),
            session,
        },
        Via::Basic => Via::Basic,
    };
    viewer_for(state, viewer.tenant.clone(), viewer.user.clone(), via)
}

fn session_token(req: &HttpRequest) -> Option<String> {
    req.cookie(COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = decode_base64(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Standard base64 (with or without padding); `None` on anything else.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Who made `req`: the session cookie first, then HTTP Basic; 401 otherwise.
pub(crate) async fn viewer(req: &HttpRequest, state: &PanelState) -> Result<Viewer, ApiError> {
    if let Some(token) = session_token(req)
        && let Some(session) = state.sessions.get(&token)
    {
        let (tenant, user) = (session.tenant.clone(), session.user.clone());
        return viewer_for(state, tenant, user, Via::Session { token, session })
            .ok_or_else(|| ApiError::unauthorized("this account can no longer sign in"));
    }
    if let Some((name, password)) = basic_credentials(req) {
        let (tenant, user) = authenticate(state, &name, password).await?;
        return viewer_for(state, tenant, user, Via::Basic).ok_or_else(|| {
            ApiError::forbidden(
                "not_a_user_account",
                "administrator accounts have no panel or phone of their own here",
            )
        });
    }
    Err(ApiError::unauthorized("sign in first"))
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct Me {
    user: UserId,
    name: String,
    extension: ExtensionNumber,
    department: DepartmentId,
    tenant: TenantId,
    tenant_name: String,
    /// Whether the account may use the call panel.
    panel: bool,
    /// The departments the viewer may watch, with their names.
    departments: Vec<DepartmentName>,
    /// The session's CSRF token (absent for HTTP Basic).
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
}

#[derive(Debug, Serialize)]
struct DepartmentName {
    id: DepartmentId,
    name: String,
}

fn me(state: &PanelState, viewer: &Viewer) -> Me {
    let departments = viewer.departments();
    let (tenant_name, departments) = state
        .engine
        .read_directory(&viewer.tenant, |d| {
            (
                d.tenant().map(|t| t.name.clone()).unwrap_or_default(),
                departments
                    .iter()
                    .map(|id| DepartmentName {
                        id: id.clone(),
                        name: d
                            .departments()
                            .get(id)
                            .map_or_else(|| id.to_string(), |x| x.name.clone()),
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    Me {
        user: viewer.user.clone(),
        name: viewer.name.clone(),
        extension: viewer.extension.clone(),
        department: viewer.department.clone(),
        tenant: viewer.tenant.clone(),
        tenant_name,
        panel: viewer.panel.is_some(),
        departments,
        csrf: viewer.session().map(|s| s.csrf.clone()),
    }
}

fn secure(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// Runs the user's panel login or logout hook (their "on login / on logout set status to"
/// choice); a failure is logged, it never blocks signing in or out.
async fn presence_hook(state: &PanelState, tenant: &TenantId, user: &UserId, login: bool) {
    let found = state
        .engine
        .read_directory(tenant, |d| {
            let u = d.user(user)?;
            let choice = if login {
                u.settings.on_login.as_ref()
            } else {
                u.settings.on_logout.as_ref()
            }
            .and_then(|s| d.presence_choice(s));
            Some((
                u.extension.clone(),
                choice,
                u.settings.presence_rules.clone(),
            ))
        })
        .flatten();
    let Some((extension, choice, rules)) = found else {
        return;
    };
    if choice.is_none() {
        return;
    }
    let command = if login {
        ExtensionCommand::PanelLogin {
            on_login: choice,
            rules,
        }
    } else {
        ExtensionCommand::PanelLogout {
            on_logout: choice,
            rules,
        }
    };
    let instance = Instance::new(StreamId::extension(tenant, &extension)).in_tenant(tenant.clone());
    if let Err(e) = state
        .engine
        .extensions()
        .try_execute(&instance, Execute::new(command))
        .await
    {
        tracing::warn!(%tenant, %user, error = %e, "the panel presence hook was not applied");
    }
}

async fn login(
    req: HttpRequest,
    state: web::Data<PanelState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    csrf::check_json(&req)?;
    let body: LoginBody = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_request("send {\"username\": …, \"password\": …}"))?;
    if body.username.len() > 200 || body.password.len() > 1024 {
        return Err(ApiError::bad_request("user name or password too long"));
    }
    let (tenant, user) = authenticate(&state, &body.username, body.password).await?;
    let refusal = state
        .engine
        .read_directory(&tenant, |d| {
            let u = d.user(&user)?;
            if u.role != UserRole::User {
                Some(ApiError::forbidden(
                    "not_a_panel_user",
                    "administrator accounts cannot use the call panel: sign in with your own \
                     user account",
                ))
            } else if !d.has_feature(&user, FeatureFlag::CallPanel) {
                Some(ApiError::forbidden(
                    "no_panel_feature",
                    "your profile does not include the call panel: ask your administrator to \
                     enable “Ability to use call panel” for your profile",
                ))
            } else if !d.can_use_panel(&user) {
                Some(ApiError::forbidden(
                    "no_panel_access",
                    "this account may not use the call panel",
                ))
            } else {
                None
            }
        })
        .flatten();
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    // A new session at every sign-in; the one this browser had (if any) ends now.
    if let Some(old) = session_token(&req)
        && let Some(old) = state.sessions.revoke(&old)
    {
        state.hub.close_session(&old.id, CloseWhy::SignedOut);
    }
    let (token, session) = state
        .sessions
        .create(tenant.clone(), user.clone())
        .map_err(ApiError::internal)?;
    presence_hook(&state, &tenant, &user, true).await;
    let viewer = viewer_for(
        &state,
        tenant,
        user,
        Via::Session {
            token: token.clone(),
            session,
        },
    )
    .ok_or_else(|| ApiError::unauthorized("this account can no longer sign in"))?;
    Ok(HttpResponse::Ok()
        .cookie(Sessions::cookie(&token, secure(&req)))
        .json(me(&state, &viewer)))
}

async fn logout(req: HttpRequest, state: web::Data<PanelState>) -> Result<HttpResponse, ApiError> {
    let viewer = viewer(&req, &state).await?;
    let Via::Session { token, session } = &viewer.via else {
        return Err(ApiError::bad_request("there is no session to sign out of"));
    };
    viewer.check_state_change(&req)?;
    state.sessions.revoke(token);
    state.hub.close_session(&session.id, CloseWhy::SignedOut);
    presence_hook(&state, &viewer.tenant, &viewer.user, false).await;
    Ok(HttpResponse::Ok()
        .cookie(Sessions::removal_cookie(secure(&req)))
        .json(serde_json::json!({ "ok": true })))
}

async fn whoami(req: HttpRequest, state: web::Data<PanelState>) -> Result<HttpResponse, ApiError> {
    let viewer = viewer(&req, &state).await?;
    Ok(HttpResponse::Ok().json(me(&state, &viewer)))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/login", web::post().to(login))
        .route("/api/v1/logout", web::post().to(logout))
        .route("/api/v1/me", web::get().to(whoami));
}

/// Whether `req` carries a live session (for the page routes).
pub(crate) fn has_session(req: &HttpRequest, sessions: &Sessions) -> bool {
    session_token(req).is_some_and(|t| sessions.get(&t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_standard_text() {
        assert_eq!(
            decode_base64("MTAwMTpkZW1vLTEwMDE=").unwrap(),
            b"1001:demo-1001"
        );
        assert_eq!(decode_base64("YQ").unwrap(), b"a");
        assert!(decode_base64("a*b").is_none());
    }

    #[test]
    fn failures_slow_a_name_down_for_a_while() {
        let t = Throttle::default();
        let now = DateTime::UNIX_EPOCH;
        for _ in 0..MAX_FAILURES {
            assert!(t.check("1001", now).is_ok());
            t.failed(" 1001", now);
        }
        let refused = t.check("1001", now).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(t.check("1002", now).is_ok());
        assert!(t.check("1001", now + FAILURE_WINDOW).is_ok());
        t.failed("1003", now);
        t.succeeded("1003");
        assert!(t.failures.lock().unwrap().get("1003").is_none());
    }
}
