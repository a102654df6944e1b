//! The registrar's read model of registrations: each extension's state folded from its stream,
//! caught up from the log on demand. The extension actor is the only writer; the registrar reads
//! here what a `200 OK` must list (every binding with its remaining lifetime) and what a refresh
//! would change, at least as new as the version its last command reported, so the answer always
//! reflects what is durably in the log and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use engine::extension::{Contact, Extension};
use events::{EventLog, LogError, StreamId};

use engine::runtime::Folded;

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

/// Cached extension states, caught up from the log.
#[derive(Debug)]
pub(crate) struct Bindings {
    log: Arc<dyn EventLog>,
    cache: Mutex<HashMap<StreamId, Arc<tokio::sync::Mutex<Snapshot>>>>,
}

impl Bindings {
    pub(crate) fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `stream` with everything the log holds now (so at least every event of a
    /// command that has completed).
    pub(crate) async fn current(&self, stream: &StreamId) -> Result<Snapshot, LogError> {
        let entry = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.entry(stream.clone()).or_default().clone()
        };
        let mut snapshot = entry.lock().await;
        snapshot.catch_up(&*self.log, stream).await?;
        Ok(snapshot.clone())
    }
}
