//! Given/when/then for what a call refuses and what it shrugs off: commands that make no
//! sense in the current state are rejected with a reason; signalling the network repeats is
//! accepted and changes nothing. Also the pure queries (CDR lines, rebuild from history).

use events::ids::CallId;
use events::model::{
    Disposition, HangupCause, LegRole, ListenMode, RecordingTrigger, TransferMethod,
};

use super::tests::*;
use super::{Call, CallCommand as C, CallRejection as R};
use crate::aggregate::Aggregate;
use crate::testing::given;

// Rejections: commands that make no sense now.

#[test]
fn nothing_happens_to_a_call_that_was_never_offered() {
    given::<Call>([])
        .when(C::Answer { leg: leg(2) })
        .then_rejected(R::NotOffered)
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .then_rejected(R::NotOffered);
}

#[test]
fn an_ended_call_cannot_be_answered_held_or_transferred() {
    let ended = ringing(None)
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .accepted();
    ended
        .clone()
        .when(C::Answer { leg: leg(2) })
        .then_rejected(R::CallEnded)
        .when(C::Hold { leg: leg(1) })
        .then_rejected(R::CallEnded)
        .when(ring(1, &[5], None))
        .then_rejected(R::CallEnded)
        .when(listen(1, 1))
        .then_rejected(R::CallEnded)
        .when(C::BlindTransfer {
            transferer_leg: leg(1),
            target: number("1007"),
            method: TransferMethod::SipRefer,
        })
        .then_rejected(R::CallEnded);
}

#[test]
fn a_fork_that_lost_the_race_cannot_answer() {
    talking()
        .when(C::Answer { leg: leg(3) })
        .then_rejected(R::AnsweredElsewhere(leg(3)));
}

#[test]
fn commands_that_do_not_fit_the_leg_are_rejected() {
    let s = ringing(None)
        .when(C::Hold { leg: leg(2) })
        .then_rejected(R::NotAnswered(leg(2)))
        .when(C::Answer { leg: leg(1) })
        .then_rejected(R::CallerLeg(leg(1)))
        .when(C::Answer { leg: leg(8) })
        .then_rejected(R::UnknownLeg(leg(8)))
        .when(C::HangUp {
            leg: leg(2),
            cause: None,
        })
        .then_rejected(R::NotAnswered(leg(2)))
        .when(C::Reject {
            leg: leg(2),
            status: 200,
        })
        .then_rejected(R::NotAFailureStatus(200))
        .when(C::Reject {
            leg: leg(2),
            status: 302,
        })
        .then_rejected(R::NotAFailureStatus(302))
        .when(C::BlindTransfer {
            transferer_leg: leg(1),
            target: number("1007"),
            method: TransferMethod::SipRefer,
        })
        .then_rejected(R::NotAnswered(leg(1)))
        .when(listen(1, 2))
        .then_rejected(R::NotAnswered(leg(2)))
        .when(ring(1, &[3, 5], None))
        .then_rejected(R::DuplicateLeg(leg(3)))
        .when(ring(1, &[], None))
        .then_rejected(R::NoContacts)
        .when(ring(2, &[5], None))
        .then_rejected(R::NotAnswered(leg(2)))
        .when(C::StartRecording {
            recording: recording(1),
            leg: None,
            trigger: RecordingTrigger::Policy,
            by: None,
        })
        .then_rejected(R::NothingToRecord)
        .when(other_offer())
        .then_rejected(R::AlreadyOffered(call_id()));
    let s = s
        .when(C::Answer { leg: leg(2) })
        .accepted()
        .when(C::Reject {
            leg: leg(2),
            status: 486,
        })
        .then_rejected(R::AlreadyAnswered(leg(2)))
        .when(ring(1, &[5], None))
        .then_rejected(R::AlreadyBridged(leg(1)))
        .when(C::ChangeListenMode {
            session: session(4),
            mode: ListenMode::Barge,
        })
        .then_rejected(R::UnknownListen(session(4)))
        .when(C::StopRecording {
            recording: recording(4),
            size_bytes: 0,
            by: None,
        })
        .then_rejected(R::UnknownRecording(recording(4)))
        .when(listen(1, 2))
        .accepted()
        .when(listen(1, 1))
        .then_rejected(R::ListenConflict(session(1)));
    let s = s
        .when(C::AttendedTransfer {
            transferer_leg: leg(2),
            consult_call: CallId::parse(uuid_text(1, 2)).expect("valid"),
            target_leg: leg(1),
            target: dana(),
            method: TransferMethod::SipRefer,
        })
        .then_rejected(R::TargetInCall(leg(1)))
        .when(C::BlindTransfer {
            transferer_leg: leg(2),
            target: number("1007"),
            method: TransferMethod::SipRefer,
        })
        .accepted();
    // The transferer's leg ended: its repeated REFER is refused, and the lone caller has no
    // peer to transfer.
    s.when(C::BlindTransfer {
        transferer_leg: leg(2),
        target: number("1007"),
        method: TransferMethod::SipRefer,
    })
    .then_rejected(R::LegEnded(leg(2)))
    .when(C::BlindTransfer {
        transferer_leg: leg(1),
        target: number("1007"),
        method: TransferMethod::SipRefer,
    })
    .then_rejected(R::NoPeer(leg(1)));
}

#[test]
fn rejections_read_as_lowercase_sentences() {
    let text = R::NotAnswered(leg(2)).to_string();
    assert!(
        text.starts_with("leg ") && text.ends_with("is not answered"),
        "{text}"
    );
    assert_eq!(R::CallEnded.to_string(), "the call has ended");
}

// Duplicates the network makes: accepted, nothing happens.

#[test]
fn repeated_signalling_changes_nothing() {
    let s = given::<Call>([])
        .when(offer())
        .accepted()
        .when(offer())
        .then_nothing()
        .after(secs(1))
        .when(ring(1, &[2, 3], None))
        .accepted()
        .when(ring(1, &[2, 3], None))
        .then_nothing()
        .when(C::Ringing { leg: leg(2) })
        .accepted()
        .when(C::Ringing { leg: leg(2) })
        .then_nothing()
        .when(C::EarlyMedia { leg: leg(2) })
        .accepted()
        .when(C::Ringing { leg: leg(2) })
        .then_nothing()
        .when(C::EarlyMedia { leg: leg(2) })
        .then_nothing()
        .when(C::Answer { leg: leg(2) })
        .accepted()
        .when(C::Answer { leg: leg(2) })
        .then_nothing()
        .when(C::Ringing { leg: leg(2) })
        .then_nothing()
        .when(C::Reject {
            leg: leg(3),
            status: 487,
        })
        .then_nothing()
        .when(C::HangUp {
            leg: leg(2),
            cause: None,
        })
        .accepted();
    assert!(s.state().is_ended());
    s.when(C::HangUp {
        leg: leg(2),
        cause: None,
    })
    .then_nothing()
    .when(C::HangUp {
        leg: leg(1),
        cause: None,
    })
    .then_nothing()
    .when(C::RingTimeout { deadline: at(31) })
    .then_nothing();
}

// Queries.

#[test]
fn the_leg_summaries_are_the_cdr_lines() {
    let s = talking()
        .at(at(66))
        .when(C::HangUp {
            leg: leg(1),
            cause: None,
        })
        .accepted();
    let call = s.state();
    let lines = call.leg_summaries();
    assert_eq!(lines.len(), 3);
    let caller = &lines[0];
    assert_eq!(
        (caller.role, caller.started_at, caller.answered_at),
        (LegRole::Caller, at(0), Some(at(6)))
    );
    let end = caller.end.expect("ended");
    assert_eq!((end.at, end.disposition), (at(66), Disposition::Answered));
    let lost = lines[2].end.expect("ended");
    assert_eq!(
        (lost.cause, lost.disposition, lost.at),
        (HangupCause::AnsweredElsewhere, Disposition::NoAnswer, at(6))
    );
    let summary = call.summary().expect("ended");
    assert_eq!((summary.duration_ms, summary.talk_ms), (66_000, 60_000));
    assert!(call.ended_exactly_once());

    // A rebuild from the stream answers the same.
    let rebuilt = Call::replay(s.history());
    assert_eq!(rebuilt.leg_summaries(), lines);
    assert_eq!(rebuilt.summary(), call.summary());
    assert!(rebuilt.ended_exactly_once());
}

#[test]
fn a_rebuilt_call_re_arms_its_ring_timeout() {
    let s = ringing(Some("1006"));
    let rebuilt = Call::replay(s.history());
    assert_eq!(rebuilt.deadlines(), s.state().deadlines());
    assert_eq!(rebuilt.deadlines().len(), 1);
}
