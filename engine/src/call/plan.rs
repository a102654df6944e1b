//! The machinery of one decision: events are folded into a scratch copy of the call as they
//! are made, so a later step asks "was that the last leg?" of the state the earlier steps leave.
//! It owns the per-leg rules shared by several commands (answering and cancelling the other
//! forks, failure responses, hang-ups, the ring timeout) and how legs and the call end: each
//! leg once, with its CDR facts, and the call once, after its last leg. It never reads a clock.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use events::ids::{CallId, LegId, ListenSessionId};
use events::model::{
    CallEvent, Disposition, HangupCause, HangupSide, LegRole, ListenEndReason, VoicemailReason,
};

use super::command::{CallRejection, RingContact};
use super::state::{Call, Leg, LegProgress, millis};

/// The events of one decision, folded into a scratch state as they are made. The scratch state
/// borrows the call until the first event is pushed, so a decision that makes nothing (a
/// retransmission, a rejection) never copies the call.
pub(super) struct Plan<'a> {
    next: Cow<'a, Call>,
    id: CallId,
    now: DateTime<Utc>,
    events: Vec<CallEvent>,
}

impl<'a> Plan<'a> {
    pub(super) fn new(call: &'a Call, id: CallId, now: DateTime<Utc>) -> Self {
        Self {
            next: Cow::Borrowed(call),
            id,
            now,
            events: Vec::new(),
        }
    }

    /// Records `event`, folding it into the scratch state at `now`, the instant it will be
    /// stored with (and folded at) once appended.
    pub(super) fn push(&mut self, event: CallEvent) {
        self.next.to_mut().evolve(&event, self.now);
        self.events.push(event);
    }

    fn leg(&self, leg: LegId) -> Result<&Leg, CallRejection> {
        self.next.leg(leg).ok_or(CallRejection::UnknownLeg(leg))
    }

    pub(super) fn live(&self, leg: LegId) -> Result<&Leg, CallRejection> {
        let l = self.leg(leg)?;
        match l.ended {
            Some(_) => Err(CallRejection::LegEnded(leg)),
            None => Ok(l),
        }
    }

    pub(super) fn answered(&self, leg: LegId) -> Result<&Leg, CallRejection> {
        let l = self.live(leg)?;
        match l.answered_at {
            Some(_) => Ok(l),
            None => Err(CallRejection::NotAnswered(leg)),
        }
    }

    /// The answered leg `leg` is bridged to.
    pub(super) fn peer_of(&self, leg: LegId) -> Result<LegId, CallRejection> {
        self.answered(leg)?;
        self.next
            .live_legs()
            .find(|l| l.id != leg && l.answered_at.is_some())
            .map(|l| l.id)
            .ok_or(CallRejection::NoPeer(leg))
    }

    /// Checks a `Ring`; `false` when it repeats one already applied.
    pub(super) fn ring(
        &self,
        parent: LegId,
        role: LegRole,
        contacts: &[RingContact],
    ) -> Result<bool, CallRejection> {
        let waiting = self.live(parent)?;
        // Only the caller's leg, or an answered leg (a transferee), waits for someone to ring.
        if waiting.role != LegRole::Caller && waiting.answered_at.is_none() {
            return Err(CallRejection::NotAnswered(parent));
        }
        if matches!(role, LegRole::Caller | LegRole::Supervisor) {
            return Err(CallRejection::InvalidRole(role));
        }
        if contacts.is_empty() {
            return Err(CallRejection::NoContacts);
        }
        let known = contacts
            .iter()
            .filter(|c| self.next.leg(c.leg).is_some())
            .count();
        if known == contacts.len() {
            return Ok(false);
        }
        for (i, c) in contacts.iter().enumerate() {
            if self.next.leg(c.leg).is_some() || contacts[..i].iter().any(|d| d.leg == c.leg) {
                return Err(CallRejection::DuplicateLeg(c.leg));
            }
        }
        if self
            .next
            .live_legs()
            .any(|l| l.id != parent && l.answered_at.is_some())
        {
            return Err(CallRejection::AlreadyBridged(parent));
        }
        Ok(true)
    }

    pub(super) fn ringing(&mut self, leg: LegId) -> Result<(), CallRejection> {
        let l = self.leg(leg)?;
        if l.role == LegRole::Caller {
            return Err(CallRejection::CallerLeg(leg));
        }
        if l.progress == LegProgress::Trying {
            self.push(CallEvent::LegRinging { call: self.id, leg });
        }
        Ok(())
    }

    pub(super) fn early_media(&mut self, leg: LegId) -> Result<(), CallRejection> {
        let l = self.leg(leg)?;
        if matches!(l.progress, LegProgress::Trying | LegProgress::Ringing) {
            self.push(CallEvent::LegEarlyMedia { call: self.id, leg });
        }
        Ok(())
    }

    pub(super) fn answer(&mut self, leg: LegId) -> Result<(), CallRejection> {
        let l = self.leg(leg)?;
        if l.role == LegRole::Caller {
            return Err(CallRejection::CallerLeg(leg));
        }
        if let Some(end) = l.ended {
            return Err(if end.cause == HangupCause::AnsweredElsewhere {
                CallRejection::AnsweredElsewhere(leg)
            } else {
                CallRejection::LegEnded(leg)
            });
        }
        if l.answered_at.is_some() {
            return Ok(());
        }
        let (contact, parent) = (l.contact, l.parent);
        self.push(CallEvent::CallAnswered {
            call: self.id,
            leg,
            contact,
        });
        let siblings: Vec<LegId> = self
            .next
            .ringing_legs()
            .filter(|s| s.id != leg && s.parent == parent)
            .map(|s| s.id)
            .collect();
        for s in siblings {
            self.end_leg(s, HangupCause::AnsweredElsewhere, HangupSide::Engine, None);
        }
        if let Some(p) = parent.and_then(|p| self.next.leg(p))
            && p.ended.is_none()
            && p.answered_at.is_none()
        {
            let (leg, contact) = (p.id, p.contact);
            self.push(CallEvent::CallAnswered {
                call: self.id,
                leg,
                contact,
            });
        }
        Ok(())
    }

    pub(super) fn reject(&mut self, leg: LegId, status: u16) -> Result<(), CallRejection> {
        if !(400..=699).contains(&status) {
            return Err(CallRejection::NotAFailureStatus(status));
        }
        let l = self.leg(leg)?;
        if l.role == LegRole::Caller {
            return Err(CallRejection::CallerLeg(leg));
        }
        if l.ended.is_some() {
            return Ok(());
        }
        if l.answered_at.is_some() {
            return Err(CallRejection::AlreadyAnswered(leg));
        }
        let parent = l.parent;
        let cause = HangupCause::from_sip_status(status);
        self.end_leg(leg, cause, HangupSide::Party, Some(status));
        // A 6xx is global: no other contact of this callee may answer (RFC 3261 §16.7).
        if status >= 600 {
            let others: Vec<LegId> = self
                .next
                .ringing_legs()
                .filter(|s| s.parent == parent)
                .map(|s| s.id)
                .collect();
            for s in others {
                self.end_leg(s, cause, HangupSide::Engine, None);
            }
        }
        let branches_left = self.next.ringing_legs().any(|s| s.parent == parent);
        if let Some(p) = parent
            && !branches_left
        {
            self.end_all(cause, HangupSide::Engine, Some(status), Some(p));
        }
        Ok(())
    }

    pub(super) fn hang_up(
        &mut self,
        leg: LegId,
        cause: Option<HangupCause>,
    ) -> Result<(), CallRejection> {
        let l = self.leg(leg)?;
        if l.ended.is_some() {
            return Ok(());
        }
        let answered = l.answered_at.is_some();
        if !answered && l.role != LegRole::Caller {
            return Err(CallRejection::NotAnswered(leg));
        }
        let cause = cause.unwrap_or(if answered {
            HangupCause::NormalClearing
        } else {
            HangupCause::OriginatorCancel
        });
        self.end_leg(leg, cause, HangupSide::Party, None);
        // The call is two-party: whoever is left is the peer, and the engine ends them too.
        // Legs still ringing are cancelled on the caller's behalf.
        let others: Vec<(LegId, bool)> = self
            .next
            .live_legs()
            .map(|l| (l.id, l.answered_at.is_some()))
            .collect();
        for (other, answered) in others {
            let cause = if answered {
                cause
            } else {
                HangupCause::OriginatorCancel
            };
            self.end_leg(other, cause, HangupSide::Peer, None);
        }
        Ok(())
    }

    pub(super) fn terminate(&mut self, cause: HangupCause, sip_status: Option<u16>) {
        let caller = self.next.legs.first().map(|l| l.id);
        self.end_all(cause, HangupSide::Engine, sip_status, caller);
    }

    pub(super) fn ring_timeout(&mut self, deadline: DateTime<Utc>) {
        let Some(ring) = self.next.ring.clone() else {
            return;
        };
        if ring.deadline != deadline || self.now < deadline {
            return;
        }
        let ringing: Vec<(LegId, Option<LegId>)> =
            self.next.ringing_legs().map(|l| (l.id, l.parent)).collect();
        for (leg, _) in &ringing {
            self.end_leg(*leg, HangupCause::NoAnswer, HangupSide::Engine, None);
        }
        let mut parents: Vec<LegId> = ringing.iter().filter_map(|(_, p)| *p).collect();
        parents.dedup();
        for parent in parents {
            let Some(p) = self.next.leg(parent).filter(|p| p.ended.is_none()) else {
                continue;
            };
            let (answered, contact) = (p.answered_at.is_some(), p.contact);
            match &ring.voicemail {
                Some(mailbox) => {
                    self.push(CallEvent::CallSentToVoicemail {
                        call: self.id,
                        leg: parent,
                        mailbox: mailbox.clone(),
                        reason: VoicemailReason::Unavailable,
                        by: None,
                    });
                    // The mailbox answers the waiting leg: it hears the greeting.
                    if !answered {
                        self.push(CallEvent::CallAnswered {
                            call: self.id,
                            leg: parent,
                            contact,
                        });
                    }
                }
                None => {
                    self.end_leg(parent, HangupCause::NoAnswer, HangupSide::Engine, Some(480));
                }
            }
        }
    }

    /// Ends every live leg; `status_to` is the leg the final SIP status is sent to.
    fn end_all(
        &mut self,
        cause: HangupCause,
        side: HangupSide,
        sip_status: Option<u16>,
        status_to: Option<LegId>,
    ) {
        let live: Vec<LegId> = self.next.live_legs().map(|l| l.id).collect();
        for leg in live {
            let status = sip_status.filter(|_| Some(leg) == status_to);
            self.end_leg(leg, cause, side, status);
        }
    }

    /// Ends one live leg with its CDR facts, and stops the listening sessions aimed at it.
    pub(super) fn end_leg(
        &mut self,
        leg: LegId,
        cause: HangupCause,
        ended_by: HangupSide,
        sip_status: Option<u16>,
    ) {
        let Some(l) = self.next.leg(leg).filter(|l| l.ended.is_none()) else {
            return;
        };
        let answered = l.answered_at;
        let event = CallEvent::LegEnded {
            call: self.id,
            leg,
            cause,
            disposition: Disposition::of(answered.is_some(), cause),
            ended_by,
            sip_status,
            duration_ms: millis(self.now - l.created_at),
            billable_ms: answered.map_or(0, |at| millis(self.now - at)),
        };
        self.push(event);
        let listening: Vec<(ListenSessionId, DateTime<Utc>)> = self
            .next
            .listens
            .iter()
            .filter(|s| s.target_leg == leg && s.stopped_after_ms.is_none())
            .map(|s| (s.session, s.started_at))
            .collect();
        for (session, started_at) in listening {
            self.push(CallEvent::ListenStopped {
                call: self.id,
                session,
                reason: ListenEndReason::CallEnded,
                duration_ms: millis(self.now - started_at),
            });
        }
    }

    /// The decision's events, with the call's end when its last leg has ended.
    pub(super) fn finish(mut self) -> Vec<CallEvent> {
        let last_leg_ended = !self.next.legs.is_empty() && self.next.live_legs().next().is_none();
        if last_leg_ended && !self.next.is_ended() {
            self.end_call();
        }
        self.events
    }

    /// Running recordings stop, and the call takes the caller leg's cause and disposition (the
    /// A-leg's, as Asterisk's CDR does).
    fn end_call(&mut self) {
        let running: Vec<_> = self
            .next
            .recordings
            .iter()
            .filter(|r| r.running)
            .map(|r| (r.id, r.started_at))
            .collect();
        for (recording, started_at) in running {
            // The media layer reports the file's size with the recording itself.
            self.push(CallEvent::CallRecordingStopped {
                call: self.id,
                recording,
                duration_ms: millis(self.now - started_at),
                size_bytes: 0,
                by: None,
            });
        }
        let (cause, disposition) = self
            .next
            .legs
            .iter()
            .find(|l| l.role == LegRole::Caller)
            .or(self.next.legs.first())
            .and_then(|l| l.ended)
            .map_or(
                (HangupCause::NormalUnspecified, Disposition::Failed),
                |end| (end.cause, end.disposition),
            );
        self.push(CallEvent::CallEnded {
            call: self.id,
            cause,
            disposition,
            duration_ms: millis(self.now - self.next.created_at),
            talk_ms: self.next.talk_ms_at(self.now),
        });
    }
}
