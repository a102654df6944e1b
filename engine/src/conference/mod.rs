//! A conference room (Asterisk's ConfBridge): configured with an extension, an optional PIN, a
//! capacity and, for a personal room, its owner. Members are call legs; they join past the PIN,
//! the lock and the capacity check, leave, are muted, unmuted and kicked, and their voice
//! activity is recorded as talking stretches. Users invite others (the engine places the call;
//! the room records the invitation, which later lets that call in). A run of the room starts
//! with its first member and ends by a deadline a grace period after the last one leaves. The
//! room owns its stream only: it never places calls or touches media itself.

mod command;
mod decide;
mod state;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use events::model::ConferenceEvent;

use crate::aggregate::{Aggregate, Deadline};

pub use command::{ConferenceCommand, ConferenceSettings};
pub use decide::ConferenceRejection;
pub use state::{Conference, END_WHEN_EMPTY_AFTER_MS, Member, Run};

impl Aggregate for Conference {
    type Command = ConferenceCommand;
    type Event = ConferenceEvent;
    type Rejection = ConferenceRejection;

    fn decide(
        &self,
        command: &ConferenceCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ConferenceEvent>, ConferenceRejection> {
        decide::decide(self, command, now)
    }

    fn evolve(&mut self, event: &ConferenceEvent, at: DateTime<Utc>) {
        self.apply(event, at);
    }

    fn deadlines(&self) -> Vec<Deadline<ConferenceCommand>> {
        decide::deadlines(self)
    }
}
