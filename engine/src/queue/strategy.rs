//! Who gets the call: `dispatch` hands waiting callers to available agents by the queue's
//! strategy, lower penalty first. It runs after every command, on the draft state the
//! command's own events left, so no caller waits while an agent who could take them is idle.

use events::ids::{AgentId, CallId};
use events::model::{QueueEvent, QueueStrategy};

use super::decide::Draft;
use super::state::Queue;

/// Reserves available agents for waiting callers without an offer, head of the line first:
/// ring-all gives such a caller every available agent of the best penalty, the other strategies
/// one agent. With ring-all, agents still available after that join the head caller's ring if
/// their penalty is no worse than that of an agent already ringing for them.
pub(super) fn dispatch(d: &mut Draft) {
    let mut free: Vec<AgentId> = d
        .state
        .agents
        .iter()
        .filter(|(_, a)| a.is_available())
        .map(|(id, _)| *id)
        .collect();
    let waiting: Vec<CallId> = d.state.waiting().into_iter().map(|(c, _)| c).collect();
    for call in waiting {
        if free.is_empty() {
            break;
        }
        if d.state.agents.values().any(|a| a.call() == Some(call)) {
            continue;
        }
        let chosen: Vec<AgentId> = match d.settings.strategy {
            QueueStrategy::RingAll => {
                let best = best_penalty(&d.state, &free);
                free.iter()
                    .copied()
                    .filter(|a| penalty(&d.state, *a) == best)
                    .collect()
            }
            strategy => pick(&d.state, strategy, &free).into_iter().collect(),
        };
        reserve(d, &mut free, chosen, call);
    }
    if d.settings.strategy == QueueStrategy::RingAll
        && let Some((head, _)) = d.state.waiting().first()
    {
        let head = *head;
        let ringing = d
            .state
            .agents
            .values()
            .filter(|a| a.call() == Some(head))
            .map(|a| a.penalty)
            .max()
            .unwrap_or(u32::MAX);
        let rest: Vec<AgentId> = free
            .iter()
            .copied()
            .filter(|a| penalty(&d.state, *a) <= ringing)
            .collect();
        reserve(d, &mut free, rest, head);
    }
}

fn reserve(d: &mut Draft, free: &mut Vec<AgentId>, chosen: Vec<AgentId>, call: CallId) {
    for agent in chosen {
        free.retain(|a| *a != agent);
        d.emit(QueueEvent::AgentReserved {
            queue: d.q(),
            agent,
            call,
        });
    }
}

fn penalty(q: &Queue, agent: AgentId) -> u32 {
    q.agents.get(&agent).map_or(u32::MAX, |a| a.penalty)
}

fn best_penalty(q: &Queue, agents: &[AgentId]) -> u32 {
    agents
        .iter()
        .map(|a| penalty(q, *a))
        .min()
        .unwrap_or(u32::MAX)
}

/// One agent of the best penalty among `free`, by strategy; ties go to the earliest login.
fn pick(q: &Queue, strategy: QueueStrategy, free: &[AgentId]) -> Option<AgentId> {
    let best = best_penalty(q, free);
    let tier = free.iter().filter_map(|id| {
        let index = q.agents.get_index_of(id)?;
        let agent = q.agents.get(id)?;
        (agent.penalty == best).then_some((index, *id, agent))
    });
    match strategy {
        QueueStrategy::RingAll => tier.map(|(_, id, _)| id).next(),
        QueueStrategy::RoundRobin => {
            let last = q.last_reserved.and_then(|a| q.agents.get_index_of(&a));
            let tier: Vec<_> = tier.collect();
            tier.iter()
                .find(|(i, _, _)| last.is_none_or(|l| *i > l))
                .or(tier.first())
                .map(|(_, id, _)| *id)
        }
        QueueStrategy::LeastRecent => tier
            .min_by_key(|(i, _, a)| (a.last_call_at, *i))
            .map(|(_, id, _)| id),
        QueueStrategy::FewestCalls => tier
            .min_by_key(|(i, _, a)| (a.calls_taken, *i))
            .map(|(_, id, _)| id),
    }
}
