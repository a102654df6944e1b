//! The registrar's read model of registrations: each extension's state folded from its stream,
//! kept current from the extension actors' live feed and caught up from the log when the feed
//! cannot vouch for it. The extension actor is the only writer; the registrar reads
//! here what a `200 OK` must list (every binding with its remaining lifetime) and what a refresh
//! would change, at least as new as the version its last command reported, so the answer always
//! reflects what is durably in the log and nothing else.

use chrono::{DateTime, Utc};
use engine::extension::{Contact, Extension};
use engine::runtime::{Folded, Follower};

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

/// The extensions' states as the registrar and routing read them: followed from the extension
/// actors' live feed, started from the engine's start-up seeds ([`Follower::of`]), and caught up
/// from the log only when the feed cannot vouch for one.
pub(crate) type Bindings = Follower<Extension>;
