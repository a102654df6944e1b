//! What can be asked of a queue: its configuration, agents' intent (log in, pause), what the
//! rest of the system observed (an agent's line, a ringing leg, an answer, a hang-up) and the
//! timers it armed (ring timeout, max wait, wrap-up), each fed back as a command.

use events::ids::{
    AgentId, CallId, DepartmentId, ExtensionNumber, LegId, PhoneNumber, QueueId, UserId,
};
use events::model::{
    AgentLogoutReason, CompletedBy, LineState, Membership, Party, QueueEvent, QueueStrategy,
};

/// Every setting of a queue, as `QueueConfigured` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub name: String,
    pub extension: ExtensionNumber,
    pub strategy: QueueStrategy,
    /// How long one agent rings per offer; more than zero.
    pub ring_timeout_ms: u64,
    pub max_wait_ms: Option<u64>,
    pub max_callers: Option<u32>,
    pub wrap_up_ms: u64,
    pub join_empty: bool,
    pub leave_when_empty: bool,
    pub exit_key: Option<char>,
    pub fallback: Option<PhoneNumber>,
    pub music_on_hold: Option<String>,
}

impl QueueSettings {
    /// The settings `event` records, when it is a `QueueConfigured`.
    pub fn recorded_by(event: &QueueEvent) -> Option<Self> {
        let QueueEvent::QueueConfigured {
            queue: _,
            name,
            extension,
            strategy,
            ring_timeout_ms,
            max_wait_ms,
            max_callers,
            wrap_up_ms,
            join_empty,
            leave_when_empty,
            exit_key,
            fallback,
            music_on_hold,
        } = event
        else {
            return None;
        };
        Some(Self {
            name: name.clone(),
            extension: extension.clone(),
            strategy: *strategy,
            ring_timeout_ms: *ring_timeout_ms,
            max_wait_ms: *max_wait_ms,
            max_callers: *max_callers,
            wrap_up_ms: *wrap_up_ms,
            join_empty: *join_empty,
            leave_when_empty: *leave_when_empty,
            exit_key: *exit_key,
            fallback: fallback.clone(),
            music_on_hold: music_on_hold.clone(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueCommand {
    /// Creates the queue or changes its settings.
    Configure {
        queue: QueueId,
        settings: QueueSettings,
    },
    /// Removes the queue; refused while callers are in it.
    Delete,
    LogIn {
        /// The new membership's id.
        agent: AgentId,
        user: UserId,
        extension: ExtensionNumber,
        department: Option<DepartmentId>,
        penalty: u32,
        membership: Membership,
    },
    /// Refused while the agent is connected to a queue caller; an offer is withdrawn.
    LogOut {
        agent: AgentId,
        reason: AgentLogoutReason,
    },
    /// Withdraws any offer the agent has; a call in progress goes on.
    Pause {
        agent: AgentId,
        reason: Option<String>,
        by: Option<UserId>,
    },
    Unpause {
        agent: AgentId,
        by: Option<UserId>,
    },
    PauseAll {
        reason: Option<String>,
        by: Option<UserId>,
    },
    UnpauseAll {
        by: Option<UserId>,
    },
    SetPenalty {
        agent: AgentId,
        penalty: u32,
        by: Option<UserId>,
    },
    /// The agent's extension reported its line; only an idle line is offered calls.
    ObserveAgentLine {
        agent: AgentId,
        line: LineState,
    },
    /// A caller arrives; turned away (`QueueCallerRejected`) when full or empty.
    Join {
        call: CallId,
        leg: LegId,
        caller: Party,
    },
    /// A waiting caller pressed a digit; the exit key makes them leave.
    PressKey {
        call: CallId,
        key: char,
    },
    /// The caller hung up: abandoned while waiting, completed by the caller once connected.
    CallerHungUp {
        call: CallId,
    },
    /// The leg ringing a reserved agent exists: the agent is offered the call.
    AgentRinging {
        agent: AgentId,
        call: CallId,
        leg: LegId,
    },
    AgentAnswered {
        agent: AgentId,
        call: CallId,
    },
    /// The offer's ring timeout passed, or the agent's phone declined or was busy.
    RingNoAnswer {
        agent: AgentId,
        call: CallId,
    },
    /// A connected queue call ended.
    Complete {
        call: CallId,
        by: CompletedBy,
    },
    /// Timer: the caller's maximum wait passed.
    MaxWaitExceeded {
        call: CallId,
    },
    /// Timer, or the agent ending wrap-up early.
    EndWrapUp {
        agent: AgentId,
    },
}
