//! What can be asked of a channel room, and the rule for its display name. Commands carry every
//! id their outcome needs (the room id, new message ids); the name is normalised here so that
//! `decide` and the web layer agree on it.

use std::fmt;

use events::ids::{RoomId, UserId};
use events::model::{RoomRole, RoomVisibility};

use crate::room::message::MessageAction;

/// Longest room name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// One request to a channel room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCommand {
    /// Creates the room; `by` becomes its first owner. `name` is normalised (see [`RoomName`]).
    Create {
        room: RoomId,
        name: String,
        by: UserId,
        members: Vec<UserId>,
        visibility: RoomVisibility,
    },
    /// Owners and moderators; the name is normalised like at creation.
    Rename { name: String, by: UserId },
    /// Owners: the room becomes read-only and leaves everyone's main view.
    Archive { by: UserId },
    /// Owners: an archived room becomes writable again.
    Restore { by: UserId },
    /// Owners: the room is gone for good.
    Delete { by: UserId },
    /// A user joins a public room on their own.
    Join { user: UserId },
    /// Adds a user: any member of a public room, owners and moderators of a private one.
    AddMember { user: UserId, by: UserId },
    /// A member leaves. The last owner must transfer ownership first.
    Leave { user: UserId },
    /// Owners and moderators remove a member; moderators cannot remove owners.
    Kick { user: UserId, by: UserId },
    /// Hides the room from `user`'s active list; they stay a member.
    Close { user: UserId },
    /// Shows a closed room again on `user`'s active list.
    Reopen { user: UserId },
    /// Owners make a member owner or moderator.
    GrantRole {
        user: UserId,
        role: RoomRole,
        by: UserId,
    },
    /// Owners take a role away; the last owner keeps theirs.
    RevokeRole {
        user: UserId,
        role: RoomRole,
        by: UserId,
    },
    /// An owner hands ownership to another member and stops being an owner.
    TransferOwnership { to: UserId, by: UserId },
    /// Post, edit, delete, react, follow, star, report.
    Message(MessageAction),
}

/// A room's display name: trimmed, each run of white space replaced by one '-', lower-cased;
/// then 1 to [`MAX_NAME_CHARS`] letters or digits (any script), '-', '_' or '.', starting with
/// a letter or digit. "Sales Team" becomes "sales-team"; "Q&A" is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

/// Why a room name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomNameError {
    #[error("a room name must not be empty")]
    Empty,
    #[error("a room name has at most {max} characters, {chars} given")]
    TooLong { chars: usize, max: usize },
    #[error("a room name must start with a letter or a digit")]
    BadStart,
    #[error("{0:?} is not allowed in a room name: use letters, digits, '-', '_' or '.'")]
    BadCharacter(char),
}

impl RoomName {
    pub fn parse(raw: &str) -> Result<Self, RoomNameError> {
        let name = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join("-")
            .to_lowercase();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(RoomNameError::Empty);
        }
        if chars > MAX_NAME_CHARS {
            return Err(RoomNameError::TooLong {
                chars,
                max: MAX_NAME_CHARS,
            });
        }
        if !name.starts_with(char::is_alphanumeric) {
            return Err(RoomNameError::BadStart);
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(RoomNameError::BadCharacter(bad));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
