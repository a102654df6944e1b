//! Aggregate counters of everything the edge refused, and the periodic summary line. Security
//! rejections are never logged one line per packet (an attacker would choose our log volume);
//! they are counted here, and one `warn` line per reporting period lists what changed. A new ban
//! is the only per-source line, at most one per source per ban period.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sanity::RejectKind;

/// How an authentication attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    /// No credentials for our realm: challenged.
    Challenged,
    /// A nonce of ours that expired: challenged with `stale=true`.
    Stale,
    /// A nonce not ours, altered, or issued to another address.
    InvalidNonce,
    /// A nonce count used before.
    Replay,
    /// Credentials we cannot parse or do not support.
    BadCredentials,
    /// The digest `uri` is not the Request-URI.
    UriMismatch,
    /// The authenticated user is not the To user.
    IdentityMismatch,
    /// No such account (answered exactly like a wrong password).
    UnknownUser,
    /// The response does not match.
    WrongPassword,
    Accepted,
}

const OUTCOMES: usize = 10;

impl AuthOutcome {
    const ALL: [AuthOutcome; OUTCOMES] = [
        Self::Challenged,
        Self::Stale,
        Self::InvalidNonce,
        Self::Replay,
        Self::BadCredentials,
        Self::UriMismatch,
        Self::IdentityMismatch,
        Self::UnknownUser,
        Self::WrongPassword,
        Self::Accepted,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Challenged => "challenged",
            Self::Stale => "stale",
            Self::InvalidNonce => "invalid_nonce",
            Self::Replay => "replay",
            Self::BadCredentials => "bad_credentials",
            Self::UriMismatch => "uri_mismatch",
            Self::IdentityMismatch => "identity_mismatch",
            Self::UnknownUser => "unknown_user",
            Self::WrongPassword => "wrong_password",
            Self::Accepted => "accepted",
        }
    }

    /// Whether this counts against the source's failure budget.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Self::InvalidNonce
                | Self::Replay
                | Self::BadCredentials
                | Self::UriMismatch
                | Self::IdentityMismatch
                | Self::UnknownUser
                | Self::WrongPassword
        )
    }
}

/// A snapshot of the counters since the edge started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityStats {
    /// Packets and messages dropped because their source is banned.
    pub banned_drops: u64,
    /// Bans issued.
    pub bans: u64,
    /// Requests refused by the sanity checks, by kind (only non-zero kinds).
    pub rejected: Vec<(RejectKind, u64)>,
    /// Authentication outcomes (only non-zero ones).
    pub auth: Vec<(AuthOutcome, u64)>,
    /// Requests answered 503 because the edge or an extension was overloaded.
    pub overloaded: u64,
    /// UDP datagrams the intake dropped unanswered while the edge was behind: requests that
    /// would start new work and waited longer than T1, and whatever found the intake full
    /// (their senders retransmit them).
    pub shed: u64,
    /// TCP connections closed at once for exceeding the per-address limit.
    pub tcp_refused: u64,
}

impl SecurityStats {
    pub fn rejected(&self, kind: RejectKind) -> u64 {
        count(&self.rejected, kind)
    }

    pub fn auth(&self, outcome: AuthOutcome) -> u64 {
        count(&self.auth, outcome)
    }

    /// Everything refused (sanity, authentication failures, bans), for "did anything happen".
    pub fn refused(&self) -> u64 {
        self.banned_drops
            + self.rejected.iter().map(|(_, n)| n).sum::<u64>()
            + self
                .auth
                .iter()
                .filter(|(o, _)| o.is_failure())
                .map(|(_, n)| n)
                .sum::<u64>()
            + self.overloaded
            + self.shed
            + self.tcp_refused
    }

    /// `self - earlier`, counter by counter.
    fn since(&self, earlier: &SecurityStats) -> SecurityStats {
        SecurityStats {
            banned_drops: self.banned_drops - earlier.banned_drops,
            bans: self.bans - earlier.bans,
            rejected: difference(&self.rejected, &earlier.rejected),
            auth: difference(&self.auth, &earlier.auth),
            overloaded: self.overloaded - earlier.overloaded,
            shed: self.shed - earlier.shed,
            tcp_refused: self.tcp_refused - earlier.tcp_refused,
        }
    }
}

/// The count of `key` in a list of non-zero counts.
fn count<K: PartialEq>(counts: &[(K, u64)], key: K) -> u64 {
    counts
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(0, |(_, n)| *n)
}

/// `now - before`, key by key, keeping only the keys that grew.
fn difference<K: Copy + PartialEq>(now: &[(K, u64)], before: &[(K, u64)]) -> Vec<(K, u64)> {
    now.iter()
        .map(|(k, n)| (*k, n - count(before, *k)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    banned_drops: AtomicU64,
    bans: AtomicU64,
    rejected: [AtomicU64; RejectKind::ALL.len()],
    auth: [AtomicU64; OUTCOMES],
    overloaded: AtomicU64,
    shed: AtomicU64,
    tcp_refused: AtomicU64,
}

impl Stats {
    pub(crate) fn banned_drop(&self) {
        self.banned_drops.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn ban(&self) {
        self.bans.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn reject(&self, kind: RejectKind) {
        self.rejected[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn auth(&self, outcome: AuthOutcome) {
        if let Some(i) = AuthOutcome::ALL.iter().position(|o| *o == outcome) {
            self.auth[i].fetch_add(1, Ordering::Relaxed);
        }
    }
    pub(crate) fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn shed(&self, count: u64) {
        self.shed.fetch_add(count, Ordering::Relaxed);
    }
    pub(crate) fn tcp_refused(&self) {
        self.tcp_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> SecurityStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SecurityStats {
            banned_drops: load(&self.banned_drops),
            bans: load(&self.bans),
            rejected: RejectKind::ALL
                .iter()
                .map(|k| (*k, load(&self.rejected[k.index()])))
                .filter(|(_, n)| *n > 0)
                .collect(),
            auth: AuthOutcome::ALL
                .iter()
                .zip(&self.auth)
                .map(|(o, n)| (*o, load(n)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            overloaded: load(&self.overloaded),
            shed: load(&self.shed),
            tcp_refused: load(&self.tcp_refused),
        }
    }
}

/// Logs one summary line when anything was refused since `previous`; returns the new baseline.
pub(crate) fn report(
    current: SecurityStats,
    previous: &SecurityStats,
    banned_now: usize,
) -> SecurityStats {
    let delta = current.since(previous);
    if delta.refused() > 0 || delta.bans > 0 {
        let rejected = delta
            .rejected
            .iter()
            .map(|(k, n)| format!("{}={n}", k.label()))
            .collect::<Vec<_>>()
            .join(" ");
        let auth = delta
            .auth
            .iter()
            .filter(|(o, _)| o.is_failure())
            .map(|(o, n)| format!("{}={n}", o.label()))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::warn!(
            target: "ledgerline::sip::security",
            banned_drops = delta.banned_drops,
            new_bans = delta.bans,
            banned_now,
            rejected = %rejected,
            auth_failures = %auth,
            overloaded = delta.overloaded,
            shed = delta.shed,
            tcp_refused = delta.tcp_refused,
            "SIP edge refused traffic since the last report"
        );
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_snapshot_and_difference() {
        let s = Stats::default();
        s.reject(RejectKind::CSeq);
        s.reject(RejectKind::CSeq);
        s.auth(AuthOutcome::WrongPassword);
        s.auth(AuthOutcome::Accepted);
        s.banned_drop();
        let first = s.snapshot();
        assert_eq!(first.rejected(RejectKind::CSeq), 2);
        assert_eq!(first.rejected(RejectKind::Via), 0);
        assert_eq!(first.auth(AuthOutcome::WrongPassword), 1);
        // Accepted logins are not refusals.
        assert_eq!(first.refused(), 4);
        s.reject(RejectKind::Via);
        let second = s.snapshot();
        let delta = second.since(&first);
        assert_eq!(delta.rejected, vec![(RejectKind::Via, 1)]);
        assert_eq!(delta.refused(), 1);
        assert_eq!(report(second.clone(), &second, 0), second);
    }

    /// Captures what `f` logs.
    fn logged(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer(Arc::new(Mutex::new(Vec::new())));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn one_summary_line_per_period_lists_what_changed_and_nothing_is_logged_when_quiet() {
        let s = Stats::default();
        for _ in 0..1_000 {
            s.reject(RejectKind::Malformed);
            s.banned_drop();
        }
        s.auth(AuthOutcome::WrongPassword);
        s.auth(AuthOutcome::Accepted);
        s.ban();
        let mut baseline = SecurityStats::default();
        let text = logged(|| baseline = report(s.snapshot(), &SecurityStats::default(), 1));
        assert_eq!(text.lines().count(), 1, "{text}");
        for expected in [
            "SIP edge refused traffic",
            "banned_drops=1000",
            "new_bans=1",
            "banned_now=1",
            "rejected=malformed=1000",
            "auth_failures=wrong_password=1",
        ] {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        assert!(!text.contains("accepted"), "{text}");
        // Nothing new: nothing logged.
        let quiet = logged(|| {
            report(s.snapshot(), &baseline, 1);
        });
        assert_eq!(quiet, "");
        s.reject(RejectKind::Via);
        let next = logged(|| {
            report(s.snapshot(), &baseline, 0);
        });
        assert!(
            next.contains("rejected=via=1") && next.contains("banned_drops=0"),
            "{next}"
        );
    }
}
