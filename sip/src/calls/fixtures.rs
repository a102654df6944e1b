//! Set-ups the calls modules' unit tests share: aggregates advanced command by command (decide,
//! then evolve at the same instant, as the actor does after its append), and the internal call
//! from 1002 to 1003 with its Offer and Ring (`engine::testing`'s).

use chrono::{DateTime, Utc};
use engine::Aggregate;
pub(crate) use engine::testing::{offer, ring};

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
