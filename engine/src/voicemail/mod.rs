//! The voicemail box aggregate (`voicemail-<tenant>.<extension>`, one per extension): messages
//! left after busy or no answer, read/unread and folders, deletion, forwarding and transfer to
//! another box, greetings, settings, the PIN (checked, never recorded), and the message-waiting
//! indication the phones show. `state` holds the fold and the queries (counts, greeting to
//! play), `decide` the rules.
//!
//! Forwarding touches two boxes, each its own stream: the shell takes
//! [`VoicemailBox::forwarded_copy`] from the source, sends it to the target (which may refuse,
//! e.g. when full), and only then sends `Forward` to the source.

mod command;
mod decide;
mod state;
#[cfg(test)]
mod tests;

pub use command::{PIN_DIGITS, Pin, PinError, VoicemailCommand, VoicemailSettings};
pub use decide::{MAX_GREETING_MS, VoicemailRejection};
pub use state::{
    Greeting, GreetingToPlay, MAX_MESSAGES, MessageCounts, VoicemailBox, VoicemailMessage,
};
