//! Per-source flood protection: a fixed-window packet budget and a failure budget per source
//! address feeding one temporary ban list (Kamailio's `pike` with its `ipban` table; PJSIP's
//! unidentified-request limit). Packets are counted before they are parsed; failures are the
//! requests refused afterwards (malformed, failed authentication). A source over either budget
//! is banned for `ban_for`, and a banned source is dropped without any reply. Exempt addresses
//! are never counted.
//!
//! Pure bookkeeping: every call takes `now`, so tests drive time by hand. The table is bounded:
//! when it is full, sources with nothing pending are forgotten; if every one is still active, new
//! sources pass uncounted (and are counted as such) rather than the table growing.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::config::FloodConfig;

/// What happened to one packet or failure of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget (or exempt).
    Pass,
    /// The source is banned: drop without reply.
    Banned,
    /// This one went over a budget: the source is banned from now on, and this is dropped.
    NewlyBanned,
}

impl Verdict {
    pub fn passes(self) -> bool {
        self == Verdict::Pass
    }
}

/// The ban list and the per-source budgets.
#[derive(Debug)]
pub struct FloodGuard {
    config: FloodConfig,
    exempt: HashSet<IpAddr>,
    state: Mutex<HashMap<IpAddr, Source>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start_ms: i64,
    count: u32,
}

impl Window {
    /// Counts one more at `now`; the new count within the current window.
    fn hit(&mut self, now_ms: i64, length_ms: i64) -> u32 {
        if now_ms - self.start_ms >= length_ms || now_ms < self.start_ms {
            self.start_ms = now_ms;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Source {
    packets: Window,
    failures: Window,
    banned_until_ms: Option<i64>,
    last_seen_ms: i64,
}

/// Which budget a hit counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    Packets,
    Failures,
}

impl FloodGuard {
    pub fn new(config: FloodConfig) -> Self {
        Self {
            exempt: config.exempt.iter().copied().collect(),
            config,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one packet (or new connection) from `ip`.
    pub fn packet(&self, ip: IpAddr, now: DateTime<Utc>) -> Verdict {
        self.hit(ip, now, Budget::Packets)
    }

    /// Counts one refused request from `ip`.
    pub fn failure(&self, ip: IpAddr, now: DateTime<Utc>) -> Verdict {
        self.hit(ip, now, Budget::Failures)
    }

    /// Whether `ip` is banned at `now`, without counting anything.
    pub fn is_banned(&self, ip: IpAddr, now: DateTime<Utc>) -> bool {
        if self.exempt.contains(&ip) {
            return false;
        }
        let now_ms = now.timestamp_millis();
        self.lock()
            .get(&ip)
            .and_then(|s| s.banned_until_ms)
            .is_some_and(|until| now_ms < until)
    }

    /// Sources banned at `now`.
    pub fn banned(&self, now: DateTime<Utc>) -> Vec<IpAddr> {
        let now_ms = now.timestamp_millis();
        let mut banned: Vec<IpAddr> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.banned_until_ms.is_some_and(|u| now_ms < u))
            .map(|(ip, _)| *ip)
            .collect();
        banned.sort();
        banned
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Source>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hit(&self, ip: IpAddr, now: DateTime<Utc>, budget: Budget) -> Verdict {
        if self.exempt.contains(&ip) {
            return Verdict::Pass;
        }
        let now_ms = now.timestamp_millis();
        let window_ms = millis(self.config.window);
        let failure_window_ms = millis(self.config.failure_window);
        let ban_ms = millis(self.config.ban_for);
        let mut sources = self.lock();
        if !sources.contains_key(&ip) && sources.len() >= self.config.max_tracked_sources {
            let quiet_after = window_ms.max(failure_window_ms);
            sources.retain(|_, s| {
                s.banned_until_ms.is_some_and(|u| now_ms < u)
                    || now_ms - s.last_seen_ms < quiet_after
            });
            if sources.len() >= self.config.max_tracked_sources {
                return Verdict::Pass;
            }
        }
        let source = sources.entry(ip).or_default();
        source.last_seen_ms = now_ms;
        if let Some(until) = source.banned_until_ms {
            if now_ms < until {
                return Verdict::Banned;
            }
            // The ban is over: start afresh.
            *source = Source {
                last_seen_ms: now_ms,
                ..Source::default()
            };
        }
        let over = match budget {
            Budget::Packets => {
                source.packets.hit(now_ms, window_ms) > self.config.max_packets_per_window
            }
            Budget::Failures => {
                source.failures.hit(now_ms, failure_window_ms) > self.config.max_failures_per_window
            }
        };
        if over {
            source.banned_until_ms = Some(now_ms.saturating_add(ban_ms));
            Verdict::NewlyBanned
        } else {
            Verdict::Pass
        }
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_767_225_600_000 + ms).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn config() -> FloodConfig {
        FloodConfig {
            window: Duration::from_secs(2),
            max_packets_per_window: 16,
            failure_window: Duration::from_secs(60),
            max_failures_per_window: 3,
            ban_for: Duration::from_secs(300),
            exempt: vec![ip(200)],
            max_tracked_sources: 4,
        }
    }

    #[test]
    fn the_packet_budget_is_a_hard_limit_per_window_then_a_ban() {
        let g = FloodGuard::new(config());
        for i in 0..16 {
            assert_eq!(g.packet(ip(1), at(i * 100)), Verdict::Pass, "packet {i}");
        }
        assert_eq!(g.packet(ip(1), at(1_700)), Verdict::NewlyBanned);
        assert_eq!(g.packet(ip(1), at(1_800)), Verdict::Banned);
        assert!(g.is_banned(ip(1), at(299_000)));
        assert_eq!(g.banned(at(1_900)), vec![ip(1)]);
        // Another source is unaffected.
        assert_eq!(g.packet(ip(2), at(1_800)), Verdict::Pass);
        // The ban ends after `ban_for`, with fresh budgets.
        assert!(!g.is_banned(ip(1), at(301_700)));
        assert_eq!(g.packet(ip(1), at(301_700)), Verdict::Pass);
    }

    #[test]
    fn a_new_window_starts_a_new_budget() {
        let g = FloodGuard::new(config());
        for i in 0..16 {
            assert_eq!(g.packet(ip(1), at(i)), Verdict::Pass);
        }
        // 2 s later the window restarts: 16 more pass.
        for i in 0..16 {
            assert_eq!(g.packet(ip(1), at(2_000 + i)), Verdict::Pass);
        }
        assert_eq!(g.packet(ip(1), at(2_100)), Verdict::NewlyBanned);
    }

    #[test]
    fn failures_have_their_own_smaller_budget_and_ban_the_same_way() {
        let g = FloodGuard::new(config());
        for t in [0, 10_000, 20_000] {
            assert_eq!(g.failure(ip(1), at(t)), Verdict::Pass);
        }
        assert_eq!(g.failure(ip(1), at(30_000)), Verdict::NewlyBanned);
        assert_eq!(g.packet(ip(1), at(30_001)), Verdict::Banned);
        // Failures spread over more than the failure window never ban.
        let g = FloodGuard::new(config());
        for k in 0..10 {
            assert_eq!(
                g.failure(ip(3), at(k * 21_000)),
                Verdict::Pass,
                "failure {k}"
            );
        }
    }

    #[test]
    fn exempt_sources_are_never_counted_or_banned() {
        let g = FloodGuard::new(config());
        for i in 0..1_000 {
            assert_eq!(g.packet(ip(200), at(i)), Verdict::Pass);
            assert_eq!(g.failure(ip(200), at(i)), Verdict::Pass);
        }
        assert!(!g.is_banned(ip(200), at(1_000)));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded_and_keeps_bans_when_it_evicts() {
        let g = FloodGuard::new(config());
        for _ in 0..4 {
            g.failure(ip(1), at(0));
        }
        assert!(g.is_banned(ip(1), at(0)));
        for k in 2..=4 {
            assert_eq!(g.packet(ip(k), at(0)), Verdict::Pass);
        }
        assert_eq!(g.tracked(), 4);
        // Full and everyone active: a fifth source passes untracked.
        assert_eq!(g.packet(ip(5), at(1_000)), Verdict::Pass);
        assert_eq!(g.tracked(), 4);
        // A minute later the quiet ones are forgotten, the banned one is kept.
        assert_eq!(g.packet(ip(5), at(61_000)), Verdict::Pass);
        assert_eq!(g.tracked(), 2);
        assert!(g.is_banned(ip(1), at(61_000)));
    }
}
