//! The runtime: the actix actor shell around every aggregate and the registry that finds,
//! rebuilds, supervises and retires those actors. The shell is deliberately thin: it reads the
//! clock, calls the aggregate's pure `decide`, appends the events with the expected stream version
//! (durable before anything else happens), folds them with `evolve`, re-arms the state's
//! deadlines and publishes what was recorded. It holds no business rule, so it can move to
//! another actor library (actix is in passive maintenance) without touching a domain module.
//!
//! What this module guarantees:
//! - commands to one aggregate run strictly one after another, across the append's `await`;
//! - a panic in `decide` or `evolve` fails that command only: the actor rebuilds its state from
//!   its stream and keeps serving, and no other actor notices;
//! - every path fed by network input is bounded: [`Registry::try_execute`] never waits for
//!   mailbox space and reports [`ExecuteError::Overloaded`] instead;
//! - deadlines held in state are armed after every rebuild and every accepted command, so they
//!   survive a restart once the aggregate is activated again ([`Registry::activate`]);
//! - a stream can be seeded with the state the start-up fold found ([`Registry::seed`]): its
//!   actor and its [`Follower`]s start from that state instead of reading the stream, until the
//!   first append to the stream, which drops the seed.

mod bench;
mod engine;
mod folded;
mod registry;
mod shell;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use events::codec::Recorded;
use events::{AppendOutcome, Clock, CorrelationId, EventId, EventLog, IdGen, LogError};
use events::{StreamId, TenantId};
use tokio::sync::broadcast;

use crate::aggregate::Aggregate;

pub use bench::{Throughput, measure_sqlite, push_commands};
pub use engine::{Engine, EngineConfig, EngineError, EngineThread, Provisioned, Settled};
pub use folded::{Folded, Follower, for_each_event};
pub use registry::{Pending, Registry, RegistryConfig};
pub use shell::AggregateActor;

/// One aggregate instance: the stream it lives in and the tenant its events belong to (absent
/// for system and reseller streams). The registry keys actors by the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Instance {
    pub stream: StreamId,
    pub tenant: Option<TenantId>,
}

impl Instance {
    pub fn new(stream: StreamId) -> Self {
        Self {
            stream,
            tenant: None,
        }
    }

    pub fn in_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }
}

/// A command for one aggregate, with where it came from. The ids go into the envelope of every
/// event the command produces.
#[derive(Debug, Clone)]
pub struct Execute<A: Aggregate> {
    pub command: A::Command,
    /// Commands decided after `command`, each on the state the earlier ones leave, and recorded
    /// with it in one append: all of them or, if any is refused, none.
    pub then: Vec<A::Command>,
    pub causation_id: Option<EventId>,
    pub correlation_id: Option<CorrelationId>,
}

impl<A: Aggregate> Execute<A> {
    pub fn new(command: A::Command) -> Self {
        Self {
            command,
            then: Vec::new(),
            causation_id: None,
            correlation_id: None,
        }
    }

    /// Adds `command` to be decided after the ones before it, in the same append.
    pub fn then(mut self, command: A::Command) -> Self {
        self.then.push(command);
        self
    }

    pub fn caused_by(mut self, event: EventId) -> Self {
        self.causation_id = Some(event);
        self
    }

    pub fn correlated(mut self, correlation: CorrelationId) -> Self {
        self.correlation_id = Some(correlation);
        self
    }
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    pub stream: StreamId,
    /// How many events the command appended (0: accepted, nothing changed).
    pub events: usize,
    /// The stream's version after the command.
    pub version: u64,
    /// Where the events went; `None` when there were none.
    pub outcome: Option<AppendOutcome>,
}

/// Why a command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<R> {
    /// The aggregate said no; nothing was written.
    #[error("rejected: {0}")]
    Rejected(R),
    /// The log failed (or another writer won twice in a row). A stale-version conflict is retried
    /// once internally before it is reported.
    #[error(transparent)]
    Log(#[from] LogError),
    /// `decide` or `evolve` panicked. The actor discarded its state and rebuilt it from the
    /// stream; whatever the log holds is the truth.
    #[error("aggregate {stream} panicked on this command and was rebuilt from its stream")]
    Panicked { stream: StreamId },
    /// The mailbox is full; the caller should shed load or retry later.
    #[error("aggregate {stream} is overloaded (its mailbox is full)")]
    Overloaded { stream: StreamId },
    /// The actor is gone or could not be rebuilt.
    #[error("aggregate {stream} is unavailable: {reason}")]
    Unavailable { stream: StreamId, reason: String },
}

/// What every actor of one aggregate kind shares: the log, time, identity and the live feed.
pub struct Services<A: Aggregate> {
    pub log: Arc<dyn EventLog>,
    pub clock: Arc<dyn Clock>,
    pub ids: Arc<dyn IdGen>,
    /// Every event an actor recorded, after it was durable and folded. Best effort: a receiver
    /// that lags loses events (tokio `broadcast`); anything that must not miss one reads the log.
    pub published: broadcast::Sender<Recorded<A::Event>>,
    /// States known without reading the log (the start-up fold), by stream: valid until the
    /// first append to that stream is issued, which removes it.
    seeds: Mutex<HashMap<StreamId, Folded<A>>>,
}

impl<A: Aggregate> Services<A> {
    /// Services with a live feed of `capacity` events per receiver.
    pub fn new(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
        capacity: usize,
    ) -> Self {
        Self {
            log,
            clock,
            ids,
            published: broadcast::channel(capacity.max(1)).0,
            seeds: Mutex::new(HashMap::new()),
        }
    }

    fn seeds(&self) -> MutexGuard<'_, HashMap<StreamId, Folded<A>>> {
        self.seeds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The seeded state of `stream`, if nothing was appended to it since it was seeded.
    pub(crate) fn seed_of(&self, stream: &StreamId) -> Option<Folded<A>> {
        self.seeds().get(stream).cloned()
    }

    /// Forgets the seed of `stream`: an append to it is about to be issued.
    pub(crate) fn unseed(&self, stream: &StreamId) {
        self.seeds().remove(stream);
    }
}

impl<A: Aggregate> fmt::Debug for Services<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services")
            .field("log", &self.log.describe())
            .field("clock", &self.clock)
            .field("ids", &self.ids)
            .finish_non_exhaustive()
    }
}
