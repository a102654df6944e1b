//! Direct-message events: a 1-to-1 or small group conversation outside any channel room, with
//! the same message actions as a room (post, edit, delete, react, follow, star, report) and each
//! member's choice to hide it. One stream per conversation (`conversation-<uuid>`).

use serde::{Deserialize, Serialize};

use super::values::Attachment;
use crate::ids::{ConversationId, MessageId, UserId};

event_enum! {
    /// Facts about one direct-message conversation. Variants are never renamed or removed; add
    /// a new one.
    pub enum ConversationEvent in Conversation {
        ConversationStarted = "ConversationStarted" {
            conversation: ConversationId,
            kind: ConversationKind,
            started_by: UserId,
            /// Everyone in it, the starter included.
            members: Vec<UserId>,
        },
        /// A user was added to a group conversation.
        ConversationMemberAdded = "ConversationMemberAdded" {
            conversation: ConversationId,
            user: UserId,
            by: UserId,
        },
        ConversationMemberLeft = "ConversationMemberLeft" {
            conversation: ConversationId,
            user: UserId,
        },
        /// `user` hid (closed) the conversation from their list; a new message shows it again.
        ConversationHidden = "ConversationHidden" {
            conversation: ConversationId,
            user: UserId,
        },
        ConversationShown = "ConversationShown" {
            conversation: ConversationId,
            user: UserId,
        },
        DirectMessagePosted = "DirectMessagePosted" {
            conversation: ConversationId,
            message: MessageId,
            author: UserId,
            /// Message text; emoji are plain Unicode.
            text: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            attachments: Vec<Attachment>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            quote: Option<MessageId>,
            /// The thread's first message, when this is a reply in a thread.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            thread: Option<MessageId>,
        },
        DirectMessageEdited = "DirectMessageEdited" {
            conversation: ConversationId,
            message: MessageId,
            text: String,
            by: UserId,
        },
        DirectMessageDeleted = "DirectMessageDeleted" {
            conversation: ConversationId,
            message: MessageId,
            by: UserId,
        },
        DirectReactionAdded = "DirectReactionAdded" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
            emoji: String,
        },
        DirectReactionRemoved = "DirectReactionRemoved" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
            emoji: String,
        },
        DirectMessageFollowed = "DirectMessageFollowed" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
        },
        DirectMessageUnfollowed = "DirectMessageUnfollowed" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
        },
        DirectMessageStarred = "DirectMessageStarred" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
        },
        DirectMessageUnstarred = "DirectMessageUnstarred" {
            conversation: ConversationId,
            message: MessageId,
            user: UserId,
        },
        DirectMessageReported = "DirectMessageReported" {
            conversation: ConversationId,
            message: MessageId,
            by: UserId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// Exactly two people.
    Direct,
    /// Several people, without a named room.
    Group,
}
