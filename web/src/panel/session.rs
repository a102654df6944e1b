//! Browser sessions of the call panel. A login creates a session: a random 256-bit token that
//! only the browser holds (in an `HttpOnly`, `SameSite=Strict` cookie), a public session id
//! (for the hub and the log's `PanelSession*` events), a CSRF token the page sends back in a
//! header with every state-changing request, and an absolute expiry. The server keeps only the
//! SHA-256 of each token.
//!
//! Sessions are kept in a file in the data directory (mode 0600, replaced atomically and
//! fsynced), so a restarted server still knows them and an open panel reconnects without
//! signing in again. The file is written by a writer thread, never by a request: a sign-in or
//! sign-out changes the sessions in memory and wakes the writer, which writes everything that
//! changed meanwhile in one go (a burst of sign-ins costs one write, not one fsync each).
//! The last handle to go (when the HTTP server has stopped) waits for the writer to store what
//! is left, so the file is complete before the process exits. A
//! crash can lose the sign-ins of the last moment: those browsers sign in again. Nothing of a
//! session goes into the event log: tokens are credentials.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use actix_web::cookie::{Cookie, SameSite, time};
use chrono::{DateTime, TimeDelta, Utc};
use events::Clock;
use events::ids::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub(crate) const COOKIE: &str = "ledgerline_session";
/// How long a session lasts after its login.
pub(crate) const LIFETIME: TimeDelta = TimeDelta::hours(12);

/// Random bytes for secrets, injected like the clock.
pub(crate) trait Secrets: Send + Sync + fmt::Debug {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

/// The operating system's random number generator.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OsSecrets;

impl Secrets for OsSecrets {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        use rand::TryRngCore;
        rand::rngs::OsRng
            .try_fill_bytes(buf)
            .map_err(|e| format!("the system random number generator failed: {e}"))
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` random bytes as hex.
pub(crate) fn random_hex(secrets: &dyn Secrets, len: usize) -> Result<String, String> {
    let mut buf = vec![0u8; len];
    secrets.fill(&mut buf)?;
    Ok(hex(&buf))
}

fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Public id (not a secret): names the session in the hub and in the log.
    pub(crate) id: String,
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) csrf: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// Token digest → session.
    sessions: HashMap<String, Session>,
}

/// Every live session; cheap to clone.
#[derive(Clone)]
pub(crate) struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn Secrets>,
    path: Option<PathBuf>,
    shared: Arc<Shared>,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// What the handles and the writer thread share.
struct Shared {
    map: Mutex<Stored>,
    file: Mutex<FileState>,
    /// Signals the writer (work to do) and flushers (work done).
    wake: Condvar,
}

#[derive(Debug, Default)]
struct FileState {
    /// Changes made to the sessions so far.
    changed: u64,
    /// Changes the file holds (or whose write failed and was logged).
    written: u64,
    stop: bool,
}

impl Shared {
    fn map(&self) -> MutexGuard<'_, Stored> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self) -> MutexGuard<'_, FileState> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sessions changed: the writer will store them.
    fn changed(&self) {
        self.file().changed += 1;
        self.wake.notify_all();
    }

    /// The writer: waits for changes, writes all of them at once, until told to stop (after
    /// writing what is left).
    fn write_loop(&self, path: &std::path::Path) {
        loop {
            let target = {
                let mut f = self.file();
                while f.written == f.changed && !f.stop {
                    f = self.wake.wait(f).unwrap_or_else(|p| p.into_inner());
                }
                if f.written == f.changed {
                    tracing::debug!(file = %path.display(), "the panel sessions are stored");
                    return;
                }
                f.changed
            };
            // Taken after reading `changed`: it holds at least every change counted so far.
            let text = serde_json::to_string(&*self.map()).unwrap_or_default();
            if let Err(e) = write_private(path, &text) {
                tracing::warn!(file = %path.display(), error = %e, "cannot store the panel sessions");
            }
            self.file().written = target;
            self.wake.notify_all();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.file().stop = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("path", &self.inner.path)
            .field("live", &self.len())
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions kept in `path` (loaded now if it exists; expired ones are dropped; a writer
    /// thread keeps the file up to date), or only in memory without a path.
    pub(crate) fn open(
        path: Option<PathBuf>,
        clock: Arc<dyn Clock>,
        secrets: Arc<dyn Secrets>,
    ) -> Result<Self, String> {
        let mut stored = Stored::default();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(text) => {
                    stored = serde_json::from_str(&text).map_err(|e| {
                        format!(
                            "the session file {} cannot be read ({e}); delete it to sign everyone out",
                            p.display()
                        )
                    })?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("reading {}: {e}", p.display())),
            }
        }
        let now = clock.now();
        stored.sessions.retain(|_, s| s.expires_at > now);
        let shared = Arc::new(Shared {
            map: Mutex::new(stored),
            file: Mutex::new(FileState::default()),
            wake: Condvar::new(),
        });
        let writer = match &path {
            Some(p) => {
                let (shared, p) = (shared.clone(), p.clone());
                Some(
                    std::thread::Builder::new()
                        .name("panel-sessions".into())
                        .spawn(move || shared.write_loop(&p))
                        .map_err(|e| format!("starting the session writer: {e}"))?,
                )
            }
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                clock,
                secrets,
                path,
                shared,
                writer,
            }),
        })
    }

    fn map(&self) -> MutexGuard<'_, Stored> {
        self.inner.shared.map()
    }

    pub(crate) fn len(&self) -> usize {
        self.map().sessions.len()
    }

    /// A new session for `user`; returns the token (for the cookie) and the session. The file
    /// is written soon after, off the caller's path.
    pub(crate) fn create(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> Result<(String, Session), String> {
        let secrets = &*self.inner.secrets;
        let token = random_hex(secrets, 32)?;
        let now = self.inner.clock.now();
        let session = Session {
            id: random_hex(secrets, 16)?,
            tenant,
            user,
            csrf: random_hex(secrets, 32)?,
            created_at: now,
            expires_at: now + LIFETIME,
        };
        {
            let mut map = self.map();
            map.sessions.retain(|_, s| s.expires_at > now);
            map.sessions.insert(digest(&token), session.clone());
        }
        self.inner.shared.changed();
        Ok((token, session))
    }

    /// The live session of `token`.
    pub(crate) fn get(&self, token: &str) -> Option<Session> {
        let now = self.inner.clock.now();
        self.map()
            .sessions
            .get(&digest(token))
            .filter(|s| s.expires_at > now)
            .cloned()
    }

    /// Ends the session of `token`; returns it if it was live.
    pub(crate) fn revoke(&self, token: &str) -> Option<Session> {
        let removed = self.map().sessions.remove(&digest(token));
        if removed.is_some() {
            self.inner.shared.changed();
        }
        removed
    }

    /// Blocks until the file holds every change made before this call (at once without a
    /// file). A write that failed counts as done: it was logged, and the sessions stay valid in
    /// memory. (The server needs no call: its last handle flushes as it goes.)
    #[cfg(test)]
    pub(crate) fn flush(&self) {
        if self.inner.writer.is_none() {
            return;
        }
        let shared = &self.inner.shared;
        let mut f = shared.file();
        let target = f.changed;
        while f.written < target {
            f = shared.wake.wait(f).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The cookie that carries `token` (`secure` over HTTPS).
    pub(crate) fn cookie(token: &str, secure: bool) -> Cookie<'static> {
        Cookie::build(COOKIE, token.to_owned())
            .path("/")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(secure)
            .max_age(time::Duration::seconds(LIFETIME.num_seconds()))
            .finish()
    }

    /// The cookie that removes the session cookie from the browser.
    pub(crate) fn removal_cookie(secure: bool) -> Cookie<'static> {
        let mut c = Self::cookie("", secure);
        c.make_removal();
        c
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use events::ManualClock;

    use super::*;

    /// Predictable "random" bytes for tests: a counter.
    #[derive(Debug, Default)]
    pub(crate) struct CountingSecrets(AtomicU64);

    impl Secrets for CountingSecrets {
        fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (n as u8).wrapping_add(i as u8);
            }
            Ok(())
        }
    }

    #[test]
    fn sessions_expire_are_revoked_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        let clock = Arc::new(ManualClock::at_epoch());
        let secrets = Arc::new(CountingSecrets::default());
        let sessions = Sessions::open(Some(path.clone()), clock.clone(), secrets.clone()).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        let (a, sa) = sessions
            .create(tenant.clone(), UserId::parse("1001").unwrap())
            .unwrap();
        let (b, _) = sessions
            .create(tenant.clone(), UserId::parse("1011").unwrap())
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(sessions.get(&a), Some(sa.clone()));
        assert!(sessions.get("not-a-token").is_none());
        sessions.flush();
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(&a), "tokens are stored as digests only");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the session file is private");
        }

        assert!(sessions.revoke(&b).is_some());
        sessions.flush();
        let reopened = Sessions::open(Some(path.clone()), clock.clone(), secrets.clone()).unwrap();
        assert_eq!(reopened.get(&a), Some(sa));
        assert!(reopened.get(&b).is_none());

        clock.advance(LIFETIME);
        assert!(reopened.get(&a).is_none(), "expired");
        assert_eq!(Sessions::open(Some(path), clock, secrets).unwrap().len(), 0);
    }

    /// A sign-in while the file cannot be written (its temporary file is a FIFO nobody reads,
    /// so opening it blocks) returns at once; the file catches up when it can; the last handle
    /// to go writes what is left.
    #[cfg(unix)]
    #[test]
    fn signing_in_never_waits_for_the_file_and_the_last_handle_flushes() {
        use std::time::Duration;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.json");
        let fifo = path.with_extension("tmp");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let clock = Arc::new(ManualClock::at_epoch());
        let secrets = Arc::new(CountingSecrets::default());
        let sessions = Sessions::open(Some(path.clone()), clock.clone(), secrets.clone()).unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        // Sign-ins and a sign-out on another thread: they must be done long before the file
        // can be written (a sign-in that wrote the file itself would hang here).
        let (done, finished) = std::sync::mpsc::channel();
        let signing_in = std::thread::spawn({
            let (sessions, tenant) = (sessions.clone(), tenant.clone());
            move || {
                let mut tokens = Vec::new();
                for n in ["1001", "1011", "1002"] {
                    let user = UserId::parse(n).unwrap();
                    tokens.push(sessions.create(tenant.clone(), user).unwrap().0);
                }
                assert!(sessions.revoke(&tokens[2]).is_some());
                let _ = done.send(tokens);
            }
        });
        let tokens = finished
            .recv_timeout(Duration::from_secs(5))
            .expect("sign-ins and sign-outs never wait for the session file");
        signing_in.join().unwrap();
        assert!(!path.exists(), "the writer is still stuck on the FIFO");
        // Unblock the writer: open the FIFO ourselves (read and write, which never blocks) and
        // read what it writes there (it cannot fsync a FIFO: that write fails and is logged);
        // then take the FIFO away, so the next write makes the real file.
        let mut pipe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut pipe, &mut buf).unwrap();
        let through_fifo = String::from_utf8_lossy(&buf[..n]);
        assert!(through_fifo.contains("\"sessions\""), "{through_fifo}");
        std::fs::remove_file(&fifo).unwrap();
        let (last, _) = sessions
            .create(tenant.clone(), UserId::parse("1003").unwrap())
            .unwrap();
        drop(sessions);
        let reopened = Sessions::open(Some(path), clock, secrets).unwrap();
        assert_eq!(reopened.len(), 3);
        assert!(reopened.get(&tokens[0]).is_some());
        assert!(reopened.get(&tokens[2]).is_none(), "revoked");
        assert!(
            reopened.get(&last).is_some(),
            "written as the last handle went"
        );
        drop(pipe);
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let c = Sessions::cookie("t", false).to_string();
        assert!(c.contains("HttpOnly"), "{c}");
        assert!(c.contains("SameSite=Strict"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
        assert!(!c.contains("Secure"), "{c}");
        assert!(Sessions::cookie("t", true).to_string().contains("Secure"));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
