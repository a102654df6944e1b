//! What the scenarios with calls share as the SIP edge between a call and the extensions in it:
//! the invariants every call and every extension's line keep between steps. (Each extension's
//! part in a call is the engine's rule, `Call::extension_parts`, which `sip` applies live.)

use engine::call::Call;
use engine::extension::Extension;
use events::ids::{CallId, ExtensionNumber};
use events::model::LineState;

/// What is wrong with call `id` between steps: it ended twice, or ended while a leg is up.
pub fn call_violations(id: CallId, call: &Call) -> Vec<String> {
    let mut v = Vec::new();
    if !call.never_ended_twice() {
        v.push(format!("call {id} ended twice"));
    }
    if call.is_ended() && call.legs().iter().any(|l| l.ended.is_none()) {
        v.push(format!("call {id} ended while a leg is still up"));
    }
    v
}

/// What is wrong with the line of extension `number`: busy while it is in no call.
pub fn line_violation(number: &ExtensionNumber, state: &Extension) -> Option<String> {
    let idle_line = matches!(state.line_state(), LineState::Idle | LineState::Offline);
    (state.calls().is_empty() && !idle_line)
        .then(|| format!("{number}: in no call but the line shows busy"))
}
