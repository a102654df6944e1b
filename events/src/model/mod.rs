//! The domain events: one past-tense enum per aggregate (directory, extension, call, queue,
//! conference, channel room, direct conversation, voicemail box, call panel, SMS, system) and
//! `Event`, which wraps them for the global log. Each enum is declared once, with
//! `event_enum!`, and that declaration is the only list of its variants: stored type names,
//! schema versions and the decoder table all come from it (`Event::types`).
//!
//! Rules for changing events, which the golden fixtures enforce:
//! - add variants or optional fields (`#[serde(default, skip_serializing_if = ...)]`);
//! - never rename or remove a variant, a field or an enum value;
//! - a change to an existing variant's shape bumps its `version` and adds an upcaster in
//!   `crate::codec`.
//!
//! Payloads hold strings, numbers, booleans, our ids and timestamps, never protocol library
//! types; durations are integer milliseconds. Each event names its aggregate (the call, the
//! extension, …) and records the parties as they were, so projections fold it without looking
//! anything up. Who did something, when a person did, is a `by` field; the tenant, time,
//! causation and correlation are in the envelope (`crate::codec::Metadata`).

#[macro_use]
mod macros;

mod call;
mod conference;
mod conversation;
mod directory;
mod examples;
mod extension;
mod panel;
mod queue;
mod room;
mod sms;
mod system;
mod values;
mod voicemail;

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Serialize;

use crate::ids::Category;

pub use call::*;
pub use conference::*;
pub use conversation::*;
pub use directory::*;
pub use extension::*;
pub use panel::*;
pub use queue::*;
pub use room::*;
pub use sms::*;
pub use system::*;
pub use values::*;
pub use voicemail::*;

/// One stored event type: its name, current schema version and aggregate, and the decoder for
/// a payload of the current version.
#[derive(Clone, Copy)]
pub struct EventType {
    /// The past-tense type name stored in `EventRecord::event_type`.
    pub name: &'static str,
    /// The version this build writes; older payloads are upcast to it when read.
    pub schema_version: u16,
    pub category: Category,
    pub(crate) decode: fn(&str) -> Result<Event, serde_json::Error>,
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventType")
            .field("name", &self.name)
            .field("schema_version", &self.schema_version)
            .field("category", &self.category)
            .finish_non_exhaustive()
    }
}

/// Declares `Event` with one variant per aggregate enum, named after its `Category`.
macro_rules! event_wrapper {
    ($($Cat:ident($Enum:ident)),+ $(,)?) => {
        /// Any domain event, as the global log holds it. Serialising it writes the payload only
        /// (see `crate::codec` for the stored form).
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(untagged)]
        pub enum Event {
            $( $Cat($Enum), )+
        }

        impl Event {
            /// The aggregate the event belongs to: the category of the stream it goes to.
            pub fn category(&self) -> Category {
                match self {
                    $( Event::$Cat(_) => Category::$Cat, )+
                }
            }

            /// The stored, past-tense type name, e.g. `CallAnswered`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Event::$Cat(e) => e.event_type(), )+
                }
            }

            /// The schema version of this event's payload.
            pub fn schema_version(&self) -> u16 {
                match self {
                    $( Event::$Cat(e) => e.schema_version(), )+
                }
            }
        }

        /// The type tables of every aggregate, in `Category` order.
        const TYPE_TABLES: &[&[EventType]] = &[ $( $Enum::TYPES, )+ ];
    };
}

event_wrapper! {
    Directory(DirectoryEvent),
    Extension(ExtensionEvent),
    Call(CallEvent),
    Queue(QueueEvent),
    Conference(ConferenceEvent),
    Room(RoomEvent),
    Conversation(ConversationEvent),
    Voicemail(VoicemailEvent),
    Panel(PanelEvent),
    Sms(SmsEvent),
    System(SystemEvent),
}

impl Event {
    /// Every event type of the model, derived from the enum declarations.
    pub fn types() -> impl Iterator<Item = &'static EventType> {
        TYPE_TABLES.iter().flat_map(|table| table.iter())
    }

    /// The type stored under `name`, if this build knows it.
    pub fn type_named(name: &str) -> Option<&'static EventType> {
        static BY_NAME: LazyLock<HashMap<&'static str, &'static EventType>> =
            LazyLock::new(|| Event::types().map(|t| (t.name, t)).collect());
        BY_NAME.get(name).copied()
    }

    /// One realistic example of every variant, with fixed ids and times: the golden fixtures
    /// are these, encoded, and benchmarks replay them.
    #[doc(hidden)]
    pub fn examples() -> Vec<Event> {
        examples::all()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn type_names_are_unique_and_past_tense_words() {
        let mut seen = BTreeSet::new();
        for t in Event::types() {
            assert!(
                seen.insert(t.name),
                "event type {} is declared twice",
                t.name
            );
            assert!(
                t.name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_uppercase())
                    && t.name.chars().all(|c| c.is_ascii_alphanumeric()),
                "event type {:?} is not a CamelCase word",
                t.name
            );
            assert!(t.schema_version >= 1, "{} has schema version 0", t.name);
        }
        assert_eq!(seen.len(), Event::types().count());
    }

    #[test]
    fn every_category_has_events_and_each_table_has_its_own_category() {
        for (table, category) in TYPE_TABLES.iter().zip(Category::ALL) {
            assert!(!table.is_empty(), "{category} has no events");
            for t in table.iter() {
                assert_eq!(
                    t.category, category,
                    "{} is in the {category} table",
                    t.name
                );
            }
        }
        assert_eq!(TYPE_TABLES.len(), Category::ALL.len());
    }

    #[test]
    fn examples_cover_every_type_exactly_once() {
        let mut count: BTreeMap<&str, usize> = Event::types().map(|t| (t.name, 0)).collect();
        for e in Event::examples() {
            let info = Event::type_named(e.event_type())
                .unwrap_or_else(|| panic!("example of unknown type {}", e.event_type()));
            assert_eq!(info.category, e.category(), "{}", info.name);
            assert_eq!(info.schema_version, e.schema_version(), "{}", info.name);
            *count.entry(info.name).or_default() += 1;
        }
        let wrong: Vec<_> = count.into_iter().filter(|&(_, n)| n != 1).collect();
        assert!(
            wrong.is_empty(),
            "types without exactly one example: {wrong:?}"
        );
    }

    #[test]
    fn payloads_are_objects_without_the_type_name() {
        for e in Event::examples() {
            let json = serde_json::to_value(&e).unwrap();
            let object = json.as_object().unwrap_or_else(|| panic!("{json}"));
            assert!(
                !object.is_empty(),
                "{} has an empty payload",
                e.event_type()
            );
            assert!(!object.contains_key("type") && !object.contains_key("event_type"));
        }
    }

    #[test]
    fn aggregate_enums_convert_to_and_from_event() {
        let call = CallEvent::CallHeld {
            call: crate::ids::CallId::from_uuid(uuid::Uuid::from_u128(7)),
            leg: crate::ids::LegId::from_uuid(uuid::Uuid::from_u128(8)),
        };
        let event = Event::from(call.clone());
        assert_eq!(event.category(), Category::Call);
        assert_eq!(event.event_type(), "CallHeld");
        assert_eq!(CallEvent::try_from(event.clone()), Ok(call));
        assert_eq!(QueueEvent::try_from(event.clone()), Err(event));
        assert_eq!(CallEvent::CATEGORY, Category::Call);
    }
}
