//! `ledgerline demo` end to end: the binary runs the demo directory with its simulated phones on
//! free ports and a temporary data directory for a few seconds; the panel, read over HTTP while
//! it runs, shows the phones registered; after Ctrl-C the exported log must hold what real phones
//! produce — registrations, calls offered, rung, answered and ended, holds, presence changes and
//! queue pauses — and every phone must have hung up and unregistered before the engine stopped.

mod common;
mod panel_support;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{binary, interrupt};
use panel_support::{Http, free_port};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_phones_register_call_and_change_presence() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = binary()
        .arg("--data-dir")
        .arg(data.path())
        .args(["demo", "--http", &format!("127.0.0.1:{port}")])
        // The SIP edge on the engine's thread (what `auto` picks on one CPU); the other tests
        // run it on the worker threads.
        .args(["--sip-thread", "engine"])
        .args(["--seed", "7", "--calls-per-minute", "150"])
        .args(["--mean-call-secs", "3", "--changes-per-minute", "150"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    // Killed if anything below fails; interrupted as an operator would otherwise.
    let guard = common::KillOnDrop(Some(child));

    // The supervisor's panel (HTTP Basic), once every phone is registered.
    let panel = Http::basic(port, "1011", "demo-1011");
    let deadline = Instant::now() + Duration::from_secs(60);
    let registered = loop {
        if let Ok(r) = panel.get("/api/v1/panel").await
            && r.status == 200
        {
            let snapshot = r.json();
            let cards = snapshot["snapshot"]["users"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let online = cards
                .iter()
                .filter(|c| c["devices"].as_u64().unwrap_or(0) > 0)
                .count();
            if online >= 12 {
                break online;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the phones did not register within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(registered, 12, "every user with a SIP account has a phone");
    // Let them call for a while.
    tokio::time::sleep(Duration::from_secs(10)).await;
    interrupt(pid);
    let output = guard.wait_with_output(Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("demo       12 phones (seed 7)"), "{stdout}");
    assert!(stdout.contains("on the engine's thread)"), "{stdout}");
    assert!(
        stdout.contains("demo       stopped: 12/12 registered, 0 call legs up"),
        "{stdout}"
    );

    // What the engine recorded.
    let export = binary()
        .arg("--data-dir")
        .arg(data.path())
        .arg("export")
        .output()
        .expect("export runs");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        *count
            .entry(e["event_type"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let n = |t: &str| count.get(t).copied().unwrap_or(0);
    assert_eq!(n("DeviceRegistered"), 12, "{count:?}");
    assert_eq!(
        n("DeviceUnregistered"),
        12,
        "every phone unregistered at stop: {count:?}"
    );
    assert!(n("CallCreated") >= 5, "calls offered: {count:?}");
    assert!(n("LegRinging") >= 3, "calls rang: {count:?}");
    assert!(n("CallAnswered") >= 2, "calls answered: {count:?}");
    assert_eq!(
        n("CallEnded"),
        n("CallCreated"),
        "every call ended: {count:?}"
    );
    assert!(n("PresenceSet") >= 3, "presence changes: {count:?}");
    assert!(
        n("AgentPaused") + n("AgentUnpaused") >= 1,
        "queue pauses: {count:?}"
    );
    // Calls came from the phones (user agent recorded with the registration), between demo
    // extensions, and each ended with a disposition.
    let ua = events
        .iter()
        .find(|e| e["event_type"] == "DeviceRegistered")
        .map(|e| e["payload"].to_string())
        .unwrap_or_default();
    assert!(ua.contains("ledgerline-demo"), "{ua}");
    let phones_stopped = events
        .iter()
        .rev()
        .take_while(|e| e["event_type"] != "CallCreated")
        .any(|e| e["event_type"] == "DeviceUnregistered");
    assert!(
        phones_stopped,
        "the phones unregistered after the last call"
    );
}
