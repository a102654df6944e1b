//! How failed sign-ins are held back, so that guessing passwords is slow without letting anyone
//! lock a user out by failing on purpose. Three counters, each over a sliding window
//! ([`FAILURE_WINDOW`] after the last failure it counts):
//!
//! - per (source address, account): after [`PAIR_FAILURES`] failures that address may not try
//!   that account again until the window passes — the guesser is stopped, the account's owner
//!   (signing in from elsewhere) is not;
//! - per source address: after [`ADDRESS_FAILURES`] failures over all accounts, that address
//!   may not sign in at all until the window passes (stops one address from spraying names);
//! - per account, from anywhere: after [`ACCOUNT_FREE_FAILURES`] failures each further attempt
//!   waits a little before its password is checked, doubling with every failure up to
//!   [`ACCOUNT_MAX_DELAY`]. It never refuses: the real owner always gets in, at worst a few
//!   seconds late, however many addresses guess at their name.
//!
//! The source address is the TCP peer: put a proxy in front and every client shares its
//! address. A successful sign-in clears its (address, account) and account counters, not the
//! address's: one valid account cannot buy an address more guesses at others.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};

use super::ApiError;

/// Failed sign-ins from one address for one account before that pair is refused.
pub(crate) const PAIR_FAILURES: u32 = 5;
/// Failed sign-ins from one address, over all accounts, before the address is refused.
pub(crate) const ADDRESS_FAILURES: u32 = 20;
/// Failed sign-ins for one account, from anywhere, before its attempts are slowed down.
pub(crate) const ACCOUNT_FREE_FAILURES: u32 = 3;
/// The first slow-down; it doubles with every further failure.
pub(crate) const ACCOUNT_BASE_DELAY: Duration = Duration::from_millis(250);
/// The longest an attempt is held back.
pub(crate) const ACCOUNT_MAX_DELAY: Duration = Duration::from_secs(4);
/// How long a failure is remembered after the last one of its counter.
pub(crate) const FAILURE_WINDOW: TimeDelta = TimeDelta::minutes(5);

/// Failures of one counter: how many, and when the last one was.
#[derive(Debug, Clone, Copy)]
struct Count {
    n: u32,
    last: DateTime<Utc>,
}

impl Count {
    fn wait(&self, now: DateTime<Utc>) -> i64 {
        (self.last + FAILURE_WINDOW - now).num_seconds().max(1)
    }
}

#[derive(Debug, Default)]
struct Failures {
    pairs: HashMap<(Option<IpAddr>, String), Count>,
    addresses: HashMap<Option<IpAddr>, Count>,
    accounts: HashMap<String, Count>,
}

fn forget_old<K: Eq + Hash>(map: &mut HashMap<K, Count>, now: DateTime<Utc>) {
    map.retain(|_, c| now - c.last < FAILURE_WINDOW);
}

fn count<K: Eq + Hash>(map: &mut HashMap<K, Count>, key: K, now: DateTime<Utc>) {
    let c = map.entry(key).or_insert(Count { n: 0, last: now });
    c.n = c.n.saturating_add(1);
    c.last = now;
}

/// Remembers failed sign-ins; see the module docs. `account` is whatever names the account
/// consistently (the resolved `user@tenant`, else the name as typed, lower-cased).
#[derive(Debug, Default)]
pub(crate) struct Throttle {
    failures: Mutex<Failures>,
}

impl Throttle {
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `from` may try `account` now: how long to hold the attempt back before checking
    /// its password, or a refusal (429) for a locked pair or address.
    pub(crate) fn check(
        &self,
        from: Option<IpAddr>,
        account: &str,
        now: DateTime<Utc>,
    ) -> Result<Duration, ApiError> {
        let mut f = self.failures();
        forget_old(&mut f.pairs, now);
        forget_old(&mut f.addresses, now);
        forget_old(&mut f.accounts, now);
        let refuse = |message: String| {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        };
        if let Some(c) = f.addresses.get(&from)
            && c.n >= ADDRESS_FAILURES
        {
            return Err(refuse(format!(
                "too many failed sign-ins from your address; try again in {} s",
                c.wait(now)
            )));
        }
        if let Some(c) = f.pairs.get(&(from, account.to_owned()))
            && c.n >= PAIR_FAILURES
        {
            return Err(refuse(format!(
                "too many failed sign-ins for this name from your address; try again in {} s",
                c.wait(now)
            )));
        }
        // Failures beyond the free ones, this attempt included.
        let over = f
            .accounts
            .get(account)
            .map_or(0, |c| (c.n + 1).saturating_sub(ACCOUNT_FREE_FAILURES));
        Ok(if over == 0 {
            Duration::ZERO
        } else {
            ACCOUNT_BASE_DELAY
                .saturating_mul(1 << (over - 1).min(16))
                .min(ACCOUNT_MAX_DELAY)
        })
    }

    /// A failed attempt by `from` at `account`.
    pub(crate) fn failed(&self, from: Option<IpAddr>, account: &str, now: DateTime<Utc>) {
        let mut f = self.failures();
        count(&mut f.pairs, (from, account.to_owned()), now);
        count(&mut f.addresses, from, now);
        count(&mut f.accounts, account.to_owned(), now);
    }

    /// `from` signed in to `account`.
    pub(crate) fn succeeded(&self, from: Option<IpAddr>, account: &str) {
        let mut f = self.failures();
        f.pairs.remove(&(from, account.to_owned()));
        f.accounts.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn a_guesser_locks_out_only_their_own_address() {
        let t = Throttle::default();
        let now = DateTime::UNIX_EPOCH;
        for _ in 0..PAIR_FAILURES {
            assert!(t.check(ip(1), "1011@acme", now).is_ok());
            t.failed(ip(1), "1011@acme", now);
        }
        let refused = t.check(ip(1), "1011@acme", now).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.body.message.contains("from your address"),
            "{refused}"
        );
        // The owner, elsewhere: never refused, only held back a little.
        let delay = t.check(ip(2), "1011@acme", now).unwrap();
        assert!(
            delay > Duration::ZERO && delay <= ACCOUNT_MAX_DELAY,
            "{delay:?}"
        );
        // The guesser's other names are not locked by this pair.
        assert_eq!(t.check(ip(1), "1001@acme", now).unwrap(), Duration::ZERO);
        // The window passes.
        assert!(t.check(ip(1), "1011@acme", now + FAILURE_WINDOW).is_ok());
        // A success clears the pair and the account's slow-down.
        t.failed(ip(3), "1002@acme", now);
        t.succeeded(ip(3), "1002@acme");
        let f = t.failures();
        assert!(!f.accounts.contains_key("1002@acme"));
        assert!(!f.pairs.contains_key(&(ip(3), "1002@acme".to_owned())));
        assert_eq!(f.addresses[&ip(3)].n, 1, "the address keeps its count");
    }

    #[test]
    fn an_address_spraying_names_is_stopped_for_every_name() {
        let t = Throttle::default();
        let now = DateTime::UNIX_EPOCH;
        for i in 0..ADDRESS_FAILURES {
            let name = format!("user{i}");
            assert!(t.check(ip(9), &name, now).is_ok(), "attempt {i}");
            t.failed(ip(9), &name, now);
        }
        let refused = t.check(ip(9), "anyone-else", now).unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.body.message.contains("from your address"));
        assert_eq!(t.check(ip(10), "anyone-else", now).unwrap(), Duration::ZERO);
        // A success does not buy the address more guesses.
        t.succeeded(ip(9), "user0");
        assert!(t.check(ip(9), "anyone-else", now).is_err());
    }

    #[test]
    fn failures_from_everywhere_slow_an_account_down_but_never_lock_it() {
        let t = Throttle::default();
        let now = DateTime::UNIX_EPOCH;
        let mut delays = Vec::new();
        // A thousand addresses, four guesses each: none of them is locked, and neither is the
        // owner; the delay grows and stays capped.
        for a in 0..1000u32 {
            let from = Some(IpAddr::from(a.to_be_bytes()));
            for _ in 0..PAIR_FAILURES - 1 {
                delays.push(t.check(from, "1011@acme", now).expect("never refused"));
                t.failed(from, "1011@acme", now);
            }
        }
        let owner = t
            .check(ip(200), "1011@acme", now)
            .expect("the owner may try");
        assert_eq!(owner, ACCOUNT_MAX_DELAY);
        let first: Vec<_> = delays[..6].iter().map(Duration::as_millis).collect();
        assert_eq!(first, [0, 0, 0, 250, 500, 1000]);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert!(delays.iter().all(|d| *d <= ACCOUNT_MAX_DELAY));
        assert_eq!(
            t.check(ip(200), "1011@acme", now + FAILURE_WINDOW).unwrap(),
            Duration::ZERO
        );
    }
}
