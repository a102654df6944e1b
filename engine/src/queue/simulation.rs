//! Seeded random command sequences against the queue, with its invariants checked after every
//! step: no agent is in two queue calls at once, only available (so never paused) agents are
//! reserved, the counters add up, and every caller who joined leaves exactly once, with one
//! reason, once the load stops and the line drains.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use events::model::{
    AgentLogoutReason, CompletedBy, LineState, Membership, Party, QueueEvent, QueueStrategy,
};

use super::tests::{agent, call, leg, queue_id, settings};
use super::*;
use crate::testing::t0;

/// xorshift64*: enough randomness for choosing commands, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items.get(i).copied()
    }
}

/// The world around one queue: the clock, the history, and what the invariants track.
struct World {
    queue: Queue,
    now: DateTime<Utc>,
    /// Every event, with the instant it happened at.
    history: Vec<(QueueEvent, DateTime<Utc>)>,
    next_call: u32,
    /// Per call: joined, and how many times it left.
    sessions: BTreeMap<events::ids::CallId, (bool, u32)>,
}

const AGENTS: u32 = 5;

impl World {
    fn new(strategy: QueueStrategy) -> Self {
        let mut world = World {
            queue: Queue::default(),
            now: t0(),
            history: Vec::new(),
            next_call: 1,
            sessions: BTreeMap::new(),
        };
        let mut s = settings(strategy);
        s.max_callers = Some(6);
        s.max_wait_ms = Some(120_000);
        world.send(QueueCommand::Configure {
            queue: queue_id(),
            settings: s,
        });
        world
    }

    /// Decides and folds one command; a rejection changes nothing.
    fn send(&mut self, command: QueueCommand) {
        let Ok(events) = self.queue.decide(&command, self.now) else {
            return;
        };
        for event in &events {
            self.check_before(event);
            self.queue.evolve(event, self.now);
            self.track(event);
        }
        let now = self.now;
        self.history.extend(events.into_iter().map(|e| (e, now)));
        self.check_state();
    }

    /// Checks a reservation against the state it is decided on.
    fn check_before(&self, event: &QueueEvent) {
        if let QueueEvent::AgentReserved { agent, call, .. } = event {
            let a = self.queue.agent(*agent);
            assert!(
                a.is_some_and(|a| a.is_available()),
                "reserved an unavailable agent: {a:?}"
            );
            let c = self.queue.caller(*call);
            assert!(
                c.is_some_and(|c| c.is_waiting()),
                "reserved an agent for a caller who is not waiting: {c:?}"
            );
        }
    }

    fn track(&mut self, event: &QueueEvent) {
        match event {
            QueueEvent::QueueCallerJoined { call, .. } => {
                let s = self.sessions.entry(*call).or_default();
                assert!(!s.0, "call {call} joined twice");
                s.0 = true;
            }
            QueueEvent::QueueCallerLeft { call, .. } => {
                let s = self.sessions.entry(*call).or_default();
                assert!(s.0, "call {call} left without joining");
                s.1 += 1;
                assert_eq!(s.1, 1, "call {call} left twice");
            }
            _ => {}
        }
    }

    fn check_state(&self) {
        let q = &self.queue;
        let mut connected_agents = BTreeMap::new();
        for (id, a) in q.agents() {
            if a.paused.is_some() {
                assert!(
                    !matches!(a.activity, Activity::Offered { .. }),
                    "paused agent {id} is being offered a call"
                );
            }
            if let Activity::Connected { call } = a.activity {
                assert!(
                    connected_agents.insert(call, id).is_none(),
                    "two agents connected to call {call}"
                );
                let c = q.caller(call).and_then(|c| c.connected.as_ref());
                assert_eq!(c.map(|c| c.agent), Some(id), "agent {id} and call {call}");
            }
            if let Some(call) = a.call() {
                assert!(q.caller(call).is_some(), "agent {id} holds a gone call");
            }
        }
        for (call, c) in q.callers.iter() {
            if let Some(conn) = &c.connected {
                assert_eq!(connected_agents.get(call), Some(&conn.agent));
            }
        }
        // Waiting positions are 1..=n without gaps.
        let positions: Vec<u32> = q.waiting().iter().map(|(_, c)| c.position).collect();
        let expected: Vec<u32> = (1..=u32::try_from(positions.len()).unwrap_or(0)).collect();
        assert_eq!(positions, expected, "positions");
        // The counters add up.
        let joined = self.sessions.values().filter(|s| s.0).count() as u64;
        let left = self.sessions.values().map(|s| u64::from(s.1)).sum::<u64>();
        let present = q.callers.len() as u64;
        assert_eq!(joined, left + present, "joined = left + present");
        let by_reason = q.completed()
            + q.abandoned()
            + q.left_with(events::model::QueueLeaveReason::Timeout)
            + q.left_with(events::model::QueueLeaveReason::Empty)
            + q.left_with(events::model::QueueLeaveReason::Key);
        assert_eq!(by_reason, left, "every leave has one reason");
        let taken: u64 = q.agents().map(|(_, a)| a.calls_taken).sum();
        assert!(taken <= q.completed(), "calls taken exceed completed calls");
    }

    fn fire_due_timers(&mut self) {
        loop {
            let mut due: Vec<_> = self
                .queue
                .deadlines()
                .into_iter()
                .filter(|d| d.at <= self.now)
                .collect();
            due.sort_by_key(|d| d.at);
            let Some(first) = due.into_iter().next() else {
                return;
            };
            let before = self.history.len();
            self.send(first.command);
            if self.history.len() == before {
                return;
            }
        }
    }

    fn step(&mut self, rng: &mut Rng) {
        let agents: Vec<u32> = (1..=AGENTS).collect();
        let callers: Vec<_> = self.queue.callers.keys().copied().collect();
        let offered: Vec<_> = self
            .queue
            .agents()
            .filter_map(|(id, a)| match a.activity {
                Activity::Offered { call, leg, .. } => Some((id, call, leg)),
                _ => None,
            })
            .collect();
        let a = rng.pick(&agents).unwrap_or(1);
        let command = match rng.below(14) {
            0 | 1 => {
                self.next_call += 1;
                let n = self.next_call;
                QueueCommand::Join {
                    call: call(n),
                    leg: leg(n),
                    caller: Party::default(),
                }
            }
            2 => match rng.pick(&callers) {
                Some(call) => QueueCommand::CallerHungUp { call },
                None => return,
            },
            3 | 4 => match rng.pick(&offered) {
                Some((agent, call, None)) => QueueCommand::AgentRinging {
                    agent,
                    call,
                    leg: leg(10_000 + self.next_call),
                },
                Some((agent, call, Some(_))) => QueueCommand::AgentAnswered { agent, call },
                None => return,
            },
            5 => match rng.pick(&offered) {
                Some((agent, call, _)) => QueueCommand::RingNoAnswer { agent, call },
                None => return,
            },
            6 => match rng.pick(&callers) {
                Some(call) => QueueCommand::Complete {
                    call,
                    by: if rng.below(2) == 0 {
                        CompletedBy::Agent
                    } else {
                        CompletedBy::Transfer
                    },
                },
                None => return,
            },
            7 => QueueCommand::Pause {
                agent: agent(a),
                reason: None,
                by: None,
            },
            8 => QueueCommand::Unpause {
                agent: agent(a),
                by: None,
            },
            9 => {
                if rng.below(2) == 0 {
                    QueueCommand::PauseAll {
                        reason: None,
                        by: None,
                    }
                } else {
                    QueueCommand::UnpauseAll { by: None }
                }
            }
            10 => QueueCommand::ObserveAgentLine {
                agent: agent(a),
                line: if rng.below(3) == 0 {
                    LineState::OnCall
                } else {
                    LineState::Idle
                },
            },
            11 => {
                if rng.below(2) == 0 {
                    log_in(a)
                } else {
                    QueueCommand::LogOut {
                        agent: agent(a),
                        reason: AgentLogoutReason::Requested,
                    }
                }
            }
            12 => match rng.pick(&callers) {
                Some(call) => QueueCommand::PressKey {
                    call,
                    key: if rng.below(4) == 0 { '0' } else { '5' },
                },
                None => return,
            },
            _ => {
                let secs = i64::try_from(rng.below(30)).unwrap_or(0) + 1;
                self.now += Duration::seconds(secs);
                self.fire_due_timers();
                return;
            }
        };
        self.send(command);
    }
}

fn log_in(n: u32) -> QueueCommand {
    QueueCommand::LogIn {
        agent: agent(n),
        user: format!("{}", 1000 + n)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        extension: format!("{}", 1000 + n)
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        department: None,
        penalty: n % 2,
        membership: Membership::Dynamic,
    }
}

fn run(seed: u64) -> World {
    let mut rng = Rng::new(seed);
    let strategies = [
        QueueStrategy::RingAll,
        QueueStrategy::RoundRobin,
        QueueStrategy::LeastRecent,
        QueueStrategy::FewestCalls,
    ];
    let strategy = rng.pick(&strategies).unwrap_or(QueueStrategy::RingAll);
    let mut world = World::new(strategy);
    for n in 1..=AGENTS {
        world.send(log_in(n));
    }
    for _ in 0..400 {
        world.step(&mut rng);
    }
    // Mid-flight, with callers waiting and agents offered or wrapping up, a queue rebuilt from
    // its history (each event at the instant it happened) holds the very same timers.
    let rebuilt = Queue::replay(world.history.iter().map(|(e, at)| (e, *at)));
    assert_eq!(rebuilt.deadlines(), world.queue.deadlines(), "seed {seed}");
    assert_eq!(
        rebuilt.waiting().len(),
        world.queue.waiting().len(),
        "seed {seed}"
    );
    // Drain: every caller hangs up (or completes), then every timer runs out.
    let present: Vec<_> = world.queue.callers.keys().copied().collect();
    for call in present {
        world.send(QueueCommand::CallerHungUp { call });
    }
    world.now += Duration::hours(1);
    world.fire_due_timers();
    assert!(
        world.queue.callers.is_empty(),
        "callers left after draining"
    );
    assert!(
        world.queue.deadlines().is_empty(),
        "timers left after draining"
    );
    for (call, (joined, left)) in &world.sessions {
        assert!(
            *joined && *left == 1,
            "call {call}: joined {joined}, left {left} times"
        );
    }
    let rebuilt = Queue::replay(world.history.iter().map(|(e, at)| (e, *at)));
    assert_eq!(rebuilt.deadlines(), world.queue.deadlines());
    assert_eq!(rebuilt.completed(), world.queue.completed());
    assert_eq!(rebuilt.abandoned(), world.queue.abandoned());
    world
}

#[test]
fn random_sequences_keep_the_queue_invariants() {
    let mut answered = 0;
    for seed in 0..200 {
        let world = run(seed);
        answered += world.queue.completed();
    }
    // The generator reaches the interesting paths, not only rejections.
    assert!(answered > 100, "only {answered} calls were answered");
}

#[test]
fn the_same_seed_gives_the_same_history() {
    assert_eq!(run(42).history, run(42).history);
}
