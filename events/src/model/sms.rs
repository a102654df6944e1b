//! SMS/MMS events: messages exchanged through a provider adapter between a user's SMS-capable
//! number and any other number, with the delivery reports and errors the provider returns. One
//! stream per message (`sms-<uuid>`), so the delivery status of each folds on its own; a
//! conversation view folds all of them by number pair.

use serde::{Deserialize, Serialize};

use super::values::Attachment;
use crate::ids::{PhoneNumber, SmsId, UserId};

event_enum! {
    /// Facts about one SMS or MMS. Variants are never renamed or removed; add a new one.
    pub enum SmsEvent in Sms {
        /// The provider delivered a message to one of our numbers.
        SmsReceived = "SmsReceived" {
            sms: SmsId,
            from: PhoneNumber,
            to: PhoneNumber,
            /// The user the number is assigned to, when it is assigned.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            user: Option<UserId>,
            text: String,
            /// MMS media.
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            media: Vec<Attachment>,
            /// The adapter's name, e.g. `telnyx`.
            provider: String,
            provider_message_id: String,
        },
        /// A user's message was handed to the provider.
        SmsSent = "SmsSent" {
            sms: SmsId,
            from: PhoneNumber,
            to: PhoneNumber,
            by: UserId,
            text: String,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            media: Vec<Attachment>,
            provider: String,
            /// The provider's id, once it acknowledged the message.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            provider_message_id: Option<String>,
        },
        /// The provider reported a new delivery status for a sent message.
        SmsDeliveryStatusChanged = "SmsDeliveryStatusChanged" {
            sms: SmsId,
            status: DeliveryStatus,
            /// The provider's own status string, for support.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            provider_status: Option<String>,
        },
        /// The provider refused or failed a request about this message.
        SmsProviderFailed = "SmsProviderFailed" {
            sms: SmsId,
            provider: String,
            /// The provider's error code.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            code: Option<String>,
            /// The provider's message, without credentials.
            message: String,
            /// The adapter will try again.
            retrying: bool,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the provider, not yet sent to the carrier.
    Queued,
    /// Sent to the carrier.
    Sent,
    /// The handset received it.
    Delivered,
    /// The carrier could not deliver it.
    Undelivered,
    /// The provider gave up.
    Failed,
}
