//! The production storage backend: PostgreSQL through a `deadpool` pool of
//! `tokio-postgres` connections.
//!
//! Concurrency model: write transactions run at READ COMMITTED; a version is
//! appended only after locking the resource's current row (`FOR UPDATE`), and
//! the `(rtype, id, version)` unique key turns any remaining race (two creates
//! of one new id) into [`StoreError::Conflict`]. Conditional creates take a
//! transaction-scoped advisory lock on their criteria.
//!
//! Architecture invariant: this crate is one of the two that know SQL; driver
//! error text is logged here and never crosses the seam.

mod migrations;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use store::{
    Criterion, HistoryQuery, IndexRow, NewVersion, Result, SearchQuery, StoreError, StoredResource,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/db` (or key=value form).
    pub url: String,
    /// Use this schema (created when absent) instead of `public`: lets tests,
    /// or several deployments, share one database.
    pub schema: Option<String>,
    pub max_connections: usize,
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> Self {
        PostgresConfig {
            url: url.into(),
            schema: None,
            max_connections: 16,
        }
    }
}

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

fn db_error(e: tokio_postgres::Error) -> StoreError {
    tracing::error!(error = %e, "postgres error");
    if e.is_closed() {
        StoreError::Unavailable("database connection closed".to_owned())
    } else {
        StoreError::Internal("postgres".to_owned())
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    tracing::error!(error = %e, "postgres pool error");
    StoreError::Unavailable("cannot reach the database".to_owned())
}

/// A stable 64-bit FNV-1a hash, for advisory lock keys.
fn fnv1a(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
}

impl PostgresStore {
    /// Connects, creates the schema when asked, and runs pending migrations.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            tracing::error!(error = %e, "invalid database URL");
            StoreError::Unavailable("invalid database URL".to_owned())
        })?;
        if let Some(schema) = &config.schema {
            if !valid_schema_name(schema) {
                return Err(StoreError::Unavailable("invalid schema name".to_owned()));
            }
            // Create the schema on a one-off connection, then point every pooled
            // connection at it.
            let (client, conn) = pg.connect(NoTls).await.map_err(db_error)?;
            let task = tokio::spawn(conn);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .map_err(db_error)?;
            drop(client);
            let _ = task.await;
            pg.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build pool");
                StoreError::Unavailable("cannot build the connection pool".to_owned())
            })?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            )
            .await
            .map_err(db_error)?;
        for (version, sql) in migrations::MIGRATIONS {
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&fnv1a("sharedcare-migrations")],
            )
            .await
            .map_err(db_error)?;
            let done = tx
                .query_opt(
                    "SELECT version FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await
                .map_err(db_error)?;
            if done.is_none() {
                tracing::info!(version, "applying postgres migration");
                tx.batch_execute(sql).await.map_err(db_error)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await
                .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
        }
        Ok(())
    }
}

const SELECT_CURRENT: &str = "SELECT c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq \
     FROM resource_current c JOIN resource_version v ON v.seq = c.seq";

fn row_to_resource(r: &Row) -> Result<StoredResource> {
    let get = |e: tokio_postgres::Error| db_error(e);
    let version: i64 = r.try_get(2).map_err(get)?;
    Ok(StoredResource {
        rtype: r.try_get(0).map_err(get)?,
        id: r.try_get(1).map_err(get)?,
        version: u64::try_from(version).unwrap_or(0),
        last_updated: r.try_get(3).map_err(get)?,
        deleted: r.try_get(4).map_err(get)?,
        body: r.try_get(5).map_err(get)?,
        seq: r.try_get(6).map_err(get)?,
    })
}

type Args = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn push_arg(args: &mut Args, v: impl ToSql + Sync + Send + 'static) -> String {
    args.push(Box::new(v));
    format!("${}", args.len())
}

/// Appends SQL for `criteria` (ANDed) over `resource_current c` to `sql`.
fn push_criteria(sql: &mut String, args: &mut Args, criteria: &[Criterion]) {
    for criterion in criteria {
        match criterion {
            Criterion::Id(ids) => {
                let p = push_arg(args, ids.clone());
                sql.push_str(&format!(" AND c.id = ANY({p})"));
            }
            Criterion::Token { param, any_of } => {
                let p = push_arg(args, param.clone());
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rtype = c.rtype AND t.id = c.id AND t.param = {p} AND ("
                ));
                for (i, v) in any_of.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(" OR ");
                    }
                    let mut parts = Vec::new();
                    match v.system.as_deref() {
                        None => {}
                        Some("") => parts.push("t.system IS NULL".to_owned()),
                        Some(s) => {
                            parts.push(format!("t.system = {}", push_arg(args, s.to_owned())))
                        }
                    }
                    if let Some(code) = &v.code {
                        parts.push(format!("t.code = {}", push_arg(args, code.clone())));
                    }
                    if parts.is_empty() {
                        parts.push("TRUE".to_owned());
                    }
                    sql.push_str(&format!("({})", parts.join(" AND ")));
                }
                if any_of.is_empty() {
                    sql.push_str("FALSE");
                }
                sql.push_str("))");
            }
        }
    }
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn query_resources(client: &Object, sql: &str, args: &Args) -> Result<Vec<StoredResource>> {
    let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &refs(args)).await.map_err(db_error)?;
    rows.iter().map(row_to_resource).collect()
}

impl store::Store for PostgresStore {
    type Tx = PostgresTx;

    async fn begin(&self) -> Result<PostgresTx> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client.batch_execute("BEGIN").await.map_err(db_error)?;
        Ok(PostgresTx {
            client: Some(client),
        })
    }

    async fn read(&self, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let args: Args = vec![Box::new(rtype.to_owned()), Box::new(id.to_owned())];
        let sql = format!("{SELECT_CURRENT} WHERE c.rtype = $1 AND c.id = $2");
        Ok(query_resources(&client, &sql, &args)
            .await?
            .into_iter()
            .next())
    }

    async fn vread(&self, rtype: &str, id: &str, version: u64) -> Result<Option<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let v = i64::try_from(version).unwrap_or(i64::MAX);
        let args: Args = vec![
            Box::new(rtype.to_owned()),
            Box::new(id.to_owned()),
            Box::new(v),
        ];
        let sql = "SELECT rtype, id, version, last_updated, deleted, body, seq FROM resource_version \
                   WHERE rtype = $1 AND id = $2 AND version = $3";
        Ok(query_resources(&client, sql, &args)
            .await?
            .into_iter()
            .next())
    }

    async fn history(&self, q: &HistoryQuery) -> Result<Vec<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut sql = String::from(
            "SELECT rtype, id, version, last_updated, deleted, body, seq FROM resource_version WHERE TRUE",
        );
        let mut args: Args = Vec::new();
        if let Some(t) = &q.rtype {
            sql.push_str(&format!(" AND rtype = {}", push_arg(&mut args, t.clone())));
        }
        if let Some(id) = &q.id {
            sql.push_str(&format!(" AND id = {}", push_arg(&mut args, id.clone())));
        }
        if let Some(since) = q.since {
            sql.push_str(&format!(
                " AND last_updated >= {}",
                push_arg(&mut args, since)
            ));
        }
        if let Some(before) = q.before_seq {
            sql.push_str(&format!(" AND seq < {}", push_arg(&mut args, before)));
        }
        sql.push_str(&format!(
            " ORDER BY seq DESC LIMIT {}",
            push_arg(&mut args, limit_of(q.limit))
        ));
        query_resources(&client, &sql, &args).await
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut args: Args = vec![Box::new(q.rtype.clone())];
        let mut sql = format!("{SELECT_CURRENT} WHERE c.rtype = $1 AND NOT c.deleted");
        push_criteria(&mut sql, &mut args, &q.criteria);
        if let Some(after) = &q.after_id {
            sql.push_str(&format!(
                " AND c.id > {}",
                push_arg(&mut args, after.clone())
            ));
        }
        sql.push_str(&format!(
            " ORDER BY c.id COLLATE \"C\" LIMIT {}",
            push_arg(&mut args, limit_of(q.limit))
        ));
        query_resources(&client, &sql, &args).await
    }

    async fn ready(&self) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

/// A write transaction on one pooled connection.
pub struct PostgresTx {
    /// `None` once committed.
    client: Option<Object>,
}

impl PostgresTx {
    fn client(&self) -> Result<&Object> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))
    }
}

impl Drop for PostgresTx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Roll back before the connection goes back to the pool. Without a
            // runtime to do that on, detach the connection from the pool: closing
            // it makes the server roll the transaction back.
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        if let Err(e) = client.batch_execute("ROLLBACK").await {
                            tracing::error!(error = %e, "postgres rollback failed");
                            drop(Object::take(client));
                        }
                    });
                }
                Err(_) => drop(Object::take(client)),
            }
        }
    }
}

fn is_conflict(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

impl store::Tx for PostgresTx {
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
        let client = self.client()?;
        // Lock first, then read in a second statement: at READ COMMITTED a
        // locking join re-checked after a concurrent update would compare the
        // new pointer with the old version row and drop the row entirely.
        let stmt = client
            .prepare_cached(
                "SELECT version FROM resource_current WHERE rtype = $1 AND id = $2 FOR UPDATE",
            )
            .await
            .map_err(db_error)?;
        if client
            .query_opt(&stmt, &[&rtype, &id])
            .await
            .map_err(db_error)?
            .is_none()
        {
            return Ok(None);
        }
        let args: Args = vec![Box::new(rtype.to_owned()), Box::new(id.to_owned())];
        let sql = format!("{SELECT_CURRENT} WHERE c.rtype = $1 AND c.id = $2");
        Ok(query_resources(client, &sql, &args)
            .await?
            .into_iter()
            .next())
    }

    async fn find(
        &mut self,
        rtype: &str,
        criteria: &[Criterion],
        limit: usize,
    ) -> Result<Vec<String>> {
        let client = self.client()?;
        let mut args: Args = vec![Box::new(rtype.to_owned())];
        let mut sql = String::from(
            "SELECT c.id FROM resource_current c WHERE c.rtype = $1 AND NOT c.deleted",
        );
        push_criteria(&mut sql, &mut args, criteria);
        sql.push_str(&format!(
            " ORDER BY c.id COLLATE \"C\" LIMIT {}",
            push_arg(&mut args, limit_of(limit))
        ));
        let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client.query(&stmt, &refs(&args)).await.map_err(db_error)?;
        rows.iter()
            .map(|r| r.try_get::<_, String>(0).map_err(db_error))
            .collect()
    }

    async fn lock_key(&mut self, key: &str) -> Result<()> {
        let client = self.client()?;
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&fnv1a(key)])
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn put(&mut self, v: &NewVersion) -> Result<i64> {
        let client = self.client()?;
        let conflict = || StoreError::Conflict {
            rtype: v.rtype.clone(),
            id: v.id.clone(),
        };
        let map = |e: tokio_postgres::Error| {
            if is_conflict(&e) {
                conflict()
            } else {
                db_error(e)
            }
        };
        let version = i64::try_from(v.version).map_err(|_| conflict())?;
        // One round trip: append the version and move the pointer together.
        // Version 1 must be new (the unique keys refuse a second one); any
        // later version must follow the current one exactly (compare-and-set).
        let sql = if version == 1 {
            "WITH v AS (INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq) \
             INSERT INTO resource_current (rtype, id, version, seq, deleted, patient_id) \
             SELECT $1, $2, $3, v.seq, $5, $6 FROM v RETURNING seq"
        } else {
            "WITH v AS (INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq) \
             UPDATE resource_current c SET version = $3, seq = v.seq, deleted = $5, patient_id = $6 \
             FROM v WHERE c.rtype = $1 AND c.id = $2 AND c.version = $3 - 1 RETURNING c.seq"
        };
        let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
        let row = client
            .query_opt(
                &stmt,
                &[
                    &v.rtype,
                    &v.id,
                    &version,
                    &v.last_updated,
                    &v.deleted,
                    &v.patient_id,
                    &v.body,
                ],
            )
            .await
            .map_err(map)?
            .ok_or_else(conflict)?;
        let seq: i64 = row.try_get(0).map_err(db_error)?;
        if version > 1 {
            let stmt = client
                .prepare_cached("DELETE FROM idx_token WHERE rtype = $1 AND id = $2")
                .await
                .map_err(db_error)?;
            client
                .execute(&stmt, &[&v.rtype, &v.id])
                .await
                .map_err(db_error)?;
        }
        if !v.index.is_empty() {
            // One multi-row statement per resource keeps round trips down.
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(v.index.len() * 3 + 3);
            params.push(&v.rtype);
            params.push(&v.id);
            params.push(&v.patient_id);
            let mut sql = String::from(
                "INSERT INTO idx_token (rtype, id, patient_id, param, system, code) VALUES ",
            );
            for (i, row) in v.index.iter().enumerate() {
                let IndexRow::Token {
                    param,
                    system,
                    code,
                } = row;
                let n = params.len();
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!("($1, $2, $3, ${}, ${}, ${})", n + 1, n + 2, n + 3));
                params.push(param);
                params.push(system);
                params.push(code);
            }
            client
                .execute(sql.as_str(), &params)
                .await
                .map_err(db_error)?;
        }
        Ok(seq)
    }

    async fn commit(mut self) -> Result<()> {
        let client = self
            .client
            .take()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))?;
        match client.batch_execute("COMMIT").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = if is_conflict(&e) {
                    StoreError::Conflict {
                        rtype: String::new(),
                        id: String::new(),
                    }
                } else {
                    db_error(e)
                };
                // The connection's state is unknown: do not return it to the pool.
                drop(Object::take(client));
                Err(err)
            }
        }
    }
}
