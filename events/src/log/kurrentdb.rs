//! KurrentDB / EventStoreDB backend (cargo feature `kurrentdb`), through the `kurrentdb` gRPC
//! client.
//!
//! # Store addresses
//! `kurrentdb://`, `kurrentdb+discover://`, `esdb://` and `esdb+discover://` connection strings,
//! with the client's usual parameters (`?tls=false`, `tlsVerifyCert`, `tlsCAFile`,
//! `nodePreference`, …). The user in the string must be allowed to read `$all` (an admin, or
//! `$all` opened up by ACL) and to write the Ledgerline streams; an insecure dev server allows
//! everything.
//!
//! # Versions and positions
//! - A stream version is the KurrentDB stream revision plus one (revision 0 is version 1).
//! - The global position of an event is its **commit position in `$all`**. Ledgerline writes each
//!   append as one implicit transaction, so every event it writes commits itself: its commit
//!   position equals its prepare position, the byte offset of its record in the transaction log.
//!   Positions are therefore unique per event and strictly increasing in `$all` order, but they
//!   have **gaps** (and start well above 1). `read_all(after, …)` accepts `START` or a position this
//!   backend handed out; other numbers do not name a record and the server may refuse them.
//! - Stream reads need the server to report each event's `$all` position (servers that support
//!   "self-committed" event positions on stream reads; current KurrentDB does). If it does not, the
//!   read fails with a clear error instead of guessing.
//!
//! # What is stored
//! One KurrentDB event per Ledgerline event: the KurrentDB event id is our event id, the type is
//! our event type, the data is the payload text byte for byte (content type
//! `application/octet-stream`: the client library can only mark re-serialised JSON as JSON, and the
//! payload must stay verbatim for the checksum), and the user metadata is a small JSON object with
//! the rest of the envelope (`Envelope` below), including the integrity checksum that every read
//! verifies. Correlation and causation ids use KurrentDB's conventional `$correlationId` and
//! `$causationId` keys, so the server's `$by_correlation_id` projection works on our events.
//!
//! # Reads
//! Reads skip system events (`$`-prefixed types or streams) and streams that are not ours (the
//! name must parse as a [`StreamId`]); `$all` is read with a server-side stream-name prefix filter
//! on our categories. `read_all` and `read_stream` return fewer than `max` events only at the end
//! of the log or stream.
//!
//! # Appends and idempotency
//! - `NoStream` / `Exact(n)` map to `StreamState::NoStream` / `StreamRevision(n - 1)`. The server
//!   treats a repeated append of the same event ids at the same expected revision as a no-op and
//!   answers with the original revisions; when it answers "wrong expected version" instead, the
//!   backend looks at the events stored in the expected slot and, if they carry the request's
//!   ids, returns the original outcome (or `EventIdConflict` for a partial or reordered retry).
//! - `Any` is turned into an optimistic append at the stream's current revision (retried under
//!   contention): the versions must be known before writing because the checksum covers them.
//!   Before writing, the last [`ANY_IDEMPOTENCY_WINDOW`] events of the stream (plus the request's
//!   length) are searched for the request's ids. So an `Any` retry is recognised while its events
//!   are among that tail; `Exact`/`NoStream` retries are recognised at any distance.
//! - KurrentDB does not index event ids across streams. The backend remembers the ids of the last
//!   [`RECENT_IDS`] events it appended (in memory, per process) and refuses a request that reuses
//!   one of them on another stream, or a request whose later events repeat stored ones, with
//!   `EventIdConflict`; a remembered first id also lets an `Any` retry be recognised at any
//!   distance. Beyond that memory (older ids, another process, a restart) reuse on another stream
//!   is not detected, unlike the SQL backends.
//! - Every successful append reads its events back (one extra round trip) to learn their `$all`
//!   positions; this also confirms that the acknowledged revisions hold the request's ids.
//!
//! # Wake-ups and connections
//! A background task follows `$all` from the end with the same filter and publishes the latest
//! commit position into the `wake_ups()` channel; it resubscribes with backoff after an error
//! and publishes the head again once resubscribed. The client library gives up on a connection
//! for good after a failed reconnect, so the backend replaces its client when it sees that.
//! Every server call is bounded by a timeout; connection failures and timeouts are
//! `LogError::Unreachable` (transient), everything else `LogError::Backend`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use futures_util::FutureExt;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, EventData, Position,
    ReadAllOptions, ReadStream, ReadStreamOptions, RecordedEvent, ResolvedEvent, StreamPosition,
    StreamState, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::store_url::redact;
use super::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoreOptions, StoredEvent, checksum, idempotent_outcome, to_micros, validate_append,
};
use crate::ids::{Category, CorrelationId, EventId, StreamId, TenantId};

/// How long `connect` waits for the server to answer its first read.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for one server call (an append, one page of a read).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Events fetched per server read.
const PAGE: usize = 4096;
/// How many of a stream's last events an `Any` append searches for the request's ids.
pub const ANY_IDEMPOTENCY_WINDOW: usize = 32;
/// Optimistic attempts of an `Any` append under contention before giving up.
const ANY_ATTEMPTS: u32 = 64;
/// How many appended event ids each log handle remembers for idempotency checks.
pub const RECENT_IDS: usize = 65_536;
/// Reads after an acknowledged append before concluding that the events are not there (a
/// follower node may lag behind the leader that acknowledged the write).
const READ_BACK_ATTEMPTS: u32 = 5;
/// The schemes this backend accepts.
const SCHEMES: [&str; 4] = [
    "kurrentdb://",
    "kurrentdb+discover://",
    "esdb://",
    "esdb+discover://",
];

/// Installs rustls' `ring` provider as the process default unless a provider is installed
/// already. With the `kurrentdb` feature rustls is built with both `ring` and `aws-lc-rs`, and
/// without a default provider the first TLS configuration panics. Idempotent; never panics.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: some provider is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The envelope fields that KurrentDB has no place for, stored as the event's user metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Envelope {
    /// Layout version of this object.
    ledgerline: u8,
    schema_version: u16,
    /// Microseconds since the Unix epoch, from the injected clock.
    occurred_at_us: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<TenantId>,
    #[serde(
        rename = "$causationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    causation_id: Option<EventId>,
    #[serde(
        rename = "$correlationId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    correlation_id: Option<CorrelationId>,
    /// `log::checksum` over stream, version and record.
    checksum: u32,
}

const ENVELOPE_LAYOUT: u8 = 1;

/// The metadata bytes stored with event `version` of `stream`.
fn encode_metadata(stream: &StreamId, version: u64, record: &EventRecord) -> Vec<u8> {
    let envelope = Envelope {
        ledgerline: ENVELOPE_LAYOUT,
        schema_version: record.schema_version,
        occurred_at_us: record.occurred_at.timestamp_micros(),
        tenant: record.tenant.clone(),
        causation_id: record.causation_id,
        correlation_id: record.correlation_id,
        checksum: checksum(stream, version, record),
    };
    // A struct of integers, strings and UUIDs always serialises.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// The KurrentDB event for `record` written as `version` of `stream`.
fn encode_event(stream: &StreamId, version: u64, record: &EventRecord) -> EventData {
    EventData::binary(
        &record.event_type,
        record.payload.clone().into_bytes().into(),
    )
    .id(record.event_id.as_uuid())
    .metadata(encode_metadata(stream, version, record).into())
}

/// One stored event as read from KurrentDB, checked and turned back into ours.
#[allow(clippy::too_many_arguments)]
fn decode_event(
    target: &str,
    stream: &StreamId,
    version: u64,
    position: GlobalPosition,
    event_id: uuid::Uuid,
    event_type: &str,
    data: &[u8],
    metadata: &[u8],
) -> Result<StoredEvent, LogError> {
    let corrupt = |what: String| LogError::Corrupt {
        target: target.to_owned(),
        detail: format!(
            "event {event_id} at position {position} (stream {stream}, version {version}): {what}"
        ),
    };
    let envelope: Envelope = serde_json::from_slice(metadata)
        .map_err(|e| corrupt(format!("unreadable Ledgerline metadata: {e}")))?;
    if envelope.ledgerline != ENVELOPE_LAYOUT {
        return Err(corrupt(format!(
            "unknown metadata layout {} (this build reads layout {ENVELOPE_LAYOUT})",
            envelope.ledgerline
        )));
    }
    let payload = String::from_utf8(data.to_vec())
        .map_err(|e| corrupt(format!("payload is not UTF-8: {e}")))?;
    let occurred_at =
        DateTime::from_timestamp_micros(envelope.occurred_at_us).ok_or_else(|| {
            corrupt(format!(
                "occurred-at {} µs is out of range",
                envelope.occurred_at_us
            ))
        })?;
    let record = EventRecord {
        event_id: EventId::from_uuid(event_id),
        event_type: event_type.to_owned(),
        schema_version: envelope.schema_version,
        occurred_at,
        tenant: envelope.tenant,
        causation_id: envelope.causation_id,
        correlation_id: envelope.correlation_id,
        payload,
    };
    let computed = checksum(stream, version, &record);
    if computed != envelope.checksum {
        return Err(corrupt(format!(
            "checksum mismatch: stored {:08x}, computed {computed:08x}",
            envelope.checksum
        )));
    }
    Ok(StoredEvent {
        position,
        stream: stream.clone(),
        version,
        record,
    })
}

/// The KurrentDB expected state for an expected version (`Any` is never sent as such: see the
/// module documentation).
fn stream_state(expected: ExpectedVersion) -> StreamState {
    match expected {
        ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => StreamState::NoStream,
        ExpectedVersion::Exact(n) => StreamState::StreamRevision(n - 1),
        ExpectedVersion::Any => StreamState::Any,
    }
}

/// Our version for a KurrentDB current revision (0: no stream).
fn current_version(current: CurrentRevision) -> u64 {
    match current {
        CurrentRevision::Current(revision) => revision + 1,
        CurrentRevision::NoStream => 0,
    }
}

/// The stream of a KurrentDB event if it is one of ours (not a system event, a parseable name).
fn our_stream(stream: &str, event_type: &str) -> Option<StreamId> {
    if stream.starts_with('$') || event_type.starts_with('$') {
        return None;
    }
    StreamId::parse(stream).ok()
}

/// The `$all` commit position of an event, if the server reported one.
fn position_of(resolved: &ResolvedEvent, event: &RecordedEvent) -> Option<GlobalPosition> {
    let valid = |p: u64| p > 0 && p < u64::MAX;
    if valid(event.position.commit) {
        return Some(GlobalPosition(event.position.commit));
    }
    resolved
        .commit_position
        .filter(|p| valid(*p))
        .map(GlobalPosition)
}

/// Server-side filter: streams of our categories only.
fn our_streams_filter() -> SubscriptionFilter {
    Category::ALL
        .iter()
        .fold(SubscriptionFilter::on_stream_name(), |f, c| {
            f.add_prefix(format!("{}-", c.as_str()))
        })
}

/// `$all` position of a record for a read starting there.
fn all_position(p: GlobalPosition) -> StreamPosition<Position> {
    if p == GlobalPosition::START {
        StreamPosition::Start
    } else {
        StreamPosition::Position(Position {
            commit: p.0,
            prepare: p.0,
        })
    }
}

/// Checks the scheme and parses a connection string.
fn parse_settings(url: &str) -> Result<ClientSettings, LogError> {
    let url = url.trim();
    let invalid = |reason: String| LogError::InvalidUrl {
        url: redact(url),
        reason,
    };
    if !SCHEMES.iter().any(|s| url.starts_with(s)) {
        return Err(invalid(format!(
            "a KurrentDB address starts with {}",
            SCHEMES.join(", ")
        )));
    }
    url.parse::<ClientSettings>().map_err(|e| {
        // The parser's message repeats the whole string when the URL itself is malformed,
        // password included: report the URL error alone in that case.
        invalid(match e.error() {
            Some(url_error) => format!("not a valid connection string: {url_error}"),
            None => e.message().to_owned(),
        })
    })
}

/// Reads a whole (bounded) server read into memory.
async fn drain(mut read: ReadStream) -> kurrentdb::Result<Vec<ResolvedEvent>> {
    let mut out = Vec::new();
    while let Some(event) = read.next().await? {
        out.push(event);
    }
    Ok(out)
}

/// A readable reason for a failed connection (the library's text is a debug dump of a status).
fn connection_failure(error: &kurrentdb::GrpcConnectionError) -> String {
    match error {
        kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(n) => {
            format!("no node could be reached after {n} discovery attempts")
        }
        kurrentdb::GrpcConnectionError::Grpc(status) => {
            let message = status
                .split_once("message: \"")
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(m, _)| m)
                .filter(|m| !m.is_empty())
                .unwrap_or(status);
            format!("connection failed ({message})")
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Event ids this handle appended recently, id → (stream, version); the oldest are forgotten
/// first.
#[derive(Default)]
struct RecentIds {
    by_id: HashMap<EventId, (StreamId, u64)>,
    order: VecDeque<EventId>,
}

impl RecentIds {
    fn remember(&mut self, stream: &StreamId, first_version: u64, events: &[EventRecord]) {
        for (i, e) in events.iter().enumerate() {
            let entry = (stream.clone(), first_version + i as u64);
            if self.by_id.insert(e.event_id, entry).is_none() {
                self.order.push_back(e.event_id);
            }
        }
        while self.order.len() > RECENT_IDS {
            if let Some(old) = self.order.pop_front() {
                self.by_id.remove(&old);
            }
        }
    }

    /// `Ok(Some(version))` when the request's first id is known on this stream (a retry to
    /// resolve from there), `Ok(None)` when no id is known, an `EventIdConflict` when a known id
    /// is reused elsewhere or out of place.
    fn recall(&self, stream: &StreamId, events: &[EventRecord]) -> Result<Option<u64>, LogError> {
        let Some(head) = events.first() else {
            return Ok(None);
        };
        let first = self.by_id.get(&head.event_id);
        for e in events {
            let Some((s, v)) = self.by_id.get(&e.event_id) else {
                continue;
            };
            if s != stream || first.is_none() {
                return Err(LogError::EventIdConflict {
                    event_id: e.event_id,
                    existing_stream: s.clone(),
                    existing_version: *v,
                });
            }
        }
        Ok(first.map(|(_, v)| *v))
    }
}

/// The current client and its generation (bumped whenever it is replaced).
struct Slot {
    generation: u64,
    client: Client,
}

/// What the log handle and its follower task share.
struct Shared {
    /// The connection string without password, for messages.
    target: String,
    settings: ClientSettings,
    runtime: tokio::runtime::Handle,
    slot: Mutex<Slot>,
    head: watch::Sender<GlobalPosition>,
    recent: Mutex<RecentIds>,
}

/// The KurrentDB backend. Cheap to share behind an `Arc`; dropping it stops the follower task.
pub struct KurrentLog {
    shared: Arc<Shared>,
    follower: tokio::task::AbortHandle,
}

impl fmt::Debug for KurrentLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KurrentLog")
            .field("target", &self.shared.target)
            .field("head", &*self.shared.head.borrow())
            .finish()
    }
}

impl Drop for KurrentLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

fn new_client(
    runtime: &tokio::runtime::Handle,
    settings: &ClientSettings,
    target: &str,
) -> Result<Client, LogError> {
    let failed = |detail: String| LogError::Backend {
        target: target.to_owned(),
        detail: format!("cannot create the KurrentDB client: {detail}"),
    };
    // The client panics on some malformed certificate files; turn that into an error.
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        Client::with_runtime_handle(runtime.clone(), settings.clone())
    })) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Err(panic) => Err(failed(panic_message(panic.as_ref()))),
    }
}

impl KurrentLog {
    /// Connects to the server at `url` and checks that it answers (within [`CONNECT_TIMEOUT`]).
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, LogError> {
        Self::connect_with_timeout(url, options, CONNECT_TIMEOUT).await
    }

    /// [`connect`](Self::connect) with a chosen bound on the first answer. A server that is down,
    /// refuses or never answers gives `LogError::Unreachable` naming the address.
    pub async fn connect_with_timeout(
        url: &str,
        options: StoreOptions,
        timeout: Duration,
    ) -> Result<Self, LogError> {
        // None of the shared store options (fsync policy, pool size, migrations) apply here.
        let _ = options;
        install_crypto_provider();
        let settings = parse_settings(url)?;
        let target = redact(url.trim());
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LogError::Backend {
            target: target.clone(),
            detail: "the KurrentDB backend must be opened inside a tokio runtime".into(),
        })?;
        let client = new_client(&runtime, &settings, &target)?;
        let shared = Arc::new(Shared {
            target,
            settings,
            runtime,
            slot: Mutex::new(Slot {
                generation: 0,
                client,
            }),
            head: watch::channel(GlobalPosition::START).0,
            recent: Mutex::new(RecentIds::default()),
        });
        let started = async {
            shared.probe().await?;
            shared.head().await
        };
        let head = match tokio::time::timeout(timeout, started).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(LogError::Unreachable {
                    target: shared.target.clone(),
                    detail: format!("no answer within {} ms", timeout.as_millis()),
                });
            }
        };
        shared.head.send_replace(head);
        let follower = tokio::spawn(follow(Arc::clone(&shared))).abort_handle();
        Ok(Self { shared, follower })
    }
}

impl Shared {
    fn client(&self) -> (u64, Client) {
        let slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        (slot.generation, slot.client.clone())
    }

    /// After an error from the client of `generation`: the library's connection task stops for
    /// good when a (re)connection fails, so a fresh client is needed to try again.
    fn after_error(&self, generation: u64, error: &kurrentdb::Error) {
        if !matches!(
            error,
            kurrentdb::Error::ConnectionClosed | kurrentdb::Error::GrpcConnectionError(_)
        ) {
            return;
        }
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.generation != generation {
            return; // someone replaced it already
        }
        match new_client(&self.runtime, &self.settings, &self.target) {
            Ok(client) => {
                slot.client = client;
                slot.generation += 1;
                tracing::info!(store = %self.target, "KurrentDB connection lost; reconnecting with a new client");
            }
            Err(e) => {
                tracing::warn!(store = %self.target, error = %e, "could not recreate the KurrentDB client")
            }
        }
    }

    fn map_error(&self, what: &str, error: kurrentdb::Error) -> LogError {
        use kurrentdb::Error as E;
        let target = self.target.clone();
        match error {
            E::GrpcConnectionError(e) => LogError::Unreachable {
                target,
                detail: format!("{what}: {}", connection_failure(&e)),
            },
            E::ConnectionClosed
            | E::ServerError(_)
            | E::NotLeaderException(_)
            | E::DeadlineExceeded => LogError::Unreachable {
                target,
                detail: format!("{what}: {error}"),
            },
            E::AccessDenied => LogError::Backend {
                target,
                detail: format!(
                    "{what}: access denied; the connection string's user must be allowed to read $all and write the Ledgerline streams"
                ),
            },
            other => LogError::Backend {
                target,
                detail: format!("{what}: {other}"),
            },
        }
    }

    /// Runs one server call with the current client, bounded in time, with library panics
    /// turned into errors. The outer error is the backend's verdict (timeout, panic); the inner
    /// one is the library's, left for the caller to interpret.
    async fn call<T, F, Fut>(
        &self,
        what: &str,
        op: F,
    ) -> Result<Result<T, kurrentdb::Error>, LogError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = kurrentdb::Result<T>>,
    {
        let (generation, client) = self.client();
        let bounded = tokio::time::timeout(
            OPERATION_TIMEOUT,
            AssertUnwindSafe(op(client)).catch_unwind(),
        );
        match bounded.await {
            Ok(Ok(Ok(value))) => Ok(Ok(value)),
            Ok(Ok(Err(e))) => {
                self.after_error(generation, &e);
                Ok(Err(e))
            }
            Ok(Err(panic)) => Err(LogError::Backend {
                target: self.target.clone(),
                detail: format!(
                    "{what}: the KurrentDB client failed unexpectedly: {}",
                    panic_message(panic.as_ref())
                ),
            }),
            Err(_) => Err(LogError::Unreachable {
                target: self.target.clone(),
                detail: format!("{what}: no answer within {} s", OPERATION_TIMEOUT.as_secs()),
            }),
        }
    }

    /// [`call`](Self::call) with every library error mapped.
    async fn call_mapped<T, F, Fut>(&self, what: &str, op: F) -> Result<T, LogError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = kurrentdb::Result<T>>,
    {
        self.call(what, op)
            .await?
            .map_err(|e| self.map_error(what, e))
    }

    /// One read of `$all`, whatever it holds, to see that the server answers.
    async fn probe(&self) -> Result<(), LogError> {
        self.call_mapped("reading $all", |client| async move {
            let options = ReadAllOptions::default()
                .position(StreamPosition::End)
                .max_count(1);
            drain(client.read_all(&options).await?).await.map(|_| ())
        })
        .await
    }

    /// Raw events of `stream` from revision `from` on (forwards) or its last ones (backwards from the
    /// end), at most `count`. A missing stream reads as empty.
    async fn read_revisions(
        &self,
        stream: &StreamId,
        from: StreamPosition<u64>,
        count: usize,
    ) -> Result<Vec<ResolvedEvent>, LogError> {
        let name = stream.as_str().to_owned();
        let what = format!("reading stream {stream}");
        let read = self
            .call(&what, |client| async move {
                let options = match from {
                    StreamPosition::End => ReadStreamOptions::default()
                        .position(StreamPosition::End)
                        .backwards(),
                    other => ReadStreamOptions::default().position(other).forwards(),
                }
                .max_count(count);
                let read = async { drain(client.read_stream(name, &options).await?).await };
                match read.await {
                    Err(kurrentdb::Error::ResourceNotFound) => Ok(Vec::new()),
                    other => other,
                }
            })
            .await?;
        match read {
            Ok(events) => Ok(events),
            Err(kurrentdb::Error::ResourceDeleted) => Err(LogError::Corrupt {
                target: self.target.clone(),
                detail: format!(
                    "stream {stream} was deleted in the store; Ledgerline never deletes a stream"
                ),
            }),
            Err(e) => Err(self.map_error(&what, e)),
        }
    }

    /// The outcome of an append whose events are stored from `existing[0]` on, checked against
    /// the request (see `log::idempotent_outcome`).
    fn outcome_from(
        &self,
        stream: &StreamId,
        events: &[EventRecord],
        existing: &[ResolvedEvent],
    ) -> Result<AppendOutcome, LogError> {
        let mut found = Vec::with_capacity(existing.len());
        for resolved in existing {
            let Some(event) = resolved.event.as_ref() else {
                continue;
            };
            let position = position_of(resolved, event).ok_or_else(|| self.no_position(event))?;
            found.push((
                EventId::from_uuid(event.id),
                stream.clone(),
                event.revision + 1,
                position,
            ));
        }
        let outcome = idempotent_outcome(stream, events, &found)?;
        let first_version = outcome.next_expected + 1 - events.len() as u64;
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remember(stream, first_version, events);
        Ok(outcome)
    }

    /// Checks the request against the ids this handle appended recently; resolves a retry whose
    /// first id is known.
    async fn append_known(
        &self,
        stream: &StreamId,
        events: &[EventRecord],
    ) -> Result<Option<AppendOutcome>, LogError> {
        let known = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recall(stream, events)?;
        let Some(version) = known else {
            return Ok(None);
        };
        let existing = self
            .read_revisions(stream, StreamPosition::Position(version - 1), events.len())
            .await?;
        self.outcome_from(stream, events, &existing).map(Some)
    }

    fn no_position(&self, event: &RecordedEvent) -> LogError {
        LogError::Backend {
            target: self.target.clone(),
            detail: format!(
                "the server did not report the $all position of event {} (stream {}, revision {}); \
                 Ledgerline needs a KurrentDB version that reports positions on stream reads",
                event.id,
                event.stream_id(),
                event.revision
            ),
        }
    }

    /// Appends at an exact expected version (`NoStream` is `Exact(0)`).
    async fn append_exact(
        &self,
        stream: &StreamId,
        current: u64,
        expected: ExpectedVersion,
        events: &[EventRecord],
    ) -> Result<AppendOutcome, LogError> {
        let data: Vec<EventData> = events
            .iter()
            .enumerate()
            .map(|(i, e)| encode_event(stream, current + 1 + i as u64, e))
            .collect();
        let options = AppendToStreamOptions::default().stream_state(stream_state(expected));
        let name = stream.as_str().to_owned();
        let what = format!("appending to {stream}");
        let written = self
            .call(&what, |client| async move {
                client.append_to_stream(name, &options, data).await
            })
            .await?;
        match written {
            Ok(result) => {
                // `next_expected_version` is the stream's last revision after the write; for a
                // write the server recognised as a repeat it should be the last revision of the
                // original, and the original sits in the expected slot in any case.
                let last = result.next_expected_version;
                let reported = (last + 1).checked_sub(events.len() as u64);
                let mut starts = reported.into_iter().collect::<Vec<_>>();
                if reported != Some(current) {
                    starts.push(current);
                }
                for first in starts {
                    if let Some(existing) = self.read_back(stream, first, events).await? {
                        return self.outcome_from(stream, events, &existing);
                    }
                }
                Err(LogError::Backend {
                    target: self.target.clone(),
                    detail: format!(
                        "{what}: the server acknowledged {} events ending at revision {last}, but \
                         neither there nor from revision {current} does the stream hold them",
                        events.len()
                    ),
                })
            }
            Err(kurrentdb::Error::WrongExpectedVersion { current: found, .. }) => {
                let actual = current_version(found);
                if actual > current {
                    // The expected slot is taken: by this very append (a retry the server did not
                    // recognise as such), or by somebody else.
                    let existing = self
                        .read_revisions(stream, StreamPosition::Position(current), events.len())
                        .await?;
                    let first = existing.first().and_then(|r| r.event.as_ref());
                    if first.is_some_and(|e| e.id == events[0].event_id.as_uuid()) {
                        return self.outcome_from(stream, events, &existing);
                    }
                }
                Err(LogError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual: CurrentVersion(actual),
                })
            }
            Err(e) => Err(self.map_error(&what, e)),
        }
    }

    /// The stored events from `first` on if they carry the request's ids, in order. Retried
    /// briefly while fewer are there (a follower node may lag behind the leader that acknowledged
    /// the write).
    async fn read_back(
        &self,
        stream: &StreamId,
        first: u64,
        events: &[EventRecord],
    ) -> Result<Option<Vec<ResolvedEvent>>, LogError> {
        for attempt in 0..READ_BACK_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let existing = self
                .read_revisions(stream, StreamPosition::Position(first), events.len())
                .await?;
            let ids_match = existing.len() == events.len()
                && existing.iter().zip(events).all(|(r, e)| {
                    r.event
                        .as_ref()
                        .is_some_and(|x| x.id == e.event_id.as_uuid())
                });
            if ids_match {
                return Ok(Some(existing));
            }
            if existing.len() == events.len() {
                break;
            }
        }
        Ok(None)
    }

    /// Appends whatever the stream's version: optimistically at the current one, after looking
    /// for the request's ids in the stream's tail.
    async fn append_any(
        &self,
        stream: &StreamId,
        events: &[EventRecord],
    ) -> Result<AppendOutcome, LogError> {
        let window = ANY_IDEMPOTENCY_WINDOW + events.len();
        for attempt in 0..ANY_ATTEMPTS {
            let tail = self
                .read_revisions(stream, StreamPosition::End, window)
                .await?;
            let current = tail
                .iter()
                .filter_map(|r| r.event.as_ref())
                .map(|e| e.revision + 1)
                .max()
                .unwrap_or(0);
            let stored = |id: EventId| {
                tail.iter()
                    .filter_map(|r| r.event.as_ref())
                    .find(|e| e.id == id.as_uuid())
            };
            if let Some(first) = stored(events[0].event_id) {
                let existing = self
                    .read_revisions(
                        stream,
                        StreamPosition::Position(first.revision),
                        events.len(),
                    )
                    .await?;
                return self.outcome_from(stream, events, &existing);
            }
            if let Some((event, found)) = events
                .iter()
                .find_map(|e| stored(e.event_id).map(|found| (e, found)))
            {
                return Err(LogError::EventIdConflict {
                    event_id: event.event_id,
                    existing_stream: stream.clone(),
                    existing_version: found.revision + 1,
                });
            }
            let expected = if current == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(current)
            };
            match self.append_exact(stream, current, expected, events).await {
                Err(LogError::WrongExpectedVersion { .. }) => {
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
                }
                other => return other,
            }
        }
        Err(LogError::Backend {
            target: self.target.clone(),
            detail: format!(
                "appending to {stream} with any version: the stream changed under each of {ANY_ATTEMPTS} attempts"
            ),
        })
    }

    /// Our events of `$all` after `after`, at most `max`; fewer only at the end of the log.
    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let mut out = Vec::new();
        let mut from = after;
        while out.len() < max {
            // Reading from a record's position includes that record: ask for one more.
            let inclusive = usize::from(from != GlobalPosition::START);
            let want = (max - out.len()).min(PAGE) + inclusive;
            let options = ReadAllOptions::default()
                .position(all_position(from))
                .forwards()
                .filter(our_streams_filter())
                .max_count(want);
            let what = format!("reading $all after position {from}");
            let page = self
                .call_mapped(&what, |client| async move {
                    drain(client.read_all(&options).await?).await
                })
                .await?;
            let got = page.len();
            let mut progressed = false;
            for resolved in &page {
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                let Some(position) = position_of(resolved, event) else {
                    continue;
                };
                if position <= from {
                    continue;
                }
                from = position;
                progressed = true;
                let Some(stream) = our_stream(event.stream_id(), &event.event_type) else {
                    continue;
                };
                out.push(self.decode(&stream, position, event)?);
                if out.len() == max {
                    break;
                }
            }
            if got < want || !progressed {
                break;
            }
        }
        Ok(out)
    }

    fn decode(
        &self,
        stream: &StreamId,
        position: GlobalPosition,
        event: &RecordedEvent,
    ) -> Result<StoredEvent, LogError> {
        decode_event(
            &self.target,
            stream,
            event.revision + 1,
            position,
            event.id,
            &event.event_type,
            &event.data,
            &event.custom_metadata,
        )
    }

    /// Position of our last event in `$all`.
    async fn head(&self) -> Result<GlobalPosition, LogError> {
        let mut before = StreamPosition::End;
        loop {
            let options = ReadAllOptions::default()
                .position(before)
                .backwards()
                .filter(our_streams_filter())
                .max_count(64);
            let page = self
                .call_mapped("reading the end of $all", |client| async move {
                    drain(client.read_all(&options).await?).await
                })
                .await?;
            let mut oldest = None;
            for resolved in &page {
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                let Some(position) = position_of(resolved, event) else {
                    continue;
                };
                if our_stream(event.stream_id(), &event.event_type).is_some() {
                    return Ok(position);
                }
                oldest = Some(position);
            }
            match oldest {
                Some(p) if page.len() == 64 => {
                    before = StreamPosition::Position(Position {
                        commit: p.0,
                        prepare: p.0,
                    });
                }
                _ => return Ok(GlobalPosition::START),
            }
        }
    }

    fn publish(&self, position: GlobalPosition) {
        self.head.send_if_modified(|head| {
            if position > *head {
                *head = position;
                true
            } else {
                false
            }
        });
    }
}

/// Follows `$all` from its end and publishes our latest commit position as a wake-up hint.
async fn follow(shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (generation, client) = shared.client();
        let options = SubscribeToAllOptions::default()
            .position(StreamPosition::End)
            .filter(our_streams_filter());
        let mut subscription = client.subscribe_to_all(&options).await;
        let error = loop {
            let next = AssertUnwindSafe(subscription.next_subscription_event()).catch_unwind();
            match next.await {
                Ok(Ok(SubscriptionEvent::Confirmed(_))) => {
                    backoff = Duration::from_millis(100);
                    // Whatever was appended while we were not subscribed.
                    match shared.head().await {
                        Ok(head) => shared.publish(head),
                        Err(e) => {
                            tracing::debug!(store = %shared.target, error = %e, "head after resubscribing")
                        }
                    }
                }
                Ok(Ok(SubscriptionEvent::EventAppeared(resolved))) => {
                    if let Some(event) = resolved.event.as_ref()
                        && our_stream(event.stream_id(), &event.event_type).is_some()
                        && let Some(position) = position_of(&resolved, event)
                    {
                        shared.publish(position);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    shared.after_error(generation, &e);
                    break e.to_string();
                }
                Err(panic) => break panic_message(panic.as_ref()),
            }
        };
        tracing::warn!(store = %shared.target, %error, retry_in_ms = backoff.as_millis() as u64, "KurrentDB $all subscription dropped");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[async_trait]
impl EventLog for KurrentLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError> {
        validate_append(stream, &events)?;
        let events: Vec<EventRecord> = events
            .into_iter()
            .map(|mut e| {
                e.occurred_at = to_micros(e.occurred_at);
                e
            })
            .collect();
        if let Some(outcome) = self.shared.append_known(stream, &events).await? {
            return Ok(outcome);
        }
        let outcome = match expected {
            ExpectedVersion::NoStream => {
                self.shared
                    .append_exact(stream, 0, ExpectedVersion::NoStream, &events)
                    .await
            }
            ExpectedVersion::Exact(n) => {
                self.shared
                    .append_exact(stream, n, ExpectedVersion::Exact(n), &events)
                    .await
            }
            ExpectedVersion::Any => self.shared.append_any(stream, &events).await,
        }?;
        self.shared.publish(outcome.last_position);
        Ok(outcome)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let mut out = Vec::new();
        // Revision of the next event to read (version `after + 1`).
        let mut next = after;
        while out.len() < max {
            let want = (max - out.len()).min(PAGE);
            let page = self
                .shared
                .read_revisions(stream, StreamPosition::Position(next), want)
                .await?;
            let got = page.len();
            for resolved in &page {
                let Some(event) = resolved.event.as_ref() else {
                    continue;
                };
                next = next.max(event.revision + 1);
                if event.event_type.starts_with('$') {
                    continue;
                }
                let position =
                    position_of(resolved, event).ok_or_else(|| self.shared.no_position(event))?;
                out.push(self.shared.decode(stream, position, event)?);
                if out.len() == max {
                    break;
                }
            }
            if got < want {
                break;
            }
        }
        Ok(out)
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        self.shared.read_all(after, max).await
    }

    async fn head(&self) -> Result<GlobalPosition, LogError> {
        self.shared.head().await
    }

    fn wake_ups(&self) -> watch::Receiver<GlobalPosition> {
        self.shared.head.subscribe()
    }

    fn describe(&self) -> String {
        self.shared.target.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;

    fn record(n: u128) -> EventRecord {
        EventRecord {
            event_id: EventId::from_uuid(Uuid::from_u128(n)),
            event_type: "CallAnswered".into(),
            schema_version: 2,
            occurred_at: chrono::Utc
                .timestamp_micros(1_700_000_000_123_456)
                .single()
                .unwrap(),
            tenant: Some(TenantId::parse("acme").unwrap()),
            causation_id: Some(EventId::from_uuid(Uuid::from_u128(7))),
            correlation_id: Some(CorrelationId::from_uuid(Uuid::from_u128(8))),
            payload: r#"{"b": 1, "a": [1.50, "x"]}"#.into(),
        }
    }

    fn stream() -> StreamId {
        StreamId::parse("call-0000-1").unwrap()
    }

    fn decode(version: u64, r: &EventRecord, metadata: &[u8]) -> Result<StoredEvent, LogError> {
        decode_event(
            "kurrentdb://test",
            &stream(),
            version,
            GlobalPosition(4242),
            r.event_id.as_uuid(),
            &r.event_type,
            r.payload.as_bytes(),
            metadata,
        )
    }

    #[test]
    fn connection_strings_are_checked_with_a_reason() {
        for ok in [
            "kurrentdb://127.0.0.1:2113?tls=false",
            "kurrentdb+discover://admin:changeit@cluster.local:2113",
            "esdb://localhost:2113?tls=false&tlsVerifyCert=false",
            "esdb+discover://node1:2113,node2:2113,node3:2113",
        ] {
            assert!(parse_settings(ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("postgres://x@y/z", "starts with kurrentdb://"),
            ("kurrent://h:2113", "starts with kurrentdb://"),
            ("kurrentdb://h:2113?tls=maybe", "tls"),
            (
                "kurrentdb://h:2113?nodePreference=nearest",
                "node preference",
            ),
            ("kurrentdb://h:2113/some/path", "path"),
            (
                "esdb://admin:hunter2@h:99999",
                "not a valid connection string",
            ),
            ("kurrentdb://h:2113?userCertFile=/tmp/c.pem", "userKeyFile"),
        ] {
            match parse_settings(bad) {
                Err(e @ LogError::InvalidUrl { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(needle), "{bad}: {text}");
                    assert!(!text.contains("hunter2"), "{bad}: {text}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn expected_versions_map_to_stream_states() {
        assert_eq!(
            stream_state(ExpectedVersion::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            stream_state(ExpectedVersion::Exact(0)),
            StreamState::NoStream
        );
        assert_eq!(
            stream_state(ExpectedVersion::Exact(1)),
            StreamState::StreamRevision(0)
        );
        assert_eq!(
            stream_state(ExpectedVersion::Exact(17)),
            StreamState::StreamRevision(16)
        );
        assert_eq!(stream_state(ExpectedVersion::Any), StreamState::Any);
        assert_eq!(current_version(CurrentRevision::NoStream), 0);
        assert_eq!(current_version(CurrentRevision::Current(0)), 1);
        assert_eq!(current_version(CurrentRevision::Current(9)), 10);
    }

    #[test]
    fn metadata_round_trips_and_is_checked() {
        let r = record(1);
        let metadata = encode_metadata(&stream(), 3, &r);
        let json: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
        assert_eq!(json["ledgerline"], 1);
        assert_eq!(json["schema_version"], 2);
        assert_eq!(json["occurred_at_us"], 1_700_000_000_123_456_i64);
        assert_eq!(json["tenant"], "acme");
        assert_eq!(json["$causationId"], Uuid::from_u128(7).to_string());
        assert_eq!(json["$correlationId"], Uuid::from_u128(8).to_string());

        let back = decode(3, &r, &metadata).unwrap();
        assert_eq!(back.record, r, "payload and envelope come back verbatim");
        assert_eq!(back.version, 3);
        assert_eq!(back.position, GlobalPosition(4242));
        assert_eq!(back.stream, stream());

        // Optional fields may be absent.
        let mut bare = record(2);
        bare.tenant = None;
        bare.causation_id = None;
        bare.correlation_id = None;
        let metadata = encode_metadata(&stream(), 1, &bare);
        let json: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
        assert!(json.get("tenant").is_none() && json.get("$correlationId").is_none());
        assert_eq!(decode(1, &bare, &metadata).unwrap().record, bare);
    }

    #[test]
    fn tampering_is_reported_as_corruption_naming_the_position() {
        let r = record(1);
        let metadata = encode_metadata(&stream(), 3, &r);
        let corrupt = |e: LogError| match e {
            LogError::Corrupt { detail, .. } => detail,
            other => panic!("{other:?}"),
        };

        // Another payload, another version, another schema version: checksum mismatch.
        let mut changed = r.clone();
        changed.payload = r#"{"b": 2, "a": [1.50, "x"]}"#.into();
        let d = corrupt(decode(3, &changed, &metadata).unwrap_err());
        assert!(
            d.contains("checksum mismatch") && d.contains("position 4242"),
            "{d}"
        );
        let d = corrupt(decode(4, &r, &metadata).unwrap_err());
        assert!(d.contains("checksum mismatch"), "{d}");
        let mut json: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
        json["schema_version"] = 3.into();
        let d = corrupt(decode(3, &r, &serde_json::to_vec(&json).unwrap()).unwrap_err());
        assert!(d.contains("checksum mismatch"), "{d}");

        // Missing or foreign metadata.
        let d = corrupt(decode(3, &r, b"").unwrap_err());
        assert!(d.contains("unreadable Ledgerline metadata"), "{d}");
        let d = corrupt(decode(3, &r, br#"{"foo":1}"#).unwrap_err());
        assert!(d.contains("unreadable Ledgerline metadata"), "{d}");
        json["schema_version"] = 2.into();
        json["ledgerline"] = 9.into();
        let d = corrupt(decode(3, &r, &serde_json::to_vec(&json).unwrap()).unwrap_err());
        assert!(d.contains("layout 9"), "{d}");
        json["ledgerline"] = 1.into();
        json["tenant"] = "Not A Slug".into();
        let d = corrupt(decode(3, &r, &serde_json::to_vec(&json).unwrap()).unwrap_err());
        assert!(d.contains("tenant"), "{d}");

        // A payload that is not UTF-8.
        let e = decode_event(
            "kurrentdb://test",
            &stream(),
            3,
            GlobalPosition(4242),
            r.event_id.as_uuid(),
            &r.event_type,
            &[0xff, 0xfe],
            &metadata,
        )
        .unwrap_err();
        assert!(corrupt(e).contains("not UTF-8"));
    }

    #[test]
    fn system_and_foreign_streams_are_not_ours() {
        assert!(our_stream("call-abc", "CallAnswered").is_some());
        assert!(our_stream("call-abc", "$metadata").is_none());
        assert!(our_stream("$stats-127.0.0.1:2113", "$statsCollected").is_none());
        assert!(our_stream("$$call-abc", "$metadata").is_none());
        assert!(our_stream("orders-1", "OrderPlaced").is_none());
        assert!(our_stream("call-", "X").is_none());
        assert!(our_stream("call-with space", "X").is_none());
    }

    #[test]
    fn start_reads_from_the_beginning_and_positions_name_records() {
        assert_eq!(all_position(GlobalPosition::START), StreamPosition::Start);
        assert_eq!(
            all_position(GlobalPosition(1234)),
            StreamPosition::Position(Position {
                commit: 1234,
                prepare: 1234
            })
        );
    }

    #[test]
    fn recent_ids_spot_retries_and_reuse() {
        let s = stream();
        let other = StreamId::parse("call-other").unwrap();
        let batch = vec![record(1), record(2), record(3)];
        let mut recent = RecentIds::default();
        assert_eq!(recent.recall(&s, &batch).unwrap(), None);
        recent.remember(&s, 4, &batch);
        // A retry starts at the version its first event was stored as.
        assert_eq!(recent.recall(&s, &batch).unwrap(), Some(4));
        assert_eq!(recent.recall(&s, &batch[..1]).unwrap(), Some(4));
        // A stored id on another stream, or after new ones, is a conflict naming where it is.
        for (target, request) in [(&other, vec![record(2)]), (&s, vec![record(9), record(3)])] {
            match recent.recall(target, &request) {
                Err(LogError::EventIdConflict {
                    existing_stream,
                    existing_version,
                    ..
                }) => {
                    assert_eq!(existing_stream, s);
                    assert!(existing_version == 5 || existing_version == 6);
                }
                other => panic!("{other:?}"),
            }
        }
        // Bounded: the oldest ids are forgotten first.
        let many: Vec<EventRecord> = (100..100 + RECENT_IDS as u128).map(record).collect();
        recent.remember(&other, 1, &many);
        assert_eq!(recent.by_id.len(), RECENT_IDS);
        assert_eq!(recent.recall(&s, &batch).unwrap(), None);
        assert_eq!(recent.recall(&other, &many[..1]).unwrap(), Some(1));
    }

    #[test]
    fn connection_failures_read_well() {
        let status = r#"status: Unknown, message: "client error (Connect)", details: [], metadata: MetadataMap { headers: {} }"#;
        assert_eq!(
            connection_failure(&kurrentdb::GrpcConnectionError::Grpc(status.into())),
            "connection failed (client error (Connect))"
        );
        assert_eq!(
            connection_failure(&kurrentdb::GrpcConnectionError::Grpc("odd".into())),
            "connection failed (odd)"
        );
        assert!(
            connection_failure(&kurrentdb::GrpcConnectionError::MaxDiscoveryAttemptReached(
                3
            ))
            .contains("3 discovery attempts")
        );
    }

    #[test]
    fn installing_the_crypto_provider_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_quickly() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("kurrentdb://127.0.0.1:{port}?tls=false");
        let started = Instant::now();
        let e =
            KurrentLog::connect_with_timeout(&url, StoreOptions::default(), Duration::from_secs(5))
                .await
                .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "{:?}",
            started.elapsed()
        );
        assert!(e.is_transient(), "{e}");
        let text = e.to_string();
        assert!(matches!(e, LogError::Unreachable { .. }), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_unreachable_within_the_timeout() {
        // Accepts TCP connections (the kernel completes the handshake) but never speaks HTTP/2.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("esdb://127.0.0.1:{port}?tls=false");
        let started = Instant::now();
        let e = KurrentLog::connect_with_timeout(
            &url,
            StoreOptions::default(),
            Duration::from_millis(1500),
        )
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert!(
            matches!(e, LogError::Unreachable { .. }),
            "{e} after {elapsed:?}"
        );
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
        drop(listener);
    }

    #[tokio::test]
    async fn a_bad_connection_string_is_refused_before_connecting() {
        let e = KurrentLog::connect("kurrentdb://h:2113?tls=maybe", StoreOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::InvalidUrl { .. }), "{e}");
    }
}
