//! Value types shared by more than one aggregate's events: call parties, directions, line and
//! device states, presence types, hang-up causes and dispositions, transports, feature flags,
//! attachments. They are plain data (strings, numbers, our ids), never SIP or RTP library types,
//! and every enum serialises as a `snake_case` string. Types used by one aggregate only live in
//! that aggregate's module.

use serde::{Deserialize, Serialize};

use crate::ids::{AttachmentId, DepartmentId, ExtensionNumber, PhoneNumber, TrunkId, UserId};

/// One side of a call as the engine knew it when the event happened: the presented identity
/// and, when the party is one of ours, who it is in the directory. Recorded in full (not looked
/// up later) so that a CDR shows what was true at the time, after renames and moves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// Presented number: caller id for a caller, dialled number for a callee. Absent when
    /// withheld or when the presented value is not dialable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<PhoneNumber>,
    /// Presented display name (caller id name), as received or as our directory has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Our extension, when the party is one of our extensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<ExtensionNumber>,
    /// The directory user behind that extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
    /// The user's department at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<DepartmentId>,
    /// The trunk the party is reached through, when external.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<TrunkId>,
}

impl Party {
    /// One of our users at their extension.
    pub fn internal(
        extension: ExtensionNumber,
        user: UserId,
        department: DepartmentId,
        name: impl Into<String>,
    ) -> Self {
        let number = PhoneNumber::parse(extension.as_str()).ok();
        Self {
            number,
            name: Some(name.into()),
            extension: Some(extension),
            user: Some(user),
            department: Some(department),
            trunk: None,
        }
    }

    /// Someone outside, reached through a trunk.
    pub fn external(number: PhoneNumber, name: Option<String>, trunk: TrunkId) -> Self {
        Self {
            number: Some(number),
            name,
            trunk: Some(trunk),
            ..Self::default()
        }
    }

    /// Whether the party is one of our extensions.
    pub fn is_internal(&self) -> bool {
        self.extension.is_some()
    }
}

/// Which way a call crosses the system boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From a trunk to us.
    Inbound,
    /// From us to a trunk.
    Outbound,
    /// Between our own extensions (and services such as queues and conferences).
    Internal,
}

/// SIP transport a device registered over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), e.g. the browser softphone in development.
    Ws,
    /// SIP over secure WebSocket.
    Wss,
}

impl Transport {
    /// SIP over WebSocket, plain or secure: a browser's flow, gone when its connection closes.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

/// The type of an entry of the administrator's presence-state list (the FreePBX / Asterisk
/// presence types). The list entries themselves (`Be right back`, `Out to lunch`, …) are
/// `PresenceStateId`s defined in the directory; each has one of these types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStateType {
    Available,
    /// Prefers chat to a phone call.
    Chat,
    Away,
    /// "Busy, do not bother me".
    Dnd,
    /// Gone for a long time (Asterisk `xa`).
    ExtendedAway,
    /// Will not show as online.
    Unavailable,
}

/// Who or what set a presence state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceSource {
    /// The user, from the panel, a phone feature code or the softphone.
    User,
    /// An administrator or supervisor on the user's behalf.
    Admin,
    /// The user's "on panel login set status to" setting.
    LoginHook,
    /// The user's "on logout or browser close set status to" setting.
    LogoutHook,
    /// A time schedule.
    Schedule,
    /// An API client.
    Api,
}

/// Who or what changed a routing setting (DND, forwarding, follow-me, call waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingSource {
    /// The user, from the panel, a phone feature code or the softphone.
    User,
    /// An administrator on the user's behalf.
    Admin,
    /// An automatic action of the user's presence rules (e.g. a `dnd` state enables DND).
    PresenceRule,
    /// A time schedule.
    Schedule,
    /// An API client.
    Api,
}

/// An extension's line as the panel shows it, derived from registrations and calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// No registered device.
    Offline,
    /// Registered, no call.
    Idle,
    /// An incoming call is ringing.
    Ringing,
    /// An outgoing call has not been answered yet.
    Calling,
    /// At least one answered call.
    OnCall,
    /// Every answered call is on hold.
    OnHold,
}

/// Device state, mirroring Asterisk's `DEVICE_STATE` values (plus the extension-state
/// `HOLDINUSE`), combined over all of an extension's contacts the way a hint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Unknown,
    NotInUse,
    InUse,
    Busy,
    Invalid,
    Unavailable,
    Ringing,
    /// Ringing while already in use (call waiting).
    RingInUse,
    OnHold,
    /// On hold on one call while in use on another.
    HoldInUse,
}

/// Why a leg or call ended, in Q.850 terms where a Q.850 cause exists, plus the few
/// non-network causes a PBX needs (FreeSWITCH has the same extras).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupCause {
    UnallocatedNumber,
    NoRouteToDestination,
    NormalClearing,
    UserBusy,
    NoUserResponse,
    NoAnswer,
    SubscriberAbsent,
    CallRejected,
    NumberChanged,
    /// A forked leg lost: another contact answered first (Q.850 26, non-selected user clearing).
    AnsweredElsewhere,
    ExchangeRoutingError,
    DestinationOutOfOrder,
    InvalidNumberFormat,
    NormalUnspecified,
    NormalCircuitCongestion,
    NetworkOutOfOrder,
    TemporaryFailure,
    SwitchCongestion,
    BearerCapabilityNotAvailable,
    ServiceUnavailable,
    ServiceNotImplemented,
    IncompatibleDestination,
    RecoveryOnTimerExpiry,
    Interworking,
    /// The caller gave up before the call was answered (SIP CANCEL / 487).
    OriginatorCancel,
    /// Another extension picked the ringing call up.
    PickedOff,
    /// The leg was handed over by a blind or attended transfer.
    Transferred,
    /// No media arrived for too long.
    MediaTimeout,
    /// An authorised user or API ended it (e.g. "send to voicemail", supervisor hang-up).
    ManagerRequest,
    /// The engine was shutting down.
    SystemShutdown,
}

impl HangupCause {
    /// The Q.850 cause code, for causes that have one.
    pub const fn q850(self) -> Option<u16> {
        use HangupCause::*;
        Some(match self {
            UnallocatedNumber => 1,
            NoRouteToDestination => 3,
            NormalClearing => 16,
            UserBusy => 17,
            NoUserResponse => 18,
            NoAnswer => 19,
            SubscriberAbsent => 20,
            CallRejected => 21,
            NumberChanged => 22,
            ExchangeRoutingError => 25,
            AnsweredElsewhere => 26,
            DestinationOutOfOrder => 27,
            InvalidNumberFormat => 28,
            NormalUnspecified => 31,
            NormalCircuitCongestion => 34,
            NetworkOutOfOrder => 38,
            TemporaryFailure => 41,
            SwitchCongestion => 42,
            BearerCapabilityNotAvailable => 58,
            ServiceUnavailable => 63,
            ServiceNotImplemented => 79,
            IncompatibleDestination => 88,
            RecoveryOnTimerExpiry => 102,
            Interworking => 127,
            OriginatorCancel | PickedOff | Transferred | MediaTimeout | ManagerRequest
            | SystemShutdown => return None,
        })
    }

    /// The cause for a final SIP failure response, following RFC 3398 §8.2.6.1 (487 Request
    /// Terminated, which RFC 3398 leaves unmapped, is the caller cancelling).
    pub const fn from_sip_status(status: u16) -> Self {
        use HangupCause::*;
        match status {
            401 | 402 | 403 | 407 | 603 => CallRejected,
            404 | 485 | 604 => UnallocatedNumber,
            405 => ServiceUnavailable,
            406 | 415 | 501 => ServiceNotImplemented,
            408 | 504 => RecoveryOnTimerExpiry,
            410 => NumberChanged,
            480 => NoUserResponse,
            482 | 483 => ExchangeRoutingError,
            484 => InvalidNumberFormat,
            486 | 600 => UserBusy,
            487 => OriginatorCancel,
            488 | 606 => BearerCapabilityNotAvailable,
            502 => NetworkOutOfOrder,
            400 | 481 | 500 | 503 => TemporaryFailure,
            413 | 414 | 416 | 420 | 421 | 423 | 505 | 513 => Interworking,
            200..=299 => NormalClearing,
            _ => NormalUnspecified,
        }
    }
}

/// A leg's or call's outcome, as a CDR states it (Asterisk's dispositions plus `cancelled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Answered,
    NoAnswer,
    Busy,
    Failed,
    /// The caller hung up before an answer.
    Cancelled,
    Congestion,
}

impl Disposition {
    /// The disposition of a leg that ended with `cause`, answered or not.
    pub const fn of(answered: bool, cause: HangupCause) -> Self {
        use HangupCause::*;
        if answered {
            return Disposition::Answered;
        }
        match cause {
            UserBusy => Disposition::Busy,
            NoAnswer | NoUserResponse | AnsweredElsewhere | PickedOff | SubscriberAbsent => {
                Disposition::NoAnswer
            }
            OriginatorCancel => Disposition::Cancelled,
            NormalCircuitCongestion | SwitchCongestion => Disposition::Congestion,
            _ => Disposition::Failed,
        }
    }

    /// The spelling Asterisk CDRs use (`NO ANSWER`, …), for exports that imitate them.
    pub const fn as_cdr_str(self) -> &'static str {
        match self {
            Disposition::Answered => "ANSWERED",
            Disposition::NoAnswer => "NO ANSWER",
            Disposition::Busy => "BUSY",
            Disposition::Failed => "FAILED",
            Disposition::Cancelled => "CANCELLED",
            Disposition::Congestion => "CONGESTION",
        }
    }
}

/// A capability a profile grants its users. Serialised in a sorted set, so a profile's flags
/// always store in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureFlag {
    /// "Ability to use call panel".
    CallPanel,
    /// Listen to live calls of the departments the user may watch.
    ListenToCalls,
    /// Pause and unpause queue agents, watch queue boards.
    SuperviseQueues,
    /// Mute, unmute and kick conference members; invite users.
    ManageConferences,
    /// The browser softphone.
    Softphone,
    Chat,
    /// Send and receive SMS/MMS (also needs an SMS-capable number).
    Sms,
    Voicemail,
    VideoRooms,
    /// Start and stop call recordings on demand.
    RecordCalls,
    /// Read one's call history and recordings.
    CallHistory,
}

/// A file attached to a chat message, an SMS/MMS or a greeting upload. The bytes live in the
/// attachment store under `attachment`; the event keeps what a list shows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    pub attachment: AttachmentId,
    pub file_name: String,
    /// MIME type, e.g. `image/png`.
    pub content_type: String,
    pub size_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_statuses_map_to_q850_causes() {
        assert_eq!(HangupCause::from_sip_status(486), HangupCause::UserBusy);
        assert_eq!(HangupCause::from_sip_status(600), HangupCause::UserBusy);
        assert_eq!(
            HangupCause::from_sip_status(404),
            HangupCause::UnallocatedNumber
        );
        assert_eq!(
            HangupCause::from_sip_status(480),
            HangupCause::NoUserResponse
        );
        assert_eq!(
            HangupCause::from_sip_status(487),
            HangupCause::OriginatorCancel
        );
        assert_eq!(
            HangupCause::from_sip_status(503),
            HangupCause::TemporaryFailure
        );
        assert_eq!(HangupCause::from_sip_status(603), HangupCause::CallRejected);
        assert_eq!(
            HangupCause::from_sip_status(499),
            HangupCause::NormalUnspecified
        );
        assert_eq!(HangupCause::UserBusy.q850(), Some(17));
        assert_eq!(HangupCause::AnsweredElsewhere.q850(), Some(26));
        assert_eq!(HangupCause::OriginatorCancel.q850(), None);
    }

    #[test]
    fn dispositions_follow_the_cause_unless_answered() {
        use HangupCause::*;
        assert_eq!(Disposition::of(true, UserBusy), Disposition::Answered);
        assert_eq!(Disposition::of(false, UserBusy), Disposition::Busy);
        assert_eq!(Disposition::of(false, NoAnswer), Disposition::NoAnswer);
        assert_eq!(
            Disposition::of(false, AnsweredElsewhere),
            Disposition::NoAnswer
        );
        assert_eq!(
            Disposition::of(false, OriginatorCancel),
            Disposition::Cancelled
        );
        assert_eq!(
            Disposition::of(false, SwitchCongestion),
            Disposition::Congestion
        );
        assert_eq!(
            Disposition::of(false, UnallocatedNumber),
            Disposition::Failed
        );
        assert_eq!(Disposition::NoAnswer.as_cdr_str(), "NO ANSWER");
    }

    #[test]
    fn parties_omit_what_is_unknown() {
        let p = Party::external(
            PhoneNumber::parse("+4930123456").unwrap(),
            None,
            TrunkId::parse("sipgate").unwrap(),
        );
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"number":"+4930123456","trunk":"sipgate"}"#
        );
        let back: Party =
            serde_json::from_str(r#"{"number":"+4930123456","trunk":"sipgate"}"#).unwrap();
        assert_eq!(back, p);
        assert!(!p.is_internal());
    }
}
