//! The process manager between a call and the extensions in it: after every change of the
//! call, each extension with a leg in it is told its part ([`ExtensionCommand::CallLegStateObserved`])
//! when that part changed, so the extension's line state (idle, ringing, calling, on a call, on
//! hold) follows the call. The part is derived from the call's legs alone, the way the busy-hour
//! simulation derives it: an ended leg is `Ended`, a held one `Held`, an answered one
//! `Answered`, the caller's unanswered leg `Calling`, any other unanswered leg `Ringing`; an
//! extension with several legs in one call shows its most active one. What a busy extension
//! is told while it is still being told something else waits and goes in one batch
//! ([`Reports`]).
//!
//! The call does not wait for its extensions at each step: what they are told is queued in
//! order, per extension, as the step is recorded, and the session goes on (answering the BYE,
//! forwarding the 200) while the extensions record it. A session waits for everything it queued
//! only before it ends ([`Told`]), so a call in progress still counts until its extensions show
//! it over.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use engine::call::Call;
use engine::extension::{Extension, ExtensionCommand, ExtensionRejection};
use engine::runtime::{Execute, ExecuteError, Instance, Registry};
use events::StreamId;
use events::ids::{CallId, CorrelationId, ExtensionNumber, TenantId};
use events::model::ExtensionCallState;
use tokio::sync::oneshot;

/// Each extension's part in `call` (the engine's rule, [`Call::extension_parts`]).
pub(crate) fn parts(call: &Call) -> BTreeMap<ExtensionNumber, ExtensionCallState> {
    call.extension_parts(|n| Some(n.clone()))
}

/// What the extensions of one call were told so far.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    told: BTreeMap<ExtensionNumber, ExtensionCallState>,
}

impl Observer {
    /// The parts that changed since the last call, now recorded as told.
    pub(crate) fn changes(&mut self, call: &Call) -> Vec<(ExtensionNumber, ExtensionCallState)> {
        let mut changes = Vec::new();
        for (number, state) in parts(call) {
            let known = self.told.get(&number).copied();
            // An extension never told about the call has nothing to end.
            let unchanged =
                known == Some(state) || (known.is_none() && state == ExtensionCallState::Ended);
            if unchanged {
                continue;
            }
            self.told.insert(number.clone(), state);
            changes.push((number, state));
        }
        changes
    }
}

/// One call's news for one extension, waiting for that extension's reporter.
#[derive(Debug)]
struct Pending {
    call: CallId,
    state: ExtensionCallState,
    correlation: CorrelationId,
    told: oneshot::Sender<()>,
}

/// The most reports one round tells. A round's events are appended, and then published on the
/// extensions' live feed, together; a round larger than the feed holds would make every reader
/// of the feed lag and read the log instead (a callee in hundreds of calls at once).
pub(crate) const ROUND: usize = 128;

/// What waits to be told to each extension. An extension with an entry has a reporter task
/// running for it; the task takes what is queued, up to [`ROUND`] reports, at once, so an
/// extension in many calls (an operator, a queue's agent, a busy line) gets one `Execute` (one
/// command per call, chained with `then`), and one append, per round instead of one per call.
#[derive(Debug, Default)]
pub(crate) struct Reports {
    queued: Mutex<HashMap<StreamId, Vec<Pending>>>,
}

impl Reports {
    fn queued(&self) -> std::sync::MutexGuard<'_, HashMap<StreamId, Vec<Pending>>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next round for `stream`: the oldest [`ROUND`] reports queued at most, in order.
    /// `None` when nothing is queued, and then the stream's reporter is done (its entry goes).
    fn next_round(&self, stream: &StreamId) -> Option<Vec<Pending>> {
        let mut queued = self.queued();
        match queued.get_mut(stream) {
            Some(waiting) if !waiting.is_empty() => {
                let n = waiting.len().min(ROUND);
                Some(waiting.drain(..n).collect())
            }
            _ => {
                queued.remove(stream);
                None
            }
        }
    }
}

/// What a call queued for its extensions and has not seen told yet.
#[derive(Debug, Default)]
pub(crate) struct Told(Vec<oneshot::Receiver<()>>);

impl Told {
    /// Waits until every extension was told what was queued (or telling it failed, which is
    /// logged).
    pub(crate) async fn all(&mut self) {
        for rx in self.0.drain(..) {
            let _ = rx.await;
        }
    }

    /// Forgets what was told already, so a long call holds only what is still queued.
    fn prune(&mut self) {
        self.0
            .retain_mut(|rx| matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
    }
}

/// Queues for each extension of `changes` its new part in `call`, in order after what it was
/// told before, and notes it in `told`. The extensions' commands are back-pressured, never
/// refused: the part must arrive, or the line shows a call that ended.
pub(crate) fn report(
    reports: &Arc<Reports>,
    extensions: &Registry<Extension>,
    tenant: &TenantId,
    call: CallId,
    correlation: CorrelationId,
    changes: Vec<(ExtensionNumber, ExtensionCallState)>,
    told: &mut Told,
) {
    told.prune();
    for (number, state) in changes {
        let (tx, rx) = oneshot::channel();
        told.0.push(rx);
        let pending = Pending {
            call,
            state,
            correlation,
            told: tx,
        };
        let instance =
            Instance::new(StreamId::extension(tenant, &number)).in_tenant(tenant.clone());
        let mut queued = reports.queued();
        match queued.get_mut(&instance.stream) {
            Some(waiting) => waiting.push(pending),
            None => {
                queued.insert(instance.stream.clone(), vec![pending]);
                crate::spawn(tell(reports.clone(), extensions.clone(), instance));
            }
        }
    }
}

/// The reporter of one extension: tells it what is queued, round after round, until nothing is.
async fn tell(reports: Arc<Reports>, extensions: Registry<Extension>, instance: Instance) {
    loop {
        let Some(round) = reports.next_round(&instance.stream) else {
            return;
        };
        // One command per call's news, decided in turn and appended together.
        let told = |p: &Pending| ExtensionCommand::CallLegStateObserved {
            call: p.call,
            state: p.state,
        };
        let Some((first, rest)) = round.split_first() else {
            continue;
        };
        let mut execute = Execute::<Extension>::new(told(first));
        execute.then = rest.iter().map(told).collect();
        if rest.is_empty() {
            // Several calls' news have no one correlation.
            execute = execute.correlated(first.correlation);
        }
        match extensions.execute(&instance, execute).await {
            Ok(_) | Err(ExecuteError::Rejected(ExtensionRejection::NotProvisioned)) => {}
            Err(e) => {
                let calls: Vec<String> = round.iter().map(|p| p.call.to_string()).collect();
                tracing::warn!(stream = %instance.stream, ?calls, error = %e,
                    "an extension was not told its part in calls");
            }
        }
        for pending in round {
            let _ = pending.told.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::fixtures::{offer, ring, run};
    use engine::call::CallCommand;
    use events::IdGen;
    use events::SeededIds;
    use events::ids::LegId;

    fn number(n: &str) -> ExtensionNumber {
        ExtensionNumber::parse(n).unwrap()
    }

    #[test]
    fn a_round_tells_at_most_round_reports_oldest_first() {
        let reports = Reports::default();
        let stream = StreamId::extension(&TenantId::parse("acme").unwrap(), &number("1001"));
        let ids = SeededIds::new(5);
        let calls: Vec<CallId> = (0..ROUND + 3)
            .map(|_| CallId::from_uuid(ids.next_uuid()))
            .collect();
        let pending = calls.iter().map(|&call| Pending {
            call,
            state: ExtensionCallState::Ringing,
            correlation: CorrelationId::from_uuid(ids.next_uuid()),
            told: oneshot::channel().0,
        });
        reports.queued().insert(stream.clone(), pending.collect());
        let first = reports.next_round(&stream).unwrap();
        let second = reports.next_round(&stream).unwrap();
        let told: Vec<CallId> = first.iter().chain(&second).map(|p| p.call).collect();
        assert_eq!((first.len(), second.len()), (ROUND, 3));
        assert_eq!(told, calls);
        // Nothing left: the reporter is done and the extension's entry gone.
        assert!(reports.next_round(&stream).is_none());
        assert!(reports.queued().is_empty());
    }

    #[test]
    fn each_extension_is_told_each_change_of_its_part_once() {
        use ExtensionCallState as S;
        let ids = SeededIds::new(3);
        let now = engine::testing::t0();
        let id = CallId::from_uuid(ids.next_uuid());
        let caller_leg = LegId::from_uuid(ids.next_uuid());
        let (first, second) = (
            LegId::from_uuid(ids.next_uuid()),
            LegId::from_uuid(ids.next_uuid()),
        );
        let mut call = Call::default();
        let mut observer = Observer::default();
        run(&mut call, offer(id, caller_leg), now);
        assert_eq!(observer.changes(&call), vec![(number("1002"), S::Calling)]);
        assert_eq!(observer.changes(&call), vec![], "nothing changed");
        run(&mut call, ring(caller_leg, &[first, second]), now);
        // Two ringing contacts of one extension: one part.
        assert_eq!(observer.changes(&call), vec![(number("1003"), S::Ringing)]);
        run(&mut call, CallCommand::Answer { leg: second }, now);
        // The other fork ended, but the extension's most active leg is answered.
        assert_eq!(
            observer.changes(&call),
            vec![(number("1002"), S::Answered), (number("1003"), S::Answered)]
        );
        run(&mut call, CallCommand::Hold { leg: caller_leg }, now);
        assert_eq!(observer.changes(&call), vec![(number("1002"), S::Held)]);
        run(
            &mut call,
            CallCommand::HangUp {
                leg: second,
                cause: None,
            },
            now,
        );
        assert_eq!(
            observer.changes(&call),
            vec![(number("1002"), S::Ended), (number("1003"), S::Ended)]
        );
        assert_eq!(observer.changes(&call), vec![]);
    }

    #[test]
    fn an_extension_never_told_about_a_call_is_not_told_it_ended() {
        let ids = SeededIds::new(4);
        let now = engine::testing::t0();
        let id = CallId::from_uuid(ids.next_uuid());
        let mut call = Call::default();
        run(&mut call, offer(id, LegId::from_uuid(ids.next_uuid())), now);
        run(
            &mut call,
            CallCommand::Terminate {
                cause: events::model::HangupCause::UserBusy,
                sip_status: Some(486),
            },
            now,
        );
        // Decided after the call ended in one go: the caller never saw it ring.
        assert_eq!(Observer::default().changes(&call), vec![]);
    }
}
