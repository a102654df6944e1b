//! The UDP intake: the SIP socket as rsipstack's reader sees it. Every datagram is screened here
//! before any parse (its source's packet budget, the raw sanity checks), and the reader is kept
//! fewer than [`AHEAD`] messages in front of the ingress. rsipstack queues what it reads without
//! a bound, so past saturation a request would wait there unseen for seconds while its sender
//! retransmits it, and so would the callee's answers while our own client transactions
//! retransmit towards it: the retransmissions are more load on a server already behind. What
//! arrives while the ingress is behind waits here instead, in two lanes: what goes on with
//! admitted work (responses, ACK, BYE, CANCEL, requests inside a dialog) is served first (but
//! never more than [`RUN`] in a row while a new request waits), and a request that would start
//! new work is dropped unanswered when it waited longer than [`STALE`] or finds the intake full,
//! and counted (its sender retransmits it, and the copy is served fresh). While the ingress
//! keeps up nothing waits: each datagram goes straight through.
//!
//! Each message handed over carries its number in hand-over order, as a last header
//! ([`STAMP`]) that the ingress takes off before anything else reads the message and reports
//! ([`Progress::took`]). A datagram the reader dropped (a parse it refused, a source banned
//! meanwhile) leaves a gap in the numbers the ingress sees, so it is not waited for.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::sanity::{Datagram, RejectKind};
use crate::transport::{Screened, Shared};

/// How many messages rsipstack's reader may hold that the ingress has not taken yet, at most
/// one fewer than this.
pub(crate) const AHEAD: u64 = 32;
/// How long a request starting new work may wait here: T1 (500 ms), after which its sender
/// has sent it again (so its copy is here or on its way). Shorter drops requests a busy server
/// would have answered in time: at saturation (1,500 calls/s), 200 ms made sipp retransmit
/// 1,174 times in a 10 s step and the p99 setup time 932 ms, where first in, first out had
/// none and 148 ms.
pub(crate) const STALE: TimeDelta = TimeDelta::milliseconds(500);
/// Ongoing messages served in a row while a new request waits, so a flood of forged responses
/// or in-dialog requests cannot shut new work out.
pub(crate) const RUN: usize = 8;
/// How long the ingress may take no message while the reader waits for it, before the reader
/// counts what it handed over last as dropped (only the last ones can be: a later message
/// taken accounts for every earlier one).
pub(crate) const STALL: Duration = Duration::from_millis(20);
/// Bytes of datagrams held here at most.
pub(crate) const CAPACITY: usize = 4 << 20;
/// Datagrams read from the socket in one go, so one read does not hold up the runtime.
const BURST: usize = 256;
/// The header that numbers each message handed over.
pub(crate) const STAMP: &str = "X-Ledgerline-Intake";

/// The highest message number the ingress took, and a wake-up for a reader waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    seen: AtomicU64,
    moved: Notify,
}

impl Progress {
    /// The ingress took the message numbered `n`.
    pub(crate) fn took(&self, n: u64) {
        self.seen.fetch_max(n, Ordering::AcqRel);
        self.moved.notify_one();
    }

    fn seen(&self) -> u64 {
        self.seen.load(Ordering::Acquire)
    }
}

/// The socket, with the lanes of what waits.
pub(crate) struct Intake {
    socket: UdpSocket,
    shared: Arc<Shared>,
    lanes: Mutex<Lanes>,
    /// Messages handed to the reader (keep-alives, which never reach the ingress, excepted):
    /// the number of the last one.
    handed: AtomicU64,
    stall: Duration,
}

impl Intake {
    pub(crate) fn new(socket: UdpSocket, shared: Arc<Shared>) -> Self {
        Self::with(socket, shared, STALL, CAPACITY)
    }

    fn with(socket: UdpSocket, shared: Arc<Shared>, stall: Duration, capacity: usize) -> Self {
        Self {
            socket,
            shared,
            lanes: Mutex::new(Lanes::new(capacity)),
            handed: AtomicU64::new(0),
            stall,
        }
    }

    pub(crate) fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The next datagram for the reader, into `buf`. Cancel-safe: nothing read is lost when
    /// the future is dropped at an await.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let waited = self.catch_up().await;
            if let Some(next) = self.take(buf, waited)? {
                return Ok(next);
            }
            self.socket.readable().await?;
        }
    }

    /// Waits while the reader holds [`AHEAD`] messages the ingress has not taken; true when it
    /// had to.
    async fn catch_up(&self) -> bool {
        let progress = &self.shared.udp;
        let mut waited = false;
        loop {
            let seen = progress.seen();
            let handed = self.handed.load(Ordering::Relaxed);
            if handed.saturating_sub(seen) < AHEAD {
                return waited;
            }
            waited = true;
            let moved = tokio::time::timeout(self.stall, progress.moved.notified()).await;
            if moved.is_err() && progress.seen() == seen {
                // Nothing taken for a while: the last ones handed over were dropped.
                progress.seen.fetch_max(handed, Ordering::AcqRel);
            }
        }
    }

    /// Reads what the socket holds (up to [`BURST`]) and picks what to hand over, or `None`
    /// when nothing is there. A datagram goes straight through when nothing waits and the
    /// reader did not have to wait for the ingress.
    fn take(&self, buf: &mut [u8], waited: bool) -> io::Result<Option<(usize, SocketAddr)>> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let now = (waited || !lanes.is_empty()).then(|| self.shared.clock.now());
        for _ in 0..BURST {
            let (len, from) = match self.socket.try_recv_from(buf) {
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            // A datagram that fills the read buffer was cut off.
            let kind = match self.shared.screen(from.ip(), &buf[..len], len == buf.len()) {
                // rsipstack answers it; the ingress never sees it.
                Screened::Passed(Datagram::Keepalive) => return Ok(Some((len, from))),
                Screened::Passed(kind) => kind,
                Screened::Banned | Screened::Refused => continue,
            };
            let Some(now) = now else {
                match self.hand(buf, len, from) {
                    Some(handed) => return Ok(Some(handed)),
                    None => continue,
                }
            };
            let shed = lanes.hold(kind, &buf[..len], from, now);
            self.shed(shed);
        }
        let Some(now) = now else {
            return Ok(None);
        };
        loop {
            let (next, shed) = lanes.next(now);
            self.shed(shed);
            let Some(held) = next else {
                return Ok(None);
            };
            // Banned while it waited: rsipstack would drop it.
            if self.shared.guard.is_banned(held.from.ip(), now) {
                self.shared.stats.banned_drop();
                continue;
            }
            let len = held.bytes.len();
            buf[..len].copy_from_slice(&held.bytes);
            if let Some(handed) = self.hand(buf, len, held.from) {
                return Ok(Some(handed));
            }
        }
    }

    /// Numbers the message in `buf[..len]` and hands it over; one that cannot be numbered
    /// (no room left in the read buffer) is refused as too large: unnumbered, the ingress
    /// would read a sender's own last header as the number.
    fn hand(&self, buf: &mut [u8], len: usize, from: SocketAddr) -> Option<(usize, SocketAddr)> {
        let n = self.handed.load(Ordering::Relaxed) + 1;
        let Some(len) = stamp(buf, len, n) else {
            self.shared.refuse(from.ip(), RejectKind::TooLarge);
            return None;
        };
        self.handed.store(n, Ordering::Relaxed);
        Some((len, from))
    }

    fn shed(&self, count: usize) {
        if count > 0 {
            self.shared.stats.shed(count as u64);
        }
    }
}

/// Adds the [`STAMP`] header numbered `n` as the last line of the head of the message in
/// `buf[..len]`; returns its new length, or `None` when the buffer has no room (a screened
/// datagram is far below the 64 KiB read buffer) or the message no head.
pub(crate) fn stamp(buf: &mut [u8], len: usize, n: u64) -> Option<usize> {
    let mut line = [0u8; 48];
    let room = {
        let mut w = &mut line[..];
        // 20 digits at most: it fits.
        let _ = write!(w, "{STAMP}: {n}\r\n");
        w.len()
    };
    let line = &line[..line.len() - room];
    let end = memchr::memmem::find(&buf[..len], b"\r\n\r\n")?;
    if len + line.len() > buf.len() {
        return None;
    }
    let at = end + 2;
    buf.copy_within(at..len, at + line.len());
    buf[at..at + line.len()].copy_from_slice(line);
    Some(len + line.len())
}

/// One datagram waiting.
#[derive(Debug)]
struct Held {
    bytes: Box<[u8]>,
    from: SocketAddr,
    at: DateTime<Utc>,
}

/// One lane: first in, first out, with the bytes it holds.
#[derive(Debug, Default)]
struct Queue {
    held: VecDeque<Held>,
    bytes: usize,
}

impl Queue {
    fn push(&mut self, held: Held) {
        self.bytes += held.bytes.len();
        self.held.push_back(held);
    }

    fn pop(&mut self) -> Option<Held> {
        let held = self.held.pop_front()?;
        self.bytes -= held.bytes.len();
        Some(held)
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// What waits, in its two lanes: [`Datagram::Ongoing`] work is served first and never dropped
/// for age; a [`Datagram::Initial`] request would start new work.
#[derive(Debug)]
struct Lanes {
    ongoing: Queue,
    initial: Queue,
    capacity: usize,
    /// Ongoing messages served in a row while a new request waited.
    run: usize,
}

impl Lanes {
    fn new(capacity: usize) -> Self {
        Self {
            ongoing: Queue::default(),
            initial: Queue::default(),
            capacity,
            run: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.ongoing.is_empty() && self.initial.is_empty()
    }

    /// Keeps a datagram; returns how many were dropped for it (itself included). New requests
    /// past their time go first; then a full intake drops a new request, and an ongoing one
    /// takes the place of the oldest new ones, or is dropped itself when ongoing work alone
    /// fills the intake.
    fn hold(&mut self, kind: Datagram, bytes: &[u8], from: SocketAddr, at: DateTime<Utc>) -> usize {
        let new_work = kind == Datagram::Initial;
        let mut shed = self.drop_stale(at);
        let Some(room) = self.capacity.checked_sub(bytes.len()) else {
            return shed + 1;
        };
        // A new request must fit beside everything; ongoing work only beside ongoing work.
        let taken = if new_work {
            self.initial.bytes + self.ongoing.bytes
        } else {
            self.ongoing.bytes
        };
        if taken > room {
            return shed + 1;
        }
        while self.ongoing.bytes + self.initial.bytes > room && self.initial.pop().is_some() {
            shed += 1;
        }
        let held = Held {
            bytes: bytes.into(),
            from,
            at,
        };
        if new_work {
            self.initial.push(held);
        } else {
            self.ongoing.push(held);
        }
        shed
    }

    /// Drops the new requests that waited longer than [`STALE`]; returns how many.
    fn drop_stale(&mut self, now: DateTime<Utc>) -> usize {
        let mut shed = 0;
        while self
            .initial
            .held
            .front()
            .is_some_and(|h| now - h.at > STALE)
        {
            self.initial.pop();
            shed += 1;
        }
        shed
    }

    /// The next datagram to hand over, and how many new requests were dropped for waiting
    /// longer than [`STALE`]. Ongoing work first, but a waiting new request gets every
    /// [`RUN`]+1st turn.
    fn next(&mut self, now: DateTime<Utc>) -> (Option<Held>, usize) {
        let shed = self.drop_stale(now);
        let waiting = !self.initial.is_empty();
        let next = if waiting && (self.run >= RUN || self.ongoing.is_empty()) {
            self.run = 0;
            self.initial.pop()
        } else {
            self.run += usize::from(waiting);
            self.ongoing.pop()
        };
        (next, shed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FloodConfig;
    use crate::config::Limits;
    use crate::ratelimit::FloodGuard;
    use crate::stats::Stats;
    use events::ManualClock;

    fn request(method: &str, call: u32, to_tag: Option<&str>) -> String {
        let tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        format!(
            "{method} sip:1002@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{call}\r\n\
             From: <sip:1001@127.0.0.1>;tag=a{call}\r\n\
             To: <sip:1002@127.0.0.1>{tag}\r\n\
             Call-ID: {call}@127.0.0.1\r\n\
             CSeq: 1 {method}\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    fn response(call: u32) -> String {
        format!(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-{call}\r\n\
             From: <sip:1001@127.0.0.1>;tag=a{call}\r\n\
             To: <sip:1002@127.0.0.1>;tag=b{call}\r\n\
             Call-ID: {call}@127.0.0.1\r\n\
             CSeq: 1 INVITE\r\n\
             Content-Length: 0\r\n\r\n"
        )
    }

    /// The message as sent, and its number, from what the reader got.
    fn unstamped(got: &str) -> (String, u64) {
        let (head, body) = got.split_once("\r\n\r\n").expect("a head");
        let (head, last) = head.rsplit_once("\r\n").expect("a header");
        let n = last
            .strip_prefix(&format!("{STAMP}: "))
            .unwrap_or_else(|| panic!("no stamp last in {got:?}"));
        (format!("{head}\r\n\r\n{body}"), n.parse().unwrap())
    }

    struct Setup {
        intake: Arc<Intake>,
        shared: Arc<Shared>,
        clock: Arc<ManualClock>,
        stats: Arc<Stats>,
        peer: UdpSocket,
    }

    impl Setup {
        async fn new(stall: Duration, capacity: usize) -> Self {
            let clock = Arc::new(ManualClock::at_epoch());
            let stats = Arc::new(Stats::default());
            let (ended, _) = tokio::sync::mpsc::unbounded_channel();
            let (outside, _) = tokio::sync::mpsc::unbounded_channel();
            let shared = Arc::new(Shared {
                guard: Arc::new(FloodGuard::new(FloodConfig::default())),
                stats: stats.clone(),
                clock: clock.clone(),
                limits: Limits::default(),
                user_agent: "test".into(),
                max_tcp_per_ip: 1,
                ended,
                outside,
                udp: Progress::default(),
            });
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            peer.connect(socket.local_addr().unwrap()).await.unwrap();
            let intake = Arc::new(Intake::with(socket, shared.clone(), stall, capacity));
            Self {
                intake,
                shared,
                clock,
                stats,
                peer,
            }
        }

        async fn send(&self, text: &str) {
            self.peer.send(text.as_bytes()).await.unwrap();
        }

        /// The next message the reader gets, as sent, checking its number follows the last.
        async fn recv(&self) -> String {
            let before = self.handed();
            let mut buf = vec![0u8; 65_535];
            let read = self.intake.recv(&mut buf);
            let (len, from) = tokio::time::timeout(Duration::from_secs(5), read)
                .await
                .expect("a datagram within 5 s")
                .unwrap();
            assert_eq!(from, self.peer.local_addr().unwrap());
            let (text, n) = unstamped(std::str::from_utf8(&buf[..len]).unwrap());
            assert_eq!(n, before + 1);
            text
        }

        /// The reader's next call, started: it must wait for the ingress.
        fn waiting(&self) -> tokio::task::JoinHandle<String> {
            let intake = self.intake.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                let (len, _) = intake.recv(&mut buf).await.unwrap();
                unstamped(std::str::from_utf8(&buf[..len]).unwrap()).0
            })
        }

        fn handed(&self) -> u64 {
            self.intake.handed.load(Ordering::Relaxed)
        }

        /// Messages handed over that the ingress has not taken.
        fn pending(&self) -> u64 {
            self.handed() - self.shared.udp.seen()
        }

        /// Hands the reader requests the ingress does not take until its next read must wait.
        async fn run_ahead(&self) {
            let mut call = 1000;
            while self.pending() < AHEAD {
                let text = request("INVITE", call, None);
                self.send(&text).await;
                assert_eq!(self.recv().await, text, "straight through, in order");
                call += 1;
            }
        }

        /// The ingress takes the last message handed over (and so everything before it).
        fn take_all(&self) {
            self.shared.udp.took(self.handed());
        }

        fn held(&self) -> (usize, usize) {
            let lanes = self.intake.lanes.lock().unwrap();
            (lanes.ongoing.held.len(), lanes.initial.held.len())
        }
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn while_the_ingress_keeps_up_every_datagram_goes_straight_through_in_order() {
        let s = Setup::new(LONG, CAPACITY).await;
        for call in 0..100 {
            let text = if call % 3 == 0 {
                response(call)
            } else {
                request("INVITE", call, None)
            };
            s.send(&text).await;
            assert_eq!(s.recv().await, text);
            s.take_all();
        }
        // Keep-alives pass to rsipstack, which answers them, unnumbered.
        s.send("\r\n\r\n").await;
        let mut buf = vec![0u8; 65_535];
        let (len, _) = s.intake.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"\r\n\r\n");
        assert_eq!(s.handed(), 100);
        assert_eq!(s.held(), (0, 0));
    }

    #[test]
    fn the_number_is_the_last_header_and_the_body_is_kept() {
        let text = "MESSAGE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\
                    Content-Length: 5\r\n\r\nhello";
        let mut buf = vec![0u8; 256];
        buf[..text.len()].copy_from_slice(text.as_bytes());
        let len = stamp(&mut buf, text.len(), 42).expect("room");
        assert_eq!(
            std::str::from_utf8(&buf[..len]).unwrap(),
            "MESSAGE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\
             Content-Length: 5\r\nX-Ledgerline-Intake: 42\r\n\r\nhello"
        );
        // No room: left as it is, and not handed over (the next test).
        let mut small = text.as_bytes().to_vec();
        assert_eq!(stamp(&mut small, text.len(), 42), None);
        assert_eq!(small, text.as_bytes());
    }

    #[tokio::test]
    async fn a_message_that_cannot_be_numbered_is_refused_and_the_next_one_passes() {
        let s = Setup::new(LONG, CAPACITY).await;
        let big = request("INVITE", 1, None);
        let small = "OPTIONS sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n\r\n";
        s.send(&big).await;
        s.send(small).await;
        // A read buffer with room for the first as it is but not numbered.
        let mut buf = vec![0u8; big.len() + 4];
        let (len, _) = s.intake.recv(&mut buf).await.unwrap();
        let (got, n) = unstamped(std::str::from_utf8(&buf[..len]).unwrap());
        assert_eq!((got.as_str(), n), (small, 1));
        assert_eq!(s.stats.snapshot().rejected(RejectKind::TooLarge), 1);
    }

    #[tokio::test]
    async fn a_reader_ahead_of_the_ingress_waits_then_gets_ongoing_work_first() {
        let s = Setup::new(LONG, CAPACITY).await;
        s.run_ahead().await;
        let invites: Vec<String> = (0..3).map(|c| request("INVITE", c, None)).collect();
        for invite in &invites {
            s.send(invite).await;
        }
        let answer = response(7);
        let ack = request("ACK", 7, Some("b7"));
        let reinvite = request("INVITE", 8, Some("b8"));
        for text in [&answer, &ack, &reinvite] {
            s.send(text).await;
        }
        let next = s.waiting();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!next.is_finished(), "the reader waits for the ingress");
        s.take_all();
        assert_eq!(next.await.unwrap(), answer);
        assert_eq!(s.recv().await, ack);
        assert_eq!(s.recv().await, reinvite);
        for invite in &invites {
            assert_eq!(&s.recv().await, invite);
        }
        assert_eq!(s.stats.snapshot().shed, 0);
    }

    #[tokio::test]
    async fn a_waiting_new_request_gets_a_turn_after_a_run_of_ongoing_work() {
        let s = Setup::new(LONG, CAPACITY).await;
        s.run_ahead().await;
        let invite = request("INVITE", 1, None);
        s.send(&invite).await;
        let answers: Vec<String> = (0..2 * RUN as u32).map(|c| response(100 + c)).collect();
        for answer in &answers {
            s.send(answer).await;
        }
        let next = s.waiting();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.take_all();
        assert_eq!(next.await.unwrap(), answers[0]);
        for answer in &answers[1..RUN] {
            assert_eq!(&s.recv().await, answer);
        }
        assert_eq!(s.recv().await, invite, "its turn after {RUN} in a row");
        for answer in &answers[RUN..] {
            assert_eq!(&s.recv().await, answer);
        }
    }

    #[tokio::test]
    async fn a_new_request_that_waited_too_long_is_dropped_and_counted() {
        let s = Setup::new(LONG, CAPACITY).await;
        s.run_ahead().await;
        let stale = request("REGISTER", 2, None);
        let answer = response(3);
        s.send(&stale).await;
        s.send(&answer).await;
        let next = s.waiting();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.take_all();
        assert_eq!(next.await.unwrap(), answer);
        assert_eq!(s.held(), (0, 1), "the request waits in its lane");
        // Time passes beyond STALE before the next read.
        s.clock.advance(STALE + TimeDelta::milliseconds(1));
        let fresh = request("REGISTER", 4, None);
        s.send(&fresh).await;
        assert_eq!(s.recv().await, fresh);
        assert_eq!(s.stats.snapshot().shed, 1);
        assert_eq!(s.held(), (0, 0));
    }

    #[tokio::test]
    async fn a_full_intake_drops_new_requests_before_ongoing_work() {
        let invites: Vec<String> = (10..13).map(|c| request("INVITE", c, None)).collect();
        let answers: Vec<String> = (20..23).map(response).collect();
        let (invite, answer) = (invites[0].len(), answers[0].len());
        assert!(
            invites.iter().all(|i| i.len() == invite) && answers.iter().all(|a| a.len() == answer)
        );
        // Room for two INVITEs, or one INVITE and an answer, or two answers; never three.
        let room = 2 * invite;
        assert!(invite + answer <= room && 2 * answer <= room && 3 * answer > room);
        let s = Setup::new(LONG, room).await;
        s.run_ahead().await;
        for text in invites.iter().chain(&answers) {
            s.send(text).await;
        }
        let next = s.waiting();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.take_all();
        // INVITEs 10 and 11 were held, 12 dropped; answer 20 took 10's place, 21 took 11's, and
        // 22 found only ongoing work and was dropped itself.
        assert_eq!(next.await.unwrap(), answers[0]);
        assert_eq!(s.recv().await, answers[1]);
        assert_eq!(s.held(), (0, 0));
        assert_eq!(s.stats.snapshot().shed, 4);
    }

    #[tokio::test]
    async fn what_the_reader_dropped_does_not_hold_it_up() {
        let s = Setup::new(Duration::from_millis(30), CAPACITY).await;
        // Handed over, the first ones dropped by the reader: a later one taken accounts for
        // them at once.
        s.run_ahead().await;
        let last = s.handed();
        s.shared.udp.took(last);
        assert_eq!(s.pending(), 0);
        // Dropped last, nothing taken after them: the reader stops waiting once the ingress
        // has taken nothing for a while.
        s.run_ahead().await;
        s.send(&request("OPTIONS", 1, None)).await;
        s.send(&request("OPTIONS", 2, None)).await;
        assert_eq!(s.recv().await, request("OPTIONS", 1, None));
        assert_eq!(s.shared.udp.seen(), last + AHEAD);
        assert_eq!(s.recv().await, request("OPTIONS", 2, None));
    }
}
