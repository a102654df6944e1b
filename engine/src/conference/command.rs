//! What can be asked of a conference room: its configuration, members joining and leaving,
//! moderation (mute, kick, lock), invitations, voice activity reported by the media side, and
//! the end-when-empty timer fed back as a command.

use events::ids::{CallId, ConferenceId, ExtensionNumber, LegId, UserId};
use events::model::{ConferenceEvent, Party};

/// Every setting of a room, as `ConferenceConfigured` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceSettings {
    pub name: String,
    pub extension: ExtensionNumber,
    /// Digits a caller must enter; `None`: open room.
    pub pin: Option<String>,
    /// At least one.
    pub max_members: u32,
    /// The user whose personal room this is.
    pub owner: Option<UserId>,
    pub record: bool,
}

impl ConferenceSettings {
    /// The settings `event` records, when it is a `ConferenceConfigured`.
    pub fn recorded_by(event: &ConferenceEvent) -> Option<Self> {
        let ConferenceEvent::ConferenceConfigured {
            conference: _,
            name,
            extension,
            pin,
            max_members,
            owner,
            record,
        } = event
        else {
            return None;
        };
        Some(Self {
            name: name.clone(),
            extension: extension.clone(),
            pin: pin.clone(),
            max_members: *max_members,
            owner: owner.clone(),
            record: *record,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceCommand {
    /// Creates the room or changes its settings.
    Configure {
        conference: ConferenceId,
        settings: ConferenceSettings,
    },
    /// Removes the room; members still in it are dropped and the run ends.
    Delete,
    /// A call leg enters the room. The owner, an admin and an invited call skip the PIN and
    /// the lock; nobody skips the capacity.
    Join {
        call: CallId,
        leg: LegId,
        party: Party,
        /// What the caller entered.
        pin: Option<String>,
        /// Joins as a moderator, with the caller's permission checked by whoever sends this.
        admin: bool,
        /// Joins muted (listen-only).
        muted: bool,
    },
    /// The member hung up.
    Leave {
        leg: LegId,
    },
    Mute {
        leg: LegId,
        /// Someone else; `None`: the member themself.
        by: Option<UserId>,
    },
    Unmute {
        leg: LegId,
        by: Option<UserId>,
    },
    Kick {
        leg: LegId,
        by: UserId,
    },
    /// Only while the room is in use; a run's lock ends with it.
    Lock {
        by: Option<UserId>,
    },
    Unlock {
        by: Option<UserId>,
    },
    /// Calls someone into the room; `call` is the new outgoing call's id.
    Invite {
        invitee: Party,
        by: UserId,
        call: CallId,
    },
    TalkingStarted {
        leg: LegId,
    },
    TalkingStopped {
        leg: LegId,
    },
    /// Timer: the room has been empty for the grace period.
    EndIfEmpty,
}
