//! Channel-room events: a named chat room with members, owners and moderators, and the messages
//! posted in it (emoji text, attachments, quotes, threads, reactions, follows, stars, reports,
//! edits, deletions). One stream per room (`room-<tenant>.<room>`). The room id is the stable
//! slug; the display name may change and never contains spaces (they become '-').
//!
//! Per-user views (closed/hidden, starred, followed) are recorded here too, so one fold gives
//! every member's list.

use serde::{Deserialize, Serialize};

use super::values::Attachment;
use crate::ids::{MessageId, RoomId, UserId};

event_enum! {
    /// Facts about one channel room. Variants are never renamed or removed; add a new one.
    pub enum RoomEvent in Room {
        RoomCreated = "RoomCreated" {
            room: RoomId,
            /// Display name, spaces already replaced by '-'.
            name: String,
            /// The creator, who becomes its first owner.
            created_by: UserId,
            /// The other members it was created with.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            members: Vec<UserId>,
            visibility: RoomVisibility,
        },
        RoomRenamed = "RoomRenamed" {
            room: RoomId,
            /// Spaces already replaced by '-'.
            name: String,
            previous: String,
            by: UserId,
        },
        /// Hidden from everyone's main view, read-only, restorable.
        RoomArchived = "RoomArchived" {
            room: RoomId,
            by: UserId,
        },
        RoomRestored = "RoomRestored" {
            room: RoomId,
            by: UserId,
        },
        /// Gone for good: the last event of the stream.
        RoomDeleted = "RoomDeleted" {
            room: RoomId,
            by: UserId,
        },
        /// A user joined on their own (a public room).
        RoomMemberJoined = "RoomMemberJoined" {
            room: RoomId,
            user: UserId,
        },
        /// A member added a user.
        RoomMemberInvited = "RoomMemberInvited" {
            room: RoomId,
            user: UserId,
            by: UserId,
        },
        RoomMemberLeft = "RoomMemberLeft" {
            room: RoomId,
            user: UserId,
        },
        RoomMemberKicked = "RoomMemberKicked" {
            room: RoomId,
            user: UserId,
            by: UserId,
        },
        /// `user` closed (hid) the room from their active list; they stay a member.
        RoomClosed = "RoomClosed" {
            room: RoomId,
            user: UserId,
        },
        /// `user` put the room back on their active list.
        RoomReopened = "RoomReopened" {
            room: RoomId,
            user: UserId,
        },
        /// A member was made owner or moderator. Transferring ownership is a grant to the new
        /// owner followed by a revoke from the old one.
        RoomRoleGranted = "RoomRoleGranted" {
            room: RoomId,
            user: UserId,
            role: RoomRole,
            by: UserId,
        },
        RoomRoleRevoked = "RoomRoleRevoked" {
            room: RoomId,
            user: UserId,
            role: RoomRole,
            by: UserId,
        },
        RoomMessagePosted = "RoomMessagePosted" {
            room: RoomId,
            message: MessageId,
            author: UserId,
            /// Message text; emoji are plain Unicode.
            text: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            attachments: Vec<Attachment>,
            /// The message quoted in this one.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            quote: Option<MessageId>,
            /// The thread's first message, when this is a reply in a thread.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            thread: Option<MessageId>,
        },
        RoomMessageEdited = "RoomMessageEdited" {
            room: RoomId,
            message: MessageId,
            /// The new text.
            text: String,
            /// The author, or a moderator or owner.
            by: UserId,
        },
        RoomMessageDeleted = "RoomMessageDeleted" {
            room: RoomId,
            message: MessageId,
            by: UserId,
        },
        RoomReactionAdded = "RoomReactionAdded" {
            room: RoomId,
            message: MessageId,
            user: UserId,
            /// The emoji, as Unicode.
            emoji: String,
        },
        RoomReactionRemoved = "RoomReactionRemoved" {
            room: RoomId,
            message: MessageId,
            user: UserId,
            emoji: String,
        },
        /// `user` is notified of replies to and quotes of the message.
        RoomMessageFollowed = "RoomMessageFollowed" {
            room: RoomId,
            message: MessageId,
            user: UserId,
        },
        RoomMessageUnfollowed = "RoomMessageUnfollowed" {
            room: RoomId,
            message: MessageId,
            user: UserId,
        },
        RoomMessageStarred = "RoomMessageStarred" {
            room: RoomId,
            message: MessageId,
            user: UserId,
        },
        RoomMessageUnstarred = "RoomMessageUnstarred" {
            room: RoomId,
            message: MessageId,
            user: UserId,
        },
        /// The message was reported to the administrators.
        RoomMessageReported = "RoomMessageReported" {
            room: RoomId,
            message: MessageId,
            by: UserId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
        },
    }
}

/// Who may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomVisibility {
    /// Listed to everyone in the tenant; anyone may join.
    Public,
    /// Members only; others must be invited.
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomRole {
    /// May rename, archive, delete, manage members and roles.
    Owner,
    /// May edit and delete others' messages and kick members.
    Moderator,
}
