//! Reading one aggregate's stream back from the log: every event after a version, decoded and
//! narrowed to the aggregate's own event type (an event of another aggregate is corruption), in
//! pages. The actor shell rebuilds from it, start-up provisioning folds with it, and the edges'
//! read models ([`Folded`]) catch up with it.

use events::codec::{self, Recorded};
use events::{EventLog, LogError, StreamId};

use crate::aggregate::Aggregate;

/// Events read per page.
const PAGE: usize = 1024;

/// Hands `each` every event of `stream` after version `after`, in order, narrowed to `A`'s
/// events. Returns the version of the last one (`after` when there were none).
pub async fn for_each_event<A: Aggregate>(
    log: &dyn EventLog,
    stream: &StreamId,
    after: u64,
    mut each: impl FnMut(Recorded<A::Event>),
) -> Result<u64, LogError> {
    let corrupt = |detail: String| LogError::Corrupt {
        target: stream.to_string(),
        detail,
    };
    let mut after = after;
    loop {
        let page = log.read_stream(stream, after, PAGE).await?;
        let full = page.len() == PAGE;
        for stored in &page {
            let recorded = codec::decode(stored).map_err(|e| corrupt(e.to_string()))?;
            let recorded = recorded.narrow::<A::Event>().map_err(|other| {
                corrupt(format!(
                    "{} at version {} belongs to another aggregate",
                    other.event.event_type(),
                    other.version
                ))
            })?;
            after = recorded.version;
            each(recorded);
        }
        if !full {
            return Ok(after);
        }
    }
}

/// The state of one stream folded up to `version`, caught up from the log on demand: a read
/// model of one aggregate for code outside its actor (the actor is the only writer).
#[derive(Debug, Clone, Default)]
pub struct Folded<A> {
    pub version: u64,
    pub state: A,
}

impl<A: Aggregate> Folded<A> {
    /// Folds what `stream` holds beyond `version`, each event at its recorded time.
    pub async fn catch_up(
        &mut self,
        log: &dyn EventLog,
        stream: &StreamId,
    ) -> Result<(), LogError> {
        let state = &mut self.state;
        self.version = for_each_event::<A>(log, stream, self.version, |recorded| {
            state.evolve(&recorded.event, recorded.metadata.occurred_at);
        })
        .await?;
        Ok(())
    }
}
