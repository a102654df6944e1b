//! CDRs and the panel from event sequences the engine itself decides: each disposition from a
//! scripted call through the engine's call and extension aggregates, and a random busy stretch
//! whose every ended call must have exactly its rows (one per leg, matching the engine's own
//! leg summaries) and whose caller-leg dispositions add up to what the driver asked for.

mod common;

use std::collections::BTreeMap;

use common::flows::{read_everything, reference};
use common::pbx::{Outcome, Pbx};
use events::model::{Disposition, HangupCause, LineState};
use projections::panel::CardStatus;

/// Places one call from extension 0 to 1 and runs it to its end; returns its rows.
async fn one_call(outcome: Outcome, callee_dnd: bool, two_phones: bool) -> Vec<projections::Cdr> {
    let mut pbx = Pbx::new(1, 3, if two_phones { &[1] } else { &[] });
    if callee_dnd {
        pbx.set_dnd(1, true);
    }
    let call = pbx.place(0, 1, outcome);
    pbx.drain();
    assert!(pbx.calls[&call].state.is_ended(), "the call ended");
    let (rows, _, _) = reference(&read_everything(&pbx.log()).await);
    rows.into_iter().filter(|r| r.linkedid == call).collect()
}

fn summary(rows: &[projections::Cdr]) -> Vec<(u32, &'static str, HangupCause)> {
    let mut out: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence, r.disposition.as_cdr_str(), r.hangup_cause))
        .collect();
    out.sort_by_key(|x| x.0);
    out
}

#[tokio::test]
async fn each_disposition_from_the_engines_call_sequences() {
    use HangupCause as H;
    let answered = one_call(
        Outcome::Answer {
            caller_hangs_up: true,
            hold: true,
        },
        false,
        false,
    )
    .await;
    assert_eq!(
        summary(&answered),
        [
            (0, "ANSWERED", H::NormalClearing),
            (1, "ANSWERED", H::NormalClearing)
        ]
    );
    let caller = &answered[0];
    assert!(caller.billsec > 0 && caller.answer.is_some());
    assert_eq!(caller.dst_user.as_ref().map(|u| u.as_str()), Some("10001"));
    assert!(caller.dstchannel.is_some());

    let no_answer = one_call(Outcome::RingOut { voicemail: false }, false, false).await;
    assert_eq!(
        summary(&no_answer),
        [(0, "NO ANSWER", H::NoAnswer), (1, "NO ANSWER", H::NoAnswer)]
    );
    assert_eq!(
        no_answer
            .iter()
            .find(|r| r.sequence == 0)
            .unwrap()
            .sip_status,
        Some(480)
    );

    let voicemail = one_call(Outcome::RingOut { voicemail: true }, false, false).await;
    assert_eq!(
        summary(&voicemail),
        [
            (0, "ANSWERED", H::NormalClearing),
            (1, "NO ANSWER", H::NoAnswer)
        ]
    );

    let busy = one_call(Outcome::Reject(486), false, false).await;
    assert_eq!(
        summary(&busy),
        [(0, "BUSY", H::UserBusy), (1, "BUSY", H::UserBusy)]
    );

    let dnd = one_call(
        Outcome::Answer {
            caller_hangs_up: true,
            hold: false,
        },
        true,
        false,
    )
    .await;
    assert_eq!(
        summary(&dnd),
        [(0, "BUSY", H::UserBusy)],
        "refused before anything rang"
    );

    let cancelled = one_call(Outcome::Cancel, false, false).await;
    assert_eq!(
        summary(&cancelled),
        [
            (0, "CANCELLED", H::OriginatorCancel),
            (1, "CANCELLED", H::OriginatorCancel)
        ]
    );

    let failed = one_call(Outcome::Reject(404), false, false).await;
    assert_eq!(
        summary(&failed),
        [
            (0, "FAILED", H::UnallocatedNumber),
            (1, "FAILED", H::UnallocatedNumber)
        ]
    );
    let declined = one_call(Outcome::Reject(603), false, false).await;
    assert_eq!(summary(&declined)[0].1, "FAILED");
}

#[tokio::test]
async fn an_answered_fork_has_a_row_for_each_contact() {
    let rows = one_call(
        Outcome::Answer {
            caller_hangs_up: false,
            hold: false,
        },
        false,
        true,
    )
    .await;
    assert_eq!(
        summary(&rows),
        [
            (0, "ANSWERED", HangupCause::NormalClearing),
            (1, "ANSWERED", HangupCause::NormalClearing),
            (2, "NO ANSWER", HangupCause::AnsweredElsewhere),
        ]
    );
    let lost = &rows.iter().find(|r| r.sequence == 2).unwrap();
    assert_eq!(
        lost.user,
        rows.iter().find(|r| r.sequence == 1).unwrap().user,
        "the same callee"
    );
    assert_eq!(lost.billsec, 0);
}

#[tokio::test]
async fn a_busy_stretch_has_exactly_its_cdrs_and_dispositions_add_up() {
    let mut pbx = Pbx::new(42, 24, &[]);
    pbx.busy(400, 6.0);
    let events = read_everything(&pbx.log()).await;
    let (rows, _, panel) = reference(&events);

    // Every leg of every ended call has exactly one row, with the engine's own facts.
    let mut legs = 0;
    let mut by_key: BTreeMap<_, _> = rows.iter().map(|r| ((r.linkedid, r.uniqueid), r)).collect();
    assert_eq!(by_key.len(), rows.len(), "no leg twice");
    for (id, call) in &pbx.calls {
        assert!(call.state.is_ended(), "{id} drained");
        for leg in call.state.leg_summaries() {
            legs += 1;
            let end = leg.end.expect("every leg ended");
            let row = by_key
                .remove(&(*id, leg.leg))
                .unwrap_or_else(|| panic!("no row for leg {} of {id}", leg.leg));
            assert_eq!(row.disposition, end.disposition);
            assert_eq!(row.hangup_cause, end.cause);
            assert_eq!(
                (row.start, row.answer, row.end),
                (leg.started_at, leg.answered_at, end.at)
            );
            assert_eq!(
                (row.duration_ms, row.billable_ms),
                (end.duration_ms, end.billable_ms)
            );
            assert_eq!(row.leg_role, leg.role);
        }
    }
    assert!(
        by_key.is_empty(),
        "rows for legs that do not exist: {}",
        by_key.len()
    );
    assert_eq!(rows.len(), legs);

    // The caller legs' dispositions are what the driver asked for.
    let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.sequence == 0) {
        *seen.entry(r.disposition.as_cdr_str()).or_default() += 1;
    }
    for d in ["ANSWERED", "NO ANSWER", "BUSY", "FAILED", "CANCELLED"] {
        let want = pbx.counters.get(d).copied().unwrap_or(0);
        assert_eq!(
            seen.get(d).copied().unwrap_or(0),
            want,
            "{d}: {:?} vs {:?}",
            seen,
            pbx.counters
        );
        assert!(want > 0, "{d} never happened: {:?}", pbx.counters);
    }
    assert_eq!(seen.values().sum::<u64>(), pbx.counters["calls"]);
    assert!(!seen.contains_key(Disposition::Congestion.as_cdr_str()));

    // The panel after it all: nobody is on a call any more, the counters add up.
    panel.verify_counters().expect("counters");
    let tenant = events::TenantId::parse("sim").unwrap();
    let all = ["sales", "support", "management"]
        .iter()
        .map(|d| events::ids::DepartmentId::parse(d).unwrap())
        .collect();
    let snapshot = panel.snapshot_for(&tenant, &all);
    assert_eq!(snapshot.users.len(), 24);
    for card in &snapshot.users {
        assert!(card.calls.is_empty(), "{} still in a call", card.user);
        assert_eq!(card.line, LineState::Idle);
        assert!(matches!(
            card.status,
            CardStatus::Available | CardStatus::Away | CardStatus::Busy
        ));
    }
    assert_eq!(
        snapshot.departments.iter().map(|d| d.total).sum::<u32>(),
        24
    );
    assert!(
        snapshot
            .departments
            .iter()
            .all(|d| d.on_call == 0 && d.online == d.total)
    );
}
