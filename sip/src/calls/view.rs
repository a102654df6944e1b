//! One call as its stream holds it, caught up from the log on demand. The call actor is the
//! only writer; a session reads back here what its commands (and the actor's own ring timer)
//! recorded, so everything it does on the wire follows what is durably in the log.

use engine::Aggregate;
use engine::call::Call;
use events::model::CallEvent;
use events::{EventLog, LogError, StreamId, codec};

/// Events read per page while catching up.
const PAGE: usize = 256;

/// A call folded from its stream up to `version`.
#[derive(Debug, Default)]
pub(crate) struct CallView {
    pub(crate) version: u64,
    pub(crate) state: Call,
}

impl CallView {
    /// Folds what the stream holds beyond `version`; whether anything was new.
    pub(crate) async fn catch_up(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamId,
    ) -> Result<bool, LogError> {
        let start = self.version;
        loop {
            let page = log.read_stream(stream, self.version, PAGE).await?;
            let full = page.len() == PAGE;
            for stored in &page {
                let corrupt = |detail: String| LogError::Corrupt {
                    target: stream.to_string(),
                    detail,
                };
                let recorded = codec::decode(stored).map_err(|e| corrupt(e.to_string()))?;
                let recorded = recorded.narrow::<CallEvent>().map_err(|other| {
                    corrupt(format!(
                        "{} at version {} is not a call event",
                        other.event.event_type(),
                        other.version
                    ))
                })?;
                self.state
                    .evolve(&recorded.event, recorded.metadata.occurred_at);
                self.version = recorded.version;
            }
            if !full {
                return Ok(self.version > start);
            }
        }
    }
}
