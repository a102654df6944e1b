//! A clean log from real aggregate activity, for the replay tests: an office day on the demo
//! directory that goes through every aggregate (directory, extensions, calls, a queue, a
//! conference room, voicemail boxes, a channel room and a group conversation). Every command
//! goes through the aggregate's `decide` and every event through `stamp` and `evolve`, the way
//! the actor shell runs them, so the log is one the engine writes; a refused command fails the
//! test that built it.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use events::ids::{
    AgentId, CallId, ConferenceId, ConversationId, DepartmentId, DeviceContactId, ExtensionNumber,
    LegId, ListenSessionId, MessageId, PhoneNumber, PresenceStateId, QueueId, RecordingId, RoomId,
    UserId, VoicemailMessageId,
};
use events::model::{
    AgentLogoutReason, CallOrigin, CompletedBy, ConferenceEvent, Credential, DepositReason,
    Direction, ExtensionCallState, FeatureFlag, ForwardKind, GreetingKind, GreetingSource, LegRole,
    LineState, ListenEndReason, ListenMode, ListenVia, Membership as QueueMembership, Party,
    PresenceRule, PresenceSource, PresenceStateType, QueueStrategy, RecordingTrigger, RoomRole,
    RoomVisibility, SettingSource, TransferMethod, Transport, UnregisterReason, UserRole,
    VoicemailFolder, VoicemailForwardKind,
};
use events::{GlobalPosition, IdGen, SeededIds, StoredEvent, StreamId, TenantId};

use crate::aggregate::{Aggregate, stamp};
use crate::call::{Call, CallCommand, RingContact};
use crate::conference::{Conference, ConferenceCommand};
use crate::directory::demo::demo_directory;
use crate::directory::{Directory, DirectoryCommand};
use crate::extension::{Extension, ExtensionCommand, FollowMe, PresenceChoice, RegisterContact};
use crate::queue::{Activity, Queue, QueueCommand, QueueSettings};
use crate::room::{
    ChannelRoom, Conversation, ConversationCommand, MessageAction, MessageDraft, RoomCommand,
};
use crate::voicemail::{Pin, VoicemailBox, VoicemailCommand, VoicemailSettings};

/// Runs commands against aggregates and keeps what they append, as a log.
#[derive(Debug)]
pub(super) struct LogBuilder {
    pub(super) now: DateTime<Utc>,
    ids: SeededIds,
    tenant: TenantId,
    versions: HashMap<StreamId, u64>,
    pub(super) log: Vec<StoredEvent>,
}

/// 2026-03-02 08:00 UTC, the office day's start.
pub(super) fn morning() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

impl LogBuilder {
    pub(super) fn new(tenant: &str, seed: u64) -> Self {
        Self {
            now: morning(),
            ids: SeededIds::new(seed),
            tenant: parse(tenant),
            versions: HashMap::new(),
            log: Vec::new(),
        }
    }

    pub(super) fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub(super) fn tick(&mut self, secs: i64) {
        self.now += TimeDelta::seconds(secs);
    }

    /// A fresh id of any UUID kind from the seeded generator.
    pub(super) fn id<T: std::str::FromStr>(&self) -> T
    where
        T::Err: std::fmt::Debug,
    {
        parse(&self.ids.next_uuid().to_string())
    }

    /// Decides `command` at `now` and appends and folds what it produced; a refusal panics.
    pub(super) fn run<A: Aggregate>(
        &mut self,
        stream: &StreamId,
        state: &mut A,
        command: A::Command,
    ) -> Vec<A::Event> {
        let events = state
            .decide(&command, self.now)
            .unwrap_or_else(|e| panic!("{stream}: {command:?} was refused: {e}"));
        self.append(stream, state, &events);
        events
    }

    /// Appends `events` to `stream` at `now` and folds them into `state`.
    pub(super) fn append<A: Aggregate>(
        &mut self,
        stream: &StreamId,
        state: &mut A,
        events: &[A::Event],
    ) {
        let (metadata, records) =
            stamp(events, self.now, &self.ids, Some(&self.tenant), None, None);
        let version = self.versions.entry(stream.clone()).or_default();
        for ((event, meta), record) in events.iter().zip(&metadata).zip(records) {
            *version += 1;
            self.log.push(StoredEvent {
                position: GlobalPosition(self.log.len() as u64 + 1),
                stream: stream.clone(),
                version: *version,
                record,
            });
            state.evolve(event, meta.occurred_at);
        }
    }
}

/// One demo user as the scenario uses them.
#[derive(Debug, Clone)]
struct Person {
    number: ExtensionNumber,
    user: UserId,
    party: Party,
    stream: StreamId,
    ext: Extension,
}

/// What the office day leaves behind besides its log.
#[derive(Debug)]
pub(super) struct OfficeDay {
    pub(super) log: Vec<StoredEvent>,
    pub(super) tenant: TenantId,
    /// Every stream's final state as the scenario folded it live, by category.
    pub(super) extensions: Vec<(StreamId, Extension)>,
    pub(super) calls: Vec<(StreamId, Call)>,
    pub(super) queue: (StreamId, Queue),
    pub(super) conference: (StreamId, Conference),
    pub(super) boxes: Vec<(StreamId, VoicemailBox)>,
    pub(super) directory: (StreamId, Directory),
}

fn presence(state: &str, state_type: PresenceStateType) -> PresenceChoice {
    PresenceChoice {
        state: parse::<PresenceStateId>(state),
        state_type,
    }
}

fn rules() -> Vec<PresenceRule> {
    vec![
        PresenceRule {
            state_type: PresenceStateType::Dnd,
            dnd: Some(true),
            follow_me: None,
        },
        PresenceRule {
            state_type: PresenceStateType::Available,
            dnd: Some(false),
            follow_me: Some(false),
        },
        PresenceRule {
            state_type: PresenceStateType::ExtendedAway,
            dnd: None,
            follow_me: Some(true),
        },
    ]
}

/// The office day. Its last call is left ringing and its phones registered, so the final
/// states hold deadlines that are not yet due at the end of the log.
pub(super) fn office_day(seed: u64) -> OfficeDay {
    let mut b = LogBuilder::new("acme", seed);
    let tenant = b.tenant().clone();
    let loaded = demo_directory().unwrap_or_else(|e| panic!("demo directory: {e}"));
    let acme = loaded
        .tenants
        .into_iter()
        .find(|t| t.tenant == tenant)
        .unwrap_or_else(|| panic!("the demo has no tenant {tenant}"));

    // The directory, as loaded, then an administrator's changes.
    let dir_stream = StreamId::directory(&tenant);
    let mut dir = Directory::default();
    b.append(&dir_stream, &mut dir, &acme.events);
    b.tick(60);
    let u = |s: &str| parse::<UserId>(s);
    for command in [
        DirectoryCommand::RenameTenant {
            name: "Acme Ltd".into(),
        },
        DirectoryCommand::SuspendTenant {
            reason: Some("unpaid invoice".into()),
        },
        DirectoryCommand::ReinstateTenant,
        DirectoryCommand::RenameUser {
            user: u("1004"),
            display_name: "Dana (sales)".into(),
        },
        DirectoryCommand::SetUserEmail {
            user: u("1004"),
            email: Some("dana@acme.example".into()),
        },
        DirectoryCommand::RecordCredentialChange {
            user: u("1004"),
            credential: Credential::WebPassword,
            by: Some(u("admin")),
        },
        DirectoryCommand::GrantCallPanel {
            user: u("1001"),
            department: parse::<DepartmentId>("management"),
            by: Some(u("admin")),
        },
        DirectoryCommand::RevokeCallPanel {
            user: u("1001"),
            department: parse::<DepartmentId>("management"),
            by: Some(u("admin")),
        },
        DirectoryCommand::UpdatePresenceState {
            state: parse("lunch"),
            label: "Lunch break".into(),
            state_type: PresenceStateType::Away,
        },
        DirectoryCommand::CreateDepartment {
            department: parse("lab"),
            name: "Lab".into(),
        },
        DirectoryCommand::RenameDepartment {
            department: parse("lab"),
            name: "Research lab".into(),
        },
        DirectoryCommand::DeleteDepartment {
            department: parse("lab"),
        },
        DirectoryCommand::CreateProfile {
            profile: parse("trial"),
            name: "Trial".into(),
            features: [FeatureFlag::Softphone].into(),
        },
        DirectoryCommand::SetProfileFeatures {
            profile: parse("trial"),
            features: [FeatureFlag::Softphone, FeatureFlag::Chat].into(),
        },
        DirectoryCommand::DeleteProfile {
            profile: parse("trial"),
        },
        DirectoryCommand::MoveUser {
            user: u("1004"),
            department: parse("support"),
        },
        DirectoryCommand::ChangeUserProfile {
            user: u("1004"),
            profile: parse("panel"),
        },
        DirectoryCommand::ChangeUserRole {
            user: u("1012"),
            role: UserRole::ClientAdmin,
        },
        DirectoryCommand::ChangeUserExtension {
            user: u("1012"),
            extension: parse("1013"),
        },
        DirectoryCommand::DeleteUser { user: u("1012") },
        DirectoryCommand::AddPresenceState {
            state: parse("meeting"),
            label: "In a meeting".into(),
            state_type: PresenceStateType::Dnd,
        },
    ] {
        b.run(&dir_stream, &mut dir, command);
    }
    let mut order: Vec<PresenceStateId> =
        dir.presence_states().iter().map(|s| s.id.clone()).collect();
    order.reverse();
    b.run(
        &dir_stream,
        &mut dir,
        DirectoryCommand::ReorderPresenceStates { order },
    );
    b.run(
        &dir_stream,
        &mut dir,
        DirectoryCommand::RemovePresenceState {
            state: parse("meeting"),
        },
    );

    // Extensions: provisioned from the directory, then phones and settings.
    let mut people: Vec<Person> = Vec::new();
    for (number, provision) in acme.extensions {
        let stream = StreamId::extension(&tenant, &number);
        let mut ext = Extension::default();
        b.run(&stream, &mut ext, provision);
        let user = ext.user().cloned().unwrap_or_else(|| u(number.as_str()));
        let party = Party::internal(
            number.clone(),
            user.clone(),
            ext.department().cloned().unwrap_or_else(|| parse("sales")),
            ext.display_name().unwrap_or_default(),
        );
        people.push(Person {
            number,
            user,
            party,
            stream,
            ext,
        });
    }
    let who = |people: &[Person], n: &str| {
        people
            .iter()
            .position(|p| p.number.as_str() == n)
            .unwrap_or_else(|| panic!("no extension {n}"))
    };
    let mut contacts: HashMap<usize, DeviceContactId> = HashMap::new();
    let register = |b: &mut LogBuilder, p: &mut Person, contact: DeviceContactId, ua: &str| {
        b.run(
            &p.stream,
            &mut p.ext,
            ExtensionCommand::Register(RegisterContact {
                contact,
                contact_uri: format!("sip:{}@192.0.2.10:5060", p.number),
                transport: Transport::Udp,
                source: "192.0.2.10:5060".into(),
                user_agent: Some(ua.into()),
                expires_secs: 3600,
            }),
        );
    };
    for n in ["1001", "1002", "1003", "1004", "1006", "1007", "1011"] {
        let i = who(&people, n);
        let contact = b.id::<DeviceContactId>();
        contacts.insert(i, contact);
        register(&mut b, &mut people[i], contact, "desk phone 1.0");
        b.tick(1);
    }
    // A firmware update: the same binding again, whole; then a plain refresh.
    let i1001 = who(&people, "1001");
    register(
        &mut b,
        &mut people[i1001],
        contacts[&i1001],
        "desk phone 1.1",
    );
    b.tick(30);
    register(
        &mut b,
        &mut people[i1001],
        contacts[&i1001],
        "desk phone 1.1",
    );
    // A softphone that registers for a minute and lapses.
    let i1004 = who(&people, "1004");
    let soft = b.id::<DeviceContactId>();
    b.run(
        &people[i1004].stream.clone(),
        &mut people[i1004].ext,
        ExtensionCommand::Register(RegisterContact {
            contact: soft,
            contact_uri: "sip:1004@198.51.100.7:5062".into(),
            transport: Transport::Tls,
            source: "198.51.100.7:5062".into(),
            user_agent: Some("softphone".into()),
            expires_secs: 60,
        }),
    );
    b.tick(61);
    b.run(
        &people[i1004].stream.clone(),
        &mut people[i1004].ext,
        ExtensionCommand::ExpireRegistration { contact: soft },
    );
    let by = |p: &Person| Some(p.user.clone());
    let settings: Vec<ExtensionCommand> = vec![
        ExtensionCommand::SetPresence {
            choice: presence("busy", PresenceStateType::Dnd),
            message: Some("in a meeting".into()),
            source: PresenceSource::User,
            by: by(&people[i1001]),
            rules: rules(),
        },
        ExtensionCommand::SetPresence {
            choice: presence("available", PresenceStateType::Available),
            message: None,
            source: PresenceSource::User,
            by: by(&people[i1001]),
            rules: rules(),
        },
        ExtensionCommand::SetCallForward {
            kind: ForwardKind::Busy,
            destination: Some(parse::<PhoneNumber>("1003")),
            ring_ms: None,
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetCallForward {
            kind: ForwardKind::NoAnswer,
            destination: Some(parse::<PhoneNumber>("1002")),
            ring_ms: Some(20_000),
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetCallForward {
            kind: ForwardKind::Busy,
            destination: None,
            ring_ms: None,
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetFollowMe {
            settings: FollowMe {
                enabled: true,
                numbers: vec![parse::<PhoneNumber>("+4930123456")],
                confirm: true,
                caller_id_prefix: Some("FM:".into()),
                ring_first_ms: 5_000,
                ring_all_ms: 25_000,
            },
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetPresence {
            choice: presence("xa", PresenceStateType::ExtendedAway),
            message: None,
            source: PresenceSource::User,
            by: by(&people[i1001]),
            rules: rules(),
        },
        ExtensionCommand::SetDnd {
            enabled: true,
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetDnd {
            enabled: false,
            source: SettingSource::User,
            by: by(&people[i1001]),
        },
        ExtensionCommand::SetCallWaiting {
            enabled: false,
            source: SettingSource::Admin,
            by: None,
        },
        ExtensionCommand::PanelLogin {
            on_login: Some(presence("available", PresenceStateType::Available)),
            rules: rules(),
        },
    ];
    for command in settings {
        let p = &mut people[i1001];
        b.run(&p.stream, &mut p.ext, command);
        b.tick(5);
    }
    // 1003 goes home early; 1005 leaves the company.
    let i1003 = who(&people, "1003");
    b.run(
        &people[i1003].stream.clone(),
        &mut people[i1003].ext,
        ExtensionCommand::Unregister {
            contact: contacts[&i1003],
            reason: UnregisterReason::Requested,
        },
    );
    let i1005 = who(&people, "1005");
    b.run(
        &people[i1005].stream.clone(),
        &mut people[i1005].ext,
        ExtensionCommand::Retire,
    );

    // Calls between extensions, each reported to the extensions in it.
    let mut calls: Vec<(StreamId, Call)> = Vec::new();
    let observe = |b: &mut LogBuilder, p: &mut Person, call: CallId, state: ExtensionCallState| {
        b.run(
            &p.stream,
            &mut p.ext,
            ExtensionCommand::CallLegStateObserved { call, state },
        );
    };
    let i1002 = who(&people, "1002");
    let i1011 = who(&people, "1011");

    // 1001 calls 1002: answered, held, listened to, recorded, hung up.
    {
        let id = b.id::<CallId>();
        let stream = StreamId::call(id);
        let mut call = Call::default();
        let caller_leg = b.id::<LegId>();
        let callee_leg = b.id::<LegId>();
        b.run(
            &stream,
            &mut call,
            CallCommand::Offer {
                call: id,
                caller_leg,
                direction: Direction::Internal,
                caller: people[i1001].party.clone(),
                callee: people[i1002].party.clone(),
                dialled: parse("1002"),
                origin: CallOrigin::Device,
                caller_contact: Some(contacts[&i1001]),
                trunk: None,
                requested_by: None,
            },
        );
        observe(&mut b, &mut people[i1001], id, ExtensionCallState::Calling);
        b.run(
            &stream,
            &mut call,
            CallCommand::Ring {
                parent: caller_leg,
                callee: people[i1002].party.clone(),
                role: LegRole::Callee,
                contacts: vec![RingContact {
                    leg: callee_leg,
                    contact: Some(contacts[&i1002]),
                }],
                ring_timeout: TimeDelta::seconds(30),
                voicemail: Some(people[i1002].number.clone()),
            },
        );
        b.run(&stream, &mut call, CallCommand::Ringing { leg: callee_leg });
        observe(&mut b, &mut people[i1002], id, ExtensionCallState::Ringing);
        b.tick(4);
        b.run(&stream, &mut call, CallCommand::Answer { leg: callee_leg });
        observe(&mut b, &mut people[i1001], id, ExtensionCallState::Answered);
        observe(&mut b, &mut people[i1002], id, ExtensionCallState::Answered);
        b.tick(20);
        b.run(&stream, &mut call, CallCommand::Hold { leg: callee_leg });
        observe(&mut b, &mut people[i1002], id, ExtensionCallState::Held);
        b.tick(10);
        b.run(&stream, &mut call, CallCommand::Resume { leg: callee_leg });
        observe(&mut b, &mut people[i1002], id, ExtensionCallState::Answered);
        let session = b.id::<ListenSessionId>();
        b.run(
            &stream,
            &mut call,
            CallCommand::StartListening {
                session,
                supervisor: people[i1011].user.clone(),
                supervisor_leg: b.id::<LegId>(),
                target_leg: callee_leg,
                mode: ListenMode::Listen,
                via: ListenVia::Browser,
            },
        );
        b.tick(15);
        b.run(
            &stream,
            &mut call,
            CallCommand::ChangeListenMode {
                session,
                mode: ListenMode::Whisper,
            },
        );
        b.tick(15);
        b.run(
            &stream,
            &mut call,
            CallCommand::StopListening {
                session,
                reason: ListenEndReason::SupervisorHungUp,
            },
        );
        let recording = b.id::<RecordingId>();
        b.run(
            &stream,
            &mut call,
            CallCommand::StartRecording {
                recording,
                leg: None,
                trigger: RecordingTrigger::OnDemand,
                by: by(&people[i1001]),
            },
        );
        b.tick(30);
        b.run(
            &stream,
            &mut call,
            CallCommand::StopRecording {
                recording,
                size_bytes: 480_000,
                by: by(&people[i1001]),
            },
        );
        b.tick(60);
        // 1002 consulted 1003 on another call and joins them: 1002's leg ends here.
        let target_leg = b.id::<LegId>();
        b.run(
            &stream,
            &mut call,
            CallCommand::AttendedTransfer {
                transferer_leg: callee_leg,
                consult_call: b.id(),
                target_leg,
                target: people[i1003].party.clone(),
                method: TransferMethod::SipRefer,
            },
        );
        observe(&mut b, &mut people[i1002], id, ExtensionCallState::Ended);
        b.tick(45);
        b.run(
            &stream,
            &mut call,
            CallCommand::HangUp {
                leg: caller_leg,
                cause: None,
            },
        );
        observe(&mut b, &mut people[i1001], id, ExtensionCallState::Ended);
        calls.push((stream, call));
    }

    // 1006 calls 1007, who does not answer: the ring timeout ends it.
    {
        let (i1006, i1007) = (who(&people, "1006"), who(&people, "1007"));
        let id = b.id::<CallId>();
        let stream = StreamId::call(id);
        let mut call = Call::default();
        let caller_leg = b.id::<LegId>();
        b.run(
            &stream,
            &mut call,
            CallCommand::Offer {
                call: id,
                caller_leg,
                direction: Direction::Internal,
                caller: people[i1006].party.clone(),
                callee: people[i1007].party.clone(),
                dialled: parse("1007"),
                origin: CallOrigin::Device,
                caller_contact: Some(contacts[&i1006]),
                trunk: None,
                requested_by: None,
            },
        );
        b.run(
            &stream,
            &mut call,
            CallCommand::Ring {
                parent: caller_leg,
                callee: people[i1007].party.clone(),
                role: LegRole::Callee,
                contacts: vec![RingContact {
                    leg: b.id::<LegId>(),
                    contact: Some(contacts[&i1007]),
                }],
                ring_timeout: TimeDelta::seconds(20),
                voicemail: Some(people[i1007].number.clone()),
            },
        );
        let rung = call
            .legs()
            .iter()
            .find(|l| l.role == LegRole::Callee)
            .map(|l| l.id)
            .unwrap_or_else(|| panic!("the callee's leg"));
        b.run(&stream, &mut call, CallCommand::EarlyMedia { leg: rung });
        let deadline = call
            .deadlines()
            .first()
            .map(|d| d.at)
            .unwrap_or_else(|| panic!("a ringing call holds its ring timeout"));
        b.now = deadline + TimeDelta::milliseconds(5);
        b.run(&stream, &mut call, CallCommand::RingTimeout { deadline });
        b.tick(25);
        b.run(
            &stream,
            &mut call,
            CallCommand::HangUp {
                leg: caller_leg,
                cause: None,
            },
        );
        calls.push((stream, call));
    }

    // 1003 calls 1004, who passes the call on to 1001 (a blind transfer).
    {
        let i1004 = who(&people, "1004");
        let id = b.id::<CallId>();
        let stream = StreamId::call(id);
        let mut call = Call::default();
        let (caller_leg, callee_leg, forward_leg) =
            (b.id::<LegId>(), b.id::<LegId>(), b.id::<LegId>());
        b.run(
            &stream,
            &mut call,
            CallCommand::Offer {
                call: id,
                caller_leg,
                direction: Direction::Internal,
                caller: people[i1003].party.clone(),
                callee: people[i1004].party.clone(),
                dialled: parse("1004"),
                origin: CallOrigin::Device,
                caller_contact: None,
                trunk: None,
                requested_by: None,
            },
        );
        for (leg, callee, contact) in [
            (callee_leg, &people[i1004], None),
            (forward_leg, &people[i1001], Some(contacts[&i1001])),
        ] {
            b.run(
                &stream,
                &mut call,
                CallCommand::Ring {
                    parent: caller_leg,
                    callee: callee.party.clone(),
                    role: LegRole::Callee,
                    contacts: vec![RingContact { leg, contact }],
                    ring_timeout: TimeDelta::seconds(30),
                    voicemail: None,
                },
            );
            b.tick(2);
            b.run(&stream, &mut call, CallCommand::Answer { leg });
            if leg == callee_leg {
                b.tick(20);
                b.run(
                    &stream,
                    &mut call,
                    CallCommand::BlindTransfer {
                        transferer_leg: callee_leg,
                        target: parse("1001"),
                        method: TransferMethod::Panel,
                    },
                );
            }
        }
        b.tick(33);
        b.run(
            &stream,
            &mut call,
            CallCommand::Terminate {
                cause: events::model::HangupCause::NormalClearing,
                sip_status: None,
            },
        );
        calls.push((stream, call));
    }

    // The support queue: two agents, callers answered, abandoned, timed out and leaving by key.
    let q_stream = StreamId::queue(&tenant, &parse::<QueueId>("support"));
    let mut queue = Queue::default();
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::Configure {
            queue: parse("support"),
            settings: QueueSettings {
                name: "Support".into(),
                extension: parse("2000"),
                strategy: QueueStrategy::RingAll,
                ring_timeout_ms: 15_000,
                max_wait_ms: Some(60_000),
                max_callers: None,
                wrap_up_ms: 5_000,
                join_empty: true,
                leave_when_empty: false,
                exit_key: Some('0'),
                fallback: None,
                music_on_hold: None,
            },
        },
    );
    let agents: Vec<AgentId> = ["1006", "1007"]
        .iter()
        .map(|n| {
            let p = &people[who(&people, n)];
            let agent = b.id::<AgentId>();
            b.run(
                &q_stream,
                &mut queue,
                QueueCommand::LogIn {
                    agent,
                    user: p.user.clone(),
                    extension: p.number.clone(),
                    department: p.party.department.clone(),
                    penalty: 0,
                    membership: QueueMembership::Static,
                },
            );
            agent
        })
        .collect();
    let offered = |queue: &Queue, call: CallId| -> Vec<AgentId> {
        queue
            .agents()
            .filter(|(_, a)| matches!(a.activity, Activity::Offered { call: c, .. } if c == call))
            .map(|(id, _)| id)
            .collect()
    };
    let outside = Party {
        number: Some(parse("+4930999999")),
        name: Some("A customer".into()),
        ..Party::default()
    };
    let join = |b: &mut LogBuilder, queue: &mut Queue| -> CallId {
        let call = b.id::<CallId>();
        b.run(
            &q_stream,
            queue,
            QueueCommand::Join {
                call,
                leg: b.id::<LegId>(),
                caller: outside.clone(),
            },
        );
        call
    };
    // Answered by the first agent; the other's offer is withdrawn; wrap-up ended early.
    let c1 = join(&mut b, &mut queue);
    let rung = offered(&queue, c1);
    assert_eq!(rung.len(), 2, "ring-all offers the call to both agents");
    for agent in &rung {
        b.run(
            &q_stream,
            &mut queue,
            QueueCommand::AgentRinging {
                agent: *agent,
                call: c1,
                leg: b.id::<LegId>(),
            },
        );
    }
    b.tick(6);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::AgentAnswered {
            agent: agents[0],
            call: c1,
        },
    );
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::ObserveAgentLine {
            agent: agents[0],
            line: LineState::OnCall,
        },
    );
    b.tick(90);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::Complete {
            call: c1,
            by: CompletedBy::Agent,
        },
    );
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::ObserveAgentLine {
            agent: agents[0],
            line: LineState::Idle,
        },
    );
    b.tick(2);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::EndWrapUp { agent: agents[0] },
    );
    for command in [
        QueueCommand::Pause {
            agent: agents[1],
            reason: Some("coffee".into()),
            by: None,
        },
        QueueCommand::Unpause {
            agent: agents[1],
            by: None,
        },
        QueueCommand::PauseAll {
            reason: Some("team meeting".into()),
            by: Some(u("1011")),
        },
        QueueCommand::UnpauseAll {
            by: Some(u("1011")),
        },
        QueueCommand::SetPenalty {
            agent: agents[1],
            penalty: 2,
            by: Some(u("1011")),
        },
    ] {
        b.run(&q_stream, &mut queue, command);
        b.tick(3);
    }
    // Not answered in time by one agent, then abandoned.
    let c2 = join(&mut b, &mut queue);
    b.tick(15);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::RingNoAnswer {
            agent: agents[0],
            call: c2,
        },
    );
    b.tick(5);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::CallerHungUp { call: c2 },
    );
    // Pressing the exit key; then one who waits too long while both agents are paused.
    let c3 = join(&mut b, &mut queue);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::PressKey { call: c3, key: '0' },
    );
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::PauseAll {
            reason: None,
            by: None,
        },
    );
    let c4 = join(&mut b, &mut queue);
    b.tick(10);
    let c5 = join(&mut b, &mut queue);
    b.tick(10);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::CallerHungUp { call: c4 },
    );
    let mut full = queue
        .settings()
        .cloned()
        .unwrap_or_else(|| panic!("the queue is configured"));
    full.max_callers = Some(1);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::Configure {
            queue: parse("support"),
            settings: full,
        },
    );
    join(&mut b, &mut queue);
    b.tick(61);
    b.run(
        &q_stream,
        &mut queue,
        QueueCommand::MaxWaitExceeded { call: c5 },
    );
    b.run(&q_stream, &mut queue, QueueCommand::UnpauseAll { by: None });
    for agent in &agents {
        b.run(
            &q_stream,
            &mut queue,
            QueueCommand::LogOut {
                agent: *agent,
                reason: AgentLogoutReason::Requested,
            },
        );
    }
    b.run(&q_stream, &mut queue, QueueCommand::Delete);

    // The conference room: a run with a PIN, an invitation, a kick, mute, talk and lock.
    let configured = acme
        .conferences
        .first()
        .cloned()
        .unwrap_or_else(|| panic!("the demo has a conference room"));
    let ConferenceEvent::ConferenceConfigured { conference, .. } = &configured else {
        panic!("not a ConferenceConfigured: {configured:?}");
    };
    let conf_stream = StreamId::conference(&tenant, conference);
    let conf_id: ConferenceId = conference.clone();
    let mut room = Conference::default();
    b.append(&conf_stream, &mut room, std::slice::from_ref(&configured));
    let member = |b: &mut LogBuilder, room: &mut Conference, p: &Person, admin: bool| {
        let leg = b.id::<LegId>();
        b.run(
            &conf_stream,
            room,
            ConferenceCommand::Join {
                call: b.id::<CallId>(),
                leg,
                party: p.party.clone(),
                pin: (!admin).then(|| "1234".to_owned()),
                admin,
                muted: false,
            },
        );
        leg
    };
    let chair = member(&mut b, &mut room, &people[i1011], true);
    let guest = member(&mut b, &mut room, &people[i1002], false);
    let invited_call = b.id::<CallId>();
    let invited_leg = b.id::<LegId>();
    for command in [
        ConferenceCommand::Mute {
            leg: guest,
            by: by(&people[i1011]),
        },
        ConferenceCommand::Unmute {
            leg: guest,
            by: by(&people[i1011]),
        },
        ConferenceCommand::TalkingStarted { leg: chair },
        ConferenceCommand::TalkingStopped { leg: chair },
        ConferenceCommand::Lock { by: None },
        ConferenceCommand::Invite {
            invitee: people[i1003].party.clone(),
            by: people[i1011].user.clone(),
            call: invited_call,
        },
        ConferenceCommand::Join {
            call: invited_call,
            leg: invited_leg,
            party: people[i1003].party.clone(),
            pin: None,
            admin: false,
            muted: true,
        },
        ConferenceCommand::Unlock { by: None },
        ConferenceCommand::TalkingStarted { leg: guest },
        ConferenceCommand::Kick {
            leg: guest,
            by: people[i1011].user.clone(),
        },
        ConferenceCommand::Leave { leg: invited_leg },
        ConferenceCommand::Leave { leg: chair },
    ] {
        b.tick(7);
        b.run(&conf_stream, &mut room, command);
    }
    b.tick(11);
    b.run(&conf_stream, &mut room, ConferenceCommand::EndIfEmpty);
    assert!(room.run().is_none(), "the emptied run of {conf_id} ended");
    b.run(&conf_stream, &mut room, ConferenceCommand::Delete);

    // Voicemail: 1002's box takes messages and forwards them to 1003's.
    let mut boxes: Vec<(StreamId, VoicemailBox)> = Vec::new();
    let vm_of = |p: &Person| StreamId::voicemail(&tenant, &p.number);
    let mut vm2 = VoicemailBox::default();
    let mut vm3 = VoicemailBox::default();
    let (s2, s3) = (vm_of(&people[i1002]), vm_of(&people[i1003]));
    for (stream, vm, p) in [
        (&s2, &mut vm2, &people[i1002]),
        (&s3, &mut vm3, &people[i1003]),
    ] {
        b.run(
            stream,
            vm,
            VoicemailCommand::Create {
                mailbox: p.number.clone(),
                owner: p.user.clone(),
                department: p.party.department.clone(),
            },
        );
    }
    let owner = people[i1002].user.clone();
    let (m1, m2) = (b.id::<VoicemailMessageId>(), b.id::<VoicemailMessageId>());
    for (message, urgent) in [(m1, false), (m2, true)] {
        b.tick(40);
        b.run(
            &s2,
            &mut vm2,
            VoicemailCommand::Deposit {
                message,
                caller: outside.clone(),
                call: Some(b.id::<CallId>()),
                reason: DepositReason::Unavailable,
                duration_ms: 14_000,
                recording: b.id::<RecordingId>(),
                urgent,
            },
        );
    }
    for command in [
        VoicemailCommand::MarkRead {
            message: m1,
            by: owner.clone(),
        },
        VoicemailCommand::MarkUnread {
            message: m1,
            by: owner.clone(),
        },
        VoicemailCommand::Move {
            message: m2,
            to: VoicemailFolder::Work,
            by: owner.clone(),
        },
        VoicemailCommand::ChangeSettings {
            settings: VoicemailSettings {
                email: Some("user1002@acme.example".into()),
                pager_email: Some("pager1002@acme.example".into()),
                ..VoicemailSettings::default()
            },
            by: owner.clone(),
        },
        VoicemailCommand::Emailed {
            message: m1,
            to: "user1002@acme.example".into(),
            pager: false,
            attached: true,
        },
        VoicemailCommand::Emailed {
            message: m1,
            to: "pager1002@acme.example".into(),
            pager: true,
            attached: false,
        },
        VoicemailCommand::SetGreeting {
            greeting: GreetingKind::Busy,
            source: GreetingSource::Recorded,
            recording: b.id::<RecordingId>(),
            duration_ms: 6_000,
            by: owner.clone(),
        },
        VoicemailCommand::SetGreeting {
            greeting: GreetingKind::Name,
            source: GreetingSource::Uploaded,
            recording: b.id::<RecordingId>(),
            duration_ms: 2_000,
            by: owner.clone(),
        },
        VoicemailCommand::RemoveGreeting {
            greeting: GreetingKind::Busy,
            by: owner.clone(),
        },
        VoicemailCommand::ChangePin {
            pin: parse_pin("4821"),
            by: owner.clone(),
        },
        VoicemailCommand::ChangePin {
            pin: parse_pin("9137"),
            by: owner.clone(),
        },
    ] {
        b.tick(2);
        b.run(&s2, &mut vm2, command);
    }
    // A copy of m2 to 1003, then m1 transferred there.
    for (message, kind) in [
        (m2, VoicemailForwardKind::Copy),
        (m1, VoicemailForwardKind::Transfer),
    ] {
        let copy = b.id::<VoicemailMessageId>();
        let receive = vm2
            .forwarded_copy(&message, copy)
            .unwrap_or_else(|| panic!("{message} is in the box"));
        b.run(&s3, &mut vm3, receive);
        b.run(
            &s2,
            &mut vm2,
            VoicemailCommand::Forward {
                message,
                to_mailbox: people[i1003].number.clone(),
                copy,
                kind,
                by: owner.clone(),
            },
        );
    }
    b.run(
        &s2,
        &mut vm2,
        VoicemailCommand::Delete {
            message: m2,
            by: owner.clone(),
        },
    );
    let kept: Vec<VoicemailMessageId> = vm3.messages().map(|(id, _)| *id).collect();
    for message in kept {
        b.run(&s3, &mut vm3, VoicemailCommand::Expire { message });
    }
    b.run(&s3, &mut vm3, VoicemailCommand::Remove);
    boxes.push((s2, vm2));
    boxes.push((s3, vm3));

    // A channel room, from creation to deletion.
    let room_stream = StreamId::room(&tenant, &parse::<RoomId>("general"));
    let mut chat = ChannelRoom::default();
    let (r1, r2, r3) = (
        b.id::<MessageId>(),
        b.id::<MessageId>(),
        b.id::<MessageId>(),
    );
    let thumbs = "\u{1f44d}".to_owned();
    for command in [
        RoomCommand::Create {
            room: parse("general"),
            name: "General chat".into(),
            by: u("1001"),
            members: vec![u("1002")],
            visibility: RoomVisibility::Public,
        },
        RoomCommand::Join { user: u("1003") },
        RoomCommand::AddMember {
            user: u("1004"),
            by: u("1002"),
        },
        RoomCommand::Message(MessageAction::Post {
            message: r1,
            author: u("1002"),
            draft: MessageDraft::text("Who has the projector?"),
        }),
        RoomCommand::Message(MessageAction::Post {
            message: r2,
            author: u("1003"),
            draft: MessageDraft {
                text: "I do".into(),
                thread: Some(r1),
                ..MessageDraft::default()
            },
        }),
        RoomCommand::Message(MessageAction::Post {
            message: r3,
            author: u("1001"),
            draft: MessageDraft {
                text: "Please bring it back".into(),
                quote: Some(r2),
                ..MessageDraft::default()
            },
        }),
        RoomCommand::Message(MessageAction::Edit {
            message: r1,
            text: "Who has the small projector?".into(),
            by: u("1002"),
        }),
        RoomCommand::Message(MessageAction::React {
            message: r1,
            user: u("1003"),
            emoji: thumbs.clone(),
        }),
        RoomCommand::Message(MessageAction::Unreact {
            message: r1,
            user: u("1003"),
            emoji: thumbs.clone(),
        }),
        RoomCommand::Message(MessageAction::Follow {
            message: r1,
            user: u("1001"),
        }),
        RoomCommand::Message(MessageAction::Unfollow {
            message: r1,
            user: u("1001"),
        }),
        RoomCommand::Message(MessageAction::Star {
            message: r2,
            user: u("1002"),
        }),
        RoomCommand::Message(MessageAction::Unstar {
            message: r2,
            user: u("1002"),
        }),
        RoomCommand::Message(MessageAction::Report {
            message: r3,
            by: u("1003"),
            reason: Some("rude".into()),
        }),
        RoomCommand::Message(MessageAction::Delete {
            message: r3,
            by: u("1001"),
        }),
        RoomCommand::Close { user: u("1002") },
        RoomCommand::Reopen { user: u("1002") },
        RoomCommand::GrantRole {
            user: u("1002"),
            role: RoomRole::Moderator,
            by: u("1001"),
        },
        RoomCommand::RevokeRole {
            user: u("1002"),
            role: RoomRole::Moderator,
            by: u("1001"),
        },
        RoomCommand::Rename {
            name: "Office".into(),
            by: u("1001"),
        },
        RoomCommand::Archive { by: u("1001") },
        RoomCommand::Restore { by: u("1001") },
        RoomCommand::Kick {
            user: u("1003"),
            by: u("1001"),
        },
        RoomCommand::Leave { user: u("1002") },
        RoomCommand::Delete { by: u("1001") },
    ] {
        b.tick(9);
        b.run(&room_stream, &mut chat, command);
    }

    // A group conversation.
    let conversation = b.id::<ConversationId>();
    let conv_stream = StreamId::conversation(conversation);
    let mut conv = Conversation::default();
    let (d1, d2) = (b.id::<MessageId>(), b.id::<MessageId>());
    for command in [
        ConversationCommand::Start {
            conversation,
            by: u("1001"),
            with: vec![u("1002"), u("1003")],
            first_message: Some((d1, MessageDraft::text("Lunch at noon?"))),
        },
        ConversationCommand::Hide { user: u("1002") },
        ConversationCommand::Message(MessageAction::Post {
            message: d2,
            author: u("1003"),
            draft: MessageDraft::text("Yes!"),
        }),
        ConversationCommand::Hide { user: u("1003") },
        ConversationCommand::Show { user: u("1003") },
        ConversationCommand::AddMember {
            user: u("1004"),
            by: u("1001"),
        },
        ConversationCommand::Message(MessageAction::React {
            message: d1,
            user: u("1004"),
            emoji: thumbs.clone(),
        }),
        ConversationCommand::Message(MessageAction::Edit {
            message: d1,
            text: "Lunch at half past twelve?".into(),
            by: u("1001"),
        }),
        ConversationCommand::Message(MessageAction::Unreact {
            message: d1,
            user: u("1004"),
            emoji: thumbs.clone(),
        }),
        ConversationCommand::Message(MessageAction::Follow {
            message: d2,
            user: u("1002"),
        }),
        ConversationCommand::Message(MessageAction::Unfollow {
            message: d2,
            user: u("1002"),
        }),
        ConversationCommand::Message(MessageAction::Star {
            message: d2,
            user: u("1001"),
        }),
        ConversationCommand::Message(MessageAction::Unstar {
            message: d2,
            user: u("1001"),
        }),
        ConversationCommand::Message(MessageAction::Star {
            message: d2,
            user: u("1001"),
        }),
        ConversationCommand::Message(MessageAction::Report {
            message: d2,
            by: u("1002"),
            reason: None,
        }),
        ConversationCommand::Message(MessageAction::Delete {
            message: d2,
            by: u("1003"),
        }),
        ConversationCommand::Leave { user: u("1004") },
    ] {
        b.tick(4);
        b.run(&conv_stream, &mut conv, command);
    }

    // The last call of the day: 1002 calls 1001, still ringing when the log ends.
    {
        let id = b.id::<CallId>();
        let stream = StreamId::call(id);
        let mut call = Call::default();
        let caller_leg = b.id::<LegId>();
        b.tick(30);
        b.run(
            &stream,
            &mut call,
            CallCommand::Offer {
                call: id,
                caller_leg,
                direction: Direction::Internal,
                caller: people[i1002].party.clone(),
                callee: people[i1001].party.clone(),
                dialled: parse("1001"),
                origin: CallOrigin::Device,
                caller_contact: Some(contacts[&i1002]),
                trunk: None,
                requested_by: None,
            },
        );
        b.run(
            &stream,
            &mut call,
            CallCommand::Ring {
                parent: caller_leg,
                callee: people[i1001].party.clone(),
                role: LegRole::Callee,
                contacts: vec![RingContact {
                    leg: b.id::<LegId>(),
                    contact: Some(contacts[&i1001]),
                }],
                ring_timeout: TimeDelta::seconds(30),
                voicemail: None,
            },
        );
        calls.push((stream, call));
    }

    OfficeDay {
        log: b.log,
        tenant,
        extensions: people.into_iter().map(|p| (p.stream, p.ext)).collect(),
        calls,
        queue: (q_stream, queue),
        conference: (conf_stream, room),
        boxes,
        directory: (dir_stream, dir),
    }
}

fn parse_pin(s: &str) -> Pin {
    Pin::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}
