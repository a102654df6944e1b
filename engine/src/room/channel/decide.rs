//! The channel room's rules: who may do what, in which lifecycle state. Owners rename, archive,
//! restore, delete, manage roles and add members to private rooms; moderators rename, kick
//! plain members and edit or delete others' messages; members post, react, follow, star,
//! report, close and leave. An archived room is read-only: nothing is posted, edited, reacted
//! to, renamed or re-membered until it is restored, while members may still leave, close,
//! follow, star and report. A deleted room refuses everything.
//!
//! Ownership rule: a room always has an owner while it exists. The last owner cannot leave,
//! give up the owner role, or be kicked; they transfer ownership (or grant it to another member)
//! first, or delete the room.
//!
//! A command whose effect already holds (joining as a member, closing a closed room, archiving
//! an archived one) is accepted with no events, so retries are harmless.

use chrono::{DateTime, Utc};
use events::ids::UserId;
use events::model::{RoomEvent, RoomRole, RoomVisibility};

use super::command::{RoomCommand, RoomName, RoomNameError};
use super::state::{ChannelRoom, Membership, RoomStatus};
use crate::aggregate::Aggregate;
use crate::room::message::{MessageRejection, message_events};

/// Why a channel room refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomRejection {
    #[error("the room does not exist")]
    NotCreated,
    #[error("the room already exists")]
    AlreadyExists,
    #[error("the room was deleted")]
    Deleted,
    #[error("the room is archived and read-only; restore it first")]
    Archived,
    #[error("the room is not archived")]
    NotArchived,
    #[error(transparent)]
    BadName(#[from] RoomNameError),
    #[error("{0} is not a member of the room")]
    NotMember(UserId),
    #[error("{0} is already a member of the room")]
    AlreadyMember(UserId),
    #[error("the room is private: a member must add {0}")]
    Private(UserId),
    #[error("only an owner may {action}; {user} is not one")]
    NotOwner { user: UserId, action: &'static str },
    #[error("only an owner or a moderator may {action}; {user} is neither")]
    NotModerator { user: UserId, action: &'static str },
    #[error("a moderator cannot kick {0}, who is an owner")]
    CannotKickOwner(UserId),
    #[error("{0} cannot kick themselves; leave instead")]
    KickSelf(UserId),
    #[error("{0} is the room's last owner: transfer ownership first, or delete the room")]
    LastOwner(UserId),
    #[error("{0} cannot transfer ownership to themselves")]
    TransferToSelf(UserId),
    #[error(transparent)]
    Message(#[from] MessageRejection),
}

impl Aggregate for ChannelRoom {
    type Command = RoomCommand;
    type Event = RoomEvent;
    type Rejection = RoomRejection;

    fn decide(
        &self,
        command: &RoomCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<RoomEvent>, RoomRejection> {
        decide(self, command)
    }

    fn evolve(&mut self, event: &RoomEvent, _at: DateTime<Utc>) {
        self.evolve_event(event);
    }
}

fn decide(state: &ChannelRoom, command: &RoomCommand) -> Result<Vec<RoomEvent>, RoomRejection> {
    use RoomCommand as C;
    use RoomEvent as E;

    let room = match (state.status, &state.room, command) {
        (RoomStatus::Absent, _, C::Create { .. }) => return create(command),
        (RoomStatus::Absent, _, _) => return Err(RoomRejection::NotCreated),
        (RoomStatus::Deleted, _, _) => return Err(RoomRejection::Deleted),
        (_, _, C::Create { .. }) => return Err(RoomRejection::AlreadyExists),
        (_, Some(room), _) => room.clone(),
        (_, None, _) => return Err(RoomRejection::NotCreated),
    };
    let archived = state.status == RoomStatus::Archived;
    let writable = || {
        if archived {
            Err(RoomRejection::Archived)
        } else {
            Ok(())
        }
    };

    Ok(match command {
        C::Create { .. } => Vec::new(),
        C::Rename { name, by } => {
            writable()?;
            moderator(state, by, "rename the room")?;
            let name = RoomName::parse(name)?;
            if name.as_str() == state.name {
                return Ok(Vec::new());
            }
            vec![E::RoomRenamed {
                room,
                name: name.as_str().to_owned(),
                previous: state.name.clone(),
                by: by.clone(),
            }]
        }
        C::Archive { by } => {
            owner(state, by, "archive the room")?;
            if archived {
                return Ok(Vec::new());
            }
            vec![E::RoomArchived {
                room,
                by: by.clone(),
            }]
        }
        C::Restore { by } => {
            owner(state, by, "restore the room")?;
            if !archived {
                return Err(RoomRejection::NotArchived);
            }
            vec![E::RoomRestored {
                room,
                by: by.clone(),
            }]
        }
        C::Delete { by } => {
            owner(state, by, "delete the room")?;
            vec![E::RoomDeleted {
                room,
                by: by.clone(),
            }]
        }
        C::Join { user } => {
            writable()?;
            if state.is_member(user) {
                return Ok(Vec::new());
            }
            if state.visibility != Some(RoomVisibility::Public) {
                return Err(RoomRejection::Private(user.clone()));
            }
            vec![E::RoomMemberJoined {
                room,
                user: user.clone(),
            }]
        }
        C::AddMember { user, by } => {
            writable()?;
            let adder = member(state, by)?;
            if state.visibility != Some(RoomVisibility::Public) && !adder.may_moderate() {
                return Err(RoomRejection::NotModerator {
                    user: by.clone(),
                    action: "add members to a private room",
                });
            }
            if state.is_member(user) {
                return Err(RoomRejection::AlreadyMember(user.clone()));
            }
            vec![E::RoomMemberInvited {
                room,
                user: user.clone(),
                by: by.clone(),
            }]
        }
        C::Leave { user } => {
            let m = member(state, user)?;
            if m.owner && state.owners().count() == 1 {
                return Err(RoomRejection::LastOwner(user.clone()));
            }
            vec![E::RoomMemberLeft {
                room,
                user: user.clone(),
            }]
        }
        C::Kick { user, by } => {
            writable()?;
            let kicker = moderator(state, by, "kick members")?;
            if user == by {
                return Err(RoomRejection::KickSelf(by.clone()));
            }
            let target = member(state, user)?;
            if target.owner && !kicker.owner {
                return Err(RoomRejection::CannotKickOwner(user.clone()));
            }
            vec![E::RoomMemberKicked {
                room,
                user: user.clone(),
                by: by.clone(),
            }]
        }
        C::Close { user } => {
            if member(state, user)?.closed {
                return Ok(Vec::new());
            }
            vec![E::RoomClosed {
                room,
                user: user.clone(),
            }]
        }
        C::Reopen { user } => {
            if !member(state, user)?.closed {
                return Ok(Vec::new());
            }
            vec![E::RoomReopened {
                room,
                user: user.clone(),
            }]
        }
        C::GrantRole { user, role, by } => {
            writable()?;
            owner(state, by, "grant roles")?;
            if member(state, user)?.has(*role) {
                return Ok(Vec::new());
            }
            vec![E::RoomRoleGranted {
                room,
                user: user.clone(),
                role: *role,
                by: by.clone(),
            }]
        }
        C::RevokeRole { user, role, by } => {
            writable()?;
            owner(state, by, "revoke roles")?;
            let target = member(state, user)?;
            if !target.has(*role) {
                return Ok(Vec::new());
            }
            if *role == RoomRole::Owner && state.owners().count() == 1 {
                return Err(RoomRejection::LastOwner(user.clone()));
            }
            vec![E::RoomRoleRevoked {
                room,
                user: user.clone(),
                role: *role,
                by: by.clone(),
            }]
        }
        C::TransferOwnership { to, by } => {
            writable()?;
            owner(state, by, "transfer ownership")?;
            if to == by {
                return Err(RoomRejection::TransferToSelf(by.clone()));
            }
            let mut events = Vec::with_capacity(2);
            if !member(state, to)?.owner {
                events.push(E::RoomRoleGranted {
                    room: room.clone(),
                    user: to.clone(),
                    role: RoomRole::Owner,
                    by: by.clone(),
                });
            }
            events.push(E::RoomRoleRevoked {
                room,
                user: by.clone(),
                role: RoomRole::Owner,
                by: by.clone(),
            });
            events
        }
        C::Message(action) => {
            if action.writes() {
                writable()?;
            }
            let actor = member(state, action.actor())?;
            state
                .messages
                .decide(action, actor.may_moderate())?
                .map(|fact| event_of(room, fact))
                .into_iter()
                .collect()
        }
    })
}

fn create(command: &RoomCommand) -> Result<Vec<RoomEvent>, RoomRejection> {
    let RoomCommand::Create {
        room,
        name,
        by,
        members,
        visibility,
    } = command
    else {
        return Err(RoomRejection::NotCreated);
    };
    let name = RoomName::parse(name)?;
    let mut others: Vec<UserId> = Vec::with_capacity(members.len());
    for m in members {
        if m != by && !others.contains(m) {
            others.push(m.clone());
        }
    }
    Ok(vec![RoomEvent::RoomCreated {
        room: room.clone(),
        name: name.as_str().to_owned(),
        created_by: by.clone(),
        members: others,
        visibility: *visibility,
    }])
}

fn member<'a>(state: &'a ChannelRoom, user: &UserId) -> Result<&'a Membership, RoomRejection> {
    state
        .membership(user)
        .ok_or_else(|| RoomRejection::NotMember(user.clone()))
}

fn owner<'a>(
    state: &'a ChannelRoom,
    user: &UserId,
    action: &'static str,
) -> Result<&'a Membership, RoomRejection> {
    let m = member(state, user)?;
    if m.owner {
        Ok(m)
    } else {
        Err(RoomRejection::NotOwner {
            user: user.clone(),
            action,
        })
    }
}

fn moderator<'a>(
    state: &'a ChannelRoom,
    user: &UserId,
    action: &'static str,
) -> Result<&'a Membership, RoomRejection> {
    let m = member(state, user)?;
    if m.may_moderate() {
        Ok(m)
    } else {
        Err(RoomRejection::NotModerator {
            user: user.clone(),
            action,
        })
    }
}

message_events! {
    RoomEvent, room: events::ids::RoomId;
    Posted => RoomMessagePosted,
    Edited => RoomMessageEdited,
    Deleted => RoomMessageDeleted,
    ReactionAdded => RoomReactionAdded,
    ReactionRemoved => RoomReactionRemoved,
    Followed => RoomMessageFollowed,
    Unfollowed => RoomMessageUnfollowed,
    Starred => RoomMessageStarred,
    Unstarred => RoomMessageUnstarred,
    Reported => RoomMessageReported,
}
