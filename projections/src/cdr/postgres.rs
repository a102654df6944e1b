//! CDRs in the PostgreSQL database of the log, through a small pool of their own. A commit is
//! one transaction of at most four statements whatever its size: the rows go in as one JSON
//! array (`json_populate_recordset` over the table's own row type), the call states as another,
//! the ended calls as a uuid array, then the checkpoint. Queries return `row_to_json`, read back
//! through the same row type, so the two directions cannot disagree on a column.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use events::GlobalPosition;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls};
use uuid::Uuid;

use super::row::DbRow;
use super::{Cdr, CdrCommit, CdrQuery, OpenCall};
use crate::ProjectionError;
use crate::schema;

/// Connections the store keeps.
const POOL_SIZE: usize = 4;

/// The CDR store in a PostgreSQL database.
#[derive(Clone)]
pub struct PgCdrStore {
    pool: Pool,
    target: String,
}

impl fmt::Debug for PgCdrStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCdrStore")
            .field("target", &self.target)
            .finish()
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

impl PgCdrStore {
    /// Connects to `url` and creates the tables if they are missing.
    pub async fn connect(url: &str) -> Result<Self, ProjectionError> {
        let mut config: Config =
            url.trim()
                .parse()
                .map_err(|e: tokio_postgres::Error| ProjectionError::Schema {
                    target: "postgres".into(),
                    detail: format!("invalid PostgreSQL URL: {e}"),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("ledgerline-projections");
        }
        let target = describe(&config);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(6)))
            .build()
            .map_err(|e| ProjectionError::Schema {
                target: target.clone(),
                detail: format!("cannot build the connection pool: {e}"),
            })?;
        let store = Self { pool, target };
        let conn = store.conn().await?;
        schema::apply_postgres(&conn)
            .await
            .map_err(|e| ProjectionError::Schema {
                target: store.target.clone(),
                detail: error_chain(&e),
            })?;
        Ok(store)
    }

    pub fn describe(&self) -> String {
        self.target.clone()
    }

    async fn conn(&self) -> Result<Object, ProjectionError> {
        self.pool.get().await.map_err(|e| ProjectionError::Store {
            target: self.target.clone(),
            detail: format!("no connection: {}", error_chain(&e)),
        })
    }

    fn error(&self, e: &tokio_postgres::Error) -> ProjectionError {
        ProjectionError::Store {
            target: self.target.clone(),
            detail: error_chain(e),
        }
    }

    pub(super) async fn load(
        &self,
        name: &str,
    ) -> Result<(GlobalPosition, Vec<OpenCall>), ProjectionError> {
        let conn = self.conn().await?;
        let position: i64 = conn
            .query_opt(
                "SELECT position FROM projection_checkpoints WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(|e| self.error(&e))?
            .map_or(Ok(0), |row| row.try_get(0))
            .map_err(|e| self.error(&e))?;
        let rows = conn
            .query(
                "SELECT state::text FROM cdr_open_calls ORDER BY call_id",
                &[],
            )
            .await
            .map_err(|e| self.error(&e))?;
        let mut open = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get(0).map_err(|e| self.error(&e))?;
            open.push(
                serde_json::from_str(&text).map_err(|e| ProjectionError::Store {
                    target: self.target.clone(),
                    detail: format!("a stored call state does not parse: {e}"),
                })?,
            );
        }
        Ok((GlobalPosition(u64::try_from(position).unwrap_or(0)), open))
    }

    pub(super) async fn commit(&self, name: &str, batch: CdrCommit) -> Result<(), ProjectionError> {
        let rows: Vec<DbRow> = batch.rows.iter().map(DbRow::from).collect();
        let rows_json = to_json(&rows);
        let open: Vec<serde_json::Value> = batch
            .open
            .iter()
            .map(|c| {
                serde_json::json!({
                    "call_id": c.call().to_string(),
                    "state": c,
                })
            })
            .collect();
        let open_json = to_json(&open);
        let closed: Vec<Uuid> = batch.closed.iter().map(|c| c.as_uuid()).collect();
        let position = i64::try_from(batch.position.0).unwrap_or(i64::MAX);

        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.error(&e))?;
        if !rows.is_empty() {
            tx.execute(
                "INSERT INTO cdr SELECT * FROM json_populate_recordset(NULL::cdr, $1::text::json)",
                &[&rows_json],
            )
            .await
            .map_err(|e| self.error(&e))?;
        }
        if !open.is_empty() {
            tx.execute(
                "INSERT INTO cdr_open_calls (call_id, state) \
                 SELECT (e->>'call_id')::uuid, (e->'state')::jsonb \
                 FROM json_array_elements($1::text::json) AS e \
                 ON CONFLICT (call_id) DO UPDATE SET state = EXCLUDED.state",
                &[&open_json],
            )
            .await
            .map_err(|e| self.error(&e))?;
        }
        if !closed.is_empty() {
            tx.execute(
                "DELETE FROM cdr_open_calls WHERE call_id = ANY($1)",
                &[&closed],
            )
            .await
            .map_err(|e| self.error(&e))?;
        }
        // Last, so that a failure here takes the rows above with it.
        tx.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position",
            &[&name, &position],
        )
        .await
        .map_err(|e| self.error(&e))?;
        tx.commit().await.map_err(|e| self.error(&e))
    }

    pub(super) async fn reset(&self, name: &str) -> Result<(), ProjectionError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.error(&e))?;
        // TRUNCATE rather than DELETE: a rebuild rewrites every row, and this leaves no dead
        // ones behind to slow it down. It is transactional, like the rest.
        tx.batch_execute("TRUNCATE cdr, cdr_open_calls;")
            .await
            .map_err(|e| self.error(&e))?;
        tx.execute(
            "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
             ON CONFLICT (name) DO UPDATE SET position = 0",
            &[&name],
        )
        .await
        .map_err(|e| self.error(&e))?;
        tx.commit().await.map_err(|e| self.error(&e))
    }

    pub(super) async fn count(&self) -> Result<u64, ProjectionError> {
        let conn = self.conn().await?;
        let n: i64 = conn
            .query_one("SELECT count(*) FROM cdr", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| self.error(&e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) async fn query(&self, query: &CdrQuery) -> Result<Vec<Cdr>, ProjectionError> {
        let (sql, params) = select_sql(query);
        let conn = self.conn().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let rows = conn
            .query(sql.as_str(), &refs)
            .await
            .map_err(|e| self.error(&e))?;
        rows.into_iter()
            .map(|row| {
                let text: String = row.try_get(0).map_err(|e| self.error(&e))?;
                serde_json::from_str::<DbRow>(&text)
                    .map_err(|e| e.to_string())
                    .and_then(DbRow::into_cdr)
                    .map_err(|detail| ProjectionError::Store {
                        target: self.target.clone(),
                        detail: format!("a stored CDR does not parse: {detail}"),
                    })
            })
            .collect()
    }
}

/// The SELECT for `query` and its parameters.
fn select_sql(query: &CdrQuery) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = vec![Box::new(query.tenant.to_string())];
    let mut clauses = vec!["tenant = $1".to_owned()];
    fn push(params: &mut Vec<Param>, p: Param) -> String {
        params.push(p);
        format!("${}", params.len())
    }
    fn involves(params: &mut Vec<Param>, user: &events::ids::UserId) -> String {
        let p = push(params, Box::new(user.to_string()));
        format!("(src_user = {p} OR dst_user = {p})")
    }
    fn in_departments(
        params: &mut Vec<Param>,
        set: &std::collections::BTreeSet<events::ids::DepartmentId>,
    ) -> String {
        let list: Vec<String> = set.iter().map(|d| d.to_string()).collect();
        let p = push(params, Box::new(list));
        format!("(src_department = ANY({p}) OR dst_department = ANY({p}))")
    }
    if let Some(from) = query.from {
        let p = push(&mut params, Box::new(from));
        clauses.push(format!("start_at >= {p}"));
    }
    if let Some(to) = query.to {
        let p = push(&mut params, Box::new(to));
        clauses.push(format!("start_at < {p}"));
    }
    if let Some(user) = &query.user {
        clauses.push(involves(&mut params, user));
    }
    if let Some(set) = &query.departments {
        clauses.push(in_departments(&mut params, set));
    }
    if let Some(v) = &query.visible_to {
        let mut any = Vec::new();
        if let Some(user) = &v.user {
            any.push(involves(&mut params, user));
        }
        any.push(in_departments(&mut params, &v.departments));
        clauses.push(format!("({})", any.join(" OR ")));
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT row_to_json(c)::text FROM cdr c WHERE {} \
         ORDER BY start_at, linkedid, sequence LIMIT {limit}",
        clauses.join(" AND ")
    );
    (sql, params)
}

fn describe(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{host}:{port}/{db}")
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A batch as JSON text. Rows and states are plain data, so this cannot fail; an empty array
/// is written if it ever did.
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".to_owned())
}
