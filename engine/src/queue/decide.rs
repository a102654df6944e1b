//! `decide` for a queue: what a command makes happen, given the state and the time. Each
//! command's own events are followed by `dispatch`, which hands waiting callers to available
//! agents by strategy, so no caller waits while an agent who could take them sits idle. Events
//! are folded into a draft copy of the state as they are produced, so later steps see earlier
//! ones. A timer that fires late or after the situation changed is not an error: it decides
//! nothing.

use chrono::{DateTime, Utc};

use events::ids::{AgentId, CallId, LegId, QueueId, UserId};
use events::model::{
    AgentLogoutReason, CompletedBy, LineState, Membership, Party, QueueEvent, QueueLeaveReason,
    QueueRejectReason,
};

use super::command::{QueueCommand, QueueSettings};
use super::state::{Activity, Queue};
use super::strategy::dispatch;
use crate::aggregate::{Deadline, elapsed_ms, plus_ms};

/// Why a queue refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueRejection {
    #[error("the queue is not configured")]
    NotConfigured,
    #[error("queue {0} was deleted")]
    Deleted(QueueId),
    #[error("this is queue {actual}, not {requested}")]
    WrongQueue { actual: QueueId, requested: QueueId },
    #[error("invalid queue settings: {0}")]
    InvalidSettings(&'static str),
    #[error("the queue still has {0} caller(s); they must leave before it is deleted")]
    CallersPresent(usize),
    #[error("agent {0} is not logged in to this queue")]
    UnknownAgent(AgentId),
    #[error("agent {0} is already logged in to this queue")]
    AgentAlreadyLoggedIn(AgentId),
    #[error("user {0} is already an agent of this queue")]
    UserAlreadyAgent(UserId),
    #[error("agent {0} is already paused")]
    AlreadyPaused(AgentId),
    #[error("agent {0} is not paused")]
    NotPaused(AgentId),
    #[error("agent {agent} is connected to queue call {call}; it must end first")]
    AgentOnQueueCall { agent: AgentId, call: CallId },
    #[error("call {0} is not in this queue")]
    UnknownCaller(CallId),
    #[error("call {0} is already in this queue")]
    CallerAlreadyInQueue(CallId),
    #[error("agent {agent} is not reserved for call {call}")]
    NotReserved { agent: AgentId, call: CallId },
    #[error("agent {agent} is not ringing with call {call}")]
    NotRinging { agent: AgentId, call: CallId },
    #[error("call {0} is still waiting; no agent is connected to it")]
    CallerNotConnected(CallId),
}

type Decided = Result<(), QueueRejection>;

pub(super) fn decide(
    queue: &Queue,
    command: &QueueCommand,
    now: DateTime<Utc>,
) -> Result<Vec<QueueEvent>, QueueRejection> {
    use QueueCommand as C;
    if let C::Configure {
        queue: id,
        settings,
    } = command
    {
        return configure(queue, id, settings, now);
    }
    if let (Some(id), true) = (&queue.id, queue.deleted) {
        return Err(QueueRejection::Deleted(id.clone()));
    }
    let (Some(id), Some(settings)) = (queue.id.clone(), queue.settings.clone()) else {
        return Err(QueueRejection::NotConfigured);
    };
    let mut d = Draft {
        state: queue.clone(),
        queue: id,
        settings,
        now,
        events: Vec::new(),
    };
    match command {
        C::Configure { .. } => {}
        C::Delete => return delete(d),
        C::LogIn {
            agent,
            user,
            extension,
            department,
            penalty,
            membership,
        } => log_in(
            &mut d,
            *agent,
            user,
            extension,
            department,
            *penalty,
            *membership,
        )?,
        C::LogOut { agent, reason } => log_out(&mut d, *agent, *reason)?,
        C::Pause { agent, reason, by } => pause(&mut d, *agent, reason, by)?,
        C::Unpause { agent, by } => unpause(&mut d, *agent, by)?,
        C::PauseAll { reason, by } => pause_all(&mut d, reason, by),
        C::UnpauseAll { by } => unpause_all(&mut d, by),
        C::SetPenalty { agent, penalty, by } => set_penalty(&mut d, *agent, *penalty, by)?,
        C::ObserveAgentLine { agent, line } => observe_line(&mut d, *agent, *line)?,
        C::Join { call, leg, caller } => join(&mut d, *call, *leg, caller)?,
        C::PressKey { call, key } => press_key(&mut d, *call, *key)?,
        C::CallerHungUp { call } => caller_hung_up(&mut d, *call)?,
        C::AgentRinging { agent, call, leg } => agent_ringing(&mut d, *agent, *call, *leg)?,
        C::AgentAnswered { agent, call } => agent_answered(&mut d, *agent, *call)?,
        C::RingNoAnswer { agent, call } => ring_no_answer(&mut d, *agent, *call),
        C::Complete { call, by } => complete(&mut d, *call, *by)?,
        C::MaxWaitExceeded { call } => max_wait_exceeded(&mut d, *call),
        C::EndWrapUp { agent } => end_wrap_up(&mut d, *agent),
    }
    dispatch(&mut d);
    Ok(d.events)
}

/// The queue's timers: each waiting caller's max wait, each offer's ring timeout, each
/// wrap-up.
pub(super) fn deadlines(queue: &Queue) -> Vec<Deadline<QueueCommand>> {
    let Some(settings) = queue.settings.as_ref().filter(|_| !queue.deleted) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(max) = settings.max_wait_ms {
        for (call, c) in queue.callers.iter().filter(|(_, c)| c.is_waiting()) {
            out.push(Deadline::new(
                plus_ms(c.joined_at, max),
                QueueCommand::MaxWaitExceeded { call: *call },
            ));
        }
    }
    for (agent, a) in &queue.agents {
        match a.activity {
            Activity::Offered { call, deadline, .. } => out.push(Deadline::new(
                deadline,
                QueueCommand::RingNoAnswer {
                    agent: *agent,
                    call,
                },
            )),
            Activity::WrapUp { until } => out.push(Deadline::new(
                until,
                QueueCommand::EndWrapUp { agent: *agent },
            )),
            Activity::Idle | Activity::Connected { .. } => {}
        }
    }
    out
}

/// The state as the events decided so far leave it, and those events.
pub(super) struct Draft {
    pub(super) state: Queue,
    queue: QueueId,
    pub(super) settings: QueueSettings,
    now: DateTime<Utc>,
    events: Vec<QueueEvent>,
}

impl Draft {
    /// Records `event`, folding it into the draft at `now`: the instant it is stored with and
    /// folded at once appended.
    pub(super) fn emit(&mut self, event: QueueEvent) {
        self.state.apply(&event, self.now);
        self.events.push(event);
    }

    pub(super) fn q(&self) -> QueueId {
        self.queue.clone()
    }

    /// Withdraws every offer of `call`.
    fn cancel_offers(&mut self, call: CallId) {
        let offered: Vec<_> = self
            .state
            .agents
            .iter()
            .filter_map(|(id, a)| match a.activity {
                Activity::Offered { call: c, since, .. } if c == call => Some((*id, since)),
                _ => None,
            })
            .collect();
        for (agent, since) in offered {
            self.cancel_offer(agent, call, since);
        }
    }

    fn cancel_offer(&mut self, agent: AgentId, call: CallId, since: DateTime<Utc>) {
        let ring_ms = elapsed_ms(since, self.now);
        self.emit(QueueEvent::AgentRingCancelled {
            queue: self.q(),
            agent,
            call,
            ring_ms,
        });
    }

    /// Withdraws the agent's offer, if any.
    fn cancel_agent_offer(&mut self, agent: AgentId) {
        if let Some(a) = self.state.agents.get(&agent)
            && let Activity::Offered { call, since, .. } = a.activity
        {
            self.cancel_offer(agent, call, since);
        }
    }

    /// Moves every waiting caller behind `vacated` up one place.
    fn close_gap(&mut self, vacated: u32) {
        let behind: Vec<_> = self
            .state
            .waiting()
            .into_iter()
            .filter(|(_, c)| c.position > vacated)
            .map(|(call, c)| (call, c.position))
            .collect();
        for (call, previous) in behind {
            self.emit(QueueEvent::QueueCallerPositionChanged {
                queue: self.q(),
                call,
                position: previous - 1,
                previous,
            });
        }
    }

    /// A waiting caller leaves without having been answered.
    fn stop_waiting(&mut self, call: CallId, reason: QueueLeaveReason, key: Option<char>) {
        let Some(c) = self.state.callers.get(&call).filter(|c| c.is_waiting()) else {
            return;
        };
        let (position, original_position) = (c.position, c.original_position);
        let hold_ms = elapsed_ms(c.joined_at, self.now);
        self.cancel_offers(call);
        self.emit(QueueEvent::QueueCallerLeft {
            queue: self.q(),
            call,
            reason,
            key,
            position,
            original_position,
            hold_ms,
            ring_ms: 0,
            talk_ms: 0,
            agent: None,
        });
        self.close_gap(position);
    }
}

fn configure(
    queue: &Queue,
    id: &QueueId,
    settings: &QueueSettings,
    now: DateTime<Utc>,
) -> Result<Vec<QueueEvent>, QueueRejection> {
    if let Some(actual) = &queue.id
        && actual != id
    {
        return Err(QueueRejection::WrongQueue {
            actual: actual.clone(),
            requested: id.clone(),
        });
    }
    validate(settings)?;
    if !queue.deleted && queue.settings.as_ref() == Some(settings) {
        return Ok(Vec::new());
    }
    let s = settings.clone();
    let mut d = Draft {
        state: queue.clone(),
        queue: id.clone(),
        settings: s.clone(),
        now,
        events: Vec::new(),
    };
    d.emit(QueueEvent::QueueConfigured {
        queue: id.clone(),
        name: s.name,
        extension: s.extension,
        strategy: s.strategy,
        ring_timeout_ms: s.ring_timeout_ms,
        max_wait_ms: s.max_wait_ms,
        max_callers: s.max_callers,
        wrap_up_ms: s.wrap_up_ms,
        join_empty: s.join_empty,
        leave_when_empty: s.leave_when_empty,
        exit_key: s.exit_key,
        fallback: s.fallback,
        music_on_hold: s.music_on_hold,
    });
    dispatch(&mut d);
    Ok(d.events)
}

fn validate(s: &QueueSettings) -> Decided {
    let invalid = |why| Err(QueueRejection::InvalidSettings(why));
    if s.name.trim().is_empty() {
        return invalid("the name is empty");
    }
    if s.ring_timeout_ms == 0 {
        return invalid("the ring timeout must be more than zero");
    }
    if s.max_wait_ms == Some(0) {
        return invalid("the maximum wait must be more than zero (or no limit)");
    }
    if s.max_callers == Some(0) {
        return invalid("the maximum number of callers must be at least one (or no limit)");
    }
    if let Some(k) = s.exit_key
        && !matches!(k, '0'..='9' | '*' | '#' | 'A'..='D')
    {
        return invalid("the exit key must be a DTMF digit (0-9, *, #, A-D)");
    }
    Ok(())
}

fn delete(mut d: Draft) -> Result<Vec<QueueEvent>, QueueRejection> {
    if !d.state.callers.is_empty() {
        return Err(QueueRejection::CallersPresent(d.state.callers.len()));
    }
    let queue = d.q();
    d.emit(QueueEvent::QueueDeleted { queue });
    Ok(d.events)
}

#[allow(clippy::too_many_arguments)]
fn log_in(
    d: &mut Draft,
    agent: AgentId,
    user: &UserId,
    extension: &events::ids::ExtensionNumber,
    department: &Option<events::ids::DepartmentId>,
    penalty: u32,
    membership: Membership,
) -> Decided {
    if d.state.agents.contains_key(&agent) {
        return Err(QueueRejection::AgentAlreadyLoggedIn(agent));
    }
    if d.state.agents.values().any(|a| &a.user == user) {
        return Err(QueueRejection::UserAlreadyAgent(user.clone()));
    }
    d.emit(QueueEvent::AgentLoggedIn {
        queue: d.q(),
        agent,
        user: user.clone(),
        extension: extension.clone(),
        department: department.clone(),
        penalty,
        membership,
    });
    Ok(())
}

fn log_out(d: &mut Draft, agent: AgentId, reason: AgentLogoutReason) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    if let Activity::Connected { call } = a.activity {
        return Err(QueueRejection::AgentOnQueueCall { agent, call });
    }
    let session_ms = elapsed_ms(a.logged_in_at, d.now);
    d.cancel_agent_offer(agent);
    d.emit(QueueEvent::AgentLoggedOut {
        queue: d.q(),
        agent,
        reason,
        session_ms,
    });
    if d.state.agents.is_empty() && d.settings.leave_when_empty {
        // From the back of the line, so nobody's position changes on the way out.
        let mut waiting = d.state.waiting();
        waiting.reverse();
        let calls: Vec<CallId> = waiting.into_iter().map(|(call, _)| call).collect();
        for call in calls {
            d.stop_waiting(call, QueueLeaveReason::Empty, None);
        }
    }
    Ok(())
}

fn pause(d: &mut Draft, agent: AgentId, reason: &Option<String>, by: &Option<UserId>) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    if a.paused.is_some() {
        return Err(QueueRejection::AlreadyPaused(agent));
    }
    d.cancel_agent_offer(agent);
    d.emit(QueueEvent::AgentPaused {
        queue: d.q(),
        agent,
        reason: reason.clone(),
        by: by.clone(),
    });
    Ok(())
}

fn unpause(d: &mut Draft, agent: AgentId, by: &Option<UserId>) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    if a.paused.is_none() {
        return Err(QueueRejection::NotPaused(agent));
    }
    d.emit(QueueEvent::AgentUnpaused {
        queue: d.q(),
        agent,
        by: by.clone(),
    });
    Ok(())
}

fn pause_all(d: &mut Draft, reason: &Option<String>, by: &Option<UserId>) {
    let agents: Vec<AgentId> = d
        .state
        .agents
        .iter()
        .filter(|(_, a)| a.paused.is_none())
        .map(|(id, _)| *id)
        .collect();
    if agents.is_empty() {
        return;
    }
    for agent in &agents {
        d.cancel_agent_offer(*agent);
    }
    d.emit(QueueEvent::AllAgentsPaused {
        queue: d.q(),
        agents,
        reason: reason.clone(),
        by: by.clone(),
    });
}

fn unpause_all(d: &mut Draft, by: &Option<UserId>) {
    let agents: Vec<AgentId> = d
        .state
        .agents
        .iter()
        .filter(|(_, a)| a.paused.is_some())
        .map(|(id, _)| *id)
        .collect();
    if agents.is_empty() {
        return;
    }
    d.emit(QueueEvent::AllAgentsUnpaused {
        queue: d.q(),
        agents,
        by: by.clone(),
    });
}

fn set_penalty(d: &mut Draft, agent: AgentId, penalty: u32, by: &Option<UserId>) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    if a.penalty == penalty {
        return Ok(());
    }
    let previous = a.penalty;
    d.emit(QueueEvent::AgentPenaltyChanged {
        queue: d.q(),
        agent,
        penalty,
        previous,
        by: by.clone(),
    });
    Ok(())
}

fn observe_line(d: &mut Draft, agent: AgentId, line: LineState) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    if a.line != Some(line) {
        d.emit(QueueEvent::AgentLineChanged {
            queue: d.q(),
            agent,
            line,
        });
    }
    Ok(())
}

fn join(d: &mut Draft, call: CallId, leg: LegId, caller: &Party) -> Decided {
    if d.state.callers.contains_key(&call) {
        return Err(QueueRejection::CallerAlreadyInQueue(call));
    }
    let waiting = d.state.waiting_count();
    let refused = if d.settings.max_callers.is_some_and(|max| waiting >= max) {
        Some(QueueRejectReason::Full)
    } else if !d.settings.join_empty && d.state.agents.is_empty() {
        Some(QueueRejectReason::Empty)
    } else {
        None
    };
    let event = match refused {
        Some(reason) => QueueEvent::QueueCallerRejected {
            queue: d.q(),
            call,
            caller: caller.clone(),
            reason,
        },
        None => QueueEvent::QueueCallerJoined {
            queue: d.q(),
            call,
            leg,
            caller: caller.clone(),
            position: waiting + 1,
        },
    };
    d.emit(event);
    Ok(())
}

fn press_key(d: &mut Draft, call: CallId, key: char) -> Decided {
    let c = d
        .state
        .callers
        .get(&call)
        .ok_or(QueueRejection::UnknownCaller(call))?;
    if c.is_waiting() && d.settings.exit_key == Some(key) {
        d.stop_waiting(call, QueueLeaveReason::Key, Some(key));
    }
    Ok(())
}

fn caller_hung_up(d: &mut Draft, call: CallId) -> Decided {
    let c = d
        .state
        .callers
        .get(&call)
        .ok_or(QueueRejection::UnknownCaller(call))?;
    if c.is_waiting() {
        d.stop_waiting(call, QueueLeaveReason::Abandoned, None);
        Ok(())
    } else {
        complete(d, call, CompletedBy::Caller)
    }
}

fn agent_ringing(d: &mut Draft, agent: AgentId, call: CallId, leg: LegId) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    match a.activity {
        Activity::Offered {
            call: c, leg: None, ..
        } if c == call => {
            d.emit(QueueEvent::AgentOffered {
                queue: d.q(),
                agent,
                call,
                leg,
            });
            Ok(())
        }
        Activity::Offered {
            call: c,
            leg: Some(l),
            ..
        } if c == call && l == leg => Ok(()),
        _ => Err(QueueRejection::NotReserved { agent, call }),
    }
}

fn agent_answered(d: &mut Draft, agent: AgentId, call: CallId) -> Decided {
    let a = d
        .state
        .agents
        .get(&agent)
        .ok_or(QueueRejection::UnknownAgent(agent))?;
    let Activity::Offered {
        call: c,
        leg: Some(leg),
        since,
        ..
    } = a.activity
    else {
        return Err(QueueRejection::NotRinging { agent, call });
    };
    if c != call {
        return Err(QueueRejection::NotRinging { agent, call });
    }
    let caller = d
        .state
        .callers
        .get(&call)
        .filter(|c| c.is_waiting())
        .ok_or(QueueRejection::UnknownCaller(call))?;
    let vacated = caller.position;
    let hold_ms = elapsed_ms(caller.joined_at, d.now);
    let ring_ms = elapsed_ms(since, d.now);
    d.emit(QueueEvent::AgentConnected {
        queue: d.q(),
        agent,
        call,
        leg,
        hold_ms,
        ring_ms,
    });
    d.cancel_offers(call);
    d.close_gap(vacated);
    Ok(())
}

fn ring_no_answer(d: &mut Draft, agent: AgentId, call: CallId) {
    if let Some(a) = d.state.agents.get(&agent)
        && let Activity::Offered { call: c, since, .. } = a.activity
        && c == call
    {
        let ring_ms = elapsed_ms(since, d.now);
        d.emit(QueueEvent::AgentRingNoAnswer {
            queue: d.q(),
            agent,
            call,
            ring_ms,
        });
    }
}

fn complete(d: &mut Draft, call: CallId, by: CompletedBy) -> Decided {
    let caller = d
        .state
        .callers
        .get(&call)
        .ok_or(QueueRejection::UnknownCaller(call))?;
    let Some(conn) = caller.connected.clone() else {
        return Err(QueueRejection::CallerNotConnected(call));
    };
    let original_position = caller.original_position;
    let talk_ms = elapsed_ms(conn.at, d.now);
    d.emit(QueueEvent::AgentCompleted {
        queue: d.q(),
        agent: conn.agent,
        call,
        hold_ms: conn.hold_ms,
        talk_ms,
        ended_by: by,
    });
    d.emit(QueueEvent::QueueCallerLeft {
        queue: d.q(),
        call,
        reason: match by {
            CompletedBy::Transfer => QueueLeaveReason::Transfer,
            CompletedBy::Agent | CompletedBy::Caller => QueueLeaveReason::Answered,
        },
        key: None,
        position: 0,
        original_position,
        hold_ms: conn.hold_ms,
        ring_ms: conn.ring_ms,
        talk_ms,
        agent: Some(conn.agent),
    });
    if d.settings.wrap_up_ms > 0 && d.state.agents.contains_key(&conn.agent) {
        let until = plus_ms(d.now, d.settings.wrap_up_ms);
        d.emit(QueueEvent::AgentWrapUpStarted {
            queue: d.q(),
            agent: conn.agent,
            until,
        });
    }
    Ok(())
}

fn max_wait_exceeded(d: &mut Draft, call: CallId) {
    let due = match (d.state.callers.get(&call), d.settings.max_wait_ms) {
        (Some(c), Some(max)) => c.is_waiting() && d.now >= plus_ms(c.joined_at, max),
        _ => false,
    };
    if due {
        d.stop_waiting(call, QueueLeaveReason::Timeout, None);
    }
}

fn end_wrap_up(d: &mut Draft, agent: AgentId) {
    if let Some(a) = d.state.agents.get(&agent)
        && let Activity::WrapUp { until } = a.activity
    {
        let early = d.now < until;
        d.emit(QueueEvent::AgentWrapUpEnded {
            queue: d.q(),
            agent,
            early,
        });
    }
}
