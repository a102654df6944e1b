//! The panel's websocket protocol, one version at a time ([`VERSION`]). Everything a browser and
//! the server say to each other over `/api/v1/panel/ws` is defined here and nowhere else.
//!
//! Connecting: `GET /api/v1/panel/ws?v=1[&from=P&epoch=E]`, with the session cookie and the
//! page's own `Origin`. Without `from` (or when `from`/`epoch` cannot be continued) the first
//! frame is a `snapshot` of everything the viewer may see, with the log position it reflects
//! and the log's `epoch` (the id of its first event: a position only means something within one
//! log). With a `from` the server can continue, it first sends one `delta` from exactly that
//! position: no gap, no duplicate.
//!
//! Every server frame is a JSON object with `seq` (1, 2, 3, … per connection, no gaps; a gap
//! means a frame was lost and the client must reconnect with its position) and `type`:
//! - `snapshot` — `position`, `epoch`, `snapshot` (cards, departments, presence states), `me`
//!   (the viewer's own card), `pinned` (user ids, in order), `stats`, `now`;
//! - `delta` — `from`, `to` (positions) and `delta`: cards to replace, cards and departments to
//!   remove, the presence-state list if it changed. A client applies it only if `from` is its
//!   position, then takes `to`;
//! - `me` — the viewer's own card changed (it may be outside the granted departments);
//! - `pinned` — the viewer's watch list changed (another tab, or an action);
//! - `stats` — the calls-per-minute graph (60 bars) changed;
//! - `heartbeat` — every few seconds, with `position` (nothing the viewer may see changed up to
//!   there: the client moves its position on) and the server's `now`;
//! - `result` — the answer to a client action, by its `id`;
//! - `closing` — the reason, right before the server closes the socket.
//!
//! Client frames are actions, each with an `id` the `result` echoes: `set_presence`, `set_dnd`,
//! `pin` (optionally `before` another card; else at the end), `unpin`, `move`, `call`.
//!
//! Close codes: 4001 signed out, 4003 access revoked, 4008 too slow (the per-connection queue
//! overflowed: reconnect with the last position), 4009 protocol error (a binary frame), 4010 no
//! answer to the server's pings for 30 s, 1001 server going away.

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::ids::UserId;
use projections::panel::{PanelSnapshot, UserCard};
use projections::rate::MinuteCount;
use serde::{Deserialize, Serialize};

/// The protocol version this server speaks.
pub(crate) const VERSION: u32 = 1;

/// The websocket URL's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Connect {
    /// Protocol version the client speaks (absent: the current one).
    pub(crate) v: Option<u32>,
    /// The last position the client has (from a snapshot, delta or heartbeat).
    pub(crate) from: Option<u64>,
    /// The epoch of the snapshot that position belongs to.
    pub(crate) epoch: Option<String>,
}

/// A frame from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ClientFrame {
    SetPresence {
        id: u64,
        state: String,
        #[serde(default)]
        message: Option<String>,
    },
    SetDnd {
        id: u64,
        enabled: bool,
    },
    Pin {
        id: u64,
        user: String,
        #[serde(default)]
        before: Option<String>,
    },
    Unpin {
        id: u64,
        user: String,
    },
    Move {
        id: u64,
        user: String,
        #[serde(default)]
        before: Option<String>,
    },
    Call {
        id: u64,
        to: String,
    },
}

impl ClientFrame {
    pub(crate) fn id(&self) -> u64 {
        match self {
            ClientFrame::SetPresence { id, .. }
            | ClientFrame::SetDnd { id, .. }
            | ClientFrame::Pin { id, .. }
            | ClientFrame::Unpin { id, .. }
            | ClientFrame::Move { id, .. }
            | ClientFrame::Call { id, .. } => *id,
        }
    }
}

/// The calls-per-minute graph: 60 bars, the last ending at `now`'s minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Stats {
    pub(crate) calls_per_minute: Vec<MinuteCount>,
}

/// An error answer, over HTTP and in a `result` frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorBody {
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

/// A frame to the browser, without its `seq` (the connection's writer adds it).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerFrame<'a> {
    Snapshot {
        v: u32,
        epoch: &'a str,
        position: GlobalPosition,
        now: DateTime<Utc>,
        snapshot: &'a PanelSnapshot,
        me: Option<&'a UserCard>,
        pinned: &'a [UserId],
        stats: &'a Stats,
    },
    Me {
        card: &'a UserCard,
    },
    Pinned {
        cards: &'a [UserId],
    },
    Stats {
        stats: &'a Stats,
    },
    Heartbeat {
        position: GlobalPosition,
        now: DateTime<Utc>,
    },
    Result {
        id: u64,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a ErrorBody>,
    },
    Closing {
        code: u16,
        reason: &'a str,
    },
}

impl ServerFrame<'_> {
    /// The frame as a JSON object (its `seq` is added when it is sent).
    pub(crate) fn to_json(&self) -> String {
        // Plain data with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }
}

/// A `delta` frame from `from` to `to` around an already serialised `PanelDelta` body (shared
/// by every viewer of the same departments).
pub(crate) fn delta_json(from: GlobalPosition, to: GlobalPosition, delta: &str) -> String {
    format!(
        "{{\"type\":\"delta\",\"from\":{},\"to\":{},\"delta\":{delta}}}",
        from.0, to.0
    )
}

/// Prefixes a frame object with its sequence number: `{"seq":7,"type":…}`.
pub(crate) fn with_seq(seq: u64, frame: &str) -> String {
    match frame.strip_prefix('{') {
        Some(rest) if rest.trim_start().starts_with('}') => format!("{{\"seq\":{seq}}}"),
        Some(rest) => format!("{{\"seq\":{seq},{rest}"),
        None => format!("{{\"seq\":{seq}}}"),
    }
}

/// Why the server closes a connection, with its close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseWhy {
    SignedOut,
    AccessRevoked,
    TooSlow,
    Protocol,
    Timeout,
    ServerShutdown,
}

impl CloseWhy {
    pub(crate) fn code(self) -> u16 {
        match self {
            CloseWhy::SignedOut => 4001,
            CloseWhy::AccessRevoked => 4003,
            CloseWhy::TooSlow => 4008,
            CloseWhy::Protocol => 4009,
            CloseWhy::Timeout => 4010,
            CloseWhy::ServerShutdown => 1001,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            CloseWhy::SignedOut => "signed out",
            CloseWhy::AccessRevoked => "call panel access revoked",
            CloseWhy::TooSlow => "too slow: reconnect with your last position",
            CloseWhy::Protocol => "protocol error",
            CloseWhy::Timeout => "no heartbeat answer",
            CloseWhy::ServerShutdown => "server shutting down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_with_their_ids() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"pin","id":4,"user":"1006","before":null}"#).unwrap();
        assert_eq!(
            f,
            ClientFrame::Pin {
                id: 4,
                user: "1006".into(),
                before: None
            }
        );
        assert_eq!(f.id(), 4);
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"set_presence","id":9,"state":"lunch"}"#).unwrap();
        assert_eq!(f.id(), 9);
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"drop_tables","id":1}"#).is_err());
    }

    #[test]
    fn seq_is_the_first_field_of_every_frame() {
        let frame = ServerFrame::Heartbeat {
            position: GlobalPosition(12),
            now: DateTime::UNIX_EPOCH,
        }
        .to_json();
        let sent = with_seq(3, &frame);
        assert!(
            sent.starts_with("{\"seq\":3,\"type\":\"heartbeat\""),
            "{sent}"
        );
        let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(v["position"], 12);
        assert_eq!(with_seq(1, "{}"), "{\"seq\":1}");
        let d = delta_json(GlobalPosition(5), GlobalPosition(9), "{\"users\":[]}");
        let v: serde_json::Value = serde_json::from_str(&with_seq(2, &d)).unwrap();
        assert_eq!((v["seq"].as_u64(), v["from"].as_u64()), (Some(2), Some(5)));
        assert_eq!(v["to"], 9);
    }
}
