//! Where a call to a number of the caller's tenant goes, decided by the called extension's own
//! state ([`Extension::route_incoming`], the same facts its line and presence show): ring its
//! registered contacts, ring them and then follow-me numbers, forward to another extension
//! (unconditional, busy, offline), or decline with a status (busy, DND, offline, unknown).
//!
//! A forward is followed to the extension it names, whose own state decides again, up to
//! [`CallConfig::max_forwards`] hops; a loop or a forward to a number that is not an extension
//! of the tenant (there are no trunks yet) ends the call. The ring time an extension asks for
//! is capped by [`CallConfig::max_ring`]. Voicemail does not exist yet: where routing says
//! "voicemail", an unanswered call ends with 480.

use chrono::{DateTime, Utc};
use engine::extension::{DeclineReason, Extension, NoAnswerTarget, RingTarget, RouteDecision};
use events::ids::{DeviceContactId, ExtensionNumber, PhoneNumber, TenantId};
use events::model::{HangupCause, LegRole, Party, Transport};
use events::{LogError, StreamId};

use crate::bindings::Bindings;
use crate::config::CallConfig;

/// One registered contact to ring, and how it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reach {
    pub(crate) contact: DeviceContactId,
    pub(crate) uri: String,
    pub(crate) transport: Transport,
    /// `ip:port` its REGISTER came from.
    pub(crate) source: String,
}

/// The contacts of one extension rung together: one `Ring` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingGroup {
    pub(crate) callee: Party,
    pub(crate) role: LegRole,
    pub(crate) contacts: Vec<Reach>,
}

fn reach(ext: &Extension, targets: Vec<RingTarget>) -> Vec<Reach> {
    targets
        .into_iter()
        .map(|t| {
            let registered = ext.contacts().get(&t.contact);
            Reach {
                contact: t.contact,
                transport: registered.map_or(Transport::Udp, |c| c.transport),
                source: registered.map(|c| c.source.clone()).unwrap_or_default(),
                uri: t.contact_uri,
            }
        })
        .collect()
}

/// What happens when a ring step is not answered in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Then {
    /// The call ends (480): the aggregate's ring timeout.
    End,
    /// The no-answer forward: ring this number instead.
    Forward(PhoneNumber),
    /// Follow-me: ring these numbers too, for `ring_ms` more.
    FollowMe {
        numbers: Vec<PhoneNumber>,
        ring_ms: u64,
    },
}

/// Contacts to ring now, for how long, and what comes after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RingStep {
    pub(crate) groups: Vec<RingGroup>,
    pub(crate) ring_ms: u64,
    pub(crate) then: Then,
}

impl RingStep {
    /// The ring timeout the call aggregate arms for this step: the ring time itself when
    /// nothing follows; with a no-answer forward, `grace` more, so the edge's forward (at the
    /// ring time) comes first and the aggregate's timeout only ends a call whose forward could
    /// not ring anyone; with follow-me, the whole of both phases.
    pub(crate) fn ring_timeout_ms(&self, grace_ms: u64) -> u64 {
        match &self.then {
            Then::End => self.ring_ms,
            Then::Forward(_) => self.ring_ms.saturating_add(grace_ms),
            Then::FollowMe { ring_ms, .. } => self.ring_ms.saturating_add(*ring_ms),
        }
    }
}

/// The routing outcome for a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Routed {
    Ring(RingStep),
    Decline { cause: HangupCause, status: u16 },
}

/// What one extension's state says about a call to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hop {
    Ring(RingStep),
    /// Follow-me with nothing registered: ring its numbers at once.
    RingNumbers {
        numbers: Vec<PhoneNumber>,
        ring_ms: u64,
    },
    ForwardTo(PhoneNumber),
    Decline {
        cause: HangupCause,
        status: u16,
    },
}

/// The party an extension is, as the directory provisioned it.
pub(crate) fn party_of(ext: &Extension) -> Option<Party> {
    Some(Party::internal(
        ext.number()?.clone(),
        ext.user()?.clone(),
        ext.department()?.clone(),
        ext.display_name()?.to_owned(),
    ))
}

/// The status and cause of a call the routing declines.
pub(crate) fn decline(reason: DeclineReason) -> (HangupCause, u16) {
    let cause = match reason {
        DeclineReason::Busy | DeclineReason::DoNotDisturb => HangupCause::UserBusy,
        DeclineReason::Offline => HangupCause::SubscriberAbsent,
        DeclineReason::NotInService => HangupCause::UnallocatedNumber,
    };
    (cause, reason.sip_status())
}

/// One hop: what `ext`, rung as `role`, says at `now`.
pub(crate) fn hop(ext: &Extension, role: LegRole, now: DateTime<Utc>, config: &CallConfig) -> Hop {
    let cap = u64::try_from(config.max_ring.as_millis()).unwrap_or(u64::MAX);
    let Some(callee) = party_of(ext) else {
        let (cause, status) = decline(DeclineReason::NotInService);
        return Hop::Decline { cause, status };
    };
    match ext.route_incoming(now) {
        RouteDecision::Ring(plan) => Hop::Ring(RingStep {
            groups: vec![RingGroup {
                callee,
                role,
                contacts: reach(ext, plan.contacts),
            }],
            ring_ms: plan.ring_ms.min(cap),
            then: match plan.on_no_answer {
                NoAnswerTarget::Forward(to) => Then::Forward(to),
                NoAnswerTarget::Voicemail => Then::End,
            },
        }),
        RouteDecision::FollowMe(plan) if plan.contacts.is_empty() => Hop::RingNumbers {
            numbers: plan.numbers,
            ring_ms: plan.ring_all_ms.min(cap),
        },
        RouteDecision::FollowMe(plan) => Hop::Ring(RingStep {
            groups: vec![RingGroup {
                callee,
                role,
                contacts: reach(ext, plan.contacts),
            }],
            ring_ms: plan.ring_first_ms.min(cap),
            then: Then::FollowMe {
                numbers: plan.numbers,
                ring_ms: plan.ring_all_ms.min(cap),
            },
        }),
        RouteDecision::Forward { destination, .. } => Hop::ForwardTo(destination),
        RouteDecision::Decline { reason } => {
            let (cause, status) = decline(reason);
            Hop::Decline { cause, status }
        }
    }
}

/// Routes calls inside one tenant, reading extensions as the log holds them.
#[derive(Debug)]
pub(crate) struct Router<'a> {
    pub(crate) bindings: &'a Bindings,
    pub(crate) tenant: &'a TenantId,
    pub(crate) config: &'a CallConfig,
    pub(crate) now: DateTime<Utc>,
}

impl Router<'_> {
    /// The extension `number` names in the tenant, if it is one in service.
    pub(crate) async fn extension(
        &self,
        number: &ExtensionNumber,
    ) -> Result<Option<Extension>, LogError> {
        let snapshot = self
            .bindings
            .current(&StreamId::extension(self.tenant, number), 0)
            .await?;
        Ok(snapshot.state.in_service().then_some(snapshot.state))
    }

    async fn extension_for(&self, number: &PhoneNumber) -> Result<Option<Extension>, LogError> {
        match ExtensionNumber::parse(number.as_str()) {
            Ok(n) => self.extension(&n).await,
            Err(_) => Ok(None),
        }
    }

    /// Where a call to `number`, rung as `role`, goes, following forwards.
    pub(crate) async fn route(
        &self,
        number: &PhoneNumber,
        role: LegRole,
    ) -> Result<Routed, LogError> {
        let mut number = number.clone();
        let mut role = role;
        let mut visited: Vec<PhoneNumber> = Vec::new();
        loop {
            if visited.contains(&number) || visited.len() > usize::from(self.config.max_forwards) {
                return Ok(Routed::Decline {
                    cause: HangupCause::ExchangeRoutingError,
                    status: 482,
                });
            }
            visited.push(number.clone());
            let Some(ext) = self.extension_for(&number).await? else {
                // Reached only through a forward: the first number was checked by the caller.
                return Ok(Routed::Decline {
                    cause: HangupCause::NoRouteToDestination,
                    status: 404,
                });
            };
            match hop(&ext, role, self.now, self.config) {
                Hop::Ring(step) => return Ok(Routed::Ring(step)),
                Hop::RingNumbers { numbers, ring_ms } => {
                    let groups = self.groups_for(&numbers).await?;
                    return Ok(if groups.is_empty() {
                        let (cause, status) = decline(DeclineReason::Offline);
                        Routed::Decline { cause, status }
                    } else {
                        Routed::Ring(RingStep {
                            groups,
                            ring_ms,
                            then: Then::End,
                        })
                    });
                }
                Hop::ForwardTo(to) => {
                    number = to;
                    role = LegRole::Forward;
                }
                Hop::Decline { cause, status } => return Ok(Routed::Decline { cause, status }),
            }
        }
    }

    /// The contacts of the follow-me `numbers` that would ring now (extensions of the tenant
    /// whose own routing rings them; their own forwards are not followed), as forward legs.
    pub(crate) async fn groups_for(
        &self,
        numbers: &[PhoneNumber],
    ) -> Result<Vec<RingGroup>, LogError> {
        let mut groups = Vec::new();
        for number in numbers {
            let Some(ext) = self.extension_for(number).await? else {
                continue;
            };
            if let Hop::Ring(step) = hop(&ext, LegRole::Forward, self.now, self.config) {
                groups.extend(step.groups);
            }
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::fixtures::run;
    use engine::extension::{ExtensionCommand, FollowMe, RegisterContact};
    use events::ids::{DepartmentId, DeviceContactId, UserId};
    use events::model::{ForwardKind, SettingSource, Transport};
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        engine::testing::t0()
    }

    fn apply(ext: &mut Extension, command: ExtensionCommand) {
        run(ext, command, now());
    }

    fn extension(number: &str, registered: bool) -> Extension {
        let mut ext = Extension::default();
        apply(
            &mut ext,
            ExtensionCommand::Provision {
                extension: ExtensionNumber::parse(number).unwrap(),
                user: UserId::parse(number).unwrap(),
                display_name: format!("User {number}"),
                department: DepartmentId::parse("sales").unwrap(),
            },
        );
        if registered {
            apply(
                &mut ext,
                ExtensionCommand::Register(RegisterContact {
                    contact: DeviceContactId::parse("00000000-0000-4000-8000-000000000001")
                        .unwrap(),
                    contact_uri: format!("sip:{number}@192.0.2.1:5060"),
                    transport: Transport::Udp,
                    source: "192.0.2.1:5060".into(),
                    user_agent: None,
                    expires_secs: 3600,
                }),
            );
        }
        ext
    }

    fn config() -> CallConfig {
        CallConfig {
            max_ring: Duration::from_secs(20),
            ..CallConfig::default()
        }
    }

    fn forward(kind: ForwardKind, to: &str, ring_ms: Option<u64>) -> ExtensionCommand {
        ExtensionCommand::SetCallForward {
            kind,
            destination: Some(PhoneNumber::parse(to).unwrap()),
            ring_ms,
            source: SettingSource::User,
            by: None,
        }
    }

    #[test]
    fn an_idle_extension_rings_its_contacts_for_at_most_the_cap() {
        let ext = extension("1003", true);
        let Hop::Ring(step) = hop(&ext, LegRole::Callee, now(), &config()) else {
            panic!("rings");
        };
        assert_eq!(step.ring_ms, 20_000, "30 s asked, capped at 20 s");
        assert_eq!(step.then, Then::End);
        assert_eq!(step.ring_timeout_ms(2_000), 20_000);
        assert_eq!(step.groups.len(), 1);
        assert_eq!(step.groups[0].role, LegRole::Callee);
        assert_eq!(step.groups[0].contacts.len(), 1);
        assert_eq!(
            step.groups[0].callee.extension.as_ref().map(|e| e.as_str()),
            Some("1003")
        );
    }

    #[test]
    fn busy_dnd_and_offline_are_declined_with_their_status() {
        let mut dnd = extension("1003", true);
        apply(
            &mut dnd,
            ExtensionCommand::SetDnd {
                enabled: true,
                source: SettingSource::User,
                by: None,
            },
        );
        assert_eq!(
            hop(&dnd, LegRole::Callee, now(), &config()),
            Hop::Decline {
                cause: HangupCause::UserBusy,
                status: 486
            }
        );
        let mut busy = extension("1003", true);
        apply(
            &mut busy,
            ExtensionCommand::SetCallWaiting {
                enabled: false,
                source: SettingSource::User,
                by: None,
            },
        );
        apply(
            &mut busy,
            ExtensionCommand::CallLegStateObserved {
                call: events::ids::CallId::parse("00000000-0000-4000-8000-000000000009").unwrap(),
                state: events::model::ExtensionCallState::Answered,
            },
        );
        assert_eq!(
            hop(&busy, LegRole::Callee, now(), &config()),
            Hop::Decline {
                cause: HangupCause::UserBusy,
                status: 486
            }
        );
        assert_eq!(
            hop(&extension("1003", false), LegRole::Callee, now(), &config()),
            Hop::Decline {
                cause: HangupCause::SubscriberAbsent,
                status: 480
            }
        );
        assert_eq!(
            hop(&Extension::default(), LegRole::Callee, now(), &config()),
            Hop::Decline {
                cause: HangupCause::UnallocatedNumber,
                status: 404
            }
        );
    }

    #[test]
    fn forwards_and_follow_me_become_hops_and_steps() {
        let mut unconditional = extension("1003", true);
        apply(
            &mut unconditional,
            forward(ForwardKind::Unconditional, "1004", None),
        );
        assert_eq!(
            hop(&unconditional, LegRole::Callee, now(), &config()),
            Hop::ForwardTo(PhoneNumber::parse("1004").unwrap())
        );

        let mut no_answer = extension("1003", true);
        apply(
            &mut no_answer,
            forward(ForwardKind::NoAnswer, "1004", Some(4_000)),
        );
        let Hop::Ring(step) = hop(&no_answer, LegRole::Callee, now(), &config()) else {
            panic!("rings first");
        };
        assert_eq!(step.ring_ms, 4_000);
        assert_eq!(
            step.then,
            Then::Forward(PhoneNumber::parse("1004").unwrap())
        );
        assert_eq!(step.ring_timeout_ms(2_000), 6_000);

        let mut follow = extension("1003", true);
        apply(
            &mut follow,
            ExtensionCommand::SetFollowMe {
                settings: FollowMe {
                    enabled: true,
                    numbers: vec![PhoneNumber::parse("1005").unwrap()],
                    ring_first_ms: 5_000,
                    ring_all_ms: 10_000,
                    ..FollowMe::default()
                },
                source: SettingSource::User,
                by: None,
            },
        );
        let Hop::Ring(step) = hop(&follow, LegRole::Callee, now(), &config()) else {
            panic!("rings first");
        };
        assert_eq!(step.ring_ms, 5_000);
        assert_eq!(
            step.then,
            Then::FollowMe {
                numbers: vec![PhoneNumber::parse("1005").unwrap()],
                ring_ms: 10_000
            }
        );
        assert_eq!(step.ring_timeout_ms(2_000), 15_000);
    }
}
