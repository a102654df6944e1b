//! The process manager between a call and the extensions in it: after every change of the
//! call, each extension with a leg in it is told its part ([`ExtensionCommand::CallLegStateObserved`])
//! when that part changed, so the extension's line state (idle, ringing, calling, on a call, on
//! hold) follows the call. The part is derived from the call's legs alone, the way the busy-hour
//! simulation derives it: an ended leg is `Ended`, a held one `Held`, an answered one
//! `Answered`, the caller's unanswered leg `Calling`, any other unanswered leg `Ringing`; an
//! extension with several legs in one call shows its most active one.

use std::collections::BTreeMap;

use engine::call::Call;
use engine::extension::{Extension, ExtensionCommand, ExtensionRejection};
use engine::runtime::{Execute, ExecuteError, Instance, Registry};
use events::StreamId;
use events::ids::{CallId, CorrelationId, ExtensionNumber, TenantId};
use events::model::ExtensionCallState;

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

/// Tells each extension of `changes` its new part in `call`. Through the bounded path first;
/// a full mailbox waits instead (the part must arrive, or the line shows a call that ended).
pub(crate) async fn report(
    extensions: &Registry<Extension>,
    tenant: &TenantId,
    call: CallId,
    correlation: CorrelationId,
    changes: Vec<(ExtensionNumber, ExtensionCallState)>,
) {
    for (number, state) in changes {
        let instance =
            Instance::new(StreamId::extension(tenant, &number)).in_tenant(tenant.clone());
        let command = || {
            Execute::<Extension>::new(ExtensionCommand::CallLegStateObserved { call, state })
                .correlated(correlation)
        };
        let mut outcome = extensions.try_execute(&instance, command()).await;
        if matches!(outcome, Err(ExecuteError::Overloaded { .. })) {
            outcome = extensions.execute(&instance, command()).await;
        }
        match outcome {
            Ok(_) | Err(ExecuteError::Rejected(ExtensionRejection::NotProvisioned)) => {}
            Err(e) => {
                tracing::warn!(%call, extension = %number, ?state, error = %e,
                    "an extension was not told its part in a call");
            }
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
