//! Strict parsing and sanity checks before any business logic (Kamailio's `sanity` module and
//! `mf_process_maxfwd_header`, see reliability-anchors §2.1). Two levels:
//!
//! - [`check_datagram`] looks at the raw bytes of a UDP datagram before rsipstack parses it:
//!   size, a well-formed start line, a header section of CRLF-terminated `name: value` lines in
//!   UTF-8 without control characters, limited header count and line length. rsipstack's parser
//!   is lenient (it skips lines without a colon and accepts bare LFs), and two parsers that
//!   disagree about a message are how authentication gets bypassed, so anything it would have to
//!   guess about is refused here. Refused datagrams get no reply: there is nothing trustworthy to
//!   answer to.
//! - `check_request` looks at a parsed request from any transport: SIP/2.0, a `sip:`
//!   Request-URI, the required headers present exactly once, Via (protocol, transport, branch,
//!   count), Max-Forwards, CSeq (numeric, method equal to the request's), Call-ID, From/To
//!   (parseable, From tag present, no duplicate tags), Content-Length equal to the body, a
//!   numeric Expires, no unsupported `Proxy-Require`/`Require`, and the size limits. A refused
//!   request is answered with a precise status and a `Warning` naming the check (never for ACK),
//!   and goes no further: no transaction, no actor, no event.

use rsipstack::sip::headers::ToTypedHeader;
use rsipstack::sip::{Header, Method, Request, Scheme, Transport, Version};

use crate::config::Limits;

/// Why a message was refused, for the aggregate counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    /// Larger than the limits allow.
    TooLarge,
    /// Not a well-formed SIP message at all (UDP pre-parse).
    Malformed,
    Version,
    UriScheme,
    MissingHeader,
    DuplicateHeader,
    Via,
    MaxForwards,
    TooManyHops,
    CSeq,
    CallId,
    FromTo,
    ContentLength,
    Expires,
    Extension,
}

impl RejectKind {
    pub const ALL: [RejectKind; 15] = [
        Self::TooLarge,
        Self::Malformed,
        Self::Version,
        Self::UriScheme,
        Self::MissingHeader,
        Self::DuplicateHeader,
        Self::Via,
        Self::MaxForwards,
        Self::TooManyHops,
        Self::CSeq,
        Self::CallId,
        Self::FromTo,
        Self::ContentLength,
        Self::Expires,
        Self::Extension,
    ];

    /// A short label for logs and statistics.
    pub fn label(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::Version => "version",
            Self::UriScheme => "uri_scheme",
            Self::MissingHeader => "missing_header",
            Self::DuplicateHeader => "duplicate_header",
            Self::Via => "via",
            Self::MaxForwards => "max_forwards",
            Self::TooManyHops => "too_many_hops",
            Self::CSeq => "cseq",
            Self::CallId => "call_id",
            Self::FromTo => "from_to",
            Self::ContentLength => "content_length",
            Self::Expires => "expires",
            Self::Extension => "extension",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A refused request and how to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: RejectKind,
    /// The status to answer with.
    pub status: u16,
    /// What was wrong, for the `Warning` header.
    pub detail: String,
    /// Option tags to list in `Unsupported` (420 only).
    pub unsupported: Option<String>,
}

impl Rejection {
    fn new(kind: RejectKind, status: u16, detail: impl Into<String>) -> Self {
        Self {
            kind,
            status,
            detail: detail.into(),
            unsupported: None,
        }
    }
}

/// What a datagram is, once it passed [`check_datagram`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// A CRLF keep-alive (RFC 5626); rsipstack answers it.
    Keepalive,
    /// A response, or a request that goes on with or ends work already admitted: ACK, BYE,
    /// CANCEL, or any request whose To carries a tag (inside a dialog). The edge never sheds
    /// these for load either.
    Ongoing,
    /// A request outside a dialog: it would start new work (a call, a registration).
    Initial,
}

/// Checks the raw bytes of one datagram. `Err` carries the kind to count; nothing is answered.
/// One pass over the head, line by line (every datagram of a storm comes through here), which
/// also tells whether the message goes on with admitted work or starts new work.
pub fn check_datagram(bytes: &[u8], limits: &Limits) -> Result<Datagram, RejectKind> {
    if bytes.len() > limits.max_message_bytes {
        return Err(RejectKind::TooLarge);
    }
    if bytes
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
    {
        return Ok(Datagram::Keepalive);
    }
    let end = memchr::memmem::find(bytes, b"\r\n\r\n").ok_or(RejectKind::Malformed)?;
    if bytes.len() - (end + 4) > limits.max_body_bytes {
        return Err(RejectKind::TooLarge);
    }
    // The head and its CRLF: every line ends in CRLF.
    let head = &bytes[..end + 2];
    let text = std::str::from_utf8(head).map_err(|_| RejectKind::Malformed)?;
    let mut headers = 0usize;
    let mut ongoing = false;
    // The value of the To header being read, continuation lines included: a tag may be folded
    // onto a line of its own, and the parsed request would still carry it.
    let mut to_value: Option<(usize, usize)> = None;
    let to_tagged = |span: Option<(usize, usize)>| {
        span.is_some_and(|(from, to)| crate::transport::header_tag(&text[from..to]).is_some())
    };
    let mut at = 0;
    for (n, lf) in memchr::memchr_iter(b'\n', head).enumerate() {
        // Only CRLF line ends, no other control character but HT.
        let line = match head[at..lf].split_last() {
            Some((b'\r', line)) => line,
            _ => return Err(RejectKind::Malformed),
        };
        let line_at = at;
        at = lf + 1;
        // Folded over the whole line without an early exit, so it compiles to vector code.
        let control = line.iter().fold(false, |bad, &b| {
            bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f)
        });
        if control {
            return Err(RejectKind::Malformed);
        }
        if n == 0 {
            // The start line: the head's text up to its first CR (an ASCII byte, so a boundary).
            let start = &text[..line.len()];
            if is_status_line(start) {
                ongoing = true;
            } else if is_request_line(start) {
                ongoing = ["ACK ", "BYE ", "CANCEL "]
                    .iter()
                    .any(|m| start.starts_with(m));
            } else {
                return Err(RejectKind::Malformed);
            }
            continue;
        }
        if line.len() > limits.max_header_bytes + 64 {
            return Err(RejectKind::TooLarge);
        }
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // A continuation line (folding) may not come first.
            if n == 1 {
                return Err(RejectKind::Malformed);
            }
            if let Some((_, to)) = &mut to_value {
                *to = line_at + line.len();
            }
            continue;
        }
        ongoing |= to_tagged(to_value.take());
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(RejectKind::Malformed);
        };
        let name = line[..colon].trim_ascii_end();
        if name.is_empty() || !name.iter().copied().all(is_token_byte) {
            return Err(RejectKind::Malformed);
        }
        headers += 1;
        if headers > limits.max_headers {
            return Err(RejectKind::TooLarge);
        }
        if !ongoing && (name.eq_ignore_ascii_case(b"To") || name.eq_ignore_ascii_case(b"t")) {
            to_value = Some((line_at + colon + 1, line_at + line.len()));
        }
    }
    ongoing |= to_tagged(to_value);
    Ok(if ongoing {
        Datagram::Ongoing
    } else {
        Datagram::Initial
    })
}

/// `Method SP Request-URI SP SIP/2.0`.
fn is_request_line(line: &str) -> bool {
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !method.is_empty()
        && method.bytes().all(is_token_byte)
        && !uri.is_empty()
        && uri.contains(':')
        && version.starts_with("SIP/")
}

/// `SIP/2.0 SP 3DIGIT SP Reason-Phrase`.
fn is_status_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("SIP/2.0 ") else {
        return false;
    };
    let code = rest.get(..3).unwrap_or("");
    code.len() == 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && (rest.len() == 3 || rest.as_bytes()[3] == b' ')
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Headers that must appear exactly once in a request.
const REQUIRED: [&str; 4] = ["From", "To", "Call-ID", "CSeq"];
/// Headers that may appear at most once.
const SINGLETONS: [&str; 8] = [
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
    "Expires",
];

/// Where `header` stands in [`SINGLETONS`] (and so in [`REQUIRED`], its first four), by the
/// variant rsipstack's parser gave it: it classifies every name of these, in any case and in
/// compact form, so an `Other` header is never one of them.
fn singleton_slot(header: &Header) -> Option<usize> {
    Some(match header {
        Header::From(_) => 0,
        Header::To(_) => 1,
        Header::CallId(_) => 2,
        Header::CSeq(_) => 3,
        Header::MaxForwards(_) => 4,
        Header::ContentLength(_) => 5,
        Header::ContentType(_) => 6,
        Header::Expires(_) => 7,
        _ => return None,
    })
}

/// Checks a parsed request received over `transport`.
pub(crate) fn check_request(
    req: &Request,
    transport: Transport,
    limits: &Limits,
) -> Result<(), Rejection> {
    use RejectKind as K;
    if req.version != Version::V2 {
        return Err(Rejection::new(
            K::Version,
            505,
            format!("{} is not supported", req.version),
        ));
    }
    if req.uri.scheme != Some(Scheme::Sip) {
        return Err(Rejection::new(
            K::UriScheme,
            416,
            "only sip: Request-URIs are served",
        ));
    }
    check_sizes(req, limits)?;

    // Presence and uniqueness, in one pass over the headers.
    let mut counts = [0usize; SINGLETONS.len()];
    let mut values: [Option<&str>; SINGLETONS.len()] = [None; SINGLETONS.len()];
    let mut requires = false;
    for h in req.headers.iter() {
        let Some(slot) = singleton_slot(h) else {
            requires |= matches!(h, Header::Require(_) | Header::ProxyRequire(_));
            continue;
        };
        counts[slot] += 1;
        values[slot].get_or_insert_with(|| header_value(h));
    }
    for (slot, name) in REQUIRED.iter().enumerate() {
        if counts[slot] == 0 {
            return Err(Rejection::new(
                K::MissingHeader,
                400,
                format!("missing {name}"),
            ));
        }
    }
    for (slot, name) in SINGLETONS.iter().enumerate() {
        if counts[slot] > 1 {
            return Err(Rejection::new(
                K::DuplicateHeader,
                400,
                format!("{name} more than once"),
            ));
        }
    }
    let value = |name: &str| {
        SINGLETONS
            .iter()
            .position(|n| *n == name)
            .and_then(|slot| values[slot])
    };

    check_via(req, transport, limits)?;

    if let Some(mf) = value("Max-Forwards") {
        match mf.trim().parse::<u8>() {
            Ok(0) => return Err(Rejection::new(K::TooManyHops, 483, "Max-Forwards is 0")),
            Ok(_) => {}
            Err(_) => {
                return Err(Rejection::new(
                    K::MaxForwards,
                    400,
                    "Max-Forwards is not a number from 0 to 255",
                ));
            }
        }
    }

    let cseq = value("CSeq").unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let (Some(number), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Rejection::new(K::CSeq, 400, "CSeq is not `number METHOD`"));
    };
    match number.parse::<u32>() {
        Ok(n) if n < 1 << 31 && number.bytes().all(|b| b.is_ascii_digit()) => {}
        _ => {
            return Err(Rejection::new(
                K::CSeq,
                400,
                "CSeq number is not below 2^31",
            ));
        }
    }
    if !displays_as(&req.method, method) {
        return Err(Rejection::new(
            K::CSeq,
            400,
            "CSeq method differs from the request method",
        ));
    }

    let call_id = value("Call-ID").unwrap_or_default();
    let call_id = call_id.trim();
    if call_id.is_empty() || call_id.len() > 256 || call_id.contains(char::is_whitespace) {
        return Err(Rejection::new(
            K::CallId,
            400,
            "Call-ID is empty or malformed",
        ));
    }

    check_from_to(req)?;

    let body = req.body.len();
    match value("Content-Length") {
        Some(cl) => match cl.trim().parse::<usize>() {
            Ok(n) if n == body => {}
            _ => {
                return Err(Rejection::new(
                    K::ContentLength,
                    400,
                    "Content-Length differs from the body",
                ));
            }
        },
        // Over a stream the length frames the message: it must be given.
        None if transport != Transport::Udp => {
            return Err(Rejection::new(
                K::ContentLength,
                400,
                "Content-Length is required over TCP",
            ));
        }
        None => {}
    }

    if let Some(expires) = value("Expires")
        && expires.trim().parse::<u32>().is_err()
    {
        return Err(Rejection::new(
            K::Expires,
            400,
            "Expires is not a number of seconds",
        ));
    }

    if requires && req.method != Method::Ack && req.method != Method::Cancel {
        let tags: Vec<String> = req
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Require(_) | Header::ProxyRequire(_)))
            .flat_map(|h| header_value(h).split(','))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        if !tags.is_empty() {
            let mut rejection = Rejection::new(K::Extension, 420, "unsupported extension");
            rejection.unsupported = Some(tags.join(", "));
            return Err(rejection);
        }
    }
    Ok(())
}

fn check_sizes(req: &Request, limits: &Limits) -> Result<(), Rejection> {
    use RejectKind as K;
    if req.headers.len() > limits.max_headers {
        return Err(Rejection::new(K::TooLarge, 513, "too many headers"));
    }
    if req.headers.iter().any(|h| {
        h.value().len() > limits.max_header_bytes && header_value(h).len() > limits.max_header_bytes
    }) {
        return Err(Rejection::new(K::TooLarge, 513, "a header is too long"));
    }
    if req.body.len() > limits.max_body_bytes {
        return Err(Rejection::new(K::TooLarge, 413, "the body is too large"));
    }
    if displayed_len(&req.uri) > limits.max_uri_bytes {
        return Err(Rejection::new(
            K::TooLarge,
            414,
            "the Request-URI is too long",
        ));
    }
    Ok(())
}

/// A value's `Display` text, measured as it is written instead of allocated: its length, and
/// whether it is `expected` so far.
struct Measure<'a> {
    len: usize,
    expected: &'a str,
    matches: bool,
}

impl Measure<'_> {
    fn of<'a>(value: &impl std::fmt::Display, expected: &'a str) -> Measure<'a> {
        use std::fmt::Write;
        let mut m = Measure {
            len: 0,
            expected,
            matches: true,
        };
        let _ = write!(m, "{value}");
        m
    }
}

impl std::fmt::Write for Measure<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.matches = self.matches && self.expected.get(self.len..end) == Some(s);
        self.len = end;
        Ok(())
    }
}

/// The length of `value`'s text.
fn displayed_len(value: &impl std::fmt::Display) -> usize {
    Measure::of(value, "").len
}

/// Whether `value`'s text is exactly `text`.
fn displays_as(value: &impl std::fmt::Display, text: &str) -> bool {
    let m = Measure::of(value, text);
    m.matches && m.len == text.len()
}

fn check_via(req: &Request, transport: Transport, limits: &Limits) -> Result<(), Rejection> {
    use RejectKind as K;
    let vias: Vec<&rsipstack::sip::headers::Via> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
        .collect();
    let Some(top) = vias.first() else {
        return Err(Rejection::new(K::MissingHeader, 400, "missing Via"));
    };
    let hops: usize = vias.iter().map(|v| split_commas(v.value()).len()).sum();
    if hops > limits.max_via {
        return Err(Rejection::new(K::Via, 400, "too many Via hops"));
    }
    let first = top
        .first_value()
        .map_err(|_| Rejection::new(K::Via, 400, "first Via unparseable"))?;
    let raw = first.value().trim();
    let Some((protocol, _)) = raw.split_once(|c: char| c.is_whitespace()) else {
        return Err(Rejection::new(K::Via, 400, "first Via unparseable"));
    };
    let mut parts = protocol.split('/');
    let (Some(name), Some(version), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::new(
            K::Via,
            400,
            "first Via protocol is not SIP/2.0/<transport>",
        ));
    };
    if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
        return Err(Rejection::new(
            K::Via,
            400,
            "first Via protocol is not SIP/2.0",
        ));
    }
    if !proto.trim().eq_ignore_ascii_case(&transport.to_string()) {
        return Err(Rejection::new(
            K::Via,
            400,
            "first Via transport differs from the one the request came on",
        ));
    }
    let typed = first
        .typed()
        .map_err(|_| Rejection::new(K::Via, 400, "first Via unparseable"))?;
    match typed.branch() {
        Some(b) if b.value().starts_with("z9hG4bK") && b.value().len() > 7 => Ok(()),
        _ => Err(Rejection::new(
            K::Via,
            400,
            "first Via has no RFC 3261 branch (z9hG4bK...)",
        )),
    }
}

fn check_from_to(req: &Request) -> Result<(), Rejection> {
    use RejectKind as K;
    let mut from_ok = false;
    let mut to_ok = false;
    for h in req.headers.iter() {
        match h {
            Header::From(f) => {
                let typed = f
                    .typed()
                    .map_err(|_| Rejection::new(K::FromTo, 400, "From unparseable"))?;
                let tags = count_tags(&typed.params);
                if tags != 1 {
                    return Err(Rejection::new(K::FromTo, 400, "From needs exactly one tag"));
                }
                check_scheme(&typed.uri.scheme, "From")?;
                from_ok = true;
            }
            Header::To(t) => {
                let typed = t
                    .typed()
                    .map_err(|_| Rejection::new(K::FromTo, 400, "To unparseable"))?;
                if count_tags(&typed.params) > 1 {
                    return Err(Rejection::new(K::FromTo, 400, "To has several tags"));
                }
                check_scheme(&typed.uri.scheme, "To")?;
                to_ok = true;
            }
            _ => {}
        }
    }
    if from_ok && to_ok {
        Ok(())
    } else {
        Err(Rejection::new(K::MissingHeader, 400, "missing From or To"))
    }
}

fn check_scheme(scheme: &Option<Scheme>, header: &str) -> Result<(), Rejection> {
    match scheme {
        Some(Scheme::Sip) | Some(Scheme::Sips) => Ok(()),
        _ => Err(Rejection::new(
            RejectKind::FromTo,
            400,
            format!("{header} is not a sip: URI"),
        )),
    }
}

fn count_tags(params: &[rsipstack::sip::Param]) -> usize {
    params
        .iter()
        .filter(|p| matches!(p, rsipstack::sip::Param::Tag(_)))
        .count()
}

/// The value of any header.
pub(crate) fn header_value(header: &Header) -> &str {
    header.value().trim()
}

/// Splits a header value at commas outside quotes and angle brackets.
pub(crate) fn split_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(value[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n\
        From: <sip:1001@127.0.0.1>;tag=a1\r\n\
        To: <sip:1001@127.0.0.1>\r\n\
        Call-ID: c1@127.0.0.1\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:1001@127.0.0.1:5070>\r\n\
        Max-Forwards: 70\r\n\
        Expires: 3600\r\n\
        Content-Length: 0\r\n\r\n";

    fn limits() -> Limits {
        Limits::default()
    }

    fn parse(text: &str) -> Request {
        Request::try_from(text).expect("rsipstack parses the test message")
    }

    fn with(header: &str, replacement: &str) -> String {
        let mut out = String::new();
        let mut replaced = false;
        for line in REGISTER.split_inclusive("\r\n") {
            if !replaced && line.starts_with(header) {
                out.push_str(replacement);
                replaced = true;
            } else {
                out.push_str(line);
            }
        }
        assert!(replaced, "{header} not in the template");
        out
    }

    fn rejection(text: &str) -> Rejection {
        check_request(&parse(text), Transport::Udp, &limits()).expect_err(text)
    }

    #[test]
    fn a_well_formed_register_passes_both_levels() {
        assert_eq!(
            check_datagram(REGISTER.as_bytes(), &limits()),
            Ok(Datagram::Initial)
        );
        assert_eq!(
            check_request(&parse(REGISTER), Transport::Udp, &limits()),
            Ok(())
        );
        // Compact header names are the same headers.
        let compact = REGISTER
            .replace("Via:", "v:")
            .replace("From:", "f:")
            .replace("To:", "t:")
            .replace("Call-ID:", "i:")
            .replace("Content-Length:", "l:");
        assert_eq!(
            check_request(&parse(&compact), Transport::Udp, &limits()),
            Ok(())
        );
    }

    #[test]
    fn datagrams_the_parser_would_have_to_guess_about_are_refused() {
        let l = limits();
        assert_eq!(check_datagram(b"\r\n\r\n", &l), Ok(Datagram::Keepalive));
        let cases: Vec<(String, RejectKind)> = vec![
            (REGISTER.replace("\r\n\r\n", "\r\n"), RejectKind::Malformed),
            (REGISTER.replacen("\r\n", "\n", 3), RejectKind::Malformed),
            (
                REGISTER.replace("Max-Forwards: 70", "Max-Forwards 70"),
                RejectKind::Malformed,
            ),
            (
                REGISTER.replace("Call-ID: c1", "Call-ID: c\u{0}1"),
                RejectKind::Malformed,
            ),
            (
                REGISTER.replace(
                    "REGISTER sip:127.0.0.1:5060 SIP/2.0",
                    "REGISTER  sip:x SIP/2.0",
                ),
                RejectKind::Malformed,
            ),
            (
                REGISTER.replace("REGISTER sip:", "\tREGISTER sip:"),
                RejectKind::Malformed,
            ),
            (REGISTER.replace("Via: ", "Vi a: "), RejectKind::Malformed),
            // A lone CR, a DEL, a folded first header line.
            (
                REGISTER.replace("Call-ID: c1", "Call-ID: c\r1"),
                RejectKind::Malformed,
            ),
            (
                REGISTER.replace("Call-ID: c1", "Call-ID: c\u{7f}1"),
                RejectKind::Malformed,
            ),
            (
                REGISTER.replace("SIP/2.0\r\nVia:", "SIP/2.0\r\n Via:"),
                RejectKind::Malformed,
            ),
            (
                format!("{REGISTER}{}", "x".repeat(9_000)),
                RejectKind::TooLarge,
            ),
            (
                REGISTER.replace("Expires: 3600\r\n", &"X-Pad: 1\r\n".repeat(70)),
                RejectKind::TooLarge,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(check_datagram(text.as_bytes(), &l), Err(kind), "{text:?}");
        }
        let mut latin1 = REGISTER.as_bytes().to_vec();
        latin1[40] = 0xe9;
        assert_eq!(check_datagram(&latin1, &l), Err(RejectKind::Malformed));
        assert_eq!(
            check_datagram(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", &l),
            Ok(Datagram::Ongoing)
        );
        // Folding after the first header line, and tabs, are allowed.
        let folded = REGISTER.replace("Expires: 3600", "Expires:\t3600\r\n\t ;x=1");
        assert_eq!(check_datagram(folded.as_bytes(), &l), Ok(Datagram::Initial));
    }

    #[test]
    fn a_datagram_is_told_to_go_on_with_admitted_work_or_to_start_new_work() {
        let l = limits();
        let lane = |text: &str| check_datagram(text.as_bytes(), &l).expect(text);
        let to = "To: <sip:1001@127.0.0.1>\r\n";
        let with = |start: &str, to_line: &str| {
            REGISTER
                .replacen(REGISTER.lines().next().unwrap(), start, 1)
                .replace(to, to_line)
        };
        assert!(REGISTER.contains(to), "the template's To line changed");
        for (start, to_line, expected) in [
            ("INVITE sip:1002@example.com SIP/2.0", to, Datagram::Initial),
            ("REGISTER sip:example.com SIP/2.0", to, Datagram::Initial),
            ("OPTIONS sip:example.com SIP/2.0", to, Datagram::Initial),
            // A tag in the URI's own parameters is not the header's.
            (
                "INVITE sip:1002@example.com SIP/2.0",
                "To: <sip:1001@127.0.0.1;tag=uri>\r\n",
                Datagram::Initial,
            ),
            (
                "INVITE sip:1002@example.com SIP/2.0",
                "To: <sip:1001@127.0.0.1>;tag=ab12\r\n",
                Datagram::Ongoing,
            ),
            (
                "INFO sip:1002@example.com SIP/2.0",
                "t: \"Alice;tag=no\" <sip:1001@127.0.0.1>;TAG=ab12\r\n",
                Datagram::Ongoing,
            ),
            // A tag folded onto a continuation line is the header's all the same.
            (
                "INVITE sip:1002@example.com SIP/2.0",
                "To: <sip:1001@127.0.0.1>\r\n ;tag=ab12\r\n",
                Datagram::Ongoing,
            ),
            (
                "INVITE sip:1002@example.com SIP/2.0",
                "To: <sip:1001@127.0.0.1>\r\n\t;x=1\r\n",
                Datagram::Initial,
            ),
            ("ACK sip:1002@example.com SIP/2.0", to, Datagram::Ongoing),
            ("BYE sip:1002@example.com SIP/2.0", to, Datagram::Ongoing),
            ("CANCEL sip:1002@example.com SIP/2.0", to, Datagram::Ongoing),
            ("SIP/2.0 180 Ringing", to, Datagram::Ongoing),
            (
                "SIP/2.0 407 Proxy Authentication Required",
                to,
                Datagram::Ongoing,
            ),
        ] {
            let text = with(start, to_line);
            assert_eq!(lane(&text), expected, "{text}");
        }
        // The To header last, its tag on the head's last line.
        let last = with("INVITE sip:1002@example.com SIP/2.0", "").replace(
            "Content-Length: 0\r\n\r\n",
            "Content-Length: 0\r\nTo: <sip:1001@127.0.0.1>\r\n ;tag=ab12\r\n\r\n",
        );
        assert_eq!(lane(&last), Datagram::Ongoing, "{last}");
    }

    #[test]
    fn each_kamailio_sanity_check_has_its_precise_reply() {
        let cases: Vec<(String, RejectKind, u16)> = vec![
            (
                REGISTER.replace("SIP/2.0\r\n", "SIP/3.0\r\n"),
                RejectKind::Version,
                505,
            ),
            (
                REGISTER.replace("REGISTER sip:127", "REGISTER sips:127"),
                RejectKind::UriScheme,
                416,
            ),
            (with("Call-ID:", ""), RejectKind::MissingHeader, 400),
            (with("From:", ""), RejectKind::MissingHeader, 400),
            (
                with(
                    "To:",
                    "To: <sip:1001@127.0.0.1>\r\nTo: <sip:1002@127.0.0.1>\r\n",
                ),
                RejectKind::DuplicateHeader,
                400,
            ),
            (with("CSeq:", "CSeq: 1 INVITE\r\n"), RejectKind::CSeq, 400),
            // Methods are case-sensitive (RFC 3261 §7.1), and compared whole.
            (with("CSeq:", "CSeq: 1 register\r\n"), RejectKind::CSeq, 400),
            (
                with("CSeq:", "CSeq: 1 REGISTERS\r\n"),
                RejectKind::CSeq,
                400,
            ),
            (with("CSeq:", "CSeq: 1 REGISTE\r\n"), RejectKind::CSeq, 400),
            // Compact forms count as their long names.
            (
                with("Call-ID:", "Call-ID: c1@127.0.0.1\r\ni: c2@127.0.0.1\r\n"),
                RejectKind::DuplicateHeader,
                400,
            ),
            (
                with("CSeq:", "CSeq: one REGISTER\r\n"),
                RejectKind::CSeq,
                400,
            ),
            (
                with("CSeq:", "CSeq: 4294967295 REGISTER\r\n"),
                RejectKind::CSeq,
                400,
            ),
            (
                with("Max-Forwards:", "Max-Forwards: 0\r\n"),
                RejectKind::TooManyHops,
                483,
            ),
            (
                with("Max-Forwards:", "Max-Forwards: 300\r\n"),
                RejectKind::MaxForwards,
                400,
            ),
            (
                with("Content-Length:", "Content-Length: 10\r\n"),
                RejectKind::ContentLength,
                400,
            ),
            (
                with("Expires:", "Expires: soon\r\n"),
                RejectKind::Expires,
                400,
            ),
            (
                with(
                    "Via:",
                    "Via: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK-1\r\n",
                ),
                RejectKind::Via,
                400,
            ),
            (
                with("Via:", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=1234\r\n"),
                RejectKind::Via,
                400,
            ),
            (
                with(
                    "Via:",
                    "Via: SIP/1.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n",
                ),
                RejectKind::Via,
                400,
            ),
            (
                with(
                    "Via:",
                    &format!(
                        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1{}\r\n",
                        ", SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-2".repeat(8)
                    ),
                ),
                RejectKind::Via,
                400,
            ),
            (
                with("From:", "From: <sip:1001@127.0.0.1>\r\n"),
                RejectKind::FromTo,
                400,
            ),
            (
                with("From:", "From: <sip:1001@127.0.0.1>;tag=a;tag=b\r\n"),
                RejectKind::FromTo,
                400,
            ),
            (
                with("To:", "To: <tel:+4930123>\r\n"),
                RejectKind::FromTo,
                400,
            ),
            (
                with("Call-ID:", "Call-ID: a b\r\n"),
                RejectKind::CallId,
                400,
            ),
            (
                with("Expires:", "Expires: 3600\r\nProxy-Require: foo\r\n"),
                RejectKind::Extension,
                420,
            ),
        ];
        for (text, kind, status) in cases {
            let r = rejection(&text);
            assert_eq!((r.kind, r.status), (kind, status), "{text}\n{r:?}");
        }
        let r = rejection(&with(
            "Expires:",
            "Expires: 3600\r\nRequire: path, gruu\r\n",
        ));
        assert_eq!(r.unsupported.as_deref(), Some("path, gruu"));
    }

    #[test]
    fn over_tcp_the_content_length_is_required() {
        let tcp = REGISTER
            .replace("SIP/2.0/UDP", "SIP/2.0/TCP")
            .replace("Content-Length: 0\r\n", "");
        let r = check_request(&parse(&tcp), Transport::Tcp, &limits()).unwrap_err();
        assert_eq!(r.kind, RejectKind::ContentLength);
        let tcp = REGISTER.replace("SIP/2.0/UDP", "SIP/2.0/TCP");
        assert_eq!(
            check_request(&parse(&tcp), Transport::Tcp, &limits()),
            Ok(())
        );
    }

    #[test]
    fn size_limits_apply_to_parsed_requests_too() {
        let small = Limits {
            max_headers: 5,
            ..Limits::default()
        };
        let r = check_request(&parse(REGISTER), Transport::Udp, &small).unwrap_err();
        assert_eq!((r.kind, r.status), (RejectKind::TooLarge, 513));
        let long = with(
            "Expires:",
            &format!("Expires: 3600\r\nUser-Agent: {}\r\n", "u".repeat(3_000)),
        );
        assert_eq!(rejection(&long).kind, RejectKind::TooLarge);
        // "sip:127.0.0.1:5060" is 18 bytes: allowed at 18, refused at 17.
        for (max_uri_bytes, refused) in [(18, false), (17, true)] {
            let limits = Limits {
                max_uri_bytes,
                ..Limits::default()
            };
            let r = check_request(&parse(REGISTER), Transport::Udp, &limits);
            assert_eq!(
                r.err().map(|r| (r.kind, r.status)),
                refused.then_some((RejectKind::TooLarge, 414)),
                "max_uri_bytes {max_uri_bytes}"
            );
        }
    }

    #[test]
    fn commas_split_outside_quotes_and_brackets() {
        assert_eq!(
            split_commas("<sip:a@b;x=1,2>;q=1, \"x, y\" <sip:c@d>, <sip:e@f>"),
            vec!["<sip:a@b;x=1,2>;q=1", "\"x, y\" <sip:c@d>", "<sip:e@f>"]
        );
    }
}
