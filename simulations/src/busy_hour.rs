//! The busy hour: N registered extensions; calls arrive as a Poisson process between random
//! pairs; the callee is routed by its own extension state (ring, busy, DND); phones answer,
//! reject or let it ring out, callers cancel, either side hangs up after an exponential holding
//! time, some calls are held and resumed, some are blind-transferred to a third extension; users
//! toggle DND and change presence throughout, and phones refresh their registrations. After the
//! load stops, a liveness phase lets everything drain.
//!
//! This module plays the part of the SIP edge and the process managers: it turns routing
//! decisions into call commands and reports each call's progress to the extensions involved.
//! Invariants checked after every step: each call ends exactly once with one disposition and only
//! after all its legs; a DND extension is never rung; presence, DND and routing agree; an
//! extension with no calls shows an idle or offline line. After draining: no call is left open
//! and no extension is left in a call.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use engine::Aggregate;
use engine::call::{Call, CallCommand, RingContact};
use engine::extension::{
    Extension, ExtensionCommand, NoAnswerTarget, PresenceChoice, RegisterContact, RouteDecision,
};
use events::ids::{
    CallId, DepartmentId, DeviceContactId, ExtensionNumber, LegId, PhoneNumber, PresenceStateId,
    StreamId, TenantId, UserId,
};
use events::model::{
    CallOrigin, Direction, ExtensionCallState, HangupCause, LegRole, Party, PresenceRule,
    PresenceSource, PresenceStateType, SettingSource, TransferMethod, Transport,
};
use rand::Rng;

use crate::edge::{call_violations, line_violation};
use crate::world::{self, Agenda, Instance, Limits, Report, Scenario, World};

/// Parameters of a busy hour.
#[derive(Debug, Clone)]
pub struct BusyHour {
    pub extensions: u32,
    pub minutes: u32,
    /// Calls per hour over the whole system (default: 3.6 per extension).
    pub calls_per_hour: Option<u32>,
    /// Mean holding time of an answered call, seconds.
    pub mean_hold_secs: f64,
}

impl Default for BusyHour {
    fn default() -> Self {
        Self {
            extensions: 100,
            minutes: 60,
            calls_per_hour: None,
            mean_hold_secs: 120.0,
        }
    }
}

#[derive(Debug, Clone)]
enum Happening {
    Arrival,
    Answer { call: CallId, leg: LegId },
    Reject { call: CallId, leg: LegId },
    Cancel { call: CallId },
    HangUp { call: CallId, leg: LegId },
    Hold { call: CallId, leg: LegId },
    Resume { call: CallId, leg: LegId },
    Transfer { call: CallId, transferer: LegId },
    ToggleDnd,
    ChangePresence,
    Refresh { ext: usize },
    CallDeadline { call: CallId, at: DateTime<Utc> },
    ExtensionDeadline { ext: usize, at: DateTime<Utc> },
}

struct Sim {
    world: World,
    agenda: Agenda<Happening>,
    tenant: TenantId,
    extensions: Vec<(ExtensionNumber, Instance<Extension>, Party)>,
    /// Each extension's stream, by index, named once rather than formatted for every command.
    ext_streams: Vec<StreamId>,
    calls: BTreeMap<CallId, Instance<Call>>,
    /// What each extension was last told about each call it is in.
    observed: BTreeMap<(CallId, usize), ExtensionCallState>,
    counters: BTreeMap<&'static str, u64>,
    mean_hold_secs: f64,
    /// Calls offered per second while the load is on.
    rate_per_sec: f64,
    /// DND toggles per second; presence changes come twice as often.
    churn_per_sec: f64,
}

/// Presence states the simulated users pick from, with the demo's automatic actions.
fn presence_choices() -> Vec<PresenceChoice> {
    [
        ("available", PresenceStateType::Available),
        ("be-right-back", PresenceStateType::Away),
        ("out-to-lunch", PresenceStateType::Away),
        ("busy", PresenceStateType::Dnd),
        ("away", PresenceStateType::Away),
    ]
    .into_iter()
    .filter_map(|(id, state_type)| {
        PresenceStateId::parse(id)
            .ok()
            .map(|state| PresenceChoice { state, state_type })
    })
    .collect()
}

fn presence_rules() -> Vec<PresenceRule> {
    vec![
        PresenceRule {
            state_type: PresenceStateType::Dnd,
            dnd: Some(true),
            follow_me: None,
        },
        PresenceRule {
            state_type: PresenceStateType::Available,
            dnd: Some(false),
            follow_me: None,
        },
    ]
}

/// Runs a busy hour for `seed`, calling `progress(simulated seconds done, total)` now and then.
pub fn run_busy_hour(params: &BusyHour, seed: u64, progress: &mut dyn FnMut(u64, u64)) -> Report {
    run_busy_hour_with_log(params, seed, progress).0
}

/// [`run_busy_hour`], also handing back the in-memory log it wrote (tenant `sim`, extensions
/// and users `10000`, `10001`…; calls in simulated time from [`crate::world::start_time`]), for
/// replaying its events elsewhere.
pub fn run_busy_hour_with_log(
    params: &BusyHour,
    seed: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> (Report, std::sync::Arc<dyn events::EventLog>) {
    let tenant = TenantId::parse("sim").expect("\"sim\" is a valid tenant slug");
    let n = params.extensions.max(2);
    let per_hour = params.calls_per_hour.unwrap_or(n * 36 / 10).max(1);
    let mut sim = Sim {
        world: World::new(seed, tenant.clone()),
        agenda: Agenda::default(),
        tenant,
        extensions: Vec::new(),
        ext_streams: Vec::new(),
        calls: BTreeMap::new(),
        observed: BTreeMap::new(),
        counters: BTreeMap::new(),
        mean_hold_secs: params.mean_hold_secs,
        rate_per_sec: f64::from(per_hour) / 3600.0,
        // Background churn: each user changes presence about twice and DND about once an hour.
        churn_per_sec: f64::from(n) / 3600.0,
    };
    sim.provision(n);
    sim.next_arrival(sim.rate_per_sec, Happening::Arrival);
    sim.next_arrival(sim.churn_per_sec, Happening::ToggleDnd);
    sim.next_arrival(2.0 * sim.churn_per_sec, Happening::ChangePresence);
    let limits = Limits {
        minutes: params.minutes,
        drain: TimeDelta::hours(2),
        steps: 200 * u64::from(per_hour) + 1_000_000,
    };
    world::run(&mut sim, limits, progress);
    let log = sim.world.log();
    (sim.finish(params, seed), log)
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
            Happening::ToggleDnd if load_on => {
                let ext = self.world.rng.random_range(0..self.extensions.len());
                self.toggle_dnd(ext);
                self.next_arrival(self.churn_per_sec, Happening::ToggleDnd);
            }
            Happening::ChangePresence if load_on => {
                let ext = self.world.rng.random_range(0..self.extensions.len());
                self.change_presence(ext);
                self.next_arrival(2.0 * self.churn_per_sec, Happening::ChangePresence);
            }
            // Phones stop refreshing with the load; their registrations then lapse.
            Happening::Arrival
            | Happening::ToggleDnd
            | Happening::ChangePresence
            | Happening::Refresh { .. }
                if !load_on => {}
            other => self.handle(other),
        }
    }
}

impl Sim {
    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn provision(&mut self, n: u32) {
        let sales = DepartmentId::parse("sales").ok();
        for k in 0..n {
            let number = format!("{}", 10_000 + k);
            let (Ok(ext), Ok(user)) = (ExtensionNumber::parse(&number), UserId::parse(&number))
            else {
                continue;
            };
            let Some(department) = sales.clone() else {
                continue;
            };
            let party = Party::internal(
                ext.clone(),
                user.clone(),
                department.clone(),
                format!("User {number}"),
            );
            self.ext_streams
                .push(StreamId::extension(&self.tenant, &ext));
            self.extensions
                .push((ext.clone(), Instance::default(), party));
            let i = self.extensions.len() - 1;
            self.ext_command(
                i,
                ExtensionCommand::Provision {
                    extension: ext,
                    user,
                    display_name: format!("User {number}"),
                    department,
                },
            );
            self.register(i);
            // Every third user works with call waiting off: a second call gets busy.
            if k % 3 == 2 {
                let by = self.extensions[i].2.user.clone();
                self.ext_command(
                    i,
                    ExtensionCommand::SetCallWaiting {
                        enabled: false,
                        source: SettingSource::User,
                        by,
                    },
                );
            }
        }
    }

    fn register(&mut self, i: usize) {
        let number = self.extensions[i].0.to_string();
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
        let refresh = self.world.now + TimeDelta::seconds(3000);
        self.agenda.at(refresh, Happening::Refresh { ext: i });
    }

    /// Runs an extension command, re-arms its deadlines and checks its invariants.
    fn ext_command(&mut self, i: usize, command: ExtensionCommand) -> bool {
        let agenda = &mut self.agenda;
        let result = self.world.execute_arming(
            &self.ext_streams[i],
            &mut self.extensions[i].1,
            &command,
            |d| agenda.at(d.at, Happening::ExtensionDeadline { ext: i, at: d.at }),
        );
        self.check_extension(i);
        result.is_ok()
    }

    /// Runs a call command, reports progress to the extensions, re-arms deadlines, checks.
    fn call_command(&mut self, call: CallId, command: CallCommand) -> bool {
        let stream = StreamId::call(call);
        let agenda = &mut self.agenda;
        let result = self.world.execute_arming(
            &stream,
            self.calls.entry(call).or_default(),
            &command,
            |d| agenda.at(d.at, Happening::CallDeadline { call, at: d.at }),
        );
        if matches!(&result, Ok(events) if !events.is_empty()) {
            self.observe(call);
        }
        self.check_call(call);
        result.is_ok()
    }

    fn index_of(&self, ext: &ExtensionNumber) -> Option<usize> {
        // Numbers are 10000 + index by construction.
        let i = ext.as_str().parse::<usize>().ok()?.checked_sub(10_000)?;
        (i < self.extensions.len()).then_some(i)
    }

    /// Tells every extension in the call how its part changed.
    fn observe(&mut self, call: CallId) {
        let Some(instance) = self.calls.get(&call) else {
            return;
        };
        let now_states = instance.state.extension_parts(|e| self.index_of(e));
        for (i, state) in now_states {
            if self.observed.get(&(call, i)) == Some(&state) {
                continue;
            }
            if state == ExtensionCallState::Ended {
                self.observed.remove(&(call, i));
            } else {
                self.observed.insert((call, i), state);
            }
            self.ext_command(i, ExtensionCommand::CallLegStateObserved { call, state });
        }
    }

    fn arrival(&mut self) {
        let n = self.extensions.len();
        let a = self.world.rng.random_range(0..n);
        let mut b = self.world.rng.random_range(0..n - 1);
        if b >= a {
            b += 1;
        }
        self.count("calls offered");
        let call = CallId::from_uuid(self.world.uuid());
        let caller_leg = LegId::from_uuid(self.world.uuid());
        let caller = self.extensions[a].2.clone();
        let callee = self.extensions[b].2.clone();
        let Ok(dialled) = PhoneNumber::parse(self.extensions[b].0.as_str()) else {
            return;
        };
        let caller_contact = self.extensions[a].1.state.contacts().keys().next().copied();
        let offered = self.call_command(
            call,
            CallCommand::Offer {
                call,
                caller_leg,
                direction: Direction::Internal,
                caller,
                callee,
                dialled,
                origin: CallOrigin::Device,
                caller_contact,
                trunk: None,
                requested_by: None,
            },
        );
        if offered {
            self.route(call, caller_leg, b);
        }
    }

    /// Routes the call to extension `b` as its state decides, ringing it or refusing.
    fn route(&mut self, call: CallId, parent: LegId, b: usize) {
        let decision = self.extensions[b].1.state.route_incoming(self.world.now);
        let (contacts, ring_ms, voicemail) = match decision {
            RouteDecision::Ring(plan) => {
                let vm = matches!(plan.on_no_answer, NoAnswerTarget::Voicemail)
                    .then(|| self.extensions[b].0.clone());
                (plan.contacts, plan.ring_ms, vm)
            }
            RouteDecision::FollowMe(plan) => (plan.contacts, plan.ring_first_ms, None),
            RouteDecision::Forward { .. } => {
                self.count("calls forwarded (no trunk)");
                self.call_command(
                    call,
                    CallCommand::Terminate {
                        cause: HangupCause::NoRouteToDestination,
                        sip_status: Some(404),
                    },
                );
                return;
            }
            RouteDecision::Decline { reason } => {
                use engine::extension::DeclineReason;
                let (cause, status, what) = match reason {
                    DeclineReason::Busy => (HangupCause::UserBusy, 486, "calls busy"),
                    DeclineReason::DoNotDisturb => (HangupCause::UserBusy, 486, "calls to DND"),
                    DeclineReason::Offline => {
                        (HangupCause::SubscriberAbsent, 480, "calls to offline")
                    }
                    DeclineReason::NotInService => {
                        (HangupCause::UnallocatedNumber, 404, "calls to unknown")
                    }
                };
                self.count(what);
                self.call_command(
                    call,
                    CallCommand::Terminate {
                        cause,
                        sip_status: Some(status),
                    },
                );
                return;
            }
        };
        if self.extensions[b].1.state.dnd() {
            self.world.violation(format!(
                "extension {} is DND but was rung",
                self.extensions[b].0
            ));
        }
        let legs: Vec<RingContact> = contacts
            .iter()
            .map(|c| RingContact {
                leg: LegId::from_uuid(self.world.uuid()),
                contact: Some(c.contact),
            })
            .collect();
        let ring_timeout = TimeDelta::milliseconds(ring_ms as i64);
        let rang = self.call_command(
            call,
            CallCommand::Ring {
                parent,
                callee: self.extensions[b].2.clone(),
                role: LegRole::Callee,
                contacts: legs.clone(),
                ring_timeout,
                voicemail,
            },
        );
        if !rang {
            return;
        }
        for l in &legs {
            self.call_command(call, CallCommand::Ringing { leg: l.leg });
        }
        let Some(first) = legs.first() else { return };
        let r: f64 = self.world.rng.random_range(0.0..1.0);
        let now = self.world.now;
        if r < 0.70 {
            let after = self.world.uniform_secs(2.0, 25.0);
            self.agenda.at(
                now + after,
                Happening::Answer {
                    call,
                    leg: first.leg,
                },
            );
        } else if r < 0.80 {
            let after = self.world.uniform_secs(1.0, 15.0);
            self.agenda.at(now + after, Happening::Cancel { call });
        } else if r < 0.85 {
            let after = self.world.uniform_secs(1.0, 6.0);
            self.agenda.at(
                now + after,
                Happening::Reject {
                    call,
                    leg: first.leg,
                },
            );
        } else {
            self.count("left to ring out");
        }
    }

    fn caller_leg(&self, call: CallId) -> Option<LegId> {
        let c = self.calls.get(&call)?;
        c.state
            .legs()
            .iter()
            .find(|l| l.role == LegRole::Caller)
            .map(|l| l.id)
    }

    fn leg_is_live(&self, call: CallId, leg: LegId) -> bool {
        self.calls
            .get(&call)
            .and_then(|c| c.state.leg(leg))
            .is_some_and(|l| l.ended.is_none())
    }

    fn handle(&mut self, what: Happening) {
        match what {
            Happening::Answer { call, leg } => {
                if !self.leg_is_live(call, leg) {
                    return;
                }
                if self.call_command(call, CallCommand::Answer { leg }) {
                    self.count("calls answered");
                    let hold = self.world.exp_delay(1.0 / self.mean_hold_secs);
                    let caller = self.caller_leg(call);
                    let by_caller = self.world.rng.random_bool(0.5);
                    let ender = match (by_caller, caller) {
                        (true, Some(c)) => c,
                        _ => leg,
                    };
                    let now = self.world.now;
                    self.agenda
                        .at(now + hold, Happening::HangUp { call, leg: ender });
                    let r: f64 = self.world.rng.random_range(0.0..1.0);
                    if r < 0.10 {
                        self.agenda
                            .at(now + hold / 3, Happening::Hold { call, leg });
                    } else if r < 0.15 {
                        self.agenda.at(
                            now + hold / 2,
                            Happening::Transfer {
                                call,
                                transferer: leg,
                            },
                        );
                    }
                }
            }
            Happening::Reject { call, leg } => {
                if self.leg_is_live(call, leg)
                    && self.call_command(call, CallCommand::Reject { leg, status: 486 })
                {
                    self.count("rejected by phone");
                }
            }
            Happening::Cancel { call } => {
                let Some(leg) = self.caller_leg(call) else {
                    return;
                };
                let answered = self
                    .calls
                    .get(&call)
                    .is_some_and(|c| c.state.legs().iter().any(|l| l.answered_at.is_some()));
                if !answered && self.leg_is_live(call, leg) {
                    self.call_command(call, CallCommand::HangUp { leg, cause: None });
                    self.count("cancelled by caller");
                }
            }
            Happening::HangUp { call, leg } => {
                if self.leg_is_live(call, leg) {
                    self.call_command(call, CallCommand::HangUp { leg, cause: None });
                }
            }
            Happening::Hold { call, leg } => {
                if self.leg_is_live(call, leg) && self.call_command(call, CallCommand::Hold { leg })
                {
                    self.count("holds");
                    let back = self.world.uniform_secs(3.0, 30.0);
                    self.agenda
                        .at(self.world.now + back, Happening::Resume { call, leg });
                }
            }
            Happening::Resume { call, leg } => {
                if self.leg_is_live(call, leg) {
                    self.call_command(call, CallCommand::Resume { leg });
                }
            }
            Happening::Transfer { call, transferer } => self.blind_transfer(call, transferer),
            Happening::CallDeadline { call, at } => {
                let due = self.calls.get(&call).and_then(|c| {
                    c.state
                        .deadlines()
                        .into_iter()
                        .find(|d| d.at == at && d.at <= self.world.now)
                });
                if let Some(d) = due {
                    self.call_command(call, d.command);
                    // Voicemail took the call: the caller leaves a message and hangs up.
                    let to_voicemail = self.calls.get(&call).is_some_and(|c| {
                        c.state.voicemail().is_some()
                            && c.state
                                .legs()
                                .iter()
                                .all(|l| l.role == LegRole::Caller || l.ended.is_some())
                    });
                    if let Some(leg) = self.caller_leg(call).filter(|_| to_voicemail)
                        && self.leg_is_live(call, leg)
                    {
                        self.count("to voicemail");
                        let message = self.world.uniform_secs(5.0, 40.0);
                        self.agenda
                            .at(self.world.now + message, Happening::HangUp { call, leg });
                    }
                }
            }
            Happening::ExtensionDeadline { ext, at } => {
                let due = self.extensions[ext]
                    .1
                    .state
                    .deadlines()
                    .into_iter()
                    .find(|d| d.at == at && d.at <= self.world.now);
                if let Some(d) = due {
                    self.ext_command(ext, d.command);
                }
            }
            Happening::Refresh { ext } => {
                let Some((_, contact)) = self.extensions[ext]
                    .1
                    .state
                    .contacts()
                    .iter()
                    .next()
                    .map(|(id, c)| (*id, c.clone()))
                else {
                    self.register(ext);
                    return;
                };
                self.ext_command(
                    ext,
                    ExtensionCommand::Register(RegisterContact {
                        contact: DeviceContactId::from_uuid(self.world.uuid()),
                        contact_uri: contact.contact_uri.clone(),
                        transport: Transport::Udp,
                        source: "127.0.0.1:5060".into(),
                        user_agent: Some("simulated phone".into()),
                        expires_secs: 3600,
                    }),
                );
                let next = self.world.now + TimeDelta::seconds(3000);
                self.agenda.at(next, Happening::Refresh { ext });
            }
            Happening::Arrival | Happening::ToggleDnd | Happening::ChangePresence => {}
        }
    }

    fn blind_transfer(&mut self, call: CallId, transferer: LegId) {
        if !self.leg_is_live(call, transferer) {
            return;
        }
        let involved: Vec<usize> = self
            .calls
            .get(&call)
            .map(|c| {
                c.state
                    .legs()
                    .iter()
                    .filter_map(|l| l.party.extension.as_ref().and_then(|e| self.index_of(e)))
                    .collect()
            })
            .unwrap_or_default();
        let n = self.extensions.len();
        if n < 3 {
            return;
        }
        let mut target = self.world.rng.random_range(0..n);
        while involved.contains(&target) {
            target = (target + 1) % n;
        }
        let Ok(number) = PhoneNumber::parse(self.extensions[target].0.as_str()) else {
            return;
        };
        let Some(caller) = self.caller_leg(call) else {
            return;
        };
        if self.call_command(
            call,
            CallCommand::BlindTransfer {
                transferer_leg: transferer,
                target: number,
                method: TransferMethod::SipRefer,
            },
        ) {
            self.count("blind transfers");
            self.route(call, caller, target);
        }
    }

    fn toggle_dnd(&mut self, i: usize) {
        let enabled = !self.extensions[i].1.state.dnd();
        let by = self.extensions[i].2.user.clone();
        if self.ext_command(
            i,
            ExtensionCommand::SetDnd {
                enabled,
                source: SettingSource::User,
                by,
            },
        ) {
            self.count("DND toggles");
        }
    }

    fn change_presence(&mut self, i: usize) {
        let choices = presence_choices();
        if choices.is_empty() {
            return;
        }
        let pick = self.world.rng.random_range(0..choices.len());
        let by = self.extensions[i].2.user.clone();
        if self.ext_command(
            i,
            ExtensionCommand::SetPresence {
                choice: choices[pick].clone(),
                message: None,
                source: PresenceSource::User,
                by,
                rules: presence_rules(),
            },
        ) {
            self.count("presence changes");
        }
    }

    fn check_extension(&mut self, i: usize) {
        let state = &self.extensions[i].1.state;
        let number = self.extensions[i].0.clone();
        let dnd = state.dnd();
        let presence_dnd = state
            .presence()
            .is_some_and(|p| p.state_type == PresenceStateType::Dnd);
        let rings = matches!(
            state.route_incoming(self.world.now),
            RouteDecision::Ring(_) | RouteDecision::FollowMe(_)
        );
        let line = line_violation(&number, state);
        if presence_dnd && !dnd {
            self.world
                .violation(format!("{number}: presence is a DND state but DND is off"));
        }
        if dnd && rings {
            self.world
                .violation(format!("{number}: DND is on but routing would ring it"));
        }
        if let Some(v) = line {
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

    fn finish(mut self, params: &BusyHour, seed: u64) -> Report {
        // Liveness: the agenda ran dry, so everything must have drained.
        let open: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| !c.state.is_ended() || !c.state.ended_exactly_once())
            .map(|(id, _)| *id)
            .collect();
        for call in open {
            let detail = self
                .calls
                .get(&call)
                .map(|c| {
                    let legs: Vec<String> = c
                        .state
                        .legs()
                        .iter()
                        .map(|l| format!("{:?} {:?}", l.role, l.progress))
                        .collect();
                    format!(
                        "legs [{}], timers {:?}",
                        legs.join(", "),
                        c.state.deadlines()
                    )
                })
                .unwrap_or_default();
            self.world.violation(format!(
                "call {call} did not end exactly once after draining: {detail}"
            ));
        }
        for i in 0..self.extensions.len() {
            if !self.extensions[i].1.state.calls().is_empty() {
                let number = self.extensions[i].0.clone();
                self.world
                    .violation(format!("{number} is still in a call after draining"));
            }
        }
        self.counters.insert("calls", self.calls.len() as u64);
        let scenario = format!(
            "busy-hour: {} extensions, {} minutes",
            params.extensions, params.minutes
        );
        self.world.into_report(scenario, seed, self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BusyHour {
        BusyHour {
            extensions: 30,
            minutes: 20,
            calls_per_hour: Some(600),
            mean_hold_secs: 60.0,
        }
    }

    #[test]
    fn the_same_seed_gives_a_byte_identical_log() {
        let a = run_busy_hour(&small(), 42, &mut |_, _| {});
        let b = run_busy_hour(&small(), 42, &mut |_, _| {});
        assert_eq!(a.log_sha256, b.log_sha256);
        assert_eq!(a, b);
        let c = run_busy_hour(&small(), 43, &mut |_, _| {});
        assert_ne!(a.log_sha256, c.log_sha256, "another seed, another day");
        assert!(a.counters["calls answered"] > 50, "{:?}", a.counters);
        assert!(a.events > 1000);
    }

    #[test]
    fn a_hundred_seeds_without_a_violation() {
        let params = BusyHour {
            extensions: 12,
            minutes: 10,
            calls_per_hour: Some(400),
            mean_hold_secs: 45.0,
        };
        let mut paths = BTreeMap::<&'static str, u64>::new();
        for seed in 0..100 {
            let r = run_busy_hour(&params, seed, &mut |_, _| {});
            assert!(
                r.violations.is_empty(),
                "seed {seed} violated invariants:\n{}",
                r.violations.join("\n")
            );
            for (k, v) in r.counters {
                *paths.entry(k).or_default() += v;
            }
        }
        // The seeds exercise every path the scenario has.
        for path in [
            "calls answered",
            "calls busy",
            "calls to DND",
            "cancelled by caller",
            "rejected by phone",
            "holds",
            "blind transfers",
            "DND toggles",
            "presence changes",
        ] {
            assert!(
                paths.get(path).copied().unwrap_or(0) > 0,
                "{path} never happened: {paths:?}"
            );
        }
    }
}
