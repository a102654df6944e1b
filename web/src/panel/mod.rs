//! The call panel on the web: sign-in and sessions ([`auth`], [`throttle`], [`session`],
//! [`csrf`]), the versioned websocket protocol ([`protocol`]) and the hub that streams the panel
//! projection to every connected browser ([`hub`], [`ws`]), what happens when a user's last
//! panel goes away ([`presence`]), the actions a panel user can take ([`actions`]: presence,
//! DND, the pinned watch list kept as events by [`watchlist`], click-to-call), the HTTP API
//! ([`api`]), CDR exports ([`cdr`]) and the browser UI's files ([`assets`]).
//!
//! Authorisation is deny by default and decided in one place, [`Access`]: a viewer sees the
//! cards and counters of the departments they were granted, in their own tenant, and nothing
//! else — whether the answer goes out as an HTTP response or a websocket frame. The one
//! exception is the viewer's own card (and their own CDRs), which they always see.

pub(crate) mod actions;
pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod auth;
pub(crate) mod base64;
pub(crate) mod cdr;
pub(crate) mod csrf;
pub(crate) mod hub;
pub(crate) mod presence;
pub(crate) mod protocol;
pub(crate) mod session;
#[cfg(test)]
mod tests;
pub(crate) mod throttle;
pub(crate) mod watchlist;
pub(crate) mod ws;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use engine::runtime::Engine;
use events::ids::{CallId, DepartmentId, ExtensionNumber, PhoneNumber, TenantId, UserId};
use events::{Clock, IdGen};
use futures_util::future::BoxFuture;
use projections::{CdrStore, PanelHandle};

use self::hub::Hub;
use self::protocol::ErrorBody;
use self::session::Sessions;
use self::throttle::Throttle;
use self::watchlist::WatchLists;

/// Who may watch what in the call panel. Deny by default.
pub(crate) trait Access: Send + Sync + fmt::Debug {
    /// The departments `user` of `tenant` may watch now; `None` when they may not use the panel
    /// at all (no such user, not a user-level account, no call-panel feature, tenant suspended).
    fn panel_departments(&self, tenant: &TenantId, user: &UserId)
    -> Option<BTreeSet<DepartmentId>>;
}

impl Access for Engine {
    fn panel_departments(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Option<BTreeSet<DepartmentId>> {
        self.read_directory(tenant, |d| {
            d.can_use_panel(user)
                .then(|| d.departments_visible_to(user))
        })
        .flatten()
    }
}

/// Places a click-to-call: rings the user's own phones, then `target`. Plugged in by whoever
/// runs a SIP edge; without one, the panel answers that click-to-call is not available.
pub(crate) trait ClickToCall: Send + Sync + fmt::Debug {
    fn click_to_call(
        &self,
        tenant: TenantId,
        extension: ExtensionNumber,
        target: PhoneNumber,
        requested_by: UserId,
    ) -> BoxFuture<'static, Result<CallId, String>>;
}

/// Everything the panel's handlers share.
#[derive(Clone)]
pub(crate) struct PanelState {
    pub(crate) engine: Engine,
    pub(crate) access: Arc<dyn Access>,
    pub(crate) panel: PanelHandle,
    pub(crate) cdrs: CdrStore,
    pub(crate) sessions: Sessions,
    pub(crate) watchlists: WatchLists,
    pub(crate) hub: Hub,
    pub(crate) throttle: Arc<Throttle>,
    pub(crate) click_to_call: Option<Arc<dyn ClickToCall>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGen>,
}

impl fmt::Debug for PanelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanelState")
            .field("sessions", &self.sessions)
            .field("hub", &self.hub)
            .field("click_to_call", &self.click_to_call.is_some())
            .finish_non_exhaustive()
    }
}

/// An error answer: a status and `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// Not found — also the answer for what exists but may not be seen, so the two cannot be
    /// told apart.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.body.code, self.body.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(serde_json::json!({ "error": self.body }))
    }
}

/// The panel's routes: pages, static files, the API and the websocket.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    assets::configure(cfg);
    auth::configure(cfg);
    api::configure(cfg);
    cdr::configure(cfg);
    ws::configure(cfg);
}
