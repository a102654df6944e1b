//! The actor shell around one aggregate instance. It owns the state, the stream version and the
//! armed deadline timers, and turns each command into: clock → `decide` → durable append with
//! the expected version → `evolve` → re-arm deadlines → publish → reply. Every step that runs
//! aggregate code (`decide`, `evolve`, `deadlines`, the event encoding) is wrapped in
//! `catch_unwind`, so a panic costs the command and a rebuild from the stream, never the actor
//! or its neighbours. It must not grow business rules: anything a domain needs belongs in the
//! aggregate's pure functions.
//!
//! Sequencing: each command runs as an `AtomicResponse`, which holds the mailbox (and the timers)
//! until the append and the fold are done, so commands to one aggregate never interleave. A
//! deadline that comes due goes through the same path as a command from outside.
//!
//! Time: every event is folded with its `occurred_at`. After an append that is the `now` the
//! command was decided at, truncated to the microseconds the log stores (`to_micros`), the very
//! value encoded into the envelope; a rebuild and a catch-up fold the `occurred_at` read back.
//! So a live state and one rebuilt from the stream have seen identical instants, and hold
//! identical deadlines.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{self, LocalBoxActorFuture, wrap_future};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use events::codec::{Metadata, Recorded};
use events::{
    AppendOutcome, EventLog, EventRecord, ExpectedVersion, GlobalPosition, LogError, StreamId,
};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::{Execute, ExecuteError, Executed, Folded, Instance, Services};
use crate::aggregate::{Aggregate, Deadline, decide_all, stamp};

/// What a command gets back.
pub(super) type Reply<A> = Result<Executed, ExecuteError<<A as Aggregate>::Rejection>>;

type Step<A, T> = LocalBoxActorFuture<AggregateActor<A>, T>;

/// An actor is idle after this many idle-check ticks in a row without a command.
const IDLE_TICKS: u32 = 4;

/// How long the actor of a finished instance ([`Aggregate::finished`]) waits for a late command
/// before it stops, unless told otherwise ([`AggregateActor::finished_linger`]): long enough
/// for the stragglers of its last exchange (a BYE crossing the end of a call) to find it, short
/// enough that a busy engine keeps only the last seconds' ended calls in memory.
pub(super) const FINISHED_LINGER: Duration = Duration::from_secs(2);

/// The actix actor of one aggregate instance.
pub struct AggregateActor<A: Aggregate> {
    instance: Instance,
    services: Arc<Services<A>>,
    /// Boxed so the actor is `Unpin` (actix needs it) whatever the aggregate is.
    state: Box<A>,
    /// The stream version `state` reflects: the expected version of the next append.
    version: u64,
    /// False until the state is rebuilt, and again after a rebuild failed; a command then
    /// retries the rebuild first.
    ready: bool,
    /// Started from a seed that still stands for the stream: the first append drops it.
    seeded: bool,
    timers: Vec<SpawnHandle>,
    /// How many deadlines the state held when they were last armed.
    pending_deadlines: usize,
    mailbox_capacity: usize,
    idle_after: Option<Duration>,
    served: u64,
    served_at_last_tick: u64,
    idle_ticks: u32,
    finished_linger: Duration,
    /// The stop of a finished instance, scheduled after `finished_linger`.
    finishing: Option<SpawnHandle>,
    on_stop: Option<Box<dyn FnOnce() + Send>>,
}

impl<A: Aggregate> std::fmt::Debug for AggregateActor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregateActor")
            .field("stream", &self.instance.stream)
            .field("version", &self.version)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// A command queued by the registry: the reply comes back on a oneshot channel, and the permit
/// (one slot of the actor's bounded mailbox) is released once the command is done, or when the
/// message is dropped unhandled.
#[derive(Debug)]
pub(super) struct Submit<A: Aggregate> {
    pub(super) execute: Execute<A>,
    pub(super) reply: oneshot::Sender<Reply<A>>,
    pub(super) permit: OwnedSemaphorePermit,
}

/// Stops the actor after the command in progress, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retire;

impl<A: Aggregate> Message for Execute<A> {
    type Result = Reply<A>;
}

impl<A: Aggregate> Message for Submit<A> {
    type Result = ();
}

impl Message for Retire {
    type Result = ();
}

impl<A: Aggregate> AggregateActor<A> {
    /// An actor that rebuilds `instance` from its stream when it starts. `idle_after`: stop
    /// after roughly this long without a command (never while it holds deadlines).
    pub fn new(
        instance: Instance,
        services: Arc<Services<A>>,
        mailbox_capacity: usize,
        idle_after: Option<Duration>,
    ) -> Self {
        Self {
            instance,
            services,
            state: Box::default(),
            version: 0,
            ready: false,
            seeded: false,
            timers: Vec::new(),
            pending_deadlines: 0,
            mailbox_capacity: mailbox_capacity.max(1),
            idle_after,
            served: 0,
            served_at_last_tick: 0,
            idle_ticks: 0,
            finished_linger: FINISHED_LINGER,
            finishing: None,
            on_stop: None,
        }
    }

    /// Starts from `seed` (a state the start-up fold found, see [`Registry::seed`]) instead of
    /// reading the stream; `None` changes nothing.
    ///
    /// [`Registry::seed`]: super::Registry::seed
    pub(super) fn seeded(mut self, seed: Option<Folded<A>>) -> Self {
        if let Some(seed) = seed {
            *self.state = seed.state;
            self.version = seed.version;
            self.ready = true;
            self.seeded = true;
        }
        self
    }

    /// Stops a finished instance after `linger` without a command instead of
    /// [`FINISHED_LINGER`].
    pub fn finished_linger(mut self, linger: Duration) -> Self {
        self.finished_linger = linger;
        self
    }

    /// Runs `f` once the actor has stopped (the registry forgets it).
    pub fn on_stop(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_stop = Some(Box::new(f));
        self
    }

    /// Starts the actor on `arbiter` with its bounded mailbox.
    pub fn start_on(self, arbiter: &ArbiterHandle) -> Addr<Self> {
        let capacity = self.mailbox_capacity;
        Self::start_in_arbiter(arbiter, move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            self
        })
    }

    fn stream(&self) -> &StreamId {
        &self.instance.stream
    }

    /// One command, from the mailbox or from a deadline; afterwards a finished instance's stop
    /// is scheduled.
    fn run(&mut self, execute: Execute<A>) -> Step<A, Reply<A>> {
        self.served += 1;
        let step = if self.ready {
            self.attempt(execute, true)
        } else {
            self.rebuild()
                .then(move |rebuilt, act, _| match rebuilt {
                    Ok(()) => act.attempt(execute, true),
                    Err(reason) => fut::ready(Err(ExecuteError::Unavailable {
                        stream: act.stream().clone(),
                        reason,
                    }))
                    .boxed_local(),
                })
                .boxed_local()
        };
        step.map(|reply, act, ctx| {
            act.stop_when_finished(ctx);
            reply
        })
        .boxed_local()
    }

    /// Decides, appends and folds; on a stale version, catches up and tries once more.
    fn attempt(&mut self, execute: Execute<A>, may_retry: bool) -> Step<A, Reply<A>> {
        let batch = match self.decide(&execute) {
            Decided::Events(batch) => batch,
            Decided::Nothing => return fut::ready(Ok(self.executed(0, None))).boxed_local(),
            Decided::Rejected(r) => {
                return fut::ready(Err(ExecuteError::Rejected(r))).boxed_local();
            }
            Decided::Panicked => return self.recover(),
        };
        let log = self.services.log.clone();
        let stream = self.stream().clone();
        if std::mem::take(&mut self.seeded) {
            self.services.unseed(&stream);
        }
        let expected = ExpectedVersion::Exact(self.version);
        let records = batch.records;
        let (events, metadata) = (batch.events, batch.metadata);
        wrap_future::<_, Self>(async move { log.append(&stream, expected, records).await })
            .then(move |appended, act, ctx| match appended {
                Ok(outcome) => act.commit(events, metadata, outcome, ctx),
                Err(LogError::WrongExpectedVersion { actual, .. }) if may_retry => {
                    tracing::debug!(stream = %act.stream(), expected = act.version, %actual,
                        "another writer appended; catching up before deciding again");
                    act.catch_up_and_retry(execute)
                }
                Err(e) => fut::ready(Err(ExecuteError::Log(e))).boxed_local(),
            })
            .boxed_local()
    }

    /// Runs `decide` at `clock.now()` and encodes what it produced, all under `catch_unwind`.
    fn decide(&self, execute: &Execute<A>) -> Decided<A> {
        let now = self.services.clock.now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let events = decide_all(&*self.state, &execute.command, &execute.then, now)?;
            Ok(self.encode(events, execute, now))
        }));
        match outcome {
            Ok(Ok(batch)) if batch.events.is_empty() => Decided::Nothing,
            Ok(Ok(batch)) => Decided::Events(batch),
            Ok(Err(rejection)) => {
                tracing::debug!(stream = %self.stream(), %rejection, "command rejected");
                Decided::Rejected(rejection)
            }
            Err(panic) => {
                tracing::error!(stream = %self.stream(), command = ?execute.command,
                    panic = panic_message(&*panic), "decide panicked; rebuilding from the stream");
                Decided::Panicked
            }
        }
    }

    fn encode(&self, events: Vec<A::Event>, execute: &Execute<A>, now: DateTime<Utc>) -> Batch<A> {
        let (metadata, records) = stamp(
            &events,
            now,
            &*self.services.ids,
            self.instance.tenant.as_ref(),
            execute.causation_id,
            execute.correlation_id,
        );
        Batch {
            events,
            metadata,
            records,
        }
    }

    /// The events are durable: fold them, re-arm, publish, reply.
    fn commit(
        &mut self,
        events: Vec<A::Event>,
        metadata: Vec<Metadata>,
        outcome: AppendOutcome,
        ctx: &mut Context<Self>,
    ) -> Step<A, Reply<A>> {
        let first_version = self.version + 1;
        let expected_next = self.version + events.len() as u64;
        if outcome.next_expected != expected_next {
            // Only an idempotent replay of an earlier append ends anywhere else: the event ids
            // repeat ones already stored, so these events were not appended now.
            let reason = format!(
                "the log reported the events as already stored (stream version {} instead of \
                 {expected_next}); event ids must be unique",
                outcome.next_expected
            );
            tracing::error!(stream = %self.stream(), %reason, "append was not applied");
            let stream = self.stream().clone();
            return self
                .rebuild()
                .map(move |_, _, _| {
                    Err(ExecuteError::Log(LogError::InvalidAppend {
                        stream,
                        reason,
                    }))
                })
                .boxed_local();
        }
        // Folded at the `occurred_at` just stored (the decide's `now`, truncated as the log
        // keeps it), exactly what a rebuild will fold them at.
        let timed = events.iter().zip(metadata.iter().map(|m| m.occurred_at));
        if !self.fold(timed) {
            tracing::error!(stream = %self.stream(), "evolve panicked; rebuilding from the stream");
            return self.recover();
        }
        self.version = outcome.next_expected;
        self.arm(ctx);
        let count = events.len();
        self.publish(first_version, events, metadata, &outcome);
        fut::ready(Ok(self.executed(count, Some(outcome)))).boxed_local()
    }

    /// Folds events another writer appended, then decides `execute` again (once).
    fn catch_up_and_retry(&mut self, execute: Execute<A>) -> Step<A, Reply<A>> {
        let read = read_events::<A>(
            self.services.log.clone(),
            self.stream().clone(),
            self.version,
        );
        wrap_future::<_, Self>(read)
            .then(move |read, act, ctx| match read {
                Ok(newer) => {
                    let last = newer.last().map(|r| r.version);
                    if !act.fold(newer.iter().map(|r| (&r.event, r.metadata.occurred_at))) {
                        return act.recover();
                    }
                    if let Some(v) = last {
                        act.version = v;
                    }
                    act.arm(ctx);
                    act.attempt(execute, false)
                }
                Err(e) => fut::ready(Err(ExecuteError::Log(e))).boxed_local(),
            })
            .boxed_local()
    }

    /// After a panic: discard the state, rebuild it from the stream, answer `Panicked`.
    fn recover(&mut self) -> Step<A, Reply<A>> {
        self.rebuild()
            .map(|_, act, _| {
                Err(ExecuteError::Panicked {
                    stream: act.stream().clone(),
                })
            })
            .boxed_local()
    }

    /// Replaces the state with a replay of the whole stream and re-arms its deadlines. On
    /// failure the actor stays up but not ready: the next command tries again.
    fn rebuild(&mut self) -> Step<A, Result<(), String>> {
        self.ready = false;
        let read = read_events::<A>(self.services.log.clone(), self.stream().clone(), 0);
        wrap_future::<_, Self>(read)
            .map(|read, act, ctx| {
                act.disarm(ctx);
                *act.state = A::default();
                act.version = 0;
                let rebuilt = match read {
                    Ok(history) => {
                        let last = history.last().map_or(0, |r| r.version);
                        if act.fold(history.iter().map(|r| (&r.event, r.metadata.occurred_at))) {
                            act.version = last;
                            Ok(())
                        } else {
                            *act.state = A::default();
                            Err(format!(
                                "evolve panicked while replaying {} events",
                                history.len()
                            ))
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                match &rebuilt {
                    Ok(()) => {
                        act.ready = true;
                        act.arm(ctx);
                        tracing::debug!(stream = %act.stream(), version = act.version, "rebuilt");
                    }
                    Err(reason) => {
                        tracing::error!(stream = %act.stream(), %reason, "cannot rebuild the aggregate");
                    }
                }
                rebuilt
            })
            .boxed_local()
    }

    /// Folds `events`, each at its `occurred_at`, into the state; false if `evolve` panicked
    /// (the state is then garbage).
    fn fold<'e>(&mut self, events: impl IntoIterator<Item = (&'e A::Event, DateTime<Utc>)>) -> bool
    where
        A::Event: 'e,
    {
        let state = &mut self.state;
        catch_unwind(AssertUnwindSafe(|| {
            for (e, at) in events {
                state.evolve(e, at);
            }
        }))
        .is_ok()
    }

    /// Cancels every timer and arms one per deadline the state holds now.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        self.disarm(ctx);
        let deadlines = match catch_unwind(AssertUnwindSafe(|| self.state.deadlines())) {
            Ok(d) => d,
            Err(panic) => {
                tracing::error!(stream = %self.stream(), panic = panic_message(&*panic),
                    "deadlines panicked; no timer armed");
                return;
            }
        };
        self.pending_deadlines = deadlines.len();
        let now = self.services.clock.now();
        for deadline in deadlines {
            self.arm_one(deadline, now, ctx);
        }
    }

    fn arm_one(
        &mut self,
        deadline: Deadline<A::Command>,
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let handle = ctx.run_later(delay_until(now, deadline.at), move |act, ctx| {
            act.deadline_due(deadline, ctx)
        });
        self.timers.push(handle);
    }

    fn disarm(&mut self, ctx: &mut Context<Self>) {
        for handle in self.timers.drain(..) {
            ctx.cancel_future(handle);
        }
        self.pending_deadlines = 0;
    }

    /// A timer fired. Timers are re-armed whenever the state changes, so the deadline is still
    /// in the state; only the clock may disagree (the injected clock is not the timer's).
    fn deadline_due(&mut self, deadline: Deadline<A::Command>, ctx: &mut Context<Self>) {
        let now = self.services.clock.now();
        if now < deadline.at {
            self.arm_one(deadline, now, ctx);
            return;
        }
        tracing::debug!(stream = %self.stream(), at = %deadline.at, command = ?deadline.command,
            "deadline due");
        let run = self.run(Execute::new(deadline.command));
        ctx.wait(run.map(|reply, act, _| match reply {
            Ok(_) => {}
            Err(ExecuteError::Rejected(r)) => {
                tracing::debug!(stream = %act.stream(), rejection = %r, "deadline command rejected")
            }
            Err(e) => {
                tracing::warn!(stream = %act.stream(), error = %e, "deadline command failed")
            }
        }));
    }

    fn publish(
        &self,
        first_version: u64,
        events: Vec<A::Event>,
        metadata: Vec<Metadata>,
        outcome: &AppendOutcome,
    ) {
        let feed = &self.services.published;
        if feed.receiver_count() == 0 {
            return;
        }
        let positions = positions(outcome, events.len());
        for (i, (event, metadata)) in events.into_iter().zip(metadata).enumerate() {
            let _ = feed.send(Recorded {
                position: positions[i],
                stream: self.stream().clone(),
                version: first_version + i as u64,
                metadata,
                event,
            });
        }
    }

    fn executed(&self, events: usize, outcome: Option<AppendOutcome>) -> Executed {
        Executed {
            stream: self.stream().clone(),
            events,
            version: self.version,
            outcome,
        }
    }

    /// Once the instance is finished and holds no deadlines, schedules its stop after the
    /// finished linger; a command in the meantime postpones it.
    fn stop_when_finished(&mut self, ctx: &mut Context<Self>) {
        if self.finishing.is_some() || !self.ready || self.pending_deadlines > 0 {
            return;
        }
        let finished = catch_unwind(AssertUnwindSafe(|| self.state.finished())).unwrap_or(false);
        if !finished {
            return;
        }
        let served = self.served;
        self.finishing = Some(ctx.run_later(self.finished_linger, move |act, ctx| {
            act.finishing = None;
            if act.served == served && act.pending_deadlines == 0 {
                tracing::debug!(stream = %act.stream(), "finished; stopping");
                ctx.stop();
            } else {
                act.stop_when_finished(ctx);
            }
        }));
    }

    fn idle_tick(&mut self, ctx: &mut Context<Self>) {
        if self.served != self.served_at_last_tick {
            self.served_at_last_tick = self.served;
            self.idle_ticks = 0;
            return;
        }
        self.idle_ticks += 1;
        if self.idle_ticks >= IDLE_TICKS && self.pending_deadlines == 0 {
            tracing::debug!(stream = %self.stream(), "idle; stopping");
            ctx.stop();
        }
    }
}

impl<A: Aggregate> Actor for AggregateActor<A> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.ready {
            self.arm(ctx);
        } else {
            ctx.wait(self.rebuild().map(|_, _, _| ()));
        }
        if let Some(idle) = self.idle_after {
            let tick = (idle / IDLE_TICKS).max(Duration::from_millis(1));
            ctx.run_interval(tick, |act, ctx| act.idle_tick(ctx));
        }
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(f) = self.on_stop.take() {
            f();
        }
    }
}

impl<A: Aggregate> Handler<Execute<A>> for AggregateActor<A> {
    type Result = AtomicResponse<Self, Reply<A>>;

    fn handle(&mut self, msg: Execute<A>, _: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(self.run(msg))
    }
}

impl<A: Aggregate> Handler<Submit<A>> for AggregateActor<A> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: Submit<A>, _: &mut Self::Context) -> Self::Result {
        let Submit {
            execute,
            reply,
            permit,
        } = msg;
        AtomicResponse::new(
            self.run(execute)
                .map(move |result, _, _| {
                    let _ = reply.send(result);
                    drop(permit);
                })
                .boxed_local(),
        )
    }
}

impl<A: Aggregate> Handler<Retire> for AggregateActor<A> {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

enum Decided<A: Aggregate> {
    Events(Batch<A>),
    Nothing,
    Rejected(A::Rejection),
    Panicked,
}

struct Batch<A: Aggregate> {
    events: Vec<A::Event>,
    metadata: Vec<Metadata>,
    records: Vec<EventRecord>,
}

/// The stream's events after version `after`, narrowed to this aggregate's event type, with
/// their envelopes (the version and the `occurred_at` they are folded at).
async fn read_events<A: Aggregate>(
    log: Arc<dyn EventLog>,
    stream: StreamId,
    after: u64,
) -> Result<Vec<Recorded<A::Event>>, LogError> {
    let mut out = Vec::new();
    super::for_each_event::<A>(&*log, &stream, after, |recorded| out.push(recorded)).await?;
    Ok(out)
}

/// How long until `at`, as seen at `now`; zero when it has passed.
pub(super) fn delay_until(now: DateTime<Utc>, at: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}

/// The global position of each of `count` events of one append. Exact for the gap-free backends;
/// where positions have gaps (KurrentDB) every event gets the last one.
pub(super) fn positions(outcome: &AppendOutcome, count: usize) -> Vec<GlobalPosition> {
    let (first, last) = (outcome.first_position.0, outcome.last_position.0);
    let contiguous = last >= first && last - first + 1 == count as u64;
    (0..count as u64)
        .map(|i| {
            if contiguous {
                GlobalPosition(first + i)
            } else {
                outcome.last_position
            }
        })
        .collect()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-string panic payload")
}
