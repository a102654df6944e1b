//! The `ledgerline` binary as a user runs it: it starts on a fresh data directory, applies the
//! migrations, answers `/health` over HTTP, keeps what it wrote across a restart, and refuses a
//! bad store with one clear line and a failing exit code.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ledgerline"));
    c.env_remove("LEDGERLINE_STORE")
        .env_remove("LEDGERLINE_DATA_DIR")
        .env_remove("LEDGERLINE_HTTP")
        .env("RUST_LOG", "warn");
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data_dir: &std::path::Path, port: u16) -> Server {
    let child = binary()
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--http", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    Server(child)
}

fn wait_for_health(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok((200, body)) = get(port, "/health") {
            return body;
        }
        assert!(Instant::now() < deadline, "no /health answer within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serves_health_on_a_fresh_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let server = start(&data, port);
    let body = wait_for_health(port);
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    assert_eq!(health["status"], "ok", "{body}");
    assert_eq!(health["head"], 0, "{body}");
    let store = health["store"].as_str().expect("store");
    assert!(
        store.starts_with("sqlite:") && store.ends_with("ledgerline.db"),
        "{store}"
    );
    assert!(
        data.join("ledgerline.db").is_file(),
        "the log file was created"
    );
    let (status, _) = get(port, "/nope").expect("404 answer");
    assert_eq!(status, 404);
    drop(server);

    // A second start finds the migrated file and serves again.
    let port = free_port();
    let _server = start(&data, port);
    let body = wait_for_health(port);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

#[test]
fn a_bad_store_stops_the_start_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).expect("write");
    let cases = [
        (
            format!("sqlite:{}", garbage.display()),
            "is corrupt: file is not a database",
        ),
        ("mysql://root@127.0.0.1/x".to_owned(), "unknown scheme"),
        (
            format!("postgres://postgres@127.0.0.1:{}/x", free_port()),
            "cannot reach the event store",
        ),
    ];
    for (store, needle) in cases {
        let out = binary()
            .args(["--store", &store, "serve", "--http", "127.0.0.1:0"])
            .output()
            .expect("the binary runs");
        assert!(!out.status.success(), "{store} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{store}: {stderr}");
        assert!(!stderr.contains("panicked"), "{store}: {stderr}");
        assert!(!stderr.contains("Stack backtrace"), "{store}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "{stderr}"
        );
    }
}

/// A log written to one store, exported, and imported into an empty store reads back identical;
/// a torn export file and a non-empty target are refused with a clear message.
#[tokio::test]
async fn export_then_import_copies_the_log_exactly() {
    use events::codec::{Metadata, encode};
    use events::model::Event;
    use events::{EventId, EventLog, ExpectedVersion, GlobalPosition, StoreOptions, StreamId};

    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("source.db");
    let target = dir.path().join("target.db");
    let file = dir.path().join("log.jsonl");
    let open = |p: std::path::PathBuf| async move {
        events::log::sqlite::SqliteLog::open(p, StoreOptions::default())
            .await
            .expect("open sqlite")
    };
    let original = {
        let log = open(source.clone()).await;
        let examples = Event::examples();
        for (i, chunk) in examples.chunks(7).enumerate() {
            let stream = StreamId::parse(format!("call-{}", i % 4)).expect("stream");
            let records = chunk
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    let id = EventId::from_uuid(uuid_from((i * 100 + k) as u128 + 1));
                    encode(e, Metadata::new(id, chrono::DateTime::UNIX_EPOCH))
                })
                .collect();
            log.append(&stream, ExpectedVersion::Any, records)
                .await
                .expect("append");
        }
        log.read_all(GlobalPosition::START, 100_000)
            .await
            .expect("read")
    };
    assert!(original.len() > 100);

    let run = |args: Vec<String>| {
        let out = binary().args(&args).output().expect("the binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let store = |p: &std::path::Path| format!("sqlite:{}", p.display());
    let (ok, err) = run(vec![
        "--store".into(),
        store(&source),
        "export".into(),
        "--out".into(),
        file.display().to_string(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains(&format!("exported {} events", original.len())),
        "{err}"
    );
    let (ok, err) = run(vec![
        "--store".into(),
        store(&target),
        "import".into(),
        file.display().to_string(),
    ]);
    assert!(ok, "{err}");
    let copy = open(target.clone())
        .await
        .read_all(GlobalPosition::START, 100_000)
        .await
        .expect("read");
    assert_eq!(
        copy, original,
        "same positions, streams, versions, ids and payloads"
    );

    // Importing again into the now non-empty store is refused.
    let (ok, err) = run(vec![
        "--store".into(),
        store(&target),
        "import".into(),
        file.display().to_string(),
    ]);
    assert!(!ok && err.contains("is not empty"), "{err}");

    // A torn export file names the broken line.
    let bytes = std::fs::read(&file).expect("read export");
    let torn = dir.path().join("torn.jsonl");
    std::fs::write(&torn, &bytes[..bytes.len() - 25]).expect("write torn");
    let fresh = dir.path().join("fresh.db");
    let (ok, err) = run(vec![
        "--store".into(),
        store(&fresh),
        "import".into(),
        torn.display().to_string(),
    ]);
    assert!(!ok, "a torn file must fail");
    assert!(
        err.contains(&format!("line {} is incomplete", original.len())),
        "{err}"
    );
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}
