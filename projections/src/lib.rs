//! Projections: folds over the event log into what people see. Projections read the log and
//! never the other way round; this crate never depends on `engine`, it knows the events only.
//!
//! - [`panel`]: the call panel, in memory — a card per user (extension, name, department,
//!   presence, line state, active calls, voicemail count) and counters per department, with
//!   snapshots filtered by department and per-user deltas since a log position for the
//!   websocket layer; [`rate`], the calls per minute of the last hour, by event time.
//! - [`cdr`]: call detail records, one per call leg, stored beside the log (SQLite file or
//!   PostgreSQL database) with their checkpoint in the same transaction; queries by date, user
//!   and department, rendered as JSON or CSV.
//! - [`runner`]: the checkpointed runner — catch up from each projection's checkpoint with
//!   `read_all`, then follow the log live with `subscribe`; [`live`] wires the panel and the
//!   CDRs to one runner for a server.
//! - [`schema`]: applies `migrations/*/V2__projections.sql` (idempotent).
//! - [`bench`]: a synthetic busy log and the rebuild benchmark.
//!
//! Every fold is pure and deterministic: state depends only on the events and their envelopes
//! (positions, `occurred_at`), never on when they arrive, so a rebuild from position 0 gives
//! exactly the state that was built live.

pub mod bench;
pub mod cdr;
pub mod live;
pub mod panel;
pub mod rate;
pub mod runner;
pub mod schema;
#[cfg(test)]
mod testing;

pub use events;

pub use cdr::{Cdr, CdrFold, CdrProjection, CdrQuery, CdrStore, Visibility};
pub use live::LiveProjections;
pub use panel::{PanelHandle, PanelProjection, PanelView};
pub use rate::CallsPerMinute;
pub use runner::{CatchUp, Interest, Projection, Runner};

use events::GlobalPosition;
use events::codec::DecodeError;
use events::log::LogError;

/// Why a projection or the runner stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot decode the event at position {position}: {source}")]
    Decode {
        position: GlobalPosition,
        #[source]
        source: DecodeError,
    },
    #[error("the projection store {target} failed: {detail}")]
    Store { target: String, detail: String },
    #[error("the projection store {target} is not usable: {detail}")]
    Schema { target: String, detail: String },
    #[error("projections cannot be stored in {0}")]
    Unsupported(String),
}
