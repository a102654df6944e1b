//! CDRs in a SQLite file of their own beside the embedded log's ([`super::store::cdr_file`]),
//! so the log's writer never waits for SQLite's write lock behind a projection commit. WAL
//! mode, so queries never block the projection's writes. `synchronous=NORMAL`: a commit may be
//! lost with the machine's power, never torn, and rows and checkpoint are lost together — a
//! restart then re-derives them from the log.
//!
//! Times are stored as microseconds since the epoch, like the log's `occurred_at`; positions as
//! a JSON array.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::GlobalPosition;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use super::row::{COLUMNS, DbRow};
use super::{Cdr, CdrCommit, CdrQuery, OpenCall};
use crate::ProjectionError;
use crate::schema;

/// The CDR store in a SQLite file.
#[derive(Clone)]
pub struct SqliteCdrStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteCdrStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteCdrStore")
            .field("path", &self.path)
            .finish()
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(column: &str, us: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| format!("{column} is out of range ({us})"))
}

impl SqliteCdrStore {
    /// Opens `path` (creating the file if needed) and creates the tables if they are missing.
    pub async fn open(path: &Path) -> Result<Self, ProjectionError> {
        let path = path.to_owned();
        let target = describe(&path);
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, ProjectionError> {
            let bad = |e: rusqlite::Error| ProjectionError::Schema {
                target: describe(&p),
                detail: e.to_string(),
            };
            let conn = Connection::open_with_flags(
                &p,
                OpenFlags::SQLITE_OPEN_READ_WRITE
                    | OpenFlags::SQLITE_OPEN_CREATE
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(bad)?;
            conn.busy_timeout(Duration::from_secs(10)).map_err(bad)?;
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .map_err(bad)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(ProjectionError::Schema {
                    target: describe(&p),
                    detail: format!("could not switch to WAL mode (got {mode})"),
                });
            }
            conn.execute_batch(
                "PRAGMA synchronous=NORMAL; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32000;",
            )
            .map_err(bad)?;
            schema::apply_sqlite(&conn).map_err(bad)?;
            Ok(conn)
        })
        .await
        .map_err(|e| ProjectionError::Store {
            target,
            detail: format!("opening task failed: {e}"),
        })??;
        Ok(Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    pub fn describe(&self) -> String {
        describe(&self.path)
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn with<T, F>(&self, f: F) -> Result<T, ProjectionError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        let target = self.describe();
        let t = target.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn).map_err(|e| ProjectionError::Store {
                target: t,
                detail: e.to_string(),
            })
        })
        .await
        .map_err(|e| ProjectionError::Store {
            target,
            detail: format!("task failed: {e}"),
        })?
    }

    pub(super) async fn load(
        &self,
        name: &str,
    ) -> Result<(GlobalPosition, Vec<OpenCall>), ProjectionError> {
        let name = name.to_owned();
        let target = self.describe();
        let (position, states) = self
            .with(move |conn| {
                let position: Option<i64> = conn
                    .query_row(
                        "SELECT position FROM projection_checkpoints WHERE name = ?1",
                        params![name],
                        |r| r.get(0),
                    )
                    .optional()?;
                let mut stmt = conn.prepare("SELECT state FROM cdr_open_calls ORDER BY call_id")?;
                let states = stmt
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((position.unwrap_or(0), states))
            })
            .await?;
        let open = states
            .iter()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| ProjectionError::Store {
                    target: target.clone(),
                    detail: format!("a stored call state does not parse: {e}"),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((GlobalPosition(u64::try_from(position).unwrap_or(0)), open))
    }

    pub(super) async fn commit(&self, name: &str, batch: CdrCommit) -> Result<(), ProjectionError> {
        let name = name.to_owned();
        let open: Vec<(String, String)> = batch
            .open
            .iter()
            .map(|c| {
                (
                    c.call().to_string(),
                    serde_json::to_string(c).unwrap_or_default(),
                )
            })
            .collect();
        let rows: Vec<DbRow> = batch.rows.iter().map(DbRow::from).collect();
        let closed: Vec<String> = batch.closed.iter().map(|c| c.to_string()).collect();
        let position = i64::try_from(batch.position.0).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = tx.prepare_cached(insert_sql())?;
                for r in &rows {
                    insert.execute(params![
                        r.linkedid.to_string(),
                        r.uniqueid.to_string(),
                        r.sequence,
                        r.tenant,
                        r.direction,
                        r.leg_role,
                        r.src,
                        r.src_name,
                        r.clid,
                        r.src_user,
                        r.src_department,
                        r.dst,
                        r.dst_name,
                        r.dst_user,
                        r.dst_department,
                        r.dnid,
                        r.channel,
                        r.dstchannel,
                        r.user_id,
                        r.department,
                        r.trunk,
                        micros(r.start_at),
                        r.answer_at.map(micros),
                        micros(r.end_at),
                        r.duration,
                        r.billsec,
                        r.duration_ms,
                        r.billable_ms,
                        r.disposition,
                        r.hangup_cause,
                        r.q850,
                        r.hangup_side,
                        r.sip_status,
                        serde_json::to_string(&r.positions).unwrap_or_default(),
                        r.end_position,
                    ])?;
                }
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO cdr_open_calls (call_id, state) VALUES (?1, ?2) \
                     ON CONFLICT (call_id) DO UPDATE SET state = excluded.state",
                )?;
                for (id, state) in &open {
                    upsert.execute(params![id, state])?;
                }
                let mut delete =
                    tx.prepare_cached("DELETE FROM cdr_open_calls WHERE call_id = ?1")?;
                for id in &closed {
                    delete.execute(params![id])?;
                }
                // Last, so that a failure here takes the rows above with it. Prepared once: a
                // commit that only moves the checkpoint comes with every flush.
                tx.prepare_cached(
                    "INSERT INTO projection_checkpoints (name, position) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                )?
                .execute(params![name, position])?;
            }
            tx.commit()
        })
        .await
    }

    pub(super) async fn reset(&self, name: &str) -> Result<(), ProjectionError> {
        let name = name.to_owned();
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM cdr", [])?;
            tx.execute("DELETE FROM cdr_open_calls", [])?;
            tx.execute(
                "INSERT INTO projection_checkpoints (name, position) VALUES (?1, 0) \
                 ON CONFLICT (name) DO UPDATE SET position = 0",
                params![name],
            )?;
            tx.commit()
        })
        .await
    }

    pub(super) async fn count(&self) -> Result<u64, ProjectionError> {
        self.with(|conn| conn.query_row("SELECT count(*) FROM cdr", [], |r| r.get::<_, i64>(0)))
            .await
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn query(&self, query: &CdrQuery) -> Result<Vec<Cdr>, ProjectionError> {
        let (sql, values) = select_sql(query);
        let target = self.describe();
        let rows = self
            .with(move |conn| {
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(values), read_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|r| {
                r.and_then(DbRow::into_cdr)
                    .map_err(|detail| ProjectionError::Store {
                        target: target.clone(),
                        detail: format!("a stored CDR does not parse: {detail}"),
                    })
            })
            .collect()
    }
}

fn describe(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

/// The row insert, written once.
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let placeholders: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO cdr ({}) VALUES ({})",
            COLUMNS.join(", "),
            placeholders.join(", ")
        )
    })
}

/// The SELECT for `query` and its parameters.
fn select_sql(query: &CdrQuery) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = vec![Value::Text(query.tenant.to_string())];
    let mut clauses = vec!["tenant = ?1".to_owned()];
    let param = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    if let Some(from) = query.from {
        let p = param(&mut values, Value::Integer(micros(from)));
        clauses.push(format!("start_at >= {p}"));
    }
    if let Some(to) = query.to {
        let p = param(&mut values, Value::Integer(micros(to)));
        clauses.push(format!("start_at < {p}"));
    }
    let involves = |values: &mut Vec<Value>, user: &events::ids::UserId| {
        let p = param(values, Value::Text(user.to_string()));
        format!("(src_user = {p} OR dst_user = {p})")
    };
    let in_departments =
        |values: &mut Vec<Value>, set: &std::collections::BTreeSet<events::ids::DepartmentId>| {
            if set.is_empty() {
                return "0".to_owned();
            }
            let list: Vec<String> = set
                .iter()
                .map(|d| {
                    values.push(Value::Text(d.to_string()));
                    format!("?{}", values.len())
                })
                .collect();
            let list = list.join(", ");
            format!("(src_department IN ({list}) OR dst_department IN ({list}))")
        };
    if let Some(user) = &query.user {
        let c = involves(&mut values, user);
        clauses.push(c);
    }
    if let Some(set) = &query.departments {
        let c = in_departments(&mut values, set);
        clauses.push(c);
    }
    if let Some(v) = &query.visible_to {
        let mut any = Vec::new();
        if let Some(user) = &v.user {
            any.push(involves(&mut values, user));
        }
        any.push(in_departments(&mut values, &v.departments));
        clauses.push(format!("({})", any.join(" OR ")));
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {} FROM cdr WHERE {} ORDER BY start_at, linkedid, sequence LIMIT {limit}",
        COLUMNS.join(", "),
        clauses.join(" AND ")
    );
    (sql, values)
}

type RowResult = Result<DbRow, String>;

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RowResult> {
    let uuid = |i: usize| -> rusqlite::Result<Result<Uuid, String>> {
        let s: String = r.get(i)?;
        Ok(Uuid::parse_str(&s).map_err(|_| format!("{} is not a UUID ({s:?})", COLUMNS[i])))
    };
    let (linkedid, uniqueid) = (uuid(0)?, uuid(1)?);
    let start: i64 = r.get(21)?;
    let answer: Option<i64> = r.get(22)?;
    let end: i64 = r.get(23)?;
    let positions: String = r.get(33)?;
    let row = (|| -> RowResult {
        Ok(DbRow {
            linkedid: linkedid?,
            uniqueid: uniqueid?,
            sequence: r.get(2).map_err(|e| e.to_string())?,
            tenant: r.get(3).map_err(|e| e.to_string())?,
            direction: r.get(4).map_err(|e| e.to_string())?,
            leg_role: r.get(5).map_err(|e| e.to_string())?,
            src: r.get(6).map_err(|e| e.to_string())?,
            src_name: r.get(7).map_err(|e| e.to_string())?,
            clid: r.get(8).map_err(|e| e.to_string())?,
            src_user: r.get(9).map_err(|e| e.to_string())?,
            src_department: r.get(10).map_err(|e| e.to_string())?,
            dst: r.get(11).map_err(|e| e.to_string())?,
            dst_name: r.get(12).map_err(|e| e.to_string())?,
            dst_user: r.get(13).map_err(|e| e.to_string())?,
            dst_department: r.get(14).map_err(|e| e.to_string())?,
            dnid: r.get(15).map_err(|e| e.to_string())?,
            channel: r.get(16).map_err(|e| e.to_string())?,
            dstchannel: r.get(17).map_err(|e| e.to_string())?,
            user_id: r.get(18).map_err(|e| e.to_string())?,
            department: r.get(19).map_err(|e| e.to_string())?,
            trunk: r.get(20).map_err(|e| e.to_string())?,
            start_at: from_micros("start_at", start)?,
            answer_at: answer.map(|a| from_micros("answer_at", a)).transpose()?,
            end_at: from_micros("end_at", end)?,
            duration: r.get(24).map_err(|e| e.to_string())?,
            billsec: r.get(25).map_err(|e| e.to_string())?,
            duration_ms: r.get(26).map_err(|e| e.to_string())?,
            billable_ms: r.get(27).map_err(|e| e.to_string())?,
            disposition: r.get(28).map_err(|e| e.to_string())?,
            hangup_cause: r.get(29).map_err(|e| e.to_string())?,
            q850: r.get(30).map_err(|e| e.to_string())?,
            hangup_side: r.get(31).map_err(|e| e.to_string())?,
            sip_status: r.get(32).map_err(|e| e.to_string())?,
            positions: serde_json::from_str(&positions).map_err(|e| format!("positions: {e}"))?,
            end_position: r.get(34).map_err(|e| e.to_string())?,
        })
    })();
    Ok(row)
}
