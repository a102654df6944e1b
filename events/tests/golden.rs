//! Golden fixtures of the stored form: one file per event type in `fixtures/golden/`, holding
//! `{ "event_type", "schema_version", "payload" }` of that type's example exactly as `encode`
//! writes it (the payload re-indented, its field order and scalars untouched). A changed stored
//! form, a variant without a fixture and a fixture without a variant all fail here.
//!
//! `UPDATE_GOLDEN=1 cargo test -p events golden` rewrites the fixtures from the examples (and
//! removes stale ones). Review the diff: a changed shape of an existing type needs a new schema
//! version and an upcaster, with the old form kept in `fixtures/old/`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};
use events::codec::{Metadata, decode_record, encode};
use events::model::Event;
use events::{EventId, EventRecord};
use serde::Deserialize;
use uuid::Uuid;

const UPDATE_HINT: &str = "if the change is intended, run \
    `UPDATE_GOLDEN=1 cargo test -p events golden` and review the diff \
    (a changed shape of an existing type needs a schema version bump and an upcaster)";

fn fixtures_dir(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(which)
}

fn metadata() -> Metadata {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 41, 0)
        .single()
        .expect("fixed time");
    Metadata::new(EventId::from_uuid(Uuid::from_u128(1)), at)
}

/// The fixture text of a record: its stored fields, pretty-printed, with a trailing newline.
fn render(record: &EventRecord) -> String {
    format!(
        "{{\n  \"event_type\": {},\n  \"schema_version\": {},\n  \"payload\": {}\n}}\n",
        serde_json::to_string(&record.event_type).expect("a string serialises"),
        record.schema_version,
        reindent(&record.payload, 1),
    )
}

/// Pretty-prints compact JSON text (as serde_json writes it: no whitespace outside strings)
/// without parsing it, so key order and number and string spellings stay exactly as stored.
fn reindent(compact: &str, level: usize) -> String {
    let newline = |out: &mut String, level: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(level));
    };
    let mut out = String::with_capacity(compact.len() * 2);
    let mut level = level;
    let mut chars = compact.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                if chars.peek().is_some_and(|&next| next == '}' || next == ']') {
                    out.extend(chars.next());
                } else {
                    level += 1;
                    newline(&mut out, level);
                }
            }
            '}' | ']' => {
                level -= 1;
                newline(&mut out, level);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, level);
            }
            ':' => out.push_str(": "),
            _ => out.push(c),
        }
    }
    out
}

/// A fixture file, read back.
#[derive(Deserialize)]
struct Fixture {
    event_type: String,
    schema_version: u16,
    payload: serde_json::Value,
}

fn read_fixture(path: &Path) -> (String, EventRecord) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let fixture: Fixture = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a fixture: {e}", path.display()));
    assert!(
        fixture.payload.is_object(),
        "{}: the payload is not an object",
        path.display()
    );
    let record = EventRecord {
        event_type: fixture.event_type,
        schema_version: fixture.schema_version,
        payload: fixture.payload.to_string(),
        ..encode(&Event::examples()[0], metadata())
    };
    (text, record)
}

/// Every file in `dir` by name; anything that is not a `.json` file fails the caller's check.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    files
}

/// The golden directory, rewritten first (once per test run) when `UPDATE_GOLDEN` is set.
fn golden_dir() -> PathBuf {
    static UPDATED: OnceLock<()> = OnceLock::new();
    let dir = fixtures_dir("golden");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        UPDATED.get_or_init(|| rewrite_golden(&dir));
    }
    dir
}

fn rewrite_golden(dir: &Path) {
    std::fs::create_dir_all(dir).expect("create the golden directory");
    let mut wanted = BTreeSet::new();
    for event in Event::examples() {
        let record = encode(&event, metadata());
        let path = dir.join(format!("{}.json", record.event_type));
        let text = render(&record);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).expect("write a golden fixture");
            eprintln!("updated {}", path.display());
        }
        wanted.insert(path);
    }
    for path in files_in(dir) {
        if !wanted.contains(&path) {
            std::fs::remove_file(&path).expect("remove a stale fixture");
            eprintln!("removed {}", path.display());
        }
    }
}

#[test]
fn golden_fixtures_match_the_encoded_examples() {
    let dir = golden_dir();
    let mut report = String::new();
    for event in Event::examples() {
        let record = encode(&event, metadata());
        let path = dir.join(format!("{}.json", record.event_type));
        let want = render(&record);
        match std::fs::read_to_string(&path) {
            Ok(have) if have == want => {}
            Ok(have) => {
                let _ = writeln!(
                    report,
                    "{} changed.\n--- fixture\n{have}+++ encoded now\n{want}",
                    path.display()
                );
            }
            Err(e) => {
                let _ = writeln!(report, "{} is missing ({e})", path.display());
            }
        }
    }
    assert!(report.is_empty(), "{report}\n{UPDATE_HINT}");
}

#[test]
fn golden_fixtures_decode_and_reencode_identically() {
    let dir = golden_dir();
    let mut checked = 0;
    for path in files_in(&dir) {
        let (text, record) = read_fixture(&path);
        let event = decode_record(&record)
            .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
        assert_eq!(
            event.schema_version(),
            record.schema_version,
            "{}",
            path.display()
        );
        let again = render(&encode(&event, metadata()));
        assert!(
            again == text,
            "{} does not re-encode to itself (a field the model does not have, or a value in a \
             different spelling?)\n--- fixture\n{text}+++ re-encoded\n{again}\n{UPDATE_HINT}",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, Event::types().count());
}

#[test]
fn golden_fixture_set_equals_the_event_types() {
    let dir = golden_dir();
    let files: BTreeSet<String> = files_in(&dir)
        .iter()
        .map(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let types: BTreeSet<String> = Event::types().map(|t| format!("{}.json", t.name)).collect();
    let missing: Vec<_> = types.difference(&files).collect();
    let stale: Vec<_> = files.difference(&types).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "event types without a fixture: {missing:?}\n\
         fixtures without an event type: {stale:?}\n{UPDATE_HINT}"
    );
}

/// Each file in `fixtures/old/` is `<Type>.v<N>.json`: the current example of that type as it
/// was stored under schema version N. It must upcast to exactly the current example.
#[test]
fn golden_old_fixtures_upcast_to_the_current_examples() {
    let old = files_in(&fixtures_dir("old"));
    assert!(!old.is_empty(), "no old-version fixtures");
    let examples = Event::examples();
    for path in old {
        let (_, record) = read_fixture(&path);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            name,
            format!("{}.v{}.json", record.event_type, record.schema_version),
            "old fixtures are named <Type>.v<N>.json after their content"
        );
        let current = examples
            .iter()
            .find(|e| e.event_type() == record.event_type)
            .unwrap_or_else(|| panic!("{name}: no current type {}", record.event_type));
        assert!(
            record.schema_version < current.schema_version(),
            "{name} is not older than the current schema version {}",
            current.schema_version()
        );
        let upcast = decode_record(&record).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &upcast, current,
            "{name} does not upcast to the current example"
        );
    }
}

#[test]
fn reindenting_keeps_everything_but_whitespace() {
    let compact = r#"{"a":"x,{\"y\":[]}","b":[],"c":{},"d":[1,{"e":null}]}"#;
    let pretty = reindent(compact, 0);
    assert_eq!(
        pretty,
        "{\n  \"a\": \"x,{\\\"y\\\":[]}\",\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1,\n    {\n      \"e\": null\n    }\n  ]\n}"
    );
    let value: serde_json::Value = serde_json::from_str(&pretty).expect("valid JSON");
    assert_eq!(value.to_string().len(), compact.len());
}
