//! The call as its events leave it: parties, legs with their progress and times, listening
//! sessions, recordings, the armed ring timeout, and whether (and how often) it ended. `evolve`
//! folds one event and never fails; it takes instants only from the time each event happened at
//! (its `occurred_at`, handed in by the caller), never from a clock. The ring deadline is the
//! time the rung legs were created plus the ring timeout their `LegCreated` carries. The pure queries other parts of the engine
//! and the simulations need (leg summaries, `ended_exactly_once`) live here too.

use chrono::{DateTime, TimeDelta, Utc};
use events::ids::{
    CallId, DeviceContactId, ExtensionNumber, LegId, ListenSessionId, PhoneNumber, RecordingId,
    UserId,
};
use events::model::{
    CallEvent, Direction, Disposition, HangupCause, HangupSide, LegRole, ListenMode, Party,
};

use crate::aggregate::plus_ms;

/// One call (a `call-<uuid>` stream) and its legs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub(super) id: Option<CallId>,
    pub(super) direction: Option<Direction>,
    pub(super) caller: Party,
    pub(super) callee: Party,
    pub(super) dialled: Option<PhoneNumber>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) legs: Vec<Leg>,
    pub(super) ring: Option<RingTimer>,
    pub(super) voicemail: Option<ExtensionNumber>,
    pub(super) listens: Vec<Listen>,
    pub(super) recordings: Vec<Recording>,
    /// Talk time banked from earlier stretches with two answered legs, and when the current
    /// stretch began.
    pub(super) talk_banked_ms: u64,
    pub(super) talk_since: Option<DateTime<Utc>>,
    pub(super) ended: Option<CallSummary>,
    /// How many `CallEnded` events were folded: exactly one once the call is over.
    pub(super) end_events: u32,
}

/// One leg (channel) of the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub id: LegId,
    pub role: LegRole,
    pub party: Party,
    pub contact: Option<DeviceContactId>,
    pub parent: Option<LegId>,
    pub progress: LegProgress,
    pub held: bool,
    pub created_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended: Option<LegEnd>,
    /// How many `LegEnded` events were folded for this leg: at most one.
    pub end_events: u32,
}

/// How far a leg got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegProgress {
    /// Created (INVITE sent or received), no provisional response yet.
    Trying,
    Ringing,
    EarlyMedia,
    Answered,
    Ended,
}

/// How a leg ended: its CDR line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegEnd {
    pub at: DateTime<Utc>,
    pub cause: HangupCause,
    pub disposition: Disposition,
    pub ended_by: HangupSide,
    pub sip_status: Option<u16>,
    pub duration_ms: u64,
    pub billable_ms: u64,
}

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSummary {
    pub cause: HangupCause,
    pub disposition: Disposition,
    pub duration_ms: u64,
    pub talk_ms: u64,
}

/// What a CDR line of one leg holds, as far as the call knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSummary {
    pub leg: LegId,
    pub role: LegRole,
    pub party: Party,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    /// `None` while the leg is up.
    pub end: Option<LegEnd>,
}

/// The armed ring timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RingTimer {
    pub(super) deadline: DateTime<Utc>,
    pub(super) voicemail: Option<ExtensionNumber>,
}

/// One supervisor listening session (running or stopped), for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub session: ListenSessionId,
    pub supervisor: UserId,
    pub supervisor_leg: LegId,
    pub target_leg: LegId,
    pub target: Party,
    pub mode: ListenMode,
    pub started_at: DateTime<Utc>,
    /// How long it lasted, once stopped.
    pub stopped_after_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recording {
    pub(super) id: RecordingId,
    pub(super) started_at: DateTime<Utc>,
    pub(super) running: bool,
}

impl Call {
    pub fn id(&self) -> Option<CallId> {
        self.id
    }

    pub fn is_offered(&self) -> bool {
        self.id.is_some()
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    pub fn direction(&self) -> Option<Direction> {
        self.direction
    }

    /// The caller and the callee as the call was created.
    pub fn parties(&self) -> (&Party, &Party) {
        (&self.caller, &self.callee)
    }

    pub fn dialled(&self) -> Option<&PhoneNumber> {
        self.dialled.as_ref()
    }

    pub fn legs(&self) -> &[Leg] {
        &self.legs
    }

    pub fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.id == id)
    }

    /// The mailbox the call was sent to, if it was.
    pub fn voicemail(&self) -> Option<&ExtensionNumber> {
        self.voicemail.as_ref()
    }

    /// Every listening session, running or stopped: who listened to whom, when, how long.
    pub fn listens(&self) -> &[Listen] {
        &self.listens
    }

    pub fn summary(&self) -> Option<CallSummary> {
        self.ended
    }

    /// The CDR-relevant facts of each leg, in creation order.
    pub fn leg_summaries(&self) -> Vec<LegSummary> {
        self.legs
            .iter()
            .map(|l| LegSummary {
                leg: l.id,
                role: l.role,
                party: l.party.clone(),
                started_at: l.created_at,
                answered_at: l.answered_at,
                end: l.ended,
            })
            .collect()
    }

    /// The invariant the simulations check: the call ended once, every leg ended once, and no
    /// leg outlived the call.
    pub fn ended_exactly_once(&self) -> bool {
        self.end_events == 1 && self.legs.iter().all(|l| l.end_events == 1)
    }

    /// The invariant that holds at every step: nothing ended twice, and a call that ended has
    /// no leg still up.
    pub fn never_ended_twice(&self) -> bool {
        self.end_events <= 1
            && self.legs.iter().all(|l| l.end_events <= 1)
            && (self.end_events == 0 || self.legs.iter().all(|l| l.ended.is_some()))
    }

    pub(super) fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.id == id)
    }

    /// Legs still up.
    pub(super) fn live_legs(&self) -> impl Iterator<Item = &Leg> {
        self.legs.iter().filter(|l| l.ended.is_none())
    }

    /// Live legs that have not been answered and are not the caller's: the ones ringing.
    pub(super) fn ringing_legs(&self) -> impl Iterator<Item = &Leg> {
        self.live_legs()
            .filter(|l| l.role != LegRole::Caller && l.answered_at.is_none())
    }

    fn answered_live_count(&self) -> usize {
        self.live_legs().filter(|l| l.answered_at.is_some()).count()
    }

    /// Talk time up to `now`, counting the stretch in progress.
    pub(super) fn talk_ms_at(&self, now: DateTime<Utc>) -> u64 {
        self.talk_banked_ms + self.talk_since.map_or(0, |since| millis(now - since))
    }

    /// Folds one event that happened at `at`; see `Aggregate::evolve`.
    pub(super) fn evolve(&mut self, event: &CallEvent, at: DateTime<Utc>) {
        use CallEvent as E;
        match event {
            E::CallCreated {
                call,
                direction,
                caller,
                callee,
                dialled,
                ..
            } => {
                self.id = Some(*call);
                self.direction = Some(*direction);
                self.caller = caller.clone();
                self.callee = callee.clone();
                self.dialled = Some(dialled.clone());
                self.created_at = at;
            }
            E::LegCreated {
                leg,
                role,
                party,
                contact,
                parent,
                ring_timeout_ms,
                voicemail,
                ..
            } => {
                // Rung legs arm the ring timeout; those rung together carry the same one.
                if let Some(timeout) = ring_timeout_ms {
                    self.ring = Some(RingTimer {
                        deadline: plus_ms(at, *timeout),
                        voicemail: voicemail.clone(),
                    });
                }
                if self.leg(*leg).is_none() {
                    self.legs.push(Leg {
                        id: *leg,
                        role: *role,
                        party: party.clone(),
                        contact: *contact,
                        parent: *parent,
                        progress: LegProgress::Trying,
                        held: false,
                        created_at: at,
                        answered_at: None,
                        ended: None,
                        end_events: 0,
                    });
                }
            }
            E::LegRinging { leg, .. } => {
                if let Some(l) = self.leg_mut(*leg)
                    && l.progress == LegProgress::Trying
                {
                    l.progress = LegProgress::Ringing;
                }
            }
            E::LegEarlyMedia { leg, .. } => {
                if let Some(l) = self.leg_mut(*leg)
                    && matches!(l.progress, LegProgress::Trying | LegProgress::Ringing)
                {
                    l.progress = LegProgress::EarlyMedia;
                }
            }
            E::CallAnswered { leg, .. } => {
                if let Some(l) = self.leg_mut(*leg)
                    && l.ended.is_none()
                    && l.answered_at.is_none()
                {
                    l.answered_at = Some(at);
                    l.progress = LegProgress::Answered;
                }
                self.retime_talk(at);
            }
            E::CallHeld { leg, .. } => {
                if let Some(l) = self.leg_mut(*leg) {
                    l.held = true;
                }
            }
            E::CallResumed { leg, .. } => {
                if let Some(l) = self.leg_mut(*leg) {
                    l.held = false;
                }
            }
            E::CallSentToVoicemail { mailbox, .. } => {
                self.voicemail = Some(mailbox.clone());
            }
            E::AttendedTransferred {
                target_leg,
                target,
                transferee_leg,
                ..
            } => {
                // The target's leg comes over from the consultation call, already answered.
                let now = at;
                if self.leg(*target_leg).is_none() {
                    self.legs.push(Leg {
                        id: *target_leg,
                        role: LegRole::Callee,
                        party: target.clone(),
                        contact: None,
                        parent: Some(*transferee_leg),
                        progress: LegProgress::Answered,
                        held: false,
                        created_at: now,
                        answered_at: Some(now),
                        ended: None,
                        end_events: 0,
                    });
                }
                self.retime_talk(now);
            }
            E::ListenStarted {
                session,
                supervisor,
                supervisor_leg,
                target_leg,
                target,
                mode,
                ..
            } => {
                if !self.listens.iter().any(|l| l.session == *session) {
                    self.listens.push(Listen {
                        session: *session,
                        supervisor: supervisor.clone(),
                        supervisor_leg: *supervisor_leg,
                        target_leg: *target_leg,
                        target: target.clone(),
                        mode: *mode,
                        started_at: at,
                        stopped_after_ms: None,
                    });
                }
            }
            E::ListenModeChanged { session, mode, .. } => {
                if let Some(l) = self.listens.iter_mut().find(|l| l.session == *session) {
                    l.mode = *mode;
                }
            }
            E::ListenStopped {
                session,
                duration_ms,
                ..
            } => {
                if let Some(l) = self.listens.iter_mut().find(|l| l.session == *session) {
                    l.stopped_after_ms = Some(*duration_ms);
                }
            }
            E::CallRecordingStarted { recording, .. } => {
                let now = at;
                match self.recordings.iter_mut().find(|r| r.id == *recording) {
                    Some(r) => {
                        r.started_at = now;
                        r.running = true;
                    }
                    None => self.recordings.push(Recording {
                        id: *recording,
                        started_at: now,
                        running: true,
                    }),
                }
            }
            E::CallRecordingStopped { recording, .. } => {
                if let Some(r) = self.recordings.iter_mut().find(|r| r.id == *recording) {
                    r.running = false;
                }
            }
            E::LegEnded {
                leg,
                cause,
                disposition,
                ended_by,
                sip_status,
                duration_ms,
                billable_ms,
                ..
            } => {
                let Some(l) = self.leg_mut(*leg) else {
                    return;
                };
                l.end_events += 1;
                if l.ended.is_some() {
                    return;
                }
                l.ended = Some(LegEnd {
                    at,
                    cause: *cause,
                    disposition: *disposition,
                    ended_by: *ended_by,
                    sip_status: *sip_status,
                    duration_ms: *duration_ms,
                    billable_ms: *billable_ms,
                });
                l.progress = LegProgress::Ended;
                l.held = false;
                self.retime_talk(at);
            }
            E::CallEnded {
                cause,
                disposition,
                duration_ms,
                talk_ms,
                ..
            } => {
                self.end_events += 1;
                self.ended.get_or_insert(CallSummary {
                    cause: *cause,
                    disposition: *disposition,
                    duration_ms: *duration_ms,
                    talk_ms: *talk_ms,
                });
                self.talk_since = None;
                self.ring = None;
            }
            // Facts this aggregate does not decide yet (DTMF, bridges, park, pickup, forwarding,
            // local optimisation, recording mute, party updates, blind transfer bookkeeping)
            // change nothing it tracks: the leg ends that follow them do.
            E::DtmfReceived { .. }
            | E::LegPartyUpdated { .. }
            | E::BridgeEntered { .. }
            | E::BridgeLeft { .. }
            | E::BridgesMerged { .. }
            | E::BlindTransferred { .. }
            | E::CallParked { .. }
            | E::CallUnparked { .. }
            | E::ParkTimedOut { .. }
            | E::CallPickedUp { .. }
            | E::CallForwarded { .. }
            | E::LocalOptimized { .. }
            | E::CallRecordingMuted { .. }
            | E::CallRecordingUnmuted { .. } => {}
        }
    }

    /// Starts or banks a talk stretch after the number of answered legs changed at `at`.
    fn retime_talk(&mut self, at: DateTime<Utc>) {
        let talking = self.answered_live_count() >= 2;
        match (talking, self.talk_since) {
            (true, None) => self.talk_since = Some(at),
            (false, Some(since)) => {
                self.talk_banked_ms += millis(at - since);
                self.talk_since = None;
            }
            _ => {}
        }
    }
}

/// Whole milliseconds of a span, never negative.
pub(super) fn millis(span: TimeDelta) -> u64 {
    u64::try_from(span.num_milliseconds()).unwrap_or(0)
}
