//! A channel room as its events left it: lifecycle, name, members with their roles and closed
//! flag, and the messages. `evolve` folds one event and never fails; the queries here are what
//! the web layer and `decide` read.

use std::collections::BTreeMap;

use events::ids::{MessageId, RoomId, UserId};
use events::model::{RoomEvent, RoomRole, RoomVisibility};

use crate::room::message::{Message, Messages};

/// Where a room is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoomStatus {
    /// Not created yet.
    #[default]
    Absent,
    Active,
    /// Read-only and hidden from the main views; restorable.
    Archived,
    /// Gone for good.
    Deleted,
}

/// One member's standing in the room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Membership {
    pub owner: bool,
    pub moderator: bool,
    /// The member closed (hid) the room from their active list.
    pub closed: bool,
}

impl Membership {
    /// Owners and moderators may edit and delete others' messages and kick members.
    pub fn may_moderate(&self) -> bool {
        self.owner || self.moderator
    }

    pub fn has(&self, role: RoomRole) -> bool {
        match role {
            RoomRole::Owner => self.owner,
            RoomRole::Moderator => self.moderator,
        }
    }

    fn set(&mut self, role: RoomRole, on: bool) {
        match role {
            RoomRole::Owner => self.owner = on,
            RoomRole::Moderator => self.moderator = on,
        }
    }
}

/// A channel room: named, with members, owners and moderators, and messages.
#[derive(Debug, Clone, Default)]
pub struct ChannelRoom {
    pub(super) room: Option<RoomId>,
    pub(super) name: String,
    pub(super) visibility: Option<RoomVisibility>,
    pub(super) status: RoomStatus,
    pub(super) members: BTreeMap<UserId, Membership>,
    pub(super) messages: Messages,
}

impl ChannelRoom {
    pub fn id(&self) -> Option<&RoomId> {
        self.room.as_ref()
    }

    /// The display name (spaces already '-').
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn visibility(&self) -> Option<RoomVisibility> {
        self.visibility
    }

    pub fn status(&self) -> RoomStatus {
        self.status
    }

    /// Every member with their standing, in user order ("See members").
    pub fn members(&self) -> impl Iterator<Item = (&UserId, &Membership)> {
        self.members.iter()
    }

    pub fn membership(&self, user: &UserId) -> Option<&Membership> {
        self.members.get(user)
    }

    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.contains_key(user)
    }

    pub fn owners(&self) -> impl Iterator<Item = &UserId> {
        self.members.iter().filter(|(_, m)| m.owner).map(|(u, _)| u)
    }

    /// Whether the room is on `user`'s active list: a member who has not closed it, in a room
    /// that is neither archived nor deleted.
    pub fn is_open_for(&self, user: &UserId) -> bool {
        self.status == RoomStatus::Active && self.members.get(user).is_some_and(|m| !m.closed)
    }

    pub fn message(&self, id: &MessageId) -> Option<&Message> {
        self.messages.get(id)
    }

    pub(super) fn evolve_event(&mut self, event: &RoomEvent) {
        use RoomEvent as E;
        match event {
            E::RoomCreated {
                room,
                name,
                created_by,
                members,
                visibility,
            } => {
                self.room = Some(room.clone());
                self.name = name.clone();
                self.visibility = Some(*visibility);
                self.status = RoomStatus::Active;
                for m in members {
                    self.members.entry(m.clone()).or_default();
                }
                self.members.entry(created_by.clone()).or_default().owner = true;
            }
            E::RoomRenamed { name, .. } => self.name = name.clone(),
            E::RoomArchived { .. } => self.status = RoomStatus::Archived,
            E::RoomRestored { .. } => self.status = RoomStatus::Active,
            E::RoomDeleted { .. } => {
                self.status = RoomStatus::Deleted;
                self.members.clear();
                self.messages = Messages::default();
            }
            E::RoomMemberJoined { user, .. } | E::RoomMemberInvited { user, .. } => {
                self.members.entry(user.clone()).or_default();
            }
            E::RoomMemberLeft { user, .. } | E::RoomMemberKicked { user, .. } => {
                self.members.remove(user);
            }
            E::RoomClosed { user, .. } => self.set_closed(user, true),
            E::RoomReopened { user, .. } => self.set_closed(user, false),
            E::RoomRoleGranted { user, role, .. } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.set(*role, true);
                }
            }
            E::RoomRoleRevoked { user, role, .. } => {
                if let Some(m) = self.members.get_mut(user) {
                    m.set(*role, false);
                }
            }
            other => {
                if let Some(fact) = super::decide::fact_of(other) {
                    self.messages.apply(fact);
                }
            }
        }
    }

    fn set_closed(&mut self, user: &UserId, closed: bool) {
        if let Some(m) = self.members.get_mut(user) {
            m.closed = closed;
        }
    }
}
