//! Calls per minute, for the panel's graph of the last hour: one bucket per minute of *event
//! time* (the `occurred_at` of each `CallCreated`), never of arrival time, so a rebuild draws
//! the same graph the live view drew. Each call is counted under the set of departments it
//! involves (its caller's and callee's, as recorded), so a viewer who may watch only some
//! departments counts exactly the calls that touch one of them, each once.
//!
//! Buckets older than [`RETAINED_MINUTES`] before the newest event seen are dropped; that
//! depends only on the events, so live and rebuilt views drop the same ones.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use events::ids::DepartmentId;
use serde::Serialize;

/// Minutes kept behind the newest event (two hours: the last hour plus slack for a clock that
/// lags the log).
pub const RETAINED_MINUTES: i64 = 120;
/// Bars in the panel's graph.
pub const GRAPH_MINUTES: usize = 60;

/// One bar of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// The minute's first instant.
    pub minute: DateTime<Utc>,
    pub calls: u32,
}

/// Calls per minute of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CallsPerMinute {
    /// Minute (since the epoch) → the departments a call involved (sorted) → calls.
    buckets: BTreeMap<i64, BTreeMap<Vec<DepartmentId>, u32>>,
    newest: Option<i64>,
}

fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60)
}

impl CallsPerMinute {
    /// Counts a call that began at `at` and involves `departments`.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        departments: impl IntoIterator<Item = DepartmentId>,
    ) {
        let minute = minute_of(at);
        let newest = self.newest.map_or(minute, |n| n.max(minute));
        self.newest = Some(newest);
        if minute < newest - RETAINED_MINUTES {
            return;
        }
        let key: Vec<DepartmentId> = departments
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        *self
            .buckets
            .entry(minute)
            .or_default()
            .entry(key)
            .or_default() += 1;
        let floor = newest - RETAINED_MINUTES;
        while let Some((&oldest, _)) = self.buckets.first_key_value() {
            if oldest >= floor {
                break;
            }
            self.buckets.pop_first();
        }
    }

    /// The [`GRAPH_MINUTES`] bars ending with the minute of `now` (oldest first), counting
    /// the calls that involve at least one of `departments`.
    pub fn last_hour(
        &self,
        departments: &BTreeSet<DepartmentId>,
        now: DateTime<Utc>,
    ) -> Vec<MinuteCount> {
        let last = minute_of(now);
        let first = last - GRAPH_MINUTES as i64 + 1;
        (first..=last)
            .map(|minute| {
                let calls = self.buckets.get(&minute).map_or(0, |by_departments| {
                    by_departments
                        .iter()
                        .filter(|(key, _)| key.iter().any(|d| departments.contains(d)))
                        .map(|(_, n)| *n)
                        .sum()
                });
                MinuteCount {
                    minute: Utc
                        .timestamp_opt(minute * 60, 0)
                        .single()
                        .unwrap_or_default(),
                    calls,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn dept(s: &str) -> DepartmentId {
        DepartmentId::parse(s).unwrap()
    }

    fn t(minute: i64, sec: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).single().unwrap()
            + TimeDelta::minutes(minute)
            + TimeDelta::seconds(sec)
    }

    #[test]
    fn buckets_by_event_minute_and_counts_each_visible_call_once() {
        let mut rate = CallsPerMinute::default();
        rate.record(t(0, 5), [dept("sales")]);
        rate.record(t(0, 59), [dept("sales"), dept("support")]);
        rate.record(t(1, 0), [dept("management")]);
        rate.record(t(1, 30), [dept("support"), dept("support")]);
        let sales_support: BTreeSet<_> = [dept("sales"), dept("support")].into();
        let bars = rate.last_hour(&sales_support, t(1, 45));
        assert_eq!(bars.len(), GRAPH_MINUTES);
        assert_eq!(bars[59].minute, t(1, 0));
        assert_eq!(bars[59].calls, 1, "management's call is not visible");
        assert_eq!(bars[58].minute, t(0, 0));
        assert_eq!(bars[58].calls, 2, "the sales-support call counts once");
        assert!(bars[..58].iter().all(|b| b.calls == 0));
        let management: BTreeSet<_> = [dept("management")].into();
        assert_eq!(rate.last_hour(&management, t(1, 0))[59].calls, 1);
        assert_eq!(rate.last_hour(&BTreeSet::new(), t(1, 0))[59].calls, 0);
    }

    #[test]
    fn old_minutes_leave_the_window_and_are_dropped_by_event_time() {
        let mut rate = CallsPerMinute::default();
        let sales: BTreeSet<_> = [dept("sales")].into();
        rate.record(t(0, 0), [dept("sales")]);
        assert_eq!(rate.last_hour(&sales, t(59, 0))[0].calls, 1);
        assert_eq!(
            rate.last_hour(&sales, t(60, 0))
                .iter()
                .map(|b| b.calls)
                .sum::<u32>(),
            0
        );
        rate.record(t(RETAINED_MINUTES + 1, 0), [dept("sales")]);
        assert!(!rate.buckets.contains_key(&minute_of(t(0, 0))));
        // A call recorded out of order, too old to keep, changes nothing.
        rate.record(t(0, 0), [dept("sales")]);
        assert_eq!(rate.buckets.len(), 1);
    }
}
