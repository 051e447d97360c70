//! The embedded storage backend: one SQLite file in WAL mode.
//!
//! Concurrency model: exactly one writer connection, taken for the whole of a
//! [`SqliteTx`] (`BEGIN IMMEDIATE`), so write transactions are serialised and
//! conditional interactions cannot race; readers use a small pool of their own
//! connections and see the last committed state (WAL snapshot isolation).
//!
//! SQLite calls are synchronous and short (tens of microseconds for a point
//! read); they run on the calling async task rather than hopping to a blocking
//! pool, which costs more than the call itself at these sizes.
//!
//! Architecture invariant: this crate is one of the two that know SQL; nothing
//! above `store` sees a statement or a driver error text.

mod migrations;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};
use store::{
    Criterion, HistoryQuery, IndexRow, NewVersion, Result, SearchQuery, StoreError, StoredResource,
};
use tokio::sync::OwnedMutexGuard;

/// How the SQLite file is opened.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file (created, with its directory, when absent).
    pub path: PathBuf,
    /// `synchronous=FULL` (fsync the WAL at every commit: survives power loss)
    /// rather than `NORMAL` (survives a process crash, not power loss).
    pub durable: bool,
    /// Reader connections kept open for reuse.
    pub max_idle_readers: usize,
}

impl SqliteConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteConfig {
            path: path.into(),
            durable: true,
            max_idle_readers: 8,
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    writer: Arc<tokio::sync::Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .finish()
    }
}

fn internal(e: rusqlite::Error) -> StoreError {
    // Driver text goes to the log only; the caller gets a category.
    tracing::error!(error = %e, "sqlite error");
    StoreError::Internal("sqlite".to_owned())
}

fn open_connection(path: &Path, durable: bool) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        tracing::error!(error = %e, path = %path.display(), "cannot open sqlite database");
        StoreError::Unavailable("cannot open the database file".to_owned())
    })?;
    let sync = if durable { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; \
         PRAGMA busy_timeout=5000; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(internal)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating when needed) the database and runs pending migrations.
    pub fn open(config: SqliteConfig) -> Result<Self> {
        if let Some(dir) = config.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                tracing::error!(error = %e, "cannot create data directory");
                StoreError::Unavailable("cannot create the data directory".to_owned())
            })?;
        }
        let mut writer = open_connection(&config.path, config.durable)?;
        migrate(&mut writer)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                config,
                writer: Arc::new(tokio::sync::Mutex::new(writer)),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs `f` on a pooled reader connection.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut v| v.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.inner.config.path, self.inner.config.durable)?,
        };
        let out = f(&conn);
        if let Ok(mut v) = self.inner.readers.lock()
            && v.len() < self.inner.config.max_idle_readers
        {
            v.push(conn);
        }
        out
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .map_err(internal)?;
    for (version, sql) in migrations::MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(internal)?;
        let done: Option<i64> = tx
            .query_row(
                "SELECT version FROM schema_migrations WHERE version = ?1",
                [version],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)?;
        if done.is_none() {
            tracing::info!(version, "applying sqlite migration");
            tx.execute_batch(sql).map_err(internal)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, datetime('now'))",
                [version],
            )
            .map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

const SELECT_CURRENT: &str = "SELECT c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq \
     FROM resource_current c JOIN resource_version v ON v.seq = c.seq";

fn row_to_resource(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResource> {
    let version: i64 = r.get(2)?;
    Ok(StoredResource {
        rtype: r.get(0)?,
        id: r.get(1)?,
        version: u64::try_from(version).unwrap_or(0),
        last_updated: r.get(3)?,
        deleted: r.get::<_, i64>(4)? != 0,
        body: r.get(5)?,
        seq: r.get(6)?,
    })
}

fn read_current(conn: &Connection, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "{SELECT_CURRENT} WHERE c.rtype = ?1 AND c.id = ?2"
        ))
        .map_err(internal)?;
    stmt.query_row(params![rtype, id], row_to_resource)
        .optional()
        .map_err(internal)
}

/// Appends SQL for `criteria` (ANDed) over `resource_current c` to `sql`.
fn push_criteria(sql: &mut String, args: &mut Vec<String>, criteria: &[Criterion]) {
    for criterion in criteria {
        match criterion {
            Criterion::Id(ids) => {
                sql.push_str(" AND c.id IN (");
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push('?');
                    args.push(id.clone());
                }
                if ids.is_empty() {
                    sql.push_str("NULL");
                }
                sql.push(')');
            }
            Criterion::Token { param, any_of } => {
                sql.push_str(
                    " AND EXISTS (SELECT 1 FROM idx_token t WHERE t.rtype = c.rtype AND t.id = c.id AND t.param = ?",
                );
                args.push(param.clone());
                sql.push_str(" AND (");
                for (i, v) in any_of.iter().enumerate() {
                    if i > 0 {
                        sql.push_str(" OR ");
                    }
                    sql.push('(');
                    let mut first = true;
                    let mut and = |sql: &mut String| {
                        if !first {
                            sql.push_str(" AND ");
                        }
                        first = false;
                    };
                    match v.system.as_deref() {
                        None => {}
                        Some("") => {
                            and(sql);
                            sql.push_str("t.system IS NULL");
                        }
                        Some(s) => {
                            and(sql);
                            sql.push_str("t.system = ?");
                            args.push(s.to_owned());
                        }
                    }
                    if let Some(code) = &v.code {
                        and(sql);
                        sql.push_str("t.code = ?");
                        args.push(code.clone());
                    }
                    if first {
                        sql.push('1');
                    }
                    sql.push(')');
                }
                if any_of.is_empty() {
                    sql.push('0');
                }
                sql.push_str("))");
            }
        }
    }
}

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl store::Store for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self) -> Result<SqliteTx> {
        let guard = self.inner.writer.clone().lock_owned().await;
        guard.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
        Ok(SqliteTx { conn: Some(guard) })
    }

    async fn read(&self, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
        self.with_reader(|c| read_current(c, rtype, id))
    }

    async fn vread(&self, rtype: &str, id: &str, version: u64) -> Result<Option<StoredResource>> {
        self.with_reader(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT rtype, id, version, last_updated, deleted, body, seq FROM resource_version \
                     WHERE rtype = ?1 AND id = ?2 AND version = ?3",
                )
                .map_err(internal)?;
            let v = i64::try_from(version).unwrap_or(i64::MAX);
            stmt.query_row(params![rtype, id, v], row_to_resource).optional().map_err(internal)
        })
    }

    async fn history(&self, q: &HistoryQuery) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let mut sql = String::from(
                "SELECT rtype, id, version, last_updated, deleted, body, seq FROM resource_version WHERE 1=1",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(t) = &q.rtype {
                sql.push_str(" AND rtype = ?");
                args.push(t.clone().into());
            }
            if let Some(id) = &q.id {
                sql.push_str(" AND id = ?");
                args.push(id.clone().into());
            }
            if let Some(since) = q.since {
                sql.push_str(" AND last_updated >= ?");
                args.push(since.into());
            }
            if let Some(before) = q.before_seq {
                sql.push_str(" AND seq < ?");
                args.push(before.into());
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?");
            args.push(i64_of(q.limit).into());
            let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt.query_map(params_from_iter(args), row_to_resource).map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn search(&self, q: &SearchQuery) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let mut sql = format!("{SELECT_CURRENT} WHERE c.rtype = ? AND c.deleted = 0");
            let mut args = vec![q.rtype.clone()];
            push_criteria(&mut sql, &mut args, &q.criteria);
            if let Some(after) = &q.after_id {
                sql.push_str(" AND c.id > ?");
                args.push(after.clone());
            }
            sql.push_str(&format!(" ORDER BY c.id LIMIT {}", i64_of(q.limit)));
            let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(params_from_iter(args), row_to_resource)
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn ready(&self) -> Result<()> {
        self.with_reader(|c| {
            c.query_row("SELECT count(*) FROM schema_migrations", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|_| ())
            .map_err(internal)
        })
    }
}

/// A write transaction holding the single writer connection.
pub struct SqliteTx {
    /// `None` once committed.
    conn: Option<OwnedMutexGuard<Connection>>,
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_deref()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!(error = %e, "sqlite rollback failed");
        }
    }
}

impl store::Tx for SqliteTx {
    async fn current(&mut self, rtype: &str, id: &str) -> Result<Option<StoredResource>> {
        read_current(self.conn()?, rtype, id)
    }

    async fn find(
        &mut self,
        rtype: &str,
        criteria: &[Criterion],
        limit: usize,
    ) -> Result<Vec<String>> {
        let conn = self.conn()?;
        let mut sql =
            String::from("SELECT c.id FROM resource_current c WHERE c.rtype = ? AND c.deleted = 0");
        let mut args = vec![rtype.to_owned()];
        push_criteria(&mut sql, &mut args, criteria);
        sql.push_str(&format!(" ORDER BY c.id LIMIT {}", i64_of(limit)));
        let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| r.get::<_, String>(0))
            .map_err(internal)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
    }

    async fn lock_key(&mut self, _key: &str) -> Result<()> {
        // The single writer connection already serialises every transaction.
        Ok(())
    }

    async fn put(&mut self, v: &NewVersion) -> Result<i64> {
        let conn = self.conn()?;
        let conflict = || StoreError::Conflict {
            rtype: v.rtype.clone(),
            id: v.id.clone(),
        };
        let current: Option<i64> = conn
            .prepare_cached("SELECT version FROM resource_current WHERE rtype = ?1 AND id = ?2")
            .map_err(internal)?
            .query_row(params![v.rtype, v.id], |r| r.get(0))
            .optional()
            .map_err(internal)?;
        let expected = current.map_or(1, |c| c + 1);
        let version = i64::try_from(v.version).map_err(|_| conflict())?;
        if version != expected {
            return Err(conflict());
        }
        conn.prepare_cached(
            "INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(internal)?
        .execute(params![v.rtype, v.id, version, v.last_updated, v.deleted, v.patient_id, v.body])
        .map_err(internal)?;
        let seq = conn.last_insert_rowid();
        conn.prepare_cached(
            "INSERT INTO resource_current (rtype, id, version, seq, deleted, patient_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (rtype, id) DO UPDATE SET version = excluded.version, seq = excluded.seq, \
             deleted = excluded.deleted, patient_id = excluded.patient_id",
        )
        .map_err(internal)?
        .execute(params![v.rtype, v.id, version, seq, v.deleted, v.patient_id])
        .map_err(internal)?;
        if current.is_some() {
            conn.prepare_cached("DELETE FROM idx_token WHERE rtype = ?1 AND id = ?2")
                .map_err(internal)?
                .execute(params![v.rtype, v.id])
                .map_err(internal)?;
        }
        let mut insert = conn
            .prepare_cached(
                "INSERT INTO idx_token (rtype, id, param, system, code, patient_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(internal)?;
        for row in &v.index {
            match row {
                IndexRow::Token {
                    param,
                    system,
                    code,
                } => {
                    insert
                        .execute(params![v.rtype, v.id, param, system, code, v.patient_id])
                        .map_err(internal)?;
                }
            }
        }
        Ok(seq)
    }

    async fn commit(mut self) -> Result<()> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))?;
        if let Err(e) = conn.execute_batch("COMMIT") {
            // Leave nothing half-open on the shared writer connection.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(internal(e));
        }
        Ok(())
    }
}
