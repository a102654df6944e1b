//! The directory's state, folded from its events, and the queries the panel and the SIP edge
//! ask of it. `evolve` never fails: an event about something unknown is ignored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use events::ids::{
    DepartmentId, ExtensionNumber, PhoneNumber, PresenceStateId, ProfileId, ResellerId, TenantId,
    TrunkId, UserId,
};
use events::model::{DirectoryEvent, FeatureFlag, PresenceStateType, UserRole, UserSettings};

use crate::aggregate::Aggregate;
use crate::extension::PresenceChoice;

use super::command::DirectoryCommand;
use super::credentials::Credentials;
use super::decide::{self, DirectoryRejection};

/// One tenant's directory (or, in a reseller's stream, the reseller record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directory {
    pub(super) reseller: Option<(ResellerId, String)>,
    pub(super) tenant: Option<Tenant>,
    pub(super) departments: BTreeMap<DepartmentId, Department>,
    pub(super) profiles: BTreeMap<ProfileId, Profile>,
    pub(super) users: BTreeMap<UserId, User>,
    pub(super) extensions: BTreeMap<ExtensionNumber, UserId>,
    pub(super) grants: BTreeMap<UserId, BTreeSet<DepartmentId>>,
    pub(super) presence_states: Vec<PresenceStateEntry>,
    pub(super) trunks: BTreeMap<TrunkId, String>,
    pub(super) inbound_routes: BTreeMap<PhoneNumber, PhoneNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub reseller: Option<ResellerId>,
    pub name: String,
    /// SIP domain and digest realm.
    pub sip_domain: String,
    /// `Some(reason)` while suspended.
    pub suspended: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub features: BTreeSet<FeatureFlag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub display_name: String,
    pub extension: ExtensionNumber,
    pub department: DepartmentId,
    pub profile: ProfileId,
    pub role: UserRole,
    pub email: Option<String>,
    pub settings: UserSettings,
    pub sms_numbers: BTreeSet<PhoneNumber>,
}

/// One entry of the administrator's presence-state list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceStateEntry {
    pub id: PresenceStateId,
    pub label: String,
    pub state_type: PresenceStateType,
}

impl Directory {
    pub fn tenant(&self) -> Option<&Tenant> {
        self.tenant.as_ref()
    }
    pub fn reseller(&self) -> Option<&(ResellerId, String)> {
        self.reseller.as_ref()
    }
    pub fn departments(&self) -> &BTreeMap<DepartmentId, Department> {
        &self.departments
    }
    pub fn profiles(&self) -> &BTreeMap<ProfileId, Profile> {
        &self.profiles
    }
    pub fn users(&self) -> &BTreeMap<UserId, User> {
        &self.users
    }
    pub fn user(&self, user: &UserId) -> Option<&User> {
        self.users.get(user)
    }
    /// The presence-state list, in the administrator's order.
    pub fn presence_states(&self) -> &[PresenceStateEntry] {
        &self.presence_states
    }
    pub fn presence_state(&self, state: &PresenceStateId) -> Option<&PresenceStateEntry> {
        self.presence_states.iter().find(|s| &s.id == state)
    }
    /// The entry as an extension command needs it, its type copied along.
    pub fn presence_choice(&self, state: &PresenceStateId) -> Option<PresenceChoice> {
        self.presence_state(state).map(|s| PresenceChoice {
            state: s.id.clone(),
            state_type: s.state_type,
        })
    }
    pub fn inbound_routes(&self) -> &BTreeMap<PhoneNumber, PhoneNumber> {
        &self.inbound_routes
    }
    pub fn trunks(&self) -> &BTreeMap<TrunkId, String> {
        &self.trunks
    }

    pub fn is_suspended(&self) -> bool {
        self.tenant.as_ref().is_some_and(|t| t.suspended.is_some())
    }

    pub fn has_feature(&self, user: &UserId, feature: FeatureFlag) -> bool {
        self.users
            .get(user)
            .and_then(|u| self.profiles.get(&u.profile))
            .is_some_and(|p| p.features.contains(&feature))
    }

    /// Whether `user` may log in to the call panel: a user-level account (administrators never
    /// can) whose profile has the call-panel feature, in a tenant that is not suspended.
    pub fn can_use_panel(&self, user: &UserId) -> bool {
        !self.is_suspended()
            && self.tenant.is_some()
            && self
                .users
                .get(user)
                .is_some_and(|u| u.role == UserRole::User)
            && self.has_feature(user, FeatureFlag::CallPanel)
    }

    /// The departments `user` may watch in the panel: their grants, and nothing for a user who
    /// cannot use the panel at all.
    pub fn departments_visible_to(&self, user: &UserId) -> BTreeSet<DepartmentId> {
        if !self.can_use_panel(user) {
            return BTreeSet::new();
        }
        self.grants
            .get(user)
            .into_iter()
            .flatten()
            .filter(|d| self.departments.contains_key(*d))
            .cloned()
            .collect()
    }

    pub fn grants_of(&self, user: &UserId) -> BTreeSet<DepartmentId> {
        self.grants.get(user).cloned().unwrap_or_default()
    }

    /// The user whose SIP account (extension) is `number`.
    pub fn user_for_extension(&self, number: &ExtensionNumber) -> Option<(&UserId, &User)> {
        let id = self.extensions.get(number)?;
        self.users.get(id).map(|u| (id, u))
    }

    pub fn users_in(&self, department: &DepartmentId) -> impl Iterator<Item = (&UserId, &User)> {
        self.users
            .iter()
            .filter(move |(_, u)| &u.department == department)
    }

    /// Checks a web login: the user exists, the tenant is not suspended and the password
    /// matches the stored argon2 hash. Pure: no I/O, only CPU.
    pub fn verify_web_password(
        &self,
        credentials: &Credentials,
        user: &UserId,
        password: &str,
    ) -> bool {
        !self.is_suspended()
            && self.users.contains_key(user)
            && credentials.verify_web_password(user, password)
    }
}

impl Aggregate for Directory {
    type Command = DirectoryCommand;
    type Event = DirectoryEvent;
    type Rejection = DirectoryRejection;

    fn decide(
        &self,
        command: &DirectoryCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<DirectoryEvent>, DirectoryRejection> {
        decide::decide(self, command, now)
    }

    fn evolve(&mut self, event: &DirectoryEvent, _at: DateTime<Utc>) {
        use DirectoryEvent as E;
        match event {
            E::ResellerCreated { reseller, name } => {
                self.reseller = Some((reseller.clone(), name.clone()));
            }
            E::TenantCreated {
                tenant,
                reseller,
                name,
                sip_domain,
            } => {
                self.tenant = Some(Tenant {
                    id: tenant.clone(),
                    reseller: reseller.clone(),
                    name: name.clone(),
                    sip_domain: sip_domain.clone(),
                    suspended: None,
                });
            }
            E::TenantRenamed { name, .. } => {
                if let Some(t) = &mut self.tenant {
                    t.name = name.clone();
                }
            }
            E::TenantSuspended { reason, .. } => {
                if let Some(t) = &mut self.tenant {
                    t.suspended = Some(reason.clone());
                }
            }
            E::TenantReinstated { .. } => {
                if let Some(t) = &mut self.tenant {
                    t.suspended = None;
                }
            }
            E::DepartmentCreated { department, name }
            | E::DepartmentRenamed { department, name } => {
                self.departments
                    .insert(department.clone(), Department { name: name.clone() });
            }
            E::DepartmentDeleted { department } => {
                self.departments.remove(department);
                for granted in self.grants.values_mut() {
                    granted.remove(department);
                }
            }
            E::ProfileCreated {
                profile,
                name,
                features,
            } => {
                self.profiles.insert(
                    profile.clone(),
                    Profile {
                        name: name.clone(),
                        features: features.clone(),
                    },
                );
            }
            E::ProfileFeaturesChanged { profile, features } => {
                if let Some(p) = self.profiles.get_mut(profile) {
                    p.features = features.clone();
                }
            }
            E::ProfileDeleted { profile } => {
                self.profiles.remove(profile);
            }
            E::UserCreated {
                user,
                display_name,
                extension,
                department,
                profile,
                role,
                email,
            } => {
                self.extensions.insert(extension.clone(), user.clone());
                self.users.insert(
                    user.clone(),
                    User {
                        display_name: display_name.clone(),
                        extension: extension.clone(),
                        department: department.clone(),
                        profile: profile.clone(),
                        role: *role,
                        email: email.clone(),
                        settings: UserSettings::default(),
                        sms_numbers: BTreeSet::new(),
                    },
                );
            }
            E::UserRenamed { user, display_name } => {
                self.with_user(user, |u| u.display_name = display_name.clone());
            }
            E::UserEmailChanged { user, email } => {
                self.with_user(user, |u| u.email = email.clone());
            }
            E::UserDepartmentChanged {
                user, department, ..
            } => self.with_user(user, |u| u.department = department.clone()),
            E::UserProfileChanged { user, profile, .. } => {
                self.with_user(user, |u| u.profile = profile.clone());
            }
            E::UserExtensionChanged {
                user,
                extension,
                previous,
            } => {
                if self.users.contains_key(user) {
                    self.extensions.remove(previous);
                    self.extensions.insert(extension.clone(), user.clone());
                    self.with_user(user, |u| u.extension = extension.clone());
                }
            }
            E::UserRoleChanged { user, role, .. } => self.with_user(user, |u| u.role = *role),
            E::UserDeleted { user } => {
                if let Some(u) = self.users.remove(user) {
                    self.extensions.remove(&u.extension);
                }
                self.grants.remove(user);
            }
            E::UserCredentialChanged { .. } | E::DirectoryReloaded { .. } => {}
            E::UserSettingsChanged { user, settings } => {
                self.with_user(user, |u| u.settings = settings.clone());
            }
            E::SmsNumberAssigned { user, number } => {
                self.with_user(user, |u| {
                    u.sms_numbers.insert(number.clone());
                });
            }
            E::SmsNumberUnassigned { user, number } => {
                self.with_user(user, |u| {
                    u.sms_numbers.remove(number);
                });
            }
            E::CallPanelGranted {
                user, department, ..
            } => {
                self.grants
                    .entry(user.clone())
                    .or_default()
                    .insert(department.clone());
            }
            E::CallPanelRevoked {
                user, department, ..
            } => {
                if let Some(granted) = self.grants.get_mut(user) {
                    granted.remove(department);
                }
            }
            E::PresenceStateAdded {
                state,
                label,
                state_type,
                position,
            } => {
                let entry = PresenceStateEntry {
                    id: state.clone(),
                    label: label.clone(),
                    state_type: *state_type,
                };
                self.presence_states.retain(|s| &s.id != state);
                let at = (*position as usize).min(self.presence_states.len());
                self.presence_states.insert(at, entry);
            }
            E::PresenceStateUpdated {
                state,
                label,
                state_type,
            } => {
                if let Some(s) = self.presence_states.iter_mut().find(|s| &s.id == state) {
                    s.label = label.clone();
                    s.state_type = *state_type;
                }
            }
            E::PresenceStateRemoved { state } => self.presence_states.retain(|s| &s.id != state),
            E::PresenceStatesReordered { order } => {
                let mut reordered: Vec<PresenceStateEntry> = order
                    .iter()
                    .filter_map(|id| self.presence_state(id).cloned())
                    .collect();
                // States the order forgot keep their relative place at the end.
                for s in &self.presence_states {
                    if !order.contains(&s.id) {
                        reordered.push(s.clone());
                    }
                }
                self.presence_states = reordered;
            }
            E::TrunkConfigured { trunk, name, .. } => {
                self.trunks.insert(trunk.clone(), name.clone());
            }
            E::TrunkRemoved { trunk } => {
                self.trunks.remove(trunk);
            }
            E::InboundRouteSet {
                number,
                destination,
            } => {
                self.inbound_routes
                    .insert(number.clone(), destination.clone());
            }
            E::InboundRouteRemoved { number } => {
                self.inbound_routes.remove(number);
            }
        }
    }
}

impl Directory {
    fn with_user(&mut self, user: &UserId, f: impl FnOnce(&mut User)) {
        if let Some(u) = self.users.get_mut(user) {
            f(u);
        }
    }
}
