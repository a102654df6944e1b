//! Given/when/then tests of the extension: provisioning, registrations and their expiry,
//! presence with its automatic actions, the routing settings, the derived line state, and the
//! routing query, including the invariant that a DND extension is never rung.

use chrono::Duration;
use events::ids::{CallId, DeviceContactId, ExtensionNumber, PhoneNumber, PresenceStateId};
use events::model::{
    DeviceState, ExtensionCallState, ExtensionEvent as E, ForwardKind, LineState, PresenceRule,
    PresenceSource, PresenceStateType, SettingSource, Transport, UnregisterReason,
};

use super::*;
use crate::aggregate::{Aggregate, Deadline};
use crate::testing::{Scenario, given, t0};

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("a valid id in a test")
}

fn uuid_like(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn contact(n: u32) -> DeviceContactId {
    id(&uuid_like(n))
}

fn call(n: u32) -> CallId {
    id(&uuid_like(1000 + n))
}

fn ext() -> ExtensionNumber {
    id("1001")
}

fn number(s: &str) -> PhoneNumber {
    id(s)
}

fn provisioned() -> E {
    E::ExtensionProvisioned {
        extension: ext(),
        user: id("1001"),
        display_name: "Alice".into(),
        department: id("sales"),
    }
}

fn register(n: u32, uri: &str, expires_secs: u32) -> ExtensionCommand {
    ExtensionCommand::Register(RegisterContact {
        contact: contact(n),
        contact_uri: uri.into(),
        transport: Transport::Udp,
        source: "192.0.2.10:5060".into(),
        user_agent: Some("Yealink T54W".into()),
        expires_secs,
    })
}

fn registered_at(n: u32, uri: &str, expires_secs: u32, at: chrono::DateTime<chrono::Utc>) -> E {
    E::DeviceRegistered {
        extension: ext(),
        contact: contact(n),
        contact_uri: uri.into(),
        transport: Transport::Udp,
        source: "192.0.2.10:5060".into(),
        user_agent: Some("Yealink T54W".into()),
        expires_secs,
        expires_at: at + Duration::seconds(i64::from(expires_secs)),
    }
}

fn line(state: LineState, device_state: DeviceState, calls: Vec<CallId>) -> E {
    E::LineStateChanged {
        extension: ext(),
        state,
        device_state,
        calls,
    }
}

/// Provisioned with one phone registered at `t0` for an hour.
fn online() -> Vec<E> {
    vec![
        provisioned(),
        registered_at(1, "sip:1001@192.0.2.10:5060", 3600, t0()),
        line(LineState::Idle, DeviceState::NotInUse, vec![]),
    ]
}

fn choice(state: &str, state_type: PresenceStateType) -> PresenceChoice {
    PresenceChoice {
        state: id(state),
        state_type,
    }
}

fn presence_set(state: &str, state_type: PresenceStateType, source: PresenceSource) -> E {
    E::PresenceSet {
        extension: ext(),
        user: id("1001"),
        state: id::<PresenceStateId>(state),
        state_type,
        message: None,
        source,
        by: None,
    }
}

/// The rules of a user who wants DND in `dnd` states, follow-me when extended away, and both
/// off again when available.
fn rules() -> Vec<PresenceRule> {
    vec![
        PresenceRule {
            state_type: PresenceStateType::Dnd,
            dnd: Some(true),
            follow_me: None,
        },
        PresenceRule {
            state_type: PresenceStateType::ExtendedAway,
            dnd: None,
            follow_me: Some(true),
        },
        PresenceRule {
            state_type: PresenceStateType::Available,
            dnd: Some(false),
            follow_me: Some(false),
        },
    ]
}

fn set_presence(state: &str, state_type: PresenceStateType) -> ExtensionCommand {
    ExtensionCommand::SetPresence {
        choice: choice(state, state_type),
        message: None,
        source: PresenceSource::User,
        by: None,
        rules: rules(),
    }
}

fn dnd_changed(enabled: bool, source: SettingSource) -> E {
    E::DoNotDisturbChanged {
        extension: ext(),
        enabled,
        source,
        by: None,
    }
}

fn follow_me_settings(enabled: bool) -> FollowMe {
    FollowMe {
        enabled,
        numbers: vec![number("+4915112345678"), number("1002")],
        confirm: true,
        caller_id_prefix: Some("FM:".into()),
        ring_first_ms: 5_000,
        ring_all_ms: 25_000,
    }
}

fn follow_me_changed(enabled: bool, source: SettingSource) -> E {
    let s = follow_me_settings(enabled);
    E::FollowMeChanged {
        extension: ext(),
        enabled,
        numbers: s.numbers,
        confirm: s.confirm,
        caller_id_prefix: s.caller_id_prefix,
        ring_first_ms: s.ring_first_ms,
        ring_all_ms: s.ring_all_ms,
        source,
        by: None,
    }
}

fn observe(n: u32, state: ExtensionCallState) -> ExtensionCommand {
    ExtensionCommand::CallLegStateObserved {
        call: call(n),
        state,
    }
}

fn observed(n: u32, state: ExtensionCallState) -> E {
    E::ExtensionCallObserved {
        extension: ext(),
        call: call(n),
        state,
    }
}

fn set_dnd(enabled: bool) -> ExtensionCommand {
    ExtensionCommand::SetDnd {
        enabled,
        source: SettingSource::User,
        by: None,
    }
}

fn set_forward(kind: ForwardKind, to: Option<&str>, ring_ms: Option<u64>) -> ExtensionCommand {
    ExtensionCommand::SetCallForward {
        kind,
        destination: to.map(number),
        ring_ms,
        source: SettingSource::User,
        by: None,
    }
}

fn forward_changed(kind: ForwardKind, to: Option<&str>, ring_ms: Option<u64>) -> E {
    E::CallForwardChanged {
        extension: ext(),
        kind,
        destination: to.map(number),
        ring_ms,
        source: SettingSource::User,
        by: None,
    }
}

fn set_call_waiting(enabled: bool) -> ExtensionCommand {
    ExtensionCommand::SetCallWaiting {
        enabled,
        source: SettingSource::User,
        by: None,
    }
}

fn route(s: &Scenario<Extension>) -> RouteDecision {
    s.state().route_incoming(s.now())
}

// Provisioning.

#[test]
fn provisioning_brings_the_extension_into_service_once() {
    given::<Extension>([])
        .when(ExtensionCommand::Provision {
            extension: ext(),
            user: id("1001"),
            display_name: "Alice".into(),
            department: id("sales"),
        })
        .then([provisioned()])
        .when(ExtensionCommand::Provision {
            extension: ext(),
            user: id("1001"),
            display_name: "Alice".into(),
            department: id("sales"),
        })
        .then_rejected(ExtensionRejection::AlreadyProvisioned("1001".into()));
}

#[test]
fn nothing_but_provisioning_is_accepted_before_it() {
    given::<Extension>([])
        .when(set_dnd(true))
        .then_rejected(ExtensionRejection::NotProvisioned)
        .when(register(1, "sip:1001@192.0.2.10", 60))
        .then_rejected(ExtensionRejection::NotProvisioned);
}

#[test]
fn retiring_drops_registrations_and_refuses_settings_but_lets_calls_end() {
    let s = given::<Extension>(online())
        .when(observe(1, ExtensionCallState::Answered))
        .accepted()
        .when(ExtensionCommand::Retire)
        .then([E::ExtensionRetired { extension: ext() }]);
    assert!(s.state().contacts().is_empty());
    assert!(!s.state().in_service());
    let s = s
        .when(set_dnd(true))
        .then_rejected(ExtensionRejection::Retired)
        .when(observe(1, ExtensionCallState::Ended))
        .then([
            observed(1, ExtensionCallState::Ended),
            line(LineState::Offline, DeviceState::Unavailable, vec![]),
        ]);
    assert_eq!(
        route(&s),
        RouteDecision::Decline {
            reason: DeclineReason::NotInService
        }
    );
}

// Registrations.

#[test]
fn the_first_contact_brings_the_line_online_and_a_second_does_not_change_it() {
    given::<Extension>([provisioned()])
        .when(register(1, "sip:1001@192.0.2.10:5060", 3600))
        .then([
            registered_at(1, "sip:1001@192.0.2.10:5060", 3600, t0()),
            line(LineState::Idle, DeviceState::NotInUse, vec![]),
        ])
        .when(ExtensionCommand::Register(RegisterContact {
            contact: contact(2),
            contact_uri: "sip:1001@198.51.100.7:5062;transport=ws".into(),
            transport: Transport::Ws,
            source: "198.51.100.7:5062".into(),
            user_agent: None,
            expires_secs: 600,
        }))
        .then([E::DeviceRegistered {
            extension: ext(),
            contact: contact(2),
            contact_uri: "sip:1001@198.51.100.7:5062;transport=ws".into(),
            transport: Transport::Ws,
            source: "198.51.100.7:5062".into(),
            user_agent: None,
            expires_secs: 600,
            expires_at: t0() + Duration::seconds(600),
        }]);
}

#[test]
fn a_refresh_that_only_moves_the_expiry_keeps_the_binding_and_its_id() {
    let s = given::<Extension>(online())
        .after(Duration::seconds(1800))
        // The edge proposes a fresh id; the bound URI keeps the one it has.
        .when(register(9, "sip:1001@192.0.2.10:5060", 3600))
        .then([E::DeviceRegistrationRefreshed {
            extension: ext(),
            contact: contact(1),
            expires_secs: 3600,
            expires_at: t0() + Duration::seconds(1800 + 3600),
        }]);
    assert_eq!(s.state().contacts().len(), 1);
    assert_eq!(
        s.state().deadlines(),
        vec![Deadline::new(
            t0() + Duration::seconds(5400),
            ExtensionCommand::ExpireRegistration {
                contact: contact(1)
            }
        )]
    );
}

#[test]
fn the_same_binding_from_a_new_source_is_recorded_whole_under_its_id() {
    given::<Extension>(online())
        .when(ExtensionCommand::Register(RegisterContact {
            contact: contact(9),
            contact_uri: "sip:1001@192.0.2.10:5060".into(),
            transport: Transport::Udp,
            source: "192.0.2.10:40123".into(),
            user_agent: Some("Yealink T54W".into()),
            expires_secs: 3600,
        }))
        .then([E::DeviceRegistered {
            extension: ext(),
            contact: contact(1),
            contact_uri: "sip:1001@192.0.2.10:5060".into(),
            transport: Transport::Udp,
            source: "192.0.2.10:40123".into(),
            user_agent: Some("Yealink T54W".into()),
            expires_secs: 3600,
            expires_at: t0() + Duration::seconds(3600),
        }]);
}

#[test]
fn expiry_zero_unregisters_and_the_line_goes_offline() {
    given::<Extension>(online())
        .when(register(7, "sip:1001@192.0.2.10:5060", 0))
        .then([
            E::DeviceUnregistered {
                extension: ext(),
                contact: contact(1),
                reason: UnregisterReason::Requested,
            },
            line(LineState::Offline, DeviceState::Unavailable, vec![]),
        ])
        // Unregistering what is not bound is not an error for a REGISTER.
        .when(register(7, "sip:1001@192.0.2.10:5060", 0))
        .then_nothing();
}

#[test]
fn unregistering_an_unknown_contact_is_refused_and_unregister_all_drops_every_one() {
    given::<Extension>(online())
        .when(ExtensionCommand::Unregister {
            contact: contact(5),
            reason: UnregisterReason::Admin,
        })
        .then_rejected(ExtensionRejection::UnknownContact(contact(5)))
        .when(register(2, "sip:1001@192.0.2.11", 60))
        .accepted()
        .when(ExtensionCommand::UnregisterAll {
            reason: UnregisterReason::Admin,
        })
        .then([
            E::DeviceUnregistered {
                extension: ext(),
                contact: contact(1),
                reason: UnregisterReason::Admin,
            },
            E::DeviceUnregistered {
                extension: ext(),
                contact: contact(2),
                reason: UnregisterReason::Admin,
            },
            line(LineState::Offline, DeviceState::Unavailable, vec![]),
        ]);
}

#[test]
fn closed_websockets_unregister_only_what_was_bound_over_them() {
    let over_ws = |n: u32, source: &str| {
        ExtensionCommand::Register(RegisterContact {
            contact: contact(n),
            contact_uri: format!("sip:1001@b{n}.invalid;transport=ws"),
            transport: Transport::Ws,
            source: source.into(),
            user_agent: None,
            expires_secs: 600,
        })
    };
    let lost = |n: u32| E::DeviceUnregistered {
        extension: ext(),
        contact: contact(n),
        reason: UnregisterReason::ConnectionLost,
    };
    given::<Extension>(online())
        .when(over_ws(2, "127.0.0.1:40002"))
        .accepted()
        .when(over_ws(3, "127.0.0.1:40003"))
        .accepted()
        // One browser's websocket: its binding only.
        .when(ExtensionCommand::WebSocketsClosed {
            source: Some("127.0.0.1:40002".into()),
        })
        .then([lost(2)])
        .when(ExtensionCommand::WebSocketsClosed {
            source: Some("127.0.0.1:40002".into()),
        })
        .then_nothing()
        // A restart: every websocket binding, never the UDP phone's.
        .when(ExtensionCommand::WebSocketsClosed { source: None })
        .then([lost(3)])
        .when(ExtensionCommand::WebSocketsClosed { source: None })
        .then_nothing();
}

#[test]
fn a_registration_expires_only_once_its_deadline_has_passed() {
    let s = given::<Extension>(online());
    let deadline = s.state().deadlines().remove(0);
    assert_eq!(deadline.at, t0() + Duration::seconds(3600));
    s.after(Duration::seconds(3599))
        .when(deadline.command.clone())
        .then_nothing()
        .after(Duration::seconds(1))
        .when(deadline.command)
        .then([
            E::DeviceRegistrationExpired {
                extension: ext(),
                contact: contact(1),
            },
            line(LineState::Offline, DeviceState::Unavailable, vec![]),
        ]);
}

#[test]
fn an_expiry_deadline_armed_before_a_refresh_does_nothing() {
    given::<Extension>(online())
        .after(Duration::seconds(3000))
        .when(register(1, "sip:1001@192.0.2.10:5060", 3600))
        .accepted()
        .after(Duration::seconds(600))
        .when(ExtensionCommand::ExpireRegistration {
            contact: contact(1),
        })
        .then_nothing();
}

#[test]
fn the_number_of_contacts_is_bounded() {
    let mut s = given::<Extension>([provisioned()]);
    for n in 0..MAX_CONTACTS as u32 {
        s = s
            .when(register(n, &format!("sip:1001@192.0.2.{n}"), 60))
            .accepted();
    }
    s.when(register(99, "sip:1001@192.0.2.99", 60))
        .then_rejected(ExtensionRejection::TooManyContacts);
}

// Presence.

#[test]
fn a_dnd_type_state_enables_dnd_in_the_same_decision() {
    let s = given::<Extension>(online())
        .when(set_presence("busy", PresenceStateType::Dnd))
        .then([
            presence_set("busy", PresenceStateType::Dnd, PresenceSource::User),
            dnd_changed(true, SettingSource::PresenceRule),
        ])
        .when(set_presence("busy", PresenceStateType::Dnd))
        .then_nothing();
    assert!(s.state().dnd());
    assert_eq!(
        s.state().presence().map(|p| p.state_type),
        Some(PresenceStateType::Dnd)
    );
    s.when(set_presence("available", PresenceStateType::Available))
        .then([
            presence_set(
                "available",
                PresenceStateType::Available,
                PresenceSource::User,
            ),
            dnd_changed(false, SettingSource::PresenceRule),
        ]);
}

#[test]
fn a_state_type_without_a_rule_changes_nothing_but_the_presence() {
    given::<Extension>(online())
        .when(set_presence("lunch", PresenceStateType::Away))
        .then([presence_set(
            "lunch",
            PresenceStateType::Away,
            PresenceSource::User,
        )]);
}

#[test]
fn an_extended_away_state_enables_follow_me_when_there_is_a_list() {
    let mut history = online();
    history.push(follow_me_changed(false, SettingSource::User));
    given::<Extension>(history)
        .when(set_presence("vacation", PresenceStateType::ExtendedAway))
        .then([
            presence_set(
                "vacation",
                PresenceStateType::ExtendedAway,
                PresenceSource::User,
            ),
            follow_me_changed(true, SettingSource::PresenceRule),
        ])
        .when(set_presence("available", PresenceStateType::Available))
        .then([
            presence_set(
                "available",
                PresenceStateType::Available,
                PresenceSource::User,
            ),
            follow_me_changed(false, SettingSource::PresenceRule),
        ]);
}

#[test]
fn a_follow_me_rule_without_numbers_is_skipped() {
    given::<Extension>(online())
        .when(set_presence("vacation", PresenceStateType::ExtendedAway))
        .then([presence_set(
            "vacation",
            PresenceStateType::ExtendedAway,
            PresenceSource::User,
        )]);
}

#[test]
fn panel_login_and_logout_set_the_configured_states() {
    given::<Extension>(online())
        .when(ExtensionCommand::PanelLogin {
            on_login: Some(choice("available", PresenceStateType::Available)),
            rules: rules(),
        })
        .then([presence_set(
            "available",
            PresenceStateType::Available,
            PresenceSource::LoginHook,
        )])
        .when(ExtensionCommand::PanelLogout {
            on_logout: Some(choice("busy", PresenceStateType::Dnd)),
            rules: rules(),
        })
        .then([
            presence_set("busy", PresenceStateType::Dnd, PresenceSource::LogoutHook),
            dnd_changed(true, SettingSource::PresenceRule),
        ])
        .when(ExtensionCommand::PanelLogin {
            on_login: None,
            rules: rules(),
        })
        .then_nothing();
}

#[test]
fn a_presence_message_or_an_admin_setting_it_is_recorded() {
    given::<Extension>(online())
        .when(ExtensionCommand::SetPresence {
            choice: choice("meeting", PresenceStateType::Away),
            message: Some("back at 3".into()),
            source: PresenceSource::Admin,
            by: Some(id("1011")),
            rules: vec![],
        })
        .then([E::PresenceSet {
            extension: ext(),
            user: id("1001"),
            state: id("meeting"),
            state_type: PresenceStateType::Away,
            message: Some("back at 3".into()),
            source: PresenceSource::Admin,
            by: Some(id("1011")),
        }]);
}

// Routing settings.

#[test]
fn dnd_toggles_and_an_unchanged_toggle_records_nothing() {
    given::<Extension>(online())
        .when(set_dnd(true))
        .then([dnd_changed(true, SettingSource::User)])
        .when(set_dnd(true))
        .then_nothing()
        .when(set_dnd(false))
        .then([dnd_changed(false, SettingSource::User)]);
}

#[test]
fn call_forwards_are_set_cleared_and_validated() {
    given::<Extension>(online())
        .when(set_forward(
            ForwardKind::Unconditional,
            Some("+4930123456"),
            None,
        ))
        .then([forward_changed(
            ForwardKind::Unconditional,
            Some("+4930123456"),
            None,
        )])
        .when(set_forward(ForwardKind::Unconditional, None, None))
        .then([forward_changed(ForwardKind::Unconditional, None, None)])
        .when(set_forward(ForwardKind::Busy, Some("1002"), Some(5_000)))
        .then_rejected(ExtensionRejection::RingTimeNotApplicable)
        .when(set_forward(ForwardKind::NoAnswer, Some("1002"), Some(500)))
        .then_rejected(ExtensionRejection::RingTimeTooShort(500))
        .when(set_forward(ForwardKind::Busy, Some("1001"), None))
        .then_rejected(ExtensionRejection::ForwardToSelf)
        .when(set_forward(
            ForwardKind::NoAnswer,
            Some("1002"),
            Some(15_000),
        ))
        .then([forward_changed(
            ForwardKind::NoAnswer,
            Some("1002"),
            Some(15_000),
        )])
        .when(set_forward(
            ForwardKind::NoAnswer,
            Some("1002"),
            Some(15_000),
        ))
        .then_nothing();
}

#[test]
fn follow_me_is_replaced_whole_and_needs_numbers_to_be_enabled() {
    let s = given::<Extension>(online())
        .when(ExtensionCommand::SetFollowMe {
            settings: FollowMe {
                enabled: true,
                ..FollowMe::default()
            },
            source: SettingSource::User,
            by: None,
        })
        .then_rejected(ExtensionRejection::FollowMeWithoutNumbers)
        .when(ExtensionCommand::SetFollowMe {
            settings: follow_me_settings(true),
            source: SettingSource::User,
            by: None,
        })
        .then([follow_me_changed(true, SettingSource::User)]);
    assert_eq!(s.state().follow_me(), &follow_me_settings(true));
}

#[test]
fn call_waiting_is_on_by_default_and_can_be_turned_off() {
    let s = given::<Extension>(online())
        .when(set_call_waiting(true))
        .then_nothing()
        .when(set_call_waiting(false))
        .then([E::CallWaitingChanged {
            extension: ext(),
            enabled: false,
            source: SettingSource::User,
            by: None,
        }]);
    assert!(!s.state().call_waiting());
}

// Line state.

#[test]
fn observations_reported_together_are_decided_one_after_the_other() {
    use ExtensionCallState::*;
    let batch = |observed: &[(u32, ExtensionCallState)]| {
        observed
            .iter()
            .map(|(n, s)| observe(*n, *s))
            .collect::<Vec<_>>()
    };
    given::<Extension>(online())
        .when_all(batch(&[
            (1, Ringing),
            (1, Ringing),
            (1, Answered),
            (2, Ended),
            (2, Ringing),
        ]))
        .then([
            observed(1, Ringing),
            line(LineState::Ringing, DeviceState::Ringing, vec![call(1)]),
            observed(1, Answered),
            line(LineState::OnCall, DeviceState::InUse, vec![call(1)]),
            observed(2, Ringing),
            line(
                LineState::OnCall,
                DeviceState::RingInUse,
                vec![call(1), call(2)],
            ),
        ])
        .when_all(batch(&[(2, Ended), (1, Ended)]))
        .then([
            observed(2, Ended),
            line(LineState::OnCall, DeviceState::InUse, vec![call(1)]),
            observed(1, Ended),
            line(LineState::Idle, DeviceState::NotInUse, vec![]),
        ]);
}

#[test]
fn the_line_follows_the_calls_and_changes_are_recorded_once() {
    use ExtensionCallState::*;
    let s = given::<Extension>(online())
        .when(observe(1, Ringing))
        .then([
            observed(1, Ringing),
            line(LineState::Ringing, DeviceState::Ringing, vec![call(1)]),
        ])
        .when(observe(1, Ringing))
        .then_nothing()
        .when(observe(1, Answered))
        .then([
            observed(1, Answered),
            line(LineState::OnCall, DeviceState::InUse, vec![call(1)]),
        ])
        .when(observe(2, Ringing))
        .then([
            observed(2, Ringing),
            line(
                LineState::OnCall,
                DeviceState::RingInUse,
                vec![call(1), call(2)],
            ),
        ])
        .when(observe(2, Ended))
        .then([
            observed(2, Ended),
            line(LineState::OnCall, DeviceState::InUse, vec![call(1)]),
        ])
        .when(observe(1, Held))
        .then([
            observed(1, Held),
            line(LineState::OnHold, DeviceState::OnHold, vec![call(1)]),
        ])
        .when(observe(3, Calling))
        .then([
            observed(3, Calling),
            line(
                LineState::Calling,
                DeviceState::HoldInUse,
                vec![call(1), call(3)],
            ),
        ])
        .when(observe(3, Ended))
        .accepted()
        .when(observe(1, Ended))
        .then([
            observed(1, Ended),
            line(LineState::Idle, DeviceState::NotInUse, vec![]),
        ])
        .when(observe(4, Ended))
        .then_nothing();
    // A rebuilt extension derives the same line from its history.
    let rebuilt = Extension::replay(s.history());
    assert_eq!(&rebuilt, s.state());
    assert_eq!(
        rebuilt.derived_line(),
        (rebuilt.line_state(), rebuilt.device_state())
    );
}

#[test]
fn a_call_observed_while_offline_moves_the_line_from_offline() {
    given::<Extension>([provisioned()])
        .when(observe(1, ExtensionCallState::Calling))
        .then([
            observed(1, ExtensionCallState::Calling),
            line(LineState::Calling, DeviceState::InUse, vec![call(1)]),
        ])
        .when(observe(1, ExtensionCallState::Ended))
        .then([
            observed(1, ExtensionCallState::Ended),
            line(LineState::Offline, DeviceState::Unavailable, vec![]),
        ]);
}

// Routing.

fn ring_contact_1() -> Vec<RingTarget> {
    vec![RingTarget {
        contact: contact(1),
        contact_uri: "sip:1001@192.0.2.10:5060".into(),
    }]
}

#[test]
fn an_idle_extension_rings_its_contacts_then_voicemail() {
    let s = given::<Extension>(online());
    assert_eq!(
        route(&s),
        RouteDecision::Ring(RingPlan {
            contacts: ring_contact_1(),
            ring_ms: DEFAULT_RING_MS,
            on_no_answer: NoAnswerTarget::Voicemail,
            call_waiting: false,
        })
    );
    let s = s
        .when(set_forward(
            ForwardKind::NoAnswer,
            Some("1002"),
            Some(12_000),
        ))
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Ring(RingPlan {
            contacts: ring_contact_1(),
            ring_ms: 12_000,
            on_no_answer: NoAnswerTarget::Forward(number("1002")),
            call_waiting: false,
        })
    );
}

#[test]
fn an_offline_extension_forwards_or_declines() {
    let s = given::<Extension>([provisioned()]);
    assert_eq!(
        route(&s),
        RouteDecision::Decline {
            reason: DeclineReason::Offline
        }
    );
    let s = s
        .when(set_forward(
            ForwardKind::NoAnswer,
            Some("+4930123456"),
            None,
        ))
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Forward {
            destination: number("+4930123456"),
            reason: ForwardReason::Offline
        }
    );
    // A contact whose expiry passed but whose deadline has not been processed is not rung.
    let s = given::<Extension>(online()).after(Duration::seconds(3600));
    assert_eq!(
        route(&s),
        RouteDecision::Decline {
            reason: DeclineReason::Offline
        }
    );
}

#[test]
fn forward_unconditional_wins_over_everything_but_dnd() {
    let s = given::<Extension>(online())
        .when(set_forward(ForwardKind::Unconditional, Some("1005"), None))
        .accepted()
        .when(ExtensionCommand::SetFollowMe {
            settings: follow_me_settings(true),
            source: SettingSource::User,
            by: None,
        })
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Forward {
            destination: number("1005"),
            reason: ForwardReason::Unconditional
        }
    );
}

#[test]
fn call_waiting_off_and_on_a_call_is_busy() {
    let s = given::<Extension>(online())
        .when(set_call_waiting(false))
        .accepted()
        .when(observe(1, ExtensionCallState::Answered))
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Decline {
            reason: DeclineReason::Busy
        }
    );
    assert_eq!(DeclineReason::Busy.sip_status(), 486);
    assert_eq!(
        DeclineReason::Busy.greeting(),
        Some(VoicemailGreeting::Busy)
    );
    // On hold is still busy.
    let held = s
        .clone()
        .when(observe(1, ExtensionCallState::Held))
        .accepted();
    assert!(!route(&held).rings_extension());
    // With a busy forward the call goes there instead.
    let s = s
        .when(set_forward(ForwardKind::Busy, Some("1002"), None))
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Forward {
            destination: number("1002"),
            reason: ForwardReason::Busy
        }
    );
}

#[test]
fn call_waiting_on_and_on_a_call_rings_as_call_waiting() {
    let s = given::<Extension>(online())
        .when(observe(1, ExtensionCallState::Answered))
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::Ring(RingPlan {
            contacts: ring_contact_1(),
            ring_ms: DEFAULT_RING_MS,
            on_no_answer: NoAnswerTarget::Voicemail,
            call_waiting: true,
        })
    );
}

#[test]
fn follow_me_rings_the_extension_first_then_the_list() {
    let s = given::<Extension>(online())
        .when(ExtensionCommand::SetFollowMe {
            settings: follow_me_settings(true),
            source: SettingSource::User,
            by: None,
        })
        .accepted();
    let expected = FollowMePlan {
        contacts: ring_contact_1(),
        ring_first_ms: 5_000,
        numbers: vec![number("+4915112345678"), number("1002")],
        ring_all_ms: 25_000,
        confirm: true,
        caller_id_prefix: Some("FM:".into()),
    };
    assert_eq!(route(&s), RouteDecision::FollowMe(expected.clone()));
    // Offline, the list is rung at once.
    let s = s
        .when(ExtensionCommand::UnregisterAll {
            reason: UnregisterReason::Requested,
        })
        .accepted();
    assert_eq!(
        route(&s),
        RouteDecision::FollowMe(FollowMePlan {
            contacts: vec![],
            ring_first_ms: 0,
            ..expected
        })
    );
}

/// Every way of reaching DND, combined with every other setting and line situation: the
/// extension is never rung, and presence, DND and routing agree.
#[test]
fn a_dnd_extension_never_rings_whatever_the_path_to_dnd() {
    let paths: Vec<(&str, ExtensionCommand)> = vec![
        ("explicit toggle", set_dnd(true)),
        (
            "presence of type dnd",
            set_presence("busy", PresenceStateType::Dnd),
        ),
        (
            "panel logout to a dnd state",
            ExtensionCommand::PanelLogout {
                on_logout: Some(choice("busy", PresenceStateType::Dnd)),
                rules: rules(),
            },
        ),
        (
            "panel login to a dnd state",
            ExtensionCommand::PanelLogin {
                on_login: Some(choice("busy", PresenceStateType::Dnd)),
                rules: rules(),
            },
        ),
    ];
    let setups: Vec<(&str, Vec<ExtensionCommand>)> = vec![
        ("idle", vec![]),
        (
            "two contacts",
            vec![register(2, "sip:1001@192.0.2.20", 600)],
        ),
        (
            "on a call with call waiting",
            vec![observe(1, ExtensionCallState::Answered)],
        ),
        (
            "on a call without call waiting",
            vec![
                set_call_waiting(false),
                observe(1, ExtensionCallState::Answered),
            ],
        ),
        (
            "follow-me on",
            vec![ExtensionCommand::SetFollowMe {
                settings: follow_me_settings(true),
                source: SettingSource::User,
                by: None,
            }],
        ),
        (
            "no-answer and busy forwards",
            vec![
                set_forward(ForwardKind::NoAnswer, Some("1002"), None),
                set_forward(ForwardKind::Busy, Some("1003"), None),
            ],
        ),
    ];
    for (setup_name, setup) in &setups {
        for (path_name, path) in &paths {
            let mut s = given::<Extension>(online());
            for command in setup {
                s = s.when(command.clone()).accepted();
            }
            s = s.when(path.clone()).accepted();
            let decision = route(&s);
            assert!(s.state().dnd(), "{setup_name} / {path_name}: DND is off");
            assert_eq!(
                decision,
                RouteDecision::Decline {
                    reason: DeclineReason::DoNotDisturb
                },
                "{setup_name} / {path_name}"
            );
            assert!(!decision.rings_extension());
            // A rebuilt extension routes the same way.
            let rebuilt = Extension::replay(s.history());
            assert_eq!(rebuilt.route_incoming(s.now()), decision);
        }
    }
}

#[test]
fn dnd_held_by_a_dnd_presence_cannot_be_turned_off_by_hand() {
    let s = given::<Extension>(online())
        .when(set_presence("busy", PresenceStateType::Dnd))
        .then([
            presence_set("busy", PresenceStateType::Dnd, PresenceSource::User),
            dnd_changed(true, SettingSource::PresenceRule),
        ])
        .when(set_dnd(false))
        .then_rejected(ExtensionRejection::DndHeldByPresence(
            id::<PresenceStateId>("busy"),
        ))
        // Turning it on again, or off through presence, is fine.
        .when(set_dnd(true))
        .then_nothing();
    assert_eq!(
        ExtensionRejection::DndHeldByPresence(id::<PresenceStateId>("busy")).to_string(),
        "presence is busy (a DND state); change presence to turn DND off"
    );
    // Presence, DND and routing still agree: nothing rings.
    assert!(s.state().dnd());
    assert_eq!(
        route(&s),
        RouteDecision::Decline {
            reason: DeclineReason::DoNotDisturb
        }
    );
    let s = s
        .when(set_presence("available", PresenceStateType::Available))
        .then([
            presence_set(
                "available",
                PresenceStateType::Available,
                PresenceSource::User,
            ),
            dnd_changed(false, SettingSource::PresenceRule),
        ]);
    assert!(matches!(route(&s), RouteDecision::Ring(_)));
    // Out of the DND state the toggle is the user's again.
    s.when(set_dnd(true))
        .then([dnd_changed(true, SettingSource::User)])
        .when(set_dnd(false))
        .then([dnd_changed(false, SettingSource::User)]);
}

#[test]
fn leaving_a_dnd_presence_rings_again() {
    let s = given::<Extension>(online())
        .when(set_presence("busy", PresenceStateType::Dnd))
        .accepted()
        .when(set_presence("available", PresenceStateType::Available))
        .accepted();
    assert!(matches!(route(&s), RouteDecision::Ring(_)));
}
