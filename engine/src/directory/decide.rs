//! `decide` for the directory: referential checks (a user's department, profile and extension,
//! a grant's department, a login state's entry) so that the folded directory never points at
//! something that does not exist. Setting something to what it already is records nothing.

use chrono::{DateTime, Utc};
use events::ids::{DepartmentId, ExtensionNumber, PresenceStateId, ProfileId, UserId};
use events::model::DirectoryEvent;

use super::command::DirectoryCommand;
use super::state::Directory;

/// Why the directory refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryRejection {
    #[error("the tenant does not exist yet")]
    NoTenant,
    #[error("the tenant already exists")]
    TenantExists,
    #[error("the reseller already exists")]
    ResellerExists,
    #[error("a name must not be empty")]
    EmptyName,
    #[error("department `{0}` already exists")]
    DepartmentExists(DepartmentId),
    #[error("no department `{0}`")]
    UnknownDepartment(DepartmentId),
    #[error("department `{0}` still has users")]
    DepartmentInUse(DepartmentId),
    #[error("profile `{0}` already exists")]
    ProfileExists(ProfileId),
    #[error("no profile `{0}`")]
    UnknownProfile(ProfileId),
    #[error("profile `{0}` is still given to users")]
    ProfileInUse(ProfileId),
    #[error("user `{0}` already exists")]
    UserExists(UserId),
    #[error("no user `{0}`")]
    UnknownUser(UserId),
    #[error("extension {extension} already belongs to user `{user}`")]
    ExtensionTaken {
        extension: ExtensionNumber,
        user: UserId,
    },
    #[error("presence state `{0}` already exists")]
    PresenceStateExists(PresenceStateId),
    #[error("no presence state `{0}`")]
    UnknownPresenceState(PresenceStateId),
    #[error("presence state `{state}` is the login or logout state of user `{user}`")]
    PresenceStateInUse {
        state: PresenceStateId,
        user: UserId,
    },
    #[error("a new order must name every presence state exactly once")]
    IncompleteOrder,
}

pub(super) fn decide(
    dir: &Directory,
    command: &DirectoryCommand,
    _now: DateTime<Utc>,
) -> Result<Vec<DirectoryEvent>, DirectoryRejection> {
    use DirectoryCommand as C;
    use DirectoryEvent as E;
    use DirectoryRejection as R;

    match command {
        C::CreateReseller { reseller, name } => {
            if dir.reseller.is_some() {
                return Err(R::ResellerExists);
            }
            return Ok(vec![E::ResellerCreated {
                reseller: reseller.clone(),
                name: non_empty(name)?,
            }]);
        }
        C::CreateTenant {
            tenant,
            reseller,
            name,
            sip_domain,
        } => {
            if dir.tenant.is_some() {
                return Err(R::TenantExists);
            }
            return Ok(vec![E::TenantCreated {
                tenant: tenant.clone(),
                reseller: reseller.clone(),
                name: non_empty(name)?,
                sip_domain: non_empty(sip_domain)?,
            }]);
        }
        _ => {}
    }
    let Some(tenant) = &dir.tenant else {
        return Err(R::NoTenant);
    };
    let t = tenant.id.clone();

    let events = match command {
        C::CreateReseller { .. } | C::CreateTenant { .. } => Vec::new(),
        C::RenameTenant { name } => {
            let name = non_empty(name)?;
            unless(tenant.name == name, || E::TenantRenamed { tenant: t, name })
        }
        C::SuspendTenant { reason } => unless(tenant.suspended.is_some(), || E::TenantSuspended {
            tenant: t,
            reason: reason.clone(),
        }),
        C::ReinstateTenant => unless(tenant.suspended.is_none(), || E::TenantReinstated {
            tenant: t,
        }),
        C::CreateDepartment { department, name } => {
            if dir.departments.contains_key(department) {
                return Err(R::DepartmentExists(department.clone()));
            }
            vec![E::DepartmentCreated {
                department: department.clone(),
                name: non_empty(name)?,
            }]
        }
        C::RenameDepartment { department, name } => {
            let d = department_of(dir, department)?;
            let name = non_empty(name)?;
            unless(d.name == name, || E::DepartmentRenamed {
                department: department.clone(),
                name,
            })
        }
        C::DeleteDepartment { department } => {
            department_of(dir, department)?;
            if dir.users_in(department).next().is_some() {
                return Err(R::DepartmentInUse(department.clone()));
            }
            vec![E::DepartmentDeleted {
                department: department.clone(),
            }]
        }
        C::CreateProfile {
            profile,
            name,
            features,
        } => {
            if dir.profiles.contains_key(profile) {
                return Err(R::ProfileExists(profile.clone()));
            }
            vec![E::ProfileCreated {
                profile: profile.clone(),
                name: non_empty(name)?,
                features: features.clone(),
            }]
        }
        C::SetProfileFeatures { profile, features } => {
            let p = dir
                .profiles
                .get(profile)
                .ok_or_else(|| R::UnknownProfile(profile.clone()))?;
            unless(p.features == *features, || E::ProfileFeaturesChanged {
                profile: profile.clone(),
                features: features.clone(),
            })
        }
        C::DeleteProfile { profile } => {
            if !dir.profiles.contains_key(profile) {
                return Err(R::UnknownProfile(profile.clone()));
            }
            if dir.users.values().any(|u| &u.profile == profile) {
                return Err(R::ProfileInUse(profile.clone()));
            }
            vec![E::ProfileDeleted {
                profile: profile.clone(),
            }]
        }
        C::CreateUser {
            user,
            display_name,
            extension,
            department,
            profile,
            role,
            email,
        } => {
            if dir.users.contains_key(user) {
                return Err(R::UserExists(user.clone()));
            }
            extension_free(dir, extension)?;
            department_of(dir, department)?;
            if !dir.profiles.contains_key(profile) {
                return Err(R::UnknownProfile(profile.clone()));
            }
            vec![E::UserCreated {
                user: user.clone(),
                display_name: non_empty(display_name)?,
                extension: extension.clone(),
                department: department.clone(),
                profile: profile.clone(),
                role: *role,
                email: email.clone(),
            }]
        }
        C::RenameUser { user, display_name } => {
            let u = user_of(dir, user)?;
            let display_name = non_empty(display_name)?;
            unless(u.display_name == display_name, || E::UserRenamed {
                user: user.clone(),
                display_name,
            })
        }
        C::SetUserEmail { user, email } => {
            let u = user_of(dir, user)?;
            unless(u.email == *email, || E::UserEmailChanged {
                user: user.clone(),
                email: email.clone(),
            })
        }
        C::MoveUser { user, department } => {
            let u = user_of(dir, user)?;
            department_of(dir, department)?;
            unless(u.department == *department, || E::UserDepartmentChanged {
                user: user.clone(),
                department: department.clone(),
                previous: u.department.clone(),
            })
        }
        C::ChangeUserProfile { user, profile } => {
            let u = user_of(dir, user)?;
            if !dir.profiles.contains_key(profile) {
                return Err(R::UnknownProfile(profile.clone()));
            }
            unless(u.profile == *profile, || E::UserProfileChanged {
                user: user.clone(),
                profile: profile.clone(),
                previous: u.profile.clone(),
            })
        }
        C::ChangeUserExtension { user, extension } => {
            let u = user_of(dir, user)?;
            if u.extension == *extension {
                return Ok(Vec::new());
            }
            extension_free(dir, extension)?;
            vec![E::UserExtensionChanged {
                user: user.clone(),
                extension: extension.clone(),
                previous: u.extension.clone(),
            }]
        }
        C::ChangeUserRole { user, role } => {
            let u = user_of(dir, user)?;
            unless(u.role == *role, || E::UserRoleChanged {
                user: user.clone(),
                role: *role,
                previous: u.role,
            })
        }
        C::DeleteUser { user } => {
            user_of(dir, user)?;
            vec![E::UserDeleted { user: user.clone() }]
        }
        C::RecordCredentialChange {
            user,
            credential,
            by,
        } => {
            user_of(dir, user)?;
            vec![E::UserCredentialChanged {
                user: user.clone(),
                credential: *credential,
                by: by.clone(),
            }]
        }
        C::SetUserSettings { user, settings } => {
            let u = user_of(dir, user)?;
            for state in [&settings.on_login, &settings.on_logout]
                .into_iter()
                .flatten()
            {
                if dir.presence_state(state).is_none() {
                    return Err(R::UnknownPresenceState(state.clone()));
                }
            }
            unless(u.settings == *settings, || E::UserSettingsChanged {
                user: user.clone(),
                settings: settings.clone(),
            })
        }
        C::GrantCallPanel {
            user,
            department,
            by,
        } => {
            user_of(dir, user)?;
            department_of(dir, department)?;
            unless(dir.grants_of(user).contains(department), || {
                E::CallPanelGranted {
                    user: user.clone(),
                    department: department.clone(),
                    by: by.clone(),
                }
            })
        }
        C::RevokeCallPanel {
            user,
            department,
            by,
        } => {
            user_of(dir, user)?;
            unless(!dir.grants_of(user).contains(department), || {
                E::CallPanelRevoked {
                    user: user.clone(),
                    department: department.clone(),
                    by: by.clone(),
                }
            })
        }
        C::AddPresenceState {
            state,
            label,
            state_type,
        } => {
            if dir.presence_state(state).is_some() {
                return Err(R::PresenceStateExists(state.clone()));
            }
            vec![E::PresenceStateAdded {
                state: state.clone(),
                label: non_empty(label)?,
                state_type: *state_type,
                position: u32::try_from(dir.presence_states.len()).unwrap_or(u32::MAX),
            }]
        }
        C::UpdatePresenceState {
            state,
            label,
            state_type,
        } => {
            let s = dir
                .presence_state(state)
                .ok_or_else(|| R::UnknownPresenceState(state.clone()))?;
            let label = non_empty(label)?;
            unless(s.label == label && s.state_type == *state_type, || {
                E::PresenceStateUpdated {
                    state: state.clone(),
                    label,
                    state_type: *state_type,
                }
            })
        }
        C::RemovePresenceState { state } => {
            if dir.presence_state(state).is_none() {
                return Err(R::UnknownPresenceState(state.clone()));
            }
            let in_use = dir.users.iter().find(|(_, u)| {
                u.settings.on_login.as_ref() == Some(state)
                    || u.settings.on_logout.as_ref() == Some(state)
            });
            if let Some((user, _)) = in_use {
                return Err(R::PresenceStateInUse {
                    state: state.clone(),
                    user: user.clone(),
                });
            }
            vec![E::PresenceStateRemoved {
                state: state.clone(),
            }]
        }
        C::ReorderPresenceStates { order } => {
            let mut given: Vec<&PresenceStateId> = order.iter().collect();
            given.sort();
            given.dedup();
            let complete = given.len() == order.len()
                && order.len() == dir.presence_states.len()
                && order.iter().all(|id| dir.presence_state(id).is_some());
            if !complete {
                return Err(R::IncompleteOrder);
            }
            let current: Vec<&PresenceStateId> =
                dir.presence_states.iter().map(|s| &s.id).collect();
            unless(current == order.iter().collect::<Vec<_>>(), || {
                E::PresenceStatesReordered {
                    order: order.clone(),
                }
            })
        }
    };
    Ok(events)
}

/// One event, unless the change would change nothing.
fn unless(unchanged: bool, event: impl FnOnce() -> DirectoryEvent) -> Vec<DirectoryEvent> {
    if unchanged { Vec::new() } else { vec![event()] }
}

fn non_empty(name: &str) -> Result<String, DirectoryRejection> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(DirectoryRejection::EmptyName);
    }
    Ok(trimmed.to_owned())
}

fn user_of<'a>(
    dir: &'a Directory,
    user: &UserId,
) -> Result<&'a super::state::User, DirectoryRejection> {
    dir.users
        .get(user)
        .ok_or_else(|| DirectoryRejection::UnknownUser(user.clone()))
}

fn department_of<'a>(
    dir: &'a Directory,
    department: &DepartmentId,
) -> Result<&'a super::state::Department, DirectoryRejection> {
    dir.departments
        .get(department)
        .ok_or_else(|| DirectoryRejection::UnknownDepartment(department.clone()))
}

fn extension_free(dir: &Directory, extension: &ExtensionNumber) -> Result<(), DirectoryRejection> {
    match dir.extensions.get(extension) {
        Some(user) => Err(DirectoryRejection::ExtensionTaken {
            extension: extension.clone(),
            user: user.clone(),
        }),
        None => Ok(()),
    }
}
