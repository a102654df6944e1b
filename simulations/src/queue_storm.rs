//! The queue storm: callers from a trunk arrive in waves (a Poisson process whose rate swings
//! between half and twice its mean, so the agents are overloaded at times) at one of several
//! queues with different strategies, wait with hold music, press keys, give up after a random
//! patience or hit the queue's maximum wait; agents with registered phones are rung as the
//! queues decide, answer, decline or let it ring out, talk, transfer, wrap up, pause with a
//! reason and unpause, log out and back in, place private calls and reboot their phones;
//! supervisors pause and unpause whole queues and change penalties. After the load stops, a
//! liveness phase lets everything drain.
//!
//! This module plays the part of the SIP edge and the process managers between the queue, call
//! and extension aggregates: each queue call is a `Call` whose caller leg waits unanswered while
//! a leg to the queue's media plays hold music as early media; a reservation becomes an `Agent`
//! leg forked beside it (never when the agent's phone is already busy, like Asterisk's
//! `ringinuse=no`), a withdrawn offer cancels that leg (487), the first agent to answer takes
//! the caller and the other forks are cancelled, and the call's end is reported back to the
//! queue. Extensions hear how their part in each call changed, and every change of an agent's
//! line is reported to each queue the agent is logged in to; a phone that goes offline logs
//! its agent out. Every aggregate's deadlines go through the world's agenda.
//!
//! Invariants checked after every step: no agent is in two queue calls at once (on the queue
//! side and on the call side); a paused or logged-out agent is never rung, and every ringing
//! agent leg is the queue's current offer; the queue's counters agree with its own events and
//! never take more out than came in (joined = left + present); positions have no gaps; every
//! caller a queue holds has a live call; each call ends at most once. After draining: every
//! call ended exactly once with the disposition its queue story implies, and every queue is
//! empty with no agent ringing, talking or wrapping up, no timer armed and joined = completed
//! + abandoned + timed out + emptied + left by key.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeDelta, Utc};
use engine::call::{Call, CallCommand, Leg, RingContact};
use engine::extension::{Extension, ExtensionCommand, RegisterContact, RouteDecision};
use engine::queue::{Activity, Queue, QueueCommand, QueueSettings};
use engine::{Aggregate, Deadline};
use events::ids::{
    AgentId, CallId, DepartmentId, DeviceContactId, ExtensionNumber, LegId, PhoneNumber, QueueId,
    StreamId, TenantId, TrunkId, UserId,
};
use events::model::{
    AgentLogoutReason, CallOrigin, CompletedBy, Direction, Disposition, ExtensionCallState,
    HangupCause, HangupSide, LegRole, LineState, Membership, Party, QueueEvent, QueueLeaveReason,
    QueueRejectReason, QueueStrategy, TransferMethod, Transport, UnregisterReason,
};
use rand::Rng;

use crate::edge::{call_violations, line_violation};
use crate::world::{self, Agenda, Instance, Limits, Report, Scenario, World, secs};

/// Parameters of a queue storm.
#[derive(Debug, Clone)]
pub struct QueueStorm {
    pub agents: u32,
    pub queues: u32,
    pub minutes: u32,
    /// Callers per hour over all queues, on average (default: 18 per agent). They come in
    /// waves: four minutes of every twelve at twice this rate, the rest at half of it.
    pub callers_per_hour: Option<u32>,
    /// Mean talk time of a call an agent answered, seconds.
    pub mean_talk_secs: f64,
    /// Mean time a waiting caller holds on before hanging up, seconds.
    pub mean_patience_secs: f64,
}

impl Default for QueueStorm {
    fn default() -> Self {
        Self {
            agents: 20,
            queues: 2,
            minutes: 60,
            callers_per_hour: None,
            mean_talk_secs: 150.0,
            mean_patience_secs: 90.0,
        }
    }
}

const STRATEGIES: [QueueStrategy; 4] = [
    QueueStrategy::RingAll,
    QueueStrategy::RoundRobin,
    QueueStrategy::LeastRecent,
    QueueStrategy::FewestCalls,
];

const QUEUE_NAMES: [&str; 8] = [
    "support", "sales", "billing", "returns", "tech", "claims", "orders", "vip",
];

const PAUSE_REASONS: [Option<&str>; 5] = [
    Some("break"),
    Some("lunch"),
    Some("coaching"),
    Some("after-call work"),
    None,
];

/// How long a safety net the call's own ring timer is for a queue call beyond the queue's wait.
const CALL_TIMER_GRACE_MINUTES: i64 = 10;
/// How long a waiting caller may hold at most (their patience is capped here).
const MAX_PATIENCE_SECS: f64 = 600.0;
/// Nested reactions deeper than this mean a loop between the aggregates and the edge.
const MAX_DEPTH: u32 = 100;

#[derive(Debug, Clone)]
enum Happening {
    // Generators: they reschedule themselves while the load is on.
    Arrival,
    Pause,
    PauseAll,
    LogOut,
    ChangePenalty,
    PrivateCall,
    Reboot,
    Refresh {
        ext: usize,
    },
    // What follows from what happened.
    Abandon {
        call: CallId,
    },
    PressKey {
        call: CallId,
        key: char,
    },
    AgentAnswers {
        queue: usize,
        agent: AgentId,
        call: CallId,
        leg: LegId,
    },
    AgentDeclines {
        queue: usize,
        agent: AgentId,
        call: CallId,
        leg: LegId,
    },
    Transfer {
        queue: usize,
        call: CallId,
        leg: LegId,
    },
    /// An operator's or back office phone answers.
    Answer {
        call: CallId,
        leg: LegId,
    },
    HangUp {
        call: CallId,
        leg: LegId,
    },
    Unpause {
        seat: usize,
        reason: Option<String>,
    },
    UnpauseAll {
        queue: usize,
    },
    LogIn {
        seat: usize,
        queue: usize,
    },
    EndWrapUpEarly {
        queue: usize,
        agent: AgentId,
    },
    Reregister {
        ext: usize,
    },
    CallDeadline {
        call: CallId,
        deadline: Box<Deadline<CallCommand>>,
    },
    ExtensionDeadline {
        ext: usize,
        deadline: Box<Deadline<ExtensionCommand>>,
    },
    QueueDeadline {
        queue: usize,
        deadline: Box<Deadline<QueueCommand>>,
    },
}

impl Happening {
    fn is_generator(&self) -> bool {
        matches!(
            self,
            Happening::Arrival
                | Happening::Pause
                | Happening::PauseAll
                | Happening::LogOut
                | Happening::ChangePenalty
                | Happening::PrivateCall
                | Happening::Reboot
                | Happening::Refresh { .. }
        )
    }
}

/// Rates of the generators, per second.
#[derive(Debug, Clone, Copy, Default)]
struct Rates {
    /// Callers per hour on average over the waves.
    callers_per_hour: u32,
    /// Arrivals are drawn at the peak rate and thinned to the rate of the moment.
    peak_arrivals: f64,
    pause: f64,
    pause_all: f64,
    log_out: f64,
    penalty: f64,
    private_call: f64,
    reboot: f64,
}

impl Rates {
    /// The rates for `agents` agents in `queues` queues.
    fn of(params: &QueueStorm, agents: usize, queues: usize) -> Self {
        let callers_per_hour = params
            .callers_per_hour
            .unwrap_or(u32::try_from(agents * 18).unwrap_or(u32::MAX))
            .max(1);
        let agents = f64::from(u32::try_from(agents).unwrap_or(u32::MAX));
        let queues = queues as f64;
        let hourly = |n: f64| n / 3600.0;
        Self {
            callers_per_hour,
            peak_arrivals: 2.0 * hourly(f64::from(callers_per_hour)),
            pause: hourly(3.0 * agents),
            pause_all: hourly(2.0 * queues),
            log_out: hourly(agents),
            penalty: hourly(0.5 * agents),
            private_call: hourly(1.5 * agents),
            reboot: hourly(0.3 * agents),
        }
    }
}

/// One provisioned extension.
#[derive(Debug)]
struct Ext {
    number: ExtensionNumber,
    /// The extension's stream, named once rather than for every command.
    stream: StreamId,
    instance: Instance<Extension>,
    party: Party,
}

/// One queue, with what its events told the edge so far.
#[derive(Debug)]
struct Desk {
    stream: StreamId,
    number: PhoneNumber,
    party: Party,
    /// The operator extension callers go to on timeout, full or empty.
    fallback: Option<usize>,
    exit_key: Option<char>,
    instance: Instance<Queue>,
    joined: u64,
    turned_away: u64,
    left: BTreeMap<&'static str, u64>,
    /// Per call: how often it joined and left.
    sessions: BTreeMap<CallId, (u32, u32)>,
    peak_waiting: u64,
}

/// An agent: a person at an extension, logged in to some queues.
#[derive(Debug)]
struct Seat {
    ext: usize,
    /// Queues the agent was logged out of because their phone went offline.
    device_out: Vec<usize>,
}

/// What happened to a queue caller, as far as the edge knows: it fixes the call's disposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Story {
    Waiting,
    TurnedAway(QueueRejectReason),
    Left(QueueLeaveReason),
    /// Sent to an operator (exit key, or the queue's fallback).
    Operator,
    /// The operator could not be rung.
    Unreachable,
}

impl Story {
    fn dispositions(self) -> &'static [Disposition] {
        use Disposition as D;
        match self {
            Story::Waiting => &[],
            Story::TurnedAway(QueueRejectReason::Full) => &[D::Busy],
            Story::TurnedAway(QueueRejectReason::Empty) => &[D::NoAnswer],
            Story::Left(QueueLeaveReason::Answered | QueueLeaveReason::Transfer) => &[D::Answered],
            Story::Left(QueueLeaveReason::Abandoned) => &[D::Cancelled],
            Story::Left(QueueLeaveReason::Timeout | QueueLeaveReason::Empty) => &[D::NoAnswer],
            // Nowhere to go for a key without an operator: the edge always has one.
            Story::Left(QueueLeaveReason::Key) => &[],
            Story::Operator => &[D::Answered, D::Cancelled],
            Story::Unreachable => &[D::Failed],
        }
    }
}

/// A call that came in for a queue.
#[derive(Debug, Clone)]
struct QueueCall {
    queue: usize,
    caller_leg: LegId,
    /// The leg to the queue's hold music, forked beside the agents' legs.
    media_leg: LegId,
    /// The call's own ring timer: a safety net well past the queue's maximum wait.
    safety: DateTime<Utc>,
    story: Story,
}

/// The legs ringing an agent for one queue call.
#[derive(Debug, Clone)]
struct Offer {
    call: CallId,
    legs: Vec<LegId>,
}

#[derive(Debug)]
struct Sim {
    world: World,
    agenda: Agenda<Happening>,
    tenant: TenantId,
    exts: Vec<Ext>,
    by_number: BTreeMap<ExtensionNumber, usize>,
    seats: Vec<Seat>,
    seat_of: BTreeMap<usize, usize>,
    operators: Vec<usize>,
    desks: Vec<Desk>,
    calls: BTreeMap<CallId, Instance<Call>>,
    /// Calls that have not ended.
    open: BTreeSet<CallId>,
    qcalls: BTreeMap<CallId, QueueCall>,
    /// Calls a queue holds (joined, not left), as its events said.
    in_queue: BTreeSet<CallId>,
    /// What each extension was last told about each call it is in.
    observed: BTreeMap<(CallId, usize), ExtensionCallState>,
    offers: BTreeMap<(usize, AgentId), Offer>,
    counters: BTreeMap<&'static str, u64>,
    mean_talk_secs: f64,
    mean_patience_secs: f64,
    supervisor: Option<UserId>,
    trunk: Option<TrunkId>,
    department: Option<DepartmentId>,
    depth: u32,
    rates: Rates,
}

fn reason_name(reason: QueueLeaveReason) -> &'static str {
    match reason {
        QueueLeaveReason::Answered => "answered",
        QueueLeaveReason::Transfer => "transfer",
        QueueLeaveReason::Abandoned => "abandoned",
        QueueLeaveReason::Timeout => "timeout",
        QueueLeaveReason::Empty => "empty",
        QueueLeaveReason::Key => "key",
    }
}

/// Runs a queue storm for `seed`, calling `progress(simulated seconds done, total)` now and then.
pub fn run_queue_storm(
    params: &QueueStorm,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Report {
    let mut sim = Sim::new(params, seed);
    let rates = sim.rates;
    for (what, rate) in [
        (Happening::Arrival, rates.peak_arrivals),
        (Happening::Pause, rates.pause),
        (Happening::PauseAll, rates.pause_all),
        (Happening::LogOut, rates.log_out),
        (Happening::ChangePenalty, rates.penalty),
        (Happening::PrivateCall, rates.private_call),
        (Happening::Reboot, rates.reboot),
    ] {
        sim.next_arrival(rate, what);
    }
    let limits = Limits {
        minutes: params.minutes,
        // Registrations lapse within the hour once phones stop refreshing.
        drain: TimeDelta::hours(2),
        steps: 400 * u64::from(rates.callers_per_hour) + 1_000_000,
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

    /// A timer disarmed since it was queued is not a happening, and the load stops at
    /// `load_ends`: neither moves the clock.
    fn dropped(&self, what: &Happening, at: DateTime<Utc>, load_ends: DateTime<Utc>) -> bool {
        !self.armed(what) || (what.is_generator() && at >= load_ends)
    }

    fn step(&mut self, what: Happening, _load_on: bool) {
        if what.is_generator() {
            self.generate(what);
        } else {
            self.handle(what);
        }
        self.check_step();
    }
}

impl Sim {
    fn new(params: &QueueStorm, seed: u64) -> Self {
        let tenant = TenantId::parse("sim").expect("\"sim\" is a valid tenant slug");
        let mut sim = Sim {
            world: World::new(seed, tenant.clone()),
            agenda: Agenda::default(),
            tenant,
            exts: Vec::new(),
            by_number: BTreeMap::new(),
            seats: Vec::new(),
            seat_of: BTreeMap::new(),
            operators: Vec::new(),
            desks: Vec::new(),
            calls: BTreeMap::new(),
            open: BTreeSet::new(),
            qcalls: BTreeMap::new(),
            in_queue: BTreeSet::new(),
            observed: BTreeMap::new(),
            offers: BTreeMap::new(),
            counters: BTreeMap::new(),
            mean_talk_secs: params.mean_talk_secs.max(1.0),
            mean_patience_secs: params.mean_patience_secs.max(1.0),
            supervisor: UserId::parse("supervisor").ok(),
            trunk: TrunkId::parse("pstn").ok(),
            department: DepartmentId::parse("support").ok(),
            depth: 0,
            rates: Rates::default(),
        };
        sim.provision(params.agents.max(1), params.queues.clamp(1, 8), seed);
        sim.rates = Rates::of(params, sim.seats.len(), sim.desks.len());
        sim
    }

    // ---- plumbing -------------------------------------------------------------------------

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> TimeDelta {
        self.world.uniform_secs(lo, hi.max(lo + 0.001))
    }

    fn pick(&mut self, n: usize) -> Option<usize> {
        (n > 0).then(|| self.world.rng.random_range(0..n))
    }

    fn after(&mut self, delay: TimeDelta, what: Happening) {
        let at = self.world.now + delay;
        self.agenda.at(at, what);
    }

    /// Runs a queue command: re-arms its deadlines, keeps the books on its events, checks the
    /// queue, then reacts to the events as the SIP edge would. `None` when refused.
    fn queue_command(&mut self, q: usize, command: QueueCommand) -> Option<Vec<QueueEvent>> {
        if self.depth > MAX_DEPTH {
            self.world
                .violation(format!("runaway reactions: dropped {command:?}"));
            return None;
        }
        let desk = &mut self.desks[q];
        let agenda = &mut self.agenda;
        let result = self
            .world
            .execute_arming(&desk.stream, &mut desk.instance, &command, |d| {
                let deadline = Box::new(d);
                agenda.at(deadline.at, Happening::QueueDeadline { queue: q, deadline });
            });
        let events = result.ok()?;
        for e in &events {
            self.track(q, e);
        }
        self.check_queue(q);
        self.depth += 1;
        for e in &events {
            self.react(q, e);
        }
        self.depth -= 1;
        Some(events)
    }

    /// Runs a call command, re-arms its deadlines, tells the queue when the call ended under
    /// a queue caller, reports progress to the extensions, checks. `true` when accepted.
    fn call_command(&mut self, call: CallId, command: CallCommand) -> bool {
        let stream = StreamId::call(call);
        let instance = self.calls.entry(call).or_default();
        let agenda = &mut self.agenda;
        let result = self.world.execute_arming(&stream, instance, &command, |d| {
            let deadline = Box::new(d);
            agenda.at(deadline.at, Happening::CallDeadline { call, deadline });
        });
        let changed = matches!(&result, Ok(events) if !events.is_empty());
        let ended = instance.state.is_ended();
        if changed {
            if ended {
                self.open.remove(&call);
            } else {
                self.open.insert(call);
            }
        }
        self.check_call(call);
        if changed {
            self.depth += 1;
            self.reconcile(call);
            self.observe(call);
            self.depth -= 1;
        }
        result.is_ok()
    }

    /// Runs an extension command, re-arms its deadlines, checks it, and reports a change of an
    /// agent's line to the queues.
    fn ext_command(&mut self, i: usize, command: ExtensionCommand) -> bool {
        let ext = &mut self.exts[i];
        let line_before = ext.instance.state.line_state();
        let agenda = &mut self.agenda;
        let result = self
            .world
            .execute_arming(&ext.stream, &mut ext.instance, &command, |d| {
                let deadline = Box::new(d);
                agenda.at(
                    deadline.at,
                    Happening::ExtensionDeadline { ext: i, deadline },
                );
            });
        let line_after = ext.instance.state.line_state();
        self.check_extension(i);
        if line_after != line_before
            && let Some(&seat) = self.seat_of.get(&i)
        {
            self.depth += 1;
            self.agent_line_changed(seat, line_before, line_after);
            self.depth -= 1;
        }
        result.is_ok()
    }

    /// Whether a queued happening still means something: a timer must still be armed.
    fn armed(&self, what: &Happening) -> bool {
        match what {
            Happening::CallDeadline { call, deadline } => self
                .calls
                .get(call)
                .is_some_and(|c| c.state.deadlines().contains(&**deadline)),
            Happening::ExtensionDeadline { ext, deadline } => self.exts[*ext]
                .instance
                .state
                .deadlines()
                .contains(&**deadline),
            Happening::QueueDeadline { queue, deadline } => self.desks[*queue]
                .instance
                .state
                .deadlines()
                .contains(&**deadline),
            _ => true,
        }
    }

    // ---- lookups ----------------------------------------------------------------------------

    fn leg(&self, call: CallId, leg: LegId) -> Option<&Leg> {
        self.calls.get(&call).and_then(|c| c.state.leg(leg))
    }

    fn leg_is_ringing(&self, call: CallId, leg: LegId) -> bool {
        self.leg(call, leg)
            .is_some_and(|l| l.ended.is_none() && l.answered_at.is_none())
    }

    fn leg_is_talking(&self, call: CallId, leg: LegId) -> bool {
        self.leg(call, leg)
            .is_some_and(|l| l.ended.is_none() && l.answered_at.is_some())
    }

    fn caller_leg(&self, call: CallId) -> Option<LegId> {
        self.calls.get(&call).and_then(|c| {
            c.state
                .legs()
                .iter()
                .find(|l| l.role == LegRole::Caller)
                .map(|l| l.id)
        })
    }

    fn seat_by_extension(&self, number: &ExtensionNumber) -> Option<usize> {
        self.by_number
            .get(number)
            .and_then(|i| self.seat_of.get(i))
            .copied()
    }

    /// The agent membership of `seat` in queue `q`, if logged in.
    fn membership(&self, q: usize, seat: usize) -> Option<AgentId> {
        let number = &self.exts[self.seats[seat].ext].number;
        self.desks[q]
            .instance
            .state
            .agents()
            .find(|(_, a)| &a.extension == number)
            .map(|(id, _)| id)
    }

    fn memberships(&self, seat: usize) -> Vec<(usize, AgentId)> {
        (0..self.desks.len())
            .filter_map(|q| self.membership(q, seat).map(|a| (q, a)))
            .collect()
    }

    fn activity(&self, q: usize, agent: AgentId) -> Option<Activity> {
        self.desks[q]
            .instance
            .state
            .agent(agent)
            .map(|a| a.activity.clone())
    }

    fn ring_timeout_secs(&self, q: usize) -> f64 {
        self.desks[q]
            .instance
            .state
            .settings()
            .map_or(15.0, |s| s.ring_timeout_ms as f64 / 1000.0)
    }

    // ---- setting up -----------------------------------------------------------------------

    fn add_extension(&mut self, number: &str, name: String) -> Option<usize> {
        let (Ok(ext), Ok(user)) = (ExtensionNumber::parse(number), UserId::parse(number)) else {
            return None;
        };
        let department = self.department.clone()?;
        let party = Party::internal(ext.clone(), user.clone(), department.clone(), name.clone());
        self.exts.push(Ext {
            number: ext.clone(),
            stream: StreamId::extension(&self.tenant, &ext),
            instance: Instance::default(),
            party,
        });
        let i = self.exts.len() - 1;
        self.by_number.insert(ext.clone(), i);
        self.ext_command(
            i,
            ExtensionCommand::Provision {
                extension: ext,
                user,
                display_name: name,
                department,
            },
        );
        self.register(i);
        let refresh = self.world.now + TimeDelta::seconds(3000);
        self.agenda.at(refresh, Happening::Refresh { ext: i });
        Some(i)
    }

    fn register(&mut self, i: usize) {
        let number = self.exts[i].number.to_string();
        let contact = DeviceContactId::from_uuid(self.world.uuid());
        self.ext_command(
            i,
            ExtensionCommand::Register(RegisterContact {
                contact,
                contact_uri: format!("sip:{number}@127.0.0.1:5060"),
                transport: Transport::Udp,
                source: "127.0.0.1:5060".into(),
                user_agent: Some("simulated phone".into()),
                expires_secs: 3600,
            }),
        );
    }

    fn provision(&mut self, agents: u32, queues: u32, seed: u64) {
        for k in 0..2 {
            let number = format!("{}", 20_000 + k);
            if let Some(i) = self.add_extension(&number, format!("Operator {k}")) {
                self.operators.push(i);
            }
        }
        for k in 0..agents {
            let number = format!("{}", 10_000 + k);
            if let Some(i) = self.add_extension(&number, format!("Agent {number}")) {
                self.seats.push(Seat {
                    ext: i,
                    device_out: Vec::new(),
                });
                self.seat_of.insert(i, self.seats.len() - 1);
            }
        }
        let rotation = (seed % 4) as usize;
        for k in 0..queues as usize {
            let name = QUEUE_NAMES[k % QUEUE_NAMES.len()];
            let number = format!("{}", 8_000 + k);
            let (Ok(id), Ok(extension), Ok(phone)) = (
                QueueId::parse(name),
                ExtensionNumber::parse(&number),
                PhoneNumber::parse(&number),
            ) else {
                continue;
            };
            let rng = &mut self.world.rng;
            let even = k.is_multiple_of(2);
            let ring_timeout_ms = rng.random_range(10..=20u64) * 1000;
            let max_wait_ms =
                (even || rng.random_bool(0.6)).then(|| rng.random_range(60..=180u64) * 1000);
            let max_callers = Some(rng.random_range(4..=10u32));
            let wrap_up_ms = [0, 5_000, 10_000, 15_000][rng.random_range(0..4usize)];
            let exit_key = if even {
                Some('0')
            } else {
                rng.random_bool(0.5).then_some('*')
            };
            let fallback = if even {
                self.operators.first().copied()
            } else {
                None
            };
            let settings = QueueSettings {
                name: name.to_string(),
                extension: extension.clone(),
                strategy: STRATEGIES[(rotation + k) % STRATEGIES.len()],
                ring_timeout_ms,
                max_wait_ms,
                max_callers,
                wrap_up_ms,
                join_empty: false,
                leave_when_empty: true,
                exit_key,
                fallback: fallback
                    .and_then(|i| PhoneNumber::parse(self.exts[i].number.as_str()).ok()),
                music_on_hold: Some("default".into()),
            };
            let party = Party {
                number: Some(phone.clone()),
                name: Some(name.to_string()),
                extension: Some(extension),
                ..Party::default()
            };
            self.desks.push(Desk {
                stream: StreamId::queue(&self.tenant, &id),
                number: phone,
                party,
                fallback,
                exit_key,
                instance: Instance::default(),
                joined: 0,
                turned_away: 0,
                left: BTreeMap::new(),
                sessions: BTreeMap::new(),
                peak_waiting: 0,
            });
            let q = self.desks.len() - 1;
            if self
                .queue_command(
                    q,
                    QueueCommand::Configure {
                        queue: id,
                        settings,
                    },
                )
                .is_none()
            {
                self.world
                    .violation(format!("queue {name} refused its settings"));
            }
        }
        // Each agent works their home queue; every third also helps in the next one, where
        // they are offered calls only when nobody better is free.
        let n = self.desks.len();
        for seat in 0..self.seats.len() {
            if n == 0 {
                break;
            }
            self.log_in(seat, seat % n, Membership::Static, 0);
            if seat.is_multiple_of(3) && n > 1 {
                self.log_in(seat, (seat + 1) % n, Membership::Static, 1);
            }
        }
    }

    fn log_in(&mut self, seat: usize, q: usize, membership: Membership, penalty: u32) {
        let ext = self.seats[seat].ext;
        if self.membership(q, seat).is_some() || self.exts[ext].instance.state.contacts().is_empty()
        {
            return;
        }
        let Some(user) = self.exts[ext].party.user.clone() else {
            return;
        };
        let agent = AgentId::from_uuid(self.world.uuid());
        let logged_in = self.queue_command(
            q,
            QueueCommand::LogIn {
                agent,
                user,
                extension: self.exts[ext].number.clone(),
                department: self.department.clone(),
                penalty,
                membership,
            },
        );
        if logged_in.is_some() {
            let line = self.exts[ext].instance.state.line_state();
            self.queue_command(q, QueueCommand::ObserveAgentLine { agent, line });
        }
    }

    // ---- the books ------------------------------------------------------------------------

    /// Keeps the edge's books on one queue event and counts it.
    fn track(&mut self, q: usize, event: &QueueEvent) {
        use QueueEvent as E;
        let what = match event {
            E::QueueCallerJoined { call, .. } => {
                let desk = &mut self.desks[q];
                desk.joined += 1;
                let s = desk.sessions.entry(*call).or_default();
                s.0 += 1;
                if s.0 > 1 {
                    self.world.violation(format!("call {call} joined twice"));
                }
                self.in_queue.insert(*call);
                "joined"
            }
            E::QueueCallerRejected { call, reason, .. } => {
                self.desks[q].turned_away += 1;
                if let Some(qc) = self.qcalls.get_mut(call) {
                    qc.story = Story::TurnedAway(*reason);
                }
                match reason {
                    QueueRejectReason::Full => "turned away: full",
                    QueueRejectReason::Empty => "turned away: no agents",
                }
            }
            E::QueueCallerLeft { call, reason, .. } => {
                let desk = &mut self.desks[q];
                *desk.left.entry(reason_name(*reason)).or_default() += 1;
                let s = desk.sessions.entry(*call).or_default();
                s.1 += 1;
                if *s != (1, 1) {
                    let (joined, left) = *s;
                    self.world.violation(format!(
                        "call {call} left queue {q} {left} times after joining {joined} times"
                    ));
                }
                self.in_queue.remove(call);
                if let Some(qc) = self.qcalls.get_mut(call) {
                    qc.story = Story::Left(*reason);
                }
                match reason {
                    QueueLeaveReason::Answered => "left after talking",
                    QueueLeaveReason::Transfer => "left by transfer",
                    QueueLeaveReason::Abandoned => "abandoned",
                    QueueLeaveReason::Timeout => "max-wait exits",
                    QueueLeaveReason::Empty => "left: no agents",
                    QueueLeaveReason::Key => "exit-key exits",
                }
            }
            E::AgentReserved { .. } => "offers",
            E::AgentRingNoAnswer { .. } => "ring no answer",
            E::AgentRingCancelled { .. } => "offers withdrawn",
            E::AgentConnected { .. } => "answered",
            E::AgentCompleted { ended_by, .. } => match ended_by {
                CompletedBy::Agent => "completed by agent",
                CompletedBy::Caller => "completed by caller",
                CompletedBy::Transfer => "transfers",
            },
            E::AgentPaused { .. } => "pauses",
            E::AgentUnpaused { .. } => "unpauses",
            E::AllAgentsPaused { .. } => "pause-all",
            E::AllAgentsUnpaused { .. } => "unpause-all",
            E::AgentLoggedIn { .. } => "logins",
            E::AgentLoggedOut { reason, .. } => match reason {
                AgentLogoutReason::DeviceUnavailable => "logouts: phone offline",
                _ => "logouts",
            },
            E::AgentWrapUpStarted { .. } => "wrap-ups",
            E::AgentWrapUpEnded { early: true, .. } => "wrap-ups ended early",
            E::AgentPenaltyChanged { .. } => "penalty changes",
            E::AgentLineChanged { .. } => "agent line changes",
            _ => return,
        };
        self.count(what);
    }

    // ---- the edge: reacting to the queue ----------------------------------------------------

    fn react(&mut self, q: usize, event: &QueueEvent) {
        use QueueEvent as E;
        match event {
            E::QueueCallerRejected { call, .. } => self.send_on(q, *call, false),
            E::QueueCallerLeft { call, reason, .. } => match reason {
                QueueLeaveReason::Timeout | QueueLeaveReason::Empty => {
                    self.send_on(q, *call, false);
                }
                QueueLeaveReason::Key => self.send_on(q, *call, true),
                // The call side did it already.
                QueueLeaveReason::Answered
                | QueueLeaveReason::Transfer
                | QueueLeaveReason::Abandoned => {}
            },
            E::AgentReserved { agent, call, .. } => self.ring_agent(q, *agent, *call),
            E::AgentRingNoAnswer { agent, call, .. }
            | E::AgentRingCancelled { agent, call, .. } => {
                self.withdraw(q, *agent, *call);
            }
            E::AgentConnected { agent, .. } => {
                self.offers.remove(&(q, *agent));
            }
            E::AgentWrapUpStarted { agent, until, .. } => {
                let left = (*until - self.world.now).num_milliseconds() as f64 / 1000.0;
                if left > 2.0 && self.world.chance(0.3) {
                    let early = self.uniform(1.0, left * 0.8);
                    self.after(
                        early,
                        Happening::EndWrapUpEarly {
                            queue: q,
                            agent: *agent,
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// A caller the queue let go of without an agent: to an operator (the exit key, or the
    /// queue's fallback), else the call ends with the queue's reason.
    fn send_on(&mut self, q: usize, call: CallId, key: bool) {
        if !self.open.contains(&call) {
            return;
        }
        let Some(qc) = self.qcalls.get(&call).cloned() else {
            return;
        };
        let operator = if key {
            self.desks[q].fallback.or(self.operators.first().copied())
        } else {
            self.desks[q].fallback
        };
        if let Some(op) = operator {
            self.ring_operator(call, &qc, op);
            return;
        }
        let (cause, status) = match qc.story {
            Story::TurnedAway(QueueRejectReason::Full) => (HangupCause::UserBusy, 486),
            Story::Left(QueueLeaveReason::Timeout) => (HangupCause::NoAnswer, 480),
            _ => (HangupCause::NoUserResponse, 480),
        };
        self.call_command(
            call,
            CallCommand::Terminate {
                cause,
                sip_status: Some(status),
            },
        );
    }

    /// Rings operator `op` for the caller and stops the hold music.
    fn ring_operator(&mut self, call: CallId, qc: &QueueCall, op: usize) {
        let Some(legs) = self.ring_extension(call, qc.caller_leg, op, LegRole::Forward) else {
            if let Some(c) = self.qcalls.get_mut(&call) {
                c.story = Story::Unreachable;
            }
            self.count("operator unreachable");
            self.call_command(
                call,
                CallCommand::Terminate {
                    cause: HangupCause::ServiceUnavailable,
                    sip_status: Some(503),
                },
            );
            return;
        };
        if let Some(c) = self.qcalls.get_mut(&call) {
            c.story = Story::Operator;
        }
        self.count("sent to an operator");
        self.ringing(call, &legs);
        // The hold music stops; the operator's leg keeps the caller's call up.
        if self.leg_is_ringing(call, qc.media_leg) {
            self.call_command(
                call,
                CallCommand::Reject {
                    leg: qc.media_leg,
                    status: 487,
                },
            );
        }
        self.answer_soon(call, legs[0]);
    }

    /// A new leg for each contact extension `i`'s routing would ring now; none when it would
    /// not ring.
    fn ring_legs(&mut self, i: usize) -> Vec<RingContact> {
        let contacts = match self.exts[i].instance.state.route_incoming(self.world.now) {
            RouteDecision::Ring(plan) => plan.contacts,
            _ => Vec::new(),
        };
        contacts
            .iter()
            .map(|c| RingContact {
                leg: LegId::from_uuid(self.world.uuid()),
                contact: Some(c.contact),
            })
            .collect()
    }

    /// Rings extension `i` for `call` from `parent` as `role` for up to 30 seconds: the legs
    /// rung, or `None` when it has no contact to ring or the call refused.
    fn ring_extension(
        &mut self,
        call: CallId,
        parent: LegId,
        i: usize,
        role: LegRole,
    ) -> Option<Vec<LegId>> {
        let legs = self.ring_legs(i);
        let rang = !legs.is_empty()
            && self.call_command(
                call,
                CallCommand::Ring {
                    parent,
                    callee: self.exts[i].party.clone(),
                    role,
                    contacts: legs.clone(),
                    ring_timeout: TimeDelta::seconds(30),
                    voicemail: None,
                },
            );
        rang.then(|| legs.iter().map(|l| l.leg).collect())
    }

    /// Each of `legs` reports ringing (180).
    fn ringing(&mut self, call: CallId, legs: &[LegId]) {
        for &leg in legs {
            self.call_command(call, CallCommand::Ringing { leg });
        }
    }

    /// The phone on `leg` answers two to eight seconds from now.
    fn answer_soon(&mut self, call: CallId, leg: LegId) {
        let delay = self.uniform(2.0, 8.0);
        self.after(delay, Happening::Answer { call, leg });
    }

    /// The queue reserved `agent` for `call`: ring their phone, unless the reservation is no
    /// longer current or the phone is busy already (`ringinuse=no`), which the queue is told.
    fn ring_agent(&mut self, q: usize, agent: AgentId, call: CallId) {
        let Some(a) = self.desks[q].instance.state.agent(agent).cloned() else {
            return;
        };
        if !matches!(a.activity, Activity::Offered { call: c, leg: None, .. } if c == call) {
            return;
        }
        if a.paused.is_some() {
            self.world.violation(format!(
                "queue {q} reserved agent {} while paused",
                a.extension
            ));
        }
        let Some(seat) = self.seat_by_extension(&a.extension) else {
            self.world
                .violation(format!("queue {q} reserved unknown agent {}", a.extension));
            self.queue_command(q, QueueCommand::RingNoAnswer { agent, call });
            return;
        };
        if !self.open.contains(&call) {
            // The call ended and the queue was not told yet: telling it withdraws the offer.
            self.reconcile(call);
            return;
        }
        let Some(qc) = self.qcalls.get(&call).cloned() else {
            return;
        };
        if !self.leg_is_ringing(call, qc.caller_leg) {
            // Another agent answered a moment ago; the queue hears of it next and withdraws
            // this reservation.
            return;
        }
        let ext = self.seats[seat].ext;
        if !self.exts[ext].instance.state.calls().is_empty() {
            self.count("busy agents skipped");
            let line = self.exts[ext].instance.state.line_state();
            self.queue_command(q, QueueCommand::ObserveAgentLine { agent, line });
            self.queue_command(q, QueueCommand::RingNoAnswer { agent, call });
            return;
        }
        let legs = self.ring_legs(ext);
        if legs.is_empty() {
            // Asterisk's autopause: a member that cannot be reached is paused for a while.
            self.count("unreachable agents");
            self.queue_command(q, QueueCommand::RingNoAnswer { agent, call });
            let reason = Some("unreachable".to_string());
            if self
                .queue_command(
                    q,
                    QueueCommand::Pause {
                        agent,
                        reason: reason.clone(),
                        by: None,
                    },
                )
                .is_some()
            {
                self.after(TimeDelta::seconds(60), Happening::Unpause { seat, reason });
            }
            return;
        }
        // An earlier offer's legs, if any are somehow still up, go first.
        if let Some(old) = self.offers.remove(&(q, agent)) {
            self.cancel_legs(old);
        }
        let ring_timeout = (qc.safety - self.world.now).max(TimeDelta::seconds(1));
        let rang = self.call_command(
            call,
            CallCommand::Ring {
                parent: qc.caller_leg,
                callee: self.exts[ext].party.clone(),
                role: LegRole::Agent,
                contacts: legs.clone(),
                ring_timeout,
                voicemail: None,
            },
        );
        if !rang {
            self.world.violation(format!(
                "call {call} refused to ring agent {} for queue {q}",
                a.extension
            ));
            self.queue_command(q, QueueCommand::RingNoAnswer { agent, call });
            return;
        }
        let ids: Vec<LegId> = legs.iter().map(|l| l.leg).collect();
        self.offers.insert(
            (q, agent),
            Offer {
                call,
                legs: ids.clone(),
            },
        );
        self.ringing(call, &ids);
        let leg = ids[0];
        if self
            .queue_command(q, QueueCommand::AgentRinging { agent, call, leg })
            .is_none()
        {
            self.withdraw(q, agent, call);
            return;
        }
        // The agent's phone: answers (sometimes too late), declines, or rings out.
        let ring_secs = self.ring_timeout_secs(q);
        let r: f64 = self.world.rng.random_range(0.0..1.0);
        if r < 0.72 {
            let delay = self.uniform(1.0, ring_secs * 1.25);
            self.after(
                delay,
                Happening::AgentAnswers {
                    queue: q,
                    agent,
                    call,
                    leg,
                },
            );
        } else if r < 0.82 {
            let delay = self.uniform(1.0, 4.0);
            self.after(
                delay,
                Happening::AgentDeclines {
                    queue: q,
                    agent,
                    call,
                    leg,
                },
            );
        } else {
            self.count("left to ring out");
        }
    }

    /// The queue withdrew the agent's offer (ring timeout, decline, pause, log-out, the caller
    /// left or another agent answered): cancel the legs still ringing. A withdrawal that a newer
    /// offer of the same agent overtook is stale and changes nothing.
    fn withdraw(&mut self, q: usize, agent: AgentId, call: CallId) {
        let Some(offer) = self.offers.get(&(q, agent)) else {
            return;
        };
        if offer.call != call {
            return;
        }
        let current = match self.activity(q, agent) {
            Some(Activity::Offered {
                call: c,
                leg: Some(l),
                ..
            }) if c == call => Some(l),
            _ => None,
        };
        if current.is_some_and(|l| offer.legs.contains(&l)) {
            return;
        }
        if let Some(offer) = self.offers.remove(&(q, agent)) {
            self.cancel_legs(offer);
        }
    }

    fn cancel_legs(&mut self, offer: Offer) {
        for leg in offer.legs {
            if self.leg_is_ringing(offer.call, leg) {
                self.call_command(offer.call, CallCommand::Reject { leg, status: 487 });
            }
        }
    }

    // ---- the edge: reacting to calls and lines ----------------------------------------------

    /// A queue call ended: the queue still holding its caller is told how.
    fn reconcile(&mut self, call: CallId) {
        let Some(qc) = self.qcalls.get(&call).cloned() else {
            return;
        };
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if !c.state.is_ended() {
            return;
        }
        let end = c.state.leg(qc.caller_leg).and_then(|l| l.ended);
        let Some(waiting) = self.desks[qc.queue]
            .instance
            .state
            .caller(call)
            .map(|c| c.is_waiting())
        else {
            return;
        };
        let side = end.map(|e| e.ended_by);
        let command = if waiting || side == Some(HangupSide::Party) {
            if side != Some(HangupSide::Party) {
                self.world.violation(format!(
                    "call {call} ended under its waiting caller: {end:?}"
                ));
            }
            QueueCommand::CallerHungUp { call }
        } else {
            if side != Some(HangupSide::Peer) {
                self.world.violation(format!(
                    "queue call {call} ended with neither party hanging up: {end:?}"
                ));
            }
            QueueCommand::Complete {
                call,
                by: CompletedBy::Agent,
            }
        };
        if self.queue_command(qc.queue, command.clone()).is_none() {
            self.world
                .violation(format!("queue {} refused {command:?}", qc.queue));
        }
    }

    /// The state each extension has in `call` now, one extension at a time until everything
    /// it was told is current (reactions may change the call on the way).
    fn observe(&mut self, call: CallId) {
        while let Some((i, state)) = self.next_observation(call) {
            if state == ExtensionCallState::Ended {
                self.observed.remove(&(call, i));
            } else {
                self.observed.insert((call, i), state);
            }
            self.ext_command(i, ExtensionCommand::CallLegStateObserved { call, state });
        }
    }

    fn next_observation(&self, call: CallId) -> Option<(usize, ExtensionCallState)> {
        let instance = self.calls.get(&call)?;
        let now_states = instance
            .state
            .extension_parts(|e| self.by_number.get(e).copied());
        now_states.into_iter().find(|(i, state)| {
            let told = self.observed.get(&(call, *i));
            match state {
                ExtensionCallState::Ended => told.is_some(),
                _ => told != Some(state),
            }
        })
    }

    /// An agent's line changed: every queue they are in hears of it; a phone gone offline
    /// logs them out, and its return logs them back in.
    fn agent_line_changed(&mut self, seat: usize, before: LineState, line: LineState) {
        let ext = self.seats[seat].ext;
        for (q, agent) in self.memberships(seat) {
            // Reactions to an earlier queue may have moved the line again (that queue rang
            // the agent): each queue hears the line as it is now.
            let line = self.exts[ext].instance.state.line_state();
            self.queue_command(q, QueueCommand::ObserveAgentLine { agent, line });
        }
        if line == LineState::Offline {
            for (q, agent) in self.memberships(seat) {
                let out = self.queue_command(
                    q,
                    QueueCommand::LogOut {
                        agent,
                        reason: AgentLogoutReason::DeviceUnavailable,
                    },
                );
                if out.is_some() {
                    self.seats[seat].device_out.push(q);
                }
            }
        } else if before == LineState::Offline {
            for q in std::mem::take(&mut self.seats[seat].device_out) {
                self.log_in(seat, q, Membership::Dynamic, 0);
            }
        }
    }

    // ---- happenings -----------------------------------------------------------------------

    fn generate(&mut self, what: Happening) {
        let rates = self.rates;
        let rate = match &what {
            Happening::Arrival => {
                // Thinning: drawn at the peak rate, kept at the rate of the moment.
                let minute = (self.world.now - crate::world::start_time()).num_minutes() % 12;
                let storm = (4..8).contains(&minute);
                if storm || self.world.chance(0.25) {
                    self.arrival();
                }
                rates.peak_arrivals
            }
            Happening::Pause => {
                self.pause();
                rates.pause
            }
            Happening::PauseAll => {
                self.pause_all();
                rates.pause_all
            }
            Happening::LogOut => {
                self.log_out();
                rates.log_out
            }
            Happening::ChangePenalty => {
                self.change_penalty();
                rates.penalty
            }
            Happening::PrivateCall => {
                self.private_call();
                rates.private_call
            }
            Happening::Reboot => {
                self.reboot();
                rates.reboot
            }
            Happening::Refresh { ext } => {
                self.refresh(*ext);
                self.after(TimeDelta::seconds(3000), what);
                return;
            }
            _ => return,
        };
        self.next_arrival(rate, what);
    }

    fn arrival(&mut self) {
        let Some(q) = self.pick(self.desks.len()) else {
            return;
        };
        self.count("callers");
        let call = CallId::from_uuid(self.world.uuid());
        let caller_leg = LegId::from_uuid(self.world.uuid());
        let media_leg = LegId::from_uuid(self.world.uuid());
        let number = format!("+1555{:07}", self.world.rng.random_range(0..10_000_000u32));
        let caller = Party {
            number: PhoneNumber::parse(&number).ok(),
            name: Some(format!("Caller {number}")),
            trunk: self.trunk.clone(),
            ..Party::default()
        };
        let callee = self.desks[q].party.clone();
        let offered = self.call_command(
            call,
            CallCommand::Offer {
                call,
                caller_leg,
                direction: Direction::Inbound,
                caller: caller.clone(),
                callee: callee.clone(),
                dialled: self.desks[q].number.clone(),
                origin: CallOrigin::Trunk,
                caller_contact: None,
                trunk: self.trunk.clone(),
                requested_by: None,
            },
        );
        if !offered {
            self.world
                .violation(format!("call {call} could not be offered"));
            return;
        }
        let max_wait = self.desks[q]
            .instance
            .state
            .settings()
            .and_then(|s| s.max_wait_ms)
            .map_or(TimeDelta::seconds(MAX_PATIENCE_SECS as i64), |ms| {
                TimeDelta::milliseconds(ms as i64)
            });
        let now = self.world.now;
        let safety = now + max_wait + TimeDelta::minutes(CALL_TIMER_GRACE_MINUTES);
        self.qcalls.insert(
            call,
            QueueCall {
                queue: q,
                caller_leg,
                media_leg,
                safety,
                story: Story::Waiting,
            },
        );
        // The queue's hold music, as early media on a leg of its own.
        let music = self.call_command(
            call,
            CallCommand::Ring {
                parent: caller_leg,
                callee,
                role: LegRole::Callee,
                contacts: vec![RingContact {
                    leg: media_leg,
                    contact: None,
                }],
                ring_timeout: safety - now,
                voicemail: None,
            },
        );
        if !music || !self.call_command(call, CallCommand::EarlyMedia { leg: media_leg }) {
            self.world
                .violation(format!("call {call}: no hold music for the queue"));
        }
        let patience =
            -self.world.rng.random_range(f64::EPSILON..1.0f64).ln() * self.mean_patience_secs;
        let patience = patience.clamp(3.0, MAX_PATIENCE_SECS);
        self.after(secs(patience), Happening::Abandon { call });
        if self.world.chance(0.15) {
            let exit_key = self.desks[q].exit_key;
            let key = match exit_key {
                Some(k) if self.world.chance(0.7) => k,
                _ => '5',
            };
            let when = self.uniform(2.0, patience);
            self.after(when, Happening::PressKey { call, key });
        }
        if self
            .queue_command(
                q,
                QueueCommand::Join {
                    call,
                    leg: caller_leg,
                    caller,
                },
            )
            .is_none()
        {
            self.world
                .violation(format!("queue {q} refused call {call}"));
            self.call_command(
                call,
                CallCommand::Terminate {
                    cause: HangupCause::TemporaryFailure,
                    sip_status: Some(503),
                },
            );
        }
    }

    fn handle(&mut self, what: Happening) {
        match what {
            Happening::Abandon { call } => {
                let Some(leg) = self.qcalls.get(&call).map(|qc| qc.caller_leg) else {
                    return;
                };
                if self.leg_is_ringing(call, leg) {
                    self.count("callers hung up before an answer");
                    self.call_command(call, CallCommand::HangUp { leg, cause: None });
                }
            }
            Happening::PressKey { call, key } => {
                let Some(q) = self.qcalls.get(&call).map(|qc| qc.queue) else {
                    return;
                };
                let waiting = self.desks[q]
                    .instance
                    .state
                    .caller(call)
                    .is_some_and(|c| c.is_waiting());
                if waiting {
                    self.count("keys pressed");
                    self.queue_command(q, QueueCommand::PressKey { call, key });
                }
            }
            Happening::AgentAnswers {
                queue,
                agent,
                call,
                leg,
            } => self.agent_answers(queue, agent, call, leg),
            Happening::AgentDeclines {
                queue,
                agent,
                call,
                leg,
            } => {
                if !self.leg_is_ringing(call, leg) {
                    return;
                }
                self.count("declined by phone");
                self.call_command(call, CallCommand::Reject { leg, status: 486 });
                let still_offered = matches!(
                    self.activity(queue, agent),
                    Some(Activity::Offered { call: c, leg: Some(l), .. }) if c == call && l == leg
                );
                if still_offered {
                    self.queue_command(queue, QueueCommand::RingNoAnswer { agent, call });
                }
            }
            Happening::Transfer { queue, call, leg } => self.transfer(queue, call, leg),
            Happening::Answer { call, leg } => {
                if self.leg_is_ringing(call, leg)
                    && self.call_command(call, CallCommand::Answer { leg })
                {
                    let talk = self.world.exp_delay(2.0 / self.mean_talk_secs);
                    let ender = match self.caller_leg(call) {
                        Some(c) if self.world.chance(0.5) => c,
                        _ => leg,
                    };
                    self.after(talk, Happening::HangUp { call, leg: ender });
                }
            }
            Happening::HangUp { call, leg } => {
                if self.leg_is_talking(call, leg) {
                    self.call_command(call, CallCommand::HangUp { leg, cause: None });
                }
            }
            Happening::Unpause { seat, reason } => {
                for (q, agent) in self.memberships(seat) {
                    let mine = self.desks[q]
                        .instance
                        .state
                        .agent(agent)
                        .is_some_and(|a| a.paused.as_ref() == Some(&reason));
                    if mine {
                        self.queue_command(q, QueueCommand::Unpause { agent, by: None });
                    }
                }
            }
            Happening::UnpauseAll { queue } => {
                let by = self.supervisor.clone();
                self.queue_command(queue, QueueCommand::UnpauseAll { by });
            }
            Happening::LogIn { seat, queue } => {
                let penalty = self.world.rng.random_range(0..=2u32);
                self.log_in(seat, queue, Membership::Dynamic, penalty);
            }
            Happening::EndWrapUpEarly { queue, agent } => {
                if matches!(self.activity(queue, agent), Some(Activity::WrapUp { .. })) {
                    self.queue_command(queue, QueueCommand::EndWrapUp { agent });
                }
            }
            Happening::Reregister { ext } => {
                if self.exts[ext].instance.state.contacts().is_empty() {
                    self.register(ext);
                }
            }
            Happening::CallDeadline { call, deadline } => {
                if deadline.at <= self.world.now {
                    self.count("call ring timeouts");
                    self.call_command(call, deadline.command);
                }
            }
            Happening::ExtensionDeadline { ext, deadline } => {
                if deadline.at <= self.world.now {
                    self.ext_command(ext, deadline.command);
                }
            }
            Happening::QueueDeadline { queue, deadline } => {
                if deadline.at <= self.world.now {
                    self.queue_command(queue, deadline.command);
                }
            }
            Happening::Arrival
            | Happening::Pause
            | Happening::PauseAll
            | Happening::LogOut
            | Happening::ChangePenalty
            | Happening::PrivateCall
            | Happening::Reboot
            | Happening::Refresh { .. } => {}
        }
    }

    /// The agent's phone answered: the call first (200 OK), then the queue.
    fn agent_answers(&mut self, q: usize, agent: AgentId, call: CallId, leg: LegId) {
        let offered = matches!(
            self.activity(q, agent),
            Some(Activity::Offered { call: c, leg: Some(l), .. }) if c == call && l == leg
        );
        if !offered || !self.leg_is_ringing(call, leg) {
            self.count("answers too late");
            return;
        }
        if !self.call_command(call, CallCommand::Answer { leg }) {
            self.count("answers too late");
            return;
        }
        if self
            .queue_command(q, QueueCommand::AgentAnswered { agent, call })
            .is_none()
        {
            self.world.violation(format!(
                "queue {q} refused the answer of agent {agent} on call {call}"
            ));
            self.call_command(call, CallCommand::HangUp { leg, cause: None });
            return;
        }
        let talk = self.world.exp_delay(1.0 / self.mean_talk_secs);
        let talk = talk.clamp(TimeDelta::seconds(5), TimeDelta::minutes(30));
        if self.world.chance(0.08) {
            self.after(
                talk / 2,
                Happening::Transfer {
                    queue: q,
                    call,
                    leg,
                },
            );
        } else {
            let ender = match self.qcalls.get(&call).map(|qc| qc.caller_leg) {
                Some(c) if self.world.chance(0.5) => c,
                _ => leg,
            };
            self.after(talk, Happening::HangUp { call, leg: ender });
        }
    }

    /// The agent blind-transfers the caller to an operator; the queue call is complete.
    fn transfer(&mut self, q: usize, call: CallId, leg: LegId) {
        if !self.leg_is_talking(call, leg) {
            return;
        }
        let Some(op) = self.pick(self.operators.len()).map(|k| self.operators[k]) else {
            return;
        };
        let (Ok(target), Some(caller_leg)) = (
            PhoneNumber::parse(self.exts[op].number.as_str()),
            self.qcalls.get(&call).map(|qc| qc.caller_leg),
        ) else {
            return;
        };
        let transferred = self.call_command(
            call,
            CallCommand::BlindTransfer {
                transferer_leg: leg,
                target,
                method: TransferMethod::SipRefer,
            },
        );
        if !transferred {
            self.call_command(call, CallCommand::HangUp { leg, cause: None });
            return;
        }
        let completed = self.queue_command(
            q,
            QueueCommand::Complete {
                call,
                by: CompletedBy::Transfer,
            },
        );
        if completed.is_none() {
            self.world
                .violation(format!("queue {q} refused the transfer of call {call}"));
        }
        let Some(legs) = self.ring_extension(call, caller_leg, op, LegRole::Callee) else {
            self.call_command(
                call,
                CallCommand::HangUp {
                    leg: caller_leg,
                    cause: None,
                },
            );
            return;
        };
        self.ringing(call, &legs);
        self.answer_soon(call, legs[0]);
    }

    fn random_membership(&mut self) -> Option<(usize, usize, AgentId)> {
        let seat = self.pick(self.seats.len())?;
        let all = self.memberships(seat);
        let k = self.pick(all.len())?;
        let (q, agent) = all[k];
        Some((seat, q, agent))
    }

    fn pause(&mut self) {
        let Some(seat) = self.pick(self.seats.len()) else {
            return;
        };
        let k = self.world.rng.random_range(0..PAUSE_REASONS.len());
        let reason = PAUSE_REASONS[k].map(str::to_string);
        let mut paused = false;
        for (q, agent) in self.memberships(seat) {
            let free = self.desks[q]
                .instance
                .state
                .agent(agent)
                .is_some_and(|a| a.paused.is_none());
            if free {
                let command = QueueCommand::Pause {
                    agent,
                    reason: reason.clone(),
                    by: None,
                };
                paused |= self.queue_command(q, command).is_some();
            }
        }
        if paused {
            let back = self.uniform(30.0, 300.0);
            self.after(back, Happening::Unpause { seat, reason });
        }
    }

    fn pause_all(&mut self) {
        let Some(q) = self.pick(self.desks.len()) else {
            return;
        };
        let command = QueueCommand::PauseAll {
            reason: Some("team huddle".into()),
            by: self.supervisor.clone(),
        };
        if self
            .queue_command(q, command)
            .is_some_and(|events| !events.is_empty())
        {
            let back = self.uniform(30.0, 120.0);
            self.after(back, Happening::UnpauseAll { queue: q });
        }
    }

    fn log_out(&mut self) {
        let Some((seat, q, agent)) = self.random_membership() else {
            return;
        };
        if matches!(self.activity(q, agent), Some(Activity::Connected { .. })) {
            // Refused by the queue: the agent is talking to a queue caller.
            self.count("logouts refused during a call");
        }
        let out = self.queue_command(
            q,
            QueueCommand::LogOut {
                agent,
                reason: AgentLogoutReason::Requested,
            },
        );
        if out.is_some() {
            let back = self.uniform(60.0, 600.0);
            self.after(back, Happening::LogIn { seat, queue: q });
        }
    }

    fn change_penalty(&mut self) {
        let Some((_, q, agent)) = self.random_membership() else {
            return;
        };
        let penalty = self.world.rng.random_range(0..=2u32);
        let by = self.supervisor.clone();
        self.queue_command(q, QueueCommand::SetPenalty { agent, penalty, by });
    }

    /// An idle agent calls an operator (not a queue call: their line is busy meanwhile).
    fn private_call(&mut self) {
        let Some(seat) = self.pick(self.seats.len()) else {
            return;
        };
        let Some(op) = self.pick(self.operators.len()).map(|k| self.operators[k]) else {
            return;
        };
        let ext = self.seats[seat].ext;
        let state = &self.exts[ext].instance.state;
        if !state.calls().is_empty() || state.contacts().is_empty() {
            return;
        }
        let caller_contact = state.contacts().keys().next().copied();
        let Ok(dialled) = PhoneNumber::parse(self.exts[op].number.as_str()) else {
            return;
        };
        self.count("private calls");
        let call = CallId::from_uuid(self.world.uuid());
        let caller_leg = LegId::from_uuid(self.world.uuid());
        let offered = self.call_command(
            call,
            CallCommand::Offer {
                call,
                caller_leg,
                direction: Direction::Internal,
                caller: self.exts[ext].party.clone(),
                callee: self.exts[op].party.clone(),
                dialled,
                origin: CallOrigin::Device,
                caller_contact,
                trunk: None,
                requested_by: None,
            },
        );
        if !offered {
            return;
        }
        let Some(legs) = self.ring_extension(call, caller_leg, op, LegRole::Callee) else {
            self.call_command(
                call,
                CallCommand::Terminate {
                    cause: HangupCause::UserBusy,
                    sip_status: Some(486),
                },
            );
            return;
        };
        self.ringing(call, &legs);
        self.answer_soon(call, legs[0]);
    }

    /// An idle agent's phone reboots: it unregisters and comes back a little later.
    fn reboot(&mut self) {
        let Some(seat) = self.pick(self.seats.len()) else {
            return;
        };
        let ext = self.seats[seat].ext;
        let state = &self.exts[ext].instance.state;
        if !state.calls().is_empty() {
            return;
        }
        let Some(contact) = state.contacts().keys().next().copied() else {
            return;
        };
        self.count("phone reboots");
        self.ext_command(
            ext,
            ExtensionCommand::Unregister {
                contact,
                reason: UnregisterReason::Requested,
            },
        );
        let back = self.uniform(20.0, 90.0);
        self.after(back, Happening::Reregister { ext });
    }

    fn refresh(&mut self, ext: usize) {
        let Some(uri) = self.exts[ext]
            .instance
            .state
            .contacts()
            .values()
            .next()
            .map(|c| c.contact_uri.clone())
        else {
            return;
        };
        self.ext_command(
            ext,
            ExtensionCommand::Register(RegisterContact {
                contact: DeviceContactId::from_uuid(self.world.uuid()),
                contact_uri: uri,
                transport: Transport::Udp,
                source: "127.0.0.1:5060".into(),
                user_agent: Some("simulated phone".into()),
                expires_secs: 3600,
            }),
        );
    }

    // ---- invariants -----------------------------------------------------------------------

    /// The queue agrees with itself and with the books kept on its events.
    fn check_queue(&mut self, q: usize) {
        let mut problems = Vec::new();
        let desk = &self.desks[q];
        let s = &desk.instance.state;
        let waiting = s.waiting();
        let positions: Vec<u32> = waiting.iter().map(|(_, c)| c.position).collect();
        let expected: Vec<u32> = (1..=positions.len() as u32).collect();
        if positions != expected {
            problems.push(format!("queue {q}: waiting positions {positions:?}"));
        }
        let present = (waiting.len() + s.talking()) as u64;
        let left: u64 = desk.left.values().sum();
        let by = |name: &str| desk.left.get(name).copied().unwrap_or(0);
        if left > desk.joined {
            problems.push(format!(
                "queue {q}: {left} callers left but only {} joined",
                desk.joined
            ));
        }
        if desk.joined != left + present {
            problems.push(format!(
                "queue {q}: joined {} != left {left} + present {present}",
                desk.joined
            ));
        }
        let counters = [
            ("completed", s.completed(), by("answered") + by("transfer")),
            ("abandoned", s.abandoned(), by("abandoned")),
            (
                "timed out",
                s.left_with(QueueLeaveReason::Timeout),
                by("timeout"),
            ),
            ("emptied", s.left_with(QueueLeaveReason::Empty), by("empty")),
            ("left by key", s.left_with(QueueLeaveReason::Key), by("key")),
            ("turned away", s.rejected(), desk.turned_away),
        ];
        for (name, counted, from_events) in counters {
            if counted != from_events {
                problems.push(format!(
                    "queue {q}: {name} counter {counted} but its events say {from_events}"
                ));
            }
        }
        let mut taken = 0;
        let mut connected = 0;
        for (id, a) in s.agents() {
            taken += a.calls_taken;
            match &a.activity {
                Activity::Offered { call, .. } => {
                    if a.paused.is_some() {
                        problems.push(format!(
                            "queue {q}: paused agent {} is offered {call}",
                            a.extension
                        ));
                    }
                    if !s.caller(*call).is_some_and(|c| c.is_waiting()) {
                        problems.push(format!(
                            "queue {q}: agent {} is offered {call}, which is not waiting",
                            a.extension
                        ));
                    }
                }
                Activity::Connected { call } => {
                    connected += 1;
                    let with = s
                        .caller(*call)
                        .and_then(|c| c.connected.as_ref())
                        .map(|c| c.agent);
                    if with != Some(id) {
                        problems.push(format!(
                            "queue {q}: agent {} is connected to {call}, which is with {with:?}",
                            a.extension
                        ));
                    }
                }
                Activity::Idle | Activity::WrapUp { .. } => {}
            }
        }
        if connected != s.talking() {
            problems.push(format!(
                "queue {q}: {} callers talking but {connected} agents connected",
                s.talking()
            ));
        }
        if taken > s.completed() {
            problems.push(format!(
                "queue {q}: agents took {taken} calls but only {} completed",
                s.completed()
            ));
        }
        let waiting_now = waiting.len() as u64;
        if waiting_now > self.desks[q].peak_waiting {
            self.desks[q].peak_waiting = waiting_now;
        }
        for p in problems {
            self.world.violation(p);
        }
    }

    /// Across aggregates, once a step has settled.
    fn check_step(&mut self) {
        let mut problems = Vec::new();
        // Queue side: an agent is offered or connected to one queue call at most, and every
        // reservation was turned into a ring.
        let mut queue_calls: BTreeMap<usize, Vec<(usize, CallId)>> = BTreeMap::new();
        for (q, desk) in self.desks.iter().enumerate() {
            for (_, a) in desk.instance.state.agents() {
                let Some(seat) = self.seat_by_extension(&a.extension) else {
                    problems.push(format!("queue {q}: unknown agent {}", a.extension));
                    continue;
                };
                match &a.activity {
                    Activity::Offered {
                        call, leg: None, ..
                    } => problems.push(format!(
                        "queue {q}: agent {} was reserved for {call} but never rung",
                        a.extension
                    )),
                    Activity::Offered { call, .. } | Activity::Connected { call } => {
                        queue_calls.entry(seat).or_default().push((q, *call));
                    }
                    Activity::Idle | Activity::WrapUp { .. } => {}
                }
            }
        }
        for (seat, calls) in &queue_calls {
            if calls.len() > 1 {
                let ext = &self.exts[self.seats[*seat].ext].number;
                problems.push(format!(
                    "agent {ext} is in {} queue calls at once: {calls:?}",
                    calls.len()
                ));
            }
        }
        // Every caller a queue holds has a live call, answered exactly when connected.
        for (q, desk) in self.desks.iter().enumerate() {
            let s = &desk.instance.state;
            let held = self
                .in_queue
                .iter()
                .filter(|c| self.qcalls.get(c).is_some_and(|qc| qc.queue == q))
                .count();
            if held != s.waiting().len() + s.talking() {
                problems.push(format!(
                    "queue {q}: its events say {held} callers are in it, its state {}",
                    s.waiting().len() + s.talking()
                ));
            }
        }
        for call in &self.in_queue {
            let Some(qc) = self.qcalls.get(call) else {
                problems.push(format!("call {call} is in a queue but never came in"));
                continue;
            };
            let Some(caller) = self.desks[qc.queue].instance.state.caller(*call) else {
                problems.push(format!("call {call}: queue {} lost it", qc.queue));
                continue;
            };
            let leg = self.leg(*call, qc.caller_leg);
            let ok = match leg {
                Some(l) if l.ended.is_none() => l.answered_at.is_some() != caller.is_waiting(),
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "call {call}: queue {} holds it (waiting: {}) but its caller leg is {:?}",
                    qc.queue,
                    caller.is_waiting(),
                    leg.map(|l| (l.progress, l.ended.map(|e| e.cause)))
                ));
            }
        }
        // Call side: every live agent leg is the current offer (or connection) of an agent who
        // is logged in to the call's queue and not paused, and no agent has two.
        let mut agent_legs: BTreeMap<usize, Vec<CallId>> = BTreeMap::new();
        for call in &self.open {
            let Some(c) = self.calls.get(call) else {
                continue;
            };
            let queue = self.qcalls.get(call).map(|qc| qc.queue);
            for leg in c.state.legs() {
                if leg.role != LegRole::Agent || leg.ended.is_some() {
                    continue;
                }
                let ext = leg.party.extension.clone();
                let Some(seat) = ext.as_ref().and_then(|e| self.seat_by_extension(e)) else {
                    problems.push(format!("call {call}: an agent leg to nobody we know"));
                    continue;
                };
                agent_legs.entry(seat).or_default().push(*call);
                let ext = &self.exts[self.seats[seat].ext].number;
                let Some((q, agent)) = queue.and_then(|q| self.membership(q, seat).map(|a| (q, a)))
                else {
                    problems.push(format!(
                        "agent {ext} is rung for {call} but is not logged in to its queue"
                    ));
                    continue;
                };
                let Some(a) = self.desks[q].instance.state.agent(agent) else {
                    continue;
                };
                if leg.answered_at.is_some() {
                    if a.activity != (Activity::Connected { call: *call }) {
                        problems.push(format!(
                            "agent {ext} talks on {call} but queue {q} has them {:?}",
                            a.activity
                        ));
                    }
                    continue;
                }
                if a.paused.is_some() {
                    problems.push(format!("paused agent {ext} is rung for {call}"));
                }
                let offered = matches!(a.activity, Activity::Offered { call: c, leg: Some(_), .. } if c == *call)
                    && self
                        .offers
                        .get(&(q, agent))
                        .is_some_and(|o| o.call == *call && o.legs.contains(&leg.id));
                if !offered {
                    problems.push(format!(
                        "agent {ext} is rung for {call} without an offer from queue {q} ({:?})",
                        a.activity
                    ));
                }
            }
        }
        for (seat, calls) in agent_legs {
            if calls.len() > 1 {
                let ext = &self.exts[self.seats[seat].ext].number;
                problems.push(format!(
                    "agent {ext} has legs in {} calls at once: {calls:?}",
                    calls.len()
                ));
            }
        }
        for p in problems {
            self.world.violation(p);
        }
    }

    fn check_extension(&mut self, i: usize) {
        let ext = &self.exts[i];
        if let Some(v) = line_violation(&ext.number, &ext.instance.state) {
            self.world.violation(v);
        }
    }

    fn check_call(&mut self, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        for v in call_violations(call, &c.state) {
            self.world.violation(v);
        }
    }

    /// The liveness verdict: the agenda ran dry, so everything must have drained.
    fn check_drained(&mut self) {
        let mut problems = Vec::new();
        for (call, c) in &self.calls {
            let s = &c.state;
            if !s.is_ended() || !s.ended_exactly_once() {
                let legs: Vec<String> = s
                    .legs()
                    .iter()
                    .map(|l| format!("{:?} {:?}", l.role, l.progress))
                    .collect();
                problems.push(format!(
                    "call {call} did not end exactly once after draining: legs [{}]",
                    legs.join(", ")
                ));
                continue;
            }
            let Some(qc) = self.qcalls.get(call) else {
                continue;
            };
            let disposition = s.summary().map(|e| e.disposition);
            let allowed = qc.story.dispositions();
            if !disposition.is_some_and(|d| allowed.contains(&d)) {
                problems.push(format!(
                    "call {call} ended {disposition:?} but its queue story is {:?}",
                    qc.story
                ));
            }
        }
        for (q, desk) in self.desks.iter().enumerate() {
            let s = &desk.instance.state;
            if !s.waiting().is_empty() || s.talking() > 0 {
                problems.push(format!(
                    "queue {q}: {} callers still waiting and {} talking after draining",
                    s.waiting().len(),
                    s.talking()
                ));
            }
            for (_, a) in s.agents() {
                if a.activity != Activity::Idle {
                    problems.push(format!(
                        "queue {q}: agent {} is still {:?} after draining",
                        a.extension, a.activity
                    ));
                }
            }
            if !s.deadlines().is_empty() {
                problems.push(format!(
                    "queue {q}: timers still armed after draining: {:?}",
                    s.deadlines()
                ));
            }
            let exits = s.completed()
                + s.abandoned()
                + s.left_with(QueueLeaveReason::Timeout)
                + s.left_with(QueueLeaveReason::Empty)
                + s.left_with(QueueLeaveReason::Key);
            if exits != desk.joined {
                problems.push(format!(
                    "queue {q}: {} joined but completed + abandoned + timed out + emptied + \
                     left by key = {exits}",
                    desk.joined
                ));
            }
        }
        if !self.offers.is_empty() {
            problems.push(format!(
                "offers still open after draining: {:?}",
                self.offers.keys().collect::<Vec<_>>()
            ));
        }
        for ext in &self.exts {
            if !ext.instance.state.calls().is_empty() {
                problems.push(format!("{} is still in a call after draining", ext.number));
            }
        }
        for p in problems {
            self.world.violation(p);
        }
    }

    fn finish(mut self, params: &QueueStorm, seed: u64) -> Report {
        self.check_drained();
        self.counters.insert("calls", self.calls.len() as u64);
        let peak = self.desks.iter().map(|d| d.peak_waiting).max().unwrap_or(0);
        self.counters.insert("peak callers waiting", peak);
        let strategies: Vec<String> = self
            .desks
            .iter()
            .filter_map(|d| d.instance.state.settings())
            .map(|s| format!("{:?}", s.strategy))
            .collect();
        let scenario = format!(
            "queue-storm: {} agents, {} queues ({}), {} minutes",
            self.seats.len(),
            self.desks.len(),
            strategies.join(", "),
            params.minutes
        );
        self.world.into_report(scenario, seed, self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::model::CallEvent;

    fn small() -> QueueStorm {
        QueueStorm {
            agents: 5,
            queues: 2,
            minutes: 8,
            callers_per_hour: Some(200),
            mean_talk_secs: 60.0,
            mean_patience_secs: 60.0,
        }
    }

    fn queue_id(sim: &Sim, q: usize) -> QueueId {
        sim.desks[q]
            .instance
            .state
            .id()
            .cloned()
            .unwrap_or_else(|| panic!("queue {q} is configured"))
    }

    fn agent_of(sim: &Sim, q: usize, seat: usize) -> AgentId {
        sim.membership(q, seat)
            .unwrap_or_else(|| panic!("seat {seat} is logged in to queue {q}"))
    }

    fn assert_caught(violations: &[String], what: &str) {
        assert!(
            violations.iter().any(|v| v.contains(what)),
            "expected a violation about {what:?}, got {violations:#?}"
        );
    }

    #[test]
    fn the_same_seed_gives_a_byte_identical_log() {
        let a = run_queue_storm(&small(), 42, &mut |_, _| {});
        let b = run_queue_storm(&small(), 42, &mut |_, _| {});
        assert_eq!(a.log_sha256, b.log_sha256);
        assert_eq!(a, b);
        let c = run_queue_storm(&small(), 43, &mut |_, _| {});
        assert_ne!(a.log_sha256, c.log_sha256, "another seed, another day");
        assert!(a.violations.is_empty(), "{:#?}", a.violations);
        assert!(a.scenario.starts_with("queue-storm"), "{}", a.scenario);
        assert!(a.counters["joined"] > 10, "{:?}", a.counters);
        assert!(a.events > 500, "{}", a.events);
    }

    #[test]
    fn a_hundred_seeds_without_a_violation() {
        let mut paths = BTreeMap::<&'static str, u64>::new();
        let mut strategies = BTreeSet::new();
        for seed in 0..100 {
            let r = run_queue_storm(&small(), seed, &mut |_, _| {});
            assert!(
                r.violations.is_empty(),
                "seed {seed} violated invariants:\n{}",
                r.violations.join("\n")
            );
            for (k, v) in r.counters {
                *paths.entry(k).or_default() += v;
            }
            for s in ["RingAll", "RoundRobin", "LeastRecent", "FewestCalls"] {
                if r.scenario.contains(s) {
                    strategies.insert(s);
                }
            }
        }
        assert_eq!(strategies.len(), 4, "strategies used: {strategies:?}");
        // The seeds exercise every path the scenario has.
        for path in [
            "answered",
            "completed by agent",
            "completed by caller",
            "transfers",
            "abandoned",
            "max-wait exits",
            "exit-key exits",
            "sent to an operator",
            "turned away: full",
            "ring no answer",
            "declined by phone",
            "answers too late",
            "offers withdrawn",
            "pauses",
            "unpauses",
            "pause-all",
            "unpause-all",
            "logouts",
            "logouts refused during a call",
            "logouts: phone offline",
            "phone reboots",
            "logins",
            "wrap-ups",
            "wrap-ups ended early",
            "penalty changes",
            "private calls",
            "agent line changes",
        ] {
            assert!(
                paths.get(path).copied().unwrap_or(0) > 0,
                "{path} never happened: {paths:?}"
            );
        }
        // Callers had to wait: at times there were more of them than free agents.
        assert!(paths["peak callers waiting"] >= 100, "{paths:?}");
    }

    #[test]
    fn the_checker_catches_an_agent_in_two_queue_calls() {
        // One agent, logged in to both queues, connected to a caller in each.
        let params = QueueStorm {
            agents: 1,
            ..small()
        };
        let mut sim = Sim::new(&params, 7);
        sim.check_step();
        assert!(
            sim.world.violations.is_empty(),
            "{:?}",
            sim.world.violations
        );
        let at = sim.world.now;
        for q in 0..2 {
            let (queue, agent) = (queue_id(&sim, q), agent_of(&sim, q, 0));
            let call = CallId::from_uuid(sim.world.uuid());
            let leg = LegId::from_uuid(sim.world.uuid());
            for e in [
                QueueEvent::QueueCallerJoined {
                    queue: queue.clone(),
                    call,
                    leg,
                    caller: Party::default(),
                    position: 1,
                },
                QueueEvent::AgentReserved {
                    queue: queue.clone(),
                    agent,
                    call,
                },
                QueueEvent::AgentOffered {
                    queue: queue.clone(),
                    agent,
                    call,
                    leg,
                },
                QueueEvent::AgentConnected {
                    queue,
                    agent,
                    call,
                    leg,
                    hold_ms: 0,
                    ring_ms: 0,
                },
            ] {
                sim.desks[q].instance.state.evolve(&e, at);
            }
        }
        sim.check_step();
        assert_caught(
            &sim.world.violations,
            "agent 10000 is in 2 queue calls at once",
        );
    }

    #[test]
    fn the_checker_catches_a_paused_agent_being_rung() {
        let params = QueueStorm {
            agents: 1,
            queues: 1,
            ..small()
        };
        let mut sim = Sim::new(&params, 7);
        let agent = agent_of(&sim, 0, 0);
        let paused = sim.queue_command(
            0,
            QueueCommand::Pause {
                agent,
                reason: Some("lunch".into()),
                by: None,
            },
        );
        assert!(paused.is_some());
        // A leg rings the paused agent for a queue call, as a faulty edge would make it.
        let at = sim.world.now;
        let call = CallId::from_uuid(sim.world.uuid());
        let caller_leg = LegId::from_uuid(sim.world.uuid());
        let agent_leg = LegId::from_uuid(sim.world.uuid());
        let mut instance = Instance::<Call>::default();
        for e in [
            CallEvent::CallCreated {
                call,
                direction: Direction::Inbound,
                caller: Party::default(),
                callee: sim.desks[0].party.clone(),
                dialled: sim.desks[0].number.clone(),
                origin: CallOrigin::Trunk,
                trunk: None,
                requested_by: None,
            },
            CallEvent::LegCreated {
                call,
                leg: caller_leg,
                role: LegRole::Caller,
                party: Party::default(),
                contact: None,
                parent: None,
                ring_timeout_ms: None,
                voicemail: None,
            },
            CallEvent::LegCreated {
                call,
                leg: agent_leg,
                role: LegRole::Agent,
                party: sim.exts[sim.seats[0].ext].party.clone(),
                contact: None,
                parent: Some(caller_leg),
                ring_timeout_ms: Some(15_000),
                voicemail: None,
            },
        ] {
            instance.state.evolve(&e, at);
        }
        sim.calls.insert(call, instance);
        sim.open.insert(call);
        sim.qcalls.insert(
            call,
            QueueCall {
                queue: 0,
                caller_leg,
                media_leg: LegId::from_uuid(sim.world.uuid()),
                safety: at,
                story: Story::Waiting,
            },
        );
        sim.check_step();
        assert_caught(&sim.world.violations, "paused agent 10000 is rung for");
        assert_caught(&sim.world.violations, "without an offer from queue 0");
        // And the drain check finds the call that never ended.
        sim.check_drained();
        assert_caught(
            &sim.world.violations,
            "did not end exactly once after draining",
        );
    }

    #[test]
    fn the_drain_check_catches_a_caller_left_waiting_and_counters_that_do_not_add_up() {
        let params = QueueStorm {
            agents: 2,
            queues: 1,
            ..small()
        };
        let mut sim = Sim::new(&params, 7);
        // All agents pause, so the caller who joins behind the edge's back stays waiting.
        let pause_all = QueueCommand::PauseAll {
            reason: None,
            by: None,
        };
        assert!(sim.queue_command(0, pause_all).is_some());
        let queue = queue_id(&sim, 0);
        let call = CallId::from_uuid(sim.world.uuid());
        let joined = QueueEvent::QueueCallerJoined {
            queue,
            call,
            leg: LegId::from_uuid(sim.world.uuid()),
            caller: Party::default(),
            position: 1,
        };
        let at = sim.world.now;
        sim.desks[0].instance.state.evolve(&joined, at);
        sim.check_queue(0);
        assert_caught(&sim.world.violations, "joined 0 != left 0 + present 1");
        let report = sim.finish(&params, 7);
        assert_caught(
            &report.violations,
            "1 callers still waiting and 0 talking after draining",
        );
        assert_caught(&report.violations, "timers still armed after draining");
    }

    #[test]
    fn the_checker_catches_a_call_that_ends_twice() {
        let mut sim = Sim::new(&small(), 7);
        let at = sim.world.now;
        let call = CallId::from_uuid(sim.world.uuid());
        let mut instance = Instance::<Call>::default();
        let ended = CallEvent::CallEnded {
            call,
            cause: HangupCause::NormalClearing,
            disposition: Disposition::Answered,
            duration_ms: 0,
            talk_ms: 0,
        };
        instance.state.evolve(&ended, at);
        instance.state.evolve(&ended, at);
        sim.calls.insert(call, instance);
        sim.check_call(call);
        assert_caught(&sim.world.violations, "ended twice");
    }
}
