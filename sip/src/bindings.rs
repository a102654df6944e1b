//! The registrar's read model of registrations: each extension's state folded from its stream,
//! caught up from the log on demand. The extension actor is the only writer; the registrar reads
//! here what a `200 OK` must list (every binding with its remaining lifetime) and what a refresh
//! would change, at least as new as the version its last command reported, so the answer always
//! reflects what is durably in the log and nothing else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use engine::Aggregate;
use engine::extension::{Contact, Extension};
use events::model::ExtensionEvent;
use events::{EventLog, LogError, StreamId, codec};

/// Events read per page while catching up.
const PAGE: usize = 256;

/// One extension as the log holds it.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) version: u64,
    pub(crate) state: Extension,
}

impl Snapshot {
    /// Bindings with their remaining whole seconds at `now` (expired ones left out).
    pub(crate) fn live_contacts(&self, now: DateTime<Utc>) -> Vec<(&Contact, u32)> {
        self.state
            .contacts()
            .values()
            .filter_map(|c| {
                let left = (c.expires_at - now).num_seconds();
                (left > 0).then(|| (c, u32::try_from(left).unwrap_or(u32::MAX)))
            })
            .collect()
    }
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
            cache
                .entry(stream.clone())
                .or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(Snapshot {
                        version: 0,
                        state: Extension::default(),
                    }))
                })
                .clone()
        };
        let mut snapshot = entry.lock().await;
        loop {
            let page = self.log.read_stream(stream, snapshot.version, PAGE).await?;
            let full = page.len() == PAGE;
            for stored in &page {
                let recorded = codec::decode(stored).map_err(|e| LogError::Corrupt {
                    target: stream.to_string(),
                    detail: e.to_string(),
                })?;
                let recorded =
                    recorded
                        .narrow::<ExtensionEvent>()
                        .map_err(|other| LogError::Corrupt {
                            target: stream.to_string(),
                            detail: format!(
                                "{} at version {} is not an extension event",
                                other.event.event_type(),
                                other.version
                            ),
                        })?;
                snapshot
                    .state
                    .evolve(&recorded.event, recorded.metadata.occurred_at);
                snapshot.version = recorded.version;
            }
            if !full {
                return Ok(snapshot.clone());
            }
        }
    }
}
