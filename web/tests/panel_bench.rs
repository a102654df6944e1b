//! A benchmark, not a timed test (ignored by default): the time from an append to the websocket
//! frame that shows it, with many panel sockets watching a large directory during a simulated
//! busy hour.
//!
//! ```text
//! cargo test --release -p web --test panel_bench -- --ignored --nocapture
//! ```
//!
//! The binary runs on a fresh PostgreSQL database (`LEDGERLINE_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, is used to create and drop it) with a
//! generated directory of `PANEL_BENCH_EXTENSIONS` extensions (default 10,000) in departments of
//! 100, named as the busy-hour simulation names them (tenant `sim`, users and extensions
//! `10000`…); `PANEL_BENCH_SOCKETS` sockets (default 1,000) are opened by 50 panel users, each
//! granted 5 departments.
//!
//! The load is a busy hour of those extensions (`simulations::busy_hour`, seed
//! `PANEL_BENCH_SEED`): calls offered, rung, answered, held, resumed, transferred and hung up,
//! with the legs' and lines' states, presence and DND churn and registration refreshes. It runs
//! in simulated time on an in-memory log; its events are then appended to the server's log by
//! another writer (woken up by LISTEN/NOTIFY, like a second engine node), stream by stream in
//! their order, each stamped with the time it is appended. The phones' first registrations come
//! before the sockets open; the rest is paced at the busy hour's own rate times
//! `PANEL_BENCH_SPEED` (default 1) for `PANEL_BENCH_SECS` seconds (default 30).
//!
//! Which cards each event changes comes from folding the same log through the panel projection
//! here; every socket must show each change to a card it may see (a card of that user at or
//! after the change's position). It prints p50, p99 and the maximum of append-to-frame latency,
//! the deliveries missed, duplicated (the same card version twice) and out of order (a delta not
//! starting where the previous one ended), the sockets the server dropped, and the event rate
//! achieved.

mod common;
mod panel_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use events::codec::decode;
use events::ids::{DepartmentId, TenantId};
use events::{EventLog, ExpectedVersion, GlobalPosition, StoreOptions, StoreUrl, StoredEvent};
use panel_support::{Http, Server, Socket, free_port};
use projections::PanelView;
use simulations::busy_hour::{BusyHour, run_busy_hour_with_log};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const PANEL_USERS: usize = 50;
const DEPT_SIZE: usize = 100;
const GRANTED: usize = 5;
/// Concurrent appenders (a stream always goes to the same one, so its order is kept).
const WRITERS: usize = 16;

fn psql(url: &str, sql: &str) {
    let ok = std::process::Command::new("psql")
        .arg(url)
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .status()
        .expect("psql runs")
        .success();
    assert!(ok, "psql: {sql}");
}

/// The busy hour's users `10000`… in departments of [`DEPT_SIZE`], and the panel viewers.
fn directory(extensions: usize) -> String {
    let departments = extensions.div_ceil(DEPT_SIZE);
    let mut s = String::from(
        "[[tenants]]\nid = \"sim\"\nname = \"Simulated\"\nsip_domain = \"sim.example\"\n\n",
    );
    for (id, ty) in [
        ("available", "available"),
        ("be-right-back", "away"),
        ("out-to-lunch", "away"),
        ("busy", "dnd"),
        ("away", "away"),
    ] {
        s += &format!(
            "[[tenants.presence_states]]\nid = \"{id}\"\nlabel = \"{id}\"\ntype = \"{ty}\"\n\n"
        );
    }
    s += "[[tenants.profiles]]\nid = \"panel\"\nname = \"Panel\"\nfeatures = [\"call_panel\"]\n\n\
          [[tenants.profiles]]\nid = \"basic\"\nname = \"Basic\"\nfeatures = []\n\n";
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
            "[[tenants.users]]\nid = \"{n}\"\nname = \"User {n}\"\nextension = \"{n}\"\ndepartment = \"d{:03}\"\nprofile = \"basic\"\nsip_ha1 = \"0123456789abcdef0123456789abcdef\"\n\n",
            i / DEPT_SIZE,
            n = 10_000 + i,
        );
    }
    for p in 0..PANEL_USERS {
        s += &format!(
            "[[tenants.users]]\nid = \"viewer{p:02}\"\nname = \"Viewer {p}\"\nextension = \"{}\"\ndepartment = \"d000\"\nprofile = \"panel\"\nweb_password_hash = \"{}\"\ngrants = {:?}\n\n",
            900_000 + p,
            hash.as_phc(),
            granted(p, departments)
        );
    }
    s
}

fn granted(viewer: usize, departments: usize) -> Vec<String> {
    (0..GRANTED)
        .map(|k| format!("d{:03}", (viewer * 2 + k) % departments))
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one socket saw: each card that arrived (user, the position it reflects, when).
#[derive(Default)]
struct Seen {
    receipts: Vec<(String, u64, Instant)>,
    out_of_order: usize,
    dropped: bool,
}

/// The busy hour's events in appendable groups: consecutive events of one stream at one instant
/// (one command's outcome), with their offset into the busy hour.
fn groups(stored: Vec<StoredEvent>) -> Vec<(Duration, Vec<StoredEvent>)> {
    let start = simulations::world::start_time();
    let mut out: Vec<(Duration, Vec<StoredEvent>)> = Vec::new();
    for e in stored {
        // The phones are the engine's here: their provisioning is the directory file's.
        if e.record.event_type == "ExtensionProvisioned" {
            continue;
        }
        let offset = (e.record.occurred_at - start).to_std().unwrap_or_default();
        match out.last_mut() {
            Some((at, group))
                if *at == offset && group.last().is_some_and(|l| l.stream == e.stream) =>
            {
                group.push(e)
            }
            _ => out.push((offset, vec![e])),
        }
    }
    out
}

/// The appenders: a stream always goes to the same one. Each append is stamped with the time
/// it is made and recorded as (first position, last position, when it returned).
type Appended = Arc<Mutex<Vec<(u64, u64, Instant)>>>;

fn writers(
    log: &Arc<dyn EventLog>,
    appended: &Appended,
) -> (
    Vec<tokio::sync::mpsc::UnboundedSender<Vec<StoredEvent>>>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let mut senders = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<StoredEvent>>();
        let (log, appended) = (log.clone(), appended.clone());
        senders.push(tx);
        tasks.push(tokio::spawn(async move {
            while let Some(group) = rx.recv().await {
                let stream = group[0].stream.clone();
                #[allow(clippy::disallowed_methods, reason = "a benchmark stamps real time")]
                let now = Utc::now();
                let records = group
                    .into_iter()
                    .map(|e| {
                        let mut r = e.record;
                        r.occurred_at = now;
                        r
                    })
                    .collect();
                let outcome = log
                    .append(&stream, ExpectedVersion::Any, records)
                    .await
                    .expect("appended");
                appended.lock().unwrap().push((
                    outcome.first_position.0,
                    outcome.last_position.0,
                    Instant::now(),
                ));
            }
        }));
    }
    (senders, tasks)
}

fn writer_of(stream: &events::StreamId) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    stream.hash(&mut h);
    (h.finish() % WRITERS as u64) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture (release build)"]
async fn append_to_frame_latency_during_a_busy_hour() {
    let extensions: usize = env_or("PANEL_BENCH_EXTENSIONS", 10_000);
    let sockets: usize = env_or("PANEL_BENCH_SOCKETS", 1_000);
    let secs: u64 = env_or("PANEL_BENCH_SECS", 30);
    let speed: f64 = env_or("PANEL_BENCH_SPEED", 1.0);
    let seed: u64 = env_or("PANEL_BENCH_SEED", 1);
    let admin = std::env::var("LEDGERLINE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());

    // The busy hour, in simulated time: long enough for the part replayed.
    let simulated = Duration::from_secs_f64(secs as f64 * speed);
    let made = Instant::now();
    let params = BusyHour {
        extensions: extensions as u32,
        minutes: (simulated.as_secs().div_ceil(60) as u32).max(1),
        ..BusyHour::default()
    };
    let (report, sim_log) = run_busy_hour_with_log(&params, seed, &mut |_, _| {});
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let mut stored = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = sim_log.read_all(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        stored.extend(page);
    }
    let all = groups(stored);
    let (setup, run): (Vec<_>, Vec<_>) = all.into_iter().partition(|(at, _)| at.is_zero());
    let run: Vec<_> = run.into_iter().filter(|(at, _)| *at <= simulated).collect();
    let run_events: usize = run.iter().map(|(_, g)| g.len()).sum();
    println!(
        "bench: busy hour of {extensions} extensions (seed {seed}) simulated in {:.1} s; replaying \
         {} setup events, then {run_events} events of its first {:.0} s at {speed}× over {secs} s",
        made.elapsed().as_secs_f64(),
        setup.iter().map(|(_, g)| g.len()).sum::<usize>(),
        simulated.as_secs_f64(),
    );

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

    // The phones register before anyone watches.
    let log: Arc<dyn EventLog> =
        events::open(&StoreUrl::parse(&store).unwrap(), &StoreOptions::default())
            .await
            .unwrap();
    let appended: Appended = Arc::default();
    let (senders, writer_tasks) = writers(&log, &appended);
    let setting_up = Instant::now();
    let setup_appends = setup.len();
    for (_, group) in setup {
        senders[writer_of(&group[0].stream)].send(group).unwrap();
    }
    while appended.lock().unwrap().len() < setup_appends {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    appended.lock().unwrap().clear();
    println!(
        "bench: the phones' registrations appended in {:.1} s",
        setting_up.elapsed().as_secs_f64()
    );

    // The sockets: PANEL_USERS viewers, sockets / PANEL_USERS tabs each.
    let opened = Instant::now();
    let departments = extensions.div_ceil(DEPT_SIZE);
    let mut tasks = Vec::new();
    let per_user = sockets.div_ceil(PANEL_USERS);
    let mut watched_by: Vec<BTreeSet<String>> = Vec::new();
    let mut first_position = u64::MAX;
    // The sockets listen until told to stop (pings and heartbeats never let them go quiet).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let origin = format!("http://127.0.0.1:{port}");
    for s in 0..sockets {
        let p = s / per_user;
        watched_by.push(granted(p, departments).into_iter().collect());
        let mut http = Http::new(port);
        let r = http.login(&format!("viewer{p:02}"), "bench-password").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut ws = Socket::open(&http, "v=1", Some(&origin))
            .await
            .expect("opens");
        let first = ws.next(Duration::from_secs(60)).await.expect("a snapshot");
        assert_eq!(first["type"], "snapshot");
        let mut position = first["position"].as_u64().unwrap();
        first_position = first_position.min(position);
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

    // The busy hour, paced.
    let start = tokio::time::Instant::now();
    let wall = Instant::now();
    for (at, group) in run {
        tokio::time::sleep_until(start + at.div_f64(speed)).await;
        senders[writer_of(&group[0].stream)].send(group).unwrap();
    }
    drop(senders);
    for w in writer_tasks {
        w.await.unwrap();
    }
    let took = wall.elapsed();
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

    // Which cards each appended event changed: the same log folded through the projection.
    let appended = appended.lock().unwrap().clone();
    let appended_at: HashMap<u64, Instant> = appended
        .iter()
        .flat_map(|(first, last, at)| (*first..=*last).map(move |p| (p, *at)))
        .collect();
    let tenant = TenantId::parse("sim").unwrap();
    let every: BTreeSet<DepartmentId> = (0..departments)
        .map(|d| DepartmentId::parse(format!("d{d:03}")).unwrap())
        .collect();
    let mut view = PanelView::with_journal_capacity(50_000_000);
    let mut changes: Vec<(u64, String, String)> = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = log.read_all(after, 10_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for stored in &page {
            let recorded = decode(stored).unwrap();
            let p = recorded.position.0;
            view.apply(&recorded);
            if p <= first_position || !appended_at.contains_key(&p) {
                continue;
            }
            let Some(delta) = view.deltas_since(&tenant, &every, GlobalPosition(p - 1)) else {
                continue;
            };
            for card in delta.users {
                let dept = card.department.map(|d| d.to_string()).unwrap_or_default();
                changes.push((p, card.user.to_string(), dept));
            }
        }
    }
    psql(&admin, &format!("DROP DATABASE {db} WITH (FORCE)"));

    let mut latencies = Vec::new();
    let (mut missed, mut duplicated, mut out_of_order, mut dropped) =
        (0usize, 0usize, 0usize, 0usize);
    for (s, seen) in seen.iter().enumerate() {
        out_of_order += seen.out_of_order;
        dropped += usize::from(seen.dropped);
        let mut by_user: HashMap<&str, Vec<(u64, Instant)>> = HashMap::new();
        let mut versions = HashMap::new();
        for (user, at, when) in &seen.receipts {
            by_user.entry(user.as_str()).or_default().push((*at, *when));
            *versions.entry((user.as_str(), *at)).or_insert(0usize) += 1;
        }
        duplicated += versions.values().filter(|n| **n > 1).count();
        for (position, user, dept) in &changes {
            if !watched_by[s].contains(dept) {
                continue;
            }
            match by_user
                .get(user.as_str())
                .and_then(|r| r.iter().find(|(at, _)| at >= position))
            {
                Some((_, when)) => {
                    latencies.push(when.saturating_duration_since(appended_at[position]))
                }
                None => missed += 1,
            }
        }
    }
    latencies.sort();
    let events: u64 = appended.iter().map(|(f, l, _)| l - f + 1).sum();
    let cards: BTreeSet<u64> = changes.iter().map(|(p, _, _)| *p).collect();
    println!(
        "bench: {events} events appended in {:.1} s ({:.0} events/s; {} appends), {} of them \
         changed {} cards; {extensions} extensions, {sockets} sockets: {} deliveries; \
         append→frame p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; missed {missed}, duplicated \
         {duplicated}, out of order {out_of_order}, sockets dropped {dropped}",
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64(),
        appended.len(),
        cards.len(),
        changes.len(),
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    assert!(!latencies.is_empty(), "nothing was delivered");
    assert_eq!((missed, duplicated, out_of_order), (0, 0, 0));
}
