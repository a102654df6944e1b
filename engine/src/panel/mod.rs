//! The call panel's watch list: one user's pinned cards and open panel connections, folded from
//! their panel stream (`panel-<tenant>.<user>`). [`WatchList`] is the aggregate — a pure `decide`
//! and `evolve` over [`PanelEvent`]s like every other one here; the web layer runs it against
//! the log, and replay folds panel streams with it.
//!
//! Only user cards are pinned from the panel today; queue and conference cards are kept in
//! order if the stream has them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use events::ids::{PanelSessionId, UserId};
use events::model::{PanelCard, PanelCloseReason, PanelEvent, ResyncMode};

use crate::Aggregate;

/// Most cards one watch list holds.
pub const MAX_PINNED: usize = 500;

/// A user's watch list and open panel connections, folded from their panel stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchList {
    cards: Vec<PanelCard>,
    open: BTreeSet<PanelSessionId>,
}

/// What can be asked of a watch list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchCommand {
    /// Pin `card` just before `before`, or at the end (also when `before` is not pinned).
    Pin {
        user: UserId,
        card: PanelCard,
        before: Option<PanelCard>,
    },
    Unpin {
        user: UserId,
        card: PanelCard,
    },
    /// Move `card` just before `before`, or to the end (also when `before` is not pinned).
    Move {
        user: UserId,
        card: PanelCard,
        before: Option<PanelCard>,
    },
    OpenSession {
        user: UserId,
        session: PanelSessionId,
        user_agent: Option<String>,
        remote_addr: Option<String>,
    },
    Resynced {
        user: UserId,
        session: PanelSessionId,
        from: Option<GlobalPosition>,
        to: GlobalPosition,
        mode: ResyncMode,
    },
    CloseSession {
        user: UserId,
        session: PanelSessionId,
        reason: PanelCloseReason,
        last_position: GlobalPosition,
        duration_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchRejection {
    #[error("that card is already pinned")]
    AlreadyPinned,
    #[error("that card is not pinned")]
    NotPinned,
    #[error("the watch list is full ({MAX_PINNED} cards)")]
    Full,
    #[error("that panel connection is not open")]
    SessionNotOpen,
}

impl WatchList {
    /// The pinned cards, in order.
    pub fn cards(&self) -> &[PanelCard] {
        &self.cards
    }

    /// Whether the panel connection `session` is open.
    pub fn is_open(&self, session: &PanelSessionId) -> bool {
        self.open.contains(session)
    }

    fn index_of(&self, card: &PanelCard) -> Option<usize> {
        self.cards.iter().position(|c| c == card)
    }
}

fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Aggregate for WatchList {
    type Command = WatchCommand;
    type Event = PanelEvent;
    type Rejection = WatchRejection;

    fn decide(
        &self,
        command: &WatchCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<PanelEvent>, WatchRejection> {
        use PanelEvent as E;
        use WatchCommand as C;
        Ok(match command {
            C::Pin { user, card, before } => {
                if self.index_of(card).is_some() {
                    return Err(WatchRejection::AlreadyPinned);
                }
                if self.cards.len() >= MAX_PINNED {
                    return Err(WatchRejection::Full);
                }
                let index = before
                    .as_ref()
                    .and_then(|b| self.index_of(b))
                    .unwrap_or(self.cards.len());
                vec![E::PanelCardPinned {
                    user: user.clone(),
                    card: card.clone(),
                    index: small(index),
                }]
            }
            C::Unpin { user, card } => {
                self.index_of(card).ok_or(WatchRejection::NotPinned)?;
                vec![E::PanelCardUnpinned {
                    user: user.clone(),
                    card: card.clone(),
                }]
            }
            C::Move { user, card, before } => {
                let from = self.index_of(card).ok_or(WatchRejection::NotPinned)?;
                let mut rest = self.cards.clone();
                rest.remove(from);
                let to = before
                    .as_ref()
                    .and_then(|b| rest.iter().position(|c| c == b))
                    .unwrap_or(rest.len());
                let to = small(to);
                if small(from) == to {
                    Vec::new()
                } else {
                    vec![E::PanelCardMoved {
                        user: user.clone(),
                        card: card.clone(),
                        from: small(from),
                        to,
                    }]
                }
            }
            C::OpenSession {
                user,
                session,
                user_agent,
                remote_addr,
            } => vec![E::PanelSessionOpened {
                user: user.clone(),
                session: *session,
                user_agent: user_agent.clone(),
                remote_addr: remote_addr.clone(),
            }],
            C::Resynced {
                user,
                session,
                from,
                to,
                mode,
            } => {
                if !self.is_open(session) {
                    return Err(WatchRejection::SessionNotOpen);
                }
                vec![E::PanelSessionResynced {
                    user: user.clone(),
                    session: *session,
                    from: *from,
                    to: *to,
                    mode: *mode,
                }]
            }
            C::CloseSession {
                user,
                session,
                reason,
                last_position,
                duration_ms,
            } => {
                if !self.is_open(session) {
                    return Err(WatchRejection::SessionNotOpen);
                }
                vec![E::PanelSessionClosed {
                    user: user.clone(),
                    session: *session,
                    reason: *reason,
                    last_position: *last_position,
                    duration_ms: *duration_ms,
                }]
            }
        })
    }

    fn evolve(&mut self, event: &PanelEvent, _at: DateTime<Utc>) {
        use PanelEvent as E;
        match event {
            E::PanelCardPinned { card, index, .. } => {
                if self.index_of(card).is_none() {
                    let at = (*index as usize).min(self.cards.len());
                    self.cards.insert(at, card.clone());
                }
            }
            E::PanelCardUnpinned { card, .. } => {
                if let Some(i) = self.index_of(card) {
                    self.cards.remove(i);
                }
            }
            E::PanelCardMoved { card, to, .. } => {
                if let Some(i) = self.index_of(card) {
                    let c = self.cards.remove(i);
                    let at = (*to as usize).min(self.cards.len());
                    self.cards.insert(at, c);
                }
            }
            E::PanelSessionOpened { session, .. } => {
                self.open.insert(*session);
            }
            E::PanelSessionResynced { .. } => {}
            E::PanelSessionClosed { session, .. } => {
                self.open.remove(session);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::given;

    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn card(s: &str) -> PanelCard {
        PanelCard::User(u(s))
    }

    #[test]
    fn pins_at_an_index_moves_and_unpins() {
        let me = u("1001");
        given::<WatchList>([
            PanelEvent::PanelCardPinned {
                user: me.clone(),
                card: card("1002"),
                index: 0,
            },
            PanelEvent::PanelCardPinned {
                user: me.clone(),
                card: card("1003"),
                index: 9,
            },
        ])
        .when(WatchCommand::Pin {
            user: me.clone(),
            card: card("1004"),
            before: Some(card("9999")),
        })
        .then([PanelEvent::PanelCardPinned {
            user: me.clone(),
            card: card("1004"),
            index: 2,
        }])
        .when(WatchCommand::Move {
            user: me.clone(),
            card: card("1004"),
            before: Some(card("1002")),
        })
        .then([PanelEvent::PanelCardMoved {
            user: me.clone(),
            card: card("1004"),
            from: 2,
            to: 0,
        }])
        .when(WatchCommand::Pin {
            user: me.clone(),
            card: card("1002"),
            before: None,
        })
        .then_rejected(WatchRejection::AlreadyPinned)
        .when(WatchCommand::Unpin {
            user: me.clone(),
            card: card("1003"),
        })
        .then([PanelEvent::PanelCardUnpinned {
            user: me.clone(),
            card: card("1003"),
        }])
        .when(WatchCommand::Unpin {
            user: me.clone(),
            card: card("1003"),
        })
        .then_rejected(WatchRejection::NotPinned)
        .when(WatchCommand::Move {
            user: me.clone(),
            card: card("1002"),
            before: None,
        })
        .then_nothing()
        .when(WatchCommand::Move {
            user: me.clone(),
            card: card("1002"),
            before: Some(card("1004")),
        })
        .then([PanelEvent::PanelCardMoved {
            user: me,
            card: card("1002"),
            from: 1,
            to: 0,
        }]);
    }

    #[test]
    fn sessions_close_only_when_open() {
        let me = u("1001");
        let s = PanelSessionId::parse("00000000-0000-0000-0000-000000000001").unwrap();
        given::<WatchList>([])
            .when(WatchCommand::CloseSession {
                user: me.clone(),
                session: s,
                reason: PanelCloseReason::BrowserClosed,
                last_position: GlobalPosition(3),
                duration_ms: 10,
            })
            .then_rejected(WatchRejection::SessionNotOpen)
            .when(WatchCommand::OpenSession {
                user: me.clone(),
                session: s,
                user_agent: None,
                remote_addr: None,
            })
            .then([PanelEvent::PanelSessionOpened {
                user: me.clone(),
                session: s,
                user_agent: None,
                remote_addr: None,
            }])
            .when(WatchCommand::CloseSession {
                user: me.clone(),
                session: s,
                reason: PanelCloseReason::Logout,
                last_position: GlobalPosition(3),
                duration_ms: 10,
            })
            .then([PanelEvent::PanelSessionClosed {
                user: me,
                session: s,
                reason: PanelCloseReason::Logout,
                last_position: GlobalPosition(3),
                duration_ms: 10,
            }]);
    }
}
