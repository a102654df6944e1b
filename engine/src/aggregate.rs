//! The shape every aggregate has. An aggregate is a state that only changes by folding its own
//! events (`evolve`) and a pure function from state, command and time to new events or a
//! rejection (`decide`). Neither does I/O or reads a clock or an RNG: the current time is an
//! argument, and every new id an outcome needs (a call id, a leg id, a message id) travels inside
//! the command, filled in by whoever built it from an injected `IdGen`. Timers are deadlines held
//! in state: the actor shell arms them and feeds their command back when they pass, and re-arms
//! them from the rebuilt state after a restart.
//!
//! Time reaches `evolve` the same way it reaches `decide`: as an argument. Each event is folded
//! with the instant it happened at, its envelope's `occurred_at` (the `now` of the `decide` that
//! produced it), so a state rebuilt from the stream knows when things happened without any
//! event having to carry the time in its payload.

use std::fmt;

use chrono::{DateTime, Utc};
use events::codec::{Metadata, encode};
use events::log::to_micros;
use events::model::Event;
use events::{CorrelationId, EventId, EventRecord, IdGen, TenantId};

/// One aggregate kind: its state is `Self`.
pub trait Aggregate: Clone + Default + fmt::Debug + Send + 'static {
    type Command: Clone + fmt::Debug + Send + 'static;
    type Event: Clone
        + fmt::Debug
        + PartialEq
        + Send
        + Sync
        + Into<Event>
        + TryFrom<Event, Error = Event>
        + 'static;
    type Rejection: std::error::Error + Clone + PartialEq + Send + Sync + 'static;

    /// What `command` makes happen at `now`, given this state. Pure.
    fn decide(
        &self,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// Folds one of this aggregate's events into the state; `at` is when it happened: the
    /// event's `occurred_at`, which is the `now` passed to the `decide` that produced it (as
    /// stored, at microsecond precision). Durations and deadlines a state holds are measured
    /// from these instants. Pure: the time comes from the envelope, never from a clock. Never
    /// fails: an event that makes no sense for the state is ignored (it was accepted once, so
    /// history wins).
    fn evolve(&mut self, event: &Self::Event, at: DateTime<Utc>);

    /// Timers this state holds: when `at` passes, the shell sends `command` to the aggregate.
    fn deadlines(&self) -> Vec<Deadline<Self::Command>> {
        Vec::new()
    }

    /// The instance's story is over (an ended call): no command is expected in the normal
    /// course. Its actor stops shortly after its last command once it holds no deadlines,
    /// instead of staying in memory until it has been idle for a long while; a late command
    /// rebuilds it from the stream like any other.
    fn finished(&self) -> bool {
        false
    }

    /// Folds a history into a fresh state: each event with the instant it happened at (its
    /// `occurred_at`), in stream order.
    fn replay<'a>(events: impl IntoIterator<Item = (&'a Self::Event, DateTime<Utc>)>) -> Self
    where
        Self::Event: 'a,
    {
        let mut state = Self::default();
        for (e, at) in events {
            state.evolve(e, at);
        }
        state
    }
}

/// Decides `first`, then each of `rest` on the state the earlier ones leave (their events
/// folded at `now`): what one append of all of them records. A refusal of any refuses them all.
pub fn decide_all<'c, A: Aggregate>(
    state: &A,
    first: &A::Command,
    rest: impl IntoIterator<Item = &'c A::Command>,
    now: DateTime<Utc>,
) -> Result<Vec<A::Event>, A::Rejection> {
    let mut events = state.decide(first, now)?;
    let mut rest = rest.into_iter().peekable();
    if rest.peek().is_none() {
        return Ok(events);
    }
    let mut state = state.clone();
    for e in &events {
        state.evolve(e, now);
    }
    for command in rest {
        let more = state.decide(command, now)?;
        for e in &more {
            state.evolve(e, now);
        }
        events.extend(more);
    }
    Ok(events)
}

/// A timer held in state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline<C> {
    pub at: DateTime<Utc>,
    pub command: C,
}

impl<C> Deadline<C> {
    pub fn new(at: DateTime<Utc>, command: C) -> Self {
        Self { at, command }
    }
}

/// `at` plus `ms` milliseconds, saturating at the end of time: how a state turns a duration an
/// event carries into a deadline.
pub(crate) fn plus_ms(at: DateTime<Utc>, ms: u64) -> DateTime<Utc> {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::TimeDelta::try_milliseconds)
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whole milliseconds from `from` to `to`, 0 when `to` is earlier.
pub(crate) fn elapsed_ms(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

/// Stamps what `decide` produced at `now` with fresh event ids and one envelope, and encodes it
/// into the records the log appends. The time is truncated once, here, to the microsecond the
/// log stores, so the value folded right after the append (`metadata[i].occurred_at`) and the
/// one a rebuild reads back are the same instant. Every runner of aggregates (the actor shell,
/// the simulation world) goes through this.
pub fn stamp<E: Clone + Into<Event>>(
    events: &[E],
    now: DateTime<Utc>,
    ids: &dyn IdGen,
    tenant: Option<&TenantId>,
    causation_id: Option<EventId>,
    correlation_id: Option<CorrelationId>,
) -> (Vec<Metadata>, Vec<EventRecord>) {
    let occurred_at = to_micros(now);
    events
        .iter()
        .map(|event| {
            let metadata = Metadata {
                event_id: EventId::from_uuid(ids.next_uuid()),
                occurred_at,
                tenant: tenant.cloned(),
                causation_id,
                correlation_id,
            };
            let record = encode(&event.clone().into(), metadata.clone());
            (metadata, record)
        })
        .unzip()
}
