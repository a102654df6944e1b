//! `ledgerline replay` as a user runs it: a log written by real aggregates (driven through the
//! simulation world), imported into an SQLite store and exported again, replays with no
//! divergence and a summary; a file with a line deleted in the middle fails naming the position
//! and stream of the gap; a torn or altered file fails naming its line.

use std::path::Path;
use std::process::Output;

use chrono::TimeDelta;
use engine::Aggregate;
use engine::call::{Call, CallCommand, RingContact};
use engine::extension::{Extension, ExtensionCommand, RegisterContact};
use events::export::write_event;
use events::ids::{CallId, DeviceContactId, ExtensionNumber, LegId, StreamId, TenantId, UserId};
use events::model::{CallOrigin, Direction, ExtensionCallState, LegRole, Party, Transport};
use events::{GlobalPosition, StoredEvent};
use futures_util::FutureExt;
use simulations::world::{Instance, World};

mod common;

use common::binary;

fn run(args: &[&str]) -> Output {
    binary().args(args).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e:?}"))
}

fn id<T: std::str::FromStr>(world: &World) -> T
where
    T::Err: std::fmt::Debug,
{
    parse(&world.uuid().to_string())
}

struct Phone {
    stream: StreamId,
    ext: Instance<Extension>,
    party: Party,
    contact: DeviceContactId,
}

/// Four registered extensions calling each other: answered calls that one side hangs up,
/// rejected ones, and calls nobody answers that the ring timeout ends. Every command goes
/// through the aggregates' `decide` in the simulation world; returns the world's whole log.
fn office_log(seed: u64) -> Vec<StoredEvent> {
    let tenant: TenantId = parse("sim");
    let mut world = World::new(seed, tenant.clone());
    let mut phones: Vec<Phone> = Vec::new();
    for n in 0..4u32 {
        let number: ExtensionNumber = parse(&format!("{}", 2001 + n));
        let user: UserId = parse(number.as_str());
        let stream = StreamId::extension(&tenant, &number);
        let mut ext = Instance::<Extension>::default();
        let commands = [
            ExtensionCommand::Provision {
                extension: number.clone(),
                user: user.clone(),
                display_name: format!("User {number}"),
                department: parse("sales"),
            },
            ExtensionCommand::Register(RegisterContact {
                contact: id(&world),
                contact_uri: format!("sip:{number}@192.0.2.{n}:5060"),
                transport: Transport::Udp,
                source: format!("192.0.2.{n}:5060"),
                user_agent: Some("test phone".into()),
                expires_secs: 3600,
            }),
        ];
        for command in commands {
            world
                .execute(&stream, &mut ext, &command)
                .unwrap_or_else(|e| panic!("{stream}: {e}"));
        }
        let contact = *ext.state.contacts().keys().next().expect("a contact");
        let party = Party::internal(number, user, parse("sales"), "User");
        phones.push(Phone {
            stream,
            ext,
            party,
            contact,
        });
    }
    let observe = |world: &mut World, phone: &mut Phone, call: CallId, state| {
        world
            .execute(
                &phone.stream,
                &mut phone.ext,
                &ExtensionCommand::CallLegStateObserved { call, state },
            )
            .unwrap_or_else(|e| panic!("{}: {e}", phone.stream));
    };
    for k in 0..9usize {
        let (a, b) = (k % 4, (k + 1 + k / 4) % 4);
        let call: CallId = id(&world);
        let stream = StreamId::call(call);
        let mut state = Instance::<Call>::default();
        let (caller_leg, callee_leg): (LegId, LegId) = (id(&world), id(&world));
        let exec = |world: &mut World, state: &mut Instance<Call>, command: CallCommand| {
            world
                .execute(&stream, state, &command)
                .unwrap_or_else(|e| panic!("{stream}: {command:?}: {e}"));
        };
        world.now += TimeDelta::seconds(17);
        exec(
            &mut world,
            &mut state,
            CallCommand::Offer {
                call,
                caller_leg,
                direction: Direction::Internal,
                caller: phones[a].party.clone(),
                callee: phones[b].party.clone(),
                dialled: parse(phones[b].party.extension.as_ref().expect("ext").as_str()),
                origin: CallOrigin::Device,
                caller_contact: Some(phones[a].contact),
                trunk: None,
                requested_by: None,
            },
        );
        observe(
            &mut world,
            &mut phones[a],
            call,
            ExtensionCallState::Calling,
        );
        exec(
            &mut world,
            &mut state,
            CallCommand::Ring {
                parent: caller_leg,
                callee: phones[b].party.clone(),
                role: LegRole::Callee,
                contacts: vec![RingContact {
                    leg: callee_leg,
                    contact: Some(phones[b].contact),
                }],
                ring_timeout: TimeDelta::seconds(20),
                voicemail: None,
            },
        );
        exec(
            &mut world,
            &mut state,
            CallCommand::Ringing { leg: callee_leg },
        );
        observe(
            &mut world,
            &mut phones[b],
            call,
            ExtensionCallState::Ringing,
        );
        world.now += TimeDelta::seconds(3);
        match k % 3 {
            0 => {
                exec(
                    &mut world,
                    &mut state,
                    CallCommand::Answer { leg: callee_leg },
                );
                for p in [a, b] {
                    observe(
                        &mut world,
                        &mut phones[p],
                        call,
                        ExtensionCallState::Answered,
                    );
                }
                world.now += TimeDelta::seconds(95);
                exec(
                    &mut world,
                    &mut state,
                    CallCommand::HangUp {
                        leg: callee_leg,
                        cause: None,
                    },
                );
            }
            1 => exec(
                &mut world,
                &mut state,
                CallCommand::Reject {
                    leg: callee_leg,
                    status: 486,
                },
            ),
            _ => {
                let deadline = state
                    .state
                    .deadlines()
                    .first()
                    .map(|d| d.at)
                    .expect("a ringing call holds its ring timeout");
                world.now = deadline + TimeDelta::milliseconds(1);
                exec(
                    &mut world,
                    &mut state,
                    CallCommand::RingTimeout { deadline },
                );
            }
        }
        assert!(state.state.is_ended(), "call {k} ended");
        for p in [a, b] {
            observe(&mut world, &mut phones[p], call, ExtensionCallState::Ended);
        }
    }
    assert!(world.violations.is_empty(), "{:?}", world.violations);

    let log = world.log();
    let mut events = Vec::new();
    let mut after = GlobalPosition::START;
    loop {
        let page = log
            .read_all(after, 1000)
            .now_or_never()
            .expect("the memory log answers at once")
            .expect("read_all");
        let Some(last) = page.last() else { break };
        after = last.position;
        events.extend(page);
    }
    assert_eq!(events.len() as u64, world.events());
    events
}

fn write_log(path: &Path, events: &[StoredEvent]) {
    let mut out = Vec::new();
    for e in events {
        write_event(&mut out, e).expect("write");
    }
    std::fs::write(path, out).expect("write the file");
}

#[test]
fn a_log_written_by_the_aggregates_replays_clean_after_a_round_trip_through_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = dir.path().join("written.jsonl");
    let exported = dir.path().join("exported.jsonl");
    let events = office_log(42);
    write_log(&written, &events);

    let store = format!("sqlite:{}", dir.path().join("copy.db").display());
    let import = run(&["--store", &store, "import", path(&written)]);
    assert!(import.status.success(), "{}", text(&import.stderr));
    let export = run(&["--store", &store, "export", "--out", path(&exported)]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert_eq!(
        std::fs::read(&written).expect("read"),
        std::fs::read(&exported).expect("read"),
        "the SQLite copy exports the same bytes"
    );

    let out = run(&["replay", path(&exported)]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("events      {} in 13 streams", events.len())),
        "{stdout}"
    );
    let calls = events
        .iter()
        .filter(|e| e.stream.as_str().starts_with("call-"))
        .count();
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["call", "9", &calls.to_string()]),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["extension", "4"]),
        "{stdout}"
    );
    // The phones are still registered: four streams hold their expiry, none due yet.
    assert!(
        stdout.contains("deadlines   4 stream(s) still hold timers; 0 already due"),
        "{stdout}"
    );
    assert!(stdout.contains("divergences 0"), "{stdout}");
    assert!(stdout.contains("events/s"), "{stdout}");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

#[test]
fn a_line_deleted_in_the_middle_fails_naming_the_gap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tampered.jsonl");
    let mut events = office_log(7);
    // The second event of the fifth call: its stream then skips a version.
    let call_streams: Vec<StreamId> = {
        let mut seen = Vec::new();
        for e in &events {
            if e.stream.as_str().starts_with("call-") && !seen.contains(&e.stream) {
                seen.push(e.stream.clone());
            }
        }
        seen
    };
    let victim = call_streams[4].clone();
    let idx = events
        .iter()
        .position(|e| e.stream == victim && e.version == 2)
        .expect("the call's second event");
    assert!(idx > 10 && idx + 10 < events.len(), "in the middle");
    events.remove(idx);
    let next = events
        .iter()
        .find(|e| e.stream == victim && e.version == 3)
        .cloned()
        .expect("the call's third event");
    write_log(&file, &events);

    let out = run(&["replay", path(&file)]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{stdout}");
    let gap = format!(
        "position {}, {victim} version 3: version 2 is missing (the stream goes on at 3)",
        next.position
    );
    assert!(stdout.contains(&gap), "{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(&gap), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_torn_or_altered_file_fails_naming_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = office_log(3);
    let file = dir.path().join("log.jsonl");
    write_log(&file, &events);
    let whole = std::fs::read_to_string(&file).expect("read");
    let lines = whole.lines().count();

    let torn = dir.path().join("torn.jsonl");
    std::fs::write(&torn, &whole[..whole.len() - 25]).expect("write");
    let out = run(&["replay", path(&torn)]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("line {lines} is incomplete")),
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains(&format!("events      {}", lines - 1)),
        "the lines before it were folded"
    );

    let altered = dir.path().join("altered.jsonl");
    let mut edited: Vec<String> = whole.lines().map(str::to_owned).collect();
    edited[5] = edited[5].replacen("\"sim\"", "\"evil\"", 1);
    std::fs::write(&altered, edited.join("\n") + "\n").expect("write");
    let out = run(&["replay", path(&altered)]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 6: checksum mismatch"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );

    let out = run(&["replay", path(&dir.path().join("missing.jsonl"))]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("opening"),
        "{}",
        text(&out.stderr)
    );
}
