//! The channel room aggregate (`room-<tenant>.<room>`): a named chat room with members, owners
//! and moderators, and the messages posted in it. `command` holds the requests and the name
//! rule, `state` the fold and queries, `decide` the permission rules.

mod command;
mod decide;
mod state;
#[cfg(test)]
mod tests;

pub use command::{MAX_NAME_CHARS, RoomCommand, RoomName, RoomNameError};
pub use decide::RoomRejection;
pub(crate) use decide::message_of;
pub use state::{ChannelRoom, Membership, RoomStatus};
