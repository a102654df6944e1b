//! The direct-conversation aggregate (`conversation-<uuid>`): two people, or a small group,
//! talking outside any channel room, with the same message actions as a room. There are no
//! owners or moderators here: only a message's author edits or deletes it.

mod command;
mod decide;
mod state;
#[cfg(test)]
mod tests;

pub use command::{ConversationCommand, MAX_GROUP_MEMBERS};
pub use decide::ConversationRejection;
pub(crate) use decide::message_of;
pub use state::Conversation;
