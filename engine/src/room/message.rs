//! The message rules channel rooms and direct conversations share: what a valid message is (text
//! or attachments, size limits, a quote or thread parent that exists), who may edit or delete
//! one, and the per-message state both aggregates fold (author, text, reactions, followers,
//! stars, reports). It decides in neutral `MessageFact`s, which each aggregate maps to its own
//! event type; it knows nothing of membership or roles beyond the `may_moderate` flag it is
//! given, and does no I/O.

use std::collections::{BTreeMap, BTreeSet};

use events::ids::{AttachmentId, MessageId, UserId};
use events::model::Attachment;

/// Longest message text, in Unicode scalar values (an emoji counts as one or a few).
pub const MAX_TEXT_CHARS: usize = 5_000;
/// Most files attached to one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Largest attached file.
pub const MAX_ATTACHMENT_BYTES: u64 = 100 * 1024 * 1024;
/// Longest reaction: one emoji, including skin-tone modifiers and ZWJ sequences.
pub const MAX_EMOJI_CHARS: usize = 16;
/// Longest reason given with a report.
pub const MAX_REPORT_REASON_CHARS: usize = 500;

/// What a user writes: text (any Unicode, emoji included), files, and optionally the message
/// quoted and the thread replied in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageDraft {
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub quote: Option<MessageId>,
    /// The message replied to in a thread. A reply to a reply joins the same thread.
    pub thread: Option<MessageId>,
}

impl MessageDraft {
    /// A plain text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }
}

/// One action on a message, the same in rooms and conversations. New ids come inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageAction {
    /// Posts a message; with `draft.thread` set, a thread reply.
    Post {
        message: MessageId,
        author: UserId,
        draft: MessageDraft,
    },
    Edit {
        message: MessageId,
        text: String,
        by: UserId,
    },
    Delete {
        message: MessageId,
        by: UserId,
    },
    React {
        message: MessageId,
        user: UserId,
        emoji: String,
    },
    Unreact {
        message: MessageId,
        user: UserId,
        emoji: String,
    },
    Follow {
        message: MessageId,
        user: UserId,
    },
    Unfollow {
        message: MessageId,
        user: UserId,
    },
    Star {
        message: MessageId,
        user: UserId,
    },
    Unstar {
        message: MessageId,
        user: UserId,
    },
    Report {
        message: MessageId,
        by: UserId,
        reason: Option<String>,
    },
}

impl MessageAction {
    /// The user doing it.
    pub fn actor(&self) -> &UserId {
        use MessageAction::*;
        match self {
            Post { author, .. } => author,
            Edit { by, .. } | Delete { by, .. } | Report { by, .. } => by,
            React { user, .. }
            | Unreact { user, .. }
            | Follow { user, .. }
            | Unfollow { user, .. }
            | Star { user, .. }
            | Unstar { user, .. } => user,
        }
    }

    /// Whether it changes what everyone reads (refused in an archived room). Following,
    /// starring and reporting only concern the actor or the administrators.
    pub fn writes(&self) -> bool {
        use MessageAction::*;
        matches!(
            self,
            Post { .. } | Edit { .. } | Delete { .. } | React { .. } | Unreact { .. }
        )
    }
}

/// Why a message action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageRejection {
    #[error("a message needs text or an attachment")]
    Empty,
    #[error("the message text has {chars} characters, more than the {max} allowed")]
    TextTooLong { chars: usize, max: usize },
    #[error("a message may carry at most {max} attachments, not {count}")]
    TooManyAttachments { count: usize, max: usize },
    #[error("attachment {attachment} is {size_bytes} bytes, more than the {max} allowed")]
    AttachmentTooLarge {
        attachment: AttachmentId,
        size_bytes: u64,
        max: u64,
    },
    #[error("attachment {0} has no file name")]
    AttachmentUnnamed(AttachmentId),
    #[error("message {0} already exists")]
    DuplicateId(MessageId),
    #[error("there is no message {0} here")]
    Unknown(MessageId),
    #[error("message {0} was deleted")]
    Deleted(MessageId),
    #[error(
        "{user} may not change message {message}: only its author, a moderator or an owner may"
    )]
    NotAuthor { message: MessageId, user: UserId },
    #[error("{0:?} is not an emoji")]
    BadEmoji(String),
    #[error("the report reason has {chars} characters, more than the {max} allowed")]
    ReasonTooLong { chars: usize, max: usize },
}

/// A decided change to a message, before it becomes a room or conversation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MessageFact {
    Posted {
        message: MessageId,
        author: UserId,
        text: String,
        attachments: Vec<Attachment>,
        quote: Option<MessageId>,
        thread: Option<MessageId>,
    },
    Edited {
        message: MessageId,
        text: String,
        by: UserId,
    },
    Deleted {
        message: MessageId,
        by: UserId,
    },
    ReactionAdded {
        message: MessageId,
        user: UserId,
        emoji: String,
    },
    ReactionRemoved {
        message: MessageId,
        user: UserId,
        emoji: String,
    },
    Followed {
        message: MessageId,
        user: UserId,
    },
    Unfollowed {
        message: MessageId,
        user: UserId,
    },
    Starred {
        message: MessageId,
        user: UserId,
    },
    Unstarred {
        message: MessageId,
        user: UserId,
    },
    Reported {
        message: MessageId,
        by: UserId,
        reason: Option<String>,
    },
}

/// Declares, in an aggregate's `decide` module, the mappings between [`MessageFact`] and that
/// aggregate's message events: `event_of(id, fact)`, the event recording a fact in the room or
/// conversation `id`; `fact_of(&event)`, the fact a message event records; and
/// `message_of(&event)`, the message it is about (both `None` for any other event). Each event
/// variant has the fact's fields plus the id, under the same names; the fields are listed once,
/// here, so a fact and its two event families cannot drift apart.
macro_rules! message_events {
    (
        $Event:ident, $id:ident: $Id:ty;
        Posted => $posted:ident,
        Edited => $edited:ident,
        Deleted => $deleted:ident,
        ReactionAdded => $reaction_added:ident,
        ReactionRemoved => $reaction_removed:ident,
        Followed => $followed:ident,
        Unfollowed => $unfollowed:ident,
        Starred => $starred:ident,
        Unstarred => $unstarred:ident,
        Reported => $reported:ident $(,)?
    ) => {
        $crate::room::message::message_events!(@map $Event, $id: $Id;
            Posted { message, author, text, attachments, quote, thread } => $posted,
            Edited { message, text, by } => $edited,
            Deleted { message, by } => $deleted,
            ReactionAdded { message, user, emoji } => $reaction_added,
            ReactionRemoved { message, user, emoji } => $reaction_removed,
            Followed { message, user } => $followed,
            Unfollowed { message, user } => $unfollowed,
            Starred { message, user } => $starred,
            Unstarred { message, user } => $unstarred,
            Reported { message, by, reason } => $reported,
        );
    };
    (@map $Event:ident, $id:ident: $Id:ty;
        $($Fact:ident { $($field:ident),+ } => $Variant:ident,)+
    ) => {
        /// The event that records `fact`.
        fn event_of($id: $Id, fact: $crate::room::message::MessageFact) -> $Event {
            use $crate::room::message::MessageFact as F;
            match fact {
                $( F::$Fact { $($field),+ } => $Event::$Variant { $id, $($field),+ }, )+
            }
        }

        /// The message `event` is about, if it is a message event.
        pub(crate) fn message_of(event: &$Event) -> Option<&events::ids::MessageId> {
            match event {
                $( $Event::$Variant { message, .. } => Some(message), )+
                _ => None,
            }
        }

        /// The message fact `event` records, if it is about a message.
        pub(super) fn fact_of(event: &$Event) -> Option<$crate::room::message::MessageFact> {
            use $crate::room::message::MessageFact as F;
            match event {
                $( $Event::$Variant { $($field,)+ .. } => {
                    Some(F::$Fact { $($field: $field.clone()),+ })
                } )+
                _ => None,
            }
        }
    };
}
pub(crate) use message_events;

/// One message as the aggregate remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub author: UserId,
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub quote: Option<MessageId>,
    /// The thread's first message, for a reply.
    pub thread: Option<MessageId>,
    pub edited: bool,
    /// Deleted messages stay as tombstones so that replies and quotes still resolve.
    pub deleted: bool,
    /// Emoji → who reacted with it.
    pub reactions: BTreeMap<String, BTreeSet<UserId>>,
    pub followers: BTreeSet<UserId>,
    pub starred_by: BTreeSet<UserId>,
    pub reported_by: BTreeSet<UserId>,
    /// Replies in the thread this message starts.
    pub replies: u32,
}

/// Every message of one room or conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Messages {
    by_id: BTreeMap<MessageId, Message>,
}

impl Messages {
    pub(crate) fn get(&self, id: &MessageId) -> Option<&Message> {
        self.by_id.get(id)
    }

    /// Decides one action by `actor`; `may_moderate` lets them edit and delete others'
    /// messages. An action whose effect already holds (a second star, removing a reaction that
    /// is not there) yields no fact.
    pub(crate) fn decide(
        &self,
        action: &MessageAction,
        may_moderate: bool,
    ) -> Result<Option<MessageFact>, MessageRejection> {
        use MessageAction as A;
        use MessageFact as F;
        Ok(match action {
            A::Post {
                message,
                author,
                draft,
            } => Some(self.post(*message, author, draft)?),
            A::Edit { message, text, by } => {
                let m = self.live(message)?;
                self.may_change(m, *message, by, may_moderate)?;
                check_text(text, !m.attachments.is_empty())?;
                (m.text != *text).then(|| F::Edited {
                    message: *message,
                    text: text.clone(),
                    by: by.clone(),
                })
            }
            A::Delete { message, by } => {
                let m = self.known(message)?;
                if m.deleted {
                    return Ok(None);
                }
                self.may_change(m, *message, by, may_moderate)?;
                Some(F::Deleted {
                    message: *message,
                    by: by.clone(),
                })
            }
            A::React {
                message,
                user,
                emoji,
            } => {
                check_emoji(emoji)?;
                let m = self.live(message)?;
                let has = m.reactions.get(emoji).is_some_and(|u| u.contains(user));
                (!has).then(|| F::ReactionAdded {
                    message: *message,
                    user: user.clone(),
                    emoji: emoji.clone(),
                })
            }
            A::Unreact {
                message,
                user,
                emoji,
            } => {
                let m = self.known(message)?;
                let has = m.reactions.get(emoji).is_some_and(|u| u.contains(user));
                has.then(|| F::ReactionRemoved {
                    message: *message,
                    user: user.clone(),
                    emoji: emoji.clone(),
                })
            }
            A::Follow { message, user } => {
                let m = self.live(message)?;
                (!m.followers.contains(user)).then(|| F::Followed {
                    message: *message,
                    user: user.clone(),
                })
            }
            A::Unfollow { message, user } => {
                let m = self.known(message)?;
                m.followers.contains(user).then(|| F::Unfollowed {
                    message: *message,
                    user: user.clone(),
                })
            }
            A::Star { message, user } => {
                let m = self.live(message)?;
                (!m.starred_by.contains(user)).then(|| F::Starred {
                    message: *message,
                    user: user.clone(),
                })
            }
            A::Unstar { message, user } => {
                let m = self.known(message)?;
                m.starred_by.contains(user).then(|| F::Unstarred {
                    message: *message,
                    user: user.clone(),
                })
            }
            A::Report {
                message,
                by,
                reason,
            } => {
                let m = self.live(message)?;
                let reason = reason
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned);
                if let Some(r) = &reason {
                    let chars = r.chars().count();
                    if chars > MAX_REPORT_REASON_CHARS {
                        return Err(MessageRejection::ReasonTooLong {
                            chars,
                            max: MAX_REPORT_REASON_CHARS,
                        });
                    }
                }
                (!m.reported_by.contains(by)).then(|| F::Reported {
                    message: *message,
                    by: by.clone(),
                    reason,
                })
            }
        })
    }

    /// Folds one fact. Facts about unknown messages are ignored.
    pub(crate) fn apply(&mut self, fact: MessageFact) {
        use MessageFact as F;
        match fact {
            F::Posted {
                message,
                author,
                text,
                attachments,
                quote,
                thread,
            } => {
                if let Some(root) = thread.and_then(|t| self.by_id.get_mut(&t)) {
                    root.replies += 1;
                }
                self.by_id.insert(
                    message,
                    Message {
                        author,
                        text,
                        attachments,
                        quote,
                        thread,
                        edited: false,
                        deleted: false,
                        reactions: BTreeMap::new(),
                        followers: BTreeSet::new(),
                        starred_by: BTreeSet::new(),
                        reported_by: BTreeSet::new(),
                        replies: 0,
                    },
                );
            }
            F::Edited { message, text, .. } => {
                if let Some(m) = self.by_id.get_mut(&message) {
                    m.text = text;
                    m.edited = true;
                }
            }
            F::Deleted { message, .. } => {
                if let Some(m) = self.by_id.get_mut(&message) {
                    m.deleted = true;
                    m.text.clear();
                    m.attachments.clear();
                    m.reactions.clear();
                }
            }
            F::ReactionAdded {
                message,
                user,
                emoji,
            } => {
                if let Some(m) = self.by_id.get_mut(&message) {
                    m.reactions.entry(emoji).or_default().insert(user);
                }
            }
            F::ReactionRemoved {
                message,
                user,
                emoji,
            } => {
                if let Some(m) = self.by_id.get_mut(&message)
                    && let Some(users) = m.reactions.get_mut(&emoji)
                {
                    users.remove(&user);
                    if users.is_empty() {
                        m.reactions.remove(&emoji);
                    }
                }
            }
            F::Followed { message, user } => self.with(message, |m| {
                m.followers.insert(user);
            }),
            F::Unfollowed { message, user } => self.with(message, |m| {
                m.followers.remove(&user);
            }),
            F::Starred { message, user } => self.with(message, |m| {
                m.starred_by.insert(user);
            }),
            F::Unstarred { message, user } => self.with(message, |m| {
                m.starred_by.remove(&user);
            }),
            F::Reported { message, by, .. } => self.with(message, |m| {
                m.reported_by.insert(by);
            }),
        }
    }

    fn with(&mut self, message: MessageId, f: impl FnOnce(&mut Message)) {
        if let Some(m) = self.by_id.get_mut(&message) {
            f(m);
        }
    }

    fn post(
        &self,
        message: MessageId,
        author: &UserId,
        draft: &MessageDraft,
    ) -> Result<MessageFact, MessageRejection> {
        if self.by_id.contains_key(&message) {
            return Err(MessageRejection::DuplicateId(message));
        }
        check_attachments(&draft.attachments)?;
        check_text(&draft.text, !draft.attachments.is_empty())?;
        if let Some(q) = &draft.quote {
            self.live(q)?;
        }
        let thread = match &draft.thread {
            Some(parent) => {
                let p = self.live(parent)?;
                // Threads are one level deep: replying to a reply joins its thread.
                Some(p.thread.unwrap_or(*parent))
            }
            None => None,
        };
        Ok(MessageFact::Posted {
            message,
            author: author.clone(),
            text: draft.text.clone(),
            attachments: draft.attachments.clone(),
            quote: draft.quote,
            thread,
        })
    }

    fn known(&self, id: &MessageId) -> Result<&Message, MessageRejection> {
        self.by_id.get(id).ok_or(MessageRejection::Unknown(*id))
    }

    fn live(&self, id: &MessageId) -> Result<&Message, MessageRejection> {
        let m = self.known(id)?;
        if m.deleted {
            return Err(MessageRejection::Deleted(*id));
        }
        Ok(m)
    }

    fn may_change(
        &self,
        m: &Message,
        message: MessageId,
        user: &UserId,
        may_moderate: bool,
    ) -> Result<(), MessageRejection> {
        if m.author == *user || may_moderate {
            Ok(())
        } else {
            Err(MessageRejection::NotAuthor {
                message,
                user: user.clone(),
            })
        }
    }
}

fn check_text(text: &str, has_attachments: bool) -> Result<(), MessageRejection> {
    if text.trim().is_empty() && !has_attachments {
        return Err(MessageRejection::Empty);
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(MessageRejection::TextTooLong {
            chars,
            max: MAX_TEXT_CHARS,
        });
    }
    Ok(())
}

fn check_attachments(attachments: &[Attachment]) -> Result<(), MessageRejection> {
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(MessageRejection::TooManyAttachments {
            count: attachments.len(),
            max: MAX_ATTACHMENTS,
        });
    }
    for a in attachments {
        if a.file_name.trim().is_empty() {
            return Err(MessageRejection::AttachmentUnnamed(a.attachment));
        }
        if a.size_bytes > MAX_ATTACHMENT_BYTES {
            return Err(MessageRejection::AttachmentTooLarge {
                attachment: a.attachment,
                size_bytes: a.size_bytes,
                max: MAX_ATTACHMENT_BYTES,
            });
        }
    }
    Ok(())
}

/// A reaction is one emoji as Unicode: short, no spaces or control characters, and not plain
/// ASCII text (a keycap such as "1️⃣" passes thanks to its variation selector).
fn check_emoji(emoji: &str) -> Result<(), MessageRejection> {
    let chars = emoji.chars().count();
    let ok = chars > 0
        && chars <= MAX_EMOJI_CHARS
        && !emoji.is_ascii()
        && !emoji.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(MessageRejection::BadEmoji(emoji.to_owned()))
    }
}
