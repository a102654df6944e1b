//! The projections' tables: `migrations/sqlite/V2__projections.sql` and
//! `migrations/postgres/V2__projections.sql`, applied when a store opens. The files are written
//! to be idempotent (`IF NOT EXISTS` throughout), because two parties may apply them: this
//! module, and the event log's refinery runner in builds that embed the migrations directory
//! with these files in it. Neither order breaks the other, and this module never writes
//! refinery's history table (a log build that does not know V2 would otherwise refuse to open
//! the store).
//!
//! On PostgreSQL the statements run under the advisory lock the log's migrations take, so two
//! processes starting at once cannot race on `CREATE ... IF NOT EXISTS`.

use std::time::{Duration, Instant};

use events::log::postgres::MIGRATION_LOCK_KEY;

/// The SQLite dialect of the projections' tables.
pub const SQLITE_V2: &str = include_str!("../../migrations/sqlite/V2__projections.sql");
/// The PostgreSQL dialect of the projections' tables.
pub const POSTGRES_V2: &str = include_str!("../../migrations/postgres/V2__projections.sql");

/// How long to wait for another process's migration.
const MIGRATION_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Creates the projections' tables in a SQLite database if they are missing.
pub fn apply_sqlite(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SQLITE_V2)
}

/// Why the PostgreSQL schema could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("another connection has held the migration lock for {0} s; is a migration stuck?")]
    LockTimeout(u64),
}

/// Creates the projections' tables in a PostgreSQL database if they are missing, under the
/// log's migration lock.
pub async fn apply_postgres(client: &tokio_postgres::Client) -> Result<(), SchemaError> {
    let deadline = Instant::now() + MIGRATION_LOCK_WAIT;
    loop {
        let locked: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
            .await?
            .try_get(0)?;
        if locked {
            break;
        }
        if Instant::now() >= deadline {
            return Err(SchemaError::LockTimeout(MIGRATION_LOCK_WAIT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = client.batch_execute(POSTGRES_V2).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    result?;
    unlocked?;
    Ok(())
}

/// The columns `sql` declares for the `cdr` table, in table order (for tests that hold the
/// code's column list to the migrations).
#[cfg(test)]
pub(crate) fn cdr_columns(sql: &str) -> Vec<&str> {
    let body = sql
        .split("CREATE TABLE IF NOT EXISTS cdr (")
        .nth(1)
        .and_then(|rest| rest.split(");").next())
        .unwrap_or_default();
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("PRIMARY KEY"))
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_tables_can_be_created_twice() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        apply_sqlite(&conn).unwrap();
        apply_sqlite(&conn).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('projection_checkpoints', 'cdr', 'cdr_open_calls')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 3);
    }

    #[test]
    fn both_dialects_create_the_same_cdr_columns() {
        let sqlite = cdr_columns(SQLITE_V2);
        assert_eq!(sqlite.len(), 35, "{sqlite:?}");
        assert_eq!(sqlite, cdr_columns(POSTGRES_V2));
    }
}
