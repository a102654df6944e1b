//! The embedded SQLite backend as a conformance-suite [`Backend`]: one file per key in a
//! temporary directory that lives as long as the harness.

use std::sync::Arc;

use events::log::sqlite::SqliteLog;
use events::{EventLog, StoreOptions};
use futures_util::future::BoxFuture;

use crate::conformance::Backend;

#[derive(Debug)]
pub struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }
    pub fn path(&self, key: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("{key}.db"))
    }
}

impl Default for SqliteBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn open<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Arc<dyn EventLog>> {
        Box::pin(async move {
            let log = SqliteLog::open(self.path(key), StoreOptions::default())
                .await
                .expect("open sqlite log");
            Arc::new(log) as Arc<dyn EventLog>
        })
    }
}
