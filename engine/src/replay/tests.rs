use std::collections::BTreeSet;

use chrono::TimeDelta;
use events::codec::{Metadata, decode, encode};
use events::ids::{CallId, DeviceContactId, EventId, ExtensionNumber, LegId};
use events::model::{
    CallEvent, CallOrigin, Direction, ExtensionEvent, LegRole, PanelCard, PanelEvent, Party,
};

use super::scenario::{LogBuilder, office_day};
use super::*;
use crate::Aggregate;
use crate::call::{CallCommand, RingContact};
use crate::extension::{ExtensionCommand, RegisterContact};

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: fmt::Debug,
{
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

fn uuid_of<T: std::str::FromStr>(n: u64) -> T
where
    T::Err: fmt::Debug,
{
    parse(&format!("00000000-0000-0000-0000-{n:012x}"))
}

/// A small clean log: extension 1001 provisioned and registered, and a call from 1002 to 1001
/// that is rung, answered and hung up, interleaved.
struct Small {
    log: Vec<StoredEvent>,
    ext: StreamId,
    call: StreamId,
    contact: DeviceContactId,
    callee_leg: LegId,
}

fn small() -> Small {
    let mut b = LogBuilder::new("acme", 3);
    let tenant = b.tenant().clone();
    let number: ExtensionNumber = parse("1001");
    let ext_stream = StreamId::extension(&tenant, &number);
    let mut ext = Extension::default();
    b.run(
        &ext_stream,
        &mut ext,
        ExtensionCommand::Provision {
            extension: number.clone(),
            user: parse("1001"),
            display_name: "Reception".into(),
            department: parse("sales"),
        },
    );
    let contact: DeviceContactId = b.id();
    b.run(
        &ext_stream,
        &mut ext,
        ExtensionCommand::Register(RegisterContact {
            contact,
            contact_uri: "sip:1001@192.0.2.1:5060".into(),
            transport: events::model::Transport::Udp,
            source: "192.0.2.1:5060".into(),
            user_agent: None,
            expires_secs: 600,
        }),
    );
    let id: CallId = b.id();
    let call_stream = StreamId::call(id);
    let mut call = Call::default();
    let (caller_leg, callee_leg): (LegId, LegId) = (b.id(), b.id());
    let callee = Party::internal(number, parse("1001"), parse("sales"), "Reception");
    b.tick(10);
    b.run(
        &call_stream,
        &mut call,
        CallCommand::Offer {
            call: id,
            caller_leg,
            direction: Direction::Internal,
            caller: Party::internal(parse("1002"), parse("1002"), parse("sales"), "Sales"),
            callee: callee.clone(),
            dialled: parse("1001"),
            origin: CallOrigin::Device,
            caller_contact: None,
            trunk: None,
            requested_by: None,
        },
    );
    b.run(
        &call_stream,
        &mut call,
        CallCommand::Ring {
            parent: caller_leg,
            callee,
            role: LegRole::Callee,
            contacts: vec![RingContact {
                leg: callee_leg,
                contact: Some(contact),
            }],
            ring_timeout: TimeDelta::seconds(30),
            voicemail: None,
        },
    );
    b.run(
        &call_stream,
        &mut call,
        CallCommand::Ringing { leg: callee_leg },
    );
    b.run(
        &ext_stream,
        &mut ext,
        ExtensionCommand::CallLegStateObserved {
            call: id,
            state: events::model::ExtensionCallState::Ringing,
        },
    );
    b.tick(3);
    b.run(
        &call_stream,
        &mut call,
        CallCommand::Answer { leg: callee_leg },
    );
    b.tick(42);
    b.run(
        &call_stream,
        &mut call,
        CallCommand::HangUp {
            leg: callee_leg,
            cause: None,
        },
    );
    b.run(
        &ext_stream,
        &mut ext,
        ExtensionCommand::CallLegStateObserved {
            call: id,
            state: events::model::ExtensionCallState::Ended,
        },
    );
    assert!(call.is_ended(), "the small call ended");
    Small {
        log: b.log,
        ext: ext_stream,
        call: call_stream,
        contact,
        callee_leg,
    }
}

/// A stored event written by hand.
fn stored(
    position: u64,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    tenant: &str,
    event: impl Into<Event>,
) -> StoredEvent {
    let metadata = Metadata::new(uuid_of::<EventId>(1_000_000 + position), at)
        .with_tenant(parse::<TenantId>(tenant));
    StoredEvent {
        position: GlobalPosition(position),
        stream: stream.clone(),
        version,
        record: encode(&event.into(), metadata),
    }
}

/// [`stored`] at the log's next position, appended to it.
fn push(
    log: &mut Vec<StoredEvent>,
    stream: &StreamId,
    version: u64,
    at: DateTime<Utc>,
    tenant: &str,
    event: impl Into<Event>,
) {
    log.push(stored(
        next_position(log),
        stream,
        version,
        at,
        tenant,
        event,
    ));
}

/// Extension 1001 turns do-not-disturb on: an event any extension state takes.
fn dnd_on() -> ExtensionEvent {
    ExtensionEvent::DoNotDisturbChanged {
        extension: parse("1001"),
        enabled: true,
        source: events::model::SettingSource::User,
        by: None,
    }
}

fn last_of(log: &[StoredEvent], stream: &StreamId) -> StoredEvent {
    log.iter()
        .rev()
        .find(|e| &e.stream == stream)
        .cloned()
        .unwrap_or_else(|| panic!("no event of {stream}"))
}

fn next_position(log: &[StoredEvent]) -> u64 {
    log.last().map_or(1, |e| e.position.0 + 1)
}

fn renumber(log: &mut [StoredEvent]) {
    for (i, e) in log.iter_mut().enumerate() {
        e.position = GlobalPosition(i as u64 + 1);
    }
}

fn kinds(folded: &Folded) -> Vec<DivergenceKind> {
    folded
        .divergences()
        .iter()
        .map(|d| d.kind.clone())
        .collect()
}

fn state_of<'a>(folded: &'a Folded, stream: &StreamId) -> &'a AggregateState {
    folded
        .stream(stream)
        .unwrap_or_else(|| panic!("{stream} was not folded"))
        .state()
}

#[test]
fn the_small_log_is_clean() {
    let s = small();
    let folded = fold_stored(&s.log);
    assert!(folded.is_clean(), "{:#?}", folded.divergences());
    assert_eq!(folded.events(), s.log.len() as u64);
    assert_eq!(
        folded.last_position(),
        Some(GlobalPosition(s.log.len() as u64))
    );
    assert_eq!(folded.log_end(), s.log.last().map(|e| e.record.occurred_at));
    let calls = folded.categories()[&Category::Call];
    let exts = folded.categories()[&Category::Extension];
    assert_eq!((calls.streams, exts.streams), (1, 1));
    assert_eq!(calls.events + exts.events, s.log.len() as u64);
    assert_eq!(
        folded.stream(&s.call).map(FoldedStream::version),
        Some(calls.events)
    );
    assert_eq!(
        folded
            .stream(&s.ext)
            .and_then(|f| f.tenant())
            .map(TenantId::as_str),
        Some("acme")
    );
    // The decoded path folds the same.
    let decoded = fold(s.log.iter().map(|e| decode(e).expect("decodes")));
    assert!(decoded.is_clean());
    assert_eq!(decoded.events(), folded.events());
}

#[test]
fn an_office_day_of_every_aggregate_replays_clean_into_the_live_states() {
    let day = office_day(11);
    let folded = fold_stored(&day.log);
    assert!(
        folded.is_clean(),
        "{} divergences, first: {:#?}",
        folded.divergence_count(),
        folded.divergences().iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(folded.events(), day.log.len() as u64);
    for category in [
        Category::Directory,
        Category::Extension,
        Category::Call,
        Category::Queue,
        Category::Conference,
        Category::Room,
        Category::Conversation,
        Category::Voicemail,
    ] {
        assert!(
            folded
                .categories()
                .get(&category)
                .is_some_and(|c| c.events > 0),
            "the office day has no {category} events"
        );
    }
    // It is varied enough to mean something: every event type a `decide` of this engine
    // emits appears (what is left are facts no command produces yet, and categories without
    // an aggregate).
    let types: BTreeSet<&str> = day
        .log
        .iter()
        .map(|e| e.record.event_type.as_str())
        .collect();
    assert!(
        types.len() >= 140,
        "only {} event types: {types:?}",
        types.len()
    );

    // Replaying gives exactly the states the aggregates reached live.
    for (stream, live) in &day.extensions {
        match state_of(&folded, stream) {
            AggregateState::Extension(e) => assert_eq!(**e, *live, "{stream}"),
            other => panic!("{stream}: {other:?}"),
        }
    }
    for (stream, live) in &day.calls {
        match state_of(&folded, stream) {
            AggregateState::Call(c) => assert_eq!(**c, *live, "{stream}"),
            other => panic!("{stream}: {other:?}"),
        }
    }
    for (stream, live) in &day.boxes {
        match state_of(&folded, stream) {
            AggregateState::Voicemail(v) => assert_eq!(**v, *live, "{stream}"),
            other => panic!("{stream}: {other:?}"),
        }
    }
    match state_of(&folded, &day.queue.0) {
        AggregateState::Queue(q) => assert_eq!(**q, day.queue.1),
        other => panic!("{other:?}"),
    }
    match state_of(&folded, &day.conference.0) {
        AggregateState::Conference(c) => assert_eq!(**c, day.conference.1),
        other => panic!("{other:?}"),
    }
    match state_of(&folded, &day.directory.0) {
        AggregateState::Directory(d) => assert_eq!(**d, day.directory.1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pending_deadlines_are_the_live_states_timers_by_category() {
    let day = office_day(5);
    let folded = fold_stored(&day.log);
    let pending = pending_deadlines(&folded);

    let mut expected: BTreeMap<Category, Vec<(StreamId, DateTime<Utc>, usize)>> = BTreeMap::new();
    let mut add = |category, stream: &StreamId, deadlines: Vec<DateTime<Utc>>| {
        if let Some(earliest) = deadlines.iter().min() {
            expected.entry(category).or_default().push((
                stream.clone(),
                *earliest,
                deadlines.len(),
            ));
        }
    };
    for (stream, e) in &day.extensions {
        add(
            Category::Extension,
            stream,
            e.deadlines().into_iter().map(|d| d.at).collect(),
        );
    }
    for (stream, c) in &day.calls {
        add(
            Category::Call,
            stream,
            c.deadlines().into_iter().map(|d| d.at).collect(),
        );
    }
    add(
        Category::Queue,
        &day.queue.0,
        day.queue.1.deadlines().into_iter().map(|d| d.at).collect(),
    );
    add(
        Category::Conference,
        &day.conference.0,
        day.conference
            .1
            .deadlines()
            .into_iter()
            .map(|d| d.at)
            .collect(),
    );
    for list in expected.values_mut() {
        list.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    }
    let got: BTreeMap<Category, Vec<(StreamId, DateTime<Utc>, usize)>> = pending
        .iter()
        .map(|(c, list)| {
            (
                *c,
                list.iter()
                    .map(|p| (p.stream.clone(), p.earliest, p.count))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // The day ends with registered phones and one call still ringing.
    assert_eq!(pending.get(&Category::Call).map(Vec::len), Some(1));
    assert!(
        pending
            .get(&Category::Extension)
            .is_some_and(|l| l.len() >= 5)
    );
    for p in pending.values().flatten() {
        let instance = p.instance();
        assert_eq!(instance.stream, p.stream);
        assert_eq!(instance.tenant.as_ref(), Some(&day.tenant));
    }
    // Nothing was due yet when the log ended.
    let end = folded.log_end().expect("a log end");
    assert!(overdue(&pending, end).is_empty());
    // Forty seconds later the ringing call's timeout has passed; an hour later everything has.
    let later = overdue(&pending, end + TimeDelta::seconds(40));
    assert_eq!(
        later
            .iter()
            .map(|p| p.stream.category())
            .collect::<Vec<_>>(),
        vec![Category::Call]
    );
    let all: usize = pending.values().map(Vec::len).sum();
    assert_eq!(overdue(&pending, end + TimeDelta::hours(2)).len(), all);
}

#[test]
fn a_timer_that_should_have_fired_is_overdue_at_the_end_of_the_log() {
    let mut s = small();
    // Cut the call off after it was rung, and let the extension's log run past its timeout.
    let rung = s
        .log
        .iter()
        .position(|e| e.stream == s.call && e.record.event_type == "LegRinging")
        .expect("a LegRinging");
    s.log
        .retain(|e| e.stream != s.call || e.position.0 <= rung as u64 + 1);
    let at = s
        .log
        .iter()
        .map(|e| e.record.occurred_at)
        .max()
        .expect("events")
        + TimeDelta::minutes(5);
    let last = last_of(&s.log, &s.ext);
    push(&mut s.log, &s.ext, last.version + 1, at, "acme", dnd_on());
    let folded = fold_stored(&s.log);
    assert!(folded.is_clean(), "{:#?}", folded.divergences());
    let pending = pending_deadlines(&folded);
    let due = overdue(&pending, folded.log_end().expect("end"));
    assert_eq!(due.len(), 1, "{due:#?}");
    assert_eq!(due[0].stream, s.call);
    assert!(due[0].earliest < at);
}

#[test]
fn a_missing_version_is_a_gap_at_the_next_event_of_the_stream() {
    let mut s = small();
    let idx = s
        .log
        .iter()
        .position(|e| e.stream == s.call && e.version == 4)
        .expect("the call's 4th event");
    let removed = s.log.remove(idx);
    let next = s
        .log
        .iter()
        .find(|e| e.stream == s.call && e.version == 5)
        .cloned()
        .expect("the call's 5th event");
    let folded = fold_stored(&s.log);
    let first = folded.divergences().first().cloned().expect("a divergence");
    assert_eq!(
        first,
        Divergence {
            position: next.position,
            stream: s.call.clone(),
            version: 5,
            kind: DivergenceKind::VersionGap {
                expected: 4,
                found: 5
            },
        }
    );
    assert_eq!(
        first.to_string(),
        format!(
            "position {}, {} version 5: version 4 is missing (the stream goes on at 5)",
            next.position, s.call
        )
    );
    // The stream goes on from 5: no further version complaint.
    assert!(
        kinds(&folded)
            .iter()
            .skip(1)
            .all(|k| !matches!(k, DivergenceKind::VersionGap { .. })),
        "{:#?} (removed {})",
        folded.divergences(),
        removed.record.event_type
    );
    assert_eq!(
        folded.stream(&s.call).map(FoldedStream::version),
        Some(last_of(&s.log, &s.call).version)
    );
}

#[test]
fn a_wider_gap_names_every_missing_version() {
    let mut s = small();
    s.log
        .retain(|e| !(e.stream == s.call && (e.version == 3 || e.version == 4)));
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded).first(),
        Some(&DivergenceKind::VersionGap {
            expected: 3,
            found: 5
        })
    );
    assert!(
        folded.divergences()[0]
            .to_string()
            .ends_with("versions 3 to 4 are missing (the stream goes on at 5)")
    );
}

#[test]
fn a_repeated_version_is_reported_and_not_folded_twice() {
    let s = small();
    let clean = fold_stored(&s.log);
    let mut log = s.log.clone();
    let idx = log
        .iter()
        .position(|e| e.stream == s.call && e.record.event_type == "CallAnswered")
        .expect("CallAnswered");
    let copy = log[idx].clone();
    log.insert(idx + 1, copy);
    renumber(&mut log);
    let folded = fold_stored(&log);
    assert_eq!(kinds(&folded), vec![DivergenceKind::VersionRepeated]);
    assert_eq!(
        folded.divergences()[0].position,
        GlobalPosition(idx as u64 + 2)
    );
    match (state_of(&folded, &s.call), state_of(&clean, &s.call)) {
        (AggregateState::Call(a), AggregateState::Call(b)) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        folded.stream(&s.call).map(FoldedStream::events),
        clean.stream(&s.call).map(FoldedStream::events)
    );
    assert_eq!(folded.events(), clean.events() + 1);
}

#[test]
fn a_version_from_the_past_is_backwards() {
    let mut s = small();
    let last = last_of(&s.log, &s.call).version;
    let mut old = s
        .log
        .iter()
        .find(|e| e.stream == s.call && e.version == 2)
        .cloned()
        .expect("v2");
    old.position = GlobalPosition(next_position(&s.log));
    s.log.push(old);
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![DivergenceKind::VersionBackwards { last }]
    );
}

#[test]
fn positions_must_increase() {
    let mut s = small();
    let previous = s.log[4].position;
    s.log[5].position = previous;
    let folded = fold_stored(&s.log);
    assert_eq!(
        folded.divergences(),
        &[Divergence {
            position: previous,
            stream: s.log[5].stream.clone(),
            version: s.log[5].version,
            kind: DivergenceKind::PositionNotIncreasing { previous },
        }]
    );
}

#[test]
fn an_event_of_another_aggregate_is_not_folded() {
    let mut s = small();
    let last = last_of(&s.log, &s.call);
    push(
        &mut s.log,
        &s.call,
        last.version + 1,
        last.record.occurred_at,
        "acme",
        dnd_on(),
    );
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![DivergenceKind::WrongAggregate {
            event_type: "DoNotDisturbChanged",
            belongs_to: Category::Extension,
        }]
    );
    assert!(
        folded.divergences()[0]
            .to_string()
            .contains("DoNotDisturbChanged belongs to the extension aggregate")
    );
}

#[test]
fn an_event_evolve_had_to_ignore_is_a_divergence() {
    let mut s = small();
    let call = last_of(&s.log, &s.call);
    let ext = last_of(&s.log, &s.ext);
    let at = call.record.occurred_at.max(ext.record.occurred_at);
    let call_id = CallId::parse(s.call.id_part()).expect("a call id");
    // A ring for a leg the call never had, and a refresh of a contact never registered.
    push(
        &mut s.log,
        &s.call,
        call.version + 1,
        at,
        "acme",
        CallEvent::LegRinging {
            call: call_id,
            leg: uuid_of(0xdead),
        },
    );
    push(
        &mut s.log,
        &s.ext,
        ext.version + 1,
        at,
        "acme",
        ExtensionEvent::DeviceRegistrationRefreshed {
            extension: parse("1001"),
            contact: uuid_of(0xbeef),
            expires_secs: 600,
            expires_at: at + TimeDelta::seconds(600),
        },
    );
    // A DTMF digit changes nothing the call keeps, by design: not a divergence.
    push(
        &mut s.log,
        &s.call,
        call.version + 2,
        at,
        "acme",
        dtmf(call_id, s.callee_leg),
    );
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![
            DivergenceKind::Ignored {
                event_type: "LegRinging"
            },
            DivergenceKind::Ignored {
                event_type: "DeviceRegistrationRefreshed"
            },
        ]
    );
    let _ = s.contact;
}

/// The model's example `DtmfReceived`, moved to `call` and `leg`.
fn dtmf(call: CallId, leg: LegId) -> CallEvent {
    let example = Event::examples()
        .into_iter()
        .find_map(|e| match e {
            Event::Call(c @ CallEvent::DtmfReceived { .. }) => Some(c),
            _ => None,
        })
        .expect("an example DtmfReceived");
    let mut json = serde_json::to_value(&example).expect("serialises");
    json["call"] = serde_json::json!(call.to_string());
    json["leg"] = serde_json::json!(leg.to_string());
    let record = events::EventRecord {
        payload: json.to_string(),
        ..encode(&example.into(), Metadata::new(uuid_of(1), morning_at(0)))
    };
    match events::codec::decode_record(&record) {
        Ok(Event::Call(c)) => c,
        other => panic!("{other:?}"),
    }
}

fn morning_at(secs: i64) -> DateTime<Utc> {
    super::scenario::morning() + TimeDelta::seconds(secs)
}

#[test]
fn events_that_do_not_fit_the_state_are_misfits() {
    let mut s = small();
    let call = last_of(&s.log, &s.call);
    let ended = s
        .log
        .iter()
        .find(|e| e.stream == s.call && e.record.event_type == "CallEnded")
        .cloned()
        .expect("CallEnded");
    // The call ends a second time.
    let mut again = ended.clone();
    again.position = GlobalPosition(next_position(&s.log));
    again.version = call.version + 1;
    s.log.push(again);
    // A call stream that starts with a ring.
    let orphan: CallId = uuid_of(0x0bad);
    let orphan_stream = StreamId::call(orphan);
    push(
        &mut s.log,
        &orphan_stream,
        1,
        call.record.occurred_at,
        "acme",
        CallEvent::LegRinging {
            call: orphan,
            leg: uuid_of(7),
        },
    );
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![
            DivergenceKind::Misfit {
                event_type: "CallEnded",
                why: "the call had already ended",
            },
            DivergenceKind::Misfit {
                event_type: "LegRinging",
                why: "the call was not created yet",
            },
        ]
    );
}

#[test]
fn time_running_backwards_inside_a_stream_is_reported() {
    let mut s = small();
    let ext = last_of(&s.log, &s.ext);
    let earlier = ext.record.occurred_at - TimeDelta::seconds(30);
    push(
        &mut s.log,
        &s.ext,
        ext.version + 1,
        earlier,
        "acme",
        dnd_on(),
    );
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![DivergenceKind::TimeWentBackwards {
            previous: ext.record.occurred_at,
            at: earlier,
        }]
    );
    // Across streams, time may interleave: only within a stream it must not go back.
    assert!(
        folded.divergences()[0]
            .to_string()
            .contains("before the stream's previous event")
    );
}

#[test]
fn a_tenant_change_inside_a_stream_is_reported() {
    let mut s = small();
    let ext = last_of(&s.log, &s.ext);
    push(
        &mut s.log,
        &s.ext,
        ext.version + 1,
        ext.record.occurred_at,
        "globex",
        dnd_on(),
    );
    let folded = fold_stored(&s.log);
    assert_eq!(
        kinds(&folded),
        vec![DivergenceKind::TenantChanged {
            was: Some(parse("acme")),
            now: Some(parse("globex")),
        }]
    );
}

#[test]
fn categories_without_an_aggregate_are_reported_once_per_stream_and_system_is_not_and_panel_folds()
{
    let example = |category: Category| {
        Event::examples()
            .into_iter()
            .filter(|e| e.category() == category)
            .take(2)
            .collect::<Vec<_>>()
    };
    let sms = StreamId::parse("sms-acme.1001").expect("a stream id");
    let system = StreamId::parse("system-node1").expect("a stream id");
    let at = morning_at(0);
    let mut log = Vec::new();
    for (i, e) in example(Category::Sms).into_iter().enumerate() {
        push(&mut log, &sms, i as u64 + 1, at, "acme", e);
    }
    for (i, e) in example(Category::System).into_iter().enumerate() {
        push(&mut log, &system, i as u64 + 1, at, "acme", e);
    }
    // A call event in the sms stream is still an event of the wrong aggregate.
    let call = example(Category::Call).remove(0);
    push(&mut log, &sms, 3, at, "acme", call);
    // Panel streams (pinned cards, session facts) fold through the watch list: a pin, then a
    // connection opened, resynced and closed.
    let panel = StreamId::parse("panel-acme.1001").expect("a stream id");
    let panel_events = Event::examples()
        .into_iter()
        .filter(|e| e.category() == Category::Panel)
        .filter(|e| {
            !matches!(
                e,
                Event::Panel(
                    PanelEvent::PanelCardUnpinned { .. } | PanelEvent::PanelCardMoved { .. }
                )
            )
        })
        .collect::<Vec<_>>();
    for (i, e) in panel_events.into_iter().enumerate() {
        push(&mut log, &panel, i as u64 + 1, at, "acme", e);
    }
    let folded = fold_stored(&log);
    assert_eq!(
        folded.divergences(),
        &[
            Divergence {
                position: GlobalPosition(1),
                stream: sms.clone(),
                version: 1,
                kind: DivergenceKind::NoAggregate {
                    category: Category::Sms
                },
            },
            Divergence {
                position: GlobalPosition(5),
                stream: sms.clone(),
                version: 3,
                kind: DivergenceKind::WrongAggregate {
                    event_type: Event::examples()
                        .into_iter()
                        .find(|e| e.category() == Category::Call)
                        .map(|e| e.event_type())
                        .unwrap_or_default(),
                    belongs_to: Category::Call,
                },
            },
        ]
    );
    assert_eq!(
        folded.categories()[&Category::System],
        CategoryCount {
            streams: 1,
            events: 2
        }
    );
    assert!(matches!(
        state_of(&folded, &system),
        AggregateState::Unfolded(Category::System)
    ));
    match state_of(&folded, &panel) {
        AggregateState::Panel(list) => {
            assert_eq!(
                list.cards(),
                &[PanelCard::User(parse("1006"))],
                "the pinned card"
            );
        }
        other => panic!("panel stream not folded: {other:?}"),
    }
}

#[test]
fn an_undecodable_record_is_reported_and_still_takes_its_version() {
    let mut s = small();
    let idx = s
        .log
        .iter()
        .position(|e| e.stream == s.ext && e.version == 2)
        .expect("the extension's second event");
    s.log[idx].record.event_type = "DeviceTeleported".into();
    let position = s.log[idx].position;
    let folded = fold_stored(&s.log);
    let first = folded.divergences().first().cloned().expect("a divergence");
    assert_eq!((first.position, first.version), (position, 2));
    assert!(
        matches!(&first.kind, DivergenceKind::Undecodable { error } if error.contains("DeviceTeleported")),
        "{first}"
    );
    // Its version still counts: no gap after it. (The contact it registered is missing, so
    // what follows may not fit; that is reported as such, not as a gap.)
    assert!(
        kinds(&folded)
            .iter()
            .all(|k| !matches!(k, DivergenceKind::VersionGap { .. }))
    );
}

#[test]
fn only_the_first_divergences_are_kept_but_all_are_counted() {
    let s = small();
    let first = s.log[0].clone();
    let mut log = vec![first.clone()];
    let repeats = KEPT_DIVERGENCES as u64 + 5;
    for i in 0..repeats {
        let mut again = first.clone();
        again.position = GlobalPosition(i + 2);
        log.push(again);
    }
    let folded = fold_stored(&log);
    assert_eq!(folded.divergence_count(), repeats);
    assert_eq!(folded.divergences().len(), KEPT_DIVERGENCES);
    assert_eq!(
        folded.divergences_by_kind().get("version repeated"),
        Some(&repeats)
    );
    assert!(!folded.is_clean());
}

#[test]
fn the_fold_is_timed() {
    let day = office_day(2);
    let folded = fold_stored(&day.log);
    assert!(folded.fold_time() > Duration::ZERO);
    assert!(folded.events_per_second() > 0.0);
    let replay = {
        let mut r = Replay::new();
        for e in &day.log {
            r.push_stored(e);
        }
        r
    };
    assert_eq!(replay.events(), day.log.len() as u64);
    assert_eq!(replay.divergence_count(), 0);
}

#[tokio::test]
async fn a_store_folds_the_same_as_its_events() {
    use events::ExpectedVersion;
    use events::log::memory::MemoryLog;

    let day = office_day(9);
    let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
    for e in &day.log {
        log.append(
            &e.stream,
            ExpectedVersion::Exact(e.version - 1),
            vec![e.record.clone()],
        )
        .await
        .expect("append");
    }
    let folded = fold_log(log).await.expect("fold the store");
    assert!(folded.is_clean(), "{:#?}", folded.divergences());
    assert_eq!(folded.events(), day.log.len() as u64);
    let direct = fold_stored(&day.log);
    assert_eq!(folded.categories(), direct.categories());
    assert_eq!(pending_deadlines(&folded), pending_deadlines(&direct));
}
