//! The UDP intake: the SIP socket as rsipstack's reader sees it. Every datagram is screened here
//! before any parse (its source's packet budget, the raw sanity checks), and the reader is kept
//! at most [`AHEAD`] messages in front of the ingress. rsipstack queues what it reads without a
//! bound, so past saturation a request would wait there unseen for seconds while its sender
//! retransmits it, and so would the callee's answers while our own client transactions
//! retransmit towards it: the retransmissions are more load on a server already behind. What
//! arrives while the ingress is behind waits here instead, in two lanes: what goes on with
//! admitted work (responses, ACK, BYE, CANCEL, requests inside a dialog) is served first, and a
//! request that would start new work is dropped unanswered when it waited longer than
//! [`STALE`] or finds the intake full, and counted (its sender retransmits it, and the copy is
//! served fresh). While the ingress keeps up nothing waits: each datagram goes straight through.
//!
//! The ingress reports each UDP message it takes ([`Progress::took`]). A datagram the reader was
//! handed but dropped (a parse it refused) is never reported; when the ingress makes no
//! progress for a while the intake stops waiting for those.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::sanity::Datagram;
use crate::transport::{Screened, Shared};

/// How many messages rsipstack's reader may hold that the ingress has not taken yet.
pub(crate) const AHEAD: u64 = 32;
/// How long a request starting new work may wait here: T1 (500 ms), after which its sender
/// has sent it again (so its copy is here or on its way). Shorter drops requests a busy server
/// would have answered in time: at saturation (1,500 calls/s), 200 ms made sipp retransmit
/// 1,174 times in a 10 s step and the p99 setup time 932 ms, where first in, first out had
/// none and 148 ms.
pub(crate) const STALE: TimeDelta = TimeDelta::milliseconds(500);
/// How long the ingress may take no message while the reader waits for it, before the reader
/// stops counting what it handed over as pending.
pub(crate) const STALL: Duration = Duration::from_millis(20);
/// Bytes of datagrams held here at most.
pub(crate) const CAPACITY: usize = 4 << 20;
/// Datagrams read from the socket in one go, so one read does not hold up the runtime.
const BURST: usize = 256;

/// How many UDP messages the ingress has taken, and a wake-up for a reader waiting on it.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    taken: AtomicU64,
    moved: Notify,
}

impl Progress {
    /// The ingress took one UDP message.
    pub(crate) fn took(&self) {
        self.taken.fetch_add(1, Ordering::Release);
        self.moved.notify_one();
    }

    fn taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }
}

/// The socket, with the lanes of what waits.
pub(crate) struct Intake {
    socket: UdpSocket,
    shared: Arc<Shared>,
    lanes: Mutex<Lanes>,
    /// Messages handed to the reader (keep-alives, which never reach the ingress, excepted).
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

    /// Waits while the reader holds more than [`AHEAD`] messages the ingress has not taken;
    /// true when it had to.
    async fn catch_up(&self) -> bool {
        let progress = &self.shared.udp;
        let mut waited = false;
        loop {
            let taken = progress.taken();
            if self.handed.load(Ordering::Relaxed).saturating_sub(taken) <= AHEAD {
                return waited;
            }
            waited = true;
            let moved = tokio::time::timeout(self.stall, progress.moved.notified()).await;
            if moved.is_err() && progress.taken() == taken {
                // Nothing taken for a while: what is still counted was dropped by the reader.
                self.handed.store(taken, Ordering::Relaxed);
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
            let lane = match self.shared.screen(from.ip(), &buf[..len], len == buf.len()) {
                // rsipstack answers it; the ingress never sees it.
                Screened::Passed(Datagram::Keepalive) => return Ok(Some((len, from))),
                Screened::Passed(Datagram::Ongoing) => Lane::Ongoing,
                Screened::Passed(Datagram::Initial) => Lane::Initial,
                Screened::Banned | Screened::Refused => continue,
            };
            let Some(now) = now else {
                return Ok(Some(self.hand(len, from)));
            };
            let shed = lanes.hold(lane, &buf[..len], from, now);
            self.shed(shed);
        }
        let Some(now) = now else {
            return Ok(None);
        };
        let (next, shed) = lanes.next(now);
        self.shed(shed);
        Ok(next.map(|held| {
            buf[..held.bytes.len()].copy_from_slice(&held.bytes);
            self.hand(held.bytes.len(), held.from)
        }))
    }

    fn hand(&self, len: usize, from: SocketAddr) -> (usize, SocketAddr) {
        self.handed.fetch_add(1, Ordering::Relaxed);
        (len, from)
    }

    fn shed(&self, count: usize) {
        if count > 0 {
            self.shared.stats.shed(count as u64);
        }
    }
}

/// Which lane a datagram waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Goes on with admitted work: served first, never dropped for age.
    Ongoing,
    /// Would start new work.
    Initial,
}

/// One datagram waiting.
#[derive(Debug)]
struct Held {
    bytes: Box<[u8]>,
    from: SocketAddr,
    at: DateTime<Utc>,
}

/// What waits, first in first out within each lane.
#[derive(Debug)]
struct Lanes {
    ongoing: VecDeque<Held>,
    initial: VecDeque<Held>,
    bytes: usize,
    capacity: usize,
}

impl Lanes {
    fn new(capacity: usize) -> Self {
        Self {
            ongoing: VecDeque::new(),
            initial: VecDeque::new(),
            bytes: 0,
            capacity,
        }
    }

    fn is_empty(&self) -> bool {
        self.ongoing.is_empty() && self.initial.is_empty()
    }

    /// Keeps a datagram; returns how many were dropped for it. A full intake drops a new
    /// request that would start work; an ongoing one takes the place of the oldest of those,
    /// and is itself dropped only when nothing but ongoing work waits.
    fn hold(&mut self, lane: Lane, bytes: &[u8], from: SocketAddr, at: DateTime<Utc>) -> usize {
        let mut shed = 0;
        while self.bytes + bytes.len() > self.capacity {
            if lane == Lane::Initial {
                return shed + 1;
            }
            match self.initial.pop_front() {
                Some(old) => {
                    self.bytes -= old.bytes.len();
                    shed += 1;
                }
                None => return shed + 1,
            }
        }
        self.bytes += bytes.len();
        let held = Held {
            bytes: bytes.into(),
            from,
            at,
        };
        match lane {
            Lane::Ongoing => self.ongoing.push_back(held),
            Lane::Initial => self.initial.push_back(held),
        }
        shed
    }

    /// The next datagram to hand over, and how many new requests were dropped for waiting
    /// longer than [`STALE`].
    fn next(&mut self, now: DateTime<Utc>) -> (Option<Held>, usize) {
        let mut shed = 0;
        let next = self.ongoing.pop_front().or_else(|| {
            while let Some(held) = self.initial.pop_front() {
                if now - held.at <= STALE {
                    return Some(held);
                }
                self.bytes -= held.bytes.len();
                shed += 1;
            }
            None
        });
        if let Some(held) = &next {
            self.bytes -= held.bytes.len();
        }
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

        /// The next datagram the reader gets, as text.
        async fn recv(&self) -> String {
            let mut buf = vec![0u8; 65_535];
            let (len, from) =
                tokio::time::timeout(Duration::from_secs(5), self.intake.recv(&mut buf))
                    .await
                    .expect("a datagram within 5 s")
                    .unwrap();
            assert_eq!(from, self.peer.local_addr().unwrap());
            String::from_utf8(buf[..len].to_vec()).unwrap()
        }

        /// The reader's next call, started: it must wait for the ingress.
        fn waiting(&self) -> tokio::task::JoinHandle<String> {
            let intake = self.intake.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_535];
                let (len, _) = intake.recv(&mut buf).await.unwrap();
                String::from_utf8(buf[..len].to_vec()).unwrap()
            })
        }

        /// Messages handed over that the ingress has not taken.
        fn pending(&self) -> u64 {
            self.intake.handed.load(Ordering::Relaxed) - self.shared.udp.taken()
        }

        /// Hands the reader requests the ingress does not take until it holds more than
        /// [`AHEAD`], so that its next read waits.
        async fn run_ahead(&self) {
            let mut call = 1000;
            while self.pending() <= AHEAD {
                let text = request("INVITE", call, None);
                self.send(&text).await;
                assert_eq!(self.recv().await, text, "straight through, in order");
                call += 1;
            }
        }

        /// The ingress takes everything handed over.
        fn take_all(&self) {
            while self.pending() > 0 {
                self.shared.udp.took();
            }
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
            s.shared.udp.took();
        }
        // Keep-alives pass to rsipstack, which answers them, and are not counted as handed.
        s.send("\r\n\r\n").await;
        assert_eq!(s.recv().await, "\r\n\r\n");
        assert_eq!(s.intake.handed.load(Ordering::Relaxed), 100);
        assert!(s.intake.lanes.lock().unwrap().is_empty());
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
        // The request waits in its lane now; time passes beyond STALE before the next read.
        s.clock.advance(STALE + TimeDelta::milliseconds(1));
        let retransmitted = request("REGISTER", 2, None);
        s.send(&retransmitted).await;
        assert_eq!(
            s.recv().await,
            retransmitted,
            "the copy sent again is served"
        );
        assert_eq!(s.stats.snapshot().shed, 1);
        assert!(s.intake.lanes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_full_intake_drops_new_requests_before_ongoing_work() {
        let invite = request("INVITE", 1, None);
        let answer = response(2);
        let room = 2 * invite.len().max(answer.len());
        assert!(
            invite.len() + answer.len() <= room && 3 * answer.len() > room,
            "room for two datagrams of either kind, not for three answers"
        );
        let s = Setup::new(LONG, room).await;
        s.run_ahead().await;
        for call in 10..13 {
            s.send(&request("INVITE", call, None)).await;
        }
        for call in 20..23 {
            s.send(&response(call)).await;
        }
        let next = s.waiting();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.take_all();
        // Two INVITEs held, the third dropped; each answer took an INVITE's place, the last
        // found only ongoing work and was dropped itself.
        assert_eq!(next.await.unwrap(), response(20));
        assert_eq!(s.recv().await, response(21));
        assert_eq!(s.stats.snapshot().shed, 4);
        assert!(s.intake.lanes.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn what_the_reader_dropped_stops_holding_it_up_once_the_ingress_stalls() {
        let s = Setup::new(Duration::from_millis(30), CAPACITY).await;
        // Handed over and never taken: as if rsipstack's parser refused all of them.
        s.run_ahead().await;
        s.send(&request("OPTIONS", 1, None)).await;
        s.send(&request("OPTIONS", 2, None)).await;
        assert_eq!(s.recv().await, request("OPTIONS", 1, None));
        assert_eq!(s.recv().await, request("OPTIONS", 2, None));
    }
}
