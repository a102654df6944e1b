//! Typed identifiers. Every id is a newtype with a parse-don't-validate constructor: once you hold
//! a `TenantId` it is known to be a well-formed slug, and a `CallId` is known to be a UUID. Ids
//! serialise as plain strings, and deserialising runs the same validation, so a stored log cannot
//! smuggle in an id that `parse` would refuse.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not a valid id of the kind asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub reason: &'static str,
}

impl IdError {
    fn new(kind: &'static str, value: &str, reason: &'static str) -> Self {
        let value: String = value.chars().take(80).collect();
        Self {
            kind,
            value,
            reason,
        }
    }
}

/// Lower-case slug: `[a-z0-9]` first, then `[a-z0-9._-]`, at most 64 characters.
fn check_slug(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::new(kind, s, "must not be empty"));
    }
    if s.len() > 64 {
        return Err(IdError::new(kind, s, "longer than 64 characters"));
    }
    let mut chars = s.chars();
    let first = chars.next().unwrap_or(' ');
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(IdError::new(
            kind,
            s,
            "must start with a lower-case letter or digit",
        ));
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    {
        return Err(IdError::new(
            kind,
            s,
            "only lower-case letters, digits, '.', '_' and '-' are allowed",
        ));
    }
    Ok(())
}

/// Dialable number: 1 to 32 of `0-9`, `*`, `#`, optionally led by one `+`.
fn check_number(kind: &'static str, s: &str) -> Result<(), IdError> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || digits.len() > 32 {
        return Err(IdError::new(kind, s, "must be 1 to 32 dial characters"));
    }
    if !digits
        .chars()
        .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
    {
        return Err(IdError::new(
            kind,
            s,
            "only digits, '*' and '#' are allowed (and a leading '+')",
        ));
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                $check($kind, s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }
            pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
                let s = s.as_ref();
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| IdError::new($kind, s, "not a UUID"))
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

string_id!(
    /// A reseller: the top of the hierarchy (reseller → client/tenant → users).
    ResellerId,
    "reseller id",
    check_slug
);
string_id!(
    /// A client account: the tenant. Nothing of one tenant is ever visible to another.
    TenantId,
    "tenant id",
    check_slug
);
string_id!(
    /// A department inside a tenant (`sales`, `support`, …).
    DepartmentId,
    "department id",
    check_slug
);
string_id!(
    /// A user login name inside a tenant (the demo uses the extension number).
    UserId,
    "user id",
    check_slug
);
string_id!(
    /// A profile (a set of feature flags) inside a tenant.
    ProfileId,
    "profile id",
    check_slug
);
string_id!(
    /// An entry of the administrator's presence-state list (`available`, `lunch`, …).
    PresenceStateId,
    "presence state id",
    check_slug
);
string_id!(
    /// A queue inside a tenant.
    QueueId,
    "queue id",
    check_slug
);
string_id!(
    /// A conference room inside a tenant.
    ConferenceId,
    "conference id",
    check_slug
);
string_id!(
    /// A chat channel room inside a tenant (spaces in a display name become '-').
    RoomId,
    "room id",
    check_slug
);
string_id!(
    /// A SIP trunk inside a tenant.
    TrunkId,
    "trunk id",
    check_slug
);
string_id!(
    /// An extension number (the SIP account's user part), unique inside its tenant.
    ExtensionNumber,
    "extension number",
    check_number
);
string_id!(
    /// Any dialable number: an extension, a queue, a conference, an external number.
    PhoneNumber,
    "phone number",
    check_number
);

uuid_id!(
    /// Identity of one stored event; appends are idempotent by it.
    EventId,
    "event id"
);
uuid_id!(
    /// Groups every event caused, directly or not, by one originating action.
    CorrelationId,
    "correlation id"
);
uuid_id!(
    /// One call: the set of legs bridged together (Asterisk's linkedid).
    CallId,
    "call id"
);
uuid_id!(
    /// One leg of a call (Asterisk's uniqueid): caller side, each forked callee contact, …
    LegId,
    "leg id"
);
uuid_id!(
    /// One registered contact (binding) of an extension's device.
    DeviceContactId,
    "device contact id"
);
uuid_id!(
    /// A queue agent membership (one user logged in to one queue).
    AgentId,
    "agent id"
);
uuid_id!(
    /// A chat message, direct or in a channel room.
    MessageId,
    "message id"
);
uuid_id!(
    /// A voicemail message in a box.
    VoicemailMessageId,
    "voicemail message id"
);
uuid_id!(
    /// A supervisor listening (spy) session on a call.
    ListenSessionId,
    "listen session id"
);
uuid_id!(
    /// One browser connection to the call panel.
    PanelSessionId,
    "panel session id"
);
uuid_id!(
    /// A recording of a call or conference.
    RecordingId,
    "recording id"
);
uuid_id!(
    /// An SMS or MMS message.
    SmsId,
    "sms id"
);
uuid_id!(
    /// A direct-message conversation between users.
    ConversationId,
    "conversation id"
);
uuid_id!(
    /// An attachment (file) stored alongside a chat message or voicemail greeting.
    AttachmentId,
    "attachment id"
);
uuid_id!(
    /// A media bridge inside a call: the legs mixed together at one time. An attended transfer
    /// merges two bridges into one.
    BridgeId,
    "bridge id"
);

/// A stream's category: the aggregate kind (`extension`, `call`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Directory,
    Extension,
    Call,
    Queue,
    Conference,
    Room,
    Conversation,
    Voicemail,
    Panel,
    Sms,
    System,
}

impl Category {
    pub const ALL: [Category; 11] = [
        Category::Directory,
        Category::Extension,
        Category::Call,
        Category::Queue,
        Category::Conference,
        Category::Room,
        Category::Conversation,
        Category::Voicemail,
        Category::Panel,
        Category::Sms,
        Category::System,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Directory => "directory",
            Category::Extension => "extension",
            Category::Call => "call",
            Category::Queue => "queue",
            Category::Conference => "conference",
            Category::Room => "room",
            Category::Conversation => "conversation",
            Category::Voicemail => "voicemail",
            Category::Panel => "panel",
            Category::Sms => "sms",
            Category::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stream name, `category-id`: `extension-acme.1001`, `call-<uuid>`, `directory-acme`.
/// The id part is 1 to 200 printable ASCII characters without spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    pub fn new(category: Category, id: impl fmt::Display) -> Result<Self, IdError> {
        Self::parse(format!("{category}-{id}"))
    }

    pub fn parse(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        let Some((cat, id)) = s.split_once('-') else {
            return Err(IdError::new(
                "stream id",
                s,
                "must be `category-id` (e.g. `call-…`)",
            ));
        };
        if Category::parse(cat).is_none() {
            return Err(IdError::new("stream id", s, "unknown category"));
        }
        if id.is_empty() || id.len() > 200 {
            return Err(IdError::new(
                "stream id",
                s,
                "the id part must be 1 to 200 characters",
            ));
        }
        if !id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(IdError::new(
                "stream id",
                s,
                "the id part must be printable ASCII without spaces",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn category(&self) -> Category {
        let cat = self.0.split_once('-').map(|(c, _)| c).unwrap_or_default();
        Category::parse(cat).unwrap_or(Category::System)
    }

    pub fn id_part(&self) -> &str {
        self.0.split_once('-').map(|(_, id)| id).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Stream of one extension's aggregate: `extension-<tenant>.<number>`.
    pub fn extension(tenant: &TenantId, number: &ExtensionNumber) -> Self {
        Self(format!("extension-{tenant}.{number}"))
    }
    pub fn call(call: CallId) -> Self {
        Self(format!("call-{call}"))
    }
    pub fn directory(tenant: &TenantId) -> Self {
        Self(format!("directory-{tenant}"))
    }
    pub fn queue(tenant: &TenantId, queue: &QueueId) -> Self {
        Self(format!("queue-{tenant}.{queue}"))
    }
    pub fn conference(tenant: &TenantId, conference: &ConferenceId) -> Self {
        Self(format!("conference-{tenant}.{conference}"))
    }
    pub fn room(tenant: &TenantId, room: &RoomId) -> Self {
        Self(format!("room-{tenant}.{room}"))
    }
    pub fn conversation(conversation: ConversationId) -> Self {
        Self(format!("conversation-{conversation}"))
    }
    pub fn voicemail(tenant: &TenantId, number: &ExtensionNumber) -> Self {
        Self(format!("voicemail-{tenant}.{number}"))
    }
    pub fn panel(tenant: &TenantId, user: &UserId) -> Self {
        Self(format!("panel-{tenant}.{user}"))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:?})", self.0)
    }
}
impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_accept_the_demo_names_and_refuse_the_rest() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(DepartmentId::parse("sales").is_ok());
        assert!(UserId::parse("1001").is_ok());
        let err = TenantId::parse("Acme Corp").unwrap_err();
        assert_eq!(err.kind, "tenant id");
        assert!(err.to_string().contains("Acme Corp"), "{err}");
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("-x").is_err());
        assert!(TenantId::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn numbers_allow_dial_characters_only() {
        assert!(ExtensionNumber::parse("1001").is_ok());
        assert!(PhoneNumber::parse("+4930123456").is_ok());
        assert!(PhoneNumber::parse("*97").is_ok());
        assert!(ExtensionNumber::parse("10 01").is_err());
        assert!(ExtensionNumber::parse("+").is_err());
    }

    #[test]
    fn deserialising_validates() {
        let ok: TenantId = serde_json::from_str("\"acme\"").unwrap();
        assert_eq!(ok.as_str(), "acme");
        let bad = serde_json::from_str::<TenantId>("\"ACME\"").unwrap_err();
        assert!(bad.to_string().contains("invalid tenant id"), "{bad}");
        assert!(serde_json::from_str::<CallId>("\"nope\"").is_err());
    }

    #[test]
    fn stream_ids_have_a_known_category() {
        let t = TenantId::parse("acme").unwrap();
        let n = ExtensionNumber::parse("1001").unwrap();
        let s = StreamId::extension(&t, &n);
        assert_eq!(s.as_str(), "extension-acme.1001");
        assert_eq!(s.category(), Category::Extension);
        assert_eq!(s.id_part(), "acme.1001");
        assert_eq!(StreamId::parse(s.as_str()).unwrap(), s);
        assert!(StreamId::parse("nocategory").is_err());
        assert!(StreamId::parse("bogus-1").is_err());
        assert!(StreamId::parse("call-").is_err());
        assert!(StreamId::parse("call-a b").is_err());
    }
}
