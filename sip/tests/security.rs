//! The edge against hand-written requests from raw UDP and TCP peers: the shape of challenges,
//! SHA-256 and MD5, stale and foreign nonces, replays, identity, several contacts, expiry,
//! sanity rejections, flood bans and connection limits. Each test checks what was answered and
//! exactly what was (or was not) written to the log.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{
    Peer, Secrets, authorization, config, ext_number, ext_stream, free_port, param, sipp, start, t0,
};
use engine::extension::ExtensionCommand;
use engine::runtime::{Execute, Instance};
use events::model::{DeviceState, ExtensionEvent, LineState, Transport, UnregisterReason};
use sip::sanity::RejectKind;
use sip::{AuthOutcome, DigestAlgorithm};

const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// An OPTIONS from `p` outside a dialog, numbered `n` (its Call-ID is `o{n}@…`).
fn options(p: &Peer, n: u32) -> String {
    format!(
        "OPTIONS sip:{s} SIP/2.0\r\nVia: SIP/2.0/{t} {l};branch=z9hG4bK-o{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{l}>;tag=p{n}\r\nTo: <sip:{s}>\r\n\
         Call-ID: o{n}@{l}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        s = p.server,
        t = p.transport(),
        l = p.local
    )
}

/// The challenges of a 401 with their nonces blanked out.
fn shape(challenges: &[&str]) -> Vec<String> {
    challenges
        .iter()
        .map(|c| {
            let nonce = param(c, "nonce").unwrap();
            c.replace(&nonce, "<nonce>")
        })
        .collect()
}

#[actix::test]
async fn known_and_unknown_users_get_the_same_challenge_offering_sha256_then_md5() {
    let h = start(config(), Secrets::WithSha256).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let known = peer.register("1001", &["<sip:1001@127.0.0.1:5999>"], &[]);
    let known = peer.request(&known).await;
    let unknown = peer.register("9999", &["<sip:9999@127.0.0.1:5999>"], &[]);
    let unknown = peer.request(&unknown).await;
    assert_eq!((known.status(), unknown.status()), (401, 401));
    let k = known.all("www-authenticate");
    let u = unknown.all("www-authenticate");
    assert_eq!(
        shape(&k),
        vec![
            "Digest realm=\"acme\", nonce=\"<nonce>\", algorithm=SHA-256, qop=\"auth\"".to_owned(),
            "Digest realm=\"acme\", nonce=\"<nonce>\", algorithm=MD5, qop=\"auth\"".to_owned(),
        ]
    );
    assert_eq!(shape(&k), shape(&u));
    // One nonce per challenge response, fresh each time.
    assert_eq!(param(k[0], "nonce"), param(k[1], "nonce"));
    assert_ne!(param(k[0], "nonce"), param(u[0], "nonce"));
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn sha256_and_md5_answers_both_register() {
    let h = start(config(), Secrets::WithSha256).await;
    for (ext, pick) in [("1001", 0usize), ("1002", 1)] {
        let mut peer = Peer::udp(h.udp(), LOCAL).await;
        let contact = format!("<sip:{ext}@127.0.0.1:{}>", peer.local.port());
        let first = peer.register(ext, &[&contact], &[]);
        let challenge = peer.request(&first).await;
        let www = challenge.all("www-authenticate")[pick].to_owned();
        let expected_algorithm = if pick == 0 { "SHA-256" } else { "MD5" };
        assert_eq!(
            param(&www, "algorithm").as_deref(),
            Some(expected_algorithm)
        );
        let auth = authorization(&www, ext, &format!("sip-{ext}"), "REGISTER", &peer.uri(), 1);
        let second = peer.register(ext, &[&contact], &[format!("Authorization: {auth}")]);
        let ok = peer.request(&second).await;
        assert_eq!(ok.status(), 200, "{}", ok.raw);
        assert_eq!(
            ok.all("contact"),
            vec![format!(
                "<sip:{ext}@127.0.0.1:{}>;expires=3600",
                peer.local.port()
            )]
        );
    }
    let written = h.written().await;
    assert_eq!(written.len(), 4, "{written:#?}");
    assert!(matches!(
        &written[0],
        (s, ExtensionEvent::DeviceRegistered { extension, transport: Transport::Udp, .. })
            if *s == ext_stream("1001") && *extension == ext_number("1001")
    ));
    assert!(
        matches!(&written[2].1, ExtensionEvent::DeviceRegistered { extension, .. } if *extension == ext_number("1002"))
    );
}

#[actix::test]
async fn nonces_can_be_reused_with_a_higher_count_until_they_are_stale_and_replays_are_refused() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let contact = format!("<sip:1001@127.0.0.1:{}>", peer.local.port());
    let www = peer.challenge("1001", &[&contact], &[]).await;
    let with = |nc| {
        vec![format!(
            "Authorization: {}",
            authorization(&www, "1001", "sip-1001", "REGISTER", &peer.uri(), nc)
        )]
    };
    let (one, two) = (with(1), with(2));
    let req = peer.register("1001", &[&contact], &one);
    assert_eq!(peer.request(&req).await.status(), 200);
    // The same count again is a replay: a fresh challenge, not stale.
    let req = peer.register("1001", &[&contact], &one);
    let replay = peer.request(&req).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(
        param(replay.header("www-authenticate").unwrap(), "stale"),
        None
    );
    // The next count is the phone reusing its nonce: accepted, and as nothing changed and most
    // of the registration is left, no event; the answer grants what remains.
    h.clock.advance(chrono::Duration::seconds(100));
    let req = peer.register("1001", &[&contact], &two);
    let reuse = peer.request(&req).await;
    assert_eq!(reuse.status(), 200, "{}", reuse.raw);
    assert_eq!(
        reuse.all("contact"),
        vec![format!("{contact};expires=3500")]
    );
    // Past the nonce lifetime (300 s): stale=true.
    h.clock.advance(chrono::Duration::seconds(201));
    let three = vec![format!(
        "Authorization: {}",
        authorization(&www, "1001", "sip-1001", "REGISTER", &peer.uri(), 3)
    )];
    let req = peer.register("1001", &[&contact], &three);
    let stale = peer.request(&req).await;
    assert_eq!(stale.status(), 401);
    assert_eq!(
        param(stale.header("www-authenticate").unwrap(), "stale").as_deref(),
        Some("true")
    );
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::Replay), 1);
    assert_eq!(stats.auth(AuthOutcome::Stale), 1);
    assert_eq!(stats.auth(AuthOutcome::Accepted), 2);
    // Only the first registration was written.
    assert_eq!(h.written().await.len(), 2);
}

#[actix::test]
async fn a_nonce_only_works_from_the_address_it_was_issued_to() {
    let h = start(config(), Secrets::Directory).await;
    let mut a = Peer::udp(h.udp(), LOCAL).await;
    let mut b = Peer::udp(h.udp(), Ipv4Addr::new(127, 0, 0, 2)).await;
    let www = a
        .challenge("1001", &["<sip:1001@127.0.0.1:5999>"], &[])
        .await;
    let stolen = authorization(&www, "1001", "sip-1001", "REGISTER", &b.uri(), 1);
    let req = b.register(
        "1001",
        &["<sip:1001@127.0.0.2:5999>"],
        &[format!("Authorization: {stolen}")],
    );
    let answer = b.request(&req).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(
        param(answer.header("www-authenticate").unwrap(), "stale"),
        None
    );
    assert_eq!(h.edge.stats().auth(AuthOutcome::InvalidNonce), 1);
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn the_authenticated_user_must_be_the_to_user() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let www = peer
        .challenge("1002", &["<sip:1002@127.0.0.1:5999>"], &[])
        .await;
    // Valid credentials of 1001, used to register 1002.
    let auth = authorization(&www, "1001", "sip-1001", "REGISTER", &peer.uri(), 1);
    let req = peer.register(
        "1002",
        &["<sip:1002@127.0.0.1:5999>"],
        &[format!("Authorization: {auth}")],
    );
    assert_eq!(peer.request(&req).await.status(), 403);
    assert_eq!(h.edge.stats().auth(AuthOutcome::IdentityMismatch), 1);
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn several_contacts_are_listed_and_removed_one_at_a_time() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let desk = "<sip:1001@192.0.2.10:5060>;expires=600";
    let soft = "<sip:1001@192.0.2.11:5062;transport=tcp>;expires=1200";
    let ok = peer
        .register_with_auth("1001", "sip-1001", &[desk, soft], &[])
        .await;
    assert_eq!(ok.status(), 200, "{}", ok.raw);
    let mut listed = ok.all("contact");
    listed.sort();
    assert_eq!(
        listed,
        vec![
            "<sip:1001@192.0.2.10:5060>;expires=600",
            "<sip:1001@192.0.2.11:5062;transport=tcp>;expires=1200"
        ]
    );
    // Remove the desk phone only.
    let removed = peer
        .register_with_auth(
            "1001",
            "sip-1001",
            &["<sip:1001@192.0.2.10:5060>;expires=0"],
            &[],
        )
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(
        removed.all("contact"),
        vec!["<sip:1001@192.0.2.11:5062;transport=tcp>;expires=1200"]
    );
    // A query lists what is left and writes nothing.
    let query = peer.register_with_auth("1001", "sip-1001", &[], &[]).await;
    assert_eq!(query.all("contact"), removed.all("contact"));

    let written = h.written().await;
    let source = peer.local.to_string();
    let ids: Vec<_> = written
        .iter()
        .filter_map(|(_, e)| match e {
            ExtensionEvent::DeviceRegistered { contact, .. } => Some(*contact),
            _ => None,
        })
        .collect();
    let stream = ext_stream("1001");
    let registered = |id, uri: &str, secs: i64| ExtensionEvent::DeviceRegistered {
        extension: ext_number("1001"),
        contact: id,
        contact_uri: uri.into(),
        transport: Transport::Udp,
        source: source.clone(),
        user_agent: Some("raw-peer".into()),
        expires_secs: secs as u32,
        expires_at: t0() + chrono::Duration::seconds(secs),
    };
    assert_eq!(
        written,
        vec![
            (
                stream.clone(),
                registered(ids[0], "sip:1001@192.0.2.10:5060", 600)
            ),
            (
                stream.clone(),
                ExtensionEvent::LineStateChanged {
                    extension: ext_number("1001"),
                    state: LineState::Idle,
                    device_state: DeviceState::NotInUse,
                    calls: vec![],
                }
            ),
            (
                stream.clone(),
                registered(ids[1], "sip:1001@192.0.2.11:5062;transport=tcp", 1200)
            ),
            (
                stream,
                ExtensionEvent::DeviceUnregistered {
                    extension: ext_number("1001"),
                    contact: ids[0],
                    reason: UnregisterReason::Requested,
                }
            ),
        ]
    );
}

#[actix::test]
async fn too_brief_an_interval_gets_423_with_min_expires_and_a_retired_extension_404() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let brief = peer
        .register_with_auth(
            "1001",
            "sip-1001",
            &["<sip:1001@127.0.0.1:5999>;expires=30"],
            &[],
        )
        .await;
    assert_eq!(brief.status(), 423);
    assert_eq!(brief.header("min-expires"), Some("60"));
    assert_eq!(h.written().await, vec![]);

    let instance = Instance::new(ext_stream("1002")).in_tenant(common::acme());
    h.registry
        .execute(&instance, Execute::new(ExtensionCommand::Retire))
        .await
        .unwrap();
    let gone = peer
        .register_with_auth("1002", "sip-1002", &["<sip:1002@127.0.0.1:5999>"], &[])
        .await;
    assert_eq!(gone.status(), 404);
    assert_eq!(
        h.written().await,
        vec![(
            ext_stream("1002"),
            ExtensionEvent::ExtensionRetired {
                extension: ext_number("1002")
            }
        )]
    );
}

#[actix::test]
async fn an_expired_registration_takes_the_line_offline_through_the_aggregates_deadline() {
    let mut c = config();
    c.registrar.min_expires = 1;
    let h = start(c, Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let ok = peer
        .register_with_auth(
            "1005",
            "sip-1005",
            &["<sip:1005@127.0.0.1:5999>"],
            &["Expires: 2".into()],
        )
        .await;
    assert_eq!(ok.status(), 200);
    // The actor armed a 2 s timer; by the time it fires, the (manual) clock says it is due.
    h.clock.advance(chrono::Duration::seconds(3));
    let written = h.wait_for_events(4, Duration::from_secs(10)).await;
    let kinds: Vec<String> = written
        .iter()
        .map(|(_, e)| match e {
            ExtensionEvent::LineStateChanged { state, .. } => format!("line {state:?}"),
            other => format!("{other:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            "DeviceRegistered",
            "line Idle",
            "DeviceRegistrationExpired",
            "line Offline"
        ]
    );
}

#[actix::test]
async fn malformed_requests_get_a_precise_reply_and_are_counted_not_processed() {
    let h = start(config(), Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), LOCAL).await;
    let good = peer.register("1001", &["<sip:1001@127.0.0.1:5999>"], &[]);
    let cases = [
        (
            good.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE"),
            400,
            "CSeq method",
        ),
        (
            good.replace("Max-Forwards: 70", "Max-Forwards: 0"),
            483,
            "Max-Forwards",
        ),
        (
            good.replace(&format!("Call-ID: {}\r\n", peer.call_id), ""),
            400,
            "missing Call-ID",
        ),
        (good.replace("z9hG4bK-", "old-"), 400, "branch"),
    ];
    for (text, status, warning) in &cases {
        let reply = peer.request(text).await;
        assert_eq!(reply.status(), *status, "{}", reply.raw);
        assert!(
            reply.header("warning").unwrap().contains(warning),
            "{}",
            reply.raw
        );
        assert!(
            reply.header("to").unwrap().contains("tag="),
            "{}",
            reply.raw
        );
    }
    // Not SIP enough to answer: bare LF line ends, a header line without a colon, oversize.
    for junk in [
        good.replace("\r\n", "\n"),
        good.replace("Max-Forwards: 70", "Max-Forwards 70"),
        format!("{good}{}", "x".repeat(9_000)),
    ] {
        peer.send(&junk).await;
        assert!(peer.recv(Duration::from_millis(300)).await.is_none());
    }
    let stats = h.edge.stats();
    assert_eq!(stats.rejected(RejectKind::CSeq), 1);
    assert_eq!(stats.rejected(RejectKind::TooManyHops), 1);
    assert_eq!(stats.rejected(RejectKind::MissingHeader), 1);
    assert_eq!(stats.rejected(RejectKind::Via), 1);
    assert_eq!(stats.rejected(RejectKind::Malformed), 2);
    assert_eq!(stats.rejected(RejectKind::TooLarge), 1);
    assert_eq!(
        stats.auth(AuthOutcome::Challenged),
        0,
        "nothing reached authentication"
    );
    assert_eq!(h.edge.transactions_in_progress(), 0);
    assert_eq!(h.written().await, vec![]);

    // A stray ACK (no INVITE of its own) is never answered (RFC 3261 §17.2.3); a BYE outside
    // any dialog gets 481.
    let stray = good
        .replacen("REGISTER ", "ACK ", 1)
        .replace("CSeq: 1 REGISTER", "CSeq: 1 ACK");
    peer.send(&stray).await;
    assert!(peer.recv(Duration::from_millis(300)).await.is_none());
    let bye = good
        .replacen("REGISTER ", "BYE ", 1)
        .replace("CSeq: 1 REGISTER", "CSeq: 1 BYE");
    assert_eq!(peer.request(&bye).await.status(), 481);

    // Over TCP the Content-Length is required.
    let mut tcp = Peer::tcp(h.tcp()).await;
    let text = tcp
        .register("1001", &["<sip:1001@127.0.0.1:5999>"], &[])
        .replace("Content-Length: 0\r\n", "");
    let reply = tcp.request(&text).await;
    assert_eq!(reply.status(), 400);
    assert!(reply.header("warning").unwrap().contains("Content-Length"));
}

#[actix::test]
async fn a_flooding_source_is_banned_while_others_are_served() {
    let mut c = config();
    c.flood.max_packets_per_window = 20;
    c.flood.ban_for = Duration::from_secs(300);
    let h = start(c, Secrets::Directory).await;
    let flooder_ip = Ipv4Addr::new(127, 0, 0, 3);
    let mut flooder = Peer::udp(h.udp(), flooder_ip).await;
    for n in 0..25 {
        let text = options(&flooder, n);
        flooder.send(&text).await;
    }
    let mut answered = 0;
    while let Some(m) = flooder.recv(Duration::from_millis(500)).await {
        assert_eq!(m.status(), 200);
        answered += 1;
    }
    assert_eq!(answered, 20);
    assert_eq!(h.edge.banned(), vec![std::net::IpAddr::V4(flooder_ip)]);
    let stats = h.edge.stats();
    assert_eq!(stats.bans, 1);
    assert_eq!(stats.banned_drops, 5);
    // Another source is served; the banned one is not, until the ban ends.
    let mut other = Peer::udp(h.udp(), LOCAL).await;
    let text = options(&other, 99);
    assert_eq!(other.request(&text).await.status(), 200);
    let text = options(&flooder, 100);
    flooder.send(&text).await;
    assert!(flooder.recv(Duration::from_millis(300)).await.is_none());
    h.clock.advance(chrono::Duration::seconds(301));
    let text = options(&flooder, 101);
    assert_eq!(flooder.request(&text).await.status(), 200);
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn past_its_bound_of_requests_in_flight_the_edge_refuses_new_ones_with_503() {
    let mut c = config();
    c.max_in_flight = 1;
    let h = start(c, Secrets::Directory).await;
    // A burst arrives at once: the edge takes it faster than it answers, so one request holds
    // the only slot while the next ones come in. Every request gets one answer.
    let mut udp = Peer::udp(h.udp(), LOCAL).await;
    for n in 0..40 {
        let text = options(&udp, n);
        udp.send(&text).await;
    }
    let mut tcp = Peer::tcp(h.tcp()).await;
    let tcp_burst: String = (0..40).map(|n| options(&tcp, n)).collect();
    tcp.send(&tcp_burst).await;
    let mut refused = 0;
    for peer in [&mut udp, &mut tcp] {
        let mut answered = std::collections::HashSet::new();
        let (mut ok, mut busy) = (0, 0);
        while let Some(m) = peer.recv(Duration::from_millis(500)).await {
            assert!(answered.insert(m.header("call-id").unwrap().to_owned()));
            match m.status() {
                200 => ok += 1,
                503 => {
                    assert_eq!(m.header("retry-after"), Some("5"));
                    busy += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        let transport = peer.transport();
        assert_eq!(answered.len(), 40, "{transport}");
        assert!(
            ok > 0 && busy > 0,
            "{transport}: {ok} answered, {busy} refused"
        );
        refused += busy;
    }
    assert_eq!(h.edge.stats().overloaded, refused);
    // The bound is on requests at once: one after the burst is answered.
    let text = options(&udp, 99);
    assert_eq!(udp.request(&text).await.status(), 200);
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn repeated_authentication_failures_ban_the_source() {
    let mut c = config();
    c.flood.max_failures_per_window = 3;
    let h = start(c, Secrets::Directory).await;
    let mut peer = Peer::udp(h.udp(), Ipv4Addr::new(127, 0, 0, 4)).await;
    for attempt in 0..4 {
        let reply = peer
            .register_with_auth(
                "1001",
                &format!("guess-{attempt}"),
                &["<sip:1001@127.0.0.4:5999>"],
                &[],
            )
            .await;
        assert_eq!(reply.status(), 403, "attempt {attempt}");
    }
    // The fourth failure went over the budget: silence from now on.
    let text = peer.register("1001", &["<sip:1001@127.0.0.4:5999>"], &[]);
    peer.send(&text).await;
    assert!(peer.recv(Duration::from_millis(300)).await.is_none());
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::WrongPassword), 4);
    assert_eq!(stats.bans, 1);
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn a_source_may_hold_only_so_many_tcp_connections() {
    let mut c = config();
    c.max_tcp_connections_per_ip = 2;
    let h = start(c, Secrets::Directory).await;
    // `start` connected once to see the listener up; let that connection's close be counted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut p = Peer::tcp(h.tcp()).await;
        let text = p.register("1001", &[], &[]);
        assert_eq!(p.request(&text).await.status(), 401);
        kept.push(p);
    }
    let mut third = Peer::tcp(h.tcp()).await;
    // The edge closes it at once: nothing comes back but the end of the stream.
    assert!(third.recv(Duration::from_secs(2)).await.is_none());
    assert_eq!(h.edge.stats().tcp_refused, 1);
}

#[actix::test]
async fn sipp_answers_the_md5_challenge_when_md5_is_offered_first() {
    // sipp 3.6 reads only the first challenge and knows only MD5; RFC 8760 puts the preferred
    // algorithm first, so a deployment with such clients lists MD5 first.
    let mut c = config();
    c.digest.algorithms = vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256];
    let h = start(c, Secrets::WithSha256).await;
    assert_eq!(
        h.edge.digest_algorithms(),
        vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
    );
    let (ok, out) = sipp(
        h.udp(),
        "register.xml",
        "u1",
        free_port(),
        &["1001;[authentication username=1001 password=sip-1001];".into()],
    )
    .await;
    assert!(ok, "{out}");
    assert_eq!(h.written().await.len(), 2);
}
