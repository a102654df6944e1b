//! One realistic example of every event variant, built from fixed ids and times so that the
//! golden fixtures (`events/fixtures/golden/`) are byte-stable and benchmarks replay the same
//! data. The scene is the demo tenant `acme` on 2 March 2026: Alice (1001, reception, sales)
//! answers an outside call and transfers it to Bruno (1006, support), whom Carla (1011,
//! supervisor, management) listens to; the support queue, conference 3000, chat and voicemail
//! go about their day.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::ids::*;
use crate::log::GlobalPosition;

pub(super) fn all() -> Vec<Event> {
    let mut all: Vec<Event> = Vec::new();
    all.extend(directory().into_iter().map(Event::from));
    all.extend(extension().into_iter().map(Event::from));
    all.extend(call().into_iter().map(Event::from));
    all.extend(queue().into_iter().map(Event::from));
    all.extend(conference().into_iter().map(Event::from));
    all.extend(room().into_iter().map(Event::from));
    all.extend(conversation().into_iter().map(Event::from));
    all.extend(voicemail().into_iter().map(Event::from));
    all.extend(panel().into_iter().map(Event::from));
    all.extend(sms().into_iter().map(Event::from));
    all.extend(system().into_iter().map(Event::from));
    all
}

// Fixed identities. UUIDs share a prefix and differ in a kind and a serial number, which keeps
// them readable in the fixtures: `0195f0c2-6d1e-7a40-9b3c-000100000001` is kind 1, serial 1.

const UUID_BASE: u128 = 0x0195_f0c2_6d1e_7a40_9b3c_0000_0000_0000;

fn uuid(kind: u16, serial: u16) -> Uuid {
    Uuid::from_u128(UUID_BASE | (u128::from(kind) << 32) | u128::from(serial))
}

fn call_id(n: u16) -> CallId {
    CallId::from_uuid(uuid(1, n))
}
fn leg(n: u16) -> LegId {
    LegId::from_uuid(uuid(2, n))
}
fn contact(n: u16) -> DeviceContactId {
    DeviceContactId::from_uuid(uuid(3, n))
}
fn agent(n: u16) -> AgentId {
    AgentId::from_uuid(uuid(4, n))
}
fn message(n: u16) -> MessageId {
    MessageId::from_uuid(uuid(5, n))
}
fn voicemail_message(n: u16) -> VoicemailMessageId {
    VoicemailMessageId::from_uuid(uuid(6, n))
}
fn listen_session(n: u16) -> ListenSessionId {
    ListenSessionId::from_uuid(uuid(7, n))
}
fn panel_session(n: u16) -> PanelSessionId {
    PanelSessionId::from_uuid(uuid(8, n))
}
fn recording(n: u16) -> RecordingId {
    RecordingId::from_uuid(uuid(9, n))
}
fn sms_id(n: u16) -> SmsId {
    SmsId::from_uuid(uuid(10, n))
}
fn conversation_id(n: u16) -> ConversationId {
    ConversationId::from_uuid(uuid(11, n))
}
fn attachment_id(n: u16) -> AttachmentId {
    AttachmentId::from_uuid(uuid(12, n))
}
fn bridge(n: u16) -> BridgeId {
    BridgeId::from_uuid(uuid(13, n))
}
fn event_id(n: u16) -> EventId {
    EventId::from_uuid(uuid(14, n))
}

/// Parses an example id; the examples are constants, so a failure is a typo in this file.
fn id<T>(s: &str) -> T
where
    T: FromStr,
    T::Err: Display,
{
    s.parse()
        .unwrap_or_else(|e| panic!("example id {s:?} is invalid: {e}"))
}

/// 2 March 2026, `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, h, m, s)
        .single()
        .unwrap_or_else(|| panic!("example time {h}:{m}:{s} is invalid"))
}

fn alice() -> Party {
    Party::internal(id("1001"), id("1001"), id("sales"), "Alice Moreau")
}
fn bruno() -> Party {
    Party::internal(id("1006"), id("1006"), id("support"), "Bruno Keller")
}
fn carla() -> Party {
    Party::internal(id("1011"), id("1011"), id("management"), "Carla Diaz")
}
fn outside_caller() -> Party {
    Party::external(
        id("+14155550123"),
        Some("Harbor Freight Co".into()),
        id("telco-a"),
    )
}

fn attachment(n: u16, file_name: &str, content_type: &str, size_bytes: u64) -> Attachment {
    Attachment {
        attachment: attachment_id(n),
        file_name: file_name.into(),
        content_type: content_type.into(),
        size_bytes,
    }
}

fn directory() -> Vec<DirectoryEvent> {
    use DirectoryEvent as E;
    let panel_features: BTreeSet<FeatureFlag> = [
        FeatureFlag::CallPanel,
        FeatureFlag::ListenToCalls,
        FeatureFlag::SuperviseQueues,
        FeatureFlag::Softphone,
        FeatureFlag::Chat,
        FeatureFlag::Voicemail,
    ]
    .into();
    vec![
        E::ResellerCreated {
            reseller: id("northwind"),
            name: "Northwind Telecom".into(),
        },
        E::TenantCreated {
            tenant: id("acme"),
            reseller: Some(id("northwind")),
            name: "Acme Logistics".into(),
            sip_domain: "acme".into(),
        },
        E::TenantRenamed {
            tenant: id("acme"),
            name: "Acme Logistics Ltd".into(),
        },
        E::TenantSuspended {
            tenant: id("acme"),
            reason: Some("invoice 2026-02 unpaid".into()),
        },
        E::TenantReinstated { tenant: id("acme") },
        E::DepartmentCreated {
            department: id("sales"),
            name: "Sales".into(),
        },
        E::DepartmentRenamed {
            department: id("sales"),
            name: "Sales & Accounts".into(),
        },
        E::DepartmentDeleted {
            department: id("archive"),
        },
        E::ProfileCreated {
            profile: id("panel"),
            name: "Call panel".into(),
            features: panel_features.clone(),
        },
        E::ProfileFeaturesChanged {
            profile: id("panel"),
            features: panel_features
                .into_iter()
                .chain([FeatureFlag::RecordCalls])
                .collect(),
        },
        E::ProfileDeleted {
            profile: id("legacy"),
        },
        E::UserCreated {
            user: id("1001"),
            display_name: "Alice Moreau".into(),
            extension: id("1001"),
            department: id("sales"),
            profile: id("panel"),
            role: UserRole::User,
            email: Some("alice.moreau@acme.example".into()),
        },
        E::UserRenamed {
            user: id("1001"),
            display_name: "Alice Moreau-Lang".into(),
        },
        E::UserEmailChanged {
            user: id("1001"),
            email: Some("alice@acme.example".into()),
        },
        E::UserDepartmentChanged {
            user: id("1005"),
            department: id("support"),
            previous: id("sales"),
        },
        E::UserProfileChanged {
            user: id("1006"),
            profile: id("panel"),
            previous: id("basic"),
        },
        E::UserExtensionChanged {
            user: id("1012"),
            extension: id("1013"),
            previous: id("1012"),
        },
        E::UserRoleChanged {
            user: id("admin"),
            role: UserRole::ClientAdmin,
            previous: UserRole::User,
        },
        E::UserDeleted { user: id("1004") },
        E::UserCredentialChanged {
            user: id("1001"),
            credential: Credential::SipSecret,
            by: Some(id("admin")),
        },
        E::UserSettingsChanged {
            user: id("1001"),
            settings: UserSettings {
                on_login: Some(id("available")),
                on_logout: Some(id("unavailable")),
                presence_rules: vec![
                    PresenceRule {
                        state_type: PresenceStateType::Dnd,
                        dnd: Some(true),
                        follow_me: None,
                    },
                    PresenceRule {
                        state_type: PresenceStateType::ExtendedAway,
                        dnd: Some(false),
                        follow_me: Some(true),
                    },
                ],
                language: Some("en-GB".into()),
                timezone: Some("Europe/London".into()),
            },
        },
        E::SmsNumberAssigned {
            user: id("1001"),
            number: id("+14155550100"),
        },
        E::SmsNumberUnassigned {
            user: id("1002"),
            number: id("+14155550102"),
        },
        E::CallPanelGranted {
            user: id("1001"),
            department: id("support"),
            by: Some(id("admin")),
        },
        E::CallPanelRevoked {
            user: id("1001"),
            department: id("management"),
            by: Some(id("admin")),
        },
        E::PresenceStateAdded {
            state: id("lunch"),
            label: "Out to lunch".into(),
            state_type: PresenceStateType::Away,
            position: 2,
        },
        E::PresenceStateUpdated {
            state: id("brb"),
            label: "Be right back".into(),
            state_type: PresenceStateType::Away,
        },
        E::PresenceStateRemoved {
            state: id("holiday"),
        },
        E::PresenceStatesReordered {
            order: vec![
                id("available"),
                id("brb"),
                id("lunch"),
                id("busy"),
                id("away"),
                id("xa"),
                id("chat"),
                id("unavailable"),
            ],
        },
        E::TrunkConfigured {
            trunk: id("telco-a"),
            name: "Telco A (primary)".into(),
            host: "sip.telco-a.example:5061".into(),
            transport: Transport::Tls,
            numbers: vec![id("+14155550100"), id("+14155550101")],
            max_channels: Some(30),
        },
        E::TrunkRemoved {
            trunk: id("telco-old"),
        },
        E::InboundRouteSet {
            number: id("+14155550101"),
            destination: id("2000"),
        },
        E::InboundRouteRemoved {
            number: id("+14155550199"),
        },
        E::DirectoryReloaded {
            source: "/etc/ledgerline/directory.toml".into(),
            digest: "9f2c4e1b7a0d3c58e6f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7".into(),
            changes: 3,
        },
    ]
}

fn extension() -> Vec<ExtensionEvent> {
    use ExtensionEvent as E;
    vec![
        E::ExtensionProvisioned {
            extension: id("1001"),
            user: id("1001"),
            display_name: "Alice Moreau".into(),
            department: id("sales"),
        },
        E::ExtensionRetired {
            extension: id("1004"),
        },
        E::DeviceRegistered {
            extension: id("1001"),
            contact: contact(1),
            contact_uri: "sip:1001@192.0.2.41:5060;transport=udp".into(),
            transport: Transport::Udp,
            source: "192.0.2.41:5060".into(),
            user_agent: Some("Yealink SIP-T54W 96.86.0.70".into()),
            expires_secs: 300,
            expires_at: at(8, 5, 12),
        },
        E::DeviceRegistrationRefreshed {
            extension: id("1001"),
            contact: contact(1),
            expires_secs: 300,
            expires_at: at(8, 9, 40),
        },
        E::DeviceUnregistered {
            extension: id("1001"),
            contact: contact(2),
            reason: UnregisterReason::Requested,
        },
        E::DeviceRegistrationExpired {
            extension: id("1007"),
            contact: contact(3),
        },
        E::LineStateChanged {
            extension: id("1006"),
            state: LineState::OnCall,
            device_state: DeviceState::InUse,
            calls: vec![call_id(1)],
        },
        E::PresenceSet {
            extension: id("1001"),
            user: id("1001"),
            state: id("lunch"),
            state_type: PresenceStateType::Away,
            message: Some("back at 13:30".into()),
            source: PresenceSource::User,
            by: None,
        },
        E::DoNotDisturbChanged {
            extension: id("1011"),
            enabled: true,
            source: SettingSource::PresenceRule,
            by: None,
        },
        E::CallForwardChanged {
            extension: id("1006"),
            kind: ForwardKind::NoAnswer,
            destination: Some(id("+14155550177")),
            ring_ms: Some(20_000),
            source: SettingSource::User,
            by: None,
        },
        E::FollowMeChanged {
            extension: id("1011"),
            enabled: true,
            numbers: vec![id("+14155550188"), id("1012")],
            confirm: true,
            caller_id_prefix: Some("FM:".into()),
            ring_first_ms: 15_000,
            ring_all_ms: 30_000,
            source: SettingSource::User,
            by: None,
        },
        E::CallWaitingChanged {
            extension: id("1006"),
            enabled: false,
            source: SettingSource::Admin,
            by: Some(id("admin")),
        },
        E::ExtensionCallObserved {
            extension: id("1001"),
            call: call_id(1),
            state: ExtensionCallState::Answered,
        },
    ]
}

fn call() -> Vec<CallEvent> {
    use CallEvent as E;
    let call = call_id(1);
    vec![
        E::CallCreated {
            call,
            direction: Direction::Inbound,
            caller: outside_caller(),
            callee: alice(),
            dialled: id("+14155550100"),
            origin: CallOrigin::Trunk,
            trunk: Some(id("telco-a")),
            requested_by: None,
        },
        E::LegCreated {
            call,
            leg: leg(2),
            role: LegRole::Callee,
            party: alice(),
            contact: Some(contact(1)),
            parent: Some(leg(1)),
            ring_timeout_ms: Some(30_000),
            voicemail: Some(id("1001")),
        },
        E::LegRinging { call, leg: leg(2) },
        E::LegEarlyMedia { call, leg: leg(1) },
        E::CallAnswered {
            call,
            leg: leg(2),
            contact: Some(contact(1)),
        },
        E::CallHeld { call, leg: leg(2) },
        E::CallResumed { call, leg: leg(2) },
        E::DtmfReceived {
            call,
            leg: leg(1),
            digit: '5',
            duration_ms: 120,
        },
        E::LegPartyUpdated {
            call,
            leg: leg(1),
            party: bruno(),
        },
        E::BridgeEntered {
            call,
            bridge: bridge(1),
            leg: leg(2),
        },
        E::BridgeLeft {
            call,
            bridge: bridge(1),
            leg: leg(2),
        },
        E::BridgesMerged {
            call,
            from: bridge(2),
            into: bridge(1),
            from_call: Some(call_id(2)),
        },
        E::BlindTransferred {
            call,
            transferer_leg: leg(2),
            transferee_leg: leg(1),
            target: id("2000"),
            method: TransferMethod::SipRefer,
            original_caller: outside_caller(),
        },
        E::AttendedTransferred {
            call,
            transferer_leg: leg(2),
            transferee_leg: leg(1),
            consult_call: call_id(2),
            target_leg: leg(4),
            target: bruno(),
            method: TransferMethod::Panel,
            original_caller: outside_caller(),
        },
        E::CallParked {
            call,
            leg: leg(1),
            slot: id("701"),
            timeout_at: at(9, 44, 30),
            parked_by: Some(leg(2)),
        },
        E::CallUnparked {
            call,
            leg: leg(1),
            slot: id("701"),
            retrieved_by_leg: leg(5),
            retrieved_by: bruno(),
        },
        E::ParkTimedOut {
            call,
            leg: leg(1),
            slot: id("702"),
            return_to: Some(id("1001")),
        },
        E::CallPickedUp {
            call,
            ringing_leg: leg(3),
            picker_leg: leg(6),
            picked_by: Party::internal(id("1007"), id("1007"), id("support"), "Dana Okafor"),
            kind: PickupKind::Group,
        },
        E::CallForwarded {
            call,
            leg: leg(3),
            from: id("1006"),
            to: id("+14155550177"),
            reason: ForwardReason::NoAnswer,
        },
        E::CallSentToVoicemail {
            call,
            leg: leg(1),
            mailbox: id("1006"),
            reason: VoicemailReason::Requested,
            by: Some(id("1001")),
        },
        E::LocalOptimized {
            call,
            removed_legs: vec![leg(7), leg(8)],
            joined_legs: vec![leg(1), leg(4)],
        },
        E::CallRecordingStarted {
            call,
            recording: recording(1),
            leg: None,
            trigger: RecordingTrigger::OnDemand,
            by: Some(id("1006")),
        },
        E::CallRecordingMuted {
            call,
            recording: recording(1),
            by: Some(id("1006")),
        },
        E::CallRecordingUnmuted {
            call,
            recording: recording(1),
            by: Some(id("1006")),
        },
        E::CallRecordingStopped {
            call,
            recording: recording(1),
            duration_ms: 184_320,
            size_bytes: 2_949_164,
            by: None,
        },
        E::ListenStarted {
            call,
            session: listen_session(1),
            supervisor: id("1011"),
            supervisor_leg: leg(9),
            target_leg: leg(4),
            target: bruno(),
            mode: ListenMode::Listen,
            via: ListenVia::Browser,
        },
        E::ListenModeChanged {
            call,
            session: listen_session(1),
            mode: ListenMode::Whisper,
            previous: ListenMode::Listen,
        },
        E::ListenStopped {
            call,
            session: listen_session(1),
            reason: ListenEndReason::SupervisorHungUp,
            duration_ms: 95_400,
        },
        E::LegEnded {
            call,
            leg: leg(1),
            cause: HangupCause::NormalClearing,
            disposition: Disposition::Answered,
            ended_by: HangupSide::Party,
            sip_status: None,
            duration_ms: 412_880,
            billable_ms: 398_260,
        },
        E::CallEnded {
            call,
            cause: HangupCause::NormalClearing,
            disposition: Disposition::Answered,
            duration_ms: 412_960,
            talk_ms: 371_500,
        },
    ]
}

fn queue() -> Vec<QueueEvent> {
    use QueueEvent as E;
    let queue: QueueId = id("support");
    vec![
        E::QueueConfigured {
            queue: queue.clone(),
            name: "Support".into(),
            extension: id("2000"),
            strategy: QueueStrategy::RingAll,
            ring_timeout_ms: 15_000,
            max_wait_ms: Some(600_000),
            max_callers: Some(20),
            wrap_up_ms: 10_000,
            join_empty: false,
            leave_when_empty: true,
            exit_key: Some('0'),
            fallback: Some(id("1006")),
            music_on_hold: Some("default".into()),
        },
        E::QueueDeleted {
            queue: id("billing"),
        },
        E::QueueCallerJoined {
            queue: queue.clone(),
            call: call_id(1),
            leg: leg(1),
            caller: outside_caller(),
            position: 3,
        },
        E::QueueCallerPositionChanged {
            queue: queue.clone(),
            call: call_id(1),
            position: 2,
            previous: 3,
        },
        E::QueueCallerRejected {
            queue: queue.clone(),
            call: call_id(3),
            caller: Party::external(id("+14155550144"), None, id("telco-a")),
            reason: QueueRejectReason::Full,
        },
        E::QueueCallerLeft {
            queue: queue.clone(),
            call: call_id(1),
            reason: QueueLeaveReason::Answered,
            key: None,
            position: 0,
            original_position: 3,
            hold_ms: 74_200,
            ring_ms: 6_100,
            talk_ms: 312_900,
            agent: Some(agent(6)),
        },
        E::AgentLoggedIn {
            queue: queue.clone(),
            agent: agent(6),
            user: id("1006"),
            extension: id("1006"),
            department: Some(id("support")),
            penalty: 0,
            membership: Membership::Static,
        },
        E::AgentLoggedOut {
            queue: queue.clone(),
            agent: agent(7),
            reason: AgentLogoutReason::Requested,
            session_ms: 28_800_000,
        },
        E::AgentPaused {
            queue: queue.clone(),
            agent: agent(6),
            reason: Some("lunch".into()),
            by: Some(id("1011")),
        },
        E::AgentUnpaused {
            queue: queue.clone(),
            agent: agent(6),
            by: None,
        },
        E::AllAgentsPaused {
            queue: queue.clone(),
            agents: vec![agent(6), agent(7), agent(8)],
            reason: Some("team meeting".into()),
            by: Some(id("1011")),
        },
        E::AllAgentsUnpaused {
            queue: queue.clone(),
            agents: vec![agent(6), agent(7), agent(8)],
            by: Some(id("1011")),
        },
        E::AgentPenaltyChanged {
            queue: queue.clone(),
            agent: agent(8),
            penalty: 2,
            previous: 0,
            by: Some(id("1011")),
        },
        E::AgentReserved {
            queue: queue.clone(),
            agent: agent(6),
            call: call_id(1),
        },
        E::AgentOffered {
            queue: queue.clone(),
            agent: agent(6),
            call: call_id(1),
            leg: leg(4),
        },
        E::AgentRingNoAnswer {
            queue: queue.clone(),
            agent: agent(7),
            call: call_id(1),
            ring_ms: 15_000,
        },
        E::AgentRingCancelled {
            queue: queue.clone(),
            agent: agent(8),
            call: call_id(1),
            ring_ms: 6_100,
        },
        E::AgentConnected {
            queue: queue.clone(),
            agent: agent(6),
            call: call_id(1),
            leg: leg(4),
            hold_ms: 74_200,
            ring_ms: 6_100,
        },
        E::AgentCompleted {
            queue: queue.clone(),
            agent: agent(6),
            call: call_id(1),
            hold_ms: 74_200,
            talk_ms: 312_900,
            ended_by: CompletedBy::Caller,
        },
        E::AgentWrapUpStarted {
            queue: queue.clone(),
            agent: agent(6),
            until: at(9, 52, 10),
        },
        E::AgentLineChanged {
            queue: queue.clone(),
            agent: agent(6),
            line: LineState::Idle,
        },
        E::AgentWrapUpEnded {
            queue,
            agent: agent(6),
            early: false,
        },
    ]
}

fn conference() -> Vec<ConferenceEvent> {
    use ConferenceEvent as E;
    let conference: ConferenceId = id("weekly");
    vec![
        E::ConferenceConfigured {
            conference: conference.clone(),
            name: "Weekly sync".into(),
            extension: id("3000"),
            pin: Some("1234".into()),
            max_members: 10,
            owner: None,
            record: false,
        },
        E::ConferenceDeleted {
            conference: id("old-room"),
        },
        E::ConferenceStarted {
            conference: conference.clone(),
        },
        E::ConferenceMemberJoined {
            conference: conference.clone(),
            call: call_id(5),
            leg: leg(21),
            party: carla(),
            moderator: true,
            muted: false,
        },
        E::ConferenceMemberLeft {
            conference: conference.clone(),
            leg: leg(22),
            reason: MemberLeftReason::HungUp,
            duration_ms: 1_260_000,
        },
        E::ConferenceMemberMuted {
            conference: conference.clone(),
            leg: leg(22),
            by: Some(id("1011")),
        },
        E::ConferenceMemberUnmuted {
            conference: conference.clone(),
            leg: leg(22),
            by: None,
        },
        E::ConferenceMemberKicked {
            conference: conference.clone(),
            leg: leg(23),
            by: id("1011"),
        },
        E::ConferenceMemberTalkingStarted {
            conference: conference.clone(),
            leg: leg(21),
        },
        E::ConferenceMemberTalkingStopped {
            conference: conference.clone(),
            leg: leg(21),
            talked_ms: 8_450,
        },
        E::ConferenceLocked {
            conference: conference.clone(),
            by: Some(id("1011")),
        },
        E::ConferenceUnlocked {
            conference: conference.clone(),
            by: Some(id("1011")),
        },
        E::ConferenceRecordingStarted {
            conference: conference.clone(),
            recording: recording(5),
            by: Some(id("1011")),
        },
        E::ConferenceRecordingStopped {
            conference: conference.clone(),
            recording: recording(5),
            duration_ms: 1_800_000,
            size_bytes: 28_800_044,
            by: None,
        },
        E::ConferenceEnded {
            conference: conference.clone(),
            duration_ms: 2_712_000,
            peak_members: 6,
        },
        E::ConferenceInviteSent {
            conference,
            invitee: bruno(),
            by: id("1011"),
            call: call_id(6),
        },
    ]
}

fn room() -> Vec<RoomEvent> {
    use RoomEvent as E;
    let room: RoomId = id("support-team");
    vec![
        E::RoomCreated {
            room: room.clone(),
            name: "Support-Team".into(),
            created_by: id("1011"),
            members: vec![id("1006"), id("1007"), id("1008")],
            visibility: RoomVisibility::Private,
        },
        E::RoomRenamed {
            room: room.clone(),
            name: "Support-Team-EMEA".into(),
            previous: "Support-Team".into(),
            by: id("1011"),
        },
        E::RoomArchived {
            room: room.clone(),
            by: id("1011"),
        },
        E::RoomRestored {
            room: room.clone(),
            by: id("1011"),
        },
        E::RoomDeleted {
            room: id("xmas-party-2025"),
            by: id("1011"),
        },
        E::RoomMemberJoined {
            room: room.clone(),
            user: id("1009"),
        },
        E::RoomMemberInvited {
            room: room.clone(),
            user: id("1001"),
            by: id("1006"),
        },
        E::RoomMemberLeft {
            room: room.clone(),
            user: id("1008"),
        },
        E::RoomMemberKicked {
            room: room.clone(),
            user: id("1010"),
            by: id("1011"),
        },
        E::RoomClosed {
            room: room.clone(),
            user: id("1007"),
        },
        E::RoomReopened {
            room: room.clone(),
            user: id("1007"),
        },
        E::RoomRoleGranted {
            room: room.clone(),
            user: id("1006"),
            role: RoomRole::Owner,
            by: id("1011"),
        },
        E::RoomRoleRevoked {
            room: room.clone(),
            user: id("1007"),
            role: RoomRole::Moderator,
            by: id("1011"),
        },
        E::RoomMessagePosted {
            room: room.clone(),
            message: message(2),
            author: id("1006"),
            text: "Invoice attached \u{1f4ce} can someone check line 4? \u{1f64f}".into(),
            attachments: vec![attachment(
                1,
                "invoice-2026-0231.pdf",
                "application/pdf",
                84_211,
            )],
            quote: Some(message(1)),
            thread: Some(message(1)),
        },
        E::RoomMessageEdited {
            room: room.clone(),
            message: message(2),
            text: "Invoice attached \u{1f4ce} can someone check line 5? \u{1f64f}".into(),
            by: id("1006"),
        },
        E::RoomMessageDeleted {
            room: room.clone(),
            message: message(3),
            by: id("1011"),
        },
        E::RoomReactionAdded {
            room: room.clone(),
            message: message(2),
            user: id("1007"),
            emoji: "\u{1f44d}".into(),
        },
        E::RoomReactionRemoved {
            room: room.clone(),
            message: message(2),
            user: id("1007"),
            emoji: "\u{1f44d}".into(),
        },
        E::RoomMessageFollowed {
            room: room.clone(),
            message: message(1),
            user: id("1006"),
        },
        E::RoomMessageUnfollowed {
            room: room.clone(),
            message: message(1),
            user: id("1006"),
        },
        E::RoomMessageStarred {
            room: room.clone(),
            message: message(2),
            user: id("1011"),
        },
        E::RoomMessageUnstarred {
            room: room.clone(),
            message: message(2),
            user: id("1011"),
        },
        E::RoomMessageReported {
            room,
            message: message(4),
            by: id("1009"),
            reason: Some("customer data posted in the open".into()),
        },
    ]
}

fn conversation() -> Vec<ConversationEvent> {
    use ConversationEvent as E;
    let conversation = conversation_id(1);
    vec![
        E::ConversationStarted {
            conversation,
            kind: ConversationKind::Direct,
            started_by: id("1001"),
            members: vec![id("1001"), id("1006")],
        },
        E::ConversationMemberAdded {
            conversation: conversation_id(2),
            user: id("1007"),
            by: id("1006"),
        },
        E::ConversationMemberLeft {
            conversation: conversation_id(2),
            user: id("1008"),
        },
        E::ConversationHidden {
            conversation,
            user: id("1001"),
        },
        E::ConversationShown {
            conversation,
            user: id("1001"),
        },
        E::DirectMessagePosted {
            conversation,
            message: message(11),
            author: id("1001"),
            text: "Harbor Freight on line 1 for you \u{260e}\u{fe0f}".into(),
            attachments: vec![attachment(2, "screenshot.png", "image/png", 182_044)],
            quote: None,
            thread: None,
        },
        E::DirectMessageEdited {
            conversation,
            message: message(11),
            text: "Harbor Freight on line 2 for you \u{260e}\u{fe0f}".into(),
            by: id("1001"),
        },
        E::DirectMessageDeleted {
            conversation,
            message: message(12),
            by: id("1006"),
        },
        E::DirectReactionAdded {
            conversation,
            message: message(11),
            user: id("1006"),
            emoji: "\u{1f44c}".into(),
        },
        E::DirectReactionRemoved {
            conversation,
            message: message(11),
            user: id("1006"),
            emoji: "\u{1f44c}".into(),
        },
        E::DirectMessageFollowed {
            conversation,
            message: message(11),
            user: id("1006"),
        },
        E::DirectMessageUnfollowed {
            conversation,
            message: message(11),
            user: id("1006"),
        },
        E::DirectMessageStarred {
            conversation,
            message: message(11),
            user: id("1006"),
        },
        E::DirectMessageUnstarred {
            conversation,
            message: message(11),
            user: id("1006"),
        },
        E::DirectMessageReported {
            conversation,
            message: message(13),
            by: id("1006"),
            reason: None,
        },
    ]
}

fn voicemail() -> Vec<VoicemailEvent> {
    use VoicemailEvent as E;
    let mailbox: ExtensionNumber = id("1006");
    vec![
        E::VoicemailBoxCreated {
            mailbox: mailbox.clone(),
            owner: id("1006"),
            department: Some(id("support")),
        },
        E::VoicemailBoxRemoved {
            mailbox: id("1004"),
        },
        E::VoicemailDeposited {
            mailbox: mailbox.clone(),
            message: voicemail_message(1),
            caller: outside_caller(),
            call: Some(call_id(3)),
            reason: DepositReason::Busy,
            forwarded_from: None,
            duration_ms: 23_480,
            recording: recording(11),
            folder: VoicemailFolder::Inbox,
        },
        E::VoicemailRead {
            mailbox: mailbox.clone(),
            message: voicemail_message(1),
            by: id("1006"),
        },
        E::VoicemailMarkedUnread {
            mailbox: mailbox.clone(),
            message: voicemail_message(1),
            by: id("1006"),
        },
        E::VoicemailMoved {
            mailbox: mailbox.clone(),
            message: voicemail_message(1),
            from: VoicemailFolder::Inbox,
            to: VoicemailFolder::Old,
            by: Some(id("1006")),
        },
        E::VoicemailDeleted {
            mailbox: mailbox.clone(),
            message: voicemail_message(2),
            reason: VoicemailDeleteReason::AfterEmail,
            by: None,
        },
        E::VoicemailForwarded {
            mailbox: mailbox.clone(),
            message: voicemail_message(1),
            to_mailbox: id("1007"),
            copy: voicemail_message(3),
            kind: VoicemailForwardKind::Transfer,
            by: id("1006"),
        },
        E::VoicemailEmailed {
            mailbox: mailbox.clone(),
            message: voicemail_message(2),
            to: "bruno.keller@acme.example".into(),
            pager: false,
            attached: true,
        },
        E::VoicemailGreetingChanged {
            mailbox: mailbox.clone(),
            greeting: GreetingKind::Unavailable,
            source: GreetingSource::Recorded,
            recording: recording(12),
            duration_ms: 7_920,
            by: id("1006"),
        },
        E::VoicemailGreetingRemoved {
            mailbox: mailbox.clone(),
            greeting: GreetingKind::Busy,
            by: id("1006"),
        },
        E::VoicemailSettingsChanged {
            mailbox: mailbox.clone(),
            email: Some("bruno.keller@acme.example".into()),
            pager_email: Some("+14155550177@sms.telco-a.example".into()),
            attach: true,
            play_envelope: true,
            play_caller_id: true,
            delete_after_email: false,
            by: id("1006"),
        },
        E::VoicemailPinChanged {
            mailbox: mailbox.clone(),
            by: id("1006"),
        },
        E::MessageWaitingChanged {
            mailbox,
            new_messages: 2,
            old_messages: 5,
        },
    ]
}

fn panel() -> Vec<PanelEvent> {
    use PanelEvent as E;
    let user: UserId = id("1001");
    vec![
        E::PanelCardPinned {
            user: user.clone(),
            card: PanelCard::User(id("1006")),
            index: 0,
        },
        E::PanelCardUnpinned {
            user: user.clone(),
            card: PanelCard::Queue(id("support")),
        },
        E::PanelCardMoved {
            user: user.clone(),
            card: PanelCard::User(id("1007")),
            from: 3,
            to: 1,
        },
        E::PanelSessionOpened {
            user: user.clone(),
            session: panel_session(1),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/134.0".into()),
            remote_addr: Some("198.51.100.23:51544".into()),
        },
        E::PanelSessionResynced {
            user: user.clone(),
            session: panel_session(1),
            from: Some(GlobalPosition(184_220)),
            to: GlobalPosition(184_391),
            mode: ResyncMode::Deltas,
        },
        E::PanelSessionClosed {
            user,
            session: panel_session(1),
            reason: PanelCloseReason::BrowserClosed,
            last_position: GlobalPosition(190_004),
            duration_ms: 30_617_000,
        },
    ]
}

fn sms() -> Vec<SmsEvent> {
    use SmsEvent as E;
    vec![
        E::SmsReceived {
            sms: sms_id(1),
            from: id("+14155550123"),
            to: id("+14155550100"),
            user: Some(id("1001")),
            text: "Running 10 min late for the 2pm pickup \u{1f69a}".into(),
            media: vec![],
            provider: "telnyx".into(),
            provider_message_id: "40385f64-5717-4562-b3fc-2c963f66afa6".into(),
        },
        E::SmsSent {
            sms: sms_id(2),
            from: id("+14155550100"),
            to: id("+14155550123"),
            by: id("1001"),
            text: "No problem, dock 3 is reserved for you.".into(),
            media: vec![attachment(3, "dock-map.jpg", "image/jpeg", 243_880)],
            provider: "telnyx".into(),
            provider_message_id: Some("40385f64-5717-4562-b3fc-2c963f66b012".into()),
        },
        E::SmsDeliveryStatusChanged {
            sms: sms_id(2),
            status: DeliveryStatus::Delivered,
            provider_status: Some("delivered".into()),
        },
        E::SmsProviderFailed {
            sms: sms_id(3),
            provider: "telnyx".into(),
            code: Some("40300".into()),
            message: "Blocked due to STOP message".into(),
            retrying: false,
        },
    ]
}

fn system() -> Vec<SystemEvent> {
    use SystemEvent as E;
    vec![
        E::EngineStarted {
            node: "pbx-1".into(),
            version: "0.1.0".into(),
            store: "sqlite:data/ledgerline.db".into(),
        },
        E::EngineStopped {
            node: "pbx-1".into(),
            reason: "SIGTERM".into(),
        },
        E::SystemConfigReloaded {
            node: "pbx-1".into(),
            source: "/etc/ledgerline/ledgerline.toml".into(),
            digest: "2b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfe".into(),
            changed: vec!["sip".into(), "recording".into()],
        },
        E::InvariantViolationDetected {
            invariant: "agent-in-one-call".into(),
            stream: StreamId::queue(&id("acme"), &id("support")),
            detail: "agent 1006 is connected to calls 0195f0c2-…0001 and 0195f0c2-…0002".into(),
            at_position: GlobalPosition(200_118),
        },
        E::InvariantViolationCompensated {
            invariant: "agent-in-one-call".into(),
            stream: StreamId::queue(&id("acme"), &id("support")),
            violation: event_id(1),
            action: "completed the agent's stale call (its call stream had ended)".into(),
            compensating_events: vec![event_id(2), event_id(3)],
        },
    ]
}
