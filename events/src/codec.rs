//! The stored form of domain events, and the only code that reads and writes it. `encode` turns
//! an `Event` and its `Metadata` into the `EventRecord` the log appends: the past-tense type name,
//! the variant's schema version, and the variant's fields as a JSON object. `decode` turns what
//! the log returns back into a `Recorded` event.
//!
//! Decoding is on the read-all hot path, so a current-version payload goes from JSON text straight
//! into its variant: the type name selects the variant's own deserialiser from the table
//! `event_enum!` generates, with no `serde_json::Value` in between. Only payloads written under an
//! older schema version take the slow path: they are parsed into a `Value`, passed through the
//! registered upcasters one version at a time until current, and then deserialised.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::ids::{CorrelationId, EventId, StreamId, TenantId};
use crate::log::{EventRecord, GlobalPosition, StoredEvent, to_micros};
use crate::model::Event;

/// What the envelope says about an event besides its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Unique id; an append is idempotent by it, so a retried command must reuse it.
    pub event_id: EventId,
    /// From the injected clock. Stored with microsecond precision.
    pub occurred_at: DateTime<Utc>,
    /// The tenant the event belongs to; absent for system and reseller events.
    pub tenant: Option<TenantId>,
    /// The event that directly caused this one, when another event did.
    pub causation_id: Option<EventId>,
    /// Shared by every event that follows from one originating action.
    pub correlation_id: Option<CorrelationId>,
}

impl Metadata {
    pub fn new(event_id: EventId, occurred_at: DateTime<Utc>) -> Self {
        Self {
            event_id,
            occurred_at,
            tenant: None,
            causation_id: None,
            correlation_id: None,
        }
    }

    pub fn with_tenant(mut self, tenant: TenantId) -> Self {
        self.tenant = Some(tenant);
        self
    }

    pub fn with_correlation(mut self, correlation_id: CorrelationId) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    /// Marks this event as caused by `cause`: its causation is `cause`'s id, and it joins
    /// `cause`'s correlation (or starts one named after `cause` when it had none).
    pub fn caused_by(mut self, cause: &Metadata) -> Self {
        self.causation_id = Some(cause.event_id);
        self.correlation_id = Some(
            cause
                .correlation_id
                .unwrap_or_else(|| CorrelationId::from_uuid(cause.event_id.as_uuid())),
        );
        self
    }

    fn of(record: &EventRecord) -> Self {
        Self {
            event_id: record.event_id,
            occurred_at: record.occurred_at,
            tenant: record.tenant.clone(),
            causation_id: record.causation_id,
            correlation_id: record.correlation_id,
        }
    }
}

/// An event read back from the log, with where it is and what the envelope says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<E = Event> {
    pub position: GlobalPosition,
    pub stream: StreamId,
    /// The event's version within its stream (the first is 1).
    pub version: u64,
    pub metadata: Metadata,
    pub event: E,
}

impl<E> Recorded<E> {
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Recorded<F> {
        Recorded {
            position: self.position,
            stream: self.stream,
            version: self.version,
            metadata: self.metadata,
            event: f(self.event),
        }
    }
}

impl Recorded<Event> {
    /// Narrows to one aggregate's events (`Recorded<CallEvent>`, …); an event of another
    /// aggregate is handed back unchanged.
    #[allow(
        clippy::result_large_err,
        reason = "the Err is the record itself, moved back to the caller, not an error value"
    )]
    pub fn narrow<E>(self) -> Result<Recorded<E>, Recorded<Event>>
    where
        E: TryFrom<Event, Error = Event>,
    {
        let Recorded {
            position,
            stream,
            version,
            metadata,
            event,
        } = self;
        match E::try_from(event) {
            Ok(event) => Ok(Recorded {
                position,
                stream,
                version,
                metadata,
                event,
            }),
            Err(event) => Err(Recorded {
                position,
                stream,
                version,
                metadata,
                event,
            }),
        }
    }
}

/// Why a stored event could not be turned back into an `Event`. Every case names the event type,
/// the stored schema version and, when decoding a `StoredEvent`, its log position.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unknown event type {event_type:?} (schema version {schema_version}){}",
        at(.position)
    )]
    UnknownType {
        event_type: String,
        schema_version: u16,
        position: Option<GlobalPosition>,
    },
    #[error(
        "{event_type} schema version {schema_version}{} is newer than this build's {known}",
        at(.position)
    )]
    NewerSchema {
        event_type: String,
        schema_version: u16,
        known: u16,
        position: Option<GlobalPosition>,
    },
    #[error(
        "{event_type} schema version {schema_version}{}: no upcaster from version {from}",
        at(.position)
    )]
    MissingUpcaster {
        event_type: String,
        schema_version: u16,
        from: u16,
        position: Option<GlobalPosition>,
    },
    #[error(
        "{event_type} schema version {schema_version}{}: upcast from {from} failed: {reason}",
        at(.position)
    )]
    UpcastFailed {
        event_type: String,
        schema_version: u16,
        from: u16,
        reason: String,
        position: Option<GlobalPosition>,
    },
    #[error(
        "{event_type} schema version {schema_version}{}: bad payload: {source}",
        at(.position)
    )]
    BadPayload {
        event_type: String,
        schema_version: u16,
        position: Option<GlobalPosition>,
        source: serde_json::Error,
    },
}

impl DecodeError {
    /// The stored type name of the event that failed.
    pub fn event_type(&self) -> &str {
        match self {
            DecodeError::UnknownType { event_type, .. }
            | DecodeError::NewerSchema { event_type, .. }
            | DecodeError::MissingUpcaster { event_type, .. }
            | DecodeError::UpcastFailed { event_type, .. }
            | DecodeError::BadPayload { event_type, .. } => event_type,
        }
    }

    /// The log position of the event that failed, when it was read from the log.
    pub fn position(&self) -> Option<GlobalPosition> {
        match self {
            DecodeError::UnknownType { position, .. }
            | DecodeError::NewerSchema { position, .. }
            | DecodeError::MissingUpcaster { position, .. }
            | DecodeError::UpcastFailed { position, .. }
            | DecodeError::BadPayload { position, .. } => *position,
        }
    }
}

/// Formats " at position N" when the position is known.
struct At(Option<GlobalPosition>);

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, " at position {p}"),
            None => Ok(()),
        }
    }
}

fn at(position: &Option<GlobalPosition>) -> At {
    At(*position)
}

/// The record to append for `event`.
pub fn encode(event: &Event, metadata: Metadata) -> EventRecord {
    // Events are plain data (strings, numbers, ids, timestamps, vectors, structs): serde_json
    // cannot fail on them. The golden tests serialise every variant.
    let payload = serde_json::to_string(event)
        .unwrap_or_else(|e| panic!("{} failed to serialise: {e}", event.event_type()));
    EventRecord {
        event_id: metadata.event_id,
        event_type: event.event_type().to_owned(),
        schema_version: event.schema_version(),
        occurred_at: to_micros(metadata.occurred_at),
        tenant: metadata.tenant,
        causation_id: metadata.causation_id,
        correlation_id: metadata.correlation_id,
        payload,
    }
}

/// The event a log read returned, upcast to the current schema if it was written under an older
/// one.
pub fn decode(stored: &StoredEvent) -> Result<Recorded, DecodeError> {
    let event = decode_payload(&stored.record, Some(stored.position))?;
    Ok(Recorded {
        position: stored.position,
        stream: stored.stream.clone(),
        version: stored.version,
        metadata: Metadata::of(&stored.record),
        event,
    })
}

/// The event of a record that has no log position (yet, or any more: an export, a fixture).
pub fn decode_record(record: &EventRecord) -> Result<Event, DecodeError> {
    decode_payload(record, None)
}

fn decode_payload(
    record: &EventRecord,
    position: Option<GlobalPosition>,
) -> Result<Event, DecodeError> {
    let event_type = &record.event_type;
    let schema_version = record.schema_version;
    let Some(known) = Event::type_named(event_type) else {
        return Err(DecodeError::UnknownType {
            event_type: event_type.clone(),
            schema_version,
            position,
        });
    };
    let bad_payload = |source| DecodeError::BadPayload {
        event_type: event_type.clone(),
        schema_version,
        position,
        source,
    };
    if schema_version == known.schema_version {
        return (known.decode)(&record.payload).map_err(bad_payload);
    }
    if schema_version > known.schema_version {
        return Err(DecodeError::NewerSchema {
            event_type: event_type.clone(),
            schema_version,
            known: known.schema_version,
            position,
        });
    }
    let mut payload: Value = serde_json::from_str(&record.payload).map_err(bad_payload)?;
    for from in schema_version..known.schema_version {
        let upcaster = UPCASTERS
            .iter()
            .find(|u| u.event_type == event_type.as_str() && u.from_version == from)
            .ok_or_else(|| DecodeError::MissingUpcaster {
                event_type: event_type.clone(),
                schema_version,
                from,
                position,
            })?;
        payload = (upcaster.upcast)(payload).map_err(|reason| DecodeError::UpcastFailed {
            event_type: event_type.clone(),
            schema_version,
            from,
            reason,
            position,
        })?;
    }
    (known.decode)(&payload.to_string()).map_err(bad_payload)
}

/// Rewrites a payload of `event_type` from schema version `from_version` to `from_version + 1`.
struct Upcaster {
    event_type: &'static str,
    from_version: u16,
    upcast: fn(Value) -> Result<Value, String>,
}

/// Every upcaster. A variant at schema version N needs one from each of 1..N, which a test
/// checks; old-version fixtures in `events/fixtures/old/` prove they work.
const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "PresenceSet",
    from_version: 1,
    upcast: presence_set_v1,
}];

/// `PresenceSet` v1 → v2: v1 named the chosen list entry `status` and had no `source`, because
/// only the user could set presence then.
fn presence_set_v1(mut payload: Value) -> Result<Value, String> {
    let object = payload
        .as_object_mut()
        .ok_or("the payload is not a JSON object")?;
    let status = object.remove("status").ok_or("missing field `status`")?;
    object.insert("state".to_owned(), status);
    object
        .entry("source")
        .or_insert_with(|| Value::from("user"));
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::ids::{CallId, ExtensionNumber, LegId, UserId};
    use crate::model::{CallEvent, ExtensionEvent, PresenceSource, PresenceStateType};

    fn metadata() -> Metadata {
        let at = Utc
            .timestamp_opt(1_772_444_460, 123_456_789)
            .single()
            .unwrap();
        Metadata::new(EventId::from_uuid(Uuid::from_u128(1)), at)
            .with_tenant(TenantId::parse("acme").unwrap())
    }

    fn record(event_type: &str, schema_version: u16, payload: &str) -> EventRecord {
        EventRecord {
            event_type: event_type.to_owned(),
            schema_version,
            payload: payload.to_owned(),
            ..encode(&held(), metadata())
        }
    }

    fn held() -> Event {
        CallEvent::CallHeld {
            call: CallId::from_uuid(Uuid::from_u128(0xca11)),
            leg: LegId::from_uuid(Uuid::from_u128(0x1e9)),
        }
        .into()
    }

    fn stored(record: EventRecord) -> StoredEvent {
        StoredEvent {
            position: GlobalPosition(42),
            stream: StreamId::call(CallId::from_uuid(Uuid::from_u128(0xca11))),
            version: 3,
            record,
        }
    }

    #[test]
    fn encode_writes_type_version_envelope_and_a_payload_object() {
        let cause = Metadata::new(
            EventId::from_uuid(Uuid::from_u128(9)),
            metadata().occurred_at,
        );
        let r = encode(&held(), metadata().caused_by(&cause));
        assert_eq!(r.event_type, "CallHeld");
        assert_eq!(r.schema_version, 1);
        assert_eq!(r.event_id, metadata().event_id);
        assert_eq!(r.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
        assert_eq!(r.causation_id, Some(cause.event_id));
        assert_eq!(
            r.correlation_id.map(|c| c.as_uuid()),
            Some(cause.event_id.as_uuid())
        );
        assert_eq!(r.occurred_at.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(
            r.payload,
            r#"{"call":"00000000-0000-0000-0000-00000000ca11","leg":"00000000-0000-0000-0000-0000000001e9"}"#
        );
    }

    #[test]
    fn every_example_round_trips() {
        for event in Event::examples() {
            let r = encode(&event, metadata());
            assert_eq!(decode_record(&r).unwrap(), event, "{}", r.event_type);
        }
    }

    #[test]
    fn decode_keeps_position_stream_version_and_envelope() {
        let r = encode(&held(), metadata());
        let got = decode(&stored(r.clone())).unwrap();
        assert_eq!(got.position, GlobalPosition(42));
        assert_eq!(got.version, 3);
        assert_eq!(
            got.stream.as_str(),
            "call-00000000-0000-0000-0000-00000000ca11"
        );
        assert_eq!(got.metadata, Metadata::of(&r));
        assert_eq!(got.event, held());
        let narrowed: Recorded<CallEvent> = got.clone().narrow().unwrap();
        assert_eq!(narrowed.event.event_type(), "CallHeld");
        assert_eq!(got.clone().narrow::<ExtensionEvent>(), Err(got));
    }

    #[test]
    fn unknown_types_are_named_with_version_and_position() {
        let err = decode(&stored(record("CallTeleported", 1, "{}"))).unwrap_err();
        assert!(matches!(err, DecodeError::UnknownType { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "unknown event type \"CallTeleported\" (schema version 1) at position 42"
        );
        assert_eq!(err.event_type(), "CallTeleported");
        assert_eq!(err.position(), Some(GlobalPosition(42)));
    }

    #[test]
    fn newer_schemas_are_refused() {
        let err = decode_record(&record("CallHeld", 7, "{}")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CallHeld schema version 7 is newer than this build's 1"
        );
    }

    #[test]
    fn bad_payloads_carry_serdes_message() {
        let err = decode(&stored(record("CallHeld", 1, r#"{"call":"nope"}"#))).unwrap_err();
        assert!(matches!(err, DecodeError::BadPayload { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("CallHeld schema version 1 at position 42: bad payload: "),
            "{text}"
        );
        assert!(text.contains("UUID"), "{text}");

        let missing = r#"{"call":"00000000-0000-0000-0000-00000000ca11"}"#;
        let err = decode_record(&record("CallHeld", 1, missing)).unwrap_err();
        assert!(err.to_string().contains("missing field `leg`"), "{err}");

        let err = decode_record(&record("CallHeld", 1, "[1,2]")).unwrap_err();
        assert!(matches!(err, DecodeError::BadPayload { .. }), "{err}");
    }

    #[test]
    fn ids_in_payloads_are_validated() {
        let payload = r#"{"extension":"10 01","user":"1001","state":"lunch","state_type":"away","source":"user"}"#;
        let err = decode_record(&record("PresenceSet", 2, payload)).unwrap_err();
        assert!(
            err.to_string().contains("invalid extension number"),
            "{err}"
        );
    }

    #[test]
    fn presence_set_v1_is_upcast() {
        let v1 = r#"{"extension":"1001","user":"1001","status":"lunch","state_type":"away","message":"back at 13:30"}"#;
        let event = decode_record(&record("PresenceSet", 1, v1)).unwrap();
        assert_eq!(
            event,
            Event::from(ExtensionEvent::PresenceSet {
                extension: ExtensionNumber::parse("1001").unwrap(),
                user: UserId::parse("1001").unwrap(),
                state: "lunch".parse().unwrap(),
                state_type: PresenceStateType::Away,
                message: Some("back at 13:30".into()),
                source: PresenceSource::User,
                by: None,
            })
        );
        assert_eq!(encode(&event, metadata()).schema_version, 2);
    }

    #[test]
    fn failed_upcasts_say_why() {
        let err = decode(&stored(record("PresenceSet", 1, r#"{"extension":"1001"}"#))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "PresenceSet schema version 1 at position 42: upcast from 1 failed: missing field `status`"
        );
        let err = decode_record(&record("PresenceSet", 0, "{}")).unwrap_err();
        assert!(
            matches!(err, DecodeError::MissingUpcaster { from: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_leg_created_written_before_the_ring_fields_decodes_without_them() {
        // `ring_timeout_ms` and `voicemail` were added to `LegCreated` as optional fields: the
        // form written before them (a caller's leg still looks like this) stays schema 1.
        let payload = r#"{"call":"00000000-0000-0000-0000-00000000ca11","leg":"00000000-0000-0000-0000-0000000001e9","role":"caller","party":{"number":"1001"}}"#;
        let event = decode_record(&record("LegCreated", 1, payload)).unwrap();
        let Event::Call(CallEvent::LegCreated {
            ring_timeout_ms,
            voicemail,
            contact,
            parent,
            ..
        }) = &event
        else {
            panic!("not a LegCreated: {event:?}");
        };
        assert_eq!((ring_timeout_ms, voicemail), (&None, &None));
        assert_eq!((contact, parent), (&None, &None));
        assert_eq!(encode(&event, metadata()).payload, payload);
    }

    #[test]
    fn every_versioned_type_has_a_full_upcaster_chain() {
        for t in Event::types() {
            for from in 1..t.schema_version {
                assert!(
                    UPCASTERS
                        .iter()
                        .any(|u| u.event_type == t.name && u.from_version == from),
                    "{} is at schema version {} but has no upcaster from version {from}",
                    t.name,
                    t.schema_version
                );
            }
        }
        for u in UPCASTERS {
            let t = Event::type_named(u.event_type)
                .unwrap_or_else(|| panic!("upcaster for unknown type {}", u.event_type));
            assert!(
                u.from_version >= 1 && u.from_version < t.schema_version,
                "upcaster {} from {} is outside 1..{}",
                u.event_type,
                u.from_version,
                t.schema_version
            );
        }
    }
}
