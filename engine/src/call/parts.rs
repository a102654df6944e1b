//! Each extension's part in a call, derived from the call's legs alone: what the SIP edge (and
//! the simulations playing it) tell the extensions in a call through `ObserveCallLeg`.

use std::collections::BTreeMap;

use events::ids::ExtensionNumber;
use events::model::{ExtensionCallState, LegRole};

use super::Call;

impl Call {
    /// The part each extension with a leg in this call has in it, keyed by `key` of its number
    /// (extensions `key` does not know are left out): an ended leg is `Ended`, a held one
    /// `Held`, an answered one `Answered`, the caller's unanswered leg `Calling`, any other
    /// unanswered leg `Ringing`; an extension with several legs in one call shows its most
    /// active one.
    pub fn extension_parts<K: Ord>(
        &self,
        key: impl Fn(&ExtensionNumber) -> Option<K>,
    ) -> BTreeMap<K, ExtensionCallState> {
        let mut parts = BTreeMap::new();
        for leg in self.legs() {
            let Some(k) = leg.party.extension.as_ref().and_then(&key) else {
                continue;
            };
            let state = if leg.ended.is_some() {
                ExtensionCallState::Ended
            } else if leg.held {
                ExtensionCallState::Held
            } else if leg.answered_at.is_some() {
                ExtensionCallState::Answered
            } else if leg.role == LegRole::Caller {
                ExtensionCallState::Calling
            } else {
                ExtensionCallState::Ringing
            };
            let entry = parts.entry(k).or_insert(state);
            if rank(state) > rank(*entry) {
                *entry = state;
            }
        }
        parts
    }
}

fn rank(state: ExtensionCallState) -> u8 {
    match state {
        ExtensionCallState::Answered => 5,
        ExtensionCallState::Held => 4,
        ExtensionCallState::Calling => 3,
        ExtensionCallState::Ringing => 2,
        ExtensionCallState::Ended => 1,
    }
}
