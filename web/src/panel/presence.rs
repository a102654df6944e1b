//! The panel's presence hooks: each user's "on login set status to" and "on browser close or
//! logout set status to" choices, run through their extension's actor
//! (`ExtensionCommand::PanelLogin` / `PanelLogout`), and [`Attendance`], which decides when a
//! user has left the panel without signing out.
//!
//! Signing in runs the login hook and signing out the logout hook, at once. A browser closed
//! (or a tab, or a laptop lid) counts as a logout too: when the last panel websocket of a user
//! closes and none of theirs opens again within the grace period ([`HubConfig::logout_grace`],
//! 30 s by default), the logout hook runs. The grace period is what keeps a page reload (the
//! socket is back within a second or two), a network blip (the page retries every few seconds,
//! at most every 5 s) or a connection the hub dropped as too slow from setting anyone
//! "unavailable". A user away that way who comes back — any socket of theirs opens again, or
//! they sign in — gets the login hook, as a sign-in does. A server restart is no departure:
//! attendance starts empty, and sockets that reconnect after it run no hook.
//!
//! [`HubConfig::logout_grace`]: super::hub::HubConfig::logout_grace

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::extension::ExtensionCommand;
use engine::runtime::{Execute, Instance};
use events::StreamId;
use events::ids::{TenantId, UserId};

use super::PanelState;

/// The environment variable that sets the grace period, in seconds (`0.5` allowed).
pub(crate) const GRACE_VARIABLE: &str = "LEDGERLINE_PANEL_LOGOUT_GRACE";
/// The grace period when nothing else is said.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The grace period from [`GRACE_VARIABLE`], else [`DEFAULT_GRACE`].
pub(crate) fn grace_from_env() -> Duration {
    let value = std::env::var(GRACE_VARIABLE).ok();
    parse_grace(value.as_deref()).unwrap_or_else(|bad| {
        tracing::warn!(
            variable = GRACE_VARIABLE,
            value = %bad,
            "not a number of seconds from 0 to 86400; using {} s",
            DEFAULT_GRACE.as_secs()
        );
        DEFAULT_GRACE
    })
}

/// A grace period given in seconds (`None`: the default); the text back if it is not one.
fn parse_grace(value: Option<&str>) -> Result<Duration, &str> {
    let Some(text) = value else {
        return Ok(DEFAULT_GRACE);
    };
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or(text)
}

/// One user's panel attendance.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Open panel websockets.
    sockets: u32,
    /// Bumped by every sign-in, sign-out and socket opening: a pending departure made before
    /// it no longer counts.
    generation: u64,
    /// Their logout hook ran (signed out, or gone past the grace period) and no login since.
    away: bool,
}

/// Who is on the panel, per user; the bookkeeping behind the module's rules (no I/O).
#[derive(Debug, Default)]
pub(crate) struct Attendance {
    users: Mutex<HashMap<(TenantId, UserId), Seen>>,
}

impl Attendance {
    fn with<T>(&self, tenant: &TenantId, user: &UserId, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        f(users.entry((tenant.clone(), user.clone())).or_default())
    }

    /// The user signed in (their login hook runs).
    pub(crate) fn signed_in(&self, tenant: &TenantId, user: &UserId) {
        self.with(tenant, user, |s| {
            s.generation += 1;
            s.away = false;
        });
    }

    /// The user signed out (their logout hook runs).
    pub(crate) fn signed_out(&self, tenant: &TenantId, user: &UserId) {
        self.with(tenant, user, |s| {
            s.generation += 1;
            s.away = true;
        });
    }

    /// A socket of the user opened; true when they were away (their login hook runs).
    pub(crate) fn opened(&self, tenant: &TenantId, user: &UserId) -> bool {
        self.with(tenant, user, |s| {
            s.sockets += 1;
            s.generation += 1;
            std::mem::take(&mut s.away)
        })
    }

    /// A socket of the user closed; when it was their last, the departure to confirm after the
    /// grace period ([`Attendance::departed`]).
    pub(crate) fn closed(&self, tenant: &TenantId, user: &UserId) -> Option<u64> {
        self.with(tenant, user, |s| {
            s.sockets = s.sockets.saturating_sub(1);
            (s.sockets == 0 && !s.away).then_some(s.generation)
        })
    }

    /// The grace period of departure `generation` is over: true (and the user is away from
    /// now on) when nothing happened meanwhile — their logout hook runs.
    pub(crate) fn departed(&self, tenant: &TenantId, user: &UserId, generation: u64) -> bool {
        self.with(tenant, user, |s| {
            let gone = s.generation == generation && s.sockets == 0 && !s.away;
            if gone {
                s.away = true;
            }
            gone
        })
    }
}

/// Signing in: the login hook.
pub(crate) async fn signed_in(state: &PanelState, tenant: &TenantId, user: &UserId) {
    state.hub.attendance().signed_in(tenant, user);
    run_hook(state, tenant, user, true).await;
}

/// Signing out: the logout hook.
pub(crate) async fn signed_out(state: &PanelState, tenant: &TenantId, user: &UserId) {
    state.hub.attendance().signed_out(tenant, user);
    run_hook(state, tenant, user, false).await;
}

/// A panel socket of the user opened: the login hook if they had left.
pub(crate) async fn socket_opened(state: &PanelState, tenant: &TenantId, user: &UserId) {
    if state.hub.attendance().opened(tenant, user) {
        tracing::debug!(%tenant, %user, "back on the panel after leaving it");
        run_hook(state, tenant, user, true).await;
    }
}

/// A panel socket of the user closed: if it was their last and they are `departing` (not
/// when the server shuts down), the logout hook runs after the grace period unless they come
/// back first.
pub(crate) fn socket_closed(
    state: &Arc<PanelState>,
    tenant: &TenantId,
    user: &UserId,
    departing: bool,
) {
    let last = state.hub.attendance().closed(tenant, user);
    let Some(generation) = last.filter(|_| departing) else {
        return;
    };
    let grace = state.hub.logout_grace();
    let (state, tenant, user) = (state.clone(), tenant.clone(), user.clone());
    actix_web::rt::spawn(async move {
        tokio::time::sleep(grace).await;
        if state.hub.attendance().departed(&tenant, &user, generation) {
            tracing::debug!(%tenant, %user, ?grace, "left the panel without signing out");
            run_hook(&state, &tenant, &user, false).await;
        }
    });
}

/// Runs the user's login or logout hook, if they chose a state for it; a failure is logged, it
/// never blocks signing in or out.
async fn run_hook(state: &PanelState, tenant: &TenantId, user: &UserId, login: bool) {
    let found = state
        .engine
        .read_directory(tenant, |d| {
            let u = d.user(user)?;
            let choice = if login {
                u.settings.on_login.as_ref()
            } else {
                u.settings.on_logout.as_ref()
            }
            .and_then(|s| d.presence_choice(s));
            Some((
                u.extension.clone(),
                choice,
                u.settings.presence_rules.clone(),
            ))
        })
        .flatten();
    let Some((extension, choice, rules)) = found else {
        return;
    };
    if choice.is_none() {
        return;
    }
    let command = if login {
        ExtensionCommand::PanelLogin {
            on_login: choice,
            rules,
        }
    } else {
        ExtensionCommand::PanelLogout {
            on_logout: choice,
            rules,
        }
    };
    let instance = Instance::new(StreamId::extension(tenant, &extension)).in_tenant(tenant.clone());
    if let Err(e) = state
        .engine
        .extensions()
        .try_execute(&instance, Execute::new(command))
        .await
    {
        tracing::warn!(%tenant, %user, error = %e, "the panel presence hook was not applied");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_departure_counts_only_if_nothing_happens_in_its_grace_period() {
        let a = Attendance::default();
        let t = TenantId::parse("acme").unwrap();
        let u = UserId::parse("1001").unwrap();
        a.signed_in(&t, &u);
        assert!(!a.opened(&t, &u), "just signed in: no second login hook");
        assert!(!a.opened(&t, &u));
        assert_eq!(a.closed(&t, &u), None, "another tab is still open");
        let reload = a.closed(&t, &u).expect("the last socket closed");
        // A reload: the socket is back before the grace period ends.
        assert!(!a.opened(&t, &u));
        assert!(!a.departed(&t, &u, reload), "came back in time");
        // The browser closes for good.
        let gone = a.closed(&t, &u).unwrap();
        assert!(a.departed(&t, &u, gone), "the logout hook runs");
        assert!(!a.departed(&t, &u, gone), "once");
        assert!(a.opened(&t, &u), "back later: the login hook runs");
        // An explicit sign-out runs its hook itself; the sockets it closes start nothing.
        a.signed_out(&t, &u);
        assert_eq!(a.closed(&t, &u), None);
        // Sign-in within the grace period of a departure cancels it.
        a.signed_in(&t, &u);
        assert!(!a.opened(&t, &u));
        let gone = a.closed(&t, &u).unwrap();
        a.signed_in(&t, &u);
        assert!(!a.departed(&t, &u, gone));
        // Attendance is per user.
        let other = UserId::parse("1011").unwrap();
        assert!(!a.opened(&t, &other), "unknown (a restart): present");
    }

    #[test]
    fn the_grace_period_is_a_number_of_seconds() {
        assert_eq!(parse_grace(None), Ok(DEFAULT_GRACE));
        assert_eq!(parse_grace(Some(" 0.25 ")), Ok(Duration::from_millis(250)));
        assert_eq!(parse_grace(Some("45")), Ok(Duration::from_secs(45)));
        assert_eq!(parse_grace(Some("soon")), Err("soon"));
        assert_eq!(parse_grace(Some("-1")), Err("-1"));
        assert_eq!(parse_grace(Some("NaN")), Err("NaN"));
        assert_eq!(parse_grace(Some("1e9")), Err("1e9"));
    }
}
