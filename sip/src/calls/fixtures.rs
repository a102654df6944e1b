//! Set-ups the calls modules' unit tests share: aggregates advanced command by command (decide,
//! then evolve at the same instant, as the actor does after its append), the demo's internal
//! parties, and the internal call from 1002 to 1003 with its Offer and Ring.

use chrono::{DateTime, TimeDelta, Utc};
use engine::Aggregate;
use engine::call::{CallCommand, RingContact};
pub(crate) use engine::testing::{offer, party};
use events::ids::LegId;
use events::model::LegRole;

/// Decides `command` on `state` at `now` (it must be accepted) and folds what it produced.
pub(crate) fn run<A: Aggregate>(state: &mut A, command: A::Command, now: DateTime<Utc>) {
    let events = match state.decide(&command, now) {
        Ok(events) => events,
        Err(rejection) => panic!("{command:?} was rejected: {rejection}"),
    };
    for e in &events {
        state.evolve(e, now);
    }
}

/// 1003 rung on one leg per contact (`legs`), for 30 s, no voicemail.
pub(crate) fn ring(parent: LegId, legs: &[LegId]) -> CallCommand {
    CallCommand::Ring {
        parent,
        callee: party("1003"),
        role: LegRole::Callee,
        contacts: legs
            .iter()
            .map(|leg| RingContact {
                leg: *leg,
                contact: None,
            })
            .collect(),
        ring_timeout: TimeDelta::seconds(30),
        voicemail: None,
    }
}
