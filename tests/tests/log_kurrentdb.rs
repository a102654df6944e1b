//! The KurrentDB backend against a real server: the conformance suite, plus what only this
//! backend can get wrong (positions, the `$all` follower behind `wake_ups`, idempotency across
//! handles).
//!
//! Runs only with `--features kurrentdb` and `KURRENTDB_URL` set, e.g.
//! `KURRENTDB_URL='kurrentdb://127.0.0.1:2113?tls=false' cargo test -p tests --features kurrentdb
//! --test log_kurrentdb`; without the variable every server test says it is skipped and passes.
//! One test needs no server: it checks the namespacing harness below over a shared memory log.
//!
//! A KurrentDB server cannot hand out a fresh, empty store per test key, and it may hold
//! anything from earlier runs. So the suite runs through [`Namespaced`]: every stream name gets
//! a namespace unique to this run and key inside its id part (`call-<run>.<key>~<id>`), `read_all`
//! and `head` only see that namespace (and start at the server's head when the run began), and
//! stream names in results and errors are translated back. Reopening a key reconnects and finds
//! the same namespace. All suite cases run this way; the only difference the suite knows about is
//! `gap_free() == false` (positions are `$all` commit positions, which have gaps).
//!
//! One suite case leans on a limit of the backend rather than the server: reusing an event id on
//! another stream is caught by the backend's in-memory record of the ids it appended recently
//! (KurrentDB has no index of event ids), so it is caught through the same handle, as in the
//! suite, but not by a handle opened later.
#![cfg(feature = "kurrentdb")]
#![allow(clippy::disallowed_methods)] // tests may use random ids and the wall clock

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use events::log::kurrentdb::KurrentLog;
use events::log::memory::MemoryLog;
use events::{
    AppendOutcome, EventLog, EventRecord, ExpectedVersion, GlobalPosition, LogError, StoreOptions,
    StoreUrl, StoredEvent, StreamId,
};
use futures_util::future::BoxFuture;
use tests::conformance::{Backend, event, events, run_all};
use tokio::sync::{OnceCell, watch};
use uuid::Uuid;

/// The server under test, or `None` (after saying so) when `KURRENTDB_URL` is not set.
fn server(test: &str) -> Option<String> {
    match std::env::var("KURRENTDB_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "{test}: skipped (set KURRENTDB_URL, e.g. kurrentdb://127.0.0.1:2113?tls=false)"
            );
            None
        }
    }
}

async fn connect(url: &str) -> KurrentLog {
    KurrentLog::connect(url, StoreOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot open the KurrentDB test server: {e}"))
}

/// A unique stream on the shared server, for the tests outside the suite.
fn fresh_stream(label: &str) -> StreamId {
    StreamId::parse(format!("call-kdbtest.{label}-{}", Uuid::new_v4().simple())).expect("stream id")
}

/// One key's view of a shared store: streams live under a namespace, reads of the whole log only
/// see that namespace.
struct Namespaced {
    inner: Arc<dyn EventLog>,
    /// Put between the namespace and the original id part.
    prefix: String,
    /// Nothing of this namespace exists at or before this position.
    floor: GlobalPosition,
}

impl fmt::Debug for Namespaced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Namespaced")
            .field("prefix", &self.prefix)
            .field("floor", &self.floor)
            .finish()
    }
}

impl Namespaced {
    fn inward(&self, stream: &StreamId) -> Result<StreamId, LogError> {
        StreamId::new(
            stream.category(),
            format!("{}{}", self.prefix, stream.id_part()),
        )
        .map_err(|e| LogError::InvalidAppend {
            stream: stream.clone(),
            reason: format!("too long for the test namespace: {e}"),
        })
    }

    fn outward(&self, stream: &StreamId) -> Option<StreamId> {
        let id = stream.id_part().strip_prefix(&self.prefix)?;
        StreamId::new(stream.category(), id).ok()
    }

    fn outward_or_same(&self, stream: StreamId) -> StreamId {
        self.outward(&stream).unwrap_or(stream)
    }

    fn outward_error(&self, error: LogError) -> LogError {
        match error {
            LogError::WrongExpectedVersion {
                stream,
                expected,
                actual,
            } => LogError::WrongExpectedVersion {
                stream: self.outward_or_same(stream),
                expected,
                actual,
            },
            LogError::EventIdConflict {
                event_id,
                existing_stream,
                existing_version,
            } => LogError::EventIdConflict {
                event_id,
                existing_stream: self.outward_or_same(existing_stream),
                existing_version,
            },
            LogError::InvalidAppend { stream, reason } => LogError::InvalidAppend {
                stream: self.outward_or_same(stream),
                reason,
            },
            other => other,
        }
    }

    async fn append_ns(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError> {
        let inner = self.inward(stream)?;
        self.inner
            .append(&inner, expected, events)
            .await
            .map_err(|e| self.outward_error(e))
    }

    async fn read_stream_ns(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let inner = self.inward(stream)?;
        let read = self.inner.read_stream(&inner, after, max).await?;
        Ok(read
            .into_iter()
            .map(|mut e| {
                e.stream = stream.clone();
                e
            })
            .collect())
    }

    /// The namespace's events after `after`. The inner log returns fewer than asked only at the
    /// end of the log, so keep reading while other namespaces' events fill the pages.
    async fn read_all_ns(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let mut from = after.max(self.floor);
        let mut out = Vec::new();
        while out.len() < max {
            let want = max - out.len();
            let page = self.inner.read_all(from, want).await?;
            let got = page.len();
            for mut e in page {
                from = e.position;
                if let Some(stream) = self.outward(&e.stream) {
                    e.stream = stream;
                    out.push(e);
                }
            }
            if got < want {
                break;
            }
        }
        Ok(out)
    }

    async fn head_ns(&self) -> Result<GlobalPosition, LogError> {
        let mut head = GlobalPosition::START;
        let mut from = self.floor;
        loop {
            let page = self.inner.read_all(from, 4096).await?;
            let Some(last) = page.last() else {
                return Ok(head);
            };
            from = last.position;
            if let Some(mine) = page
                .iter()
                .rev()
                .find(|e| self.outward(&e.stream).is_some())
            {
                head = mine.position;
            }
            if page.len() < 4096 {
                return Ok(head);
            }
        }
    }
}

// Written out by hand (the tests crate does not depend on `async-trait`): these are the
// signatures `#[async_trait]` gives the trait's methods.
impl EventLog for Namespaced {
    fn append<'life0, 'life1, 'async_trait>(
        &'life0 self,
        stream: &'life1 StreamId,
        expected: ExpectedVersion,
        events: Vec<EventRecord>,
    ) -> BoxFuture<'async_trait, Result<AppendOutcome, LogError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.append_ns(stream, expected, events))
    }

    fn read_stream<'life0, 'life1, 'async_trait>(
        &'life0 self,
        stream: &'life1 StreamId,
        after: u64,
        max: usize,
    ) -> BoxFuture<'async_trait, Result<Vec<StoredEvent>, LogError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.read_stream_ns(stream, after, max))
    }

    fn read_all<'life0, 'async_trait>(
        &'life0 self,
        after: GlobalPosition,
        max: usize,
    ) -> BoxFuture<'async_trait, Result<Vec<StoredEvent>, LogError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.read_all_ns(after, max))
    }

    fn head<'life0, 'async_trait>(
        &'life0 self,
    ) -> BoxFuture<'async_trait, Result<GlobalPosition, LogError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.head_ns())
    }

    fn wake_ups(&self) -> watch::Receiver<GlobalPosition> {
        self.inner.wake_ups()
    }

    fn describe(&self) -> String {
        format!("{} (test namespace {})", self.inner.describe(), self.prefix)
    }
}

type Opener = Box<dyn Fn() -> BoxFuture<'static, Arc<dyn EventLog>> + Send + Sync>;

/// The suite's backend over a shared store: one namespace per run and key.
struct SharedStore {
    name: &'static str,
    /// Opens a new handle on the store.
    open: Opener,
    run: String,
    floor: OnceCell<GlobalPosition>,
}

impl SharedStore {
    fn new(name: &'static str, open: Opener) -> Self {
        Self {
            name,
            open,
            run: format!("t{}", &Uuid::new_v4().simple().to_string()[..12]),
            floor: OnceCell::new(),
        }
    }

    /// The server at `url`, reconnecting on every `open`.
    fn kurrentdb(url: String) -> Self {
        Self::new(
            "kurrentdb",
            Box::new(move || {
                let url = url.clone();
                Box::pin(async move { Arc::new(connect(&url).await) as Arc<dyn EventLog> })
            }),
        )
    }
}

impl Backend for SharedStore {
    fn name(&self) -> &'static str {
        self.name
    }

    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Arc<dyn EventLog>> {
        Box::pin(async move {
            let inner = (self.open)().await;
            let floor = *self
                .floor
                .get_or_init(|| async { inner.head().await.expect("head of the test server") })
                .await;
            let key: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            Arc::new(Namespaced {
                inner,
                prefix: format!("{}.{key}~", self.run),
                floor,
            }) as Arc<dyn EventLog>
        })
    }

    fn gap_free(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kurrentdb_log_conforms() {
    let Some(url) = server("kurrentdb_log_conforms") else {
        return;
    };
    run_all(Arc::new(SharedStore::kurrentdb(url))).await;
}

/// The namespacing harness itself, checked without a server: the whole suite through
/// [`Namespaced`] over one in-memory log shared by every key, which (like a KurrentDB server)
/// already holds other keys' events and so has gaps between one key's positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespacing_harness_conforms_over_a_shared_memory_log() {
    let shared = Arc::new(MemoryLog::new());
    // Something from "an earlier run" that no key may see.
    shared
        .append(
            &fresh_stream("earlier"),
            ExpectedVersion::NoStream,
            events(0, 3),
        )
        .await
        .expect("seed");
    let backend = SharedStore::new(
        "memory, namespaced",
        Box::new(move || {
            let log = shared.clone() as Arc<dyn EventLog>;
            Box::pin(async move { log })
        }),
    );
    run_all(Arc::new(backend)).await;
}

/// Positions are `$all` commit positions: the same number from the append, a stream read and a
/// read of the whole log; the store is opened through its address like the binary does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positions_agree_across_reads() {
    let Some(url) = server("positions_agree_across_reads") else {
        return;
    };
    let log = events::open(
        &StoreUrl::parse(&url).expect("KURRENTDB_URL is a store address"),
        &StoreOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("open {url}: {e}"));
    assert!(log.describe().starts_with("kurrentdb") || log.describe().starts_with("esdb"));
    let before = log.head().await.expect("head");
    let s = fresh_stream("pos");
    let out = log
        .append(&s, ExpectedVersion::NoStream, events(0, 4))
        .await
        .expect("append");
    assert!(out.first_position > before && out.first_position < out.last_position);
    assert_eq!(out.next_expected, 4);
    let by_stream = log.read_stream(&s, 0, 10).await.expect("read stream");
    assert_eq!(by_stream.len(), 4);
    assert_eq!(by_stream[0].position, out.first_position);
    assert_eq!(by_stream[3].position, out.last_position);
    // Other writers may share the server: find ours in the whole log.
    let mut found = Vec::new();
    let mut after = before;
    while found.len() < 4 {
        let page = log.read_all(after, 512).await.expect("read all");
        assert!(!page.is_empty(), "our events are missing from $all");
        after = page.last().expect("non-empty").position;
        found.extend(page.into_iter().filter(|e| e.stream == s));
    }
    assert_eq!(found, by_stream);
    assert!(log.head().await.expect("head") >= out.last_position);
}

/// A second handle hears about an append made through the first one through its `$all`
/// follower, without polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_follow_other_writers() {
    let Some(url) = server("wake_ups_follow_other_writers") else {
        return;
    };
    let writer = connect(&url).await;
    let watcher = connect(&url).await;
    let mut wake = watcher.wake_ups();
    // Give the follower a moment to be subscribed (it publishes the head once it is).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = writer
        .append(&fresh_stream("wake"), ExpectedVersion::Any, events(0, 2))
        .await
        .expect("append");
    tokio::time::timeout(
        Duration::from_secs(10),
        wake.wait_for(|p| *p >= out.last_position),
    )
    .await
    .expect("the watcher's follower did not see the append")
    .expect("wake-up channel open");
}

/// Retries through a handle that did not make the first append (a restarted writer): `Exact`
/// and `NoStream` retries are recognised by the server at any distance, `Any` retries while the
/// events are in the stream's recent tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_recognised_by_a_new_handle() {
    let Some(url) = server("retries_are_recognised_by_a_new_handle") else {
        return;
    };
    let s = fresh_stream("retry");
    let first = events(0, 3);
    let later = events(10, 2);
    let (out_first, out_later) = {
        let log = connect(&url).await;
        let a = log
            .append(&s, ExpectedVersion::NoStream, first.clone())
            .await
            .expect("first");
        let b = log
            .append(&s, ExpectedVersion::Any, later.clone())
            .await
            .expect("later");
        (a, b)
    };
    let log = connect(&url).await;
    assert_eq!(
        log.append(&s, ExpectedVersion::NoStream, first.clone())
            .await
            .expect("NoStream retry"),
        out_first
    );
    assert_eq!(
        log.append(&s, ExpectedVersion::Exact(3), later.clone())
            .await
            .expect("Exact retry"),
        out_later
    );
    assert_eq!(
        log.append(&s, ExpectedVersion::Any, later.clone())
            .await
            .expect("Any retry"),
        out_later
    );
    // A partial replay of the first append with something new is not a retry.
    let mut mixed = vec![first[0].clone()];
    mixed.push(event(99));
    let err = log
        .append(&s, ExpectedVersion::NoStream, mixed)
        .await
        .expect_err("not a faithful retry");
    assert!(matches!(err, LogError::EventIdConflict { .. }), "{err}");
    assert_eq!(log.read_stream(&s, 0, 100).await.expect("read").len(), 5);
}
