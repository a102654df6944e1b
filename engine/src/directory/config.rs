//! The TOML directory file: typed configuration parsed with `toml`, checked (every reference
//! resolves, ids are well formed, no extension is used twice), and turned into what the engine
//! runs on: directory commands per tenant (and the events they produce on an empty directory),
//! the credential store, extension provisioning, and the queue and conference settings as the
//! events of those streams. Errors name the bad key and its line and column. Clear passwords are
//! only accepted for the built-in demo and are hashed on load; nothing secret is ever printed
//! (`Secret`'s `Debug` is redacted, and errors never quote a value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use events::ids::{
    ConferenceId, DepartmentId, ExtensionNumber, PhoneNumber, PresenceStateId, ProfileId, QueueId,
    ResellerId, TenantId, UserId,
};
use events::model::{
    ConferenceEvent, DirectoryEvent, FeatureFlag, PresenceRule, PresenceStateType, QueueEvent,
    QueueStrategy, UserRole, UserSettings,
};
use serde::Deserialize;
use toml::Spanned;

use super::command::DirectoryCommand;
use super::credentials::{Credentials, SipDigestHa1, WebPasswordHash};
use super::state::Directory;
use crate::aggregate::Aggregate;
use crate::extension::ExtensionCommand;

/// The directory's decisions do not depend on time; loading uses this fixed instant.
const DECIDED_AT: chrono::DateTime<chrono::Utc> = chrono::DateTime::UNIX_EPOCH;

/// A configuration error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: `{key}`: {message}")]
pub struct ConfigError {
    /// Where the text came from (a path, or `built-in demo`).
    pub origin: String,
    /// The key at fault (`tenants[0].users[3].department`), or `toml` for a syntax error.
    pub key: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Whether clear-text web passwords (`web_password`) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearPasswords {
    /// Only for the built-in demo: hash them on load with the cheap demo parameters.
    HashForDemo,
    /// Real files must give `web_password_hash`.
    Refuse,
}

/// Everything a directory file configures.
#[derive(Debug, Clone)]
pub struct LoadedDirectory {
    /// `ResellerCreated` for each reseller's own stream.
    pub resellers: Vec<(ResellerId, DirectoryEvent)>,
    pub tenants: Vec<LoadedTenant>,
}

/// One tenant's part of a directory file.
#[derive(Debug, Clone)]
pub struct LoadedTenant {
    pub tenant: TenantId,
    /// The commands that build the directory, in order.
    pub commands: Vec<DirectoryCommand>,
    /// What those commands produce on an empty directory (its stream's first events).
    pub events: Vec<DirectoryEvent>,
    /// The directory those events fold into.
    pub directory: Directory,
    pub credentials: Credentials,
    /// `Provision` for each user-level account's extension.
    pub extensions: Vec<(ExtensionNumber, ExtensionCommand)>,
    pub queues: Vec<QueueSetup>,
    /// `ConferenceConfigured` for each room's stream.
    pub conferences: Vec<ConferenceEvent>,
}

/// A queue's `QueueConfigured` and its static agents (the queue logs them in).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSetup {
    pub queue: QueueId,
    pub configured: QueueEvent,
    pub agents: Vec<ExtensionNumber>,
}

/// A clear-text value from the file; its `Debug` is redacted.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    resellers: Vec<ResellerConfig>,
    #[serde(default)]
    tenants: Vec<TenantConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResellerConfig {
    id: Spanned<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantConfig {
    id: Spanned<String>,
    name: String,
    /// SIP domain and digest realm.
    sip_domain: String,
    reseller: Option<Spanned<String>>,
    #[serde(default)]
    presence_states: Vec<PresenceStateConfig>,
    #[serde(default)]
    profiles: Vec<ProfileConfig>,
    #[serde(default)]
    departments: Vec<DepartmentConfig>,
    #[serde(default)]
    users: Vec<UserConfig>,
    #[serde(default)]
    queues: Vec<QueueConfig>,
    #[serde(default)]
    conferences: Vec<ConferenceConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceStateConfig {
    id: Spanned<String>,
    label: String,
    #[serde(rename = "type")]
    state_type: PresenceStateType,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileConfig {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    features: BTreeSet<FeatureFlag>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentConfig {
    id: Spanned<String>,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserConfig {
    id: Spanned<String>,
    name: String,
    extension: Spanned<String>,
    department: Spanned<String>,
    profile: Spanned<String>,
    #[serde(default = "default_role")]
    role: UserRole,
    email: Option<String>,
    web_password_hash: Option<Spanned<Secret>>,
    web_password: Option<Spanned<Secret>>,
    /// Hashed to HA1 on load (realm: the tenant's `sip_domain`, username: the extension).
    sip_password: Option<Spanned<Secret>>,
    sip_ha1: Option<Spanned<Secret>>,
    /// RFC 7616 SHA-256 HA1, beside `sip_ha1` (only with it).
    sip_ha1_sha256: Option<Spanned<Secret>>,
    #[serde(default)]
    grants: Vec<Spanned<String>>,
    on_login: Option<Spanned<String>>,
    on_logout: Option<Spanned<String>>,
    #[serde(default)]
    presence_rules: Vec<PresenceRule>,
    language: Option<String>,
    timezone: Option<String>,
}

fn default_role() -> UserRole {
    UserRole::User
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueConfig {
    id: Spanned<String>,
    name: String,
    extension: Spanned<String>,
    strategy: QueueStrategy,
    /// Extensions of the static agents.
    #[serde(default)]
    agents: Vec<Spanned<String>>,
    #[serde(default = "default_queue_ring_secs")]
    ring_timeout_secs: u64,
    max_wait_secs: Option<u64>,
    max_callers: Option<u32>,
    #[serde(default)]
    wrap_up_secs: u64,
    #[serde(default = "yes")]
    join_empty: bool,
    #[serde(default)]
    leave_when_empty: bool,
    exit_key: Option<char>,
    fallback: Option<Spanned<String>>,
    music_on_hold: Option<String>,
}

fn default_queue_ring_secs() -> u64 {
    15
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConferenceConfig {
    id: Spanned<String>,
    name: String,
    extension: Spanned<String>,
    pin: Option<Spanned<String>>,
    max_members: u32,
    owner: Option<Spanned<String>>,
    #[serde(default)]
    record: bool,
}

/// Parses and checks a directory file.
pub fn load_str(
    text: &str,
    origin: &str,
    clear_passwords: ClearPasswords,
) -> Result<LoadedDirectory, ConfigError> {
    let file: FileConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError {
            origin: origin.to_owned(),
            key: "toml".to_owned(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })?;
    let cx = Cx { text, origin };
    let mut resellers = Vec::new();
    let mut reseller_ids = BTreeSet::new();
    for (i, r) in file.resellers.iter().enumerate() {
        let id: ResellerId = cx.id(&r.id, &format!("resellers[{i}].id"))?;
        if !reseller_ids.insert(id.clone()) {
            return Err(cx.err(&r.id, &format!("resellers[{i}].id"), "duplicate reseller"));
        }
        let mut dir = Directory::default();
        let events = cx.apply(
            &mut dir,
            &DirectoryCommand::CreateReseller {
                reseller: id.clone(),
                name: r.name.clone(),
            },
            &r.id,
            &format!("resellers[{i}]"),
        )?;
        resellers.extend(events.into_iter().map(|e| (id.clone(), e)));
    }
    let mut tenants = Vec::new();
    let mut tenant_ids = BTreeSet::new();
    for (i, t) in file.tenants.iter().enumerate() {
        let tenant = load_tenant(
            &cx,
            t,
            &format!("tenants[{i}]"),
            &reseller_ids,
            clear_passwords,
        )?;
        if !tenant_ids.insert(tenant.tenant.clone()) {
            return Err(cx.err(&t.id, &format!("tenants[{i}].id"), "duplicate tenant"));
        }
        tenants.push(tenant);
    }
    Ok(LoadedDirectory { resellers, tenants })
}

/// Reads and loads a directory file from disk (the one place this module does I/O).
pub fn load_file(path: &std::path::Path) -> Result<LoadedDirectory, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        origin: origin.clone(),
        key: "file".to_owned(),
        line: 1,
        column: 1,
        message: format!("cannot read the directory file: {e}"),
    })?;
    load_str(&text, &origin, ClearPasswords::Refuse)
}

struct Cx<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Cx<'_> {
    fn err<T>(&self, at: &Spanned<T>, key: &str, message: impl Into<String>) -> ConfigError {
        self.err_at(at.span(), key, message)
    }

    fn err_at(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError {
            origin: self.origin.to_owned(),
            key: key.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn id<T: std::str::FromStr>(&self, s: &Spanned<String>, key: &str) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        s.get_ref()
            .parse()
            .map_err(|e: T::Err| self.err(s, key, e.to_string()))
    }

    /// Decides and folds one command, reporting a rejection at `at`.
    fn apply<T>(
        &self,
        dir: &mut Directory,
        command: &DirectoryCommand,
        at: &Spanned<T>,
        key: &str,
    ) -> Result<Vec<DirectoryEvent>, ConfigError> {
        let events = dir
            .decide(command, DECIDED_AT)
            .map_err(|r| self.err(at, key, r.to_string()))?;
        for e in &events {
            dir.evolve(e, DECIDED_AT);
        }
        Ok(events)
    }
}

fn load_tenant(
    cx: &Cx<'_>,
    t: &TenantConfig,
    key: &str,
    resellers: &BTreeSet<ResellerId>,
    clear_passwords: ClearPasswords,
) -> Result<LoadedTenant, ConfigError> {
    let tenant: TenantId = cx.id(&t.id, &format!("{key}.id"))?;
    let reseller = match &t.reseller {
        Some(r) => {
            let id: ResellerId = cx.id(r, &format!("{key}.reseller"))?;
            if !resellers.contains(&id) {
                return Err(cx.err(
                    r,
                    &format!("{key}.reseller"),
                    "no such reseller in [[resellers]]",
                ));
            }
            Some(id)
        }
        None => None,
    };
    let mut dir = Directory::default();
    let mut commands = Vec::new();
    let mut events = Vec::new();
    let mut run = |dir: &mut Directory,
                   command: DirectoryCommand,
                   at: Range<usize>,
                   k: &str|
     -> Result<(), ConfigError> {
        let produced = dir
            .decide(&command, DECIDED_AT)
            .map_err(|r| cx.err_at(at, k, r.to_string()))?;
        for e in &produced {
            dir.evolve(e, DECIDED_AT);
        }
        events.extend(produced);
        commands.push(command);
        Ok(())
    };

    run(
        &mut dir,
        DirectoryCommand::CreateTenant {
            tenant: tenant.clone(),
            reseller,
            name: t.name.clone(),
            sip_domain: t.sip_domain.clone(),
        },
        t.id.span(),
        &format!("{key}.id"),
    )?;
    for (i, s) in t.presence_states.iter().enumerate() {
        let k = format!("{key}.presence_states[{i}].id");
        run(
            &mut dir,
            DirectoryCommand::AddPresenceState {
                state: cx.id(&s.id, &k)?,
                label: s.label.clone(),
                state_type: s.state_type,
            },
            s.id.span(),
            &k,
        )?;
    }
    for (i, p) in t.profiles.iter().enumerate() {
        let k = format!("{key}.profiles[{i}].id");
        run(
            &mut dir,
            DirectoryCommand::CreateProfile {
                profile: cx.id(&p.id, &k)?,
                name: p.name.clone(),
                features: p.features.clone(),
            },
            p.id.span(),
            &k,
        )?;
    }
    for (i, d) in t.departments.iter().enumerate() {
        let k = format!("{key}.departments[{i}].id");
        run(
            &mut dir,
            DirectoryCommand::CreateDepartment {
                department: cx.id(&d.id, &k)?,
                name: d.name.clone(),
            },
            d.id.span(),
            &k,
        )?;
    }

    let mut credentials = Credentials::default();
    let mut extensions = Vec::new();
    for (i, u) in t.users.iter().enumerate() {
        let k = format!("{key}.users[{i}]");
        let user: UserId = cx.id(&u.id, &format!("{k}.id"))?;
        let extension: ExtensionNumber = cx.id(&u.extension, &format!("{k}.extension"))?;
        let department: DepartmentId = cx.id(&u.department, &format!("{k}.department"))?;
        let profile: ProfileId = cx.id(&u.profile, &format!("{k}.profile"))?;
        // Check references here, so the error points at the key that names them.
        if !dir.departments().contains_key(&department) {
            return Err(cx.err(
                &u.department,
                &format!("{k}.department"),
                format!("no department `{department}`"),
            ));
        }
        if !dir.profiles().contains_key(&profile) {
            return Err(cx.err(
                &u.profile,
                &format!("{k}.profile"),
                format!("no profile `{profile}`"),
            ));
        }
        if let Some((owner, _)) = dir.user_for_extension(&extension) {
            return Err(cx.err(
                &u.extension,
                &format!("{k}.extension"),
                format!("extension {extension} already belongs to user `{owner}`"),
            ));
        }
        run(
            &mut dir,
            DirectoryCommand::CreateUser {
                user: user.clone(),
                display_name: u.name.clone(),
                extension: extension.clone(),
                department: department.clone(),
                profile,
                role: u.role,
                email: u.email.clone(),
            },
            u.id.span(),
            &format!("{k}.id"),
        )?;

        match (&u.web_password_hash, &u.web_password) {
            (Some(_), Some(clear)) => {
                return Err(cx.err(
                    clear,
                    &format!("{k}.web_password"),
                    "give either `web_password_hash` or `web_password`, not both",
                ));
            }
            (Some(phc), None) => {
                let hash = WebPasswordHash::parse(&phc.get_ref().0)
                    .map_err(|e| cx.err(phc, &format!("{k}.web_password_hash"), e.to_string()))?;
                credentials.set_web_password(user.clone(), hash);
            }
            (None, Some(clear)) => {
                if clear_passwords == ClearPasswords::Refuse {
                    return Err(cx.err(clear, &format!("{k}.web_password"), "clear-text web passwords are only accepted in the built-in demo; give `web_password_hash` (an argon2 PHC string)"));
                }
                let salt = demo_salt(&tenant, &user);
                let hash = WebPasswordHash::hash(
                    &clear.get_ref().0,
                    &salt,
                    WebPasswordHash::demo_params(),
                )
                .map_err(|e| cx.err(clear, &format!("{k}.web_password"), e.to_string()))?;
                credentials.set_web_password(user.clone(), hash);
            }
            (None, None) => {}
        }
        if let (Some(sha), None) = (&u.sip_ha1_sha256, &u.sip_ha1) {
            return Err(cx.err(
                sha,
                &format!("{k}.sip_ha1_sha256"),
                "`sip_ha1_sha256` goes with `sip_ha1` (give the MD5 HA1 too, or `sip_password`)",
            ));
        }
        match (&u.sip_ha1, &u.sip_password) {
            (Some(_), Some(clear)) => {
                return Err(cx.err(
                    clear,
                    &format!("{k}.sip_password"),
                    "give either `sip_ha1` or `sip_password`, not both",
                ));
            }
            (Some(ha1), None) => {
                let secret =
                    SipDigestHa1::from_hex(extension.as_str(), &t.sip_domain, &ha1.get_ref().0)
                        .map_err(|e| cx.err(ha1, &format!("{k}.sip_ha1"), e.to_string()))?;
                let secret = match &u.sip_ha1_sha256 {
                    Some(sha) => secret
                        .with_sha256_hex(&sha.get_ref().0)
                        .map_err(|e| cx.err(sha, &format!("{k}.sip_ha1_sha256"), e.to_string()))?,
                    None => secret,
                };
                credentials.set_sip(user.clone(), secret);
            }
            (None, Some(clear)) => {
                credentials.set_sip(
                    user.clone(),
                    SipDigestHa1::from_password(
                        extension.as_str(),
                        &t.sip_domain,
                        &clear.get_ref().0,
                    ),
                );
            }
            (None, None) => {}
        }

        let on_login = u
            .on_login
            .as_ref()
            .map(|s| presence_ref(cx, &dir, s, &format!("{k}.on_login")))
            .transpose()?;
        let on_logout = u
            .on_logout
            .as_ref()
            .map(|s| presence_ref(cx, &dir, s, &format!("{k}.on_logout")))
            .transpose()?;
        let settings = UserSettings {
            on_login,
            on_logout,
            presence_rules: u.presence_rules.clone(),
            language: u.language.clone(),
            timezone: u.timezone.clone(),
        };
        if settings != UserSettings::default() {
            run(
                &mut dir,
                DirectoryCommand::SetUserSettings {
                    user: user.clone(),
                    settings,
                },
                u.id.span(),
                &format!("{k}.id"),
            )?;
        }
        if u.role == UserRole::User {
            extensions.push((
                extension.clone(),
                ExtensionCommand::Provision {
                    extension,
                    user: user.clone(),
                    display_name: u.name.trim().to_owned(),
                    department,
                },
            ));
        }
    }
    // Grants after every user, so a grant never depends on the order of the users.
    for (i, u) in t.users.iter().enumerate() {
        let user: UserId = cx.id(&u.id, &format!("{key}.users[{i}].id"))?;
        for (j, g) in u.grants.iter().enumerate() {
            let k = format!("{key}.users[{i}].grants[{j}]");
            let department: DepartmentId = cx.id(g, &k)?;
            if !dir.departments().contains_key(&department) {
                return Err(cx.err(g, &k, format!("no department `{department}`")));
            }
            run(
                &mut dir,
                DirectoryCommand::GrantCallPanel {
                    user: user.clone(),
                    department,
                    by: None,
                },
                g.span(),
                &k,
            )?;
        }
    }

    let queues = t
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| load_queue(cx, &dir, q, &format!("{key}.queues[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let conferences = t
        .conferences
        .iter()
        .enumerate()
        .map(|(i, c)| load_conference(cx, &dir, c, &format!("{key}.conferences[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    check_numbers_unique(cx, &dir, t, key)?;

    Ok(LoadedTenant {
        tenant,
        commands,
        events,
        directory: dir,
        credentials,
        extensions,
        queues,
        conferences,
    })
}

fn presence_ref(
    cx: &Cx<'_>,
    dir: &Directory,
    s: &Spanned<String>,
    key: &str,
) -> Result<PresenceStateId, ConfigError> {
    let id: PresenceStateId = cx.id(s, key)?;
    if dir.presence_state(&id).is_none() {
        return Err(cx.err(
            s,
            key,
            format!("no presence state `{id}` in presence_states"),
        ));
    }
    Ok(id)
}

fn load_queue(
    cx: &Cx<'_>,
    dir: &Directory,
    q: &QueueConfig,
    key: &str,
) -> Result<QueueSetup, ConfigError> {
    let queue: QueueId = cx.id(&q.id, &format!("{key}.id"))?;
    let extension: ExtensionNumber = cx.id(&q.extension, &format!("{key}.extension"))?;
    let mut agents = Vec::new();
    for (i, a) in q.agents.iter().enumerate() {
        let k = format!("{key}.agents[{i}]");
        let agent: ExtensionNumber = cx.id(a, &k)?;
        if dir.user_for_extension(&agent).is_none() {
            return Err(cx.err(a, &k, format!("no user has extension {agent}")));
        }
        agents.push(agent);
    }
    let fallback: Option<PhoneNumber> = q
        .fallback
        .as_ref()
        .map(|f| cx.id(f, &format!("{key}.fallback")))
        .transpose()?;
    Ok(QueueSetup {
        queue: queue.clone(),
        configured: QueueEvent::QueueConfigured {
            queue,
            name: q.name.clone(),
            extension,
            strategy: q.strategy,
            ring_timeout_ms: q.ring_timeout_secs * 1000,
            max_wait_ms: q.max_wait_secs.map(|s| s * 1000),
            max_callers: q.max_callers,
            wrap_up_ms: q.wrap_up_secs * 1000,
            join_empty: q.join_empty,
            leave_when_empty: q.leave_when_empty,
            exit_key: q.exit_key,
            fallback,
            music_on_hold: q.music_on_hold.clone(),
        },
        agents,
    })
}

fn load_conference(
    cx: &Cx<'_>,
    dir: &Directory,
    c: &ConferenceConfig,
    key: &str,
) -> Result<ConferenceEvent, ConfigError> {
    let conference: ConferenceId = cx.id(&c.id, &format!("{key}.id"))?;
    let extension: ExtensionNumber = cx.id(&c.extension, &format!("{key}.extension"))?;
    if let Some(pin) = &c.pin
        && (pin.get_ref().is_empty() || !pin.get_ref().chars().all(|ch| ch.is_ascii_digit()))
    {
        return Err(cx.err(pin, &format!("{key}.pin"), "a PIN is one or more digits"));
    }
    if c.max_members == 0 {
        return Err(ConfigError {
            message: "a room must admit at least one member".to_owned(),
            ..cx.err(&c.id, &format!("{key}.max_members"), "")
        });
    }
    let owner: Option<UserId> = match &c.owner {
        Some(o) => {
            let id: UserId = cx.id(o, &format!("{key}.owner"))?;
            if dir.user(&id).is_none() {
                return Err(cx.err(o, &format!("{key}.owner"), format!("no user `{id}`")));
            }
            Some(id)
        }
        None => None,
    };
    Ok(ConferenceEvent::ConferenceConfigured {
        conference,
        name: c.name.clone(),
        extension,
        pin: c.pin.as_ref().map(|p| p.get_ref().clone()),
        max_members: c.max_members,
        owner,
        record: c.record,
    })
}

/// Users, queues and conferences share one dial plan: no number twice.
fn check_numbers_unique(
    cx: &Cx<'_>,
    dir: &Directory,
    t: &TenantConfig,
    key: &str,
) -> Result<(), ConfigError> {
    let mut seen: BTreeMap<String, String> = dir
        .users()
        .iter()
        .map(|(id, u)| (u.extension.to_string(), format!("user `{id}`")))
        .collect();
    let services = t
        .queues
        .iter()
        .enumerate()
        .map(|(i, q)| {
            (
                &q.extension,
                format!("{key}.queues[{i}].extension"),
                format!("queue `{}`", q.id.get_ref()),
            )
        })
        .chain(t.conferences.iter().enumerate().map(|(i, c)| {
            (
                &c.extension,
                format!("{key}.conferences[{i}].extension"),
                format!("conference `{}`", c.id.get_ref()),
            )
        }));
    for (number, k, what) in services {
        if let Some(owner) = seen.insert(number.get_ref().clone(), what) {
            return Err(cx.err(
                number,
                &k,
                format!("number {} is already used by {owner}", number.get_ref()),
            ));
        }
    }
    Ok(())
}

/// A salt derived from the tenant and user: deterministic, which is only acceptable because
/// demo passwords are public.
fn demo_salt(tenant: &TenantId, user: &UserId) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(format!("ledgerline-demo:{tenant}:{user}").as_bytes()).into()
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
