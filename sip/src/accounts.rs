//! Who may register: the SIP accounts, looked up by realm and username, each naming the
//! extension (and tenant) its registrations belong to and holding its digest secrets. The edge
//! only sees the [`Accounts`] trait, so the binary can back it with the live directory; this
//! module also has a snapshot implementation built from a loaded directory file.
//!
//! A realm is a tenant's SIP domain. A request addressed to an IP address (phones provisioned by
//! address, sipp) has no domain to go by: it is served in the default realm, which a
//! single-tenant directory sets to its only tenant.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use engine::directory::config::LoadedTenant;
use engine::directory::{Credentials, Directory};
use events::ids::{ExtensionNumber, TenantId};

use crate::digest::{DigestAlgorithm, DigestSecrets, Ha1};

/// One SIP account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub tenant: TenantId,
    pub extension: ExtensionNumber,
    pub secrets: DigestSecrets,
}

/// The lookups the edge needs. Implementations must answer quickly (they run per request) and
/// must not reveal through timing or errors whether a user exists; the edge takes care of the
/// rest.
pub trait Accounts: Send + Sync + fmt::Debug {
    /// The digest realm of a request addressed to `host` (the To URI's host), or `None` when this
    /// server does not serve it.
    fn realm_for(&self, host: &str) -> Option<String>;

    /// The account `username` in `realm`.
    fn account(&self, realm: &str, username: &str) -> Option<Account>;

    /// The algorithms every account can authenticate with. Only these are offered, so the
    /// challenge is the same whoever asks.
    fn algorithms(&self) -> Vec<DigestAlgorithm>;
}

/// A fixed set of accounts.
#[derive(Debug, Clone, Default)]
pub struct StaticAccounts {
    /// Lower-cased domain → realm.
    domains: HashMap<String, String>,
    default_realm: Option<String>,
    /// By realm, then username: looked up per request with borrowed keys, nothing allocated.
    accounts: HashMap<String, HashMap<String, Account>>,
}

impl StaticAccounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves requests addressed to `domain` in `realm`.
    pub fn serve_domain(&mut self, domain: &str, realm: &str) {
        self.domains
            .insert(domain.to_ascii_lowercase(), realm.to_owned());
    }

    /// The realm of requests addressed to an IP address or an unknown host.
    pub fn set_default_realm(&mut self, realm: Option<&str>) {
        self.default_realm = realm.map(str::to_owned);
    }

    /// Adds (or replaces) the account `username` of `realm`.
    pub fn insert(&mut self, realm: &str, username: &str, account: Account) {
        self.accounts
            .entry(realm.to_owned())
            .or_default()
            .insert(username.to_owned(), account);
    }

    /// Adds the SIP accounts of one tenant: realm and domain are its `sip_domain`, usernames
    /// its extension numbers, secrets the MD5 HA1s of its credential store. A suspended tenant
    /// has no accounts. (The credential store keeps no SHA-256 HA1 yet, so these accounts
    /// authenticate with MD5 only.)
    pub fn add_tenant(&mut self, directory: &Directory, credentials: &Credentials) {
        let Some(tenant) = directory.tenant() else {
            return;
        };
        if directory.is_suspended() {
            return;
        }
        let realm = tenant.sip_domain.clone();
        self.serve_domain(&realm, &realm);
        for (user, u) in directory.users() {
            let Some(sip) = credentials.sip_digest(user) else {
                continue;
            };
            if sip.realm() != realm || sip.username() != u.extension.as_str() {
                tracing::warn!(%user, "SIP secret made for another realm or username; skipped");
                continue;
            }
            let Ok(md5) = Ha1::from_hex(DigestAlgorithm::Md5, sip.ha1_hex()) else {
                continue;
            };
            self.insert(
                &realm,
                u.extension.as_str(),
                Account {
                    tenant: tenant.id.clone(),
                    extension: u.extension.clone(),
                    secrets: DigestSecrets::default().with(md5),
                },
            );
        }
    }

    /// The accounts of every tenant of a directory file; with exactly one tenant, requests by IP
    /// address are served in its realm.
    pub fn from_directory(tenants: &[LoadedTenant]) -> Self {
        let mut accounts = Self::new();
        for t in tenants {
            accounts.add_tenant(&t.directory, &t.credentials);
        }
        if let [only] = tenants
            && let Some(tenant) = only.directory.tenant()
        {
            accounts.set_default_realm(Some(&tenant.sip_domain));
        }
        accounts
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.accounts.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.values().all(HashMap::is_empty)
    }

    /// Mutable access to every account with its realm and username, e.g. to add SHA-256
    /// secrets.
    pub fn accounts_mut(&mut self) -> impl Iterator<Item = (&str, &str, &mut Account)> {
        self.accounts.iter_mut().flat_map(|(realm, users)| {
            users
                .iter_mut()
                .map(move |(user, account)| (realm.as_str(), user.as_str(), account))
        })
    }
}

impl Accounts for StaticAccounts {
    fn realm_for(&self, host: &str) -> Option<String> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if let Some(realm) = self.domains.get(&host) {
            return Some(realm.clone());
        }
        self.default_realm.clone()
    }

    fn account(&self, realm: &str, username: &str) -> Option<Account> {
        self.accounts.get(realm)?.get(username).cloned()
    }

    fn algorithms(&self) -> Vec<DigestAlgorithm> {
        let mut common: Option<BTreeSet<DigestAlgorithm>> = None;
        for account in self.accounts.values().flat_map(HashMap::values) {
            let has: BTreeSet<DigestAlgorithm> = account.secrets.algorithms().into_iter().collect();
            common = Some(match common {
                None => has,
                Some(c) => c.intersection(&has).copied().collect(),
            });
        }
        common.unwrap_or_default().into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::directory::demo::demo_directory;

    #[test]
    fn the_demo_directory_gives_md5_accounts_in_realm_acme() {
        let loaded = demo_directory().unwrap();
        let accounts = StaticAccounts::from_directory(&loaded.tenants);
        assert!(accounts.len() >= 10, "{}", accounts.len());
        assert_eq!(accounts.realm_for("acme").as_deref(), Some("acme"));
        assert_eq!(accounts.realm_for("127.0.0.1").as_deref(), Some("acme"));
        let a = accounts.account("acme", "1001").unwrap();
        assert_eq!(a.extension.as_str(), "1001");
        assert_eq!(a.tenant.as_str(), "acme");
        assert_eq!(
            a.secrets.get(DigestAlgorithm::Md5),
            Some(&Ha1::from_password(
                DigestAlgorithm::Md5,
                "1001",
                "acme",
                "sip-1001"
            ))
        );
        assert_eq!(accounts.algorithms(), vec![DigestAlgorithm::Md5]);
        assert!(accounts.account("acme", "9999").is_none());
        assert!(accounts.account("other", "1001").is_none());
    }

    #[test]
    fn only_algorithms_every_account_has_are_offered() {
        let mut accounts = StaticAccounts::new();
        let account = |ext: &str, secrets| Account {
            tenant: TenantId::parse("acme").unwrap(),
            extension: ExtensionNumber::parse(ext).unwrap(),
            secrets,
        };
        accounts.insert(
            "acme",
            "1",
            account("1", DigestSecrets::from_password("1", "acme", "p")),
        );
        assert_eq!(
            accounts.algorithms(),
            vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256]
        );
        accounts.insert(
            "acme",
            "2",
            account(
                "2",
                DigestSecrets::default().with(Ha1::from_password(
                    DigestAlgorithm::Md5,
                    "2",
                    "acme",
                    "p",
                )),
            ),
        );
        assert_eq!(accounts.algorithms(), vec![DigestAlgorithm::Md5]);
        assert_eq!(accounts.realm_for("acme"), None, "no domain or default set");
    }
}
