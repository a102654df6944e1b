//! Given/when/then for the call: every path of the lifecycle, the SIP status mapping, the
//! rejections and the duplicates that must change nothing. Times are whole seconds after
//! `t0()`, so durations in the expected events read as plain numbers.

use chrono::{DateTime, TimeDelta, Utc};
use events::ids::{
    CallId, DepartmentId, DeviceContactId, ExtensionNumber, LegId, ListenSessionId, PhoneNumber,
    RecordingId, UserId,
};
use events::model::{
    CallEvent as E, CallOrigin, Direction, Disposition, HangupCause, HangupSide, LegRole,
    ListenEndReason, ListenMode, ListenVia, Party, RecordingTrigger, TransferMethod,
    VoicemailReason,
};

use super::{Call, CallCommand as C, CallRejection as R, LegProgress, RingContact};
use crate::aggregate::{Aggregate, Deadline};
use crate::testing::{Scenario, given, t0};

pub(super) fn uuid_text(kind: u16, n: u16) -> String {
    format!("00000000-0000-4000-8000-{kind:04x}{n:08x}")
}
pub(super) fn call_id() -> CallId {
    CallId::parse(uuid_text(1, 1)).expect("valid")
}
pub(super) fn leg(n: u16) -> LegId {
    LegId::parse(uuid_text(2, n)).expect("valid")
}
pub(super) fn contact(n: u16) -> DeviceContactId {
    DeviceContactId::parse(uuid_text(3, n)).expect("valid")
}
pub(super) fn session(n: u16) -> ListenSessionId {
    ListenSessionId::parse(uuid_text(4, n)).expect("valid")
}
pub(super) fn recording(n: u16) -> RecordingId {
    RecordingId::parse(uuid_text(5, n)).expect("valid")
}
pub(super) fn user(s: &str) -> UserId {
    UserId::parse(s).expect("valid")
}
pub(super) fn ext(s: &str) -> ExtensionNumber {
    ExtensionNumber::parse(s).expect("valid")
}
pub(super) fn number(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).expect("valid")
}
pub(super) fn party(extension: &str, department: &str, name: &str) -> Party {
    Party::internal(
        ext(extension),
        user(extension),
        DepartmentId::parse(department).expect("valid"),
        name,
    )
}
pub(super) fn alice() -> Party {
    party("1001", "sales", "Alice Moreau")
}
pub(super) fn bruno() -> Party {
    party("1006", "support", "Bruno Lind")
}
pub(super) fn dana() -> Party {
    party("1007", "support", "Dana Okafor")
}
pub(super) fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}
pub(super) fn at(s: i64) -> DateTime<Utc> {
    t0() + secs(s)
}

pub(super) fn offer() -> C {
    C::Offer {
        call: call_id(),
        caller_leg: leg(1),
        direction: Direction::Internal,
        caller: alice(),
        callee: bruno(),
        dialled: number("1006"),
        origin: CallOrigin::Device,
        caller_contact: Some(contact(1)),
        trunk: None,
        requested_by: None,
    }
}

pub(super) fn other_offer() -> C {
    match offer() {
        C::Offer {
            caller_leg,
            direction,
            caller,
            callee,
            dialled,
            origin,
            caller_contact,
            trunk,
            requested_by,
            ..
        } => C::Offer {
            call: CallId::parse(uuid_text(1, 9)).expect("valid"),
            caller_leg,
            direction,
            caller,
            callee,
            dialled,
            origin,
            caller_contact,
            trunk,
            requested_by,
        },
        other => other,
    }
}

/// Rings `legs` (contacts with the same numbers) for the caller's leg, 30 s timeout.
pub(super) fn ring(parent: u16, legs: &[u16], voicemail: Option<&str>) -> C {
    C::Ring {
        parent: leg(parent),
        callee: bruno(),
        role: LegRole::Callee,
        contacts: legs
            .iter()
            .map(|n| RingContact {
                leg: leg(*n),
                contact: Some(contact(*n)),
            })
            .collect(),
        ring_timeout: secs(30),
        voicemail: voicemail.map(ext),
    }
}

pub(super) fn answered_ev(n: u16, contact_n: u16) -> E {
    E::CallAnswered {
        call: call_id(),
        leg: leg(n),
        contact: Some(contact(contact_n)),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn leg_ended(
    n: u16,
    cause: HangupCause,
    disposition: Disposition,
    ended_by: HangupSide,
    sip_status: Option<u16>,
    duration_s: u64,
    billable_s: u64,
) -> E {
    E::LegEnded {
        call: call_id(),
        leg: leg(n),
        cause,
        disposition,
        ended_by,
        sip_status,
        duration_ms: duration_s * 1000,
        billable_ms: billable_s * 1000,
    }
}

pub(super) fn call_ended(
    cause: HangupCause,
    disposition: Disposition,
    duration_s: u64,
    talk_s: u64,
) -> E {
    E::CallEnded {
        call: call_id(),
        cause,
        disposition,
        duration_ms: duration_s * 1000,
        talk_ms: talk_s * 1000,
    }
}

/// Offered at t0, two contacts (legs 2 and 3) ringing from t0+1.
pub(super) fn ringing(voicemail: Option<&str>) -> Scenario<Call> {
    given::<Call>([])
        .when(offer())
        .accepted()
        .after(secs(1))
        .when(ring(1, &[2, 3], voicemail))
        .accepted()
        .when(C::Ringing { leg: leg(2) })
        .accepted()
        .when(C::Ringing { leg: leg(3) })
        .accepted()
}

/// Leg 2 answered at t0+6 (leg 3 cancelled); caller and callee talking.
pub(super) fn talking() -> Scenario<Call> {
    ringing(None)
        .at(at(6))
        .when(C::Answer { leg: leg(2) })
        .accepted()
}

// The lifecycle.

#[test]
fn an_offer_creates_the_call_and_the_callers_leg() {
    let s = given::<Call>([]).when(offer()).then([
        E::CallCreated {
            call: call_id(),
            direction: Direction::Internal,
            caller: alice(),
            callee: bruno(),
            dialled: number("1006"),
            origin: CallOrigin::Device,
            trunk: None,
            requested_by: None,
        },
        E::LegCreated {
            call: call_id(),
            leg: leg(1),
            role: LegRole::Caller,
            party: alice(),
            contact: Some(contact(1)),
            parent: None,
            ring_timeout_ms: None,
            voicemail: None,
        },
    ]);
    let call = s.state();
    assert_eq!(call.id(), Some(call_id()));
    assert_eq!(call.parties(), (&alice(), &bruno()));
    assert!(!call.is_ended());
    assert!(call.deadlines().is_empty());
}

#[test]
fn ringing_forks_one_leg_per_contact_and_arms_the_ring_timeout() {
    let s = given::<Call>([])
        .when(offer())
        .accepted()
        .after(secs(1))
        .when(ring(1, &[2, 3], Some("1006")))
        .then([
            E::LegCreated {
                call: call_id(),
                leg: leg(2),
                role: LegRole::Callee,
                party: bruno(),
                contact: Some(contact(2)),
                parent: Some(leg(1)),
                ring_timeout_ms: Some(30_000),
                voicemail: Some(ext("1006")),
            },
            E::LegCreated {
                call: call_id(),
                leg: leg(3),
                role: LegRole::Callee,
                party: bruno(),
                contact: Some(contact(3)),
                parent: Some(leg(1)),
                ring_timeout_ms: Some(30_000),
                voicemail: Some(ext("1006")),
            },
        ])
        .when(C::Ringing { leg: leg(2) })
        .then([E::LegRinging {
            call: call_id(),
            leg: leg(2),
        }])
        .when(C::EarlyMedia { leg: leg(3) })
        .then([E::LegEarlyMedia {
            call: call_id(),
            leg: leg(3),
        }]);
    assert_eq!(
        s.state().deadlines(),
        vec![Deadline::new(at(31), C::RingTimeout { deadline: at(31) })]
    );
    assert_eq!(
        s.state().leg(leg(3)).map(|l| l.progress),
        Some(LegProgress::EarlyMedia)
    );
}

#[test]
fn the_second_contact_answers_and_the_first_is_cancelled() {
    let s = ringing(None)
        .at(at(6))
        .when(C::Answer { leg: leg(3) })
        .then([
            answered_ev(3, 3),
            leg_ended(
                2,
                HangupCause::AnsweredElsewhere,
                Disposition::NoAnswer,
                HangupSide::Engine,
                None,
                5,
                0,
            ),
            answered_ev(1, 1),
        ]);
    assert!(s.state().deadlines().is_empty(), "nothing rings any more");
}

#[test]
fn the_callee_hangs_up() {
    let s = talking()
        .at(at(66))
        .when(C::HangUp {
            leg: leg(2),
            cause: None,
        })
        .then([
            leg_ended(
                2,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                65,
                60,
            ),
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                66,
                60,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 66, 60),
        ]);
    assert!(s.state().is_ended());
    assert!(s.state().ended_exactly_once());
}

/// The events of `offer()`, of ringing legs 2 and 3 with a 30 s timeout and mailbox 1006, and
/// of leg 2 answering, as decided (the times they are stored with are up to the caller).
fn offered_rung_answered() -> (Vec<E>, Vec<E>, Vec<E>) {
    let (offered, s) = given::<Call>([]).when(offer()).events();
    let (rung, s) = s.when(ring(1, &[2, 3], Some("1006"))).events();
    let (answered, _) = s.when(C::Answer { leg: leg(2) }).events();
    (offered, rung, answered)
}

#[test]
fn durations_and_the_ring_deadline_come_from_when_the_events_happened() {
    let (offered, rung, answered) = offered_rung_answered();
    let stored = |events: &Vec<E>, s: i64| {
        events
            .iter()
            .map(|e| (at(s), e.clone()))
            .collect::<Vec<_>>()
    };
    // Rung at 110 with a 30 s timeout: the deadline is 140, whenever the state is rebuilt.
    let ringing = crate::testing::given_at::<Call>(
        stored(&offered, 100).into_iter().chain(stored(&rung, 110)),
    );
    assert_eq!(
        ringing.state().deadlines(),
        vec![Deadline::new(at(140), C::RingTimeout { deadline: at(140) })]
    );
    ringing
        .at(at(139))
        .when(C::RingTimeout { deadline: at(140) })
        .then_nothing();
    // Answered at 120, hung up at 180: every duration counts from the stored instants.
    let s = crate::testing::given_at::<Call>(
        stored(&offered, 100)
            .into_iter()
            .chain(stored(&rung, 110))
            .chain(stored(&answered, 120)),
    );
    assert!(s.state().deadlines().is_empty(), "nothing rings any more");
    s.at(at(180))
        .when(C::HangUp {
            leg: leg(2),
            cause: None,
        })
        .then([
            leg_ended(
                2,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                70,
                60,
            ),
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                80,
                60,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 80, 60),
        ]);
}

#[test]
fn the_caller_hangs_up() {
    talking()
        .at(at(16))
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then([
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                16,
                10,
            ),
            leg_ended(
                2,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                15,
                10,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 16, 10),
        ]);
}

#[test]
fn a_hang_up_carries_the_cause_the_party_gave() {
    talking()
        .at(at(16))
        .when(C::HangUp {
            leg: leg(1),
            cause: Some(HangupCause::MediaTimeout),
        })
        .then([
            leg_ended(
                1,
                HangupCause::MediaTimeout,
                Disposition::Answered,
                HangupSide::Party,
                None,
                16,
                10,
            ),
            leg_ended(
                2,
                HangupCause::MediaTimeout,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                15,
                10,
            ),
            call_ended(HangupCause::MediaTimeout, Disposition::Answered, 16, 10),
        ]);
}

#[test]
fn busy_ends_the_call_as_busy() {
    given::<Call>([])
        .when(offer())
        .accepted()
        .after(secs(1))
        .when(ring(1, &[2], None))
        .accepted()
        .after(secs(1))
        .when(C::Reject {
            leg: leg(2),
            status: 486,
        })
        .then([
            leg_ended(
                2,
                HangupCause::UserBusy,
                Disposition::Busy,
                HangupSide::Party,
                Some(486),
                1,
                0,
            ),
            leg_ended(
                1,
                HangupCause::UserBusy,
                Disposition::Busy,
                HangupSide::Engine,
                Some(486),
                2,
                0,
            ),
            call_ended(HangupCause::UserBusy, Disposition::Busy, 2, 0),
        ]);
}

#[test]
fn one_busy_contact_leaves_the_other_ringing() {
    let s = ringing(None)
        .after(secs(1))
        .when(C::Reject {
            leg: leg(2),
            status: 486,
        })
        .then([leg_ended(
            2,
            HangupCause::UserBusy,
            Disposition::Busy,
            HangupSide::Party,
            Some(486),
            1,
            0,
        )]);
    assert_eq!(s.state().deadlines().len(), 1, "leg 3 still rings");
}

#[test]
fn a_6xx_from_one_contact_ends_every_branch() {
    ringing(None)
        .after(secs(2))
        .when(C::Reject {
            leg: leg(3),
            status: 603,
        })
        .then([
            leg_ended(
                3,
                HangupCause::CallRejected,
                Disposition::Failed,
                HangupSide::Party,
                Some(603),
                2,
                0,
            ),
            leg_ended(
                2,
                HangupCause::CallRejected,
                Disposition::Failed,
                HangupSide::Engine,
                None,
                2,
                0,
            ),
            leg_ended(
                1,
                HangupCause::CallRejected,
                Disposition::Failed,
                HangupSide::Engine,
                Some(603),
                3,
                0,
            ),
            call_ended(HangupCause::CallRejected, Disposition::Failed, 3, 0),
        ]);
}

#[test]
fn every_failure_status_maps_to_its_hangup_cause() {
    for status in [
        400, 403, 404, 405, 408, 410, 480, 484, 486, 488, 500, 502, 503, 504, 600, 603, 604, 606,
        499, 699,
    ] {
        let cause = HangupCause::from_sip_status(status);
        let disposition = Disposition::of(false, cause);
        let s = given::<Call>([])
            .when(offer())
            .accepted()
            .after(secs(1))
            .when(ring(1, &[2], None))
            .accepted()
            .after(secs(4))
            .when(C::Reject {
                leg: leg(2),
                status,
            })
            .then([
                leg_ended(2, cause, disposition, HangupSide::Party, Some(status), 4, 0),
                leg_ended(
                    1,
                    cause,
                    disposition,
                    HangupSide::Engine,
                    Some(status),
                    5,
                    0,
                ),
                call_ended(cause, disposition, 5, 0),
            ]);
        assert!(s.state().ended_exactly_once(), "status {status}");
    }
    assert_eq!(
        Disposition::of(false, HangupCause::from_sip_status(486)),
        Disposition::Busy
    );
    assert_eq!(
        Disposition::of(false, HangupCause::from_sip_status(480)),
        Disposition::NoAnswer
    );
}

#[test]
fn no_answer_without_a_mailbox_ends_the_call_as_no_answer() {
    let s = ringing(None);
    let [deadline] = s.state().deadlines().try_into().expect("one deadline");
    assert_eq!(deadline.at, at(31));
    let s = s.at(deadline.at).when(deadline.command).then([
        leg_ended(
            2,
            HangupCause::NoAnswer,
            Disposition::NoAnswer,
            HangupSide::Engine,
            None,
            30,
            0,
        ),
        leg_ended(
            3,
            HangupCause::NoAnswer,
            Disposition::NoAnswer,
            HangupSide::Engine,
            None,
            30,
            0,
        ),
        leg_ended(
            1,
            HangupCause::NoAnswer,
            Disposition::NoAnswer,
            HangupSide::Engine,
            Some(480),
            31,
            0,
        ),
        call_ended(HangupCause::NoAnswer, Disposition::NoAnswer, 31, 0),
    ]);
    assert!(s.state().deadlines().is_empty());
}

#[test]
fn no_answer_with_a_mailbox_sends_the_caller_to_voicemail() {
    let s = ringing(Some("1006"));
    let [deadline] = s.state().deadlines().try_into().expect("one deadline");
    let s = s.at(deadline.at).when(deadline.command).then([
        leg_ended(
            2,
            HangupCause::NoAnswer,
            Disposition::NoAnswer,
            HangupSide::Engine,
            None,
            30,
            0,
        ),
        leg_ended(
            3,
            HangupCause::NoAnswer,
            Disposition::NoAnswer,
            HangupSide::Engine,
            None,
            30,
            0,
        ),
        E::CallSentToVoicemail {
            call: call_id(),
            leg: leg(1),
            mailbox: ext("1006"),
            reason: VoicemailReason::Unavailable,
            by: None,
        },
        answered_ev(1, 1),
    ]);
    assert_eq!(s.state().voicemail(), Some(&ext("1006")));
    assert!(!s.state().is_ended());
    s.at(at(51))
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then([
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                51,
                20,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 51, 0),
        ]);
}

#[test]
fn stale_and_early_ring_timeouts_change_nothing() {
    let s = ringing(None);
    let s = s
        .at(at(20))
        .when(C::RingTimeout { deadline: at(31) })
        .then_nothing()
        .at(at(40))
        .when(C::RingTimeout { deadline: at(12) })
        .then_nothing();
    // Once answered, the armed timeout is moot: no deadline, and a late fire does nothing.
    let s = s.at(at(25)).when(C::Answer { leg: leg(2) }).accepted();
    assert!(s.state().deadlines().is_empty());
    s.at(at(31))
        .when(C::RingTimeout { deadline: at(31) })
        .then_nothing();
}

#[test]
fn the_caller_cancels_while_ringing() {
    ringing(None)
        .at(at(4))
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then([
            leg_ended(
                1,
                HangupCause::OriginatorCancel,
                Disposition::Cancelled,
                HangupSide::Party,
                None,
                4,
                0,
            ),
            leg_ended(
                2,
                HangupCause::OriginatorCancel,
                Disposition::Cancelled,
                HangupSide::Peer,
                None,
                3,
                0,
            ),
            leg_ended(
                3,
                HangupCause::OriginatorCancel,
                Disposition::Cancelled,
                HangupSide::Peer,
                None,
                3,
                0,
            ),
            call_ended(HangupCause::OriginatorCancel, Disposition::Cancelled, 4, 0),
        ])
        // The 487s answering our CANCELs, and the caller's retransmitted CANCEL.
        .when(C::Reject {
            leg: leg(2),
            status: 487,
        })
        .then_nothing()
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then_nothing();
}

#[test]
fn the_engine_refuses_a_call_before_anything_rings() {
    given::<Call>([])
        .when(offer())
        .accepted()
        .when(C::Terminate {
            cause: HangupCause::from_sip_status(486),
            sip_status: Some(486),
        })
        .then([
            leg_ended(
                1,
                HangupCause::UserBusy,
                Disposition::Busy,
                HangupSide::Engine,
                Some(486),
                0,
                0,
            ),
            call_ended(HangupCause::UserBusy, Disposition::Busy, 0, 0),
        ])
        .when(C::Terminate {
            cause: HangupCause::NormalClearing,
            sip_status: None,
        })
        .then_nothing();
}

#[test]
fn either_side_holds_and_resumes() {
    let hold = |n| E::CallHeld {
        call: call_id(),
        leg: leg(n),
    };
    let resume = |n| E::CallResumed {
        call: call_id(),
        leg: leg(n),
    };
    let s = talking()
        .when(C::Hold { leg: leg(2) })
        .then([hold(2)])
        // A session refresh that repeats the hold changes nothing.
        .when(C::Hold { leg: leg(2) })
        .then_nothing()
        .when(C::Resume { leg: leg(2) })
        .then([resume(2)])
        .when(C::Resume { leg: leg(2) })
        .then_nothing()
        .when(C::Hold { leg: leg(1) })
        .then([hold(1)]);
    assert_eq!(s.state().leg(leg(1)).map(|l| l.held), Some(true));
    s.when(C::Resume { leg: leg(1) }).then([resume(1)]);
}

#[test]
fn a_blind_transfer_hands_the_caller_to_the_target() {
    let s = talking()
        .at(at(26))
        .when(C::BlindTransfer {
            transferer_leg: leg(2),
            target: number("1007"),
            method: TransferMethod::SipRefer,
        })
        .then([
            E::BlindTransferred {
                call: call_id(),
                transferer_leg: leg(2),
                transferee_leg: leg(1),
                target: number("1007"),
                method: TransferMethod::SipRefer,
                original_caller: alice(),
            },
            leg_ended(
                2,
                HangupCause::Transferred,
                Disposition::Answered,
                HangupSide::Engine,
                None,
                25,
                20,
            ),
        ]);
    assert!(!s.state().is_ended());
    let s = s
        .when(C::Ring {
            parent: leg(1),
            callee: dana(),
            role: LegRole::Callee,
            contacts: vec![RingContact {
                leg: leg(4),
                contact: Some(contact(4)),
            }],
            ring_timeout: secs(20),
            voicemail: None,
        })
        .accepted()
        .at(at(30))
        .when(C::Answer { leg: leg(4) })
        // The caller's leg is answered already: only the target's answer is new.
        .then([answered_ev(4, 4)])
        .at(at(40))
        .when(C::HangUp {
            leg: leg(4),
            cause: None,
        })
        .then([
            leg_ended(
                4,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                14,
                10,
            ),
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                40,
                34,
            ),
            // 20 s with Bruno, 10 s with Dana.
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 40, 30),
        ]);
    assert!(s.state().ended_exactly_once());
}

#[test]
fn a_blind_transfer_target_that_does_not_answer_ends_the_call() {
    talking()
        .when(C::BlindTransfer {
            transferer_leg: leg(2),
            target: number("1007"),
            method: TransferMethod::Panel,
        })
        .accepted()
        .at(at(10))
        .when(ring(1, &[4], None))
        .accepted()
        .at(at(40))
        .when(C::RingTimeout { deadline: at(40) })
        .then([
            leg_ended(
                4,
                HangupCause::NoAnswer,
                Disposition::NoAnswer,
                HangupSide::Engine,
                None,
                30,
                0,
            ),
            leg_ended(
                1,
                HangupCause::NoAnswer,
                Disposition::Answered,
                HangupSide::Engine,
                Some(480),
                40,
                34,
            ),
            call_ended(HangupCause::NoAnswer, Disposition::Answered, 40, 0),
        ]);
}

#[test]
fn an_attended_transfer_joins_the_caller_with_the_consulted_target() {
    let consult = CallId::parse(uuid_text(1, 2)).expect("valid");
    let s = talking()
        .when(C::Hold { leg: leg(2) })
        .accepted()
        .at(at(36))
        .when(C::AttendedTransfer {
            transferer_leg: leg(2),
            consult_call: consult,
            target_leg: leg(7),
            target: dana(),
            method: TransferMethod::SipRefer,
        })
        .then([
            E::AttendedTransferred {
                call: call_id(),
                transferer_leg: leg(2),
                transferee_leg: leg(1),
                consult_call: consult,
                target_leg: leg(7),
                target: dana(),
                method: TransferMethod::SipRefer,
                original_caller: alice(),
            },
            leg_ended(
                2,
                HangupCause::Transferred,
                Disposition::Answered,
                HangupSide::Engine,
                None,
                35,
                30,
            ),
        ]);
    let target = s.state().leg(leg(7)).expect("the target leg joined");
    assert_eq!(target.party, dana());
    assert_eq!(target.answered_at, Some(at(36)));
    s.at(at(46))
        .when(C::HangUp {
            leg: leg(7),
            cause: None,
        })
        .then([
            leg_ended(
                7,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                10,
                10,
            ),
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                46,
                40,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 46, 40),
        ]);
}

#[test]
fn the_consultation_call_ends_as_transferred() {
    talking()
        .at(at(20))
        .when(C::Terminate {
            cause: HangupCause::Transferred,
            sip_status: None,
        })
        .then([
            leg_ended(
                1,
                HangupCause::Transferred,
                Disposition::Answered,
                HangupSide::Engine,
                None,
                20,
                14,
            ),
            leg_ended(
                2,
                HangupCause::Transferred,
                Disposition::Answered,
                HangupSide::Engine,
                None,
                19,
                14,
            ),
            call_ended(HangupCause::Transferred, Disposition::Answered, 20, 14),
        ]);
}

pub(super) fn listen(n: u16, target: u16) -> C {
    C::StartListening {
        session: session(n),
        supervisor: user("1011"),
        supervisor_leg: leg(9),
        target_leg: leg(target),
        mode: ListenMode::Listen,
        via: ListenVia::Browser,
    }
}

#[test]
fn listening_starts_changes_and_stops_without_ending_the_call() {
    let s = talking()
        .at(at(10))
        .when(listen(1, 2))
        .then([E::ListenStarted {
            call: call_id(),
            session: session(1),
            supervisor: user("1011"),
            supervisor_leg: leg(9),
            target_leg: leg(2),
            target: bruno(),
            mode: ListenMode::Listen,
            via: ListenVia::Browser,
        }])
        .when(listen(1, 2))
        .then_nothing()
        .when(C::ChangeListenMode {
            session: session(1),
            mode: ListenMode::Whisper,
        })
        .then([E::ListenModeChanged {
            call: call_id(),
            session: session(1),
            mode: ListenMode::Whisper,
            previous: ListenMode::Listen,
        }])
        .at(at(55))
        .when(C::StopListening {
            session: session(1),
            reason: ListenEndReason::SupervisorHungUp,
        })
        .then([E::ListenStopped {
            call: call_id(),
            session: session(1),
            reason: ListenEndReason::SupervisorHungUp,
            duration_ms: 45_000,
        }])
        .when(C::StopListening {
            session: session(1),
            reason: ListenEndReason::SupervisorHungUp,
        })
        .then_nothing();
    let call = s.state();
    assert!(!call.is_ended());
    assert!(call.live_legs().count() == 2);
    let audit = &call.listens()[0];
    assert_eq!(audit.supervisor, user("1011"));
    assert_eq!(audit.target, bruno());
    assert_eq!(audit.started_at, at(10));
    assert_eq!(audit.stopped_after_ms, Some(45_000));
}

#[test]
fn listening_stops_when_its_target_hangs_up() {
    talking()
        .at(at(10))
        .when(listen(1, 1))
        .accepted()
        .at(at(20))
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then([
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                20,
                14,
            ),
            E::ListenStopped {
                call: call_id(),
                session: session(1),
                reason: ListenEndReason::CallEnded,
                duration_ms: 10_000,
            },
            leg_ended(
                2,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                19,
                14,
            ),
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 20, 14),
        ]);
}

#[test]
fn recordings_start_stop_and_stop_with_the_call() {
    let started = |n| E::CallRecordingStarted {
        call: call_id(),
        recording: recording(n),
        leg: None,
        trigger: RecordingTrigger::OnDemand,
        by: Some(user("1006")),
    };
    let start = |n| C::StartRecording {
        recording: recording(n),
        leg: None,
        trigger: RecordingTrigger::OnDemand,
        by: Some(user("1006")),
    };
    talking()
        .at(at(10))
        .when(start(1))
        .then([started(1)])
        .when(start(1))
        .then_rejected(R::RecordingRunning(recording(1)))
        .at(at(20))
        .when(C::StopRecording {
            recording: recording(1),
            size_bytes: 160_000,
            by: None,
        })
        .then([E::CallRecordingStopped {
            call: call_id(),
            recording: recording(1),
            duration_ms: 10_000,
            size_bytes: 160_000,
            by: None,
        }])
        .when(start(2))
        .then([started(2)])
        .at(at(30))
        .when(C::HangUp {
            leg: leg(2),
            cause: None,
        })
        .then([
            leg_ended(
                2,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Party,
                None,
                29,
                24,
            ),
            leg_ended(
                1,
                HangupCause::NormalClearing,
                Disposition::Answered,
                HangupSide::Peer,
                None,
                30,
                24,
            ),
            E::CallRecordingStopped {
                call: call_id(),
                recording: recording(2),
                duration_ms: 10_000,
                size_bytes: 0,
                by: None,
            },
            call_ended(HangupCause::NormalClearing, Disposition::Answered, 30, 24),
        ]);
}
