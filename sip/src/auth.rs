//! The authentication policy: who a request is from, or the reply that refuses it. REGISTER is
//! challenged with 401/`WWW-Authenticate` (the To user must be the authenticated user); calls
//! use 407/`Proxy-Authenticate` with the From user, through the same code.
//!
//! Order of checks, chosen so nothing reveals whether an account exists: credentials for our
//! realm (else a challenge), parseable and of an offered algorithm, a nonce of ours for this
//! source (stale → `stale=true`), the digest `uri` equal to the Request-URI, the username equal to
//! the identity the request claims, then the response, computed against a dummy secret when there
//! is no such account so both cases take the same work and get the same 403. The nonce count is
//! recorded only after the response matched, so wrong guesses cannot burn a client's counts.
//! Every failure counts against the source's failure budget.

use std::net::IpAddr;
use std::sync::Arc;

use events::Clock;
use rsipstack::sip::{Header, Request, Uri};

use crate::accounts::{Account, Accounts};
use crate::digest::{
    DigestAlgorithm, DigestCredentials, DigestSecrets, NonceCheck, NonceCount, Nonces, challenge,
    constant_time_eq, expected_response,
};
use crate::ratelimit::{FloodGuard, Verdict};
use crate::stats::{AuthOutcome, Stats};

/// Which challenge a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// 401 with `WWW-Authenticate`, answered in `Authorization` (REGISTER).
    Www,
    /// 407 with `Proxy-Authenticate`, answered in `Proxy-Authorization` (calls, messages).
    Proxy,
}

/// A refused authentication: the status and headers to answer with.
#[derive(Debug, Clone)]
pub(crate) struct AuthRefusal {
    pub(crate) status: u16,
    pub(crate) headers: Vec<Header>,
}

/// An authenticated request.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) account: Account,
}

/// Verifies digest credentials against the accounts.
#[derive(Debug)]
pub(crate) struct Authenticator {
    accounts: Arc<dyn Accounts>,
    nonces: Nonces,
    /// Offered, most preferred first.
    algorithms: Vec<DigestAlgorithm>,
    clock: Arc<dyn Clock>,
    guard: Arc<FloodGuard>,
    stats: Arc<Stats>,
    /// What a response is checked against when there is no such account, computed once so
    /// that case costs the same as a real check. Matching it proves nothing: without an
    /// account the request is refused whatever the response.
    dummy: DigestSecrets,
}

impl Authenticator {
    pub(crate) fn new(
        accounts: Arc<dyn Accounts>,
        nonces: Nonces,
        algorithms: Vec<DigestAlgorithm>,
        clock: Arc<dyn Clock>,
        guard: Arc<FloodGuard>,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            accounts,
            nonces,
            algorithms,
            clock,
            guard,
            stats,
            dummy: DigestSecrets::from_password("", "", ""),
        }
    }

    /// The algorithms challenged with.
    pub(crate) fn algorithms(&self) -> &[DigestAlgorithm] {
        &self.algorithms
    }

    /// Authenticates `req` from `source` in `realm` as `identity` (the To user of a REGISTER,
    /// the From user of a call).
    pub(crate) fn authenticate(
        &self,
        req: &Request,
        source: IpAddr,
        realm: &str,
        identity: Option<&str>,
        scheme: Scheme,
    ) -> Result<Authenticated, AuthRefusal> {
        let now = self.clock.now();
        // Credentials for other realms are not ours to judge; unparseable ones are refused.
        let mut ours: Vec<Result<DigestCredentials, _>> = req
            .headers
            .iter()
            .filter_map(|h| match (scheme, h) {
                (Scheme::Www, Header::Authorization(a)) => Some(a.value()),
                (Scheme::Proxy, Header::ProxyAuthorization(a)) => Some(a.value()),
                _ => None,
            })
            .map(DigestCredentials::parse)
            .filter(|parsed| parsed.as_ref().map_or(true, |c| c.realm == realm))
            .collect();
        let credentials = match (ours.pop(), ours.is_empty()) {
            (None, _) => return Err(self.refuse(AuthOutcome::Challenged, source, realm, scheme)),
            (Some(Ok(c)), true) => c,
            _ => return Err(self.refuse(AuthOutcome::BadCredentials, source, realm, scheme)),
        };
        if !self.algorithms.contains(&credentials.algorithm) || credentials.qop.is_none() {
            return Err(self.refuse(AuthOutcome::BadCredentials, source, realm, scheme));
        }
        let issued = match self.nonces.check(&credentials.nonce, now, source) {
            NonceCheck::Fresh(issued) => issued,
            NonceCheck::Stale => {
                return Err(self.refuse(AuthOutcome::Stale, source, realm, scheme));
            }
            NonceCheck::Invalid => {
                return Err(self.refuse(AuthOutcome::InvalidNonce, source, realm, scheme));
            }
        };
        if !same_uri(&credentials.uri, &req.uri) {
            return Err(self.refuse(AuthOutcome::UriMismatch, source, realm, scheme));
        }
        if identity != Some(credentials.username.as_str()) {
            return Err(self.refuse(AuthOutcome::IdentityMismatch, source, realm, scheme));
        }
        let account = self.accounts.account(realm, &credentials.username);
        let secret = account
            .as_ref()
            .and_then(|a| a.secrets.get(credentials.algorithm).cloned());
        // Without a secret, the same computation against the dummy.
        let Some(ha1) = secret.as_ref().or(self.dummy.get(credentials.algorithm)) else {
            return Err(self.refuse(AuthOutcome::BadCredentials, source, realm, scheme));
        };
        let expected = expected_response(
            ha1,
            &req.method.to_string(),
            &credentials.uri,
            &credentials.nonce,
            credentials.qop.as_ref(),
        );
        let matches = constant_time_eq(expected.as_bytes(), credentials.response.as_bytes());
        let (Some(account), Some(_), true) = (account, secret, matches) else {
            let outcome = if self
                .accounts
                .account(realm, &credentials.username)
                .is_some()
            {
                AuthOutcome::WrongPassword
            } else {
                AuthOutcome::UnknownUser
            };
            return Err(self.refuse(outcome, source, realm, scheme));
        };
        let nc = credentials.qop.as_ref().map_or(0, |q| q.nc);
        match self.nonces.count(issued, nc) {
            NonceCount::Counted => {}
            NonceCount::Replay => {
                return Err(self.refuse(AuthOutcome::Replay, source, realm, scheme));
            }
            NonceCount::Forgotten => {
                return Err(self.refuse(AuthOutcome::Stale, source, realm, scheme));
            }
        }
        self.stats.auth(AuthOutcome::Accepted);
        Ok(Authenticated { account })
    }

    /// Counts `outcome` and builds its reply: a fresh challenge, or 400/403.
    fn refuse(
        &self,
        outcome: AuthOutcome,
        source: IpAddr,
        realm: &str,
        scheme: Scheme,
    ) -> AuthRefusal {
        let now = self.clock.now();
        self.stats.auth(outcome);
        if outcome.is_failure() {
            match self.guard.failure(source, now) {
                Verdict::NewlyBanned => {
                    self.stats.ban();
                    tracing::warn!(target: "ledgerline::sip::security", %source,
                        "banned after repeated authentication failures");
                }
                Verdict::Banned | Verdict::Pass => {}
            }
        }
        match outcome {
            AuthOutcome::BadCredentials => AuthRefusal {
                status: 400,
                headers: vec![warning("malformed or unsupported credentials")],
            },
            AuthOutcome::UriMismatch
            | AuthOutcome::IdentityMismatch
            | AuthOutcome::UnknownUser
            | AuthOutcome::WrongPassword => AuthRefusal {
                status: 403,
                headers: Vec::new(),
            },
            AuthOutcome::Challenged
            | AuthOutcome::Stale
            | AuthOutcome::InvalidNonce
            | AuthOutcome::Replay
            | AuthOutcome::Accepted => {
                let nonce = self.nonces.issue(now, source);
                let stale = outcome == AuthOutcome::Stale;
                let headers = self
                    .algorithms
                    .iter()
                    .map(|a| {
                        let value = challenge(realm, &nonce, *a, stale);
                        match scheme {
                            Scheme::Www => Header::WwwAuthenticate(value.into()),
                            Scheme::Proxy => Header::ProxyAuthenticate(value.into()),
                        }
                    })
                    .collect();
                AuthRefusal {
                    status: match scheme {
                        Scheme::Www => 401,
                        Scheme::Proxy => 407,
                    },
                    headers,
                }
            }
        }
    }
}

/// Whether the digest `uri` names the Request-URI: same scheme, user, host and port (5060 when
/// absent); parameters may differ in case and order, as clients rewrite them.
fn same_uri(digest_uri: &str, request_uri: &Uri) -> bool {
    let Ok(d) = Uri::try_from(digest_uri) else {
        return false;
    };
    let port = |u: &Uri| u.host_with_port.port.map_or(5060, |p| p.value());
    d.scheme == request_uri.scheme
        && d.user() == request_uri.user()
        && d.host()
            .to_string()
            .eq_ignore_ascii_case(&request_uri.host().to_string())
        && port(&d) == port(request_uri)
}

/// `Warning: 399 ledgerline "text"`.
pub(crate) fn warning(text: &str) -> Header {
    let text: String = text
        .chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect();
    Header::Warning(format!("399 ledgerline \"{text}\"").into())
}
