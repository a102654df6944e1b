//! Given/when/then tests of the directory (hierarchy, departments, profiles, users, grants,
//! presence states, the panel and SIP queries), of the credential store, and of the
//! configuration loader on the built-in demo and on broken files.

use std::collections::BTreeSet;

use events::ids::{DepartmentId, ExtensionNumber, ProfileId, TenantId, UserId};
use events::model::{
    Credential, DirectoryEvent as E, FeatureFlag, PresenceRule, PresenceStateType, QueueEvent,
    QueueStrategy, UserRole, UserSettings,
};

use super::config::{ClearPasswords, load_str};
use super::demo::demo_directory;
use super::*;
use crate::aggregate::Aggregate;
use crate::testing::{Scenario, given, t0};

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("a valid id in a test")
}

fn tenant_created() -> E {
    E::TenantCreated {
        tenant: id("acme"),
        reseller: None,
        name: "Acme".into(),
        sip_domain: "acme".into(),
    }
}

fn features(flags: &[FeatureFlag]) -> BTreeSet<FeatureFlag> {
    flags.iter().copied().collect()
}

/// Acme with sales and support, a panel and a basic profile, and three users: a receptionist
/// with the panel, an agent without it, and the administrator.
fn acme() -> Vec<E> {
    vec![
        tenant_created(),
        E::DepartmentCreated {
            department: id("sales"),
            name: "Sales".into(),
        },
        E::DepartmentCreated {
            department: id("support"),
            name: "Support".into(),
        },
        E::ProfileCreated {
            profile: id("panel"),
            name: "Call panel".into(),
            features: features(&[FeatureFlag::CallPanel, FeatureFlag::Chat]),
        },
        E::ProfileCreated {
            profile: id("basic"),
            name: "Basic".into(),
            features: features(&[FeatureFlag::Chat]),
        },
        user_created("1001", "sales", "panel", UserRole::User),
        user_created("1006", "support", "basic", UserRole::User),
        user_created("admin", "sales", "panel", UserRole::ClientAdmin),
        E::PresenceStateAdded {
            state: id("available"),
            label: "Available".into(),
            state_type: PresenceStateType::Available,
            position: 0,
        },
        E::PresenceStateAdded {
            state: id("busy"),
            label: "Busy / DND".into(),
            state_type: PresenceStateType::Dnd,
            position: 1,
        },
    ]
}

fn user_created(user: &str, department: &str, profile: &str, role: UserRole) -> E {
    let extension = if user == "admin" { "1000" } else { user };
    E::UserCreated {
        user: id(user),
        display_name: format!("User {user}"),
        extension: id(extension),
        department: id(department),
        profile: id(profile),
        role,
        email: None,
    }
}

fn create_user(user: &str, extension: &str, department: &str, profile: &str) -> DirectoryCommand {
    DirectoryCommand::CreateUser {
        user: id(user),
        display_name: format!("User {user}"),
        extension: id(extension),
        department: id(department),
        profile: id(profile),
        role: UserRole::User,
        email: None,
    }
}

fn grant(user: &str, department: &str) -> DirectoryCommand {
    DirectoryCommand::GrantCallPanel {
        user: id(user),
        department: id(department),
        by: Some(id("admin")),
    }
}

fn granted(user: &str, department: &str) -> E {
    E::CallPanelGranted {
        user: id(user),
        department: id(department),
        by: Some(id("admin")),
    }
}

fn user(s: &str) -> UserId {
    id(s)
}

fn depts(names: &[&str]) -> BTreeSet<DepartmentId> {
    names.iter().map(|n| id(n)).collect()
}

fn dir(s: &Scenario<Directory>) -> &Directory {
    s.state()
}

// The hierarchy.

#[test]
fn a_tenant_is_created_once_and_comes_first() {
    given::<Directory>([])
        .when(DirectoryCommand::CreateDepartment {
            department: id("sales"),
            name: "Sales".into(),
        })
        .then_rejected(DirectoryRejection::NoTenant)
        .when(DirectoryCommand::CreateTenant {
            tenant: id("acme"),
            reseller: None,
            name: " Acme ".into(),
            sip_domain: "acme".into(),
        })
        .then([tenant_created()])
        .when(DirectoryCommand::CreateTenant {
            tenant: id("acme"),
            reseller: None,
            name: "Acme".into(),
            sip_domain: "acme".into(),
        })
        .then_rejected(DirectoryRejection::TenantExists);
}

#[test]
fn a_reseller_stream_holds_its_reseller() {
    let s = given::<Directory>([])
        .when(DirectoryCommand::CreateReseller {
            reseller: id("telco"),
            name: "Telco".into(),
        })
        .then([E::ResellerCreated {
            reseller: id("telco"),
            name: "Telco".into(),
        }]);
    assert_eq!(dir(&s).reseller().map(|r| r.0.as_str()), Some("telco"));
}

#[test]
fn a_suspended_tenant_cannot_use_the_panel_until_reinstated() {
    let s = given::<Directory>(acme())
        .when(grant("1001", "sales"))
        .accepted()
        .when(DirectoryCommand::SuspendTenant {
            reason: Some("unpaid".into()),
        })
        .then([E::TenantSuspended {
            tenant: id("acme"),
            reason: Some("unpaid".into()),
        }]);
    assert!(!dir(&s).can_use_panel(&user("1001")));
    assert!(dir(&s).departments_visible_to(&user("1001")).is_empty());
    let s = s
        .when(DirectoryCommand::ReinstateTenant)
        .then([E::TenantReinstated { tenant: id("acme") }])
        .when(DirectoryCommand::ReinstateTenant)
        .then_nothing();
    assert!(dir(&s).can_use_panel(&user("1001")));
}

// Departments and profiles.

#[test]
fn departments_are_unique_and_deleted_only_when_empty() {
    given::<Directory>(acme())
        .when(DirectoryCommand::CreateDepartment {
            department: id("sales"),
            name: "Sales".into(),
        })
        .then_rejected(DirectoryRejection::DepartmentExists(id("sales")))
        .when(DirectoryCommand::DeleteDepartment {
            department: id("sales"),
        })
        .then_rejected(DirectoryRejection::DepartmentInUse(id("sales")))
        .when(DirectoryCommand::CreateDepartment {
            department: id("management"),
            name: "  ".into(),
        })
        .then_rejected(DirectoryRejection::EmptyName)
        .when(DirectoryCommand::CreateDepartment {
            department: id("management"),
            name: "Management".into(),
        })
        .then([E::DepartmentCreated {
            department: id("management"),
            name: "Management".into(),
        }])
        .when(DirectoryCommand::RenameDepartment {
            department: id("management"),
            name: "Board".into(),
        })
        .then([E::DepartmentRenamed {
            department: id("management"),
            name: "Board".into(),
        }])
        .when(DirectoryCommand::DeleteDepartment {
            department: id("management"),
        })
        .then([E::DepartmentDeleted {
            department: id("management"),
        }]);
}

#[test]
fn profile_features_decide_who_may_use_the_panel() {
    let s = given::<Directory>(acme());
    assert!(dir(&s).can_use_panel(&user("1001")));
    assert!(!dir(&s).can_use_panel(&user("1006")));
    let s = s
        .when(DirectoryCommand::SetProfileFeatures {
            profile: id("basic"),
            features: features(&[FeatureFlag::Chat, FeatureFlag::CallPanel]),
        })
        .then([E::ProfileFeaturesChanged {
            profile: id("basic"),
            features: features(&[FeatureFlag::CallPanel, FeatureFlag::Chat]),
        }]);
    assert!(dir(&s).can_use_panel(&user("1006")));
    s.when(DirectoryCommand::DeleteProfile {
        profile: id("basic"),
    })
    .then_rejected(DirectoryRejection::ProfileInUse(id("basic")))
    .when(DirectoryCommand::CreateProfile {
        profile: id("basic"),
        name: "Again".into(),
        features: BTreeSet::new(),
    })
    .then_rejected(DirectoryRejection::ProfileExists(id("basic")));
}

// Users.

#[test]
fn a_user_needs_a_free_extension_a_department_and_a_profile() {
    given::<Directory>(acme())
        .when(create_user("1001", "1002", "sales", "basic"))
        .then_rejected(DirectoryRejection::UserExists(user("1001")))
        .when(create_user("1002", "1001", "sales", "basic"))
        .then_rejected(DirectoryRejection::ExtensionTaken {
            extension: id("1001"),
            user: user("1001"),
        })
        .when(create_user("1002", "1002", "marketing", "basic"))
        .then_rejected(DirectoryRejection::UnknownDepartment(id("marketing")))
        .when(create_user("1002", "1002", "sales", "gold"))
        .then_rejected(DirectoryRejection::UnknownProfile(id("gold")))
        .when(create_user("1002", "1002", "sales", "basic"))
        .then([E::UserCreated {
            user: user("1002"),
            display_name: "User 1002".into(),
            extension: id("1002"),
            department: id("sales"),
            profile: id("basic"),
            role: UserRole::User,
            email: None,
        }]);
}

#[test]
fn the_extension_index_follows_changes_and_deletion() {
    let s = given::<Directory>(acme())
        .when(DirectoryCommand::ChangeUserExtension {
            user: user("1006"),
            extension: id("1001"),
        })
        .then_rejected(DirectoryRejection::ExtensionTaken {
            extension: id("1001"),
            user: user("1001"),
        })
        .when(DirectoryCommand::ChangeUserExtension {
            user: user("1006"),
            extension: id("1016"),
        })
        .then([E::UserExtensionChanged {
            user: user("1006"),
            extension: id("1016"),
            previous: id("1006"),
        }]);
    let new: ExtensionNumber = id("1016");
    let old: ExtensionNumber = id("1006");
    assert_eq!(
        dir(&s).user_for_extension(&new).map(|(u, _)| u),
        Some(&user("1006"))
    );
    assert!(dir(&s).user_for_extension(&old).is_none());
    let s = s
        .when(grant("1006", "sales"))
        .accepted()
        .when(DirectoryCommand::DeleteUser { user: user("1006") })
        .then([E::UserDeleted { user: user("1006") }]);
    assert!(dir(&s).user_for_extension(&new).is_none());
    assert!(dir(&s).grants_of(&user("1006")).is_empty());
}

#[test]
fn moves_profile_and_role_changes_record_the_previous_value() {
    given::<Directory>(acme())
        .when(DirectoryCommand::MoveUser {
            user: user("1006"),
            department: id("sales"),
        })
        .then([E::UserDepartmentChanged {
            user: user("1006"),
            department: id("sales"),
            previous: id("support"),
        }])
        .when(DirectoryCommand::ChangeUserProfile {
            user: user("1006"),
            profile: id("panel"),
        })
        .then([E::UserProfileChanged {
            user: user("1006"),
            profile: id("panel"),
            previous: id("basic"),
        }])
        .when(DirectoryCommand::ChangeUserRole {
            user: user("1006"),
            role: UserRole::User,
        })
        .then_nothing()
        .when(DirectoryCommand::RenameUser {
            user: user("nobody"),
            display_name: "X".into(),
        })
        .then_rejected(DirectoryRejection::UnknownUser(user("nobody")));
}

#[test]
fn a_credential_change_is_recorded_without_the_secret() {
    given::<Directory>(acme())
        .when(DirectoryCommand::RecordCredentialChange {
            user: user("1001"),
            credential: Credential::WebPassword,
            by: None,
        })
        .then([E::UserCredentialChanged {
            user: user("1001"),
            credential: Credential::WebPassword,
            by: None,
        }]);
}

// The call panel.

#[test]
fn grants_decide_which_departments_a_panel_user_sees() {
    let s = given::<Directory>(acme())
        .when(grant("1001", "sales"))
        .then([granted("1001", "sales")])
        .when(grant("1001", "sales"))
        .then_nothing()
        .when(grant("1001", "support"))
        .then([granted("1001", "support")])
        .when(grant("1001", "nowhere"))
        .then_rejected(DirectoryRejection::UnknownDepartment(id("nowhere")))
        // A grant to someone without the panel feature is kept but shows nothing.
        .when(grant("1006", "sales"))
        .accepted()
        .when(grant("admin", "sales"))
        .accepted();
    let d = dir(&s);
    assert_eq!(
        d.departments_visible_to(&user("1001")),
        depts(&["sales", "support"])
    );
    assert!(d.departments_visible_to(&user("1006")).is_empty());
    // Administrators never log in to the panel, whatever their profile.
    assert!(!d.can_use_panel(&user("admin")));
    assert!(d.departments_visible_to(&user("admin")).is_empty());
    let s = s
        .when(DirectoryCommand::RevokeCallPanel {
            user: user("1001"),
            department: id("support"),
            by: Some(id("admin")),
        })
        .then([E::CallPanelRevoked {
            user: user("1001"),
            department: id("support"),
            by: Some(id("admin")),
        }]);
    assert_eq!(
        dir(&s).departments_visible_to(&user("1001")),
        depts(&["sales"])
    );
}

// Presence states.

#[test]
fn presence_states_are_a_list_with_types() {
    let s = given::<Directory>(acme())
        .when(DirectoryCommand::AddPresenceState {
            state: id("lunch"),
            label: "Out to lunch".into(),
            state_type: PresenceStateType::Away,
        })
        .then([E::PresenceStateAdded {
            state: id("lunch"),
            label: "Out to lunch".into(),
            state_type: PresenceStateType::Away,
            position: 2,
        }])
        .when(DirectoryCommand::AddPresenceState {
            state: id("lunch"),
            label: "Lunch".into(),
            state_type: PresenceStateType::Away,
        })
        .then_rejected(DirectoryRejection::PresenceStateExists(id("lunch")))
        .when(DirectoryCommand::ReorderPresenceStates {
            order: vec![id("lunch"), id("available")],
        })
        .then_rejected(DirectoryRejection::IncompleteOrder)
        .when(DirectoryCommand::ReorderPresenceStates {
            order: vec![id("lunch"), id("available"), id("busy")],
        })
        .accepted()
        .when(DirectoryCommand::UpdatePresenceState {
            state: id("busy"),
            label: "In a meeting".into(),
            state_type: PresenceStateType::Dnd,
        })
        .accepted();
    let labels: Vec<&str> = dir(&s)
        .presence_states()
        .iter()
        .map(|p| p.label.as_str())
        .collect();
    assert_eq!(labels, ["Out to lunch", "Available", "In a meeting"]);
    let choice = dir(&s)
        .presence_choice(&id("busy"))
        .expect("busy is listed");
    assert_eq!(choice.state_type, PresenceStateType::Dnd);
}

#[test]
fn a_state_named_by_a_users_settings_must_exist_and_cannot_be_removed() {
    let settings = UserSettings {
        on_login: Some(id("available")),
        on_logout: Some(id("busy")),
        presence_rules: vec![PresenceRule {
            state_type: PresenceStateType::Dnd,
            dnd: Some(true),
            follow_me: None,
        }],
        ..UserSettings::default()
    };
    given::<Directory>(acme())
        .when(DirectoryCommand::SetUserSettings {
            user: user("1001"),
            settings: UserSettings {
                on_login: Some(id("gone")),
                ..UserSettings::default()
            },
        })
        .then_rejected(DirectoryRejection::UnknownPresenceState(id("gone")))
        .when(DirectoryCommand::SetUserSettings {
            user: user("1001"),
            settings: settings.clone(),
        })
        .then([E::UserSettingsChanged {
            user: user("1001"),
            settings,
        }])
        .when(DirectoryCommand::RemovePresenceState { state: id("busy") })
        .then_rejected(DirectoryRejection::PresenceStateInUse {
            state: id("busy"),
            user: user("1001"),
        });
}

// Credentials.

#[test]
fn sip_secrets_are_kept_as_ha1_and_never_printed() {
    let ha1 = SipDigestHa1::from_password("1001", "acme", "sip-1001");
    assert_eq!(ha1.ha1_hex(), "78907048802367a1444cc69db07a00eb");
    assert!(ha1.matches_password("sip-1001"));
    assert!(!ha1.matches_password("sip-1002"));
    assert!(!format!("{ha1:?}").contains("7890"));
    assert_eq!(
        SipDigestHa1::from_hex("1001", "acme", "not-hex"),
        Err(CredentialError::NotHa1)
    );
    // RFC 7616: the SHA-256 HA1 of the same `user:realm:password`, kept beside the MD5 one.
    const SHA: &str = "ae969a0c0385111e349efc4b4b63763b0b137e87498c299271fc65d4a83ae205";
    assert_eq!(ha1.ha1_sha256_hex(), Some(SHA));
    assert!(!format!("{ha1:?}").contains("ae96"));
    let given = SipDigestHa1::from_hex("1001", "acme", "78907048802367a1444cc69db07a00eb")
        .and_then(|h| h.with_sha256_hex(&SHA.to_ascii_uppercase()));
    assert_eq!(
        given.as_ref().ok().and_then(|h| h.ha1_sha256_hex()),
        Some(SHA)
    );
    assert_eq!(
        SipDigestHa1::from_hex("1001", "acme", "78907048802367a1444cc69db07a00eb")
            .and_then(|h| h.with_sha256_hex("78907048802367a1444cc69db07a00eb")),
        Err(CredentialError::NotHa1Sha256)
    );
}

#[test]
fn a_sha256_ha1_needs_the_md5_one_beside_it() {
    let text = SMALL.replace(
        "profile = \"basic\"\n",
        "profile = \"basic\"\nsip_ha1_sha256 = \"ae969a0c0385111e349efc4b4b63763b0b137e87498c299271fc65d4a83ae205\"\n",
    );
    let err = load(&text).expect_err("sha-256 alone");
    assert_eq!(err.key, "tenants[0].users[0].sip_ha1_sha256");
    assert!(!err.to_string().contains("ae96"), "{err}");
}

#[test]
fn web_passwords_verify_against_argon2_hashes_and_are_never_printed() {
    let hash = WebPasswordHash::hash("s3cret", b"saltsalt", WebPasswordHash::demo_params())
        .expect("hashing works");
    assert!(hash.as_phc().starts_with("$argon2id$"));
    assert!(hash.verify("s3cret"));
    assert!(!hash.verify("s3cret "));
    assert_eq!(format!("{hash:?}"), "WebPasswordHash(<redacted>)");
    assert_eq!(WebPasswordHash::parse(hash.as_phc()), Ok(hash.clone()));
    assert_eq!(
        WebPasswordHash::parse("plain"),
        Err(CredentialError::NotArgon2Phc)
    );
    let mut store = Credentials::default();
    store.set_web_password(user("1001"), hash);
    assert!(store.verify_web_password(&user("1001"), "s3cret"));
    assert!(!store.verify_web_password(&user("1006"), "s3cret"));
}

// The demo directory, through the loader.

#[test]
fn the_demo_directory_loads_with_everything_the_issue_lists() {
    let loaded = demo_directory().expect("the demo loads");
    assert!(loaded.resellers.is_empty());
    let [acme] = &loaded.tenants[..] else {
        panic!("one tenant expected, got {}", loaded.tenants.len());
    };
    let d = &acme.directory;
    assert_eq!(acme.tenant, id::<TenantId>("acme"));
    assert_eq!(d.tenant().map(|t| t.sip_domain.as_str()), Some("acme"));
    let members = |dept: &str| -> Vec<String> {
        d.users_in(&id(dept))
            .filter(|(_, u)| u.role == UserRole::User)
            .map(|(_, u)| u.extension.to_string())
            .collect()
    };
    assert_eq!(members("sales"), ["1001", "1002", "1003", "1004", "1005"]);
    assert_eq!(members("support"), ["1006", "1007", "1008", "1009", "1010"]);
    assert_eq!(members("management"), ["1011", "1012"]);
    for ext in 1001..=1012 {
        let number: ExtensionNumber = id(&ext.to_string());
        let (u, _) = d
            .user_for_extension(&number)
            .expect("every demo extension has a user");
        assert_eq!(u.as_str(), ext.to_string());
    }
    assert_eq!(acme.extensions.len(), 12, "the administrator has no line");

    // The panel.
    assert_eq!(
        d.departments_visible_to(&user("1001")),
        depts(&["sales", "support"])
    );
    assert_eq!(
        d.departments_visible_to(&user("1011")),
        depts(&["sales", "support", "management"])
    );
    assert!(!d.can_use_panel(&user("1002")));
    assert!(!d.can_use_panel(&user("admin")));
    assert_eq!(
        d.user(&user("admin")).map(|u| u.role),
        Some(UserRole::ClientAdmin)
    );
    assert_eq!(
        d.user(&user("1001")).map(|u| u.profile.clone()),
        Some(id::<ProfileId>("panel"))
    );
    assert_eq!(
        d.user(&user("1002")).map(|u| u.profile.clone()),
        Some(id::<ProfileId>("basic"))
    );

    // Credentials.
    let creds = &acme.credentials;
    assert!(d.verify_web_password(creds, &user("1001"), "demo-1001"));
    assert!(d.verify_web_password(creds, &user("admin"), "demo-admin"));
    assert!(!d.verify_web_password(creds, &user("1001"), "demo-1002"));
    let sip = creds
        .sip_digest(&user("1001"))
        .expect("1001 has a SIP secret");
    assert_eq!((sip.username(), sip.realm()), ("1001", "acme"));
    assert!(sip.matches_password("sip-1001"));
    assert!(creds.sip_digest(&user("admin")).is_none());

    // Presence states of the seeds, in order, with their types.
    let states: Vec<(&str, PresenceStateType)> = d
        .presence_states()
        .iter()
        .map(|s| (s.label.as_str(), s.state_type))
        .collect();
    use PresenceStateType::*;
    assert_eq!(
        states,
        [
            ("Available", Available),
            ("Be right back", Away),
            ("Out to lunch", Away),
            ("Busy / DND", Dnd),
            ("Away", Away),
            ("Extended away", ExtendedAway),
            ("Chat", Chat),
            ("Unavailable", Unavailable),
        ]
    );

    // The queue and the conference room.
    let [queue] = &acme.queues[..] else {
        panic!("one queue expected");
    };
    let QueueEvent::QueueConfigured {
        extension,
        strategy,
        ..
    } = &queue.configured
    else {
        panic!("a QueueConfigured expected");
    };
    assert_eq!(
        (extension.as_str(), *strategy),
        ("2000", QueueStrategy::RingAll)
    );
    let agents: Vec<&str> = queue.agents.iter().map(|a| a.as_str()).collect();
    assert_eq!(agents, ["1006", "1007", "1008", "1009", "1010"]);
    let [
        events::model::ConferenceEvent::ConferenceConfigured {
            extension,
            pin,
            max_members,
            ..
        },
    ] = &acme.conferences[..]
    else {
        panic!("one ConferenceConfigured expected");
    };
    assert_eq!(
        (extension.as_str(), pin.as_deref(), *max_members),
        ("3000", Some("1234"), 10)
    );
}

#[test]
fn the_demo_events_rebuild_the_directory_and_hold_no_secret() {
    let loaded = demo_directory().expect("the demo loads");
    let acme = &loaded.tenants[0];
    // The directory keeps no time, so the instant the events are folded at does not matter.
    let rebuilt = Directory::replay(acme.events.iter().map(|e| (e, t0())));
    assert_eq!(rebuilt, acme.directory);
    let stored = serde_json::to_string(&acme.events).expect("events serialise");
    let printed = format!("{acme:?}");
    for ext in (1001..=1012)
        .map(|e| e.to_string())
        .chain(["admin".to_owned()])
    {
        for secret in [format!("demo-{ext}"), format!("sip-{ext}")] {
            assert!(!stored.contains(&secret), "{secret} in the events");
            assert!(!printed.contains(&secret), "{secret} in Debug output");
        }
    }
    assert!(!stored.contains("argon2"));
}

#[test]
fn the_demo_loads_quickly_enough_for_tests() {
    let started = std::time::Instant::now();
    demo_directory().expect("the demo loads");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "hashing the demo passwords took {:?}",
        started.elapsed()
    );
}

// Configuration errors name the key and the line.

const SMALL: &str = r#"
[[tenants]]
id = "acme"
name = "Acme"
sip_domain = "acme"

[[tenants.profiles]]
id = "basic"
name = "Basic"

[[tenants.departments]]
id = "sales"
name = "Sales"

[[tenants.users]]
id = "1001"
name = "Alice"
extension = "1001"
department = "sales"
profile = "basic"
"#;

fn load(text: &str) -> Result<super::config::LoadedDirectory, super::config::ConfigError> {
    load_str(text, "test.toml", ClearPasswords::Refuse)
}

#[test]
fn a_small_file_loads() {
    let loaded = load(SMALL).expect("it loads");
    assert_eq!(loaded.tenants[0].directory.users().len(), 1);
}

#[test]
fn an_unknown_department_is_reported_at_its_key_and_line() {
    let text = SMALL.replace("department = \"sales\"", "department = \"marketing\"");
    let err = load(&text).expect_err("marketing does not exist");
    assert_eq!(err.key, "tenants[0].users[0].department");
    assert_eq!(err.line, 19);
    assert!(err.message.contains("marketing"), "{err}");
    assert!(err.to_string().starts_with("test.toml:19:"), "{err}");
}

#[test]
fn syntax_errors_and_unknown_keys_give_a_line() {
    let err = load(&SMALL.replace("name = \"Alice\"", "name = Alice")).expect_err("bad toml");
    assert_eq!((err.key.as_str(), err.line), ("toml", 17));
    let err = load(&SMALL.replace("name = \"Alice\"", "nmae = \"Alice\"")).expect_err("typo");
    assert_eq!(err.line, 17, "{err}");
    assert!(err.message.contains("nmae"), "{err}");
}

#[test]
fn a_malformed_id_is_reported_with_its_key() {
    let err = load(&SMALL.replace("id = \"sales\"", "id = \"Sales Team\"")).expect_err("bad id");
    assert_eq!(err.key, "tenants[0].departments[0].id");
    assert_eq!(err.line, 12);
}

#[test]
fn clear_web_passwords_are_refused_outside_the_demo_and_never_quoted() {
    let text = SMALL.replace(
        "profile = \"basic\"\n",
        "profile = \"basic\"\nweb_password = \"hunter2\"\n",
    );
    let err = load(&text).expect_err("clear password in a real file");
    assert_eq!(err.key, "tenants[0].users[0].web_password");
    assert_eq!(err.line, 21);
    assert!(!err.to_string().contains("hunter2"));
    let ok = load_str(&text, "test.toml", ClearPasswords::HashForDemo).expect("demo mode hashes");
    assert!(
        ok.tenants[0]
            .credentials
            .verify_web_password(&user("1001"), "hunter2")
    );
}

#[test]
fn a_web_password_hash_must_be_argon2_and_is_never_quoted() {
    let text = SMALL.replace(
        "profile = \"basic\"\n",
        "profile = \"basic\"\nweb_password_hash = \"$1$md5crypt$abc\"\n",
    );
    let err = load(&text).expect_err("not argon2");
    assert_eq!(err.key, "tenants[0].users[0].web_password_hash");
    assert!(!err.to_string().contains("md5crypt"));
    let hash = WebPasswordHash::hash("pw", b"saltsalt", WebPasswordHash::demo_params())
        .expect("hashing works");
    let text = SMALL.replace(
        "profile = \"basic\"\n",
        &format!("profile = \"basic\"\nweb_password_hash = \"{}\"\nsip_ha1 = \"78907048802367A1444CC69DB07A00EB\"\n", hash.as_phc()),
    );
    let loaded = load(&text).expect("an argon2 hash and an HA1 load");
    let creds = &loaded.tenants[0].credentials;
    assert!(creds.verify_web_password(&user("1001"), "pw"));
    assert_eq!(
        creds.sip_digest(&user("1001")).map(|s| s.ha1_hex()),
        Some("78907048802367a1444cc69db07a00eb")
    );
}

#[test]
fn numbers_are_unique_across_users_queues_and_rooms() {
    let text = format!(
        "{SMALL}\n[[tenants.queues]]\nid = \"q\"\nname = \"Q\"\nextension = \"1001\"\nstrategy = \"ring_all\"\n"
    );
    let err = load(&text).expect_err("1001 twice");
    assert_eq!(err.key, "tenants[0].queues[0].extension");
    assert!(err.message.contains("user `1001`"), "{err}");
    let text = format!(
        "{SMALL}\n[[tenants.queues]]\nid = \"q\"\nname = \"Q\"\nextension = \"2000\"\nstrategy = \"ring_all\"\nagents = [\"1009\"]\n"
    );
    let err = load(&text).expect_err("no such agent");
    assert_eq!(err.key, "tenants[0].queues[0].agents[0]");
}
