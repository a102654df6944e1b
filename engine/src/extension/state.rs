//! The extension's state, folded from its events only, and the line state derived from it.
//! `evolve` never fails: an event that does not fit (a refresh of an unknown contact) is
//! ignored, because it was accepted once and history wins.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::ids::{CallId, DepartmentId, DeviceContactId, ExtensionNumber, PhoneNumber, UserId};
use events::model::{
    DeviceState, ExtensionCallState, ExtensionEvent, ForwardKind, LineState, PresenceStateType,
    Transport,
};

use crate::aggregate::{Aggregate, Deadline};

use super::command::ExtensionCommand;
use super::decide::{self, ExtensionRejection};

/// One extension. `Default` is the state before `ExtensionProvisioned`.
#[derive(Debug, Clone, PartialEq)]
pub struct Extension {
    pub(super) identity: Option<Identity>,
    pub(super) retired: bool,
    pub(super) contacts: BTreeMap<DeviceContactId, Contact>,
    /// Calls the extension is part of, with its part in each; ended calls are removed.
    pub(super) calls: BTreeMap<CallId, ExtensionCallState>,
    /// The line state as last recorded by `LineStateChanged`.
    pub(super) line: (LineState, DeviceState),
    pub(super) presence: Option<Presence>,
    pub(super) dnd: bool,
    pub(super) forwards: Forwards,
    pub(super) follow_me: FollowMe,
    pub(super) call_waiting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) extension: ExtensionNumber,
    pub(super) user: UserId,
    pub(super) display_name: String,
    pub(super) department: DepartmentId,
}

/// One registered binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub contact_uri: String,
    pub transport: Transport,
    pub source: String,
    pub user_agent: Option<String>,
    pub expires_secs: u32,
    pub expires_at: DateTime<Utc>,
}

/// The presence the user shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    pub state: events::ids::PresenceStateId,
    pub state_type: PresenceStateType,
    pub message: Option<String>,
}

/// The three kinds of call forward; `None` is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwards {
    pub unconditional: Option<PhoneNumber>,
    pub busy: Option<PhoneNumber>,
    pub no_answer: Option<NoAnswerForward>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAnswerForward {
    pub destination: PhoneNumber,
    /// How long the extension rings first; absent: [`super::DEFAULT_RING_MS`].
    pub ring_ms: Option<u64>,
}

/// Follow-me settings, as `FollowMeChanged` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowMe {
    pub enabled: bool,
    pub numbers: Vec<PhoneNumber>,
    pub confirm: bool,
    pub caller_id_prefix: Option<String>,
    pub ring_first_ms: u64,
    pub ring_all_ms: u64,
}

impl Default for FollowMe {
    /// FreePBX's defaults: ring the extension 7 s, then the list 20 s.
    fn default() -> Self {
        Self {
            enabled: false,
            numbers: Vec::new(),
            confirm: false,
            caller_id_prefix: None,
            ring_first_ms: 7_000,
            ring_all_ms: 20_000,
        }
    }
}

impl Default for Extension {
    fn default() -> Self {
        Self {
            identity: None,
            retired: false,
            contacts: BTreeMap::new(),
            calls: BTreeMap::new(),
            line: (LineState::Offline, DeviceState::Unavailable),
            presence: None,
            dnd: false,
            forwards: Forwards::default(),
            follow_me: FollowMe::default(),
            // Call waiting is on until someone turns it off, as on every PBX.
            call_waiting: true,
        }
    }
}

impl Extension {
    pub fn number(&self) -> Option<&ExtensionNumber> {
        self.identity.as_ref().map(|i| &i.extension)
    }
    pub fn user(&self) -> Option<&UserId> {
        self.identity.as_ref().map(|i| &i.user)
    }
    pub fn display_name(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.display_name.as_str())
    }
    pub fn department(&self) -> Option<&DepartmentId> {
        self.identity.as_ref().map(|i| &i.department)
    }
    /// Provisioned and not retired.
    pub fn in_service(&self) -> bool {
        self.identity.is_some() && !self.retired
    }
    pub fn contacts(&self) -> &BTreeMap<DeviceContactId, Contact> {
        &self.contacts
    }
    pub fn calls(&self) -> &BTreeMap<CallId, ExtensionCallState> {
        &self.calls
    }
    pub fn line_state(&self) -> LineState {
        self.line.0
    }
    pub fn device_state(&self) -> DeviceState {
        self.line.1
    }
    pub fn presence(&self) -> Option<&Presence> {
        self.presence.as_ref()
    }
    pub fn dnd(&self) -> bool {
        self.dnd
    }
    pub fn forwards(&self) -> &Forwards {
        &self.forwards
    }
    pub fn follow_me(&self) -> &FollowMe {
        &self.follow_me
    }
    pub fn call_waiting(&self) -> bool {
        self.call_waiting
    }

    /// The line state the registrations and calls imply, in panel and device-state terms.
    pub fn derived_line(&self) -> (LineState, DeviceState) {
        line_of(&self.calls, !self.contacts.is_empty())
    }

    /// Busy for a new call: talking, on hold or placing a call.
    pub fn in_use(&self) -> bool {
        self.calls.values().any(|c| {
            matches!(
                c,
                ExtensionCallState::Answered
                    | ExtensionCallState::Held
                    | ExtensionCallState::Calling
            )
        })
    }

    pub(super) fn contact_by_uri(&self, uri: &str) -> Option<(DeviceContactId, &Contact)> {
        self.contacts
            .iter()
            .find(|(_, c)| c.contact_uri == uri)
            .map(|(id, c)| (*id, c))
    }
}

/// The line state calls and registrations imply: what `Extension::derived_line` answers for an
/// extension with these calls, registered or not.
pub(super) fn line_of(
    calls: &BTreeMap<CallId, ExtensionCallState>,
    registered: bool,
) -> (LineState, DeviceState) {
    let count = |s| calls.values().filter(|c| **c == s).count();
    let answered = count(ExtensionCallState::Answered);
    let held = count(ExtensionCallState::Held);
    let ringing = count(ExtensionCallState::Ringing);
    let calling = count(ExtensionCallState::Calling);
    // What the user is doing right now wins over a call parked on hold: a held call with
    // a consultation call being placed shows as calling.
    let line = if answered > 0 {
        LineState::OnCall
    } else if calling > 0 {
        LineState::Calling
    } else if ringing > 0 {
        LineState::Ringing
    } else if held > 0 {
        LineState::OnHold
    } else if registered {
        LineState::Idle
    } else {
        LineState::Offline
    };
    let in_use = answered + held + calling > 0;
    let device = if ringing > 0 && in_use {
        DeviceState::RingInUse
    } else if ringing > 0 {
        DeviceState::Ringing
    } else if held > 0 && answered + calling > 0 {
        DeviceState::HoldInUse
    } else if answered + calling > 0 {
        DeviceState::InUse
    } else if held > 0 {
        DeviceState::OnHold
    } else if registered {
        DeviceState::NotInUse
    } else {
        DeviceState::Unavailable
    };
    (line, device)
}

impl Aggregate for Extension {
    type Command = ExtensionCommand;
    type Event = ExtensionEvent;
    type Rejection = ExtensionRejection;

    fn decide(
        &self,
        command: &ExtensionCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ExtensionEvent>, ExtensionRejection> {
        decide::decide(self, command, now)
    }

    fn evolve(&mut self, event: &ExtensionEvent, _at: DateTime<Utc>) {
        use ExtensionEvent as E;
        match event {
            E::ExtensionProvisioned {
                extension,
                user,
                display_name,
                department,
            } => {
                self.identity = Some(Identity {
                    extension: extension.clone(),
                    user: user.clone(),
                    display_name: display_name.clone(),
                    department: department.clone(),
                });
                self.retired = false;
            }
            E::ExtensionRetired { .. } => {
                self.retired = true;
                self.contacts.clear();
            }
            E::DeviceRegistered {
                contact,
                contact_uri,
                transport,
                source,
                user_agent,
                expires_secs,
                expires_at,
                ..
            } => {
                self.contacts.insert(
                    *contact,
                    Contact {
                        contact_uri: contact_uri.clone(),
                        transport: *transport,
                        source: source.clone(),
                        user_agent: user_agent.clone(),
                        expires_secs: *expires_secs,
                        expires_at: *expires_at,
                    },
                );
            }
            E::DeviceRegistrationRefreshed {
                contact,
                expires_secs,
                expires_at,
                ..
            } => {
                if let Some(c) = self.contacts.get_mut(contact) {
                    c.expires_secs = *expires_secs;
                    c.expires_at = *expires_at;
                }
            }
            E::DeviceUnregistered { contact, .. }
            | E::DeviceRegistrationExpired { contact, .. } => {
                self.contacts.remove(contact);
            }
            E::LineStateChanged {
                state,
                device_state,
                ..
            } => self.line = (*state, *device_state),
            E::PresenceSet {
                state,
                state_type,
                message,
                ..
            } => {
                self.presence = Some(Presence {
                    state: state.clone(),
                    state_type: *state_type,
                    message: message.clone(),
                });
            }
            E::DoNotDisturbChanged { enabled, .. } => self.dnd = *enabled,
            E::CallForwardChanged {
                kind,
                destination,
                ring_ms,
                ..
            } => match kind {
                ForwardKind::Unconditional => self.forwards.unconditional = destination.clone(),
                ForwardKind::Busy => self.forwards.busy = destination.clone(),
                ForwardKind::NoAnswer => {
                    self.forwards.no_answer =
                        destination.clone().map(|destination| NoAnswerForward {
                            destination,
                            ring_ms: *ring_ms,
                        });
                }
            },
            E::FollowMeChanged {
                enabled,
                numbers,
                confirm,
                caller_id_prefix,
                ring_first_ms,
                ring_all_ms,
                ..
            } => {
                self.follow_me = FollowMe {
                    enabled: *enabled,
                    numbers: numbers.clone(),
                    confirm: *confirm,
                    caller_id_prefix: caller_id_prefix.clone(),
                    ring_first_ms: *ring_first_ms,
                    ring_all_ms: *ring_all_ms,
                };
            }
            E::CallWaitingChanged { enabled, .. } => self.call_waiting = *enabled,
            E::ExtensionCallObserved { call, state, .. } => {
                if *state == ExtensionCallState::Ended {
                    self.calls.remove(call);
                } else {
                    self.calls.insert(*call, *state);
                }
            }
        }
    }

    fn deadlines(&self) -> Vec<Deadline<ExtensionCommand>> {
        self.contacts
            .iter()
            .map(|(id, c)| {
                Deadline::new(
                    c.expires_at,
                    ExtensionCommand::ExpireRegistration { contact: *id },
                )
            })
            .collect()
    }
}
