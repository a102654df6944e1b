//! Queue events: the queue's configuration, its callers (join, position, leave with reason and
//! durations) and its agents, with the split mod_callcenter makes between an agent's *intent*
//! (logged in, paused) and the *system's* view of them (reserved, offered, connected, wrap-up).
//! One stream per queue (`queue-<tenant>.<queue>`): the live board, per-agent counters and
//! queue statistics fold from it alone.
//!
//! A caller's queue session ends with exactly one `QueueCallerLeft` (or `QueueCallerRejected`
//! when it never got in), so "waiting", "talking", "completed" and "abandoned" never double
//! count around transfers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{LineState, Party};
use crate::ids::{
    AgentId, CallId, DepartmentId, ExtensionNumber, LegId, PhoneNumber, QueueId, UserId,
};

event_enum! {
    /// Facts about one queue. Variants are never renamed or removed; add a new one.
    pub enum QueueEvent in Queue {
        /// The queue was created or its settings changed; the event holds all of them.
        QueueConfigured = "QueueConfigured" {
            queue: QueueId,
            name: String,
            extension: ExtensionNumber,
            strategy: QueueStrategy,
            /// How long one agent rings per offer.
            ring_timeout_ms: u64,
            /// Callers waiting longer leave with `timeout`; absent: no limit.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            max_wait_ms: Option<u64>,
            /// Callers beyond this are rejected with `full`; absent: no limit.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            max_callers: Option<u32>,
            /// Pause after each call before the agent is offered another.
            wrap_up_ms: u64,
            /// Callers may join while no agent is logged in.
            join_empty: bool,
            /// Waiting callers leave with `empty` when the last agent logs out.
            leave_when_empty: bool,
            /// Digit a waiting caller may press to leave (`key`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            exit_key: Option<char>,
            /// Where callers go on timeout, full or empty; absent: voicemail of the queue.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            fallback: Option<PhoneNumber>,
            /// Hold-music class.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            music_on_hold: Option<String>,
        },
        QueueDeleted = "QueueDeleted" {
            queue: QueueId,
        },
        /// A caller entered the queue and waits.
        QueueCallerJoined = "QueueCallerJoined" {
            queue: QueueId,
            call: CallId,
            leg: LegId,
            caller: Party,
            /// One-based position on entry.
            position: u32,
        },
        /// A caller moved up (someone ahead left).
        QueueCallerPositionChanged = "QueueCallerPositionChanged" {
            queue: QueueId,
            call: CallId,
            position: u32,
            previous: u32,
        },
        /// A caller was turned away on arrival.
        QueueCallerRejected = "QueueCallerRejected" {
            queue: QueueId,
            call: CallId,
            caller: Party,
            reason: QueueRejectReason,
        },
        /// A caller's queue session ended. Exactly once per `QueueCallerJoined`.
        QueueCallerLeft = "QueueCallerLeft" {
            queue: QueueId,
            call: CallId,
            reason: QueueLeaveReason,
            /// For `key`: the digit pressed.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            key: Option<char>,
            /// Position when the caller stopped waiting (0 once connected to an agent).
            position: u32,
            /// Position on entry.
            original_position: u32,
            /// Time spent waiting, until connected or gone.
            hold_ms: u64,
            /// Time the answering agent rang; 0 if no agent answered.
            ring_ms: u64,
            /// Time talking to the agent; 0 if no agent answered.
            talk_ms: u64,
            /// The agent who answered.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            agent: Option<AgentId>,
        },
        /// A user became an agent of the queue (dynamic login or static membership).
        AgentLoggedIn = "AgentLoggedIn" {
            queue: QueueId,
            agent: AgentId,
            user: UserId,
            extension: ExtensionNumber,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            department: Option<DepartmentId>,
            /// Lower penalties are offered calls first.
            penalty: u32,
            membership: Membership,
        },
        AgentLoggedOut = "AgentLoggedOut" {
            queue: QueueId,
            agent: AgentId,
            reason: AgentLogoutReason,
            /// How long the agent was logged in.
            session_ms: u64,
        },
        AgentPaused = "AgentPaused" {
            queue: QueueId,
            agent: AgentId,
            /// Free text chosen by the agent or supervisor (`lunch`, `training`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
            /// The supervisor who paused the agent, when not the agent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        AgentUnpaused = "AgentUnpaused" {
            queue: QueueId,
            agent: AgentId,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// "Pause all": every listed agent is paused; no per-agent `AgentPaused` follows.
        AllAgentsPaused = "AllAgentsPaused" {
            queue: QueueId,
            /// The agents that were not paused before.
            agents: Vec<AgentId>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        AllAgentsUnpaused = "AllAgentsUnpaused" {
            queue: QueueId,
            /// The agents that were paused before.
            agents: Vec<AgentId>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        AgentPenaltyChanged = "AgentPenaltyChanged" {
            queue: QueueId,
            agent: AgentId,
            penalty: u32,
            previous: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            by: Option<UserId>,
        },
        /// The agent was chosen for a caller and is held for them until offered.
        AgentReserved = "AgentReserved" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
        },
        /// The agent's phone is ringing with a queue call.
        AgentOffered = "AgentOffered" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
            /// The leg ringing the agent.
            leg: LegId,
        },
        /// The agent did not answer within the ring timeout.
        AgentRingNoAnswer = "AgentRingNoAnswer" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
            ring_ms: u64,
        },
        /// The offer was withdrawn: another agent answered, or the caller left.
        AgentRingCancelled = "AgentRingCancelled" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
            ring_ms: u64,
        },
        /// The agent answered: the caller stops waiting and starts talking.
        AgentConnected = "AgentConnected" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
            leg: LegId,
            hold_ms: u64,
            ring_ms: u64,
        },
        /// The agent's queue call ended.
        AgentCompleted = "AgentCompleted" {
            queue: QueueId,
            agent: AgentId,
            call: CallId,
            hold_ms: u64,
            talk_ms: u64,
            ended_by: CompletedBy,
        },
        AgentWrapUpStarted = "AgentWrapUpStarted" {
            queue: QueueId,
            agent: AgentId,
            /// When the agent becomes available again.
            until: DateTime<Utc>,
        },
        AgentWrapUpEnded = "AgentWrapUpEnded" {
            queue: QueueId,
            agent: AgentId,
            /// The agent ended it before `until`.
            early: bool,
        },
        /// The line of an agent's extension changed, as the queue sees it (Asterisk's
        /// `QueueMemberStatus`). Only an agent whose line is idle is offered a call.
        AgentLineChanged = "AgentLineChanged" {
            queue: QueueId,
            agent: AgentId,
            line: LineState,
        },
    }
}

/// How agents are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStrategy {
    RingAll,
    RoundRobin,
    /// The agent whose last call ended longest ago.
    LeastRecent,
    FewestCalls,
}

/// Why a caller never got into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueRejectReason {
    /// `max_callers` were already waiting.
    Full,
    /// No agent was logged in and `join_empty` is off.
    Empty,
}

/// Why a caller's queue session ended. (A full queue turns callers away before they join:
/// `QueueRejectReason::Full`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueLeaveReason {
    /// An agent answered and the call ended.
    Answered,
    /// An agent answered and transferred the caller elsewhere.
    Transfer,
    /// The caller hung up while waiting.
    Abandoned,
    /// `max_wait_ms` passed.
    Timeout,
    /// The last agent left and `leave_when_empty` is on.
    Empty,
    /// The caller pressed the exit key.
    Key,
}

/// How an agent came to be a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Membership {
    /// Configured by an administrator.
    Static,
    /// Logged in by the agent (feature code or panel).
    Dynamic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentLogoutReason {
    /// The agent logged out.
    Requested,
    /// A supervisor or administrator logged them out.
    Admin,
    /// The agent's last device registration went away.
    DeviceUnavailable,
    /// Membership removed from the queue configuration.
    Removed,
}

/// Who ended an agent's queue call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletedBy {
    Agent,
    Caller,
    /// The agent transferred the caller.
    Transfer,
}
