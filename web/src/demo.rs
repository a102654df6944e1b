//! `ledgerline demo`: the server of `serve`, plus simulated phones that make the panel live
//! without hardware. Each phone is a real SIP user agent ([`sip::phone`]) on its own loopback
//! address, registering with its account's digest secret at the running SIP edge; the phones call
//! each other, ring, answer after a while, sometimes refuse busy, let it ring or cancel, hold and
//! resume, and hang up after a random duration. Users change presence and DND through the panel's
//! own HTTP API (HTTP Basic with the demo's public web password, so the request runs exactly the
//! panel's action), and queue agents pause and resume through the engine's queue registry.
//!
//! This module owns the phones' behaviour: every choice comes from one RNG seeded by `--seed`.
//! On stop (Ctrl-C) every phone hangs up or cancels its calls and unregisters before the engine
//! shuts down.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::directory::User;
use engine::directory::config::LoadedDirectory;
use engine::queue::{Queue, QueueCommand};
use engine::runtime::{Engine, Execute, Follower, Instance};
use events::ids::{QueueId, TenantId, UserId};
use events::model::UserRole;
use events::{EventLog, SeededIds, StreamId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sip::phone::{CallRef, Ended, Phone, PhoneConfig, PhoneEvent};
use sip::{Accounts, DigestSecrets};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What `ledgerline demo` adds to `serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DemoArgs {
    /// Seed of every random choice the phones make.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated phones, one per user with a SIP account, in extension order (0: all of them).
    #[arg(long, default_value_t = 0)]
    phones: usize,
    /// Calls placed per minute, over all phones.
    #[arg(long, default_value_t = 6.0)]
    calls_per_minute: f64,
    /// Mean length of an answered call, seconds.
    #[arg(long, default_value_t = 40.0)]
    mean_call_secs: f64,
    /// Presence, DND and queue-pause changes per minute, over all users.
    #[arg(long, default_value_t = 6.0)]
    changes_per_minute: f64,
}

/// The queues of the directory file (pause and resume their agents).
#[derive(Debug, Clone, Default)]
pub(crate) struct Queues(Vec<(TenantId, QueueId)>);

impl Queues {
    pub(crate) fn of(loaded: &LoadedDirectory) -> Self {
        Self(
            loaded
                .tenants
                .iter()
                .flat_map(|t| t.queues.iter().map(|q| (t.tenant.clone(), q.queue.clone())))
                .collect(),
        )
    }
}

/// The public web password the built-in demo directory gives `id` (engine's `demo.toml`):
/// `demo-<extension>` for a user with a phone line, `demo-<id>` for an administrator. Another
/// directory file may give it too; only its credentials can tell.
pub(crate) fn public_web_password(id: &UserId, user: &User) -> String {
    match user.role {
        UserRole::User => format!("demo-{}", user.extension),
        UserRole::ClientAdmin | UserRole::ResellerAdmin => format!("demo-{id}"),
    }
}

/// Warns that the built-in demo directory runs and prints its public logins, tenant by tenant.
/// Its passwords are known by construction ([`public_web_password`], checked by a test), so
/// none is verified here: argon2 has no business at start-up.
pub(crate) fn print_logins(engine: &Engine) {
    eprintln!("warning: {}", engine::directory::demo::DEMO_WARNING);
    for tenant in engine.tenants() {
        let Some(d) = engine.directory(&tenant) else {
            continue;
        };
        let domain = d.tenant().map(|t| t.sip_domain.clone()).unwrap_or_default();
        // A suspended tenant signs nobody in.
        let logins = d.users().iter().filter(|_| !d.is_suspended());
        let mut lines: Vec<String> = logins
            .clone()
            .filter(|(_, u)| u.role == UserRole::User)
            .map(|(_, u)| u.extension.to_string())
            .collect();
        lines.sort();
        let panel: Vec<String> = d
            .users()
            .iter()
            .filter(|(id, _)| d.can_use_panel(id))
            .map(|(id, u)| format!("{id} ({})", u.display_name))
            .collect();
        let admins: Vec<String> = logins
            .filter(|(_, u)| u.role != UserRole::User)
            .map(|(id, u)| format!("{id} / {}", public_web_password(id, u)))
            .collect();
        println!("  demo logins of tenant {tenant} (public, for trying it out only):");
        println!(
            "    users      {}–{}: web password demo-<ext>; panel: {}",
            lines.first().map_or("", String::as_str),
            lines.last().map_or("", String::as_str),
            panel.join(", ")
        );
        println!("    SIP        username <ext>, password sip-<ext>, domain {domain}");
        println!(
            "    admin      {} (directory administration)",
            admins.join(", ")
        );
    }
}

/// What the demo needs of the running server.
pub(crate) struct Server<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) accounts: &'a dyn Accounts,
    pub(crate) log: Arc<dyn EventLog>,
    /// Where the SIP edge listens (UDP).
    pub(crate) sip: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) queues: Queues,
}

/// One simulated user and their phone.
struct Member {
    tenant: TenantId,
    user: UserId,
    extension: String,
    /// The web password, when it is the demo's public one (presence needs it).
    web_password: Option<String>,
    phone: Phone,
    /// Calls in progress on the phone, and those of them that are up.
    calls: Mutex<Vec<CallRef>>,
    up: Mutex<Vec<CallRef>>,
}

#[derive(Debug, Default)]
struct Counters {
    registered: AtomicU64,
    calls_up: AtomicU64,
    placed: AtomicU64,
    answered: AtomicU64,
    refused: AtomicU64,
    cancelled: AtomicU64,
    changes: AtomicU64,
}

impl Counters {
    fn line(&self, phones: usize) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{}/{phones} registered, {} call legs up; {} calls placed, {} answered, {} refused, \
             {} cancelled; {} presence/DND/queue changes",
            g(&self.registered),
            g(&self.calls_up),
            g(&self.placed),
            g(&self.answered),
            g(&self.refused),
            g(&self.cancelled),
            g(&self.changes)
        )
    }
}

struct Shared {
    args: DemoArgs,
    rng: Mutex<StdRng>,
    members: Vec<Member>,
    counters: Counters,
    engine: Engine,
    /// The queues' states, kept current from the queue actors' feed.
    queue_states: Follower<Queue>,
    http: SocketAddr,
    queues: Queues,
}

impl Shared {
    fn rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn chance(&self, p: f64) -> bool {
        self.rng(|r| r.random_bool(p.clamp(0.0, 1.0)))
    }

    fn uniform(&self, lo: f64, hi: f64) -> Duration {
        Duration::from_secs_f64(self.rng(|r| r.random_range(lo..hi)))
    }

    /// An exponential delay of mean `mean` seconds (at least `min`).
    fn exponential(&self, mean: f64, min: f64) -> Duration {
        let u: f64 = self.rng(|r| r.random_range(0.0..1.0));
        Duration::from_secs_f64((-mean * (1.0 - u).ln()).max(min))
    }

    /// Waits for the next arrival of a Poisson process of `rate` per second; false once the demo
    /// stops.
    async fn next_arrival(&self, rate: f64, stopped: &mut watch::Receiver<bool>) -> bool {
        let wait = self.exponential(1.0 / rate, 0.05);
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => false,
            _ = tokio::time::sleep(wait) => true,
        }
    }
}

/// The running phones.
pub(crate) struct Demo {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// One per phone: what it hears, until the phone stops.
    listeners: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    bar: indicatif::ProgressBar,
}

/// Starts the phones against `server` and prints what runs.
pub(crate) async fn start(args: &DemoArgs, server: Server<'_>) -> anyhow::Result<Demo> {
    anyhow::ensure!(
        args.calls_per_minute >= 0.0 && args.changes_per_minute >= 0.0,
        "--calls-per-minute and --changes-per-minute cannot be negative"
    );
    anyhow::ensure!(
        args.mean_call_secs >= 1.0,
        "--mean-call-secs must be at least 1"
    );
    let engine = server.engine;
    // The users with a SIP account, tenant by tenant, in extension order.
    let mut wanted = Vec::new();
    for tenant in engine.tenants() {
        let Some(found) = engine.read_directory(&tenant, |d| {
            let domain = d.tenant().map(|t| t.sip_domain.clone()).unwrap_or_default();
            let mut users: Vec<(UserId, String)> = d
                .users()
                .iter()
                .filter(|(_, u)| u.role == UserRole::User)
                .map(|(id, u)| (id.clone(), u.extension.to_string()))
                .collect();
            users.sort_by(|a, b| a.1.cmp(&b.1));
            (domain, users, d.is_suspended())
        }) else {
            continue;
        };
        let (domain, users, suspended) = found;
        let Some(realm) = server.accounts.realm_for(&domain).filter(|_| !suspended) else {
            continue;
        };
        for (user, extension) in users {
            if let Some(account) = server.accounts.account(&realm, &extension) {
                wanted.push((
                    tenant.clone(),
                    domain.clone(),
                    user,
                    extension,
                    account.secrets,
                ));
            }
        }
    }
    if args.phones > 0 {
        wanted.truncate(args.phones);
    }
    anyhow::ensure!(
        !wanted.is_empty(),
        "the directory has no user with a SIP account: nothing to simulate"
    );
    let sip = match server.sip.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), server.sip.port())
        }
        _ => server.sip,
    };
    let ids: Arc<dyn events::IdGen> = Arc::new(SeededIds::new(args.seed));
    let mut members = Vec::new();
    let mut inboxes = Vec::new();
    for (n, (tenant, domain, user, extension, secrets)) in wanted.into_iter().enumerate() {
        let config = phone_config(sip, n, &domain, &extension, secrets);
        let (phone, events) = Phone::start(config, ids.clone()).await?;
        let demo_password = format!("demo-{extension}");
        let web_password = engine
            .verify_web_password(&tenant, &user, &demo_password)
            .then_some(demo_password);
        members.push(Member {
            tenant,
            user,
            extension,
            web_password,
            phone,
            calls: Mutex::default(),
            up: Mutex::default(),
        });
        inboxes.push(events);
    }
    let shared = Arc::new(Shared {
        args: args.clone(),
        rng: Mutex::new(StdRng::seed_from_u64(args.seed)),
        members,
        counters: Counters::default(),
        engine: engine.clone(),
        queue_states: Follower::new(server.log, engine.queues().subscribe()),
        http: server.http,
        queues: server.queues,
    });
    let (stop, stopped) = watch::channel(false);
    let listeners: Vec<_> = inboxes
        .into_iter()
        .enumerate()
        .map(|(i, inbox)| tokio::spawn(phone_loop(shared.clone(), i, inbox)))
        .collect();
    let mut tasks = Vec::new();
    // Every phone registers before the first call.
    let registering = shared.members.iter().map(|m| m.phone.register());
    for (m, result) in shared
        .members
        .iter()
        .zip(futures_util::future::join_all(registering).await)
    {
        if let Err(e) = result {
            tracing::warn!(extension = %m.extension, error = %e, "a demo phone did not register");
        }
    }
    tasks.push(tokio::spawn(place_calls(shared.clone(), stopped.clone())));
    tasks.push(tokio::spawn(churn(shared.clone(), stopped.clone())));
    let first = shared.members.first().map(|m| m.phone.local_addr().ip());
    let last = shared.members.last().map(|m| m.phone.local_addr().ip());
    let with_presence = shared
        .members
        .iter()
        .filter(|m| m.web_password.is_some())
        .count();
    println!(
        "  demo       {} phones (seed {}) on {}–{} registered at SIP {sip}",
        shared.members.len(),
        args.seed,
        first.map(|a| a.to_string()).unwrap_or_default(),
        last.map(|a| a.to_string()).unwrap_or_default(),
    );
    println!(
        "             ~{} calls/min, mean call {} s; ~{} presence/DND/queue changes/min \
         ({with_presence} users with the demo web password change presence)",
        args.calls_per_minute, args.mean_call_secs, args.changes_per_minute
    );
    let bar = crate::progress_bar(None, "  demo       {spinner} {msg}");
    tasks.push(tokio::spawn(status(shared.clone(), bar.clone(), stopped)));
    Ok(Demo {
        shared,
        stop,
        listeners,
        tasks,
        bar,
    })
}

fn phone_config(
    sip: SocketAddr,
    n: usize,
    domain: &str,
    extension: &str,
    secrets: DigestSecrets,
) -> PhoneConfig {
    let bind_ip = if sip.ip().is_loopback() {
        sip::phone::loopback_address(n as u32 + 1)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    PhoneConfig {
        server: sip,
        bind: SocketAddr::new(bind_ip, 0),
        domain: domain.to_owned(),
        user: extension.to_owned(),
        secrets,
        expires: 600,
        user_agent: concat!("ledgerline-demo/", env!("CARGO_PKG_VERSION")).to_owned(),
    }
}

impl Demo {
    /// Hangs up every call, unregisters every phone and prints the counters.
    pub(crate) async fn stop(mut self) {
        self.stop.send_replace(true);
        let stopping = self.shared.members.iter().map(|m| m.phone.stop());
        futures_util::future::join_all(stopping).await;
        // A stopped phone closes what it tells; its listener ends once it has counted the last
        // of it (the hang-ups of the stop itself), so the counters below are final.
        let listening = futures_util::future::join_all(self.listeners.iter_mut());
        match tokio::time::timeout(Duration::from_secs(2), listening).await {
            Err(_) => {
                tracing::warn!(target: "ledgerline::demo", "a demo phone did not stop; its last events are not counted");
            }
            Ok(ended) => {
                // A listener that panicked counted nothing from then on: say so, once each.
                for (member, ended) in self.shared.members.iter().zip(ended) {
                    if let Err(e) = ended {
                        tracing::warn!(target: "ledgerline::demo", extension = %member.extension, error = %e, "a demo phone's listener failed; its events after that are not counted");
                    }
                }
            }
        }
        for t in self.listeners.iter().chain(&self.tasks) {
            t.abort();
        }
        self.bar.finish_and_clear();
        println!(
            "  demo       stopped: {}",
            self.shared.counters.line(self.shared.members.len())
        );
    }
}

/// The status line, every second on a terminal; a log line every minute.
async fn status(
    shared: Arc<Shared>,
    bar: indicatif::ProgressBar,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let line = shared.counters.line(shared.members.len());
        bar.set_message(line.clone());
        bar.tick();
        if n.is_multiple_of(60) {
            tracing::info!(target: "ledgerline::demo", "{line}");
        }
        n += 1;
    }
}

/// Runs `f` after `delay`, unless the demo stops first.
fn later(
    shared: &Arc<Shared>,
    delay: Duration,
    f: impl FnOnce(&Member) + Send + 'static,
    i: usize,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        if let Some(m) = shared.members.get(i) {
            f(m);
        }
    });
}

/// What one phone does with what it hears.
async fn phone_loop(
    shared: Arc<Shared>,
    i: usize,
    mut events: tokio::sync::mpsc::UnboundedReceiver<PhoneEvent>,
) {
    let c = &shared.counters;
    let mut registered = false;
    while let Some(event) = events.recv().await {
        let me = &shared.members[i];
        tracing::debug!(target: "ledgerline::demo", extension = %me.extension, ?event);
        match event {
            PhoneEvent::Registered { .. } if !registered => {
                registered = true;
                c.registered.fetch_add(1, Ordering::Relaxed);
            }
            PhoneEvent::Registered { .. } => {}
            PhoneEvent::RegistrationFailed { status } => {
                tracing::warn!(extension = %me.extension, status, "demo phone: registration refused");
                if registered {
                    registered = false;
                    c.registered.fetch_sub(1, Ordering::Relaxed);
                }
            }
            PhoneEvent::Incoming { call, from } => {
                tracing::debug!(target: "ledgerline::demo", extension = %me.extension, %from, "rings");
                let busy = !me
                    .calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty();
                me.calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(call);
                let roll: f64 = shared.rng(|r| r.random_range(0.0..1.0));
                if busy && roll < 0.6 || roll < 0.08 {
                    // Busy on another call (or simply declines): refused at once.
                    let delay = shared.uniform(0.3, 2.0);
                    later(&shared, delay, move |m| m.phone.reject(call, 486), i);
                } else if roll < 0.18 {
                    // Nobody picks up: it rings until the caller or the ring timeout gives up.
                } else {
                    let delay = shared.uniform(1.5, 9.0);
                    later(&shared, delay, move |m| m.phone.answer(call), i);
                }
            }
            PhoneEvent::Ringing { call } => {
                if shared.chance(0.12) {
                    let delay = shared.uniform(2.0, 8.0);
                    later(&shared, delay, move |m| m.phone.hang_up(call), i);
                }
            }
            PhoneEvent::Answered { call } => {
                c.calls_up.fetch_add(1, Ordering::Relaxed);
                me.up.lock().unwrap_or_else(|p| p.into_inner()).push(call);
                let placed_here = call < (1 << 32);
                if placed_here {
                    c.answered.fetch_add(1, Ordering::Relaxed);
                }
                // Either side may hang up first; the caller sometimes holds for a while.
                let length = shared.exponential(shared.args.mean_call_secs, 3.0);
                if placed_here || shared.chance(0.4) {
                    later(&shared, length, move |m| m.phone.hang_up(call), i);
                }
                if placed_here && shared.chance(0.3) {
                    let at = length.mul_f64(0.3);
                    let back = length.mul_f64(0.6);
                    later(&shared, at, move |m| m.phone.hold(call, true), i);
                    later(&shared, back, move |m| m.phone.hold(call, false), i);
                }
            }
            PhoneEvent::Held { call, held } => {
                tracing::debug!(target: "ledgerline::demo", extension = %me.extension, call, held, "hold");
            }
            PhoneEvent::Ended { call, how } => {
                let mut calls = me.calls.lock().unwrap_or_else(|p| p.into_inner());
                calls.retain(|k| *k != call);
                drop(calls);
                match how {
                    Ended::ByPeer | Ended::ByUs | Ended::TimedOut => {}
                    Ended::Refused(_) => {
                        c.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Ended::Cancelled => {
                        c.cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let mut up = me.up.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(k) = up.iter().position(|k| *k == call) {
                    up.swap_remove(k);
                    c.calls_up.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Places calls between random phones of one tenant as a Poisson process.
async fn place_calls(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let rate = shared.args.calls_per_minute / 60.0;
    if rate <= 0.0 || shared.members.len() < 2 {
        return;
    }
    loop {
        if !shared.next_arrival(rate, &mut stopped).await {
            return;
        }
        let n = shared.members.len();
        let (a, b) = shared.rng(|r| (r.random_range(0..n), r.random_range(0..n)));
        let (caller, callee) = (&shared.members[a], &shared.members[b]);
        if a == b || caller.tenant != callee.tenant {
            continue;
        }
        let call = caller.phone.call(&callee.extension);
        caller
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call);
        shared.counters.placed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Presence, DND and queue-pause changes of random users as a Poisson process.
async fn churn(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let rate = shared.args.changes_per_minute / 60.0;
    if rate <= 0.0 {
        return;
    }
    loop {
        if !shared.next_arrival(rate, &mut stopped).await {
            return;
        }
        let i = shared.rng(|r| r.random_range(0..shared.members.len()));
        let roll: f64 = shared.rng(|r| r.random_range(0.0..1.0));
        let done = if roll < 0.25 && !shared.queues.0.is_empty() {
            toggle_pause(&shared).await
        } else if roll < 0.4 {
            let enabled = shared.chance(0.3);
            let body = format!("{{\"enabled\":{enabled}}}");
            panel_action(&shared, i, "/api/v1/dnd", &body).await
        } else {
            let m = &shared.members[i];
            let states: Vec<String> = shared
                .engine
                .read_directory(&m.tenant, |d| {
                    d.presence_states()
                        .iter()
                        .map(|s| s.id.to_string())
                        .filter(|s| s != "unavailable")
                        .collect()
                })
                .unwrap_or_default();
            // Back to available half of the time, so most users are there most of the time.
            let state = if shared.chance(0.5) || states.is_empty() {
                "available".to_owned()
            } else {
                states[shared.rng(|r| r.random_range(0..states.len()))].clone()
            };
            let body = serde_json::json!({ "state": state }).to_string();
            panel_action(&shared, i, "/api/v1/presence", &body).await
        };
        match done {
            Ok(()) => {
                shared.counters.changes.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(target: "ledgerline::demo", error = %e, "change not made"),
        }
    }
}

/// Pauses a random agent of a random queue, or resumes them if paused — through the queue's
/// actor, as a supervisor's action would.
async fn toggle_pause(shared: &Shared) -> anyhow::Result<()> {
    let q = shared.rng(|r| r.random_range(0..shared.queues.0.len()));
    let (tenant, queue) = &shared.queues.0[q];
    let stream = StreamId::queue(tenant, queue);
    let folded = shared.queue_states.current(&stream, 0).await?;
    let agents: Vec<_> = folded
        .state
        .agents()
        .map(|(id, a)| (id, a.user.clone(), a.paused.is_some()))
        .collect();
    anyhow::ensure!(!agents.is_empty(), "queue {queue} has no agent logged in");
    let (agent, user, paused) = agents[shared.rng(|r| r.random_range(0..agents.len()))].clone();
    let command = if paused {
        QueueCommand::Unpause {
            agent,
            by: Some(user),
        }
    } else {
        let reasons = ["break", "after-call work", "training"];
        let reason = reasons[shared.rng(|r| r.random_range(0..reasons.len()))];
        QueueCommand::Pause {
            agent,
            reason: Some(reason.to_owned()),
            by: Some(user),
        }
    };
    let instance = Instance::new(stream).in_tenant(tenant.clone());
    shared
        .engine
        .queues()
        .try_execute(&instance, Execute::new(command))
        .await
        .map_err(|e| anyhow::anyhow!("queue {queue}: {e}"))?;
    Ok(())
}

/// Posts `body` to the panel API path as member `i` (HTTP Basic with their demo password): the
/// same action the panel performs for them.
async fn panel_action(shared: &Shared, i: usize, path: &str, body: &str) -> anyhow::Result<()> {
    let m = &shared.members[i];
    let Some(password) = &m.web_password else {
        anyhow::bail!("{}: web password unknown", m.user);
    };
    let credentials =
        crate::panel::base64::encode(format!("{}@{}:{password}", m.user, m.tenant).as_bytes());
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {credentials}\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        host = shared.http,
        len = body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(shared.http).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).unwrap_or("");
    anyhow::ensure!(
        status == "200",
        "{path} for {}: {}",
        m.user,
        answer.lines().next().unwrap_or("no answer")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`print_logins`] prints without checking holds for every account of the file.
    #[test]
    fn every_account_of_the_built_in_demo_has_its_public_web_password() {
        let loaded = engine::directory::demo::demo_directory().unwrap();
        let mut accounts = 0;
        for t in &loaded.tenants {
            for (id, user) in t.directory.users() {
                let password = public_web_password(id, user);
                assert!(
                    t.credentials.verify_web_password(id, &password),
                    "{id}@{}: {password}",
                    t.tenant
                );
                assert!(!t.credentials.verify_web_password(id, "demo-0000"));
                accounts += 1;
            }
        }
        assert_eq!(accounts, 13, "twelve users and the administrator");
    }
}
