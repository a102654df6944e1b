//! The registry of one aggregate kind: finds the live actor for a stream or spawns one (which
//! rebuilds itself from the stream before it takes a command), forgets actors that stopped when
//! idle, and routes commands. It is a cheap, `Send + Sync` handle, usable from actix handlers and
//! from plain tokio tasks alike; only creating it needs a running actix `System`.
//!
//! Two ways in, by who is asking:
//! - [`Registry::try_submit`] / [`Registry::try_execute`] for anything fed by network input
//!   (SIP, websockets, HTTP): they never wait for mailbox space and answer
//!   [`ExecuteError::Overloaded`] when the actor's bounded mailbox is full;
//! - [`Registry::execute`] for internal callers (process managers, simulations, benchmarks),
//!   which waits for room in the mailbox: back-pressure instead of shedding.
//!
//! The bound is a semaphore per actor, one permit per queued or running command, carried inside
//! the message and released when the command is done. actix's own mailbox capacity cannot be
//! the bound: it parks each sender separately, so every clone of an `Addr` may add one more.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix::dev::SendError;
use actix::{Addr, Arbiter, ArbiterHandle};
use events::StreamId;
use events::codec::Recorded;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, oneshot};

use super::shell::{AggregateActor, Reply, Retire, Submit};
use super::{Execute, ExecuteError, Folded, Instance, Services};
use crate::aggregate::Aggregate;

/// How the registry runs its actors.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Commands an actor's mailbox holds before `try_execute` reports overload.
    pub mailbox_capacity: usize,
    /// Stop an actor after about this long without a command (`None`: keep every actor). An
    /// actor holding deadlines is never stopped for idleness.
    pub idle_after: Option<Duration>,
    /// Stop the actor of a finished instance ([`Aggregate::finished`]) after this long without
    /// a command.
    pub finished_linger: Duration,
    /// Arbiters (threads, each a current-thread runtime) to spread actors over by stream; 0 runs
    /// them on the arbiter of the thread that creates the registry.
    pub arbiters: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            mailbox_capacity: 64,
            idle_after: Some(Duration::from_secs(600)),
            finished_linger: super::shell::FINISHED_LINGER,
            arbiters: 0,
        }
    }
}

/// Finds, spawns and routes to the actors of aggregate kind `A`.
pub struct Registry<A: Aggregate> {
    inner: Arc<Inner<A>>,
}

impl<A: Aggregate> Clone for Registry<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for Registry<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.inner.config)
            .field("live", &self.live())
            .finish_non_exhaustive()
    }
}

struct Inner<A: Aggregate> {
    config: RegistryConfig,
    services: Arc<Services<A>>,
    arbiters: Vec<ArbiterHandle>,
    /// Arbiters this registry started; stopped when it is dropped.
    owned: Vec<Arbiter>,
    actors: Mutex<HashMap<StreamId, Entry<A>>>,
    generations: AtomicU64,
}

struct Entry<A: Aggregate> {
    addr: Addr<AggregateActor<A>>,
    /// Tells this actor apart from an earlier or later one of the same stream.
    generation: u64,
    /// Free slots of the mailbox.
    slots: Arc<Semaphore>,
}

/// A live actor as the registry hands it out.
struct Route<A: Aggregate> {
    addr: Addr<AggregateActor<A>>,
    generation: u64,
    slots: Arc<Semaphore>,
}

impl<A: Aggregate> Drop for Inner<A> {
    fn drop(&mut self) {
        for arbiter in &self.owned {
            arbiter.stop();
        }
    }
}

impl<A: Aggregate> Inner<A> {
    fn lock(&self) -> MutexGuard<'_, HashMap<StreamId, Entry<A>>> {
        self.actors.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the entry of `stream` if it is still the actor of that generation.
    fn forget(&self, stream: &StreamId, generation: u64) {
        let mut actors = self.lock();
        if actors
            .get(stream)
            .is_some_and(|e| e.generation == generation)
        {
            actors.remove(stream);
        }
    }
}

impl<A: Aggregate> Registry<A> {
    /// A registry over `services`.
    ///
    /// # Panics
    /// Outside a running actix `System` (actors need an arbiter).
    pub fn new(services: Services<A>, config: RegistryConfig) -> Self {
        let (arbiters, owned) = if config.arbiters == 0 {
            (vec![Arbiter::current()], Vec::new())
        } else {
            let owned: Vec<Arbiter> = (0..config.arbiters).map(|_| Arbiter::new()).collect();
            (owned.iter().map(Arbiter::handle).collect(), owned)
        };
        Self {
            inner: Arc::new(Inner {
                config,
                services: Arc::new(services),
                arbiters,
                owned,
                actors: Mutex::new(HashMap::new()),
                generations: AtomicU64::new(0),
            }),
        }
    }

    /// What every actor shares (the log, the clock, the ids).
    pub fn services(&self) -> &Services<A> {
        &self.inner.services
    }

    pub(super) fn shared_services(&self) -> Arc<Services<A>> {
        self.inner.services.clone()
    }

    /// Seeds streams with the states a fold of the log found (at start-up, before any actor of
    /// this registry appended): an actor spawned for one of them starts from its seed instead
    /// of reading the stream, and so does a [`Follower`](super::Follower) built with
    /// [`Follower::of`](super::Follower::of). A stream's seed is dropped when the first append
    /// to it is issued, so a seed never stands for a state the log has moved past.
    pub fn seed(&self, states: impl IntoIterator<Item = (StreamId, Folded<A>)>) {
        self.inner.services.seeds().extend(states);
    }

    /// Seeds a stream known to be empty (named by a fresh id, such as a new call's), so its
    /// actor starts without reading it. [`Registry::unseed`] it if no command ever reaches it.
    pub fn seed_new(&self, stream: &StreamId) {
        self.seed([(stream.clone(), Folded::default())]);
    }

    /// Drops the seed of `stream`, if it still has one.
    pub fn unseed(&self, stream: &StreamId) {
        self.inner.services.unseed(stream);
    }

    /// A live feed of every event the actors record, after it is durable.
    pub fn subscribe(&self) -> broadcast::Receiver<Recorded<A::Event>> {
        self.inner.services.published.subscribe()
    }

    /// How many actors are live.
    pub fn live(&self) -> usize {
        self.inner.lock().len()
    }

    /// Whether `stream` has a live actor.
    pub fn is_live(&self, stream: &StreamId) -> bool {
        self.inner
            .lock()
            .get(stream)
            .is_some_and(|e| e.addr.connected())
    }

    /// The actor of `instance`, spawned (and so rebuilt, with its deadlines re-armed) if it was
    /// not live. Call it at start-up for aggregates known to hold deadlines.
    pub fn activate(&self, instance: &Instance) -> Addr<AggregateActor<A>> {
        self.lookup(instance).addr
    }

    /// Runs a command, waiting for room in the mailbox if it is full. For internal callers.
    pub async fn execute(&self, instance: &Instance, execute: Execute<A>) -> Reply<A> {
        let mut execute = execute;
        for _ in 0..2 {
            let route = self.lookup(instance);
            let Ok(permit) = route.slots.clone().acquire_owned().await else {
                return Err(unavailable(&instance.stream, "its mailbox is closed"));
            };
            let generation = route.generation;
            let retry = execute.clone();
            match self.send(instance, route, execute, permit)? {
                // A reply dropped unanswered means the actor stopped (idle) with the command
                // still queued, so it never ran: send it again to a fresh actor.
                Ok(pending) => match pending.rx.await {
                    Ok(reply) => return reply,
                    Err(_) => {
                        self.inner.forget(&instance.stream, generation);
                        execute = retry;
                    }
                },
                Err(returned) => execute = returned,
            }
        }
        Err(stopped_twice(&instance.stream))
    }

    /// Queues a command without waiting for mailbox space: `Overloaded` when the mailbox is full.
    /// The returned [`Pending`] resolves to the reply; dropping it does not cancel the command.
    pub fn try_submit(
        &self,
        instance: &Instance,
        execute: Execute<A>,
    ) -> Result<Pending<A>, ExecuteError<A::Rejection>> {
        let mut execute = execute;
        for _ in 0..2 {
            let route = self.lookup(instance);
            let Ok(permit) = route.slots.clone().try_acquire_owned() else {
                tracing::warn!(stream = %instance.stream, "mailbox full; command refused");
                return Err(overloaded(&instance.stream));
            };
            match self.send(instance, route, execute, permit)? {
                Ok(pending) => return Ok(pending),
                Err(returned) => execute = returned,
            }
        }
        Err(stopped_twice(&instance.stream))
    }

    /// [`Registry::try_submit`], then waits for the reply. For paths fed by network input.
    pub async fn try_execute(&self, instance: &Instance, execute: Execute<A>) -> Reply<A> {
        self.try_submit(instance, execute)?.await
    }

    /// Stops the actor of `stream` after its current command; the next command rebuilds it.
    /// Returns whether there was one.
    pub async fn retire(&self, stream: &StreamId) -> bool {
        let entry = self.inner.lock().remove(stream);
        match entry {
            Some(e) => e.addr.send(Retire).await.is_ok(),
            None => false,
        }
    }

    /// Stops every actor (their deadlines are re-armed when they are activated again).
    pub async fn shutdown(&self) {
        let entries: Vec<Entry<A>> = self.inner.lock().drain().map(|(_, e)| e).collect();
        for e in entries {
            let _ = e.addr.send(Retire).await;
        }
    }

    /// Queues `execute` on the actor of `route`; hands the command back if that actor has
    /// stopped (it is forgotten, so the next lookup spawns a fresh one).
    #[allow(
        clippy::type_complexity,
        reason = "three outcomes: queued, refused, or handed back to retry"
    )]
    fn send(
        &self,
        instance: &Instance,
        route: Route<A>,
        execute: Execute<A>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Result<Pending<A>, Execute<A>>, ExecuteError<A::Rejection>> {
        let (reply, rx) = oneshot::channel();
        let submit = Submit {
            execute,
            reply,
            permit,
        };
        match route.addr.try_send(submit) {
            Ok(()) => Ok(Ok(Pending {
                rx,
                stream: instance.stream.clone(),
            })),
            // The permits keep the queue within capacity; actix refuses only a sender it parked.
            Err(SendError::Full(_)) => Err(overloaded(&instance.stream)),
            // The actor stopped (idle) before it took the command: spawn it again.
            Err(SendError::Closed(submit)) => {
                self.inner.forget(&instance.stream, route.generation);
                Ok(Err(submit.execute))
            }
        }
    }

    fn lookup(&self, instance: &Instance) -> Route<A> {
        let mut actors = self.inner.lock();
        if let Some(e) = actors.get(&instance.stream)
            && e.addr.connected()
        {
            return Route {
                addr: e.addr.clone(),
                generation: e.generation,
                slots: e.slots.clone(),
            };
        }
        let generation = self.inner.generations.fetch_add(1, Ordering::Relaxed);
        let weak = Arc::downgrade(&self.inner);
        let stream = instance.stream.clone();
        let capacity = self.inner.config.mailbox_capacity.max(1);
        let actor = AggregateActor::new(
            instance.clone(),
            self.inner.services.clone(),
            capacity,
            self.inner.config.idle_after,
        )
        .finished_linger(self.inner.config.finished_linger)
        .seeded(self.inner.services.seed_of(&instance.stream))
        .on_stop(move || {
            if let Some(inner) = weak.upgrade() {
                inner.forget(&stream, generation);
            }
        });
        let addr = actor.start_on(self.arbiter_for(&instance.stream));
        let slots = Arc::new(Semaphore::new(capacity));
        tracing::debug!(stream = %instance.stream, generation, "actor spawned");
        actors.insert(
            instance.stream.clone(),
            Entry {
                addr: addr.clone(),
                generation,
                slots: slots.clone(),
            },
        );
        Route {
            addr,
            generation,
            slots,
        }
    }

    fn arbiter_for(&self, stream: &StreamId) -> &ArbiterHandle {
        let arbiters = &self.inner.arbiters;
        if arbiters.len() == 1 {
            return &arbiters[0];
        }
        let mut h = DefaultHasher::new();
        stream.hash(&mut h);
        &arbiters[(h.finish() % arbiters.len() as u64) as usize]
    }
}

/// The reply to a command queued with [`Registry::try_submit`].
#[derive(Debug)]
pub struct Pending<A: Aggregate> {
    rx: oneshot::Receiver<Reply<A>>,
    stream: StreamId,
}

impl<A: Aggregate> Future for Pending<A> {
    type Output = Reply<A>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Ready(Ok(reply)) => Poll::Ready(reply),
            // The actor stopped before it took the command.
            Poll::Ready(Err(_)) => Poll::Ready(Err(unavailable(
                &self.stream,
                "its actor stopped before taking the command",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn overloaded<R>(stream: &StreamId) -> ExecuteError<R> {
    ExecuteError::Overloaded {
        stream: stream.clone(),
    }
}

fn stopped_twice<R>(stream: &StreamId) -> ExecuteError<R> {
    unavailable(stream, "its actor stopped twice before taking the command")
}

fn unavailable<R>(stream: &StreamId, reason: &str) -> ExecuteError<R> {
    ExecuteError::Unavailable {
        stream: stream.clone(),
        reason: reason.to_owned(),
    }
}
