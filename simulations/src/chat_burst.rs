//! The chat burst: channel rooms (public and private) and direct conversations (two people or a
//! small group); users post in bursts (plain text in any script, emoji, thread replies, quotes,
//! files), edit and delete their own messages and, as owners or moderators, others' ones (and
//! others try and are refused), react, follow, star and report; people join, are added, leave
//! and are kicked; owners rename rooms (spaces become '-'), archive and restore them, appoint
//! moderators, hand ownership over and now and then delete a room, which a new one replaces.
//! After the load stops, a liveness phase restores every archived room.
//!
//! This module plays the web layer: it sends the room and conversation commands for simulated
//! users, and keeps its own account of what each aggregate's events say (members, reactions,
//! thread replies, deletions). Invariants checked after every step: only members post or act; a
//! write lands only in an active room; a refused edit or delete (or any refused action) changed
//! nothing and appended nothing, and nobody but the author (or, in a room, an owner or a
//! moderator) edits or deletes a message, while they are never refused for lack of rights; the
//! reactions, thread-reply counts, deletions and members each aggregate shows are exactly what
//! its events say; a room always has an owner and a normalised name; a deleted room keeps
//! nothing; a direct conversation has its two people. After draining: no room is left archived,
//! the log's counts of posts, edits, deletes and reactions match the scenario's counters, and
//! every room and conversation rebuilt from its stream equals the live one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use engine::room::{
    ChannelRoom, Conversation, ConversationCommand, ConversationRejection, MAX_GROUP_MEMBERS,
    Message, MessageAction, MessageDraft, MessageRejection, RoomCommand, RoomName, RoomRejection,
    RoomStatus,
};
use events::GlobalPosition;
use events::ids::{AttachmentId, ConversationId, MessageId, RoomId, StreamId, TenantId, UserId};
use events::model::{
    Attachment, ConversationEvent, ConversationKind, Event, RoomEvent, RoomRole, RoomVisibility,
};
use futures_util::FutureExt;
use rand::Rng;

use crate::world::{self, Agenda, Instance, Limits, Report, Scenario, World};

/// Parameters of a chat burst.
#[derive(Debug, Clone)]
pub struct ChatBurst {
    pub users: u32,
    pub rooms: u32,
    pub minutes: u32,
    /// Bursts of messages per hour over everything (default: 6 per user).
    pub bursts_per_hour: Option<u32>,
    /// Other actions (edits, reactions, membership, moderation…) per hour (default: 15 per
    /// user).
    pub actions_per_hour: Option<u32>,
}

impl Default for ChatBurst {
    fn default() -> Self {
        Self {
            users: 40,
            rooms: 6,
            minutes: 60,
            bursts_per_hour: None,
            actions_per_hour: None,
        }
    }
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Room(usize),
    Conv(usize),
}

#[derive(Debug, Clone)]
enum Happening {
    /// A burst of messages starts somewhere.
    Burst,
    /// The next message of a burst.
    Post {
        target: Target,
        left: u32,
    },
    Action,
    /// An owner restores a room they archived.
    Restore {
        room: usize,
    },
}

/// Why something was refused, as far as the invariants care.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    NotMember,
    Archived,
    Deleted,
    NotAuthor,
    Message(MessageRejection),
    Other(String),
}

impl From<RoomRejection> for Why {
    fn from(r: RoomRejection) -> Self {
        match r {
            RoomRejection::NotMember(_) => Self::NotMember,
            RoomRejection::Archived => Self::Archived,
            RoomRejection::Deleted => Self::Deleted,
            RoomRejection::Message(MessageRejection::NotAuthor { .. }) => Self::NotAuthor,
            RoomRejection::Message(m) => Self::Message(m),
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<ConversationRejection> for Why {
    fn from(r: ConversationRejection) -> Self {
        match r {
            ConversationRejection::NotMember(_) => Self::NotMember,
            ConversationRejection::Message(MessageRejection::NotAuthor { .. }) => Self::NotAuthor,
            ConversationRejection::Message(m) => Self::Message(m),
            other => Self::Other(other.to_string()),
        }
    }
}

/// What a room's or conversation's events say, folded by the scenario itself.
#[derive(Debug, Clone, Default)]
struct Shadow {
    /// Every message posted, in order.
    order: Vec<MessageId>,
    /// Thread root → replies posted in it.
    replies: BTreeMap<MessageId, u32>,
    deleted: BTreeSet<MessageId>,
    reactions: BTreeMap<MessageId, BTreeMap<String, BTreeSet<UserId>>>,
    members: BTreeSet<UserId>,
    /// The room was deleted.
    gone: bool,
}

impl Shadow {
    fn posted(&mut self, message: MessageId, thread: Option<MessageId>) {
        self.order.push(message);
        if let Some(root) = thread {
            *self.replies.entry(root).or_default() += 1;
        }
    }

    fn deleted(&mut self, message: MessageId) {
        self.deleted.insert(message);
        self.reactions.remove(&message);
    }

    fn reacted(&mut self, message: MessageId, user: &UserId, emoji: &str, on: bool) {
        let emojis = self.reactions.entry(message).or_default();
        if on {
            emojis
                .entry(emoji.to_owned())
                .or_default()
                .insert(user.clone());
        } else if let Some(users) = emojis.get_mut(emoji) {
            users.remove(user);
            if users.is_empty() {
                emojis.remove(emoji);
            }
        }
        if emojis.is_empty() {
            self.reactions.remove(&message);
        }
    }

    fn fold_room(&mut self, events: &[RoomEvent]) {
        use RoomEvent as E;
        for e in events {
            match e {
                E::RoomCreated {
                    created_by,
                    members,
                    ..
                } => {
                    self.members.extend(members.iter().cloned());
                    self.members.insert(created_by.clone());
                }
                E::RoomDeleted { .. } => {
                    self.gone = true;
                    self.members.clear();
                }
                E::RoomMemberJoined { user, .. } | E::RoomMemberInvited { user, .. } => {
                    self.members.insert(user.clone());
                }
                E::RoomMemberLeft { user, .. } | E::RoomMemberKicked { user, .. } => {
                    self.members.remove(user);
                }
                E::RoomMessagePosted {
                    message, thread, ..
                } => self.posted(*message, *thread),
                E::RoomMessageDeleted { message, .. } => self.deleted(*message),
                E::RoomReactionAdded {
                    message,
                    user,
                    emoji,
                    ..
                } => self.reacted(*message, user, emoji, true),
                E::RoomReactionRemoved {
                    message,
                    user,
                    emoji,
                    ..
                } => self.reacted(*message, user, emoji, false),
                _ => {}
            }
        }
    }

    fn fold_conversation(&mut self, events: &[ConversationEvent]) {
        use ConversationEvent as E;
        for e in events {
            match e {
                E::ConversationStarted { members, .. } => {
                    self.members.extend(members.iter().cloned());
                }
                E::ConversationMemberAdded { user, .. } => {
                    self.members.insert(user.clone());
                }
                E::ConversationMemberLeft { user, .. } => {
                    self.members.remove(user);
                }
                E::DirectMessagePosted {
                    message, thread, ..
                } => self.posted(*message, *thread),
                E::DirectMessageDeleted { message, .. } => self.deleted(*message),
                E::DirectReactionAdded {
                    message,
                    user,
                    emoji,
                    ..
                } => self.reacted(*message, user, emoji, true),
                E::DirectReactionRemoved {
                    message,
                    user,
                    emoji,
                    ..
                } => self.reacted(*message, user, emoji, false),
                _ => {}
            }
        }
    }
}

#[derive(Debug)]
struct ChatRoom {
    id: RoomId,
    stream: StreamId,
    instance: Instance<ChannelRoom>,
    shadow: Shadow,
    /// The name as the scenario normalised what it asked for.
    expected_name: String,
}

#[derive(Debug)]
struct ChatConv {
    id: ConversationId,
    stream: StreamId,
    instance: Instance<Conversation>,
    shadow: Shadow,
}

struct Sim {
    world: World,
    agenda: Agenda<Happening>,
    tenant: TenantId,
    users: Vec<UserId>,
    rooms: Vec<ChatRoom>,
    convs: Vec<ChatConv>,
    /// Direct conversation of each pair (lower index first).
    direct: BTreeMap<(usize, usize), usize>,
    /// Aggregates a command went to since the last check.
    touched: BTreeSet<Target>,
    counters: BTreeMap<&'static str, u64>,
    /// Bursts started per second while the load is on.
    burst_rate: f64,
    /// Other actions per second while the load is on.
    action_rate: f64,
}

const PHRASES: &[&str] = &[
    "Good morning 👋",
    "Can someone look at ticket 4711?",
    "¿Alguien tiene el informe de ventas?",
    "Deploy is green ✅",
    "lunch?",
    "Merci beaucoup 🙏🏽",
    "会議は3時からです",
    "brb",
    "Has anyone seen the Q3 numbers?",
    "Добрый день, коллеги",
    "The customer called back, all sorted 🎉",
    "مرحبا بالجميع",
];

const EMOJI: &[&str] = &["👍", "❤️", "😂", "🎉", "👀", "1️⃣", "🙏🏽", "👨‍👩‍👧"];

/// Room names people type: most valid (spaces become '-'), some not.
const NAMES: &[&str] = &[
    "Sales Team",
    "  Support   Crew  ",
    "Q3 Planning",
    "Ünïcode Räume",
    "release-2.0_prep",
    "Night\tShift",
    "Q&A",
    "   ",
    "-dash-first",
    "a name that goes on and on and on well past the sixty four characters allowed",
];

/// What the room name rule makes of `raw`: trimmed, white space runs as one '-', lower case.
fn normalised(raw: &str) -> String {
    raw.split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase()
}

/// Runs a chat burst for `seed`, calling `progress(simulated seconds done, total)` now and then.
pub fn run_chat_burst(params: &ChatBurst, seed: u64, progress: &mut dyn FnMut(u64, u64)) -> Report {
    let tenant = TenantId::parse("sim").expect("\"sim\" is a valid tenant slug");
    let n_users = params.users.max(4);
    let bursts_per_hour = params.bursts_per_hour.unwrap_or(n_users * 6).max(1);
    let actions_per_hour = params.actions_per_hour.unwrap_or(n_users * 15).max(1);
    let mut sim = Sim {
        world: World::new(seed, tenant.clone()),
        agenda: Agenda::default(),
        tenant,
        users: Vec::new(),
        rooms: Vec::new(),
        convs: Vec::new(),
        direct: BTreeMap::new(),
        touched: BTreeSet::new(),
        counters: BTreeMap::new(),
        burst_rate: f64::from(bursts_per_hour) / 3600.0,
        action_rate: f64::from(actions_per_hour) / 3600.0,
    };
    for k in 0..n_users {
        if let Ok(u) = UserId::parse(format!("u{k:03}")) {
            sim.users.push(u);
        }
    }
    for _ in 0..params.rooms.max(1) {
        sim.create_room();
    }
    sim.check_touched();
    sim.next_arrival(sim.burst_rate, Happening::Burst);
    sim.next_arrival(sim.action_rate, Happening::Action);
    let limits = Limits {
        minutes: params.minutes,
        // Restores are due at most five minutes after the last archive.
        drain: TimeDelta::hours(1),
        steps: 100 * u64::from(bursts_per_hour + actions_per_hour) + 1_000_000,
    };
    world::run(&mut sim, limits, progress);
    sim.finish(params, seed)
}

impl Scenario for Sim {
    type Happening = Happening;

    fn world(&mut self) -> &mut World {
        &mut self.world
    }

    fn agenda(&mut self) -> &mut Agenda<Happening> {
        &mut self.agenda
    }

    fn step(&mut self, what: Happening, load_on: bool) {
        match what {
            Happening::Burst if load_on => {
                self.burst();
                self.next_arrival(self.burst_rate, Happening::Burst);
            }
            Happening::Action if load_on => {
                self.action();
                self.next_arrival(self.action_rate, Happening::Action);
            }
            Happening::Post { target, left } if load_on => {
                self.post(target);
                if left > 0 {
                    let gap = self.world.uniform_secs(0.5, 8.0);
                    self.agenda.at(
                        self.world.now + gap,
                        Happening::Post {
                            target,
                            left: left - 1,
                        },
                    );
                }
            }
            // The load stops: bursts break off and nobody starts anything new.
            Happening::Burst | Happening::Action | Happening::Post { .. } => {}
            Happening::Restore { room } => self.restore(room),
        }
        self.check_touched();
    }
}

impl Sim {
    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.world.rng.random_range(0..items.len())].clone())
    }

    fn label(&self, t: Target) -> String {
        match t {
            Target::Room(r) => format!("room {}", self.rooms[r].id),
            Target::Conv(c) => format!("conversation {}", self.convs[c].id),
        }
    }

    // ---- running commands ----

    fn room_command(
        &mut self,
        r: usize,
        command: RoomCommand,
    ) -> Result<Vec<RoomEvent>, RoomRejection> {
        let aggregate = &mut self.rooms[r];
        let result = self
            .world
            .execute(&aggregate.stream, &mut aggregate.instance, &command);
        if let Ok(events) = &result {
            aggregate.shadow.fold_room(events);
        }
        self.touched.insert(Target::Room(r));
        result
    }

    fn conv_command(
        &mut self,
        c: usize,
        command: ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, ConversationRejection> {
        let aggregate = &mut self.convs[c];
        let result = self
            .world
            .execute(&aggregate.stream, &mut aggregate.instance, &command);
        if let Ok(events) = &result {
            aggregate.shadow.fold_conversation(events);
        }
        self.touched.insert(Target::Conv(c));
        result
    }

    fn version(&self, t: Target) -> u64 {
        match t {
            Target::Room(r) => self.rooms[r].instance.version,
            Target::Conv(c) => self.convs[c].instance.version,
        }
    }

    fn message(&self, t: Target, id: &MessageId) -> Option<&Message> {
        match t {
            Target::Room(r) => self.rooms[r].instance.state.message(id),
            Target::Conv(c) => self.convs[c].instance.state.message(id),
        }
    }

    fn members(&self, t: Target) -> Vec<UserId> {
        match t {
            Target::Room(r) => self.rooms[r]
                .instance
                .state
                .members()
                .map(|(u, _)| u.clone())
                .collect(),
            Target::Conv(c) => self.convs[c].instance.state.members().cloned().collect(),
        }
    }

    /// Runs one message action with every check an action gets.
    fn act(&mut self, t: Target, action: MessageAction) -> Result<usize, Why> {
        let id = message_of(&action);
        let actor = action.actor().clone();
        let before = self.message(t, &id).cloned();
        let version_before = self.version(t);
        let (member, may_moderate, status) = match t {
            Target::Room(r) => {
                let s = &self.rooms[r].instance.state;
                let m = s.membership(&actor);
                (
                    m.is_some(),
                    m.is_some_and(|m| m.may_moderate()),
                    Some(s.status()),
                )
            }
            Target::Conv(c) => (self.convs[c].instance.state.is_member(&actor), false, None),
        };
        let outcome = match t {
            Target::Room(r) => self
                .room_command(r, RoomCommand::Message(action.clone()))
                .map(|e| e.len())
                .map_err(Why::from),
            Target::Conv(c) => self
                .conv_command(c, ConversationCommand::Message(action.clone()))
                .map(|e| e.len())
                .map_err(Why::from),
        };
        let check = ActionCheck {
            action: &action,
            member,
            may_moderate,
            status,
            before: before.as_ref(),
            after: self.message(t, &id),
            outcome: &outcome,
            versions: (version_before, self.version(t)),
        };
        let problems = check.violations();
        let label = self.label(t);
        for p in problems {
            self.world.violation(format!("{label}: {p}"));
        }
        outcome
    }

    // ---- rooms ----

    fn create_room(&mut self) -> Option<usize> {
        let k = self.rooms.len();
        let id = RoomId::parse(format!("room-{k}")).ok()?;
        let n = self.users.len();
        let owner = self.users[self.world.rng.random_range(0..n)].clone();
        let share = self.world.rng.random_range(0.3..0.6);
        let members: Vec<UserId> = (0..n)
            .filter(|_| self.world.rng.random_bool(share))
            .map(|i| self.users[i].clone())
            .collect();
        let visibility = if k.is_multiple_of(2) {
            RoomVisibility::Public
        } else {
            RoomVisibility::Private
        };
        let raw = format!("Team {k}  Room");
        self.rooms.push(ChatRoom {
            stream: StreamId::room(&self.tenant, &id),
            id: id.clone(),
            instance: Instance::default(),
            shadow: Shadow::default(),
            expected_name: normalised(&raw),
        });
        let r = self.rooms.len() - 1;
        match self.room_command(
            r,
            RoomCommand::Create {
                room: id,
                name: raw,
                by: owner,
                members,
                visibility,
            },
        ) {
            Ok(_) => {
                self.count("rooms created");
                Some(r)
            }
            Err(e) => {
                self.world
                    .violation(format!("{}: creation refused: {e}", self.rooms[r].id));
                None
            }
        }
    }

    fn room_members(
        &self,
        r: usize,
        want: impl Fn(&engine::room::Membership) -> bool,
    ) -> Vec<UserId> {
        self.rooms[r]
            .instance
            .state
            .members()
            .filter(|(_, m)| want(m))
            .map(|(u, _)| u.clone())
            .collect()
    }

    fn non_member(&mut self, t: Target) -> Option<UserId> {
        let members: BTreeSet<UserId> = self.members(t).into_iter().collect();
        let outside: Vec<UserId> = self
            .users
            .iter()
            .filter(|u| !members.contains(*u))
            .cloned()
            .collect();
        self.pick(&outside)
    }

    /// A room at random: almost always one that still exists, now and then a deleted one
    /// (someone with a stale tab).
    fn some_room(&mut self) -> usize {
        let live: Vec<usize> = (0..self.rooms.len())
            .filter(|r| self.rooms[*r].instance.state.status() != RoomStatus::Deleted)
            .collect();
        if live.is_empty() || self.world.chance(0.03) {
            self.world.rng.random_range(0..self.rooms.len())
        } else {
            live[self.world.rng.random_range(0..live.len())]
        }
    }

    fn restore(&mut self, r: usize) {
        if self.rooms[r].instance.state.status() != RoomStatus::Archived {
            return;
        }
        // Now and then a plain member tries first, and is refused.
        let plain = self.room_members(r, |m| !m.owner);
        if self.world.chance(0.2)
            && let Some(by) = self.pick(&plain)
        {
            match self.room_command(r, RoomCommand::Restore { by }) {
                Err(RoomRejection::NotOwner { .. }) => self.count("restores refused: not owner"),
                other => self.world.violation(format!(
                    "{}: a plain member's restore gave {other:?}",
                    self.rooms[r].id
                )),
            }
        }
        let owners = self.room_members(r, |m| m.owner);
        let Some(by) = self.pick(&owners) else {
            self.world
                .violation(format!("{}: archived with no owner", self.rooms[r].id));
            return;
        };
        match self.room_command(r, RoomCommand::Restore { by }) {
            Ok(_) => self.count("restores"),
            Err(e) => self.world.violation(format!(
                "{}: the owner's restore was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    // ---- posting ----

    fn burst(&mut self) {
        let target = if !self.convs.is_empty() && self.world.chance(0.25) {
            Target::Conv(self.world.rng.random_range(0..self.convs.len()))
        } else if self.world.chance(0.15) {
            // Someone writes to somebody new: a direct or group conversation starts.
            self.start_conversation();
            return;
        } else {
            Target::Room(self.some_room())
        };
        self.count("bursts");
        let size = self.world.rng.random_range(2..15);
        self.agenda
            .at(self.world.now, Happening::Post { target, left: size });
    }

    /// A message id recently posted to `t` (deleted ones included).
    fn recent_message(&mut self, t: Target) -> Option<MessageId> {
        let order = match t {
            Target::Room(r) => &self.rooms[r].shadow.order,
            Target::Conv(c) => &self.convs[c].shadow.order,
        };
        let from = order.len().saturating_sub(30);
        let recent = order[from..].to_vec();
        self.pick(&recent)
    }

    fn draft(&mut self, t: Target) -> (MessageDraft, &'static str) {
        let phrase = self.pick(PHRASES).unwrap_or("hi");
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        if roll < 0.60 {
            (MessageDraft::text(phrase), "plain")
        } else if roll < 0.76 {
            let thread = self.recent_message(t);
            let draft = MessageDraft {
                thread,
                ..MessageDraft::text(phrase)
            };
            (draft, if thread.is_some() { "reply" } else { "plain" })
        } else if roll < 0.86 {
            let quote = self.recent_message(t);
            let draft = MessageDraft {
                quote,
                ..MessageDraft::text(format!("> {phrase}"))
            };
            (draft, if quote.is_some() { "quote" } else { "plain" })
        } else if roll < 0.93 {
            let attachment = Attachment {
                attachment: AttachmentId::from_uuid(self.world.uuid()),
                file_name: "minutes.pdf".into(),
                content_type: "application/pdf".into(),
                size_bytes: self.world.rng.random_range(1_000..5_000_000),
            };
            let text = if self.world.chance(0.5) { "" } else { phrase };
            let draft = MessageDraft {
                attachments: vec![attachment],
                ..MessageDraft::text(text)
            };
            (draft, "file")
        } else if roll < 0.97 {
            (MessageDraft::text(" \n "), "empty")
        } else {
            (MessageDraft::text("x".repeat(5_001)), "too long")
        }
    }

    fn post(&mut self, t: Target) {
        let members = self.members(t);
        let author = if members.is_empty() || self.world.chance(0.07) {
            self.pick(&self.users.clone())
        } else {
            self.pick(&members)
        };
        let Some(author) = author else { return };
        let (draft, kind) = self.draft(t);
        let message = MessageId::from_uuid(self.world.uuid());
        let parent_root = draft
            .thread
            .and_then(|p| self.message(t, &p).map(|m| m.thread.unwrap_or(p)));
        let hidden_before: Vec<UserId> = match t {
            Target::Conv(c) => {
                let s = &self.convs[c].instance.state;
                s.members()
                    .filter(|u| !s.is_visible_to(u))
                    .cloned()
                    .collect()
            }
            Target::Room(_) => Vec::new(),
        };
        let outcome = self.act(
            t,
            MessageAction::Post {
                message,
                author,
                draft,
            },
        );
        match outcome {
            Ok(_) => {
                self.count("posts");
                if matches!(t, Target::Conv(_)) {
                    self.count("direct messages");
                }
                match kind {
                    "reply" => self.count("thread replies"),
                    "quote" => self.count("quotes"),
                    "file" => self.count("files"),
                    "empty" | "too long" => self
                        .world
                        .violation(format!("{}: a {kind} message was accepted", self.label(t))),
                    _ => {}
                }
                let thread = self.message(t, &message).and_then(|m| m.thread);
                if thread != parent_root {
                    self.world.violation(format!(
                        "{}: reply {message} joined thread {thread:?}, not {parent_root:?}",
                        self.label(t)
                    ));
                }
                if let Target::Conv(c) = t {
                    let s = &self.convs[c].instance.state;
                    if s.members().any(|u| !s.is_visible_to(u)) {
                        self.world.violation(format!(
                            "{}: a post left it hidden from someone",
                            self.label(t)
                        ));
                    }
                    if !hidden_before.is_empty() {
                        self.count("conversations shown again by a post");
                    }
                }
            }
            Err(Why::NotMember) => self.count("posts refused: not a member"),
            Err(Why::Archived) => self.count("posts refused: archived room"),
            Err(Why::Deleted) => self.count("posts refused: deleted room"),
            Err(Why::Message(MessageRejection::Empty)) if kind == "empty" => {
                self.count("posts refused: empty");
            }
            Err(Why::Message(MessageRejection::TextTooLong { .. })) if kind == "too long" => {
                self.count("posts refused: too long");
            }
            Err(Why::Message(MessageRejection::Deleted(_))) => {
                self.count("posts refused: replying to or quoting a deleted message");
            }
            Err(why) => self.world.violation(format!(
                "{}: a {kind} post was refused: {why:?}",
                self.label(t)
            )),
        }
    }

    // ---- other actions ----

    fn action(&mut self) {
        if !self.convs.is_empty() && self.world.chance(0.25) {
            let c = self.world.rng.random_range(0..self.convs.len());
            self.conversation_action(c);
            return;
        }
        let r = self.some_room();
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        let t = Target::Room(r);
        if roll < 0.07 {
            self.join_or_add(r);
        } else if roll < 0.12 {
            self.leave(r);
        } else if roll < 0.18 {
            self.kick(r);
        } else if roll < 0.24 {
            self.rename(r);
        } else if roll < 0.27 {
            self.archive(r);
        } else if roll < 0.31 {
            self.grant_moderator(r);
        } else if roll < 0.34 {
            self.transfer(r);
        } else if roll < 0.39 {
            self.close_or_reopen(r);
        } else if roll < 0.40 {
            self.delete_room(r);
        } else {
            self.message_action(t);
        }
    }

    /// Edit, delete, react, unreact, follow, star or report, on a recent message of `t`.
    fn message_action(&mut self, t: Target) {
        let Some(message) = self.recent_message(t) else {
            return;
        };
        let author = self.message(t, &message).map(|m| m.author.clone());
        let members = self.members(t);
        let Some(anyone) = self.pick(&members) else {
            return;
        };
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        if roll < 0.45 {
            let edit = roll < 0.28;
            let by = self.editor(t, author.as_ref(), &members);
            let Some((by, role)) = by else { return };
            let action = if edit {
                let phrase = self.pick(PHRASES).unwrap_or("hi");
                MessageAction::Edit {
                    message,
                    text: format!("{phrase} (edited)"),
                    by,
                }
            } else {
                MessageAction::Delete { message, by }
            };
            let outcome = self.act(t, action);
            self.count(match (edit, role, &outcome) {
                (true, _, Err(Why::NotAuthor)) => "edits refused: not the author",
                (false, _, Err(Why::NotAuthor)) => "deletes refused: not the author",
                (_, _, Err(_)) => "edits or deletes refused otherwise",
                (_, _, Ok(0)) => "edits or deletes that changed nothing",
                (true, "author", Ok(_)) => "edits by the author",
                (true, _, Ok(_)) => "edits by a moderator",
                (false, "author", Ok(_)) => "deletes by the author",
                (false, _, Ok(_)) => "deletes by a moderator",
            });
        } else if roll < 0.70 {
            let bad = self.world.chance(0.05);
            let emoji = if bad {
                String::from(":+1:")
            } else {
                self.pick(EMOJI).unwrap_or("👍").to_owned()
            };
            let outcome = self.act(
                t,
                MessageAction::React {
                    message,
                    user: anyone,
                    emoji,
                },
            );
            match outcome {
                Ok(n) if n > 0 => self.count("reactions"),
                Err(Why::Message(MessageRejection::BadEmoji(_))) if bad => {
                    self.count("reactions refused: not an emoji");
                }
                Err(Why::Message(MessageRejection::BadEmoji(_))) => self
                    .world
                    .violation(format!("{}: an emoji was refused", self.label(t))),
                _ => {}
            }
        } else if roll < 0.80 {
            // Someone who reacted takes it back.
            let reacted: Vec<(UserId, String)> = self
                .message(t, &message)
                .map(|m| {
                    m.reactions
                        .iter()
                        .flat_map(|(e, us)| us.iter().map(move |u| (u.clone(), e.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let Some((user, emoji)) = self.pick(&reacted) else {
                return;
            };
            if matches!(
                self.act(
                    t,
                    MessageAction::Unreact {
                        message,
                        user,
                        emoji
                    }
                ),
                Ok(n) if n > 0
            ) {
                self.count("reactions taken back");
            }
        } else if roll < 0.87 {
            let following = self
                .message(t, &message)
                .is_some_and(|m| m.followers.contains(&anyone));
            let action = if following {
                MessageAction::Unfollow {
                    message,
                    user: anyone,
                }
            } else {
                MessageAction::Follow {
                    message,
                    user: anyone,
                }
            };
            if matches!(self.act(t, action), Ok(n) if n > 0) {
                self.count(if following { "unfollows" } else { "follows" });
            }
        } else if roll < 0.95 {
            let starred = self
                .message(t, &message)
                .is_some_and(|m| m.starred_by.contains(&anyone));
            let action = if starred {
                MessageAction::Unstar {
                    message,
                    user: anyone,
                }
            } else {
                MessageAction::Star {
                    message,
                    user: anyone,
                }
            };
            if matches!(self.act(t, action), Ok(n) if n > 0) {
                self.count(if starred { "unstars" } else { "stars" });
            }
        } else {
            let reason = self
                .world
                .chance(0.5)
                .then(|| String::from("  off topic  "));
            if matches!(
                self.act(
                    t,
                    MessageAction::Report {
                        message,
                        by: anyone,
                        reason
                    }
                ),
                Ok(n) if n > 0
            ) {
                self.count("reports");
            }
        }
    }

    /// Who tries to change a message: its author, a moderator or owner, or another member; with
    /// which of these they are.
    fn editor(
        &mut self,
        t: Target,
        author: Option<&UserId>,
        members: &[UserId],
    ) -> Option<(UserId, &'static str)> {
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        let author_in = author.filter(|a| members.contains(a)).cloned();
        if roll < 0.45
            && let Some(a) = author_in
        {
            return Some((a, "author"));
        }
        if roll < 0.70
            && let Target::Room(r) = t
        {
            let mods = self.room_members(r, |m| m.may_moderate());
            if let Some(m) = self.pick(&mods) {
                return Some((m, "moderator"));
            }
        }
        let others: Vec<UserId> = members
            .iter()
            .filter(|u| Some(*u) != author)
            .cloned()
            .collect();
        self.pick(&others).map(|u| (u, "other"))
    }

    fn join_or_add(&mut self, r: usize) {
        let Some(user) = self.non_member(Target::Room(r)) else {
            return;
        };
        let public = self.rooms[r].instance.state.visibility() == Some(RoomVisibility::Public);
        let status = self.rooms[r].instance.state.status();
        if self.world.chance(0.5) {
            match (self.room_command(r, RoomCommand::Join { user }), public) {
                (Ok(_), true) => self.count("joins"),
                (Err(RoomRejection::Private(_)), false) => self.count("joins refused: private"),
                (Err(RoomRejection::Archived | RoomRejection::Deleted), _)
                    if status != RoomStatus::Active => {}
                (other, _) => self.world.violation(format!(
                    "{}: joining (public {public}) gave {other:?}",
                    self.rooms[r].id
                )),
            }
            return;
        }
        let members = self.room_members(r, |_| true);
        let Some(by) = self.pick(&members) else {
            return;
        };
        let may = self.rooms[r]
            .instance
            .state
            .membership(&by)
            .is_some_and(|m| m.may_moderate());
        match (
            self.room_command(r, RoomCommand::AddMember { user, by }),
            public || may,
        ) {
            (Ok(_), true) => self.count("members added"),
            (Err(RoomRejection::NotModerator { .. }), false) => {
                self.count("adds refused: private room, plain member");
            }
            (Err(RoomRejection::Archived), _) if status == RoomStatus::Archived => {}
            (other, allowed) => self.world.violation(format!(
                "{}: adding a member (allowed {allowed}) gave {other:?}",
                self.rooms[r].id
            )),
        }
    }

    fn leave(&mut self, r: usize) {
        let members = self.room_members(r, |_| true);
        let Some(user) = self.pick(&members) else {
            return;
        };
        let state = &self.rooms[r].instance.state;
        let last_owner =
            state.membership(&user).is_some_and(|m| m.owner) && state.owners().count() == 1;
        match (
            self.room_command(r, RoomCommand::Leave { user: user.clone() }),
            last_owner,
        ) {
            (Ok(_), false) => {
                self.count("leaves");
                if self.rooms[r].instance.state.is_member(&user) {
                    self.world
                        .violation(format!("{}: {user} left but is a member", self.rooms[r].id));
                }
            }
            (Err(RoomRejection::LastOwner(_)), true) => self.count("leaves refused: last owner"),
            (other, _) => self.world.violation(format!(
                "{}: {user} leaving (last owner {last_owner}) gave {other:?}",
                self.rooms[r].id
            )),
        }
    }

    fn kick(&mut self, r: usize) {
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        let mods = self.room_members(r, |m| m.may_moderate());
        let plain = self.room_members(r, |m| !m.may_moderate());
        let owners = self.room_members(r, |m| m.owner);
        let pure_mods = self.room_members(r, |m| m.moderator && !m.owner);
        let status = self.rooms[r].instance.state.status();
        let (by, user, expect) = if roll < 0.6 {
            // A moderator or owner removes a plain member.
            let (Some(by), Some(user)) = (self.pick(&mods), self.pick(&plain)) else {
                return;
            };
            (by, user, "kicks")
        } else if roll < 0.8 {
            // A plain member tries.
            let (Some(by), Some(user)) = (self.pick(&plain), self.pick(&mods)) else {
                return;
            };
            (by, user, "kicks refused: not a moderator")
        } else {
            // A moderator tries to remove an owner.
            let (Some(by), Some(user)) = (self.pick(&pure_mods), self.pick(&owners)) else {
                return;
            };
            (by, user, "kicks refused: owner")
        };
        if by == user {
            return;
        }
        let result = self.room_command(
            r,
            RoomCommand::Kick {
                user: user.clone(),
                by,
            },
        );
        let ok = match (&result, expect) {
            (Ok(_), "kicks") => !self.rooms[r].instance.state.is_member(&user),
            (Err(RoomRejection::NotModerator { .. }), "kicks refused: not a moderator")
            | (Err(RoomRejection::CannotKickOwner(_)), "kicks refused: owner") => true,
            (Err(RoomRejection::Archived), _) => status == RoomStatus::Archived,
            _ => false,
        };
        if !ok {
            self.world.violation(format!(
                "{}: expected {expect}, got {result:?}",
                self.rooms[r].id
            ));
        } else if !matches!(result, Err(RoomRejection::Archived)) {
            self.count(expect);
        }
    }

    fn rename(&mut self, r: usize) {
        let raw = self.pick(NAMES).unwrap_or("x");
        let mods = self.room_members(r, |m| m.may_moderate());
        let plain = self.room_members(r, |m| !m.may_moderate());
        let by_moderator = self.world.chance(0.8);
        let by = if by_moderator {
            self.pick(&mods)
        } else {
            self.pick(&plain)
        };
        let Some(by) = by else { return };
        let status = self.rooms[r].instance.state.status();
        let valid = RoomName::parse(raw).is_ok();
        let result = self.room_command(
            r,
            RoomCommand::Rename {
                name: raw.to_owned(),
                by,
            },
        );
        let expected = normalised(raw);
        match result {
            Ok(_) if by_moderator && valid => {
                self.count("renames");
                self.rooms[r].expected_name = expected;
            }
            Err(RoomRejection::BadName(_)) if by_moderator && !valid => {
                self.count("renames refused: bad name");
            }
            Err(RoomRejection::NotModerator { .. }) if !by_moderator => {
                self.count("renames refused: not a moderator");
            }
            Err(RoomRejection::Archived) if status == RoomStatus::Archived => {}
            other => self.world.violation(format!(
                "{}: renaming to {raw:?} (moderator {by_moderator}, valid {valid}) gave {other:?}",
                self.rooms[r].id
            )),
        }
    }

    fn archive(&mut self, r: usize) {
        let by_owner = self.world.chance(0.8);
        let candidates = self.room_members(r, |m| m.owner == by_owner);
        let Some(by) = self.pick(&candidates) else {
            return;
        };
        let was = self.rooms[r].instance.state.status();
        match (self.room_command(r, RoomCommand::Archive { by }), by_owner) {
            (Ok(events), true) => {
                if !events.is_empty() {
                    self.count("archives");
                    let later = self.world.uniform_secs(60.0, 300.0);
                    self.agenda
                        .at(self.world.now + later, Happening::Restore { room: r });
                } else if was != RoomStatus::Archived {
                    self.world.violation(format!(
                        "{}: archiving an active room did nothing",
                        self.rooms[r].id
                    ));
                }
            }
            (Err(RoomRejection::NotOwner { .. }), false) => {
                self.count("archives refused: not owner");
            }
            (other, _) => self.world.violation(format!(
                "{}: archiving (owner {by_owner}) gave {other:?}",
                self.rooms[r].id
            )),
        }
    }

    fn grant_moderator(&mut self, r: usize) {
        let owners = self.room_members(r, |m| m.owner);
        let plain = self.room_members(r, |m| !m.may_moderate());
        let (Some(by), Some(user)) = (self.pick(&owners), self.pick(&plain)) else {
            return;
        };
        let status = self.rooms[r].instance.state.status();
        match self.room_command(
            r,
            RoomCommand::GrantRole {
                user: user.clone(),
                role: RoomRole::Moderator,
                by,
            },
        ) {
            Ok(_) => {
                self.count("moderators appointed");
                let is_mod = self.rooms[r]
                    .instance
                    .state
                    .membership(&user)
                    .is_some_and(|m| m.moderator);
                if !is_mod {
                    self.world.violation(format!(
                        "{}: {user} appointed but no moderator",
                        self.rooms[r].id
                    ));
                }
            }
            Err(RoomRejection::Archived) if status == RoomStatus::Archived => {}
            Err(e) => self.world.violation(format!(
                "{}: appointing a moderator was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    fn transfer(&mut self, r: usize) {
        let owners = self.room_members(r, |m| m.owner);
        let Some(by) = self.pick(&owners) else {
            return;
        };
        let others = self.room_members(r, |_| true);
        let others: Vec<UserId> = others.into_iter().filter(|u| *u != by).collect();
        let Some(to) = self.pick(&others) else {
            return;
        };
        let status = self.rooms[r].instance.state.status();
        match self.room_command(
            r,
            RoomCommand::TransferOwnership {
                to: to.clone(),
                by: by.clone(),
            },
        ) {
            Ok(_) => {
                self.count("ownership transfers");
                let s = &self.rooms[r].instance.state;
                let to_owner = s.membership(&to).is_some_and(|m| m.owner);
                let by_owner = s.membership(&by).is_some_and(|m| m.owner);
                if !to_owner || by_owner {
                    self.world.violation(format!(
                        "{}: after {by} handed ownership to {to}: {by} owner {by_owner}, {to} owner \
                         {to_owner}",
                        self.rooms[r].id
                    ));
                }
            }
            Err(RoomRejection::Archived) if status == RoomStatus::Archived => {}
            Err(e) => self.world.violation(format!(
                "{}: an ownership transfer was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    fn close_or_reopen(&mut self, r: usize) {
        let members = self.room_members(r, |_| true);
        let Some(user) = self.pick(&members) else {
            return;
        };
        let closed = self.rooms[r]
            .instance
            .state
            .membership(&user)
            .is_some_and(|m| m.closed);
        let command = if closed {
            RoomCommand::Reopen { user }
        } else {
            RoomCommand::Close { user }
        };
        match self.room_command(r, command) {
            Ok(_) => self.count(if closed { "reopens" } else { "closes" }),
            Err(e) => self.world.violation(format!(
                "{}: closing or reopening was refused: {e}",
                self.rooms[r].id
            )),
        }
    }

    /// An owner deletes the room for good; another room takes its place.
    fn delete_room(&mut self, r: usize) {
        let deleted = self
            .rooms
            .iter()
            .filter(|x| x.instance.state.status() == RoomStatus::Deleted)
            .count();
        if deleted * 3 >= self.rooms.len() {
            return;
        }
        let owners = self.room_members(r, |m| m.owner);
        let Some(by) = self.pick(&owners) else {
            return;
        };
        match self.room_command(r, RoomCommand::Delete { by }) {
            Ok(_) => {
                self.count("rooms deleted");
                self.create_room();
            }
            Err(e) => self
                .world
                .violation(format!("{}: deletion refused: {e}", self.rooms[r].id)),
        }
    }

    // ---- conversations ----

    fn start_conversation(&mut self) {
        let n = self.users.len();
        let by = self.world.rng.random_range(0..n);
        let group = self.world.chance(0.4);
        let mut with: Vec<usize> = Vec::new();
        let size = if group {
            self.world.rng.random_range(2..5)
        } else {
            1
        };
        while with.len() < size {
            let u = self.world.rng.random_range(0..n);
            if u != by && !with.contains(&u) {
                with.push(u);
            }
        }
        if !group {
            let pair = (by.min(with[0]), by.max(with[0]));
            if let Some(&c) = self.direct.get(&pair) {
                // They already talk: the burst goes there.
                self.count("bursts");
                self.agenda.at(
                    self.world.now,
                    Happening::Post {
                        target: Target::Conv(c),
                        left: 3,
                    },
                );
                return;
            }
        }
        let id = ConversationId::from_uuid(self.world.uuid());
        self.convs.push(ChatConv {
            id,
            stream: StreamId::conversation(id),
            instance: Instance::default(),
            shadow: Shadow::default(),
        });
        let c = self.convs.len() - 1;
        let phrase = self.pick(PHRASES).unwrap_or("hi");
        let first = MessageId::from_uuid(self.world.uuid());
        let result = self.conv_command(
            c,
            ConversationCommand::Start {
                conversation: id,
                by: self.users[by].clone(),
                with: with.iter().map(|u| self.users[*u].clone()).collect(),
                first_message: Some((first, MessageDraft::text(phrase))),
            },
        );
        match result {
            Ok(_) => {
                let kind = self.convs[c].instance.state.kind();
                let want = if group {
                    ConversationKind::Group
                } else {
                    ConversationKind::Direct
                };
                if kind != Some(want) || self.convs[c].instance.state.message(&first).is_none() {
                    self.world.violation(format!(
                        "conversation {id}: started as {kind:?} without its first message"
                    ));
                }
                self.count(if group {
                    "group conversations started"
                } else {
                    "direct conversations started"
                });
                self.count("posts");
                self.count("direct messages");
                if !group {
                    self.direct.insert((by.min(with[0]), by.max(with[0])), c);
                }
                self.agenda.at(
                    self.world.now + TimeDelta::seconds(2),
                    Happening::Post {
                        target: Target::Conv(c),
                        left: 2,
                    },
                );
            }
            Err(e) => self
                .world
                .violation(format!("conversation {id}: start refused: {e}")),
        }
    }

    fn conversation_action(&mut self, c: usize) {
        let t = Target::Conv(c);
        let group = self.convs[c].instance.state.kind() == Some(ConversationKind::Group);
        let members = self.members(t);
        let Some(user) = self.pick(&members) else {
            return;
        };
        let roll: f64 = self.world.rng.random_range(0.0..1.0);
        // Nobody is added to or leaves a direct conversation, though some try.
        let fixed = !group && self.world.chance(0.8);
        if roll < 0.55 || (roll >= 0.72 && fixed) {
            self.message_action(t);
        } else if roll < 0.72 {
            let visible = self.convs[c].instance.state.is_visible_to(&user);
            let command = if visible {
                ConversationCommand::Hide { user }
            } else {
                ConversationCommand::Show { user }
            };
            match self.conv_command(c, command) {
                Ok(_) => self.count(if visible {
                    "conversations hidden"
                } else {
                    "conversations shown"
                }),
                Err(e) => self
                    .world
                    .violation(format!("{}: hide/show refused: {e}", self.label(t))),
            }
        } else if roll < 0.86 {
            let Some(newcomer) = self.non_member(t) else {
                return;
            };
            let full = members.len() >= MAX_GROUP_MEMBERS;
            match (
                self.conv_command(
                    c,
                    ConversationCommand::AddMember {
                        user: newcomer,
                        by: user,
                    },
                ),
                group,
            ) {
                (Ok(_), true) if !full => self.count("group members added"),
                (Err(ConversationRejection::DirectIsFixed), false) => {
                    self.count("adds refused: direct conversation");
                }
                (Err(ConversationRejection::TooManyMembers { .. }), true) if full => {}
                (other, _) => self.world.violation(format!(
                    "{}: adding someone (group {group}) gave {other:?}",
                    self.label(t)
                )),
            }
        } else {
            match (
                self.conv_command(c, ConversationCommand::Leave { user: user.clone() }),
                group,
            ) {
                (Ok(_), true) => {
                    self.count("group leaves");
                    if self.convs[c].instance.state.is_member(&user) {
                        self.world
                            .violation(format!("{}: {user} left but is in", self.label(t)));
                    }
                }
                (Err(ConversationRejection::CannotLeaveDirect), false) => {
                    self.count("leaves refused: direct conversation");
                }
                (other, _) => self.world.violation(format!(
                    "{}: leaving (group {group}) gave {other:?}",
                    self.label(t)
                )),
            }
        }
    }

    // ---- checks ----

    fn check_touched(&mut self) {
        let touched = std::mem::take(&mut self.touched);
        for t in touched {
            let problems = match t {
                Target::Room(r) => room_violations(&self.rooms[r]),
                Target::Conv(c) => conversation_violations(&self.convs[c]),
            };
            for p in problems {
                self.world.violation(p);
            }
        }
    }

    /// Counts events by type over the whole log.
    fn log_counts(&mut self) -> BTreeMap<&'static str, u64> {
        let mut counts = BTreeMap::new();
        let log = self.world.log();
        let mut after = GlobalPosition::START;
        loop {
            let page = match log.read_all(after, 8192).now_or_never() {
                Some(Ok(page)) => page,
                other => {
                    self.world
                        .violation(format!("reading the log back failed: {other:?}"));
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = last.position;
            for stored in &page {
                match events::codec::decode(stored) {
                    Ok(recorded) => {
                        let key = match recorded.event {
                            Event::Room(RoomEvent::RoomMessagePosted { .. })
                            | Event::Conversation(ConversationEvent::DirectMessagePosted {
                                ..
                            }) => "posts",
                            Event::Room(RoomEvent::RoomMessageEdited { .. })
                            | Event::Conversation(ConversationEvent::DirectMessageEdited {
                                ..
                            }) => "edits",
                            Event::Room(RoomEvent::RoomMessageDeleted { .. })
                            | Event::Conversation(ConversationEvent::DirectMessageDeleted {
                                ..
                            }) => "deletes",
                            Event::Room(RoomEvent::RoomReactionAdded { .. })
                            | Event::Conversation(ConversationEvent::DirectReactionAdded {
                                ..
                            }) => "reactions",
                            _ => continue,
                        };
                        *counts.entry(key).or_default() += 1;
                    }
                    Err(e) => self.world.violation(format!("undecodable event: {e}")),
                }
            }
        }
        counts
    }

    fn finish(mut self, params: &ChatBurst, seed: u64) -> Report {
        // Liveness: every archived room was restored once the load stopped.
        for r in 0..self.rooms.len() {
            if self.rooms[r].instance.state.status() == RoomStatus::Archived {
                self.world.violation(format!(
                    "{} is still archived after draining",
                    self.rooms[r].id
                ));
            }
            for p in room_violations(&self.rooms[r]) {
                self.world.violation(p);
            }
            match self.world.rebuild::<ChannelRoom>(&self.rooms[r].stream) {
                Ok(rebuilt) => {
                    if format!("{rebuilt:?}") != format!("{:?}", self.rooms[r].instance.state) {
                        self.world.violation(format!(
                            "{}: rebuilt from its stream it differs from the live room",
                            self.rooms[r].id
                        ));
                    }
                }
                Err(e) => self.world.violation(e),
            }
        }
        for c in 0..self.convs.len() {
            for p in conversation_violations(&self.convs[c]) {
                self.world.violation(p);
            }
            match self.world.rebuild::<Conversation>(&self.convs[c].stream) {
                Ok(rebuilt) => {
                    if format!("{rebuilt:?}") != format!("{:?}", self.convs[c].instance.state) {
                        self.world.violation(format!(
                            "conversation {}: rebuilt from its stream it differs from the live one",
                            self.convs[c].id
                        ));
                    }
                }
                Err(e) => self.world.violation(e),
            }
        }
        // The log's own counts agree with what the scenario saw accepted.
        let logged = self.log_counts();
        let edits = ["edits by the author", "edits by a moderator"];
        let deletes = ["deletes by the author", "deletes by a moderator"];
        let sum = |keys: &[&str]| -> u64 {
            keys.iter()
                .map(|k| self.counters.get(k).copied().unwrap_or(0))
                .sum()
        };
        for (what, seen) in [
            ("posts", sum(&["posts"])),
            ("edits", sum(&edits)),
            ("deletes", sum(&deletes)),
            ("reactions", sum(&["reactions"])),
        ] {
            let in_log = logged.get(what).copied().unwrap_or(0);
            if in_log != seen {
                self.world
                    .violation(format!("{what}: {in_log} in the log, {seen} accepted"));
            }
        }
        self.counters
            .insert("conversations", self.convs.len() as u64);
        let scenario = format!(
            "chat-burst: {} users, {} rooms, {} minutes",
            params.users, params.rooms, params.minutes
        );
        self.world.into_report(scenario, seed, self.counters)
    }
}

/// The message an action is about.
fn message_of(action: &MessageAction) -> MessageId {
    use MessageAction as A;
    match action {
        A::Post { message, .. }
        | A::Edit { message, .. }
        | A::Delete { message, .. }
        | A::React { message, .. }
        | A::Unreact { message, .. }
        | A::Follow { message, .. }
        | A::Unfollow { message, .. }
        | A::Star { message, .. }
        | A::Unstar { message, .. }
        | A::Report { message, .. } => *message,
    }
}

/// One message action as it went: who acted with what standing, the message before and after,
/// the outcome and the stream version before and after.
#[derive(Debug)]
struct ActionCheck<'a> {
    action: &'a MessageAction,
    /// The actor was a member before.
    member: bool,
    /// The actor was an owner or moderator before (never in a conversation).
    may_moderate: bool,
    /// The room's status before; `None` for a conversation.
    status: Option<RoomStatus>,
    before: Option<&'a Message>,
    after: Option<&'a Message>,
    outcome: &'a Result<usize, Why>,
    versions: (u64, u64),
}

impl ActionCheck<'_> {
    fn violations(&self) -> Vec<String> {
        use MessageAction as A;
        let mut v = Vec::new();
        let actor = self.action.actor();
        let what = match self.action {
            A::Post { .. } => "post",
            A::Edit { .. } => "edit",
            A::Delete { .. } => "delete",
            A::React { .. } => "reaction",
            A::Unreact { .. } => "unreaction",
            A::Follow { .. } | A::Unfollow { .. } => "follow",
            A::Star { .. } | A::Unstar { .. } => "star",
            A::Report { .. } => "report",
        };
        let permitted = |m: &Message| m.author == *actor || self.may_moderate;
        let changed = self.before != self.after || self.versions.0 != self.versions.1;
        match self.outcome {
            Err(why) => {
                if changed {
                    v.push(format!(
                        "a refused {what} by {actor} ({why:?}) changed something"
                    ));
                }
                if *why == Why::NotAuthor
                    && let Some(b) = self.before
                    && permitted(b)
                {
                    v.push(format!("{actor} was refused a permitted {what}"));
                }
            }
            Ok(0) => {
                if changed {
                    v.push(format!(
                        "a {what} by {actor} that did nothing changed something"
                    ));
                }
            }
            Ok(_) => {
                if !self.member {
                    v.push(format!("{actor}, not a member, got a {what} through"));
                }
                if self.action.writes()
                    && let Some(status) = self.status.filter(|s| *s != RoomStatus::Active)
                {
                    v.push(format!("a {what} by {actor} landed in a {status:?} room"));
                }
                let Some(after) = self.after else {
                    v.push(format!("the message of an accepted {what} is gone"));
                    return v;
                };
                match (self.action, self.before) {
                    (A::Post { author, draft, .. }, None)
                        if after.author != *author || after.text != draft.text =>
                    {
                        v.push(format!("{author}'s post shows {after:?}"));
                    }
                    (A::Post { .. }, None) => {}
                    (A::Post { .. }, Some(_)) => v.push(format!("{actor} posted over a message")),
                    (A::Edit { text, .. }, Some(b)) => {
                        if !permitted(b) {
                            v.push(format!("{actor} edited {}'s message", b.author));
                        }
                        if after.text != *text || !after.edited {
                            v.push(format!("an accepted edit by {actor} shows {after:?}"));
                        }
                    }
                    (A::Delete { .. }, Some(b)) => {
                        if !permitted(b) {
                            v.push(format!("{actor} deleted {}'s message", b.author));
                        }
                        if !after.deleted || !after.text.is_empty() || !after.reactions.is_empty() {
                            v.push(format!("an accepted delete by {actor} shows {after:?}"));
                        }
                    }
                    (A::React { user, emoji, .. }, Some(_))
                        if !after.reactions.get(emoji).is_some_and(|u| u.contains(user)) =>
                    {
                        v.push(format!("{user}'s {emoji} is missing"));
                    }
                    (A::Unreact { user, emoji, .. }, Some(_))
                        if after.reactions.get(emoji).is_some_and(|u| u.contains(user)) =>
                    {
                        v.push(format!("{user}'s {emoji} is still there"));
                    }
                    (A::Follow { user, .. }, Some(_)) if !after.followers.contains(user) => {
                        v.push(format!("{user} follows but is not a follower"));
                    }
                    (A::Unfollow { user, .. }, Some(_)) if after.followers.contains(user) => {
                        v.push(format!("{user} unfollowed but still follows"));
                    }
                    (A::Star { user, .. }, Some(_)) if !after.starred_by.contains(user) => {
                        v.push(format!("{user} starred but it is not starred"));
                    }
                    (A::Unstar { user, .. }, Some(_)) if after.starred_by.contains(user) => {
                        v.push(format!("{user} unstarred but it is still starred"));
                    }
                    (A::Report { by, .. }, Some(_)) if !after.reported_by.contains(by) => {
                        v.push(format!("{by} reported but it is not reported"));
                    }
                    (_, None) => v.push(format!("an accepted {what} on an unknown message")),
                    _ => {}
                }
            }
        }
        v
    }
}

/// Reactions, deletions and thread replies of every message against what the events say.
fn message_violations<'a>(
    label: &str,
    shadow: &Shadow,
    get: impl Fn(&MessageId) -> Option<&'a Message>,
) -> Vec<String> {
    let mut v = Vec::new();
    let none = BTreeMap::new();
    for id in &shadow.order {
        let Some(m) = get(id) else {
            v.push(format!("{label}: message {id} is missing"));
            continue;
        };
        let want = shadow.reactions.get(id).unwrap_or(&none);
        if m.reactions != *want {
            v.push(format!(
                "{label}: {id} shows reactions {:?}, its events say {want:?}",
                m.reactions
            ));
        }
        if m.reactions.values().any(BTreeSet::is_empty) {
            v.push(format!("{label}: {id} shows an emoji nobody reacted with"));
        }
        if m.deleted != shadow.deleted.contains(id) {
            v.push(format!("{label}: {id} deleted={}", m.deleted));
        }
        if m.deleted && (!m.text.is_empty() || !m.attachments.is_empty() || !m.reactions.is_empty())
        {
            v.push(format!("{label}: deleted {id} still shows content"));
        }
        let replies = shadow.replies.get(id).copied().unwrap_or(0);
        if m.replies != replies {
            v.push(format!(
                "{label}: {id} counts {} replies, {replies} were posted",
                m.replies
            ));
        }
        if let Some(root) = m.thread
            && get(&root).is_none_or(|r| r.thread.is_some())
        {
            v.push(format!(
                "{label}: reply {id} hangs off {root}, not a thread root"
            ));
        }
    }
    v
}

/// The invariants of one channel room, between steps.
fn room_violations(room: &ChatRoom) -> Vec<String> {
    let mut v = Vec::new();
    let s = &room.instance.state;
    let label = format!("room {}", room.id);
    let members: BTreeSet<UserId> = s.members().map(|(u, _)| u.clone()).collect();
    if members != room.shadow.members {
        v.push(format!(
            "{label}: members {members:?}, its events say {:?}",
            room.shadow.members
        ));
    }
    match s.status() {
        RoomStatus::Absent => v.push(format!("{label} was never created")),
        RoomStatus::Active | RoomStatus::Archived => {
            if s.owners().next().is_none() {
                v.push(format!("{label} has no owner"));
            }
            v.extend(message_violations(&label, &room.shadow, |id| s.message(id)));
        }
        RoomStatus::Deleted => {
            if !members.is_empty() {
                v.push(format!("{label} is deleted but has members"));
            }
            if room.shadow.order.iter().any(|id| s.message(id).is_some()) {
                v.push(format!("{label} is deleted but keeps messages"));
            }
        }
    }
    let name = s.name();
    if name != room.expected_name {
        v.push(format!(
            "{label} is named {name:?}, expected {:?}",
            room.expected_name
        ));
    }
    if name.chars().any(char::is_whitespace)
        || RoomName::parse(name).map(|n| n.as_str() == name) != Ok(true)
    {
        v.push(format!("{label}: name {name:?} is not normalised"));
    }
    v
}

/// The invariants of one conversation, between steps.
fn conversation_violations(conv: &ChatConv) -> Vec<String> {
    let mut v = Vec::new();
    let s = &conv.instance.state;
    let label = format!("conversation {}", conv.id);
    let members: BTreeSet<UserId> = s.members().cloned().collect();
    if members != conv.shadow.members {
        v.push(format!(
            "{label}: members {members:?}, its events say {:?}",
            conv.shadow.members
        ));
    }
    match s.kind() {
        Some(ConversationKind::Direct) if members.len() != 2 => {
            v.push(format!(
                "{label}: a direct conversation with {} people",
                members.len()
            ));
        }
        Some(ConversationKind::Group) if members.len() > MAX_GROUP_MEMBERS => {
            v.push(format!("{label}: a group of {}", members.len()));
        }
        None => v.push(format!("{label} was never started")),
        _ => {}
    }
    v.extend(message_violations(&label, &conv.shadow, |id| s.message(id)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::Aggregate;

    fn small() -> ChatBurst {
        ChatBurst {
            users: 16,
            rooms: 4,
            minutes: 20,
            bursts_per_hour: Some(90),
            actions_per_hour: Some(600),
        }
    }

    #[test]
    fn the_same_seed_gives_a_byte_identical_log() {
        let a = run_chat_burst(&small(), 42, &mut |_, _| {});
        let b = run_chat_burst(&small(), 42, &mut |_, _| {});
        assert_eq!(a.log_sha256, b.log_sha256);
        assert_eq!(a, b);
        let c = run_chat_burst(&small(), 43, &mut |_, _| {});
        assert_ne!(a.log_sha256, c.log_sha256, "another seed, another chat");
        assert!(a.scenario.starts_with("chat-burst"));
        assert!(a.counters["posts"] > 100, "{:?}", a.counters);
        assert!(a.violations.is_empty(), "{:?}", a.violations);
    }

    #[test]
    fn a_hundred_seeds_without_a_violation() {
        let params = ChatBurst {
            users: 14,
            rooms: 4,
            minutes: 20,
            bursts_per_hour: Some(100),
            actions_per_hour: Some(600),
        };
        let mut paths = BTreeMap::<&'static str, u64>::new();
        let mut failures = Vec::new();
        for seed in 0..100 {
            let r = run_chat_burst(&params, seed, &mut |_, _| {});
            if !r.violations.is_empty() {
                failures.push(format!("seed {seed}:\n  {}", r.violations.join("\n  ")));
            }
            for (k, v) in r.counters {
                *paths.entry(k).or_default() += v;
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        // The seeds exercise every path the scenario has.
        for path in [
            "posts",
            "thread replies",
            "quotes",
            "files",
            "posts refused: not a member",
            "posts refused: archived room",
            "posts refused: deleted room",
            "posts refused: empty",
            "posts refused: too long",
            "edits by the author",
            "edits by a moderator",
            "edits refused: not the author",
            "deletes by the author",
            "deletes by a moderator",
            "deletes refused: not the author",
            "reactions",
            "reactions taken back",
            "reactions refused: not an emoji",
            "follows",
            "unfollows",
            "stars",
            "unstars",
            "reports",
            "joins",
            "joins refused: private",
            "members added",
            "adds refused: private room, plain member",
            "leaves",
            "leaves refused: last owner",
            "kicks",
            "kicks refused: not a moderator",
            "kicks refused: owner",
            "renames",
            "renames refused: bad name",
            "renames refused: not a moderator",
            "archives",
            "archives refused: not owner",
            "restores",
            "restores refused: not owner",
            "moderators appointed",
            "ownership transfers",
            "closes",
            "reopens",
            "rooms deleted",
            "direct conversations started",
            "group conversations started",
            "direct messages",
            "conversations hidden",
            "conversations shown",
            "conversations shown again by a post",
            "group members added",
            "adds refused: direct conversation",
            "group leaves",
            "leaves refused: direct conversation",
        ] {
            assert!(
                paths.get(path).copied().unwrap_or(0) > 0,
                "{path} never happened: {paths:?}"
            );
        }
    }

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn msg(n: u128) -> MessageId {
        MessageId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn room_id() -> RoomId {
        RoomId::parse("crafted").unwrap_or_else(|e| panic!("{e}"))
    }

    fn posted(n: u128, author: &str, thread: Option<MessageId>) -> RoomEvent {
        RoomEvent::RoomMessagePosted {
            room: room_id(),
            message: msg(n),
            author: user(author),
            text: "hello".into(),
            attachments: Vec::new(),
            quote: None,
            thread,
        }
    }

    /// A room rebuilt from `events`, with the scenario's account folded from `shadow_events`.
    fn crafted(events: &[RoomEvent], shadow_events: &[RoomEvent]) -> ChatRoom {
        let at = crate::world::start_time();
        let mut shadow = Shadow::default();
        shadow.fold_room(shadow_events);
        ChatRoom {
            stream: StreamId::room(
                &TenantId::parse("sim").unwrap_or_else(|e| panic!("{e}")),
                &room_id(),
            ),
            id: room_id(),
            instance: Instance {
                state: ChannelRoom::replay(events.iter().map(|e| (e, at))),
                version: events.len() as u64,
            },
            shadow,
            expected_name: "crafted-room".into(),
        }
    }

    fn created() -> RoomEvent {
        RoomEvent::RoomCreated {
            room: room_id(),
            name: "crafted-room".into(),
            created_by: user("ann"),
            members: vec![user("bob")],
            visibility: RoomVisibility::Public,
        }
    }

    fn reacted(n: u128, who: &str) -> RoomEvent {
        RoomEvent::RoomReactionAdded {
            room: room_id(),
            message: msg(n),
            user: user(who),
            emoji: "👍".into(),
        }
    }

    #[test]
    fn the_room_checker_sees_wrong_reactions_replies_owners_and_names() {
        let history = [
            created(),
            posted(1, "ann", None),
            posted(2, "bob", Some(msg(1))),
            reacted(1, "bob"),
        ];
        let room = crafted(&history, &history);
        assert!(
            room_violations(&room).is_empty(),
            "{:?}",
            room_violations(&room)
        );

        // The room shows a reaction its events (as the scenario folded them) never had.
        let room = crafted(&history, &history[..3]);
        let v = room_violations(&room);
        assert!(v.iter().any(|s| s.contains("shows reactions")), "{v:?}");

        // A reply the room does not count.
        let mut room = crafted(&history, &history);
        room.shadow.replies.insert(msg(1), 2);
        let v = room_violations(&room);
        assert!(
            v.iter()
                .any(|s| s.contains("counts 1 replies, 2 were posted")),
            "{v:?}"
        );

        // The only owner left (history forced past the rule): the room has no owner.
        let mut ownerless = history.to_vec();
        ownerless.push(RoomEvent::RoomMemberLeft {
            room: room_id(),
            user: user("ann"),
        });
        let room = crafted(&ownerless, &ownerless);
        let v = room_violations(&room);
        assert!(v.iter().any(|s| s.contains("has no owner")), "{v:?}");

        // A name with a space in it.
        let mut spaced = history.to_vec();
        spaced.push(RoomEvent::RoomRenamed {
            room: room_id(),
            name: "crafted room".into(),
            previous: "crafted-room".into(),
            by: user("ann"),
        });
        let mut room = crafted(&spaced, &spaced);
        room.expected_name = "crafted room".into();
        let v = room_violations(&room);
        assert!(v.iter().any(|s| s.contains("is not normalised")), "{v:?}");
    }

    #[test]
    fn the_action_checker_catches_a_refused_edit_that_changed_the_message() {
        let room = crafted(&[created(), posted(1, "ann", None)], &[]);
        let before = room.instance.state.message(&msg(1)).cloned();
        let mut edited = before.clone();
        if let Some(m) = edited.as_mut() {
            m.text = "changed".into();
            m.edited = true;
        }
        let action = MessageAction::Edit {
            message: msg(1),
            text: "changed".into(),
            by: user("bob"),
        };
        let refused = Err(Why::NotAuthor);
        let check = |after: Option<&Message>, outcome: &Result<usize, Why>, may: bool| {
            ActionCheck {
                action: &action,
                member: true,
                may_moderate: may,
                status: Some(RoomStatus::Active),
                before: before.as_ref(),
                after,
                outcome,
                versions: (2, 2),
            }
            .violations()
        };
        assert!(check(before.as_ref(), &refused, false).is_empty());
        let v = check(edited.as_ref(), &refused, false);
        assert!(v.iter().any(|s| s.contains("changed something")), "{v:?}");
        // Accepted although bob is neither the author nor a moderator.
        let v = check(edited.as_ref(), &Ok(1), false);
        assert!(
            v.iter().any(|s| s.contains("bob edited ann's message")),
            "{v:?}"
        );
        // Refused although bob moderates.
        let v = check(before.as_ref(), &refused, true);
        assert!(
            v.iter().any(|s| s.contains("refused a permitted edit")),
            "{v:?}"
        );
        // A post that lands in an archived room, by a non-member.
        let post = MessageAction::Post {
            message: msg(5),
            author: user("eve"),
            draft: MessageDraft::text("hi"),
        };
        let posted_msg = Message {
            author: user("eve"),
            text: "hi".into(),
            attachments: Vec::new(),
            quote: None,
            thread: None,
            edited: false,
            deleted: false,
            reactions: BTreeMap::new(),
            followers: BTreeSet::new(),
            starred_by: BTreeSet::new(),
            reported_by: BTreeSet::new(),
            replies: 0,
        };
        let v = ActionCheck {
            action: &post,
            member: false,
            may_moderate: false,
            status: Some(RoomStatus::Archived),
            before: None,
            after: Some(&posted_msg),
            outcome: &Ok(1),
            versions: (2, 3),
        }
        .violations();
        assert!(v.iter().any(|s| s.contains("not a member")), "{v:?}");
        assert!(v.iter().any(|s| s.contains("Archived room")), "{v:?}");
    }
}
