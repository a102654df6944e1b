//! The queue as its events leave it, and `evolve`, which folds one event and never fails. An
//! agent has an *intent* (logged in, paused) and a *system state* (idle, reserved, ringing,
//! connected, wrap-up), the split mod_callcenter makes; a caller is waiting (with a position)
//! or connected (position 0). Times come from the instant each event happened at (its
//! `occurred_at`, handed to `evolve`), so a state rebuilt from its stream knows when callers
//! joined, agents were offered and calls connected, and re-arms the same timers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;

use events::ids::{AgentId, CallId, DepartmentId, ExtensionNumber, LegId, QueueId, UserId};
use events::model::{LineState, Membership, Party, QueueEvent, QueueLeaveReason};

use super::command::QueueSettings;
use crate::aggregate::plus_ms;

/// One queue: settings, agents in login order, callers in arrival order, counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queue {
    pub(super) id: Option<QueueId>,
    pub(super) settings: Option<QueueSettings>,
    pub(super) deleted: bool,
    pub(super) agents: IndexMap<AgentId, Agent>,
    pub(super) callers: IndexMap<CallId, Caller>,
    /// The agent round-robin offered last; the next offer starts after them.
    pub(super) last_reserved: Option<AgentId>,
    pub(super) left: BTreeMap<LeaveReasonKey, u64>,
    pub(super) rejected: u64,
}

/// A logged-in agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub user: UserId,
    pub extension: ExtensionNumber,
    pub department: Option<DepartmentId>,
    pub penalty: u32,
    pub membership: Membership,
    pub logged_in_at: DateTime<Utc>,
    /// Intent: paused, with the reason given.
    pub paused: Option<Option<String>>,
    /// The extension's line as last observed; `None` until reported, taken as idle.
    pub line: Option<LineState>,
    /// The system's view.
    pub activity: Activity,
    pub calls_taken: u64,
    pub last_call_at: Option<DateTime<Utc>>,
}

/// What the queue is doing with an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activity {
    Idle,
    /// Chosen for `call`; rings (`leg`) once the leg exists. `since` is when the ring time
    /// counts from; the ring timeout falls due at `deadline`.
    Offered {
        call: CallId,
        leg: Option<LegId>,
        since: DateTime<Utc>,
        deadline: DateTime<Utc>,
    },
    Connected {
        call: CallId,
    },
    WrapUp {
        until: DateTime<Utc>,
    },
}

/// A caller in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub leg: LegId,
    pub caller: Party,
    pub joined_at: DateTime<Utc>,
    pub original_position: u32,
    /// One-based while waiting; 0 once connected.
    pub position: u32,
    pub connected: Option<Connection>,
}

/// The agent a caller is talking to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub agent: AgentId,
    pub at: DateTime<Utc>,
    pub hold_ms: u64,
    pub ring_ms: u64,
}

/// `QueueLeaveReason` as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum LeaveReasonKey {
    Answered,
    Transfer,
    Abandoned,
    Timeout,
    Empty,
    Key,
}

impl From<QueueLeaveReason> for LeaveReasonKey {
    fn from(r: QueueLeaveReason) -> Self {
        match r {
            QueueLeaveReason::Answered => Self::Answered,
            QueueLeaveReason::Transfer => Self::Transfer,
            QueueLeaveReason::Abandoned => Self::Abandoned,
            QueueLeaveReason::Timeout => Self::Timeout,
            QueueLeaveReason::Empty => Self::Empty,
            QueueLeaveReason::Key => Self::Key,
        }
    }
}

impl Agent {
    /// Free for an offer: not paused, idle in the queue and on the line.
    pub fn is_available(&self) -> bool {
        self.paused.is_none()
            && self.activity == Activity::Idle
            && matches!(self.line, None | Some(LineState::Idle))
    }

    /// The call the agent is offered or connected to.
    pub fn call(&self) -> Option<CallId> {
        match self.activity {
            Activity::Offered { call, .. } | Activity::Connected { call } => Some(call),
            Activity::Idle | Activity::WrapUp { .. } => None,
        }
    }
}

impl Caller {
    pub fn is_waiting(&self) -> bool {
        self.connected.is_none()
    }
}

/// Queries: what the live board and the counters show.
impl Queue {
    pub fn id(&self) -> Option<&QueueId> {
        self.id.as_ref()
    }

    pub fn settings(&self) -> Option<&QueueSettings> {
        self.settings.as_ref()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    pub fn agent(&self, agent: AgentId) -> Option<&Agent> {
        self.agents.get(&agent)
    }

    /// Logged-in agents, in login order.
    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &Agent)> {
        self.agents.iter().map(|(id, a)| (*id, a))
    }

    pub fn caller(&self, call: CallId) -> Option<&Caller> {
        self.callers.get(&call)
    }

    /// Waiting callers, head first.
    pub fn waiting(&self) -> Vec<(CallId, &Caller)> {
        let mut waiting: Vec<_> = self
            .callers
            .iter()
            .filter(|(_, c)| c.is_waiting())
            .map(|(id, c)| (*id, c))
            .collect();
        waiting.sort_by_key(|(_, c)| c.position);
        waiting
    }

    /// Callers talking to an agent.
    pub fn talking(&self) -> usize {
        self.callers.values().filter(|c| !c.is_waiting()).count()
    }

    /// Callers an agent answered, whose call has ended (including transfers).
    pub fn completed(&self) -> u64 {
        self.left_with(QueueLeaveReason::Answered) + self.left_with(QueueLeaveReason::Transfer)
    }

    /// Callers who hung up while waiting.
    pub fn abandoned(&self) -> u64 {
        self.left_with(QueueLeaveReason::Abandoned)
    }

    pub fn left_with(&self, reason: QueueLeaveReason) -> u64 {
        self.left.get(&reason.into()).copied().unwrap_or(0)
    }

    /// Callers turned away on arrival.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    pub fn calls_taken(&self, agent: AgentId) -> u64 {
        self.agents.get(&agent).map_or(0, |a| a.calls_taken)
    }

    /// When the agent's last queue call ended.
    pub fn last_call_at(&self, agent: AgentId) -> Option<DateTime<Utc>> {
        self.agents.get(&agent).and_then(|a| a.last_call_at)
    }

    pub(super) fn waiting_count(&self) -> u32 {
        let n = self.callers.values().filter(|c| c.is_waiting()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Folds one event that happened at `now`; see `Aggregate::evolve`.
    pub(super) fn apply(&mut self, event: &QueueEvent, now: DateTime<Utc>) {
        use QueueEvent as E;
        match event {
            E::QueueConfigured { queue, .. } => {
                self.id = Some(queue.clone());
                self.deleted = false;
                self.settings = QueueSettings::recorded_by(event);
            }
            E::QueueDeleted { .. } => {
                *self = Queue {
                    id: self.id.take(),
                    deleted: true,
                    ..Queue::default()
                };
            }
            E::QueueCallerJoined {
                call,
                leg,
                caller,
                position,
                ..
            } => {
                self.callers.insert(
                    *call,
                    Caller {
                        leg: *leg,
                        caller: caller.clone(),
                        joined_at: now,
                        original_position: *position,
                        position: *position,
                        connected: None,
                    },
                );
            }
            E::QueueCallerPositionChanged { call, position, .. } => {
                if let Some(c) = self.callers.get_mut(call) {
                    c.position = *position;
                }
            }
            E::QueueCallerRejected { .. } => self.rejected += 1,
            E::QueueCallerLeft { call, reason, .. } => {
                if self.callers.shift_remove(call).is_some() {
                    *self.left.entry((*reason).into()).or_default() += 1;
                }
            }
            E::AgentLoggedIn {
                agent,
                user,
                extension,
                department,
                penalty,
                membership,
                ..
            } => {
                self.agents.insert(
                    *agent,
                    Agent {
                        user: user.clone(),
                        extension: extension.clone(),
                        department: department.clone(),
                        penalty: *penalty,
                        membership: *membership,
                        logged_in_at: now,
                        paused: None,
                        line: None,
                        activity: Activity::Idle,
                        calls_taken: 0,
                        last_call_at: None,
                    },
                );
            }
            E::AgentLoggedOut { agent, .. } => {
                self.agents.shift_remove(agent);
            }
            E::AgentPaused { agent, reason, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.paused = Some(reason.clone());
                }
            }
            E::AgentUnpaused { agent, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.paused = None;
                }
            }
            E::AllAgentsPaused { agents, reason, .. } => {
                for agent in agents {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.paused = Some(reason.clone());
                    }
                }
            }
            E::AllAgentsUnpaused { agents, .. } => {
                for agent in agents {
                    if let Some(a) = self.agents.get_mut(agent) {
                        a.paused = None;
                    }
                }
            }
            E::AgentPenaltyChanged { agent, penalty, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.penalty = *penalty;
                }
            }
            E::AgentLineChanged { agent, line, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.line = Some(*line);
                }
            }
            E::AgentReserved { agent, call, .. } => {
                let ring = self.settings.as_ref().map_or(0, |s| s.ring_timeout_ms);
                if let Some(a) = self.agents.get_mut(agent) {
                    a.activity = Activity::Offered {
                        call: *call,
                        leg: None,
                        since: now,
                        deadline: plus_ms(now, ring),
                    };
                    self.last_reserved = Some(*agent);
                }
            }
            E::AgentOffered { agent, leg, .. } => {
                if let Some(Agent {
                    activity: Activity::Offered { leg: l, since, .. },
                    ..
                }) = self.agents.get_mut(agent)
                {
                    *l = Some(*leg);
                    *since = now;
                }
            }
            E::AgentRingNoAnswer { agent, .. } | E::AgentRingCancelled { agent, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.activity = Activity::Idle;
                }
            }
            E::AgentConnected {
                agent,
                call,
                hold_ms,
                ring_ms,
                ..
            } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.activity = Activity::Connected { call: *call };
                }
                if let Some(c) = self.callers.get_mut(call) {
                    c.position = 0;
                    c.connected = Some(Connection {
                        agent: *agent,
                        at: now,
                        hold_ms: *hold_ms,
                        ring_ms: *ring_ms,
                    });
                }
            }
            E::AgentCompleted { agent, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.activity = Activity::Idle;
                    a.calls_taken += 1;
                    a.last_call_at = Some(now);
                }
            }
            E::AgentWrapUpStarted { agent, until, .. } => {
                if let Some(a) = self.agents.get_mut(agent) {
                    a.activity = Activity::WrapUp { until: *until };
                }
            }
            E::AgentWrapUpEnded { agent, .. } => {
                if let Some(a) = self.agents.get_mut(agent)
                    && matches!(a.activity, Activity::WrapUp { .. })
                {
                    a.activity = Activity::Idle;
                }
            }
        }
    }
}
