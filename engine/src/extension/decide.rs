//! `decide` for the extension: validation, then the events, then the line-state consequence.
//! Every command that can move the line (registrations, calls, retiring) is followed by a
//! `LineStateChanged` exactly when the derived line differs from the recorded one, computed by
//! folding the new events into a copy of the state, so the rule lives in one place.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use events::ids::{DeviceContactId, ExtensionNumber, PhoneNumber, PresenceStateId, UserId};
use events::model::{
    ExtensionCallState, ExtensionEvent, ForwardKind, PresenceRule, PresenceSource,
    PresenceStateType, SettingSource, UnregisterReason,
};

use crate::aggregate::Aggregate;

use super::MAX_CONTACTS;
use super::command::{ExtensionCommand, PresenceChoice, RegisterContact};
use super::state::{Extension, FollowMe, line_of};

/// Why an extension refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionRejection {
    #[error("the extension is not provisioned")]
    NotProvisioned,
    #[error("the extension is already provisioned as {0}")]
    AlreadyProvisioned(String),
    #[error("the extension is retired")]
    Retired,
    #[error("no registered contact {0}")]
    UnknownContact(DeviceContactId),
    #[error("the extension already has {MAX_CONTACTS} registered contacts")]
    TooManyContacts,
    #[error("a call forward cannot point at the extension itself")]
    ForwardToSelf,
    #[error("a ring time only applies to the no-answer forward")]
    RingTimeNotApplicable,
    #[error("a ring time must be at least one second, got {0} ms")]
    RingTimeTooShort(u64),
    #[error("follow-me cannot be enabled with an empty list of numbers")]
    FollowMeWithoutNumbers,
    /// Turning DND off by hand while presence is a `dnd` state would leave presence saying
    /// "do not disturb" while calls ring: presence, DND and routing must agree.
    #[error("presence is {0} (a DND state); change presence to turn DND off")]
    DndHeldByPresence(PresenceStateId),
}

pub(super) fn decide(
    ext: &Extension,
    command: &ExtensionCommand,
    now: DateTime<Utc>,
) -> Result<Vec<ExtensionEvent>, ExtensionRejection> {
    use ExtensionCommand as C;
    use ExtensionEvent as E;

    if let C::Provision {
        extension,
        user,
        display_name,
        department,
    } = command
    {
        if ext.in_service() {
            return Err(ExtensionRejection::AlreadyProvisioned(
                ext.number().map(ToString::to_string).unwrap_or_default(),
            ));
        }
        return Ok(vec![E::ExtensionProvisioned {
            extension: extension.clone(),
            user: user.clone(),
            display_name: display_name.clone(),
            department: department.clone(),
        }]);
    }
    let Some(identity) = &ext.identity else {
        return Err(ExtensionRejection::NotProvisioned);
    };
    let extension = identity.extension.clone();

    // A retired extension still hears about the calls it was in, so they end cleanly; every
    // other command needs it in service.
    if ext.retired && !matches!(command, C::CallLegStateObserved { .. }) {
        return Err(ExtensionRejection::Retired);
    }

    let events = match command {
        C::Provision { .. } => Vec::new(),
        C::Retire => vec![E::ExtensionRetired { extension }],
        C::Register(register) => register_contact(ext, register, now)?,
        C::Unregister { contact, reason } => {
            if !ext.contacts.contains_key(contact) {
                return Err(ExtensionRejection::UnknownContact(*contact));
            }
            vec![E::DeviceUnregistered {
                extension,
                contact: *contact,
                reason: *reason,
            }]
        }
        C::UnregisterAll { reason } => ext
            .contacts
            .keys()
            .map(|contact| E::DeviceUnregistered {
                extension: extension.clone(),
                contact: *contact,
                reason: *reason,
            })
            .collect(),
        C::WebSocketsClosed { source } => ext
            .contacts
            .iter()
            .filter(|(_, c)| c.transport.is_websocket())
            .filter(|(_, c)| source.as_ref().is_none_or(|s| *s == c.source))
            .map(|(contact, _)| E::DeviceUnregistered {
                extension: extension.clone(),
                contact: *contact,
                reason: UnregisterReason::ConnectionLost,
            })
            .collect(),
        C::ExpireRegistration { contact } => match ext.contacts.get(contact) {
            // Refreshed since the deadline was armed, or already gone: nothing to do.
            Some(c) if c.expires_at <= now => vec![E::DeviceRegistrationExpired {
                extension,
                contact: *contact,
            }],
            _ => Vec::new(),
        },
        C::SetPresence {
            choice,
            message,
            source,
            by,
            rules,
        } => set_presence(ext, choice, message.clone(), *source, by.clone(), rules),
        C::PanelLogin { on_login, rules } => match on_login {
            Some(choice) => set_presence(ext, choice, None, PresenceSource::LoginHook, None, rules),
            None => Vec::new(),
        },
        C::PanelLogout { on_logout, rules } => match on_logout {
            Some(choice) => {
                set_presence(ext, choice, None, PresenceSource::LogoutHook, None, rules)
            }
            None => Vec::new(),
        },
        C::SetDnd {
            enabled,
            source,
            by,
        } => {
            // DND that a `dnd` presence state holds ends with that presence (its rule, if any,
            // turns it off), never on its own.
            if let Some(p) = &ext.presence
                && !*enabled
                && ext.dnd
                && p.state_type == PresenceStateType::Dnd
            {
                return Err(ExtensionRejection::DndHeldByPresence(p.state.clone()));
            }
            dnd_change(ext, &extension, *enabled, *source, by.clone())
                .into_iter()
                .collect()
        }
        C::SetCallForward {
            kind,
            destination,
            ring_ms,
            source,
            by,
        } => set_forward(
            ext,
            &extension,
            *kind,
            destination,
            *ring_ms,
            *source,
            by.clone(),
        )?,
        C::SetFollowMe {
            settings,
            source,
            by,
        } => {
            if settings.enabled && settings.numbers.is_empty() {
                return Err(ExtensionRejection::FollowMeWithoutNumbers);
            }
            if settings.enabled && settings.ring_all_ms < 1_000 {
                return Err(ExtensionRejection::RingTimeTooShort(settings.ring_all_ms));
            }
            follow_me_change(ext, &extension, settings.clone(), *source, by.clone())
                .into_iter()
                .collect()
        }
        C::SetCallWaiting {
            enabled,
            source,
            by,
        } => {
            if ext.call_waiting == *enabled {
                Vec::new()
            } else {
                vec![E::CallWaitingChanged {
                    extension,
                    enabled: *enabled,
                    source: *source,
                    by: by.clone(),
                }]
            }
        }
        C::CallLegStateObserved { call, state } => {
            let known = ext.calls.get(call);
            if known == Some(state) || (known.is_none() && *state == ExtensionCallState::Ended) {
                Vec::new()
            } else {
                vec![E::ExtensionCallObserved {
                    extension,
                    call: *call,
                    state: *state,
                }]
            }
        }
    };
    Ok(with_line_change(ext, events, now))
}

fn register_contact(
    ext: &Extension,
    r: &RegisterContact,
    now: DateTime<Utc>,
) -> Result<Vec<ExtensionEvent>, ExtensionRejection> {
    use ExtensionEvent as E;
    let extension = ext
        .number()
        .cloned()
        .ok_or(ExtensionRejection::NotProvisioned)?;
    let existing = ext.contact_by_uri(&r.contact_uri);
    if r.expires_secs == 0 {
        return Ok(existing
            .map(|(contact, _)| E::DeviceUnregistered {
                extension,
                contact,
                reason: UnregisterReason::Requested,
            })
            .into_iter()
            .collect());
    }
    let expires_at = now + Duration::seconds(i64::from(r.expires_secs));
    match existing {
        // Only the expiry moved: the model's refresh event says exactly that.
        Some((contact, c))
            if c.transport == r.transport
                && c.source == r.source
                && c.user_agent == r.user_agent =>
        {
            Ok(vec![E::DeviceRegistrationRefreshed {
                extension,
                contact,
                expires_secs: r.expires_secs,
                expires_at,
            }])
        }
        // The same binding from elsewhere (a NAT rebinding, another transport): record it
        // whole again under its existing id, so nothing stale survives.
        Some((contact, _)) => Ok(vec![registered(extension, contact, r, expires_at)]),
        None if ext.contacts.len() >= super::MAX_CONTACTS => {
            Err(ExtensionRejection::TooManyContacts)
        }
        None => Ok(vec![registered(extension, r.contact, r, expires_at)]),
    }
}

fn registered(
    extension: ExtensionNumber,
    contact: DeviceContactId,
    r: &RegisterContact,
    expires_at: DateTime<Utc>,
) -> ExtensionEvent {
    ExtensionEvent::DeviceRegistered {
        extension,
        contact,
        contact_uri: r.contact_uri.clone(),
        transport: r.transport,
        source: r.source.clone(),
        user_agent: r.user_agent.clone(),
        expires_secs: r.expires_secs,
        expires_at,
    }
}

/// The presence change and, in the same decision, the automatic actions of the new state's
/// type, so no reader ever sees the presence without its consequence.
fn set_presence(
    ext: &Extension,
    choice: &PresenceChoice,
    message: Option<String>,
    source: PresenceSource,
    by: Option<UserId>,
    rules: &[PresenceRule],
) -> Vec<ExtensionEvent> {
    let (Some(extension), Some(user)) = (ext.number(), ext.user()) else {
        return Vec::new();
    };
    let unchanged = ext.presence.as_ref().is_some_and(|p| {
        p.state == choice.state && p.state_type == choice.state_type && p.message == message
    });
    if unchanged {
        return Vec::new();
    }
    let mut events = vec![ExtensionEvent::PresenceSet {
        extension: extension.clone(),
        user: user.clone(),
        state: choice.state.clone(),
        state_type: choice.state_type,
        message,
        source,
        by,
    }];
    if let Some(rule) = rules.iter().find(|r| r.state_type == choice.state_type) {
        if let Some(enabled) = rule.dnd {
            events.extend(dnd_change(
                ext,
                extension,
                enabled,
                SettingSource::PresenceRule,
                None,
            ));
        }
        if let Some(enabled) = rule.follow_me {
            // Enabling follow-me with nothing to follow would change nothing about routing;
            // the rule is skipped rather than recording a setting that does not act.
            if !enabled || !ext.follow_me.numbers.is_empty() {
                let settings = FollowMe {
                    enabled,
                    ..ext.follow_me.clone()
                };
                events.extend(follow_me_change(
                    ext,
                    extension,
                    settings,
                    SettingSource::PresenceRule,
                    None,
                ));
            }
        }
    }
    events
}

fn dnd_change(
    ext: &Extension,
    extension: &ExtensionNumber,
    enabled: bool,
    source: SettingSource,
    by: Option<UserId>,
) -> Option<ExtensionEvent> {
    (ext.dnd != enabled).then(|| ExtensionEvent::DoNotDisturbChanged {
        extension: extension.clone(),
        enabled,
        source,
        by,
    })
}

fn follow_me_change(
    ext: &Extension,
    extension: &ExtensionNumber,
    settings: FollowMe,
    source: SettingSource,
    by: Option<UserId>,
) -> Option<ExtensionEvent> {
    (ext.follow_me != settings).then(|| ExtensionEvent::FollowMeChanged {
        extension: extension.clone(),
        enabled: settings.enabled,
        numbers: settings.numbers,
        confirm: settings.confirm,
        caller_id_prefix: settings.caller_id_prefix,
        ring_first_ms: settings.ring_first_ms,
        ring_all_ms: settings.ring_all_ms,
        source,
        by,
    })
}

fn set_forward(
    ext: &Extension,
    extension: &ExtensionNumber,
    kind: ForwardKind,
    destination: &Option<PhoneNumber>,
    ring_ms: Option<u64>,
    source: SettingSource,
    by: Option<UserId>,
) -> Result<Vec<ExtensionEvent>, ExtensionRejection> {
    if let Some(d) = destination
        && d.as_str() == extension.as_str()
    {
        return Err(ExtensionRejection::ForwardToSelf);
    }
    let ring_ms = if destination.is_some() { ring_ms } else { None };
    if let Some(ms) = ring_ms {
        if kind != ForwardKind::NoAnswer {
            return Err(ExtensionRejection::RingTimeNotApplicable);
        }
        if ms < 1_000 {
            return Err(ExtensionRejection::RingTimeTooShort(ms));
        }
    }
    let current = match kind {
        ForwardKind::Unconditional => (ext.forwards.unconditional.clone(), None),
        ForwardKind::Busy => (ext.forwards.busy.clone(), None),
        ForwardKind::NoAnswer => ext
            .forwards
            .no_answer
            .as_ref()
            .map_or((None, None), |f| (Some(f.destination.clone()), f.ring_ms)),
    };
    if current == (destination.clone(), ring_ms) {
        return Ok(Vec::new());
    }
    Ok(vec![ExtensionEvent::CallForwardChanged {
        extension: extension.clone(),
        kind,
        destination: destination.clone(),
        ring_ms,
        source,
        by,
    }])
}

/// Appends `LineStateChanged` when the events move the derived line.
fn with_line_change(
    ext: &Extension,
    mut events: Vec<ExtensionEvent>,
    now: DateTime<Utc>,
) -> Vec<ExtensionEvent> {
    if events.is_empty() {
        return events;
    }
    // The line derives from the calls and the registrations, and is compared with the recorded
    // line: fold the events into a copy of just those (cloning the whole state, names and
    // settings included, was most of the cost of a decision). `evolve` sets each of them from
    // the event alone, so the copy ends where a full copy would. Call observations, most of the
    // traffic, touch only the calls: for them the registrations are read, not copied.
    let calls_only = events
        .iter()
        .all(|e| matches!(e, ExtensionEvent::ExtensionCallObserved { .. }));
    let mut next = Extension {
        contacts: if calls_only {
            BTreeMap::new()
        } else {
            ext.contacts.clone()
        },
        calls: ext.calls.clone(),
        line: ext.line,
        ..Extension::default()
    };
    for e in &events {
        next.evolve(e, now);
    }
    let registered = if calls_only {
        !ext.contacts.is_empty()
    } else {
        !next.contacts.is_empty()
    };
    let derived = line_of(&next.calls, registered);
    // Provisioning is the only event that sets the number; it never unsets it.
    if derived != next.line
        && let Some(extension) = next.number().or(ext.number()).cloned()
    {
        events.push(ExtensionEvent::LineStateChanged {
            extension,
            state: derived.0,
            device_state: derived.1,
            calls: next.calls.keys().copied().collect(),
        });
    }
    events
}

#[cfg(test)]
mod line_change_tests {
    use chrono::TimeZone;
    use events::ids::{CallId, DepartmentId};
    use events::model::{Transport, UnregisterReason};

    use super::*;

    /// The rule as first written: fold the events into a full copy of the state.
    fn by_full_copy(
        ext: &Extension,
        mut events: Vec<ExtensionEvent>,
        now: DateTime<Utc>,
    ) -> Vec<ExtensionEvent> {
        if events.is_empty() {
            return events;
        }
        let mut next = ext.clone();
        for e in &events {
            next.evolve(e, now);
        }
        let derived = next.derived_line();
        if derived != next.line
            && let Some(extension) = next.number().cloned()
        {
            events.push(ExtensionEvent::LineStateChanged {
                extension,
                state: derived.0,
                device_state: derived.1,
                calls: next.calls.keys().copied().collect(),
            });
        }
        events
    }

    fn parsed<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().expect("a valid id in a test")
    }

    fn register(n: u32) -> ExtensionCommand {
        ExtensionCommand::Register(RegisterContact {
            contact: parsed(&format!("00000000-0000-4000-8000-{n:012}")),
            contact_uri: format!("sip:1001@192.0.2.{n}:5060"),
            transport: Transport::Udp,
            source: format!("192.0.2.{n}:5060"),
            user_agent: Some("Yealink T54W".into()),
            expires_secs: 60,
        })
    }

    fn observed(n: u32, state: ExtensionCallState) -> ExtensionCommand {
        ExtensionCommand::CallLegStateObserved {
            call: parsed::<CallId>(&format!("00000000-0000-4000-8000-{:012}", 1000 + n)),
            state,
        }
    }

    #[test]
    fn folding_into_the_line_inputs_decides_as_folding_into_a_full_copy() {
        use ExtensionCallState as S;
        let user: UserId = parsed("1001");
        let start = Utc
            .with_ymd_and_hms(2026, 1, 5, 9, 0, 0)
            .single()
            .expect("a valid instant");
        let first_contact = parsed("00000000-0000-4000-8000-000000000001");
        let commands = [
            ExtensionCommand::Provision {
                extension: parsed("1001"),
                user: user.clone(),
                display_name: "Alice".into(),
                department: parsed::<DepartmentId>("sales"),
            },
            observed(1, S::Ringing),
            register(1),
            register(2),
            observed(1, S::Ringing),
            observed(1, S::Answered),
            observed(2, S::Ringing),
            ExtensionCommand::SetDnd {
                enabled: true,
                source: SettingSource::User,
                by: Some(user.clone()),
            },
            observed(1, S::Held),
            observed(2, S::Answered),
            observed(2, S::Ended),
            ExtensionCommand::Unregister {
                contact: first_contact,
                reason: UnregisterReason::Requested,
            },
            observed(1, S::Calling),
            ExtensionCommand::UnregisterAll {
                reason: UnregisterReason::Admin,
            },
            observed(1, S::Ended),
            register(3),
            ExtensionCommand::ExpireRegistration {
                contact: parsed("00000000-0000-4000-8000-000000000003"),
            },
            register(4),
            observed(3, S::Answered),
            ExtensionCommand::Retire,
            observed(3, S::Ended),
        ];
        let mut ext = Extension::default();
        let mut changes = 0;
        for (i, command) in commands.iter().enumerate() {
            let now = start + Duration::seconds(61 * i as i64);
            let Ok(decided) = decide(&ext, command, now) else {
                continue;
            };
            // Recompute from the events `decide` made before its line change.
            let mut made = decided.clone();
            if matches!(made.last(), Some(ExtensionEvent::LineStateChanged { .. })) {
                made.pop();
                changes += 1;
            }
            assert_eq!(
                decided,
                by_full_copy(&ext, made, now),
                "command {i}: {command:?}"
            );
            for e in &decided {
                ext.evolve(e, now);
            }
        }
        assert!(changes >= 8, "the sequence moves the line often: {changes}");
    }
}
