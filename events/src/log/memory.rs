//! An in-process log held in memory: same semantics as the durable backends (it passes the same
//! conformance suite), nothing persisted. Used by simulations and unit tests.
//!
//! Simulations append hundreds of thousands of events and then hash the whole log, so storage is
//! laid out to make appending, exporting and dropping cheap: each stream name and tenant is held
//! once and events refer to it by index; the type names and payloads of all events sit back to
//! back in one text buffer; each event keeps its crc32, as a durable row does. Reads build owned
//! `StoredEvent`s from that; `export` writes the portable format straight from it.

use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{
    AppendOutcome, CurrentVersion, EventLog, EventRecord, ExpectedVersion, GlobalPosition,
    LogError, StoredEvent, checksum, idempotent_outcome, to_micros, validate_append,
};
use crate::export::{Line, LineWriter};
use crate::ids::{CorrelationId, EventId, StreamId, TenantId};

/// Events `export` writes per lock: appends wait at most this long behind an export.
const EXPORT_CHUNK: usize = 4096;

#[derive(Debug, Default)]
struct Inner {
    /// In position order: the event at position `p` is `events[p - 1]`.
    events: Vec<Entry>,
    /// The type names and payloads of all events, back to back.
    text: String,
    streams: Vec<Stream>,
    stream_index: HashMap<StreamId, usize>,
    tenants: Vec<TenantId>,
    tenant_index: HashMap<TenantId, usize>,
    by_id: HashMap<EventId, usize>,
}

#[derive(Debug)]
struct Stream {
    id: StreamId,
    /// Indexes into `Inner::events`, in version order.
    events: Vec<usize>,
}

/// One stored event; strings live in `Inner`'s tables and text buffer.
#[derive(Debug)]
struct Entry {
    stream: usize,
    version: u64,
    event_id: EventId,
    /// `text[event_type]` is the type name.
    event_type: Range<usize>,
    schema_version: u16,
    occurred_at: DateTime<Utc>,
    tenant: Option<usize>,
    causation_id: Option<EventId>,
    correlation_id: Option<CorrelationId>,
    /// `text[payload]` is the JSON payload.
    payload: Range<usize>,
    checksum: u32,
}

impl Inner {
    fn stream_id(&self, index: usize) -> &StreamId {
        &self.streams[self.events[index].stream].id
    }

    /// The owned form of the event at `index`.
    fn stored(&self, index: usize) -> StoredEvent {
        let e = &self.events[index];
        StoredEvent {
            position: GlobalPosition(index as u64 + 1),
            stream: self.streams[e.stream].id.clone(),
            version: e.version,
            record: EventRecord {
                event_id: e.event_id,
                event_type: self.text[e.event_type.clone()].to_owned(),
                schema_version: e.schema_version,
                occurred_at: e.occurred_at,
                tenant: e.tenant.map(|t| self.tenants[t].clone()),
                causation_id: e.causation_id,
                correlation_id: e.correlation_id,
                payload: self.text[e.payload.clone()].to_owned(),
            },
        }
    }

    /// The index of `tenant` in the tenant table, adding it if new.
    fn tenant(&mut self, tenant: TenantId) -> usize {
        if let Some(&i) = self.tenant_index.get(&tenant) {
            return i;
        }
        let i = self.tenants.len();
        self.tenants.push(tenant.clone());
        self.tenant_index.insert(tenant, i);
        i
    }

    /// Claims the ids of `events` for the next positions, one lookup each. When one is already
    /// stored, none stays claimed and the answer is which event (its index in `events`) met
    /// which stored one (its index in `self.events`).
    fn claim_ids(&mut self, events: &[EventRecord]) -> Result<(), (usize, usize)> {
        let next = self.events.len();
        for (k, e) in events.iter().enumerate() {
            match self.by_id.entry(e.event_id) {
                Slot::Vacant(slot) => {
                    slot.insert(next + k);
                }
                Slot::Occupied(stored) => {
                    let found = *stored.get();
                    self.release_ids(&events[..k]);
                    return Err((k, found));
                }
            }
        }
        Ok(())
    }

    /// Gives back ids `claim_ids` claimed for an append that is not going ahead.
    fn release_ids(&mut self, events: &[EventRecord]) {
        for e in events {
            self.by_id.remove(&e.event_id);
        }
    }

    /// Stores one record, its id claimed, as the next event of the stream at `stream`.
    fn push(&mut self, stream: usize, version: u64, mut record: EventRecord) {
        record.occurred_at = to_micros(record.occurred_at);
        let checksum = checksum(&self.streams[stream].id, version, &record);
        let index = self.events.len();
        let start = self.text.len();
        self.text.push_str(&record.event_type);
        let type_end = self.text.len();
        self.text.push_str(&record.payload);
        let tenant = record.tenant.map(|t| self.tenant(t));
        self.streams[stream].events.push(index);
        self.events.push(Entry {
            stream,
            version,
            event_id: record.event_id,
            event_type: start..type_end,
            schema_version: record.schema_version,
            occurred_at: record.occurred_at,
            tenant,
            causation_id: record.causation_id,
            correlation_id: record.correlation_id,
            payload: type_end..self.text.len(),
            checksum,
        });
    }

    /// Writes the events from `range` (indexes) as export lines into `buf`.
    fn export(&self, range: Range<usize>, buf: &mut Vec<u8>) -> io::Result<()> {
        let mut writer = LineWriter::default();
        for (index, e) in self.events[range.clone()].iter().enumerate() {
            let line = Line {
                position: GlobalPosition((range.start + index) as u64 + 1),
                stream: &self.streams[e.stream].id,
                version: e.version,
                event_id: e.event_id,
                event_type: &self.text[e.event_type.clone()],
                schema_version: e.schema_version,
                occurred_at: e.occurred_at,
                tenant: e.tenant.map(|t| &self.tenants[t]),
                causation_id: e.causation_id,
                correlation_id: e.correlation_id,
                // A JSON object since `validate_append` let it in; a line holds it without the
                // whitespace JSON allows around it.
                payload: self.text[e.payload.clone()]
                    .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r')),
                checksum: e.checksum,
            };
            writer.write(buf, &line)?;
        }
        Ok(())
    }
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

    /// Writes the whole log to `out` in the portable export format (`crate::export`), the same
    /// bytes `write_event` gives for each event `read_all` returns, without building them. Takes
    /// the lock a few thousand events at a time; events appended meanwhile are included.
    pub fn export(&self, out: &mut impl Write) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut next = 0;
        loop {
            buf.clear();
            {
                let inner = self.lock();
                let end = inner.events.len().min(next + EXPORT_CHUNK);
                if end == next {
                    return Ok(());
                }
                inner.export(next..end, &mut buf)?;
                next = end;
            }
            out.write_all(&buf)?;
        }
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
        match inner.claim_ids(&events) {
            Ok(()) => {}
            // The first id is stored: a retry, faithful or not.
            Err((0, i)) => {
                let existing: Vec<_> = inner
                    .events
                    .iter()
                    .enumerate()
                    .skip(i)
                    .take(events.len())
                    .filter(|(_, e)| events.iter().any(|n| n.event_id == e.event_id))
                    .map(|(index, e)| {
                        (
                            e.event_id,
                            inner.stream_id(index).clone(),
                            e.version,
                            GlobalPosition(index as u64 + 1),
                        )
                    })
                    .collect();
                return idempotent_outcome(stream, &events, &existing);
            }
            Err((_, i)) => {
                let found = &inner.events[i];
                return Err(LogError::EventIdConflict {
                    event_id: found.event_id,
                    existing_stream: inner.stream_id(i).clone(),
                    existing_version: found.version,
                });
            }
        }
        let index = inner.stream_index.get(stream).copied();
        let current = index.map_or(0, |s| inner.streams[s].events.len() as u64);
        if !expected.admits(current) {
            inner.release_ids(&events);
            return Err(LogError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: CurrentVersion(current),
            });
        }
        let index = index.unwrap_or_else(|| {
            let s = inner.streams.len();
            inner.streams.push(Stream {
                id: stream.clone(),
                events: Vec::new(),
            });
            inner.stream_index.insert(stream.clone(), s);
            s
        });
        let first = inner.events.len() as u64 + 1;
        for (i, record) in events.into_iter().enumerate() {
            inner.push(index, current + 1 + i as u64, record);
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
            .stream_index
            .get(stream)
            .map(|&s| {
                inner.streams[s]
                    .events
                    .iter()
                    .skip(after as usize)
                    .take(max)
                    .map(|&i| inner.stored(i))
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
        let start = usize::try_from(after.0)
            .unwrap_or(usize::MAX)
            .min(inner.events.len());
        let end = inner.events.len().min(start.saturating_add(max));
        Ok((start..end).map(|i| inner.stored(i)).collect())
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

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::codec::{Metadata, encode};
    use crate::export::write_event;
    use crate::model::Event;

    fn record(i: usize, event: &Event, tenant: Option<&str>) -> EventRecord {
        let mut metadata = Metadata::new(
            EventId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1)),
            DateTime::from_timestamp_nanos(1_767_225_600_123_456_789 + i as i64 * 1_000_001),
        );
        metadata.tenant = tenant.and_then(|t| TenantId::parse(t).ok());
        if i % 4 == 1 {
            metadata.causation_id = Some(EventId::from_uuid(uuid::Uuid::from_u128(7)));
            metadata.correlation_id = Some(CorrelationId::from_uuid(uuid::Uuid::from_u128(9)));
        }
        encode(event, metadata)
    }

    /// A log over three streams and two tenants (and none), and what `read_all` returns.
    fn filled() -> (MemoryLog, Vec<StoredEvent>) {
        let log = MemoryLog::new();
        let streams: Vec<StreamId> = ["call-a", "extension-acme.1001", "call-b"]
            .iter()
            .map(|s| StreamId::parse(s).expect("stream"))
            .collect();
        let tenants = [Some("acme"), None, Some("other")];
        let mut versions = [0u64; 3];
        for (chunk, events) in Event::examples().chunks(3).take(20).enumerate() {
            let s = chunk % 3;
            let mut records: Vec<_> = events
                .iter()
                .enumerate()
                .map(|(k, e)| record(chunk * 3 + k, e, tenants[(chunk + k) % 3]))
                .collect();
            // JSON allows whitespace around the payload; the log keeps the text as given.
            if chunk % 5 == 4 {
                records[0].payload = format!(" \n{}\t ", records[0].payload);
            }
            let outcome = log
                .append(&streams[s], ExpectedVersion::Exact(versions[s]), records)
                .now_or_never()
                .expect("at once")
                .expect("append");
            versions[s] = outcome.next_expected;
        }
        let all = log
            .read_all(GlobalPosition::START, usize::MAX)
            .now_or_never()
            .expect("at once")
            .expect("read");
        (log, all)
    }

    #[test]
    fn a_refused_append_leaves_its_ids_free() {
        let log = MemoryLog::new();
        let stream = StreamId::parse("call-a").expect("stream");
        let examples = Event::examples();
        let append = |ids: &[usize], expected| {
            let records = ids.iter().map(|&i| record(i, &examples[i], None)).collect();
            log.append(&stream, expected, records)
                .now_or_never()
                .expect("at once")
        };
        append(&[0], ExpectedVersion::NoStream).expect("first");
        // A wrong expected version, then an id met in the middle of an append: both refused
        // without keeping the ids they did not reuse.
        let wrong = append(&[1, 2], ExpectedVersion::Exact(5)).expect_err("version");
        assert!(
            matches!(wrong, LogError::WrongExpectedVersion { .. }),
            "{wrong}"
        );
        let reused = append(&[3, 0], ExpectedVersion::Exact(1)).expect_err("reused id");
        assert!(
            matches!(
                &reused,
                LogError::EventIdConflict {
                    existing_version: 1,
                    ..
                }
            ),
            "{reused}"
        );
        let outcome = append(&[1, 2, 3], ExpectedVersion::Exact(1)).expect("ids are free");
        assert_eq!(outcome.next_expected, 4);
        // A faithful retry returns the original outcome.
        assert_eq!(
            append(&[1, 2, 3], ExpectedVersion::Exact(1)).expect("retry"),
            outcome
        );
    }

    #[test]
    fn export_writes_what_write_event_writes_for_every_stored_event() {
        let (log, all) = filled();
        assert!(all.len() > 30, "{}", all.len());
        let mut expected = Vec::new();
        for e in &all {
            write_event(&mut expected, e).expect("write");
        }
        let mut exported = Vec::new();
        log.export(&mut exported).expect("export");
        assert_eq!(
            String::from_utf8(exported).expect("utf8"),
            String::from_utf8(expected).expect("utf8")
        );
    }

    #[test]
    fn reads_give_back_the_records_as_appended_with_time_in_microseconds() {
        let (log, all) = filled();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.position, GlobalPosition(i as u64 + 1));
            assert_eq!(e.record.occurred_at, to_micros(e.record.occurred_at));
        }
        let stream = StreamId::parse("extension-acme.1001").expect("stream");
        let in_stream = log
            .read_stream(&stream, 1, 2)
            .now_or_never()
            .expect("at once")
            .expect("read");
        let expected: Vec<_> = all
            .iter()
            .filter(|e| e.stream == stream)
            .skip(1)
            .take(2)
            .cloned()
            .collect();
        assert_eq!(in_stream, expected);
        assert_eq!(
            expected.iter().map(|e| e.version).collect::<Vec<_>>(),
            [2, 3]
        );
        let page = log
            .read_all(GlobalPosition(5), 3)
            .now_or_never()
            .expect("at once")
            .expect("read");
        assert_eq!(page, all[5..8]);
        let past_the_end = log
            .read_all(GlobalPosition(u64::MAX), 3)
            .now_or_never()
            .expect("at once")
            .expect("read");
        assert!(past_the_end.is_empty());
    }
}
