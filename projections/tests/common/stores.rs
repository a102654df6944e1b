//! Throw-away stores for the runner tests: the event log and the CDR store side by side, as the
//! binary opens them — a SQLite file in a temporary directory, or a fresh PostgreSQL database
//! per test ([`tests::pg::TestDb`]: on the server named by `LEDGERLINE_TEST_PG`, dropped
//! afterwards). Each can inject a failure of the checkpoint write, the last statement of a
//! commit, to prove rows and checkpoint go together.

use std::path::PathBuf;
use std::sync::Arc;

use events::log::postgres::PostgresLog;
use events::log::sqlite::SqliteLog;
use events::{EventLog, StoreOptions};
use projections::CdrStore;
use projections::cdr::{PgCdrStore, SqliteCdrStore};
pub(crate) use tests::pg::TestDb;

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
        ..StoreOptions::default()
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
            db: TestDb::create_with_suffix("projections").await,
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
