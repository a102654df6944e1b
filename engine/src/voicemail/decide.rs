//! The voicemail box's rules. A box takes deposits until it holds [`MAX_MESSAGES`]. Folders and
//! the read flag stay in step the way Asterisk files messages: `inbox` and `urgent` hold unread
//! messages and `old` read ones, so reading an inbox message moves it to `old`, marking an old
//! one unread moves it back, and moving a message into one of those folders sets its flag to
//! match; `work`, `family` and `friends` keep whatever flag the message had.
//!
//! After every accepted command the new and old counts are compared with what the phones were
//! last told, and a `MessageWaitingChanged` is appended only when they differ. Who may act on
//! a box (its owner, a supervisor) is checked before the command reaches it.

use chrono::{DateTime, Utc};
use events::ids::{ExtensionNumber, VoicemailMessageId};
use events::model::{
    DepositReason, VoicemailDeleteReason, VoicemailEvent, VoicemailFolder, VoicemailForwardKind,
};

use super::command::{VoicemailCommand, VoicemailSettings};
use super::state::{MAX_MESSAGES, VoicemailBox, VoicemailMessage};
use crate::aggregate::Aggregate;

/// Longest greeting.
pub const MAX_GREETING_MS: u64 = 3 * 60 * 1000;

/// Why a voicemail box refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoicemailRejection {
    #[error("there is no voicemail box here")]
    NoBox,
    #[error("the voicemail box already exists")]
    AlreadyExists,
    #[error("the voicemail box was removed")]
    Removed,
    #[error("the voicemail box is full ({max} messages)")]
    Full { max: usize },
    #[error("voicemail message {0} already exists")]
    DuplicateMessage(VoicemailMessageId),
    #[error("there is no voicemail message {0} in this box")]
    UnknownMessage(VoicemailMessageId),
    #[error("a forwarded message is delivered with ReceiveForwarded, not Deposit")]
    ForwardedDeposit,
    #[error("a voicemail message or greeting needs some audio (duration 0)")]
    NoAudio,
    #[error("a greeting lasts at most {max_ms} ms, not {duration_ms}")]
    GreetingTooLong { duration_ms: u64, max_ms: u64 },
    #[error("a message cannot be forwarded to the box it is in ({0})")]
    ForwardToSelf(ExtensionNumber),
    #[error("{field} {value:?} is not an e-mail address")]
    BadEmail { field: &'static str, value: String },
    #[error("delete after e-mail needs an e-mail address to send the audio to")]
    DeleteWithoutEmail,
    #[error("delete after e-mail needs the audio attached, or messages would be lost")]
    DeleteWithoutAttach,
    #[error("the PIN must not be the mailbox number")]
    PinIsMailbox,
    #[error("the e-mail address a message was sent to must not be empty")]
    EmptyRecipient,
}

impl Aggregate for VoicemailBox {
    type Command = VoicemailCommand;
    type Event = VoicemailEvent;
    type Rejection = VoicemailRejection;

    fn decide(
        &self,
        command: &VoicemailCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<VoicemailEvent>, VoicemailRejection> {
        let mut events = decide(self, command)?;
        if !events.is_empty() {
            self.announce(&mut events);
        }
        Ok(events)
    }

    fn evolve(&mut self, event: &VoicemailEvent, _at: DateTime<Utc>) {
        self.evolve_event(event);
    }
}

impl VoicemailBox {
    /// Adds a `MessageWaitingChanged` when `events` change the counts the phones were last
    /// told, before a closing `VoicemailBoxRemoved` (which must stay last).
    fn announce(&self, events: &mut Vec<VoicemailEvent>) {
        let mut next = self.clone();
        for e in events.iter() {
            next.evolve_event(e);
        }
        let counts = if next.removed {
            Default::default()
        } else {
            next.counts()
        };
        if counts == self.announced {
            return;
        }
        let Some(mailbox) = self.mailbox.clone() else {
            return;
        };
        let mwi = VoicemailEvent::MessageWaitingChanged {
            mailbox,
            new_messages: counts.new,
            old_messages: counts.old,
        };
        let at = events
            .iter()
            .position(|e| matches!(e, VoicemailEvent::VoicemailBoxRemoved { .. }))
            .unwrap_or(events.len());
        events.insert(at, mwi);
    }
}

fn decide(
    state: &VoicemailBox,
    command: &VoicemailCommand,
) -> Result<Vec<VoicemailEvent>, VoicemailRejection> {
    use VoicemailCommand as C;
    use VoicemailEvent as E;

    let mailbox = match (&state.mailbox, state.removed, command) {
        (
            None,
            _,
            C::Create {
                mailbox,
                owner,
                department,
            },
        ) => {
            return Ok(vec![E::VoicemailBoxCreated {
                mailbox: mailbox.clone(),
                owner: owner.clone(),
                department: department.clone(),
            }]);
        }
        (None, _, _) => return Err(VoicemailRejection::NoBox),
        (Some(_), true, _) => return Err(VoicemailRejection::Removed),
        (Some(_), false, C::Create { .. }) => return Err(VoicemailRejection::AlreadyExists),
        (Some(mailbox), false, _) => mailbox.clone(),
    };
    let message = |id: &VoicemailMessageId| -> Result<&VoicemailMessage, VoicemailRejection> {
        state
            .messages
            .get(id)
            .ok_or(VoicemailRejection::UnknownMessage(*id))
    };
    let room_for = |id: &VoicemailMessageId, duration_ms: u64| {
        if state.messages.contains_key(id) {
            return Err(VoicemailRejection::DuplicateMessage(*id));
        }
        if duration_ms == 0 {
            return Err(VoicemailRejection::NoAudio);
        }
        if state.messages.len() >= MAX_MESSAGES {
            return Err(VoicemailRejection::Full { max: MAX_MESSAGES });
        }
        Ok(())
    };

    Ok(match command {
        C::Create { .. } => Vec::new(),
        C::Remove => vec![E::VoicemailBoxRemoved { mailbox }],
        C::Deposit {
            message,
            caller,
            call,
            reason,
            duration_ms,
            recording,
            urgent,
        } => {
            if *reason == DepositReason::Forwarded {
                return Err(VoicemailRejection::ForwardedDeposit);
            }
            room_for(message, *duration_ms)?;
            vec![E::VoicemailDeposited {
                mailbox,
                message: *message,
                caller: caller.clone(),
                call: *call,
                reason: *reason,
                forwarded_from: None,
                duration_ms: *duration_ms,
                recording: *recording,
                folder: if *urgent {
                    VoicemailFolder::Urgent
                } else {
                    VoicemailFolder::Inbox
                },
            }]
        }
        C::ReceiveForwarded {
            message,
            from_mailbox,
            caller,
            duration_ms,
            recording,
        } => {
            if *from_mailbox == mailbox {
                return Err(VoicemailRejection::ForwardToSelf(mailbox));
            }
            room_for(message, *duration_ms)?;
            vec![E::VoicemailDeposited {
                mailbox,
                message: *message,
                caller: caller.clone(),
                call: None,
                reason: DepositReason::Forwarded,
                forwarded_from: Some(from_mailbox.clone()),
                duration_ms: *duration_ms,
                recording: *recording,
                folder: VoicemailFolder::Inbox,
            }]
        }
        C::Forward {
            message: id,
            to_mailbox,
            copy,
            kind,
            by,
        } => {
            message(id)?;
            if *to_mailbox == mailbox {
                return Err(VoicemailRejection::ForwardToSelf(mailbox));
            }
            let mut events = vec![E::VoicemailForwarded {
                mailbox: mailbox.clone(),
                message: *id,
                to_mailbox: to_mailbox.clone(),
                copy: *copy,
                kind: *kind,
                by: by.clone(),
            }];
            if *kind == VoicemailForwardKind::Transfer {
                events.push(E::VoicemailDeleted {
                    mailbox,
                    message: *id,
                    reason: VoicemailDeleteReason::Transferred,
                    by: Some(by.clone()),
                });
            }
            events
        }
        C::MarkRead { message: id, by } => {
            let m = message(id)?;
            if m.read {
                return Ok(Vec::new());
            }
            let mut events = vec![E::VoicemailRead {
                mailbox: mailbox.clone(),
                message: *id,
                by: by.clone(),
            }];
            if matches!(m.folder, VoicemailFolder::Inbox | VoicemailFolder::Urgent) {
                events.push(E::VoicemailMoved {
                    mailbox,
                    message: *id,
                    from: m.folder,
                    to: VoicemailFolder::Old,
                    by: Some(by.clone()),
                });
            }
            events
        }
        C::MarkUnread { message: id, by } => {
            let m = message(id)?;
            if !m.read {
                return Ok(Vec::new());
            }
            let mut events = vec![E::VoicemailMarkedUnread {
                mailbox: mailbox.clone(),
                message: *id,
                by: by.clone(),
            }];
            if m.folder == VoicemailFolder::Old {
                events.push(E::VoicemailMoved {
                    mailbox,
                    message: *id,
                    from: m.folder,
                    to: VoicemailFolder::Inbox,
                    by: Some(by.clone()),
                });
            }
            events
        }
        C::Move {
            message: id,
            to,
            by,
        } => {
            let m = message(id)?;
            if m.folder == *to {
                return Ok(Vec::new());
            }
            let mut events = vec![E::VoicemailMoved {
                mailbox: mailbox.clone(),
                message: *id,
                from: m.folder,
                to: *to,
                by: Some(by.clone()),
            }];
            match to {
                VoicemailFolder::Inbox | VoicemailFolder::Urgent if m.read => {
                    events.push(E::VoicemailMarkedUnread {
                        mailbox,
                        message: *id,
                        by: by.clone(),
                    });
                }
                VoicemailFolder::Old if !m.read => events.push(E::VoicemailRead {
                    mailbox,
                    message: *id,
                    by: by.clone(),
                }),
                _ => {}
            }
            events
        }
        C::Delete { message: id, by } => {
            message(id)?;
            vec![E::VoicemailDeleted {
                mailbox,
                message: *id,
                reason: VoicemailDeleteReason::User,
                by: Some(by.clone()),
            }]
        }
        C::Expire { message: id } => {
            if !state.messages.contains_key(id) {
                // Already gone (deleted or transferred before its time): nothing to expire.
                return Ok(Vec::new());
            }
            vec![E::VoicemailDeleted {
                mailbox,
                message: *id,
                reason: VoicemailDeleteReason::Retention,
                by: None,
            }]
        }
        C::Emailed {
            message: id,
            to,
            pager,
            attached,
        } => {
            message(id)?;
            if to.trim().is_empty() {
                return Err(VoicemailRejection::EmptyRecipient);
            }
            let mut events = vec![E::VoicemailEmailed {
                mailbox: mailbox.clone(),
                message: *id,
                to: to.clone(),
                pager: *pager,
                attached: *attached,
            }];
            // Only a main e-mail carrying the audio makes the message safe to delete.
            if state.settings.delete_after_email && !*pager && *attached {
                events.push(E::VoicemailDeleted {
                    mailbox,
                    message: *id,
                    reason: VoicemailDeleteReason::AfterEmail,
                    by: None,
                });
            }
            events
        }
        C::SetGreeting {
            greeting,
            source,
            recording,
            duration_ms,
            by,
        } => {
            if *duration_ms == 0 {
                return Err(VoicemailRejection::NoAudio);
            }
            if *duration_ms > MAX_GREETING_MS {
                return Err(VoicemailRejection::GreetingTooLong {
                    duration_ms: *duration_ms,
                    max_ms: MAX_GREETING_MS,
                });
            }
            vec![E::VoicemailGreetingChanged {
                mailbox,
                greeting: *greeting,
                source: *source,
                recording: *recording,
                duration_ms: *duration_ms,
                by: by.clone(),
            }]
        }
        C::RemoveGreeting { greeting, by } => {
            if state.greeting(*greeting).is_none() {
                return Ok(Vec::new());
            }
            vec![E::VoicemailGreetingRemoved {
                mailbox,
                greeting: *greeting,
                by: by.clone(),
            }]
        }
        C::ChangeSettings { settings, by } => {
            let settings = checked(settings)?;
            if settings == state.settings {
                return Ok(Vec::new());
            }
            vec![E::VoicemailSettingsChanged {
                mailbox,
                email: settings.email,
                pager_email: settings.pager_email,
                attach: settings.attach,
                play_envelope: settings.play_envelope,
                play_caller_id: settings.play_caller_id,
                delete_after_email: settings.delete_after_email,
                by: by.clone(),
            }]
        }
        C::ChangePin { pin, by } => {
            if pin.expose() == mailbox.as_str() {
                return Err(VoicemailRejection::PinIsMailbox);
            }
            vec![E::VoicemailPinChanged {
                mailbox,
                by: by.clone(),
            }]
        }
    })
}

/// Trims the addresses (blank means none) and checks the combination makes sense.
fn checked(settings: &VoicemailSettings) -> Result<VoicemailSettings, VoicemailRejection> {
    let address = |field: &'static str, value: &Option<String>| {
        let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if is_email(v) {
            Ok(Some(v.to_owned()))
        } else {
            Err(VoicemailRejection::BadEmail {
                field,
                value: v.to_owned(),
            })
        }
    };
    let s = VoicemailSettings {
        email: address("e-mail", &settings.email)?,
        pager_email: address("pager e-mail", &settings.pager_email)?,
        ..settings.clone()
    };
    if s.delete_after_email && s.email.is_none() {
        return Err(VoicemailRejection::DeleteWithoutEmail);
    }
    if s.delete_after_email && !s.attach {
        return Err(VoicemailRejection::DeleteWithoutAttach);
    }
    Ok(s)
}

/// `local@domain.tld`, no spaces, at most 254 characters: enough to catch typing mistakes; the
/// mail server is the real judge.
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}
