//! One user's call-panel stream (`panel-<tenant>.<user>`): the pinned watch list and the life
//! of each browser connection, as events. [`WatchList`] is the aggregate (in the engine, beside
//! every other one, so replay folds panel streams too) and [`WatchLists`] runs it for the web
//! layer: it folds a user's stream on first use, decides one command at a time per user
//! (a per-user lock), appends with the exact expected version (a conflict re-reads the stream
//! and decides again, once), and keeps each user's list so the websocket hub can read it
//! without waiting.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use engine::Aggregate;
pub(crate) use engine::panel::{WatchCommand, WatchList, WatchRejection};
use engine::runtime::Folded;
use events::ids::{TenantId, UserId};
use events::model::{PanelCard, PanelEvent};
use events::{Clock, EventLog, ExpectedVersion, IdGen, LogError, StreamId};

/// Why a watch-list command did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    #[error("{0}")]
    Rejected(WatchRejection),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// A user's list as folded from their stream; `None` until it was read.
type Entry = Option<Folded<WatchList>>;

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
        let folded = self.loaded(&key, &mut entry).await?;
        Ok(folded.state.cards().to_vec())
    }

    /// The user's list, folded from their stream (and published) if that was not done yet.
    async fn loaded<'e>(
        &self,
        key: &Key,
        entry: &'e mut Entry,
    ) -> Result<&'e Folded<WatchList>, WatchError> {
        let folded = match entry.take() {
            Some(folded) => folded,
            None => {
                let mut folded = Folded::<WatchList>::default();
                folded
                    .catch_up(&*self.inner.log, &StreamId::panel(&key.0, &key.1))
                    .await?;
                self.publish(key, &folded.state);
                folded
            }
        };
        Ok(entry.insert(folded))
    }

    fn publish(&self, key: &Key, state: &WatchList) {
        self.inner
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), state.cards().to_vec());
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
            let Folded { state, version } = self.loaded(&key, &mut entry).await?.clone();
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
                    *entry = Some(Folded {
                        state,
                        version: outcome.next_expected,
                    });
                    return Ok(produced);
                }
                Err(LogError::WrongExpectedVersion { .. }) if attempt == 0 => {
                    // Someone else wrote the stream (another server on the same log): read it
                    // again and decide on what it holds now.
                    *entry = None;
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
    use events::log::memory::MemoryLog;
    use events::{ManualClock, SeededIds};

    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }
    fn card(s: &str) -> PanelCard {
        PanelCard::User(u(s))
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
