//! What can be asked of an extension. Commands carry everything `decide` needs that lives
//! elsewhere (the chosen presence state's type and the user's presence rules come from the
//! directory; new contact ids from the caller's id generator), so deciding stays pure.

use events::ids::{CallId, DepartmentId, DeviceContactId, ExtensionNumber, PhoneNumber, UserId};
use events::model::{
    ExtensionCallState, ForwardKind, PresenceRule, PresenceSource, PresenceStateType,
    SettingSource, Transport, UnregisterReason,
};

use super::state::FollowMe;

/// A command to one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionCommand {
    /// Bring the extension into service for a directory user.
    Provision {
        extension: ExtensionNumber,
        user: UserId,
        display_name: String,
        department: DepartmentId,
    },
    /// Take it out of service; its registrations are dropped.
    Retire,
    /// A REGISTER with digest authentication already accepted by the SIP edge. An expiry of 0
    /// removes the binding. The binding is identified by its contact URI: registering a URI that
    /// is already bound refreshes that binding and ignores `contact.contact`.
    Register(RegisterContact),
    /// Remove one contact before it expires.
    Unregister {
        contact: DeviceContactId,
        reason: UnregisterReason,
    },
    /// Remove every contact (`Contact: *` with expiry 0, or an administrator).
    UnregisterAll { reason: UnregisterReason },
    /// WebSocket connections closed: every binding registered over a WebSocket (`WS` or `WSS`)
    /// from `source` (every one, when `None`: the server restarted, and no websocket outlives
    /// it) is unregistered with reason `ConnectionLost`. A browser accepts no connection, so
    /// nothing else reaches it (RFC 7118 §5). No such binding, no event.
    WebSocketsClosed { source: Option<String> },
    /// The registration-expiry deadline of `contact` passed (fed back by the shell).
    ExpireRegistration { contact: DeviceContactId },
    /// The user (or someone for them) chose an entry of the presence-state list.
    SetPresence {
        choice: PresenceChoice,
        message: Option<String>,
        source: PresenceSource,
        by: Option<UserId>,
        /// The user's automatic actions per state type (directory `UserSettings`).
        rules: Vec<PresenceRule>,
    },
    /// The user logged in to the panel; `on_login` is their "on login set status to" choice.
    PanelLogin {
        on_login: Option<PresenceChoice>,
        rules: Vec<PresenceRule>,
    },
    /// The user logged out of the panel or closed the browser.
    PanelLogout {
        on_logout: Option<PresenceChoice>,
        rules: Vec<PresenceRule>,
    },
    SetDnd {
        enabled: bool,
        source: SettingSource,
        by: Option<UserId>,
    },
    /// Sets (`destination` present) or clears one kind of call forward. `ring_ms` is only for
    /// `no_answer`.
    SetCallForward {
        kind: ForwardKind,
        destination: Option<PhoneNumber>,
        ring_ms: Option<u64>,
        source: SettingSource,
        by: Option<UserId>,
    },
    /// Replaces the follow-me settings as a whole.
    SetFollowMe {
        settings: FollowMe,
        source: SettingSource,
        by: Option<UserId>,
    },
    SetCallWaiting {
        enabled: bool,
        source: SettingSource,
        by: Option<UserId>,
    },
    /// The call side reports the extension's part in `call` changed.
    CallLegStateObserved {
        call: CallId,
        state: ExtensionCallState,
    },
}

/// An entry of the directory's presence-state list, with its type copied along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChoice {
    pub state: events::ids::PresenceStateId,
    pub state_type: PresenceStateType,
}

/// The contents of an accepted REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterContact {
    /// The id the binding gets if it is new.
    pub contact: DeviceContactId,
    pub contact_uri: String,
    pub transport: Transport,
    /// `ip:port` the REGISTER came from.
    pub source: String,
    pub user_agent: Option<String>,
    /// The expiry granted; 0 unregisters.
    pub expires_secs: u32,
}
