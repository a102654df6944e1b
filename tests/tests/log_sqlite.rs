//! The embedded SQLite backend: the conformance suite, plus what only a file can get wrong —
//! a file that is not a database, a tampered record, a torn tail, a path that cannot be used.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;

use events::log::sqlite::SqliteLog;
use events::{EventLog, ExpectedVersion, GlobalPosition, LogError, StoreOptions, StoreUrl};
use tests::conformance::{self, event, events, run_all, stream};
use tests::sqlite::SqliteBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_log_conforms() {
    run_all(Arc::new(SqliteBackend::new())).await;
}

async fn open(path: &std::path::Path) -> Result<SqliteLog, LogError> {
    SqliteLog::open(path.to_path_buf(), StoreOptions::default()).await
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledgerline.db");
    std::fs::write(
        &path,
        b"this is a text file, not an event log\n".repeat(200),
    )
    .unwrap();
    let err = open(&path).await.expect_err("must refuse");
    assert!(matches!(err, LogError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ledgerline.db") && msg.contains("not a database"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_tampered_record_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let s = stream("tamper");
    {
        let log = open(&path).await.unwrap();
        log.append(&s, ExpectedVersion::NoStream, events(0, 10))
            .await
            .unwrap();
    }
    {
        let raw = rusqlite_update(
            &path,
            "UPDATE events SET payload = '{\"n\":999}' WHERE position = 4",
        );
        assert_eq!(raw, 1);
    }
    // Opening checks the tail, so the damage is found before anything is served.
    let err = open(&path).await.expect_err("corrupt tail");
    let msg = err.to_string();
    assert!(
        msg.contains("position 4") && msg.contains("checksum"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_torn_tail_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let s = stream("torn");
    {
        let log = open(&path).await.unwrap();
        log.append(&s, ExpectedVersion::NoStream, events(0, 5))
            .await
            .unwrap();
    }
    // A lost record in the middle (e.g. a partial restore) leaves a hole below the head.
    assert_eq!(
        rusqlite_update(&path, "DELETE FROM events WHERE position = 3"),
        1
    );
    let err = open(&path).await.expect_err("hole");
    assert!(err.to_string().contains("records are missing"), "{err}");

    // A file cut short in the middle of its pages.
    let path2 = dir.path().join("cut.db");
    {
        let log = open(&path2).await.unwrap();
        for n in 0..50 {
            log.append(
                &stream(&format!("cut{n}")),
                ExpectedVersion::NoStream,
                events(n * 40, 40),
            )
            .await
            .unwrap();
        }
    }
    checkpoint(&path2);
    let len = std::fs::metadata(&path2).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path2)
        .unwrap();
    f.set_len(len / 2 + 100).unwrap();
    drop(f);
    let err = match open(&path2).await {
        Err(e) => e,
        Ok(log) => log
            .read_all(GlobalPosition::START, 100_000)
            .await
            .expect_err("a truncated file cannot read back every record"),
    };
    assert!(
        matches!(err, LogError::Corrupt { .. } | LogError::Backend { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("cut.db"), "the error names the file: {msg}");
}

#[tokio::test]
async fn unusable_paths_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(dir.path()).await.expect_err("a directory");
    assert!(err.to_string().contains("is a directory"), "{err}");

    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let err = open(&blocker.join("sub/log.db"))
        .await
        .expect_err("under a file");
    assert!(
        err.to_string().contains("cannot create the data directory"),
        "{err}"
    );
}

#[tokio::test]
async fn open_by_url_uses_the_embedded_backend() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::parse(&format!("sqlite:{}", dir.path().join("x.db").display())).unwrap();
    let log = events::open(&url, &StoreOptions::default()).await.unwrap();
    assert!(log.describe().starts_with("sqlite:"));
    log.append(&stream("url"), ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    assert_eq!(log.head().await.unwrap(), GlobalPosition(1));
    let _ = conformance::key("unused");
}

/// Concurrent single-event appends from many tasks are grouped into shared commits, and every
/// acknowledged one is durable (visible after reopen).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_acknowledges_only_durable_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let log = Arc::new(open(&path).await.unwrap());
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream(&format!("g{w}"));
            for n in 0..50u64 {
                log.append(&s, ExpectedVersion::Exact(n), vec![event(w * 1000 + n)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(Arc::into_inner(log).expect("sole owner"));
    let log = open(&path).await.unwrap();
    assert_eq!(log.head().await.unwrap(), GlobalPosition(800));
}

fn rusqlite_update(path: &std::path::Path, sql: &str) -> usize {
    let conn = rusqlite::Connection::open(path).expect("open for tampering");
    conn.execute(sql, []).expect("tamper")
}

fn checkpoint(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).expect("open for checkpoint");
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .expect("checkpoint");
}

/// The newest events are read from what the writer kept of its commits; they must be exactly
/// what the file holds. Every position is read both ways: right after the appends (from
/// memory, for the positions this process wrote) and after reopening (from the file).
#[tokio::test]
async fn reads_near_the_head_match_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let (a, b) = (stream("near-a"), stream("near-b"));
    {
        // Written by an earlier run: below what the next run keeps in memory.
        let log = open(&path).await.unwrap();
        log.append(&a, ExpectedVersion::NoStream, events(0, 3))
            .await
            .unwrap();
    }
    let log = open(&path).await.unwrap();
    let batch = events(10, 4);
    log.append(&b, ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // A faithful retry and a refused append add nothing; the appends after them follow on.
    log.append(&b, ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    let refused = log
        .append(&a, ExpectedVersion::Exact(1), events(20, 2))
        .await;
    assert!(matches!(
        refused,
        Err(LogError::WrongExpectedVersion { .. })
    ));
    for (s, version, from, count) in [(&a, 3, 30, 1), (&b, 4, 40, 3), (&a, 4, 50, 1)] {
        log.append(s, ExpectedVersion::Exact(version), events(from, count))
            .await
            .unwrap();
    }
    let head = log.head().await.unwrap();
    assert_eq!(head, GlobalPosition(3 + 4 + 1 + 3 + 1));
    let mut live = Vec::new();
    for after in 0..=head.0 + 1 {
        for max in [1, 2, 100] {
            live.push(log.read_all(GlobalPosition(after), max).await.unwrap());
        }
    }
    drop(log);
    let reopened = open(&path).await.unwrap();
    let mut from_file = Vec::new();
    for after in 0..=head.0 + 1 {
        for max in [1, 2, 100] {
            from_file.push(reopened.read_all(GlobalPosition(after), max).await.unwrap());
        }
    }
    assert_eq!(live, from_file);
    // Positions and versions run on without holes.
    let all = &from_file[2]; // after 0, up to 100
    assert_eq!(all.len(), head.0 as usize);
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position, GlobalPosition(i as u64 + 1));
    }
    let versions: Vec<u64> = all
        .iter()
        .filter(|e| e.stream == b)
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
}

/// Two processes writing one file (two logs on it stand for them). The writer remembers the
/// versions its own commits left streams at and appends without looking them up: the other's
/// appends must not make it append on a stale version. Each appends to streams the other moved
/// on, with every kind of expected version, and to a new stream the other made. And what each
/// reads near the head, which it would answer from the events it committed, must hold the
/// other's events too.
#[tokio::test]
async fn two_processes_writing_one_file_see_each_others_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let (one, two) = (open(&path).await.unwrap(), open(&path).await.unwrap());
    let s = stream("shared");
    one.append(&s, ExpectedVersion::NoStream, events(0, 2))
        .await
        .unwrap();
    two.append(&s, ExpectedVersion::Exact(2), events(10, 1))
        .await
        .unwrap();
    // `one` wrote version 2 last; the stream is at 3.
    let stale = one
        .append(&s, ExpectedVersion::Exact(2), events(20, 1))
        .await;
    assert!(
        matches!(&stale, Err(LogError::WrongExpectedVersion { actual, .. }) if actual.0 == 3),
        "{stale:?}"
    );
    let next = one
        .append(&s, ExpectedVersion::Exact(3), events(30, 2))
        .await
        .unwrap();
    assert_eq!((next.next_expected, next.last_position.0), (5, 5));
    let any = two
        .append(&s, ExpectedVersion::Any, events(40, 1))
        .await
        .unwrap();
    assert_eq!(any.next_expected, 6);
    let any = one
        .append(&s, ExpectedVersion::Any, events(50, 1))
        .await
        .unwrap();
    assert_eq!(any.next_expected, 7);
    // A new stream made by the other writer is not new any more.
    let t = stream("made-by-two");
    two.append(&t, ExpectedVersion::NoStream, events(60, 1))
        .await
        .unwrap();
    let again = one
        .append(&t, ExpectedVersion::NoStream, events(70, 1))
        .await;
    assert!(
        matches!(&again, Err(LogError::WrongExpectedVersion { actual, .. }) if actual.0 == 1),
        "{again:?}"
    );
    // A faithful retry through the other writer gets the first outcome back.
    let batch = events(80, 2);
    let first = one
        .append(&t, ExpectedVersion::Exact(1), batch.clone())
        .await
        .unwrap();
    let retried = two.append(&t, ExpectedVersion::Any, batch).await.unwrap();
    assert_eq!(first, retried);
    // What each reads (near the head: from what its writer kept) is what the file holds.
    let mut live = Vec::new();
    for log in [&one, &two] {
        for after in 0..=10 {
            live.push(log.read_all(GlobalPosition(after), 100).await.unwrap());
        }
    }
    drop((one, two));
    let log = open(&path).await.unwrap();
    let mut from_file = Vec::new();
    for after in 0..=10 {
        from_file.push(log.read_all(GlobalPosition(after), 100).await.unwrap());
    }
    let positions = |reads: &[Vec<events::StoredEvent>]| -> Vec<Vec<u64>> {
        reads
            .iter()
            .map(|r| r.iter().map(|e| e.position.0).collect())
            .collect()
    };
    assert_eq!(positions(&live[..11]), positions(&from_file), "one");
    assert_eq!(positions(&live[11..]), positions(&from_file), "two");
    assert_eq!(live[..11], from_file[..]);
    assert_eq!(live[11..], from_file[..]);
    let versions: Vec<(String, u64)> = log
        .read_all(GlobalPosition(0), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.stream.to_string(), e.version))
        .collect();
    let expect = |name: &str, n: u64| {
        let name = stream(name).to_string();
        (1..=n).map(move |v| (name.clone(), v))
    };
    let mut sorted = versions.clone();
    sorted.sort();
    let mut wanted: Vec<_> = expect("shared", 7)
        .chain(expect("made-by-two", 3))
        .collect();
    wanted.sort();
    assert_eq!(sorted, wanted);
    assert_eq!(versions.len(), 10);
}
