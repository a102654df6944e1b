//! Given/when/then for the queue: configuration, agents, callers, strategies, timers, counters.

use chrono::{DateTime, Duration, Utc};

use events::ids::{AgentId, CallId, LegId, QueueId, UserId};
use events::model::{
    AgentLogoutReason, CompletedBy, LineState, Membership, Party, QueueEvent as E,
    QueueLeaveReason, QueueRejectReason, QueueStrategy,
};

use super::*;
use crate::testing::{given, t0};

pub(super) fn queue_id() -> QueueId {
    QueueId::parse("support").unwrap_or_else(|e| panic!("{e}"))
}

fn uuid_id<T: std::str::FromStr>(kind: u32, n: u32) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("00000000-0000-4000-8{kind:03}-{n:012}")
        .parse()
        .unwrap_or_else(|e| panic!("{e:?}"))
}

pub(super) fn agent(n: u32) -> AgentId {
    uuid_id(1, n)
}
pub(super) fn call(n: u32) -> CallId {
    uuid_id(2, n)
}
pub(super) fn leg(n: u32) -> LegId {
    uuid_id(3, n)
}
fn ring_leg(n: u32) -> LegId {
    uuid_id(4, n)
}
fn user(n: u32) -> UserId {
    UserId::parse(format!("{}", 1000 + n)).unwrap_or_else(|e| panic!("{e}"))
}
fn secs(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

pub(super) fn settings(strategy: QueueStrategy) -> QueueSettings {
    QueueSettings {
        name: "Support".into(),
        extension: "2000".parse().unwrap_or_else(|e| panic!("{e}")),
        strategy,
        ring_timeout_ms: 15_000,
        max_wait_ms: Some(300_000),
        max_callers: Some(3),
        wrap_up_ms: 10_000,
        join_empty: false,
        leave_when_empty: true,
        exit_key: Some('0'),
        fallback: None,
        music_on_hold: None,
    }
}

// Events, as the queue writes them.

fn configured(s: &QueueSettings) -> E {
    E::QueueConfigured {
        queue: queue_id(),
        name: s.name.clone(),
        extension: s.extension.clone(),
        strategy: s.strategy,
        ring_timeout_ms: s.ring_timeout_ms,
        max_wait_ms: s.max_wait_ms,
        max_callers: s.max_callers,
        wrap_up_ms: s.wrap_up_ms,
        join_empty: s.join_empty,
        leave_when_empty: s.leave_when_empty,
        exit_key: s.exit_key,
        fallback: s.fallback.clone(),
        music_on_hold: s.music_on_hold.clone(),
    }
}
fn logged_in(n: u32, penalty: u32) -> E {
    E::AgentLoggedIn {
        queue: queue_id(),
        agent: agent(n),
        user: user(n),
        extension: user(n).as_str().parse().unwrap_or_else(|e| panic!("{e}")),
        department: None,
        penalty,
        membership: Membership::Dynamic,
    }
}
fn joined(c: u32, position: u32) -> E {
    E::QueueCallerJoined {
        queue: queue_id(),
        call: call(c),
        leg: leg(c),
        caller: Party::default(),
        position,
    }
}
fn moved(c: u32, position: u32) -> E {
    E::QueueCallerPositionChanged {
        queue: queue_id(),
        call: call(c),
        position,
        previous: position + 1,
    }
}
fn reserved(a: u32, c: u32) -> E {
    E::AgentReserved {
        queue: queue_id(),
        agent: agent(a),
        call: call(c),
    }
}
fn offered(a: u32, c: u32) -> E {
    E::AgentOffered {
        queue: queue_id(),
        agent: agent(a),
        call: call(c),
        leg: ring_leg(a),
    }
}
fn cancelled(a: u32, c: u32, ring_ms: u64) -> E {
    E::AgentRingCancelled {
        queue: queue_id(),
        agent: agent(a),
        call: call(c),
        ring_ms,
    }
}
fn connected(a: u32, c: u32, hold_ms: u64, ring_ms: u64) -> E {
    E::AgentConnected {
        queue: queue_id(),
        agent: agent(a),
        call: call(c),
        leg: ring_leg(a),
        hold_ms,
        ring_ms,
    }
}
fn paused(a: u32) -> E {
    E::AgentPaused {
        queue: queue_id(),
        agent: agent(a),
        reason: Some("lunch".into()),
        by: None,
    }
}

// Commands.

fn log_in(n: u32) -> QueueCommand {
    QueueCommand::LogIn {
        agent: agent(n),
        user: user(n),
        extension: user(n).as_str().parse().unwrap_or_else(|e| panic!("{e}")),
        department: None,
        penalty: 0,
        membership: Membership::Dynamic,
    }
}
fn join(c: u32) -> QueueCommand {
    QueueCommand::Join {
        call: call(c),
        leg: leg(c),
        caller: Party::default(),
    }
}
fn ringing(a: u32, c: u32) -> QueueCommand {
    QueueCommand::AgentRinging {
        agent: agent(a),
        call: call(c),
        leg: ring_leg(a),
    }
}
fn answer(a: u32, c: u32) -> QueueCommand {
    QueueCommand::AgentAnswered {
        agent: agent(a),
        call: call(c),
    }
}

/// A configured queue with agents 1..=n logged in at t0, penalty 0.
fn with_agents(strategy: QueueStrategy, n: u32) -> Vec<E> {
    let mut history = vec![configured(&settings(strategy))];
    history.extend((1..=n).map(|a| logged_in(a, 0)));
    history
}

#[test]
fn configuring_records_every_setting_once() {
    let s = settings(QueueStrategy::RingAll);
    given::<Queue>([])
        .when(QueueCommand::Configure {
            queue: queue_id(),
            settings: s.clone(),
        })
        .then([configured(&s)])
        .when(QueueCommand::Configure {
            queue: queue_id(),
            settings: s.clone(),
        })
        .then_nothing()
        .when(QueueCommand::Configure {
            queue: "billing".parse().unwrap_or_else(|e| panic!("{e}")),
            settings: s,
        })
        .then_rejected(QueueRejection::WrongQueue {
            actual: queue_id(),
            requested: "billing".parse().unwrap_or_else(|e| panic!("{e}")),
        });
}

#[test]
fn bad_settings_and_early_commands_are_refused() {
    let mut s = settings(QueueStrategy::RingAll);
    s.ring_timeout_ms = 0;
    let err = given::<Queue>([])
        .when(QueueCommand::Configure {
            queue: queue_id(),
            settings: s,
        })
        .then_rejected(QueueRejection::InvalidSettings(
            "the ring timeout must be more than zero",
        ));
    err.when(join(1))
        .then_rejected(QueueRejection::NotConfigured);
    let mut s = settings(QueueStrategy::RingAll);
    s.exit_key = Some('x');
    given::<Queue>([])
        .when(QueueCommand::Configure {
            queue: queue_id(),
            settings: s,
        })
        .then_rejected(QueueRejection::InvalidSettings(
            "the exit key must be a DTMF digit (0-9, *, #, A-D)",
        ));
}

#[test]
fn agents_log_in_once_and_log_out_with_their_session_time() {
    let s = given::<Queue>(with_agents(QueueStrategy::RingAll, 0))
        .when(log_in(1))
        .then([logged_in(1, 0)])
        .when(log_in(1))
        .then_rejected(QueueRejection::AgentAlreadyLoggedIn(agent(1)));
    let mut same_user = log_in(2);
    if let QueueCommand::LogIn { user: u, .. } = &mut same_user {
        *u = user(1);
    }
    s.when(same_user)
        .then_rejected(QueueRejection::UserAlreadyAgent(user(1)))
        .at(secs(3600))
        .when(QueueCommand::LogOut {
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
        })
        .then([E::AgentLoggedOut {
            queue: queue_id(),
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
            session_ms: 3_600_000,
        }])
        .when(QueueCommand::LogOut {
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
        })
        .then_rejected(QueueRejection::UnknownAgent(agent(1)));
}

#[test]
fn callers_join_with_their_position_and_are_turned_away_when_full() {
    let mut history = with_agents(QueueStrategy::RingAll, 1);
    history.push(paused(1));
    let s = given::<Queue>(history)
        .when(join(1))
        .then([joined(1, 1)])
        .when(join(2))
        .then([joined(2, 2)])
        .when(join(3))
        .then([joined(3, 3)])
        .when(join(4))
        .then([E::QueueCallerRejected {
            queue: queue_id(),
            call: call(4),
            caller: Party::default(),
            reason: QueueRejectReason::Full,
        }])
        .when(join(1))
        .then_rejected(QueueRejection::CallerAlreadyInQueue(call(1)));
    assert_eq!(s.state().rejected(), 1);
    let positions: Vec<_> = s
        .state()
        .waiting()
        .iter()
        .map(|(c, w)| (*c, w.position))
        .collect();
    assert_eq!(positions, vec![(call(1), 1), (call(2), 2), (call(3), 3)]);
}

#[test]
fn join_when_empty_follows_the_setting() {
    given::<Queue>(with_agents(QueueStrategy::RingAll, 0))
        .when(join(1))
        .then([E::QueueCallerRejected {
            queue: queue_id(),
            call: call(1),
            caller: Party::default(),
            reason: QueueRejectReason::Empty,
        }]);
    let mut s = settings(QueueStrategy::RingAll);
    s.join_empty = true;
    given::<Queue>([configured(&s)])
        .when(join(1))
        .then([joined(1, 1)]);
}

#[test]
fn ring_all_offers_every_available_agent_and_the_first_answer_wins() {
    let s = given::<Queue>(with_agents(QueueStrategy::RingAll, 3))
        .when(join(1))
        .then([joined(1, 1), reserved(1, 1), reserved(2, 1), reserved(3, 1)])
        .when(ringing(1, 1))
        .then([offered(1, 1)])
        .when(ringing(2, 1))
        .then([offered(2, 1)])
        .at(secs(4))
        .when(answer(2, 1))
        .then([
            connected(2, 1, 4_000, 4_000),
            cancelled(1, 1, 4_000),
            cancelled(3, 1, 4_000),
        ]);
    assert_eq!(s.state().talking(), 1);
    assert!(s.state().waiting().is_empty());
    // Agent 3 was reserved but never rang: answering for it is refused.
    s.when(answer(3, 1))
        .then_rejected(QueueRejection::NotRinging {
            agent: agent(3),
            call: call(1),
        });
}

#[test]
fn ring_all_prefers_the_lowest_penalty() {
    let mut history = vec![configured(&settings(QueueStrategy::RingAll))];
    history.extend([logged_in(1, 1), logged_in(2, 0), logged_in(3, 0)]);
    given::<Queue>(history)
        .when(join(1))
        .then([joined(1, 1), reserved(2, 1), reserved(3, 1)])
        .when(join(2))
        .then([joined(2, 2), reserved(1, 2)]);
}

#[test]
fn round_robin_rotates_through_the_agents() {
    let mut s = given::<Queue>(with_agents(QueueStrategy::RoundRobin, 3))
        .when(join(1))
        .then([joined(1, 1), reserved(1, 1)])
        .when(join(2))
        .then([joined(2, 2), reserved(2, 2)]);
    // Both callers give up; the next caller goes to agent 3, the one after that to agent 1.
    s = s
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .accepted()
        .when(QueueCommand::CallerHungUp { call: call(2) })
        .accepted()
        .when(join(3))
        .then([joined(3, 1), reserved(3, 3)])
        .when(join(4))
        .then([joined(4, 2), reserved(1, 4)]);
    assert_eq!(s.state().abandoned(), 2);
}

#[test]
fn least_recent_picks_the_agent_idle_longest() {
    let mut s = settings(QueueStrategy::LeastRecent);
    s.wrap_up_ms = 0;
    given::<Queue>([
        configured(&s),
        logged_in(1, 0),
        logged_in(2, 0),
        logged_in(3, 0),
    ])
    .when(join(1))
    .then([joined(1, 1), reserved(1, 1)])
    .when(ringing(1, 1))
    .accepted()
    .when(answer(1, 1))
    .accepted()
    .when(join(2))
    .then([joined(2, 1), reserved(2, 2)])
    .when(ringing(2, 2))
    .accepted()
    .when(answer(2, 2))
    .accepted()
    .at(secs(60))
    .when(QueueCommand::Complete {
        call: call(2),
        by: CompletedBy::Agent,
    })
    .accepted()
    .at(secs(120))
    .when(QueueCommand::Complete {
        call: call(1),
        by: CompletedBy::Agent,
    })
    .accepted()
    // Agent 3 never took a call: first. Then agent 2, whose call ended before agent 1's.
    .when(join(3))
    .then([joined(3, 1), reserved(3, 3)])
    .when(join(4))
    .then([joined(4, 2), reserved(2, 4)]);
}

#[test]
fn fewest_calls_picks_the_agent_with_fewest_calls_taken() {
    let mut s = settings(QueueStrategy::FewestCalls);
    s.wrap_up_ms = 0;
    let s = given::<Queue>([configured(&s), logged_in(1, 0), logged_in(2, 0)])
        .when(join(1))
        .then([joined(1, 1), reserved(1, 1)])
        .when(ringing(1, 1))
        .accepted()
        .when(answer(1, 1))
        .accepted()
        .when(QueueCommand::Complete {
            call: call(1),
            by: CompletedBy::Agent,
        })
        .accepted()
        .when(join(2))
        .then([joined(2, 1), reserved(2, 2)]);
    assert_eq!(s.state().calls_taken(agent(1)), 1);
    assert_eq!(s.state().calls_taken(agent(2)), 0);
}

#[test]
fn a_paused_agent_is_never_offered_and_pausing_withdraws_an_offer() {
    let s = given::<Queue>(with_agents(QueueStrategy::RoundRobin, 2))
        .when(join(1))
        .then([joined(1, 1), reserved(1, 1)])
        .at(secs(2))
        .when(QueueCommand::Pause {
            agent: agent(1),
            reason: Some("lunch".into()),
            by: None,
        })
        .then([cancelled(1, 1, 2_000), paused(1), reserved(2, 1)])
        .when(QueueCommand::Pause {
            agent: agent(1),
            reason: None,
            by: None,
        })
        .then_rejected(QueueRejection::AlreadyPaused(agent(1)));
    // Agent 2 does not answer; the only other agent is paused, so agent 2 rings again.
    let s = s
        .at(secs(17))
        .when(QueueCommand::RingNoAnswer {
            agent: agent(2),
            call: call(1),
        })
        .then([
            E::AgentRingNoAnswer {
                queue: queue_id(),
                agent: agent(2),
                call: call(1),
                ring_ms: 15_000,
            },
            reserved(2, 1),
        ])
        .when(QueueCommand::Unpause {
            agent: agent(2),
            by: None,
        })
        .then_rejected(QueueRejection::NotPaused(agent(2)));
    // Unpausing agent 1 while the only caller is taken changes nothing else.
    s.when(QueueCommand::Unpause {
        agent: agent(1),
        by: None,
    })
    .then([E::AgentUnpaused {
        queue: queue_id(),
        agent: agent(1),
        by: None,
    }])
    .when(join(2))
    .then([joined(2, 2), reserved(1, 2)]);
}

#[test]
fn pause_all_and_unpause_all_list_the_agents_they_change() {
    let supervisor = Some(user(11));
    given::<Queue>(
        with_agents(QueueStrategy::RingAll, 3)
            .into_iter()
            .chain([paused(2)]),
    )
    .when(QueueCommand::PauseAll {
        reason: Some("meeting".into()),
        by: supervisor.clone(),
    })
    .then([E::AllAgentsPaused {
        queue: queue_id(),
        agents: vec![agent(1), agent(3)],
        reason: Some("meeting".into()),
        by: supervisor.clone(),
    }])
    .when(join(1))
    .then([joined(1, 1)])
    .when(QueueCommand::PauseAll {
        reason: None,
        by: None,
    })
    .then_nothing()
    .when(QueueCommand::UnpauseAll {
        by: supervisor.clone(),
    })
    .then([
        E::AllAgentsUnpaused {
            queue: queue_id(),
            agents: vec![agent(1), agent(2), agent(3)],
            by: supervisor,
        },
        reserved(1, 1),
        reserved(2, 1),
        reserved(3, 1),
    ]);
}

#[test]
fn an_agent_whose_line_is_busy_is_not_offered() {
    given::<Queue>(with_agents(QueueStrategy::RingAll, 2))
        .when(QueueCommand::ObserveAgentLine {
            agent: agent(1),
            line: LineState::OnCall,
        })
        .then([E::AgentLineChanged {
            queue: queue_id(),
            agent: agent(1),
            line: LineState::OnCall,
        }])
        .when(join(1))
        .then([joined(1, 1), reserved(2, 1)])
        .when(QueueCommand::ObserveAgentLine {
            agent: agent(1),
            line: LineState::OnCall,
        })
        .then_nothing()
        .when(QueueCommand::ObserveAgentLine {
            agent: agent(1),
            line: LineState::Idle,
        })
        .then([
            E::AgentLineChanged {
                queue: queue_id(),
                agent: agent(1),
                line: LineState::Idle,
            },
            reserved(1, 1),
        ]);
}

#[test]
fn an_offer_times_out_and_the_next_agent_is_tried() {
    let s = given::<Queue>(with_agents(QueueStrategy::RoundRobin, 2))
        .when(join(1))
        .then([joined(1, 1), reserved(1, 1)])
        .at(secs(1))
        .when(ringing(1, 1))
        .then([offered(1, 1)]);
    let ring = Deadline::new(
        secs(15),
        QueueCommand::RingNoAnswer {
            agent: agent(1),
            call: call(1),
        },
    );
    assert!(
        s.state().deadlines().contains(&ring),
        "{:?}",
        s.state().deadlines()
    );
    s.at(secs(15))
        .when(ring.command)
        .then([
            E::AgentRingNoAnswer {
                queue: queue_id(),
                agent: agent(1),
                call: call(1),
                ring_ms: 14_000,
            },
            reserved(2, 1),
        ])
        // The old timer firing again is not an error.
        .when(QueueCommand::RingNoAnswer {
            agent: agent(1),
            call: call(1),
        })
        .then_nothing();
}

#[test]
fn a_completed_call_starts_wrap_up_and_counts_for_the_agent() {
    let s = given::<Queue>(with_agents(QueueStrategy::RingAll, 1))
        .when(join(1))
        .accepted()
        .when(join(2))
        .then([joined(2, 2)])
        .at(secs(5))
        .when(ringing(1, 1))
        .accepted()
        .at(secs(10))
        .when(answer(1, 1))
        .then([connected(1, 1, 10_000, 5_000), moved(2, 1)])
        .when(QueueCommand::Complete {
            call: call(2),
            by: CompletedBy::Agent,
        })
        .then_rejected(QueueRejection::CallerNotConnected(call(2)))
        .at(secs(70))
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .then([
            E::AgentCompleted {
                queue: queue_id(),
                agent: agent(1),
                call: call(1),
                hold_ms: 10_000,
                talk_ms: 60_000,
                ended_by: CompletedBy::Caller,
            },
            E::QueueCallerLeft {
                queue: queue_id(),
                call: call(1),
                reason: QueueLeaveReason::Answered,
                key: None,
                position: 0,
                original_position: 1,
                hold_ms: 10_000,
                ring_ms: 5_000,
                talk_ms: 60_000,
                agent: Some(agent(1)),
            },
            E::AgentWrapUpStarted {
                queue: queue_id(),
                agent: agent(1),
                until: secs(80),
            },
        ]);
    assert_eq!(s.state().completed(), 1);
    assert_eq!(s.state().calls_taken(agent(1)), 1);
    assert_eq!(s.state().last_call_at(agent(1)), Some(secs(70)));
    let wrap = Deadline::new(secs(80), QueueCommand::EndWrapUp { agent: agent(1) });
    assert!(s.state().deadlines().contains(&wrap));
    s.at(secs(80)).when(wrap.command).then([
        E::AgentWrapUpEnded {
            queue: queue_id(),
            agent: agent(1),
            early: false,
        },
        reserved(1, 2),
    ]);
}

#[test]
fn an_agent_may_end_wrap_up_early() {
    given::<Queue>(with_agents(QueueStrategy::RingAll, 1).into_iter().chain([
        E::AgentWrapUpStarted {
            queue: queue_id(),
            agent: agent(1),
            until: secs(10),
        },
    ]))
    .at(secs(3))
    .when(QueueCommand::EndWrapUp { agent: agent(1) })
    .then([E::AgentWrapUpEnded {
        queue: queue_id(),
        agent: agent(1),
        early: true,
    }])
    .when(QueueCommand::EndWrapUp { agent: agent(1) })
    .then_nothing();
}

#[test]
fn a_caller_who_hangs_up_while_waiting_is_abandoned_and_the_line_moves_up() {
    let mut history = with_agents(QueueStrategy::RingAll, 1);
    history.push(paused(1));
    let s = given::<Queue>(history)
        .when(join(1))
        .accepted()
        .when(join(2))
        .accepted()
        .when(join(3))
        .accepted()
        .at(secs(42))
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .then([
            E::QueueCallerLeft {
                queue: queue_id(),
                call: call(1),
                reason: QueueLeaveReason::Abandoned,
                key: None,
                position: 1,
                original_position: 1,
                hold_ms: 42_000,
                ring_ms: 0,
                talk_ms: 0,
                agent: None,
            },
            moved(2, 1),
            moved(3, 2),
        ])
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .then_rejected(QueueRejection::UnknownCaller(call(1)));
    assert_eq!(s.state().abandoned(), 1);
    assert_eq!(s.state().completed(), 0);
}

#[test]
fn a_ringing_caller_who_hangs_up_cancels_the_offers() {
    given::<Queue>(with_agents(QueueStrategy::RingAll, 2))
        .when(join(1))
        .accepted()
        .at(secs(3))
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .then([
            cancelled(1, 1, 3_000),
            cancelled(2, 1, 3_000),
            E::QueueCallerLeft {
                queue: queue_id(),
                call: call(1),
                reason: QueueLeaveReason::Abandoned,
                key: None,
                position: 1,
                original_position: 1,
                hold_ms: 3_000,
                ring_ms: 0,
                talk_ms: 0,
                agent: None,
            },
        ]);
}

#[test]
fn a_caller_waiting_past_the_maximum_leaves_with_timeout() {
    let s = given::<Queue>(
        with_agents(QueueStrategy::RingAll, 1)
            .into_iter()
            .chain([paused(1)]),
    )
    .when(join(1))
    .accepted();
    let timer = Deadline::new(secs(300), QueueCommand::MaxWaitExceeded { call: call(1) });
    assert_eq!(s.state().deadlines(), vec![timer.clone()]);
    s.at(secs(299))
        .when(timer.command.clone())
        .then_nothing()
        .at(secs(300))
        .when(timer.command)
        .then([E::QueueCallerLeft {
            queue: queue_id(),
            call: call(1),
            reason: QueueLeaveReason::Timeout,
            key: None,
            position: 1,
            original_position: 1,
            hold_ms: 300_000,
            ring_ms: 0,
            talk_ms: 0,
            agent: None,
        }]);
}

#[test]
fn the_exit_key_lets_a_caller_out_and_other_digits_do_nothing() {
    given::<Queue>(
        with_agents(QueueStrategy::RingAll, 1)
            .into_iter()
            .chain([paused(1)]),
    )
    .when(join(1))
    .accepted()
    .when(QueueCommand::PressKey {
        call: call(1),
        key: '5',
    })
    .then_nothing()
    .when(QueueCommand::PressKey {
        call: call(1),
        key: '0',
    })
    .then([E::QueueCallerLeft {
        queue: queue_id(),
        call: call(1),
        reason: QueueLeaveReason::Key,
        key: Some('0'),
        position: 1,
        original_position: 1,
        hold_ms: 0,
        ring_ms: 0,
        talk_ms: 0,
        agent: None,
    }]);
}

#[test]
fn when_the_last_agent_leaves_waiting_callers_leave_with_empty() {
    let left = |c: u32, position: u32| E::QueueCallerLeft {
        queue: queue_id(),
        call: call(c),
        reason: QueueLeaveReason::Empty,
        key: None,
        position,
        original_position: position,
        hold_ms: 0,
        ring_ms: 0,
        talk_ms: 0,
        agent: None,
    };
    given::<Queue>(with_agents(QueueStrategy::RingAll, 1))
        .when(join(1))
        .accepted()
        .when(join(2))
        .accepted()
        .when(QueueCommand::LogOut {
            agent: agent(1),
            reason: AgentLogoutReason::DeviceUnavailable,
        })
        .then([
            cancelled(1, 1, 0),
            E::AgentLoggedOut {
                queue: queue_id(),
                agent: agent(1),
                reason: AgentLogoutReason::DeviceUnavailable,
                session_ms: 0,
            },
            left(2, 2),
            left(1, 1),
        ]);
}

#[test]
fn an_agent_on_a_queue_call_cannot_log_out_and_a_queue_with_callers_cannot_be_deleted() {
    given::<Queue>(with_agents(QueueStrategy::RingAll, 1))
        .when(join(1))
        .accepted()
        .when(ringing(1, 1))
        .accepted()
        .when(answer(1, 1))
        .accepted()
        .when(QueueCommand::LogOut {
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
        })
        .then_rejected(QueueRejection::AgentOnQueueCall {
            agent: agent(1),
            call: call(1),
        })
        .when(QueueCommand::Delete)
        .then_rejected(QueueRejection::CallersPresent(1))
        .when(QueueCommand::Complete {
            call: call(1),
            by: CompletedBy::Transfer,
        })
        .accepted()
        .when(QueueCommand::Delete)
        .then([E::QueueDeleted { queue: queue_id() }])
        .when(join(2))
        .then_rejected(QueueRejection::Deleted(queue_id()));
}

#[test]
fn waits_and_sessions_count_from_when_the_history_happened() {
    // Agent 1 logged in at 0 and paused; caller 1 joined at 100.
    let history = with_agents(QueueStrategy::RingAll, 1)
        .into_iter()
        .map(|e| (secs(0), e))
        .chain([(secs(0), paused(1)), (secs(100), joined(1, 1))]);
    let s = crate::testing::given_at::<Queue>(history);
    assert_eq!(
        s.state().deadlines(),
        vec![Deadline::new(
            secs(400),
            QueueCommand::MaxWaitExceeded { call: call(1) }
        )]
    );
    s.at(secs(142))
        .when(QueueCommand::CallerHungUp { call: call(1) })
        .then([E::QueueCallerLeft {
            queue: queue_id(),
            call: call(1),
            reason: QueueLeaveReason::Abandoned,
            key: None,
            position: 1,
            original_position: 1,
            hold_ms: 42_000,
            ring_ms: 0,
            talk_ms: 0,
            agent: None,
        }])
        .at(secs(3_600))
        .when(QueueCommand::LogOut {
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
        })
        .then([E::AgentLoggedOut {
            queue: queue_id(),
            agent: agent(1),
            reason: AgentLogoutReason::Requested,
            session_ms: 3_600_000,
        }]);
}

#[test]
fn a_rebuilt_queue_has_the_same_state_and_timers() {
    let s = given::<Queue>(with_agents(QueueStrategy::RoundRobin, 2))
        .at(secs(5))
        .when(join(1))
        .accepted()
        .at(secs(6))
        .when(ringing(1, 1))
        .accepted()
        .at(secs(7))
        .when(join(2))
        .accepted();
    let rebuilt = Queue::replay(s.history());
    assert_eq!(rebuilt.deadlines(), s.state().deadlines());
    assert_eq!(
        rebuilt.deadlines(),
        vec![
            Deadline::new(secs(305), QueueCommand::MaxWaitExceeded { call: call(1) }),
            Deadline::new(secs(307), QueueCommand::MaxWaitExceeded { call: call(2) }),
            Deadline::new(
                secs(20),
                QueueCommand::RingNoAnswer {
                    agent: agent(1),
                    call: call(1),
                },
            ),
            Deadline::new(
                secs(22),
                QueueCommand::RingNoAnswer {
                    agent: agent(2),
                    call: call(2),
                },
            ),
        ]
    );
}
