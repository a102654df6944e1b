//! What can be asked of a call, and why it may be refused. Commands are shaped after what a
//! B2BUA hears on either side (INVITE, 18x, 200, re-INVITE, REFER, CANCEL, BYE, final failure
//! responses) plus the engine's own timer and the panel's listening and recording actions. They
//! carry everything the call needs to know from other aggregates (the callee's contacts, the ring
//! timeout, whether a voicemail box exists, the parties as the directory has them) and every new
//! id an outcome needs; nothing here looks anything up.

use chrono::{DateTime, TimeDelta, Utc};
use events::ids::{
    CallId, DeviceContactId, ExtensionNumber, LegId, ListenSessionId, PhoneNumber, RecordingId,
    TrunkId, UserId,
};
use events::model::{
    CallOrigin, Direction, HangupCause, LegRole, ListenEndReason, ListenMode, ListenVia, Party,
    RecordingTrigger, TransferMethod,
};

/// One thing asked of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallCommand {
    /// An INVITE arrived (or the engine placed a call): creates the call and the caller's leg.
    /// A repeat with the same call and caller leg is a retransmission and changes nothing.
    Offer {
        call: CallId,
        caller_leg: LegId,
        direction: Direction,
        caller: Party,
        callee: Party,
        dialled: PhoneNumber,
        origin: CallOrigin,
        /// The caller's registered contact, when the caller is one of our devices.
        caller_contact: Option<DeviceContactId>,
        trunk: Option<TrunkId>,
        requested_by: Option<UserId>,
    },
    /// Ring every registered contact of the callee for `parent` (the caller's leg, or the
    /// transferee's after a blind transfer): one leg per contact, forking. Arms the ring timeout.
    Ring {
        parent: LegId,
        callee: Party,
        role: LegRole,
        contacts: Vec<RingContact>,
        ring_timeout: TimeDelta,
        /// The callee's mailbox, when they have one: where a ring timeout sends `parent`.
        voicemail: Option<ExtensionNumber>,
    },
    /// 180 from a callee leg's device.
    Ringing { leg: LegId },
    /// 183 with SDP: early media on a leg.
    EarlyMedia { leg: LegId },
    /// 200 OK from a callee leg's device. Its forked siblings are cancelled and the waiting leg
    /// (the caller's) is answered by the engine. A retransmitted 200 changes nothing.
    Answer { leg: LegId },
    /// A final failure response (4xx, 5xx, 6xx) from a callee leg's device. A 6xx ends every
    /// other branch too (RFC 3261 §16.7); the waiting leg ends when no branch is left.
    Reject { leg: LegId, status: u16 },
    /// BYE from an answered leg's party, or CANCEL from the caller before an answer. The peer
    /// legs are ended by the engine. A repeat for an ended leg changes nothing.
    HangUp {
        leg: LegId,
        /// A cause the party gave (a `Reason` header); by default normal clearing, or the
        /// originator cancelling before an answer.
        cause: Option<HangupCause>,
    },
    /// The engine ends the whole call: a routing failure before anything rang (486 for DND, 480
    /// with nothing registered, 404), a manager request, shutdown, or the consultation call of a
    /// completed attended transfer (cause `Transferred`).
    Terminate {
        cause: HangupCause,
        sip_status: Option<u16>,
    },
    /// The ring timeout armed by `Ring` passed: fed back from `Call::deadlines`.
    RingTimeout { deadline: DateTime<Utc> },
    /// re-INVITE with `sendonly`/`inactive` from `leg`'s party.
    Hold { leg: LegId },
    /// re-INVITE with `sendrecv` from `leg`'s party.
    Resume { leg: LegId },
    /// REFER without `Replaces` (or a feature code, or the panel): `transferer_leg`'s peer goes
    /// to `target`, which the engine then rings with `Ring { parent: <peer> }`.
    BlindTransfer {
        transferer_leg: LegId,
        target: PhoneNumber,
        method: TransferMethod,
    },
    /// REFER with `Replaces` naming the consultation dialog: `transferer_leg`'s peer is joined
    /// with `target_leg` of the consultation call, which is ended on its own stream with
    /// `Terminate { cause: Transferred }`.
    AttendedTransfer {
        transferer_leg: LegId,
        consult_call: CallId,
        target_leg: LegId,
        target: Party,
        method: TransferMethod,
    },
    /// A supervisor starts listening to an answered leg from `supervisor_leg` (their own call
    /// with origin `Listen`, or their browser). A repeat of the same session changes nothing.
    StartListening {
        session: ListenSessionId,
        supervisor: UserId,
        supervisor_leg: LegId,
        target_leg: LegId,
        mode: ListenMode,
        via: ListenVia,
    },
    ChangeListenMode {
        session: ListenSessionId,
        mode: ListenMode,
    },
    /// Ends a listening session only; the call goes on.
    StopListening {
        session: ListenSessionId,
        reason: ListenEndReason,
    },
    /// Records one leg, or the whole call when `leg` is `None`.
    StartRecording {
        recording: RecordingId,
        leg: Option<LegId>,
        trigger: RecordingTrigger,
        by: Option<UserId>,
    },
    StopRecording {
        recording: RecordingId,
        /// As the media layer wrote it.
        size_bytes: u64,
        by: Option<UserId>,
    },
}

/// One registered contact to ring, with the id of the leg that rings it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingContact {
    pub leg: LegId,
    pub contact: Option<DeviceContactId>,
}

/// Why a command makes no sense for the call as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallRejection {
    #[error("no such call: nothing was offered yet")]
    NotOffered,
    #[error("call {0} already exists with other legs")]
    AlreadyOffered(CallId),
    #[error("the call has ended")]
    CallEnded,
    #[error("leg {0} is not part of this call")]
    UnknownLeg(LegId),
    #[error("leg {0} already exists")]
    DuplicateLeg(LegId),
    #[error("leg {0} has ended")]
    LegEnded(LegId),
    #[error("leg {0} lost the race: another contact answered first")]
    AnsweredElsewhere(LegId),
    #[error("leg {0} is not answered")]
    NotAnswered(LegId),
    #[error("leg {0} was answered; a final failure response no longer applies")]
    AlreadyAnswered(LegId),
    #[error("leg {0} is the caller's: it is answered by the engine, not by a response")]
    CallerLeg(LegId),
    #[error("nothing to ring: no contacts given")]
    NoContacts,
    #[error("a rung leg cannot have the role {0:?}")]
    InvalidRole(LegRole),
    #[error("leg {0} is already bridged to an answered peer")]
    AlreadyBridged(LegId),
    #[error("sip status {0} is not a final failure response (400-699)")]
    NotAFailureStatus(u16),
    #[error("leg {0} has no answered peer to transfer")]
    NoPeer(LegId),
    #[error("leg {0} belongs to this call already; an attended transfer joins a leg of another")]
    TargetInCall(LegId),
    #[error("listening session {0} already exists for another target")]
    ListenConflict(ListenSessionId),
    #[error("no listening session {0} on this call")]
    UnknownListen(ListenSessionId),
    #[error("listening session {0} has stopped")]
    ListenStopped(ListenSessionId),
    #[error("recording {0} is already running")]
    RecordingRunning(RecordingId),
    #[error("no running recording {0} on this call")]
    UnknownRecording(RecordingId),
    #[error("nothing is answered yet: there is no media to record")]
    NothingToRecord,
}
