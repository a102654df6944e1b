//! Signing in and out, and who is asking. A user signs in with their user name (`1001`, or
//! `1001@acme` when the name exists in several tenants; the tenant may be given by id or SIP
//! domain) and web password (argon2, checked on the blocking pool). Only user-level accounts
//! whose profile has the call-panel feature get a session; an administrator, or a user whose
//! profile lacks the feature, is told so plainly — after the password was checked, so the
//! refusal reveals nothing to someone without it. Failed sign-ins are held back per source
//! address and account, never so that the account's owner is locked out ([`super::throttle`]).
//!
//! Every API request is made by a [`Viewer`]: from the session cookie, or — for API clients such
//! as a desk phone app, which have no cookie — from HTTP Basic credentials of a user-level
//! account. A Basic viewer without the panel feature can still set their own presence and DND
//! and read their own CDRs.

use std::collections::BTreeSet;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use events::ids::{DepartmentId, ExtensionNumber, TenantId, UserId};
use events::model::{FeatureFlag, PresenceSource, UserRole};
use serde::{Deserialize, Serialize};

use super::protocol::CloseWhy;
use super::session::{COOKIE, Session, Sessions};
use super::{ApiError, PanelState, base64, csrf, presence};

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

/// The account `name` signs in to with `password`, from `req`'s address, throttled
/// ([`super::throttle`]): a locked (address, account) pair or address is refused before
/// anything is checked, an account under attack waits a little, and every failure counts.
async fn authenticate(
    state: &PanelState,
    req: &HttpRequest,
    name: &str,
    password: String,
) -> Result<(TenantId, UserId), ApiError> {
    let now = state.clock.now();
    let from = req.peer_addr().map(|a| a.ip());
    let found = resolve(state, name);
    let account = match &found {
        Ok((tenant, user)) => format!("{user}@{tenant}"),
        Err(_) => name.trim().to_ascii_lowercase(),
    };
    let delay = state.throttle.check(from, &account, now)?;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (tenant, user) = match found {
        Ok(found) => found,
        Err(e) => {
            state.throttle.failed(from, &account, now);
            return Err(e);
        }
    };
    if !verify(state, &tenant, &user, password).await? {
        state.throttle.failed(from, &account, now);
        return Err(ApiError::unauthorized("wrong user name or password"));
    }
    state.throttle.succeeded(from, &account);
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
    let decoded = base64::decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
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
        let (tenant, user) = authenticate(state, req, &name, password).await?;
        return viewer_for(state, tenant, user, Via::Basic).ok_or_else(|| {
            ApiError::forbidden(
                "not_a_user_account",
                "administrator accounts have no panel or phone of their own here",
            )
        });
    }
    Err(ApiError::unauthorized("sign in first"))
}

/// The tenants whose details the administrator of `req`'s HTTP Basic credentials may see: a
/// client administrator their own, a reseller administrator every tenant of their reseller.
/// `Ok(None)` without credentials; 401 for wrong ones (throttled like every sign-in), 403 for
/// a user-level account.
pub(crate) async fn administered_tenants(
    req: &HttpRequest,
    state: &PanelState,
) -> Result<Option<Vec<TenantId>>, ApiError> {
    let Some((name, password)) = basic_credentials(req) else {
        return Ok(None);
    };
    let (tenant, user) = authenticate(state, req, &name, password).await?;
    let engine = &state.engine;
    let (role, reseller) = engine
        .read_directory(&tenant, |d| {
            d.user(&user)
                .map(|u| (u.role, d.tenant().and_then(|t| t.reseller.clone())))
        })
        .flatten()
        .ok_or_else(|| ApiError::unauthorized("this account can no longer sign in"))?;
    match (role, reseller) {
        (UserRole::User, _) => Err(ApiError::forbidden(
            "not_an_administrator",
            "only an administrator sees the tenants' details",
        )),
        (UserRole::ResellerAdmin, Some(reseller)) => Ok(Some(
            engine
                .tenants()
                .into_iter()
                .filter(|t| {
                    engine
                        .read_directory(t, |d| {
                            d.tenant().and_then(|x| x.reseller.as_ref()) == Some(&reseller)
                        })
                        .unwrap_or(false)
                })
                .collect(),
        )),
        (UserRole::ClientAdmin | UserRole::ResellerAdmin, _) => Ok(Some(vec![tenant])),
    }
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
    let (tenant, user) = authenticate(&state, &req, &body.username, body.password).await?;
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
    presence::signed_in(&state, &tenant, &user).await;
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
    presence::signed_out(&state, &viewer.tenant, &viewer.user).await;
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
