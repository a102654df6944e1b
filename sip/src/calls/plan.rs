//! What the wire must do for the call as the log now holds it: the pure half of a session.
//! After every change of the call (a command of the session's, the aggregate's own ring
//! timeout), the session compares the call's legs with where each SIP dialog stands and gets
//! the steps that bring the dialogs in line: relay ringing or early media to the caller,
//! answer the caller once a callee leg is answered, refuse it with the status the call ended
//! with, cancel branches whose leg ended while they ring, and BYE dialogs whose leg ended after
//! an answer. A dialog is only ever moved forward, so the same call state yields each step once.

use engine::call::{Call, LegProgress};
use events::ids::LegId;
use events::model::HangupCause;

/// Where the caller's side stands on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallerSip {
    /// An INVITE from the caller, no response but 100 yet.
    Offered,
    /// 180 sent.
    Ringing,
    /// 183 with a callee's early media sent.
    EarlyMedia,
    /// 200 sent.
    Accepted,
    /// Click-to-call: the engine is ringing the user's phone.
    Inviting,
    /// Click-to-call: the user's phone answered; the other party is not bridged to it yet.
    Answered,
    /// Click-to-call: the user's phone has the other party's media.
    Bridged,
    /// Refused, cancelled or hung up: nothing more to send.
    Finished,
}

/// Where one outgoing INVITE (a callee branch, or a click-to-call candidate) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BranchSip {
    /// Sent, no final response yet.
    Inviting,
    /// 200 received and acknowledged: a confirmed dialog.
    Answered,
    /// CANCEL sent; the final response is still to come.
    Cancelling,
    /// Failed, cancelled or hung up.
    Finished,
}

/// What the session knows of one callee branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BranchView {
    pub(crate) leg: LegId,
    pub(crate) sip: BranchSip,
    /// The branch sent a description (early media or its answer).
    pub(crate) has_sdp: bool,
}

/// One step on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// 180 to the caller.
    Ringing,
    /// 183 to the caller with branch `n`'s early media.
    EarlyMedia(usize),
    /// 200 to the caller with branch `n`'s answer.
    Accept(usize),
    /// Click-to-call: re-INVITE the user's phone with branch `n`'s answer.
    Bridge(usize),
    /// A final failure response to the caller.
    RejectCaller(u16),
    ByeCaller,
    /// Click-to-call: cancel the INVITEs still ringing the user's phones.
    CancelCandidates,
    Cancel(usize),
    Bye(usize),
}

/// The final response a caller gets for a call that ended with `cause` when the call recorded
/// no SIP status for it.
pub(crate) fn status_for(cause: HangupCause) -> u16 {
    use HangupCause::*;
    match cause {
        UserBusy => 486,
        NoAnswer | NoUserResponse | SubscriberAbsent => 480,
        UnallocatedNumber | NoRouteToDestination => 404,
        CallRejected => 603,
        OriginatorCancel => 487,
        ExchangeRoutingError => 482,
        RecoveryOnTimerExpiry => 408,
        BearerCapabilityNotAvailable | IncompatibleDestination => 488,
        InvalidNumberFormat => 484,
        TemporaryFailure | SwitchCongestion | NormalCircuitCongestion | ServiceUnavailable => 503,
        _ => 500,
    }
}

/// The steps that bring the dialogs in line with `call`.
pub(crate) fn plan(
    call: &Call,
    caller_leg: LegId,
    caller: CallerSip,
    branches: &[BranchView],
) -> Vec<Action> {
    use CallerSip as C;
    let mut actions = Vec::new();
    let Some(leg) = call.leg(caller_leg) else {
        return actions;
    };
    let live = |b: &BranchView| call.leg(b.leg).filter(|l| l.ended.is_none());
    let answered = || {
        branches.iter().position(|b| {
            b.sip == BranchSip::Answered && live(b).is_some_and(|l| l.answered_at.is_some())
        })
    };
    if let Some(end) = leg.ended {
        match caller {
            C::Offered | C::Ringing | C::EarlyMedia => actions.push(Action::RejectCaller(
                end.sip_status
                    .filter(|s| (300..=699).contains(s))
                    .unwrap_or_else(|| status_for(end.cause)),
            )),
            C::Accepted | C::Answered | C::Bridged => actions.push(Action::ByeCaller),
            C::Inviting => actions.push(Action::CancelCandidates),
            C::Finished => {}
        }
    } else if leg.answered_at.is_some() {
        match (caller, answered()) {
            (C::Offered | C::Ringing | C::EarlyMedia, Some(n)) => actions.push(Action::Accept(n)),
            (C::Answered, Some(n)) => actions.push(Action::Bridge(n)),
            _ => {}
        }
    } else if matches!(caller, C::Offered | C::Ringing) {
        let early = branches.iter().position(|b| {
            b.has_sdp
                && b.sip == BranchSip::Inviting
                && live(b).is_some_and(|l| l.progress == LegProgress::EarlyMedia)
        });
        let ringing = branches.iter().any(|b| {
            live(b).is_some_and(|l| {
                matches!(l.progress, LegProgress::Ringing | LegProgress::EarlyMedia)
            })
        });
        match early {
            Some(n) => actions.push(Action::EarlyMedia(n)),
            None if caller == C::Offered && ringing => actions.push(Action::Ringing),
            None => {}
        }
    }
    for (n, b) in branches.iter().enumerate() {
        let ended = call.leg(b.leg).is_some_and(|l| l.ended.is_some());
        match b.sip {
            BranchSip::Inviting if ended => actions.push(Action::Cancel(n)),
            BranchSip::Answered if ended => actions.push(Action::Bye(n)),
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::fixtures::{offer, ring, run};
    use chrono::{DateTime, TimeDelta, Utc};
    use engine::call::CallCommand;
    use events::ids::CallId;
    use events::{IdGen, SeededIds};

    struct Fixture {
        call: Call,
        caller: LegId,
        forks: [LegId; 2],
        now: DateTime<Utc>,
    }

    impl Fixture {
        fn ringing() -> Fixture {
            let ids = SeededIds::new(5);
            let id = CallId::from_uuid(ids.next_uuid());
            let caller = LegId::from_uuid(ids.next_uuid());
            let forks = [
                LegId::from_uuid(ids.next_uuid()),
                LegId::from_uuid(ids.next_uuid()),
            ];
            let mut f = Fixture {
                call: Call::default(),
                caller,
                forks,
                now: engine::testing::t0(),
            };
            f.run(offer(id, caller));
            f.run(ring(caller, &forks));
            f
        }

        fn run(&mut self, command: CallCommand) {
            run(&mut self.call, command, self.now);
        }

        fn branches(&self, sips: [BranchSip; 2], sdp: [bool; 2]) -> Vec<BranchView> {
            (0..2)
                .map(|n| BranchView {
                    leg: self.forks[n],
                    sip: sips[n],
                    has_sdp: sdp[n],
                })
                .collect()
        }
    }

    use BranchSip::{Answered, Cancelling, Finished, Inviting};

    #[test]
    fn ringing_and_early_media_are_relayed_once() {
        let mut f = Fixture::ringing();
        let both = f.branches([Inviting, Inviting], [false, false]);
        assert_eq!(plan(&f.call, f.caller, CallerSip::Offered, &both), vec![]);
        f.run(CallCommand::Ringing { leg: f.forks[1] });
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Offered, &both),
            vec![Action::Ringing]
        );
        assert_eq!(plan(&f.call, f.caller, CallerSip::Ringing, &both), vec![]);
        f.run(CallCommand::EarlyMedia { leg: f.forks[0] });
        let with_sdp = f.branches([Inviting, Inviting], [true, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Ringing, &with_sdp),
            vec![Action::EarlyMedia(0)]
        );
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::EarlyMedia, &with_sdp),
            vec![]
        );
    }

    #[test]
    fn an_answer_accepts_the_caller_and_cancels_the_other_fork() {
        let mut f = Fixture::ringing();
        f.run(CallCommand::Answer { leg: f.forks[1] });
        let branches = f.branches([Inviting, Answered], [false, true]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Ringing, &branches),
            vec![Action::Accept(1), Action::Cancel(0)]
        );
        let done = f.branches([Cancelling, Answered], [false, true]);
        assert_eq!(plan(&f.call, f.caller, CallerSip::Accepted, &done), vec![]);
        // Click-to-call: the user's phone is bridged instead.
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Answered, &done),
            vec![Action::Bridge(1)]
        );
    }

    #[test]
    fn a_hang_up_after_the_answer_byes_the_other_side() {
        let mut f = Fixture::ringing();
        f.run(CallCommand::Answer { leg: f.forks[0] });
        f.run(CallCommand::HangUp {
            leg: f.caller,
            cause: None,
        });
        let branches = f.branches([Answered, Cancelling], [true, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Finished, &branches),
            vec![Action::Bye(0)]
        );
        let mut g = Fixture::ringing();
        g.run(CallCommand::Answer { leg: g.forks[0] });
        g.run(CallCommand::HangUp {
            leg: g.forks[0],
            cause: None,
        });
        let branches = g.branches([Finished, Cancelling], [true, false]);
        assert_eq!(
            plan(&g.call, g.caller, CallerSip::Accepted, &branches),
            vec![Action::ByeCaller]
        );
    }

    #[test]
    fn a_ring_timeout_cancels_every_fork_and_refuses_the_caller_with_480() {
        let mut f = Fixture::ringing();
        f.now += TimeDelta::seconds(30);
        let deadline = f.now;
        f.run(CallCommand::RingTimeout { deadline });
        let branches = f.branches([Inviting, Inviting], [false, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Ringing, &branches),
            vec![
                Action::RejectCaller(480),
                Action::Cancel(0),
                Action::Cancel(1)
            ]
        );
    }

    #[test]
    fn the_last_failing_fork_gives_the_caller_its_status() {
        let mut f = Fixture::ringing();
        f.run(CallCommand::Reject {
            leg: f.forks[0],
            status: 486,
        });
        let branches = f.branches([Finished, Inviting], [false, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Offered, &branches),
            vec![]
        );
        f.run(CallCommand::Reject {
            leg: f.forks[1],
            status: 603,
        });
        let branches = f.branches([Finished, Finished], [false, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Offered, &branches),
            vec![Action::RejectCaller(603)]
        );
    }

    #[test]
    fn a_caller_cancel_cancels_the_forks_and_refuses_nothing_more() {
        let mut f = Fixture::ringing();
        f.run(CallCommand::HangUp {
            leg: f.caller,
            cause: None,
        });
        let branches = f.branches([Inviting, Inviting], [false, false]);
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Finished, &branches),
            vec![Action::Cancel(0), Action::Cancel(1)]
        );
        // Click-to-call, user's phone still ringing when the call ended.
        assert_eq!(
            plan(&f.call, f.caller, CallerSip::Inviting, &[]),
            vec![Action::CancelCandidates]
        );
    }

    #[test]
    fn statuses_for_causes_without_one() {
        assert_eq!(status_for(HangupCause::UserBusy), 486);
        assert_eq!(status_for(HangupCause::NoAnswer), 480);
        assert_eq!(status_for(HangupCause::OriginatorCancel), 487);
        assert_eq!(status_for(HangupCause::NormalClearing), 500);
    }
}
