//! The `ledgerline` binary as a user runs it: it starts on a fresh data directory, applies the
//! migrations, provisions the directory (the built-in demo, with its warning and public logins,
//! or a `--config` file), answers `/health` over HTTP, keeps what it wrote across a restart
//! without writing it twice, and refuses a bad store or a broken directory file with one clear
//! line and a failing exit code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::directory::demo::DEMO_WARNING;

mod common;

use common::{binary, free_port};

/// A plain HTTP/1.1 GET; returns (status, body).
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    get_with(port, path, "")
}

/// A plain HTTP/1.1 GET with extra header lines (each ending in CRLF); returns (status, body).
fn get_with(port: u16, path: &str, headers: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
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
    // The demo directory was provisioned into the fresh log.
    let head = health["head"].as_u64().expect("head");
    assert!(head > 0, "{body}");
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

    // A second start finds the migrated file, writes nothing more and serves again.
    let port = free_port();
    let _server = start(&data, port);
    let body = wait_for_health(port);
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    assert_eq!(health["status"], "ok", "{body}");
    assert_eq!(health["head"].as_u64(), Some(head), "{body}");
}

/// A running server whose stdout and stderr are collected as it writes them.
struct Captured {
    server: Server,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn start_captured(args: &[&str]) -> Captured {
    let mut child = binary()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut readers = Vec::new();
    let mut collect = |mut pipe: Box<dyn Read + Send>| {
        let into = Arc::new(Mutex::new(String::new()));
        let sink = into.clone();
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }));
        into
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
    Captured {
        server: Server(child),
        stdout,
        stderr,
        readers,
    }
}

impl Captured {
    /// Stops the server and returns everything it printed: (stdout, stderr).
    fn stop(self) -> (String, String) {
        drop(self.server);
        for r in self.readers {
            let _ = r.join();
        }
        let take = |s: &Arc<Mutex<String>>| s.lock().expect("lock").clone();
        (take(&self.stdout), take(&self.stderr))
    }
}

#[test]
fn serve_on_the_demo_warns_prints_the_demo_logins_and_reports_the_tenant() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let sip_port = free_port();
    let data = dir.path().join("data");
    let server = start_captured(&[
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "serve",
        "--http",
        &format!("127.0.0.1:{port}"),
        "--sip",
        &format!("127.0.0.1:{sip_port}"),
    ]);
    let anonymous = wait_for_health(port);
    // Tenant details are for administrators only (the demo's admin / demo-admin).
    let (status, body) = get_with(
        port,
        "/health",
        "Authorization: Basic YWRtaW46ZGVtby1hZG1pbg==\r\n",
    )
    .expect("health as the administrator");
    assert_eq!(status, 200, "{body}");
    // The SIP edge answers on the port it was given.
    let options = sip_options(sip_port);
    let (stdout, stderr) = server.stop();
    let public: serde_json::Value = serde_json::from_str(&anonymous).expect("JSON health");
    assert!(public.get("tenants").is_none(), "{anonymous}");
    assert!(options.starts_with("SIP/2.0 200"), "{options}");
    assert!(
        stdout.contains(&format!("SIP        udp and tcp 127.0.0.1:{sip_port}")),
        "{stdout}"
    );

    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    // Everything in the fresh log was written by provisioning the demo, as the banner says.
    let head = health["head"].as_u64().expect("head");
    assert!(
        stdout.contains(&format!(
            "directory  built-in demo: 1 tenant(s), {head} event(s) written at start"
        )),
        "{stdout}"
    );
    let tenants = health["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 1, "{body}");
    assert_eq!(tenants[0]["id"], "acme", "{body}");
    assert_eq!(tenants[0]["users"], 13, "{body}");
    assert_eq!(tenants[0]["extensions"], 12, "{body}");
    assert_eq!(tenants[0]["departments"], 3, "{body}");

    assert!(stderr.contains(DEMO_WARNING), "{stderr}");
    for expected in [
        "1001–1012: web password demo-<ext>",
        "panel: 1001 (Reception), 1011 (Supervisor)",
        "username <ext>, password sip-<ext>, domain acme",
        "admin / demo-admin",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from:\n{stdout}"
        );
    }
}

#[test]
fn a_broken_directory_file_stops_the_start_with_its_file_line_and_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("directory.toml");
    std::fs::write(
        &file,
        CUSTOM.replace("department = \"ops\"", "department = \"nope\""),
    )
    .expect("write");
    let data = dir.path().join("data");
    let out = binary()
        .args(["--config", file.to_str().expect("utf-8 path")])
        .args(["--data-dir", data.to_str().expect("utf-8 path")])
        .args(["serve", "--http", "127.0.0.1:0"])
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    let [error] = errors[..] else {
        panic!("one error line expected: {stderr}");
    };
    let line = CUSTOM
        .lines()
        .position(|l| l == "department = \"ops\"")
        .expect("the department line")
        + 1;
    assert!(
        error.contains(&format!("{}:{line}:", file.display())),
        "{error}"
    );
    assert!(
        error.contains("`tenants[0].users[0].department`"),
        "{error}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!data.exists(), "the store is not touched");

    // Given through the environment, a missing file is one line too.
    let out = binary()
        .env("LEDGERLINE_CONFIG", dir.path().join("missing.toml"))
        .args(["--store", "memory:", "serve", "--http", "127.0.0.1:0"])
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("missing.toml:1:1: `file`"), "{stderr}");
}

/// A small directory of its own: no clear passwords (a real file gives hashes).
const CUSTOM: &str = r#"[[tenants]]
id = "globex"
name = "Globex"
sip_domain = "globex.example"

[[tenants.profiles]]
id = "basic"
name = "Basic"
features = ["softphone"]

[[tenants.departments]]
id = "ops"
name = "Operations"

[[tenants.users]]
id = "hank"
name = "Hank Scorpio"
extension = "200"
department = "ops"
profile = "basic"
sip_ha1 = "0123456789abcdef0123456789abcdef"

[[tenants.users]]
id = "frank"
name = "Frank Grimes"
extension = "201"
department = "ops"
profile = "basic"
"#;

#[test]
fn a_custom_directory_file_runs_without_the_demo_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("directory.toml");
    std::fs::write(&file, CUSTOM).expect("write");
    let port = free_port();
    let data = dir.path().join("data");
    let server = start_captured(&[
        "--config",
        file.to_str().expect("utf-8 path"),
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "serve",
        "--http",
        &format!("127.0.0.1:{port}"),
    ]);
    let body = wait_for_health(port);
    let (stdout, stderr) = server.stop();
    let health: serde_json::Value = serde_json::from_str(&body).expect("JSON health");
    // Anonymous: the store's state, never the tenants.
    assert!(health.get("tenants").is_none(), "{body}");
    assert!(health["head"].as_u64().is_some_and(|h| h > 0), "{body}");
    assert!(!stderr.contains(DEMO_WARNING), "{stderr}");
    assert!(!stdout.contains("demo logins"), "{stdout}");
    assert!(
        stdout.contains(&format!("directory  {}", file.display())),
        "{stdout}"
    );
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

/// Sends an OPTIONS over UDP to the server's SIP port and returns the first reply.
fn sip_options(port: u16) -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let local = socket.local_addr().expect("local address");
    let request = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-cli-options-1\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@127.0.0.1>;tag=cli1\r\n\
         To: <sip:127.0.0.1:{port}>\r\n\
         Call-ID: cli-options-1@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Contact: <sip:probe@{local}>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        socket
            .send_to(request.as_bytes(), ("127.0.0.1", port))
            .expect("send");
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    String::from("no answer")
}
