//! What a panel user can do, the same over HTTP and over the websocket: set their own presence
//! (an entry of the tenant's presence-state list, with their automatic rules) and DND through
//! their extension's actor; pin, unpin and move cards of their watch list (only cards they may
//! see); click-to-call (through the SIP edge when one is plugged in). Every change is durable in
//! the log before it is acknowledged.

use engine::extension::ExtensionCommand;
use engine::runtime::{Execute, ExecuteError, Instance};
use events::StreamId;
use events::ids::{PhoneNumber, PresenceStateId, UserId};
use events::model::{PanelCard, SettingSource};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Via, Viewer};
use super::hub::visible_pinned;
use super::watchlist::{WatchCommand, WatchError, WatchRejection};
use super::{ApiError, PanelState};
use actix_web::http::StatusCode;

/// Longest presence message accepted.
const MAX_MESSAGE: usize = 200;

/// One action of a viewer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Action {
    SetPresence {
        state: String,
        #[serde(default)]
        message: Option<String>,
    },
    SetDnd {
        enabled: bool,
    },
    Pin {
        user: String,
        #[serde(default)]
        before: Option<String>,
    },
    Unpin {
        user: String,
    },
    Move {
        user: String,
        #[serde(default)]
        before: Option<String>,
    },
    Call {
        to: String,
    },
}

impl Action {
    fn touches_watch_list(&self) -> bool {
        matches!(
            self,
            Action::Pin { .. } | Action::Unpin { .. } | Action::Move { .. }
        )
    }
}

fn engine_error<R: std::fmt::Display>(e: ExecuteError<R>) -> ApiError {
    match e {
        ExecuteError::Rejected(r) => ApiError::new(StatusCode::CONFLICT, "rejected", r.to_string()),
        ExecuteError::Overloaded { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the extension is busy; try again in a moment",
        ),
        other => {
            tracing::warn!(error = %other, "a panel action could not be recorded");
            ApiError::internal("the change could not be recorded; try again")
        }
    }
}

fn watch_error(e: WatchError) -> ApiError {
    match e {
        WatchError::Rejected(r @ WatchRejection::NotPinned) => ApiError::not_found(r.to_string()),
        WatchError::Rejected(r) => ApiError::new(StatusCode::CONFLICT, "rejected", r.to_string()),
        other => {
            tracing::warn!(error = %other, "a watch-list change could not be recorded");
            ApiError::internal("the change could not be recorded; try again")
        }
    }
}

/// The user `id` if the viewer may see their card; not found otherwise (whether or not the
/// user exists).
fn visible_user(state: &PanelState, viewer: &Viewer, id: &str) -> Result<UserId, ApiError> {
    let missing = || ApiError::not_found(format!("no user {id} in your panel"));
    let user = UserId::parse(id).map_err(|_| missing())?;
    let departments = viewer.require_panel()?;
    let visible = state
        .panel
        .read()
        .card_for(&viewer.tenant, departments, &user)
        .is_some();
    if visible { Ok(user) } else { Err(missing()) }
}

fn own_extension(viewer: &Viewer) -> Instance {
    Instance::new(StreamId::extension(&viewer.tenant, &viewer.extension))
        .in_tenant(viewer.tenant.clone())
}

/// The viewer's visible pinned list, as the answer to a watch-list action.
pub(crate) fn pinned(state: &PanelState, viewer: &Viewer) -> Value {
    let cards = visible_pinned(
        &state.panel.read(),
        &viewer.tenant,
        &viewer.departments(),
        state.watchlists.pinned_users(&viewer.tenant, &viewer.user),
    );
    json!({ "pinned": cards })
}

/// Performs `action` for `viewer`; the answer's body on success.
pub(crate) async fn perform(
    state: &PanelState,
    viewer: &Viewer,
    action: Action,
) -> Result<Value, ApiError> {
    if action.touches_watch_list() {
        viewer.require_panel()?;
        state
            .watchlists
            .load(&viewer.tenant, &viewer.user)
            .await
            .map_err(watch_error)?;
    }
    let me = viewer.user.clone();
    let watch = |command| async move {
        let changed = state
            .watchlists
            .execute(&viewer.tenant, &viewer.user, command)
            .await
            .map_err(watch_error)?;
        if !changed.is_empty() {
            state.hub.pinned_changed(&viewer.tenant, &viewer.user);
        }
        Ok::<Value, ApiError>(pinned(state, viewer))
    };
    match action {
        Action::SetPresence {
            state: choice,
            message,
        } => {
            let message = message
                .map(|m| m.trim().to_owned())
                .filter(|m| !m.is_empty());
            if message
                .as_ref()
                .is_some_and(|m| m.chars().count() > MAX_MESSAGE)
            {
                return Err(ApiError::bad_request(format!(
                    "a presence message has at most {MAX_MESSAGE} characters"
                )));
            }
            let unknown = || ApiError::not_found(format!("no presence state {choice}"));
            let id = PresenceStateId::parse(&choice).map_err(|_| unknown())?;
            let (choice, rules) = state
                .engine
                .read_directory(&viewer.tenant, |d| {
                    let rules = d.user(&viewer.user)?.settings.presence_rules.clone();
                    Some((d.presence_choice(&id)?, rules))
                })
                .flatten()
                .ok_or_else(unknown)?;
            state
                .engine
                .extensions()
                .try_execute(
                    &own_extension(viewer),
                    Execute::new(ExtensionCommand::SetPresence {
                        choice,
                        message,
                        source: viewer.presence_source(),
                        by: Some(me),
                        rules,
                    }),
                )
                .await
                .map_err(engine_error)?;
            Ok(json!({ "ok": true }))
        }
        Action::SetDnd { enabled } => {
            let source = match viewer.via {
                Via::Session { .. } => SettingSource::User,
                Via::Basic => SettingSource::Api,
            };
            state
                .engine
                .extensions()
                .try_execute(
                    &own_extension(viewer),
                    Execute::new(ExtensionCommand::SetDnd {
                        enabled,
                        source,
                        by: Some(me),
                    }),
                )
                .await
                .map_err(engine_error)?;
            Ok(json!({ "ok": true }))
        }
        Action::Pin { user, before } => {
            let card = PanelCard::User(visible_user(state, viewer, &user)?);
            let before = before
                .and_then(|b| UserId::parse(b).ok())
                .map(PanelCard::User);
            watch(WatchCommand::Pin {
                user: me,
                card,
                before,
            })
            .await
        }
        Action::Move { user, before } => {
            let card = PanelCard::User(visible_user(state, viewer, &user)?);
            let before = before
                .and_then(|b| UserId::parse(b).ok())
                .map(PanelCard::User);
            watch(WatchCommand::Move {
                user: me,
                card,
                before,
            })
            .await
        }
        Action::Unpin { user } => {
            // Unpinning needs no visibility: only what the viewer pinned themself is there.
            let card = UserId::parse(&user)
                .map(PanelCard::User)
                .map_err(|_| ApiError::not_found(format!("{user} is not pinned")))?;
            watch(WatchCommand::Unpin { user: me, card }).await
        }
        Action::Call { to } => {
            // A visible user's extension, or a number.
            let target = match visible_user(state, viewer, &to) {
                Ok(user) => state
                    .engine
                    .read_directory(&viewer.tenant, |d| {
                        d.user(&user)
                            .and_then(|u| PhoneNumber::parse(u.extension.as_str()).ok())
                    })
                    .flatten(),
                Err(_) => PhoneNumber::parse(to.trim()).ok(),
            }
            .ok_or_else(|| {
                ApiError::bad_request(format!("{to} is neither a user of your panel nor a number"))
            })?;
            let Some(dialler) = &state.click_to_call else {
                return Err(ApiError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "not_available",
                    "click-to-call is not available on this server yet (no SIP edge places \
                     calls for the panel)",
                ));
            };
            let call = dialler
                .click_to_call(viewer.tenant.clone(), viewer.extension.clone(), target, me)
                .await
                .map_err(|e| ApiError::new(StatusCode::CONFLICT, "rejected", e))?;
            Ok(json!({ "ok": true, "call": call }))
        }
    }
}
