//! Golden-style tests of the panel: a small tenant (Alice in sales, Bruno in support, Carla in
//! management, and a second tenant with the same department names) built from directory,
//! extension, voicemail and call events; the snapshots a sales-and-support viewer gets, as
//! JSON; the cards through a call; deltas, removals and the journal's reach; the counters
//! against a recount after every event.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use events::GlobalPosition;
use events::ids::{
    CallId, DeviceContactId, PresenceStateId, StreamId, TenantId, VoicemailMessageId,
};
use events::model::{
    CallEvent as C, CallOrigin, DeviceState, Direction, DirectoryEvent as D, Disposition,
    ExtensionEvent as X, HangupCause, HangupSide, LegRole, LineState, PresenceSource,
    PresenceStateType, UserRole, VoicemailEvent as V,
};
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::testing::{Script, alice, bruno, call_id, dept, ext, leg, number, t0, user};

fn departments(ds: &[&str]) -> BTreeSet<DepartmentId> {
    ds.iter().map(|d| dept(d)).collect()
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn contact(n: u128) -> DeviceContactId {
    DeviceContactId::from_uuid(Uuid::from_u128(0xc0_0000 + n))
}

/// The directory, three provisioned extensions, Alice and Bruno registered, a presence list.
fn office() -> Script {
    let mut s = Script::new("acme");
    let dir = s.directory();
    for (d, name) in [
        ("sales", "Sales"),
        ("support", "Support"),
        ("management", "Management"),
    ] {
        s.push(
            &dir,
            D::DepartmentCreated {
                department: dept(d),
                name: name.into(),
            },
        );
    }
    for (i, (id, label, t)) in [
        ("available", "Available", PresenceStateType::Available),
        ("lunch", "Out to lunch", PresenceStateType::Away),
        ("busy", "Busy / DND", PresenceStateType::Dnd),
    ]
    .into_iter()
    .enumerate()
    {
        s.push(
            &dir,
            D::PresenceStateAdded {
                state: PresenceStateId::parse(id).unwrap(),
                label: label.into(),
                state_type: t,
                position: i as u32,
            },
        );
    }
    for (n, name, d) in [
        ("1001", "Alice Moreau", "sales"),
        ("1006", "Bruno Lind", "support"),
        ("1011", "Carla Reyes", "management"),
    ] {
        s.push(
            &dir,
            D::UserCreated {
                user: user(n),
                display_name: name.into(),
                extension: ext(n),
                department: dept(d),
                profile: events::ids::ProfileId::parse("panel").unwrap(),
                role: UserRole::User,
                email: None,
            },
        );
        let es = s.ext_stream(n);
        s.push(
            &es,
            X::ExtensionProvisioned {
                extension: ext(n),
                user: user(n),
                display_name: name.into(),
                department: dept(d),
            },
        );
        s.push(
            &s.voicemail_stream(n),
            V::VoicemailBoxCreated {
                mailbox: ext(n),
                owner: user(n),
                department: Some(dept(d)),
            },
        );
    }
    s.push(
        &dir,
        D::CallPanelGranted {
            user: user("1001"),
            department: dept("sales"),
            by: None,
        },
    );
    for (i, n) in ["1001", "1006"].into_iter().enumerate() {
        register(&mut s, n, i as u128);
    }
    s
}

fn register(s: &mut Script, n: &str, c: u128) {
    let es = s.ext_stream(n);
    s.push(
        &es,
        X::DeviceRegistered {
            extension: ext(n),
            contact: contact(c),
            contact_uri: format!("sip:{n}@192.0.2.10:5060"),
            transport: events::model::Transport::Udp,
            source: "192.0.2.10:5060".into(),
            user_agent: None,
            expires_secs: 3600,
            expires_at: t0() + TimeDelta::hours(1),
        },
    );
    line(s, n, LineState::Idle, DeviceState::NotInUse);
}

fn line(s: &mut Script, n: &str, state: LineState, device_state: DeviceState) -> GlobalPosition {
    let es = s.ext_stream(n);
    s.push(
        &es,
        X::LineStateChanged {
            extension: ext(n),
            state,
            device_state,
            calls: Vec::new(),
        },
    )
}

fn presence(
    s: &mut Script,
    n: &str,
    state: &str,
    t: PresenceStateType,
    message: Option<&str>,
) -> GlobalPosition {
    let es = s.ext_stream(n);
    s.push(
        &es,
        X::PresenceSet {
            extension: ext(n),
            user: user(n),
            state: PresenceStateId::parse(state).unwrap(),
            state_type: t,
            message: message.map(str::to_owned),
            source: PresenceSource::User,
            by: None,
        },
    )
}

/// Applies every event, checking the counters after each.
fn build(s: &Script) -> PanelView {
    let mut view = PanelView::new();
    for r in &s.events {
        view.apply(r);
        view.verify_counters()
            .unwrap_or_else(|e| panic!("after position {}: {e}", r.position));
    }
    view
}

#[test]
fn a_viewer_sees_exactly_the_granted_departments() {
    let mut s = office();
    presence(
        &mut s,
        "1006",
        "lunch",
        PresenceStateType::Away,
        Some("back at 2"),
    );
    let vm = s.voicemail_stream("1006");
    s.push(
        &vm,
        V::VoicemailDeposited {
            mailbox: ext("1006"),
            message: VoicemailMessageId::from_uuid(Uuid::from_u128(77)),
            caller: alice(),
            call: None,
            reason: events::model::DepositReason::Direct,
            forwarded_from: None,
            duration_ms: 12_000,
            recording: events::ids::RecordingId::from_uuid(Uuid::from_u128(78)),
            folder: events::model::VoicemailFolder::Inbox,
        },
    );
    let last = s.push(
        &vm,
        V::MessageWaitingChanged {
            mailbox: ext("1006"),
            new_messages: 1,
            old_messages: 0,
        },
    );
    let view = build(&s);
    let snapshot = view.snapshot_for(&acme(), &departments(&["sales", "support"]));
    assert_eq!(snapshot.position, last);
    let got = serde_json::to_value(&snapshot).unwrap();
    let expected = json!({
        "tenant": "acme",
        "position": last.0,
        "users": [
            {
                "user": "1001", "name": "Alice Moreau", "extension": "1001", "department": "sales",
                "status": "available", "presence": null, "dnd": false, "line": "idle",
                "device_state": "not_in_use", "devices": 1, "calls": [],
                "voicemail": { "new": 0, "old": 0 }, "changed_at": 18
            },
            {
                "user": "1006", "name": "Bruno Lind", "extension": "1006", "department": "support",
                "status": "away",
                "presence": { "state": "lunch", "label": "Out to lunch", "state_type": "away", "message": "back at 2" },
                "dnd": false, "line": "idle", "device_state": "not_in_use", "devices": 1, "calls": [],
                "voicemail": { "new": 1, "old": 0 }, "changed_at": last.0
            }
        ],
        "departments": [
            { "department": "sales", "name": "Sales", "total": 1, "online": 1, "offline": 0, "on_call": 0 },
            { "department": "support", "name": "Support", "total": 1, "online": 1, "offline": 0, "on_call": 0 }
        ],
        "presence_states": [
            { "state": "available", "label": "Available", "state_type": "available" },
            { "state": "lunch", "label": "Out to lunch", "state_type": "away" },
            { "state": "busy", "label": "Busy / DND", "state_type": "dnd" }
        ]
    });
    assert_eq!(got, expected);

    let management = view.snapshot_for(&acme(), &departments(&["management"]));
    assert_eq!(management.users.len(), 1);
    assert_eq!(management.users[0].status, CardStatus::Offline);
    assert_eq!(management.departments[0].offline, 1);
    assert!(
        view.snapshot_for(&acme(), &BTreeSet::new())
            .users
            .is_empty(),
        "deny by default"
    );
    assert_eq!(
        view.grants(&acme(), &user("1001")).0,
        departments(&["sales"])
    );
}

#[test]
fn tenants_never_see_each_other() {
    let mut s = office();
    let mut other = Script::new("globex");
    // The same department and user names in another tenant.
    let dir = other.directory();
    other.push(
        &dir,
        D::UserCreated {
            user: user("1001"),
            display_name: "Someone Else".into(),
            extension: ext("1001"),
            department: dept("sales"),
            profile: events::ids::ProfileId::parse("panel").unwrap(),
            role: UserRole::User,
            email: None,
        },
    );
    let offset = s.events.len() as u64;
    for mut r in other.events {
        r.position = GlobalPosition(r.position.0 + offset);
        s.events.push(r);
    }
    let view = build(&s);
    let acme_sales = view.snapshot_for(&acme(), &departments(&["sales"]));
    assert_eq!(acme_sales.users.len(), 1);
    assert_eq!(acme_sales.users[0].name, "Alice Moreau");
    let globex = TenantId::parse("globex").unwrap();
    let globex_sales = view.snapshot_for(&globex, &departments(&["sales"]));
    assert_eq!(globex_sales.users.len(), 1);
    assert_eq!(globex_sales.users[0].name, "Someone Else");
    assert_eq!(
        globex_sales.departments[0].name, "sales",
        "never declared there"
    );
    let after_acme = GlobalPosition(s.events.len() as u64 - 1);
    let delta = view
        .deltas_since(&acme(), &departments(&["sales"]), after_acme)
        .unwrap();
    assert!(delta.is_empty(), "globex's change is not acme's: {delta:?}");
}

/// Alice calls Bruno at 10 s; Bruno answers at 15 s, puts the call on hold at 20 s.
fn calling(s: &mut Script) -> (GlobalPosition, GlobalPosition) {
    let cs = StreamId::call(call_id(1));
    s.at(10);
    s.push(
        &cs,
        C::CallCreated {
            call: call_id(1),
            direction: Direction::Internal,
            caller: alice(),
            callee: bruno(),
            dialled: number("1006"),
            origin: CallOrigin::Device,
            trunk: None,
            requested_by: None,
        },
    );
    s.push(
        &cs,
        C::LegCreated {
            call: call_id(1),
            leg: leg(1),
            role: LegRole::Caller,
            party: alice(),
            contact: Some(contact(0)),
            parent: None,
            ring_timeout_ms: None,
            voicemail: None,
        },
    );
    line(s, "1001", LineState::Calling, DeviceState::InUse);
    s.push(
        &cs,
        C::LegCreated {
            call: call_id(1),
            leg: leg(2),
            role: LegRole::Callee,
            party: bruno(),
            contact: Some(contact(1)),
            parent: Some(leg(1)),
            ring_timeout_ms: Some(30_000),
            voicemail: Some(ext("1006")),
        },
    );
    let ringing = line(s, "1006", LineState::Ringing, DeviceState::Ringing);
    s.at(15);
    s.push(
        &cs,
        C::CallAnswered {
            call: call_id(1),
            leg: leg(2),
            contact: Some(contact(1)),
        },
    );
    s.push(
        &cs,
        C::CallAnswered {
            call: call_id(1),
            leg: leg(1),
            contact: Some(contact(0)),
        },
    );
    line(s, "1001", LineState::OnCall, DeviceState::InUse);
    line(s, "1006", LineState::OnCall, DeviceState::InUse);
    s.at(20);
    s.push(
        &cs,
        C::CallHeld {
            call: call_id(1),
            leg: leg(2),
        },
    );
    let held = line(s, "1006", LineState::OnHold, DeviceState::OnHold);
    (ringing, held)
}

fn hang_up(s: &mut Script) -> GlobalPosition {
    let cs = StreamId::call(call_id(1));
    s.at(80);
    for (n, side) in [(1, HangupSide::Party), (2, HangupSide::Peer)] {
        s.push(
            &cs,
            C::LegEnded {
                call: call_id(1),
                leg: leg(n),
                cause: HangupCause::NormalClearing,
                disposition: Disposition::Answered,
                ended_by: side,
                sip_status: None,
                duration_ms: 70_000,
                billable_ms: 65_000,
            },
        );
    }
    s.push(
        &cs,
        C::CallEnded {
            call: call_id(1),
            cause: HangupCause::NormalClearing,
            disposition: Disposition::Answered,
            duration_ms: 70_000,
            talk_ms: 65_000,
        },
    );
    line(s, "1001", LineState::Idle, DeviceState::NotInUse);
    line(s, "1006", LineState::Idle, DeviceState::NotInUse)
}

#[test]
fn cards_show_active_calls_from_each_side() {
    let mut s = office();
    let (ringing, _) = calling(&mut s);
    // While Bruno's phone rings.
    let mut view = PanelView::new();
    for r in s.events.iter().take_while(|r| r.position <= ringing) {
        view.apply(r);
    }
    let a = view.card(&acme(), &user("1001")).unwrap();
    let b = view.card(&acme(), &user("1006")).unwrap();
    assert_eq!(
        (a.status, b.status),
        (CardStatus::Calling, CardStatus::Calling)
    );
    assert_eq!(
        serde_json::to_value(&a.calls).unwrap(),
        json!([{
            "call": call_id(1).to_string(), "direction": "outbound", "kind": "internal",
            "state": "calling", "peer": { "number": "1006", "name": "Bruno Lind", "extension": "1006" },
            "started_at": "2026-03-02T09:00:10Z", "answered_at": null
        }])
    );
    assert_eq!(b.calls[0].direction, CallSide::Inbound);
    assert_eq!(b.calls[0].state, ActiveCallState::Ringing);
    assert_eq!(b.calls[0].peer.name.as_deref(), Some("Alice Moreau"));

    // Answered, then held by Bruno.
    let view = build(&s);
    let a = view.card(&acme(), &user("1001")).unwrap();
    let b = view.card(&acme(), &user("1006")).unwrap();
    assert_eq!(
        (a.status, b.status),
        (CardStatus::OnCall, CardStatus::OnCall)
    );
    assert_eq!(a.calls[0].state, ActiveCallState::Talking);
    assert_eq!(b.calls[0].state, ActiveCallState::Held);
    assert_eq!(b.calls[0].answered_at, Some(t0() + TimeDelta::seconds(15)));
    assert_eq!(b.line, LineState::OnHold);
    let support = view.snapshot_for(&acme(), &departments(&["support", "sales"]));
    assert!(
        support.departments.iter().all(|d| d.on_call == 1),
        "{:?}",
        support.departments
    );

    hang_up(&mut s);
    let view = build(&s);
    for n in ["1001", "1006"] {
        let card = view.card(&acme(), &user(n)).unwrap();
        assert!(card.calls.is_empty());
        assert_eq!(card.status, CardStatus::Available);
    }
    assert!(view.calls.is_empty(), "ended calls are forgotten");
}

#[test]
fn deltas_carry_what_changed_for_the_viewer_only() {
    let mut s = office();
    let view = build(&s);
    let p = view.position();
    let sales_support = departments(&["sales", "support"]);
    assert!(
        view.deltas_since(&acme(), &sales_support, p)
            .unwrap()
            .is_empty()
    );

    let changed = presence(&mut s, "1006", "busy", PresenceStateType::Dnd, None);
    let es = s.ext_stream("1006");
    s.push(
        &es,
        X::DoNotDisturbChanged {
            extension: ext("1006"),
            enabled: true,
            source: events::model::SettingSource::PresenceRule,
            by: None,
        },
    );
    presence(&mut s, "1011", "lunch", PresenceStateType::Away, None);
    let view = build(&s);
    let delta = view.deltas_since(&acme(), &sales_support, p).unwrap();
    assert_eq!((delta.from, delta.to), (p, view.position()));
    assert_eq!(delta.users.len(), 1, "only Bruno, not Carla: {delta:?}");
    assert_eq!(delta.users[0].status, CardStatus::Busy);
    assert!(delta.users[0].dnd);
    assert_eq!(delta.users[0].changed_at, GlobalPosition(changed.0 + 1));
    assert_eq!(delta.departments.len(), 1);
    assert_eq!(delta.departments[0].department, dept("support"));
    let management = view
        .deltas_since(&acme(), &departments(&["management"]), p)
        .unwrap();
    assert_eq!(management.users.len(), 1);
    assert_eq!(management.users[0].user, user("1011"));

    // Bruno moves to management: he leaves the sales-and-support view.
    let p = view.position();
    let dir = s.directory();
    s.push(
        &dir,
        D::UserDepartmentChanged {
            user: user("1006"),
            department: dept("management"),
            previous: dept("support"),
        },
    );
    let view = build(&s);
    let delta = view.deltas_since(&acme(), &sales_support, p).unwrap();
    assert!(delta.users.is_empty());
    assert_eq!(delta.removed_users, vec![user("1006")]);
    assert_eq!(delta.departments.len(), 1);
    assert_eq!(delta.departments[0].total, 0, "support is empty now");
    let management = view
        .deltas_since(&acme(), &departments(&["management"]), p)
        .unwrap();
    assert_eq!(management.users.len(), 1);
    assert_eq!(management.departments[0].total, 2);
    assert_eq!(management.departments[0].online, 1);

    // A deleted user disappears; a relabelled presence state reaches the cards showing it.
    let p = view.position();
    s.push(&dir, D::UserDeleted { user: user("1001") });
    s.push(
        &dir,
        D::PresenceStateUpdated {
            state: PresenceStateId::parse("busy").unwrap(),
            label: "Do not disturb".into(),
            state_type: PresenceStateType::Dnd,
        },
    );
    let view = build(&s);
    let everything = departments(&["sales", "support", "management"]);
    let delta = view.deltas_since(&acme(), &everything, p).unwrap();
    assert_eq!(
        delta.removed_users,
        vec![user("1001")],
        "deleted, though still provisioned"
    );
    assert_eq!(delta.users.len(), 1);
    assert_eq!(
        delta.users[0].presence.as_ref().unwrap().label,
        "Do not disturb"
    );
    assert_eq!(
        delta.presence_states.as_ref().unwrap()[2].label,
        "Do not disturb"
    );
}

#[test]
fn administrators_are_never_cards_nor_counted() {
    let mut s = office();
    let dir = s.directory();
    // The client's administrator, in management like the demo's: a directory entry with an
    // extension number, never a panel user.
    s.push(
        &dir,
        D::UserCreated {
            user: user("admin"),
            display_name: "Acme administrator".into(),
            extension: ext("1000"),
            department: dept("management"),
            profile: events::ids::ProfileId::parse("basic").unwrap(),
            role: UserRole::ClientAdmin,
            email: None,
        },
    );
    let view = build(&s);
    let management = departments(&["management"]);
    let snapshot = view.snapshot_for(&acme(), &management);
    let users: Vec<_> = snapshot.users.iter().map(|c| c.user.clone()).collect();
    assert_eq!(
        users,
        vec![user("1011")],
        "Carla only, not the administrator"
    );
    assert_eq!(
        snapshot.departments[0].total, 1,
        "{:?}",
        snapshot.departments
    );
    assert!(
        view.card_for(&acme(), &management, &user("admin"))
            .is_none()
    );
    assert!(view.card_for(&acme(), &management, &user("1011")).is_some());
    assert!(
        view.card_for(&acme(), &departments(&["sales"]), &user("1011"))
            .is_none(),
        "card_for follows the viewer's departments"
    );

    // Made a user: on the panel from then on, through a delta; an administrator again: off.
    let p = view.position();
    s.push(
        &dir,
        D::UserRoleChanged {
            user: user("admin"),
            role: UserRole::User,
            previous: UserRole::ClientAdmin,
        },
    );
    let view = build(&s);
    let delta = view.deltas_since(&acme(), &management, p).unwrap();
    assert_eq!(delta.users.len(), 1);
    assert_eq!(delta.users[0].user, user("admin"));
    assert_eq!(delta.departments[0].total, 2);
    let p = view.position();
    s.push(
        &dir,
        D::UserRoleChanged {
            user: user("admin"),
            role: UserRole::ResellerAdmin,
            previous: UserRole::User,
        },
    );
    let view = build(&s);
    let delta = view.deltas_since(&acme(), &management, p).unwrap();
    assert!(delta.users.is_empty());
    assert_eq!(delta.removed_users, vec![user("admin")]);
    assert_eq!(delta.departments[0].total, 1);
    assert_eq!(view.snapshot_for(&acme(), &management).users.len(), 1);
}

#[test]
fn a_retired_extension_takes_its_directoryless_user_along() {
    let mut s = Script::new("acme");
    let es = s.ext_stream("2001");
    s.push(
        &es,
        X::ExtensionProvisioned {
            extension: ext("2001"),
            user: user("2001"),
            display_name: "Provisioned Only".into(),
            department: dept("sales"),
        },
    );
    register(&mut s, "2001", 9);
    let view = build(&s);
    let sales = departments(&["sales"]);
    let snapshot = view.snapshot_for(&acme(), &sales);
    assert_eq!(snapshot.users[0].name, "Provisioned Only");
    assert_eq!(snapshot.departments[0].online, 1);
    let p = view.position();
    s.push(
        &es,
        X::ExtensionRetired {
            extension: ext("2001"),
        },
    );
    let view = build(&s);
    assert!(view.snapshot_for(&acme(), &sales).users.is_empty());
    assert!(
        view.snapshot_for(&acme(), &sales).departments.is_empty(),
        "never declared, now empty"
    );
    let delta = view.deltas_since(&acme(), &sales, p).unwrap();
    assert_eq!(delta.removed_users, vec![user("2001")]);
    assert_eq!(delta.removed_departments, vec![dept("sales")]);
}

#[test]
fn the_journal_answers_only_what_it_still_holds() {
    let mut s = office();
    calling(&mut s);
    let mut view = PanelView::with_journal_capacity(4);
    for r in &s.events {
        view.apply(r);
    }
    let everything = departments(&["sales", "support", "management"]);
    assert!(
        view.deltas_since(&acme(), &everything, GlobalPosition(1))
            .is_none()
    );
    assert!(view.journal_floor() > GlobalPosition(1));
    assert!(
        view.deltas_since(&acme(), &everything, view.journal_floor())
            .is_some()
    );
    assert!(
        view.deltas_since(&acme(), &everything, GlobalPosition(view.position().0 + 1))
            .is_none(),
        "a position from the future needs a snapshot"
    );
}

#[test]
fn applying_an_event_twice_changes_nothing() {
    let mut s = office();
    calling(&mut s);
    let once = build(&s);
    let mut twice = PanelView::new();
    for r in s.events.iter().chain(s.events.iter()) {
        twice.apply(r);
    }
    assert_eq!(once.digest(), twice.digest());
}

#[test]
fn calls_per_minute_counts_calls_by_their_departments() {
    let mut s = office();
    calling(&mut s);
    let cs = StreamId::call(CallId::from_uuid(Uuid::from_u128(9)));
    s.at(70);
    s.push(
        &cs,
        C::CallCreated {
            call: CallId::from_uuid(Uuid::from_u128(9)),
            direction: Direction::Inbound,
            caller: events::model::Party::external(
                number("+4930123456"),
                None,
                events::ids::TrunkId::parse("sipgate").unwrap(),
            ),
            callee: crate::testing::carla(),
            dialled: number("1011"),
            origin: CallOrigin::Trunk,
            trunk: None,
            requested_by: None,
        },
    );
    let view = build(&s);
    let now = t0() + TimeDelta::seconds(90);
    let bars = view.calls_per_minute(&acme(), &departments(&["sales"]), now);
    assert_eq!(bars.iter().map(|b| b.calls).sum::<u32>(), 1);
    assert_eq!(bars[58].calls, 1, "Alice's call, a minute before now");
    let bars = view.calls_per_minute(&acme(), &departments(&["management", "support"]), now);
    assert_eq!((bars[58].calls, bars[59].calls), (1, 1));
    let unknown = TenantId::parse("nobody").unwrap();
    assert_eq!(
        view.calls_per_minute(&unknown, &departments(&["sales"]), now)
            .len(),
        60
    );
}

#[test]
fn events_outside_the_interest_list_change_nothing() {
    let mut s = office();
    calling(&mut s);
    let base = build(&s);
    let next = GlobalPosition(s.events.len() as u64 + 1);
    let mut checked = 0;
    for r in &crate::testing::outside_interest(PANEL_EVENTS, next, &s.directory(), 1) {
        let event_type = r.event.event_type();
        let mut applied = base.clone();
        applied.apply(r);
        let mut skipped = base.clone();
        skipped.advance_to(next);
        assert_eq!(
            applied.digest(),
            skipped.digest(),
            "{event_type} changed the panel"
        );
        assert_eq!(
            applied.journal.entries, base.journal.entries,
            "{event_type}"
        );
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}
