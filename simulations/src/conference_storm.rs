//! The conference storm: several conference rooms (open ones, PIN rooms, small ones that fill up,
//! personal rooms with an owner), participants dialling in as a Poisson process, some with a wrong
//! PIN (and some retrying), staying an exponential time, talking, muting themselves; moderators
//! muting and kicking others, locking and unlocking their room, inviting people, and owners
//! changing the PIN. Each room's end-when-empty deadline is fed back through the agenda. After
//! the load stops, a liveness phase lets every participant leave and every run end.
//!
//! This module plays the SIP edge (who is bridged into which room, what each caller typed) and the
//! panel (who may moderate): it sends the room commands and keeps its own view of each room.
//! Invariants checked after every step: no room holds more members than its capacity; every
//! admission agrees with the rules (nobody unprivileged gets in with a wrong PIN or while the
//! room is locked, nobody past the capacity, nobody refused who should have been admitted); a
//! leg that left or was kicked is never present; the edge, the room and the count folded from the
//! room's events agree, and that count never goes negative; mute and moderator flags are what the
//! edge was told; the end-when-empty timer is armed exactly while an emptied run waits. After
//! draining: every run has ended, nobody is bridged anywhere, and each room rebuilt from its
//! stream equals the live one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use engine::Aggregate;
use engine::conference::{Conference, ConferenceCommand, ConferenceRejection, ConferenceSettings};
use events::ids::{
    CallId, ConferenceId, DepartmentId, ExtensionNumber, LegId, StreamId, TenantId, UserId,
};
use events::model::{ConferenceEvent, MemberLeftReason, Party};
use rand::Rng;

use crate::world::{self, Agenda, Instance, Limits, Report, Scenario, World};

/// Parameters of a conference storm.
#[derive(Debug, Clone)]
pub struct ConferenceStorm {
    pub rooms: u32,
    pub minutes: u32,
    /// Dial-ins per hour over all rooms (default: 40 per room).
    pub joins_per_hour: Option<u32>,
    /// Mean time a participant stays, seconds (capped at an hour).
    pub mean_stay_secs: f64,
    /// Moderation actions per hour over all rooms (default: 30 per room).
    pub moderation_per_hour: Option<u32>,
}

impl Default for ConferenceStorm {
    fn default() -> Self {
        Self {
            rooms: 8,
            minutes: 60,
            joins_per_hour: None,
            mean_stay_secs: 600.0,
            moderation_per_hour: None,
        }
    }
}

/// What kind of room a slot is; rooms cycle through these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomKind {
    /// No PIN, roomy.
    Open,
    /// A PIN, medium capacity.
    Pin,
    /// Someone's personal room: a PIN, and the owner walks in past it as moderator.
    Personal,
    /// No PIN, three seats: fills up.
    Small,
}

/// One dial-in: who, into which room, with what they typed.
#[derive(Debug, Clone)]
struct JoinAttempt {
    room: usize,
    user: usize,
    call: CallId,
    leg: LegId,
    pin: Option<String>,
    admin: bool,
    muted: bool,
    /// The call was placed by the room's invitation.
    invited: bool,
    attempt: u8,
}

#[derive(Debug, Clone)]
enum Happening {
    Arrival,
    Moderate,
    /// A retry after a refusal, or an invited call being answered.
    Join(JoinAttempt),
    InviteUnanswered {
        user: usize,
    },
    Leave {
        room: usize,
        leg: LegId,
    },
    Talk {
        room: usize,
        leg: LegId,
    },
    StopTalking {
        room: usize,
        leg: LegId,
    },
    SelfMute {
        room: usize,
        leg: LegId,
        muted: bool,
    },
    /// The moderator who locked the room opens it again.
    Unlock {
        room: usize,
    },
    RoomDeadline {
        room: usize,
        at: DateTime<Utc>,
    },
}

/// What the edge knows of one bridged leg.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Participant {
    user: usize,
    call: CallId,
    moderator: bool,
    muted: bool,
}

/// One room: the aggregate and the edge's own view of it.
#[derive(Debug)]
struct RoomSim {
    id: ConferenceId,
    stream: StreamId,
    instance: Instance<Conference>,
    /// Legs bridged into the room, as the edge knows them.
    connected: BTreeMap<LegId, Participant>,
    /// Legs that left or were kicked: never members again.
    gone: BTreeSet<LegId>,
    /// Outstanding invitations, as the room's events say.
    invited: BTreeSet<CallId>,
    /// Members joined minus members left, as the room's events say.
    present: i64,
}

/// How a join came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Admitted,
    WrongPin,
    Locked,
    Full,
    AlreadyMember,
    Other,
}

impl Admission {
    fn of(result: &Result<Vec<ConferenceEvent>, ConferenceRejection>) -> Self {
        match result {
            Ok(_) => Self::Admitted,
            Err(ConferenceRejection::WrongPin) => Self::WrongPin,
            Err(ConferenceRejection::Locked) => Self::Locked,
            Err(ConferenceRejection::Full(_)) => Self::Full,
            Err(ConferenceRejection::AlreadyMember(_)) => Self::AlreadyMember,
            Err(_) => Self::Other,
        }
    }
}

struct Sim {
    world: World,
    agenda: Agenda<Happening>,
    rooms: Vec<RoomSim>,
    users: Vec<(UserId, Party)>,
    /// Users on a call (bridged, dialling or being invited).
    busy: BTreeSet<usize>,
    /// The panel operator, for moderation when no moderator is in the room.
    operator: UserId,
    counters: BTreeMap<&'static str, u64>,
    mean_stay_secs: f64,
    /// Dial-ins per second while the load is on.
    rate_per_sec: f64,
    /// Moderation actions per second while the load is on.
    moderation_per_sec: f64,
}

/// Runs a conference storm for `seed`, calling `progress(simulated seconds done, total)` now
/// and then.
pub fn run_conference_storm(
    params: &ConferenceStorm,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Report {
    let tenant = TenantId::parse("sim").expect("\"sim\" is a valid tenant slug");
    let operator = UserId::parse("operator").expect("\"operator\" is a valid user id");
    let n = params.rooms.max(1);
    let per_hour = params.joins_per_hour.unwrap_or(n * 40).max(1);
    let moderation_per_hour = params.moderation_per_hour.unwrap_or(n * 30).max(1);
    let mut sim = Sim {
        world: World::new(seed, tenant.clone()),
        agenda: Agenda::default(),
        rooms: Vec::new(),
        users: Vec::new(),
        busy: BTreeSet::new(),
        operator,
        counters: BTreeMap::new(),
        mean_stay_secs: params.mean_stay_secs.max(1.0),
        rate_per_sec: f64::from(per_hour) / 3600.0,
        moderation_per_sec: f64::from(moderation_per_hour) / 3600.0,
    };
    sim.provision(&tenant, n);
    sim.next_arrival(sim.rate_per_sec, Happening::Arrival);
    sim.next_arrival(sim.moderation_per_sec, Happening::Moderate);
    let limits = Limits {
        minutes: params.minutes,
        // Stays are capped at an hour, so draining takes at most a little longer.
        drain: TimeDelta::hours(2),
        steps: 400 * u64::from(per_hour + moderation_per_hour) + 1_000_000,
    };
    world::run(&mut sim, limits, progress);
    sim.finish(params, seed)
}

impl Scenario for Sim {
    type Happening = Happening;

    fn world(&mut self) -> &mut World {
        &mut self.world
    }

    fn agenda(&mut self) -> &mut Agenda<Happening> {
        &mut self.agenda
    }

    fn step(&mut self, what: Happening, load_on: bool) {
        match what {
            Happening::Arrival if load_on => {
                self.arrival();
                self.next_arrival(self.rate_per_sec, Happening::Arrival);
            }
            Happening::Moderate if load_on => {
                self.moderate();
                self.next_arrival(self.moderation_per_sec, Happening::Moderate);
            }
            // The load stops: nobody new dials in and moderators stop; calls in flight go on.
            Happening::Arrival | Happening::Moderate => {}
            other => self.handle(other),
        }
        for r in 0..self.rooms.len() {
            self.check_room(r);
        }
    }
}

impl Sim {
    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn random_pin(&mut self) -> String {
        let digits = self.world.rng.random_range(4..=6);
        (0..digits)
            .map(|_| char::from(b'0' + self.world.rng.random_range(0..10u8)))
            .collect()
    }

    fn provision(&mut self, tenant: &TenantId, n: u32) {
        let Ok(department) = DepartmentId::parse("sales") else {
            return;
        };
        for k in 0..n * 10 {
            let number = format!("{}", 2000 + k);
            let (Ok(ext), Ok(user)) = (ExtensionNumber::parse(&number), UserId::parse(&number))
            else {
                continue;
            };
            let party = Party::internal(
                ext,
                user.clone(),
                department.clone(),
                format!("User {number}"),
            );
            self.users.push((user, party));
        }
        for k in 0..n {
            let kind = match k % 4 {
                0 => RoomKind::Open,
                1 => RoomKind::Pin,
                2 => RoomKind::Personal,
                _ => RoomKind::Small,
            };
            let (Ok(id), Ok(extension)) = (
                ConferenceId::parse(format!("conf-{k}")),
                ExtensionNumber::parse(format!("{}", 3000 + k)),
            ) else {
                continue;
            };
            let pin = matches!(kind, RoomKind::Pin | RoomKind::Personal).then(|| self.random_pin());
            let (max_members, owner) = match kind {
                RoomKind::Open => (8, None),
                RoomKind::Pin => (6, None),
                // The personal room of the user with the room's own index.
                RoomKind::Personal => (5, self.users.get(k as usize).map(|(u, _)| u.clone())),
                RoomKind::Small => (3, None),
            };
            let settings = ConferenceSettings {
                name: format!("Room {k}"),
                extension,
                pin,
                max_members,
                owner,
                record: kind == RoomKind::Small,
            };
            self.rooms.push(RoomSim {
                stream: StreamId::conference(tenant, &id),
                id: id.clone(),
                instance: Instance::default(),
                connected: BTreeMap::new(),
                gone: BTreeSet::new(),
                invited: BTreeSet::new(),
                present: 0,
            });
            let r = self.rooms.len() - 1;
            if self
                .conf_command(
                    r,
                    ConferenceCommand::Configure {
                        conference: id,
                        settings,
                    },
                )
                .is_err()
            {
                self.world
                    .violation(format!("room {r} could not be configured"));
            }
        }
    }

    fn settings(&self, r: usize) -> Option<&ConferenceSettings> {
        self.rooms[r].instance.state.settings()
    }

    /// Runs a room command, re-arms its deadlines and folds its events into the edge's counts.
    fn conf_command(
        &mut self,
        r: usize,
        command: ConferenceCommand,
    ) -> Result<Vec<ConferenceEvent>, ConferenceRejection> {
        let room = &mut self.rooms[r];
        let agenda = &mut self.agenda;
        let result = self
            .world
            .execute_arming(&room.stream, &mut room.instance, &command, |d| {
                agenda.at(d.at, Happening::RoomDeadline { room: r, at: d.at })
            });
        if let Ok(events) = &result {
            self.fold_events(r, events);
        }
        result
    }

    /// Keeps the counts the room's events imply, and checks that each kick is followed by the
    /// member leaving.
    fn fold_events(&mut self, r: usize, events: &[ConferenceEvent]) {
        use ConferenceEvent as E;
        let mut problems = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let room = &mut self.rooms[r];
            match e {
                E::ConferenceStarted { .. } if room.present != 0 => {
                    problems.push(format!("{} started with {} present", room.id, room.present));
                }
                E::ConferenceMemberJoined { call, .. } => {
                    room.present += 1;
                    room.invited.remove(call);
                }
                E::ConferenceMemberLeft { .. } => {
                    room.present -= 1;
                    if room.present < 0 {
                        problems.push(format!("{}: member count went negative", room.id));
                    }
                }
                E::ConferenceMemberKicked { leg, .. } => {
                    let left = events[i + 1..].iter().any(|later| {
                        matches!(later, E::ConferenceMemberLeft { leg: l, reason, .. }
                            if l == leg && *reason == MemberLeftReason::Kicked)
                    });
                    if !left {
                        problems.push(format!("{}: {leg} kicked but did not leave", room.id));
                    }
                }
                E::ConferenceEnded { .. } | E::ConferenceDeleted { .. } => {
                    if room.present != 0 {
                        problems.push(format!("{} ended with {} present", room.id, room.present));
                    }
                    room.invited.clear();
                }
                E::ConferenceInviteSent { call, .. } => {
                    room.invited.insert(*call);
                }
                _ => {}
            }
        }
        for p in problems {
            self.world.violation(p);
        }
    }

    fn free_user(&mut self, exclude_owners_of: Option<usize>) -> Option<usize> {
        let n = self.users.len();
        for _ in 0..8 {
            let u = self.world.rng.random_range(0..n);
            let owns = exclude_owners_of.is_some_and(|r| {
                self.settings(r)
                    .and_then(|s| s.owner.as_ref())
                    .is_some_and(|o| *o == self.users[u].0)
            });
            if !self.busy.contains(&u) && !owns {
                return Some(u);
            }
        }
        None
    }

    fn arrival(&mut self) {
        self.count("dial-ins");
        let r = self.world.rng.random_range(0..self.rooms.len());
        let Some(settings) = self.settings(r).cloned() else {
            return;
        };
        // A personal room's owner dials in now and then, past the PIN.
        let owner = settings
            .owner
            .as_ref()
            .and_then(|o| self.users.iter().position(|(u, _)| u == o))
            .filter(|o| !self.busy.contains(o));
        let (user, is_owner) = match owner {
            Some(o) if self.world.chance(0.3) => (o, true),
            _ => match self.free_user(Some(r)) {
                Some(u) => (u, false),
                None => {
                    self.count("dial-ins without a free user");
                    return;
                }
            },
        };
        let admin = !is_owner && self.world.chance(0.1);
        let pin = match &settings.pin {
            _ if is_owner || admin => None,
            Some(right) if self.world.chance(0.8) => Some(right.clone()),
            Some(right) => {
                // A typo: another PIN of the same length.
                let mut wrong = self.random_pin();
                if wrong == *right {
                    wrong.push('9');
                }
                Some(wrong)
            }
            // Some callers type digits into an open room anyway; they are ignored.
            None => self.world.chance(0.1).then(|| self.random_pin()),
        };
        let muted = self.world.chance(0.1);
        self.busy.insert(user);
        let attempt = JoinAttempt {
            room: r,
            user,
            call: CallId::from_uuid(self.world.uuid()),
            leg: LegId::from_uuid(self.world.uuid()),
            pin,
            admin,
            muted,
            invited: false,
            attempt: 1,
        };
        self.try_join(attempt);
    }

    /// Sends a join, checks the outcome against the admission rules, and bridges or gives up.
    fn try_join(&mut self, attempt: JoinAttempt) {
        let r = attempt.room;
        let before = self.rooms[r].instance.state.clone();
        let invited_before = self.rooms[r].invited.clone();
        let party = self.users[attempt.user].1.clone();
        let result = self.conf_command(
            r,
            ConferenceCommand::Join {
                call: attempt.call,
                leg: attempt.leg,
                party: party.clone(),
                pin: attempt.pin.clone(),
                admin: attempt.admin,
                muted: attempt.muted,
            },
        );
        let outcome = Admission::of(&result);
        if let Some(v) = admission_violation(&before, &attempt, &party, &invited_before, outcome) {
            self.world.violation(v);
        }
        let privileged = is_privileged(&before, &attempt, &party, &invited_before);
        match outcome {
            Admission::Admitted => {
                self.count("admitted");
                if before.run().is_none() {
                    self.count("runs started");
                }
                if before.is_locked() {
                    self.count("admitted past the lock");
                }
                if attempt.invited {
                    self.count("invited joins");
                } else if attempt.admin {
                    self.count("admin joins");
                } else if privileged {
                    self.count("owner joins");
                }
                if attempt.attempt > 1 {
                    self.count("admitted on a retry");
                }
                if attempt.muted {
                    self.count("joined muted");
                }
                let moderator = self.rooms[r]
                    .instance
                    .state
                    .member(attempt.leg)
                    .is_some_and(|m| m.moderator);
                if moderator != privileged_moderator(&before, &attempt, &party) {
                    self.world.violation(format!(
                        "{}: {} joined with moderator={moderator}",
                        self.rooms[r].id, attempt.leg
                    ));
                }
                self.rooms[r].connected.insert(
                    attempt.leg,
                    Participant {
                        user: attempt.user,
                        call: attempt.call,
                        moderator,
                        muted: attempt.muted,
                    },
                );
                self.schedule_member(r, attempt.leg);
            }
            Admission::WrongPin => {
                self.count("refused: wrong PIN");
                let right = self.settings(r).and_then(|s| s.pin.clone());
                if attempt.attempt < 3 && right.is_some() && self.world.chance(0.5) {
                    // The caller tries again, this time with the right PIN.
                    self.count("PIN retries");
                    let again = self.world.uniform_secs(3.0, 8.0);
                    let retry = JoinAttempt {
                        pin: right,
                        attempt: attempt.attempt + 1,
                        ..attempt
                    };
                    self.agenda
                        .at(self.world.now + again, Happening::Join(retry));
                } else {
                    self.busy.remove(&attempt.user);
                }
            }
            Admission::Locked => {
                self.count("refused: locked");
                if attempt.attempt < 3 && self.world.chance(0.3) {
                    self.count("knocks again later");
                    let again = self.world.uniform_secs(20.0, 90.0);
                    let retry = JoinAttempt {
                        attempt: attempt.attempt + 1,
                        ..attempt
                    };
                    self.agenda
                        .at(self.world.now + again, Happening::Join(retry));
                } else {
                    self.busy.remove(&attempt.user);
                }
            }
            Admission::Full => {
                self.count("refused: full");
                if attempt.invited {
                    self.count("invited call found the room full");
                }
                self.busy.remove(&attempt.user);
            }
            Admission::AlreadyMember | Admission::Other => {
                self.count("refused: other");
                self.busy.remove(&attempt.user);
            }
        }
    }

    /// A new member's life: when they hang up, when they talk, whether they mute themselves.
    fn schedule_member(&mut self, r: usize, leg: LegId) {
        let now = self.world.now;
        let stay = self
            .world
            .exp_delay(1.0 / self.mean_stay_secs)
            .min(TimeDelta::hours(1));
        self.agenda
            .at(now + stay, Happening::Leave { room: r, leg });
        let stay_secs = (stay.num_milliseconds() as f64 / 1000.0).max(0.002);
        let talk = self.world.uniform_secs(0.0, stay_secs);
        self.agenda.at(now + talk, Happening::Talk { room: r, leg });
        if self.world.chance(0.25) {
            let muted = self.rooms[r].connected.get(&leg).is_some_and(|p| p.muted);
            let when = self.world.uniform_secs(0.0, stay_secs);
            self.agenda.at(
                now + when,
                Happening::SelfMute {
                    room: r,
                    leg,
                    muted: !muted,
                },
            );
        }
    }

    fn handle(&mut self, what: Happening) {
        match what {
            Happening::Join(attempt) => self.try_join(attempt),
            Happening::InviteUnanswered { user } => {
                self.count("invites unanswered");
                self.busy.remove(&user);
            }
            Happening::Leave { room, leg } => {
                let Some(p) = self.rooms[room].connected.get(&leg).cloned() else {
                    return; // kicked meanwhile
                };
                match self.conf_command(room, ConferenceCommand::Leave { leg }) {
                    Ok(_) => {
                        self.count("left");
                        self.unbridge(room, leg, p.user);
                    }
                    Err(e) => self.world.violation(format!(
                        "{}: bridged leg {leg} could not leave: {e}",
                        self.rooms[room].id
                    )),
                }
            }
            Happening::Talk { room, leg } => {
                if !self.rooms[room].connected.contains_key(&leg) {
                    return;
                }
                match self.conf_command(room, ConferenceCommand::TalkingStarted { leg }) {
                    Ok(_) => {
                        self.count("talk stretches");
                        let talk = self.world.uniform_secs(1.0, 25.0);
                        self.agenda
                            .at(self.world.now + talk, Happening::StopTalking { room, leg });
                    }
                    Err(e) => self.world.violation(format!(
                        "{}: bridged leg {leg} cannot talk: {e}",
                        self.rooms[room].id
                    )),
                }
            }
            Happening::StopTalking { room, leg } => {
                if !self.rooms[room].connected.contains_key(&leg) {
                    return;
                }
                if let Err(e) = self.conf_command(room, ConferenceCommand::TalkingStopped { leg }) {
                    self.world.violation(format!(
                        "{}: bridged leg {leg} cannot stop talking: {e}",
                        self.rooms[room].id
                    ));
                }
                if self.world.chance(0.5) {
                    let pause = self.world.uniform_secs(5.0, 120.0);
                    self.agenda
                        .at(self.world.now + pause, Happening::Talk { room, leg });
                }
            }
            Happening::SelfMute { room, leg, muted } => {
                if !self.rooms[room].connected.contains_key(&leg) {
                    return;
                }
                self.set_muted(room, leg, muted, None);
                if muted && self.world.chance(0.6) {
                    let later = self.world.uniform_secs(10.0, 120.0);
                    self.agenda.at(
                        self.world.now + later,
                        Happening::SelfMute {
                            room,
                            leg,
                            muted: false,
                        },
                    );
                }
            }
            Happening::RoomDeadline { room, at } => {
                let due = self.rooms[room]
                    .instance
                    .state
                    .deadlines()
                    .into_iter()
                    .find(|d| d.at == at && d.at <= self.world.now);
                let Some(d) = due else {
                    // Someone came back before the grace period ran out.
                    self.count("empty timers overtaken by a rejoin");
                    return;
                };
                match self.conf_command(room, d.command) {
                    Ok(events)
                        if events
                            .iter()
                            .any(|e| matches!(e, ConferenceEvent::ConferenceEnded { .. })) =>
                    {
                        self.count("runs ended");
                    }
                    Ok(_) => self.world.violation(format!(
                        "{}: the due end-when-empty timer ended nothing",
                        self.rooms[room].id
                    )),
                    Err(e) => self.world.violation(format!(
                        "{}: the end-when-empty timer was refused: {e}",
                        self.rooms[room].id
                    )),
                }
            }
            Happening::Unlock { room } => {
                if self.rooms[room].instance.state.is_locked() {
                    let (by, own_leg) = self.moderator_of(room);
                    self.toggle_lock(room, own_leg.map(|_| by));
                }
            }
            Happening::Arrival | Happening::Moderate => {}
        }
    }

    /// The edge drops a leg from the bridge after it left or was kicked.
    fn unbridge(&mut self, r: usize, leg: LegId, user: usize) {
        self.rooms[r].connected.remove(&leg);
        self.rooms[r].gone.insert(leg);
        self.busy.remove(&user);
    }

    fn set_muted(&mut self, r: usize, leg: LegId, muted: bool, by: Option<UserId>) {
        let by_moderator = by.is_some();
        let command = if muted {
            ConferenceCommand::Mute { leg, by }
        } else {
            ConferenceCommand::Unmute { leg, by }
        };
        match self.conf_command(r, command) {
            Ok(events) => {
                let now_muted = self.rooms[r].instance.state.member(leg).map(|m| m.muted);
                if now_muted != Some(muted) {
                    self.world.violation(format!(
                        "{}: {leg} asked muted={muted}, shows {now_muted:?}",
                        self.rooms[r].id
                    ));
                }
                if let Some(p) = self.rooms[r].connected.get_mut(&leg) {
                    p.muted = muted;
                }
                if !events.is_empty() {
                    self.count(match (muted, by_moderator) {
                        (true, false) => "self mutes",
                        (false, false) => "self unmutes",
                        (true, true) => "muted by a moderator",
                        (false, true) => "unmuted by a moderator",
                    });
                }
            }
            Err(e) => self.world.violation(format!(
                "{}: muting bridged leg {leg} was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    /// Who moderates room `r` right now: a moderator bridged in, else the panel operator.
    fn moderator_of(&mut self, r: usize) -> (UserId, Option<LegId>) {
        let mods: Vec<(LegId, usize)> = self.rooms[r]
            .connected
            .iter()
            .filter(|(_, p)| p.moderator)
            .map(|(l, p)| (*l, p.user))
            .collect();
        if mods.is_empty() {
            return (self.operator.clone(), None);
        }
        let (leg, user) = mods[self.world.rng.random_range(0..mods.len())];
        (self.users[user].0.clone(), Some(leg))
    }

    /// A member of room `r` who is not `except`, at random.
    fn some_member(&mut self, r: usize, except: Option<LegId>) -> Option<LegId> {
        let legs: Vec<LegId> = self.rooms[r]
            .connected
            .keys()
            .copied()
            .filter(|l| Some(*l) != except)
            .collect();
        (!legs.is_empty()).then(|| legs[self.world.rng.random_range(0..legs.len())])
    }

    fn moderate(&mut self) {
        // Room 0 gets a third of the moderation, so one room is locked now and then for sure.
        let r = if self.world.chance(0.33) {
            0
        } else {
            self.world.rng.random_range(0..self.rooms.len())
        };
        let (by, own_leg) = self.moderator_of(r);
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        if roll < 0.28 {
            let Some(leg) = self.some_member(r, own_leg) else {
                return;
            };
            let muted = self.rooms[r].connected.get(&leg).is_some_and(|p| p.muted);
            self.set_muted(r, leg, !muted, Some(by));
        } else if roll < 0.38 {
            let Some(leg) = self.some_member(r, own_leg) else {
                return;
            };
            let Some(p) = self.rooms[r].connected.get(&leg).cloned() else {
                return;
            };
            match self.conf_command(r, ConferenceCommand::Kick { leg, by }) {
                Ok(_) => {
                    self.count("kicked");
                    self.unbridge(r, leg, p.user);
                    if self.rooms[r].instance.state.member(leg).is_some() {
                        self.world
                            .violation(format!("{}: kicked {leg} is still in", self.rooms[r].id));
                    }
                }
                Err(e) => self.world.violation(format!(
                    "{}: kicking bridged leg {leg} was refused: {e}",
                    self.rooms[r].id
                )),
            }
        } else if roll < 0.55 {
            let by = own_leg.map(|_| by);
            if self.rooms[r].instance.state.is_locked() {
                self.toggle_lock(r, by);
            } else if self.toggle_lock(r, by) {
                // Locked for a while, then opened again (unless the run ends first).
                let open = self.world.uniform_secs(30.0, 240.0);
                self.agenda
                    .at(self.world.now + open, Happening::Unlock { room: r });
            }
        } else if roll < 0.85 {
            if own_leg.is_none() {
                return; // invitations come from a moderator in the room
            }
            let Some(user) = self.free_user(None) else {
                return;
            };
            let call = CallId::from_uuid(self.world.uuid());
            let invitee = self.users[user].1.clone();
            self.busy.insert(user);
            let result = self.conf_command(r, ConferenceCommand::Invite { invitee, by, call });
            match result {
                Ok(_) => {
                    self.count("invitations");
                    let ring = self.world.uniform_secs(3.0, 20.0);
                    let later = self.world.now + ring;
                    if self.world.chance(0.8) {
                        let attempt = JoinAttempt {
                            room: r,
                            user,
                            call,
                            leg: LegId::from_uuid(self.world.uuid()),
                            pin: None,
                            admin: false,
                            muted: false,
                            invited: true,
                            attempt: 1,
                        };
                        self.agenda.at(later, Happening::Join(attempt));
                    } else {
                        self.agenda.at(later, Happening::InviteUnanswered { user });
                    }
                }
                Err(ConferenceRejection::Full(_)) => {
                    self.count("invitation refused: full");
                    self.busy.remove(&user);
                }
                Err(e) => {
                    self.world
                        .violation(format!("{}: invitation refused: {e}", self.rooms[r].id));
                    self.busy.remove(&user);
                }
            }
        } else if roll < 0.97 {
            self.change_pin(r);
        } else {
            self.recreate(r);
        }
    }

    /// An administrator deletes room `r`, dropping whoever is in it, and sets it up again at
    /// once with the same settings.
    fn recreate(&mut self, r: usize) {
        let Some(settings) = self.settings(r).cloned() else {
            return;
        };
        let dropped: Vec<(LegId, usize)> = self.rooms[r]
            .connected
            .iter()
            .map(|(l, p)| (*l, p.user))
            .collect();
        match self.conf_command(r, ConferenceCommand::Delete) {
            Ok(events) => {
                self.count("rooms deleted");
                for (leg, user) in dropped {
                    let closed = events.iter().any(|e| {
                        matches!(e, ConferenceEvent::ConferenceMemberLeft { leg: l, reason, .. }
                            if *l == leg && *reason == MemberLeftReason::ConferenceClosed)
                    });
                    if !closed {
                        self.world.violation(format!(
                            "{}: deleted without dropping {leg}",
                            self.rooms[r].id
                        ));
                    }
                    self.count("members dropped by a deletion");
                    self.unbridge(r, leg, user);
                }
                let state = &self.rooms[r].instance.state;
                if !state.is_deleted() || state.run().is_some() {
                    self.world.violation(format!(
                        "{}: deleted but still in use or not marked deleted",
                        self.rooms[r].id
                    ));
                }
            }
            Err(e) => {
                self.world
                    .violation(format!("{}: deletion refused: {e}", self.rooms[r].id));
                return;
            }
        }
        let conference = self.rooms[r].id.clone();
        match self.conf_command(
            r,
            ConferenceCommand::Configure {
                conference,
                settings,
            },
        ) {
            Ok(events) if !events.is_empty() && !self.rooms[r].instance.state.is_deleted() => {
                self.count("rooms re-created");
            }
            other => self.world.violation(format!(
                "{}: re-creating the deleted room gave {other:?}",
                self.rooms[r].id
            )),
        }
    }

    /// Locks room `r` if it is open, opens it if it is locked; whether it is locked now.
    fn toggle_lock(&mut self, r: usize, by: Option<UserId>) -> bool {
        let locked = self.rooms[r].instance.state.is_locked();
        let in_use = self.rooms[r].instance.state.run().is_some();
        let command = if locked {
            ConferenceCommand::Unlock { by }
        } else {
            ConferenceCommand::Lock { by }
        };
        match (self.conf_command(r, command), in_use) {
            (Ok(_), true) => {
                self.count(if locked { "unlocks" } else { "locks" });
                if self.rooms[r].instance.state.is_locked() == locked {
                    self.world.violation(format!(
                        "{}: lock toggle left locked={locked}",
                        self.rooms[r].id
                    ));
                }
            }
            (Err(ConferenceRejection::NotInUse), false) => {
                self.count("lock refused: room not in use");
            }
            (other, _) => self.world.violation(format!(
                "{}: lock toggle (in use: {in_use}) gave {other:?}",
                self.rooms[r].id
            )),
        }
        self.rooms[r].instance.state.is_locked()
    }

    /// The owner (or an administrator) sets a new PIN on a PIN-protected room.
    fn change_pin(&mut self, r: usize) {
        let Some(mut settings) = self.settings(r).cloned() else {
            return;
        };
        if settings.pin.is_none() {
            return;
        }
        settings.pin = Some(self.random_pin());
        let conference = self.rooms[r].id.clone();
        let capacity = settings.max_members;
        match self.conf_command(
            r,
            ConferenceCommand::Configure {
                conference,
                settings: settings.clone(),
            },
        ) {
            Ok(events) if !events.is_empty() => {
                self.count("PIN changes");
                if self.settings(r) != Some(&settings) {
                    self.world
                        .violation(format!("{}: new PIN not recorded", self.rooms[r].id));
                }
                if self.rooms[r].instance.state.member_count() > capacity as usize {
                    self.world.violation(format!(
                        "{}: reconfiguring left more members than seats",
                        self.rooms[r].id
                    ));
                }
            }
            Ok(_) => {} // the same PIN drawn again
            Err(e) => self.world.violation(format!(
                "{}: a PIN change was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    fn check_room(&mut self, r: usize) {
        for v in room_violations(&self.rooms[r]) {
            self.world.violation(v);
        }
    }

    fn finish(mut self, params: &ConferenceStorm, seed: u64) -> Report {
        // Liveness: the agenda ran dry, so everyone has left and every run has ended.
        for r in 0..self.rooms.len() {
            let room = &self.rooms[r];
            let mut problems = Vec::new();
            if let Some(run) = room.instance.state.run() {
                problems.push(format!(
                    "{} still in use after draining: {} members, empty since {:?}, timers {:?}",
                    room.id,
                    run.members.len(),
                    run.empty_since,
                    room.instance.state.deadlines()
                ));
            }
            if !room.connected.is_empty() {
                problems.push(format!(
                    "{}: {} legs still bridged after draining",
                    room.id,
                    room.connected.len()
                ));
            }
            if room.present != 0 {
                problems.push(format!(
                    "{}: {} present after draining",
                    room.id, room.present
                ));
            }
            if !room.invited.is_empty() {
                problems.push(format!(
                    "{}: {} invitations outstanding after draining",
                    room.id,
                    room.invited.len()
                ));
            }
            match self.world.rebuild::<Conference>(&room.stream) {
                Ok(rebuilt) => {
                    if format!("{rebuilt:?}") != format!("{:?}", room.instance.state) {
                        problems.push(format!(
                            "{}: rebuilt from its stream it differs from the live room",
                            room.id
                        ));
                    }
                }
                Err(e) => problems.push(e),
            }
            for p in problems {
                self.world.violation(p);
            }
        }
        if !self.busy.is_empty() {
            let n = self.busy.len();
            self.world
                .violation(format!("{n} users still on a call after draining"));
        }
        self.counters
            .insert("legs", self.rooms.iter().map(|r| r.gone.len() as u64).sum());
        let scenario = format!(
            "conference-storm: {} rooms, {} minutes",
            params.rooms, params.minutes
        );
        self.world.into_report(scenario, seed, self.counters)
    }
}

/// Whether `attempt` skips the PIN and the lock: an admin, the personal room's owner, or an
/// invited call (as the room's events say).
fn is_privileged(
    before: &Conference,
    attempt: &JoinAttempt,
    party: &Party,
    invited: &BTreeSet<CallId>,
) -> bool {
    privileged_moderator(before, attempt, party) || invited.contains(&attempt.call)
}

/// Whether `attempt` joins as a moderator: an admin or the personal room's owner.
fn privileged_moderator(before: &Conference, attempt: &JoinAttempt, party: &Party) -> bool {
    let owner = before
        .settings()
        .and_then(|s| s.owner.as_ref())
        .is_some_and(|o| party.user.as_ref() == Some(o));
    attempt.admin || owner
}

/// What the admission rules say about `attempt` against the room as it was before, compared
/// with what the room decided; `None` when they agree.
fn admission_violation(
    before: &Conference,
    attempt: &JoinAttempt,
    party: &Party,
    invited: &BTreeSet<CallId>,
    outcome: Admission,
) -> Option<String> {
    let settings = before.settings()?;
    let privileged = is_privileged(before, attempt, party, invited);
    let pin_ok = match &settings.pin {
        None => true,
        Some(expected) => attempt.pin.as_deref() == Some(expected.as_str()),
    };
    let seats = settings.max_members as usize;
    let expected = if before.member(attempt.leg).is_some() {
        Admission::AlreadyMember
    } else if !pin_ok && !privileged {
        Admission::WrongPin
    } else if before.is_locked() && !privileged {
        Admission::Locked
    } else if before.member_count() >= seats {
        Admission::Full
    } else {
        Admission::Admitted
    };
    if expected == outcome {
        return None;
    }
    let what = match outcome {
        Admission::Admitted if !pin_ok && !privileged => "admitted with a wrong PIN",
        Admission::Admitted if before.is_locked() && !privileged => "admitted while locked",
        Admission::Admitted => "admitted past the capacity",
        _ if expected == Admission::Admitted => "refused although admissible",
        _ => "refused for the wrong reason",
    };
    Some(format!(
        "{}: {} (leg {}, privileged {privileged}, pin ok {pin_ok}, locked {}, {}/{seats} \
         members): expected {expected:?}, got {outcome:?}",
        settings.name,
        what,
        attempt.leg,
        before.is_locked(),
        before.member_count()
    ))
}

/// The invariants of one room, between steps.
fn room_violations(room: &RoomSim) -> Vec<String> {
    let mut v = Vec::new();
    let state = &room.instance.state;
    let id = &room.id;
    let Some(settings) = state.settings() else {
        v.push(format!("{id} is not configured"));
        return v;
    };
    let seats = settings.max_members as usize;
    let count = state.member_count();
    if count > seats {
        v.push(format!("{id}: {count} members in a room for {seats}"));
    }
    if let Some(run) = state.run() {
        let peak = run.peak_members as usize;
        if peak > seats || peak < count {
            v.push(format!(
                "{id}: peak {peak} with {count} members and {seats} seats"
            ));
        }
        if run.empty_since.is_some() != run.members.is_empty() {
            v.push(format!(
                "{id}: {count} members but empty since {:?}",
                run.empty_since
            ));
        }
        for (leg, m) in &run.members {
            if room.gone.contains(leg) {
                v.push(format!("{id}: {leg} left or was kicked but is present"));
            }
            match room.connected.get(leg) {
                None => v.push(format!("{id}: member {leg} is not bridged")),
                Some(p) => {
                    if p.muted != m.muted || p.moderator != m.moderator || p.call != m.call {
                        v.push(format!(
                            "{id}: {leg} shows muted={} moderator={}, the edge has {p:?}",
                            m.muted, m.moderator
                        ));
                    }
                }
            }
        }
    } else if state.is_locked() {
        v.push(format!("{id} is locked while not in use"));
    }
    for leg in room.connected.keys() {
        if state.member(*leg).is_none() {
            v.push(format!("{id}: bridged leg {leg} is not a member"));
        }
    }
    if room.present < 0 {
        v.push(format!("{id}: {} present", room.present));
    } else if room.present != count as i64 {
        v.push(format!(
            "{id}: its events say {} present, it shows {count}",
            room.present
        ));
    }
    let waiting = state.run().is_some_and(|r| r.empty_since.is_some());
    let timers = state.deadlines().len();
    if timers != usize::from(waiting) {
        v.push(format!(
            "{id}: {timers} end-when-empty timers, emptied run waiting: {waiting}"
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> ConferenceStorm {
        ConferenceStorm {
            rooms: 4,
            minutes: 15,
            joins_per_hour: Some(400),
            mean_stay_secs: 150.0,
            moderation_per_hour: Some(200),
        }
    }

    #[test]
    fn the_same_seed_gives_a_byte_identical_log() {
        let a = run_conference_storm(&small(), 42, &mut |_, _| {});
        let b = run_conference_storm(&small(), 42, &mut |_, _| {});
        assert_eq!(a.log_sha256, b.log_sha256);
        assert_eq!(a, b);
        let c = run_conference_storm(&small(), 43, &mut |_, _| {});
        assert_ne!(a.log_sha256, c.log_sha256, "another seed, another storm");
        assert!(a.scenario.starts_with("conference-storm"));
        assert!(a.counters["admitted"] > 30, "{:?}", a.counters);
        assert!(a.violations.is_empty(), "{:?}", a.violations);
    }

    #[test]
    fn a_hundred_seeds_without_a_violation() {
        let params = ConferenceStorm {
            rooms: 4,
            minutes: 20,
            joins_per_hour: Some(480),
            mean_stay_secs: 150.0,
            moderation_per_hour: Some(240),
        };
        let mut paths = BTreeMap::<&'static str, u64>::new();
        let mut failures = Vec::new();
        for seed in 0..100 {
            let r = run_conference_storm(&params, seed, &mut |_, _| {});
            if !r.violations.is_empty() {
                failures.push(format!("seed {seed}:\n  {}", r.violations.join("\n  ")));
            }
            for (k, v) in r.counters {
                *paths.entry(k).or_default() += v;
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // The seeds exercise every path the scenario has.
        for path in [
            "admitted",
            "runs started",
            "runs ended",
            "left",
            "kicked",
            "refused: wrong PIN",
            "PIN retries",
            "admitted on a retry",
            "refused: locked",
            "knocks again later",
            "admitted past the lock",
            "refused: full",
            "owner joins",
            "admin joins",
            "invitations",
            "invited joins",
            "invites unanswered",
            "joined muted",
            "self mutes",
            "self unmutes",
            "muted by a moderator",
            "unmuted by a moderator",
            "locks",
            "unlocks",
            "lock refused: room not in use",
            "PIN changes",
            "rooms re-created",
            "members dropped by a deletion",
            "talk stretches",
            "empty timers overtaken by a rejoin",
        ] {
            assert!(
                paths.get(path).copied().unwrap_or(0) > 0,
                "{path} never happened: {paths:?}"
            );
        }
    }

    fn crafted_room(events: &[ConferenceEvent]) -> RoomSim {
        let at = crate::world::start_time();
        let id = ConferenceId::parse("crafted").unwrap_or_else(|e| panic!("{e}"));
        let tenant = TenantId::parse("sim").unwrap_or_else(|e| panic!("{e}"));
        RoomSim {
            stream: StreamId::conference(&tenant, &id),
            id,
            instance: Instance {
                state: Conference::replay(events.iter().map(|e| (e, at))),
                version: events.len() as u64,
            },
            connected: BTreeMap::new(),
            gone: BTreeSet::new(),
            invited: BTreeSet::new(),
            present: 0,
        }
    }

    fn leg(n: u128) -> LegId {
        LegId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn call(n: u128) -> CallId {
        CallId::from_uuid(uuid::Uuid::from_u128(0x1000 + n))
    }

    fn configured(seats: u32, pin: Option<&str>) -> ConferenceEvent {
        ConferenceEvent::ConferenceConfigured {
            conference: ConferenceId::parse("crafted").unwrap_or_else(|e| panic!("{e}")),
            name: "Crafted".into(),
            extension: ExtensionNumber::parse("3999").unwrap_or_else(|e| panic!("{e}")),
            pin: pin.map(str::to_owned),
            max_members: seats,
            owner: None,
            record: false,
        }
    }

    fn joined(n: u128) -> ConferenceEvent {
        ConferenceEvent::ConferenceMemberJoined {
            conference: ConferenceId::parse("crafted").unwrap_or_else(|e| panic!("{e}")),
            call: call(n),
            leg: leg(n),
            party: Party::default(),
            moderator: false,
            muted: false,
        }
    }

    fn started() -> ConferenceEvent {
        ConferenceEvent::ConferenceStarted {
            conference: ConferenceId::parse("crafted").unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn bridged(room: &mut RoomSim, n: u128) {
        room.connected.insert(
            leg(n),
            Participant {
                user: 0,
                call: call(n),
                moderator: false,
                muted: false,
            },
        );
        room.present += 1;
    }

    #[test]
    fn the_room_checker_sees_an_overfull_room_a_returning_leg_and_a_wrong_count() {
        // Three members in a room for two: the log could only say so if admission were broken.
        let mut room = crafted_room(&[configured(2, None), started(), joined(1), joined(2)]);
        bridged(&mut room, 1);
        bridged(&mut room, 2);
        assert!(
            room_violations(&room).is_empty(),
            "{:?}",
            room_violations(&room)
        );

        let mut over = crafted_room(&[
            configured(2, None),
            started(),
            joined(1),
            joined(2),
            joined(3),
        ]);
        for n in 1..=3 {
            bridged(&mut over, n);
        }
        let v = room_violations(&over);
        assert!(
            v.iter().any(|s| s.contains("3 members in a room for 2")),
            "{v:?}"
        );

        room.gone.insert(leg(2));
        let v = room_violations(&room);
        assert!(
            v.iter().any(|s| s.contains("was kicked but is present")),
            "{v:?}"
        );

        room.gone.clear();
        room.present = -1;
        assert!(
            room_violations(&room)
                .iter()
                .any(|s| s.contains("-1 present"))
        );
        room.present = 1;
        assert!(
            room_violations(&room)
                .iter()
                .any(|s| s.contains("events say 1"))
        );

        room.present = 2;
        room.connected.remove(&leg(2));
        let v = room_violations(&room);
        assert!(v.iter().any(|s| s.contains("is not bridged")), "{v:?}");
    }

    #[test]
    fn the_admission_checker_catches_a_wrong_pin_a_lock_and_a_full_room() {
        let attempt = |pin: Option<&str>| JoinAttempt {
            room: 0,
            user: 0,
            call: call(9),
            leg: leg(9),
            pin: pin.map(str::to_owned),
            admin: false,
            muted: false,
            invited: false,
            attempt: 1,
        };
        let none = BTreeSet::new();
        let party = Party::default();
        let room = crafted_room(&[configured(2, Some("1234")), started(), joined(1)]);
        let state = &room.instance.state;
        let right = attempt(Some("1234"));
        let wrong = attempt(Some("9999"));
        assert_eq!(
            admission_violation(state, &right, &party, &none, Admission::Admitted),
            None
        );
        assert_eq!(
            admission_violation(state, &wrong, &party, &none, Admission::WrongPin),
            None
        );
        let v = admission_violation(state, &wrong, &party, &none, Admission::Admitted);
        assert!(v.is_some_and(|s| s.contains("admitted with a wrong PIN")));
        let v = admission_violation(state, &right, &party, &none, Admission::Full);
        assert!(v.is_some_and(|s| s.contains("refused although admissible")));
        // An invited call skips the PIN.
        let invited = BTreeSet::from([call(9)]);
        assert_eq!(
            admission_violation(state, &wrong, &party, &invited, Admission::Admitted),
            None
        );

        let locked = crafted_room(&[
            configured(2, Some("1234")),
            started(),
            joined(1),
            ConferenceEvent::ConferenceLocked {
                conference: ConferenceId::parse("crafted").unwrap_or_else(|e| panic!("{e}")),
                by: None,
            },
        ]);
        let state = &locked.instance.state;
        let v = admission_violation(state, &right, &party, &none, Admission::Admitted);
        assert!(v.is_some_and(|s| s.contains("admitted while locked")));

        let full = crafted_room(&[configured(2, None), started(), joined(1), joined(2)]);
        let state = &full.instance.state;
        let v = admission_violation(state, &attempt(None), &party, &none, Admission::Admitted);
        assert!(v.is_some_and(|s| s.contains("admitted past the capacity")));
    }
}
