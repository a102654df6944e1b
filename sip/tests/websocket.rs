//! SIP over WebSocket (RFC 7118) with a real websocket client on loopback: the edge behind an
//! actix-web server whose `GET /sip` hands each upgrade to [`sip::WebSocketAcceptor`] (as
//! `ledgerline serve` does, which adds its `Origin` check), and a browser-like phone written
//! here (tokio-tungstenite, one SIP message per text frame, a `.invalid` Via host and Contact).
//! Each test checks what was answered on the socket and exactly what was written to the log.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{
    ANSWERED_CALL, Harness, Msg, Secrets, WITHIN, authorization, config, end_message, ext_number,
    ext_stream, finished, first_contact, free_port, parts_of, sipp_uac, sipp_uas, start, t0,
    types_of,
};
use events::model::{
    DeviceState, ExtensionCallState as Part, ExtensionEvent, LineState, UnregisterReason,
};
use futures_util::{SinkExt, StreamExt};
use sip::sanity::RejectKind;
use sip::{AuthOutcome, WebSocketAcceptor};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const QUIET: Duration = Duration::from_millis(400);

async fn sip_socket(
    req: HttpRequest,
    body: web::Payload,
    acceptor: web::Data<WebSocketAcceptor>,
) -> HttpResponse {
    match acceptor.upgrade(&req, body) {
        Ok(response) => response,
        Err(refused) => HttpResponse::build(refused.status()).body(refused.to_string()),
    }
}

/// An HTTP server on loopback with the SIP socket on `/sip`; where it listens.
fn http(acceptor: WebSocketAcceptor) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = web::Data::new(acceptor);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(acceptor.clone())
            .route("/sip", web::get().to(sip_socket))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    addr
}

/// A handshake to `/sip` from `ip`, offering `protocols` (none when empty).
async fn handshake(
    http: SocketAddr,
    ip: Ipv4Addr,
    protocols: &str,
) -> Result<(WebSocketStream<TcpStream>, SocketAddr), WsError> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).unwrap();
    let tcp = socket.connect(http).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut request = format!("ws://{http}/sip").into_client_request().unwrap();
    if !protocols.is_empty() {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await?;
    if !protocols.is_empty() {
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some("sip")
        );
    }
    Ok((ws, local))
}

/// A browser phone: one websocket, a random `.invalid` host in its Via and Contact (RFC 7118
/// §5), the server's address in its URIs.
struct WsPhone {
    ws: WebSocketStream<TcpStream>,
    /// The TCP source the edge sees.
    local: SocketAddr,
    host: String,
    server: SocketAddr,
    call_id: String,
    cseq: u32,
    branch: u32,
}

impl WsPhone {
    async fn connect(http: SocketAddr, edge: SocketAddr, ip: Ipv4Addr) -> WsPhone {
        let (ws, local) = handshake(http, ip, "sip").await.unwrap();
        WsPhone {
            ws,
            local,
            host: format!("ws{}.invalid", local.port()),
            server: edge,
            call_id: format!("ws-{}@{}", local.port(), ip),
            cseq: 0,
            branch: 0,
        }
    }

    fn contact(&self, user: &str) -> String {
        format!("sip:{user}@{};transport=ws", self.host)
    }

    fn via(&mut self) -> String {
        self.branch += 1;
        format!(
            "Via: SIP/2.0/WS {};branch=z9hG4bK-ws{}-{}",
            self.host,
            self.local.port(),
            self.branch
        )
    }

    async fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next SIP message on the socket, or `None` after `wait` (or when it closed).
    async fn recv(&mut self, wait: Duration) -> Option<Msg> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??
                .ok()?;
            match frame {
                Message::Text(text) => return Some(Msg::parse(text.as_str())),
                Message::Binary(bytes) => {
                    return Some(Msg::parse(&String::from_utf8_lossy(&bytes)));
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Sends and waits for the final response (skipping provisional ones).
    async fn request(&mut self, text: &str) -> Msg {
        self.send(text).await;
        loop {
            let msg = self
                .recv(Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no response to\n{text}"));
            if msg.status() >= 200 {
                return msg;
            }
        }
    }

    fn register(&mut self, user: &str, extra: &[String]) -> String {
        self.cseq += 1;
        let via = self.via();
        let head = format!(
            "REGISTER sip:{server} SIP/2.0\r\n\
             {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{ip}>;tag=ws{port}\r\n\
             To: <sip:{user}@{ip}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>;expires=600\r\n\
             User-Agent: ws-phone\r\n",
            server = self.server,
            ip = self.server.ip(),
            port = self.local.port(),
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact(user),
        );
        end_message(head, extra, "")
    }

    /// REGISTER, answer the 401 with the demo password, and return both responses.
    async fn register_with_auth(&mut self, user: &str) -> (Msg, Msg) {
        let first = self.register(user, &[]);
        let challenge = self.request(&first).await;
        assert_eq!(challenge.status(), 401, "{}", challenge.raw);
        let www = challenge.header("www-authenticate").unwrap().to_owned();
        let uri = format!("sip:{}", self.server);
        let auth = authorization(&www, user, &format!("sip-{user}"), "REGISTER", &uri, 1);
        let second = self.register(user, &[format!("Authorization: {auth}")]);
        let ok = self.request(&second).await;
        (challenge, ok)
    }

    fn sdp(&self) -> String {
        "v=0\r\no=ws 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
            .to_owned()
    }

    /// An INVITE from `user` to `number` with `via` (its branch names the transaction).
    fn invite(&mut self, user: &str, number: &str, via: &str, extra: &[String]) -> String {
        self.cseq += 1;
        let head = format!(
            "INVITE sip:{number}@{server} SIP/2.0\r\n\
             {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{ip}>;tag=ws{port}\r\n\
             To: <sip:{number}@{server}>\r\n\
             Call-ID: {call_id}-call\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <{contact}>\r\n\
             Content-Type: application/sdp\r\n",
            server = self.server,
            ip = self.server.ip(),
            port = self.local.port(),
            call_id = self.call_id,
            cseq = self.cseq,
            contact = self.contact(user),
        );
        end_message(head, extra, &self.sdp())
    }

    /// A request inside the dialog `ok` (a 2xx to our INVITE) established.
    fn in_dialog(&mut self, method: &str, user: &str, ok: &Msg, cseq: u32) -> String {
        let target = ok
            .header("contact")
            .and_then(|c| c.split('<').nth(1))
            .and_then(|c| c.split('>').next())
            .unwrap()
            .to_owned();
        format!(
            "{method} {target} SIP/2.0\r\n\
             {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{ip}>;tag=ws{port}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            via = self.via(),
            ip = self.server.ip(),
            port = self.local.port(),
            to = ok.header("to").unwrap(),
            call_id = ok.header("call-id").unwrap(),
        )
    }

    /// The ACK of a non-2xx final response to the INVITE sent with `via` (RFC 3261 §17.1.1.3).
    fn ack_failure(&self, invite: &str, via: &str, response: &Msg) -> String {
        let request_uri = invite.split(' ').nth(1).unwrap();
        let from = invite
            .split("\r\n")
            .find(|l| l.starts_with("From:"))
            .unwrap();
        format!(
            "ACK {request_uri} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n{from}\r\nTo: {to}\r\n\
             Call-ID: {call_id}\r\nCSeq: {cseq} ACK\r\nContent-Length: 0\r\n\r\n",
            to = response.header("to").unwrap(),
            call_id = response.header("call-id").unwrap(),
            cseq = self.cseq,
        )
    }

    /// Answers `request` with `status` (and our SDP with a 200 to an INVITE).
    fn answer(&self, request: &Msg, status: u16, user: &str) -> String {
        let reason = match status {
            180 => "Ringing",
            _ => "OK",
        };
        let mut text = format!("SIP/2.0 {status} {reason}\r\n");
        for via in request.all("via") {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        let to = request.header("to").unwrap();
        let to = if to.contains(";tag=") {
            to.to_owned()
        } else {
            format!("{to};tag=ws-answer")
        };
        text.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{}>\r\n",
            request.header("from").unwrap(),
            request.header("call-id").unwrap(),
            request.header("cseq").unwrap(),
            self.contact(user),
        ));
        let invite = request.start.starts_with("INVITE ");
        if status == 200 && invite {
            let sdp = self.sdp();
            text.push_str(&format!(
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ));
        } else {
            text.push_str("Content-Length: 0\r\n\r\n");
        }
        text
    }

    /// Waits for a request with `method`, skipping anything else.
    async fn expect_request(&mut self, method: &str) -> Msg {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let left = deadline - tokio::time::Instant::now();
            let msg = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no {method} on the websocket"));
            if msg.start.starts_with(&format!("{method} ")) {
                return msg;
            }
        }
    }
}

async fn edge() -> (Harness, SocketAddr) {
    let h = start(config(), Secrets::Directory).await;
    let http = http(h.edge.websocket());
    (h, http)
}

#[actix::test]
async fn a_browser_phone_registers_with_digest_over_websocket() {
    let (h, http) = edge().await;
    let mut phone = WsPhone::connect(http, h.udp(), Ipv4Addr::new(127, 0, 0, 21)).await;
    let (challenge, ok) = phone.register_with_auth("1001").await;
    // The Via names a host nobody can reach: the edge answers on the socket, and says where
    // the request came from.
    let via = challenge.header("via").unwrap();
    assert!(
        via.starts_with(&format!("SIP/2.0/WS {}", phone.host)),
        "{via}"
    );
    assert!(via.contains("received=127.0.0.21"), "{via}");
    assert_eq!(ok.status(), 200, "{}", ok.raw);
    let listed = ok.header("contact").unwrap();
    assert!(listed.contains(&phone.contact("1001")), "{listed}");

    let written = h.written().await;
    let contact = first_contact(&written);
    let stream = ext_stream("1001");
    assert_eq!(
        written,
        vec![
            (
                stream.clone(),
                ExtensionEvent::DeviceRegistered {
                    extension: ext_number("1001"),
                    contact,
                    contact_uri: phone.contact("1001"),
                    transport: events::model::Transport::Ws,
                    source: phone.local.to_string(),
                    user_agent: Some("ws-phone".into()),
                    expires_secs: 600,
                    expires_at: t0() + chrono::Duration::seconds(600),
                },
            ),
            (
                stream,
                ExtensionEvent::LineStateChanged {
                    extension: ext_number("1001"),
                    state: LineState::Idle,
                    device_state: DeviceState::NotInUse,
                    calls: vec![],
                }
            ),
        ]
    );
    let stats = h.edge.stats();
    assert_eq!(stats.auth(AuthOutcome::Challenged), 1);
    assert_eq!(stats.auth(AuthOutcome::Accepted), 1);
    assert_eq!(stats.refused(), 0, "{stats:?}");
}

#[actix::test]
async fn malformed_frames_are_refused_and_nothing_is_written() {
    let (h, http) = edge().await;
    let mut phone = WsPhone::connect(http, h.udp(), Ipv4Addr::new(127, 0, 0, 22)).await;
    // Not SIP at all: dropped unanswered, as a datagram would be.
    phone.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(phone.recv(QUIET).await.is_none());
    // Bare LF line ends, which rsipstack's parser would accept: refused before it.
    let lf = phone.register("1001", &[]).replace("\r\n", "\n");
    phone.send(&lf).await;
    assert!(phone.recv(QUIET).await.is_none());
    // Well formed, but its Via claims UDP on a websocket: answered 400 naming the check.
    let udp_via = phone
        .register("1001", &[])
        .replace("SIP/2.0/WS ", "SIP/2.0/UDP ");
    let refused = phone.request(&udp_via).await;
    assert_eq!(refused.status(), 400, "{}", refused.raw);
    let warning = refused.header("warning").unwrap();
    assert!(warning.contains("first Via transport"), "{warning}");
    // A CRLF keep-alive is answered with CRLF.
    phone.send("\r\n\r\n").await;
    let pong = tokio::time::timeout(Duration::from_secs(2), phone.ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::text("\r\n"));
    // The connection still serves: a well-formed REGISTER is challenged.
    let again = phone.register("1001", &[]);
    let challenge = phone.request(&again).await;
    assert_eq!(challenge.status(), 401, "{}", challenge.raw);

    assert_eq!(h.written().await, vec![]);
    let stats = h.edge.stats();
    assert_eq!(stats.rejected(RejectKind::Malformed), 2, "{stats:?}");
    assert_eq!(stats.rejected(RejectKind::Via), 1, "{stats:?}");
    assert_eq!(stats.refused(), 3, "{stats:?}");
}

#[actix::test]
async fn the_sip_subprotocol_is_required() {
    let (h, http) = edge().await;
    let ip = Ipv4Addr::new(127, 0, 0, 23);
    for offered in ["", "chat", "sips, chat"] {
        match handshake(http, ip, offered).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 400, "offering {offered:?}");
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or(&[])).to_string();
                assert!(body.contains("`sip` subprotocol"), "{body}");
            }
            Err(other) => panic!("offering {offered:?}: {other}"),
            Ok(_) => panic!("offering {offered:?}: upgraded"),
        }
    }
    // Among others, `sip` is chosen.
    let (mut ws, _) = handshake(http, ip, "chat, sip").await.unwrap();
    ws.close(None).await.unwrap();
    assert_eq!(h.written().await, vec![]);
}

#[actix::test]
async fn a_banned_source_cannot_upgrade_and_a_flooding_one_is_cut_off() {
    let mut c = config();
    c.flood.max_packets_per_window = 5;
    let h = start(c, Secrets::Directory).await;
    let http = http(h.edge.websocket());
    let ip = Ipv4Addr::new(127, 0, 0, 24);
    let mut phone = WsPhone::connect(http, h.udp(), ip).await;
    // The connection counts as one packet; then frames until the budget is gone.
    let mut answered = 0;
    for _ in 0..10 {
        let via = phone.via();
        let options = format!(
            "OPTIONS sip:{server} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
             From: <sip:probe@{ip}>;tag=p\r\nTo: <sip:{server}>\r\nCall-ID: flood@{ip}\r\n\
             CSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n",
            server = phone.server,
            n = phone.branch,
        );
        if phone.ws.send(Message::text(options)).await.is_err() {
            break;
        }
        match phone.recv(Duration::from_secs(2)).await {
            Some(ok) => {
                assert_eq!(ok.status(), 200, "{}", ok.raw);
                answered += 1;
            }
            None => break,
        }
    }
    assert_eq!(answered, 4, "one packet for the connection, four OPTIONS");
    assert!(h.edge.banned().contains(&IpAddr::V4(ip)));
    match handshake(http, ip, "sip").await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("a banned source upgraded"),
    }
}

#[actix::test]
async fn a_browser_phone_calls_a_udp_phone_and_is_called_down_its_websocket() {
    let (h, http) = edge().await;
    h.tick();
    let mut phone = WsPhone::connect(http, h.udp(), Ipv4Addr::new(127, 0, 0, 25)).await;
    let (_, ok) = phone.register_with_auth("1001").await;
    assert_eq!(ok.status(), 200, "{}", ok.raw);
    let sipp_port = free_port();
    h.register_phone("1003", sipp_port).await;

    // The browser calls 1003 (a sipp phone on UDP), authenticating its INVITE.
    let mark = h.head().await;
    let callee = sipp_uas("uas-answer.xml", sipp_port).await;
    let via = phone.via();
    let first = phone.invite("1001", "1003", &via, &[]);
    let challenge = phone.request(&first).await;
    assert_eq!(challenge.status(), 407, "{}", challenge.raw);
    let ack = phone.ack_failure(&first, &via, &challenge);
    phone.send(&ack).await;
    let proxy = challenge.header("proxy-authenticate").unwrap().to_owned();
    let uri = format!("sip:1003@{}", phone.server);
    let auth = authorization(&proxy, "1001", "sip-1001", "INVITE", &uri, 1);
    let via = phone.via();
    let second = phone.invite(
        "1001",
        "1003",
        &via,
        &[format!("Proxy-Authorization: {auth}")],
    );
    let answered = phone.request(&second).await;
    assert_eq!(answered.status(), 200, "{}", answered.raw);
    // The edge's Contact tells the browser to keep to its websocket for in-dialog requests.
    let ours = answered.header("contact").unwrap().to_ascii_lowercase();
    assert!(ours.contains(";transport=ws"), "{ours}");
    let cseq = phone.cseq;
    let ack = phone.in_dialog("ACK", "1001", &answered, cseq);
    phone.send(&ack).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bye = phone.in_dialog("BYE", "1001", &answered, cseq + 1);
    let bye_ok = phone.request(&bye).await;
    assert_eq!(bye_ok.status(), 200, "{}", bye_ok.raw);
    finished(callee).await;
    let (call, events) = h.the_call(mark).await;
    assert_eq!(types_of(&events, &call), ANSWERED_CALL);
    assert_eq!(
        parts_of(&events, "1001"),
        vec![Part::Calling, Part::Answered, Part::Ended]
    );
    assert_eq!(
        parts_of(&events, "1003"),
        vec![Part::Ringing, Part::Answered, Part::Ended]
    );

    // 1003 calls back: the INVITE goes down the websocket the browser registered over, to the
    // contact it registered.
    let mark = h.head().await;
    let caller = sipp_uac(h.udp(), "call-uac.xml", sipp_port, "1003", "1001");
    let invite = phone.expect_request("INVITE").await;
    // (rsipstack writes the transport parameter in capitals; URI comparison ignores case.)
    let expected = format!("INVITE {} SIP/2.0", phone.contact("1001"));
    assert!(
        invite.start.eq_ignore_ascii_case(&expected),
        "{} (expected {expected})",
        invite.start
    );
    let top = invite.header("via").unwrap();
    assert!(top.starts_with("SIP/2.0/WS "), "{top}");
    let ours = invite.header("contact").unwrap().to_ascii_lowercase();
    assert!(ours.contains(";transport=ws"), "{ours}");
    phone.send(&phone.answer(&invite, 180, "1001")).await;
    phone.send(&phone.answer(&invite, 200, "1001")).await;
    let ack = phone.expect_request("ACK").await;
    assert_eq!(ack.header("call-id"), invite.header("call-id"));
    let bye = phone.expect_request("BYE").await;
    phone.send(&phone.answer(&bye, 200, "1001")).await;
    finished(caller).await;
    let (call, events) = h.the_call(mark).await;
    assert_eq!(types_of(&events, &call), ANSWERED_CALL);
    assert_eq!(
        parts_of(&events, "1001"),
        vec![Part::Ringing, Part::Answered, Part::Ended]
    );
    assert_eq!(
        parts_of(&events, "1003"),
        vec![Part::Calling, Part::Answered, Part::Ended]
    );
}

#[actix::test]
async fn a_browser_that_reconnects_is_rung_on_its_new_websocket() {
    let (h, http) = edge().await;
    h.tick();
    let ip = Ipv4Addr::new(127, 0, 0, 26);
    let mut old = WsPhone::connect(http, h.udp(), ip).await;
    let (_, ok) = old.register_with_auth("1001").await;
    assert_eq!(ok.status(), 200, "{}", ok.raw);
    let lost = first_contact(&h.written().await);
    let old_source = old.local.to_string();
    old.ws.close(None).await.unwrap();
    drop(old);
    // Nothing reaches a browser once its websocket is gone: the binding is unregistered.
    let unregistered = (
        ext_stream("1001"),
        ExtensionEvent::DeviceUnregistered {
            extension: ext_number("1001"),
            contact: lost,
            reason: UnregisterReason::ConnectionLost,
        },
    );
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !h.written().await.contains(&unregistered) {
        assert!(tokio::time::Instant::now() < deadline, "never unregistered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The browser comes back on a new connection (a new source port, a new `.invalid` host)
    // and registers again: only the new binding is listed.
    let mut phone = WsPhone::connect(http, h.udp(), ip).await;
    let (_, ok) = phone.register_with_auth("1001").await;
    assert_eq!(ok.status(), 200, "{}", ok.raw);
    assert_eq!(ok.all("contact").len(), 1, "{}", ok.raw);
    let written = h.written().await;
    let sources: Vec<_> = written
        .iter()
        .filter_map(|(_, e)| match e {
            ExtensionEvent::DeviceRegistered { source, .. } => Some(source.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sources, vec![old_source, phone.local.to_string()]);
    let sipp_port = free_port();
    h.register_phone("1003", sipp_port).await;

    let mark = h.head().await;
    let caller = sipp_uac(h.udp(), "call-uac.xml", sipp_port, "1003", "1001");
    let invite = phone.expect_request("INVITE").await;
    assert!(
        invite
            .start
            .to_ascii_lowercase()
            .contains(&phone.contact("1001")),
        "{}",
        invite.start
    );
    phone.send(&phone.answer(&invite, 180, "1001")).await;
    phone.send(&phone.answer(&invite, 200, "1001")).await;
    phone.expect_request("ACK").await;
    let bye = phone.expect_request("BYE").await;
    phone.send(&phone.answer(&bye, 200, "1001")).await;
    finished(caller).await;
    let (call, events) = h.the_call(mark).await;
    // Only the live binding is rung.
    assert_eq!(types_of(&events, &call), ANSWERED_CALL);
    assert_eq!(
        parts_of(&events, "1001"),
        vec![Part::Ringing, Part::Answered, Part::Ended]
    );
}
