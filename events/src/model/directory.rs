//! Directory events: the hierarchy reseller → client (tenant) → users, and what administrators
//! configure around it: departments, profiles with their feature flags, call-panel grants
//! (which departments a user may watch), the presence-state list with each state's type, users'
//! settings, trunks and inbound routes. One stream per tenant (`directory-<tenant>`); resellers
//! have their own (`directory-<reseller>`). The tenant travels in the envelope, so payloads name
//! it only where the tenant itself is the subject.
//!
//! Secrets never enter the log: a changed web password or SIP secret is recorded as the fact that
//! it changed, the value stays in the credential store.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::values::{FeatureFlag, PresenceStateType, Transport};
use crate::ids::{
    DepartmentId, ExtensionNumber, PhoneNumber, PresenceStateId, ProfileId, ResellerId, TenantId,
    TrunkId, UserId,
};

event_enum! {
    /// Facts about a tenant's directory. Variants are never renamed or removed; add a new one.
    pub enum DirectoryEvent in Directory {
        /// A reseller account was created.
        ResellerCreated = "ResellerCreated" {
            reseller: ResellerId,
            name: String,
        },
        /// A client account (tenant) was created.
        TenantCreated = "TenantCreated" {
            tenant: TenantId,
            /// The reseller that owns the client, if any.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reseller: Option<ResellerId>,
            name: String,
            /// SIP domain (digest realm) of the tenant's extensions.
            sip_domain: String,
        },
        TenantRenamed = "TenantRenamed" {
            tenant: TenantId,
            name: String,
        },
        /// The tenant may no longer log in, register or call until reinstated.
        TenantSuspended = "TenantSuspended" {
            tenant: TenantId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
        },
        TenantReinstated = "TenantReinstated" {
            tenant: TenantId,
        },
        DepartmentCreated = "DepartmentCreated" {
            department: DepartmentId,
            name: String,
        },
        DepartmentRenamed = "DepartmentRenamed" {
            department: DepartmentId,
            name: String,
        },
        /// The department was removed; it had no users left.
        DepartmentDeleted = "DepartmentDeleted" {
            department: DepartmentId,
        },
        ProfileCreated = "ProfileCreated" {
            profile: ProfileId,
            name: String,
            features: BTreeSet<FeatureFlag>,
        },
        /// The profile's feature flags changed.
        ProfileFeaturesChanged = "ProfileFeaturesChanged" {
            profile: ProfileId,
            /// The complete new set, not a difference.
            features: BTreeSet<FeatureFlag>,
        },
        /// The profile was removed; no user had it any more.
        ProfileDeleted = "ProfileDeleted" {
            profile: ProfileId,
        },
        /// A user account was created, with its extension (SIP account).
        UserCreated = "UserCreated" {
            user: UserId,
            display_name: String,
            extension: ExtensionNumber,
            department: DepartmentId,
            profile: ProfileId,
            role: UserRole,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            email: Option<String>,
        },
        UserRenamed = "UserRenamed" {
            user: UserId,
            display_name: String,
        },
        UserEmailChanged = "UserEmailChanged" {
            user: UserId,
            /// Absent: the address was removed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            email: Option<String>,
        },
        UserDepartmentChanged = "UserDepartmentChanged" {
            user: UserId,
            department: DepartmentId,
            previous: DepartmentId,
        },
        UserProfileChanged = "UserProfileChanged" {
            user: UserId,
            profile: ProfileId,
            previous: ProfileId,
        },
        UserExtensionChanged = "UserExtensionChanged" {
            user: UserId,
            extension: ExtensionNumber,
            previous: ExtensionNumber,
        },
        UserRoleChanged = "UserRoleChanged" {
            user: UserId,
            role: UserRole,
            previous: UserRole,
        },
        UserDeleted = "UserDeleted" {
            user: UserId,
        },
        /// A web password or SIP secret was changed. The secret itself is not recorded.
        UserCredentialChanged = "UserCredentialChanged" {
            user: UserId,
            credential: Credential,
            /// Who changed it, when not the user themself.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The user's presence automation and preferences changed.
        UserSettingsChanged = "UserSettingsChanged" {
            user: UserId,
            /// The complete new settings.
            settings: UserSettings,
        },
        /// The user was given an SMS/MMS-capable number.
        SmsNumberAssigned = "SmsNumberAssigned" {
            user: UserId,
            number: PhoneNumber,
        },
        SmsNumberUnassigned = "SmsNumberUnassigned" {
            user: UserId,
            number: PhoneNumber,
        },
        /// The user may watch `department` in the call panel.
        CallPanelGranted = "CallPanelGranted" {
            user: UserId,
            department: DepartmentId,
            /// The administrator who granted it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        CallPanelRevoked = "CallPanelRevoked" {
            user: UserId,
            department: DepartmentId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// An entry was added to the administrator's presence-state list.
        PresenceStateAdded = "PresenceStateAdded" {
            state: PresenceStateId,
            /// What users see, e.g. `Out to lunch`.
            label: String,
            state_type: PresenceStateType,
            /// Zero-based place in the list.
            position: u32,
        },
        PresenceStateUpdated = "PresenceStateUpdated" {
            state: PresenceStateId,
            label: String,
            state_type: PresenceStateType,
        },
        PresenceStateRemoved = "PresenceStateRemoved" {
            state: PresenceStateId,
        },
        PresenceStatesReordered = "PresenceStatesReordered" {
            /// Every state of the list, in the new order.
            order: Vec<PresenceStateId>,
        },
        /// A SIP trunk was added or its settings changed.
        TrunkConfigured = "TrunkConfigured" {
            trunk: TrunkId,
            name: String,
            /// Provider host, `host[:port]`.
            host: String,
            transport: Transport,
            /// Numbers (DIDs) the trunk delivers to us.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            numbers: Vec<PhoneNumber>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            max_channels: Option<u32>,
        },
        TrunkRemoved = "TrunkRemoved" {
            trunk: TrunkId,
        },
        /// Inbound calls to `number` go to `destination` (an extension, queue or conference).
        InboundRouteSet = "InboundRouteSet" {
            number: PhoneNumber,
            destination: PhoneNumber,
        },
        InboundRouteRemoved = "InboundRouteRemoved" {
            number: PhoneNumber,
        },
        /// The directory file was re-read and its differences applied as the events that follow
        /// (they carry this event's id as causation).
        DirectoryReloaded = "DirectoryReloaded" {
            /// Where it was read from (a path, never with credentials).
            source: String,
            /// SHA-256 of the file, hex.
            digest: String,
            /// How many directory events the reload produced.
            changes: u32,
        },
    }
}

/// What a user account may do beyond its profile's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// A user-level account: the only kind that can log in to the call panel.
    User,
    /// Administers one client (tenant).
    ClientAdmin,
    /// Administers a reseller's clients.
    ResellerAdmin,
}

/// Which secret a `UserCredentialChanged` is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    WebPassword,
    SipSecret,
}

/// A user's presence automation and preferences.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserSettings {
    /// State to set when the user logs in to the panel; absent: leave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_login: Option<PresenceStateId>,
    /// State to set on logout or browser close; absent: leave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_logout: Option<PresenceStateId>,
    /// Automatic actions when the user enters a state of a given type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presence_rules: Vec<PresenceRule>,
    /// BCP 47 language tag for prompts and the panel, e.g. `en-GB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// IANA time zone, e.g. `Europe/Berlin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// What to do to routing when the user's presence changes to a state of `state_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PresenceRule {
    pub state_type: PresenceStateType,
    /// `true` enables DND, `false` disables it, absent leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnd: Option<bool>,
    /// `true` enables follow-me, `false` disables it, absent leaves it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_me: Option<bool>,
}
