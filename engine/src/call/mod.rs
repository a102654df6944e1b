//! The call aggregate: one `call-<uuid>` stream per call, the lifecycle between parties as a
//! B2BUA sees it. A call is offered with its caller's leg, rings every contact of the callee
//! (one leg per contact), is answered by one of them (the other forks are cancelled), can be
//! held, resumed and transferred (blind or attended), listened to by supervisors and recorded,
//! and ends exactly once, after its last leg ended exactly once with a cause and a disposition.
//! Everything the call needs to know from other aggregates arrives inside the commands; this
//! module looks nothing up and never depends on the extension module.

mod command;
mod decide;
mod parts;
mod plan;
mod state;

#[cfg(test)]
mod invariants;
#[cfg(test)]
mod rules_tests;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use events::model::CallEvent;

use crate::aggregate::{Aggregate, Deadline};

pub use command::{CallCommand, CallRejection, RingContact};
pub use state::{Call, CallSummary, Leg, LegEnd, LegProgress, LegSummary, Listen};

impl Aggregate for Call {
    type Command = CallCommand;
    type Event = CallEvent;
    type Rejection = CallRejection;

    fn decide(
        &self,
        command: &CallCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<CallEvent>, CallRejection> {
        decide::decide(self, command, now)
    }

    fn evolve(&mut self, event: &CallEvent, at: DateTime<Utc>) {
        state::Call::evolve(self, event, at);
    }

    fn finished(&self) -> bool {
        self.is_ended()
    }

    /// The ring timeout, while callee legs are ringing.
    fn deadlines(&self) -> Vec<Deadline<CallCommand>> {
        match &self.ring {
            Some(ring) if !self.is_ended() && self.ringing_legs().next().is_some() => {
                vec![Deadline::new(
                    ring.deadline,
                    CallCommand::RingTimeout {
                        deadline: ring.deadline,
                    },
                )]
            }
            _ => Vec::new(),
        }
    }
}
