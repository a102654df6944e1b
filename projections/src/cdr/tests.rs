//! Golden-style tests of the CDR fold: the event sequences the engine's call aggregate decides
//! for an answered fork, a ring-out, a busy callee, a caller who gives up, a rejected call, a
//! voicemail and a blind transfer, each with the rows they must give, column by column; the
//! fold resuming from stored call states; the stored row form; the CSV and JSON renderings; and
//! the query predicate.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use events::GlobalPosition;
use events::ids::{PhoneNumber, StreamId, TenantId, TrunkId};
use events::model::{
    CallEvent as E, CallOrigin, Direction, Disposition, HangupCause, HangupSide, LegRole, Party,
    TransferMethod, VoicemailReason,
};

use super::row::{COLUMNS, DbRow};
use super::*;
use crate::testing::{Script, alice, bruno, call_id, carla, dept, leg, number, t0, user};

fn created(
    s: &mut Script,
    direction: Direction,
    caller: Party,
    callee: Party,
) -> [GlobalPosition; 2] {
    let cs = StreamId::call(call_id(1));
    let dialled = callee.number.clone().unwrap_or_else(|| number("0"));
    let a = s.push(
        &cs,
        E::CallCreated {
            call: call_id(1),
            direction,
            caller: caller.clone(),
            callee,
            dialled,
            origin: CallOrigin::Device,
            trunk: None,
            requested_by: None,
        },
    );
    let b = s.push(
        &cs,
        E::LegCreated {
            call: call_id(1),
            leg: leg(1),
            role: LegRole::Caller,
            party: caller,
            contact: None,
            parent: None,
            ring_timeout_ms: None,
            voicemail: None,
        },
    );
    [a, b]
}

fn rung(s: &mut Script, legs: &[u16], callee: Party) -> Vec<GlobalPosition> {
    let cs = StreamId::call(call_id(1));
    let mut out = Vec::new();
    for n in legs {
        out.push(s.push(
            &cs,
            E::LegCreated {
                call: call_id(1),
                leg: leg(*n),
                role: LegRole::Callee,
                party: callee.clone(),
                contact: None,
                parent: Some(leg(1)),
                ring_timeout_ms: Some(30_000),
                voicemail: None,
            },
        ));
    }
    for n in legs {
        s.push(
            &cs,
            E::LegRinging {
                call: call_id(1),
                leg: leg(*n),
            },
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn ended(
    s: &mut Script,
    n: u16,
    cause: HangupCause,
    disposition: Disposition,
    side: HangupSide,
    status: Option<u16>,
    duration_s: u64,
    billable_s: u64,
) -> GlobalPosition {
    s.push(
        &StreamId::call(call_id(1)),
        E::LegEnded {
            call: call_id(1),
            leg: leg(n),
            cause,
            disposition,
            ended_by: side,
            sip_status: status,
            duration_ms: duration_s * 1000,
            billable_ms: billable_s * 1000,
        },
    )
}

fn call_ended(
    s: &mut Script,
    cause: HangupCause,
    disposition: Disposition,
    duration_s: u64,
    talk_s: u64,
) {
    s.push(
        &StreamId::call(call_id(1)),
        E::CallEnded {
            call: call_id(1),
            cause,
            disposition,
            duration_ms: duration_s * 1000,
            talk_ms: talk_s * 1000,
        },
    );
}

fn answered(s: &mut Script, n: u16) -> GlobalPosition {
    s.push(
        &StreamId::call(call_id(1)),
        E::CallAnswered {
            call: call_id(1),
            leg: leg(n),
            contact: None,
        },
    )
}

fn fold(s: &Script) -> (Vec<Cdr>, CdrFold) {
    let mut fold = CdrFold::new();
    let rows = s.events.iter().filter_map(|r| fold.apply(r)).collect();
    (rows, fold)
}

fn dispositions(rows: &[Cdr]) -> Vec<(u32, &'static str)> {
    rows.iter()
        .map(|r| (r.sequence, r.disposition.as_cdr_str()))
        .collect()
}

/// Alice calls Bruno, whose two phones ring; the first answers at 6 s, the other is cancelled;
/// Alice hangs up a minute later.
fn answered_fork() -> (Script, Vec<GlobalPosition>) {
    let mut s = Script::new("acme");
    let [p_created, p_leg1] = created(&mut s, Direction::Internal, alice(), bruno());
    s.at(1);
    rung(&mut s, &[2, 3], bruno());
    s.at(6);
    let p_answer2 = answered(&mut s, 2);
    ended(
        &mut s,
        3,
        HangupCause::AnsweredElsewhere,
        Disposition::NoAnswer,
        HangupSide::Engine,
        None,
        5,
        0,
    );
    let p_answer1 = answered(&mut s, 1);
    s.at(66);
    let p_end1 = ended(
        &mut s,
        1,
        HangupCause::NormalClearing,
        Disposition::Answered,
        HangupSide::Party,
        None,
        66,
        60,
    );
    ended(
        &mut s,
        2,
        HangupCause::NormalClearing,
        Disposition::Answered,
        HangupSide::Peer,
        None,
        65,
        60,
    );
    call_ended(
        &mut s,
        HangupCause::NormalClearing,
        Disposition::Answered,
        66,
        60,
    );
    (s, vec![p_created, p_leg1, p_answer2, p_answer1, p_end1])
}

#[test]
fn an_answered_fork_gives_one_row_per_leg_with_every_column() {
    let (s, positions) = answered_fork();
    let (rows, fold) = fold(&s);
    assert_eq!(
        dispositions(&rows),
        [(2, "NO ANSWER"), (0, "ANSWERED"), (1, "ANSWERED")]
    );
    assert_eq!(fold.open_calls(), 0, "the call ended");
    let caller = rows.iter().find(|r| r.sequence == 0).unwrap();
    let expected = Cdr {
        linkedid: call_id(1),
        uniqueid: leg(1),
        sequence: 0,
        tenant: Some(TenantId::parse("acme").unwrap()),
        direction: Direction::Internal,
        leg_role: LegRole::Caller,
        src: Some("1001".into()),
        src_name: Some("Alice Moreau".into()),
        clid: "\"Alice Moreau\" <1001>".into(),
        src_user: Some(user("1001")),
        src_department: Some(dept("sales")),
        dst: Some("1006".into()),
        dst_name: Some("Bruno Lind".into()),
        dst_user: Some(user("1006")),
        dst_department: Some(dept("support")),
        dnid: Some("1006".into()),
        channel: "PJSIP/1001-1e900001".into(),
        dstchannel: Some("PJSIP/1006-1e900002".into()),
        user: Some(user("1001")),
        department: Some(dept("sales")),
        trunk: None,
        start: t0(),
        answer: Some(t0() + TimeDelta::seconds(6)),
        end: t0() + TimeDelta::seconds(66),
        duration: 66,
        billsec: 60,
        duration_ms: 66_000,
        billable_ms: 60_000,
        disposition: Disposition::Answered,
        hangup_cause: HangupCause::NormalClearing,
        q850: Some(16),
        hangup_side: HangupSide::Party,
        sip_status: None,
        positions,
    };
    assert_eq!(caller, &expected);
    assert_eq!(caller.end_position(), caller.positions[4]);

    let answering = rows.iter().find(|r| r.sequence == 1).unwrap();
    assert_eq!(answering.uniqueid, leg(2));
    assert_eq!(
        (answering.src.as_deref(), answering.dst.as_deref()),
        (Some("1001"), Some("1006"))
    );
    assert_eq!(answering.user, Some(user("1006")));
    assert_eq!(answering.department, Some(dept("support")));
    assert_eq!(answering.start, t0() + TimeDelta::seconds(1));
    assert_eq!(answering.answer, Some(t0() + TimeDelta::seconds(6)));
    assert_eq!((answering.duration, answering.billsec), (65, 60));
    assert_eq!(answering.hangup_side, HangupSide::Peer);
    assert_eq!(answering.dstchannel.as_deref(), Some("PJSIP/1001-1e900001"));

    let lost = rows.iter().find(|r| r.sequence == 2).unwrap();
    assert_eq!(lost.hangup_cause, HangupCause::AnsweredElsewhere);
    assert_eq!((lost.answer, lost.billsec, lost.q850), (None, 0, Some(26)));
}

#[test]
fn a_ring_out_is_no_answer_on_both_sides() {
    let mut s = Script::new("acme");
    created(&mut s, Direction::Internal, alice(), bruno());
    s.at(1);
    rung(&mut s, &[2], bruno());
    s.at(31);
    ended(
        &mut s,
        2,
        HangupCause::NoAnswer,
        Disposition::NoAnswer,
        HangupSide::Engine,
        None,
        30,
        0,
    );
    ended(
        &mut s,
        1,
        HangupCause::NoAnswer,
        Disposition::NoAnswer,
        HangupSide::Engine,
        Some(480),
        31,
        0,
    );
    call_ended(&mut s, HangupCause::NoAnswer, Disposition::NoAnswer, 31, 0);
    let (rows, _) = fold(&s);
    assert_eq!(dispositions(&rows), [(1, "NO ANSWER"), (0, "NO ANSWER")]);
    let caller = &rows[1];
    assert_eq!(caller.dst.as_deref(), Some("1006"), "the callee dialled");
    assert_eq!(caller.dstchannel, None, "nobody answered");
    assert_eq!(
        (caller.sip_status, caller.q850, caller.billsec),
        (Some(480), Some(19), 0)
    );
}

#[test]
fn a_busy_callee_gives_one_busy_row_for_the_caller() {
    let mut s = Script::new("acme");
    created(&mut s, Direction::Internal, alice(), bruno());
    ended(
        &mut s,
        1,
        HangupCause::UserBusy,
        Disposition::Busy,
        HangupSide::Engine,
        Some(486),
        0,
        0,
    );
    call_ended(&mut s, HangupCause::UserBusy, Disposition::Busy, 0, 0);
    let (rows, fold) = fold(&s);
    assert_eq!(dispositions(&rows), [(0, "BUSY")]);
    assert_eq!(rows[0].dst_user, Some(user("1006")));
    assert_eq!(rows[0].sip_status, Some(486));
    assert_eq!(fold.open_calls(), 0);
}

#[test]
fn a_caller_who_gives_up_cancels_every_leg() {
    let mut s = Script::new("acme");
    created(&mut s, Direction::Internal, alice(), bruno());
    s.at(1);
    rung(&mut s, &[2, 3], bruno());
    s.at(9);
    ended(
        &mut s,
        1,
        HangupCause::OriginatorCancel,
        Disposition::Cancelled,
        HangupSide::Party,
        None,
        9,
        0,
    );
    ended(
        &mut s,
        2,
        HangupCause::OriginatorCancel,
        Disposition::Cancelled,
        HangupSide::Peer,
        None,
        8,
        0,
    );
    ended(
        &mut s,
        3,
        HangupCause::OriginatorCancel,
        Disposition::Cancelled,
        HangupSide::Peer,
        None,
        8,
        0,
    );
    call_ended(
        &mut s,
        HangupCause::OriginatorCancel,
        Disposition::Cancelled,
        9,
        0,
    );
    let (rows, _) = fold(&s);
    assert_eq!(
        dispositions(&rows),
        [(0, "CANCELLED"), (1, "CANCELLED"), (2, "CANCELLED")]
    );
    assert!(rows.iter().all(|r| r.q850.is_none() && r.answer.is_none()));
}

#[test]
fn a_rejected_call_fails_with_the_mapped_cause() {
    let mut s = Script::new("acme");
    created(&mut s, Direction::Internal, alice(), bruno());
    s.at(1);
    rung(&mut s, &[2], bruno());
    s.at(3);
    let cause = HangupCause::from_sip_status(404);
    ended(
        &mut s,
        2,
        cause,
        Disposition::Failed,
        HangupSide::Party,
        Some(404),
        2,
        0,
    );
    ended(
        &mut s,
        1,
        cause,
        Disposition::Failed,
        HangupSide::Engine,
        Some(404),
        3,
        0,
    );
    call_ended(&mut s, cause, Disposition::Failed, 3, 0);
    let (rows, _) = fold(&s);
    assert_eq!(dispositions(&rows), [(1, "FAILED"), (0, "FAILED")]);
    assert_eq!(rows[0].hangup_cause, HangupCause::UnallocatedNumber);
    assert_eq!(rows[0].q850, Some(1));
}

#[test]
fn an_inbound_call_to_voicemail_is_answered_by_the_box() {
    let mut s = Script::new("acme");
    let trunk = TrunkId::parse("sipgate").unwrap();
    let outside = Party::external(
        PhoneNumber::parse("+4930123456").unwrap(),
        Some("Müller, \"Hans\"".into()),
        trunk.clone(),
    );
    created(&mut s, Direction::Inbound, outside, bruno());
    s.at(1);
    rung(&mut s, &[2], bruno());
    s.at(31);
    ended(
        &mut s,
        2,
        HangupCause::NoAnswer,
        Disposition::NoAnswer,
        HangupSide::Engine,
        None,
        30,
        0,
    );
    let cs = StreamId::call(call_id(1));
    s.push(
        &cs,
        E::CallSentToVoicemail {
            call: call_id(1),
            leg: leg(1),
            mailbox: crate::testing::ext("1006"),
            reason: VoicemailReason::Unavailable,
            by: None,
        },
    );
    answered(&mut s, 1);
    s.at(51);
    ended(
        &mut s,
        1,
        HangupCause::NormalClearing,
        Disposition::Answered,
        HangupSide::Party,
        None,
        51,
        20,
    );
    call_ended(
        &mut s,
        HangupCause::NormalClearing,
        Disposition::Answered,
        51,
        0,
    );
    let (rows, _) = fold(&s);
    assert_eq!(dispositions(&rows), [(1, "NO ANSWER"), (0, "ANSWERED")]);
    let caller = &rows[1];
    assert_eq!(caller.src.as_deref(), Some("+4930123456"));
    assert_eq!(caller.clid, "\"Müller, 'Hans'\" <+4930123456>");
    assert_eq!(caller.channel, "PJSIP/sipgate-1e900001");
    assert_eq!(caller.user, None);
    assert_eq!(
        caller.department,
        Some(dept("support")),
        "the internal side's"
    );
    assert_eq!(caller.trunk, Some(trunk));
    assert_eq!(caller.billsec, 20);
}

#[test]
fn a_blind_transfer_points_the_caller_at_the_new_party() {
    let mut s = Script::new("acme");
    created(&mut s, Direction::Internal, alice(), bruno());
    s.at(1);
    rung(&mut s, &[2], bruno());
    s.at(5);
    answered(&mut s, 2);
    answered(&mut s, 1);
    s.at(20);
    let cs = StreamId::call(call_id(1));
    s.push(
        &cs,
        E::BlindTransferred {
            call: call_id(1),
            transferer_leg: leg(2),
            transferee_leg: leg(1),
            target: number("1011"),
            method: TransferMethod::SipRefer,
            original_caller: alice(),
        },
    );
    ended(
        &mut s,
        2,
        HangupCause::Transferred,
        Disposition::Answered,
        HangupSide::Engine,
        None,
        19,
        15,
    );
    s.push(
        &cs,
        E::LegCreated {
            call: call_id(1),
            leg: leg(4),
            role: LegRole::Callee,
            party: carla(),
            contact: None,
            parent: Some(leg(1)),
            ring_timeout_ms: Some(30_000),
            voicemail: None,
        },
    );
    s.at(25);
    answered(&mut s, 4);
    s.at(85);
    ended(
        &mut s,
        1,
        HangupCause::NormalClearing,
        Disposition::Answered,
        HangupSide::Party,
        None,
        85,
        80,
    );
    ended(
        &mut s,
        4,
        HangupCause::NormalClearing,
        Disposition::Answered,
        HangupSide::Peer,
        None,
        65,
        60,
    );
    call_ended(
        &mut s,
        HangupCause::NormalClearing,
        Disposition::Answered,
        85,
        75,
    );
    let (rows, _) = fold(&s);
    assert_eq!(
        dispositions(&rows),
        [(1, "ANSWERED"), (0, "ANSWERED"), (2, "ANSWERED")]
    );
    let transferer = &rows[0];
    assert_eq!(transferer.hangup_cause, HangupCause::Transferred);
    assert_eq!(transferer.dst_user, Some(user("1006")));
    let caller = &rows[1];
    assert_eq!(
        caller.dst_user,
        Some(user("1011")),
        "talking to Carla at the end"
    );
    assert_eq!(caller.dst_department, Some(dept("management")));
    assert_eq!(caller.answer, Some(t0() + TimeDelta::seconds(5)));
    let target = &rows[2];
    assert_eq!(
        (target.src_user.clone(), target.dst_user.clone()),
        (Some(user("1001")), Some(user("1011")))
    );
}

#[test]
fn a_fold_resumed_from_stored_states_finishes_the_same_rows() {
    let (s, _) = answered_fork();
    let (whole, _) = fold(&s);
    for split in 1..s.events.len() {
        let mut first = CdrFold::new();
        let mut rows: Vec<Cdr> = s.events[..split]
            .iter()
            .filter_map(|r| first.apply(r))
            .collect();
        let dirty = first.take_dirty();
        // The stored form: JSON, as both SQL stores keep it.
        let stored: Vec<OpenCall> = dirty
            .open
            .iter()
            .map(|c| serde_json::from_str(&serde_json::to_string(c).unwrap()).unwrap())
            .collect();
        let mut second = CdrFold::resume(stored);
        rows.extend(s.events[split..].iter().filter_map(|r| second.apply(r)));
        assert_eq!(rows, whole, "split after {split} events");
        let closing = second.take_dirty();
        assert!(closing.open.is_empty());
        let open_at_split = !dirty.open.is_empty();
        assert_eq!(
            closing.closed.len(),
            usize::from(open_at_split),
            "split after {split}"
        );
    }
}

#[test]
fn dirty_calls_are_taken_once_and_unstored_calls_are_not_deleted() {
    let (s, _) = answered_fork();
    let mut fold = CdrFold::new();
    for r in &s.events[..4] {
        fold.apply(r);
    }
    assert!(fold.is_dirty());
    let first = fold.take_dirty();
    assert_eq!(first.open.len(), 1);
    assert!(!fold.is_dirty());
    assert!(fold.take_dirty().open.is_empty());
    for r in &s.events[4..] {
        fold.apply(r);
    }
    assert_eq!(
        fold.take_dirty().closed,
        vec![call_id(1)],
        "it was stored, so it goes"
    );

    let mut quick = CdrFold::new();
    for r in &s.events {
        quick.apply(r);
    }
    assert_eq!(
        quick.take_dirty(),
        DirtyCalls::default(),
        "never stored, nothing to delete"
    );
}

#[test]
fn the_stored_row_form_round_trips_and_matches_the_tables() {
    let (s, _) = answered_fork();
    let (rows, _) = fold(&s);
    for r in &rows {
        let db = DbRow::from(r);
        let json = serde_json::to_value(&db).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut columns: Vec<&str> = COLUMNS.to_vec();
        columns.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, columns);
        let back: DbRow = serde_json::from_value(json).unwrap();
        assert_eq!(back.into_cdr().unwrap(), *r);
    }
    for sql in [crate::schema::SQLITE_V2, crate::schema::POSTGRES_V2] {
        assert_eq!(
            crate::schema::cdr_columns(sql),
            COLUMNS,
            "table columns in table order"
        );
    }
}

#[test]
fn json_spells_dispositions_as_asterisk_does() {
    let (s, _) = answered_fork();
    let (rows, _) = fold(&s);
    let json: serde_json::Value = serde_json::from_str(&render_json(&rows)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    assert_eq!(json[0]["disposition"], "NO ANSWER");
    assert_eq!(json[1]["disposition"], "ANSWERED");
    assert_eq!(json[1]["hangup_cause"], "normal_clearing");
    assert_eq!(json[1]["start"], "2026-03-02T09:00:00Z");
    assert_eq!(json[1]["billsec"], 60);
    assert_eq!(json[1]["uniqueid"], leg(1).to_string());
    assert_eq!(json[1]["linkedid"], call_id(1).to_string());
    assert_eq!(json[1]["positions"], serde_json::json!([1, 2, 7, 9, 10]));
}

#[test]
fn csv_quotes_what_rfc_4180_requires_and_defuses_formulas() {
    let (s, _) = answered_fork();
    let (mut rows, _) = fold(&s);
    rows[1].src_name = Some("=HYPERLINK(\"x\")".into());
    rows[1].clid = "\"Moreau, Alice\" <1001>".into();
    rows[2].dst_name = Some("two\nlines".into());
    let csv = render_csv(&rows);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], CSV_COLUMNS.join(","));
    assert_eq!(
        lines.len(),
        1 + rows.len() + 1,
        "header, rows, nothing after the last CRLF"
    );
    assert_eq!(lines[4], "");
    assert!(lines[2].starts_with(
        "2026-03-02 09:00:00,2026-03-02 09:00:06,2026-03-02 09:01:06,\"\"\"Moreau, Alice\"\" <1001>\",1001,1006,1006,"
    ));
    assert!(
        lines[2].contains(",\"'=HYPERLINK(\"\"x\"\")\","),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with(",66000,60000,1 2 7 9 10"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains(",\"two\nlines\","),
        "a quoted bare LF: {}",
        lines[3]
    );
    assert_eq!(super::csv::quote("plain"), "plain");
    assert_eq!(super::csv::quote("a\"b"), "\"a\"\"b\"");
    assert_eq!(super::csv::quote("a\rb"), "\"a\rb\"");
}

#[test]
fn queries_filter_by_tenant_dates_users_departments_and_visibility() {
    let (s, _) = answered_fork();
    let (rows, _) = fold(&s);
    let caller = rows.iter().find(|r| r.sequence == 0).unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let all = CdrQuery::new(acme.clone());
    assert!(all.matches(caller));
    assert!(!CdrQuery::new(TenantId::parse("other").unwrap()).matches(caller));
    let at = |s| Some(t0() + TimeDelta::seconds(s));
    assert!(all.clone().between(at(0), at(1)).matches(caller));
    assert!(
        !all.clone().between(at(1), None).matches(caller),
        "from is on the start"
    );
    assert!(
        !all.clone().between(None, at(0)).matches(caller),
        "to is exclusive"
    );
    assert!(all.clone().for_user(user("1006")).matches(caller));
    assert!(!all.clone().for_user(user("1011")).matches(caller));
    let set = |ds: &[&str]| ds.iter().map(|d| dept(d)).collect::<BTreeSet<_>>();
    assert!(
        all.clone()
            .in_departments(set(&["support"]))
            .matches(caller)
    );
    assert!(
        !all.clone()
            .in_departments(set(&["management"]))
            .matches(caller)
    );
    assert!(
        all.clone()
            .visible_to(Some(user("1001")), set(&[]))
            .matches(caller)
    );
    assert!(
        all.clone()
            .visible_to(Some(user("1011")), set(&["sales"]))
            .matches(caller)
    );
    assert!(
        !all.clone()
            .visible_to(Some(user("1011")), set(&["management"]))
            .matches(caller)
    );
    assert!(
        !all.clone().visible_to(None, set(&[])).matches(caller),
        "deny by default"
    );
}

#[tokio::test]
async fn the_memory_store_refuses_a_duplicate_row_and_keeps_the_checkpoint() {
    let (s, _) = answered_fork();
    let (rows, _) = fold(&s);
    let store = CdrStore::Memory(MemoryCdrStore::default());
    let batch = CdrCommit {
        position: GlobalPosition(10),
        rows: rows.clone(),
        ..CdrCommit::default()
    };
    store.commit(CHECKPOINT, batch.clone()).await.unwrap();
    assert!(
        store
            .commit(
                CHECKPOINT,
                CdrCommit {
                    position: GlobalPosition(11),
                    ..batch
                }
            )
            .await
            .is_err()
    );
    assert_eq!(store.load(CHECKPOINT).await.unwrap().0, GlobalPosition(10));
    assert_eq!(store.count().await.unwrap(), 3);
    let q = CdrQuery::new(TenantId::parse("acme").unwrap());
    let got = store.query(&q).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        [0, 1, 2],
        "by start"
    );
    assert_eq!(store.query(&q.limit(1)).await.unwrap().len(), 1);
}

#[test]
fn events_outside_the_interest_list_change_nothing() {
    let (s, _) = answered_fork();
    // Call 1 in progress: legs 1 and 2 answered, 3 ended.
    let mut base = CdrFold::new();
    for r in &s.events[..9] {
        base.apply(r);
    }
    base.take_dirty();
    let open = |f: &CdrFold| f.open.values().cloned().collect::<Vec<_>>();
    let mut checked = 0;
    let others = crate::testing::outside_interest(
        CDR_EVENTS,
        GlobalPosition(100),
        &StreamId::call(call_id(1)),
        100,
    );
    for r in &others {
        let event_type = r.event.event_type();
        let mut fold = base.clone();
        assert_eq!(fold.apply(r), None, "{event_type}");
        assert_eq!(open(&fold), open(&base), "{event_type} changed a call");
        assert_eq!(fold.take_dirty(), DirtyCalls::default(), "{event_type}");
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}

#[tokio::test]
async fn following_a_checkpoint_that_alone_moved_waits_for_rows_or_its_bounds() {
    use crate::runner::Projection;

    let (s, _) = answered_fork();
    let last = s.events.last().map(|r| r.position).unwrap();
    let store = CdrStore::Memory(MemoryCdrStore::default());
    let checkpoint = async || store.load(CHECKPOINT).await.unwrap().0;
    let mut p = CdrProjection::new(store.clone());
    assert_eq!(p.start().await.unwrap(), GlobalPosition(0));

    // A batch that changes calls and makes rows is committed at once, with its checkpoint.
    p.apply(&s.events, last).await.unwrap();
    p.flush_live().await.unwrap();
    assert_eq!(checkpoint().await, last);
    assert_eq!(store.count().await.unwrap(), 3);

    // Batches of events it does not fold leave the checkpoint where it is ...
    let mut through = last;
    for _ in 0..3 {
        through = GlobalPosition(through.0 + 100);
        p.apply(&[], through).await.unwrap();
        p.flush_live().await.unwrap();
        assert_eq!(checkpoint().await, last);
    }
    // ... until LIVE_CHECKPOINT_EVENTS of them have passed,
    let far = GlobalPosition(last.0 + LIVE_CHECKPOINT_EVENTS);
    p.apply(&[], far).await.unwrap();
    p.flush_live().await.unwrap();
    assert_eq!(checkpoint().await, far);
    // or LIVE_CHECKPOINT_EVERY since the last commit,
    p.apply(&[], GlobalPosition(far.0 + 1)).await.unwrap();
    p.flush_live().await.unwrap();
    assert_eq!(checkpoint().await, far);
    tokio::time::sleep(LIVE_CHECKPOINT_EVERY).await;
    p.apply(&[], GlobalPosition(far.0 + 2)).await.unwrap();
    p.flush_live().await.unwrap();
    assert_eq!(checkpoint().await, GlobalPosition(far.0 + 2));
    // and a flush (caught up, stopping) always commits it.
    p.apply(&[], GlobalPosition(far.0 + 3)).await.unwrap();
    p.flush_live().await.unwrap();
    assert_eq!(checkpoint().await, GlobalPosition(far.0 + 2));
    p.flush().await.unwrap();
    assert_eq!(checkpoint().await, GlobalPosition(far.0 + 3));
    assert_eq!(store.count().await.unwrap(), 3, "no row twice");
}
