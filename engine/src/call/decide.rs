//! `decide` for a call: what a command makes happen, given the call and the instant. Pure: the
//! only time is `now`, every new id comes in the command.
//!
//! Duplicates are judged by whether repeating them could mean anything. The network repeats
//! itself, so a BYE, CANCEL or final response for a leg that already ended, a 180 after the leg
//! moved on, a retransmitted 200 OK, a re-INVITE that holds a held leg (session refresh), a
//! repeated INVITE, `Ring` or `StartListening`, a stale or early ring timeout, and stopping what
//! already stopped are accepted with no events. Commands that would change the outcome of
//! something settled are rejected instead: answering an ended call or a fork that lost the race,
//! holding or transferring a leg that is not answered or has ended, a failure response after an
//! answer, reusing a leg id.
//!
//! The steps shared by several commands, and how legs and the call end, are in `plan`.

use chrono::{DateTime, Utc};
use events::model::{CallEvent, HangupCause, HangupSide, LegRole};

use super::command::{CallCommand, CallRejection};
use super::plan::Plan;
use super::state::{Call, millis};

type Decision = Result<Vec<CallEvent>, CallRejection>;

pub(super) fn decide(call: &Call, command: &CallCommand, now: DateTime<Utc>) -> Decision {
    use CallCommand as C;
    let Some(id) = call.id else {
        return match command {
            C::Offer { .. } => Ok(offer(command)),
            _ => Err(CallRejection::NotOffered),
        };
    };
    if let C::Offer {
        call: offered,
        caller_leg,
        ..
    } = command
    {
        let same = *offered == id && call.legs.first().map(|l| l.id) == Some(*caller_leg);
        return if same {
            Ok(Vec::new())
        } else {
            Err(CallRejection::AlreadyOffered(id))
        };
    }
    if call.is_ended() && starts_something(command) {
        return Err(CallRejection::CallEnded);
    }

    let mut plan = Plan::new(call, id, now);
    match command {
        C::Offer { .. } => {}
        C::Ring {
            parent,
            callee,
            role,
            contacts,
            ring_timeout,
            voicemail,
        } => {
            if !plan.ring(*parent, *role, contacts)? {
                return Ok(Vec::new());
            }
            // Each rung leg carries the timeout: the deadline is when they were created plus it.
            let ring_timeout_ms = millis(*ring_timeout);
            for c in contacts {
                plan.push(CallEvent::LegCreated {
                    call: id,
                    leg: c.leg,
                    role: *role,
                    party: callee.clone(),
                    contact: c.contact,
                    parent: Some(*parent),
                    ring_timeout_ms: Some(ring_timeout_ms),
                    voicemail: voicemail.clone(),
                });
            }
        }
        C::Ringing { leg } => plan.ringing(*leg)?,
        C::EarlyMedia { leg } => plan.early_media(*leg)?,
        C::Answer { leg } => plan.answer(*leg)?,
        C::Reject { leg, status } => plan.reject(*leg, *status)?,
        C::HangUp { leg, cause } => plan.hang_up(*leg, *cause)?,
        C::Terminate { cause, sip_status } => plan.terminate(*cause, *sip_status),
        C::RingTimeout { deadline } => plan.ring_timeout(*deadline),
        C::Hold { leg } => {
            let l = plan.answered(*leg)?;
            if !l.held {
                plan.push(CallEvent::CallHeld {
                    call: id,
                    leg: *leg,
                });
            }
        }
        C::Resume { leg } => {
            let l = plan.answered(*leg)?;
            if l.held {
                plan.push(CallEvent::CallResumed {
                    call: id,
                    leg: *leg,
                });
            }
        }
        C::BlindTransfer {
            transferer_leg,
            target,
            method,
        } => {
            let transferee_leg = plan.peer_of(*transferer_leg)?;
            plan.push(CallEvent::BlindTransferred {
                call: id,
                transferer_leg: *transferer_leg,
                transferee_leg,
                target: target.clone(),
                method: *method,
                original_caller: call.caller.clone(),
            });
            plan.end_leg(
                *transferer_leg,
                HangupCause::Transferred,
                HangupSide::Engine,
                None,
            );
        }
        C::AttendedTransfer {
            transferer_leg,
            consult_call,
            target_leg,
            target,
            method,
        } => {
            let transferee_leg = plan.peer_of(*transferer_leg)?;
            if call.leg(*target_leg).is_some() {
                return Err(CallRejection::TargetInCall(*target_leg));
            }
            plan.push(CallEvent::AttendedTransferred {
                call: id,
                transferer_leg: *transferer_leg,
                transferee_leg,
                consult_call: *consult_call,
                target_leg: *target_leg,
                target: target.clone(),
                method: *method,
                original_caller: call.caller.clone(),
            });
            plan.end_leg(
                *transferer_leg,
                HangupCause::Transferred,
                HangupSide::Engine,
                None,
            );
        }
        C::StartListening {
            session,
            supervisor,
            supervisor_leg,
            target_leg,
            mode,
            via,
        } => {
            if let Some(existing) = call.listens.iter().find(|l| l.session == *session) {
                let same = existing.target_leg == *target_leg
                    && existing.supervisor == *supervisor
                    && existing.supervisor_leg == *supervisor_leg;
                return if same {
                    Ok(Vec::new())
                } else {
                    Err(CallRejection::ListenConflict(*session))
                };
            }
            let target = plan.answered(*target_leg)?.party.clone();
            plan.push(CallEvent::ListenStarted {
                call: id,
                session: *session,
                supervisor: supervisor.clone(),
                supervisor_leg: *supervisor_leg,
                target_leg: *target_leg,
                target,
                mode: *mode,
                via: *via,
            });
        }
        C::ChangeListenMode { session, mode } => {
            let listen = call
                .listens
                .iter()
                .find(|l| l.session == *session)
                .ok_or(CallRejection::UnknownListen(*session))?;
            if listen.stopped_after_ms.is_some() {
                return Err(CallRejection::ListenStopped(*session));
            }
            if listen.mode != *mode {
                plan.push(CallEvent::ListenModeChanged {
                    call: id,
                    session: *session,
                    mode: *mode,
                    previous: listen.mode,
                });
            }
        }
        C::StopListening { session, reason } => {
            let listen = call
                .listens
                .iter()
                .find(|l| l.session == *session)
                .ok_or(CallRejection::UnknownListen(*session))?;
            if listen.stopped_after_ms.is_none() {
                plan.push(CallEvent::ListenStopped {
                    call: id,
                    session: *session,
                    reason: *reason,
                    duration_ms: millis(now - listen.started_at),
                });
            }
        }
        C::StartRecording {
            recording,
            leg,
            trigger,
            by,
        } => {
            if call
                .recordings
                .iter()
                .any(|r| r.id == *recording && r.running)
            {
                return Err(CallRejection::RecordingRunning(*recording));
            }
            if let Some(leg) = leg {
                plan.live(*leg)?;
            }
            if !call.live_legs().any(|l| l.answered_at.is_some()) {
                return Err(CallRejection::NothingToRecord);
            }
            plan.push(CallEvent::CallRecordingStarted {
                call: id,
                recording: *recording,
                leg: *leg,
                trigger: *trigger,
                by: by.clone(),
            });
        }
        C::StopRecording {
            recording,
            size_bytes,
            by,
        } => {
            let r = call
                .recordings
                .iter()
                .find(|r| r.id == *recording)
                .ok_or(CallRejection::UnknownRecording(*recording))?;
            if r.running {
                plan.push(CallEvent::CallRecordingStopped {
                    call: id,
                    recording: *recording,
                    duration_ms: millis(now - r.started_at),
                    size_bytes: *size_bytes,
                    by: by.clone(),
                });
            }
        }
    }
    Ok(plan.finish())
}

/// Commands that begin or change something, as opposed to ending or repeating it: on an ended
/// call they are rejected, where the rest find their leg or session ended and change nothing.
fn starts_something(command: &CallCommand) -> bool {
    use CallCommand as C;
    matches!(
        command,
        C::Ring { .. }
            | C::Answer { .. }
            | C::Hold { .. }
            | C::Resume { .. }
            | C::BlindTransfer { .. }
            | C::AttendedTransfer { .. }
            | C::StartListening { .. }
            | C::ChangeListenMode { .. }
            | C::StartRecording { .. }
    )
}

fn offer(command: &CallCommand) -> Vec<CallEvent> {
    let CallCommand::Offer {
        call,
        caller_leg,
        direction,
        caller,
        callee,
        dialled,
        origin,
        caller_contact,
        trunk,
        requested_by,
    } = command
    else {
        return Vec::new();
    };
    vec![
        CallEvent::CallCreated {
            call: *call,
            direction: *direction,
            caller: caller.clone(),
            callee: callee.clone(),
            dialled: dialled.clone(),
            origin: *origin,
            trunk: trunk.clone(),
            requested_by: requested_by.clone(),
        },
        CallEvent::LegCreated {
            call: *call,
            leg: *caller_leg,
            role: LegRole::Caller,
            party: caller.clone(),
            contact: *caller_contact,
            parent: None,
            ring_timeout_ms: None,
            voicemail: None,
        },
    ]
}
