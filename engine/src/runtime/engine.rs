//! The engine as one piece: a [`Registry`] per aggregate kind (extension, call, queue,
//! conference, channel room, conversation, voicemail box, directory) over one log, one clock and
//! one id generator, the directory file provisioned into the log, a read model of every tenant's
//! directory and the credentials, which never leave memory.
//!
//! Provisioning is a reconciliation, so starting twice on the same file writes nothing and
//! starting on a changed file writes only the differences. The whole log is folded once at
//! start; for each stream the file touches, the commands that bring its folded state to what
//! the file says are decided one after another on that state (the aggregates' own `decide`, so
//! every referential rule holds), and everything the stream gets is appended at once with the
//! exact version it was folded at. Nothing is written unless every stream's commands were
//! accepted. The same fold finds the streams left holding deadlines, which start re-arms.
//! The other streams are written first and the directory streams last: the plan is computed
//! from the directory as stored, so a start interrupted half-way is finished by the next one.
//!
//! What a changed file cannot change, because no command exists for it, is reported in
//! [`Provisioned::not_applied`] instead: a tenant's SIP domain or reseller, a reseller's or a
//! profile's name, an extension's display name or department once provisioned (the directory
//! gets the change, the extension keeps what it was provisioned with), a static queue agent
//! who cannot be logged out because they are on a queue call. Queues, conference rooms and
//! tenants removed from the file are not noticed at all: their streams are not enumerated, so
//! they stay as they are. The file is authoritative: a change made at run time through the
//! aggregates that the file contradicts is undone at the next start.
//!
//! Credentials are taken from the file at every start and kept in memory only; since their
//! previous values are not kept anywhere, a changed secret is not recorded as
//! `UserCredentialChanged`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, Weak};

use chrono::{DateTime, Utc};
use events::codec::Recorded;
use events::ids::{Category, ExtensionNumber, TenantId, UserId};
use events::log::to_micros;
use events::model::{
    AgentLogoutReason, ConferenceEvent, DirectoryEvent, Event, HangupCause, Membership, UserRole,
};
use events::{AgentId, Clock, CorrelationId, EventLog, ExpectedVersion, IdGen, LogError, StreamId};
use futures_util::future::{join_all, try_join_all};
use tokio::sync::broadcast;

use super::{Execute, ExecuteError, Folded, Instance, Registry, RegistryConfig, Services};
use crate::aggregate::{Aggregate, stamp};
use crate::call::{Call, CallCommand, CallRejection};
use crate::conference::{Conference, ConferenceCommand, ConferenceSettings};
use crate::directory::config::{LoadedDirectory, LoadedTenant, QueueSetup};
use crate::directory::{
    Credentials, Directory, DirectoryCommand, DirectoryRejection, SipDigestHa1,
};
use crate::extension::{Extension, ExtensionCommand};
use crate::queue::{Queue, QueueCommand, QueueSettings};
use crate::replay::{self, DivergenceKind};
use crate::room::{ChannelRoom, Conversation};
use crate::voicemail::VoicemailBox;

/// How the engine runs its actors.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Mailboxes, idleness and arbiters, for every aggregate kind.
    pub registry: RegistryConfig,
    /// Events each kind's live feed buffers per receiver.
    pub feed_capacity: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            registry: RegistryConfig::default(),
            feed_capacity: 4096,
        }
    }
}

/// Why the engine did not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Log(#[from] LogError),
    /// An aggregate refused a command the directory file needs. Nothing was written.
    #[error("the directory file cannot be applied to {stream}: {command} was refused: {reason}")]
    Refused {
        stream: StreamId,
        command: String,
        reason: String,
    },
    /// A reseller and a tenant with the same id would share one directory stream.
    #[error("reseller `{0}` and tenant `{0}` would share the stream directory-{0}; rename one")]
    SharedStream(String),
    /// No stream can be named after an id of the file.
    #[error("{0}")]
    StreamName(String),
    /// The engine's own thread could not be started or stopped before the engine was up.
    #[error("the engine thread failed: {0}")]
    Thread(String),
}

/// What provisioning the directory file did at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    /// Events appended.
    pub events: usize,
    /// The streams they went to: the directories first (written last, see the module docs),
    /// then the others.
    pub streams: Vec<StreamId>,
    /// Differences between the file and the log that no command can apply, one sentence each.
    pub not_applied: Vec<String>,
    /// Streams of any kind whose rebuilt state held deadlines (an open call's ring timeout, a
    /// registration's expiry, a queue caller's maximum wait), activated at start so those
    /// timers run again; overdue ones fire at once.
    pub rearmed: usize,
}

/// The running engine. A cheap handle (clone it freely), usable from any thread or runtime;
/// only [`Engine::start`] needs a running actix `System`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    log: Arc<dyn EventLog>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGen>,
    extensions: Registry<Extension>,
    calls: Registry<Call>,
    queues: Registry<Queue>,
    conferences: Registry<Conference>,
    rooms: Registry<ChannelRoom>,
    conversations: Registry<Conversation>,
    voicemail: Registry<VoicemailBox>,
    directories: Registry<Directory>,
    /// Every tenant's directory, folded, with the stream version it reflects.
    read_model: Arc<DirectoryReadModel>,
    /// Secrets from the directory file; never logged, never in the log.
    credentials: BTreeMap<TenantId, Credentials>,
    provisioned: Provisioned,
    /// What the start-up fold found the last run left, until [`Engine::settle_last_run`] takes
    /// it.
    left: std::sync::Mutex<LastRun>,
}

type DirectoryReadModel = RwLock<BTreeMap<TenantId, (Directory, u64)>>;

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("log", &self.inner.log.describe())
            .field("tenants", &self.tenants())
            .field("provisioned", &self.inner.provisioned)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds the registries, provisions `loaded` into the log (see the module docs) and
    /// activates every provisioned extension, queue and conference room, so the deadlines they
    /// hold are armed again after a restart.
    ///
    /// # Panics
    /// Outside a running actix `System` (the registries need an arbiter).
    pub async fn start(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
        loaded: LoadedDirectory,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let now = clock.now();
        // The whole log, folded once, before any actor exists: provisioning plans on these
        // states, and the streams left holding timers by the last run are found in them.
        let folded = replay::fold_log(log.clone()).await?;
        if !folded.is_clean() {
            tracing::warn!(
                divergences = folded.divergence_count(),
                "the log does not fold cleanly (`ledgerline replay` lists why); re-arming anyway"
            );
        }
        let Provisioning {
            provisioned,
            directories,
            written,
            extensions: provisioned_extensions,
        } = provision(&*log, &folded, &*ids, &loaded, now).await?;
        tracing::info!(
            events = provisioned.events,
            streams = provisioned.streams.len(),
            "directory provisioned"
        );
        for note in &provisioned.not_applied {
            tracing::warn!("directory file: {note}");
        }

        fn registry<A: Aggregate>(
            log: &Arc<dyn EventLog>,
            clock: &Arc<dyn Clock>,
            ids: &Arc<dyn IdGen>,
            config: &EngineConfig,
        ) -> Registry<A> {
            let services = Services::new(
                log.clone(),
                clock.clone(),
                ids.clone(),
                config.feed_capacity,
            );
            Registry::new(services, config.registry.clone())
        }
        let pending = streams_with_deadlines(&folded, &written);
        let left = LastRun::of(&folded);
        let extension_seeds = extension_seeds(&folded, provisioned_extensions);
        drop(folded);
        let mut provisioned = provisioned;
        provisioned.rearmed = pending.len();
        let directory_registry: Registry<Directory> = registry(&log, &clock, &ids, &config);
        let feed = directory_registry.subscribe();
        let read_model = Arc::new(RwLock::new(directories));
        let engine = Engine {
            inner: Arc::new(Inner {
                extensions: registry(&log, &clock, &ids, &config),
                calls: registry(&log, &clock, &ids, &config),
                queues: registry(&log, &clock, &ids, &config),
                conferences: registry(&log, &clock, &ids, &config),
                rooms: registry(&log, &clock, &ids, &config),
                conversations: registry(&log, &clock, &ids, &config),
                voicemail: registry(&log, &clock, &ids, &config),
                directories: directory_registry,
                read_model: read_model.clone(),
                credentials: loaded
                    .tenants
                    .iter()
                    .map(|t| (t.tenant.clone(), t.credentials.clone()))
                    .collect(),
                provisioned,
                left: std::sync::Mutex::new(left),
                log: log.clone(),
                clock,
                ids,
            }),
        };
        // Before any actor exists: no extension is read back from the log to be served.
        engine.inner.extensions.seed(extension_seeds);
        actix::spawn(follow_directories(
            feed,
            Arc::downgrade(&read_model),
            log.clone(),
        ));
        engine.activate(&loaded);
        engine.rearm(&pending);
        tracing::info!(streams = pending.len(), "deadlines re-armed");
        Ok(engine)
    }

    /// [`Engine::start`] on a thread of its own that runs an actix `System`, for callers that
    /// are not inside one (a plain tokio runtime, such as the binary's). The actors live on
    /// that thread; the returned handle works from anywhere. The thread runs until
    /// [`EngineThread::stop`] or until the `EngineThread` is dropped.
    pub async fn start_on_own_thread(
        log: Arc<dyn EventLog>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGen>,
        loaded: LoadedDirectory,
        config: EngineConfig,
    ) -> Result<(Engine, EngineThread), EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("engine".to_owned())
            .spawn(move || {
                let runner = actix::System::new();
                let started = runner.block_on(Engine::start(log, clock, ids, loaded, config));
                let ok = started.is_ok();
                // Nobody waits for an engine that failed, or whose caller gave up: stop here.
                let sent = tx.send(started.map(|engine| (engine, actix::System::current())));
                if !ok || sent.is_err() {
                    return;
                }
                if let Err(e) = runner.run() {
                    tracing::error!(error = %e, "the engine's actix system failed");
                }
            })
            .map_err(|e| EngineError::Thread(e.to_string()))?;
        match rx.await {
            Ok(Ok((engine, system))) => Ok((
                engine,
                EngineThread {
                    system,
                    thread: Some(thread),
                },
            )),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(EngineError::Thread(
                "it stopped before the engine was started".to_owned(),
            )),
        }
    }

    pub fn extensions(&self) -> &Registry<Extension> {
        &self.inner.extensions
    }
    pub fn calls(&self) -> &Registry<Call> {
        &self.inner.calls
    }
    pub fn queues(&self) -> &Registry<Queue> {
        &self.inner.queues
    }
    pub fn conferences(&self) -> &Registry<Conference> {
        &self.inner.conferences
    }
    pub fn rooms(&self) -> &Registry<ChannelRoom> {
        &self.inner.rooms
    }
    pub fn conversations(&self) -> &Registry<Conversation> {
        &self.inner.conversations
    }
    pub fn voicemail_boxes(&self) -> &Registry<VoicemailBox> {
        &self.inner.voicemail
    }
    /// The directory aggregates (one stream per tenant, one per reseller). Changes made through
    /// it reach [`Engine::directory`] once they are recorded.
    pub fn directory_registry(&self) -> &Registry<Directory> {
        &self.inner.directories
    }
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.inner.log
    }
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }
    pub fn ids(&self) -> &Arc<dyn IdGen> {
        &self.inner.ids
    }
    /// What provisioning wrote at start, and what it could not apply.
    pub fn provisioned(&self) -> &Provisioned {
        &self.inner.provisioned
    }

    /// The tenants the read model holds, in order.
    pub fn tenants(&self) -> Vec<TenantId> {
        self.read_model().keys().cloned().collect()
    }

    /// `tenant`'s directory as recorded so far.
    pub fn directory(&self, tenant: &TenantId) -> Option<Directory> {
        self.read_directory(tenant, Directory::clone)
    }

    /// Runs `f` on `tenant`'s directory without copying it. `f` must not block.
    pub fn read_directory<R>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&Directory) -> R,
    ) -> Option<R> {
        self.read_model().get(tenant).map(|(d, _)| f(d))
    }

    /// `tenant`'s secrets as the directory file gave them.
    pub fn credentials(&self, tenant: &TenantId) -> Option<&Credentials> {
        self.inner.credentials.get(tenant)
    }

    /// The SIP account registered as `extension` in `tenant`: its user and digest secret. `None`
    /// for an unknown extension, a user without a SIP secret or a suspended tenant.
    pub fn sip_account(
        &self,
        tenant: &TenantId,
        extension: &ExtensionNumber,
    ) -> Option<(UserId, SipDigestHa1)> {
        let user = self
            .read_directory(tenant, |d| {
                if d.is_suspended() {
                    return None;
                }
                d.user_for_extension(extension).map(|(u, _)| u.clone())
            })
            .flatten()?;
        let secret = self.credentials(tenant)?.sip_digest(&user)?.clone();
        Some((user, secret))
    }

    /// Whether `password` is `user`'s web password in `tenant` (which must not be suspended).
    /// The hash is checked outside the read model's lock: argon2 takes its time.
    pub fn verify_web_password(&self, tenant: &TenantId, user: &UserId, password: &str) -> bool {
        let Some(credentials) = self.credentials(tenant) else {
            return false;
        };
        let may_log_in = self
            .read_directory(tenant, |d| !d.is_suspended() && d.user(user).is_some())
            .unwrap_or(false);
        may_log_in && credentials.verify_web_password(user, password)
    }

    /// Settles what the log shows the last run left and only it could carry on, for a server
    /// whose calls live in memory (the SIP edge's dialogs) and whose browser phones reach it over
    /// websockets: no dialog and no websocket outlives the server. Every call it left open is
    /// ended with `cause`, and every binding over a websocket is unregistered (`ConnectionLost`).
    /// Taken once: a second call settles nothing. What changed meanwhile (a call that ended, a
    /// binding that went) is left as it is.
    pub async fn settle_last_run(&self, cause: HangupCause) -> Result<Settled, LogError> {
        let LastRun {
            open_calls,
            websocket_users,
        } = std::mem::take(&mut *self.inner.left.lock().unwrap_or_else(|p| p.into_inner()));
        // Each to its own actor, all at once, so that their appends share commits.
        let ended = join_all(open_calls.iter().map(|call| {
            let command = CallCommand::Terminate {
                cause,
                sip_status: None,
            };
            self.inner.calls.execute(call, Execute::new(command))
        }))
        .await;
        let unbound = join_all(websocket_users.iter().map(|extension| {
            let command = ExtensionCommand::WebSocketsClosed { source: None };
            self.inner
                .extensions
                .execute(extension, Execute::new(command))
        }))
        .await;
        let mut settled = Settled::default();
        for (call, outcome) in open_calls.iter().zip(ended) {
            match outcome {
                Ok(_) => settled.calls_ended += 1,
                Err(ExecuteError::Rejected(CallRejection::CallEnded)) => {}
                Err(ExecuteError::Log(e)) => return Err(e),
                Err(e) => tracing::warn!(stream = %call.stream, error = %e,
                    "could not end a call the last run left open"),
            }
        }
        for (extension, outcome) in websocket_users.iter().zip(unbound) {
            match outcome {
                Ok(done) => settled.websocket_users += usize::from(done.events > 0),
                Err(ExecuteError::Log(e)) => return Err(e),
                Err(e) => tracing::warn!(stream = %extension.stream, error = %e,
                    "could not unregister the last run's websocket bindings"),
            }
        }
        if settled != Settled::default() {
            tracing::info!(?settled, ?cause, "settled what the last run left");
        }
        Ok(settled)
    }

    /// Stops every actor of every kind (deadlines are re-armed when they are activated again).
    pub async fn shutdown(&self) {
        let i = &self.inner;
        i.extensions.shutdown().await;
        i.calls.shutdown().await;
        i.queues.shutdown().await;
        i.conferences.shutdown().await;
        i.rooms.shutdown().await;
        i.conversations.shutdown().await;
        i.voicemail.shutdown().await;
        i.directories.shutdown().await;
    }

    fn read_model(&self) -> RwLockReadGuard<'_, BTreeMap<TenantId, (Directory, u64)>> {
        self.inner
            .read_model
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Activates each stream of `pending` through the registry of its kind: the actor rebuilds
    /// its state from its stream and arms its deadlines again (overdue ones fire at once).
    fn rearm(&self, pending: &[(Category, Instance)]) {
        let inner = &self.inner;
        for (category, instance) in pending {
            match category {
                Category::Directory => drop(inner.directories.activate(instance)),
                Category::Extension => drop(inner.extensions.activate(instance)),
                Category::Call => drop(inner.calls.activate(instance)),
                Category::Queue => drop(inner.queues.activate(instance)),
                Category::Conference => drop(inner.conferences.activate(instance)),
                Category::Room => drop(inner.rooms.activate(instance)),
                Category::Conversation => drop(inner.conversations.activate(instance)),
                Category::Voicemail => drop(inner.voicemail.activate(instance)),
                Category::Panel | Category::Sms | Category::System => {}
            }
        }
    }

    /// Spawns the actors of everything the file provisions, so that deadlines they hold (a
    /// registration's expiry, a queue caller's maximum wait) run again after a restart.
    fn activate(&self, loaded: &LoadedDirectory) {
        for t in &loaded.tenants {
            let at = |stream: StreamId| Instance::new(stream).in_tenant(t.tenant.clone());
            for (number, _) in &t.extensions {
                self.inner
                    .extensions
                    .activate(&at(StreamId::extension(&t.tenant, number)));
            }
            for q in &t.queues {
                self.inner
                    .queues
                    .activate(&at(StreamId::queue(&t.tenant, &q.queue)));
            }
            for c in &t.conferences {
                if let ConferenceEvent::ConferenceConfigured { conference, .. } = c {
                    self.inner
                        .conferences
                        .activate(&at(StreamId::conference(&t.tenant, conference)));
                }
            }
        }
    }
}

/// Every extension's state once provisioning is written, from the start-up fold: what
/// provisioning planned, else what the log holds. A stream the fold found anything wrong with is
/// left out (its actor reads it).
fn extension_seeds(
    folded: &replay::Folded,
    provisioned: HashMap<StreamId, Folded<Extension>>,
) -> HashMap<StreamId, Folded<Extension>> {
    if folded.divergence_count() > folded.divergences().len() as u64 {
        // Not every divergence is listed: any stream may be one.
        return HashMap::new();
    }
    let suspect: HashSet<&StreamId> = folded.divergences().iter().map(|d| &d.stream).collect();
    let mut seeds: HashMap<StreamId, Folded<Extension>> = folded
        .streams()
        .filter(|(stream, _)| stream.category() == Category::Extension)
        .filter_map(|(stream, s)| {
            let state = s.state().get::<Extension>()?.clone();
            Some((
                stream.clone(),
                Folded {
                    state,
                    version: s.version(),
                },
            ))
        })
        .collect();
    seeds.extend(provisioned);
    seeds.retain(|stream, _| !suspect.contains(stream));
    seeds
}

/// Every stream whose state holds deadlines once provisioning is written, by kind: as `folded`
/// left it, or as provisioning `written` it (each written stream with whether it holds any).
fn streams_with_deadlines(
    folded: &replay::Folded,
    written: &[(Instance, bool)],
) -> Vec<(Category, Instance)> {
    let rewritten: HashSet<&StreamId> = written.iter().map(|(i, _)| &i.stream).collect();
    replay::pending_deadlines(folded)
        .into_iter()
        .flat_map(|(category, pending)| pending.into_iter().map(move |p| (category, p.instance())))
        .filter(|(_, instance)| !rewritten.contains(&instance.stream))
        .chain(
            written
                .iter()
                .filter(|(_, deadlines)| *deadlines)
                .map(|(instance, _)| (instance.stream.category(), instance.clone())),
        )
        .collect()
}

/// What [`Engine::settle_last_run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Calls the last run left open, now ended.
    pub calls_ended: usize,
    /// Extensions whose websocket bindings were unregistered.
    pub websocket_users: usize,
}

/// What the last run left that only it could carry on, from the start-up fold.
#[derive(Debug, Default)]
struct LastRun {
    /// Calls offered and not ended.
    open_calls: Vec<Instance>,
    /// Extensions holding a binding over a websocket (`WS` or `WSS`).
    websocket_users: Vec<Instance>,
}

impl LastRun {
    fn of(folded: &replay::Folded) -> Self {
        let mut left = Self::default();
        for (stream, s) in folded.streams() {
            let instance = || Instance {
                stream: stream.clone(),
                tenant: s.tenant().cloned(),
            };
            match s.state() {
                replay::AggregateState::Call(call) if call.is_offered() && !call.is_ended() => {
                    left.open_calls.push(instance());
                }
                replay::AggregateState::Extension(extension)
                    if extension
                        .contacts()
                        .values()
                        .any(|c| c.transport.is_websocket()) =>
                {
                    left.websocket_users.push(instance());
                }
                _ => {}
            }
        }
        left
    }
}

/// The thread [`Engine::start_on_own_thread`] runs the actors on.
#[derive(Debug)]
pub struct EngineThread {
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineThread {
    /// Runs `start` on the engine's thread and returns what its future produced: whatever that
    /// future spawns with `tokio::spawn` runs on the engine's thread too, beside the actors
    /// (`serve --sip-thread engine`). `None` if the thread has stopped.
    pub async fn run_on<F, Fut, T>(&self, start: F) -> Option<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = self.system.arbiter().spawn_fn(move || {
            actix::spawn(async move {
                let _ = tx.send(start().await);
            });
        });
        if !spawned {
            return None;
        }
        rx.await.ok()
    }

    /// Stops the actix system and waits for the thread to end.
    pub fn stop(mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        self.system.stop();
    }
}

/// Keeps the read model in step with what the directory actors record. On a lag it re-reads
/// every tenant's stream; versions make a repeated event harmless.
async fn follow_directories(
    mut feed: broadcast::Receiver<Recorded<DirectoryEvent>>,
    model: Weak<DirectoryReadModel>,
    log: Arc<dyn EventLog>,
) {
    loop {
        let received = feed.recv().await;
        let Some(model) = model.upgrade() else {
            return;
        };
        match received {
            Ok(recorded) => {
                let Some(tenant) = recorded.metadata.tenant.clone() else {
                    continue;
                };
                let mut map = model.write().unwrap_or_else(|p| p.into_inner());
                let (directory, version) = map.entry(tenant).or_default();
                if recorded.version > *version {
                    directory.evolve(&recorded.event, recorded.metadata.occurred_at);
                    *version = recorded.version;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "directory read model lagged; re-reading the streams"
                );
                let tenants: Vec<TenantId> = {
                    let map = model.read().unwrap_or_else(|p| p.into_inner());
                    map.keys().cloned().collect()
                };
                for tenant in tenants {
                    let mut read = Folded::<Directory>::default();
                    match read.catch_up(&*log, &StreamId::directory(&tenant)).await {
                        Ok(()) => {
                            let mut map = model.write().unwrap_or_else(|p| p.into_inner());
                            let entry = map.entry(tenant).or_default();
                            if read.version >= entry.1 {
                                *entry = (read.state, read.version);
                            }
                        }
                        Err(e) => {
                            tracing::error!(%tenant, error = %e, "cannot re-read the directory");
                        }
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// One stream's stored state and what provisioning will append to it.
struct Plan<A: Aggregate> {
    instance: Instance,
    state: A,
    /// The stream's version when it was read: the expected version of the append.
    version: u64,
    events: Vec<A::Event>,
}

impl<A: Aggregate> Plan<A> {
    /// The stream's state and version as the fold of the log left them (empty for a stream the
    /// log does not hold). A record of the stream that did not decode, or an event of another
    /// aggregate in it, leaves no state to plan on.
    fn of(folded: &replay::Folded, instance: Instance) -> Result<Self, EngineError> {
        let stream = &instance.stream;
        if let Some(corrupt) = folded.divergences().iter().find(|d| {
            &d.stream == stream
                && matches!(
                    d.kind,
                    DivergenceKind::Undecodable { .. } | DivergenceKind::WrongAggregate { .. }
                )
        }) {
            return Err(LogError::Corrupt {
                target: stream.to_string(),
                detail: corrupt.kind.to_string(),
            }
            .into());
        }
        let (state, version) = folded
            .stream(stream)
            .map_or((None, 0), |s| (s.state().get::<A>(), s.version()));
        Ok(Self {
            state: state.cloned().unwrap_or_default(),
            version,
            instance,
            events: Vec::new(),
        })
    }

    /// Decides `command` on the state as planned so far and folds what it produced; a refusal
    /// changes nothing.
    fn run(&mut self, command: &A::Command, now: DateTime<Utc>) -> Result<(), A::Rejection> {
        let produced = self.state.decide(command, now)?;
        let at = to_micros(now);
        for e in &produced {
            self.state.evolve(e, at);
        }
        self.events.extend(produced);
        Ok(())
    }

    /// [`Plan::run`], where a refusal stops the start.
    fn must(&mut self, command: &A::Command, now: DateTime<Utc>) -> Result<(), EngineError> {
        self.run(command, now)
            .map_err(|reason| refusal(self, command, reason))
    }

    /// The state and version the stream will have once the plan is written.
    fn planned(&self) -> Folded<A> {
        Folded {
            state: self.state.clone(),
            version: self.version + self.events.len() as u64,
        }
    }

    fn into_write(self) -> Option<Write> {
        if self.events.is_empty() {
            return None;
        }
        Some(Write {
            deadlines: !self.state.deadlines().is_empty(),
            instance: self.instance,
            version: self.version,
            events: self.events.into_iter().map(Into::into).collect(),
        })
    }
}

fn refusal<A: Aggregate>(
    plan: &Plan<A>,
    command: &A::Command,
    reason: A::Rejection,
) -> EngineError {
    EngineError::Refused {
        stream: plan.instance.stream.clone(),
        command: format!("{command:?}"),
        reason: reason.to_string(),
    }
}

/// What one stream gets.
struct Write {
    instance: Instance,
    version: u64,
    events: Vec<Event>,
    /// Whether the stream's state holds deadlines once these events are folded.
    deadlines: bool,
}

impl Write {
    async fn commit(
        self,
        log: &dyn EventLog,
        ids: &dyn IdGen,
        now: DateTime<Utc>,
        correlation: CorrelationId,
    ) -> Result<(StreamId, usize), EngineError> {
        let (_, records) = stamp(
            &self.events,
            now,
            ids,
            self.instance.tenant.as_ref(),
            None,
            Some(correlation),
        );
        log.append(
            &self.instance.stream,
            ExpectedVersion::Exact(self.version),
            records,
        )
        .await?;
        Ok((self.instance.stream, self.events.len()))
    }
}

/// Reconciles the log, as `folded`, with `loaded`; returns what was written, every tenant's
/// directory as it now stands, and each stream written with whether it now holds deadlines.
async fn provision(
    log: &dyn EventLog,
    folded: &replay::Folded,
    ids: &dyn IdGen,
    loaded: &LoadedDirectory,
    now: DateTime<Utc>,
) -> Result<Provisioning, EngineError> {
    let mut notes = Vec::new();
    let mut directories = Vec::new();
    let mut others = Vec::new();
    let mut read_model = BTreeMap::new();
    let mut extensions = HashMap::new();

    for (reseller, created) in &loaded.resellers {
        if loaded
            .tenants
            .iter()
            .any(|t| t.tenant.as_str() == reseller.as_str())
        {
            return Err(EngineError::SharedStream(reseller.to_string()));
        }
        let DirectoryEvent::ResellerCreated { name, .. } = created else {
            continue;
        };
        let stream = StreamId::new(Category::Directory, reseller)
            .map_err(|e| EngineError::StreamName(e.to_string()))?;
        let mut plan = Plan::<Directory>::of(folded, Instance::new(stream))?;
        match plan.state.reseller().cloned() {
            None => plan.must(
                &DirectoryCommand::CreateReseller {
                    reseller: reseller.clone(),
                    name: name.clone(),
                },
                now,
            )?,
            Some((_, stored)) if stored != name.trim() => notes.push(format!(
                "reseller {reseller} keeps its name `{stored}` (no command renames a reseller)"
            )),
            Some(_) => {}
        }
        directories.extend(plan.into_write());
    }

    for tenant in &loaded.tenants {
        let t = &tenant.tenant;
        let mut directory = Plan::<Directory>::of(
            folded,
            Instance::new(StreamId::directory(t)).in_tenant(t.clone()),
        )?;
        // The directory as stored, before this start: what the file said last time.
        let before = directory.state.clone();
        reconcile_directory(&mut directory, tenant, now, &mut notes)?;
        others.extend(reconcile_extensions(
            folded,
            &before,
            tenant,
            now,
            &mut notes,
            &mut extensions,
        )?);
        for setup in &tenant.queues {
            others.extend(reconcile_queue(
                folded, ids, setup, tenant, now, &mut notes,
            )?);
        }
        for configured in &tenant.conferences {
            others.extend(reconcile_conference(folded, configured, t, now)?);
        }
        read_model.insert(
            t.clone(),
            (
                directory.state.clone(),
                directory.version + directory.events.len() as u64,
            ),
        );
        directories.extend(directory.into_write());
    }

    let correlation = CorrelationId::from_uuid(ids.next_uuid());
    let mut provisioned = Provisioned {
        not_applied: notes,
        ..Provisioned::default()
    };
    let written = directories
        .iter()
        .chain(&others)
        .map(|w| (w.instance.clone(), w.deadlines))
        .collect();
    // Everything else first (group-committed together), the directories last.
    let others = try_join_all(
        others
            .into_iter()
            .map(|w| w.commit(log, ids, now, correlation)),
    )
    .await?;
    for w in directories {
        let (stream, count) = w.commit(log, ids, now, correlation).await?;
        provisioned.streams.push(stream);
        provisioned.events += count;
    }
    for (stream, count) in others {
        provisioned.streams.push(stream);
        provisioned.events += count;
    }
    Ok(Provisioning {
        provisioned,
        directories: read_model,
        written,
        extensions,
    })
}

/// What provisioning did, and what start-up needs of it.
struct Provisioning {
    provisioned: Provisioned,
    /// Every tenant's directory as it now stands, with its stream version.
    directories: BTreeMap<TenantId, (Directory, u64)>,
    /// Each stream written, with whether its state now holds deadlines.
    written: Vec<(Instance, bool)>,
    /// Every extension the directory names, as it stands once provisioning is written.
    extensions: HashMap<StreamId, Folded<Extension>>,
}

/// Brings a tenant's directory to what the file says, in an order every command accepts:
/// additions and renames first, then users (deleted, renumbered, changed, created), grants,
/// and last the removal of presence states, departments and profiles nobody uses any more.
fn reconcile_directory(
    plan: &mut Plan<Directory>,
    target: &LoadedTenant,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Result<(), EngineError> {
    use DirectoryCommand as C;
    let Some(have_tenant) = plan.state.tenant().cloned() else {
        // A new tenant: the loader's own commands, in the file's order.
        for command in &target.commands {
            plan.must(command, now)?;
        }
        return Ok(());
    };
    let have = plan.state.clone();
    let want = &target.directory;
    let id = &target.tenant;

    if let Some(t) = want.tenant() {
        if t.name != have_tenant.name {
            plan.must(
                &C::RenameTenant {
                    name: t.name.clone(),
                },
                now,
            )?;
        }
        if t.sip_domain != have_tenant.sip_domain {
            notes.push(format!(
                "tenant {id} keeps the SIP domain `{}` (no command changes it)",
                have_tenant.sip_domain
            ));
        }
        if t.reseller != have_tenant.reseller {
            notes.push(format!(
                "tenant {id} keeps its reseller (no command moves a tenant)"
            ));
        }
    }

    for s in want.presence_states() {
        match have.presence_state(&s.id) {
            None => plan.must(
                &C::AddPresenceState {
                    state: s.id.clone(),
                    label: s.label.clone(),
                    state_type: s.state_type,
                },
                now,
            )?,
            Some(h) if h.label != s.label || h.state_type != s.state_type => plan.must(
                &C::UpdatePresenceState {
                    state: s.id.clone(),
                    label: s.label.clone(),
                    state_type: s.state_type,
                },
                now,
            )?,
            Some(_) => {}
        }
    }
    for (profile, p) in want.profiles() {
        match have.profiles().get(profile) {
            None => plan.must(
                &C::CreateProfile {
                    profile: profile.clone(),
                    name: p.name.clone(),
                    features: p.features.clone(),
                },
                now,
            )?,
            Some(h) => {
                if h.features != p.features {
                    plan.must(
                        &C::SetProfileFeatures {
                            profile: profile.clone(),
                            features: p.features.clone(),
                        },
                        now,
                    )?;
                }
                if h.name != p.name {
                    notes.push(format!(
                        "tenant {id}: profile {profile} keeps its name `{}` (no command renames \
                         a profile)",
                        h.name
                    ));
                }
            }
        }
    }
    for (department, d) in want.departments() {
        match have.departments().get(department) {
            None => plan.must(
                &C::CreateDepartment {
                    department: department.clone(),
                    name: d.name.clone(),
                },
                now,
            )?,
            Some(h) if h.name != d.name => plan.must(
                &C::RenameDepartment {
                    department: department.clone(),
                    name: d.name.clone(),
                },
                now,
            )?,
            Some(_) => {}
        }
    }

    // Users gone from the file free their extensions for the others.
    for user in have.users().keys() {
        if want.user(user).is_none() {
            plan.must(&C::DeleteUser { user: user.clone() }, now)?;
        }
    }
    // New extensions, as long as some number is free; a cycle (two users swapping numbers)
    // cannot be done with one command at a time.
    let mut renumber: Vec<(UserId, ExtensionNumber)> = want
        .users()
        .iter()
        .filter_map(|(user, u)| {
            let h = have.user(user)?;
            (h.extension != u.extension).then(|| (user.clone(), u.extension.clone()))
        })
        .collect();
    while !renumber.is_empty() {
        let before = renumber.len();
        let mut stuck = Vec::new();
        let mut refused = None;
        for (user, extension) in renumber.drain(..) {
            let command = C::ChangeUserExtension {
                user: user.clone(),
                extension: extension.clone(),
            };
            match plan.run(&command, now) {
                Ok(()) => {}
                Err(reason @ DirectoryRejection::ExtensionTaken { .. }) => {
                    refused.get_or_insert((format!("{command:?}"), reason.to_string()));
                    stuck.push((user, extension));
                }
                Err(reason) => return Err(refusal(plan, &command, reason)),
            }
        }
        if stuck.len() == before
            && let Some((command, reason)) = refused
        {
            return Err(EngineError::Refused {
                stream: plan.instance.stream.clone(),
                command,
                reason: format!("{reason} (users swapping numbers need a free number between)"),
            });
        }
        renumber = stuck;
    }
    for (user, u) in want.users() {
        let Some(h) = have.user(user) else {
            continue;
        };
        let user = user.clone();
        if h.display_name != u.display_name {
            let display_name = u.display_name.clone();
            plan.must(
                &C::RenameUser {
                    user: user.clone(),
                    display_name,
                },
                now,
            )?;
        }
        if h.email != u.email {
            let email = u.email.clone();
            plan.must(
                &C::SetUserEmail {
                    user: user.clone(),
                    email,
                },
                now,
            )?;
        }
        if h.department != u.department {
            let department = u.department.clone();
            plan.must(
                &C::MoveUser {
                    user: user.clone(),
                    department,
                },
                now,
            )?;
        }
        if h.profile != u.profile {
            let profile = u.profile.clone();
            plan.must(
                &C::ChangeUserProfile {
                    user: user.clone(),
                    profile,
                },
                now,
            )?;
        }
        if h.role != u.role {
            plan.must(
                &C::ChangeUserRole {
                    user: user.clone(),
                    role: u.role,
                },
                now,
            )?;
        }
        if h.settings != u.settings {
            let settings = u.settings.clone();
            plan.must(&C::SetUserSettings { user, settings }, now)?;
        }
    }
    for (user, u) in want.users() {
        if have.user(user).is_some() {
            continue;
        }
        plan.must(
            &C::CreateUser {
                user: user.clone(),
                display_name: u.display_name.clone(),
                extension: u.extension.clone(),
                department: u.department.clone(),
                profile: u.profile.clone(),
                role: u.role,
                email: u.email.clone(),
            },
            now,
        )?;
        if u.settings != Default::default() {
            let settings = u.settings.clone();
            plan.must(
                &C::SetUserSettings {
                    user: user.clone(),
                    settings,
                },
                now,
            )?;
        }
    }

    for user in want.users().keys() {
        let wanted = want.grants_of(user);
        let granted = plan.state.grants_of(user);
        for department in granted.difference(&wanted) {
            plan.must(
                &C::RevokeCallPanel {
                    user: user.clone(),
                    department: department.clone(),
                    by: None,
                },
                now,
            )?;
        }
        for department in wanted.difference(&granted) {
            plan.must(
                &C::GrantCallPanel {
                    user: user.clone(),
                    department: department.clone(),
                    by: None,
                },
                now,
            )?;
        }
    }

    for s in have.presence_states() {
        if want.presence_state(&s.id).is_none() {
            plan.must(
                &C::RemovePresenceState {
                    state: s.id.clone(),
                },
                now,
            )?;
        }
    }
    let order: Vec<_> = want
        .presence_states()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let current: Vec<_> = plan
        .state
        .presence_states()
        .iter()
        .map(|s| s.id.clone())
        .collect();
    if order != current {
        plan.must(&C::ReorderPresenceStates { order }, now)?;
    }
    for department in have.departments().keys() {
        if !want.departments().contains_key(department) {
            let department = department.clone();
            plan.must(&C::DeleteDepartment { department }, now)?;
        }
    }
    for profile in have.profiles().keys() {
        if !want.profiles().contains_key(profile) {
            plan.must(
                &C::DeleteProfile {
                    profile: profile.clone(),
                },
                now,
            )?;
        }
    }
    Ok(())
}

/// Provisions every extension the file gives a line, re-provisions one whose number now
/// belongs to another user, and retires those whose user is gone, became an administrator or
/// changed number. `before` is the directory as stored: the users the file had last time.
fn reconcile_extensions(
    folded: &replay::Folded,
    before: &Directory,
    target: &LoadedTenant,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
    states: &mut HashMap<StreamId, Folded<Extension>>,
) -> Result<Vec<Write>, EngineError> {
    let t = &target.tenant;
    let wanted: BTreeMap<&ExtensionNumber, &ExtensionCommand> = target
        .extensions
        .iter()
        .filter(|(_, c)| matches!(c, ExtensionCommand::Provision { .. }))
        .map(|(number, c)| (number, c))
        .collect();
    let mut numbers: BTreeSet<&ExtensionNumber> = wanted.keys().copied().collect();
    numbers.extend(
        before
            .users()
            .values()
            .filter(|u| u.role == UserRole::User)
            .map(|u| &u.extension),
    );
    let mut writes = Vec::new();
    for number in numbers {
        let instance = Instance::new(StreamId::extension(t, number)).in_tenant(t.clone());
        let mut plan = Plan::<Extension>::of(folded, instance)?;
        match wanted.get(number) {
            Some(
                provision @ ExtensionCommand::Provision {
                    user,
                    display_name,
                    department,
                    ..
                },
            ) => {
                if plan.state.in_service() && plan.state.user() != Some(user) {
                    plan.must(&ExtensionCommand::Retire, now)?;
                }
                if !plan.state.in_service() {
                    plan.must(provision, now)?;
                    states.insert(plan.instance.stream.clone(), plan.planned());
                    writes.extend(plan.into_write());
                    continue;
                }
                if plan.state.display_name() != Some(display_name.as_str()) {
                    notes.push(format!(
                        "tenant {t}: extension {number} keeps the display name `{}` it was \
                         provisioned with (no command changes it)",
                        plan.state.display_name().unwrap_or_default()
                    ));
                }
                if let Some(kept) = plan.state.department()
                    && kept != department
                {
                    notes.push(format!(
                        "tenant {t}: extension {number} keeps the department `{kept}` it was \
                         provisioned with (no command changes it; the directory has `{department}`)"
                    ));
                }
            }
            Some(_) => {}
            None if plan.state.in_service() => plan.must(&ExtensionCommand::Retire, now)?,
            None => {}
        }
        states.insert(plan.instance.stream.clone(), plan.planned());
        writes.extend(plan.into_write());
    }
    Ok(writes)
}

/// Configures a queue as the file says and logs its static agents in; static agents no longer
/// in the file are logged out (`removed`). A static agent who logged out since is logged in
/// again, as a static member is always in the queue; agents who logged in themselves are left
/// alone.
fn reconcile_queue(
    folded: &replay::Folded,
    ids: &dyn IdGen,
    setup: &QueueSetup,
    target: &LoadedTenant,
    now: DateTime<Utc>,
    notes: &mut Vec<String>,
) -> Result<Option<Write>, EngineError> {
    let t = &target.tenant;
    let Some(settings) = QueueSettings::recorded_by(&setup.configured) else {
        return Ok(None);
    };
    let queue = &setup.queue;
    let instance = Instance::new(StreamId::queue(t, queue)).in_tenant(t.clone());
    let mut plan = Plan::<Queue>::of(folded, instance)?;
    plan.must(
        &QueueCommand::Configure {
            queue: queue.clone(),
            settings,
        },
        now,
    )?;
    let removed: Vec<(AgentId, ExtensionNumber)> = plan
        .state
        .agents()
        .filter(|(_, a)| a.membership == Membership::Static && !setup.agents.contains(&a.extension))
        .map(|(agent, a)| (agent, a.extension.clone()))
        .collect();
    for (agent, number) in removed {
        let command = QueueCommand::LogOut {
            agent,
            reason: AgentLogoutReason::Removed,
        };
        if let Err(reason) = plan.run(&command, now) {
            notes.push(format!(
                "tenant {t}: agent {number} stays logged in to queue {queue}: {reason}"
            ));
        }
    }
    for number in &setup.agents {
        let Some((user, u)) = target.directory.user_for_extension(number) else {
            continue;
        };
        if plan
            .state
            .agents()
            .any(|(_, a)| &a.extension == number || &a.user == user)
        {
            continue;
        }
        plan.must(
            &QueueCommand::LogIn {
                agent: AgentId::from_uuid(ids.next_uuid()),
                user: user.clone(),
                extension: number.clone(),
                department: Some(u.department.clone()),
                penalty: 0,
                membership: Membership::Static,
            },
            now,
        )?;
    }
    Ok(plan.into_write())
}

/// Configures a conference room as the file says (nothing when it already is).
fn reconcile_conference(
    folded: &replay::Folded,
    configured: &ConferenceEvent,
    t: &TenantId,
    now: DateTime<Utc>,
) -> Result<Option<Write>, EngineError> {
    let (ConferenceEvent::ConferenceConfigured { conference, .. }, Some(settings)) =
        (configured, ConferenceSettings::recorded_by(configured))
    else {
        return Ok(None);
    };
    let instance = Instance::new(StreamId::conference(t, conference)).in_tenant(t.clone());
    let mut plan = Plan::<Conference>::of(folded, instance)?;
    plan.must(
        &ConferenceCommand::Configure {
            conference: conference.clone(),
            settings,
        },
        now,
    )?;
    Ok(plan.into_write())
}
