//! A call queue (Asterisk's app_queue, FreeSWITCH's mod_callcenter): callers wait in line and
//! the queue hands the head of the line to its agents by strategy (ring-all, round-robin,
//! least-recent, fewest-calls, lower penalty first). It owns the queue's stream and nothing
//! else: it never dials or hangs up. It reserves an agent (`AgentReserved`) and the call side
//! reports back the ringing leg, the answer and the hang-up as commands; the agent's line state
//! arrives from their extension the same way. Ring timeouts, maximum waits and wrap-ups are
//! deadlines in state. An agent's intent (logged in, paused) is kept apart from what the queue
//! is doing with them (offered, connected, wrap-up), and only an agent who is logged in, not
//! paused, idle in the queue and idle on the line is offered a call. Counters (completed,
//! abandoned, calls taken and last call per agent) are queries on the state.

mod command;
mod decide;
#[cfg(test)]
mod simulation;
mod state;
mod strategy;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use events::model::QueueEvent;

use crate::aggregate::{Aggregate, Deadline};

pub use command::{QueueCommand, QueueSettings};
pub use decide::QueueRejection;
pub use state::{Activity, Agent, Caller, Connection, Queue};

impl Aggregate for Queue {
    type Command = QueueCommand;
    type Event = QueueEvent;
    type Rejection = QueueRejection;

    fn decide(
        &self,
        command: &QueueCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<QueueEvent>, QueueRejection> {
        decide::decide(self, command, now)
    }

    fn evolve(&mut self, event: &QueueEvent, at: DateTime<Utc>) {
        self.apply(event, at);
    }

    fn deadlines(&self) -> Vec<Deadline<QueueCommand>> {
        decide::deadlines(self)
    }
}
