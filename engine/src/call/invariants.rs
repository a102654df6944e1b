//! Seeded random command sequences over a small alphabet (four legs, every command kind, times
//! that only move forward, the ring timeout fed back from `deadlines`), checking after every
//! step what must always hold: no leg ends twice, the call ends at most once and only after its
//! last leg, nothing follows the end, durations add up. Each run then ends the call and checks
//! it ended exactly once, and that a rebuild from the history answers the same. A tiny xorshift
//! keeps it deterministic without a dependency; a failure prints its seed.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use events::ids::LegId;
use events::model::{
    CallEvent, HangupCause, LegRole, ListenEndReason, ListenMode, ListenVia, RecordingTrigger,
    TransferMethod,
};

use super::tests::{alice, call_id, leg, number, offer, recording, ring, session};
use super::{Call, CallCommand as C};
use crate::aggregate::Aggregate;
use crate::testing::t0;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const LEGS: [u16; 5] = [1, 2, 3, 4, 5];
const STATUSES: [u16; 8] = [404, 408, 480, 486, 487, 503, 600, 603];

fn random_command(rng: &mut XorShift, call: &Call) -> C {
    let l = leg(rng.pick(&LEGS));
    match rng.below(17) {
        0 => offer(),
        1 | 2 => {
            let first = rng.pick(&LEGS[1..]);
            let second = rng.pick(&LEGS[1..]);
            let parent = rng.pick(&[1, 2, 3]);
            let mailbox = rng.pick(&[None, Some("1006")]);
            if first == second {
                ring(parent, &[first], mailbox)
            } else {
                ring(parent, &[first, second], mailbox)
            }
        }
        3 => C::Ringing { leg: l },
        4 => C::EarlyMedia { leg: l },
        5 | 6 => C::Answer { leg: l },
        7 => C::Reject {
            leg: l,
            status: rng.pick(&STATUSES),
        },
        8 | 9 => C::HangUp {
            leg: l,
            cause: rng.pick(&[None, Some(HangupCause::MediaTimeout)]),
        },
        10 => match call.deadlines().first() {
            Some(d) => d.command.clone(),
            None => C::RingTimeout { deadline: t0() },
        },
        11 => {
            if rng.below(2) == 0 {
                C::Hold { leg: l }
            } else {
                C::Resume { leg: l }
            }
        }
        12 => C::BlindTransfer {
            transferer_leg: l,
            target: number("1007"),
            method: TransferMethod::SipRefer,
        },
        13 => C::AttendedTransfer {
            transferer_leg: l,
            consult_call: call_id(),
            target_leg: leg(rng.pick(&[6, 7])),
            target: alice(),
            method: TransferMethod::Panel,
        },
        14 => match rng.below(3) {
            0 => C::StartListening {
                session: session(1),
                supervisor: events::ids::UserId::parse("1011").expect("valid"),
                supervisor_leg: leg(9),
                target_leg: l,
                mode: ListenMode::Listen,
                via: ListenVia::Phone,
            },
            1 => C::ChangeListenMode {
                session: session(1),
                mode: rng.pick(&[ListenMode::Whisper, ListenMode::Barge]),
            },
            _ => C::StopListening {
                session: session(1),
                reason: ListenEndReason::SupervisorHungUp,
            },
        },
        15 => {
            if rng.below(2) == 0 {
                C::StartRecording {
                    recording: recording(1),
                    leg: None,
                    trigger: RecordingTrigger::Policy,
                    by: None,
                }
            } else {
                C::StopRecording {
                    recording: recording(1),
                    size_bytes: 1,
                    by: None,
                }
            }
        }
        _ => C::Terminate {
            cause: HangupCause::ManagerRequest,
            sip_status: None,
        },
    }
}

/// What the event stream itself must obey, checked event by event.
#[derive(Default)]
struct StreamCheck {
    ended_legs: HashMap<LegId, u32>,
    call_ended: bool,
}

impl StreamCheck {
    fn check(&mut self, seed: u64, state_before: &Call, event: &CallEvent) {
        assert!(
            !self.call_ended,
            "seed {seed}: {event:?} after the call ended"
        );
        match event {
            CallEvent::LegEnded {
                leg,
                duration_ms,
                billable_ms,
                ..
            } => {
                let n = self.ended_legs.entry(*leg).or_default();
                *n += 1;
                assert_eq!(*n, 1, "seed {seed}: leg {leg} ended twice");
                assert!(
                    billable_ms <= duration_ms,
                    "seed {seed}: billable {billable_ms} > duration {duration_ms}"
                );
                assert!(state_before.leg(*leg).is_some(), "seed {seed}: unknown leg");
            }
            CallEvent::CallEnded {
                duration_ms,
                talk_ms,
                ..
            } => {
                assert!(
                    state_before.legs().iter().all(|l| l.ended.is_some()),
                    "seed {seed}: the call ended with a leg still up"
                );
                assert!(
                    talk_ms <= duration_ms,
                    "seed {seed}: talk {talk_ms} > duration {duration_ms}"
                );
                self.call_ended = true;
            }
            _ => {}
        }
    }
}

/// The call after a random run, and its history: each event with the instant it happened at.
fn run(seed: u64, steps: usize) -> (Call, Vec<(CallEvent, DateTime<Utc>)>) {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut call = Call::default();
    let mut history = Vec::new();
    let mut check = StreamCheck::default();
    let mut now = t0();
    // Offer first most of the time, so the sequences get somewhere; then random commands made
    // against the state as it is (the ring timeout is the one the state armed); then wind down:
    // every leg hangs up, and the engine ends whatever is left.
    let mut first = (rng.below(8) != 0).then(offer);
    let mut random_left = steps;
    let mut wind_down = LEGS
        .iter()
        .map(|n| C::HangUp {
            leg: leg(*n),
            cause: None,
        })
        .chain([C::Terminate {
            cause: HangupCause::SystemShutdown,
            sip_status: None,
        }]);
    loop {
        let command = if let Some(c) = first.take() {
            c
        } else if random_left > 0 {
            random_left -= 1;
            random_command(&mut rng, &call)
        } else if let Some(c) = wind_down.next() {
            c
        } else {
            break;
        };
        now += TimeDelta::milliseconds(i64::try_from(rng.below(20_000)).unwrap_or(0));
        let Ok(events) = call.decide(&command, now) else {
            continue;
        };
        for e in &events {
            check.check(seed, &call, e);
            call.evolve(e, now);
        }
        history.extend(events.into_iter().map(|e| (e, now)));
        assert!(
            call.never_ended_twice(),
            "seed {seed}: ended twice after {command:?}"
        );
        let ringing_without_timer = !call.is_ended()
            && call
                .legs()
                .iter()
                .any(|l| l.role != LegRole::Caller && l.ended.is_none() && l.answered_at.is_none())
            && call.deadlines().is_empty();
        assert!(
            !ringing_without_timer,
            "seed {seed}: a leg rings with no timeout"
        );
    }
    (call, history)
}

#[test]
fn random_sequences_end_every_leg_and_the_call_exactly_once() {
    let mut offered = 0;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..2_000 {
        let (call, history) = run(seed, 30);
        if !call.is_offered() {
            assert!(history.is_empty(), "seed {seed}");
            continue;
        }
        offered += 1;
        for (e, _) in &history {
            seen.insert(match e {
                CallEvent::CallEnded { disposition, .. } => format!("{disposition:?}"),
                other => other.event_type().to_owned(),
            });
        }
        assert!(
            call.is_ended(),
            "seed {seed}: the wind-down left the call up"
        );
        assert!(call.ended_exactly_once(), "seed {seed}");
        assert!(
            matches!(history.last(), Some((CallEvent::CallEnded { .. }, _))),
            "seed {seed}: the stream does not end with CallEnded"
        );
        for line in call.leg_summaries() {
            let end = line.end.expect("every leg ended");
            assert!(end.at >= line.started_at, "seed {seed}: negative duration");
            if let Some(answered) = line.answered_at {
                assert!(
                    answered >= line.started_at && end.at >= answered,
                    "seed {seed}"
                );
            }
        }
        let rebuilt = Call::replay(history.iter().map(|(e, at)| (e, *at)));
        assert_eq!(rebuilt.leg_summaries(), call.leg_summaries(), "seed {seed}");
        assert_eq!(rebuilt.summary(), call.summary(), "seed {seed}");
    }
    assert!(offered > 1_500, "too few runs got going: {offered}");
    // The alphabet reaches every path, not only the easy ones.
    for expected in [
        "Answered",
        "Busy",
        "Cancelled",
        "NoAnswer",
        "Failed",
        "BlindTransferred",
        "AttendedTransferred",
        "CallSentToVoicemail",
        "CallHeld",
        "ListenModeChanged",
        "ListenStopped",
        "CallRecordingStopped",
    ] {
        assert!(
            seen.contains(expected),
            "no run produced {expected}: {seen:?}"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_history() {
    for seed in [7, 42, 1_234] {
        assert_eq!(run(seed, 40).1, run(seed, 40).1);
    }
}
