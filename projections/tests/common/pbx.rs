//! A small PBX driven through the engine's own aggregates, for logs with realistic sequences:
//! extensions provisioned and registered (`engine::extension`), calls offered, routed by the
//! callee's extension state, rung, answered, held, rejected, cancelled, timed out to voicemail
//! or not, and hung up (`engine::call`), with each call's progress reported back to the
//! extensions as the busy-hour simulation does. It runs in `simulations::world::World`
//! (simulated time, seeded RNG and ids, in-memory log).
//!
//! For every call it counts the caller leg's disposition it expects from what it asked for, so
//! a test can check the CDRs add up to what happened.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use engine::Aggregate;
use engine::call::{Call, CallCommand, RingContact};
use engine::extension::{
    DeclineReason, Extension, ExtensionCommand, PresenceChoice, RegisterContact, RouteDecision,
};
use events::EventLog;
use events::ids::{
    CallId, DepartmentId, DeviceContactId, ExtensionNumber, LegId, PhoneNumber, PresenceStateId,
    StreamId, TenantId, UserId,
};
use events::model::{
    CallOrigin, Direction, ExtensionCallState, HangupCause, LegRole, Party, PresenceSource,
    PresenceStateType, SettingSource, Transport,
};
use rand::Rng;
use simulations::world::{Agenda, Instance, World, new_deadlines};

/// What the callee (or caller) does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The first contact answers; after talking, the caller (or the callee) hangs up; the
    /// callee may hold and resume the call in between.
    Answer { caller_hangs_up: bool, hold: bool },
    /// The caller gives up while it rings.
    Cancel,
    /// The first contact refuses with this SIP status.
    Reject(u16),
    /// Nobody answers; with `voicemail` the box takes the call and the caller leaves a message.
    RingOut { voicemail: bool },
}

#[derive(Debug, Clone)]
enum Step {
    Arrival,
    Answer {
        call: CallId,
        leg: LegId,
        outcome: Outcome,
    },
    Reject {
        call: CallId,
        leg: LegId,
        status: u16,
    },
    Cancel {
        call: CallId,
    },
    HangUp {
        call: CallId,
        leg: LegId,
    },
    Hold {
        call: CallId,
        leg: LegId,
    },
    Resume {
        call: CallId,
        leg: LegId,
    },
    Deadline {
        call: CallId,
        at: DateTime<Utc>,
    },
    Presence {
        ext: usize,
    },
}

pub(crate) struct Ext {
    pub(crate) number: ExtensionNumber,
    pub(crate) instance: Instance<Extension>,
    pub(crate) party: Party,
}

pub(crate) struct Pbx {
    pub(crate) world: World,
    agenda: Agenda<Step>,
    tenant: TenantId,
    pub(crate) exts: Vec<Ext>,
    pub(crate) calls: BTreeMap<CallId, Instance<Call>>,
    observed: BTreeMap<(CallId, usize), ExtensionCallState>,
    /// Expected caller-leg dispositions (`ANSWERED`, …) and other counts.
    pub(crate) counters: BTreeMap<&'static str, u64>,
    arrivals_left: u32,
    /// Mean seconds between arrivals in [`Pbx::busy`].
    arrival_every_secs: f64,
}

const DEPARTMENTS: &[&str] = &["sales", "support", "management"];

impl Pbx {
    /// `n` extensions (`10000`…), spread over three departments, each registered once; the
    /// ones listed in `two_phones` register a second contact.
    pub(crate) fn new(seed: u64, n: usize, two_phones: &[usize]) -> Self {
        let tenant = TenantId::parse("sim").expect("tenant");
        let mut pbx = Pbx {
            world: World::new(seed, tenant.clone()),
            agenda: Agenda::default(),
            tenant,
            exts: Vec::new(),
            calls: BTreeMap::new(),
            observed: BTreeMap::new(),
            counters: BTreeMap::new(),
            arrivals_left: 0,
            arrival_every_secs: 6.0,
        };
        for k in 0..n {
            let number = format!("{}", 10_000 + k);
            let ext = ExtensionNumber::parse(&number).expect("extension");
            let user = UserId::parse(&number).expect("user");
            let department = DepartmentId::parse(DEPARTMENTS[k % DEPARTMENTS.len()]).expect("dept");
            let party = Party::internal(
                ext.clone(),
                user.clone(),
                department.clone(),
                format!("User {number}"),
            );
            pbx.exts.push(Ext {
                number: ext.clone(),
                instance: Instance::default(),
                party,
            });
            pbx.ext_command(
                k,
                ExtensionCommand::Provision {
                    extension: ext,
                    user,
                    display_name: format!("User {number}"),
                    department,
                },
            );
            pbx.register(k, "desk");
            if two_phones.contains(&k) {
                pbx.register(k, "soft");
            }
        }
        pbx
    }

    pub(crate) fn log(&self) -> Arc<dyn EventLog> {
        self.world.log()
    }

    pub(crate) fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn register(&mut self, i: usize, device: &str) {
        let number = self.exts[i].number.to_string();
        let contact = DeviceContactId::from_uuid(self.world.uuid());
        self.ext_command(
            i,
            ExtensionCommand::Register(RegisterContact {
                contact,
                contact_uri: format!("sip:{number}-{device}@192.0.2.1:5060"),
                transport: Transport::Udp,
                source: "192.0.2.1:5060".into(),
                user_agent: Some(format!("{device} phone")),
                expires_secs: 7200,
            }),
        );
    }

    fn ext_command(&mut self, i: usize, command: ExtensionCommand) -> bool {
        let stream = StreamId::extension(&self.tenant, &self.exts[i].number);
        let mut instance = std::mem::take(&mut self.exts[i].instance);
        let ok = self.world.execute(&stream, &mut instance, &command).is_ok();
        self.exts[i].instance = instance;
        ok
    }

    /// Turns DND on or off for extension `i`.
    pub(crate) fn set_dnd(&mut self, i: usize, enabled: bool) {
        let by = self.exts[i].party.user.clone();
        self.ext_command(
            i,
            ExtensionCommand::SetDnd {
                enabled,
                source: SettingSource::User,
                by,
            },
        );
    }

    fn call_command(&mut self, call: CallId, command: CallCommand) -> bool {
        let stream = StreamId::call(call);
        let mut instance = self.calls.remove(&call).unwrap_or_default();
        let before = instance.state.deadlines();
        let result = self.world.execute(&stream, &mut instance, &command);
        for d in new_deadlines(&before, instance.state.deadlines()) {
            self.agenda.at(d.at, Step::Deadline { call, at: d.at });
        }
        let accepted = matches!(&result, Ok(events) if !events.is_empty());
        self.calls.insert(call, instance);
        if accepted {
            self.observe(call);
        }
        result.is_ok()
    }

    fn index_of(&self, ext: &ExtensionNumber) -> Option<usize> {
        let i = ext.as_str().parse::<usize>().ok()?.checked_sub(10_000)?;
        (i < self.exts.len()).then_some(i)
    }

    /// Tells each extension in the call how its part changed (the busy hour's rule).
    fn observe(&mut self, call: CallId) {
        let Some(instance) = self.calls.get(&call) else {
            return;
        };
        let states = instance.state.extension_parts(|e| self.index_of(e));
        for (i, state) in states {
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

    fn secs(&mut self, lo: f64, hi: f64) -> TimeDelta {
        TimeDelta::milliseconds((self.world.rng.random_range(lo..hi) * 1000.0) as i64)
    }

    /// Schedules a call from `a` to `b` at `after` from now, doing `outcome` if it rings.
    pub(crate) fn place(&mut self, a: usize, b: usize, outcome: Outcome) -> CallId {
        let call = CallId::from_uuid(self.world.uuid());
        let caller_leg = LegId::from_uuid(self.world.uuid());
        let caller = self.exts[a].party.clone();
        let callee = self.exts[b].party.clone();
        let dialled = PhoneNumber::parse(self.exts[b].number.as_str()).expect("number");
        let caller_contact = self.exts[a]
            .instance
            .state
            .contacts()
            .keys()
            .next()
            .copied();
        self.count("calls");
        if !self.call_command(
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
        ) {
            return call;
        }
        self.route(call, caller_leg, b, outcome);
        call
    }

    fn route(&mut self, call: CallId, parent: LegId, b: usize, outcome: Outcome) {
        let decision = self.exts[b].instance.state.route_incoming(self.world.now);
        let contacts = match decision {
            RouteDecision::Ring(plan) => plan.contacts,
            RouteDecision::FollowMe(plan) => plan.contacts,
            RouteDecision::Forward { .. } => {
                self.count("FAILED");
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
                let (cause, status, expect) = match reason {
                    DeclineReason::Busy | DeclineReason::DoNotDisturb => {
                        (HangupCause::UserBusy, 486, "BUSY")
                    }
                    DeclineReason::Offline => (HangupCause::SubscriberAbsent, 480, "NO ANSWER"),
                    DeclineReason::NotInService => (HangupCause::UnallocatedNumber, 404, "FAILED"),
                };
                self.count(expect);
                self.count("declined by routing");
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
        let legs: Vec<RingContact> = contacts
            .iter()
            .map(|c| RingContact {
                leg: LegId::from_uuid(self.world.uuid()),
                contact: Some(c.contact),
            })
            .collect();
        let voicemail = match outcome {
            Outcome::RingOut { voicemail: false } => None,
            _ => Some(self.exts[b].number.clone()),
        };
        if !self.call_command(
            call,
            CallCommand::Ring {
                parent,
                callee: self.exts[b].party.clone(),
                role: LegRole::Callee,
                contacts: legs.clone(),
                ring_timeout: TimeDelta::seconds(30),
                voicemail,
            },
        ) {
            return;
        }
        for l in &legs {
            self.call_command(call, CallCommand::Ringing { leg: l.leg });
        }
        let Some(first) = legs.first().map(|l| l.leg) else {
            return;
        };
        let now = self.world.now;
        match outcome {
            Outcome::Answer { .. } => {
                self.count("ANSWERED");
                let after = self.secs(2.0, 20.0);
                self.agenda.at(
                    now + after,
                    Step::Answer {
                        call,
                        leg: first,
                        outcome,
                    },
                );
            }
            Outcome::Cancel => {
                self.count("CANCELLED");
                let after = self.secs(1.0, 20.0);
                self.agenda.at(now + after, Step::Cancel { call });
            }
            Outcome::Reject(status) => {
                // A single contact: its refusal ends the call.
                let expect = match HangupCause::from_sip_status(status) {
                    HangupCause::UserBusy => "BUSY",
                    HangupCause::NoAnswer | HangupCause::NoUserResponse => "NO ANSWER",
                    _ => "FAILED",
                };
                self.count(expect);
                let after = self.secs(1.0, 5.0);
                self.agenda.at(
                    now + after,
                    Step::Reject {
                        call,
                        leg: first,
                        status,
                    },
                );
            }
            Outcome::RingOut { voicemail } => {
                self.count(if voicemail { "ANSWERED" } else { "NO ANSWER" });
                if voicemail {
                    self.count("to voicemail");
                }
            }
        }
    }

    /// Runs everything scheduled until nothing is left.
    pub(crate) fn drain(&mut self) {
        while let Some((at, step)) = self.agenda.pop() {
            self.world.now = at.max(self.world.now);
            self.step(step);
        }
    }

    /// A random busy stretch: `calls` arrivals about `every` apart between random extensions,
    /// with every outcome, DND toggles and presence changes; then everything drains.
    pub(crate) fn busy(&mut self, calls: u32, every_secs: f64) {
        self.arrivals_left = calls;
        self.arrival_every_secs = every_secs;
        let mean = every_secs;
        let first = self.secs(0.0, mean);
        self.agenda.at(self.world.now + first, Step::Arrival);
        for ext in 0..self.exts.len() {
            let at = self.secs(0.0, mean * f64::from(calls));
            self.agenda.at(self.world.now + at, Step::Presence { ext });
        }
        self.drain();
    }

    fn step(&mut self, step: Step) {
        match step {
            Step::Arrival => {
                let n = self.exts.len();
                let a = self.world.rng.random_range(0..n);
                let mut b = self.world.rng.random_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let r: f64 = self.world.rng.random_range(0.0..1.0);
                let outcome = if r < 0.55 {
                    Outcome::Answer {
                        caller_hangs_up: self.world.rng.random_bool(0.5),
                        hold: self.world.rng.random_bool(0.15),
                    }
                } else if r < 0.70 {
                    Outcome::Cancel
                } else if r < 0.80 {
                    Outcome::Reject([486, 404, 603, 503][self.world.rng.random_range(0..4)])
                } else if r < 0.90 {
                    Outcome::RingOut { voicemail: true }
                } else {
                    Outcome::RingOut { voicemail: false }
                };
                self.place(a, b, outcome);
                self.arrivals_left = self.arrivals_left.saturating_sub(1);
                if self.arrivals_left > 0 {
                    let u: f64 = self.world.rng.random_range(f64::EPSILON..1.0);
                    let mean = self.arrival_every_secs;
                    let next = TimeDelta::milliseconds((-u.ln() * mean * 1000.0) as i64);
                    self.agenda.at(self.world.now + next, Step::Arrival);
                }
            }
            Step::Presence { ext } => {
                let choices = [
                    ("available", PresenceStateType::Available),
                    ("lunch", PresenceStateType::Away),
                    ("busy", PresenceStateType::Dnd),
                ];
                let (state, state_type) = choices[self.world.rng.random_range(0..choices.len())];
                let by = self.exts[ext].party.user.clone();
                self.ext_command(
                    ext,
                    ExtensionCommand::SetPresence {
                        choice: PresenceChoice {
                            state: PresenceStateId::parse(state).expect("state"),
                            state_type,
                        },
                        message: None,
                        source: PresenceSource::User,
                        by,
                        rules: vec![
                            events::model::PresenceRule {
                                state_type: PresenceStateType::Dnd,
                                dnd: Some(true),
                                follow_me: None,
                            },
                            events::model::PresenceRule {
                                state_type: PresenceStateType::Available,
                                dnd: Some(false),
                                follow_me: None,
                            },
                        ],
                    },
                );
            }
            Step::Answer { call, leg, outcome } => {
                if !self.call_command(call, CallCommand::Answer { leg }) {
                    return;
                }
                let Outcome::Answer {
                    caller_hangs_up,
                    hold,
                } = outcome
                else {
                    return;
                };
                let talk = self.secs(5.0, 120.0);
                let now = self.world.now;
                let caller = self.caller_leg(call);
                let ender = match (caller_hangs_up, caller) {
                    (true, Some(c)) => c,
                    _ => leg,
                };
                self.agenda
                    .at(now + talk, Step::HangUp { call, leg: ender });
                if hold {
                    self.agenda.at(now + talk / 3, Step::Hold { call, leg });
                    self.agenda.at(now + talk / 2, Step::Resume { call, leg });
                }
            }
            Step::Reject { call, leg, status } => {
                self.call_command(call, CallCommand::Reject { leg, status });
            }
            Step::Cancel { call } => {
                if let Some(leg) = self.caller_leg(call) {
                    self.call_command(call, CallCommand::HangUp { leg, cause: None });
                }
            }
            Step::HangUp { call, leg } => {
                self.call_command(call, CallCommand::HangUp { leg, cause: None });
            }
            Step::Hold { call, leg } => {
                self.call_command(call, CallCommand::Hold { leg });
            }
            Step::Resume { call, leg } => {
                self.call_command(call, CallCommand::Resume { leg });
            }
            Step::Deadline { call, at } => {
                let due = self.calls.get(&call).and_then(|c| {
                    c.state
                        .deadlines()
                        .into_iter()
                        .find(|d| d.at == at && d.at <= self.world.now)
                });
                let Some(d) = due else { return };
                self.call_command(call, d.command);
                let to_voicemail = self.calls.get(&call).is_some_and(|c| {
                    c.state.voicemail().is_some()
                        && c.state
                            .legs()
                            .iter()
                            .all(|l| l.role == LegRole::Caller || l.ended.is_some())
                });
                if let Some(leg) = self.caller_leg(call).filter(|_| to_voicemail) {
                    let message = self.secs(5.0, 30.0);
                    self.agenda
                        .at(self.world.now + message, Step::HangUp { call, leg });
                }
            }
        }
    }

    fn caller_leg(&self, call: CallId) -> Option<LegId> {
        self.calls
            .get(&call)?
            .state
            .legs()
            .iter()
            .find(|l| l.role == LegRole::Caller)
            .map(|l| l.id)
    }
}
