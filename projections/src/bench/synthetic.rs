//! A synthetic busy log for the rebuild benchmark, written straight from the event model (this
//! crate cannot use the engine): one tenant with departments, a presence list and users, each
//! with a provisioned, registered extension and a voicemail box; then calls between users and
//! to and from a trunk, each following the event sequences the engine's call aggregate decides
//! (answered, no answer with and without voicemail, cancelled by the caller, busy, rejected),
//! with the extensions' call observations and line states, voicemail deposits and reads with
//! their message-waiting counts, and presence and DND changes. Seeded: the same parameters give
//! every stream the same events (how the streams interleave within a chunk depends on the
//! store's writer).
//!
//! Calls overlap in time; a user is in one call at a time (a call to a user already in one is
//! refused busy). Events are generated call by call, then each chunk is sorted by time and
//! appended stream by stream, concurrently, so the log interleaves the streams the way a busy
//! system does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use events::codec::{Metadata, encode};
use events::ids::{
    CallId, DepartmentId, DeviceContactId, EventId, ExtensionNumber, LegId, PhoneNumber,
    PresenceStateId, RecordingId, StreamId, TenantId, TrunkId, UserId, VoicemailMessageId,
};
use events::model::{
    CallEvent, CallOrigin, DepositReason, DeviceState, Direction, DirectoryEvent, Disposition,
    Event, ExtensionCallState, ExtensionEvent, HangupCause, HangupSide, LegRole, LineState, Party,
    PresenceSource, PresenceStateType, SettingSource, Transport, UserRole, VoicemailEvent,
    VoicemailFolder, VoicemailReason,
};
use events::{EventLog, ExpectedVersion, IdGen, LogError, SeededIds};
use futures_util::future::try_join_all;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Parameters of the synthetic log.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub seed: u64,
    /// Stop starting calls once this many events are written (the last calls finish).
    pub events: u64,
    pub users: u32,
    pub departments: u32,
    /// Calls started per second of simulated time.
    pub calls_per_sec: f64,
}

impl Default for Synthetic {
    fn default() -> Self {
        Self {
            seed: 1,
            events: 1_000_000,
            users: 2_000,
            departments: 4,
            calls_per_sec: 4.0,
        }
    }
}

/// Items are buffered per chunk, sorted by time, and turned into events; voicemail items become
/// events only then, so message counts follow time order.
enum Item {
    Event(Event),
    Deposit {
        mailbox: ExtensionNumber,
        caller: Party,
        call: CallId,
        duration_ms: u64,
    },
    Read {
        mailbox: ExtensionNumber,
        by: UserId,
    },
}

struct User {
    user: UserId,
    extension: ExtensionNumber,
    party: Party,
    free_at: DateTime<Utc>,
    dnd: bool,
}

#[derive(Default)]
struct Mailbox {
    unread: Vec<VoicemailMessageId>,
    old: u32,
}

impl Mailbox {
    /// The box's message-waiting counts as they are now.
    fn waiting(&self, mailbox: ExtensionNumber) -> Event {
        VoicemailEvent::MessageWaitingChanged {
            mailbox,
            new_messages: u32::try_from(self.unread.len()).unwrap_or(u32::MAX),
            old_messages: self.old,
        }
        .into()
    }
}

struct Gen {
    rng: ChaCha20Rng,
    ids: SeededIds,
    tenant: TenantId,
    trunk: TrunkId,
    now: DateTime<Utc>,
    users: Vec<User>,
    presence: Vec<(PresenceStateId, PresenceStateType)>,
    pending: Vec<(DateTime<Utc>, u64, StreamId, Item)>,
    seq: u64,
    versions: HashMap<StreamId, u64>,
    mailboxes: HashMap<ExtensionNumber, Mailbox>,
    written: u64,
}

const CHUNK: usize = 20_000;
const RUN: usize = 64;

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    match s.parse() {
        Ok(v) => v,
        // The generator only builds ids from its own well-formed templates.
        Err(e) => unreachable!("synthetic id {s:?} does not parse: {e:?}"),
    }
}

/// Writes the synthetic log to `log` (which should be empty); returns the events written.
pub async fn populate(log: &Arc<dyn EventLog>, params: &Synthetic) -> Result<u64, LogError> {
    let tenant: TenantId = parse("bench");
    let mut g = Gen {
        rng: ChaCha20Rng::seed_from_u64(params.seed),
        ids: SeededIds::new(params.seed ^ 0x5eed),
        trunk: parse("carrier"),
        now: Utc
            .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
            .single()
            .unwrap_or_default(),
        users: Vec::new(),
        presence: [
            ("available", PresenceStateType::Available),
            ("brb", PresenceStateType::Away),
            ("lunch", PresenceStateType::Away),
            ("busy", PresenceStateType::Dnd),
            ("away", PresenceStateType::Away),
        ]
        .into_iter()
        .map(|(s, t)| (parse(s), t))
        .collect(),
        pending: Vec::new(),
        seq: 0,
        versions: HashMap::new(),
        mailboxes: HashMap::new(),
        written: 0,
        tenant,
    };
    g.directory(params);
    g.flush(log).await?;
    let rate = params.calls_per_sec.max(0.01);
    while g.written + g.pending.len() as u64 <= params.events {
        let u: f64 = g.rng.random_range(f64::EPSILON..1.0);
        g.now += TimeDelta::microseconds((-u.ln() / rate * 1e6) as i64);
        g.call();
        if g.rng.random_bool(0.05) {
            g.presence_change();
        }
        if g.pending.len() >= CHUNK {
            g.flush(log).await?;
        }
    }
    g.flush(log).await?;
    Ok(g.written)
}

fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    u64::try_from((to - from).num_milliseconds()).unwrap_or(0)
}

impl Gen {
    fn at(&mut self, at: DateTime<Utc>, stream: StreamId, item: Item) {
        self.seq += 1;
        self.pending.push((at, self.seq, stream, item));
    }

    fn event(&mut self, at: DateTime<Utc>, stream: StreamId, event: impl Into<Event>) {
        self.at(at, stream, Item::Event(event.into()));
    }

    fn secs(&mut self, lo: f64, hi: f64) -> TimeDelta {
        TimeDelta::milliseconds((self.rng.random_range(lo..hi) * 1000.0) as i64)
    }

    fn uuid(&self) -> uuid::Uuid {
        self.ids.next_uuid()
    }

    fn directory(&mut self, params: &Synthetic) {
        let stream = StreamId::directory(&self.tenant);
        let t = self.now;
        self.event(
            t,
            stream.clone(),
            DirectoryEvent::TenantCreated {
                tenant: self.tenant.clone(),
                reseller: None,
                name: "Bench".into(),
                sip_domain: "bench".into(),
            },
        );
        let departments: Vec<DepartmentId> = (0..params.departments.max(1))
            .map(|d| parse(&format!("dept-{d}")))
            .collect();
        for d in &departments {
            self.event(
                t,
                stream.clone(),
                DirectoryEvent::DepartmentCreated {
                    department: d.clone(),
                    name: format!("Department {d}"),
                },
            );
        }
        let labels = ["Available", "Be right back", "Out to lunch", "Busy", "Away"];
        for (i, (state, state_type)) in self.presence.clone().into_iter().enumerate() {
            self.event(
                t,
                stream.clone(),
                DirectoryEvent::PresenceStateAdded {
                    state,
                    label: labels[i % labels.len()].into(),
                    state_type,
                    position: u32::try_from(i).unwrap_or(0),
                },
            );
        }
        for k in 0..params.users.max(2) {
            let number = format!("{}", 20_000 + k);
            let user: UserId = parse(&number);
            let extension: ExtensionNumber = parse(&number);
            let department = departments[k as usize % departments.len()].clone();
            let name = format!("User {number}");
            self.event(
                t,
                stream.clone(),
                DirectoryEvent::UserCreated {
                    user: user.clone(),
                    display_name: name.clone(),
                    extension: extension.clone(),
                    department: department.clone(),
                    profile: parse("panel"),
                    role: UserRole::User,
                    email: None,
                },
            );
            if k % 50 == 0 {
                for d in &departments {
                    self.event(
                        t,
                        stream.clone(),
                        DirectoryEvent::CallPanelGranted {
                            user: user.clone(),
                            department: d.clone(),
                            by: None,
                        },
                    );
                }
            }
            let ext_stream = StreamId::extension(&self.tenant, &extension);
            self.event(
                t,
                ext_stream.clone(),
                ExtensionEvent::ExtensionProvisioned {
                    extension: extension.clone(),
                    user: user.clone(),
                    display_name: name.clone(),
                    department: department.clone(),
                },
            );
            self.event(
                t,
                ext_stream.clone(),
                ExtensionEvent::DeviceRegistered {
                    extension: extension.clone(),
                    contact: DeviceContactId::from_uuid(self.uuid()),
                    contact_uri: format!("sip:{number}@10.0.0.1:5060"),
                    transport: Transport::Udp,
                    source: "10.0.0.1:5060".into(),
                    user_agent: Some("bench phone".into()),
                    expires_secs: 3600,
                    expires_at: t + TimeDelta::hours(1),
                },
            );
            self.line(t, &extension, LineState::Idle, &[]);
            self.event(
                t,
                StreamId::voicemail(&self.tenant, &extension),
                VoicemailEvent::VoicemailBoxCreated {
                    mailbox: extension.clone(),
                    owner: user.clone(),
                    department: Some(department.clone()),
                },
            );
            let party = Party::internal(extension.clone(), user.clone(), department, name);
            self.users.push(User {
                user,
                extension,
                party,
                free_at: t,
                dnd: false,
            });
        }
    }

    fn line(
        &mut self,
        at: DateTime<Utc>,
        ext: &ExtensionNumber,
        state: LineState,
        calls: &[CallId],
    ) {
        let device_state = match state {
            LineState::Offline => DeviceState::Unavailable,
            LineState::Idle => DeviceState::NotInUse,
            LineState::Ringing => DeviceState::Ringing,
            LineState::Calling | LineState::OnCall => DeviceState::InUse,
            LineState::OnHold => DeviceState::OnHold,
        };
        self.event(
            at,
            StreamId::extension(&self.tenant, ext),
            ExtensionEvent::LineStateChanged {
                extension: ext.clone(),
                state,
                device_state,
                calls: calls.to_vec(),
            },
        );
    }

    /// The extension's part in `call` changed: its observation and the line that follows.
    fn observe(
        &mut self,
        at: DateTime<Utc>,
        user: Option<usize>,
        call: CallId,
        state: ExtensionCallState,
    ) {
        let Some(i) = user else { return };
        let ext = self.users[i].extension.clone();
        self.event(
            at,
            StreamId::extension(&self.tenant, &ext),
            ExtensionEvent::ExtensionCallObserved {
                extension: ext.clone(),
                call,
                state,
            },
        );
        let (line, calls) = match state {
            ExtensionCallState::Ringing => (LineState::Ringing, vec![call]),
            ExtensionCallState::Calling => (LineState::Calling, vec![call]),
            ExtensionCallState::Answered => (LineState::OnCall, vec![call]),
            ExtensionCallState::Held => (LineState::OnHold, vec![call]),
            ExtensionCallState::Ended => (LineState::Idle, vec![]),
        };
        self.line(at, &ext, line, &calls);
    }

    fn presence_change(&mut self) {
        let i = self.rng.random_range(0..self.users.len());
        let pick = self.rng.random_range(0..self.presence.len());
        let (state, state_type) = self.presence[pick].clone();
        let at = self.now.max(self.users[i].free_at);
        let ext = self.users[i].extension.clone();
        let stream = StreamId::extension(&self.tenant, &ext);
        self.event(
            at,
            stream.clone(),
            ExtensionEvent::PresenceSet {
                extension: ext.clone(),
                user: self.users[i].user.clone(),
                state,
                state_type,
                message: None,
                source: PresenceSource::User,
                by: None,
            },
        );
        let dnd = state_type == PresenceStateType::Dnd;
        if dnd != self.users[i].dnd {
            self.users[i].dnd = dnd;
            self.event(
                at,
                stream,
                ExtensionEvent::DoNotDisturbChanged {
                    extension: ext,
                    enabled: dnd,
                    source: SettingSource::PresenceRule,
                    by: None,
                },
            );
        }
    }

    fn external(&mut self) -> Party {
        let n = self.rng.random_range(100_000u32..999_999);
        Party::external(parse(&format!("+4930{n}")), None, self.trunk.clone())
    }

    /// One call, from start to end.
    fn call(&mut self) {
        let t0 = self.now;
        let n = self.users.len();
        let kind: f64 = self.rng.random_range(0.0..1.0);
        let pick_free = |g: &mut Gen, except: Option<usize>| -> Option<usize> {
            (0..5).find_map(|_| {
                let i = g.rng.random_range(0..n);
                (Some(i) != except && g.users[i].free_at <= t0 && !g.users[i].dnd).then_some(i)
            })
        };
        // (caller user, callee user, caller party, callee party, direction)
        let (a, b, caller, callee, direction) = if kind < 0.15 {
            let b = self.rng.random_range(0..n);
            let caller = self.external();
            (
                None,
                Some(b),
                caller,
                self.users[b].party.clone(),
                Direction::Inbound,
            )
        } else if kind < 0.25 {
            let Some(a) = pick_free(self, None) else {
                return;
            };
            let callee = self.external();
            (
                Some(a),
                None,
                self.users[a].party.clone(),
                callee,
                Direction::Outbound,
            )
        } else {
            let Some(a) = pick_free(self, None) else {
                return;
            };
            let mut b = self.rng.random_range(0..n);
            if b == a {
                b = (b + 1) % n;
            }
            (
                Some(a),
                Some(b),
                self.users[a].party.clone(),
                self.users[b].party.clone(),
                Direction::Internal,
            )
        };
        let call = CallId::from_uuid(self.uuid());
        let l1 = LegId::from_uuid(self.uuid());
        let l2 = LegId::from_uuid(self.uuid());
        let cs = StreamId::call(call);
        let dialled: PhoneNumber = callee.number.clone().unwrap_or_else(|| parse("0"));
        self.event(
            t0,
            cs.clone(),
            CallEvent::CallCreated {
                call,
                direction,
                caller: caller.clone(),
                callee: callee.clone(),
                dialled,
                origin: if a.is_some() {
                    CallOrigin::Device
                } else {
                    CallOrigin::Trunk
                },
                trunk: (direction != Direction::Internal).then(|| self.trunk.clone()),
                requested_by: None,
            },
        );
        self.event(
            t0,
            cs.clone(),
            CallEvent::LegCreated {
                call,
                leg: l1,
                role: LegRole::Caller,
                party: caller.clone(),
                contact: None,
                parent: None,
                ring_timeout_ms: None,
                voicemail: None,
            },
        );
        self.observe(t0, a, call, ExtensionCallState::Calling);
        let end_leg = |leg,
                       cause,
                       disposition,
                       side,
                       status,
                       created: DateTime<Utc>,
                       answered: Option<DateTime<Utc>>,
                       at: DateTime<Utc>| {
            CallEvent::LegEnded {
                call,
                leg,
                cause,
                disposition,
                ended_by: side,
                sip_status: status,
                duration_ms: ms(created, at),
                billable_ms: answered.map_or(0, |x| ms(x, at)),
            }
        };
        let call_end = |cause, disposition, at: DateTime<Utc>, talk: u64| CallEvent::CallEnded {
            call,
            cause,
            disposition,
            duration_ms: ms(t0, at),
            talk_ms: talk,
        };

        // The callee is busy: refused before anything rings.
        if let Some(bi) = b
            && (self.users[bi].free_at > t0 || self.users[bi].dnd)
        {
            let at = t0 + TimeDelta::milliseconds(40);
            self.event(
                at,
                cs.clone(),
                end_leg(
                    l1,
                    HangupCause::UserBusy,
                    Disposition::Busy,
                    HangupSide::Engine,
                    Some(486),
                    t0,
                    None,
                    at,
                ),
            );
            self.event(
                at,
                cs,
                call_end(HangupCause::UserBusy, Disposition::Busy, at, 0),
            );
            self.observe(at, a, call, ExtensionCallState::Ended);
            if let Some(ai) = a {
                self.users[ai].free_at = at;
            }
            return;
        }

        let t1 = t0 + TimeDelta::milliseconds(50);
        let voicemail = b.map(|bi| self.users[bi].extension.clone());
        self.event(
            t1,
            cs.clone(),
            CallEvent::LegCreated {
                call,
                leg: l2,
                role: LegRole::Callee,
                party: callee.clone(),
                contact: None,
                parent: Some(l1),
                ring_timeout_ms: Some(30_000),
                voicemail: voicemail.clone(),
            },
        );
        let tr = t1 + TimeDelta::milliseconds(50);
        self.event(tr, cs.clone(), CallEvent::LegRinging { call, leg: l2 });
        self.observe(tr, b, call, ExtensionCallState::Ringing);

        let r: f64 = self.rng.random_range(0.0..1.0);
        // Whether the callee's part ended before the call did (a ring timeout).
        let mut callee_done = false;
        let end = if r < 0.62 {
            // Answered, talked, hung up by either side; some calls are held for a while.
            let ta = tr + self.secs(2.0, 20.0);
            self.event(
                ta,
                cs.clone(),
                CallEvent::CallAnswered {
                    call,
                    leg: l2,
                    contact: None,
                },
            );
            self.event(
                ta,
                cs.clone(),
                CallEvent::CallAnswered {
                    call,
                    leg: l1,
                    contact: None,
                },
            );
            self.observe(ta, a, call, ExtensionCallState::Answered);
            self.observe(ta, b, call, ExtensionCallState::Answered);
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            let talk = TimeDelta::milliseconds((-u.ln() * 90_000.0) as i64 + 1000);
            let te = ta + talk;
            if self.rng.random_bool(0.1) {
                let held = ta + talk / 3;
                let resumed = ta + talk / 2;
                self.event(held, cs.clone(), CallEvent::CallHeld { call, leg: l2 });
                self.observe(held, b, call, ExtensionCallState::Held);
                self.event(
                    resumed,
                    cs.clone(),
                    CallEvent::CallResumed { call, leg: l2 },
                );
                self.observe(resumed, b, call, ExtensionCallState::Answered);
            }
            let (first, second, first_created, second_created) = if self.rng.random_bool(0.5) {
                (l1, l2, t0, t1)
            } else {
                (l2, l1, t1, t0)
            };
            let c = HangupCause::NormalClearing;
            let d = Disposition::Answered;
            self.event(
                te,
                cs.clone(),
                end_leg(
                    first,
                    c,
                    d,
                    HangupSide::Party,
                    None,
                    first_created,
                    Some(ta),
                    te,
                ),
            );
            self.event(
                te,
                cs.clone(),
                end_leg(
                    second,
                    c,
                    d,
                    HangupSide::Peer,
                    None,
                    second_created,
                    Some(ta),
                    te,
                ),
            );
            self.event(te, cs.clone(), call_end(c, d, te, ms(ta, te)));
            te
        } else if r < 0.78 {
            // Nobody answered within the ring timeout.
            let tt = t1 + TimeDelta::seconds(30);
            let nc = HangupCause::NoAnswer;
            let nd = Disposition::NoAnswer;
            self.event(
                tt,
                cs.clone(),
                end_leg(l2, nc, nd, HangupSide::Engine, None, t1, None, tt),
            );
            self.observe(tt, b, call, ExtensionCallState::Ended);
            callee_done = true;
            if let Some(bi) = b {
                self.users[bi].free_at = tt;
            }
            if let (Some(mailbox), true) = (voicemail, r < 0.74) {
                self.event(
                    tt,
                    cs.clone(),
                    CallEvent::CallSentToVoicemail {
                        call,
                        leg: l1,
                        mailbox: mailbox.clone(),
                        reason: VoicemailReason::Unavailable,
                        by: None,
                    },
                );
                self.event(
                    tt,
                    cs.clone(),
                    CallEvent::CallAnswered {
                        call,
                        leg: l1,
                        contact: None,
                    },
                );
                self.observe(tt, a, call, ExtensionCallState::Answered);
                let te = tt + self.secs(5.0, 40.0);
                let c = HangupCause::NormalClearing;
                let d = Disposition::Answered;
                self.event(
                    te,
                    cs.clone(),
                    end_leg(l1, c, d, HangupSide::Party, None, t0, Some(tt), te),
                );
                self.event(te, cs.clone(), call_end(c, d, te, 0));
                self.at(
                    te,
                    StreamId::voicemail(&self.tenant, &mailbox),
                    Item::Deposit {
                        mailbox: mailbox.clone(),
                        caller: caller.clone(),
                        call,
                        duration_ms: ms(tt, te),
                    },
                );
                if let Some(bi) = b
                    && self.rng.random_bool(0.4)
                {
                    let later = te + self.secs(60.0, 1800.0);
                    let by = self.users[bi].user.clone();
                    self.at(
                        later,
                        StreamId::voicemail(&self.tenant, &mailbox),
                        Item::Read { mailbox, by },
                    );
                }
                te
            } else {
                self.event(
                    tt,
                    cs.clone(),
                    end_leg(l1, nc, nd, HangupSide::Engine, Some(480), t0, None, tt),
                );
                self.event(tt, cs.clone(), call_end(nc, nd, tt, 0));
                tt
            }
        } else if r < 0.90 {
            // The caller gave up.
            let tc = tr + self.secs(1.0, 15.0);
            let c = HangupCause::OriginatorCancel;
            let d = Disposition::Cancelled;
            self.event(
                tc,
                cs.clone(),
                end_leg(l1, c, d, HangupSide::Party, None, t0, None, tc),
            );
            self.event(
                tc,
                cs.clone(),
                end_leg(l2, c, d, HangupSide::Peer, None, t1, None, tc),
            );
            self.event(tc, cs.clone(), call_end(c, d, tc, 0));
            tc
        } else {
            // The callee's phone refused: busy here, declined or failing.
            let tj = tr + self.secs(1.0, 6.0);
            let status = [486u16, 603, 503][self.rng.random_range(0..3)];
            let c = HangupCause::from_sip_status(status);
            let d = Disposition::of(false, c);
            self.event(
                tj,
                cs.clone(),
                end_leg(l2, c, d, HangupSide::Party, Some(status), t1, None, tj),
            );
            self.event(
                tj,
                cs.clone(),
                end_leg(l1, c, d, HangupSide::Engine, Some(status), t0, None, tj),
            );
            self.event(tj, cs.clone(), call_end(c, d, tj, 0));
            tj
        };
        self.observe(end, a, call, ExtensionCallState::Ended);
        if let Some(ai) = a {
            self.users[ai].free_at = end;
        }
        if let Some(bi) = b
            && !callee_done
        {
            self.observe(end, b, call, ExtensionCallState::Ended);
            self.users[bi].free_at = end;
        }
    }

    /// Turns the chunk into events in time order and appends them, stream by stream.
    async fn flush(&mut self, log: &Arc<dyn EventLog>) -> Result<(), LogError> {
        let mut items = std::mem::take(&mut self.pending);
        items.sort_by_key(|a| (a.0, a.1));
        let mut per_stream: BTreeMap<StreamId, Vec<events::EventRecord>> = BTreeMap::new();
        for (at, _, stream, item) in items {
            let events = self.expand(item);
            let out = per_stream.entry(stream).or_default();
            for event in events {
                let meta = Metadata::new(EventId::from_uuid(self.ids.next_uuid()), at)
                    .with_tenant(self.tenant.clone());
                out.push(encode(&event, meta));
            }
        }
        let mut jobs = Vec::with_capacity(per_stream.len());
        for (stream, records) in per_stream {
            let version = self.versions.entry(stream.clone()).or_insert(0);
            let start = *version;
            *version += records.len() as u64;
            self.written += records.len() as u64;
            let log = log.clone();
            jobs.push(async move {
                let mut expected = start;
                let mut records = records;
                while !records.is_empty() {
                    let rest = records.split_off(records.len().min(RUN));
                    let run = std::mem::replace(&mut records, rest);
                    let n = run.len() as u64;
                    log.append(&stream, ExpectedVersion::Exact(expected), run)
                        .await?;
                    expected += n;
                }
                Ok::<(), LogError>(())
            });
        }
        try_join_all(jobs).await?;
        Ok(())
    }

    /// The events an item stands for, at its place in time.
    fn expand(&mut self, item: Item) -> Vec<Event> {
        match item {
            Item::Event(e) => vec![e],
            Item::Deposit {
                mailbox,
                caller,
                call,
                duration_ms,
            } => {
                let message = VoicemailMessageId::from_uuid(self.ids.next_uuid());
                let recording = RecordingId::from_uuid(self.ids.next_uuid());
                let m = self.mailboxes.entry(mailbox.clone()).or_default();
                m.unread.push(message);
                let waiting = m.waiting(mailbox.clone());
                vec![
                    VoicemailEvent::VoicemailDeposited {
                        mailbox,
                        message,
                        caller,
                        call: Some(call),
                        reason: DepositReason::Unavailable,
                        forwarded_from: None,
                        duration_ms,
                        recording,
                        folder: VoicemailFolder::Inbox,
                    }
                    .into(),
                    waiting,
                ]
            }
            Item::Read { mailbox, by } => {
                let m = self.mailboxes.entry(mailbox.clone()).or_default();
                if m.unread.is_empty() {
                    return Vec::new();
                }
                let message = m.unread.remove(0);
                m.old += 1;
                let waiting = m.waiting(mailbox.clone());
                vec![
                    VoicemailEvent::VoicemailRead {
                        mailbox,
                        message,
                        by,
                    }
                    .into(),
                    waiting,
                ]
            }
        }
    }
}
