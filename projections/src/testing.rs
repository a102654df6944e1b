//! Test support for the folds' unit tests: a script that records domain events as the log
//! would hand them out (positions from 1, stream versions, envelope with time and tenant), and
//! the fixed parties of the demo tenant.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use events::GlobalPosition;
use events::codec::{Metadata, Recorded};
use events::ids::{
    CallId, DepartmentId, EventId, ExtensionNumber, LegId, PhoneNumber, StreamId, TenantId, UserId,
};
use events::model::{Event, Party};
use uuid::Uuid;

/// Events as the log would deliver them.
#[derive(Debug)]
pub(crate) struct Script {
    pub(crate) tenant: TenantId,
    pub(crate) now: DateTime<Utc>,
    pub(crate) events: Vec<Recorded>,
    versions: HashMap<StreamId, u64>,
}

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

impl Script {
    pub(crate) fn new(tenant: &str) -> Self {
        Self {
            tenant: TenantId::parse(tenant).unwrap(),
            now: t0(),
            events: Vec::new(),
            versions: HashMap::new(),
        }
    }

    /// Moves the clock to `secs` seconds after `t0()`.
    pub(crate) fn at(&mut self, secs: i64) -> &mut Self {
        self.now = t0() + TimeDelta::seconds(secs);
        self
    }

    /// Records `event` on `stream`; returns its position.
    pub(crate) fn push(&mut self, stream: &StreamId, event: impl Into<Event>) -> GlobalPosition {
        let position = GlobalPosition(self.events.len() as u64 + 1);
        let version = self.versions.entry(stream.clone()).or_insert(0);
        *version += 1;
        self.events.push(Recorded {
            position,
            stream: stream.clone(),
            version: *version,
            metadata: Metadata::new(
                EventId::from_uuid(Uuid::from_u128(u128::from(position.0))),
                self.now,
            )
            .with_tenant(self.tenant.clone()),
            event: event.into(),
        });
        position
    }

    pub(crate) fn directory(&self) -> StreamId {
        StreamId::directory(&self.tenant)
    }

    pub(crate) fn ext_stream(&self, n: &str) -> StreamId {
        StreamId::extension(&self.tenant, &ext(n))
    }

    pub(crate) fn voicemail_stream(&self, n: &str) -> StreamId {
        StreamId::voicemail(&self.tenant, &ext(n))
    }
}

pub(crate) fn ext(n: &str) -> ExtensionNumber {
    ExtensionNumber::parse(n).unwrap()
}
pub(crate) fn user(n: &str) -> UserId {
    UserId::parse(n).unwrap()
}
pub(crate) fn dept(d: &str) -> DepartmentId {
    DepartmentId::parse(d).unwrap()
}
pub(crate) fn number(n: &str) -> PhoneNumber {
    PhoneNumber::parse(n).unwrap()
}
pub(crate) fn call_id(n: u16) -> CallId {
    CallId::from_uuid(Uuid::from_u128(0xca11_0000 + u128::from(n)))
}
pub(crate) fn leg(n: u16) -> LegId {
    LegId::from_uuid(Uuid::from_u128(0x1e90_0000 + u128::from(n)))
}
pub(crate) fn party(n: &str, department: &str, name: &str) -> Party {
    Party::internal(ext(n), user(n), dept(department), name)
}
pub(crate) fn alice() -> Party {
    party("1001", "sales", "Alice Moreau")
}
pub(crate) fn bruno() -> Party {
    party("1006", "support", "Bruno Lind")
}
pub(crate) fn carla() -> Party {
    party("1011", "management", "Carla Reyes")
}

/// One example of every event type outside `interest` (after checking each name there is an
/// event type), [`aimed`] at the scripts' state and recorded for tenant `acme` at 30 s, at
/// `position` as event `version` of `stream`: what a fold that declares `interest` must ignore.
pub(crate) fn outside_interest(
    interest: &[&str],
    position: GlobalPosition,
    stream: &StreamId,
    version: u64,
) -> Vec<Recorded> {
    for name in interest {
        assert!(
            Event::type_named(name).is_some(),
            "{name} is not an event type"
        );
    }
    Event::examples()
        .iter()
        .filter(|example| !interest.contains(&example.event_type()))
        .map(|example| Recorded {
            position,
            stream: stream.clone(),
            version,
            metadata: Metadata::new(
                EventId::from_uuid(Uuid::from_u128(999)),
                t0() + TimeDelta::seconds(30),
            )
            .with_tenant(TenantId::parse("acme").unwrap()),
            event: aimed(example),
        })
        .collect()
}

/// `example` with its ids pointed at the scripts' own: its call at `call_id(1)`, its leg at
/// `leg(2)`, its extension, mailbox and user at 1006 (Bruno), its department at support; so an
/// example of any type lands on state a script built, and a fold that ignores it is seen to.
pub(crate) fn aimed(example: &Event) -> Event {
    use events::codec::{decode_record, encode};
    let mut record = encode(
        example,
        Metadata::new(EventId::from_uuid(Uuid::from_u128(1)), t0()),
    );
    let mut payload: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
    if let Some(object) = payload.as_object_mut() {
        for (key, value) in object.iter_mut() {
            let replacement = match key.as_str() {
                "call" => Some(call_id(1).to_string()),
                "leg" => Some(leg(2).to_string()),
                "extension" | "mailbox" | "user" => Some("1006".to_owned()),
                "department" => Some("support".to_owned()),
                _ => None,
            };
            if let Some(r) = replacement
                && value.is_string()
            {
                *value = serde_json::Value::String(r);
            }
        }
    }
    record.payload = payload.to_string();
    decode_record(&record).unwrap()
}
