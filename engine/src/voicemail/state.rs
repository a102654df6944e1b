//! A voicemail box as its events left it: messages with folder and read flag, greetings,
//! settings, whether a PIN is set, and the message-waiting counts last sent to the phones.
//! Also the queries the panel and the call flow read: counts and the greeting to play.

use std::collections::BTreeMap;

use events::ids::{CallId, DepartmentId, ExtensionNumber, RecordingId, UserId, VoicemailMessageId};
use events::model::{
    DepositReason, GreetingKind, GreetingSource, Party, VoicemailEvent, VoicemailFolder,
};

use super::command::{VoicemailCommand, VoicemailSettings};

/// Most messages a box keeps (Asterisk's `maxmsg` default); a full box takes no deposit.
pub const MAX_MESSAGES: usize = 100;

/// A voicemail box, one per extension.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoicemailBox {
    pub(super) mailbox: Option<ExtensionNumber>,
    pub(super) owner: Option<UserId>,
    pub(super) department: Option<DepartmentId>,
    pub(super) removed: bool,
    pub(super) messages: BTreeMap<VoicemailMessageId, VoicemailMessage>,
    pub(super) greetings: BTreeMap<GreetingKindKey, Greeting>,
    pub(super) settings: VoicemailSettings,
    pub(super) pin_set: bool,
    /// What the phones were last told.
    pub(super) announced: MessageCounts,
}

/// One kept message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailMessage {
    pub caller: Party,
    pub call: Option<CallId>,
    pub reason: DepositReason,
    pub forwarded_from: Option<ExtensionNumber>,
    pub duration_ms: u64,
    pub recording: RecordingId,
    pub folder: VoicemailFolder,
    pub read: bool,
    pub emailed: bool,
}

/// An uploaded or recorded greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    pub source: GreetingSource,
    pub recording: RecordingId,
    pub duration_ms: u64,
}

/// What to play to a caller before the beep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreetingToPlay {
    /// The owner's own busy or unavailable greeting.
    Custom(RecordingId),
    /// The system's "… is busy" / "… is unavailable", with the owner's recorded name when
    /// there is one, else the extension number read out.
    System {
        kind: GreetingKind,
        name: Option<RecordingId>,
    },
}

/// New (unread) and old (read, still kept) messages: the panel's voicemail count and what the
/// phones' message-waiting indication shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub new: u32,
    pub old: u32,
}

/// `GreetingKind` has no `Ord`; greetings are keyed by this instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct GreetingKindKey(u8);

impl From<GreetingKind> for GreetingKindKey {
    fn from(kind: GreetingKind) -> Self {
        Self(match kind {
            GreetingKind::Name => 0,
            GreetingKind::Busy => 1,
            GreetingKind::Unavailable => 2,
        })
    }
}

impl VoicemailBox {
    pub fn mailbox(&self) -> Option<&ExtensionNumber> {
        self.mailbox.as_ref()
    }

    pub fn owner(&self) -> Option<&UserId> {
        self.owner.as_ref()
    }

    pub fn department(&self) -> Option<&DepartmentId> {
        self.department.as_ref()
    }

    /// Whether the box exists (created and not removed): a call can leave a message here.
    pub fn exists(&self) -> bool {
        self.mailbox.is_some() && !self.removed
    }

    pub fn is_full(&self) -> bool {
        self.messages.len() >= MAX_MESSAGES
    }

    /// New and old messages now.
    pub fn counts(&self) -> MessageCounts {
        let new = self.messages.values().filter(|m| !m.read).count();
        let old = self.messages.len() - new;
        MessageCounts {
            new: u32::try_from(new).unwrap_or(u32::MAX),
            old: u32::try_from(old).unwrap_or(u32::MAX),
        }
    }

    pub fn messages(&self) -> impl Iterator<Item = (&VoicemailMessageId, &VoicemailMessage)> {
        self.messages.iter()
    }

    pub fn message(&self, id: &VoicemailMessageId) -> Option<&VoicemailMessage> {
        self.messages.get(id)
    }

    pub fn greeting(&self, kind: GreetingKind) -> Option<&Greeting> {
        self.greetings.get(&kind.into())
    }

    /// The greeting a caller hears when leaving a message for `reason`: the busy greeting
    /// after busy, the unavailable one otherwise, falling back to the system's with the name.
    pub fn greeting_for(&self, reason: DepositReason) -> GreetingToPlay {
        let kind = match reason {
            DepositReason::Busy => GreetingKind::Busy,
            DepositReason::Unavailable | DepositReason::Direct | DepositReason::Forwarded => {
                GreetingKind::Unavailable
            }
        };
        match self.greeting(kind) {
            Some(g) => GreetingToPlay::Custom(g.recording),
            None => GreetingToPlay::System {
                kind,
                name: self.greeting(GreetingKind::Name).map(|g| g.recording),
            },
        }
    }

    pub fn settings(&self) -> &VoicemailSettings {
        &self.settings
    }

    pub fn has_pin(&self) -> bool {
        self.pin_set
    }

    /// The command that delivers `message` to another box as `copy`, for a forward or a
    /// transfer. Send it to the target before sending `Forward` here.
    pub fn forwarded_copy(
        &self,
        message: &VoicemailMessageId,
        copy: VoicemailMessageId,
    ) -> Option<VoicemailCommand> {
        let m = self.messages.get(message)?;
        Some(VoicemailCommand::ReceiveForwarded {
            message: copy,
            from_mailbox: self.mailbox.clone()?,
            caller: m.caller.clone(),
            duration_ms: m.duration_ms,
            recording: m.recording,
        })
    }

    pub(super) fn evolve_event(&mut self, event: &VoicemailEvent) {
        use VoicemailEvent as E;
        match event {
            E::VoicemailBoxCreated {
                mailbox,
                owner,
                department,
            } => {
                self.mailbox = Some(mailbox.clone());
                self.owner = Some(owner.clone());
                self.department = department.clone();
            }
            E::VoicemailBoxRemoved { .. } => {
                self.removed = true;
                self.messages.clear();
                self.greetings.clear();
            }
            E::VoicemailDeposited {
                message,
                caller,
                call,
                reason,
                forwarded_from,
                duration_ms,
                recording,
                folder,
                ..
            } => {
                self.messages.insert(
                    *message,
                    VoicemailMessage {
                        caller: caller.clone(),
                        call: *call,
                        reason: *reason,
                        forwarded_from: forwarded_from.clone(),
                        duration_ms: *duration_ms,
                        recording: *recording,
                        folder: *folder,
                        read: false,
                        emailed: false,
                    },
                );
            }
            E::VoicemailRead { message, .. } => self.with(message, |m| m.read = true),
            E::VoicemailMarkedUnread { message, .. } => self.with(message, |m| m.read = false),
            E::VoicemailMoved { message, to, .. } => self.with(message, |m| m.folder = *to),
            E::VoicemailDeleted { message, .. } => {
                self.messages.remove(message);
            }
            E::VoicemailForwarded { .. } => {}
            E::VoicemailEmailed { message, .. } => self.with(message, |m| m.emailed = true),
            E::VoicemailGreetingChanged {
                greeting,
                source,
                recording,
                duration_ms,
                ..
            } => {
                self.greetings.insert(
                    (*greeting).into(),
                    Greeting {
                        source: *source,
                        recording: *recording,
                        duration_ms: *duration_ms,
                    },
                );
            }
            E::VoicemailGreetingRemoved { greeting, .. } => {
                self.greetings.remove(&(*greeting).into());
            }
            E::VoicemailSettingsChanged {
                email,
                pager_email,
                attach,
                play_envelope,
                play_caller_id,
                delete_after_email,
                ..
            } => {
                self.settings = VoicemailSettings {
                    email: email.clone(),
                    pager_email: pager_email.clone(),
                    attach: *attach,
                    play_envelope: *play_envelope,
                    play_caller_id: *play_caller_id,
                    delete_after_email: *delete_after_email,
                };
            }
            E::VoicemailPinChanged { .. } => self.pin_set = true,
            E::MessageWaitingChanged {
                new_messages,
                old_messages,
                ..
            } => {
                self.announced = MessageCounts {
                    new: *new_messages,
                    old: *old_messages,
                };
            }
        }
    }

    fn with(&mut self, message: &VoicemailMessageId, f: impl FnOnce(&mut VoicemailMessage)) {
        if let Some(m) = self.messages.get_mut(message) {
            f(m);
        }
    }
}
