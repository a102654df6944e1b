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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
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

#[derive(Serialize)]
struct LineOut<'a> {
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
    let line = LineOut {
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
        payload,
        checksum: checksum(&e.stream, e.version, &e.record),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
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
