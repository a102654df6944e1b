//! Throw-away stores for the runner tests: the event log and the CDR store side by side, as the
//! binary opens them — a SQLite file in a temporary directory, or a fresh PostgreSQL database
//! on the server named by `LEDGERLINE_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), created per test as `ll_<hex time>_<random>`
//! and dropped afterwards, leftovers older than an hour swept first (the approach of
//! `tests/src/pg.rs`). Each can inject a failure of the checkpoint write, the last statement of
//! a commit, to prove rows and checkpoint go together.

use std::path::PathBuf;
use std::sync::Arc;

use events::log::postgres::PostgresLog;
use events::log::sqlite::SqliteLog;
use events::{EventLog, StoreOptions};
use projections::CdrStore;
use projections::cdr::{PgCdrStore, SqliteCdrStore};
use tokio_postgres::NoTls;

/// A log and its CDR store.
pub(crate) enum Stores {
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        db: TestDb,
    },
}

/// What a CDR store holds, read with plain SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tables {
    pub(crate) cdr_rows: i64,
    pub(crate) distinct_legs: i64,
    pub(crate) checkpoint: Option<i64>,
    pub(crate) open_calls: i64,
}

fn options() -> StoreOptions {
    StoreOptions {
        fsync_every_commit: false,
        pool_size: 4,
        migrate: true,
    }
}

impl Stores {
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("ledgerline.db");
        Stores::Sqlite { _dir: dir, path }
    }

    pub(crate) async fn postgres() -> Self {
        Stores::Postgres {
            db: TestDb::create("projections").await,
        }
    }

    pub(crate) async fn log(&self) -> Arc<dyn EventLog> {
        match self {
            Stores::Sqlite { path, .. } => Arc::new(
                SqliteLog::open(path.clone(), options())
                    .await
                    .expect("open the SQLite log"),
            ),
            Stores::Postgres { db } => Arc::new(
                PostgresLog::connect(&db.url, options())
                    .await
                    .expect("connect the PostgreSQL log"),
            ),
        }
    }

    pub(crate) async fn cdr_store(&self) -> CdrStore {
        match self {
            Stores::Sqlite { path, .. } => CdrStore::Sqlite(
                SqliteCdrStore::open(path)
                    .await
                    .expect("open the CDR store"),
            ),
            Stores::Postgres { db } => CdrStore::Postgres(
                PgCdrStore::connect(&db.url)
                    .await
                    .expect("connect the CDR store"),
            ),
        }
    }

    /// Makes every write of a checkpoint fail (from now on, until [`Stores::heal`]).
    pub(crate) async fn break_checkpoints(&self) {
        match self {
            Stores::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.execute_batch(
                    "CREATE TRIGGER crash_insert BEFORE INSERT ON projection_checkpoints \
                       BEGIN SELECT RAISE(ABORT, 'injected crash before the checkpoint'); END; \
                     CREATE TRIGGER crash_update BEFORE UPDATE ON projection_checkpoints \
                       BEGIN SELECT RAISE(ABORT, 'injected crash before the checkpoint'); END;",
                )
                .expect("install the triggers");
            }
            Stores::Postgres { db } => {
                db.client()
                    .await
                    .batch_execute(
                        "CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$ \
                           BEGIN RAISE EXCEPTION 'injected crash before the checkpoint'; END $$; \
                         CREATE TRIGGER crash BEFORE INSERT OR UPDATE ON projection_checkpoints \
                           FOR EACH ROW EXECUTE FUNCTION crash();",
                    )
                    .await
                    .expect("install the trigger");
            }
        }
    }

    pub(crate) async fn heal(&self) {
        match self {
            Stores::Sqlite { path, .. } => {
                rusqlite::Connection::open(path)
                    .expect("open")
                    .execute_batch("DROP TRIGGER crash_insert; DROP TRIGGER crash_update;")
                    .expect("drop the triggers");
            }
            Stores::Postgres { db } => {
                db.client()
                    .await
                    .batch_execute(
                        "DROP TRIGGER crash ON projection_checkpoints; DROP FUNCTION crash();",
                    )
                    .await
                    .expect("drop the trigger");
            }
        }
    }

    pub(crate) async fn tables(&self) -> Tables {
        const SQL: &str = "SELECT (SELECT count(*) FROM cdr), \
             (SELECT count(*) FROM (SELECT DISTINCT linkedid, uniqueid FROM cdr) AS d), \
             (SELECT position FROM projection_checkpoints WHERE name = 'cdr'), \
             (SELECT count(*) FROM cdr_open_calls)";
        match self {
            Stores::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open");
                conn.query_row(SQL, [], |r| {
                    Ok(Tables {
                        cdr_rows: r.get(0)?,
                        distinct_legs: r.get(1)?,
                        checkpoint: r.get(2)?,
                        open_calls: r.get(3)?,
                    })
                })
                .expect("count")
            }
            Stores::Postgres { db } => {
                let row = db.client().await.query_one(SQL, &[]).await.expect("count");
                Tables {
                    cdr_rows: row.get(0),
                    distinct_legs: row.get(1),
                    checkpoint: row.get(2),
                    open_calls: row.get(3),
                }
            }
        }
    }
}

/// The admin URL (`LEDGERLINE_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/postgres`).
pub(crate) fn admin_url() -> String {
    std::env::var("LEDGERLINE_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map(|i| &tail[i..]).unwrap_or("");
    format!("{scheme}://{authority}/{db}{query}")
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach the test PostgreSQL at {url}: {e} (set LEDGERLINE_TEST_PG)")
        });
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

#[allow(
    clippy::disallowed_methods,
    reason = "test database names need the time and a random part"
)]
fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[allow(
    clippy::disallowed_methods,
    reason = "test database names need the time and a random part"
)]
fn fresh_name(suffix: &str) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    let mut name = format!("ll_{:x}_{}_{suffix}", now_secs(), &random[..12]);
    name.truncate(63);
    name
}

/// A database for one test, dropped when this value is dropped.
pub(crate) struct TestDb {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) async fn create(suffix: &str) -> TestDb {
        let admin = connect(&admin_url()).await;
        // Leftovers of killed runs, older than an hour.
        if let Ok(rows) = admin
            .query(
                "SELECT datname FROM pg_database WHERE datname LIKE 'll\\_%'",
                &[],
            )
            .await
        {
            for row in rows {
                let name: String = row.get(0);
                let created = name
                    .strip_prefix("ll_")
                    .and_then(|r| r.split('_').next())
                    .and_then(|hex| i64::from_str_radix(hex, 16).ok());
                if created.is_some_and(|t| now_secs() - t > 3600) {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            }
        }
        let name = fresh_name(suffix);
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e:?}"));
        TestDb {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    pub(crate) async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let url = admin_url();
        // From a thread of its own, so it also works from `Drop` inside an async test.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await else {
                    return;
                };
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}
