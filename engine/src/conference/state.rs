//! The room as its events leave it, and `evolve`, which folds one event and never fails. A room
//! is configured once and then goes through runs: a run starts when the first member joins an
//! idle room and ends a grace period after the last one leaves. The lock belongs to the run;
//! outstanding invitations are forgotten when it ends. Times come from the instant each event
//! happened at (its `occurred_at`, handed to `evolve`): a room rebuilt from its stream knows when
//! its run started, its members joined and it emptied, and re-arms the end-when-empty timer.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use events::ids::{CallId, ConferenceId, LegId};
use events::model::{ConferenceEvent, Party};

use super::command::ConferenceSettings;

/// How long an emptied room waits for someone to come back before its run ends.
pub const END_WHEN_EMPTY_AFTER_MS: u64 = 10_000;

/// One conference room.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conference {
    pub(super) id: Option<ConferenceId>,
    pub(super) settings: Option<ConferenceSettings>,
    pub(super) deleted: bool,
    pub(super) run: Option<Run>,
    /// Outgoing invitation calls, which may join past the PIN and the lock; forgotten when
    /// they join or the run ends.
    pub(super) invited: BTreeSet<CallId>,
}

/// The room in use, from its first member until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub started_at: DateTime<Utc>,
    /// Members by call leg, in joining order.
    pub members: IndexMap<LegId, Member>,
    pub peak_members: u32,
    pub locked: bool,
    /// When the last member left; the run ends `END_WHEN_EMPTY_AFTER_MS` later.
    pub empty_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub call: CallId,
    pub party: Party,
    pub moderator: bool,
    pub muted: bool,
    pub joined_at: DateTime<Utc>,
    /// When the current stretch of speech began.
    pub talking_since: Option<DateTime<Utc>>,
}

/// Queries: what the live member list shows.
impl Conference {
    pub fn id(&self) -> Option<&ConferenceId> {
        self.id.as_ref()
    }

    pub fn settings(&self) -> Option<&ConferenceSettings> {
        self.settings.as_ref()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The current run, if the room is in use (or emptied and not yet ended).
    pub fn run(&self) -> Option<&Run> {
        self.run.as_ref()
    }

    pub fn member(&self, leg: LegId) -> Option<&Member> {
        self.run.as_ref().and_then(|r| r.members.get(&leg))
    }

    pub fn member_count(&self) -> usize {
        self.run.as_ref().map_or(0, |r| r.members.len())
    }

    pub fn is_locked(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.locked)
    }

    /// Folds one event that happened at `now`; see `Aggregate::evolve`.
    pub(super) fn apply(&mut self, event: &ConferenceEvent, now: DateTime<Utc>) {
        use ConferenceEvent as E;
        match event {
            E::ConferenceConfigured { conference, .. } => {
                self.id = Some(conference.clone());
                self.deleted = false;
                self.settings = ConferenceSettings::recorded_by(event);
            }
            E::ConferenceDeleted { .. } => {
                self.deleted = true;
                self.run = None;
                self.invited.clear();
            }
            E::ConferenceStarted { .. } => {
                self.run = Some(Run {
                    started_at: now,
                    members: IndexMap::new(),
                    peak_members: 0,
                    locked: false,
                    empty_since: None,
                });
            }
            E::ConferenceMemberJoined {
                call,
                leg,
                party,
                moderator,
                muted,
                ..
            } => {
                self.invited.remove(call);
                if let Some(run) = &mut self.run {
                    run.members.insert(
                        *leg,
                        Member {
                            call: *call,
                            party: party.clone(),
                            moderator: *moderator,
                            muted: *muted,
                            joined_at: now,
                            talking_since: None,
                        },
                    );
                    run.empty_since = None;
                    let count = u32::try_from(run.members.len()).unwrap_or(u32::MAX);
                    run.peak_members = run.peak_members.max(count);
                }
            }
            E::ConferenceMemberLeft { leg, .. } => {
                if let Some(run) = &mut self.run
                    && run.members.shift_remove(leg).is_some()
                    && run.members.is_empty()
                {
                    run.empty_since = Some(now);
                }
            }
            E::ConferenceMemberMuted { leg, .. } => self.with_member(*leg, |m| m.muted = true),
            E::ConferenceMemberUnmuted { leg, .. } => self.with_member(*leg, |m| m.muted = false),
            E::ConferenceMemberTalkingStarted { leg, .. } => {
                self.with_member(*leg, |m| m.talking_since = Some(now));
            }
            E::ConferenceMemberTalkingStopped { leg, .. } => {
                self.with_member(*leg, |m| m.talking_since = None);
            }
            // The `ConferenceMemberLeft` that follows removes the member.
            E::ConferenceMemberKicked { .. } => {}
            E::ConferenceLocked { .. } => {
                if let Some(run) = &mut self.run {
                    run.locked = true;
                }
            }
            E::ConferenceUnlocked { .. } => {
                if let Some(run) = &mut self.run {
                    run.locked = false;
                }
            }
            // Recording is started and stopped by the media side; the room only keeps the facts.
            E::ConferenceRecordingStarted { .. } | E::ConferenceRecordingStopped { .. } => {}
            E::ConferenceEnded { .. } => {
                self.run = None;
                self.invited.clear();
            }
            E::ConferenceInviteSent { call, .. } => {
                self.invited.insert(*call);
            }
        }
    }

    fn with_member(&mut self, leg: LegId, f: impl FnOnce(&mut Member)) {
        if let Some(m) = self.run.as_mut().and_then(|r| r.members.get_mut(&leg)) {
            f(m);
        }
    }
}
