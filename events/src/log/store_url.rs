//! Choosing a backend from a store address: `sqlite:PATH`, `memory:`, `postgres://…`,
//! `kurrentdb://…` (also `esdb://…` and the `+discover` forms). Parsing refuses what it does not
//! know with a message that lists what it does; opening a backend that this build left out says
//! which cargo feature brings it in.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EventLog, LogError};

/// A parsed store address.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// In-process, nothing persisted (tests and simulations).
    Memory,
    /// The embedded default: one SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user@host:5432/db`).
    Postgres(String),
    /// A KurrentDB / EventStoreDB connection string.
    KurrentDb(String),
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<Self, LogError> {
        let bad = |reason: &str| LogError::InvalidUrl {
            url: redact(s),
            reason: reason.to_owned(),
        };
        let s = s.trim();
        if s == "memory:" || s == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad(
                    "sqlite: needs a file path, e.g. sqlite:data/ledgerline.db",
                ));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            s.parse::<PgUrlCheck>().map_err(|reason| bad(&reason))?;
            return Ok(StoreUrl::Postgres(s.to_owned()));
        }
        for scheme in [
            "kurrentdb://",
            "kurrentdb+discover://",
            "esdb://",
            "esdb+discover://",
        ] {
            if let Some(rest) = s.strip_prefix(scheme) {
                if rest.is_empty() || rest.starts_with('?') {
                    return Err(bad(
                        "a KurrentDB address needs a host, e.g. kurrentdb://127.0.0.1:2113?tls=false",
                    ));
                }
                return Ok(StoreUrl::KurrentDb(s.to_owned()));
            }
        }
        Err(bad(
            "unknown scheme; use sqlite:PATH, postgres://USER@HOST:PORT/DB, kurrentdb://HOST:PORT or memory:",
        ))
    }

    /// The default embedded store inside a data directory.
    pub fn default_in(data_dir: &Path) -> Self {
        StoreUrl::Sqlite(data_dir.join("ledgerline.db"))
    }

    /// The address with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Memory => "memory:".into(),
            StoreUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreUrl::Postgres(u) | StoreUrl::KurrentDb(u) => redact(u),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of a `scheme://user:password@host` address with `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Minimal structural check of a PostgreSQL URL, so a typo fails at start with a clear reason.
struct PgUrlCheck;

impl std::str::FromStr for PgUrlCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host = authority
            .rsplit_once('@')
            .map(|(_, h)| h)
            .unwrap_or(authority);
        if host.is_empty() && !rest.contains("host=") {
            return Err(
                "a PostgreSQL URL needs a host, e.g. postgres://postgres@127.0.0.1:5432/ledgerline"
                    .into(),
            );
        }
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(format!("port {port:?} is not a number from 0 to 65535"));
        }
        Ok(PgUrlCheck)
    }
}

/// The default [`StoreOptions::commit_window`].
pub const DEFAULT_COMMIT_WINDOW: std::time::Duration = std::time::Duration::from_millis(2);

/// Settings shared by the backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite: fsync every commit (`true`, the default) or only at WAL checkpoints.
    pub fsync_every_commit: bool,
    /// PostgreSQL: connections in the pool.
    pub pool_size: usize,
    /// Apply pending migrations when opening (the default).
    pub migrate: bool,
    /// SQLite: how long the writer waits for more appends before a commit while appends are
    /// arriving together (the last commit took several), so that they share one commit and one
    /// fsync. A writer working alone never waits. Zero turns the wait off.
    pub commit_window: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            fsync_every_commit: true,
            pool_size: 16,
            migrate: true,
            commit_window: DEFAULT_COMMIT_WINDOW,
        }
    }
}

/// Opens (and migrates) the store at `url`.
pub async fn open(url: &StoreUrl, options: &StoreOptions) -> Result<Arc<dyn EventLog>, LogError> {
    match url {
        StoreUrl::Memory => Ok(Arc::new(super::memory::MemoryLog::new())),
        #[cfg(feature = "sqlite")]
        StoreUrl::Sqlite(path) => Ok(Arc::new(
            super::sqlite::SqliteLog::open(path.clone(), options.clone()).await?,
        )),
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres(u) => Ok(Arc::new(
            super::postgres::PostgresLog::connect(u, options.clone()).await?,
        )),
        #[cfg(feature = "kurrentdb")]
        StoreUrl::KurrentDb(u) => Ok(Arc::new(
            super::kurrentdb::KurrentLog::connect(u, options.clone()).await?,
        )),
        #[allow(unreachable_patterns)]
        other => {
            let _ = options;
            let feature = match other {
                StoreUrl::Sqlite(_) => "sqlite",
                StoreUrl::Postgres(_) => "postgres",
                _ => "kurrentdb",
            };
            Err(LogError::InvalidUrl {
                url: other.redacted(),
                reason: format!(
                    "this build has no {feature} backend; rebuild with `--features {feature}`"
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            StoreUrl::parse("sqlite:data/x.db").unwrap(),
            StoreUrl::Sqlite("data/x.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(StoreUrl::parse("memory:").unwrap(), StoreUrl::Memory);
        assert!(matches!(
            StoreUrl::parse("postgres://postgres@127.0.0.1:5432/test").unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert!(matches!(
            StoreUrl::parse("esdb://127.0.0.1:2113?tls=false").unwrap(),
            StoreUrl::KurrentDb(_)
        ));
    }

    #[test]
    fn refuses_bad_addresses_with_a_reason() {
        for (input, needle) in [
            ("mysql://x", "unknown scheme"),
            ("sqlite:", "needs a file path"),
            ("postgres://u@h:notaport/db", "not a number"),
            ("postgres:///db", "needs a host"),
            ("kurrentdb://", "needs a host"),
        ] {
            let e = StoreUrl::parse(input).unwrap_err().to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
    }

    #[test]
    fn redacts_passwords() {
        let u = StoreUrl::parse("postgres://bob:hunter2@db:5432/x").unwrap();
        assert_eq!(u.redacted(), "postgres://bob:***@db:5432/x");
        assert!(!format!("{u:?}").contains("hunter2"));
        let e = StoreUrl::parse("mysql://bob:hunter2@db")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
