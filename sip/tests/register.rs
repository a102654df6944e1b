//! Registration with a real peer: sipp runs the scenarios in `tests/scenarios/` against the edge
//! on loopback (UDP and TCP), with the demo directory's accounts (realm `acme`, password
//! `sip-<ext>`), and each test reads back exactly what the edge wrote to the SQLite log.

mod common;

use chrono::Duration;
use common::{
    Peer, Secrets, authorization, config, ext_number, ext_stream, first_contact, free_port,
    panel_story, sipp, start, t0,
};
use events::ids::DeviceContactId;
use events::model::{DeviceState, ExtensionEvent, LineState, Transport, UnregisterReason};
use sip::{AuthOutcome, DigestAlgorithm};

fn user(ext: &str, password: &str) -> String {
    format!("{ext};[authentication username={ext} password={password}];")
}

fn registered(
    ext: &str,
    contact: DeviceContactId,
    transport: Transport,
    port: u16,
    source: &str,
) -> ExtensionEvent {
    ExtensionEvent::DeviceRegistered {
        extension: ext_number(ext),
        contact,
        contact_uri: format!(
            "sip:{ext}@127.0.0.1:{port};transport={}",
            if transport == Transport::Tcp {
                "TCP"
            } else {
                "UDP"
            }
        ),
        transport,
        source: source.to_owned(),
        user_agent: Some("sipp".into()),
        expires_secs: 3600,
        expires_at: t0() + Duration::seconds(3600),
    }
}

fn line(ext: &str, state: LineState, device_state: DeviceState) -> ExtensionEvent {
    ExtensionEvent::LineStateChanged {
        extension: ext_number(ext),
        state,
        device_state,
        calls: vec![],
    }
}

/// Runs a sipp scenario (see [`sipp`]), which must succeed.
async fn sipp_ok(
    target: std::net::SocketAddr,
    scenario: &str,
    transport: &str,
    port: u16,
    users: &[String],
) {
    let (ok, out) = sipp(target, scenario, transport, port, users).await;
    assert!(ok, "{out}");
}

/// What registering `ext` for the first time over UDP from `port` writes: the binding, then
/// the line going idle.
fn came_online(
    ext: &str,
    contact: DeviceContactId,
    port: u16,
) -> Vec<(events::StreamId, ExtensionEvent)> {
    let stream = ext_stream(ext);
    vec![
        (
            stream.clone(),
            registered(
                ext,
                contact,
                Transport::Udp,
                port,
                &format!("127.0.0.1:{port}"),
            ),
        ),
        (stream, line(ext, LineState::Idle, DeviceState::NotInUse)),
    ]
}

#[actix::test]
async fn sipp_registers_with_digest_over_udp_and_the_log_holds_exactly_the_binding() {
    let h = start(config(), Secrets::Directory).await;
    // What the directory's credentials allow: MD5 only, and the challenge offers only that.
    assert_eq!(h.edge.digest_algorithms(), vec![DigestAlgorithm::Md5]);
    let port = free_port();
    sipp_ok(
        h.udp(),
        "register.xml",
        "u1",
        port,
        &[user("1001", "sip-1001")],
    )
    .await;
    let written = h.written().await;
    let contact = first_contact(&written);
    assert_eq!(written, came_online("1001", contact, port));
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::Challenged), 1);
    assert_eq!(stats.auth(AuthOutcome::Accepted), 1);
    assert_eq!(stats.refused(), 0, "{stats:?}");
}

#[actix::test]
async fn sipp_registers_over_tcp() {
    let h = start(config(), Secrets::Directory).await;
    let port = free_port();
    sipp_ok(
        h.tcp(),
        "register.xml",
        "t1",
        port,
        &[user("1002", "sip-1002")],
    )
    .await;
    let written = h.written().await;
    let contact = first_contact(&written);
    // Over TCP the source is the connection's (ephemeral) port.
    let source = match &written[0].1 {
        ExtensionEvent::DeviceRegistered { source, .. } => source.clone(),
        other => panic!("{other:?}"),
    };
    assert!(source.starts_with("127.0.0.1:"), "{source}");
    let stream = ext_stream("1002");
    assert_eq!(
        written,
        vec![
            (
                stream.clone(),
                registered("1002", contact, Transport::Tcp, port, &source)
            ),
            (stream, line("1002", LineState::Idle, DeviceState::NotInUse)),
        ]
    );
}

#[actix::test]
async fn a_wrong_password_is_refused_with_403_and_writes_nothing() {
    let h = start(config(), Secrets::Directory).await;
    sipp_ok(
        h.udp(),
        "register-refused.xml",
        "u1",
        free_port(),
        &[user("1001", "sip-1002")],
    )
    .await;
    assert_eq!(h.written().await, vec![]);
    assert_eq!(h.edge.stats().auth(AuthOutcome::WrongPassword), 1);
}

#[actix::test]
async fn an_unknown_user_is_refused_exactly_like_a_wrong_password() {
    let h = start(config(), Secrets::Directory).await;
    sipp_ok(
        h.udp(),
        "register-refused.xml",
        "u1",
        free_port(),
        &[user("9999", "sip-9999")],
    )
    .await;
    assert_eq!(h.written().await, vec![]);
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::UnknownUser), 1);
    assert_eq!(stats.auth(AuthOutcome::WrongPassword), 0);
}

#[actix::test]
async fn a_refresh_that_changes_nothing_writes_no_event() {
    let h = start(config(), Secrets::Directory).await;
    let port = free_port();
    sipp_ok(
        h.udp(),
        "register-refresh.xml",
        "u1",
        port,
        &[user("1003", "sip-1003")],
    )
    .await;
    let written = h.written().await;
    let contact = first_contact(&written);
    assert_eq!(written, came_online("1003", contact, port));
    assert_eq!(h.edge.stats().auth(AuthOutcome::Accepted), 2);
}

#[actix::test]
async fn unregistering_every_binding_takes_the_line_offline() {
    let h = start(config(), Secrets::Directory).await;
    let port = free_port();
    sipp_ok(
        h.udp(),
        "register-unregister.xml",
        "u1",
        port,
        &[user("1004", "sip-1004")],
    )
    .await;
    let written = h.written().await;
    let contact = first_contact(&written);
    let stream = ext_stream("1004");
    let mut expected = came_online("1004", contact, port);
    expected.extend([
        (
            stream.clone(),
            ExtensionEvent::DeviceUnregistered {
                extension: ext_number("1004"),
                contact,
                reason: UnregisterReason::Requested,
            },
        ),
        (
            stream.clone(),
            line("1004", LineState::Offline, DeviceState::Unavailable),
        ),
    ]);
    assert_eq!(written, expected);
    // The panel card: offline until the phone registered, online, offline again.
    assert_eq!(
        panel_story(&h, &stream, "1004").await,
        ["Offline []", "Available []", "Offline []"]
    );
}

#[actix::test]
async fn options_is_answered_over_udp_and_tcp_without_authentication() {
    let h = start(config(), Secrets::Directory).await;
    for (target, transport) in [(h.udp(), "u1"), (h.tcp(), "t1")] {
        let (ok, out) = sipp(
            target,
            "options.xml",
            transport,
            free_port(),
            &["1001;".into()],
        )
        .await;
        assert!(ok, "{transport}: {out}");
    }
    assert_eq!(h.written().await, vec![]);
    assert_eq!(h.edge.stats().refused(), 0);
}

#[actix::test]
async fn several_phones_register_in_one_sipp_run() {
    let h = start(config(), Secrets::Directory).await;
    let users: Vec<String> = ["1001", "1002", "1003", "1004", "1005"]
        .iter()
        .map(|u| user(u, &format!("sip-{u}")))
        .collect();
    sipp_ok(h.udp(), "register.xml", "u1", free_port(), &users).await;
    let written = h.written().await;
    assert_eq!(written.len(), 10, "{written:#?}");
    for ext in ["1001", "1002", "1003", "1004", "1005"] {
        let kinds: Vec<&str> = written
            .iter()
            .filter(|(s, _)| *s == ext_stream(ext))
            .map(|(_, e)| match e {
                ExtensionEvent::DeviceRegistered { .. } => "registered",
                ExtensionEvent::LineStateChanged { .. } => "line",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, vec!["registered", "line"], "{ext}");
    }
}

#[actix::test]
async fn a_retransmitted_register_gets_the_same_answer_and_is_not_run_twice() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), std::net::Ipv4Addr::new(127, 0, 0, 31)).await;
    let contact = format!("<sip:1001@{}>", peer.local);
    let www = peer.challenge("1001", &[&contact], &[]).await;
    let auth = authorization(&www, "1001", "sip-1001", "REGISTER", &peer.uri(), 1);
    let register = peer.register("1001", &[&contact], &[format!("Authorization: {auth}")]);
    let first = peer.request(&register).await;
    assert_eq!(first.status(), 200, "{}", first.raw);
    let to = first.header("to").unwrap();
    assert!(to.contains(";tag="), "the answer tags To: {to}");

    // The same datagram again, as a phone that lost the 200 retransmits it: the same bytes come
    // back (the same To tag), and its nonce count is not checked twice (it would be a replay).
    peer.send(&register).await;
    let again = peer
        .recv(std::time::Duration::from_secs(2))
        .await
        .expect("the retransmission is answered");
    assert_eq!(again.raw, first.raw);
    assert!(h.edge.answers_kept() >= 1);
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::Accepted), 1);
    assert_eq!(stats.auth(AuthOutcome::Replay), 0);
    let written = h.written().await;
    assert_eq!(
        written.len(),
        2,
        "one binding, one line change: {written:#?}"
    );
    assert!(matches!(
        &written[0].1,
        ExtensionEvent::DeviceRegistered { contact_uri, .. } if contact.contains(contact_uri.as_str())
    ));

    // A new request (next CSeq, new branch) with the next nonce count is run again: the
    // refresh changes nothing, so nothing more is written.
    let auth = authorization(&www, "1001", "sip-1001", "REGISTER", &peer.uri(), 2);
    let refresh = peer.register("1001", &[&contact], &[format!("Authorization: {auth}")]);
    let refreshed = peer.request(&refresh).await;
    assert_eq!(refreshed.status(), 200, "{}", refreshed.raw);
    assert_eq!(h.edge.stats().auth(AuthOutcome::Accepted), 2);
    assert_eq!(h.written().await.len(), 2);
}
