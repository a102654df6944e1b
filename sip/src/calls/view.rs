//! One call as its stream holds it, caught up from the log on demand. The call actor is the
//! only writer; a session reads back here what its commands (and the actor's own ring timer)
//! recorded, so everything it does on the wire follows what is durably in the log.

use engine::call::Call;

use engine::runtime::Folded;

/// A call folded from its stream up to `version`.
pub(crate) type CallView = Folded<Call>;
