//! How replay tells, for each aggregate, whether an event fitted the state it was folded into.
//! `evolve` never fails: an event that makes no sense for the state is ignored. Every `decide`
//! of this engine emits only events that change the state (a command whose effect already holds
//! is accepted with no events), so an event after which the state is unchanged is a
//! divergence. Two per-aggregate answers make that exact:
//!
//! - [`Checked::snapshot`]: the part of the state an event must change, read before and after
//!   folding it; `None` for the events an aggregate deliberately keeps nothing of (a call's
//!   DTMF, bridges and parking, a conference's recording facts, a forwarded voicemail, a
//!   credential change, a panel connection's resync, …) and for the few that may rightly
//!   restate what the state already holds (a voicemail PIN changed again, a second e-mail of
//!   the same message, a trunk reconfigured under the same name). Small states (call,
//!   extension, queue, conference, voicemail box, watch list) are compared whole; the
//!   directory, channel rooms and conversations, which grow with their tenant or their
//!   history, compare only the entry the event names.
//! - [`Checked::misfit`]: what no snapshot can see, because folding the event does change
//!   something: an event before its aggregate was created (or after it was deleted), a second
//!   creation, an id reused, a leg or call ended twice, a conference ended with members in it.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use events::ids::{ConversationId, DepartmentId, MessageId, PhoneNumber, ResellerId, UserId};
use events::model::{
    CallEvent, ConferenceEvent, ConversationEvent, ConversationKind, DirectoryEvent, Event,
    ExtensionEvent, PanelEvent, QueueEvent, RoomEvent, RoomVisibility, VoicemailEvent,
};

use super::DivergenceKind;
use crate::aggregate::Aggregate;
use crate::call::Call;
use crate::conference::Conference;
use crate::directory::{Department, Directory, PresenceStateEntry, Profile, Tenant, User};
use crate::extension::Extension;
use crate::panel::WatchList;
use crate::queue::Queue;
use crate::room::{ChannelRoom, Conversation, Membership, Message, RoomStatus};
use crate::voicemail::VoicemailBox;

/// An aggregate replay can check event by event.
pub(super) trait Checked: Aggregate {
    type Snapshot;

    /// The part of the state `event` must change, taken before folding it; `None` when the
    /// event may rightly change nothing.
    fn snapshot(&self, event: &Self::Event) -> Option<Self::Snapshot>;

    /// Whether the state, after folding `event`, still matches `before`.
    fn unchanged(&self, event: &Self::Event, before: &Self::Snapshot) -> bool;

    /// Why `event` does not fit this state (before folding it), when folding it changes
    /// something all the same.
    fn misfit(&self, event: &Self::Event) -> Option<&'static str>;
}

/// Folds `event` into `state` at `at` and says what, if anything, was wrong with it.
pub(super) fn fold<A: Checked>(
    state: &mut A,
    event: Event,
    at: DateTime<Utc>,
) -> Option<DivergenceKind> {
    let event_type = event.event_type();
    let belongs_to = event.category();
    let Ok(event) = A::Event::try_from(event) else {
        return Some(DivergenceKind::WrongAggregate {
            event_type,
            belongs_to,
        });
    };
    let misfit = state.misfit(&event);
    let before = state.snapshot(&event);
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| state.evolve(&event, at))) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_owned());
        return Some(DivergenceKind::Panicked {
            event_type,
            message,
        });
    }
    if let Some(why) = misfit {
        return Some(DivergenceKind::Misfit { event_type, why });
    }
    match before {
        Some(before) if state.unchanged(&event, &before) => {
            Some(DivergenceKind::Ignored { event_type })
        }
        _ => None,
    }
}

impl Checked for Call {
    type Snapshot = Call;

    fn snapshot(&self, event: &CallEvent) -> Option<Call> {
        use CallEvent as E;
        // Facts the call records without keeping anything of them: the leg ends that follow
        // them change it.
        let kept_nothing = matches!(
            event,
            E::DtmfReceived { .. }
                | E::LegPartyUpdated { .. }
                | E::BridgeEntered { .. }
                | E::BridgeLeft { .. }
                | E::BridgesMerged { .. }
                | E::BlindTransferred { .. }
                | E::CallParked { .. }
                | E::CallUnparked { .. }
                | E::ParkTimedOut { .. }
                | E::CallPickedUp { .. }
                | E::CallForwarded { .. }
                | E::LocalOptimized { .. }
                | E::CallRecordingMuted { .. }
                | E::CallRecordingUnmuted { .. }
        );
        (!kept_nothing).then(|| self.clone())
    }

    fn unchanged(&self, _: &CallEvent, before: &Call) -> bool {
        self == before
    }

    fn misfit(&self, event: &CallEvent) -> Option<&'static str> {
        use CallEvent as E;
        match event {
            E::CallCreated { .. } if self.is_offered() => Some("the call was already created"),
            E::CallCreated { .. } => None,
            _ if !self.is_offered() => Some("the call was not created yet"),
            E::LegEnded { leg, .. } if self.leg(*leg).is_some_and(|l| l.ended.is_some()) => {
                Some("the leg had already ended")
            }
            E::CallEnded { .. } if self.is_ended() => Some("the call had already ended"),
            E::CallEnded { .. } if self.legs().iter().any(|l| l.ended.is_none()) => {
                Some("a leg of the call was still up")
            }
            _ => None,
        }
    }
}

impl Checked for Extension {
    type Snapshot = Extension;

    fn snapshot(&self, _: &ExtensionEvent) -> Option<Extension> {
        Some(self.clone())
    }

    fn unchanged(&self, _: &ExtensionEvent, before: &Extension) -> bool {
        self == before
    }

    fn misfit(&self, event: &ExtensionEvent) -> Option<&'static str> {
        use ExtensionEvent as E;
        match event {
            E::ExtensionProvisioned { .. } if self.in_service() => {
                Some("the extension was already provisioned")
            }
            E::ExtensionProvisioned { .. } => None,
            _ if self.number().is_none() => Some("the extension was not provisioned yet"),
            // A retired extension still hears about the calls it was in.
            E::ExtensionCallObserved { .. } | E::LineStateChanged { .. } => None,
            _ if !self.in_service() => Some("the extension was retired"),
            _ => None,
        }
    }
}

impl Checked for Queue {
    type Snapshot = Queue;

    fn snapshot(&self, _: &QueueEvent) -> Option<Queue> {
        Some(self.clone())
    }

    fn unchanged(&self, _: &QueueEvent, before: &Queue) -> bool {
        self == before
    }

    fn misfit(&self, event: &QueueEvent) -> Option<&'static str> {
        use QueueEvent as E;
        match event {
            E::QueueConfigured { .. } => None,
            _ if self.id().is_none() => Some("the queue was not configured yet"),
            _ if self.is_deleted() => Some("the queue was deleted"),
            E::QueueCallerJoined { call, .. } if self.caller(*call).is_some() => {
                Some("the call was already in the queue")
            }
            E::AgentLoggedIn { agent, .. } if self.agent(*agent).is_some() => {
                Some("the agent was already logged in")
            }
            _ => None,
        }
    }
}

impl Checked for Conference {
    type Snapshot = Conference;

    fn snapshot(&self, event: &ConferenceEvent) -> Option<Conference> {
        use ConferenceEvent as E;
        // The kick is recorded beside the `ConferenceMemberLeft` that removes the member;
        // recording is the media side's, the room only keeps the facts.
        let kept_nothing = matches!(
            event,
            E::ConferenceMemberKicked { .. }
                | E::ConferenceRecordingStarted { .. }
                | E::ConferenceRecordingStopped { .. }
        );
        (!kept_nothing).then(|| self.clone())
    }

    fn unchanged(&self, _: &ConferenceEvent, before: &Conference) -> bool {
        self == before
    }

    fn misfit(&self, event: &ConferenceEvent) -> Option<&'static str> {
        use ConferenceEvent as E;
        match event {
            E::ConferenceConfigured { .. } => None,
            _ if self.id().is_none() => Some("the conference was not configured yet"),
            _ if self.is_deleted() => Some("the conference was deleted"),
            E::ConferenceStarted { .. } if self.run().is_some() => {
                Some("a run of the room was already in progress")
            }
            E::ConferenceMemberJoined { leg, .. } if self.member(*leg).is_some() => {
                Some("the leg was already a member")
            }
            E::ConferenceMemberKicked { leg, .. } if self.member(*leg).is_none() => {
                Some("the leg is not a member")
            }
            E::ConferenceEnded { .. } if self.member_count() > 0 => {
                Some("members were still in the room")
            }
            _ => None,
        }
    }
}

impl Checked for VoicemailBox {
    type Snapshot = VoicemailBox;

    fn snapshot(&self, event: &VoicemailEvent) -> Option<VoicemailBox> {
        use VoicemailEvent as E;
        let may_restate = match event {
            // The copy goes to the other box; this one keeps nothing of the forward.
            E::VoicemailForwarded { .. } => true,
            // The box keeps only whether a PIN is set, not the PIN.
            E::VoicemailPinChanged { .. } => self.has_pin(),
            // A message is e-mailed and paged: the second changes nothing.
            E::VoicemailEmailed { message, .. } => self.message(message).is_some_and(|m| m.emailed),
            _ => false,
        };
        (!may_restate).then(|| self.clone())
    }

    fn unchanged(&self, _: &VoicemailEvent, before: &VoicemailBox) -> bool {
        self == before
    }

    fn misfit(&self, event: &VoicemailEvent) -> Option<&'static str> {
        use VoicemailEvent as E;
        match event {
            E::VoicemailBoxCreated { .. } if self.mailbox().is_some() => {
                Some("the box was already created")
            }
            E::VoicemailBoxCreated { .. } => None,
            _ if self.mailbox().is_none() => Some("the box was not created yet"),
            _ if !self.exists() => Some("the box was removed"),
            E::VoicemailDeposited { message, .. } if self.message(message).is_some() => {
                Some("the message id was already in the box")
            }
            E::VoicemailForwarded { message, .. } if self.message(message).is_none() => {
                Some("no such message in the box")
            }
            _ => None,
        }
    }
}

impl Checked for WatchList {
    type Snapshot = WatchList;

    fn snapshot(&self, event: &PanelEvent) -> Option<WatchList> {
        // A resync is a fact about an open connection; the list keeps nothing of it.
        (!matches!(event, PanelEvent::PanelSessionResynced { .. })).then(|| self.clone())
    }

    fn unchanged(&self, _: &PanelEvent, before: &WatchList) -> bool {
        self == before
    }

    fn misfit(&self, event: &PanelEvent) -> Option<&'static str> {
        match event {
            PanelEvent::PanelSessionResynced { session, .. } if !self.is_open(session) => {
                Some("the panel connection is not open")
            }
            _ => None,
        }
    }
}

/// The entry of a directory an event names.
#[derive(Debug, PartialEq)]
pub(super) enum DirectoryPart {
    Reseller(Option<(ResellerId, String)>),
    Tenant(Option<Tenant>),
    Department(Option<Department>),
    Profile(Option<Profile>),
    User(Option<User>),
    Grants(BTreeSet<DepartmentId>),
    PresenceStates(Vec<PresenceStateEntry>),
    Trunk(Option<String>),
    Route(Option<PhoneNumber>),
}

impl Checked for Directory {
    type Snapshot = DirectoryPart;

    fn snapshot(&self, event: &DirectoryEvent) -> Option<DirectoryPart> {
        use DirectoryEvent as E;
        Some(match event {
            E::ResellerCreated { .. } => DirectoryPart::Reseller(self.reseller().cloned()),
            E::TenantCreated { .. }
            | E::TenantRenamed { .. }
            | E::TenantSuspended { .. }
            | E::TenantReinstated { .. } => DirectoryPart::Tenant(self.tenant().cloned()),
            E::DepartmentCreated { department, .. }
            | E::DepartmentRenamed { department, .. }
            | E::DepartmentDeleted { department } => {
                DirectoryPart::Department(self.departments().get(department).cloned())
            }
            E::ProfileCreated { profile, .. }
            | E::ProfileFeaturesChanged { profile, .. }
            | E::ProfileDeleted { profile } => {
                DirectoryPart::Profile(self.profiles().get(profile).cloned())
            }
            E::UserCreated { user, .. }
            | E::UserRenamed { user, .. }
            | E::UserEmailChanged { user, .. }
            | E::UserDepartmentChanged { user, .. }
            | E::UserProfileChanged { user, .. }
            | E::UserExtensionChanged { user, .. }
            | E::UserRoleChanged { user, .. }
            | E::UserDeleted { user }
            | E::UserSettingsChanged { user, .. }
            | E::SmsNumberAssigned { user, .. }
            | E::SmsNumberUnassigned { user, .. } => DirectoryPart::User(self.user(user).cloned()),
            E::CallPanelGranted { user, .. } | E::CallPanelRevoked { user, .. } => {
                DirectoryPart::Grants(self.grants_of(user))
            }
            E::PresenceStateAdded { .. }
            | E::PresenceStateUpdated { .. }
            | E::PresenceStateRemoved { .. }
            | E::PresenceStatesReordered { .. } => {
                DirectoryPart::PresenceStates(self.presence_states().to_vec())
            }
            // The directory keeps a trunk's name only: reconfiguring its host or numbers under
            // the same name rightly changes nothing here.
            E::TrunkConfigured { trunk, name, .. } if self.trunks().get(trunk) == Some(name) => {
                return None;
            }
            E::TrunkConfigured { trunk, .. } | E::TrunkRemoved { trunk } => {
                DirectoryPart::Trunk(self.trunks().get(trunk).cloned())
            }
            E::InboundRouteSet { number, .. } | E::InboundRouteRemoved { number } => {
                DirectoryPart::Route(self.inbound_routes().get(number).cloned())
            }
            // Secrets live beside the log; a reload is a marker.
            E::UserCredentialChanged { .. } | E::DirectoryReloaded { .. } => return None,
        })
    }

    fn unchanged(&self, event: &DirectoryEvent, before: &DirectoryPart) -> bool {
        self.snapshot(event).as_ref() == Some(before)
    }

    fn misfit(&self, event: &DirectoryEvent) -> Option<&'static str> {
        use DirectoryEvent as E;
        match event {
            E::ResellerCreated { .. } if self.reseller().is_some() => {
                Some("the reseller was already created")
            }
            E::ResellerCreated { .. } => None,
            E::TenantCreated { .. } if self.tenant().is_some() => {
                Some("the tenant was already created")
            }
            E::TenantCreated { .. } => None,
            _ if self.tenant().is_none() => Some("the tenant was not created yet"),
            E::DepartmentCreated { department, .. }
                if self.departments().contains_key(department) =>
            {
                Some("the department already existed")
            }
            E::ProfileCreated { profile, .. } if self.profiles().contains_key(profile) => {
                Some("the profile already existed")
            }
            E::UserCreated { user, .. } if self.user(user).is_some() => {
                Some("the user already existed")
            }
            E::UserCredentialChanged { user, .. } if self.user(user).is_none() => {
                Some("no such user")
            }
            E::PresenceStateAdded { state, .. } if self.presence_state(state).is_some() => {
                Some("the presence state already existed")
            }
            _ => None,
        }
    }
}

/// Why a posted message does not fit the messages already there.
fn posted_misfit<'a>(
    existing: impl Fn(&MessageId) -> Option<&'a Message>,
    message: &MessageId,
    quote: Option<&MessageId>,
    thread: Option<&MessageId>,
) -> Option<&'static str> {
    if existing(message).is_some() {
        Some("the message id was already used")
    } else if thread.is_some_and(|t| existing(t).is_none()) {
        Some("it replies in a thread that does not exist")
    } else if quote.is_some_and(|q| existing(q).is_none()) {
        Some("it quotes a message that does not exist")
    } else {
        None
    }
}

/// The entry of a channel room an event names.
#[derive(Debug, PartialEq)]
pub(super) enum RoomPart {
    Room(RoomStatus, String, Option<RoomVisibility>),
    Member(Option<Membership>),
    Message(Option<Message>),
}

impl Checked for ChannelRoom {
    type Snapshot = RoomPart;

    fn snapshot(&self, event: &RoomEvent) -> Option<RoomPart> {
        use RoomEvent as E;
        if let Some(message) = crate::room::channel::message_of(event) {
            return Some(RoomPart::Message(self.message(message).cloned()));
        }
        Some(match event {
            E::RoomMemberJoined { user, .. }
            | E::RoomMemberInvited { user, .. }
            | E::RoomMemberLeft { user, .. }
            | E::RoomMemberKicked { user, .. }
            | E::RoomClosed { user, .. }
            | E::RoomReopened { user, .. }
            | E::RoomRoleGranted { user, .. }
            | E::RoomRoleRevoked { user, .. } => RoomPart::Member(self.membership(user).copied()),
            _ => RoomPart::Room(self.status(), self.name().to_owned(), self.visibility()),
        })
    }

    fn unchanged(&self, event: &RoomEvent, before: &RoomPart) -> bool {
        self.snapshot(event).as_ref() == Some(before)
    }

    fn misfit(&self, event: &RoomEvent) -> Option<&'static str> {
        use RoomEvent as E;
        match (self.status(), event) {
            (RoomStatus::Absent, E::RoomCreated { .. }) => None,
            (_, E::RoomCreated { .. }) => Some("the room was already created"),
            (RoomStatus::Absent, _) => Some("the room was not created yet"),
            (RoomStatus::Deleted, _) => Some("the room was deleted"),
            (
                _,
                E::RoomMessagePosted {
                    message,
                    quote,
                    thread,
                    ..
                },
            ) => posted_misfit(
                |id| self.message(id),
                message,
                quote.as_ref(),
                thread.as_ref(),
            ),
            _ => None,
        }
    }
}

/// The entry of a conversation an event names.
#[derive(Debug, PartialEq)]
pub(super) enum ConversationPart {
    Started(Option<ConversationId>, Option<ConversationKind>),
    /// Whether the user is a member, and sees the conversation.
    Member(bool, bool),
    Message(Option<Message>),
}

impl Checked for Conversation {
    type Snapshot = ConversationPart;

    fn snapshot(&self, event: &ConversationEvent) -> Option<ConversationPart> {
        use ConversationEvent as E;
        if let Some(message) = crate::room::conversation::message_of(event) {
            return Some(ConversationPart::Message(self.message(message).cloned()));
        }
        let member = |user: &UserId| {
            ConversationPart::Member(self.is_member(user), self.is_visible_to(user))
        };
        Some(match event {
            E::ConversationMemberAdded { user, .. }
            | E::ConversationMemberLeft { user, .. }
            | E::ConversationHidden { user, .. }
            | E::ConversationShown { user, .. } => member(user),
            _ => ConversationPart::Started(self.id(), self.kind()),
        })
    }

    fn unchanged(&self, event: &ConversationEvent, before: &ConversationPart) -> bool {
        self.snapshot(event).as_ref() == Some(before)
    }

    fn misfit(&self, event: &ConversationEvent) -> Option<&'static str> {
        use ConversationEvent as E;
        match (self.id(), event) {
            (None, E::ConversationStarted { .. }) => None,
            (Some(_), E::ConversationStarted { .. }) => {
                Some("the conversation was already started")
            }
            (None, _) => Some("the conversation was not started yet"),
            (
                Some(_),
                E::DirectMessagePosted {
                    message,
                    quote,
                    thread,
                    ..
                },
            ) => posted_misfit(
                |id| self.message(id),
                message,
                quote.as_ref(),
                thread.as_ref(),
            ),
            _ => None,
        }
    }
}
