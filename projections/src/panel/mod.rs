//! The call panel, in memory: what the ClusterPBX-style panel shows, folded from directory,
//! extension, call and voicemail events.
//!
//! Per tenant it keeps the users (from `UserCreated` and `ExtensionProvisioned`; renames,
//! department, extension and role changes, deletion; only user-level accounts are on cards and
//! counters, never an administrator's account), the departments (declared ones and any a user is
//! in) with their counters — total users, online (a registered line), offline, on a call (a line
//! that is on a call or holding one) — maintained incrementally, the lines of the extensions
//! (registrations, line and device state, presence, DND), the voicemail boxes' message counts,
//! the presence-state list, the call-panel grants and the calls per minute ([`crate::rate`]).
//! Calls in progress are kept with their legs, so each card lists the user's active calls with
//! direction (from the user's side), peer, start and answer time.
//!
//! Queries ([`query`]) are always for one tenant and a set of departments, deny by default:
//! [`PanelView::snapshot_for`] gives every visible card and department with the log position it
//! reflects; [`PanelView::deltas_since`] gives the cards and departments that changed after a
//! position (or `None` when that position is too old for the journal, and the client needs a
//! fresh snapshot). The view's position only grows; every change is journalled under the
//! position of the event that made it.
//!
//! [`PanelProjection`] runs the view under the [`crate::Runner`]; it rebuilds from position 0
//! at every start. [`PanelHandle`] is what readers (the websocket hub) hold.

mod fold;
mod query;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::codec::Recorded;
use events::ids::{
    CallId, DepartmentId, DeviceContactId, ExtensionNumber, LegId, PresenceStateId, TenantId,
    UserId,
};
use events::model::{
    DeviceState, Direction, LegRole, LineState, Party, PresenceStateType, UserRole,
};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

pub use fold::PANEL_EVENTS;
pub use query::{
    ActiveCall, ActiveCallState, CallSide, CardStatus, DepartmentSummary, PanelDelta,
    PanelSnapshot, Peer, PresenceStateInfo, PresenceView, UserCard, VoicemailCount,
};

use crate::ProjectionError;
use crate::rate::{CallsPerMinute, MinuteCount};
use crate::runner::{Interest, Projection};

/// Journal entries kept for deltas by default.
pub const DEFAULT_JOURNAL_CAPACITY: usize = 262_144;

/// The whole panel state of every tenant.
#[derive(Debug, Clone)]
pub struct PanelView {
    position: GlobalPosition,
    tenants: BTreeMap<TenantId, TenantPanel>,
    calls: BTreeMap<CallId, LiveCall>,
    journal: Journal,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct TenantPanel {
    users: BTreeMap<UserId, UserEntry>,
    departments: BTreeMap<DepartmentId, DepartmentEntry>,
    lines: BTreeMap<ExtensionNumber, Line>,
    /// Which users each extension belongs to (normally one).
    extension_users: BTreeMap<ExtensionNumber, BTreeSet<UserId>>,
    mailboxes: BTreeMap<ExtensionNumber, Mailbox>,
    presence_states: BTreeMap<PresenceStateId, PresenceStateEntry>,
    grants: BTreeMap<UserId, Grants>,
    rate: CallsPerMinute,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct UserEntry {
    name: String,
    extension: Option<ExtensionNumber>,
    department: Option<DepartmentId>,
    role: Option<UserRole>,
    /// Known from the directory (`UserCreated`, not yet deleted).
    in_directory: bool,
    /// Has a provisioned extension (`ExtensionProvisioned`, not yet retired).
    provisioned: bool,
    /// Calls the user has a live leg in.
    calls: BTreeSet<CallId>,
    changed_at: GlobalPosition,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct DepartmentEntry {
    name: Option<String>,
    /// Created by `DepartmentCreated` and not deleted.
    declared: bool,
    total: u32,
    online: u32,
    on_call: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Line {
    state: LineState,
    device_state: DeviceState,
    contacts: BTreeSet<DeviceContactId>,
    presence: Option<Presence>,
    dnd: bool,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            state: LineState::Offline,
            device_state: DeviceState::Unavailable,
            contacts: BTreeSet::new(),
            presence: None,
            dnd: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Presence {
    state: PresenceStateId,
    state_type: PresenceStateType,
    message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Mailbox {
    new: u32,
    old: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PresenceStateEntry {
    label: String,
    state_type: PresenceStateType,
    order: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Grants {
    departments: BTreeSet<DepartmentId>,
    changed_at: GlobalPosition,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LiveCall {
    tenant: TenantId,
    direction: Direction,
    caller: Party,
    callee: Party,
    created_at: DateTime<Utc>,
    legs: Vec<LiveLeg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LiveLeg {
    id: LegId,
    role: LegRole,
    party: Party,
    parent: Option<LegId>,
    created_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    held: bool,
    ended: bool,
}

/// What a user adds to their department's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contribution {
    department: DepartmentId,
    online: bool,
    on_call: bool,
}

/// What changed, under the position of the event that changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JournalEntry {
    position: GlobalPosition,
    tenant: TenantId,
    touched: Touched,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Touched {
    /// A user's card; with the departments it was in before and after the change.
    User {
        user: UserId,
        before: Option<DepartmentId>,
        after: Option<DepartmentId>,
    },
    Department(DepartmentId),
    PresenceList,
}

#[derive(Debug, Clone)]
struct Journal {
    entries: VecDeque<JournalEntry>,
    capacity: usize,
    /// Deltas can be given after any position at or above this one: every entry above it is
    /// still here.
    floor: GlobalPosition,
}

impl Journal {
    fn push(&mut self, entry: JournalEntry) {
        while self.entries.len() >= self.capacity {
            match self.entries.pop_front() {
                Some(old) => self.floor = self.floor.max(old.position),
                None => break,
            }
        }
        self.entries.push_back(entry);
    }
}

impl Default for PanelView {
    fn default() -> Self {
        Self::new()
    }
}

impl PanelView {
    pub fn new() -> Self {
        Self::with_journal_capacity(DEFAULT_JOURNAL_CAPACITY)
    }

    /// A view whose delta journal keeps at most `capacity` entries (at least one).
    pub fn with_journal_capacity(capacity: usize) -> Self {
        Self {
            position: GlobalPosition::START,
            tenants: BTreeMap::new(),
            calls: BTreeMap::new(),
            journal: Journal {
                entries: VecDeque::new(),
                capacity: capacity.max(1),
                floor: GlobalPosition::START,
            },
        }
    }

    /// The position of the last event applied: the view reflects the log up to here.
    pub fn position(&self) -> GlobalPosition {
        self.position
    }

    /// Moves the view's position to `through` after events it has no interest in (see
    /// [`PANEL_EVENTS`]); they change nothing else.
    pub fn advance_to(&mut self, through: GlobalPosition) {
        self.position = self.position.max(through);
    }

    /// The oldest position [`PanelView::deltas_since`] can still answer from.
    pub fn journal_floor(&self) -> GlobalPosition {
        self.journal.floor
    }

    /// Tenants the view knows.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.tenants.keys()
    }

    /// The departments `user` was granted to watch in the call panel, and the position of the
    /// last change to them (`START` if never granted anything).
    pub fn grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> (BTreeSet<DepartmentId>, GlobalPosition) {
        self.tenants
            .get(tenant)
            .and_then(|t| t.grants.get(user))
            .map_or((BTreeSet::new(), GlobalPosition::START), |g| {
                (g.departments.clone(), g.changed_at)
            })
    }

    /// The calls-per-minute graph of the hour ending at `now`'s minute, counting the calls that
    /// involve one of `departments`.
    pub fn calls_per_minute(
        &self,
        tenant: &TenantId,
        departments: &BTreeSet<DepartmentId>,
        now: DateTime<Utc>,
    ) -> Vec<MinuteCount> {
        match self.tenants.get(tenant) {
            Some(t) => t.rate.last_hour(departments, now),
            None => CallsPerMinute::default().last_hour(departments, now),
        }
    }

    /// SHA-256 (hex) of the whole state except the delta journal: equal for two views that
    /// applied the same events, however they were batched or delivered.
    pub fn digest(&self) -> String {
        let mut hasher = DigestHasher(Sha256::new());
        self.position.hash(&mut hasher);
        self.tenants.hash(&mut hasher);
        self.calls.hash(&mut hasher);
        hasher
            .0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Recounts every department from the users and compares with the incrementally kept
    /// counters; describes the first difference. A self-check for tests.
    #[doc(hidden)]
    pub fn verify_counters(&self) -> Result<(), String> {
        for (tenant_id, tenant) in &self.tenants {
            let mut counted: BTreeMap<DepartmentId, (u32, u32, u32)> = BTreeMap::new();
            for user in tenant.users.keys() {
                if let Some(c) = tenant.contribution(user) {
                    let e = counted.entry(c.department).or_default();
                    e.0 += 1;
                    e.1 += u32::from(c.online);
                    e.2 += u32::from(c.on_call);
                }
            }
            for (id, d) in &tenant.departments {
                let want = counted.remove(id).unwrap_or_default();
                if (d.total, d.online, d.on_call) != want {
                    return Err(format!(
                        "{tenant_id}/{id}: kept (total, online, on call) {:?}, recounted {want:?}",
                        (d.total, d.online, d.on_call)
                    ));
                }
                if !d.declared && d.total == 0 {
                    return Err(format!(
                        "{tenant_id}/{id}: an empty undeclared department is kept"
                    ));
                }
            }
            if let Some((id, c)) = counted.into_iter().next() {
                return Err(format!(
                    "{tenant_id}/{id}: {c:?} counted but no department kept"
                ));
            }
        }
        Ok(())
    }
}

/// Feeds `Hash` output into SHA-256.
struct DigestHasher(Sha256);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl UserEntry {
    /// The department whose cards and counters show this user: user-level accounts only. An
    /// administrator's account sits in a department for the directory's sake, not the panel's.
    /// (A user known only from their provisioned extension is user-level: only those have
    /// extensions.)
    fn panel_department(&self) -> Option<&DepartmentId> {
        self.department
            .as_ref()
            .filter(|_| self.role.is_none_or(|r| r == UserRole::User))
    }
}

impl TenantPanel {
    fn contribution(&self, user: &UserId) -> Option<Contribution> {
        let entry = self.users.get(user)?;
        let department = entry.panel_department()?.clone();
        let line = entry.extension.as_ref().and_then(|e| self.lines.get(e));
        let state = line.map_or(LineState::Offline, |l| l.state);
        Some(Contribution {
            department,
            online: state != LineState::Offline,
            on_call: fold::on_call(state),
        })
    }

    fn add(&mut self, c: &Contribution) {
        let d = self.departments.entry(c.department.clone()).or_default();
        d.total += 1;
        d.online += u32::from(c.online);
        d.on_call += u32::from(c.on_call);
    }

    fn remove(&mut self, c: &Contribution) {
        if let Some(d) = self.departments.get_mut(&c.department) {
            d.total = d.total.saturating_sub(1);
            d.online = d.online.saturating_sub(u32::from(c.online));
            d.on_call = d.on_call.saturating_sub(u32::from(c.on_call));
            if d.total == 0 && !d.declared {
                self.departments.remove(&c.department);
            }
        }
    }
}

/// Runs a [`PanelView`] under the runner. It starts empty and rebuilds from position 0 every
/// time the runner starts.
#[derive(Debug)]
pub struct PanelProjection {
    view: Arc<RwLock<PanelView>>,
    notify: watch::Sender<GlobalPosition>,
    journal_capacity: usize,
}

/// A reader's handle on the live panel: the view, and a channel that carries the view's
/// position after every applied batch.
#[derive(Debug, Clone)]
pub struct PanelHandle {
    view: Arc<RwLock<PanelView>>,
    changes: watch::Receiver<GlobalPosition>,
}

impl PanelHandle {
    /// Read access to the view (held briefly: the runner waits for it to apply events).
    pub fn read(&self) -> RwLockReadGuard<'_, PanelView> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes to the view's position, for waking up whoever sends deltas.
    pub fn changes(&self) -> watch::Receiver<GlobalPosition> {
        self.changes.clone()
    }
}

impl PanelProjection {
    pub fn new() -> (Self, PanelHandle) {
        Self::with_journal_capacity(DEFAULT_JOURNAL_CAPACITY)
    }

    pub fn with_journal_capacity(capacity: usize) -> (Self, PanelHandle) {
        let view = Arc::new(RwLock::new(PanelView::with_journal_capacity(capacity)));
        let (notify, changes) = watch::channel(GlobalPosition::START);
        let handle = PanelHandle {
            view: view.clone(),
            changes,
        };
        (
            Self {
                view,
                notify,
                journal_capacity: capacity,
            },
            handle,
        )
    }
}

#[async_trait]
impl Projection for PanelProjection {
    fn name(&self) -> &'static str {
        "panel"
    }

    async fn start(&mut self) -> Result<GlobalPosition, ProjectionError> {
        *self.view.write().unwrap_or_else(|p| p.into_inner()) =
            PanelView::with_journal_capacity(self.journal_capacity);
        self.notify.send_replace(GlobalPosition::START);
        Ok(GlobalPosition::START)
    }

    fn interest(&self) -> Interest {
        Interest::Only(PANEL_EVENTS)
    }

    async fn apply(
        &mut self,
        events: &[Recorded],
        through: GlobalPosition,
    ) -> Result<(), ProjectionError> {
        let position = {
            let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
            for r in events {
                view.apply(r);
            }
            view.advance_to(through);
            view.position()
        };
        self.notify.send_replace(position);
        Ok(())
    }
}
