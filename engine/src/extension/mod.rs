//! The extension aggregate: one user's line, one stream per extension. It owns the device
//! registrations (several contacts, refreshed, expired by deadline), the calls the extension is
//! part of as the call side reports them, the line state derived from both, the presence the user
//! shows with its automatic actions, and the routing settings (DND, call forward, follow-me, call
//! waiting). Because all of these fold into one state, [`Extension::route_incoming`] answers from
//! the same facts the panel shows, so presence, DND and routing cannot disagree. It knows nothing
//! of the directory: whatever it needs from there (the chosen presence state's type, the user's
//! presence rules) travels inside the command.

mod command;
mod decide;
mod routing;
mod state;
#[cfg(test)]
mod tests;

pub use command::{ExtensionCommand, PresenceChoice, RegisterContact};
pub use decide::ExtensionRejection;
pub use routing::{
    DeclineReason, FollowMePlan, ForwardReason, NoAnswerTarget, RingPlan, RingTarget,
    RouteDecision, VoicemailGreeting,
};
pub use state::{Contact, Extension, FollowMe, Forwards, NoAnswerForward, Presence};

/// How long an extension rings before its no-answer handling when nothing else says so.
pub const DEFAULT_RING_MS: u64 = 30_000;

/// Most contacts one extension may have registered at once.
pub const MAX_CONTACTS: usize = 10;
