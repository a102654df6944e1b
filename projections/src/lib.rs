//! Projections: folds over the event log into the panel view, CDRs, statistics, the queue board,
//! voicemail and chat views, driven by a checkpointed runner. Projections read the log and never
//! the other way round; this crate never depends on `engine`. Grown by the call-panel issue.

pub use events;
