//! SIP over WebSocket (RFC 7118) for browser phones, on the HTTP server's port. The HTTP server
//! hands an upgrade request to [`WebSocketAcceptor::upgrade`], which insists on the `sip`
//! subprotocol, refuses a banned source, answers the handshake and serves the connection as a
//! flow of the SIP edge: each text or binary frame is one SIP message and meets the same ingress
//! checks as UDP and TCP (the source's packet and failure budgets, the raw and the request
//! checks) and then the same endpoint, so REGISTER with digest, INVITE and the rest behave as
//! over TCP. What the edge sends down the flow (its responses, and requests to a contact
//! registered over it, such as an INVITE to the browser) goes out as text frames. The server
//! pings; a connection that says nothing (not even a pong) for the edge's idle timeout is
//! closed, as an idle TCP connection is. Which pages may connect (`Origin`) is the HTTP
//! server's policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use tokio::time::Instant;

use crate::transport::{Flows, Frame};

/// The WebSocket subprotocol of SIP (RFC 7118 §4).
pub const SUBPROTOCOL: &str = "sip";

/// Largest frame (and message reassembled from fragments) read; the edge's message size limit
/// then refuses what is over it, counted like an oversized datagram.
const MAX_FRAME: usize = 64 * 1024;

/// Takes WebSocket upgrades for a running [`SipEdge`](crate::SipEdge); clone it freely. It stops
/// taking them when the edge stops.
#[derive(Clone)]
pub struct WebSocketAcceptor {
    flows: Arc<Flows>,
    idle: Duration,
}

impl std::fmt::Debug for WebSocketAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketAcceptor")
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

/// Why an upgrade was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebSocketRefused {
    #[error(
        "SIP over WebSocket needs the `sip` subprotocol (send `Sec-WebSocket-Protocol: sip`, RFC 7118)"
    )]
    NoSipSubprotocol,
    #[error("this address is banned for a while (too many packets or refused requests)")]
    Banned,
    #[error("the connection has no peer address")]
    NoPeerAddress,
    #[error("not a websocket handshake: {0}")]
    Handshake(String),
    #[error("the SIP edge has stopped")]
    Stopped,
}

impl WebSocketRefused {
    /// The HTTP status to answer the upgrade request with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoSipSubprotocol | Self::NoPeerAddress | Self::Handshake(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Banned => StatusCode::FORBIDDEN,
            Self::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short machine-readable name.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSipSubprotocol => "sip_subprotocol_required",
            Self::Banned => "banned",
            Self::NoPeerAddress => "no_peer_address",
            Self::Handshake(_) => "not_a_websocket_handshake",
            Self::Stopped => "sip_edge_stopped",
        }
    }
}

impl WebSocketAcceptor {
    pub(crate) fn new(flows: Arc<Flows>, idle: Duration) -> Self {
        Self { flows, idle }
    }

    /// Answers a WebSocket upgrade request for SIP: the `101` response (naming the `sip`
    /// subprotocol) to return from the handler, with the connection served on the current HTTP
    /// worker from then on. Must be called from an actix-web handler.
    pub fn upgrade(
        &self,
        req: &HttpRequest,
        body: web::Payload,
    ) -> Result<HttpResponse, WebSocketRefused> {
        if !offers_sip(req) {
            return Err(WebSocketRefused::NoSipSubprotocol);
        }
        if self.flows.stopped() {
            return Err(WebSocketRefused::Stopped);
        }
        let peer = req.peer_addr().ok_or(WebSocketRefused::NoPeerAddress)?;
        if self.flows.is_banned(peer.ip()) {
            return Err(WebSocketRefused::Banned);
        }
        // Behind a TLS-terminating proxy the browser spoke `wss:` and its Via says WSS.
        let secure = req.connection_info().scheme() == "https";
        let (response, session, stream) =
            actix_ws::handle_with_protocols(req, body, &[SUBPROTOCOL])
                .map_err(|e| WebSocketRefused::Handshake(e.to_string()))?;
        let stream = stream
            .max_frame_size(MAX_FRAME)
            .aggregate_continuations()
            .max_continuation_size(MAX_FRAME);
        let (flows, idle) = (self.flows.clone(), self.idle);
        actix_web::rt::spawn(serve(flows, peer, secure, session, stream, idle));
        Ok(response)
    }
}

/// Whether the handshake offers the `sip` subprotocol.
fn offers_sip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

fn reason(code: CloseCode, description: &str) -> CloseReason {
    CloseReason {
        code,
        description: Some(description.to_owned()),
    }
}

/// Runs one connection: frames to the flow, the stack's messages to the browser, pings, until
/// either side ends it.
async fn serve(
    flows: Arc<Flows>,
    peer: SocketAddr,
    secure: bool,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    idle: Duration,
) {
    let (flow, mut downstream) = match flows.open(peer, secure).await {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "could not open a SIP over WebSocket flow");
            let _ = session
                .close(Some(reason(CloseCode::Error, "SIP edge error")))
                .await;
            return;
        }
    };
    tracing::debug!(%peer, secure, "SIP over WebSocket connected");
    let closed = flow.closed();
    let mut ping = tokio::time::interval((idle / 4).max(Duration::from_secs(1)));
    ping.tick().await;
    let mut heard = Instant::now();
    let why = loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => {
                break if flows.stopped() {
                    reason(CloseCode::Away, "the SIP edge is stopping")
                } else {
                    reason(CloseCode::Policy, "refused by the SIP edge")
                };
            }
            out = downstream.next() => {
                let Some(text) = out else {
                    break reason(CloseCode::Away, "the SIP edge is stopping");
                };
                if session.text(text).await.is_err() {
                    break reason(CloseCode::Error, "write failed");
                }
                continue;
            }
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    break reason(CloseCode::Normal, "idle");
                }
                if session.ping(b"").await.is_err() {
                    break reason(CloseCode::Error, "write failed");
                }
                continue;
            }
            frame = stream.recv() => frame,
        };
        heard = Instant::now();
        let bytes = match frame {
            Some(Ok(AggregatedMessage::Text(text))) => text.into_bytes(),
            Some(Ok(AggregatedMessage::Binary(bytes))) => bytes,
            Some(Ok(AggregatedMessage::Ping(data))) => {
                let _ = session.pong(&data).await;
                continue;
            }
            Some(Ok(AggregatedMessage::Pong(_))) => continue,
            Some(Ok(AggregatedMessage::Close(_))) | None => break reason(CloseCode::Normal, "bye"),
            Some(Err(e)) => {
                tracing::debug!(%peer, error = %e, "SIP over WebSocket protocol error");
                break reason(CloseCode::Protocol, "websocket protocol error");
            }
        };
        match flow.receive(&bytes) {
            Frame::Delivered | Frame::Refused => {}
            Frame::Keepalive => {
                if session.text("\r\n").await.is_err() {
                    break reason(CloseCode::Error, "write failed");
                }
            }
            Frame::Close => break reason(CloseCode::Policy, "refused by the SIP edge"),
        }
    };
    tracing::debug!(%peer, why = ?why.description, "SIP over WebSocket closed");
    drop(flow);
    // A browser that does not read gets no more than a second.
    let _ = tokio::time::timeout(Duration::from_secs(1), session.close(Some(why))).await;
}
