//! Replay: folds a whole ordered log (a backend's `read_all`, or a file `ledgerline export`
//! wrote) through the aggregates, one state per stream chosen by the stream's category, and
//! reports every place where the log and the aggregates disagree. Such a divergence is a log the
//! engine could not have written: a stream whose versions skip, repeat or go back, positions
//! that do not increase, time running backwards inside a stream, an event of one aggregate in
//! another's stream, a stream of a category no aggregate folds, a record that does not decode,
//! or an event the aggregate's `evolve` had to ignore because it made no sense for the state it
//! was folded into (the private `checks` module holds how each aggregate tells those apart).
//!
//! Nothing here reads a clock for the fold itself: overdue deadlines are judged against the
//! newest `occurred_at` of the log. The time spent folding is measured (an `Instant` per event),
//! so the report can give a throughput.
//!
//! The same fold answers start-up's question, which streams still hold timers:
//! [`pending_deadlines`] lists them by category with the [`Instance`] each registry's
//! `activate` takes.

mod checks;
#[cfg(test)]
mod scenario;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use events::codec::{Recorded, decode};
use events::log::prefetch_all;
use events::model::Event;
use events::{Category, EventLog, GlobalPosition, LogError, StoredEvent, StreamId, TenantId};

use crate::call::Call;
use crate::conference::Conference;
use crate::directory::Directory;
use crate::extension::Extension;
use crate::panel::WatchList;
use crate::queue::Queue;
use crate::room::{ChannelRoom, Conversation};
use crate::runtime::Instance;
use crate::voicemail::VoicemailBox;

/// How many divergences a fold keeps in full; beyond this they are only counted.
pub const KEPT_DIVERGENCES: usize = 10_000;

/// One place where the log disagrees with the aggregates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence {
    pub position: GlobalPosition,
    pub stream: StreamId,
    /// The version the log gives the event.
    pub version: u64,
    pub kind: DivergenceKind,
}

/// What is wrong at a [`Divergence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The stream skipped versions: `expected` was next and `found` came. The event is folded
    /// (the missing ones are lost) and the stream continues from `found`.
    VersionGap { expected: u64, found: u64 },
    /// The stream's last version came again. Not folded.
    VersionRepeated,
    /// A version lower than the stream's last one (or 0). Not folded.
    VersionBackwards { last: u64 },
    /// The global position is not after the previous event's.
    PositionNotIncreasing { previous: GlobalPosition },
    /// The event happened before the previous event of its stream.
    TimeWentBackwards {
        previous: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The envelope's tenant differs from the one the stream's first event had.
    TenantChanged {
        was: Option<TenantId>,
        now: Option<TenantId>,
    },
    /// The event belongs to another category's aggregate than its stream's. Not folded.
    WrongAggregate {
        event_type: &'static str,
        belongs_to: Category,
    },
    /// No aggregate of this build folds the stream's category (reported once per stream; its
    /// events are counted, not folded). `system` streams hold facts only and are not reported.
    NoAggregate { category: Category },
    /// The stored record does not decode into an event of this build.
    Undecodable { error: String },
    /// Folding the event changed nothing it should have changed: `evolve` ignored it because it
    /// made no sense for the state (a leg, contact, agent or message it names is not there, or
    /// what it records already held).
    Ignored { event_type: &'static str },
    /// The event does not fit the state it was folded into, although folding it changed
    /// something (it came before its aggregate was created, re-created it, reused an id, ended
    /// something twice, …).
    Misfit {
        event_type: &'static str,
        why: &'static str,
    },
    /// `evolve` panicked on the event; the state is kept as the panic left it.
    Panicked {
        event_type: &'static str,
        message: String,
    },
}

impl DivergenceKind {
    /// A short name for counting divergences by kind.
    pub fn name(&self) -> &'static str {
        match self {
            DivergenceKind::VersionGap { .. } => "version gap",
            DivergenceKind::VersionRepeated => "version repeated",
            DivergenceKind::VersionBackwards { .. } => "version backwards",
            DivergenceKind::PositionNotIncreasing { .. } => "position not increasing",
            DivergenceKind::TimeWentBackwards { .. } => "time went backwards",
            DivergenceKind::TenantChanged { .. } => "tenant changed",
            DivergenceKind::WrongAggregate { .. } => "wrong aggregate",
            DivergenceKind::NoAggregate { .. } => "no aggregate",
            DivergenceKind::Undecodable { .. } => "undecodable",
            DivergenceKind::Ignored { .. } => "ignored by evolve",
            DivergenceKind::Misfit { .. } => "does not fit the state",
            DivergenceKind::Panicked { .. } => "evolve panicked",
        }
    }
}

impl fmt::Display for DivergenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DivergenceKind::VersionGap { expected, found } if found - expected == 1 => {
                write!(
                    f,
                    "version {expected} is missing (the stream goes on at {found})"
                )
            }
            DivergenceKind::VersionGap { expected, found } => write!(
                f,
                "versions {expected} to {} are missing (the stream goes on at {found})",
                found - 1
            ),
            DivergenceKind::VersionRepeated => f.write_str("the version appears twice"),
            DivergenceKind::VersionBackwards { last } => {
                write!(f, "the version is not after the stream's last one ({last})")
            }
            DivergenceKind::PositionNotIncreasing { previous } => {
                write!(f, "the position is not after the previous one ({previous})")
            }
            DivergenceKind::TimeWentBackwards { previous, at } => write!(
                f,
                "occurred at {at}, before the stream's previous event ({previous})"
            ),
            DivergenceKind::TenantChanged { was, now } => write!(
                f,
                "the tenant changes from {} to {}",
                tenant_name(was.as_ref()),
                tenant_name(now.as_ref())
            ),
            DivergenceKind::WrongAggregate {
                event_type,
                belongs_to,
            } => write!(
                f,
                "{event_type} belongs to the {belongs_to} aggregate, not this stream's"
            ),
            DivergenceKind::NoAggregate { category } => {
                write!(f, "no aggregate folds the {category} category")
            }
            DivergenceKind::Undecodable { error } => write!(f, "cannot decode: {error}"),
            DivergenceKind::Ignored { event_type } => write!(
                f,
                "{event_type} changed nothing: it does not apply to the state it was folded into"
            ),
            DivergenceKind::Misfit { event_type, why } => {
                write!(f, "{event_type} does not fit the state: {why}")
            }
            DivergenceKind::Panicked {
                event_type,
                message,
            } => write!(f, "evolve panicked on {event_type}: {message}"),
        }
    }
}

fn tenant_name(t: Option<&TenantId>) -> &str {
    t.map_or("none", TenantId::as_str)
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "position {}, {} version {}: {}",
            self.position, self.stream, self.version, self.kind
        )
    }
}

/// A stream's aggregate state after the fold.
#[derive(Debug, Clone)]
pub enum AggregateState {
    Directory(Box<Directory>),
    Extension(Box<Extension>),
    Call(Box<Call>),
    Queue(Box<Queue>),
    Conference(Box<Conference>),
    Room(Box<ChannelRoom>),
    Conversation(Box<Conversation>),
    Voicemail(Box<VoicemailBox>),
    Panel(Box<WatchList>),
    /// A category no aggregate folds (`system` facts, or one this build has no aggregate for):
    /// its events are counted and checked for order, not folded.
    Unfolded(Category),
}

impl AggregateState {
    /// The empty state of `category`'s aggregate.
    pub fn initial(category: Category) -> Self {
        match category {
            Category::Directory => Self::Directory(Box::default()),
            Category::Extension => Self::Extension(Box::default()),
            Category::Call => Self::Call(Box::default()),
            Category::Queue => Self::Queue(Box::default()),
            Category::Conference => Self::Conference(Box::default()),
            Category::Room => Self::Room(Box::default()),
            Category::Conversation => Self::Conversation(Box::default()),
            Category::Voicemail => Self::Voicemail(Box::default()),
            Category::Panel => Self::Panel(Box::default()),
            Category::Sms | Category::System => Self::Unfolded(category),
        }
    }

    pub fn category(&self) -> Category {
        match self {
            Self::Directory(_) => Category::Directory,
            Self::Extension(_) => Category::Extension,
            Self::Call(_) => Category::Call,
            Self::Queue(_) => Category::Queue,
            Self::Conference(_) => Category::Conference,
            Self::Room(_) => Category::Room,
            Self::Conversation(_) => Category::Conversation,
            Self::Voicemail(_) => Category::Voicemail,
            Self::Panel(_) => Category::Panel,
            Self::Unfolded(category) => *category,
        }
    }

    /// The state as aggregate `A`'s: `None` when it is another kind's, or unfolded.
    pub fn get<A: crate::Aggregate>(&self) -> Option<&A> {
        let state: &dyn Any = match self {
            Self::Directory(s) => &**s,
            Self::Extension(s) => &**s,
            Self::Call(s) => &**s,
            Self::Queue(s) => &**s,
            Self::Conference(s) => &**s,
            Self::Room(s) => &**s,
            Self::Conversation(s) => &**s,
            Self::Voicemail(s) => &**s,
            Self::Panel(s) => &**s,
            Self::Unfolded(_) => return None,
        };
        state.downcast_ref()
    }

    /// When the state's timers fall due, in the order the aggregate lists them (empty when it
    /// holds none).
    pub fn deadlines(&self) -> Vec<DateTime<Utc>> {
        fn at<A: crate::Aggregate>(state: &A) -> Vec<DateTime<Utc>> {
            state.deadlines().into_iter().map(|d| d.at).collect()
        }
        match self {
            Self::Directory(s) => at(&**s),
            Self::Extension(s) => at(&**s),
            Self::Call(s) => at(&**s),
            Self::Queue(s) => at(&**s),
            Self::Conference(s) => at(&**s),
            Self::Room(s) => at(&**s),
            Self::Conversation(s) => at(&**s),
            Self::Voicemail(s) => at(&**s),
            Self::Panel(s) => at(&**s),
            Self::Unfolded(_) => Vec::new(),
        }
    }

    /// Folds one event; what was wrong with it, if anything.
    fn fold(&mut self, event: Event, at: DateTime<Utc>) -> Option<DivergenceKind> {
        match self {
            Self::Directory(s) => checks::fold(&mut **s, event, at),
            Self::Extension(s) => checks::fold(&mut **s, event, at),
            Self::Call(s) => checks::fold(&mut **s, event, at),
            Self::Queue(s) => checks::fold(&mut **s, event, at),
            Self::Conference(s) => checks::fold(&mut **s, event, at),
            Self::Room(s) => checks::fold(&mut **s, event, at),
            Self::Conversation(s) => checks::fold(&mut **s, event, at),
            Self::Voicemail(s) => checks::fold(&mut **s, event, at),
            Self::Panel(s) => checks::fold(&mut **s, event, at),
            Self::Unfolded(category) => {
                (event.category() != *category).then(|| DivergenceKind::WrongAggregate {
                    event_type: event.event_type(),
                    belongs_to: event.category(),
                })
            }
        }
    }
}

/// Whether a category's streams are facts with no aggregate by design (not a divergence):
/// `system` facts. They are still checked for order, versions and event types.
fn facts_only(category: Category) -> bool {
    matches!(category, Category::System)
}

/// One stream after the fold.
#[derive(Debug, Clone)]
pub struct FoldedStream {
    version: u64,
    events: u64,
    tenant: Option<TenantId>,
    last_at: Option<DateTime<Utc>>,
    state: AggregateState,
}

impl FoldedStream {
    /// The last version folded.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// Events folded into this stream (repeated and backward versions are not).
    pub fn events(&self) -> u64 {
        self.events
    }
    /// The tenant of the stream's first event.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.tenant.as_ref()
    }
    /// The newest `occurred_at` of the stream.
    pub fn last_at(&self) -> Option<DateTime<Utc>> {
        self.last_at
    }
    pub fn state(&self) -> &AggregateState {
        &self.state
    }
}

/// Streams and events of one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoryCount {
    pub streams: u64,
    pub events: u64,
}

/// Folds a log one event at a time, in position order; [`Replay::finish`] hands over the
/// result. Nothing it is given is refused: every problem becomes a [`Divergence`].
#[derive(Debug, Default)]
pub struct Replay {
    folded: Folded,
}

impl Replay {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one decoded event.
    pub fn push(&mut self, record: Recorded) {
        let started = Instant::now();
        let Recorded {
            position,
            stream,
            version,
            metadata,
            event,
        } = record;
        self.folded.take(
            position,
            stream,
            version,
            metadata.occurred_at,
            metadata.tenant,
            Ok(event),
        );
        self.folded.fold_time += started.elapsed();
    }

    /// Decodes and folds one stored event; one that does not decode is an
    /// [`DivergenceKind::Undecodable`] divergence and still counts in its stream's versions.
    pub fn push_stored(&mut self, stored: &StoredEvent) {
        match decode(stored) {
            Ok(record) => self.push(record),
            Err(e) => {
                let started = Instant::now();
                self.folded.take(
                    stored.position,
                    stored.stream.clone(),
                    stored.version,
                    stored.record.occurred_at,
                    stored.record.tenant.clone(),
                    Err(e.to_string()),
                );
                self.folded.fold_time += started.elapsed();
            }
        }
    }

    /// Events taken so far.
    pub fn events(&self) -> u64 {
        self.folded.events
    }

    /// Divergences found so far.
    pub fn divergence_count(&self) -> u64 {
        self.folded.divergence_count
    }

    pub fn finish(self) -> Folded {
        self.folded
    }
}

/// Folds a whole log of decoded events, in the order given.
pub fn fold(records: impl IntoIterator<Item = Recorded>) -> Folded {
    let mut replay = Replay::new();
    for r in records {
        replay.push(r);
    }
    replay.finish()
}

/// Decodes and folds a whole log of stored events, in the order given.
pub fn fold_stored<'a>(stored: impl IntoIterator<Item = &'a StoredEvent>) -> Folded {
    let mut replay = Replay::new();
    for e in stored {
        replay.push_stored(e);
    }
    replay.finish()
}

/// Reads the whole of `log` in position order and folds it: what start-up runs before
/// activating the streams [`pending_deadlines`] lists. Reads ahead on a tokio task (so it needs
/// a runtime); the fold itself runs on the caller's task.
pub async fn fold_log(log: Arc<dyn EventLog>) -> Result<Folded, LogError> {
    let mut pages = prefetch_all(log, GlobalPosition::START, 4096, 2);
    let mut replay = Replay::new();
    while let Some(page) = pages.recv().await {
        for e in page? {
            replay.push_stored(&e);
        }
    }
    Ok(replay.finish())
}

/// A folded log: every stream's state and version, counts, and the divergences found.
#[derive(Debug, Default)]
pub struct Folded {
    streams: HashMap<StreamId, FoldedStream>,
    categories: BTreeMap<Category, CategoryCount>,
    divergences: Vec<Divergence>,
    divergence_count: u64,
    by_kind: BTreeMap<&'static str, u64>,
    events: u64,
    last_position: Option<GlobalPosition>,
    log_end: Option<DateTime<Utc>>,
    fold_time: Duration,
}

impl Folded {
    /// Events taken, every one counted (including those not folded).
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn stream(&self, stream: &StreamId) -> Option<&FoldedStream> {
        self.streams.get(stream)
    }

    /// Every stream, in no particular order.
    pub fn streams(&self) -> impl Iterator<Item = (&StreamId, &FoldedStream)> {
        self.streams.iter()
    }

    /// Streams and events per category, for the categories the log holds.
    pub fn categories(&self) -> &BTreeMap<Category, CategoryCount> {
        &self.categories
    }

    /// The first [`KEPT_DIVERGENCES`] divergences, in log order.
    pub fn divergences(&self) -> &[Divergence] {
        &self.divergences
    }

    /// Every divergence found, kept or not.
    pub fn divergence_count(&self) -> u64 {
        self.divergence_count
    }

    /// Divergences per [`DivergenceKind::name`].
    pub fn divergences_by_kind(&self) -> &BTreeMap<&'static str, u64> {
        &self.by_kind
    }

    /// No divergence at all.
    pub fn is_clean(&self) -> bool {
        self.divergence_count == 0
    }

    /// The highest position taken.
    pub fn last_position(&self) -> Option<GlobalPosition> {
        self.last_position
    }

    /// The newest `occurred_at` in the log: the instant overdue deadlines are judged against.
    pub fn log_end(&self) -> Option<DateTime<Utc>> {
        self.log_end
    }

    /// Time spent inside the fold (decoding a stored event excluded).
    pub fn fold_time(&self) -> Duration {
        self.fold_time
    }

    /// Events folded per second of [`Folded::fold_time`].
    pub fn events_per_second(&self) -> f64 {
        let secs = self.fold_time.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }

    fn diverge(
        &mut self,
        position: GlobalPosition,
        stream: &StreamId,
        version: u64,
        kind: DivergenceKind,
    ) {
        self.divergence_count += 1;
        *self.by_kind.entry(kind.name()).or_default() += 1;
        if self.divergences.len() < KEPT_DIVERGENCES {
            self.divergences.push(Divergence {
                position,
                stream: stream.clone(),
                version,
                kind,
            });
        }
    }

    /// Takes one event: order checks, then the fold. `event` is the decode error's text when
    /// the record did not decode.
    fn take(
        &mut self,
        position: GlobalPosition,
        stream: StreamId,
        version: u64,
        at: DateTime<Utc>,
        tenant: Option<TenantId>,
        event: Result<Event, String>,
    ) {
        let mut found: Vec<DivergenceKind> = Vec::new();
        self.events += 1;
        match self.last_position {
            Some(previous) if position <= previous => {
                found.push(DivergenceKind::PositionNotIncreasing { previous });
            }
            _ => self.last_position = Some(position),
        }
        self.log_end = self.log_end.max(Some(at));

        let category = stream.category();
        let count = self.categories.entry(category).or_default();
        count.events += 1;
        if !self.streams.contains_key(&stream) {
            count.streams += 1;
            let state = AggregateState::initial(category);
            if matches!(state, AggregateState::Unfolded(_)) && !facts_only(category) {
                found.push(DivergenceKind::NoAggregate { category });
            }
            self.streams.insert(
                stream.clone(),
                FoldedStream {
                    version: 0,
                    events: 0,
                    tenant: tenant.clone(),
                    last_at: None,
                    state,
                },
            );
        }
        if let Some(s) = self.streams.get_mut(&stream) {
            let last = s.version;
            let folds = if version == last + 1 {
                true
            } else if version > last + 1 {
                found.push(DivergenceKind::VersionGap {
                    expected: last + 1,
                    found: version,
                });
                true
            } else if version == last && last > 0 {
                found.push(DivergenceKind::VersionRepeated);
                false
            } else {
                found.push(DivergenceKind::VersionBackwards { last });
                false
            };
            if folds {
                s.version = version;
                s.events += 1;
                if let Some(previous) = s.last_at
                    && at < previous
                {
                    found.push(DivergenceKind::TimeWentBackwards { previous, at });
                }
                s.last_at = s.last_at.max(Some(at));
                if s.events > 1 && s.tenant != tenant {
                    found.push(DivergenceKind::TenantChanged {
                        was: s.tenant.clone(),
                        now: tenant,
                    });
                }
                match event {
                    Ok(event) => found.extend(s.state.fold(event, at)),
                    Err(error) => found.push(DivergenceKind::Undecodable { error }),
                }
            }
        }
        for kind in found {
            self.diverge(position, &stream, version, kind);
        }
    }
}

/// A stream whose folded state still holds timers: what start-up activates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeadline {
    pub stream: StreamId,
    /// The tenant of the stream's events, which the actor stamps on the events it appends.
    pub tenant: Option<TenantId>,
    /// The earliest of its deadlines.
    pub earliest: DateTime<Utc>,
    /// How many deadlines it holds.
    pub count: usize,
}

impl PendingDeadline {
    /// What `Registry::<A>::activate` takes to spawn the actor, which rebuilds the state and
    /// re-arms these deadlines.
    pub fn instance(&self) -> Instance {
        Instance {
            stream: self.stream.clone(),
            tenant: self.tenant.clone(),
        }
    }
}

/// The streams whose final state holds deadlines, by category (the registry to activate them
/// in), earliest deadline first (ties by stream).
///
/// ```ignore
/// let pending = pending_deadlines(&replay::fold_log(log.clone()).await?);
/// for p in pending.get(&Category::Call).into_iter().flatten() {
///     calls.activate(&p.instance());
/// }
/// ```
pub fn pending_deadlines(folded: &Folded) -> BTreeMap<Category, Vec<PendingDeadline>> {
    let mut pending: BTreeMap<Category, Vec<PendingDeadline>> = BTreeMap::new();
    for (stream, s) in &folded.streams {
        let deadlines = s.state.deadlines();
        let Some(earliest) = deadlines.iter().min().copied() else {
            continue;
        };
        pending
            .entry(s.state.category())
            .or_default()
            .push(PendingDeadline {
                stream: stream.clone(),
                tenant: s.tenant.clone(),
                earliest,
                count: deadlines.len(),
            });
    }
    for streams in pending.values_mut() {
        streams.sort_by(|a, b| (a.earliest, &a.stream).cmp(&(b.earliest, &b.stream)));
    }
    pending
}

/// The pending streams whose earliest deadline had passed at `as_of` (a timer that should
/// have fired), earliest first.
pub fn overdue(
    pending: &BTreeMap<Category, Vec<PendingDeadline>>,
    as_of: DateTime<Utc>,
) -> Vec<&PendingDeadline> {
    let mut due: Vec<&PendingDeadline> = pending
        .values()
        .flatten()
        .filter(|p| p.earliest <= as_of)
        .collect();
    due.sort_by(|a, b| (a.earliest, &a.stream).cmp(&(b.earliest, &b.stream)));
    due
}
