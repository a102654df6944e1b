//! The portable log file: one JSON object per line, one line per stored event, in position
//! order — what `ledgerline export` writes from any backend and what replay and import read.
//! Each line carries the event's position, stream, version, envelope, the payload as the exact
//! JSON object it was appended with, and the crc32 the log keeps, so a reader can prove every
//! record intact. A damaged or torn line is an error naming its line number, never skipped.
//!
//! ```text
//! {"position":1,"stream":"call-…","version":1,"event_id":"…","event_type":"CallOffered","schema_version":1,"occurred_at":"2026-…Z","tenant":"acme","payload":{…},"checksum":123}
//! ```

use std::io::{self, BufRead, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ids::{CorrelationId, EventId, StreamId, TenantId};
use crate::log::{EventRecord, GlobalPosition, StoredEvent, checksum};

/// Why a log file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("line {line}: {detail}")]
    BadLine { line: u64, detail: String },
    #[error(
        "line {line} is incomplete (the file ends in the middle of a record: a torn last write?)"
    )]
    TornLine { line: u64 },
    #[error("line {line}: checksum mismatch for position {position} (the record was altered)")]
    Checksum { line: u64, position: u64 },
    #[error("line {line}: position {position} does not follow {previous}")]
    OutOfOrder {
        line: u64,
        position: u64,
        previous: u64,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// One event as its line holds it, borrowed from wherever the event is kept (a `StoredEvent`,
/// or the memory log's own storage), with its checksum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub(crate) position: GlobalPosition,
    pub(crate) stream: &'a StreamId,
    pub(crate) version: u64,
    pub(crate) event_id: EventId,
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: u16,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) tenant: Option<&'a TenantId>,
    pub(crate) causation_id: Option<EventId>,
    pub(crate) correlation_id: Option<CorrelationId>,
    /// One JSON value, without surrounding whitespace: written as it is.
    pub(crate) payload: &'a str,
    pub(crate) checksum: u32,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    position: u64,
    stream: StreamId,
    version: u64,
    event_id: EventId,
    event_type: String,
    schema_version: u16,
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    tenant: Option<TenantId>,
    #[serde(default)]
    causation_id: Option<EventId>,
    #[serde(default)]
    correlation_id: Option<CorrelationId>,
    #[serde(borrow)]
    payload: &'a RawValue,
    checksum: u32,
}

/// Writes one event as one line.
pub fn write_event(out: &mut impl Write, e: &StoredEvent) -> io::Result<()> {
    let payload: &RawValue = serde_json::from_str(&e.record.payload).map_err(|err| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("payload at position {} is not JSON: {err}", e.position),
        )
    })?;
    LineWriter::default().write(out, &Line::of(e, payload))
}

impl<'a> Line<'a> {
    /// The line of a stored event whose payload is `payload` (its text, parsed as JSON).
    pub(crate) fn of(e: &'a StoredEvent, payload: &'a RawValue) -> Self {
        Line {
            position: e.position,
            stream: &e.stream,
            version: e.version,
            event_id: e.record.event_id,
            event_type: &e.record.event_type,
            schema_version: e.record.schema_version,
            occurred_at: e.record.occurred_at,
            tenant: e.record.tenant.as_ref(),
            causation_id: e.record.causation_id,
            correlation_id: e.record.correlation_id,
            payload: payload.get(),
            checksum: checksum(&e.stream, e.version, &e.record),
        }
    }
}

/// Writes lines in the one form the format has: compact JSON, the fields in the order `LineIn`
/// lists them, absent envelope fields left out, the payload as stored, then a newline. Written
/// field by field rather than through a derived `Serialize` (which escaped every key and took
/// chrono's slow `collect_str` path for the time), and remembering the last instant it formatted,
/// because events appended together share one.
#[derive(Debug, Default)]
pub(crate) struct LineWriter {
    time: Option<(DateTime<Utc>, String)>,
}

impl LineWriter {
    pub(crate) fn write(&mut self, out: &mut impl Write, line: &Line<'_>) -> io::Result<()> {
        out.write_all(b"{\"position\":")?;
        number(out, line.position.0)?;
        out.write_all(b",\"stream\":")?;
        string(out, line.stream.as_str())?;
        out.write_all(b",\"version\":")?;
        number(out, line.version)?;
        out.write_all(b",\"event_id\":")?;
        uuid(out, line.event_id.as_uuid())?;
        out.write_all(b",\"event_type\":")?;
        string(out, line.event_type)?;
        out.write_all(b",\"schema_version\":")?;
        number(out, line.schema_version.into())?;
        out.write_all(b",\"occurred_at\":\"")?;
        out.write_all(self.time(line.occurred_at).as_bytes())?;
        out.write_all(b"\"")?;
        if let Some(tenant) = line.tenant {
            out.write_all(b",\"tenant\":")?;
            string(out, tenant.as_str())?;
        }
        if let Some(id) = line.causation_id {
            out.write_all(b",\"causation_id\":")?;
            uuid(out, id.as_uuid())?;
        }
        if let Some(id) = line.correlation_id {
            out.write_all(b",\"correlation_id\":")?;
            uuid(out, id.as_uuid())?;
        }
        out.write_all(b",\"payload\":")?;
        out.write_all(line.payload.as_bytes())?;
        out.write_all(b",\"checksum\":")?;
        number(out, line.checksum.into())?;
        out.write_all(b"}\n")
    }

    /// `at` as chrono serialises a `DateTime<Utc>`: RFC 3339, `Z`, as many fraction digits as
    /// it needs (none, 3, 6 or 9). RFC 3339 text needs no escaping in a JSON string.
    fn time(&mut self, at: DateTime<Utc>) -> &str {
        if self.time.as_ref().is_none_or(|(last, _)| *last != at) {
            self.time = Some((at, at.to_rfc3339_opts(SecondsFormat::AutoSi, true)));
        }
        self.time.as_ref().map_or("", |(_, text)| text)
    }
}

fn number(out: &mut impl Write, n: u64) -> io::Result<()> {
    serde_json::to_writer(out, &n).map_err(io::Error::from)
}

fn string(out: &mut impl Write, s: &str) -> io::Result<()> {
    serde_json::to_writer(out, s).map_err(io::Error::from)
}

fn uuid(out: &mut impl Write, id: uuid::Uuid) -> io::Result<()> {
    let mut buf = uuid::Uuid::encode_buffer();
    out.write_all(b"\"")?;
    out.write_all(id.hyphenated().encode_lower(&mut buf).as_bytes())?;
    out.write_all(b"\"")
}

/// Reads a log file line by line, verifying each record and the order of positions.
#[derive(Debug)]
pub struct Reader<R> {
    input: R,
    line: u64,
    previous: u64,
    buf: String,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            line: 0,
            previous: 0,
            buf: String::new(),
        }
    }

    /// The next event, `None` at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<StoredEvent>, ExportError> {
        loop {
            self.buf.clear();
            if self.input.read_line(&mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let complete = self.buf.ends_with('\n');
            let text = self.buf.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                if complete {
                    continue;
                }
                return Ok(None);
            }
            let parsed: LineIn<'_> = match serde_json::from_str(text) {
                Ok(p) => p,
                Err(e) if !complete && e.is_eof() => {
                    return Err(ExportError::TornLine { line: self.line });
                }
                Err(e) => {
                    return Err(ExportError::BadLine {
                        line: self.line,
                        detail: e.to_string(),
                    });
                }
            };
            if !complete {
                // A whole record without its newline is fine only at the very end.
                let mut probe = String::new();
                if self.input.read_line(&mut probe)? != 0 {
                    return Err(ExportError::BadLine {
                        line: self.line,
                        detail: "record not terminated by a newline".into(),
                    });
                }
            }
            if parsed.position <= self.previous {
                return Err(ExportError::OutOfOrder {
                    line: self.line,
                    position: parsed.position,
                    previous: self.previous,
                });
            }
            let record = EventRecord {
                event_id: parsed.event_id,
                event_type: parsed.event_type,
                schema_version: parsed.schema_version,
                occurred_at: parsed.occurred_at,
                tenant: parsed.tenant,
                causation_id: parsed.causation_id,
                correlation_id: parsed.correlation_id,
                payload: parsed.payload.get().to_owned(),
            };
            if checksum(&parsed.stream, parsed.version, &record) != parsed.checksum {
                return Err(ExportError::Checksum {
                    line: self.line,
                    position: parsed.position,
                });
            }
            self.previous = parsed.position;
            return Ok(Some(StoredEvent {
                position: GlobalPosition(parsed.position),
                stream: parsed.stream,
                version: parsed.version,
                record,
            }));
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<StoredEvent, ExportError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Timelike;

    use super::*;
    use crate::codec::{Metadata, encode};
    use crate::model::Event;

    fn stored() -> Vec<StoredEvent> {
        Event::examples()
            .iter()
            .take(20)
            .enumerate()
            .map(|(i, ev)| {
                let meta = Metadata {
                    event_id: EventId::from_uuid(uuid::Uuid::from_u128(i as u128 + 1)),
                    occurred_at: DateTime::from_timestamp_micros(1_767_225_600_000_000 + i as i64)
                        .unwrap_or_default(),
                    tenant: TenantId::parse("acme").ok(),
                    causation_id: None,
                    correlation_id: None,
                };
                StoredEvent {
                    position: GlobalPosition(i as u64 + 1),
                    stream: StreamId::parse(format!("call-{}", i % 3)).expect("stream"),
                    version: i as u64 / 3 + 1,
                    record: encode(ev, meta),
                }
            })
            .collect()
    }

    fn export(events: &[StoredEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            write_event(&mut out, e).expect("write");
        }
        out
    }

    fn read(bytes: &[u8]) -> Result<Vec<StoredEvent>, ExportError> {
        Reader::new(bytes).collect()
    }

    #[test]
    fn round_trips_exactly() {
        let events = stored();
        let bytes = export(&events);
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), events.len());
        assert_eq!(read(&bytes).expect("read"), events);
        // Exporting what was read gives the same bytes.
        assert_eq!(export(&read(&bytes).expect("read")), bytes);
    }

    /// The line as a derived `Serialize` writes it, which is how the format was first written:
    /// `LineWriter` must give the same bytes.
    #[derive(serde::Serialize)]
    struct Reference<'a> {
        position: u64,
        stream: &'a StreamId,
        version: u64,
        event_id: EventId,
        event_type: &'a str,
        schema_version: u16,
        occurred_at: DateTime<Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<&'a TenantId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        causation_id: Option<EventId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<CorrelationId>,
        payload: &'a RawValue,
        checksum: u32,
    }

    fn reference(e: &StoredEvent) -> String {
        let line = Reference {
            position: e.position.0,
            stream: &e.stream,
            version: e.version,
            event_id: e.record.event_id,
            event_type: &e.record.event_type,
            schema_version: e.record.schema_version,
            occurred_at: e.record.occurred_at,
            tenant: e.record.tenant.as_ref(),
            causation_id: e.record.causation_id,
            correlation_id: e.record.correlation_id,
            payload: serde_json::from_str(&e.record.payload).expect("payload"),
            checksum: checksum(&e.stream, e.version, &e.record),
        };
        serde_json::to_string(&line).expect("serialise") + "\n"
    }

    #[test]
    fn lines_are_the_bytes_a_derived_serialize_writes() {
        let mut events = stored();
        // Every shape of time (whole seconds, milli-, micro-, nanoseconds), each instant twice in
        // a row, envelopes with and without each optional field, names that need escaping.
        let times = [
            0,
            120_000_000,
            120_500_000,
            120_456_000,
            120_456_789,
            999_999_999,
        ];
        for (i, e) in events.iter_mut().enumerate() {
            e.record.occurred_at = DateTime::from_timestamp(1_767_225_600 + (i as i64 / 2), 0)
                .expect("instant")
                .with_nanosecond(times[(i / 2) % times.len()])
                .expect("nanoseconds");
            if i % 3 == 0 {
                e.record.tenant = None;
            }
            if i % 4 == 1 {
                e.record.causation_id = Some(EventId::from_uuid(uuid::Uuid::from_u128(77)));
            }
            if i % 5 == 2 {
                e.record.correlation_id =
                    Some(CorrelationId::from_uuid(uuid::Uuid::from_u128(u128::MAX)));
            }
            if i % 7 == 3 {
                e.record.event_type = "Odd \"type\"\\\u{1}é".into();
            }
        }
        let mut writer = LineWriter::default();
        let mut shared = Vec::new();
        for e in &events {
            let expected = reference(e);
            let mut alone = Vec::new();
            write_event(&mut alone, e).expect("write");
            assert_eq!(String::from_utf8(alone).expect("utf8"), expected);
            let payload: &RawValue = serde_json::from_str(&e.record.payload).expect("payload");
            let before = shared.len();
            writer
                .write(&mut shared, &Line::of(e, payload))
                .expect("write");
            assert_eq!(
                std::str::from_utf8(&shared[before..]).expect("utf8"),
                expected
            );
        }
        // What was written reads back.
        assert_eq!(read(&shared).expect("read").len(), events.len());
    }

    #[test]
    fn a_torn_last_line_is_reported_with_its_number() {
        let bytes = export(&stored());
        let cut = &bytes[..bytes.len() - 30];
        let err = read(cut).expect_err("torn");
        assert!(matches!(err, ExportError::TornLine { line: 20 }), "{err}");
        assert!(err.to_string().contains("line 20 is incomplete"), "{err}");
    }

    #[test]
    fn an_altered_record_fails_its_checksum() {
        let bytes = String::from_utf8(export(&stored())).expect("utf8");
        let mut lines: Vec<String> = bytes.lines().map(str::to_owned).collect();
        lines[6] = lines[6].replacen("\"acme\"", "\"evil\"", 1);
        let err = read((lines.join("\n") + "\n").as_bytes()).expect_err("altered");
        assert!(
            matches!(err, ExportError::Checksum { line: 7, .. }),
            "{err}"
        );
    }

    #[test]
    fn garbage_and_disorder_are_reported() {
        let err = read(b"{\"position\":1}\n").expect_err("missing fields");
        assert!(err.to_string().starts_with("line 1:"), "{err}");
        let mut events = stored();
        events.swap(3, 4);
        let err = read(&export(&events)).expect_err("order");
        assert!(
            matches!(err, ExportError::OutOfOrder { line: 5, .. }),
            "{err}"
        );
        assert!(read(b"").expect("empty").is_empty());
    }
}
