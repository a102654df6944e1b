//! What the edge keeps of the requests it answers without a transaction (REGISTER, OPTIONS
//! outside a dialog): for each authenticated request over UDP, that it is being answered and
//! then the datagram that answered it, for at least 64×T1 (32 s, a non-INVITE server
//! transaction's Timer J). A retransmission is absorbed while its first copy is being answered
//! and gets the same datagram afterwards, so it never runs twice: its digest nonce count would
//! read as a replay, and a phone would be challenged for its own retransmission. Requests
//! without credentials are not kept (answering one again only challenges again), nor those over
//! TCP or WebSocket (never retransmitted).
//!
//! Two generations of a map, swapped every 32 s: an answer is found for 32 to 64 s, and
//! forgetting costs one swap, not a timer per entry. A request is known by a keyed hash of its
//! source, Call-ID, CSeq and top Via (whose branch names the transaction), so the store holds
//! eight bytes of key and the datagram per request.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsipstack::sip::{Header, Request};

/// How long an answer is kept at least: 64×T1, Timer J of RFC 3261 §17.2.2.
pub(crate) const KEEP: Duration = Duration::from_secs(32);

/// What the store knows of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// New: it is now being answered.
    First,
    /// A retransmission while the first copy is being answered: drop it.
    Answering,
    /// A retransmission of one answered: send this datagram again.
    Answered(Arc<[u8]>),
}

#[derive(Debug, Clone)]
enum Entry {
    Answering,
    Answered(Arc<[u8]>),
}

#[derive(Debug)]
struct Generations {
    current: HashMap<u64, Entry>,
    previous: HashMap<u64, Entry>,
    since: Instant,
}

/// The answers kept for retransmissions; see the module docs.
#[derive(Debug)]
pub(crate) struct Answers {
    keep: Duration,
    keys: RandomState,
    inner: Mutex<Generations>,
}

impl Answers {
    /// Keeps each answer for at least `keep`.
    pub(crate) fn new(keep: Duration) -> Self {
        Self {
            keep,
            keys: RandomState::new(),
            inner: Mutex::new(Generations {
                current: HashMap::new(),
                previous: HashMap::new(),
                since: Instant::now(),
            }),
        }
    }

    /// The key of `req` from `source` when its answer is kept: it carries credentials.
    pub(crate) fn key(&self, req: &Request, source: SocketAddr) -> Option<u64> {
        let mut hasher = self.keys.build_hasher();
        source.hash(&mut hasher);
        let (mut call_id, mut cseq, mut via, mut credentials) = (false, false, false, false);
        for h in req.headers.iter() {
            match h {
                Header::CallId(v) if !call_id => {
                    (0u8, v.value()).hash(&mut hasher);
                    call_id = true;
                }
                Header::CSeq(v) if !cseq => {
                    (1u8, v.value()).hash(&mut hasher);
                    cseq = true;
                }
                Header::Via(v) if !via => {
                    (2u8, v.value()).hash(&mut hasher);
                    via = true;
                }
                Header::Authorization(_) | Header::ProxyAuthorization(_) => credentials = true,
                _ => {}
            }
        }
        (credentials && call_id && cseq && via).then(|| hasher.finish())
    }

    /// What is known of the request `key` at `now`; a new one is marked as being answered.
    pub(crate) fn seen(&self, key: u64, now: Instant) -> Seen {
        let mut g = self.lock(now);
        let found = g.current.get(&key).or_else(|| g.previous.get(&key));
        match found {
            Some(Entry::Answering) => Seen::Answering,
            Some(Entry::Answered(datagram)) => Seen::Answered(datagram.clone()),
            None => {
                g.current.insert(key, Entry::Answering);
                Seen::First
            }
        }
    }

    /// The request `key` was answered with `datagram`.
    pub(crate) fn answered(&self, key: u64, datagram: Box<[u8]>, now: Instant) {
        let mut g = self.lock(now);
        g.previous.remove(&key);
        g.current.insert(key, Entry::Answered(datagram.into()));
    }

    /// The request `key` got no answer that could be repeated: a retransmission is answered
    /// afresh.
    pub(crate) fn forget(&self, key: u64) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.current.remove(&key);
        g.previous.remove(&key);
    }

    /// Requests known now (being answered or answered).
    pub(crate) fn len(&self) -> usize {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.current.len() + g.previous.len()
    }

    /// The generations at `now`, rotated when the current one is `keep` old.
    fn lock(&self, now: Instant) -> std::sync::MutexGuard<'_, Generations> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let age = now.saturating_duration_since(g.since);
        if age >= self.keep {
            let current = std::mem::take(&mut g.current);
            g.previous = if age >= self.keep * 2 {
                HashMap::new()
            } else {
                current
            };
            g.since = now;
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(branch: &str, cseq: u32, credentials: bool) -> Request {
        let auth = if credentials {
            "Authorization: Digest username=\"1001\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"0\"\r\n"
        } else {
            ""
        };
        let raw = format!(
            "REGISTER sip:r SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             From: <sip:1001@r>;tag=a\r\n\
             To: <sip:1001@r>\r\n\
             Call-ID: c1\r\n\
             CSeq: {cseq} REGISTER\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).expect("a request")
    }

    fn source() -> SocketAddr {
        "192.0.2.1:5060".parse().unwrap()
    }

    /// The key of an authenticated REGISTER from [`source`] with `branch` and `cseq`.
    fn key_of(answers: &Answers, branch: &str, cseq: u32) -> u64 {
        key_from(answers, branch, cseq, source())
    }

    fn key_from(answers: &Answers, branch: &str, cseq: u32, from: SocketAddr) -> u64 {
        answers.key(&register(branch, cseq, true), from).unwrap()
    }

    #[test]
    fn a_retransmission_is_absorbed_then_answered_with_the_same_datagram() {
        let answers = Answers::new(KEEP);
        let t0 = Instant::now();
        let key = key_of(&answers, "z9hG4bK1", 2);
        assert_eq!(answers.seen(key, t0), Seen::First);
        assert_eq!(answers.seen(key, t0), Seen::Answering);
        answers.answered(key, b"SIP/2.0 200 OK".to_vec().into(), t0);
        assert_eq!(
            answers.seen(key, t0 + Duration::from_secs(5)),
            Seen::Answered(Arc::from(&b"SIP/2.0 200 OK"[..]))
        );
    }

    #[test]
    fn requests_are_told_apart_by_source_cseq_and_branch_and_only_credentials_are_kept() {
        let answers = Answers::new(KEEP);
        let key = key_of(&answers, "z9hG4bK1", 2);
        let other_source = key_from(&answers, "z9hG4bK1", 2, "192.0.2.2:5060".parse().unwrap());
        let next = key_of(&answers, "z9hG4bK2", 3);
        assert_ne!(key, other_source);
        assert_ne!(key, next);
        assert_eq!(key_of(&answers, "z9hG4bK1", 2), key);
        assert_eq!(answers.key(&register("z9hG4bK1", 1, false), source()), None);
    }

    #[test]
    fn an_answer_is_kept_at_least_keep_and_forgotten_within_twice_that() {
        let answers = Answers::new(KEEP);
        let t0 = Instant::now();
        let key = key_of(&answers, "z9hG4bK1", 2);
        assert_eq!(answers.seen(key, t0), Seen::First);
        answers.answered(key, b"x".to_vec().into(), t0);
        // The generation turns over once: still found.
        assert!(matches!(answers.seen(key, t0 + KEEP), Seen::Answered(_)));
        // Twice: gone, and the request is new again.
        assert_eq!(answers.seen(key, t0 + KEEP * 2), Seen::First);
        answers.forget(key);
        assert_eq!(answers.len(), 0);
        // A long quiet spell drops both generations at once.
        let later = key_of(&answers, "z9hG4bK3", 4);
        assert_eq!(answers.seen(later, t0 + KEEP * 2), Seen::First);
        answers.answered(later, b"y".to_vec().into(), t0 + KEEP * 2);
        assert_eq!(answers.seen(later, t0 + KEEP * 5), Seen::First);
    }
}
