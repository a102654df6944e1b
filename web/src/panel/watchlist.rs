//! One user's call-panel stream (`panel-<tenant>.<user>`): the pinned watch list and the life
//! of each browser connection, as events. [`WatchList`] is the aggregate — a pure `decide` and
//! `evolve` over [`PanelEvent`]s, like every engine aggregate — and [`WatchLists`] runs it for
//! the web layer: it folds a user's stream on first use, decides one command at a time per user
//! (a per-user lock), appends with the exact expected version (a conflict re-reads the stream
//! and decides again, once), and keeps each user's list so the websocket hub can read it
//! without waiting.
//!
//! Only user cards are pinned from the panel today; queue and conference cards are kept in
//! order if the stream has them.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use engine::Aggregate;
use events::codec::decode;
use events::ids::{PanelSessionId, TenantId, UserId};
use events::model::{PanelCard, PanelCloseReason, PanelEvent, ResyncMode};
use events::{Clock, EventLog, ExpectedVersion, GlobalPosition, IdGen, LogError, StreamId};

/// Most cards one watch list holds.
pub(crate) const MAX_PINNED: usize = 500;

/// A user's watch list and open panel connections, folded from their panel stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WatchList {
    cards: Vec<PanelCard>,
    open: BTreeSet<PanelSessionId>,
}

/// What can be asked of a watch list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WatchCommand {
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
pub(crate) enum WatchRejection {
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
                if !self.open.contains(session) {
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
                if !self.open.contains(session) {
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

/// Why a watch-list command did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    #[error("{0}")]
    Rejected(WatchRejection),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("the panel stream {stream} holds an event that cannot be read: {detail}")]
    Corrupt { stream: StreamId, detail: String },
}

#[derive(Debug, Default)]
struct Entry {
    /// `None` until the stream was folded.
    state: Option<(WatchList, u64)>,
}

type Key = (TenantId, UserId);

/// Runs [`WatchList`] for every user; cheap to clone.
#[derive(Clone)]
pub(crate) struct WatchLists {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    entries: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Entry>>>>,
    /// Each loaded user's cards, for readers that cannot wait.
    published: Mutex<HashMap<Key, Vec<PanelCard>>>,
}

impl fmt::Debug for WatchLists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchLists")
            .field("log", &self.inner.log.describe())
            .finish_non_exhaustive()
    }
}

impl WatchLists {
    pub(crate) fn new(log: Arc<dyn EventLog>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGen>) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                clock,
                ids,
                entries: Mutex::new(HashMap::new()),
                published: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn entry(&self, key: &Key) -> Arc<tokio::sync::Mutex<Entry>> {
        let mut entries = self.inner.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.entry(key.clone()).or_default().clone()
    }

    /// The user's pinned user cards, in order, as last loaded (empty if never loaded).
    pub(crate) fn pinned_users(&self, tenant: &TenantId, user: &UserId) -> Vec<UserId> {
        let published = self
            .inner
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        published
            .get(&(tenant.clone(), user.clone()))
            .map(|cards| {
                cards
                    .iter()
                    .filter_map(|c| match c {
                        PanelCard::User(u) => Some(u.clone()),
                        PanelCard::Queue(_) | PanelCard::Conference(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Folds the user's stream if that was not done yet; returns their cards.
    pub(crate) async fn load(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<PanelCard>, WatchError> {
        let key = (tenant.clone(), user.clone());
        let entry = self.entry(&key);
        let mut entry = entry.lock().await;
        let (state, _) = self.loaded(&key, &mut entry).await?;
        Ok(state.cards.clone())
    }

    async fn loaded<'e>(
        &self,
        key: &Key,
        entry: &'e mut Entry,
    ) -> Result<&'e (WatchList, u64), WatchError> {
        if entry.state.is_none() {
            let folded = self.fold(key).await?;
            self.publish(key, &folded.0);
            entry.state = Some(folded);
        }
        entry.state.as_ref().ok_or_else(|| WatchError::Corrupt {
            stream: StreamId::panel(&key.0, &key.1),
            detail: "not loaded".into(),
        })
    }

    async fn fold(&self, (tenant, user): &Key) -> Result<(WatchList, u64), WatchError> {
        let stream = StreamId::panel(tenant, user);
        let mut state = WatchList::default();
        let mut version = 0;
        loop {
            let page = self.inner.log.read_stream(&stream, version, 1024).await?;
            if page.is_empty() {
                break;
            }
            for stored in &page {
                let recorded = decode(stored).map_err(|e| WatchError::Corrupt {
                    stream: stream.clone(),
                    detail: e.to_string(),
                })?;
                version = stored.version;
                if let Ok(event) = PanelEvent::try_from(recorded.event) {
                    state.evolve(&event, recorded.metadata.occurred_at);
                }
            }
        }
        Ok((state, version))
    }

    fn publish(&self, key: &Key, state: &WatchList) {
        self.inner
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), state.cards.clone());
    }

    /// Decides `command` on the user's list and appends what it produced; returns the events
    /// (none: nothing to change).
    pub(crate) async fn execute(
        &self,
        tenant: &TenantId,
        user: &UserId,
        command: WatchCommand,
    ) -> Result<Vec<PanelEvent>, WatchError> {
        let key = (tenant.clone(), user.clone());
        let entry = self.entry(&key);
        let mut entry = entry.lock().await;
        let stream = StreamId::panel(tenant, user);
        for attempt in 0..2 {
            let (state, version) = self.loaded(&key, &mut entry).await?.clone();
            let now = self.inner.clock.now();
            let produced = state.decide(&command, now).map_err(WatchError::Rejected)?;
            if produced.is_empty() {
                return Ok(produced);
            }
            let (metadata, records) =
                engine::stamp(&produced, now, &*self.inner.ids, Some(tenant), None, None);
            match self
                .inner
                .log
                .append(&stream, ExpectedVersion::Exact(version), records)
                .await
            {
                Ok(outcome) => {
                    let mut state = state;
                    for (event, meta) in produced.iter().zip(&metadata) {
                        state.evolve(event, meta.occurred_at);
                    }
                    self.publish(&key, &state);
                    entry.state = Some((state, outcome.next_expected));
                    return Ok(produced);
                }
                Err(LogError::WrongExpectedVersion { .. }) if attempt == 0 => {
                    // Someone else wrote the stream (another server on the same log): read it
                    // again and decide on what it holds now.
                    entry.state = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(WatchError::Log(LogError::Backend {
            target: stream.to_string(),
            detail: "the stream kept changing under the command".into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use engine::testing::given;
    use events::log::memory::MemoryLog;
    use events::{ManualClock, SeededIds};

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
        let s = PanelSessionId::from_uuid(uuid::Uuid::from_u128(1));
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

    #[tokio::test]
    async fn the_list_is_stored_in_the_users_stream_and_survives_a_reload() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let clock = Arc::new(ManualClock::at_epoch());
        let ids = Arc::new(SeededIds::new(1));
        let tenant = TenantId::parse("acme").unwrap();
        let me = u("1001");
        let lists = WatchLists::new(log.clone(), clock.clone(), ids.clone());
        for (who, before) in [
            ("1002", None),
            ("1003", Some("1002")),
            ("1004", Some("1002")),
        ] {
            lists
                .execute(
                    &tenant,
                    &me,
                    WatchCommand::Pin {
                        user: me.clone(),
                        card: card(who),
                        before: before.map(card),
                    },
                )
                .await
                .unwrap();
        }
        assert_eq!(
            lists.pinned_users(&tenant, &me),
            vec![u("1003"), u("1004"), u("1002")]
        );
        // Another writer (a second server on the same log) moves a card: the next command
        // here meets a version conflict, re-reads and still applies.
        let other = WatchLists::new(log.clone(), clock.clone(), ids.clone());
        other
            .execute(
                &tenant,
                &me,
                WatchCommand::Move {
                    user: me.clone(),
                    card: card("1002"),
                    before: Some(card("1003")),
                },
            )
            .await
            .unwrap();
        lists
            .execute(
                &tenant,
                &me,
                WatchCommand::Unpin {
                    user: me.clone(),
                    card: card("1004"),
                },
            )
            .await
            .unwrap();
        let fresh = WatchLists::new(log.clone(), clock, ids);
        assert_eq!(
            fresh.load(&tenant, &me).await.unwrap(),
            vec![card("1002"), card("1003")]
        );
        let stored = log
            .read_stream(&StreamId::panel(&tenant, &me), 0, 100)
            .await
            .unwrap();
        assert_eq!(stored.len(), 5);
        assert!(
            stored
                .iter()
                .all(|e| e.record.tenant.as_ref() == Some(&tenant))
        );
    }
}
