//! The event log contract: what an append promises, how streams and the global order are read,
//! and how a subscription catches up and then follows. Backends live in submodules and all pass
//! one conformance suite (`tests/src/conformance.rs`).
//!
//! Positions and versions use "after" semantics everywhere: `read_all(after, …)` returns events
//! whose global position is greater than `after`, `read_stream(stream, after, …)` those whose
//! stream version is greater than `after`. The first event of the log has position 1, the first
//! event of a stream has version 1; 0 means "before everything".

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::ids::{CorrelationId, EventId, StreamId, TenantId};

#[cfg(feature = "kurrentdb")]
pub mod kurrentdb;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod store_url;

pub use store_url::{DEFAULT_COMMIT_WINDOW, StoreOptions, StoreUrl, open};

/// Position of an event in the whole log. Strictly increasing in commit order; gap-free for the
/// SQLite, memory and PostgreSQL backends (KurrentDB uses its commit position, which has gaps).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GlobalPosition(pub u64);

impl GlobalPosition {
    /// Before the first event.
    pub const START: GlobalPosition = GlobalPosition(0);
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the writer believes the stream's current version is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (0 is the same as `NoStream`).
    Exact(u64),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (0: no stream) satisfies this.
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(n) => current == n,
            ExpectedVersion::Any => true,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// A stream's current version as found in the store (0: the stream does not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CurrentVersion(pub u64);

impl fmt::Display for CurrentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("no stream"),
            n => write!(f, "version {n}"),
        }
    }
}

/// One event as the log stores it, before a position and version are assigned. The payload is
/// the JSON text of the domain event (see `crate::codec`); the log never interprets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event_id: EventId,
    /// Past-tense type name, e.g. `CallAnswered`.
    pub event_type: String,
    pub schema_version: u16,
    /// From the injected clock, microsecond precision; never the store's clock.
    pub occurred_at: DateTime<Utc>,
    pub tenant: Option<TenantId>,
    pub causation_id: Option<EventId>,
    pub correlation_id: Option<CorrelationId>,
    /// JSON object text.
    pub payload: String,
}

/// An event read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub position: GlobalPosition,
    pub stream: StreamId,
    pub version: u64,
    #[serde(flatten)]
    pub record: EventRecord,
}

/// What a successful append wrote (or, for an idempotent retry, had written before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub first_position: GlobalPosition,
    pub last_position: GlobalPosition,
    /// The stream's version after the append: the expected version for the next one.
    pub next_expected: u64,
}

/// Everything that can go wrong with a log. Messages name the store and the problem.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("wrong expected version on stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: CurrentVersion,
    },
    #[error(
        "event {event_id} is already stored (stream {existing_stream}, version {existing_version}); a retry must repeat the same events on the same stream"
    )]
    EventIdConflict {
        event_id: EventId,
        existing_stream: StreamId,
        existing_version: u64,
    },
    #[error("invalid append to {stream}: {reason}")]
    InvalidAppend { stream: StreamId, reason: String },
    #[error("invalid store address {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the event store {target}: {detail}")]
    Unreachable { target: String, detail: String },
    #[error("the event store {target} is corrupt: {detail}")]
    Corrupt { target: String, detail: String },
    #[error("the event store {target} could not be migrated: {detail}")]
    Migration { target: String, detail: String },
    #[error("the event store {target} failed: {detail}")]
    Backend { target: String, detail: String },
    #[error("the event log {target} is closed")]
    Closed { target: String },
}

impl LogError {
    /// Worth retrying after a pause (a dropped connection, a restarting server).
    pub fn is_transient(&self) -> bool {
        matches!(self, LogError::Unreachable { .. })
    }
}

/// The append-only log. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait EventLog: Send + Sync + fmt::Debug {
    /// Appends `events` to `stream` atomically if its current version satisfies `expected`;
    /// returns only once the events are durable. Idempotent by event id: repeating an append
    /// whose events are already stored, in the same stream and order, returns the original
    /// outcome and writes nothing.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError>;

    /// Events of one stream with version greater than `after`, in version order, at most `max`.
    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError>;

    /// Events of the whole log with position greater than `after`, in order, at most `max`.
    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError>;

    /// Position of the last durable event (`START` for an empty log).
    async fn head(&self) -> Result<GlobalPosition, LogError>;

    /// A hint that the head moved: it carries a recent head position. Subscribers use it to wake
    /// up and always re-read from their own position, so a lost hint only delays, never skips.
    fn wake_ups(&self) -> watch::Receiver<GlobalPosition>;

    /// Human-readable identity of the store, without secrets (`sqlite:data/ledgerline.db`).
    fn describe(&self) -> String;
}

/// Starts a subscription that delivers every event after `after`: first those already stored,
/// then new ones as they are appended, with no gap and no reordering.
pub fn subscribe(log: Arc<dyn EventLog>, after: GlobalPosition) -> Subscription {
    Subscription::new(log, after)
}

/// Reads the whole log after `after`, page by page, fetching the next page while the consumer
/// works on the current one (up to `depth` pages ahead). The channel ends after the last page
/// stored when the reader reached it, or after the first error.
pub fn prefetch_all(
    log: Arc<dyn EventLog>,
    after: GlobalPosition,
    batch: usize,
    depth: usize,
) -> tokio::sync::mpsc::Receiver<Result<Vec<StoredEvent>, LogError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    tokio::spawn(async move {
        let mut after = after;
        loop {
            let page = log.read_all(after, batch.max(1)).await;
            let done = match &page {
                Ok(p) => match p.last() {
                    Some(last) => {
                        after = last.position;
                        false
                    }
                    None => true,
                },
                Err(_) => true,
            };
            if done && matches!(&page, Ok(p) if p.is_empty()) {
                break;
            }
            if tx.send(page).await.is_err() || done {
                break;
            }
        }
    });
    rx
}

/// A catch-up-then-live reader of the whole log. Transient store errors (a dropped database
/// connection) are retried with backoff; permanent ones are returned.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    after: GlobalPosition,
    buffer: VecDeque<StoredEvent>,
    wake: watch::Receiver<GlobalPosition>,
    batch: usize,
    poll_interval: Duration,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("log", &self.log.describe())
            .field("after", &self.after)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl Subscription {
    fn new(log: Arc<dyn EventLog>, after: GlobalPosition) -> Self {
        let wake = log.wake_ups();
        Self {
            log,
            after,
            buffer: VecDeque::new(),
            wake,
            batch: 1024,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// How many events one catch-up read fetches.
    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How long to wait without a wake-up before re-reading anyway.
    pub fn with_poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Position of the last event handed out.
    pub fn position(&self) -> GlobalPosition {
        self.after
    }

    /// The next event, waiting for one to be appended if the subscription has caught up.
    pub async fn next(&mut self) -> Result<StoredEvent, LogError> {
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            // Mark the current hint as seen *before* reading, so an append that lands after the
            // read is guaranteed to change the hint again.
            self.wake.borrow_and_update();
            match self.log.read_all(self.after, self.batch).await {
                Ok(batch) if !batch.is_empty() => {
                    let mut last = self.after;
                    for e in &batch {
                        if e.position <= last {
                            return Err(LogError::Corrupt {
                                target: self.log.describe(),
                                detail: format!(
                                    "read_all after {} returned position {} out of order",
                                    self.after, e.position
                                ),
                            });
                        }
                        last = e.position;
                    }
                    self.buffer.extend(batch);
                    backoff = Duration::from_millis(50);
                }
                Ok(_) => {
                    tokio::select! {
                        changed = self.wake.changed() => {
                            if changed.is_err() {
                                tokio::time::sleep(self.poll_interval).await;
                            }
                        }
                        _ = tokio::time::sleep(self.poll_interval) => {}
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(store = %self.log.describe(), error = %e, "subscription read failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Checks an append request before any backend looks at it.
pub(crate) fn validate_append(stream: &StreamId, events: &[EventRecord]) -> Result<(), LogError> {
    let invalid = |reason: String| LogError::InvalidAppend {
        stream: stream.clone(),
        reason,
    };
    if events.is_empty() {
        return Err(invalid("no events".into()));
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    for e in events {
        if !seen.insert(e.event_id) {
            return Err(invalid(format!(
                "event id {} appears twice in one append",
                e.event_id
            )));
        }
        if e.event_type.is_empty() || e.event_type.len() > 128 {
            return Err(invalid(format!(
                "event type {:?} must be 1 to 128 characters",
                e.event_type
            )));
        }
        // Checked here, before any backend, so every store refuses the same payloads (a JSON
        // column would refuse them, a TEXT column would not). Parsing into a `RawValue` only
        // validates the syntax: no value tree is built.
        match serde_json::from_str::<&serde_json::value::RawValue>(&e.payload) {
            Ok(raw) if raw.get().starts_with('{') => {}
            Ok(_) => {
                return Err(invalid(format!(
                    "payload of event {} is not a JSON object",
                    e.event_id
                )));
            }
            Err(err) => {
                return Err(invalid(format!(
                    "payload of event {} is not valid JSON: {err}",
                    e.event_id
                )));
            }
        }
    }
    Ok(())
}

/// Integrity checksum of one stored event, over everything that identifies and describes it.
/// Backends store it with the row and verify it on every read.
pub fn checksum(stream: &StreamId, version: u64, r: &EventRecord) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(stream.as_str().as_bytes());
    h.update(&version.to_le_bytes());
    h.update(r.event_id.as_uuid().as_bytes());
    h.update(r.event_type.as_bytes());
    h.update(&r.schema_version.to_le_bytes());
    h.update(&r.occurred_at.timestamp_micros().to_le_bytes());
    h.update(
        r.tenant
            .as_ref()
            .map(|t| t.as_str())
            .unwrap_or("")
            .as_bytes(),
    );
    h.update(&[0xff]);
    if let Some(c) = r.causation_id {
        h.update(c.as_uuid().as_bytes());
    }
    h.update(&[0xfe]);
    if let Some(c) = r.correlation_id {
        h.update(c.as_uuid().as_bytes());
    }
    h.update(r.payload.as_bytes());
    h.finalize()
}

/// Truncates a timestamp to the microsecond precision every backend stores.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Idempotency check shared by the backends: `existing` are the stored events whose ids match
/// the request's first id onwards. Returns the original outcome when the request is a faithful
/// retry, an `EventIdConflict` otherwise.
pub(crate) fn idempotent_outcome(
    stream: &StreamId,
    events: &[EventRecord],
    existing: &[(EventId, StreamId, u64, GlobalPosition)],
) -> Result<AppendOutcome, LogError> {
    let conflict =
        |(id, s, v, _): &(EventId, StreamId, u64, GlobalPosition)| LogError::EventIdConflict {
            event_id: *id,
            existing_stream: s.clone(),
            existing_version: *v,
        };
    let Some(first) = existing.first() else {
        return Err(LogError::Backend {
            target: stream.to_string(),
            detail: "idempotency check found no stored event".into(),
        });
    };
    if existing.len() != events.len() {
        return Err(conflict(first));
    }
    for (i, (e, found)) in events.iter().zip(existing).enumerate() {
        if found.0 != e.event_id || &found.1 != stream || found.2 != first.2 + i as u64 {
            return Err(conflict(found));
        }
    }
    let last = existing.last().unwrap_or(first);
    Ok(AppendOutcome {
        first_position: first.3,
        last_position: last.3,
        next_expected: last.2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefetch_reads_every_page_in_order() {
        use crate::log::memory::MemoryLog;
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let s = StreamId::parse("call-prefetch").unwrap();
        let record = |n: u128| EventRecord {
            event_id: EventId::from_uuid(uuid::Uuid::from_u128(n + 1)),
            event_type: "ProbeRecorded".into(),
            schema_version: 1,
            occurred_at: chrono::DateTime::from_timestamp_micros(0).unwrap(),
            tenant: None,
            causation_id: None,
            correlation_id: None,
            payload: format!("{{\"n\":{n}}}"),
        };
        log.append(&s, ExpectedVersion::NoStream, (0..25).map(record).collect())
            .await
            .unwrap();
        let mut rx = prefetch_all(log, GlobalPosition(3), 4, 2);
        let mut seen = Vec::new();
        while let Some(page) = rx.recv().await {
            let page = page.unwrap();
            assert!(!page.is_empty() && page.len() <= 4);
            seen.extend(page.into_iter().map(|e| e.position.0));
        }
        assert_eq!(seen, (4..=25).collect::<Vec<u64>>());
    }

    #[test]
    fn expected_version_admits() {
        assert!(ExpectedVersion::NoStream.admits(0));
        assert!(!ExpectedVersion::NoStream.admits(1));
        assert!(ExpectedVersion::Exact(0).admits(0));
        assert!(ExpectedVersion::Exact(3).admits(3));
        assert!(!ExpectedVersion::Exact(3).admits(4));
        assert!(ExpectedVersion::Any.admits(17));
    }

    #[test]
    fn conflict_message_names_both_versions() {
        let e = LogError::WrongExpectedVersion {
            stream: StreamId::parse("call-x").unwrap(),
            expected: ExpectedVersion::Exact(2),
            actual: CurrentVersion(5),
        };
        assert_eq!(
            e.to_string(),
            "wrong expected version on stream call-x: expected version 2, actual version 5"
        );
    }
}
