//! A direct conversation as its events left it: kind, members and who hid it, and the messages.

use std::collections::BTreeMap;

use events::ids::{ConversationId, MessageId, UserId};
use events::model::{ConversationEvent, ConversationKind};

use crate::room::message::{Message, Messages};

/// A direct-message conversation between two people, or a small group.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    pub(super) conversation: Option<ConversationId>,
    pub(super) kind: Option<ConversationKind>,
    /// Member → whether they hid the conversation.
    pub(super) members: BTreeMap<UserId, bool>,
    pub(super) messages: Messages,
}

impl Conversation {
    pub fn id(&self) -> Option<ConversationId> {
        self.conversation
    }

    pub fn kind(&self) -> Option<ConversationKind> {
        self.kind
    }

    pub fn members(&self) -> impl Iterator<Item = &UserId> {
        self.members.keys()
    }

    pub fn is_member(&self, user: &UserId) -> bool {
        self.members.contains_key(user)
    }

    /// Whether the conversation shows on `user`'s list.
    pub fn is_visible_to(&self, user: &UserId) -> bool {
        self.members.get(user).is_some_and(|hidden| !hidden)
    }

    pub fn message(&self, id: &MessageId) -> Option<&Message> {
        self.messages.get(id)
    }

    pub(super) fn evolve_event(&mut self, event: &ConversationEvent) {
        use ConversationEvent as E;
        match event {
            E::ConversationStarted {
                conversation,
                kind,
                members,
                ..
            } => {
                self.conversation = Some(*conversation);
                self.kind = Some(*kind);
                for m in members {
                    self.members.insert(m.clone(), false);
                }
            }
            E::ConversationMemberAdded { user, .. } => {
                self.members.entry(user.clone()).or_insert(false);
            }
            E::ConversationMemberLeft { user, .. } => {
                self.members.remove(user);
            }
            E::ConversationHidden { user, .. } => self.set_hidden(user, true),
            E::ConversationShown { user, .. } => self.set_hidden(user, false),
            other => {
                if let Some(fact) = super::decide::fact_of(other) {
                    self.messages.apply(fact);
                }
            }
        }
    }

    fn set_hidden(&mut self, user: &UserId, hidden: bool) {
        if let Some(h) = self.members.get_mut(user) {
            *h = hidden;
        }
    }
}
