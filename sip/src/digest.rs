//! Digest authentication as a SIP registrar does it (RFC 3261 §22, RFC 7616 and RFC 8760 for
//! SHA-256, RFC 2617 `qop=auth`): the algorithms and HA1 secrets, the parser of `Authorization`
//! credentials, the response computation, and the nonces.
//!
//! Nonces are stateless and bound to the source: `hex(issued_ms) hex(serial) hex(mac)`, where
//! the MAC is an HMAC-SHA-256 over the issue time, a per-process serial and the source IP under a
//! key drawn once per process from the injected id generator. A nonce presented from another
//! address, forged or altered fails the MAC; an old one is stale. Because the serial makes every
//! nonce unique, the counts (`nc`) seen for each of the newest nonces are remembered (a ring by
//! serial, constant work per request), and a count that does not increase is a replay; a nonce
//! too old for the ring is answered like a stale one. Nothing in a challenge depends on the user, so known and unknown
//! users are challenged identically.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::IdGen;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm the registrar can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    /// The `algorithm=` token.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha256 => "SHA-256",
        }
    }

    /// Parses an `algorithm=` token (case-insensitive); `-sess` variants are not supported.
    pub fn from_name(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("MD5") {
            Some(Self::Md5)
        } else if name.eq_ignore_ascii_case("SHA-256") {
            Some(Self::Sha256)
        } else {
            None
        }
    }

    /// Length of a hash of this algorithm in hex digits.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha256 => 64,
        }
    }

    /// The hash of `data`, lowercase hex.
    pub fn hash_hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 => hex(&Md5::digest(data)),
            Self::Sha256 => hex(&Sha256::digest(data)),
        }
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a secret could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("an {algorithm} HA1 is {expected} hexadecimal digits")]
    NotHa1 {
        algorithm: DigestAlgorithm,
        expected: usize,
    },
}

/// HA1 = H(username:realm:password) for one algorithm, lowercase hex. A secret: `Debug` never
/// prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    algorithm: DigestAlgorithm,
    hex: String,
}

impl Ha1 {
    /// Computes HA1 from a clear password, which is not kept.
    pub fn from_password(
        algorithm: DigestAlgorithm,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Self {
        Self {
            algorithm,
            hex: algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes()),
        }
    }

    /// Accepts an HA1 computed elsewhere.
    pub fn from_hex(algorithm: DigestAlgorithm, hex: &str) -> Result<Self, DigestError> {
        if hex.len() != algorithm.hex_len() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::NotHa1 {
                algorithm,
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_ascii_lowercase(),
        })
    }

    pub fn algorithm(&self) -> DigestAlgorithm {
        self.algorithm
    }

    pub fn as_hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ha1({}, <redacted>)", self.algorithm)
    }
}

/// The digest secrets of one SIP account: an HA1 per algorithm it can authenticate with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestSecrets {
    md5: Option<Ha1>,
    sha256: Option<Ha1>,
}

impl DigestSecrets {
    /// Both HA1s from a clear password (not kept).
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self {
            md5: Some(Ha1::from_password(
                DigestAlgorithm::Md5,
                username,
                realm,
                password,
            )),
            sha256: Some(Ha1::from_password(
                DigestAlgorithm::Sha256,
                username,
                realm,
                password,
            )),
        }
    }

    /// These secrets with `ha1` added (replacing one of the same algorithm).
    pub fn with(mut self, ha1: Ha1) -> Self {
        match ha1.algorithm {
            DigestAlgorithm::Md5 => self.md5 = Some(ha1),
            DigestAlgorithm::Sha256 => self.sha256 = Some(ha1),
        }
        self
    }

    pub fn get(&self, algorithm: DigestAlgorithm) -> Option<&Ha1> {
        match algorithm {
            DigestAlgorithm::Md5 => self.md5.as_ref(),
            DigestAlgorithm::Sha256 => self.sha256.as_ref(),
        }
    }

    /// The algorithms these secrets can verify.
    pub fn algorithms(&self) -> Vec<DigestAlgorithm> {
        [DigestAlgorithm::Sha256, DigestAlgorithm::Md5]
            .into_iter()
            .filter(|a| self.get(*a).is_some())
            .collect()
    }
}

/// The `qop=auth` part of a digest response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    /// The nonce count as sent (8 hex digits); the response is computed over this text.
    pub nc_hex: String,
    pub nc: u32,
    pub cnonce: String,
}

/// The credentials of one `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: DigestAlgorithm,
    pub qop: Option<QopAuth>,
    pub opaque: Option<String>,
}

/// Why an `Authorization` header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("not Digest credentials")]
    NotDigest,
    #[error("malformed credentials: {0}")]
    Syntax(&'static str),
    #[error("parameter {0} given twice")]
    Duplicate(String),
    #[error("parameter {0} missing")]
    Missing(&'static str),
    #[error("parameter {0} too long")]
    TooLong(String),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// Longest value a credentials parameter may have.
const MAX_PARAM_BYTES: usize = 512;
/// Most parameters one header may have.
const MAX_PARAMS: usize = 16;

impl DigestCredentials {
    /// Parses the value of an `Authorization` header strictly: the `Digest` scheme, then
    /// comma-separated `name=value` pairs (token or quoted string), no duplicate, every
    /// required parameter, `qop` only `auth` (with `nc` and `cnonce`), and a response of the
    /// algorithm's length.
    pub fn parse(value: &str) -> Result<Self, CredentialsError> {
        let (params, algorithm) = digest_params(value)?;
        if param(&params, "userhash").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Err(CredentialsError::Unsupported("userhash"));
        }
        let qop = match param(&params, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_hex = required(&params, "nc")?;
                if nc_hex.len() != 8 || !nc_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(CredentialsError::Syntax("nc must be 8 hexadecimal digits"));
                }
                let nc = u32::from_str_radix(&nc_hex, 16)
                    .map_err(|_| CredentialsError::Syntax("nc must be 8 hexadecimal digits"))?;
                if nc == 0 {
                    return Err(CredentialsError::Syntax("nc must not be 0"));
                }
                let cnonce = required(&params, "cnonce")?;
                if cnonce.is_empty() {
                    return Err(CredentialsError::Syntax("empty cnonce"));
                }
                Some(QopAuth { nc_hex, nc, cnonce })
            }
            Some(_) => return Err(CredentialsError::Unsupported("qop")),
        };
        let response = required(&params, "response")?;
        if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(CredentialsError::Syntax(
                "response is not a hash of the algorithm",
            ));
        }
        let credentials = Self {
            username: required(&params, "username")?,
            realm: required(&params, "realm")?,
            nonce: required(&params, "nonce")?,
            uri: required(&params, "uri")?,
            response: response.to_ascii_lowercase(),
            algorithm,
            qop,
            opaque: param(&params, "opaque").map(str::to_owned),
        };
        if credentials.username.is_empty() || credentials.uri.is_empty() {
            return Err(CredentialsError::Syntax("empty username or uri"));
        }
        Ok(credentials)
    }
}

impl DigestCredentials {
    /// What a client holding `ha1` sends as `username` for `method` on `uri` in answer to
    /// `challenge`: `qop=auth` with nonce count `nc` and `cnonce`, in the challenge's algorithm
    /// (which must be `ha1`'s).
    pub fn answer(
        challenge: &DigestChallenge,
        username: &str,
        ha1: &Ha1,
        method: &str,
        uri: &str,
        nc: u32,
        cnonce: String,
    ) -> Self {
        let qop = QopAuth {
            nc_hex: format!("{nc:08x}"),
            nc,
            cnonce,
        };
        Self {
            username: username.to_owned(),
            realm: challenge.realm.clone(),
            nonce: challenge.nonce.clone(),
            uri: uri.to_owned(),
            response: expected_response(ha1, method, uri, &challenge.nonce, Some(&qop)),
            algorithm: ha1.algorithm,
            qop: Some(qop),
            opaque: challenge.opaque.clone(),
        }
    }
}

/// The value of an `Authorization` (or `Proxy-Authorization`) header, as [`DigestCredentials::parse`]
/// reads it back.
impl fmt::Display for DigestCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response=\"{}\", algorithm={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            self.response,
            self.algorithm.name()
        )?;
        if let Some(q) = &self.qop {
            write!(
                f,
                ", cnonce={}, nc={}, qop=auth",
                Quoted(&q.cnonce),
                q.nc_hex
            )?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        Ok(())
    }
}

/// A quoted-string: the value in double quotes, `"` and `\` escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if c == '"' || c == '\\' {
                f.write_str("\\")?;
            }
            write!(f, "{c}")?;
        }
        f.write_str("\"")
    }
}

/// A digest challenge (`WWW-Authenticate` or `Proxy-Authenticate`) as a client reads it: what
/// [`challenge`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    /// MD5 when the challenge names none.
    pub algorithm: DigestAlgorithm,
    pub opaque: Option<String>,
}

impl DigestChallenge {
    /// Parses the value of a challenge header with the credentials' parameter syntax: the
    /// `Digest` scheme, a `realm` and a `nonce`; an algorithm not supported here is refused
    /// (a client then answers another challenge of the same response).
    pub fn parse(value: &str) -> Result<Self, CredentialsError> {
        let (params, algorithm) = digest_params(value)?;
        Ok(Self {
            realm: required(&params, "realm")?,
            nonce: required(&params, "nonce")?,
            algorithm,
            opaque: param(&params, "opaque").map(str::to_owned),
        })
    }
}

/// The `Digest` scheme's parameters in a challenge or credentials header, and the algorithm
/// they name (MD5 when none); an algorithm not supported here is refused.
fn digest_params(value: &str) -> Result<(Params<'_>, DigestAlgorithm), CredentialsError> {
    let rest = match value.trim().split_once([' ', '\t']) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Digest") => rest,
        _ => return Err(CredentialsError::NotDigest),
    };
    let params = parse_auth_params(rest)?;
    let algorithm = match param(&params, "algorithm") {
        None => DigestAlgorithm::Md5,
        Some(a) => {
            DigestAlgorithm::from_name(a).ok_or(CredentialsError::Unsupported("algorithm"))?
        }
    };
    Ok((params, algorithm))
}

/// `name=value` pairs as written: a value is borrowed unless unescaping a quoted string
/// changed it. Names compare case-insensitively ([`param`]).
type Params<'a> = Vec<(&'a str, Cow<'a, str>)>;

/// The value of parameter `name` (lowercase) among `params`.
fn param<'p>(params: &'p Params<'_>, name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_ref())
}

/// The value of parameter `name` (lowercase), which must be among `params`.
fn required(params: &Params<'_>, name: &'static str) -> Result<String, CredentialsError> {
    param(params, name)
        .map(str::to_owned)
        .ok_or(CredentialsError::Missing(name))
}

fn parse_auth_params(input: &str) -> Result<Params<'_>, CredentialsError> {
    let bytes = input.as_bytes();
    let mut params: Params<'_> = Vec::with_capacity(12);
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < bytes.len() && matches!(bytes[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        let start = i;
        while i < bytes.len() && is_token_char(bytes[i]) {
            i += 1;
        }
        if i == start {
            return Err(CredentialsError::Syntax("expected a parameter name"));
        }
        let name = &input[start..i];
        let too_long = || CredentialsError::TooLong(name.to_ascii_lowercase());
        skip_ws(&mut i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(CredentialsError::Syntax(
                "expected '=' after a parameter name",
            ));
        }
        i += 1;
        skip_ws(&mut i);
        let value = if i < bytes.len() && bytes[i] == b'"' {
            i += 1;
            let start = i;
            // Only a value with escapes is copied.
            let mut unescaped: Option<Vec<u8>> = None;
            loop {
                match bytes.get(i) {
                    None => return Err(CredentialsError::Syntax("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let escaped = *bytes
                            .get(i + 1)
                            .ok_or(CredentialsError::Syntax("unterminated quoted string"))?;
                        unescaped
                            .get_or_insert_with(|| bytes[start..i].to_vec())
                            .push(escaped);
                        i += 2;
                    }
                    Some(&c) if c < 0x20 && c != b'\t' => {
                        return Err(CredentialsError::Syntax("control character in a value"));
                    }
                    Some(&c) => {
                        if let Some(v) = unescaped.as_mut() {
                            v.push(c);
                        }
                        i += 1;
                    }
                }
                if unescaped.as_ref().map_or(i - start, Vec::len) > MAX_PARAM_BYTES {
                    return Err(too_long());
                }
            }
            match unescaped {
                Some(v) => Cow::Owned(
                    String::from_utf8(v)
                        .map_err(|_| CredentialsError::Syntax("value is not UTF-8"))?,
                ),
                // Between two ASCII quotes: a whole UTF-8 slice.
                None => Cow::Borrowed(&input[start..i - 1]),
            }
        } else {
            let start = i;
            while i < bytes.len() && is_token_char(bytes[i]) {
                i += 1;
            }
            if i == start {
                return Err(CredentialsError::Syntax("expected a parameter value"));
            }
            Cow::Borrowed(&input[start..i])
        };
        if value.len() > MAX_PARAM_BYTES {
            return Err(too_long());
        }
        if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(CredentialsError::Duplicate(name.to_ascii_lowercase()));
        }
        params.push((name, value));
        if params.len() > MAX_PARAMS {
            return Err(CredentialsError::Syntax("too many parameters"));
        }
        skip_ws(&mut i);
        match bytes.get(i) {
            None => return Ok(params),
            Some(b',') => i += 1,
            Some(_) => return Err(CredentialsError::Syntax("expected ',' between parameters")),
        }
    }
}

/// RFC 3261 `token` characters.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~' | b'/'
        )
}

/// The response a client knowing `ha1` computes for `method` on `uri` with `nonce`:
/// H(HA1:nonce:nc:cnonce:auth:HA2) with `qop=auth`, H(HA1:nonce:HA2) without (RFC 2069), where
/// HA2 = H(method:uri).
pub fn expected_response(
    ha1: &Ha1,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<&QopAuth>,
) -> String {
    let algorithm = ha1.algorithm;
    let ha2 = algorithm.hash_hex(format!("{method}:{uri}").as_bytes());
    let input = match qop {
        Some(q) => format!("{}:{nonce}:{}:{}:auth:{ha2}", ha1.hex, q.nc_hex, q.cnonce),
        None => format!("{}:{nonce}:{ha2}", ha1.hex),
    };
    algorithm.hash_hex(input.as_bytes())
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of a `WWW-Authenticate` header challenging with `algorithm`.
pub fn challenge(realm: &str, nonce: &str, algorithm: DigestAlgorithm, stale: bool) -> String {
    let realm: String = realm
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
        algorithm.name(),
        if stale { ", stale=true" } else { "" }
    )
}

/// What a presented nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours, for this source, within its lifetime.
    Fresh(IssuedNonce),
    /// Ours and for this source, but expired: the client should retry with a fresh one.
    Stale,
    /// Not ours, altered, or issued to another address.
    Invalid,
}

/// A nonce we issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedNonce {
    pub serial: u64,
    pub issued_ms: i64,
}

/// Tolerated clock difference for a nonce that claims to come from the future (ms).
const FUTURE_SKEW_MS: i64 = 5_000;
/// Hex digits of a nonce: issue time, serial, truncated MAC (16 bytes).
const NONCE_HEX_LEN: usize = 16 + 16 + 32;

/// Issues and checks nonces, and remembers the counts used with each live one.
pub struct Nonces {
    /// One HMAC-SHA-256 block.
    key: [u8; 64],
    lifetime_ms: i64,
    serial: AtomicU64,
    counts: Mutex<NonceCounts>,
}

/// The highest count seen for each of the newest `slots.len()` nonces issued, in a ring indexed
/// by serial: constant work per request, and a nonce older than the ring is forgotten (its client
/// is told it is stale) instead of the table filling up.
struct NonceCounts {
    /// `serial % len` → (serial, highest nc seen); `u64::MAX` marks a free slot.
    slots: Vec<(u64, u32)>,
}

/// What [`Nonces::count`] made of a nonce's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCount {
    /// Higher than any seen with this nonce: the first use, or the client's next request.
    Counted,
    /// Not higher than one already seen: a replay.
    Replay,
    /// Too many nonces were issued since this one to remember its counts: the client should
    /// retry with a fresh one (a stale challenge).
    Forgotten,
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nonces")
            .field("key", &"<redacted>")
            .field("lifetime_ms", &self.lifetime_ms)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// A nonce source keyed from `ids` (four UUIDs hashed together: at least 296 random bits
    /// from the system generator), valid for `lifetime`, remembering counts for at most
    /// `max_tracked` nonces.
    pub fn new(ids: &dyn IdGen, lifetime: Duration, max_tracked: usize) -> Self {
        let uuids: Vec<_> = (0..4).map(|_| ids.next_uuid()).collect();
        let mut key = [0u8; 64];
        for (half, label) in key
            .chunks_mut(32)
            .zip([&b"nonce key 1"[..], b"nonce key 2"])
        {
            let mut seed = Sha256::new();
            seed.update(label);
            for u in &uuids {
                seed.update(u.as_bytes());
            }
            half.copy_from_slice(&seed.finalize());
        }
        Self {
            key,
            lifetime_ms: i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX),
            serial: AtomicU64::new(1),
            counts: Mutex::new(NonceCounts {
                slots: vec![(u64::MAX, 0); max_tracked.max(1)],
            }),
        }
    }

    /// A fresh nonce for `source`.
    pub fn issue(&self, now: DateTime<Utc>, source: IpAddr) -> String {
        let issued_ms = now.timestamp_millis();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mac = self.mac(issued_ms, serial, source);
        format!("{issued_ms:016x}{serial:016x}{}", hex(&mac))
    }

    /// What `nonce`, presented from `source` at `now`, is.
    pub fn check(&self, nonce: &str, now: DateTime<Utc>, source: IpAddr) -> NonceCheck {
        if nonce.len() != NONCE_HEX_LEN || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return NonceCheck::Invalid;
        }
        let (Ok(issued), Ok(serial)) = (
            u64::from_str_radix(&nonce[..16], 16),
            u64::from_str_radix(&nonce[16..32], 16),
        ) else {
            return NonceCheck::Invalid;
        };
        let issued_ms = issued as i64;
        let expected = hex(&self.mac(issued_ms, serial, source));
        if !constant_time_eq(
            expected.as_bytes(),
            nonce[32..].to_ascii_lowercase().as_bytes(),
        ) {
            return NonceCheck::Invalid;
        }
        let now_ms = now.timestamp_millis();
        if issued_ms > now_ms + FUTURE_SKEW_MS {
            return NonceCheck::Invalid;
        }
        if now_ms - issued_ms > self.lifetime_ms {
            return NonceCheck::Stale;
        }
        NonceCheck::Fresh(IssuedNonce { serial, issued_ms })
    }

    /// Records that `nonce` was used with count `nc`: counted when the count is higher than any
    /// seen with it before (the first use, or the next request of a client reusing the nonce), a
    /// replay otherwise, or forgotten when more than `max_tracked` nonces were issued after it.
    pub fn count(&self, nonce: IssuedNonce, nc: u32) -> NonceCount {
        let issued = self.serial.load(Ordering::Relaxed);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let len = counts.slots.len() as u64;
        if nonce.serial >= issued || issued - nonce.serial > len {
            return NonceCount::Forgotten;
        }
        let slot = &mut counts.slots[(nonce.serial % len) as usize];
        if slot.0 != nonce.serial {
            // The slot's previous nonce is older than the ring: forgotten already.
            *slot = (nonce.serial, nc);
            return NonceCount::Counted;
        }
        if nc <= slot.1 {
            return NonceCount::Replay;
        }
        slot.1 = nc;
        NonceCount::Counted
    }

    fn mac(&self, issued_ms: i64, serial: u64, source: IpAddr) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&self.key.into());
        mac.update(&issued_ms.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        match source {
            IpAddr::V4(v4) => {
                mac.update(&[4]);
                mac.update(&v4.octets());
            }
            IpAddr::V6(v6) => {
                mac.update(&[6]);
                mac.update(&v6.octets());
            }
        }
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&tag[..16]);
        out
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::SeededIds;
    use std::net::Ipv4Addr;

    const RFC7616_HEADER: &str = r#"Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm=SHA-256,
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_767_225_600_000 + ms).unwrap()
    }

    #[test]
    fn rfc2617_md5_qop_auth_vector() {
        let ha1 = Ha1::from_password(
            DigestAlgorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let qop = QopAuth {
            nc_hex: "00000001".into(),
            nc: 1,
            cnonce: "0a4f113b".into(),
        };
        assert_eq!(
            expected_response(
                &ha1,
                "GET",
                "/dir/index.html",
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                Some(&qop)
            ),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc7616_md5_and_sha256_vectors() {
        let qop = QopAuth {
            nc_hex: "00000001".into(),
            nc: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ".into(),
        };
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let secrets =
            DigestSecrets::from_password("Mufasa", "http-auth@example.org", "Circle of Life");
        let response = |a| {
            expected_response(
                secrets.get(a).unwrap(),
                "GET",
                "/dir/index.html",
                nonce,
                Some(&qop),
            )
        };
        assert_eq!(
            response(DigestAlgorithm::Md5),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!(
            response(DigestAlgorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc7616_authorization_header_parses_and_verifies() {
        let c = DigestCredentials::parse(RFC7616_HEADER).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.algorithm, DigestAlgorithm::Sha256);
        assert_eq!(c.qop.as_ref().unwrap().nc, 1);
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        let ha1 = Ha1::from_password(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let expected = expected_response(&ha1, "GET", &c.uri, &c.nonce, c.qop.as_ref());
        assert!(constant_time_eq(expected.as_bytes(), c.response.as_bytes()));
        let wrong = Ha1::from_password(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "circle of life",
        );
        let other = expected_response(&wrong, "GET", &c.uri, &c.nonce, c.qop.as_ref());
        assert!(!constant_time_eq(other.as_bytes(), c.response.as_bytes()));
    }

    #[test]
    fn sipp_style_credentials_parse_with_md5_by_default() {
        let c = DigestCredentials::parse(
            "Digest username=\"1001\",realm=\"acme\",uri=\"sip:127.0.0.1:5060\",nonce=\"abc\",\
             response=\"0123456789abcdef0123456789ABCDEF\",cnonce=\"6b8b4567\",nc=00000001,qop=auth",
        )
        .unwrap();
        assert_eq!(c.algorithm, DigestAlgorithm::Md5);
        assert_eq!(c.response, "0123456789abcdef0123456789abcdef");
        assert_eq!(c.uri, "sip:127.0.0.1:5060");
    }

    #[test]
    fn incomplete_ambiguous_or_unsupported_credentials_are_refused() {
        let ok = "username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", \
                  response=\"0123456789abcdef0123456789abcdef\"";
        assert!(DigestCredentials::parse(&format!("Digest {ok}")).is_ok());
        let cases: &[(&str, CredentialsError)] = &[
            ("Basic YWxhZGRpbjpvcGVu", CredentialsError::NotDigest),
            (
                "Digest realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"0123456789abcdef0123456789abcdef\"",
                CredentialsError::Missing("username"),
            ),
            (
                &format!("Digest {ok}, username=\"b\""),
                CredentialsError::Duplicate("username".into()),
            ),
            // Parameter names are case-insensitive (RFC 2617 §1.2).
            (
                &format!("Digest {ok}, UserName=\"b\""),
                CredentialsError::Duplicate("username".into()),
            ),
            (
                &format!("Digest {ok}, algorithm=MD5-sess"),
                CredentialsError::Unsupported("algorithm"),
            ),
            (
                &format!("Digest {ok}, qop=auth-int, nc=00000001, cnonce=\"c\""),
                CredentialsError::Unsupported("qop"),
            ),
            (
                &format!("Digest {ok}, qop=auth, cnonce=\"c\""),
                CredentialsError::Missing("nc"),
            ),
            (
                &format!("Digest {ok}, qop=auth, nc=1, cnonce=\"c\""),
                CredentialsError::Syntax("nc must be 8 hexadecimal digits"),
            ),
            (
                &format!("Digest {ok}, algorithm=SHA-256"),
                CredentialsError::Syntax("response is not a hash of the algorithm"),
            ),
            (
                "Digest username=\"a\" realm=\"r\"",
                CredentialsError::Syntax("expected ',' between parameters"),
            ),
            (
                "Digest username=\"a, realm=\"r\"",
                CredentialsError::Syntax("expected ',' between parameters"),
            ),
            (
                "Digest username=\"unterminated",
                CredentialsError::Syntax("unterminated quoted string"),
            ),
            (
                &format!("Digest {ok}, opaque=\"{}\"", "x".repeat(600)),
                CredentialsError::TooLong("opaque".into()),
            ),
        ];
        for (header, error) in cases {
            assert_eq!(
                DigestCredentials::parse(header).as_ref().err(),
                Some(error),
                "{header}"
            );
        }
    }

    #[test]
    fn ha1_from_hex_checks_the_length_of_the_algorithm() {
        let md5 = Ha1::from_password(DigestAlgorithm::Md5, "1001", "acme", "sip-1001");
        assert_eq!(
            Ha1::from_hex(DigestAlgorithm::Md5, &md5.as_hex().to_uppercase()).unwrap(),
            md5
        );
        assert!(Ha1::from_hex(DigestAlgorithm::Sha256, md5.as_hex()).is_err());
        assert!(!format!("{md5:?}").contains(md5.as_hex()));
    }

    #[test]
    fn a_nonce_is_fresh_for_its_source_then_stale_and_invalid_elsewhere() {
        let nonces = Nonces::new(&SeededIds::new(1), Duration::from_secs(30), 16);
        let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let n = nonces.issue(at(0), me);
        assert_eq!(n.len(), NONCE_HEX_LEN);
        assert!(matches!(
            nonces.check(&n, at(29_000), me),
            NonceCheck::Fresh(_)
        ));
        assert_eq!(nonces.check(&n, at(31_000), me), NonceCheck::Stale);
        assert_eq!(nonces.check(&n, at(1_000), other), NonceCheck::Invalid);
        // Any altered digit breaks the MAC, including the issue time.
        let mut altered = n.clone().into_bytes();
        altered[15] = if altered[15] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(nonces.check(&altered, at(1_000), me), NonceCheck::Invalid);
        // Nonces are unique even within one millisecond, and another process (key) refuses them.
        assert_ne!(nonces.issue(at(0), me), n);
        let elsewhere = Nonces::new(&SeededIds::new(2), Duration::from_secs(30), 16);
        assert_eq!(elsewhere.check(&n, at(1_000), me), NonceCheck::Invalid);
        assert_eq!(nonces.check("zz", at(0), me), NonceCheck::Invalid);
    }

    #[test]
    fn a_nonce_from_the_future_is_invalid() {
        let nonces = Nonces::new(&SeededIds::new(1), Duration::from_secs(30), 16);
        let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let n = nonces.issue(at(60_000), me);
        assert_eq!(nonces.check(&n, at(0), me), NonceCheck::Invalid);
        assert!(matches!(
            nonces.check(&n, at(56_000), me),
            NonceCheck::Fresh(_)
        ));
    }

    #[test]
    fn nonce_counts_must_increase_and_only_the_newest_are_remembered() {
        let nonces = Nonces::new(&SeededIds::new(1), Duration::from_secs(30), 2);
        let me = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let fresh = |n: &str, t| match nonces.check(n, at(t), me) {
            NonceCheck::Fresh(f) => f,
            other => panic!("{other:?}"),
        };
        let a = fresh(&nonces.issue(at(0), me), 0);
        assert_eq!(nonces.count(a, 1), NonceCount::Counted);
        assert_eq!(nonces.count(a, 1), NonceCount::Replay);
        assert_eq!(
            nonces.count(a, 2),
            NonceCount::Counted,
            "the client's next request"
        );
        assert_eq!(nonces.count(a, 2), NonceCount::Replay);
        let b = fresh(&nonces.issue(at(0), me), 0);
        assert_eq!(nonces.count(b, 1), NonceCount::Counted);
        // The ring holds the two newest: issuing `c` forgets `a` (its client gets a stale
        // challenge), issuing `d` forgets `b`.
        let c = fresh(&nonces.issue(at(0), me), 0);
        assert_eq!(nonces.count(a, 3), NonceCount::Forgotten);
        assert_eq!(nonces.count(b, 2), NonceCount::Counted);
        let d = fresh(&nonces.issue(at(0), me), 0);
        assert_eq!(nonces.count(b, 3), NonceCount::Forgotten);
        assert_eq!(nonces.count(c, 1), NonceCount::Counted);
        assert_eq!(nonces.count(c, 1), NonceCount::Replay);
        assert_eq!(nonces.count(d, 5), NonceCount::Counted);
    }

    #[test]
    fn a_client_reads_the_challenge_and_its_answer_verifies() {
        let written = challenge("acme", "abc", DigestAlgorithm::Sha256, true);
        let read = DigestChallenge::parse(&written).unwrap();
        assert_eq!(
            read,
            DigestChallenge {
                realm: "acme".into(),
                nonce: "abc".into(),
                algorithm: DigestAlgorithm::Sha256,
                opaque: None,
            }
        );
        let c = "Digest realm=\"acme\", nonce=\"n,1\", algorithm=MD5, qop=\"auth\"";
        let read = DigestChallenge::parse(c).unwrap();
        assert_eq!(read.realm, "acme");
        assert_eq!(read.nonce, "n,1");
        assert_eq!(read.algorithm, DigestAlgorithm::Md5);
        assert_eq!(read.opaque, None);
        assert_eq!(
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256"),
            Err(CredentialsError::Unsupported("algorithm"))
        );
        assert_eq!(
            DigestChallenge::parse("Digest realm=\"r\""),
            Err(CredentialsError::Missing("nonce"))
        );

        // The answer, as a header, parses back to itself and verifies against the secret.
        let secrets = DigestSecrets::from_password("1001", "acme", "sip-1001");
        let ha1 = secrets.get(DigestAlgorithm::Sha256).unwrap();
        let challenge = DigestChallenge {
            opaque: Some("o\"paque".into()),
            ..DigestChallenge::parse(&written).unwrap()
        };
        let answer = DigestCredentials::answer(
            &challenge,
            "1001",
            ha1,
            "REGISTER",
            "sip:acme",
            1,
            "c1".into(),
        );
        let header = answer.to_string();
        assert!(
            header.starts_with("Digest username=\"1001\", realm=\"acme\", nonce=\"abc\", uri=\"sip:acme\", response=\""),
            "{header}"
        );
        assert!(
            header.ends_with(
                "algorithm=SHA-256, cnonce=\"c1\", nc=00000001, qop=auth, opaque=\"o\\\"paque\""
            ),
            "{header}"
        );
        assert_eq!(DigestCredentials::parse(&header), Ok(answer.clone()));
        let expected = expected_response(ha1, "REGISTER", "sip:acme", "abc", answer.qop.as_ref());
        assert_eq!(answer.response, expected);
    }

    #[test]
    fn the_challenge_names_the_algorithm_qop_and_staleness() {
        assert_eq!(
            challenge("acme", "abc", DigestAlgorithm::Sha256, false),
            "Digest realm=\"acme\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\""
        );
        assert_eq!(
            challenge("ac\"me", "abc", DigestAlgorithm::Md5, true),
            "Digest realm=\"acme\", nonce=\"abc\", algorithm=MD5, qop=\"auth\", stale=true"
        );
    }
}
