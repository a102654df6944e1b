//! What can be asked of a direct-message conversation. New ids (the conversation's, the first
//! message's) come inside the commands.

use events::ids::{ConversationId, MessageId, UserId};

use crate::room::message::{MessageAction, MessageDraft};

/// Most people in one group conversation; larger groups belong in a channel room.
pub const MAX_GROUP_MEMBERS: usize = 50;

/// One request to a direct conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationCommand {
    /// Starts a conversation between `by` and `with`: direct with one other person, a group
    /// with more. The seeds' "Start Conversation" sends its first message at the same time.
    Start {
        conversation: ConversationId,
        by: UserId,
        with: Vec<UserId>,
        first_message: Option<(MessageId, MessageDraft)>,
    },
    /// A member adds someone to a group conversation.
    AddMember { user: UserId, by: UserId },
    /// A member leaves a group conversation.
    Leave { user: UserId },
    /// Hides the conversation from `user`'s list; a new message shows it again.
    Hide { user: UserId },
    /// Shows a hidden conversation again.
    Show { user: UserId },
    /// Post, edit, delete, react, follow, star, report.
    Message(MessageAction),
}
