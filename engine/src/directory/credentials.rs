//! The credential store: each user's web password as an argon2 PHC hash and SIP digest secret
//! as HA1. It is kept apart from the directory's events on purpose: the log is replicated,
//! exported and replayed, so it records only *that* a credential changed
//! (`UserCredentialChanged`); the values live here, filled by the configuration loader (and, for
//! changes made in the panel, by the shell when it applies that event). `Debug` never prints a
//! secret.
//!
//! Why HA1 for SIP: digest authentication (RFC 2617/7616) needs, on the registrar side, either
//! the clear password or HA1 = MD5(username:realm:password); argon2 cannot serve it. HA1 is what
//! the registrar actually computes with (rsipstack's `verify_digest` accepts it), it is bound to
//! one realm and one username, it cannot be used to log in to the web panel, and it needs no key
//! management, where an encrypted password would need a key stored next to it. A leaked HA1 still
//! lets someone register as that extension in that realm, so it is a secret: redacted in `Debug`,
//! never in an event. SHA-256 digest (RFC 7616) needs a second HA1, SHA-256(username:realm:
//! password): kept beside the MD5 one when the password was given (or the file gives both).

use std::collections::BTreeMap;
use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use events::ids::UserId;
use md5::{Digest, Md5};
use sha2::Sha256;

/// Why a credential could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("not an argon2 PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)")]
    NotArgon2Phc,
    #[error("HA1 must be 32 hexadecimal digits (MD5 of `user:realm:password`)")]
    NotHa1,
    #[error("the SHA-256 HA1 must be 64 hexadecimal digits (SHA-256 of `user:realm:password`)")]
    NotHa1Sha256,
    #[error("could not hash the password: {0}")]
    Hashing(String),
}

/// A web password as an argon2 PHC string.
#[derive(Clone, PartialEq, Eq)]
pub struct WebPasswordHash(String);

impl WebPasswordHash {
    /// Accepts an argon2 (`argon2id`, `argon2i`, `argon2d`) PHC string.
    pub fn parse(phc: &str) -> Result<Self, CredentialError> {
        let parsed = PasswordHash::new(phc).map_err(|_| CredentialError::NotArgon2Phc)?;
        if !parsed.algorithm.as_str().starts_with("argon2") || parsed.hash.is_none() {
            return Err(CredentialError::NotArgon2Phc);
        }
        Ok(Self(phc.to_owned()))
    }

    /// Hashes `password` with argon2id and the given parameters and salt (8 to 48 bytes). The
    /// caller chooses the salt so this stays free of randomness: production hashes are made
    /// outside the engine (`ledgerline hash-password`), and the demo uses a salt derived from the
    /// user, which is fine for passwords that are public anyway.
    pub fn hash(password: &str, salt: &[u8], params: Params) -> Result<Self, CredentialError> {
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let hash = hasher
            .hash_password_with_salt(password.as_bytes(), salt)
            .map_err(|e| CredentialError::Hashing(e.to_string()))?;
        Ok(Self(hash.to_string()))
    }

    /// Argon2 parameters for the built-in demo: 1 MiB, one pass, one lane, so hashing its
    /// thirteen public passwords on every start (and in tests) takes milliseconds. Never use
    /// these for real passwords; verification always uses the parameters in the PHC string.
    pub fn demo_params() -> Params {
        Params::new(1024, 1, 1, None).unwrap_or_default()
    }

    /// Whether `password` matches. Uses the parameters recorded in the hash.
    pub fn verify(&self, password: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), self.0.as_str())
            .is_ok()
    }

    /// The PHC string, for the credential store's own persistence.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebPasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebPasswordHash(<redacted>)")
    }
}

/// A SIP digest secret as HA1 = MD5(username:realm:password), lowercase hex, and, when known,
/// the RFC 7616 SHA-256 HA1 of the same string.
#[derive(Clone, PartialEq, Eq)]
pub struct SipDigestHa1 {
    username: String,
    realm: String,
    ha1: String,
    ha1_sha256: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl SipDigestHa1 {
    /// Computes HA1 from a clear password, which is not kept.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        let a1 = format!("{username}:{realm}:{password}");
        Self {
            username: username.to_owned(),
            realm: realm.to_owned(),
            ha1: hex(&Md5::digest(a1.as_bytes())),
            ha1_sha256: Some(hex(&Sha256::digest(a1.as_bytes()))),
        }
    }

    /// Accepts an HA1 computed elsewhere.
    pub fn from_hex(username: &str, realm: &str, ha1: &str) -> Result<Self, CredentialError> {
        if ha1.len() != 32 || !ha1.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CredentialError::NotHa1);
        }
        Ok(Self {
            username: username.to_owned(),
            realm: realm.to_owned(),
            ha1: ha1.to_ascii_lowercase(),
            ha1_sha256: None,
        })
    }

    /// Adds the SHA-256 HA1 computed elsewhere (64 hexadecimal digits).
    pub fn with_sha256_hex(mut self, ha1: &str) -> Result<Self, CredentialError> {
        if ha1.len() != 64 || !ha1.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CredentialError::NotHa1Sha256);
        }
        self.ha1_sha256 = Some(ha1.to_ascii_lowercase());
        Ok(self)
    }

    pub fn username(&self) -> &str {
        &self.username
    }
    pub fn realm(&self) -> &str {
        &self.realm
    }
    /// The HA1 in lowercase hex, for the registrar's digest check.
    pub fn ha1_hex(&self) -> &str {
        &self.ha1
    }
    /// The SHA-256 HA1 in lowercase hex, when known.
    pub fn ha1_sha256_hex(&self) -> Option<&str> {
        self.ha1_sha256.as_deref()
    }
    /// Whether `password` is the one this HA1 was made from.
    pub fn matches_password(&self, password: &str) -> bool {
        Self::from_password(&self.username, &self.realm, password).ha1 == self.ha1
    }
}

impl fmt::Debug for SipDigestHa1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipDigestHa1")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("ha1", &"<redacted>")
            .field("sha256", &self.ha1_sha256.is_some())
            .finish()
    }
}

/// One user's secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCredentials {
    pub web_password: Option<WebPasswordHash>,
    pub sip: Option<SipDigestHa1>,
}

/// Every user's secrets in one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    users: BTreeMap<UserId, UserCredentials>,
}

impl Credentials {
    pub fn set_web_password(&mut self, user: UserId, hash: WebPasswordHash) {
        self.users.entry(user).or_default().web_password = Some(hash);
    }
    pub fn set_sip(&mut self, user: UserId, ha1: SipDigestHa1) {
        self.users.entry(user).or_default().sip = Some(ha1);
    }
    pub fn remove(&mut self, user: &UserId) {
        self.users.remove(user);
    }
    pub fn get(&self, user: &UserId) -> Option<&UserCredentials> {
        self.users.get(user)
    }
    /// The SIP digest secret of `user`, for the registrar.
    pub fn sip_digest(&self, user: &UserId) -> Option<&SipDigestHa1> {
        self.users.get(user)?.sip.as_ref()
    }
    /// Whether `password` is `user`'s web password. A user without one never matches.
    pub fn verify_web_password(&self, user: &UserId, password: &str) -> bool {
        self.users
            .get(user)
            .and_then(|c| c.web_password.as_ref())
            .is_some_and(|h| h.verify(password))
    }
}
