//! Call-panel events: one user's persisted watch list (cards pinned at an index, unpinned,
//! moved) and the life of each browser connection (opened, resynced, closed) with the log
//! positions it saw, so a reconnect is provably gap-free and the audit shows who watched when.
//! One stream per user (`panel-<tenant>.<user>`).
//!
//! What a panel *shows* is a projection of the other aggregates; only what the user chose and
//! the connections themselves are facts of this one.

use serde::{Deserialize, Serialize};

use crate::ids::{ConferenceId, PanelSessionId, QueueId, UserId};
use crate::log::GlobalPosition;

event_enum! {
    /// Facts about one user's call panel. Variants are never renamed or removed; add a new one.
    pub enum PanelEvent in Panel {
        /// A card was added to the watch list at `index`; later cards move down by one.
        PanelCardPinned = "PanelCardPinned" {
            user: UserId,
            card: PanelCard,
            /// Zero-based place in the list.
            index: u32,
        },
        PanelCardUnpinned = "PanelCardUnpinned" {
            user: UserId,
            card: PanelCard,
        },
        /// A card was dragged from `from` to `to` (zero-based, `to` counted after removal).
        PanelCardMoved = "PanelCardMoved" {
            user: UserId,
            card: PanelCard,
            from: u32,
            to: u32,
        },
        /// A browser connected to the panel (the websocket was authenticated).
        PanelSessionOpened = "PanelSessionOpened" {
            user: UserId,
            session: PanelSessionId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            user_agent: Option<String>,
            /// Client address, `ip:port`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            remote_addr: Option<String>,
        },
        /// The session was brought up to date after a (re)connect.
        PanelSessionResynced = "PanelSessionResynced" {
            user: UserId,
            session: PanelSessionId,
            /// The last position the browser said it had; absent on a first connect.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            from: Option<GlobalPosition>,
            /// The position the session is at after the resync.
            to: GlobalPosition,
            mode: ResyncMode,
        },
        PanelSessionClosed = "PanelSessionClosed" {
            user: UserId,
            session: PanelSessionId,
            reason: PanelCloseReason,
            /// The last position delivered to the browser.
            last_position: GlobalPosition,
            duration_ms: u64,
        },
    }
}

/// What a watch-list card shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelCard {
    /// A user and their extension.
    User(UserId),
    Queue(QueueId),
    Conference(ConferenceId),
}

/// How a session was brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResyncMode {
    /// Only the missed deltas were sent.
    Deltas,
    /// A fresh snapshot was sent (first connect, or too far behind).
    Snapshot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelCloseReason {
    /// The user signed out.
    Logout,
    /// The browser or tab was closed (the socket closed cleanly).
    BrowserClosed,
    /// Heartbeats stopped.
    Timeout,
    /// The browser could not keep up and was disconnected; it will resync.
    TooSlow,
    /// The user's panel access was revoked.
    AccessRevoked,
    ServerShutdown,
}
