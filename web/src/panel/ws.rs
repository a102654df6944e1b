//! The panel's websocket endpoint, `GET /api/v1/panel/ws` ([`super::protocol`] says what goes
//! over it). The handshake needs the page's own `Origin`, a signed-in session with panel access
//! and a protocol version this server speaks. Each connection is recorded in the user's panel
//! stream (opened, resynced, closed with its reason and last position), joins the hub, and runs
//! two tasks: a writer that drains the connection's queue (adding sequence numbers) and pings,
//! and a reader that answers actions and notices a browser gone quiet. Its opening and closing
//! count towards the user's attendance ([`super::presence`]: the last one closed for good runs
//! their logout hook).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{CloseCode, CloseReason, Message, MessageStream, Session};
use events::GlobalPosition;
use events::ids::PanelSessionId;
use events::model::PanelCloseReason;
use tokio::sync::{mpsc, oneshot};

use super::actions::{self, Action};
use super::auth::{self, Via, Viewer};
use super::protocol::{ClientFrame, CloseWhy, Connect, ErrorBody, ServerFrame, VERSION, with_seq};
use super::watchlist::WatchCommand;
use super::{ApiError, PanelState, csrf, presence};

/// Largest frame a browser may send.
const MAX_FRAME: usize = 64 * 1024;
/// How often the server pings; a browser silent for three times this long is gone.
const PING_EVERY: Duration = Duration::from_secs(10);

async fn socket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<PanelState>,
    query: web::Query<Connect>,
) -> Result<HttpResponse, ApiError> {
    csrf::check_websocket_origin(&req)?;
    let viewer = auth::viewer(&req, &state).await?;
    if viewer.session().is_none() {
        return Err(ApiError::forbidden(
            "session_required",
            "the panel socket needs a signed-in browser session",
        ));
    }
    viewer.require_panel()?;
    if let Some(v) = query.v
        && v != VERSION
    {
        return Err(ApiError::bad_request(format!(
            "this server speaks panel protocol version {VERSION}, not {v}: reload the page"
        )));
    }
    let resume = query
        .from
        .map(|p| (GlobalPosition(p), query.epoch.clone().unwrap_or_default()));
    let user_agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(300).collect());
    let remote_addr = req.peer_addr().map(|a| a.to_string());
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|e| ApiError::bad_request(format!("not a websocket handshake: {e}")))?;
    let stream = stream.max_frame_size(MAX_FRAME);
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        run(
            state,
            viewer,
            resume,
            session,
            stream,
            user_agent,
            remote_addr,
        )
        .await;
    });
    Ok(response)
}

fn record_reason(why: CloseWhy) -> PanelCloseReason {
    match why {
        CloseWhy::SignedOut => PanelCloseReason::Logout,
        CloseWhy::AccessRevoked => PanelCloseReason::AccessRevoked,
        CloseWhy::TooSlow => PanelCloseReason::TooSlow,
        CloseWhy::Timeout => PanelCloseReason::Timeout,
        // The browser sent what the protocol does not have; it closed on its side of it.
        CloseWhy::Protocol => PanelCloseReason::BrowserClosed,
        CloseWhy::ServerShutdown => PanelCloseReason::ServerShutdown,
    }
}

/// How a connection ended.
enum End {
    /// The browser closed the socket (or the connection dropped).
    Browser,
    /// The hub dropped it (`None`: the socket failed while writing).
    Dropped(Option<CloseWhy>),
    /// The reader closes it.
    Closing(CloseWhy),
}

async fn record(state: &PanelState, viewer: &Viewer, command: WatchCommand) {
    if let Err(e) = state
        .watchlists
        .execute(&viewer.tenant, &viewer.user, command)
        .await
    {
        tracing::warn!(user = %viewer.user, error = %e, "a panel connection event was not recorded");
    }
}

async fn close(session: Session, why: CloseWhy) {
    let reason = CloseReason {
        code: CloseCode::Other(why.code()),
        description: Some(why.reason().to_owned()),
    };
    // A browser that does not read gets no more than a second.
    let _ = tokio::time::timeout(Duration::from_secs(1), session.close(Some(reason))).await;
}

#[allow(clippy::too_many_arguments)]
async fn run(
    state: Arc<PanelState>,
    viewer: Viewer,
    resume: Option<(GlobalPosition, String)>,
    mut session: Session,
    mut stream: MessageStream,
    user_agent: Option<String>,
    remote_addr: Option<String>,
) {
    let started = Instant::now();
    let id = PanelSessionId::from_uuid(state.ids.next_uuid());
    let Some(browser) = viewer.session().map(|s| s.id.clone()) else {
        return;
    };
    if let Err(e) = state.watchlists.load(&viewer.tenant, &viewer.user).await {
        tracing::warn!(user = %viewer.user, error = %e, "cannot read the watch list");
        close(session, CloseWhy::ServerShutdown).await;
        return;
    }
    record(
        &state,
        &viewer,
        WatchCommand::OpenSession {
            user: viewer.user.clone(),
            session: id,
            user_agent,
            remote_addr,
        },
    )
    .await;
    let closed = |reason, last_position| WatchCommand::CloseSession {
        user: viewer.user.clone(),
        session: id,
        reason,
        last_position,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let Some(joined) = state
        .hub
        .join(&viewer.tenant, &viewer.user, &browser, resume)
    else {
        close(session, CloseWhy::AccessRevoked).await;
        let command = closed(PanelCloseReason::AccessRevoked, GlobalPosition::START);
        record(&state, &viewer, command).await;
        return;
    };
    presence::socket_opened(&state, &viewer.tenant, &viewer.user).await;
    record(
        &state,
        &viewer,
        WatchCommand::Resynced {
            user: viewer.user.clone(),
            session: id,
            from: joined.from,
            to: joined.to,
            mode: joined.mode,
        },
    )
    .await;
    let conn = joined.id;
    let mut writer = actix_web::rt::spawn(write(session.clone(), joined.frames, joined.kill));
    let mut last_heard = Instant::now();
    let mut check = tokio::time::interval(PING_EVERY);
    let end = loop {
        tokio::select! {
            done = &mut writer => break End::Dropped(done.ok().flatten()),
            _ = check.tick() => {
                if last_heard.elapsed() > PING_EVERY * 3 {
                    break End::Closing(CloseWhy::Timeout);
                }
            }
            message = stream.recv() => {
                last_heard = Instant::now();
                match message {
                    Some(Ok(Message::Text(text))) => handle(&state, &viewer, conn, &text).await,
                    Some(Ok(Message::Ping(bytes))) => {
                        let _ = session.pong(&bytes).await;
                    }
                    Some(Ok(Message::Pong(_) | Message::Nop | Message::Continuation(_))) => {}
                    Some(Ok(Message::Binary(_))) => break End::Closing(CloseWhy::Protocol),
                    // A close frame, the end of the stream or a broken connection: gone.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break End::Browser,
                }
            }
        }
    };
    let told = state.hub.leave(conn).unwrap_or_default();
    writer.abort();
    let reason = match end {
        End::Browser | End::Dropped(None) => PanelCloseReason::BrowserClosed,
        End::Dropped(Some(why)) => record_reason(why),
        End::Closing(why) => {
            close(session, why).await;
            record_reason(why)
        }
    };
    // A server going down is no user leaving.
    let departing = reason != PanelCloseReason::ServerShutdown;
    presence::socket_closed(&state, &viewer.tenant, &viewer.user, departing);
    record(&state, &viewer, closed(reason, told)).await;
}

/// Drains the connection's queue to the socket; returns why the hub dropped the connection
/// (`None`: the socket or the queue ended first).
async fn write(
    mut session: Session,
    mut frames: mpsc::Receiver<String>,
    mut kill: oneshot::Receiver<CloseWhy>,
) -> Option<CloseWhy> {
    let mut seq = 0u64;
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        let sent = tokio::select! {
            biased;
            why = &mut kill => {
                let why = why.ok()?;
                seq += 1;
                let bye = ServerFrame::Closing { code: why.code(), reason: why.reason() }.to_json();
                let _ = tokio::time::timeout(
                    Duration::from_millis(200),
                    session.text(with_seq(seq, &bye)),
                )
                .await;
                close(session, why).await;
                return Some(why);
            }
            frame = frames.recv() => {
                let frame = frame?;
                seq += 1;
                let text = with_seq(seq, &frame);
                tokio::select! {
                    sent = session.text(text) => sent.is_ok(),
                    why = &mut kill => {
                        let why = why.ok()?;
                        close(session, why).await;
                        return Some(why);
                    }
                }
            }
            _ = ping.tick() => session.ping(b"").await.is_ok(),
        };
        if !sent {
            return None;
        }
    }
}

/// Answers one client frame.
async fn handle(state: &PanelState, viewer: &Viewer, conn: u64, text: &str) {
    let frame: ClientFrame = match serde_json::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let error = ErrorBody {
                code: "bad_frame",
                message: format!("unreadable frame: {e}"),
            };
            state.hub.send_to(
                conn,
                ServerFrame::Result {
                    id: 0,
                    ok: false,
                    error: Some(&error),
                }
                .to_json(),
            );
            return;
        }
    };
    let id = frame.id();
    let action = match frame {
        ClientFrame::SetPresence { state, message, .. } => Action::SetPresence { state, message },
        ClientFrame::SetDnd { enabled, .. } => Action::SetDnd { enabled },
        ClientFrame::Pin { user, before, .. } => Action::Pin { user, before },
        ClientFrame::Unpin { user, .. } => Action::Unpin { user },
        ClientFrame::Move { user, before, .. } => Action::Move { user, before },
        ClientFrame::Call { to, .. } => Action::Call { to },
    };
    // Access is decided now, not when the socket opened.
    let outcome = match current(state, viewer) {
        Ok(now) => actions::perform(state, &now, action).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let error = outcome.err().map(|e| e.body);
    state.hub.send_to(
        conn,
        ServerFrame::Result {
            id,
            ok: error.is_none(),
            error: error.as_ref(),
        }
        .to_json(),
    );
}

/// The viewer as the session and the directory say now.
fn current(state: &PanelState, viewer: &Viewer) -> Result<Viewer, ApiError> {
    let Via::Session { token, .. } = &viewer.via else {
        return Err(ApiError::unauthorized("sign in first"));
    };
    let session = state
        .sessions
        .get(token)
        .ok_or_else(|| ApiError::unauthorized("signed out"))?;
    auth::refresh(state, viewer, session)
        .ok_or_else(|| ApiError::unauthorized("this account can no longer sign in"))
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/panel/ws", web::get().to(socket));
}
