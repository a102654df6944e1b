//! The conversation's rules. Only members act in it. A direct conversation always has exactly
//! its two people: nobody is added and nobody leaves (they hide it instead); a group
//! conversation takes new members from any member, up to [`MAX_GROUP_MEMBERS`], and members may
//! leave it. Posting shows the conversation again to every member who had hidden it. Only a
//! message's author edits or deletes it: there are no moderators here.

use chrono::{DateTime, Utc};
use events::ids::{ConversationId, UserId};
use events::model::{ConversationEvent, ConversationKind};

use super::command::{ConversationCommand, MAX_GROUP_MEMBERS};
use super::state::Conversation;
use crate::aggregate::Aggregate;
use crate::room::message::{MessageAction, MessageRejection, message_events};

/// Why a conversation refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationRejection {
    #[error("the conversation has not been started")]
    NotStarted,
    #[error("the conversation was already started")]
    AlreadyStarted,
    #[error("a conversation needs at least one person besides {0}")]
    NobodyElse(UserId),
    #[error("a group conversation has at most {max} people, not {count}; use a channel room")]
    TooManyMembers { count: usize, max: usize },
    #[error("{0} is not in the conversation")]
    NotMember(UserId),
    #[error("{0} is already in the conversation")]
    AlreadyMember(UserId),
    #[error("a direct conversation is between exactly two people; start a group to add someone")]
    DirectIsFixed,
    #[error("nobody leaves a direct conversation; hide it instead")]
    CannotLeaveDirect,
    #[error(transparent)]
    Message(#[from] MessageRejection),
}

impl Aggregate for Conversation {
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    type Rejection = ConversationRejection;

    fn decide(
        &self,
        command: &ConversationCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<ConversationEvent>, ConversationRejection> {
        decide(self, command)
    }

    fn evolve(&mut self, event: &ConversationEvent, _at: DateTime<Utc>) {
        self.evolve_event(event);
    }
}

fn decide(
    state: &Conversation,
    command: &ConversationCommand,
) -> Result<Vec<ConversationEvent>, ConversationRejection> {
    use ConversationCommand as C;
    use ConversationEvent as E;

    let conversation = match (state.conversation, command) {
        (None, C::Start { .. }) => return start(command),
        (None, _) => return Err(ConversationRejection::NotStarted),
        (Some(_), C::Start { .. }) => return Err(ConversationRejection::AlreadyStarted),
        (Some(id), _) => id,
    };
    let group = state.kind == Some(ConversationKind::Group);

    Ok(match command {
        C::Start { .. } => Vec::new(),
        C::AddMember { user, by } => {
            member(state, by)?;
            if !group {
                return Err(ConversationRejection::DirectIsFixed);
            }
            if state.is_member(user) {
                return Err(ConversationRejection::AlreadyMember(user.clone()));
            }
            let count = state.members.len() + 1;
            if count > MAX_GROUP_MEMBERS {
                return Err(ConversationRejection::TooManyMembers {
                    count,
                    max: MAX_GROUP_MEMBERS,
                });
            }
            vec![E::ConversationMemberAdded {
                conversation,
                user: user.clone(),
                by: by.clone(),
            }]
        }
        C::Leave { user } => {
            member(state, user)?;
            if !group {
                return Err(ConversationRejection::CannotLeaveDirect);
            }
            vec![E::ConversationMemberLeft {
                conversation,
                user: user.clone(),
            }]
        }
        C::Hide { user } => {
            if !state.is_visible_to(user) {
                member(state, user)?;
                return Ok(Vec::new());
            }
            vec![E::ConversationHidden {
                conversation,
                user: user.clone(),
            }]
        }
        C::Show { user } => {
            member(state, user)?;
            if state.is_visible_to(user) {
                return Ok(Vec::new());
            }
            vec![E::ConversationShown {
                conversation,
                user: user.clone(),
            }]
        }
        C::Message(action) => {
            member(state, action.actor())?;
            let Some(fact) = state.messages.decide(action, false)? else {
                return Ok(Vec::new());
            };
            let posted = matches!(action, MessageAction::Post { .. });
            let mut events = vec![event_of(conversation, fact)];
            if posted {
                events.extend(state.members.iter().filter(|(_, hidden)| **hidden).map(
                    |(user, _)| E::ConversationShown {
                        conversation,
                        user: user.clone(),
                    },
                ));
            }
            events
        }
    })
}

fn start(command: &ConversationCommand) -> Result<Vec<ConversationEvent>, ConversationRejection> {
    let ConversationCommand::Start {
        conversation,
        by,
        with,
        first_message,
    } = command
    else {
        return Err(ConversationRejection::NotStarted);
    };
    let mut members = vec![by.clone()];
    for u in with {
        if !members.contains(u) {
            members.push(u.clone());
        }
    }
    match members.len() {
        1 => return Err(ConversationRejection::NobodyElse(by.clone())),
        n if n > MAX_GROUP_MEMBERS => {
            return Err(ConversationRejection::TooManyMembers {
                count: n,
                max: MAX_GROUP_MEMBERS,
            });
        }
        _ => {}
    }
    let kind = if members.len() == 2 {
        ConversationKind::Direct
    } else {
        ConversationKind::Group
    };
    let mut events = vec![ConversationEvent::ConversationStarted {
        conversation: *conversation,
        kind,
        started_by: by.clone(),
        members,
    }];
    if let Some((message, draft)) = first_message {
        // A fresh conversation has no messages: the first one is checked against an empty
        // history, which validates its text, attachments and (absent) quote.
        let action = MessageAction::Post {
            message: *message,
            author: by.clone(),
            draft: draft.clone(),
        };
        if let Some(fact) = Conversation::default().messages.decide(&action, false)? {
            events.push(event_of(*conversation, fact));
        }
    }
    Ok(events)
}

fn member<'a>(state: &'a Conversation, user: &UserId) -> Result<&'a bool, ConversationRejection> {
    state
        .members
        .get(user)
        .ok_or_else(|| ConversationRejection::NotMember(user.clone()))
}

message_events! {
    ConversationEvent, conversation: ConversationId;
    Posted => DirectMessagePosted,
    Edited => DirectMessageEdited,
    Deleted => DirectMessageDeleted,
    ReactionAdded => DirectReactionAdded,
    ReactionRemoved => DirectReactionRemoved,
    Followed => DirectMessageFollowed,
    Unfollowed => DirectMessageUnfollowed,
    Starred => DirectMessageStarred,
    Unstarred => DirectMessageUnstarred,
    Reported => DirectMessageReported,
}
