//! `event_enum!`, the single declaration of every event variant. One list of variants becomes the
//! aggregate's enum and everything derived from it: the stored type names, the schema versions,
//! the `EventType` table the codec dispatches on, and the hidden payload structs the decoders
//! deserialise into. Nothing else lists the variants, so nothing can fall out of step.
//!
//! Syntax, one entry per variant (`version` defaults to 1; every variant has at least one field,
//! its aggregate's id):
//!
//! ```text
//! /// Docs.
//! Variant = "StoredTypeName" version 2 {
//!     /// Field docs.
//!     #[serde(default, skip_serializing_if = "Option::is_none")]
//!     field: Option<Type>,
//! },
//! ```
//!
//! Serialising an aggregate enum (or `Event`) writes the variant's fields as a JSON object and
//! nothing else: the type name travels beside the payload, in `EventRecord::event_type`.

macro_rules! event_enum {
    (
        $(#[$meta:meta])*
        pub enum $Enum:ident in $Cat:ident {
            $(
                $(#[$vmeta:meta])*
                $Variant:ident = $name:literal $(version $version:literal)? {
                    $( $(#[$fmeta:meta])* $field:ident : $fty:ty ),+ $(,)?
                }
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        #[serde(untagged)]
        pub enum $Enum {
            $(
                $(#[$vmeta])*
                $Variant { $( $(#[$fmeta])* $field: $fty ),+ },
            )+
        }

        impl $Enum {
            /// The category of the streams these events are appended to.
            pub const CATEGORY: $crate::ids::Category = $crate::ids::Category::$Cat;

            /// Every type of this enum, in declaration order.
            pub const TYPES: &'static [$crate::model::EventType] = &[
                $(
                    $crate::model::EventType {
                        name: $name,
                        schema_version: event_enum!(@version $($version)?),
                        category: $crate::ids::Category::$Cat,
                        decode: payload::$Variant::decode,
                    },
                )+
            ];

            /// The stored, past-tense type name (unique across the whole model).
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( Self::$Variant { .. } => $name, )+
                }
            }

            /// The current schema version of this variant's payload.
            pub fn schema_version(&self) -> u16 {
                match self {
                    $( Self::$Variant { .. } => event_enum!(@version $($version)?), )+
                }
            }
        }

        impl From<$Enum> for $crate::model::Event {
            fn from(event: $Enum) -> Self {
                $crate::model::Event::$Cat(event)
            }
        }

        impl TryFrom<$crate::model::Event> for $Enum {
            /// The event, handed back unchanged, when it belongs to another aggregate.
            type Error = $crate::model::Event;

            fn try_from(event: $crate::model::Event) -> Result<Self, Self::Error> {
                match event {
                    $crate::model::Event::$Cat(inner) => Ok(inner),
                    other => Err(other),
                }
            }
        }

        /// Current-version payloads: one struct per variant with the variant's fields and serde
        /// attributes, so that decoding goes from JSON text straight to the variant.
        mod payload {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[derive(serde::Deserialize)]
                pub(super) struct $Variant {
                    $( $(#[$fmeta])* $field: $fty ),+
                }

                impl $Variant {
                    pub(super) fn decode(
                        json: &str,
                    ) -> Result<$crate::model::Event, serde_json::Error> {
                        let fields: Self = serde_json::from_str(json)?;
                        Ok($crate::model::Event::$Cat(super::$Enum::$Variant {
                            $( $field: fields.$field ),+
                        }))
                    }
                }
            )+
        }
    };
    (@version) => { 1 };
    (@version $version:literal) => { $version };
}
