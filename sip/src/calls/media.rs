//! The media of one leg as the back-to-back user agent handles it: the session descriptions (SDP)
//! its party sent and the ones the engine sent to it, and the one function every description
//! crossing the engine passes through, [`LegMedia::present`]. Today the parties exchange media
//! directly: a description is carried from one leg to the other unchanged. Anchoring media in
//! the engine (RTP relay, recording, transcoding) later changes `present` (and the placeholder
//! offer of click-to-call) and nothing else: every offer and answer the edge sends goes through
//! it.
//!
//! Only what signalling needs is read from a description: the direction of its first audio
//! stream (hold is `sendonly` or `inactive`, or the old `c=0.0.0.0` form) and where its media
//! goes (to tell whether a re-answer moved it).

use std::fmt;
use std::net::IpAddr;

/// A session description, as received or sent (`application/sdp`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Sdp(Vec<u8>);

impl fmt::Debug for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sdp({:?})", String::from_utf8_lossy(&self.0))
    }
}

/// The direction of a media stream (RFC 3264 §6.1), as its sender declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MediaDirection {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    /// Whether a party sending this puts its peer on hold (RFC 3264 §8.4).
    pub(crate) fn holds(self) -> bool {
        matches!(self, MediaDirection::SendOnly | MediaDirection::Inactive)
    }

    /// The direction of an answer to an offer of this one (RFC 3264 §6.1).
    pub(crate) fn answer(self) -> Self {
        match self {
            MediaDirection::SendOnly => MediaDirection::RecvOnly,
            MediaDirection::RecvOnly => MediaDirection::SendOnly,
            other => other,
        }
    }

    /// The SDP attribute (`a=...`) that declares it.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }
}

impl Sdp {
    /// The description carried by a message body, if there is one: a non-empty body whose
    /// content type is SDP (or not given).
    pub(crate) fn from_body(body: &[u8], content_type: Option<&str>) -> Option<Sdp> {
        let is_sdp = content_type.is_none_or(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/sdp")
        });
        (is_sdp && !body.iter().all(u8::is_ascii_whitespace)).then(|| Sdp(body.to_vec()))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    fn lines(&self) -> impl Iterator<Item = &str> {
        std::str::from_utf8(&self.0)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
    }

    /// The direction of the first audio stream (or of the first stream when none is audio): its
    /// own attribute, else the session's, else `sendrecv`. A connection address of `0.0.0.0`
    /// (RFC 2543 hold) counts as `inactive`.
    pub(crate) fn direction(&self) -> MediaDirection {
        let mut session = None;
        let mut stream = None;
        let mut in_media = false;
        let mut chosen = false;
        let mut held_by_address = false;
        for line in self.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                if chosen {
                    break;
                }
                in_media = true;
                chosen = m.starts_with("audio");
                stream = None;
                continue;
            }
            if let Some(c) = line.strip_prefix("c=") {
                let hold = c.split_whitespace().nth(2) == Some("0.0.0.0");
                if !in_media || chosen {
                    held_by_address = hold;
                }
                continue;
            }
            let Some(attribute) = line.strip_prefix("a=") else {
                continue;
            };
            let direction = match attribute {
                "sendrecv" => MediaDirection::SendRecv,
                "sendonly" => MediaDirection::SendOnly,
                "recvonly" => MediaDirection::RecvOnly,
                "inactive" => MediaDirection::Inactive,
                _ => continue,
            };
            if in_media {
                stream = Some(direction);
            } else {
                session = Some(direction);
            }
        }
        if held_by_address {
            return MediaDirection::Inactive;
        }
        stream.or(session).unwrap_or(MediaDirection::SendRecv)
    }

    /// Where the first audio stream's media is sent: its connection address and port.
    pub(crate) fn media_target(&self) -> Option<(String, u16)> {
        let mut address = None;
        let mut port = None;
        let mut in_audio = false;
        for line in self.lines() {
            if let Some(m) = line.strip_prefix("m=") {
                if in_audio {
                    break;
                }
                in_audio = m.starts_with("audio");
                if in_audio {
                    port = m.split_whitespace().nth(1).and_then(|p| p.parse().ok());
                }
            } else if let Some(c) = line.strip_prefix("c=")
                && (in_audio || address.is_none())
            {
                address = c.split_whitespace().nth(2).map(str::to_owned);
            }
        }
        Some((address?, port?))
    }

    /// The same description with its origin (`o=`) line replaced by the engine's.
    fn with_origin(&self, origin: &Origin) -> Sdp {
        let text = String::from_utf8_lossy(&self.0);
        let mut out = String::with_capacity(text.len() + 32);
        for line in text.split_inclusive('\n') {
            if line.starts_with("o=") {
                out.push_str(&origin.line());
                out.push_str("\r\n");
            } else {
                out.push_str(line);
            }
        }
        Sdp(out.into_bytes())
    }
}

/// The engine's origin line on a leg where the engine is the offerer (RFC 4566 §5.2): the
/// session id stays, the version goes up with every new description (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    session: u64,
    version: u64,
    address: IpAddr,
}

impl Origin {
    fn line(&self) -> String {
        let family = if self.address.is_ipv6() { "IP6" } else { "IP4" };
        format!(
            "o=ledgerline {} {} IN {family} {}",
            self.session, self.version, self.address
        )
    }
}

/// One leg's media: what its party described last and what the engine sent it.
#[derive(Debug, Clone, Default)]
pub(crate) struct LegMedia {
    /// The party's last offer or answer.
    pub(crate) remote: Option<Sdp>,
    /// What the engine sent the party last.
    pub(crate) local: Option<Sdp>,
    /// Set when the engine originated this leg (click-to-call): its descriptions then carry the
    /// engine's origin line.
    origin: Option<Origin>,
}

impl LegMedia {
    /// A leg the engine originates, whose party must see one continuous session from the engine
    /// (session id `session`, announced from `address`).
    pub(crate) fn originated(session: u64, address: IpAddr) -> Self {
        Self {
            origin: Some(Origin {
                session,
                version: 0,
                address,
            }),
            ..Self::default()
        }
    }

    /// The party described its media.
    pub(crate) fn received(&mut self, sdp: Sdp) {
        self.remote = Some(sdp);
    }

    /// What the engine sends this leg's party for `other`, the other party's description:
    /// carried unchanged, except that on a leg the engine originated the origin line is the
    /// engine's. This is the one crossing point of media between two legs.
    pub(crate) fn present(&mut self, other: &Sdp) -> Sdp {
        let out = match &mut self.origin {
            None => other.clone(),
            Some(origin) => {
                origin.version += 1;
                other.with_origin(origin)
            }
        };
        self.local = Some(out.clone());
        out
    }

    /// The first offer of a leg the engine originates before it knows the other party's media
    /// (click-to-call rings the user's phone first): one audio stream in PCMU/PCMA, `sendrecv`,
    /// pointed at the discard port of the engine's address, to be replaced by the other party's
    /// description once it answers (RFC 3725 §5). Sent through [`LegMedia::present`] like any
    /// other description, which gives it the leg's origin line.
    pub(crate) fn placeholder(&self) -> Sdp {
        let address = self
            .origin
            .as_ref()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |o| o.address);
        let family = if address.is_ipv6() { "IP6" } else { "IP4" };
        let text = format!(
            "v=0\r\no=ledgerline 0 0 IN {family} {address}\r\ns=ledgerline\r\n\
             c=IN {family} {address}\r\nt=0 0\r\n\
             m=audio 9 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
        );
        Sdp(text.into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(text: &str) -> Sdp {
        Sdp::from_body(
            text.replace('\n', "\r\n").as_bytes(),
            Some("application/sdp"),
        )
        .unwrap()
    }

    const OFFER: &str = "v=0\no=alice 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
                         m=audio 4000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\n";

    #[test]
    fn bodies_that_are_not_sdp_carry_no_description() {
        assert!(Sdp::from_body(b"", None).is_none());
        assert!(Sdp::from_body(b"\r\n", Some("application/sdp")).is_none());
        assert!(Sdp::from_body(b"v=0", Some("text/plain")).is_none());
        assert!(Sdp::from_body(b"v=0", Some("Application/SDP; charset=x")).is_some());
        assert!(Sdp::from_body(b"v=0", None).is_some());
    }

    #[test]
    fn the_direction_is_the_audio_streams_then_the_sessions() {
        assert_eq!(sdp(OFFER).direction(), MediaDirection::SendRecv);
        assert_eq!(
            sdp(&format!("{OFFER}a=sendonly\n")).direction(),
            MediaDirection::SendOnly
        );
        assert!(sdp(&format!("{OFFER}a=inactive\n")).direction().holds());
        assert!(!sdp(&format!("{OFFER}a=recvonly\n")).direction().holds());
        // Session level, overridden by the stream.
        let session_level =
            "v=0\no=a 1 1 IN IP4 192.0.2.1\ns=-\na=sendonly\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
        assert_eq!(sdp(session_level).direction(), MediaDirection::SendOnly);
        assert_eq!(
            sdp(&format!("{session_level}a=sendrecv\n")).direction(),
            MediaDirection::SendRecv
        );
        // Video after audio does not count.
        let video = format!("{OFFER}m=video 5000 RTP/AVP 96\na=inactive\n");
        assert_eq!(sdp(&video).direction(), MediaDirection::SendRecv);
        // RFC 2543 hold.
        assert!(
            sdp(&OFFER.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0"))
                .direction()
                .holds()
        );
    }

    #[test]
    fn the_media_target_is_the_audio_address_and_port() {
        assert_eq!(
            sdp(OFFER).media_target(),
            Some(("192.0.2.1".to_owned(), 4000))
        );
        let per_stream = OFFER.replace("a=rtpmap", "c=IN IP4 198.51.100.7\na=rtpmap");
        assert_eq!(
            sdp(&per_stream).media_target(),
            Some(("198.51.100.7".to_owned(), 4000))
        );
    }

    #[test]
    fn descriptions_cross_unchanged_except_for_the_engines_origin_on_originated_legs() {
        let offer = sdp(OFFER);
        let mut relayed = LegMedia::default();
        assert_eq!(relayed.present(&offer), offer);
        assert_eq!(relayed.local, Some(offer.clone()));

        let mut originated = LegMedia::originated(42, "192.0.2.9".parse().unwrap());
        let placeholder = originated.placeholder();
        let first = originated.present(&placeholder);
        let text = String::from_utf8_lossy(first.bytes()).to_string();
        assert!(
            text.contains("o=ledgerline 42 1 IN IP4 192.0.2.9\r\n"),
            "{text}"
        );
        assert!(
            text.contains("c=IN IP4 192.0.2.9\r\nt=0 0\r\nm=audio 9 "),
            "{text}"
        );
        assert_eq!(first.direction(), MediaDirection::SendRecv);
        let second = originated.present(&offer);
        let text = String::from_utf8_lossy(second.bytes()).to_string();
        assert!(
            text.contains("o=ledgerline 42 2 IN IP4 192.0.2.9\r\n"),
            "{text}"
        );
        assert!(!text.contains("o=alice"));
        assert!(text.contains("m=audio 4000 RTP/AVP 0"));
        assert_eq!(second.media_target(), offer.media_target());
    }
}
