//! Call events: the life of one call (Asterisk's linkedid) and its legs (one per channel: the
//! caller, each forked callee contact, a supervisor listening in). Creation with direction and
//! identities, ringing, early media, answer, hold, DTMF, bridges, transfers, park, pickup,
//! forwarding, recording, listening (spy) sessions, and the end of each leg and of the call with
//! its cause and disposition. One stream per call (`call-<uuid>`); a CDR per leg folds from it
//! alone, because parties are recorded as they were at the time.
//!
//! Durations are integer milliseconds. SIP appears only as a status code number.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{Direction, Disposition, HangupCause, Party};
use crate::ids::{
    BridgeId, CallId, DeviceContactId, ExtensionNumber, LegId, ListenSessionId, PhoneNumber,
    RecordingId, TrunkId, UserId,
};

event_enum! {
    /// Facts about one call. Variants are never renamed or removed; add a new one.
    pub enum CallEvent in Call {
        /// A call began: the first event of its stream.
        CallCreated = "CallCreated" {
            call: CallId,
            direction: Direction,
            /// Who is calling, as presented (and resolved, when internal).
            caller: Party,
            /// Who was called, as resolved from the dialled number.
            callee: Party,
            /// The number as dialled (Asterisk's DNID).
            dialled: PhoneNumber,
            origin: CallOrigin,
            /// The trunk the call arrived on or leaves through.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            trunk: Option<TrunkId>,
            /// Who asked for it when the engine placed it (click-to-call, conference invite).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            requested_by: Option<UserId>,
        },
        /// A leg (channel) of the call was created: the caller's, or an outgoing one.
        LegCreated = "LegCreated" {
            call: CallId,
            leg: LegId,
            role: LegRole,
            /// Who is on this leg.
            party: Party,
            /// The registered contact this leg rings, when it is one of our devices.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            contact: Option<DeviceContactId>,
            /// The leg this one was created for (the caller's leg, for each forked callee leg).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            parent: Option<LegId>,
            /// For a rung leg: how long it may ring before the engine gives up, counted from
            /// when this event happened (its `occurred_at`). The legs rung together carry the
            /// same timeout; the ring deadline of a call rebuilt from its stream comes from it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            ring_timeout_ms: Option<u64>,
            /// With `ring_timeout_ms`: the callee's mailbox the waiting leg goes to when nobody
            /// answers in time.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            voicemail: Option<ExtensionNumber>,
        },
        /// The leg's device is alerting (SIP 180).
        LegRinging = "LegRinging" {
            call: CallId,
            leg: LegId,
        },
        /// The leg sent early media (SIP 183 with SDP): announcements or remote ring-back.
        LegEarlyMedia = "LegEarlyMedia" {
            call: CallId,
            leg: LegId,
        },
        /// A leg was answered.
        CallAnswered = "CallAnswered" {
            call: CallId,
            leg: LegId,
            /// The contact that answered, when the leg forked to several.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            contact: Option<DeviceContactId>,
        },
        /// `leg`'s party put the call on hold; the others hear music.
        CallHeld = "CallHeld" {
            call: CallId,
            leg: LegId,
        },
        /// `leg`'s party took the call off hold.
        CallResumed = "CallResumed" {
            call: CallId,
            leg: LegId,
        },
        /// A DTMF digit was received on a leg.
        DtmfReceived = "DtmfReceived" {
            call: CallId,
            leg: LegId,
            /// `0`-`9`, `*`, `#`, `A`-`D`.
            digit: char,
            duration_ms: u64,
        },
        /// The identity shown for a leg's party changed (connected line, e.g. after a
        /// transfer).
        LegPartyUpdated = "LegPartyUpdated" {
            call: CallId,
            leg: LegId,
            party: Party,
        },
        /// A leg joined a bridge: its media is mixed with the other legs there.
        BridgeEntered = "BridgeEntered" {
            call: CallId,
            bridge: BridgeId,
            leg: LegId,
        },
        BridgeLeft = "BridgeLeft" {
            call: CallId,
            bridge: BridgeId,
            leg: LegId,
        },
        /// The legs of bridge `from` moved into bridge `into` (attended transfer).
        BridgesMerged = "BridgesMerged" {
            call: CallId,
            from: BridgeId,
            into: BridgeId,
            /// The call `from` belonged to, when it was another call.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            from_call: Option<CallId>,
        },
        /// The transferer sent the transferee to `target` without consulting.
        BlindTransferred = "BlindTransferred" {
            call: CallId,
            /// The leg of the party who transferred.
            transferer_leg: LegId,
            /// The leg being transferred (usually the original caller's).
            transferee_leg: LegId,
            target: PhoneNumber,
            method: TransferMethod,
            /// The call's original caller, for CDRs and queue statistics after the transfer.
            original_caller: Party,
        },
        /// The transferer consulted `target` on a second call, then joined transferee and target.
        AttendedTransferred = "AttendedTransferred" {
            call: CallId,
            transferer_leg: LegId,
            transferee_leg: LegId,
            /// The consultation call, whose target leg now belongs to this call.
            consult_call: CallId,
            target_leg: LegId,
            target: Party,
            method: TransferMethod,
            original_caller: Party,
        },
        /// A leg was parked in a slot; anyone may retrieve it by dialling the slot.
        CallParked = "CallParked" {
            call: CallId,
            leg: LegId,
            slot: PhoneNumber,
            /// When it rings back if nobody retrieves it.
            timeout_at: DateTime<Utc>,
            /// The leg of the party who parked it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            parked_by: Option<LegId>,
        },
        CallUnparked = "CallUnparked" {
            call: CallId,
            leg: LegId,
            slot: PhoneNumber,
            /// The retrieving leg and who is on it.
            retrieved_by_leg: LegId,
            retrieved_by: Party,
        },
        /// Nobody retrieved the parked leg in time.
        ParkTimedOut = "ParkTimedOut" {
            call: CallId,
            leg: LegId,
            slot: PhoneNumber,
            /// Where it rings back.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            return_to: Option<PhoneNumber>,
        },
        /// Another extension took a ringing leg.
        CallPickedUp = "CallPickedUp" {
            call: CallId,
            /// The leg that was ringing (it ends with cause `picked_off`).
            ringing_leg: LegId,
            /// The picker's leg, which replaces it.
            picker_leg: LegId,
            picked_by: Party,
            kind: PickupKind,
        },
        /// A leg was redirected by the callee's routing policy.
        CallForwarded = "CallForwarded" {
            call: CallId,
            leg: LegId,
            from: ExtensionNumber,
            to: PhoneNumber,
            reason: ForwardReason,
        },
        /// A leg was sent to a voicemail box.
        CallSentToVoicemail = "CallSentToVoicemail" {
            call: CallId,
            leg: LegId,
            mailbox: ExtensionNumber,
            reason: VoicemailReason,
            /// Who clicked "send to voicemail", for `requested`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// Two legs that only relayed media between each other (a local hop through a
        /// follow-me or queue leg) were removed and their outer legs bridged directly.
        LocalOptimized = "LocalOptimized" {
            call: CallId,
            removed_legs: Vec<LegId>,
            /// The outer legs, now bridged directly.
            joined_legs: Vec<LegId>,
        },
        CallRecordingStarted = "CallRecordingStarted" {
            call: CallId,
            recording: RecordingId,
            /// The recorded leg; absent: the whole call.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            leg: Option<LegId>,
            trigger: RecordingTrigger,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The recording is running but writing silence (e.g. while a card number is read out).
        CallRecordingMuted = "CallRecordingMuted" {
            call: CallId,
            recording: RecordingId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        CallRecordingUnmuted = "CallRecordingUnmuted" {
            call: CallId,
            recording: RecordingId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        CallRecordingStopped = "CallRecordingStopped" {
            call: CallId,
            recording: RecordingId,
            duration_ms: u64,
            size_bytes: u64,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// A supervisor started listening to a leg. Every session is audited by these events.
        ListenStarted = "ListenStarted" {
            call: CallId,
            session: ListenSessionId,
            supervisor: UserId,
            /// The supervisor's own leg (browser or phone).
            supervisor_leg: LegId,
            target_leg: LegId,
            /// Who is being listened to.
            target: Party,
            mode: ListenMode,
            via: ListenVia,
        },
        ListenModeChanged = "ListenModeChanged" {
            call: CallId,
            session: ListenSessionId,
            mode: ListenMode,
            previous: ListenMode,
        },
        /// The listening ended; the call itself goes on unless it was what ended.
        ListenStopped = "ListenStopped" {
            call: CallId,
            session: ListenSessionId,
            reason: ListenEndReason,
            duration_ms: u64,
        },
        /// A leg ended: the CDR line of that leg.
        LegEnded = "LegEnded" {
            call: CallId,
            leg: LegId,
            cause: HangupCause,
            disposition: Disposition,
            /// Which side ended the leg.
            ended_by: HangupSide,
            /// The final SIP status, when a SIP response ended it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            sip_status: Option<u16>,
            /// From creation to end.
            duration_ms: u64,
            /// From answer to end; 0 if never answered.
            billable_ms: u64,
        },
        /// The call's last leg ended: the last event of its stream.
        CallEnded = "CallEnded" {
            call: CallId,
            cause: HangupCause,
            disposition: Disposition,
            duration_ms: u64,
            /// Time with at least two legs answered and bridged.
            talk_ms: u64,
        },
    }
}

/// How a call came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOrigin {
    /// One of our devices (desk phone or softphone) sent an INVITE.
    Device,
    /// A trunk delivered it.
    Trunk,
    /// A panel user clicked a card; the engine rang them first.
    ClickToCall,
    /// The engine called someone into a conference.
    ConferenceInvite,
    /// A supervisor's listening session.
    Listen,
    Api,
}

/// What a leg is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegRole {
    Caller,
    Callee,
    /// A follow-me or forward leg to another number on the callee's behalf.
    Forward,
    /// A queue agent being offered the call.
    Agent,
    /// A supervisor listening in.
    Supervisor,
}

/// How a transfer was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMethod {
    /// SIP REFER from the phone.
    SipRefer,
    /// An in-call DTMF feature code.
    FeatureCode,
    /// The call panel or the browser softphone.
    Panel,
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PickupKind {
    /// A named extension's call.
    Directed,
    /// Any ringing call of the picker's pickup group.
    Group,
}

/// Which routing rule forwarded a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardReason {
    Unconditional,
    Busy,
    NoAnswer,
    FollowMe,
}

/// Why a call went to voicemail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailReason {
    /// The callee was busy (or DND, or call waiting off).
    Busy,
    /// Nobody answered, or nothing is registered.
    Unavailable,
    /// Someone sent it there on purpose ("send to voicemail", dialled the box).
    Requested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingTrigger {
    /// Tenant or queue policy records every such call.
    Policy,
    /// A user asked for it.
    OnDemand,
}

/// What a listening supervisor hears and who hears them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenMode {
    /// Hears both sides, is heard by nobody.
    Listen,
    /// Hears both sides, is heard by the target only.
    Whisper,
    /// Hears and is heard by everyone.
    Barge,
}

/// Where the supervisor listens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenVia {
    /// The call panel, over WebRTC.
    Browser,
    /// The supervisor's phone.
    Phone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenEndReason {
    /// The supervisor pressed "Hangup" (which ends only the listening).
    SupervisorHungUp,
    /// The target leg or the call ended.
    CallEnded,
    /// The supervisor lost the right to watch the target's department.
    AccessRevoked,
    /// The supervisor's media failed.
    Failed,
}

/// Which side ended a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupSide {
    /// The leg's own party (BYE or CANCEL from its device, a rejection).
    Party,
    /// The other side of the call hung up, so the engine ended this leg.
    Peer,
    /// The engine decided (timeout, transfer, pickup, supervisor or API request, shutdown).
    Engine,
}
