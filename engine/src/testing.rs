//! Given/when/then for aggregates: start from a history, send one command at a chosen instant,
//! and assert the events it produces (or the rejection), then keep going from the new state.
//! Every `when` also runs `decide` twice on a copy of the state and checks both answers agree,
//! a cheap guard against hidden impurity.
//!
//! Time is folded the way the runtime folds it: every event with the instant it happened at.
//! `given` folds its history at the scenario's start, `t0()`; `given_at` takes each event's
//! time explicitly; the events a command produces are folded at the instant of that command
//! (the scenario's `now`, which `at` and `after` set).
//!
//! It also holds the fixtures several crates' tests share: the internal [`party`], the
//! [`offer`] of the internal call from 1002 to 1003 and the [`ring`] of 1003.
//!
//! ```ignore
//! given::<Extension>([provisioned()])
//!     .at(t0())
//!     .when(SetDnd { on: true, .. })
//!     .then([DndChanged { .. }]);
//! ```

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use events::ids::{CallId, DepartmentId, ExtensionNumber, LegId, PhoneNumber, UserId};
use events::model::{CallOrigin, Direction, LegRole, Party};

use crate::aggregate::{Aggregate, decide_all};
use crate::call::{CallCommand, RingContact};

/// Extension `ext` as a party: user `ext` of `sales`, named `User <ext>`.
pub fn party(ext: &str) -> Party {
    Party::internal(
        ExtensionNumber::parse(ext).expect("an extension number"),
        UserId::parse(ext).expect("a user id"),
        DepartmentId::parse("sales").expect("a department id"),
        format!("User {ext}"),
    )
}

/// The Offer of call `call`: 1002 (on `caller_leg`) dials 1003 from a phone.
pub fn offer(call: CallId, caller_leg: LegId) -> CallCommand {
    CallCommand::Offer {
        call,
        caller_leg,
        direction: Direction::Internal,
        caller: party("1002"),
        callee: party("1003"),
        dialled: PhoneNumber::parse("1003").expect("a number"),
        origin: CallOrigin::Device,
        caller_contact: None,
        trunk: None,
        requested_by: None,
    }
}

/// 1003 rung from `parent` on one leg per contact (`legs`), for 30 s, no voicemail.
pub fn ring(parent: LegId, legs: &[LegId]) -> CallCommand {
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

/// 2026-01-01T09:00:00Z, the default "now" of a scenario.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// A scenario: a state built from history and the instant the next command happens at.
#[derive(Debug, Clone)]
pub struct Scenario<A: Aggregate> {
    state: A,
    now: DateTime<Utc>,
    /// Every event so far, with the instant it was folded at.
    history: Vec<(A::Event, DateTime<Utc>)>,
}

/// Starts a scenario from a history of events, all of which happened at `t0()`.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
    given_at(history.into_iter().map(|e| (t0(), e)))
}

/// Starts a scenario from a history of events, each with the instant it happened at (its
/// `occurred_at`). The next command still happens at `t0()` unless `at` or `after` move it.
pub fn given_at<A: Aggregate>(
    history: impl IntoIterator<Item = (DateTime<Utc>, A::Event)>,
) -> Scenario<A> {
    let history: Vec<(A::Event, DateTime<Utc>)> =
        history.into_iter().map(|(at, e)| (e, at)).collect();
    Scenario {
        state: A::replay(history.iter().map(|(e, at)| (e, *at))),
        now: t0(),
        history,
    }
}

impl<A: Aggregate> Scenario<A> {
    /// Sets the instant of the next command.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Moves the clock forward.
    pub fn after(mut self, by: chrono::Duration) -> Self {
        self.now += by;
        self
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn state(&self) -> &A {
        &self.state
    }

    /// Every event so far, the given history and what accepted commands added, each with the
    /// instant it was folded at: what `Aggregate::replay` takes.
    pub fn history(&self) -> impl Iterator<Item = (&A::Event, DateTime<Utc>)> + '_ {
        self.history.iter().map(|(e, at)| (e, *at))
    }

    /// A fresh state replayed from the whole history, as the runtime rebuilds one.
    pub fn rebuilt(&self) -> A {
        A::replay(self.history())
    }

    /// Decides `command` against the current state.
    pub fn when(self, command: A::Command) -> Outcome<A> {
        self.when_all([command])
    }

    /// Decides `commands` in turn, as one `Execute` with `then` does: one after the other on the
    /// state the earlier ones leave, recorded together or, if any is refused, not at all.
    ///
    /// # Panics
    /// When `commands` is empty.
    pub fn when_all(self, commands: impl IntoIterator<Item = A::Command>) -> Outcome<A> {
        let commands: Vec<A::Command> = commands.into_iter().collect();
        let (first, rest) = commands.split_first().expect("at least one command");
        let result = decide_all(&self.state, first, rest, self.now);
        let again = decide_all(&self.state.clone(), first, rest, self.now);
        assert_eq!(
            result, again,
            "decide gave two different answers for the same state, command and time"
        );
        Outcome {
            scenario: self,
            commands,
            result,
        }
    }
}

/// What one command produced.
#[derive(Debug)]
pub struct Outcome<A: Aggregate> {
    scenario: Scenario<A>,
    commands: Vec<A::Command>,
    result: Result<Vec<A::Event>, A::Rejection>,
}

impl<A: Aggregate> Outcome<A> {
    /// Asserts exactly these events, folds them at the command's instant, and continues from
    /// the new state.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Scenario<A> {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let Outcome {
            scenario,
            commands,
            result,
        } = self;
        match result {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "command {commands:?} produced other events than expected"
                );
                apply(scenario, events)
            }
            Err(r) => panic!(
                "command {commands:?} was rejected ({r}) but events were expected: {expected:?}"
            ),
        }
    }

    /// Asserts the command was accepted, whatever it produced, and continues.
    #[track_caller]
    pub fn accepted(self) -> Scenario<A> {
        match self.result {
            Ok(events) => apply(self.scenario, events),
            Err(r) => panic!("command {:?} was rejected: {r}", self.commands),
        }
    }

    /// Asserts the command was accepted and returns what it produced, with the scenario.
    #[track_caller]
    pub fn events(self) -> (Vec<A::Event>, Scenario<A>) {
        match self.result {
            Ok(events) => {
                let produced = events.clone();
                (produced, apply(self.scenario, events))
            }
            Err(r) => panic!("command {:?} was rejected: {r}", self.commands),
        }
    }

    /// Asserts this rejection; the state is unchanged.
    #[track_caller]
    pub fn then_rejected(self, expected: A::Rejection) -> Scenario<A> {
        match self.result {
            Err(r) => {
                assert_eq!(r, expected, "command {:?}", self.commands);
                self.scenario
            }
            Ok(events) => panic!(
                "command {:?} was accepted with {events:?}, expected rejection {expected}",
                self.commands
            ),
        }
    }

    /// Asserts the command changed nothing (accepted, no events).
    #[track_caller]
    pub fn then_nothing(self) -> Scenario<A> {
        self.then([])
    }
}

/// Folds what a command produced at the instant it was decided at, as the runtime does after
/// the append.
fn apply<A: Aggregate>(mut scenario: Scenario<A>, events: Vec<A::Event>) -> Scenario<A> {
    let at = scenario.now;
    for e in &events {
        scenario.state.evolve(e, at);
    }
    scenario.history.extend(events.into_iter().map(|e| (e, at)));
    scenario
}
