//! The panel's web security and websocket protocol against the binary (demo directory):
//! security headers and the session cookie, the session renewed at every sign-in and ended at
//! sign-out (its sockets closed), CSRF and cross-site checks on every state-changing request,
//! the websocket's Origin check and protocol version, and the protocol's continuity — a
//! reconnect with a position gets exactly the missed changes, also after a server restart,
//! and heartbeats carry the position on; a browser closed for good counts as signing out (after
//! a grace period); failed sign-ins stop the guesser's address, never the name's owner;
//! `/health` details are for administrators, whose accounts are never panel cards.

mod common;
mod panel_support;

use std::time::Duration;

use panel_support::{Http, Response, Server, Socket, free_port};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn signed_in(port: u16) -> Http {
    let mut http = Http::new(port);
    let r = http.login("1001", "demo-1001").await;
    assert_eq!(r.status, 200, "{}", r.body);
    http
}

/// `POST /api/v1/presence` as `http`, with `extra` headers.
async fn post_presence(http: &Http, body: &str, extra: &[(&str, &str)]) -> Response {
    http.request("POST", "/api/v1/presence", Some(body), extra)
        .await
        .expect("the server answers")
}

fn origin(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_cookies_sessions_and_cross_site_requests() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(dir.path(), None, port).await;
    let anon = Http::new(port);

    for path in ["/login", "/api/v1/me", "/static/panel.js"] {
        let r = anon.get(path).await.unwrap();
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
    }
    let page = anon.get("/login").await.unwrap().body;
    for inline in [
        "<script>",
        "onclick=",
        "onload=",
        "onsubmit=",
        "javascript:",
        "style=",
    ] {
        assert!(
            !page.contains(inline),
            "no inline script or style ({inline}): {page}"
        );
    }

    // The cookie, and a new session at every sign-in.
    let mut first = Http::new(port);
    let r = first.login("1001", "demo-1001").await;
    let cookie = r
        .cookies
        .iter()
        .find(|c| c.starts_with("ledgerline_session="))
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    let mut second = first.clone();
    second.login("1001", "demo-1001").await;
    assert_ne!(first.cookie, second.cookie, "a sign-in renews the session");
    assert_ne!(first.csrf, second.csrf);
    assert_eq!(
        first.get("/api/v1/me").await.unwrap().status,
        401,
        "the session it replaced ended"
    );
    assert_eq!(second.get("/api/v1/me").await.unwrap().status, 200);
    let http = second;

    // CSRF: the token is required on every state-changing request, and the origin must be ours.
    let body = json!({ "state": "lunch" }).to_string();
    let mut no_token = http.clone();
    no_token.csrf = None;
    let r = post_presence(&no_token, &body, &[]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (403, json!("csrf"))
    );
    let r = post_presence(&http, &body, &[("X-CSRF-Token", "0000")]).await;
    assert_eq!(r.status, 403);
    let r = post_presence(&http, &body, &[("Origin", "http://evil.example")]).await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (403, json!("cross_origin"))
    );
    let r = post_presence(&http, &body, &[("Sec-Fetch-Site", "cross-site")]).await;
    assert_eq!(r.status, 403);
    let r = http
        .request(
            "DELETE",
            "/api/v1/pinned/1002",
            None,
            &[("X-CSRF-Token", "")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "DELETE is checked too");
    let r = post_presence(&http, &body, &[("Origin", &origin(port))]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        no_token
            .request("POST", "/api/v1/logout", None, &[])
            .await
            .unwrap()
            .status,
        403
    );

    // Sign-in and API clients: JSON only, never from another site.
    let login = json!({ "username": "1001", "password": "demo-1001" }).to_string();
    let r = anon
        .request(
            "POST",
            "/api/v1/login",
            Some(&login),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 415, "a cross-site form cannot sign anyone in");
    let r = anon
        .request(
            "POST",
            "/api/v1/login",
            Some(&login),
            &[("Origin", "http://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let api = Http::basic(port, "1006", "demo-1006");
    let r = api
        .request(
            "POST",
            "/api/v1/dnd",
            Some("{\"enabled\":true}"),
            &[("Content-Type", "text/plain")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    let r = api
        .request(
            "POST",
            "/api/v1/dnd",
            Some("{\"enabled\":true}"),
            &[("Origin", "http://evil.example")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        api.post("/api/v1/dnd", &json!({ "enabled": true }))
            .await
            .status,
        200
    );
    assert_eq!(
        api.get("/api/v1/panel").await.unwrap().status,
        403,
        "a basic user has no panel"
    );
    let r = Http::basic(port, "1006", "wrong")
        .get("/api/v1/me")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate").is_none(),
        "browsers are never asked for Basic credentials"
    );

    // Repeated failures slow a name down.
    let mut last = 0;
    for _ in 0..6 {
        last = Http::new(port).login("1011", "guess").await.status;
    }
    assert_eq!(last, 429);
    assert_eq!(Http::new(port).login("1011", "demo-1011").await.status, 429);

    // The websocket: our origin only, a session, and a version we speak.
    assert_eq!(Socket::open(&http, "v=1", None).await.err(), Some(403));
    assert_eq!(
        Socket::open(&http, "v=1", Some("http://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert_eq!(
        Socket::open(&anon, "v=1", Some(&origin(port))).await.err(),
        Some(401)
    );
    assert_eq!(
        Socket::open(&http, "v=2", Some(&origin(port))).await.err(),
        Some(400)
    );
    let mut ws = Socket::open(&http, "v=1", Some(&origin(port)))
        .await
        .expect("opens");
    assert_eq!(ws.next(WAIT).await.unwrap()["type"], "snapshot");
    let mut other_tab = Socket::open(&http, "v=1", Some(&origin(port)))
        .await
        .expect("opens");
    other_tab.next(WAIT).await.unwrap();

    // Signing out ends the session and closes its sockets.
    let r = http
        .request("POST", "/api/v1/logout", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(
        r.cookies
            .iter()
            .any(|c| c.starts_with("ledgerline_session=;") || c.contains("Max-Age=0")),
        "{:?}",
        r.cookies
    );
    let (closing, _) = ws.until("closing", WAIT).await;
    assert_eq!(closing.expect("a closing frame")["code"], 4001);
    assert!(ws.next(WAIT).await.is_none(), "then the socket closes");
    assert_eq!(
        other_tab.until("closing", WAIT).await.0.unwrap()["code"],
        4001
    );
    assert_eq!(http.get("/api/v1/me").await.unwrap().status, 401);
    assert_eq!(
        Socket::open(&http, "v=1", Some(&origin(port))).await.err(),
        Some(401)
    );
}

/// Folds frames like the browser: the cards and the position.
#[derive(Default)]
struct View {
    position: u64,
    epoch: String,
    cards: std::collections::BTreeMap<String, Value>,
}

impl View {
    fn apply(&mut self, f: &Value) {
        match f["type"].as_str().unwrap() {
            "snapshot" => {
                self.cards = f["snapshot"]["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| (c["user"].as_str().unwrap().to_owned(), c.clone()))
                    .collect();
                self.position = f["position"].as_u64().unwrap();
                self.epoch = f["epoch"].as_str().unwrap().to_owned();
            }
            "delta" => {
                assert_eq!(
                    f["from"].as_u64().unwrap(),
                    self.position,
                    "no gap, no overlap: {f}"
                );
                for c in f["delta"]["users"].as_array().unwrap() {
                    self.cards
                        .insert(c["user"].as_str().unwrap().to_owned(), c.clone());
                }
                for id in f["delta"]["removed_users"].as_array().unwrap() {
                    self.cards.remove(id.as_str().unwrap());
                }
                self.position = f["to"].as_u64().unwrap();
            }
            "heartbeat" => self.position = f["position"].as_u64().unwrap(),
            _ => {}
        }
    }
    fn presence(&self, user: &str) -> Value {
        self.cards[user]["presence"]["state"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_continues_from_its_position_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(dir.path(), None, port).await;
    let http = signed_in(port).await;
    let o = origin(port);
    let mut view = View::default();
    let mut ws = Socket::open(&http, "v=1", Some(&o)).await.unwrap();
    view.apply(&ws.next(WAIT).await.unwrap());
    let set = |user: &'static str, state: &'static str| async move {
        let r = Http::basic(port, user, &format!("demo-{user}"))
            .post("/api/v1/presence", &json!({ "state": state }))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    };
    set("1006", "lunch").await;
    let (delta, _) = ws.until("delta", WAIT).await;
    view.apply(&delta.unwrap());
    assert_eq!(view.presence("1006"), "lunch");

    // Heartbeats come every ten seconds and carry the position on.
    let (beat, other) = ws.until("heartbeat", Duration::from_secs(15)).await;
    for f in &other {
        view.apply(f);
    }
    let beat = beat.expect("a heartbeat");
    view.apply(&beat);
    assert!(beat["now"].is_string());

    // Away: changes happen; back with the position: exactly those changes, once.
    ws.close().await;
    let away_at = view.position;
    set("1007", "busy").await;
    set("1012", "lunch").await; // management: not for 1001
    set("1006", "brb").await;
    let query = format!("v=1&from={away_at}&epoch={}", view.epoch);
    let mut ws = Socket::open(&http, &query, Some(&o)).await.unwrap();
    let first = ws.next(WAIT).await.unwrap();
    assert_eq!(first["type"], "delta", "continued, not a snapshot: {first}");
    view.apply(&first);
    while view.presence("1006") != "brb" || view.presence("1007") != "busy" {
        let f = ws.next(WAIT).await.expect("the missed changes arrive");
        assert!(
            !f.to_string().contains("\"1012\""),
            "management never shows: {f}"
        );
        view.apply(&f);
    }
    for f in ws.drain(Duration::from_millis(800)).await {
        view.apply(&f);
    }
    let fresh = http.get("/api/v1/panel").await.unwrap().json();
    let mut check = View::default();
    check.apply(&fresh);
    assert_eq!(
        view.cards, check.cards,
        "the continued view equals a fresh snapshot"
    );

    // Another log's position is not continued: a snapshot.
    let mut elsewhere = Socket::open(
        &http,
        &format!("v=1&from={away_at}&epoch=another-log"),
        Some(&o),
    )
    .await
    .unwrap();
    assert_eq!(elsewhere.next(WAIT).await.unwrap()["type"], "snapshot");
    elsewhere.close().await;

    // The server restarts: the session survives, and the position is continued.
    ws.close().await;
    server.stop();
    let _server = Server::start(dir.path(), None, port).await;
    set("1008", "away").await;
    let query = format!("v=1&from={}&epoch={}", view.position, view.epoch);
    let mut ws = Socket::open(&http, &query, Some(&o))
        .await
        .expect("the session survived the restart");
    let first = ws.next(WAIT).await.unwrap();
    assert_eq!(
        first["type"], "delta",
        "continued after the restart: {first}"
    );
    view.apply(&first);
    while view.presence("1008") != "away" {
        view.apply(&ws.next(WAIT).await.expect("the change arrives"));
    }
    let fresh = http.get("/api/v1/panel").await.unwrap().json();
    let mut check = View::default();
    check.apply(&fresh);
    assert_eq!(
        view.cards, check.cards,
        "the continued view equals a fresh snapshot"
    );
}

/// The presence state on `user`'s own card, as `http` (their session) reads it.
async fn own_presence(http: &Http, user: &str) -> Value {
    let r = http
        .get(&format!("/api/v1/panel/users/{user}"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["presence"]["state"].clone()
}

/// Waits up to `within` for `user`'s presence to be `want`.
async fn presence_becomes(http: &Http, user: &str, want: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let now = own_presence(http, user).await;
        if now == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{user}'s presence is {now}, not {want}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 1001's hooks (demo): on login "available", on browser close or logout "unavailable". With a
/// one-second grace period: a reload and a second tab change nothing, the last socket closed for
/// good sets "unavailable" after the grace period, and coming back sets "available" again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_browser_counts_as_signing_out_after_a_grace_period() {
    const GRACE: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start_with_env(
        dir.path(),
        None,
        port,
        &[],
        &[("LEDGERLINE_PANEL_LOGOUT_GRACE", "1")],
    )
    .await;
    let o = origin(port);
    let http = signed_in(port).await;
    presence_becomes(&http, "1001", "available", WAIT).await;
    let open = || async {
        let mut ws = Socket::open(&http, "v=1", Some(&o)).await.expect("opens");
        assert_eq!(ws.next(WAIT).await.unwrap()["type"], "snapshot");
        ws
    };

    // A reload: the socket closes and another opens at once. Nothing happens.
    open().await.close().await;
    let tab = open().await;
    tokio::time::sleep(GRACE * 3).await;
    assert_eq!(own_presence(&http, "1001").await, "available", "a reload");

    // A second tab closes: the first is still open. Nothing happens.
    open().await.close().await;
    tokio::time::sleep(GRACE * 3).await;
    assert_eq!(
        own_presence(&http, "1001").await,
        "available",
        "one tab left"
    );

    // The last tab closes: within the grace period nothing, then the logout hook.
    tab.close().await;
    tokio::time::sleep(GRACE / 4).await;
    assert_eq!(
        own_presence(&http, "1001").await,
        "available",
        "grace period"
    );
    presence_becomes(&http, "1001", "unavailable", WAIT).await;

    // Back (the session is still valid): the login hook, as a sign-in.
    let tab = open().await;
    presence_becomes(&http, "1001", "available", WAIT).await;

    // A socket the browser lost without a word (no close frame) counts too.
    drop(tab);
    presence_becomes(&http, "1001", "unavailable", WAIT).await;

    // Signing in again within the grace period of a departure cancels it.
    let tab = open().await;
    presence_becomes(&http, "1001", "available", WAIT).await;
    tab.close().await;
    tokio::time::sleep(GRACE / 5).await;
    let mut again = Http::new(port);
    assert_eq!(again.login("1001", "demo-1001").await.status, 200);
    tokio::time::sleep(GRACE * 3).await;
    assert_eq!(
        own_presence(&again, "1001").await,
        "available",
        "signed in again"
    );
}

/// Someone failing on purpose for a name is stopped — from their address — while the name's
/// owner, from another address, still signs in (a little later); an address spraying names is
/// stopped for every name, and nobody else is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_name_locks_out_the_guesser_never_the_owner() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(dir.path(), None, port).await;
    let guesser: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let owner: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    let sprayer: std::net::IpAddr = "127.0.0.4".parse().unwrap();

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            Http::from_address(port, guesser)
                .login("1011", "guess")
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
    let r = Http::from_address(port, guesser)
        .login("1011", "demo-1011")
        .await;
    assert_eq!(
        r.status, 429,
        "the guesser's address stays locked for this name"
    );
    assert!(r.body.contains("from your address"), "{}", r.body);
    // Another form of the same name is the same account.
    assert_eq!(
        Http::from_address(port, guesser)
            .login("1011@acme", "guess")
            .await
            .status,
        429
    );

    // The owner, elsewhere: signed in, held back a little (five failures: a second).
    let started = std::time::Instant::now();
    let r = Http::from_address(port, owner)
        .login("1011", "demo-1011")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "slowed down: {:?}",
        started.elapsed()
    );
    // The owner's success does not unlock the guesser.
    assert_eq!(
        Http::from_address(port, guesser)
            .login("1011", "demo-1011")
            .await
            .status,
        429
    );

    // An address trying many names is stopped for all of them, even with a right password.
    for i in 0..20 {
        let r = Http::from_address(port, sprayer)
            .login(&format!("10{:02}", i % 13), "guess")
            .await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.body);
    }
    let r = Http::from_address(port, sprayer)
        .login("1001", "demo-1001")
        .await;
    assert_eq!(r.status, 429, "{}", r.body);
    // HTTP Basic counts the same.
    let mut api = Http::basic(port, "1006", "demo-1006");
    api.source = Some(sprayer);
    assert_eq!(api.get("/api/v1/me").await.unwrap().status, 429);
    // Everyone else signs in as usual.
    assert_eq!(Http::new(port).login("1001", "demo-1001").await.status, 200);
}

/// `/health` tells anyone whether the log answers; only an administrator (HTTP Basic) sees
/// their tenant's details. The administrator's account, though in management, is on no card
/// and in no counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_details_are_for_administrators_and_administrators_are_not_cards() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = Server::start(dir.path(), None, port).await;

    let r = Http::new(port).get("/health").await.unwrap();
    assert_eq!(r.status, 200);
    let health = r.json();
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["head"].as_u64().is_some_and(|h| h > 0), "{health}");
    assert!(health["store"].is_string(), "{health}");
    assert!(
        health.get("tenants").is_none(),
        "no tenants for anyone: {health}"
    );
    assert!(
        !r.body.contains("acme") && !r.body.contains("Acme"),
        "{}",
        r.body
    );

    let r = Http::basic(port, "admin", "demo-admin")
        .get("/health")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let tenants = r.json()["tenants"].clone();
    assert_eq!(tenants.as_array().map(Vec::len), Some(1), "{tenants}");
    assert_eq!(tenants[0]["id"], "acme");
    assert_eq!(tenants[0]["users"], 13);
    assert_eq!(tenants[0]["extensions"], 12);
    let r = Http::basic(port, "admin", "wrong")
        .get("/health")
        .await
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.body);
    let r = Http::basic(port, "1001", "demo-1001")
        .get("/health")
        .await
        .unwrap();
    assert_eq!(r.status, 403, "a user is no administrator: {}", r.body);
    assert!(!r.body.contains("acme"), "{}", r.body);

    // The supervisor watches management: 1011 and 1012, not the administrator.
    let mut supervisor = Http::new(port);
    assert_eq!(supervisor.login("1011", "demo-1011").await.status, 200);
    let panel = supervisor.get("/api/v1/panel").await.unwrap().json();
    let users: Vec<&str> = panel["snapshot"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["department"] == "management")
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["1011", "1012"], "{panel}");
    let management = panel["snapshot"]["departments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["department"] == "management")
        .unwrap()
        .clone();
    assert_eq!(management["total"], 2, "{management}");
    assert!(!panel.to_string().contains("Acme administrator"), "{panel}");
    assert_eq!(
        supervisor
            .get("/api/v1/panel/users/admin")
            .await
            .unwrap()
            .status,
        404
    );
    assert_eq!(
        supervisor
            .post("/api/v1/pinned", &json!({ "user": "admin" }))
            .await
            .status,
        404
    );
    let mut ws = Socket::open(&supervisor, "v=1", Some(&origin(port)))
        .await
        .unwrap();
    let snapshot = ws.next(WAIT).await.unwrap();
    assert!(
        !snapshot.to_string().contains("Acme administrator"),
        "{snapshot}"
    );
}
