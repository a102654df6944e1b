//! The registrar's read model of registrations: each extension's state folded from its stream,
//! kept current from the extension actors' live feed and caught up from the log when the feed
//! cannot vouch for it. The extension actor is the only writer; the registrar reads
//! here what a `200 OK` must list (every binding with its remaining lifetime) and what a refresh
//! would change, at least as new as the version its last command reported, so the answer always
//! reflects what is durably in the log and nothing else.

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use engine::extension::{Contact, Extension};
use engine::runtime::{Folded, Follower};
use events::{EventLog, LogError, StreamId};

/// One extension as the log holds it.
pub(crate) type Snapshot = Folded<Extension>;

/// `snapshot`'s bindings with their remaining whole seconds at `now` (expired ones left out).
pub(crate) fn live_contacts(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<(&Contact, u32)> {
    snapshot
        .state
        .contacts()
        .values()
        .filter_map(|c| {
            let left = (c.expires_at - now).num_seconds();
            (left > 0).then(|| (c, u32::try_from(left).unwrap_or(u32::MAX)))
        })
        .collect()
}

/// Cached extension states: followed from the extension actors' live feed once
/// [`Bindings::follow`] was called, else caught up from the log on every read.
#[derive(Debug)]
pub(crate) struct Bindings {
    log: Arc<dyn EventLog>,
    follower: OnceLock<Follower<Extension>>,
}

impl Bindings {
    pub(crate) fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            follower: OnceLock::new(),
        }
    }

    /// Keeps the states current with `follower` (the extension registry's: its live feed,
    /// subscribed before anything is read, and its start-up seeds), so most reads need no query
    /// of the log.
    pub(crate) fn follow(&self, follower: Follower<Extension>) {
        let _ = self.follower.set(follower);
    }

    /// The state of `stream` as of now, including at least version `at_least` (what a command
    /// that has completed reported).
    pub(crate) async fn current(
        &self,
        stream: &StreamId,
        at_least: u64,
    ) -> Result<Snapshot, LogError> {
        if let Some(follower) = self.follower.get() {
            return follower.current(stream, at_least).await;
        }
        let mut snapshot = Snapshot::default();
        snapshot.catch_up(&*self.log, stream).await?;
        Ok(snapshot)
    }
}
