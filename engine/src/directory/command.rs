//! What administrators (and the configuration loader) can ask of a tenant's directory. Secrets
//! never travel in a directory command: a credential change is recorded as a fact, and the new
//! hash goes to the [`super::Credentials`] store alongside.

use std::collections::BTreeSet;

use events::ids::{
    DepartmentId, ExtensionNumber, PresenceStateId, ProfileId, ResellerId, TenantId, UserId,
};
use events::model::{Credential, FeatureFlag, PresenceStateType, UserRole, UserSettings};

/// A command to one tenant's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectoryCommand {
    /// Creates a reseller; sent to the reseller's own directory stream.
    CreateReseller {
        reseller: ResellerId,
        name: String,
    },
    CreateTenant {
        tenant: TenantId,
        reseller: Option<ResellerId>,
        name: String,
        /// SIP domain and digest realm.
        sip_domain: String,
    },
    RenameTenant {
        name: String,
    },
    SuspendTenant {
        reason: Option<String>,
    },
    ReinstateTenant,
    CreateDepartment {
        department: DepartmentId,
        name: String,
    },
    RenameDepartment {
        department: DepartmentId,
        name: String,
    },
    /// Refused while users belong to it.
    DeleteDepartment {
        department: DepartmentId,
    },
    CreateProfile {
        profile: ProfileId,
        name: String,
        features: BTreeSet<FeatureFlag>,
    },
    SetProfileFeatures {
        profile: ProfileId,
        features: BTreeSet<FeatureFlag>,
    },
    /// Refused while users have it.
    DeleteProfile {
        profile: ProfileId,
    },
    CreateUser {
        user: UserId,
        display_name: String,
        extension: ExtensionNumber,
        department: DepartmentId,
        profile: ProfileId,
        role: UserRole,
        email: Option<String>,
    },
    RenameUser {
        user: UserId,
        display_name: String,
    },
    SetUserEmail {
        user: UserId,
        email: Option<String>,
    },
    MoveUser {
        user: UserId,
        department: DepartmentId,
    },
    ChangeUserProfile {
        user: UserId,
        profile: ProfileId,
    },
    ChangeUserExtension {
        user: UserId,
        extension: ExtensionNumber,
    },
    ChangeUserRole {
        user: UserId,
        role: UserRole,
    },
    /// Deletes the user and their call-panel grants.
    DeleteUser {
        user: UserId,
    },
    /// Records that a credential changed; the caller stores the new hash in `Credentials`.
    RecordCredentialChange {
        user: UserId,
        credential: Credential,
        by: Option<UserId>,
    },
    SetUserSettings {
        user: UserId,
        settings: UserSettings,
    },
    GrantCallPanel {
        user: UserId,
        department: DepartmentId,
        by: Option<UserId>,
    },
    RevokeCallPanel {
        user: UserId,
        department: DepartmentId,
        by: Option<UserId>,
    },
    /// Appends a state to the end of the list.
    AddPresenceState {
        state: PresenceStateId,
        label: String,
        state_type: PresenceStateType,
    },
    UpdatePresenceState {
        state: PresenceStateId,
        label: String,
        state_type: PresenceStateType,
    },
    /// Refused while a user's login or logout setting names it.
    RemovePresenceState {
        state: PresenceStateId,
    },
    ReorderPresenceStates {
        order: Vec<PresenceStateId>,
    },
}
