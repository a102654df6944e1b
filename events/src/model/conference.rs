//! Conference events: a room's configuration (extension, PIN, capacity, personal owner), each
//! run of it from start to end, its members (join, leave, mute, kick, talking), lock, recording
//! and invitations. One stream per room (`conference-<tenant>.<conference>`). Members are
//! identified by their call leg, which is unique per join.

use serde::{Deserialize, Serialize};

use super::values::Party;
use crate::ids::{CallId, ConferenceId, ExtensionNumber, LegId, RecordingId, UserId};

event_enum! {
    /// Facts about one conference room. Variants are never renamed or removed; add a new one.
    pub enum ConferenceEvent in Conference {
        /// The room was created or its settings changed; the event holds all of them.
        ConferenceConfigured = "ConferenceConfigured" {
            conference: ConferenceId,
            name: String,
            extension: ExtensionNumber,
            /// Numeric access code callers must enter. It is shown on the room's card to the
            /// users who may see the room, so it is stored; it is not a personal credential.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pin: Option<String>,
            max_members: u32,
            /// The user whose personal room this is.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            owner: Option<UserId>,
            /// Record every run of the room.
            record: bool,
        },
        ConferenceDeleted = "ConferenceDeleted" {
            conference: ConferenceId,
        },
        /// The first member joined an empty room.
        ConferenceStarted = "ConferenceStarted" {
            conference: ConferenceId,
        },
        ConferenceMemberJoined = "ConferenceMemberJoined" {
            conference: ConferenceId,
            call: CallId,
            leg: LegId,
            party: Party,
            /// May mute, unmute and kick others from the phone.
            moderator: bool,
            /// Joined muted.
            muted: bool,
        },
        ConferenceMemberLeft = "ConferenceMemberLeft" {
            conference: ConferenceId,
            leg: LegId,
            reason: MemberLeftReason,
            /// Time in the room.
            duration_ms: u64,
        },
        ConferenceMemberMuted = "ConferenceMemberMuted" {
            conference: ConferenceId,
            leg: LegId,
            /// Who muted the member; absent: the member themself.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        ConferenceMemberUnmuted = "ConferenceMemberUnmuted" {
            conference: ConferenceId,
            leg: LegId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// A member was removed by someone else; `ConferenceMemberLeft` (`kicked`) follows.
        ConferenceMemberKicked = "ConferenceMemberKicked" {
            conference: ConferenceId,
            leg: LegId,
            by: UserId,
        },
        /// The member started speaking (voice activity held for a debounce interval).
        ConferenceMemberTalkingStarted = "ConferenceMemberTalkingStarted" {
            conference: ConferenceId,
            leg: LegId,
        },
        ConferenceMemberTalkingStopped = "ConferenceMemberTalkingStopped" {
            conference: ConferenceId,
            leg: LegId,
            /// Length of the stretch of speech that ended.
            talked_ms: u64,
        },
        /// Nobody else may join until unlocked.
        ConferenceLocked = "ConferenceLocked" {
            conference: ConferenceId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        ConferenceUnlocked = "ConferenceUnlocked" {
            conference: ConferenceId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        ConferenceRecordingStarted = "ConferenceRecordingStarted" {
            conference: ConferenceId,
            recording: RecordingId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        ConferenceRecordingStopped = "ConferenceRecordingStopped" {
            conference: ConferenceId,
            recording: RecordingId,
            duration_ms: u64,
            size_bytes: u64,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The last member left; the run is over.
        ConferenceEnded = "ConferenceEnded" {
            conference: ConferenceId,
            duration_ms: u64,
            /// Most members present at once during the run.
            peak_members: u32,
        },
        /// The engine is calling someone into the room on a user's request.
        ConferenceInviteSent = "ConferenceInviteSent" {
            conference: ConferenceId,
            invitee: Party,
            by: UserId,
            /// The outgoing call that rings the invitee.
            call: CallId,
        },
    }
}

/// Why a member left a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberLeftReason {
    HungUp,
    Kicked,
    /// The room was deleted or the engine ended the run.
    ConferenceClosed,
}
