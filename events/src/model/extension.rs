//! Extension events: one user's line. Device registrations (contact, transport, user agent,
//! expiry), the line and device state derived from registrations and calls, the presence the
//! user shows, and the routing policy that decides whether and where the extension rings (DND,
//! call forward, follow-me, call waiting). One stream per extension
//! (`extension-<tenant>.<number>`), so presence, device state and routing are decided by one
//! actor and can never disagree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{
    DeviceState, LineState, PresenceSource, PresenceStateType, SettingSource, Transport,
};
use crate::ids::{
    CallId, DepartmentId, DeviceContactId, ExtensionNumber, PhoneNumber, PresenceStateId, UserId,
};

event_enum! {
    /// Facts about one extension. Variants are never renamed or removed; add a new one.
    pub enum ExtensionEvent in Extension {
        /// The extension came into service for a directory user.
        ExtensionProvisioned = "ExtensionProvisioned" {
            extension: ExtensionNumber,
            user: UserId,
            display_name: String,
            department: DepartmentId,
        },
        /// The extension went out of service; its registrations were dropped.
        ExtensionRetired = "ExtensionRetired" {
            extension: ExtensionNumber,
        },
        /// A device registered a new contact (REGISTER with digest authentication accepted).
        DeviceRegistered = "DeviceRegistered" {
            extension: ExtensionNumber,
            contact: DeviceContactId,
            /// The contact URI as the device sent it.
            contact_uri: String,
            transport: Transport,
            /// Where the REGISTER came from, `ip:port`.
            source: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            user_agent: Option<String>,
            /// The expiry granted, in seconds.
            expires_secs: u32,
            /// When the registration lapses unless refreshed.
            expires_at: DateTime<Utc>,
        },
        /// A registered contact re-registered before expiring.
        DeviceRegistrationRefreshed = "DeviceRegistrationRefreshed" {
            extension: ExtensionNumber,
            contact: DeviceContactId,
            expires_secs: u32,
            expires_at: DateTime<Utc>,
        },
        DeviceUnregistered = "DeviceUnregistered" {
            extension: ExtensionNumber,
            contact: DeviceContactId,
            reason: UnregisterReason,
        },
        /// A contact was not refreshed in time and was dropped.
        DeviceRegistrationExpired = "DeviceRegistrationExpired" {
            extension: ExtensionNumber,
            contact: DeviceContactId,
        },
        /// The extension's line state changed (the hint: all contacts and calls combined).
        LineStateChanged = "LineStateChanged" {
            extension: ExtensionNumber,
            state: LineState,
            /// The same, in Asterisk device-state terms.
            device_state: DeviceState,
            /// The calls the extension is part of now.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            calls: Vec<CallId>,
        },
        /// The user's presence was set to an entry of the presence-state list.
        ///
        /// Schema version 2: version 1 called `state` `status` and had no `source`.
        PresenceSet = "PresenceSet" version 2 {
            extension: ExtensionNumber,
            user: UserId,
            state: PresenceStateId,
            /// The state's type, copied from the list so the event folds on its own.
            state_type: PresenceStateType,
            /// Free text shown next to the state.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            message: Option<String>,
            source: PresenceSource,
            /// Who set it, when someone other than the user did.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        DoNotDisturbChanged = "DoNotDisturbChanged" {
            extension: ExtensionNumber,
            enabled: bool,
            source: SettingSource,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// One kind of call forward was set or cleared.
        CallForwardChanged = "CallForwardChanged" {
            extension: ExtensionNumber,
            kind: ForwardKind,
            /// Where calls go; absent: this kind of forward is off.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            destination: Option<PhoneNumber>,
            /// For `no_answer`: how long the extension rings before forwarding.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            ring_ms: Option<u64>,
            source: SettingSource,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// Follow-me (find me / follow me) settings changed; the event holds all of them.
        FollowMeChanged = "FollowMeChanged" {
            extension: ExtensionNumber,
            enabled: bool,
            /// Numbers rung after the ring-first period, in order of entry.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            numbers: Vec<PhoneNumber>,
            /// The answering party must press 1 to take the call.
            confirm: bool,
            /// Prepended to the caller id name on follow-me legs.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            caller_id_prefix: Option<String>,
            /// How long the extension itself rings before the list is tried.
            ring_first_ms: u64,
            /// How long the whole list rings before voicemail.
            ring_all_ms: u64,
            source: SettingSource,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// Call waiting on: a second call rings while on a call; off: it goes to voicemail.
        CallWaitingChanged = "CallWaitingChanged" {
            extension: ExtensionNumber,
            enabled: bool,
            source: SettingSource,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The extension's part in one call changed, as the call reported it. The line state is
        /// derived from these and the registrations; recording each call's state (not only the
        /// combination `LineStateChanged` shows) lets a rebuilt extension derive it again.
        ExtensionCallObserved = "ExtensionCallObserved" {
            extension: ExtensionNumber,
            call: CallId,
            state: ExtensionCallState,
        },
    }
}

/// The extension's part in one call, as `ExtensionCallObserved` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionCallState {
    /// An incoming call is ringing one or more of the extension's contacts.
    Ringing,
    /// The extension placed a call that has not been answered yet.
    Calling,
    /// The call is answered and the extension is talking.
    Answered,
    /// The extension's side of an answered call is on hold.
    Held,
    /// The extension's part in the call is over.
    Ended,
}

/// Why a contact stopped being registered before it expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnregisterReason {
    /// The device sent REGISTER with expiry 0.
    Requested,
    /// A new registration from the same device instance replaced it.
    Replaced,
    /// An administrator removed it, or the extension was retired.
    Admin,
    /// The connection it was registered over (TCP or WebSocket) closed: nothing can reach the
    /// device through it any more.
    ConnectionLost,
}

/// Which call-forward setting a `CallForwardChanged` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    Unconditional,
    Busy,
    NoAnswer,
}
