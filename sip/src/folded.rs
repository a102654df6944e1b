//! One aggregate's stream folded into its state, caught up from the log on demand. The edge's
//! read models (the registrar's `bindings`, a call session's `view`) are these: the actors are
//! the only writers, and the edge reads back here what is durably in the log.

use engine::Aggregate;
use events::{EventLog, LogError, StreamId, codec};

/// Events read per page while catching up.
const PAGE: usize = 256;

/// The state of one stream folded up to `version`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Folded<A> {
    pub(crate) version: u64,
    pub(crate) state: A,
}

impl<A: Aggregate> Folded<A> {
    /// Folds what `stream` holds beyond `version`, each event at its recorded time.
    pub(crate) async fn catch_up(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamId,
    ) -> Result<(), LogError> {
        loop {
            let page = log.read_stream(stream, self.version, PAGE).await?;
            let full = page.len() == PAGE;
            for stored in &page {
                let corrupt = |detail: String| LogError::Corrupt {
                    target: stream.to_string(),
                    detail,
                };
                let recorded = codec::decode(stored).map_err(|e| corrupt(e.to_string()))?;
                let recorded = recorded.narrow::<A::Event>().map_err(|other| {
                    corrupt(format!(
                        "{} at version {} belongs to another aggregate",
                        other.event.event_type(),
                        other.version
                    ))
                })?;
                self.state
                    .evolve(&recorded.event, recorded.metadata.occurred_at);
                self.version = recorded.version;
            }
            if !full {
                return Ok(());
            }
        }
    }
}
