//! A benchmark, not a timed test (ignored by default): the time from an append to the websocket
//! frame that shows it, with many panel sockets watching a large directory.
//!
//! ```text
//! cargo test --release -p web --test panel_bench -- --ignored --nocapture
//! ```
//!
//! The binary runs on a fresh PostgreSQL database (`LEDGERLINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, is used to create and drop it) with a
//! generated directory of `PANEL_BENCH_EXTENSIONS` extensions (default 10,000) in departments of
//! 100; `PANEL_BENCH_SOCKETS` sockets (default 1,000) are opened by 50 panel users, each
//! granted 5 departments. The benchmark then appends presence changes of random extensions
//! straight to the log (another writer, woken up by LISTEN/NOTIFY, like a second engine node) at
//! `PANEL_BENCH_RATE` events/s (default 200) for `PANEL_BENCH_SECS` seconds (default 30), and
//! every socket records when each change it may see arrives. It prints p50, p99 and the maximum
//! of append-to-frame latency, and the deliveries missed (a change never shown), duplicated
//! (shown twice) and out of order (a delta not starting where the previous one ended); sockets
//! dropped as too slow are counted too.

mod common;
mod panel_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use events::codec::{Metadata, encode};
use events::ids::{EventId, ExtensionNumber, PresenceStateId, TenantId, UserId};
use events::model::{Event, ExtensionEvent, PresenceSource, PresenceStateType};
use events::{EventLog, ExpectedVersion, StoreOptions, StoreUrl, StreamId};
use panel_support::{Http, Server, Socket, free_port};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const PANEL_USERS: usize = 50;
const DEPT_SIZE: usize = 100;
const GRANTED: usize = 5;

fn psql(url: &str, sql: &str) {
    let ok = std::process::Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("psql runs")
        .success();
    assert!(ok, "psql: {sql}");
}

fn directory(extensions: usize) -> String {
    let departments = extensions.div_ceil(DEPT_SIZE);
    let mut s = String::from(
        "[[tenants]]\nid = \"bench\"\nname = \"Bench\"\nsip_domain = \"bench.example\"\n\n\
         [[tenants.presence_states]]\nid = \"available\"\nlabel = \"Available\"\ntype = \"available\"\n\n\
         [[tenants.presence_states]]\nid = \"away\"\nlabel = \"Away\"\ntype = \"away\"\n\n\
         [[tenants.profiles]]\nid = \"panel\"\nname = \"Panel\"\nfeatures = [\"call_panel\"]\n\n\
         [[tenants.profiles]]\nid = \"basic\"\nname = \"Basic\"\nfeatures = []\n\n",
    );
    for d in 0..departments {
        s += &format!("[[tenants.departments]]\nid = \"d{d:03}\"\nname = \"Department {d}\"\n\n");
    }
    let hash = engine::directory::WebPasswordHash::hash(
        "bench-password",
        b"bench-salt-bytes",
        engine::directory::WebPasswordHash::demo_params(),
    )
    .unwrap();
    for i in 0..extensions {
        s += &format!(
            "[[tenants.users]]\nid = \"u{i:05}\"\nname = \"User {i}\"\nextension = \"{}\"\ndepartment = \"d{:03}\"\nprofile = \"basic\"\nsip_ha1 = \"0123456789abcdef0123456789abcdef\"\n\n",
            100_000 + i,
            i / DEPT_SIZE
        );
    }
    for p in 0..PANEL_USERS {
        let grants: Vec<String> = (0..GRANTED)
            .map(|k| format!("d{:03}", (p * 2 + k) % departments))
            .collect();
        s += &format!(
            "[[tenants.users]]\nid = \"viewer{p:02}\"\nname = \"Viewer {p}\"\nextension = \"{}\"\ndepartment = \"d000\"\nprofile = \"panel\"\nweb_password_hash = \"{}\"\ngrants = {grants:?}\n\n",
            900_000 + p,
            hash.as_phc()
        );
    }
    s
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What one socket saw: for each card, when it arrived and the position it reflects.
#[derive(Default)]
struct Seen {
    receipts: Vec<(String, u64, Instant)>,
    out_of_order: usize,
    dropped: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture (release build)"]
async fn append_to_frame_latency_with_many_sockets() {
    let extensions = env_or("PANEL_BENCH_EXTENSIONS", 10_000);
    let sockets = env_or("PANEL_BENCH_SOCKETS", 1_000);
    let rate = env_or("PANEL_BENCH_RATE", 200);
    let secs = env_or("PANEL_BENCH_SECS", 30);
    let admin = std::env::var("LEDGERLINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("ledgerline_panel_bench_{}", std::process::id());
    psql(&admin, &format!("CREATE DATABASE {db}"));
    let store = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("directory.toml");
    std::fs::write(&config, directory(extensions)).unwrap();
    let port = free_port();
    let started = Instant::now();
    let server = Server::start_with(dir.path(), Some(&config), port, &["--store", &store]).await;
    println!(
        "bench: {extensions} extensions provisioned and served in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The sockets: PANEL_USERS viewers, sockets / PANEL_USERS tabs each.
    let opened = Instant::now();
    let mut tasks = Vec::new();
    let per_user = sockets.div_ceil(PANEL_USERS);
    let mut watched_by: Vec<BTreeSet<String>> = Vec::new();
    // The sockets listen until told to stop (pings and heartbeats never let them go quiet).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let origin = format!("http://127.0.0.1:{port}");
    for s in 0..sockets {
        let p = s / per_user;
        let departments = extensions.div_ceil(DEPT_SIZE);
        watched_by.push(
            (0..GRANTED)
                .map(|k| format!("d{:03}", (p * 2 + k) % departments))
                .collect(),
        );
        let mut http = Http::new(port);
        let r = http.login(&format!("viewer{p:02}"), "bench-password").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut ws = Socket::open(&http, "v=1", Some(&origin))
            .await
            .expect("opens");
        let first = ws.next(Duration::from_secs(60)).await.expect("a snapshot");
        assert_eq!(first["type"], "snapshot");
        let mut position = first["position"].as_u64().unwrap();
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                let f = tokio::select! {
                    _ = stopped.wait_for(|s| *s) => break,
                    f = ws.next(Duration::from_secs(3600)) => match f {
                        Some(f) => f,
                        None => break,
                    },
                };
                let now = Instant::now();
                match f["type"].as_str().unwrap_or("") {
                    "delta" => {
                        if f["from"].as_u64() != Some(position) {
                            seen.out_of_order += 1;
                        }
                        position = f["to"].as_u64().unwrap_or(position);
                        for c in f["delta"]["users"].as_array().into_iter().flatten() {
                            seen.receipts.push((
                                c["user"].as_str().unwrap_or("").to_owned(),
                                c["changed_at"].as_u64().unwrap_or(0),
                                now,
                            ));
                        }
                    }
                    "heartbeat" => position = f["position"].as_u64().unwrap_or(position),
                    "closing" => seen.dropped = true,
                    _ => {}
                }
            }
            seen
        }));
    }
    println!(
        "bench: {sockets} sockets signed in and snapshotted in {:.1} s",
        opened.elapsed().as_secs_f64()
    );

    // The busy hour, compressed: presence changes of random extensions at `rate` per second.
    let log: Arc<dyn EventLog> =
        events::open(&StoreUrl::parse(&store).unwrap(), &StoreOptions::default())
            .await
            .unwrap();
    let tenant = TenantId::parse("bench").unwrap();
    let appended: Arc<Mutex<Vec<(String, u64, Instant)>>> = Arc::default();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut tick = tokio::time::interval(interval);
    let total = rate * secs;
    let mut writers = Vec::new();
    for n in 0..total {
        tick.tick().await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % extensions as u64) as usize;
        let user = format!("u{i:05}");
        let ext = ExtensionNumber::parse((100_000 + i).to_string()).unwrap();
        let (state, ty) = if n % 2 == 0 {
            ("away", PresenceStateType::Away)
        } else {
            ("available", PresenceStateType::Available)
        };
        let event = Event::Extension(ExtensionEvent::PresenceSet {
            extension: ext.clone(),
            user: UserId::parse(&user).unwrap(),
            state: PresenceStateId::parse(state).unwrap(),
            state_type: ty,
            message: None,
            source: PresenceSource::Api,
            by: None,
        });
        #[allow(clippy::disallowed_methods, reason = "a benchmark stamps real time")]
        let meta = Metadata::new(EventId::from_uuid(uuid::Uuid::now_v7()), Utc::now())
            .with_tenant(tenant.clone());
        let log = log.clone();
        let appended = appended.clone();
        let stream = StreamId::extension(&tenant, &ext);
        // Appends run concurrently, as many engine actors' would.
        writers.push(tokio::spawn(async move {
            let outcome = log
                .append(&stream, ExpectedVersion::Any, vec![encode(&event, meta)])
                .await
                .expect("appended");
            let at = Instant::now();
            appended
                .lock()
                .unwrap()
                .push((user, outcome.last_position.0, at));
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Long enough for the last change to reach every socket.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send_replace(true);
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    server.stop();
    let closes = std::process::Command::new("psql")
        .arg(&store)
        .args(["-At", "-c", "select payload::json->>'reason', count(*) from events where event_type = 'PanelSessionClosed' group by 1"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).replace('\n', " "))
        .unwrap_or_default();
    println!(
        "bench: connections the server closed during the run, by reason: [{}]",
        closes.trim()
    );
    psql(&admin, &format!("DROP DATABASE {db} WITH (FORCE)"));

    // Each change, for each socket that may see it: the first card of that user at or after
    // the change's position.
    let appended = appended.lock().unwrap().clone();
    let dept_of = |user: &str| format!("d{:03}", user[1..].parse::<usize>().unwrap() / DEPT_SIZE);
    let mut latencies = Vec::new();
    let (mut missed, mut duplicated, mut out_of_order, mut dropped) =
        (0usize, 0usize, 0usize, 0usize);
    for (s, seen) in seen.iter().enumerate() {
        out_of_order += seen.out_of_order;
        dropped += usize::from(seen.dropped);
        let mut by_user: HashMap<&str, Vec<(u64, Instant)>> = HashMap::new();
        let mut positions = HashMap::new();
        for (user, at, when) in &seen.receipts {
            by_user.entry(user.as_str()).or_default().push((*at, *when));
            *positions.entry((user.as_str(), *at)).or_insert(0usize) += 1;
        }
        duplicated += positions.values().filter(|n| **n > 1).count();
        for (user, position, appended_at) in &appended {
            if !watched_by[s].contains(&dept_of(user)) {
                continue;
            }
            match by_user
                .get(user.as_str())
                .and_then(|r| r.iter().find(|(at, _)| at >= position))
            {
                Some((_, when)) => latencies.push(when.saturating_duration_since(*appended_at)),
                None => missed += 1,
            }
        }
    }
    latencies.sort();
    println!(
        "bench: {total} changes at {rate}/s to {extensions} extensions, {sockets} sockets: {} deliveries; append→frame p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; missed {missed}, duplicated {duplicated}, out of order {out_of_order}, sockets dropped {dropped}",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    assert_eq!((missed, duplicated, out_of_order), (0, 0, 0));
}
