//! How an incoming call to the extension must be handled, as a pure query over the same state
//! the line state and presence fold into. The order of the checks is the policy: out of service,
//! then DND, then forward unconditional, then busy (in use with call waiting off), then offline,
//! then follow-me, then ringing every contact. DND is checked before anything that could ring, so
//! a DND extension is never rung, whichever way DND was turned on.

use chrono::{DateTime, Utc};
use events::ids::{DeviceContactId, PhoneNumber};

use super::DEFAULT_RING_MS;
use super::state::Extension;

/// What to do with a new incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Ring every registered contact at once.
    Ring(RingPlan),
    /// Ring the contacts first, then the follow-me numbers, then voicemail.
    FollowMe(FollowMePlan),
    /// Send the call elsewhere without ringing the extension.
    Forward {
        destination: PhoneNumber,
        reason: ForwardReason,
    },
    /// Do not ring: play the box's `greeting` when the extension has a voicemail box, otherwise
    /// answer with `reason.sip_status()`.
    Decline { reason: DeclineReason },
}

/// Ring these contacts for `ring_ms`, then `on_no_answer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan {
    pub contacts: Vec<RingTarget>,
    pub ring_ms: u64,
    pub on_no_answer: NoAnswerTarget,
    /// The extension is already on a call: this one rings as call waiting.
    pub call_waiting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingTarget {
    pub contact: DeviceContactId,
    pub contact_uri: String,
}

/// Where an unanswered call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnswerTarget {
    Forward(PhoneNumber),
    /// The unavailable greeting of the extension's box, if it has one; else 480.
    Voicemail,
}

/// Ring the extension's contacts for `ring_first_ms` (skipped when none is registered), then
/// the numbers for `ring_all_ms`, then voicemail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMePlan {
    pub contacts: Vec<RingTarget>,
    pub ring_first_ms: u64,
    pub numbers: Vec<PhoneNumber>,
    pub ring_all_ms: u64,
    /// The answering party must press 1 to take the call.
    pub confirm: bool,
    pub caller_id_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardReason {
    Unconditional,
    Busy,
    /// No registered device: the no-answer forward applies at once.
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclineReason {
    /// On a call with call waiting off, and no busy forward.
    Busy,
    DoNotDisturb,
    /// No registered device and no forward or follow-me to reach the user otherwise.
    Offline,
    /// Not provisioned or retired.
    NotInService,
}

/// Which voicemail greeting a declined call hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailGreeting {
    Busy,
    Unavailable,
}

impl DeclineReason {
    /// The final response when there is no voicemail box to go to.
    pub const fn sip_status(self) -> u16 {
        match self {
            DeclineReason::Busy | DeclineReason::DoNotDisturb => 486,
            DeclineReason::Offline => 480,
            DeclineReason::NotInService => 404,
        }
    }

    /// The greeting to play when the extension has a box; `None`: never voicemail.
    pub const fn greeting(self) -> Option<VoicemailGreeting> {
        match self {
            DeclineReason::Busy => Some(VoicemailGreeting::Busy),
            DeclineReason::DoNotDisturb | DeclineReason::Offline => {
                Some(VoicemailGreeting::Unavailable)
            }
            DeclineReason::NotInService => None,
        }
    }
}

impl RouteDecision {
    /// Whether any device of the extension would ring.
    pub fn rings_extension(&self) -> bool {
        match self {
            RouteDecision::Ring(plan) => !plan.contacts.is_empty(),
            RouteDecision::FollowMe(plan) => !plan.contacts.is_empty(),
            RouteDecision::Forward { .. } | RouteDecision::Decline { .. } => false,
        }
    }
}

impl Extension {
    /// How an incoming call arriving at `now` must be handled. Contacts whose registration has
    /// lapsed by `now` (their expiry deadline not yet processed) are not rung.
    pub fn route_incoming(&self, now: DateTime<Utc>) -> RouteDecision {
        use RouteDecision::*;
        if !self.in_service() {
            return Decline {
                reason: DeclineReason::NotInService,
            };
        }
        if self.dnd {
            return Decline {
                reason: DeclineReason::DoNotDisturb,
            };
        }
        if let Some(destination) = &self.forwards.unconditional {
            return Forward {
                destination: destination.clone(),
                reason: ForwardReason::Unconditional,
            };
        }
        let in_use = self.in_use();
        if in_use && !self.call_waiting {
            return match &self.forwards.busy {
                Some(destination) => Forward {
                    destination: destination.clone(),
                    reason: ForwardReason::Busy,
                },
                None => Decline {
                    reason: DeclineReason::Busy,
                },
            };
        }
        let contacts: Vec<RingTarget> = self
            .contacts
            .iter()
            .filter(|(_, c)| c.expires_at > now)
            .map(|(id, c)| RingTarget {
                contact: *id,
                contact_uri: c.contact_uri.clone(),
            })
            .collect();
        let follow_me = &self.follow_me;
        if follow_me.enabled && !follow_me.numbers.is_empty() {
            let ring_first_ms = if contacts.is_empty() {
                0
            } else {
                follow_me.ring_first_ms
            };
            return FollowMe(FollowMePlan {
                contacts,
                ring_first_ms,
                numbers: follow_me.numbers.clone(),
                ring_all_ms: follow_me.ring_all_ms,
                confirm: follow_me.confirm,
                caller_id_prefix: follow_me.caller_id_prefix.clone(),
            });
        }
        if contacts.is_empty() {
            return match &self.forwards.no_answer {
                Some(f) => Forward {
                    destination: f.destination.clone(),
                    reason: ForwardReason::Offline,
                },
                None => Decline {
                    reason: DeclineReason::Offline,
                },
            };
        }
        let (ring_ms, on_no_answer) = match &self.forwards.no_answer {
            Some(f) => (
                f.ring_ms.unwrap_or(DEFAULT_RING_MS),
                NoAnswerTarget::Forward(f.destination.clone()),
            ),
            None => (DEFAULT_RING_MS, NoAnswerTarget::Voicemail),
        };
        Ring(RingPlan {
            contacts,
            ring_ms,
            on_no_answer,
            call_waiting: in_use,
        })
    }
}
