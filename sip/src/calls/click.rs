//! Click-to-call: the engine calls the user's own phones first, and when one answers, rings the
//! target and bridges the two (third-party call control, RFC 3725). The engine is the user agent
//! client on both legs, so it must make the first offer without knowing either party's media:
//!
//! 1. INVITE every registered phone of the user with a placeholder offer (the engine's address,
//!    the discard port, PCMU/PCMA; see `media`). Every phone answers such an offer, so the
//!    flow works with phones that do not accept an offerless INVITE, and rsipstack's ACK (which
//!    carries no body) completes it.
//! 2. When a phone answers (its SDP `A`), the others are cancelled and the target is routed and
//!    rung like any call, offering `A`.
//! 3. When the target answers (`B`), the user's phone is re-INVITEd with `B`. If its new answer
//!    moved its media, the target is re-INVITEd with it.
//!
//! The call is recorded as one call with origin `ClickToCall` whose caller is the user: `Offer`
//! when the request is made, the target's legs as usual. The aggregate has no event for the
//! user's own phone ringing or answering (see the edge's report), so the user's part is
//! "calling" until the target answers.

use std::sync::Arc;

use events::ids::{CallId, ExtensionNumber, PhoneNumber, TenantId, UserId};

use super::Shared;
use super::route::{Reach, Router, party_of};
use super::session::Session;

/// Why a click-to-call was not placed.
#[derive(Debug, thiserror::Error)]
pub enum ClickToCallError {
    #[error("extension {0} is not in service")]
    NotInService(ExtensionNumber),
    #[error("extension {0} has no registered phone to ring first")]
    NotRegistered(ExtensionNumber),
    #[error("{0} is not an extension of the tenant")]
    UnknownTarget(PhoneNumber),
    #[error("{0} is an external number, and there is no trunk to reach it")]
    NoTrunk(PhoneNumber),
    #[error("the call could not be recorded: {0}")]
    Unavailable(String),
}

/// Places a click-to-call from `user`'s phones to `target`; returns once the call is recorded.
pub(crate) async fn click_to_call(
    shared: &Arc<Shared>,
    tenant: &TenantId,
    user: &ExtensionNumber,
    target: &PhoneNumber,
    requested_by: Option<UserId>,
) -> Result<CallId, ClickToCallError> {
    let now = shared.clock.now();
    let router = Router {
        bindings: &shared.bindings,
        tenant,
        config: &shared.config,
        now,
    };
    let unavailable = |e: events::LogError| ClickToCallError::Unavailable(e.to_string());
    let me = router
        .extension(user)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ClickToCallError::NotInService(user.clone()))?;
    let phones: Vec<Reach> = me
        .contacts()
        .iter()
        .filter(|(_, c)| c.expires_at > now)
        .map(|(id, c)| Reach {
            contact: *id,
            uri: c.contact_uri.clone(),
            transport: c.transport,
            source: c.source.clone(),
        })
        .collect();
    if phones.is_empty() {
        return Err(ClickToCallError::NotRegistered(user.clone()));
    }
    let callee = match ExtensionNumber::parse(target.as_str()) {
        Ok(n) => router.extension(&n).await.map_err(unavailable)?,
        Err(_) => None,
    };
    let Some(callee) = callee.as_ref().and_then(party_of) else {
        return Err(if super::looks_external(target.as_str()) {
            ClickToCallError::NoTrunk(target.clone())
        } else {
            ClickToCallError::UnknownTarget(target.clone())
        });
    };
    let Some(me) = party_of(&me) else {
        return Err(ClickToCallError::NotInService(user.clone()));
    };
    Session::start_originated(
        shared.clone(),
        tenant.clone(),
        me,
        phones,
        (callee, target.clone()),
        requested_by,
    )
    .await
    .map_err(|e| ClickToCallError::Unavailable(e.to_string()))
}
