//! What can be asked of a voicemail box, the settings it keeps, and the PIN type that keeps a
//! PIN out of logs and events. New ids (a message's, a forwarded copy's) come inside commands.

use std::fmt;

use events::ids::{CallId, DepartmentId, ExtensionNumber, RecordingId, UserId, VoicemailMessageId};
use events::model::{
    DepositReason, GreetingKind, GreetingSource, Party, VoicemailFolder, VoicemailForwardKind,
};

/// Shortest and longest box PIN, in digits.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=12;

/// One request to a voicemail box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoicemailCommand {
    Create {
        mailbox: ExtensionNumber,
        owner: UserId,
        department: Option<DepartmentId>,
    },
    /// The box and its messages go away; the phones' indication is cleared first.
    Remove,
    /// A caller left a message after no answer or busy (or was sent straight here).
    Deposit {
        message: VoicemailMessageId,
        caller: Party,
        call: Option<CallId>,
        /// `busy`, `unavailable` or `direct`; forwarded copies arrive as `ReceiveForwarded`.
        reason: DepositReason,
        duration_ms: u64,
        recording: RecordingId,
        /// The caller marked it urgent: it is filed in `urgent`.
        urgent: bool,
    },
    /// The copy of a message another box forwarded or transferred here. Built by
    /// [`crate::voicemail::VoicemailBox::forwarded_copy`] on the source box.
    ReceiveForwarded {
        message: VoicemailMessageId,
        from_mailbox: ExtensionNumber,
        caller: Party,
        duration_ms: u64,
        recording: RecordingId,
    },
    /// Sends a message to another box: a copy, or a transfer that removes it from this one.
    /// Send the target its `ReceiveForwarded` first; this records the outcome on the source.
    Forward {
        message: VoicemailMessageId,
        to_mailbox: ExtensionNumber,
        copy: VoicemailMessageId,
        kind: VoicemailForwardKind,
        by: UserId,
    },
    MarkRead {
        message: VoicemailMessageId,
        by: UserId,
    },
    MarkUnread {
        message: VoicemailMessageId,
        by: UserId,
    },
    Move {
        message: VoicemailMessageId,
        to: VoicemailFolder,
        by: UserId,
    },
    Delete {
        message: VoicemailMessageId,
        by: UserId,
    },
    /// The tenant's retention period for the message passed.
    Expire { message: VoicemailMessageId },
    /// A notification of the message was e-mailed (the shell sent it).
    Emailed {
        message: VoicemailMessageId,
        to: String,
        pager: bool,
        attached: bool,
    },
    /// A greeting was uploaded or recorded; the audio is in the recording store.
    SetGreeting {
        greeting: GreetingKind,
        source: GreetingSource,
        recording: RecordingId,
        duration_ms: u64,
        by: UserId,
    },
    /// Back to the system greeting.
    RemoveGreeting { greeting: GreetingKind, by: UserId },
    ChangeSettings {
        settings: VoicemailSettings,
        by: UserId,
    },
    /// The PIN is checked here and recorded nowhere: the shell stores its hash with the
    /// directory's secrets, and the event says only that it changed.
    ChangePin { pin: Pin, by: UserId },
}

/// A box's settings: where notifications go and how messages are played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoicemailSettings {
    pub email: Option<String>,
    pub pager_email: Option<String>,
    /// Attach the audio to the e-mail.
    pub attach: bool,
    /// Read the date and time before playing a message.
    pub play_envelope: bool,
    /// Read the caller id before playing a message.
    pub play_caller_id: bool,
    /// Delete a message once it was e-mailed with its audio attached.
    pub delete_after_email: bool,
}

impl Default for VoicemailSettings {
    /// Asterisk's defaults: attach and play the envelope, nothing else.
    fn default() -> Self {
        Self {
            email: None,
            pager_email: None,
            attach: true,
            play_envelope: true,
            play_caller_id: false,
            delete_after_email: false,
        }
    }
}

/// A box PIN: 4 to 12 ASCII digits. Its `Debug` never shows the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

/// Why a PIN was refused. Never contains the PIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("a PIN has only digits")]
    NotNumeric,
    #[error("a PIN has 4 to 12 digits, not {0}")]
    BadLength(usize),
}

impl Pin {
    pub fn parse(s: &str) -> Result<Self, PinError> {
        if !s.chars().all(|c| c.is_ascii_digit()) {
            return Err(PinError::NotNumeric);
        }
        if !PIN_DIGITS.contains(&s.len()) {
            return Err(PinError::BadLength(s.len()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The digits, for the shell to hash. Do not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}
