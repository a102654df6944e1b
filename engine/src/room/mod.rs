//! Chat: channel rooms ([`ChannelRoom`]) and direct conversations ([`Conversation`]). Both share
//! the message rules of [`message`] (validity, size limits, who may edit or delete, reactions,
//! threads, quotes, follows, stars, reports); they differ in who belongs and who moderates.
//! Everything here is pure: ids and time come in with the commands.

pub(crate) mod channel;
pub(crate) mod conversation;
pub mod message;

pub use channel::{
    ChannelRoom, MAX_NAME_CHARS, Membership, RoomCommand, RoomName, RoomNameError, RoomRejection,
    RoomStatus,
};
pub use conversation::{
    Conversation, ConversationCommand, ConversationRejection, MAX_GROUP_MEMBERS,
};
pub use message::{
    MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_EMOJI_CHARS, MAX_REPORT_REASON_CHARS,
    MAX_TEXT_CHARS, Message, MessageAction, MessageDraft, MessageRejection,
};
