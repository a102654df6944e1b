//! Voicemail events: one box per extension with its messages (deposited, read, moved, deleted,
//! forwarded, e-mailed), its greetings, its settings, and the message-waiting indication sent to
//! the phones. One stream per box (`voicemail-<tenant>.<extension>`). Audio lives in the
//! recording store under the ids the events name.
//!
//! The box PIN never enters the log: `VoicemailPinChanged` records only that it changed.

use serde::{Deserialize, Serialize};

use super::values::Party;
use crate::ids::{CallId, DepartmentId, ExtensionNumber, RecordingId, UserId, VoicemailMessageId};

event_enum! {
    /// Facts about one voicemail box. Variants are never renamed or removed; add a new one.
    pub enum VoicemailEvent in Voicemail {
        VoicemailBoxCreated = "VoicemailBoxCreated" {
            mailbox: ExtensionNumber,
            owner: UserId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            department: Option<DepartmentId>,
        },
        /// The box and its messages are gone: the last event of the stream.
        VoicemailBoxRemoved = "VoicemailBoxRemoved" {
            mailbox: ExtensionNumber,
        },
        /// A caller left a message (or one was forwarded in from another box).
        VoicemailDeposited = "VoicemailDeposited" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            caller: Party,
            /// The call it was left on; absent for a forwarded copy.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            call: Option<CallId>,
            reason: DepositReason,
            /// For `forwarded`: the box it came from.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            forwarded_from: Option<ExtensionNumber>,
            duration_ms: u64,
            /// The audio.
            recording: RecordingId,
            /// Where it was filed (`urgent` when the caller marked it so).
            folder: VoicemailFolder,
        },
        /// The message was played or marked read.
        VoicemailRead = "VoicemailRead" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            by: UserId,
        },
        VoicemailMarkedUnread = "VoicemailMarkedUnread" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            by: UserId,
        },
        VoicemailMoved = "VoicemailMoved" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            from: VoicemailFolder,
            to: VoicemailFolder,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        VoicemailDeleted = "VoicemailDeleted" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            reason: VoicemailDeleteReason,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The message was copied to another box, which records a `VoicemailDeposited`
        /// (`forwarded`) for `copy`. A transfer ("send to another user") does not keep the
        /// original: a `VoicemailDeleted` (`transferred`) follows.
        VoicemailForwarded = "VoicemailForwarded" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            to_mailbox: ExtensionNumber,
            copy: VoicemailMessageId,
            kind: VoicemailForwardKind,
            by: UserId,
        },
        /// A notification about the message was e-mailed.
        VoicemailEmailed = "VoicemailEmailed" {
            mailbox: ExtensionNumber,
            message: VoicemailMessageId,
            /// The address it was sent to.
            to: String,
            /// Sent to the pager address (short form) rather than the main one.
            pager: bool,
            /// The audio was attached.
            attached: bool,
        },
        /// A greeting was uploaded or recorded.
        VoicemailGreetingChanged = "VoicemailGreetingChanged" {
            mailbox: ExtensionNumber,
            greeting: GreetingKind,
            source: GreetingSource,
            recording: RecordingId,
            duration_ms: u64,
            by: UserId,
        },
        /// The greeting went back to the system default.
        VoicemailGreetingRemoved = "VoicemailGreetingRemoved" {
            mailbox: ExtensionNumber,
            greeting: GreetingKind,
            by: UserId,
        },
        /// The box's settings changed; the event holds all of them.
        VoicemailSettingsChanged = "VoicemailSettingsChanged" {
            mailbox: ExtensionNumber,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            email: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pager_email: Option<String>,
            /// Attach the audio to the e-mail.
            attach: bool,
            /// Read date and time before playing a message.
            play_envelope: bool,
            /// Read the caller id before playing a message.
            play_caller_id: bool,
            /// Delete a message once it was e-mailed.
            delete_after_email: bool,
            by: UserId,
        },
        /// The box's numeric PIN was changed. Neither the PIN nor a hash of it is recorded.
        VoicemailPinChanged = "VoicemailPinChanged" {
            mailbox: ExtensionNumber,
            by: UserId,
        },
        /// The message-waiting indication sent to the box's phones changed.
        MessageWaitingChanged = "MessageWaitingChanged" {
            mailbox: ExtensionNumber,
            /// Unread messages.
            new_messages: u32,
            /// Read messages still kept.
            old_messages: u32,
        },
    }
}

/// Why a message was deposited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositReason {
    /// The owner was busy: the busy greeting played.
    Busy,
    /// The owner did not answer or was offline: the unavailable greeting played.
    Unavailable,
    /// The caller was sent or dialled straight to the box.
    Direct,
    /// Copied from another box.
    Forwarded,
}

/// A voicemail folder (Asterisk's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailFolder {
    /// New messages.
    Inbox,
    /// Read messages.
    Old,
    Urgent,
    Work,
    Family,
    Friends,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailDeleteReason {
    /// The owner deleted it.
    User,
    /// `delete_after_email` is on and it was e-mailed.
    AfterEmail,
    /// It was transferred to another box.
    Transferred,
    /// The tenant's retention period passed.
    Retention,
}

/// Whether a forwarded message stays in the original box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailForwardKind {
    /// A copy; the original stays.
    Copy,
    /// Moved to the other user.
    Transfer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GreetingKind {
    /// Just the owner's name, used in the generic greeting.
    Name,
    Busy,
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GreetingSource {
    /// A file uploaded from the panel.
    Uploaded,
    /// Recorded in the browser or on the phone.
    Recorded,
}
