//! Reading one aggregate's stream back from the log: every event after a version, decoded and
//! narrowed to the aggregate's own event type (an event of another aggregate is corruption), in
//! pages. The actor shell rebuilds from it, start-up provisioning folds with it, and the edges'
//! read models ([`Folded`]) catch up with it; a [`Follower`] keeps many of them current from an
//! aggregate kind's live feed and reads the log only when the feed cannot vouch for one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events::codec::{self, Recorded};
use events::{EventLog, LogError, StreamId};
use tokio::sync::broadcast;

use super::{Registry, Services};
use crate::aggregate::Aggregate;

/// Events read per page.
const PAGE: usize = 1024;

/// Hands `each` every event of `stream` after version `after`, in order, narrowed to `A`'s
/// events. Returns the version of the last one (`after` when there were none).
pub async fn for_each_event<A: Aggregate>(
    log: &dyn EventLog,
    stream: &StreamId,
    after: u64,
    mut each: impl FnMut(Recorded<A::Event>),
) -> Result<u64, LogError> {
    let corrupt = |detail: String| LogError::Corrupt {
        target: stream.to_string(),
        detail,
    };
    let mut after = after;
    loop {
        let page = log.read_stream(stream, after, PAGE).await?;
        let full = page.len() == PAGE;
        for stored in &page {
            let recorded = codec::decode(stored).map_err(|e| corrupt(e.to_string()))?;
            let recorded = recorded.narrow::<A::Event>().map_err(|other| {
                corrupt(format!(
                    "{} at version {} belongs to another aggregate",
                    other.event.event_type(),
                    other.version
                ))
            })?;
            after = recorded.version;
            each(recorded);
        }
        if !full {
            return Ok(after);
        }
    }
}

/// The state of one stream folded up to `version`, caught up from the log on demand: a read
/// model of one aggregate for code outside its actor (the actor is the only writer).
#[derive(Debug, Clone, Default)]
pub struct Folded<A> {
    pub version: u64,
    pub state: A,
}

impl<A: Aggregate> Folded<A> {
    /// Folds what `stream` holds beyond `version`, each event at its recorded time.
    pub async fn catch_up(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamId,
    ) -> Result<(), LogError> {
        let state = &mut self.state;
        self.version = for_each_event::<A>(log, stream, self.version, |recorded| {
            state.evolve(&recorded.event, recorded.metadata.occurred_at);
        })
        .await?;
        Ok(())
    }
}

/// Read models of many streams of one aggregate kind, kept current from the registry's live feed
/// ([`Registry::subscribe`](super::Registry::subscribe)) and caught up from the log only when the
/// feed cannot vouch for them: a stream seen for the first time (unless a seed stands for it),
/// a gap in its versions, or a lagging feed. The actor shell publishes a command's events before
/// it replies, so once a command has completed, its events are in the feed: asking for the
/// version it reported needs no read of the log.
///
/// A read of the log and the feed race: an event appended after the read and drained from the
/// feed before the read is stored is folded into nothing. Each stream therefore remembers the
/// newest version the feed brought that it could not fold (`missed`), and the follower counts
/// the feed's lags; a read vouches for the stream only if it covers what was missed and no lag
/// happened while it ran.
///
/// One stream is read by one caller at a time: whoever asks for it while it is being read waits
/// for that read and takes its result when it is new enough. After a lag every stream needs a
/// read, and without this each call of a busy extension would read the same events at once
/// (under a call storm, thousands of concurrent reads of one callee's stream).
pub struct Follower<A: Aggregate> {
    log: Arc<dyn EventLog>,
    /// The registry's services when built with [`Follower::of`]: their seeds stand in for a
    /// first read.
    seeds: Option<Arc<Services<A>>>,
    feed: Mutex<Feed<A>>,
    states: Mutex<HashMap<StreamId, Followed<A>>>,
}

struct Feed<A: Aggregate> {
    receiver: broadcast::Receiver<Recorded<A::Event>>,
    /// How many times the feed lagged (lost events of any stream).
    lags: u64,
}

struct Followed<A> {
    folded: Folded<A>,
    /// Every event of the stream the feed delivered since `folded` was read is folded in.
    in_step: bool,
    /// The newest version the feed delivered that was not folded (0: none).
    missed: u64,
    /// Held while the stream is read from the log (made by a read, dropped by the last caller
    /// done with it).
    reading: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Reads of the stream stored so far.
    reads: u64,
}

impl<A> Followed<A> {
    fn new(folded: Folded<A>, in_step: bool) -> Self {
        Self {
            folded,
            in_step,
            missed: 0,
            reading: None,
            reads: 0,
        }
    }
}

/// Drops `f`'s read gate when the caller done with it (still holding its clone) is the last to
/// hold it: a stream read once keeps no gate, and one that callers wait on keeps it for them.
fn release_gate<A>(f: &mut Followed<A>) {
    if f.reading
        .as_ref()
        .is_some_and(|g| Arc::strong_count(g) <= 2)
    {
        f.reading = None;
    }
}

/// The entry of `stream`, made (not yet read, so not in step) if it has none.
fn followed<'s, A: Aggregate>(
    states: &'s mut HashMap<StreamId, Followed<A>>,
    stream: &StreamId,
) -> &'s mut Followed<A> {
    states
        .entry(stream.clone())
        .or_insert_with(|| Followed::new(Folded::default(), false))
}

impl<A: Aggregate> std::fmt::Debug for Follower<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("log", &self.log.describe())
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> Follower<A> {
    /// Follows `feed` (subscribe before anything is read) over `log`.
    pub fn new(log: Arc<dyn EventLog>, feed: broadcast::Receiver<Recorded<A::Event>>) -> Self {
        Self {
            log,
            seeds: None,
            feed: Mutex::new(Feed {
                receiver: feed,
                lags: 0,
            }),
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Follows the actors of `registry`: its live feed, and its seeds ([`Registry::seed`]) in
    /// place of the first read of a seeded stream.
    ///
    /// Room is made for as many streams as there are seeds: when they all come at once (every
    /// phone registering after a restart), the map does not grow and move its entries meanwhile.
    pub fn of(registry: &Registry<A>) -> Self {
        let services = registry.shared_services();
        let seeded = services.seeds().len();
        Self {
            seeds: Some(services.clone()),
            states: Mutex::new(HashMap::with_capacity(seeded)),
            ..Self::new(services.log.clone(), registry.subscribe())
        }
    }

    /// Starts following a stream known to be empty (a new call), so its first events need no
    /// read either.
    pub fn track_new(&self, stream: &StreamId) {
        self.states()
            .insert(stream.clone(), Followed::new(Folded::default(), true));
    }

    /// Stops following `stream`.
    pub fn forget(&self, stream: &StreamId) {
        self.states().remove(stream);
    }

    /// The state of `stream` including at least version `at_least` (0: whatever is known; a
    /// stream not followed yet is read, unless a seed covers `at_least`). Reads the log only when
    /// the feed did not bring it, and only when no other caller is reading it: then it waits for
    /// that read.
    pub async fn current(&self, stream: &StreamId, at_least: u64) -> Result<Folded<A>, LogError> {
        self.current_with(stream, at_least, Folded::clone).await
    }

    /// What `read` takes from the state [`current`](Self::current) would return, read in place:
    /// a caller that needs a few fields of a large state copies only those. `read` may run under
    /// the follower's lock (the one every stream and the feed share), so it must be quick and
    /// must not block.
    pub async fn current_with<T>(
        &self,
        stream: &StreamId,
        at_least: u64,
        read: impl FnOnce(&Folded<A>) -> T,
    ) -> Result<T, LogError> {
        self.drain();
        let (gate, reads) = {
            let mut states = self.states();
            let fresh = !states.contains_key(stream);
            // Followed from here on, so that what the feed brings during the read is noted.
            let f = followed(&mut states, stream);
            if f.in_step && f.folded.version >= at_least {
                return Ok(read(&f.folded));
            }
            // A seed stands for the stream only while no append to it was issued (the actor
            // drops it first); one issued after this point is published later, so the feed
            // brings it to the entry just made like any other. Nothing to read, nothing to wait.
            // (Seeds come from the start-up fold, before any actor or other writer ran.)
            if let Some(seed) = self
                .seeds
                .as_ref()
                .filter(|_| fresh)
                .and_then(|s| s.seed_of(stream))
                .filter(|s| s.version >= at_least)
            {
                f.folded = seed;
                f.in_step = true;
                f.reads += 1;
                return Ok(read(&f.folded));
            }
            let gate = f.reading.get_or_insert_with(Default::default).clone();
            (gate, f.reads)
        };
        let _reading = gate.lock().await;
        let lags = self.drain();
        let mut folded = {
            let mut states = self.states();
            let f = followed(&mut states, stream);
            // A read stored while this caller waited ended after it asked: taken as its own.
            let read_meanwhile = f.reads > reads;
            if (f.in_step || read_meanwhile) && f.folded.version >= at_least {
                let taken = read(&f.folded);
                release_gate(f);
                return Ok(taken);
            }
            f.folded.clone()
        };
        let caught_up = folded.catch_up(&*self.log, stream).await;
        let lagged = self.drain() != lags;
        // Taken from the read before it is stored, so that it is moved into place, not copied.
        let taken = caught_up.map(|()| read(&folded));
        if let Some(f) = self.states().get_mut(stream) {
            if taken.is_ok() && f.folded.version <= folded.version {
                f.in_step = !lagged && f.missed <= folded.version;
                f.folded = folded;
                f.reads += 1;
            }
            release_gate(f);
        }
        taken
    }

    /// How many streams have a read gate (tests: gates go with their last holder).
    #[cfg(test)]
    pub(crate) fn read_gates(&self) -> usize {
        self.states()
            .values()
            .filter(|f| f.reading.is_some())
            .count()
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Followed<A>>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds what the feed delivered into the streams followed; returns how many times the feed
    /// has lagged so far.
    fn drain(&self) -> u64 {
        let mut feed = self.feed.lock().unwrap_or_else(|p| p.into_inner());
        let mut states = self.states();
        loop {
            match feed.receiver.try_recv() {
                Ok(recorded) => {
                    let Some(f) = states.get_mut(&recorded.stream) else {
                        continue;
                    };
                    if recorded.version <= f.folded.version {
                        continue;
                    }
                    if !f.in_step || recorded.version != f.folded.version + 1 {
                        f.in_step = false;
                        f.missed = f.missed.max(recorded.version);
                        continue;
                    }
                    f.folded
                        .state
                        .evolve(&recorded.event, recorded.metadata.occurred_at);
                    f.folded.version = recorded.version;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    feed.lags += 1;
                    states.values_mut().for_each(|f| f.in_step = false);
                }
                Err(_) => return feed.lags,
            }
        }
    }
}
