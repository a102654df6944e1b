//! How each event changes the panel. Every change to a user goes through
//! [`PanelView::change_users`], which takes the users' contributions to their departments'
//! counters before and after, adjusts the counters by the difference and journals the change;
//! so the counters cannot drift from the cards, whatever the event.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::codec::Recorded;
use events::ids::{CallId, ExtensionNumber, TenantId, UserId};
use events::model::{
    CallEvent, DirectoryEvent, Event, ExtensionEvent, LegRole, LineState, VoicemailEvent,
};

use super::{
    JournalEntry, Line, LiveCall, LiveLeg, Mailbox, PanelView, Presence, PresenceStateEntry,
    TenantPanel, Touched, UserEntry,
};

/// The stored types of the events the panel folds; every other event leaves it unchanged. (A
/// test applies every other type to a populated panel to hold this list to the code.)
pub const PANEL_EVENTS: &[&str] = &[
    "TenantCreated",
    "DepartmentCreated",
    "DepartmentRenamed",
    "DepartmentDeleted",
    "UserCreated",
    "UserRenamed",
    "UserDepartmentChanged",
    "UserExtensionChanged",
    "UserRoleChanged",
    "UserDeleted",
    "CallPanelGranted",
    "CallPanelRevoked",
    "PresenceStateAdded",
    "PresenceStateUpdated",
    "PresenceStateRemoved",
    "PresenceStatesReordered",
    "ExtensionProvisioned",
    "ExtensionRetired",
    "DeviceRegistered",
    "DeviceUnregistered",
    "DeviceRegistrationExpired",
    "LineStateChanged",
    "PresenceSet",
    "DoNotDisturbChanged",
    "VoicemailBoxCreated",
    "VoicemailBoxRemoved",
    "MessageWaitingChanged",
    "CallCreated",
    "LegCreated",
    "CallAnswered",
    "CallHeld",
    "CallResumed",
    "LegPartyUpdated",
    "AttendedTransferred",
    "CallPickedUp",
    "LegEnded",
    "CallEnded",
];

impl PanelView {
    /// Folds one event. Events at or below the view's position are ignored, so applying a
    /// batch twice changes nothing.
    pub fn apply(&mut self, r: &Recorded) {
        if r.position <= self.position {
            return;
        }
        let at = r.metadata.occurred_at;
        let position = r.position;
        match &r.event {
            Event::Directory(e) => {
                if let DirectoryEvent::TenantCreated { tenant, .. } = e {
                    tenant_mut(&mut self.tenants, tenant);
                } else if let Some(tenant) = &r.metadata.tenant {
                    self.directory(tenant, e, position);
                }
            }
            Event::Extension(e) => {
                if let Some(tenant) = &r.metadata.tenant {
                    self.extension(tenant, e, position);
                }
            }
            Event::Voicemail(e) => {
                if let Some(tenant) = &r.metadata.tenant {
                    self.voicemail(tenant, e, position);
                }
            }
            Event::Call(e) => {
                if let Some(tenant) = &r.metadata.tenant {
                    self.call(tenant, e, at, position);
                }
            }
            _ => {}
        }
        self.position = position;
    }

    /// Applies `f` to the tenant, settling the counters and journal for `users` (the users
    /// whose card `f` may change).
    fn change_users(
        &mut self,
        tenant: &TenantId,
        users: Vec<UserId>,
        position: GlobalPosition,
        f: impl FnOnce(&mut TenantPanel),
    ) {
        let t = tenant_mut(&mut self.tenants, tenant);
        let before: Vec<_> = users
            .into_iter()
            .map(|u| {
                let contribution = t.contribution(&u);
                (u, contribution)
            })
            .collect();
        f(t);
        for (user, was) in before {
            let now = t.contribution(&user);
            if was != now {
                if let Some(c) = &was {
                    t.remove(c);
                }
                if let Some(c) = &now {
                    t.add(c);
                }
            }
            if let Some(e) = t.users.get_mut(&user) {
                e.changed_at = position;
            }
            self.journal.push(JournalEntry {
                position,
                tenant: tenant.clone(),
                touched: Touched::User {
                    user,
                    before: was.map(|c| c.department),
                    after: now.map(|c| c.department),
                },
            });
        }
    }

    /// Journals a change to the cards of `users` that moves no counter (their calls).
    fn mark_users(&mut self, tenant: &TenantId, users: Vec<UserId>, position: GlobalPosition) {
        let Some(t) = self.tenants.get_mut(tenant) else {
            return;
        };
        for user in users {
            let Some(e) = t.users.get_mut(&user) else {
                continue;
            };
            e.changed_at = position;
            let department = e.department.clone();
            self.journal.push(JournalEntry {
                position,
                tenant: tenant.clone(),
                touched: Touched::User {
                    user,
                    before: department.clone(),
                    after: department,
                },
            });
        }
    }

    fn touch(&mut self, tenant: &TenantId, touched: Touched, position: GlobalPosition) {
        self.journal.push(JournalEntry {
            position,
            tenant: tenant.clone(),
            touched,
        });
    }

    fn users_of_extension(&self, tenant: &TenantId, extension: &ExtensionNumber) -> Vec<UserId> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.extension_users.get(extension))
            .map(|users| users.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn directory(&mut self, tenant: &TenantId, e: &DirectoryEvent, position: GlobalPosition) {
        use DirectoryEvent as D;
        match e {
            D::DepartmentCreated { department, name }
            | D::DepartmentRenamed { department, name } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                let d = t.departments.entry(department.clone()).or_default();
                d.name = Some(name.clone());
                if matches!(e, D::DepartmentCreated { .. }) {
                    d.declared = true;
                }
                self.touch(tenant, Touched::Department(department.clone()), position);
            }
            D::DepartmentDeleted { department } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                if let Some(d) = t.departments.get_mut(department) {
                    d.declared = false;
                    if d.total == 0 {
                        t.departments.remove(department);
                    }
                }
                self.touch(tenant, Touched::Department(department.clone()), position);
            }
            D::UserCreated {
                user,
                display_name,
                extension,
                department,
                role,
                ..
            } => self.change_users(tenant, vec![user.clone()], position, |t| {
                let entry = t
                    .users
                    .entry(user.clone())
                    .or_insert_with(|| UserEntry::new(display_name));
                entry.in_directory = true;
                entry.name = display_name.clone();
                entry.department = Some(department.clone());
                entry.role = Some(*role);
                set_extension(t, user, Some(extension.clone()));
            }),
            D::UserRenamed { user, display_name } => {
                self.change_users(tenant, vec![user.clone()], position, |t| {
                    if let Some(entry) = t.users.get_mut(user) {
                        entry.name = display_name.clone();
                    }
                });
            }
            D::UserDepartmentChanged {
                user, department, ..
            } => self.change_users(tenant, vec![user.clone()], position, |t| {
                if let Some(entry) = t.users.get_mut(user) {
                    entry.department = Some(department.clone());
                }
            }),
            D::UserExtensionChanged {
                user, extension, ..
            } => self.change_users(tenant, vec![user.clone()], position, |t| {
                if t.users.contains_key(user) {
                    set_extension(t, user, Some(extension.clone()));
                }
            }),
            D::UserRoleChanged { user, role, .. } => {
                self.change_users(tenant, vec![user.clone()], position, |t| {
                    if let Some(entry) = t.users.get_mut(user) {
                        entry.role = Some(*role);
                    }
                });
            }
            // Gone from the directory: off the panel, even if its extension is not retired yet.
            D::UserDeleted { user } => {
                self.change_users(tenant, vec![user.clone()], position, |t| {
                    set_extension(t, user, None);
                    t.users.remove(user);
                })
            }
            D::CallPanelGranted {
                user, department, ..
            } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                let g = t.grants.entry(user.clone()).or_default();
                g.departments.insert(department.clone());
                g.changed_at = position;
            }
            D::CallPanelRevoked {
                user, department, ..
            } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                if let Some(g) = t.grants.get_mut(user) {
                    g.departments.remove(department);
                    g.changed_at = position;
                }
            }
            D::PresenceStateAdded {
                state,
                label,
                state_type,
                position: order,
            } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                t.presence_states.insert(
                    state.clone(),
                    PresenceStateEntry {
                        label: label.clone(),
                        state_type: *state_type,
                        order: *order,
                    },
                );
                self.presence_list_changed(tenant, state, position);
            }
            D::PresenceStateUpdated {
                state,
                label,
                state_type,
            } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                if let Some(entry) = t.presence_states.get_mut(state) {
                    entry.label = label.clone();
                    entry.state_type = *state_type;
                }
                self.presence_list_changed(tenant, state, position);
            }
            D::PresenceStateRemoved { state } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                t.presence_states.remove(state);
                self.presence_list_changed(tenant, state, position);
            }
            D::PresenceStatesReordered { order } => {
                let t = tenant_mut(&mut self.tenants, tenant);
                for (i, state) in order.iter().enumerate() {
                    if let Some(entry) = t.presence_states.get_mut(state) {
                        entry.order = u32::try_from(i).unwrap_or(u32::MAX);
                    }
                }
                self.touch(tenant, Touched::PresenceList, position);
            }
            _ => {}
        }
    }

    /// The list changed: journal it, and every card showing `state` (its label may differ).
    fn presence_list_changed(
        &mut self,
        tenant: &TenantId,
        state: &events::ids::PresenceStateId,
        position: GlobalPosition,
    ) {
        self.touch(tenant, Touched::PresenceList, position);
        let showing: Vec<UserId> = self
            .tenants
            .get(tenant)
            .map(|t| {
                t.users
                    .iter()
                    .filter(|(_, u)| {
                        u.extension
                            .as_ref()
                            .and_then(|e| t.lines.get(e))
                            .and_then(|l| l.presence.as_ref())
                            .is_some_and(|p| &p.state == state)
                    })
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        if !showing.is_empty() {
            self.change_users(tenant, showing, position, |_| {});
        }
    }

    fn extension(&mut self, tenant: &TenantId, e: &ExtensionEvent, position: GlobalPosition) {
        use ExtensionEvent as X;
        match e {
            X::ExtensionProvisioned {
                extension,
                user,
                display_name,
                department,
            } => {
                let mut users = self.users_of_extension(tenant, extension);
                users.push(user.clone());
                users.sort();
                users.dedup();
                self.change_users(tenant, users, position, |t| {
                    let entry = t
                        .users
                        .entry(user.clone())
                        .or_insert_with(|| UserEntry::new(display_name));
                    entry.provisioned = true;
                    entry.name = display_name.clone();
                    entry.department = Some(department.clone());
                    set_extension(t, user, Some(extension.clone()));
                    t.lines.entry(extension.clone()).or_default();
                });
            }
            X::ExtensionRetired { extension } => {
                let users = self.users_of_extension(tenant, extension);
                self.change_users(tenant, users.clone(), position, |t| {
                    t.lines.insert(extension.clone(), Line::default());
                    for user in &users {
                        if let Some(entry) = t.users.get_mut(user) {
                            entry.provisioned = false;
                        }
                        drop_if_gone(t, user);
                    }
                });
            }
            X::DeviceRegistered {
                extension, contact, ..
            } => self.line(tenant, extension, position, |l| {
                l.contacts.insert(*contact);
            }),
            X::DeviceUnregistered {
                extension, contact, ..
            }
            | X::DeviceRegistrationExpired {
                extension, contact, ..
            } => self.line(tenant, extension, position, |l| {
                l.contacts.remove(contact);
            }),
            X::LineStateChanged {
                extension,
                state,
                device_state,
                ..
            } => self.line(tenant, extension, position, |l| {
                l.state = *state;
                l.device_state = *device_state;
            }),
            X::PresenceSet {
                extension,
                state,
                state_type,
                message,
                ..
            } => self.line(tenant, extension, position, |l| {
                l.presence = Some(Presence {
                    state: state.clone(),
                    state_type: *state_type,
                    message: message.clone(),
                });
            }),
            X::DoNotDisturbChanged {
                extension, enabled, ..
            } => self.line(tenant, extension, position, |l| l.dnd = *enabled),
            // Forwarding, follow-me, call waiting and the per-call observations (the line state
            // that follows them is what the panel shows) change nothing here.
            _ => {}
        }
    }

    fn line(
        &mut self,
        tenant: &TenantId,
        extension: &ExtensionNumber,
        position: GlobalPosition,
        f: impl FnOnce(&mut Line),
    ) {
        let users = self.users_of_extension(tenant, extension);
        self.change_users(tenant, users, position, |t| {
            f(entry_mut(&mut t.lines, extension));
        });
    }

    fn voicemail(&mut self, tenant: &TenantId, e: &VoicemailEvent, position: GlobalPosition) {
        use VoicemailEvent as V;
        match e {
            V::VoicemailBoxCreated { mailbox, .. } => {
                let users = self.users_of_extension(tenant, mailbox);
                self.change_users(tenant, users, position, |t| {
                    t.mailboxes.entry(mailbox.clone()).or_default();
                });
            }
            V::VoicemailBoxRemoved { mailbox } => {
                let users = self.users_of_extension(tenant, mailbox);
                self.change_users(tenant, users, position, |t| {
                    t.mailboxes.remove(mailbox);
                });
            }
            V::MessageWaitingChanged {
                mailbox,
                new_messages,
                old_messages,
            } => {
                let users = self.users_of_extension(tenant, mailbox);
                self.change_users(tenant, users, position, |t| {
                    let m = entry_mut(&mut t.mailboxes, mailbox);
                    *m = Mailbox {
                        new: *new_messages,
                        old: *old_messages,
                    };
                });
            }
            // Every change to the counts is followed by a `MessageWaitingChanged`.
            _ => {}
        }
    }

    fn call(
        &mut self,
        tenant: &TenantId,
        e: &CallEvent,
        at: DateTime<Utc>,
        position: GlobalPosition,
    ) {
        use CallEvent as C;
        if let C::CallCreated {
            call,
            direction,
            caller,
            callee,
            ..
        } = e
        {
            if self.calls.contains_key(call) {
                return;
            }
            self.calls.insert(
                *call,
                LiveCall {
                    tenant: tenant.clone(),
                    direction: *direction,
                    caller: caller.clone(),
                    callee: callee.clone(),
                    created_at: at,
                    legs: Vec::new(),
                },
            );
            let departments = [&caller.department, &callee.department]
                .into_iter()
                .flatten()
                .cloned();
            tenant_mut(&mut self.tenants, tenant)
                .rate
                .record(at, departments);
            return;
        }
        let Some(call) = call_of(e) else {
            return;
        };
        let Some(live) = self.calls.get_mut(&call) else {
            return;
        };
        let tenant = live.tenant.clone();
        // Only a new party on a leg can take a user out of the call's parties.
        let before = match e {
            C::LegPartyUpdated { .. } => users_in(live),
            _ => BTreeSet::new(),
        };
        let mut ended = false;
        match e {
            C::LegCreated {
                leg,
                role,
                party,
                parent,
                ..
            } => {
                if live.leg(*leg).is_none() {
                    live.legs.push(LiveLeg {
                        id: *leg,
                        role: *role,
                        party: party.clone(),
                        parent: *parent,
                        created_at: at,
                        answered_at: None,
                        held: false,
                        ended: false,
                    });
                }
            }
            C::CallAnswered { leg, .. } => {
                if let Some(l) = live.leg_mut(*leg)
                    && !l.ended
                    && l.answered_at.is_none()
                {
                    l.answered_at = Some(at);
                }
            }
            C::CallHeld { leg, .. } | C::CallResumed { leg, .. } => {
                let held = matches!(e, C::CallHeld { .. });
                if let Some(l) = live.leg_mut(*leg)
                    && !l.ended
                {
                    l.held = held;
                }
            }
            C::LegPartyUpdated { leg, party, .. } => {
                if let Some(l) = live.leg_mut(*leg) {
                    l.party = party.clone();
                }
            }
            C::AttendedTransferred {
                target_leg,
                target,
                transferee_leg,
                ..
            } => {
                if live.leg(*target_leg).is_none() {
                    live.legs.push(LiveLeg {
                        id: *target_leg,
                        role: LegRole::Callee,
                        party: target.clone(),
                        parent: Some(*transferee_leg),
                        created_at: at,
                        answered_at: Some(at),
                        held: false,
                        ended: false,
                    });
                }
            }
            C::CallPickedUp {
                ringing_leg,
                picker_leg,
                picked_by,
                ..
            } => {
                if live.leg(*picker_leg).is_none() {
                    let parent = live.leg(*ringing_leg).and_then(|l| l.parent);
                    live.legs.push(LiveLeg {
                        id: *picker_leg,
                        role: LegRole::Callee,
                        party: picked_by.clone(),
                        parent,
                        created_at: at,
                        answered_at: None,
                        held: false,
                        ended: false,
                    });
                }
            }
            C::LegEnded { leg, .. } => {
                if let Some(l) = live.leg_mut(*leg) {
                    l.ended = true;
                    l.held = false;
                }
            }
            C::CallEnded { .. } => ended = true,
            _ => return,
        }
        let mut touched = users_in(live);
        touched.extend(before);
        let in_call = live_users_in(live);
        if ended {
            self.calls.remove(&call);
        }
        let Some(t) = self.tenants.get_mut(&tenant) else {
            return;
        };
        let mut changed = Vec::with_capacity(touched.len());
        for user in touched {
            if let Some(entry) = t.users.get_mut(&user) {
                if !ended && in_call.contains(&user) {
                    entry.calls.insert(call);
                } else {
                    entry.calls.remove(&call);
                }
                changed.push(user);
            }
        }
        // Call events never move a line or a department: the cards change, the counters not.
        self.mark_users(&tenant, changed, position);
    }
}

impl UserEntry {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            extension: None,
            department: None,
            role: None,
            in_directory: false,
            provisioned: false,
            calls: BTreeSet::new(),
            changed_at: GlobalPosition::START,
        }
    }
}

impl LiveCall {
    fn leg(&self, id: events::ids::LegId) -> Option<&LiveLeg> {
        self.legs.iter().find(|l| l.id == id)
    }

    fn leg_mut(&mut self, id: events::ids::LegId) -> Option<&mut LiveLeg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }
}

/// The tenant's panel, created on first use (without cloning the id when it exists).
fn tenant_mut<'a>(
    tenants: &'a mut std::collections::BTreeMap<TenantId, TenantPanel>,
    tenant: &TenantId,
) -> &'a mut TenantPanel {
    if !tenants.contains_key(tenant) {
        tenants.insert(tenant.clone(), TenantPanel::default());
    }
    tenants
        .get_mut(tenant)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// `map[key]`, inserted with its default on first use (without cloning the key when it exists).
fn entry_mut<'a, V: Default>(
    map: &'a mut std::collections::BTreeMap<ExtensionNumber, V>,
    key: &ExtensionNumber,
) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    map.get_mut(key)
        .unwrap_or_else(|| unreachable!("inserted above"))
}

/// Users with any leg in the call.
fn users_in(call: &LiveCall) -> BTreeSet<UserId> {
    call.legs
        .iter()
        .filter_map(|l| l.party.user.clone())
        .collect()
}

/// Users with a leg still up in the call.
fn live_users_in(call: &LiveCall) -> BTreeSet<UserId> {
    call.legs
        .iter()
        .filter(|l| !l.ended)
        .filter_map(|l| l.party.user.clone())
        .collect()
}

/// Points `user` at `extension`, keeping the extension → users index in step.
fn set_extension(t: &mut TenantPanel, user: &UserId, extension: Option<ExtensionNumber>) {
    let Some(entry) = t.users.get_mut(user) else {
        return;
    };
    let old = std::mem::replace(&mut entry.extension, extension.clone());
    if let Some(old) = old
        && let Some(users) = t.extension_users.get_mut(&old)
    {
        users.remove(user);
        if users.is_empty() {
            t.extension_users.remove(&old);
        }
    }
    if let Some(new) = extension {
        t.extension_users
            .entry(new)
            .or_default()
            .insert(user.clone());
    }
}

/// Removes a user that is neither in the directory nor provisioned any more.
fn drop_if_gone(t: &mut TenantPanel, user: &UserId) {
    if t.users
        .get(user)
        .is_some_and(|e| !e.in_directory && !e.provisioned)
    {
        set_extension(t, user, None);
        t.users.remove(user);
    }
}

/// The call a call event is about (`CallCreated` is handled before this is asked).
fn call_of(e: &CallEvent) -> Option<CallId> {
    use CallEvent as C;
    match e {
        C::LegCreated { call, .. }
        | C::CallAnswered { call, .. }
        | C::CallHeld { call, .. }
        | C::CallResumed { call, .. }
        | C::LegPartyUpdated { call, .. }
        | C::AttendedTransferred { call, .. }
        | C::CallPickedUp { call, .. }
        | C::LegEnded { call, .. }
        | C::CallEnded { call, .. } => Some(*call),
        _ => None,
    }
}

/// Whether a line counts as on a call, for the counters and the card.
pub(super) fn on_call(state: LineState) -> bool {
    matches!(state, LineState::OnCall | LineState::OnHold)
}
