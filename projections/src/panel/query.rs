//! The panel's read side: the cards, department summaries, snapshots and deltas the websocket
//! layer sends. Every query names one tenant and the departments the viewer may watch; nothing
//! outside them is returned (a user with no department is in nobody's view), and an empty set
//! sees nothing.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::ids::{
    CallId, DepartmentId, ExtensionNumber, PhoneNumber, PresenceStateId, TenantId, UserId,
};
use events::model::{DeviceState, Direction, LegRole, LineState, Party, PresenceStateType};
use serde::Serialize;

use super::{LiveCall, LiveLeg, PanelView, TenantPanel, Touched, UserEntry};

/// One user's card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCard {
    pub user: UserId,
    pub name: String,
    pub extension: Option<ExtensionNumber>,
    pub department: Option<DepartmentId>,
    /// What the card's status icon shows.
    pub status: CardStatus,
    pub presence: Option<PresenceView>,
    pub dnd: bool,
    pub line: LineState,
    pub device_state: DeviceState,
    /// Registered contacts (devices) of the extension.
    pub devices: u32,
    /// Calls in progress, oldest first.
    pub calls: Vec<ActiveCall>,
    /// `None`: the user has no voicemail box.
    pub voicemail: Option<VoicemailCount>,
    /// Position of the last event that changed this card.
    pub changed_at: GlobalPosition,
}

/// The status icon of a card: its calls first (one talking or held: on a call; otherwise any:
/// calling), then an offline line, then the presence the user chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// Idle, with an available (or chat) presence or none.
    Available,
    /// Idle, with an away, extended-away or unavailable presence (the presence state tells
    /// "be right back" from "out to lunch").
    Away,
    /// Idle, with DND on or a DND presence.
    Busy,
    /// Ringing, or calling out and not answered yet.
    Calling,
    /// On a call (or holding one).
    OnCall,
    /// No registered device.
    Offline,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceView {
    pub state: PresenceStateId,
    /// The label from the tenant's presence-state list (the state id if it is not listed).
    pub label: String,
    pub state_type: PresenceStateType,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VoicemailCount {
    /// Unread messages.
    pub new: u32,
    /// Read messages still kept.
    pub old: u32,
}

/// Which way a call goes, seen from the card's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallSide {
    /// Someone called the user.
    Inbound,
    /// The user called.
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveCallState {
    /// The user's phone is ringing.
    Ringing,
    /// The user called and nobody answered yet.
    Calling,
    Talking,
    /// The user put the call on hold.
    Held,
}

/// The other side of an active call, as presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub number: Option<PhoneNumber>,
    pub name: Option<String>,
    pub extension: Option<ExtensionNumber>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveCall {
    pub call: CallId,
    pub direction: CallSide,
    /// The call's direction across the system boundary (inbound, outbound, internal).
    pub kind: Direction,
    pub state: ActiveCallState,
    pub peer: Peer,
    /// When the user's leg began (ringing or calling).
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
}

/// A department's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepartmentSummary {
    pub department: DepartmentId,
    /// Its name (the id when it was never declared with one).
    pub name: String,
    pub total: u32,
    pub online: u32,
    pub offline: u32,
    pub on_call: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PresenceStateInfo {
    pub state: PresenceStateId,
    pub label: String,
    pub state_type: PresenceStateType,
}

/// Everything one viewer may see, as of `position`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PanelSnapshot {
    pub tenant: TenantId,
    pub position: GlobalPosition,
    /// By user id.
    pub users: Vec<UserCard>,
    pub departments: Vec<DepartmentSummary>,
    /// The tenant's presence-state list, in its order.
    pub presence_states: Vec<PresenceStateInfo>,
}

/// What changed for one viewer after `from`, as of `to`. Applying it to the snapshot (or the
/// delta chain) at `from` gives the snapshot at `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PanelDelta {
    pub tenant: TenantId,
    pub from: GlobalPosition,
    pub to: GlobalPosition,
    /// Cards that changed or came into view: replace them whole.
    pub users: Vec<UserCard>,
    /// Cards that left the view (deleted, or moved to a department the viewer may not watch).
    pub removed_users: Vec<UserId>,
    pub departments: Vec<DepartmentSummary>,
    pub removed_departments: Vec<DepartmentId>,
    /// The whole presence-state list, when it changed.
    pub presence_states: Option<Vec<PresenceStateInfo>>,
}

impl PanelDelta {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.removed_users.is_empty()
            && self.departments.is_empty()
            && self.removed_departments.is_empty()
            && self.presence_states.is_none()
    }
}

impl PanelView {
    /// Every card and department of `tenant` in `departments`, with the position they reflect.
    pub fn snapshot_for(
        &self,
        tenant: &TenantId,
        departments: &BTreeSet<DepartmentId>,
    ) -> PanelSnapshot {
        let Some(t) = self.tenants.get(tenant) else {
            return PanelSnapshot {
                tenant: tenant.clone(),
                position: self.position,
                users: Vec::new(),
                departments: Vec::new(),
                presence_states: Vec::new(),
            };
        };
        let users = t
            .users
            .iter()
            .filter(|(_, e)| visible(e, departments))
            .map(|(id, e)| self.render(t, id, e))
            .collect();
        let departments = t
            .departments
            .keys()
            .filter(|d| departments.contains(*d))
            .filter_map(|d| summary(t, d))
            .collect();
        PanelSnapshot {
            tenant: tenant.clone(),
            position: self.position,
            users,
            departments,
            presence_states: presence_list(t),
        }
    }

    /// What changed for a viewer of `departments` after `after`, or `None` if the journal no
    /// longer reaches back that far (or `after` is beyond the view): send a snapshot instead.
    pub fn deltas_since(
        &self,
        tenant: &TenantId,
        departments: &BTreeSet<DepartmentId>,
        after: GlobalPosition,
    ) -> Option<PanelDelta> {
        if after > self.position || after < self.journal.floor {
            return None;
        }
        let entries = &self.journal.entries;
        let start = entries.partition_point(|e| e.position <= after);
        let mut users: BTreeMap<&UserId, bool> = BTreeMap::new();
        let mut touched_departments: BTreeSet<&DepartmentId> = BTreeSet::new();
        let mut presence_changed = false;
        for entry in entries.range(start..) {
            if &entry.tenant != tenant {
                continue;
            }
            match &entry.touched {
                Touched::User {
                    user,
                    before,
                    after,
                } => {
                    let was_visible = [before, after]
                        .into_iter()
                        .flatten()
                        .any(|d| departments.contains(d));
                    *users.entry(user).or_default() |= was_visible;
                    touched_departments.extend(before.iter().chain(after.iter()));
                }
                Touched::Department(d) => {
                    touched_departments.insert(d);
                }
                Touched::PresenceList => presence_changed = true,
            }
        }
        let t = self.tenants.get(tenant);
        let mut delta = PanelDelta {
            tenant: tenant.clone(),
            from: after,
            to: self.position,
            users: Vec::new(),
            removed_users: Vec::new(),
            departments: Vec::new(),
            removed_departments: Vec::new(),
            presence_states: None,
        };
        for (user, seen_visible) in users {
            match t.and_then(|t| t.users.get(user).map(|e| (t, e))) {
                Some((t, e)) if visible(e, departments) => {
                    delta.users.push(self.render(t, user, e))
                }
                _ if seen_visible => delta.removed_users.push(user.clone()),
                _ => {}
            }
        }
        for d in touched_departments {
            if !departments.contains(d) {
                continue;
            }
            match t.and_then(|t| summary(t, d)) {
                Some(s) => delta.departments.push(s),
                None => delta.removed_departments.push(d.clone()),
            }
        }
        if presence_changed {
            delta.presence_states = Some(t.map(presence_list).unwrap_or_default());
        }
        Some(delta)
    }

    /// One user's card, whatever their department (for the user's own view of themself).
    pub fn card(&self, tenant: &TenantId, user: &UserId) -> Option<UserCard> {
        let t = self.tenants.get(tenant)?;
        let e = t.users.get(user)?;
        Some(self.render(t, user, e))
    }

    /// `user`'s card if a viewer of `departments` may see it (the same rule as snapshots and
    /// deltas); `None` otherwise, whether or not the user exists.
    pub fn card_for(
        &self,
        tenant: &TenantId,
        departments: &BTreeSet<DepartmentId>,
        user: &UserId,
    ) -> Option<UserCard> {
        let t = self.tenants.get(tenant)?;
        let e = t.users.get(user).filter(|e| visible(e, departments))?;
        Some(self.render(t, user, e))
    }

    /// How many users of `tenant` the view knows, over all departments.
    pub fn user_count(&self, tenant: &TenantId) -> usize {
        self.tenants.get(tenant).map_or(0, |t| t.users.len())
    }

    /// Every department of `tenant` the view knows (declared or with users), for
    /// administrators choosing grants. Not filtered: do not send it to a panel user.
    pub fn all_departments(&self, tenant: &TenantId) -> Vec<DepartmentSummary> {
        self.tenants.get(tenant).map_or_else(Vec::new, |t| {
            t.departments.keys().filter_map(|d| summary(t, d)).collect()
        })
    }

    fn render(&self, t: &TenantPanel, user: &UserId, e: &UserEntry) -> UserCard {
        let line = e.extension.as_ref().and_then(|x| t.lines.get(x));
        let presence = line
            .and_then(|l| l.presence.as_ref())
            .map(|p| PresenceView {
                state: p.state.clone(),
                label: t
                    .presence_states
                    .get(&p.state)
                    .map_or_else(|| p.state.to_string(), |s| s.label.clone()),
                state_type: p.state_type,
                message: p.message.clone(),
            });
        let dnd = line.is_some_and(|l| l.dnd);
        let state = line.map_or(LineState::Offline, |l| l.state);
        let mut calls: Vec<ActiveCall> = e
            .calls
            .iter()
            .filter_map(|c| {
                self.calls
                    .get(c)
                    .and_then(|live| active_call(*c, live, user))
            })
            .collect();
        calls.sort_by_key(|a| (a.started_at, a.call));
        // The calls decide the icon while there are any: the line state comes from the
        // extension's stream, which learns of a call a few events after the call's own stream,
        // and the card must never show "available" beside a ringing call (nor "on a call" once
        // the call has ended).
        let status = if calls
            .iter()
            .any(|c| matches!(c.state, ActiveCallState::Talking | ActiveCallState::Held))
        {
            CardStatus::OnCall
        } else if !calls.is_empty() {
            CardStatus::Calling
        } else if state == LineState::Offline {
            CardStatus::Offline
        } else {
            match presence.as_ref().map(|p| p.state_type) {
                _ if dnd => CardStatus::Busy,
                Some(PresenceStateType::Dnd) => CardStatus::Busy,
                Some(
                    PresenceStateType::Away
                    | PresenceStateType::ExtendedAway
                    | PresenceStateType::Unavailable,
                ) => CardStatus::Away,
                Some(PresenceStateType::Available | PresenceStateType::Chat) | None => {
                    CardStatus::Available
                }
            }
        };
        UserCard {
            user: user.clone(),
            name: e.name.clone(),
            extension: e.extension.clone(),
            department: e.department.clone(),
            status,
            presence,
            dnd,
            line: state,
            device_state: line.map_or(DeviceState::Unavailable, |l| l.device_state),
            devices: line.map_or(0, |l| u32::try_from(l.contacts.len()).unwrap_or(u32::MAX)),
            calls,
            voicemail: e
                .extension
                .as_ref()
                .and_then(|x| t.mailboxes.get(x))
                .map(|m| VoicemailCount {
                    new: m.new,
                    old: m.old,
                }),
            changed_at: e.changed_at,
        }
    }
}

/// Whether a viewer of `departments` sees `e`'s card (administrators' accounts: never).
fn visible(e: &UserEntry, departments: &BTreeSet<DepartmentId>) -> bool {
    e.panel_department()
        .is_some_and(|d| departments.contains(d))
}

fn summary(t: &TenantPanel, d: &DepartmentId) -> Option<DepartmentSummary> {
    let entry = t.departments.get(d)?;
    Some(DepartmentSummary {
        department: d.clone(),
        name: entry.name.clone().unwrap_or_else(|| d.to_string()),
        total: entry.total,
        online: entry.online,
        offline: entry.total.saturating_sub(entry.online),
        on_call: entry.on_call,
    })
}

fn presence_list(t: &TenantPanel) -> Vec<PresenceStateInfo> {
    let mut list: Vec<_> = t.presence_states.iter().collect();
    list.sort_by(|a, b| (a.1.order, a.0).cmp(&(b.1.order, b.0)));
    list.into_iter()
        .map(|(id, s)| PresenceStateInfo {
            state: id.clone(),
            label: s.label.clone(),
            state_type: s.state_type,
        })
        .collect()
}

/// The user's part in a call in progress, from their most active live leg.
fn active_call(call: CallId, live: &LiveCall, user: &UserId) -> Option<ActiveCall> {
    let mine = |l: &&LiveLeg| !l.ended && l.party.user.as_ref() == Some(user);
    let rank = |l: &LiveLeg| match (l.answered_at.is_some(), l.held, l.role) {
        (true, false, _) => 3,
        (true, true, _) => 2,
        (false, _, LegRole::Caller) => 1,
        (false, _, _) => 0,
    };
    let best = live.legs.iter().filter(mine).max_by_key(|l| rank(l))?;
    let outbound = live
        .legs
        .iter()
        .filter(mine)
        .any(|l| l.role == LegRole::Caller);
    let state = match rank(best) {
        3 => ActiveCallState::Talking,
        2 => ActiveCallState::Held,
        1 => ActiveCallState::Calling,
        _ => ActiveCallState::Ringing,
    };
    let talking_to = best.answered_at.and(
        live.legs
            .iter()
            .find(|l| !l.ended && l.answered_at.is_some() && l.party.user.as_ref() != Some(user)),
    );
    let peer: &Party = match talking_to {
        Some(l) => &l.party,
        None if best.role == LegRole::Caller => &live.callee,
        None => best
            .parent
            .and_then(|p| live.legs.iter().find(|l| l.id == p))
            .map_or(&live.caller, |l| &l.party),
    };
    Some(ActiveCall {
        call,
        direction: if outbound {
            CallSide::Outbound
        } else {
            CallSide::Inbound
        },
        kind: live.direction,
        state,
        peer: Peer {
            number: peer.number.clone(),
            name: peer.name.clone(),
            extension: peer.extension.clone(),
        },
        started_at: best.created_at,
        answered_at: best.answered_at,
    })
}
