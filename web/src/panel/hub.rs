//! The websocket hub: every connected panel, and the one loop that brings them up to date.
//!
//! Each connection has a bounded queue of frames ([`HubConfig::queue`]) that its socket task
//! drains. The hub never waits on a connection: it offers each frame with `try_send`, and a
//! connection whose queue is full is dropped (close code 4008) — its browser reconnects with
//! the last position it has and gets what it missed. A slow browser therefore never delays
//! another, nor the projections.
//!
//! The loop wakes up when the panel view's position moves and on every heartbeat tick. In one
//! round, under the hub's lock and a brief read of the view, it re-checks every connection's
//! access ([`Access`]: revoked → closed; other departments → a fresh snapshot), computes one
//! delta per (tenant, departments, position) group and hands it to every connection of the
//! group, sends a connection its own card when it changed, its pinned list when a delta touched
//! a pinned card, the calls-per-minute graph when it changed, and on ticks a heartbeat with the
//! position up to which nothing it may see has changed.
//!
//! Joining (and re-joining with a position) happens under the same lock, so a connection gets
//! exactly one snapshot or one catch-up delta and then every later change once: no gap, no
//! duplicate.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::ids::{DepartmentId, TenantId, UserId};
use events::model::ResyncMode;
use events::{Clock, GlobalPosition};
use projections::PanelHandle;
use projections::PanelView;
use tokio::sync::{mpsc, oneshot};

use super::Access;
use super::presence::{self, Attendance};
use super::protocol::{CloseWhy, ServerFrame, Stats, VERSION, delta_json};
use super::watchlist::WatchLists;

/// How the hub treats connections.
#[derive(Debug, Clone)]
pub(crate) struct HubConfig {
    /// Frames a connection may have waiting before it is dropped as too slow.
    pub(crate) queue: usize,
    /// How often every connection gets a heartbeat.
    pub(crate) heartbeat: Duration,
    /// How long after a user's last panel socket closed they count as gone (their logout hook
    /// runs) unless one opens again: see [`super::presence`]. By default 30 s, or
    /// `LEDGERLINE_PANEL_LOGOUT_GRACE` (seconds).
    pub(crate) logout_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            heartbeat: Duration::from_secs(10),
            logout_grace: presence::grace_from_env(),
        }
    }
}

/// A joined connection's end of the hub.
#[derive(Debug)]
pub(crate) struct Joined {
    pub(crate) id: u64,
    /// Frames to send, in order (without `seq`).
    pub(crate) frames: mpsc::Receiver<String>,
    /// Fires when the hub drops the connection.
    pub(crate) kill: oneshot::Receiver<CloseWhy>,
    /// The position the client asked to continue from (if it could be continued).
    pub(crate) from: Option<GlobalPosition>,
    /// The position the first frames brought it to.
    pub(crate) to: GlobalPosition,
    pub(crate) mode: ResyncMode,
}

struct Conn {
    tenant: TenantId,
    user: UserId,
    /// The session it belongs to (public id).
    session: String,
    departments: BTreeSet<DepartmentId>,
    /// Position the hub has computed this connection's view up to.
    computed: GlobalPosition,
    /// Position the client was last told (snapshot, delta or heartbeat).
    told: GlobalPosition,
    /// `changed_at` of the own card last sent.
    me_at: Option<GlobalPosition>,
    pinned: Vec<UserId>,
    stats: Option<Stats>,
    tx: mpsc::Sender<String>,
    kill: Option<oneshot::Sender<CloseWhy>>,
}

impl Conn {
    /// Offers a frame; false when the connection must go (queue full, or its task ended).
    fn offer(&self, frame: String) -> bool {
        self.tx.try_send(frame).is_ok()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    conns: HashMap<u64, Conn>,
}

/// The calls-per-minute graph of each (tenant, departments) group, computed once a round.
type Graphs = HashMap<(TenantId, BTreeSet<DepartmentId>), Stats>;

/// Why a connection is brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatchUp {
    /// The view moved.
    Change,
    /// A heartbeat round.
    Tick,
    /// The connection rejoined from a position of its own.
    Rejoin,
}

/// A delta prepared once for every connection of a group.
struct Prepared {
    to: GlobalPosition,
    empty: bool,
    body: String,
    touched: HashSet<UserId>,
}

/// The hub; cheap to clone.
#[derive(Clone)]
pub(crate) struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    panel: PanelHandle,
    access: Arc<dyn Access>,
    watchlists: WatchLists,
    clock: Arc<dyn Clock>,
    epoch: String,
    config: HubConfig,
    attendance: Attendance,
    state: Mutex<State>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.inner.epoch)
            .field("connections", &self.connections())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// What a snapshot frame told its viewer (a connection compares later changes with it).
pub(crate) struct Told {
    position: GlobalPosition,
    /// `changed_at` of the viewer's own card.
    me_at: Option<GlobalPosition>,
    pinned: Vec<UserId>,
    stats: Stats,
}

/// The users of `pinned` whose cards `departments` show (the rest stay pinned, unseen).
pub(crate) fn visible_pinned(
    view: &PanelView,
    tenant: &TenantId,
    departments: &BTreeSet<DepartmentId>,
    pinned: Vec<UserId>,
) -> Vec<UserId> {
    pinned
        .into_iter()
        .filter(|u| view.card_for(tenant, departments, u).is_some())
        .collect()
}

fn stats_of(
    view: &PanelView,
    tenant: &TenantId,
    departments: &BTreeSet<DepartmentId>,
    now: DateTime<Utc>,
) -> Stats {
    Stats {
        calls_per_minute: view.calls_per_minute(tenant, departments, now),
    }
}

impl Hub {
    /// A hub over the panel view; `epoch` names the log (positions of another log are never
    /// continued).
    pub(crate) fn new(
        panel: PanelHandle,
        access: Arc<dyn Access>,
        watchlists: WatchLists,
        clock: Arc<dyn Clock>,
        epoch: String,
        config: HubConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                panel,
                access,
                watchlists,
                clock,
                epoch,
                config,
                attendance: Attendance::default(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Who is on the panel, for the presence hooks.
    pub(crate) fn attendance(&self) -> &Attendance {
        &self.inner.attendance
    }

    pub(crate) fn logout_grace(&self) -> Duration {
        self.inner.config.logout_grace
    }

    /// Connections now.
    pub(crate) fn connections(&self) -> usize {
        self.state().conns.len()
    }

    /// A snapshot frame of everything `departments` show `user`, as of `view` at `now` (what
    /// a socket starts with, and `GET /api/v1/panel`), with what it told them.
    pub(crate) fn snapshot_frame(
        &self,
        view: &PanelView,
        tenant: &TenantId,
        user: &UserId,
        departments: &BTreeSet<DepartmentId>,
        now: DateTime<Utc>,
    ) -> (String, Told) {
        let snapshot = view.snapshot_for(tenant, departments);
        let me = view.card(tenant, user);
        let pinned = visible_pinned(
            view,
            tenant,
            departments,
            self.inner.watchlists.pinned_users(tenant, user),
        );
        let stats = stats_of(view, tenant, departments, now);
        let frame = ServerFrame::Snapshot {
            v: VERSION,
            epoch: &self.inner.epoch,
            position: snapshot.position,
            now,
            snapshot: &snapshot,
            me: me.as_ref(),
            pinned: &pinned,
            stats: &stats,
        }
        .to_json();
        let told = Told {
            position: snapshot.position,
            me_at: me.map(|c| c.changed_at),
            pinned,
            stats,
        };
        (frame, told)
    }

    /// [`Hub::snapshot_frame`] for a connection, which then counts as told all of it.
    fn snapshot(&self, view: &PanelView, conn: &mut Conn, now: DateTime<Utc>) -> String {
        let (frame, told) =
            self.snapshot_frame(view, &conn.tenant, &conn.user, &conn.departments, now);
        conn.computed = told.position;
        conn.told = told.position;
        conn.me_at = told.me_at;
        conn.pinned = told.pinned;
        conn.stats = Some(told.stats);
        frame
    }

    /// The frames that bring a connection that has everything up to `conn.told` to the view
    /// now: the delta (if anything changed), then its own card, pinned list and graph if they
    /// changed — all of them on a rejoin, whose client may have missed any — and on a tick a
    /// heartbeat.
    fn catch_up(
        &self,
        view: &PanelView,
        conn: &mut Conn,
        delta: &Prepared,
        now: DateTime<Utc>,
        why: CatchUp,
        graphs: &mut Graphs,
    ) -> Vec<String> {
        let rejoin = why == CatchUp::Rejoin;
        let mut frames = Vec::new();
        // A rejoining client's first frame is the delta, even an empty one: it says from where
        // it was continued.
        if !delta.empty || rejoin {
            frames.push(delta_json(conn.told, delta.to, &delta.body));
            conn.told = delta.to;
        }
        conn.computed = delta.to;
        if let Some(card) = view.card(&conn.tenant, &conn.user)
            && (rejoin || conn.me_at != Some(card.changed_at))
        {
            frames.push(ServerFrame::Me { card: &card }.to_json());
            conn.me_at = Some(card.changed_at);
        }
        if rejoin || !delta.touched.is_empty() {
            let full = self.inner.watchlists.pinned_users(&conn.tenant, &conn.user);
            if rejoin || full.iter().any(|u| delta.touched.contains(u)) {
                let pinned = visible_pinned(view, &conn.tenant, &conn.departments, full);
                if rejoin || pinned != conn.pinned {
                    frames.push(ServerFrame::Pinned { cards: &pinned }.to_json());
                    conn.pinned = pinned;
                }
            }
        }
        let stats = graphs
            .entry((conn.tenant.clone(), conn.departments.clone()))
            .or_insert_with(|| stats_of(view, &conn.tenant, &conn.departments, now));
        if rejoin || conn.stats.as_ref() != Some(stats) {
            frames.push(ServerFrame::Stats { stats }.to_json());
            conn.stats = Some(stats.clone());
        }
        if why == CatchUp::Tick {
            frames.push(
                ServerFrame::Heartbeat {
                    position: conn.computed,
                    now,
                }
                .to_json(),
            );
            conn.told = conn.computed;
        }
        frames
    }

    fn prepare(
        view: &PanelView,
        tenant: &TenantId,
        departments: &BTreeSet<DepartmentId>,
        after: GlobalPosition,
    ) -> Option<Prepared> {
        let delta = view.deltas_since(tenant, departments, after)?;
        let touched = delta
            .users
            .iter()
            .map(|c| c.user.clone())
            .chain(delta.removed_users.iter().cloned())
            .collect();
        Some(Prepared {
            to: delta.to,
            empty: delta.is_empty(),
            body: serde_json::to_string(&delta).unwrap_or_else(|_| "{}".to_owned()),
            touched,
        })
    }

    /// Adds a connection of `user` (session `session`) and queues its first frames: a delta
    /// from `resume` when that position of this log can still be continued, else a snapshot.
    /// `None` when the user may not use the panel.
    pub(crate) fn join(
        &self,
        tenant: &TenantId,
        user: &UserId,
        session: &str,
        resume: Option<(GlobalPosition, String)>,
    ) -> Option<Joined> {
        let departments = self.inner.access.panel_departments(tenant, user)?;
        let (tx, frames) = mpsc::channel(self.inner.config.queue.max(4));
        let (kill_tx, kill) = oneshot::channel();
        let now = self.inner.clock.now();
        let mut state = self.state();
        let view = self.inner.panel.read();
        let mut conn = Conn {
            tenant: tenant.clone(),
            user: user.clone(),
            session: session.to_owned(),
            departments,
            computed: GlobalPosition::START,
            told: GlobalPosition::START,
            me_at: None,
            pinned: Vec::new(),
            stats: None,
            tx,
            kill: Some(kill_tx),
        };
        let continued = resume
            .filter(|(_, epoch)| *epoch == self.inner.epoch)
            .and_then(|(from, _)| {
                Self::prepare(&view, tenant, &conn.departments, from).map(|d| (from, d))
            });
        let (first, from, mode) = match continued {
            Some((from, delta)) => {
                conn.told = from;
                let graphs = &mut Graphs::new();
                let frames = self.catch_up(&view, &mut conn, &delta, now, CatchUp::Rejoin, graphs);
                (frames, Some(from), ResyncMode::Deltas)
            }
            None => (
                vec![self.snapshot(&view, &mut conn, now)],
                None,
                ResyncMode::Snapshot,
            ),
        };
        drop(view);
        for frame in first {
            // A fresh queue holds at least four frames.
            let _ = conn.offer(frame);
        }
        let id = state.next;
        state.next += 1;
        let to = conn.told;
        state.conns.insert(id, conn);
        Some(Joined {
            id,
            frames,
            kill,
            from,
            to,
            mode,
        })
    }

    /// Removes a connection (its socket closed).
    pub(crate) fn leave(&self, id: u64) -> Option<GlobalPosition> {
        self.state().conns.remove(&id).map(|c| c.told)
    }

    fn drop_conn(state: &mut State, id: u64, why: CloseWhy) {
        if let Some(mut conn) = state.conns.remove(&id)
            && let Some(kill) = conn.kill.take()
        {
            let _ = kill.send(why);
        }
    }

    /// Queues `frame` for connection `id` (an action's result); drops it if it cannot keep up.
    pub(crate) fn send_to(&self, id: u64, frame: String) {
        let mut state = self.state();
        let ok = state.conns.get(&id).is_some_and(|c| c.offer(frame));
        if !ok {
            Self::drop_conn(&mut state, id, CloseWhy::TooSlow);
        }
    }

    /// `user`'s watch list changed: every connection of theirs gets it.
    pub(crate) fn pinned_changed(&self, tenant: &TenantId, user: &UserId) {
        let full = self.inner.watchlists.pinned_users(tenant, user);
        let mut state = self.state();
        let view = self.inner.panel.read();
        let mut slow = Vec::new();
        for (id, conn) in state.conns.iter_mut() {
            if &conn.tenant != tenant || &conn.user != user {
                continue;
            }
            let pinned = visible_pinned(&view, tenant, &conn.departments, full.clone());
            if !conn.offer(ServerFrame::Pinned { cards: &pinned }.to_json()) {
                slow.push(*id);
            }
            conn.pinned = pinned;
        }
        drop(view);
        for id in slow {
            Self::drop_conn(&mut state, id, CloseWhy::TooSlow);
        }
    }

    /// Closes every connection of session `session`.
    pub(crate) fn close_session(&self, session: &str, why: CloseWhy) {
        let mut state = self.state();
        let ids: Vec<u64> = state
            .conns
            .iter()
            .filter(|(_, c)| c.session == session)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            Self::drop_conn(&mut state, id, why);
        }
    }

    /// Closes every connection.
    pub(crate) fn close_all(&self, why: CloseWhy) {
        let mut state = self.state();
        let ids: Vec<u64> = state.conns.keys().copied().collect();
        for id in ids {
            Self::drop_conn(&mut state, id, why);
        }
    }

    /// One round: see the module docs. `tick`: a heartbeat round.
    pub(crate) fn round(&self, tick: bool) {
        let now = self.inner.clock.now();
        let mut state = self.state();
        if state.conns.is_empty() {
            return;
        }
        let view = self.inner.panel.read();
        let position = view.position();
        let mut access: HashMap<(TenantId, UserId), Option<BTreeSet<DepartmentId>>> =
            HashMap::new();
        type Group = (TenantId, BTreeSet<DepartmentId>, GlobalPosition);
        let mut deltas: HashMap<Group, Option<Prepared>> = HashMap::new();
        let mut graphs = Graphs::new();
        let mut gone: Vec<(u64, CloseWhy)> = Vec::new();
        for (id, conn) in state.conns.iter_mut() {
            let allowed = access
                .entry((conn.tenant.clone(), conn.user.clone()))
                .or_insert_with(|| {
                    self.inner
                        .access
                        .panel_departments(&conn.tenant, &conn.user)
                })
                .clone();
            let Some(departments) = allowed else {
                gone.push((*id, CloseWhy::AccessRevoked));
                continue;
            };
            let frames = if departments != conn.departments {
                conn.departments = departments;
                vec![self.snapshot(&view, conn, now)]
            } else if position > conn.computed || tick {
                let key = (conn.tenant.clone(), conn.departments.clone(), conn.computed);
                let prepared = deltas.entry(key).or_insert_with(|| {
                    Self::prepare(&view, &conn.tenant, &conn.departments, conn.computed)
                });
                match prepared {
                    Some(delta) => {
                        let why = if tick { CatchUp::Tick } else { CatchUp::Change };
                        self.catch_up(&view, conn, delta, now, why, &mut graphs)
                    }
                    // Too far behind for the journal: start again from a snapshot.
                    None => vec![self.snapshot(&view, conn, now)],
                }
            } else {
                Vec::new()
            };
            for frame in frames {
                if !conn.offer(frame) {
                    gone.push((*id, CloseWhy::TooSlow));
                    break;
                }
            }
        }
        drop(view);
        for (id, why) in gone {
            if why == CloseWhy::TooSlow {
                tracing::debug!(connection = id, "panel connection too slow; dropped");
            }
            Self::drop_conn(&mut state, id, why);
        }
    }

    /// Runs rounds until `stop` fires, then closes every connection.
    pub(crate) async fn run(self, mut stop: oneshot::Receiver<()>) {
        let mut changes = self.inner.panel.changes();
        let mut ticks = tokio::time::interval(self.inner.config.heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut following = true;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                changed = changes.changed(), if following => {
                    if changed.is_err() {
                        // The projections stopped: only heartbeats from now on.
                        following = false;
                    }
                    self.round(false);
                }
                _ = ticks.tick() => self.round(true),
            }
        }
        self.close_all(CloseWhy::ServerShutdown);
    }
}
