//! `decide` for a conference room: admission (PIN, lock, capacity), moderation, invitations and
//! the end of a run. Asking for what is already so (muting a muted member, locking a locked
//! room) decides nothing, and so does the end-when-empty timer when someone came back.

use chrono::{DateTime, Utc};

use events::ids::{CallId, ConferenceId, LegId, UserId};
use events::model::{ConferenceEvent, MemberLeftReason, Party};

use super::command::{ConferenceCommand, ConferenceSettings};
use super::state::{Conference, END_WHEN_EMPTY_AFTER_MS};
use crate::aggregate::{Deadline, elapsed_ms, plus_ms};

/// Why a room refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConferenceRejection {
    #[error("the conference room is not configured")]
    NotConfigured,
    #[error("conference room {0} was deleted")]
    Deleted(ConferenceId),
    #[error("this is conference room {actual}, not {requested}")]
    WrongConference {
        actual: ConferenceId,
        requested: ConferenceId,
    },
    #[error("invalid conference settings: {0}")]
    InvalidSettings(&'static str),
    #[error("wrong PIN for this conference room")]
    WrongPin,
    #[error("the conference room is full ({0} members)")]
    Full(u32),
    #[error("the conference room is locked")]
    Locked,
    #[error("the conference room is not in use")]
    NotInUse,
    #[error("leg {0} is already in the conference")]
    AlreadyMember(LegId),
    #[error("leg {0} is not in the conference")]
    UnknownMember(LegId),
}

type Decided = Result<(), ConferenceRejection>;

pub(super) fn decide(
    room: &Conference,
    command: &ConferenceCommand,
    now: DateTime<Utc>,
) -> Result<Vec<ConferenceEvent>, ConferenceRejection> {
    use ConferenceCommand as C;
    if let C::Configure {
        conference,
        settings,
    } = command
    {
        return configure(room, conference, settings, now);
    }
    let (Some(id), Some(settings)) = (room.id.clone(), room.settings.clone()) else {
        return Err(ConferenceRejection::NotConfigured);
    };
    if room.deleted {
        return Err(ConferenceRejection::Deleted(id));
    }
    let mut d = Draft {
        state: room.clone(),
        conference: id,
        settings,
        now,
        events: Vec::new(),
    };
    match command {
        C::Configure { .. } => {}
        C::Delete => delete(&mut d),
        C::Join {
            call,
            leg,
            party,
            pin,
            admin,
            muted,
        } => join(&mut d, *call, *leg, party, pin.as_deref(), *admin, *muted)?,
        C::Leave { leg } => leave(&mut d, *leg, MemberLeftReason::HungUp)?,
        C::Mute { leg, by } => set_muted(&mut d, *leg, true, by)?,
        C::Unmute { leg, by } => set_muted(&mut d, *leg, false, by)?,
        C::Kick { leg, by } => kick(&mut d, *leg, by)?,
        C::Lock { by } => set_locked(&mut d, true, by)?,
        C::Unlock { by } => set_locked(&mut d, false, by)?,
        C::Invite { invitee, by, call } => invite(&mut d, invitee, by, *call)?,
        C::TalkingStarted { leg } => talking_started(&mut d, *leg)?,
        C::TalkingStopped { leg } => talking_stopped(&mut d, *leg)?,
        C::EndIfEmpty => end_if_empty(&mut d),
    }
    Ok(d.events)
}

/// The end-when-empty timer of an emptied run.
pub(super) fn deadlines(room: &Conference) -> Vec<Deadline<ConferenceCommand>> {
    room.run
        .as_ref()
        .and_then(|r| r.empty_since)
        .map(|since| {
            Deadline::new(
                plus_ms(since, END_WHEN_EMPTY_AFTER_MS),
                ConferenceCommand::EndIfEmpty,
            )
        })
        .into_iter()
        .collect()
}

struct Draft {
    state: Conference,
    conference: ConferenceId,
    settings: ConferenceSettings,
    now: DateTime<Utc>,
    events: Vec<ConferenceEvent>,
}

impl Draft {
    /// Records `event`, folding it into the draft at `now`: the instant it is stored with and
    /// folded at once appended.
    fn emit(&mut self, event: ConferenceEvent) {
        self.state.apply(&event, self.now);
        self.events.push(event);
    }

    fn c(&self) -> ConferenceId {
        self.conference.clone()
    }

    fn member_or_reject(&self, leg: LegId) -> Result<&super::state::Member, ConferenceRejection> {
        self.state
            .member(leg)
            .ok_or(ConferenceRejection::UnknownMember(leg))
    }

    fn stop_talking(&mut self, leg: LegId) {
        if let Some(since) = self.state.member(leg).and_then(|m| m.talking_since) {
            let talked_ms = elapsed_ms(since, self.now);
            self.emit(ConferenceEvent::ConferenceMemberTalkingStopped {
                conference: self.c(),
                leg,
                talked_ms,
            });
        }
    }
}

fn configure(
    room: &Conference,
    id: &ConferenceId,
    settings: &ConferenceSettings,
    now: DateTime<Utc>,
) -> Result<Vec<ConferenceEvent>, ConferenceRejection> {
    if let Some(actual) = &room.id
        && actual != id
    {
        return Err(ConferenceRejection::WrongConference {
            actual: actual.clone(),
            requested: id.clone(),
        });
    }
    let invalid = |why| Err(ConferenceRejection::InvalidSettings(why));
    if settings.name.trim().is_empty() {
        return invalid("the name is empty");
    }
    if settings.max_members == 0 {
        return invalid("the capacity must be at least one member");
    }
    if let Some(pin) = &settings.pin
        && (pin.is_empty() || !pin.chars().all(|c| c.is_ascii_digit()))
    {
        return invalid("the PIN must be one or more digits");
    }
    if !room.deleted && room.settings.as_ref() == Some(settings) {
        return Ok(Vec::new());
    }
    let s = settings.clone();
    let mut d = Draft {
        state: room.clone(),
        conference: id.clone(),
        settings: s.clone(),
        now,
        events: Vec::new(),
    };
    d.emit(ConferenceEvent::ConferenceConfigured {
        conference: id.clone(),
        name: s.name,
        extension: s.extension,
        pin: s.pin,
        max_members: s.max_members,
        owner: s.owner,
        record: s.record,
    });
    Ok(d.events)
}

/// Drops everyone still in the room, ends the run and removes the room.
fn delete(d: &mut Draft) {
    if let Some(run) = d.state.run.clone() {
        for (leg, member) in &run.members {
            remove_member(
                d,
                *leg,
                member.joined_at,
                MemberLeftReason::ConferenceClosed,
            );
        }
        let duration_ms = elapsed_ms(run.started_at, run.empty_since.unwrap_or(d.now));
        d.emit(ConferenceEvent::ConferenceEnded {
            conference: d.c(),
            duration_ms,
            peak_members: run.peak_members,
        });
    }
    d.emit(ConferenceEvent::ConferenceDeleted { conference: d.c() });
}

#[allow(clippy::too_many_arguments)]
fn join(
    d: &mut Draft,
    call: CallId,
    leg: LegId,
    party: &Party,
    pin: Option<&str>,
    admin: bool,
    muted: bool,
) -> Decided {
    if d.state.member(leg).is_some() {
        return Err(ConferenceRejection::AlreadyMember(leg));
    }
    let owner = d.settings.owner.is_some() && party.user == d.settings.owner;
    let privileged = admin || owner || d.state.invited.contains(&call);
    if let Some(expected) = d.settings.pin.as_deref()
        && !privileged
        && pin != Some(expected)
    {
        return Err(ConferenceRejection::WrongPin);
    }
    if d.state.is_locked() && !privileged {
        return Err(ConferenceRejection::Locked);
    }
    let max = d.settings.max_members;
    if d.state.member_count() >= usize::try_from(max).unwrap_or(usize::MAX) {
        return Err(ConferenceRejection::Full(max));
    }
    if d.state.run.is_none() {
        d.emit(ConferenceEvent::ConferenceStarted { conference: d.c() });
    }
    d.emit(ConferenceEvent::ConferenceMemberJoined {
        conference: d.c(),
        call,
        leg,
        party: party.clone(),
        moderator: admin || owner,
        muted,
    });
    Ok(())
}

fn leave(d: &mut Draft, leg: LegId, reason: MemberLeftReason) -> Decided {
    let joined_at = d.member_or_reject(leg)?.joined_at;
    remove_member(d, leg, joined_at, reason);
    Ok(())
}

fn remove_member(d: &mut Draft, leg: LegId, joined_at: DateTime<Utc>, reason: MemberLeftReason) {
    d.stop_talking(leg);
    let duration_ms = elapsed_ms(joined_at, d.now);
    d.emit(ConferenceEvent::ConferenceMemberLeft {
        conference: d.c(),
        leg,
        reason,
        duration_ms,
    });
}

fn set_muted(d: &mut Draft, leg: LegId, muted: bool, by: &Option<UserId>) -> Decided {
    if d.member_or_reject(leg)?.muted == muted {
        return Ok(());
    }
    let (conference, by) = (d.c(), by.clone());
    d.emit(if muted {
        ConferenceEvent::ConferenceMemberMuted {
            conference,
            leg,
            by,
        }
    } else {
        ConferenceEvent::ConferenceMemberUnmuted {
            conference,
            leg,
            by,
        }
    });
    Ok(())
}

fn kick(d: &mut Draft, leg: LegId, by: &UserId) -> Decided {
    d.member_or_reject(leg)?;
    d.stop_talking(leg);
    d.emit(ConferenceEvent::ConferenceMemberKicked {
        conference: d.c(),
        leg,
        by: by.clone(),
    });
    leave(d, leg, MemberLeftReason::Kicked)
}

fn set_locked(d: &mut Draft, locked: bool, by: &Option<UserId>) -> Decided {
    let Some(run) = &d.state.run else {
        return Err(ConferenceRejection::NotInUse);
    };
    if run.locked == locked {
        return Ok(());
    }
    let (conference, by) = (d.c(), by.clone());
    d.emit(if locked {
        ConferenceEvent::ConferenceLocked { conference, by }
    } else {
        ConferenceEvent::ConferenceUnlocked { conference, by }
    });
    Ok(())
}

fn invite(d: &mut Draft, invitee: &Party, by: &UserId, call: CallId) -> Decided {
    let max = d.settings.max_members;
    if d.state.member_count() >= usize::try_from(max).unwrap_or(usize::MAX) {
        return Err(ConferenceRejection::Full(max));
    }
    d.emit(ConferenceEvent::ConferenceInviteSent {
        conference: d.c(),
        invitee: invitee.clone(),
        by: by.clone(),
        call,
    });
    Ok(())
}

fn talking_started(d: &mut Draft, leg: LegId) -> Decided {
    if d.member_or_reject(leg)?.talking_since.is_none() {
        d.emit(ConferenceEvent::ConferenceMemberTalkingStarted {
            conference: d.c(),
            leg,
        });
    }
    Ok(())
}

fn talking_stopped(d: &mut Draft, leg: LegId) -> Decided {
    d.member_or_reject(leg)?;
    d.stop_talking(leg);
    Ok(())
}

fn end_if_empty(d: &mut Draft) {
    let Some(run) = &d.state.run else { return };
    let Some(since) = run.empty_since else { return };
    if !run.members.is_empty() || d.now < plus_ms(since, END_WHEN_EMPTY_AFTER_MS) {
        return;
    }
    let duration_ms = elapsed_ms(run.started_at, since);
    let peak_members = run.peak_members;
    d.emit(ConferenceEvent::ConferenceEnded {
        conference: d.c(),
        duration_ms,
        peak_members,
    });
}
