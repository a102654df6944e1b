//! The panel's HTTP API (JSON), for pages and API clients alike:
//!
//! | Method and path | What |
//! |---|---|
//! | `GET /api/v1/panel` | the same snapshot the websocket starts with |
//! | `GET /api/v1/panel/users/{user}` | one card the viewer may see (or their own) |
//! | `GET /api/v1/pinned` | the viewer's pinned cards, in order |
//! | `POST /api/v1/pinned` `{user, before?}` | pin a card before another, or at the end |
//! | `POST /api/v1/pinned/move` `{user, before?}` | move a pinned card |
//! | `DELETE /api/v1/pinned/{user}` | unpin |
//! | `POST /api/v1/presence` `{state, message?}` | set own presence |
//! | `POST /api/v1/dnd` `{enabled}` | set own DND |
//! | `POST /api/v1/call` `{to}` | click-to-call |
//!
//! Every state-changing request passes the cross-site checks of [`super::csrf`]. What the viewer
//! may not see answers exactly like what does not exist (404).

use actix_web::{HttpRequest, HttpResponse, web};
use events::ids::UserId;
use serde_json::Value;

use super::actions::{self, Action};
use super::auth::{self, Viewer};
use super::{ApiError, PanelState};

/// Parses a request body as the action `kind`.
fn parse_action(kind: &str, body: &[u8]) -> Result<Action, ApiError> {
    let mut value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON: {e}")))?
    };
    let Some(object) = value.as_object_mut() else {
        return Err(ApiError::bad_request("send a JSON object"));
    };
    object.insert("type".into(), Value::String(kind.to_owned()));
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("{e}")))
}

async fn act(
    req: &HttpRequest,
    state: &PanelState,
    action: impl FnOnce() -> Result<Action, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let viewer = auth::viewer(req, state).await?;
    viewer.check_state_change(req)?;
    let action = action()?;
    let answer = actions::perform(state, &viewer, action).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The viewer, who must be a panel user, with their watch list loaded.
async fn panel_viewer(req: &HttpRequest, state: &PanelState) -> Result<Viewer, ApiError> {
    let viewer = auth::viewer(req, state).await?;
    viewer.require_panel()?;
    state
        .watchlists
        .load(&viewer.tenant, &viewer.user)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(viewer)
}

/// The snapshot the websocket would start with, for `viewer`.
fn snapshot_json(state: &PanelState, viewer: &Viewer) -> Result<String, ApiError> {
    let departments = viewer.require_panel()?;
    let (frame, _) = state.hub.snapshot_frame(
        &state.panel.read(),
        &viewer.tenant,
        &viewer.user,
        departments,
        state.clock.now(),
    );
    Ok(frame)
}

async fn panel(req: HttpRequest, state: web::Data<PanelState>) -> Result<HttpResponse, ApiError> {
    let viewer = panel_viewer(&req, &state).await?;
    let body = snapshot_json(&state, &viewer)?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

async fn card(
    req: HttpRequest,
    state: web::Data<PanelState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let viewer = auth::viewer(&req, &state).await?;
    let id = path.into_inner();
    let missing = || ApiError::not_found(format!("no user {id} in your panel"));
    let user = UserId::parse(&id).map_err(|_| missing())?;
    let view = state.panel.read();
    let card = if user == viewer.user {
        view.card(&viewer.tenant, &user)
    } else {
        view.card_for(&viewer.tenant, &viewer.departments(), &user)
    }
    .ok_or_else(missing)?;
    drop(view);
    Ok(HttpResponse::Ok().json(card))
}

async fn pinned(req: HttpRequest, state: web::Data<PanelState>) -> Result<HttpResponse, ApiError> {
    let viewer = panel_viewer(&req, &state).await?;
    Ok(HttpResponse::Ok().json(actions::pinned(&state, &viewer)))
}

async fn unpin(
    req: HttpRequest,
    state: web::Data<PanelState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = path.into_inner();
    act(&req, &state, || Ok(Action::Unpin { user })).await
}

/// `POST` of the action `kind`, whose fields are the JSON body.
fn posted(kind: &'static str) -> actix_web::Route {
    web::post().to(
        move |req: HttpRequest, state: web::Data<PanelState>, body: web::Bytes| async move {
            act(&req, &state, || parse_action(kind, &body)).await
        },
    )
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/panel", web::get().to(panel))
        .route("/api/v1/panel/users/{user}", web::get().to(card))
        .route("/api/v1/pinned", web::get().to(pinned))
        .route("/api/v1/pinned", posted("pin"))
        .route("/api/v1/pinned/move", posted("move"))
        .route("/api/v1/pinned/{user}", web::delete().to(unpin))
        .route("/api/v1/presence", posted("set_presence"))
        .route("/api/v1/dnd", posted("set_dnd"))
        .route("/api/v1/call", posted("call"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_actions_of_their_route() {
        assert_eq!(
            parse_action("pin", br#"{"user":"1006"}"#).unwrap(),
            Action::Pin {
                user: "1006".into(),
                before: None
            }
        );
        // The route decides the kind, whatever the body says.
        assert_eq!(
            parse_action("set_dnd", br#"{"type":"call","enabled":true}"#).unwrap(),
            Action::SetDnd { enabled: true }
        );
        assert!(parse_action("pin", b"[1]").is_err());
        assert!(parse_action("pin", b"").is_err(), "a pin needs a user");
    }
}
