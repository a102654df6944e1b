//! The engine as the binary starts it: the demo directory provisioned into an empty SQLite log,
//! a second start that writes nothing, changed files that write exactly their differences (or,
//! when one of them is refused, nothing at all), the read model following changes made through
//! the directory registry, and configuration errors that name the file, line and key.

use std::sync::Arc;
use std::time::Duration;

use engine::directory::config::{ClearPasswords, LoadedDirectory, load_file, load_str};
use engine::directory::demo::{DEMO_TOML, demo_directory};
use engine::directory::{DirectoryCommand, DirectoryRejection};
use engine::extension::ExtensionCommand;
use engine::runtime::{Engine, EngineConfig, EngineError, Execute, Instance};
use engine::testing::t0;
use events::codec;
use events::log::sqlite::SqliteLog;
use events::model::{
    AgentLogoutReason, DirectoryEvent, Event, Membership, QueueEvent, SettingSource,
};
use events::{
    DepartmentId, EventLog, ExtensionNumber, GlobalPosition, ManualClock, SeededIds, StoreOptions,
    StreamId, TenantId, UserId,
};

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn number(n: &str) -> ExtensionNumber {
    ExtensionNumber::parse(n).unwrap()
}

async fn sqlite(dir: &tempfile::TempDir) -> Arc<dyn EventLog> {
    Arc::new(
        SqliteLog::open(dir.path().join("log.db"), StoreOptions::default())
            .await
            .unwrap(),
    )
}

/// Starts an engine; `seed` must differ between engines sharing a log, so event ids never
/// repeat.
async fn start(
    log: &Arc<dyn EventLog>,
    seed: u64,
    loaded: LoadedDirectory,
) -> Result<Engine, EngineError> {
    Engine::start(
        log.clone(),
        Arc::new(ManualClock::new(t0())),
        Arc::new(SeededIds::new(seed)),
        loaded,
        EngineConfig::default(),
    )
    .await
}

/// A SQLite log in `dir` holding the demo as a first start provisioned it (that engine has
/// stopped since), and the log's head.
async fn demo_log(dir: &tempfile::TempDir) -> (Arc<dyn EventLog>, GlobalPosition) {
    let log = sqlite(dir).await;
    start(&log, 1, demo_directory().unwrap())
        .await
        .unwrap()
        .shutdown()
        .await;
    let head = log.head().await.unwrap();
    (log, head)
}

/// The demo file with `edit` applied, loaded as the demo is (clear passwords hashed).
fn demo_with(edit: impl FnOnce(String) -> String) -> LoadedDirectory {
    let text = edit(DEMO_TOML.to_owned());
    load_str(&text, "changed.toml", ClearPasswords::HashForDemo).expect("the changed file loads")
}

fn replace_once(text: String, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
    text.replace(from, to)
}

async fn types(log: &Arc<dyn EventLog>, stream: &str) -> Vec<String> {
    let stream = StreamId::parse(stream).unwrap();
    log.read_stream(&stream, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record.event_type)
        .collect()
}

/// Every event after `after` as (stream, type), sorted (streams are written concurrently).
async fn written_after(log: &Arc<dyn EventLog>, after: GlobalPosition) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = log
        .read_all(after, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.stream.to_string(), e.record.event_type))
        .collect();
    all.sort();
    all
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = expected
        .iter()
        .map(|(s, t)| ((*s).to_owned(), (*t).to_owned()))
        .collect();
    v.sort();
    v
}

async fn decoded(log: &Arc<dyn EventLog>, stream: &str) -> Vec<Event> {
    let stream = StreamId::parse(stream).unwrap();
    log.read_stream(&stream, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| codec::decode(e).unwrap().event)
        .collect()
}

#[actix::test]
async fn the_demo_directory_is_provisioned_into_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite(&dir).await;
    let loaded = demo_directory().unwrap();
    let expected_directory: Vec<Event> = loaded.tenants[0]
        .events
        .iter()
        .cloned()
        .map(Into::into)
        .collect();
    let engine = start(&log, 1, loaded).await.unwrap();

    // The directory stream holds exactly what the loader produced.
    assert_eq!(decoded(&log, "directory-acme").await, expected_directory);
    assert!(
        expected_directory.len() > 30,
        "{}",
        expected_directory.len()
    );

    // Twelve extensions; the administrator's number has no line.
    for n in 1001..=1012 {
        assert_eq!(
            types(&log, &format!("extension-acme.{n}")).await,
            ["ExtensionProvisioned"],
            "extension {n}"
        );
    }
    assert!(types(&log, "extension-acme.1000").await.is_empty());

    // The support queue with its five static agents logged in, and the conference room.
    let queue = decoded(&log, "queue-acme.support").await;
    assert!(matches!(
        &queue[0],
        Event::Queue(QueueEvent::QueueConfigured { extension, .. }) if extension.as_str() == "2000"
    ));
    let agents: Vec<(String, Membership)> = queue[1..]
        .iter()
        .map(|e| match e {
            Event::Queue(QueueEvent::AgentLoggedIn {
                extension,
                membership,
                department,
                ..
            }) => {
                assert_eq!(
                    department.as_ref().map(DepartmentId::as_str),
                    Some("support")
                );
                (extension.to_string(), *membership)
            }
            other => panic!("an AgentLoggedIn expected, got {other:?}"),
        })
        .collect();
    let expected_agents: Vec<(String, Membership)> = (1006..=1010)
        .map(|n| (n.to_string(), Membership::Static))
        .collect();
    assert_eq!(agents, expected_agents);
    assert_eq!(
        types(&log, "conference-acme.room-3000").await,
        ["ConferenceConfigured"]
    );

    // What was written is what the engine says it wrote; every event belongs to the tenant and
    // none carries a secret.
    let all = log.read_all(GlobalPosition::START, 10_000).await.unwrap();
    let provisioned = engine.provisioned();
    assert_eq!(provisioned.events, all.len());
    assert_eq!(provisioned.streams.len(), 1 + 12 + 1 + 1);
    assert_eq!(provisioned.streams[0].as_str(), "directory-acme");
    assert!(provisioned.not_applied.is_empty(), "{provisioned:?}");
    for e in &all {
        let recorded = codec::decode(e).unwrap();
        assert_eq!(recorded.metadata.tenant, Some(acme()), "{}", e.stream);
        assert!(recorded.metadata.correlation_id.is_some());
        let payload = e.record.payload.as_str();
        assert!(
            !payload.contains("demo-10") && !payload.contains("sip-10"),
            "{payload}"
        );
    }

    // The read model and the credentials.
    let directory = engine.directory(&acme()).unwrap();
    assert_eq!(directory.users().len(), 13);
    assert_eq!(engine.tenants(), [acme()]);
    assert!(engine.verify_web_password(&acme(), &user("1001"), "demo-1001"));
    assert!(!engine.verify_web_password(&acme(), &user("1001"), "demo-1002"));
    let (owner, sip) = engine.sip_account(&acme(), &number("1007")).unwrap();
    assert_eq!(owner, user("1007"));
    assert!(sip.matches_password("sip-1007"));
    assert!(
        engine.sip_account(&acme(), &number("1000")).is_none(),
        "admin has no SIP secret"
    );

    // What holds deadlines was activated.
    assert_eq!(engine.extensions().live(), 12);
    assert_eq!(engine.queues().live(), 1);
    assert_eq!(engine.conferences().live(), 1);
}

#[actix::test]
async fn a_second_start_over_the_same_log_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, head) = demo_log(&dir).await;
    // Let the retired actors drop their handles on the log before it is reopened.
    actix::clock::sleep(Duration::from_millis(50)).await;
    let log = sqlite(&dir).await;
    let engine = start(&log, 2, demo_directory().unwrap()).await.unwrap();
    assert_eq!(log.head().await.unwrap(), head);
    assert_eq!(engine.provisioned().events, 0);
    assert!(engine.provisioned().streams.is_empty());
    assert_eq!(
        engine.directory(&acme()),
        Some(demo_directory().unwrap().tenants[0].directory.clone())
    );

    // The registries serve the rebuilt aggregates at their stored versions.
    let stream = StreamId::extension(&acme(), &number("1001"));
    let done = engine
        .extensions()
        .execute(
            &Instance::new(stream).in_tenant(acme()),
            Execute::new(ExtensionCommand::SetDnd {
                enabled: true,
                source: SettingSource::User,
                by: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!((done.events, done.version), (1, 2));
}

#[actix::test]
async fn a_changed_directory_writes_exactly_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head) = demo_log(&dir).await;

    // One more user in sales; 1007 moves from support to sales.
    let changed = || {
        demo_with(|text| {
            let text = replace_once(
                text,
                "extension = \"1007\"\ndepartment = \"support\"",
                "extension = \"1007\"\ndepartment = \"sales\"",
            );
            text + r#"
[[tenants.users]]
id = "1013"
name = "User 1013"
extension = "1013"
department = "sales"
profile = "basic"
web_password = "demo-1013"
sip_password = "sip-1013"
"#
        })
    };
    let engine = start(&log, 2, changed()).await.unwrap();
    assert_eq!(
        written_after(&log, head).await,
        pairs(&[
            ("directory-acme", "UserDepartmentChanged"),
            ("directory-acme", "UserCreated"),
            ("extension-acme.1013", "ExtensionProvisioned"),
        ])
    );
    let moved = decoded(&log, "directory-acme").await;
    assert!(moved.iter().any(|e| matches!(
        e,
        Event::Directory(DirectoryEvent::UserDepartmentChanged { user: u, department, previous })
            if *u == user("1007") && department.as_str() == "sales" && previous.as_str() == "support"
    )));
    let provisioned = engine.provisioned();
    assert_eq!(provisioned.events, 3);
    let [note] = &provisioned.not_applied[..] else {
        panic!("one note expected: {:?}", provisioned.not_applied);
    };
    assert!(
        note.contains("extension 1007") && note.contains("`support`"),
        "{note}"
    );
    let directory = engine.directory(&acme()).unwrap();
    assert_eq!(
        directory.user(&user("1007")).unwrap().department.as_str(),
        "sales"
    );
    assert!(engine.verify_web_password(&acme(), &user("1013"), "demo-1013"));
    engine.shutdown().await;

    // The same changed file again: nothing more.
    let head = log.head().await.unwrap();
    let again = start(&log, 3, changed()).await.unwrap();
    assert_eq!(log.head().await.unwrap(), head);
    assert_eq!(again.provisioned().events, 0);
}

#[actix::test]
async fn renames_removals_and_queue_changes_are_applied_through_the_aggregates() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head) = demo_log(&dir).await;

    let changed = demo_with(|text| {
        let text = replace_once(
            text,
            "id = \"support\"\nname = \"Support\"\n\n[[tenants.departments]]",
            "id = \"support\"\nname = \"Customer care\"\n\n[[tenants.departments]]",
        );
        let text = replace_once(text, "label = \"Out to lunch\"", "label = \"At lunch\"");
        let text = replace_once(text, "name = \"Basic\"", "name = \"Standard\"");
        // User 1012 leaves.
        let start = text.find("id = \"1012\"").unwrap();
        let block_start = text[..start].rfind("[[tenants.users]]").unwrap();
        let block_end = start + text[start..].find("[[tenants.users]]").unwrap();
        let text = format!("{}{}", &text[..block_start], &text[block_end..]);
        // 1010 leaves the queue, 1005 joins it; the room admits more members.
        let text = replace_once(
            text,
            "agents = [\"1006\", \"1007\", \"1008\", \"1009\", \"1010\"]",
            "agents = [\"1005\", \"1006\", \"1007\", \"1008\", \"1009\"]",
        );
        replace_once(text, "max_members = 10", "max_members = 20")
    });
    let engine = start(&log, 2, changed).await.unwrap();
    assert_eq!(
        written_after(&log, head).await,
        pairs(&[
            ("directory-acme", "DepartmentRenamed"),
            ("directory-acme", "PresenceStateUpdated"),
            ("directory-acme", "UserDeleted"),
            ("extension-acme.1012", "ExtensionRetired"),
            ("queue-acme.support", "AgentLoggedOut"),
            ("queue-acme.support", "AgentLoggedIn"),
            ("conference-acme.room-3000", "ConferenceConfigured"),
        ])
    );
    let queue = decoded(&log, "queue-acme.support").await;
    assert!(queue.iter().any(|e| matches!(
        e,
        Event::Queue(QueueEvent::AgentLoggedOut {
            reason: AgentLogoutReason::Removed,
            ..
        })
    )));
    assert!(matches!(
        queue.last(),
        Some(Event::Queue(QueueEvent::AgentLoggedIn { extension, membership: Membership::Static, .. }))
            if extension.as_str() == "1005"
    ));
    let notes = &engine.provisioned().not_applied;
    assert!(
        notes
            .iter()
            .any(|n| n.contains("profile basic") && n.contains("`Basic`")),
        "{notes:?}"
    );
    let directory = engine.directory(&acme()).unwrap();
    assert!(directory.user(&user("1012")).is_none());
    assert_eq!(
        directory.departments()[&DepartmentId::parse("support").unwrap()].name,
        "Customer care"
    );
}

#[actix::test]
async fn a_refused_change_writes_nothing_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let (log, head) = demo_log(&dir).await;

    // 1002 and 1003 swap numbers (one command at a time cannot do that), alongside a change
    // that alone would be accepted.
    let swapped = demo_with(|text| {
        let text = replace_once(
            text,
            "name = \"User 1002\"\nextension = \"1002\"",
            "name = \"User 1002\"\nextension = \"1003\"",
        );
        let text = replace_once(
            text,
            "name = \"User 1003\"\nextension = \"1003\"",
            "name = \"User 1003\"\nextension = \"1002\"",
        );
        replace_once(text, "name = \"Sales\"", "name = \"Field sales\"")
    });
    let refused = start(&log, 2, swapped).await.unwrap_err();
    match &refused {
        EngineError::Refused { stream, reason, .. } => {
            assert_eq!(stream.as_str(), "directory-acme");
            assert!(reason.contains("already belongs to user"), "{reason}");
        }
        other => panic!("a refusal expected, got {other}"),
    }
    assert_eq!(log.head().await.unwrap(), head, "nothing was written");
}

#[actix::test]
async fn changes_made_through_the_directory_registry_reach_the_read_model() {
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite(&dir).await;
    let engine = start(&log, 1, demo_directory().unwrap()).await.unwrap();
    let sales = DepartmentId::parse("sales").unwrap();
    let instance = Instance::new(StreamId::directory(&acme())).in_tenant(acme());
    engine
        .directory_registry()
        .execute(
            &instance,
            Execute::new(DirectoryCommand::RenameDepartment {
                department: sales.clone(),
                name: "Field sales".to_owned(),
            }),
        )
        .await
        .unwrap();
    let mut seen = None;
    for _ in 0..100 {
        seen = engine.read_directory(&acme(), |d| d.departments()[&sales].name.clone());
        if seen.as_deref() == Some("Field sales") {
            break;
        }
        actix::clock::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen.as_deref(), Some("Field sales"));

    // The aggregate still enforces its rules: the rename is recorded, a bogus move is not.
    let refused = engine
        .directory_registry()
        .execute(
            &instance,
            Execute::new(DirectoryCommand::MoveUser {
                user: user("1002"),
                department: DepartmentId::parse("nowhere").unwrap(),
            }),
        )
        .await;
    assert!(matches!(
        refused,
        Err(engine::runtime::ExecuteError::Rejected(
            DirectoryRejection::UnknownDepartment(_)
        ))
    ));
}

#[test]
fn a_bad_configuration_file_names_the_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.toml");
    std::fs::write(
        &path,
        r#"[[tenants]]
id = "acme"
name = "Acme"
sip_domain = "acme"

[[tenants.profiles]]
id = "basic"
name = "Basic"

[[tenants.departments]]
id = "sales"
name = "Sales"

[[tenants.users]]
id = "1001"
name = "Alice"
extension = "1001"
department = "marketing"
profile = "basic"
"#,
    )
    .unwrap();
    let error = load_file(&path).unwrap_err();
    assert_eq!(
        (error.line, error.key.as_str()),
        (18, "tenants[0].users[0].department")
    );
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}:18:", path.display())),
        "{shown}"
    );
    assert!(
        shown.contains("`tenants[0].users[0].department`"),
        "{shown}"
    );
    assert!(shown.contains("no department `marketing`"), "{shown}");
    assert_eq!(shown.lines().count(), 1);

    // A syntax error too, with the key `toml`.
    std::fs::write(&path, "[[tenants]]\nid = \"acme\"\nname = Acme\n").unwrap();
    let error = load_file(&path).unwrap_err();
    assert_eq!((error.line, error.key.as_str()), (3, "toml"));
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:3:", path.display()))
    );
}

/// A call left ringing when the engine stopped: the next start finds its stream through the
/// fold of the log, activates it, and the overdue ring timeout fires at once, ending the call.
#[actix::test]
async fn a_call_left_ringing_at_a_stop_times_out_after_the_next_start() {
    use events::{CallId, IdGen, LegId};

    let dir = tempfile::tempdir().unwrap();
    let ids = SeededIds::new(77);
    let call = CallId::from_uuid(ids.next_uuid());
    let (caller_leg, callee_leg) = (
        LegId::from_uuid(ids.next_uuid()),
        LegId::from_uuid(ids.next_uuid()),
    );
    let instance = Instance::new(StreamId::call(call)).in_tenant(acme());
    let stream = StreamId::call(call).to_string();
    {
        let log = sqlite(&dir).await;
        let engine = start(&log, 1, demo_directory().unwrap()).await.unwrap();
        assert_eq!(
            engine.provisioned().rearmed,
            0,
            "a fresh demo holds no timers"
        );
        let calls = engine.calls();
        for command in [
            engine::testing::offer(call, caller_leg),
            engine::testing::ring(caller_leg, &[callee_leg]),
        ] {
            calls
                .execute(&instance, Execute::new(command))
                .await
                .unwrap();
        }
        engine.shutdown().await;
    }
    assert!(
        !types(&sqlite(&dir).await, &stream)
            .await
            .iter()
            .any(|t| t == "CallEnded")
    );
    actix::clock::sleep(Duration::from_millis(50)).await;

    // Restart a minute later (by the engine's clock): the ring timeout is overdue.
    let log = sqlite(&dir).await;
    let engine = Engine::start(
        log.clone(),
        Arc::new(ManualClock::new(t0() + chrono::TimeDelta::minutes(1))),
        Arc::new(SeededIds::new(2)),
        demo_directory().unwrap(),
        EngineConfig::default(),
    )
    .await
    .unwrap();
    assert!(engine.provisioned().rearmed >= 1);
    let mut ended = false;
    for _ in 0..100 {
        if types(&log, &stream).await.iter().any(|t| t == "CallEnded") {
            ended = true;
            break;
        }
        actix::clock::sleep(Duration::from_millis(20)).await;
    }
    assert!(ended, "the call's stream: {:?}", types(&log, &stream).await);
    engine.shutdown().await;
}

/// A log that counts the reads of extension streams it serves.
#[derive(Debug)]
struct CountingReads {
    inner: Arc<dyn EventLog>,
    stream_reads: std::sync::atomic::AtomicUsize,
}

impl CountingReads {
    fn reads(&self) -> usize {
        self.stream_reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl EventLog for CountingReads {
    async fn append(
        &self,
        stream: &StreamId,
        expected: events::ExpectedVersion,
        records: Vec<events::EventRecord>,
    ) -> Result<events::AppendOutcome, events::LogError> {
        self.inner.append(stream, expected, records).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        after: u64,
        max: usize,
    ) -> Result<Vec<events::StoredEvent>, events::LogError> {
        if stream.category() == events::ids::Category::Extension {
            self.stream_reads
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.read_stream(stream, after, max).await
    }
    async fn read_all(
        &self,
        after: GlobalPosition,
        max: usize,
    ) -> Result<Vec<events::StoredEvent>, events::LogError> {
        self.inner.read_all(after, max).await
    }
    async fn head(&self) -> Result<GlobalPosition, events::LogError> {
        self.inner.head().await
    }
    fn wake_ups(&self) -> tokio::sync::watch::Receiver<GlobalPosition> {
        self.inner.wake_ups()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[actix::test]
async fn extensions_are_served_from_the_start_up_fold_until_written() {
    let dir = tempfile::tempdir().unwrap();
    // Once on a fresh log (the states provisioning planned), once over the provisioned log
    // (the states the fold found).
    for (seed, fresh) in [(1, true), (2, false)] {
        let counting = Arc::new(CountingReads {
            inner: sqlite(&dir).await,
            stream_reads: Default::default(),
        });
        let log: Arc<dyn EventLog> = counting.clone();
        let engine = start(&log, seed, demo_directory().unwrap()).await.unwrap();
        assert_eq!(engine.provisioned().events > 0, fresh);
        let stream = StreamId::extension(&acme(), &number("1001"));
        let follower = engine::runtime::Follower::of(engine.extensions());

        // The first run turns DND on (version 2), the second one off again.
        let (before, after) = if fresh { (1, 2) } else { (2, 3) };
        // Every provisioned extension's actor is live and no stream was read to get there.
        let folded = follower.current(&stream, 0).await.unwrap();
        assert_eq!((folded.version, folded.state.dnd()), (before, !fresh));
        assert!(folded.state.in_service());
        assert_eq!(
            counting.reads(),
            0,
            "seeded: neither actors nor follower read"
        );

        // A command runs on the seeded state; the follower takes the change from the feed.
        let done = engine
            .extensions()
            .execute(
                &Instance::new(stream.clone()).in_tenant(acme()),
                Execute::new(ExtensionCommand::SetDnd {
                    enabled: fresh,
                    source: SettingSource::User,
                    by: None,
                }),
            )
            .await
            .unwrap();
        assert_eq!((done.events, done.version), (1, after));
        let folded = follower.current(&stream, done.version).await.unwrap();
        assert_eq!((folded.version, folded.state.dnd()), (after, fresh));
        assert_eq!(counting.reads(), 0);

        // A follower that starts after the write may not take the (dropped) seed: it reads.
        let late = engine::runtime::Follower::of(engine.extensions());
        let folded = late.current(&stream, 0).await.unwrap();
        assert_eq!((folded.version, folded.state.dnd()), (after, fresh));
        assert_eq!(counting.reads(), 1);
        engine.shutdown().await;
        actix::clock::sleep(Duration::from_millis(50)).await;
    }
}

/// What the last run left and only it could carry on is settled once at the next start: its
/// open calls are ended, its websocket bindings unregistered. A call that ended and a binding
/// over UDP are left alone.
#[actix::test]
async fn what_the_last_run_left_open_is_settled_once_at_the_next_start() {
    use engine::call::CallCommand;
    use engine::extension::RegisterContact;
    use engine::runtime::Settled;
    use events::model::{CallEvent, ExtensionEvent, HangupCause, Transport, UnregisterReason};
    use events::{CallId, DeviceContactId, IdGen, LegId};

    let dir = tempfile::tempdir().unwrap();
    let ids = SeededIds::new(78);
    let call = || {
        let call = CallId::from_uuid(ids.next_uuid());
        let legs = (
            LegId::from_uuid(ids.next_uuid()),
            LegId::from_uuid(ids.next_uuid()),
        );
        (call, legs)
    };
    let (answered, over) = (call(), call());
    let browser = DeviceContactId::from_uuid(ids.next_uuid());
    let desk = DeviceContactId::from_uuid(ids.next_uuid());
    let at = |call: CallId| Instance::new(StreamId::call(call)).in_tenant(acme());
    let alice = Instance::new(StreamId::extension(&acme(), &number("1001"))).in_tenant(acme());
    {
        let log = sqlite(&dir).await;
        let engine = start(&log, 1, demo_directory().unwrap()).await.unwrap();
        for (call, (caller_leg, callee_leg)) in [answered, over] {
            let last = if call == answered.0 {
                CallCommand::Answer { leg: callee_leg }
            } else {
                CallCommand::HangUp {
                    leg: caller_leg,
                    cause: None,
                }
            };
            for command in [
                engine::testing::offer(call, caller_leg),
                engine::testing::ring(caller_leg, &[callee_leg]),
                last,
            ] {
                engine
                    .calls()
                    .execute(&at(call), Execute::new(command))
                    .await
                    .unwrap();
            }
        }
        for (contact, transport, port) in [
            (browser, Transport::Ws, 50001),
            (desk, Transport::Udp, 5060),
        ] {
            let register = ExtensionCommand::Register(RegisterContact {
                contact,
                contact_uri: format!("sip:1001@127.0.0.1:{port}"),
                transport,
                source: format!("127.0.0.1:{port}"),
                user_agent: None,
                expires_secs: 600,
            });
            engine
                .extensions()
                .execute(&alice, Execute::new(register))
                .await
                .unwrap();
        }
        engine.shutdown().await;
    }
    actix::clock::sleep(Duration::from_millis(50)).await;

    let log = sqlite(&dir).await;
    let over_before = types(&log, &StreamId::call(over.0).to_string()).await;
    assert_eq!(over_before.last().map(String::as_str), Some("CallEnded"));
    let engine = start(&log, 2, demo_directory().unwrap()).await.unwrap();
    let mark = log.head().await.unwrap();
    let settled = engine
        .settle_last_run(HangupCause::SystemShutdown)
        .await
        .unwrap();
    assert_eq!(
        settled,
        Settled {
            calls_ended: 1,
            websocket_users: 1
        }
    );
    let events = decoded(&log, &StreamId::call(answered.0).to_string()).await;
    match events.last() {
        Some(Event::Call(CallEvent::CallEnded { call, cause, .. })) => {
            assert_eq!((*call, *cause), (answered.0, HangupCause::SystemShutdown));
        }
        other => panic!("the answered call's last event: {other:?}"),
    }
    assert_eq!(
        types(&log, &StreamId::call(over.0).to_string()).await,
        over_before
    );
    let unregistered: Vec<(DeviceContactId, UnregisterReason)> = log
        .read_all(mark, 100)
        .await
        .unwrap()
        .iter()
        .filter_map(|e| match codec::decode(e).unwrap().event {
            Event::Extension(ExtensionEvent::DeviceUnregistered {
                contact, reason, ..
            }) => Some((contact, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        unregistered,
        vec![(browser, UnregisterReason::ConnectionLost)]
    );
    // Taken once.
    assert_eq!(
        engine
            .settle_last_run(HangupCause::SystemShutdown)
            .await
            .unwrap(),
        Settled::default()
    );
    engine.shutdown().await;
}
