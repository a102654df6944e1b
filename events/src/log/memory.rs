//! An in-process log held in memory: same semantics as the durable backends (it passes the same
//! conformance suite), nothing persisted. Used by simulations and unit tests.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::watch;

use super::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoredEvent, idempotent_outcome, to_micros, validate_append,
};
use crate::ids::{EventId, StreamId};

#[derive(Debug, Default)]
struct Inner {
    events: Vec<StoredEvent>,
    streams: HashMap<StreamId, Vec<usize>>,
    by_id: HashMap<EventId, usize>,
}

/// The in-memory backend.
#[derive(Debug)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
    head: watch::Sender<GlobalPosition>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLog {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            head: watch::channel(GlobalPosition::START).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<EventRecord>,
    ) -> Result<AppendOutcome, LogError> {
        validate_append(stream, &events)?;
        let mut inner = self.lock();
        if let Some(&i) = inner.by_id.get(&events[0].event_id) {
            let existing: Vec<_> = inner.events[i..]
                .iter()
                .take(events.len())
                .filter(|e| events.iter().any(|n| n.event_id == e.record.event_id))
                .map(|e| (e.record.event_id, e.stream.clone(), e.version, e.position))
                .collect();
            return idempotent_outcome(stream, &events, &existing);
        }
        if let Some(e) = events.iter().find_map(|e| inner.by_id.get(&e.event_id)) {
            let found = &inner.events[*e];
            return Err(LogError::EventIdConflict {
                event_id: found.record.event_id,
                existing_stream: found.stream.clone(),
                existing_version: found.version,
            });
        }
        let current = inner.streams.get(stream).map_or(0, |v| v.len() as u64);
        if !expected.admits(current) {
            return Err(LogError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: CurrentVersion(current),
            });
        }
        let first = inner.events.len() as u64 + 1;
        for (i, mut record) in events.into_iter().enumerate() {
            record.occurred_at = to_micros(record.occurred_at);
            let index = inner.events.len();
            inner.by_id.insert(record.event_id, index);
            inner.streams.entry(stream.clone()).or_default().push(index);
            inner.events.push(StoredEvent {
                position: GlobalPosition(first + i as u64),
                stream: stream.clone(),
                version: current + 1 + i as u64,
                record,
            });
        }
        let last = inner.events.len() as u64;
        drop(inner);
        self.head.send_replace(GlobalPosition(last));
        Ok(AppendOutcome {
            first_position: GlobalPosition(first),
            last_position: GlobalPosition(last),
            next_expected: current + (last - first + 1),
        })
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let inner = self.lock();
        Ok(inner
            .streams
            .get(stream)
            .map(|idx| {
                idx.iter()
                    .skip(after as usize)
                    .take(max)
                    .map(|&i| inner.events[i].clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<StoredEvent>, LogError> {
        let inner = self.lock();
        Ok(inner
            .events
            .iter()
            .skip(after.0 as usize)
            .take(max)
            .cloned()
            .collect())
    }

    async fn head(&self) -> Result<GlobalPosition, LogError> {
        Ok(GlobalPosition(self.lock().events.len() as u64))
    }

    fn wake_ups(&self) -> watch::Receiver<GlobalPosition> {
        self.head.subscribe()
    }

    fn describe(&self) -> String {
        "memory:".into()
    }
}
