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
use store::audit::{AuditQuery, AuditRow, Checkpoint, NewAudit};
use store::relationship_cache::{RelationshipCache, Versions};
use store::search::{CompositeValue, IndexKind, SortValue};
use store::{
    Filter, HistoryQuery, IndexRow, Key, NewVersion, ReadWithFacts, RelationshipRow, Result,
    SearchQuery, SearchRow, StoreError, StoredResource,
};
use store_sql::{Builder, Dialect, SqlValue};
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
    /// Wakes the checkpointer after commits.
    checkpoints: Arc<Checkpoints>,
    /// A write's commit failed: its records may be in `audit_pending` but
    /// not in the log, and the next append must put them back first.
    audit_behind: Arc<std::sync::atomic::AtomicBool>,
    /// Reads' audit commits, under the writer lock (see
    /// [`open_audit_connection`]).
    audit_writer: Arc<Mutex<Connection>>,
    /// Relationship rows by the versions they were read at (never stale:
    /// see `store::relationship_cache`).
    relationship_cache: RelationshipCache,
}

/// Copies committed WAL frames into the database file on its own thread
/// and connection (`PRAGMA wal_checkpoint(PASSIVE)`, which never blocks
/// readers or the writer), so that commits do not pay for checkpoints.
/// Automatic checkpoints are off on every connection.
///
/// A passive checkpoint never lets the WAL file shrink while writes keep
/// coming (a bulk import, a busy ward): SQLite only starts the WAL again
/// from its beginning when a writer finds every frame copied back, and a
/// copy racing a stream of commits never finishes first. So the WAL grew
/// without bound (2 GB every few minutes of import). Invariant: when the
/// WAL holds more than [`WAL_RESTART_FRAMES`] frames, the checkpointer
/// runs a `RESTART` checkpoint instead, which holds new writers back (the
/// busy timeout) until the copy is complete, so the next commit starts the
/// WAL from the beginning, and `journal_size_limit` then cuts the file
/// back. The WAL file stays near [`WAL_LIMIT_BYTES`], at the price of a
/// short pause for writers each time (well under a second at this size).
///
/// Commits tell the checkpointer which files are due ([`Committed`],
/// through [`Checkpoints`]). The database file is checkpointed straight
/// after a commit that wrote records. The audit log file, which every read appends
/// to, only once per [`AUDIT_CHECKPOINT_EVERY`] commits: each checkpoint
/// costs two fsyncs and copies the pages the appends keep rewriting (the
/// last leaf of each index), so checkpointing it rarely copies each page
/// once for many commits. Its WAL stays small meanwhile (a few frames per
/// commit: about 20 MB at the threshold).
/// See [`spawn_checkpointer`].
#[derive(Debug, Clone, Copy)]
struct Committed {
    /// Records (and their audit) were committed: the database file is due.
    records: bool,
    /// Another [`AUDIT_CHECKPOINT_EVERY`] commits reached the audit log
    /// file: it is due.
    audit: bool,
}

/// Tells the checkpointer about commits. Every read commits an audit
/// record, so waking the checkpointer thread for each commit would cost
/// a context switch per read: commits that only appended audit records
/// are counted here, and the checkpointer hears of them once per
/// [`AUDIT_CHECKPOINT_EVERY`].
struct Checkpoints {
    /// Dropping the store drops the sender, which ends the checkpointer
    /// thread.
    sender: Mutex<std::sync::mpsc::Sender<Committed>>,
    /// Commits to the audit log file (all of them, wrapping).
    audit_commits: std::sync::atomic::AtomicU32,
}

impl Checkpoints {
    /// Notes one commit; `records`: it wrote more than audit records.
    fn committed(&self, records: bool) {
        let n = self
            .audit_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_add(1);
        // 2^32 is a multiple of the period, so wrapping keeps the count.
        let audit = n.is_multiple_of(AUDIT_CHECKPOINT_EVERY);
        if !(records || audit) {
            return;
        }
        if let Ok(s) = self.sender.lock() {
            // The checkpointer only stops when the store is dropped.
            let _ = s.send(Committed { records, audit });
        }
    }
}

/// Audit-file commits between two checkpoints of the audit log file.
const AUDIT_CHECKPOINT_EVERY: u32 = 1024;

/// The WAL size the checkpointer keeps to (see [`spawn_checkpointer`]).
const WAL_LIMIT_BYTES: i64 = 256 * 1024 * 1024;

/// Frames past which the checkpointer restarts the WAL: the limit in pages
/// of 4 KiB (each frame is a page and a 24-byte header).
const WAL_RESTART_FRAMES: i64 = WAL_LIMIT_BYTES / 4096;

/// One checkpoint of one file (`schema`: `main` or `audit`): passive, or
/// restart when its WAL has grown past `restart_frames`. Returns the
/// frames the WAL held.
fn checkpoint(conn: &Connection, schema: &str, restart_frames: i64) -> rusqlite::Result<i64> {
    let frames: i64 = conn.query_row(
        &format!("PRAGMA {schema}.wal_checkpoint(PASSIVE)"),
        [],
        |r| r.get(1),
    )?;
    if frames > restart_frames {
        // Busy (the busy timeout passed first) is not an error: the next
        // round tries again.
        conn.query_row(
            &format!("PRAGMA {schema}.wal_checkpoint(RESTART)"),
            [],
            |_| Ok(()),
        )?;
    }
    Ok(frames)
}

fn spawn_checkpointer(path: PathBuf, durable: bool) -> Result<std::sync::mpsc::Sender<Committed>> {
    let conn = open_connection(&path, durable)?;
    let (tx, rx) = std::sync::mpsc::channel::<Committed>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".to_owned())
        .spawn(move || {
            while let Ok(c) = rx.recv() {
                // Coalesce the commits that arrived meanwhile.
                let (mut records, mut audit) = (c.records, c.audit);
                while let Ok(c) = rx.try_recv() {
                    records |= c.records;
                    audit |= c.audit;
                }
                let mut due = Vec::with_capacity(2);
                if records {
                    due.push("main");
                }
                if audit {
                    due.push("audit");
                }
                for schema in due {
                    if let Err(e) = checkpoint(&conn, schema, WAL_RESTART_FRAMES) {
                        tracing::warn!(error = %e, schema, "sqlite checkpoint failed; retrying after the next commit");
                    }
                }
            }
        })
        .map_err(|e| {
            tracing::error!(error = %e, "cannot start the checkpoint thread");
            StoreError::Unavailable("cannot start the checkpoint thread".to_owned())
        })?;
    Ok(tx)
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
    StoreError::Internal(format!("sqlite: {e}"))
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
         PRAGMA busy_timeout=5000; PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=0; \
         PRAGMA journal_size_limit={WAL_LIMIT_BYTES};"
    ))
    .map_err(internal)?;
    // The query planner stability guarantee: plans never depend on bound
    // values. Without it SQLite marks a statement whose plan looked at a
    // bound value (a partial index's `WHERE`, an integer in `ORDER BY` or
    // `LIMIT` position, STAT4 estimates) to be compiled again whenever that
    // value changes, so every cached read was re-prepared on every call.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(internal)?;
    // The audit log's own file (see [`audit_path`]), with the same settings.
    let audit = audit_path(path);
    conn.execute(
        "ATTACH DATABASE ?1 AS audit",
        [audit.as_os_str().to_string_lossy()],
    )
    .map_err(|e| audit_open_error(&audit, &e))?;
    conn.execute_batch(&audit_file_pragmas("audit.", durable))
        .map_err(internal)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A connection to the audit log's file alone (see [`audit_path`]), for
/// reads' audit commits: `BEGIN IMMEDIATE` there locks that one file,
/// where on a connection with both files attached it takes and releases
/// the database file's locks too, on every commit.
fn open_audit_connection(db: &Path, durable: bool) -> Result<Connection> {
    let path = audit_path(db);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| audit_open_error(&path, &e))?;
    conn.execute_batch(&format!(
        "{} PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;",
        audit_file_pragmas("", durable)
    ))
    .map_err(internal)?;
    Ok(conn)
}

/// The audit log file's settings, the same on every connection that opens
/// it (`schema`: `audit.` where it is attached, empty where it is the
/// connection's own file).
fn audit_file_pragmas(schema: &str, durable: bool) -> String {
    let sync = if durable { "FULL" } else { "NORMAL" };
    format!(
        "PRAGMA {schema}journal_mode=WAL; PRAGMA {schema}synchronous={sync}; \
         PRAGMA {schema}journal_size_limit={WAL_LIMIT_BYTES};"
    )
}

fn audit_open_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    tracing::error!(error = %e, path = %path.display(), "cannot open the audit log file");
    StoreError::Unavailable("cannot open the audit log file".to_owned())
}

/// Every file the store keeps for the database file `db`: the database
/// and its audit log (see [`audit_path`]), each with SQLite's `-wal` and
/// `-shm` files. Whoever removes, sizes or copies a store's data goes by
/// this list.
pub fn files(db: &Path) -> Vec<PathBuf> {
    [db.to_path_buf(), audit_path(db)]
        .into_iter()
        .flat_map(|f| {
            ["", "-wal", "-shm"].map(|suffix| {
                let mut name = f.clone().into_os_string();
                name.push(suffix);
                PathBuf::from(name)
            })
        })
        .collect()
}

/// The audit log's file beside the database file `db`: `sharedcare.db`
/// keeps its log in `sharedcare.audit.db`.
///
/// Why a file of its own: SQLite drops a connection's whole page cache
/// for a file at its next transaction whenever another connection has
/// committed to that file. Every read appends an audit record; with the
/// log in the database file, each of those commits emptied the cache of
/// every reader connection, and the next reads fetched their pages again
/// through `read()` (seen in a profile; the cost grows with the pages a
/// read touches, so with the database). Commits to the log's own file
/// leave the readers' cache of the records alone.
///
/// Every connection attaches it as `audit`; table names are unique across
/// the two files, so statements name them unqualified.
pub fn audit_path(db: &Path) -> PathBuf {
    let ext = match db.extension() {
        Some(e) => format!("audit.{}", e.to_string_lossy()),
        None => "audit.db".to_owned(),
    };
    db.with_extension(ext)
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
        let audit_writer = open_audit_connection(&config.path, config.durable)?;
        let checkpoints = spawn_checkpointer(config.path.clone(), config.durable)?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                config,
                writer: Arc::new(tokio::sync::Mutex::new(writer)),
                readers: Mutex::new(Vec::new()),
                checkpoints: Arc::new(Checkpoints {
                    sender: Mutex::new(checkpoints),
                    audit_commits: Default::default(),
                }),
                audit_behind: Default::default(),
                audit_writer: Arc::new(Mutex::new(audit_writer)),
                relationship_cache: RelationshipCache::default(),
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
    {
        // The audit file's tables first, and a log still in the database
        // file copied into them, in a transaction that writes only the
        // audit file: migration 6 drops the old tables afterwards.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(internal)?;
        tx.execute_batch(migrations::AUDIT_SCHEMA)
            .map_err(internal)?;
        let old_log: i64 = tx
            .query_row(
                "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = 'audit_log'",
                [],
                |r| r.get(0),
            )
            .map_err(internal)?;
        if old_log > 0 {
            tracing::info!("copying the audit log into its own file");
            tx.execute_batch(migrations::COPY_OLD_AUDIT)
                .map_err(internal)?;
        }
        tx.commit().map_err(internal)?;
    }
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
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    restore_pending_audit(&tx)?;
    tx.commit().map_err(internal)?;
    Ok(())
}

const SELECT_CURRENT: &str = "SELECT c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq \
     FROM resource_current c JOIN resource_version v ON v.seq = c.seq";

/// [`SELECT_CURRENT`]'s columns with `c.patient_id` as an eighth, for
/// more columns to follow before `FROM resource_current c …`.
const SELECT_CURRENT_WITH_PATIENT_COLUMNS: &str =
    "SELECT c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq, c.patient_id";

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

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_sql(v: &SqlValue) -> rusqlite::types::Value {
    match v {
        SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
        SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
        SqlValue::Real(r) => rusqlite::types::Value::Real(*r),
        SqlValue::Bool(v) => rusqlite::types::Value::Integer(i64::from(*v)),
        SqlValue::Null | SqlValue::NullInt => rusqlite::types::Value::Null,
    }
}

fn args(b: &Builder) -> Vec<rusqlite::types::Value> {
    b.args.iter().map(to_sql).collect()
}

/// `SELECT ... WHERE` over current resources of one type matching `filters`.
/// The current-resource table for a search with `filters`. When a patient
/// compartment drives the query it is pinned to the compartment index:
/// without statistics SQLite preferred walking every resource of the type
/// in id order (to skip a sort), so one person's search cost grew with
/// the whole population (560 ms for one person's Observations at 500,000
/// people, 0.5 ms through the index). The index always applies: the
/// compartment filter is `patient_id = ?` and the type is fixed.
fn current_table(filters: &[Filter]) -> &'static str {
    if filters.iter().any(|f| matches!(f, Filter::Compartment(_))) {
        "resource_current c INDEXED BY resource_current_compartment"
    } else {
        "resource_current c"
    }
}

fn filtered(b: &mut Builder, select: &str, rtype: &str, filters: &[Filter]) -> String {
    let t = b.arg(SqlValue::Text(rtype.to_owned()));
    let live = b.not_deleted("c");
    let cond = store_sql::filters(b, "c", rtype, filters);
    format!("{select} WHERE c.rtype = {t} AND {live} AND {cond}")
}

fn find_ids(
    conn: &Connection,
    rtype: &str,
    filters: &[Filter],
    limit: usize,
) -> Result<Vec<String>> {
    let mut b = Builder::new(Dialect::Sqlite);
    let mut sql = filtered(
        &mut b,
        &format!("SELECT c.id FROM {}", current_table(filters)),
        rtype,
        filters,
    );
    sql.push_str(&format!(" ORDER BY c.id LIMIT {}", i64_of(limit)));
    let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
    let rows = stmt
        .query_map(params_from_iter(args(&b)), |r| r.get::<_, String>(0))
        .map_err(internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
}

/// `store::Store::relationships` on one connection: the patient's rows,
/// then (with an `org`) the sharing rules of their practices.
fn relationships(
    conn: &Connection,
    patient_id: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> Result<Vec<RelationshipRow>> {
    let mut b = Builder::new(Dialect::Sqlite);
    let sql = store_sql::relationships_query(&mut b, patient_id, org, user);
    let rows = relationship_rows(conn, &sql, &b)?;
    let rules = match org {
        Some(org) => {
            let mut b = Builder::new(Dialect::Sqlite);
            let sql = store_sql::practice_rules_query(&mut b, patient_id, org);
            relationship_rows(conn, &sql, &b)?
        }
        None => vec![],
    };
    Ok(store_sql::finish_relationships(rows, rules))
}

/// [`relationships`] through `cache`, for a reader that has just read the
/// patient's `versions` (in the statement that read what it decides on, or
/// on their own): the cached rows when they were read at those versions,
/// else the rows read now (after the versions, so never older than them)
/// and kept.
fn cached_relationships(
    conn: &Connection,
    cache: &RelationshipCache,
    patient_id: &str,
    org: Option<&str>,
    user: Option<&str>,
    versions: Versions,
) -> Result<Vec<RelationshipRow>> {
    if let Some(rows) = cache.get(patient_id, org, user, versions) {
        return Ok(rows);
    }
    let rows = relationships(conn, patient_id, org, user)?;
    cache.put(patient_id, org, user, versions, &rows);
    Ok(rows)
}

/// The patient's relationship [`Versions`], as committed now.
fn versions(conn: &Connection, patient_id: &str) -> Result<Versions> {
    let mut b = Builder::new(Dialect::Sqlite);
    let sql = store_sql::versions_query(&mut b, patient_id);
    conn.prepare_cached(&sql)
        .map_err(internal)?
        .query_row(params_from_iter(args(&b)), |r| {
            Ok(Versions {
                patient: r.get(0)?,
                rules: r.get(1)?,
            })
        })
        .map_err(internal)
}

fn relationship_rows(conn: &Connection, sql: &str, b: &Builder) -> Result<Vec<RelationshipRow>> {
    // A handful of shapes (org and user each present or not): cached.
    let mut stmt = conn.prepare_cached(sql).map_err(internal)?;
    let rows = stmt
        .query_map(params_from_iter(args(b)), |r| {
            Ok(RelationshipRow {
                org: r.get(0)?,
                kind: r.get(1)?,
                user: r.get(2)?,
                active: r.get::<_, i64>(3)? != 0,
                start: r.get(4)?,
                end: r.get(5)?,
                src_type: r.get(6)?,
                src_id: r.get(7)?,
                detail: r.get(8)?,
            })
        })
        .map_err(internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
}

/// `store::Store::read_with_relationships`: the current row, its patient
/// and that patient's relationship versions in one statement (one read
/// snapshot), then the rows through `cache`.
fn read_with_relationships(
    conn: &Connection,
    cache: &RelationshipCache,
    rtype: &str,
    id: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> Result<Option<ReadWithFacts>> {
    let mut b = Builder::new(Dialect::Sqlite);
    let t = b.arg(SqlValue::Text(rtype.to_owned()));
    let i = b.arg(SqlValue::Text(id.to_owned()));
    let versions = store_sql::versions_of_patient_expr(&mut b, "c.patient_id");
    let sql = format!(
        "{SELECT_CURRENT_WITH_PATIENT_COLUMNS}, {versions} \
         FROM resource_current c JOIN resource_version v ON v.seq = c.seq \
         WHERE c.rtype = {t} AND c.id = {i}"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
    let found = stmt
        .query_row(params_from_iter(args(&b)), |r| {
            Ok((
                row_to_resource(r)?,
                r.get::<_, Option<String>>(7)?,
                Versions {
                    patient: r.get(8)?,
                    rules: r.get(9)?,
                },
            ))
        })
        .optional()
        .map_err(internal)?;
    let Some((resource, patient_id, versions)) = found else {
        return Ok(None);
    };
    let relationships = match &patient_id {
        Some(p) => cached_relationships(conn, cache, p, org, user, versions)?,
        None => vec![],
    };
    Ok(Some(ReadWithFacts {
        resource,
        patient_id,
        relationships,
    }))
}

/// The last record of the audit log: its seq and hash (0 and the genesis
/// hash when the log is empty).
fn audit_head(conn: &Connection) -> Result<(i64, String)> {
    let head: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .map_err(internal)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(internal)?;
    Ok(head.unwrap_or_else(|| (0, store::audit::GENESIS.to_owned())))
}

/// Inserts one chained record and its patients.
fn insert_audit(
    conn: &Connection,
    seq: i64,
    time: i64,
    record: &str,
    prev: &str,
    hash: &str,
    patients: &[&str],
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, time, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .map_err(internal)?
    .execute(params![seq, time, record, prev, hash])
    .map_err(internal)?;
    for p in patients {
        conn.prepare_cached("INSERT INTO audit_patient (patient_id, seq) VALUES (?1, ?2)")
            .map_err(internal)?
            .execute(params![p, seq])
            .map_err(internal)?;
    }
    Ok(())
}

/// A record as chained, kept by a write transaction for `audit_pending`.
struct Chained {
    seq: i64,
    time: i64,
    record: String,
    prev: String,
    hash: String,
    patients: String,
}

/// Appends audit records on the writer connection (inside its open
/// transaction): each gets the next `seq` and its chain hash. A write
/// transaction passes `keep`, and gets each record as chained (see
/// [`SqliteTx::commit`]).
fn append_audit(
    conn: &Connection,
    records: &[NewAudit],
    keep: Option<&mut Vec<Chained>>,
) -> Result<Vec<i64>> {
    let head = restore_pending_audit(conn)?;
    chain_audit(conn, head, records, keep)
}

/// Appends `records` after the log's `head` (its seq and hash).
fn chain_audit(
    conn: &Connection,
    (mut seq, mut prev): (i64, String),
    records: &[NewAudit],
    mut keep: Option<&mut Vec<Chained>>,
) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(records.len());
    for rec in records {
        seq += 1;
        let hash = store::audit::chain_hash(&prev, seq, &rec.record);
        let mut patients: Vec<&str> = rec.patients.iter().map(String::as_str).collect();
        patients.sort_unstable();
        patients.dedup();
        insert_audit(conn, seq, rec.time, &rec.record, &prev, &hash, &patients)?;
        out.push(seq);
        if let Some(kept) = keep.as_deref_mut() {
            kept.push(Chained {
                seq,
                time: rec.time,
                record: rec.record.clone(),
                prev: prev.clone(),
                hash: hash.clone(),
                patients: patients.join(" "),
            });
        }
        prev = hash;
    }
    Ok(out)
}

/// Replaces `audit_pending` with the records of this write transaction.
fn keep_pending_audit(conn: &Connection, chained: &[Chained]) -> Result<()> {
    conn.prepare_cached("DELETE FROM audit_pending")
        .map_err(internal)?
        .execute([])
        .map_err(internal)?;
    for c in chained {
        conn.prepare_cached(
            "INSERT INTO audit_pending (seq, time, record, prev_hash, hash, patients) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(internal)?
        .execute(params![c.seq, c.time, c.record, c.prev, c.hash, c.patients])
        .map_err(internal)?;
    }
    Ok(())
}

/// Puts back the audit records of a write whose changes committed but
/// whose records did not.
///
/// A write transaction changes two files, the database and the audit log
/// (see [`audit_path`]). In WAL mode SQLite commits them one after the
/// other, the database file first (attached files commit in order), so a
/// crash or a failed write between the two leaves the changes without
/// their records. Each write transaction therefore keeps its records in
/// the database file too (`audit_pending`, the last write's only): since
/// commits are serialised on the one writer, and each commit of the log
/// finishes before the next transaction starts, at most that last write's
/// records can be missing from the log. They are appended again here, at
/// start-up and before every append, exactly as they were chained.
///
/// Invariant: records in `audit_pending` past the log's head must continue
/// the chain from it. Anything else (the log file replaced by an older
/// copy, or deleted) is refused: the store will not open, and no append
/// succeeds, rather than start a new chain that hides the lost records.
///
/// Returns the log's head (seq and hash) after the repair, for the append
/// that follows.
fn restore_pending_audit(conn: &Connection) -> Result<(i64, String)> {
    let (head, head_hash) = audit_head(conn)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, time, record, prev_hash, hash, patients FROM audit_pending \
             WHERE seq > ?1 ORDER BY seq",
        )
        .map_err(internal)?;
    let missing = stmt
        .query_map([head], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(internal)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(internal)?;
    let (mut seq, mut prev) = (head, head_hash);
    for (s, time, record, prev_hash, hash, patients) in &missing {
        if *s != seq + 1
            || *prev_hash != prev
            || store::audit::chain_hash(prev_hash, *s, record) != *hash
        {
            tracing::error!(
                log_head = head,
                expected = s,
                "the audit log file is behind the database file and cannot be mended"
            );
            return Err(StoreError::Unavailable(format!(
                "the audit log file ends at record {head} but the database holds writes audited up to record {}: \
                 restore the audit log file before starting",
                missing.last().map_or(*s, |m| m.0)
            )));
        }
        let patients: Vec<&str> = patients.split(' ').filter(|p| !p.is_empty()).collect();
        insert_audit(conn, *s, *time, record, prev_hash, hash, &patients)?;
        seq = *s;
        prev = hash.clone();
    }
    if !missing.is_empty() {
        tracing::warn!(
            records = missing.len(),
            "appended again the audit records of the last write, which had not reached the audit log file"
        );
    }
    Ok((seq, prev))
}

/// Runs `append` in an immediate transaction on `conn` and commits it;
/// rolls back on failure, leaving nothing half-open on the connection.
fn append_on(
    conn: &Connection,
    append: impl FnOnce(&Connection) -> Result<Vec<i64>>,
) -> Result<Vec<i64>> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
    let appended = append(conn).and_then(|seqs| {
        conn.execute_batch("COMMIT").map_err(internal)?;
        Ok(seqs)
    });
    if appended.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    appended
}

/// `store::Store::audit_rows` on one connection.
fn audit_rows(conn: &Connection, q: &AuditQuery) -> Result<Vec<AuditRow>> {
    let patients = if q.without_patients {
        "NULL"
    } else {
        "(SELECT group_concat(p.patient_id, ' ') FROM audit_patient p WHERE p.seq = a.seq)"
    };
    let mut sql = format!(
        "SELECT a.seq, a.time, a.record, a.prev_hash, a.hash, {patients} FROM audit_log a WHERE 1 = 1"
    );
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(p) = &q.patient {
        args.push(p.clone().into());
        sql.push_str(&format!(
            " AND a.seq IN (SELECT p.seq FROM audit_patient p WHERE p.patient_id = ?{})",
            args.len()
        ));
    }
    for (value, cond) in [(q.from, ">="), (q.to, "<")] {
        if let Some(t) = value {
            args.push(t.into());
            sql.push_str(&format!(" AND a.time {cond} ?{}", args.len()));
        }
    }
    if let Some(after) = q.after {
        args.push(after.into());
        sql.push_str(&format!(" AND a.seq > ?{}", args.len()));
    }
    sql.push_str(&format!(" ORDER BY a.seq LIMIT {}", i64_of(q.limit)));
    let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
    let rows = stmt
        .query_map(params_from_iter(args), |r| {
            let patients: Option<String> = r.get(5)?;
            Ok(AuditRow {
                seq: r.get(0)?,
                time: r.get(1)?,
                record: r.get(2)?,
                prev_hash: r.get(3)?,
                hash: r.get(4)?,
                patients: patients
                    .map(|p| p.split(' ').map(str::to_owned).collect())
                    .unwrap_or_default(),
            })
        })
        .map_err(internal)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
}

/// `store::Tx::put_relationships` on the writer connection, with the
/// versions of every patient whose rows it changed bumped.
fn put_relationships(
    conn: &Connection,
    src_type: &str,
    src_id: &str,
    patient_id: Option<&str>,
    rows: &[RelationshipRow],
) -> Result<()> {
    store::relationship::check_sources(src_type, src_id, rows)?;
    let mut b = Builder::new(Dialect::Sqlite);
    let sql = store_sql::relationship_delete(&mut b, src_type, src_id);
    let deleted = {
        let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
        let found = stmt
            .query_map(params_from_iter(args(&b)), |r| r.get::<_, String>(0))
            .map_err(internal)?;
        found
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(internal)?
    };
    if let Some(patient_id) = patient_id {
        for chunk in rows.chunks(store_sql::RELATIONSHIP_ROWS_PER_INSERT) {
            let mut b = Builder::new(Dialect::Sqlite);
            let sql = store_sql::relationship_insert(&mut b, patient_id, chunk);
            conn.prepare_cached(&sql)
                .map_err(internal)?
                .execute(params_from_iter(args(&b)))
                .map_err(internal)?;
        }
    }
    for key in store_sql::versions_to_bump(&deleted, patient_id, rows.len()) {
        let mut b = Builder::new(Dialect::Sqlite);
        let sql = store_sql::relationship_version_bump(&mut b, key);
        conn.prepare_cached(&sql)
            .map_err(internal)?
            .execute(params_from_iter(args(&b)))
            .map_err(internal)?;
    }
    Ok(())
}

const INDEX_TABLES: [IndexKind; 8] = [
    IndexKind::String,
    IndexKind::Token,
    IndexKind::Reference,
    IndexKind::Date,
    IndexKind::Number,
    IndexKind::Quantity,
    IndexKind::Uri,
    IndexKind::Composite,
];

/// An index row waiting to be written, with its owner.
struct PendingRow {
    rtype: String,
    id: String,
    patient: Option<String>,
    row: IndexRow,
}

fn delete_index(conn: &Connection, rtype: &str, id: &str) -> Result<()> {
    for kind in INDEX_TABLES {
        conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE rtype = ?1 AND id = ?2",
            store_sql::table(kind)
        ))
        .map_err(internal)?
        .execute(params![rtype, id])
        .map_err(internal)?;
    }
    Ok(())
}

/// The table, column list and values of one index row (after the owner
/// columns `rtype, id, patient_id`).
fn index_values(row: &IndexRow) -> (IndexKind, &'static str, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value as V;
    let t = |s: &str| V::Text(store::search::clip(s).to_owned());
    let ot = |s: &Option<String>| s.as_deref().map_or(V::Null, t);
    let r = |f: f64| V::Real(f);
    let on = |f: Option<f64>| f.map_or(V::Null, V::Real);
    let oi = |i: Option<i64>| i.map_or(V::Null, V::Integer);
    match row {
        IndexRow::String {
            param,
            normalized,
            exact,
        } => (
            IndexKind::String,
            "param, normalized, exact",
            vec![t(param), t(normalized), t(exact)],
        ),
        IndexRow::Token {
            param,
            system,
            code,
            text,
        } => (
            IndexKind::Token,
            "param, system, code, text",
            vec![t(param), ot(system), ot(code), ot(text)],
        ),
        IndexRow::Reference {
            param,
            target_type,
            target_id,
            url,
        } => (
            IndexKind::Reference,
            "param, target_type, target_id, url",
            vec![t(param), ot(target_type), ot(target_id), ot(url)],
        ),
        IndexRow::Date { param, low, high } => (
            IndexKind::Date,
            "param, low, high",
            vec![t(param), V::Integer(*low), V::Integer(*high)],
        ),
        IndexRow::Number {
            param,
            value,
            low,
            high,
        } => (
            IndexKind::Number,
            "param, value, low, high",
            vec![t(param), r(*value), r(*low), r(*high)],
        ),
        IndexRow::Quantity {
            param,
            system,
            code,
            unit,
            value,
            low,
            high,
        } => (
            IndexKind::Quantity,
            "param, system, code, unit, value, low, high",
            vec![
                t(param),
                ot(system),
                ot(code),
                ot(unit),
                r(*value),
                r(*low),
                r(*high),
            ],
        ),
        IndexRow::Uri { param, value } => {
            (IndexKind::Uri, "param, value", vec![t(param), t(value)])
        }
        IndexRow::Composite {
            param,
            system,
            code,
            second,
        } => {
            let (ss, sc, ln, hn, ld, hd, st) = composite_columns(second);
            (
                IndexKind::Composite,
                "param, system, code, s_system, s_code, s_low_n, s_high_n, s_low_d, s_high_d, s_str",
                vec![
                    t(param),
                    ot(system),
                    t(code),
                    ss.map_or(V::Null, t),
                    sc.map_or(V::Null, t),
                    on(ln),
                    on(hn),
                    oi(ld),
                    oi(hd),
                    st.map_or(V::Null, t),
                ],
            )
        }
    }
}

/// Rows per multi-row INSERT (well under SQLite's bind limit).
const ROWS_PER_INSERT: usize = 200;

/// Writes pending index rows with multi-row INSERTs, one table at a time.
fn flush_index(conn: &Connection, pending: Vec<PendingRow>) -> Result<()> {
    use rusqlite::types::Value as V;
    let mut by_kind: Vec<(IndexKind, &'static str, Vec<Vec<V>>)> = Vec::new();
    for p in pending {
        let (kind, cols, vals) = index_values(&p.row);
        let mut all = Vec::with_capacity(vals.len() + 3);
        all.push(V::Text(p.rtype));
        all.push(V::Text(p.id));
        all.push(p.patient.map_or(V::Null, V::Text));
        all.extend(vals);
        match by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, _, list)) => list.push(all),
            None => by_kind.push((kind, cols, vec![all])),
        }
    }
    for (kind, cols, list) in by_kind {
        for chunk in list.chunks(ROWS_PER_INSERT) {
            let width = chunk.first().map_or(0, Vec::len);
            let one = format!("({})", vec!["?"; width].join(", "));
            let sql = format!(
                "INSERT INTO {} (rtype, id, patient_id, {cols}) VALUES {}",
                store_sql::table(kind),
                vec![one.as_str(); chunk.len()].join(", ")
            );
            let mut stmt = conn.prepare_cached(&sql).map_err(internal)?;
            stmt.execute(params_from_iter(chunk.iter().flatten()))
                .map_err(internal)?;
        }
    }
    Ok(())
}

/// The second part of a composite row, as nullable columns.
#[allow(clippy::type_complexity)]
fn composite_columns(
    v: &CompositeValue,
) -> (
    Option<&str>,
    Option<&str>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<&str>,
) {
    match v {
        CompositeValue::Token { system, code } => {
            (system.as_deref(), Some(code), None, None, None, None, None)
        }
        CompositeValue::Quantity {
            system,
            code,
            low,
            high,
        } => (
            system.as_deref(),
            code.as_deref(),
            Some(*low),
            Some(*high),
            None,
            None,
            None,
        ),
        CompositeValue::Date { low, high } => {
            (None, None, None, None, Some(*low), Some(*high), None)
        }
        CompositeValue::String { normalized } => {
            (None, None, None, None, None, None, Some(normalized))
        }
    }
}

/// Runs a two-column (type, id) query; rows with a NULL part are skipped
/// (filtered here: an `IS NOT NULL` on an indexed column can tempt the
/// planner into scanning that index whole).
fn query_keys(conn: &Connection, sql: &str, b: &Builder) -> Result<Vec<Key>> {
    let mut stmt = conn.prepare(sql).map_err(internal)?;
    let rows = stmt
        .query_map(params_from_iter(args(b)), |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
            ))
        })
        .map_err(internal)?;
    let rows = rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(internal)?;
    Ok(rows
        .into_iter()
        .filter_map(|(t, i)| Some((t?, i?)))
        .collect())
}

/// Large key lists are processed in chunks to stay under SQLite's bind limit.
const KEY_CHUNK: usize = 400;

impl store::Store for SqliteStore {
    type Tx = SqliteTx;

    async fn begin(&self) -> Result<SqliteTx> {
        let guard = self.inner.writer.clone().lock_owned().await;
        guard.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
        let checkpoints = Arc::clone(&self.inner.checkpoints);
        let audit_behind = Arc::clone(&self.inner.audit_behind);
        Ok(SqliteTx {
            audit_behind,
            conn: Some(guard),
            pending: Vec::new(),
            wrote: false,
            chained: Vec::new(),
            queued: Default::default(),
            checkpoints,
        })
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

    async fn search(&self, q: &SearchQuery) -> Result<Vec<SearchRow>> {
        self.with_reader(|c| {
            let mut b = Builder::new(Dialect::Sqlite);
            let exprs = store_sql::sort_exprs(&mut b, "c", &q.sort);
            let mut select = String::from(
                "SELECT c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq",
            );
            for (i, (e, _)) in exprs.iter().enumerate() {
                select.push_str(&format!(", {e} AS s{i}"));
            }
            select.push_str(&format!(
                " FROM {} JOIN resource_version v ON v.seq = c.seq",
                current_table(&q.filters)
            ));
            let mut sql = filtered(&mut b, &select, &q.rtype, &q.filters);
            if let Some(cursor) = &q.after {
                let cond = store_sql::after_cursor(
                    &mut b,
                    "c",
                    &exprs,
                    &cursor.values,
                    &cursor.last_id,
                    q.backward,
                );
                sql.push_str(&format!(" AND {cond}"));
            }
            sql.push_str(&format!(
                " ORDER BY {} LIMIT {}",
                store_sql::order_by(&b, "c", &exprs, q.backward),
                i64_of(q.limit)
            ));
            let mut stmt = c.prepare(&sql).map_err(internal)?;
            let n = exprs.len();
            let rows = stmt
                .query_map(params_from_iter(args(&b)), |r| {
                    let resource = row_to_resource(r)?;
                    let mut sort_values = Vec::with_capacity(n);
                    for i in 0..n {
                        let v = match r.get_ref(7 + i)? {
                            rusqlite::types::ValueRef::Integer(x) => SortValue::Int(x),
                            rusqlite::types::ValueRef::Real(x) => SortValue::Real(x),
                            rusqlite::types::ValueRef::Text(t) => {
                                SortValue::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            _ => SortValue::Text(String::new()),
                        };
                        sort_values.push(v);
                    }
                    Ok(SearchRow {
                        resource,
                        sort_values,
                    })
                })
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn count(&self, rtype: &str, filters: &[Filter]) -> Result<u64> {
        self.with_reader(|c| {
            let mut b = Builder::new(Dialect::Sqlite);
            let sql = filtered(
                &mut b,
                &format!("SELECT count(*) FROM {}", current_table(filters)),
                rtype,
                filters,
            );
            let n: i64 = c
                .query_row(&sql, params_from_iter(args(&b)), |r| r.get(0))
                .map_err(internal)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    async fn references_from(
        &self,
        sources: &[Key],
        param: Option<&str>,
        target_type: Option<&str>,
    ) -> Result<Vec<Key>> {
        self.with_reader(|c| {
            let mut out = Vec::new();
            for chunk in sources.chunks(KEY_CHUNK) {
                let mut b = Builder::new(Dialect::Sqlite);
                let keys = store_sql::keys(&mut b, chunk, "r.rtype", "r.id");
                let mut sql = format!(
                    "SELECT DISTINCT r.target_type, r.target_id FROM idx_reference r WHERE {keys} \
"
                );
                if let Some(p) = param {
                    let a = b.arg(SqlValue::Text(p.to_owned()));
                    sql.push_str(&format!(" AND r.param = {a}"));
                }
                if let Some(t) = target_type {
                    let a = b.arg(SqlValue::Text(t.to_owned()));
                    sql.push_str(&format!(" AND r.target_type = {a}"));
                }
                out.extend(query_keys(c, &sql, &b)?);
            }
            Ok(out)
        })
    }

    async fn referrers(
        &self,
        source_type: &str,
        param: Option<&str>,
        targets: &[Key],
    ) -> Result<Vec<Key>> {
        self.with_reader(|c| {
            let mut out = Vec::new();
            for chunk in targets.chunks(KEY_CHUNK) {
                let mut b = Builder::new(Dialect::Sqlite);
                let keys = store_sql::keys(&mut b, chunk, "r.target_type", "r.target_id");
                let st = b.arg(SqlValue::Text(source_type.to_owned()));
                let mut sql = format!(
                    "SELECT DISTINCT r.rtype, r.id FROM idx_reference r JOIN resource_current c ON c.rtype = r.rtype AND c.id = r.id \
                     WHERE {keys} AND r.rtype = {st} AND c.deleted = 0"
                );
                if let Some(p) = param {
                    let a = b.arg(SqlValue::Text(p.to_owned()));
                    sql.push_str(&format!(" AND r.param = {a}"));
                }
                out.extend(query_keys(c, &sql, &b)?);
            }
            Ok(out)
        })
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let mut out = Vec::new();
            for (t, i) in keys {
                if let Some(r) = read_current(c, t, i)?
                    && !r.deleted
                {
                    out.push(r);
                }
            }
            Ok(out)
        })
    }

    async fn scan(&self, after: Option<&Key>, limit: usize) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let (t, i) = after.cloned().unwrap_or_default();
            let mut stmt = c
                .prepare_cached(&format!(
                    "{SELECT_CURRENT} WHERE c.deleted = 0 AND (c.rtype > ?1 OR (c.rtype = ?1 AND c.id > ?2)) \
                     ORDER BY c.rtype, c.id LIMIT ?3"
                ))
                .map_err(internal)?;
            let rows = stmt.query_map(params![t, i, i64_of(limit)], row_to_resource).map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn compartment(&self, q: &store::CompartmentQuery) -> Result<Vec<StoredResource>> {
        self.with_reader(|c| {
            let mut b = Builder::new(Dialect::Sqlite);
            let cond = store_sql::compartment_conditions(&mut b, q);
            let sql = format!(
                "{SELECT_CURRENT} WHERE {cond} ORDER BY c.rtype, c.id LIMIT {}",
                i64_of(q.limit)
            );
            let mut stmt = c.prepare(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(params_from_iter(args(&b)), row_to_resource)
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn relationships(
        &self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<RelationshipRow>> {
        let cache = &self.inner.relationship_cache;
        self.with_reader(|c| {
            let versions = versions(c, patient_id)?;
            cached_relationships(c, cache, patient_id, org, user, versions)
        })
    }

    async fn read_with_relationships(
        &self,
        rtype: &str,
        id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Option<ReadWithFacts>> {
        let cache = &self.inner.relationship_cache;
        self.with_reader(|c| read_with_relationships(c, cache, rtype, id, org, user))
    }

    async fn registered_patients(&self, org: &str) -> Result<Vec<String>> {
        self.with_reader(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT DISTINCT patient_id FROM relationship \
                     WHERE org = ?1 AND kind = ?2 AND active = 1 ORDER BY patient_id",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(
                    params![
                        store::search::clip(org),
                        store::relationship::GP_REGISTRATION
                    ],
                    |r| r.get::<_, String>(0),
                )
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn append_audit(&self, records: &[NewAudit]) -> Result<Vec<i64>> {
        // The commit waits for the disk (fsync when durable): do it on a
        // blocking thread, so that the async workers keep serving other
        // requests meanwhile. The writer lock is held throughout.
        let guard = self.inner.writer.clone().lock_owned().await;
        let records = records.to_vec();
        let inner = Arc::clone(&self.inner);
        let seqs = tokio::task::spawn_blocking(move || {
            // Only a write whose commit failed can have left records in
            // `audit_pending` past the log's head (see
            // [`restore_pending_audit`]; start-up puts back a crash's):
            // then the writer connection, which sees both files, puts
            // them back first. Otherwise the append is the log file's
            // alone, on its own connection, still under the writer lock
            // (`guard`), which keeps the chain's appends in order.
            let behind = inner
                .audit_behind
                .load(std::sync::atomic::Ordering::Acquire);
            if behind {
                return append_on(&guard, |c| append_audit(c, &records, None)).inspect(|_| {
                    inner
                        .audit_behind
                        .store(false, std::sync::atomic::Ordering::Release)
                });
            }
            let conn = inner
                .audit_writer
                .lock()
                .map_err(|_| StoreError::Internal("audit connection poisoned".to_owned()))?;
            append_on(&conn, |c| {
                audit_head(c).and_then(|head| chain_audit(c, head, &records, None))
            })
        })
        .await
        .map_err(|_| StoreError::Internal("the audit append task failed".to_owned()))??;
        self.inner.checkpoints.committed(false);
        Ok(seqs)
    }

    async fn audit_rows(&self, query: &AuditQuery) -> Result<Vec<AuditRow>> {
        self.with_reader(|c| audit_rows(c, query))
    }

    async fn add_audit_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        let tx = self.begin().await?;
        tx.conn()?
            .execute(
                "INSERT INTO audit_checkpoint (seq, hash, time, kid, signature) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (seq) DO NOTHING",
                params![cp.seq, cp.hash, cp.time, cp.kid, cp.signature],
            )
            .map_err(internal)?;
        store::Tx::commit(tx).await
    }

    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        self.with_reader(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, hash, time, kid, signature FROM audit_checkpoint ORDER BY seq",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Checkpoint {
                        seq: r.get(0)?,
                        hash: r.get(1)?,
                        time: r.get(2)?,
                        kid: r.get(3)?,
                        signature: r.get(4)?,
                    })
                })
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with_reader(|c| {
            c.query_row(
                "SELECT value FROM store_setting WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()
            .map_err(internal)
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
    /// Index rows not yet written: flushed in bulk before any read of the
    /// index inside this transaction, and at commit.
    pending: Vec<PendingRow>,
    /// The owners in `pending`, to skip the scan when a key is new.
    queued: std::collections::HashSet<Key>,
    checkpoints: Arc<Checkpoints>,
    /// Set when a commit fails (see [`Inner`]).
    audit_behind: Arc<std::sync::atomic::AtomicBool>,
    /// This transaction wrote more than audit records.
    wrote: bool,
    /// The audit records it appended, kept in `audit_pending` at commit
    /// when it also wrote to the database file.
    chained: Vec<Chained>,
}

impl SqliteTx {
    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_deref()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.queued.clear();
        flush_index(self.conn()?, pending)
    }

    /// Queues `rows` as the index of `rtype/id`, replacing anything queued
    /// for it earlier in this transaction.
    fn queue(&mut self, rtype: &str, id: &str, patient: Option<&str>, rows: &[IndexRow]) {
        if !self.queued.insert((rtype.to_owned(), id.to_owned())) {
            self.pending.retain(|p| !(p.rtype == rtype && p.id == id));
        }
        self.pending.extend(rows.iter().map(|row| PendingRow {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
            patient: patient.map(str::to_owned),
            row: row.clone(),
        }));
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

    async fn find(&mut self, rtype: &str, filters: &[Filter], limit: usize) -> Result<Vec<String>> {
        self.flush()?;
        find_ids(self.conn()?, rtype, filters, limit)
    }

    async fn lock_key(&mut self, _key: &str) -> Result<()> {
        // The single writer connection already serialises every transaction.
        Ok(())
    }

    async fn put(&mut self, v: &NewVersion) -> Result<i64> {
        self.wrote = true;
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
            "INSERT INTO resource_current (rtype, id, version, seq, deleted, patient_id, last_updated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (rtype, id) DO UPDATE SET version = excluded.version, seq = excluded.seq, \
             deleted = excluded.deleted, patient_id = excluded.patient_id, last_updated = excluded.last_updated",
        )
        .map_err(internal)?
        .execute(params![v.rtype, v.id, version, seq, v.deleted, v.patient_id, v.last_updated])
        .map_err(internal)?;
        if current.is_some() {
            delete_index(conn, &v.rtype, &v.id)?;
        }
        self.queue(&v.rtype, &v.id, v.patient_id.as_deref(), &v.index);
        Ok(seq)
    }

    async fn reindex(
        &mut self,
        rtype: &str,
        id: &str,
        patient_id: Option<&str>,
        rows: &[IndexRow],
    ) -> Result<()> {
        self.wrote = true;
        let conn = self.conn()?;
        conn.prepare_cached(
            "UPDATE resource_current SET patient_id = ?3 WHERE rtype = ?1 AND id = ?2",
        )
        .map_err(internal)?
        .execute(params![rtype, id, patient_id])
        .map_err(internal)?;
        delete_index(conn, rtype, id)?;
        self.queue(rtype, id, patient_id, rows);
        Ok(())
    }

    async fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.wrote = true;
        self.conn()?
            .execute(
                "INSERT INTO store_setting (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(internal)?;
        Ok(())
    }

    async fn put_relationships(
        &mut self,
        src_type: &str,
        src_id: &str,
        patient_id: Option<&str>,
        rows: &[RelationshipRow],
    ) -> Result<()> {
        self.wrote = true;
        put_relationships(self.conn()?, src_type, src_id, patient_id, rows)
    }

    async fn append_audit(&mut self, records: &[NewAudit]) -> Result<Vec<i64>> {
        let mut chained = std::mem::take(&mut self.chained);
        let seqs = append_audit(self.conn()?, records, Some(&mut chained));
        self.chained = chained;
        seqs
    }

    async fn relationships(
        &mut self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<RelationshipRow>> {
        relationships(self.conn()?, patient_id, org, user)
    }

    async fn commit(mut self) -> Result<()> {
        self.flush()?;
        if self.wrote && !self.chained.is_empty() {
            keep_pending_audit(self.conn()?, &self.chained)?;
        }
        let conn = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))?;
        if let Err(e) = conn.execute_batch("COMMIT") {
            // The database file may have committed without the log file.
            self.audit_behind
                .store(true, std::sync::atomic::Ordering::Release);
            // Leave nothing half-open on the shared writer connection.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(internal(e));
        }
        self.checkpoints.committed(self.wrote);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// How often the cached statement for `sql` was re-prepared.
    fn reprepares(conn: &Connection, sql: &str) -> i32 {
        conn.prepare_cached(sql)
            .map(|s| s.get_status(StatementStatus::RePrepare))
            .unwrap_or(-1)
    }

    /// The checkpointer's restart: once the WAL is past the threshold it
    /// is copied back whole and the next commit starts it from the
    /// beginning, instead of appending after every frame written so far.
    #[test]
    fn an_overgrown_wal_starts_again_after_the_checkpoint() {
        let dir = test_dir("wal");
        let path = dir.join("t.db");
        let mut writer = open_connection(&path, false).unwrap();
        migrate(&mut writer).unwrap();
        let checkpointer = open_connection(&path, false).unwrap();
        let write = |conn: &Connection, i: i64| {
            conn.execute(
                "INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) VALUES ('Observation', ?1, 1, 0, 0, NULL, ?2)",
                params![format!("o{i}"), "x".repeat(3000)],
            )
            .unwrap();
        };
        for i in 0..200 {
            write(&writer, i);
        }
        let frames = checkpoint(&checkpointer, "main", 50).unwrap();
        assert!(frames >= 200, "every commit added a frame: {frames}");
        write(&writer, 1000);
        let after = checkpoint(&checkpointer, "main", 50).unwrap();
        assert!(after <= 10, "the WAL started again: {after} frames");
        // Under the threshold nothing but the passive copy runs.
        assert_eq!(checkpoint(&checkpointer, "main", i64::MAX).unwrap(), after);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh directory for one test (cleared of one left by an earlier
    /// run with the same process id).
    fn test_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn new_audit(i: i64) -> NewAudit {
        NewAudit {
            time: 1_000 + i,
            patients: vec![format!("p{i}")],
            record: format!(r#"{{"n":{i}}}"#),
        }
    }

    /// One write (a setting) with its audit records in its transaction.
    async fn audited_write(s: &SqliteStore, records: &[NewAudit]) {
        use store::{Store as _, Tx as _};
        let mut tx = s.begin().await.unwrap();
        tx.set_setting("k", &records.len().to_string())
            .await
            .unwrap();
        tx.append_audit(records).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// `writes` audited writes, each followed by `reads` audit-only records.
    async fn audited_writes(s: &SqliteStore, writes: i64, reads: i64) {
        use store::Store as _;
        for i in 0..writes {
            audited_write(s, &[new_audit(i)]).await;
            s.append_audit(&(0..reads).map(new_audit).collect::<Vec<_>>())
                .await
                .unwrap();
        }
    }

    async fn all_rows(s: &SqliteStore) -> Vec<AuditRow> {
        use store::Store as _;
        let q = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        s.audit_rows(&q).await.unwrap()
    }

    fn log_seqs(path: &Path) -> Vec<i64> {
        let c = Connection::open(audit_path(path)).unwrap();
        let mut stmt = c.prepare("SELECT seq FROM audit_log ORDER BY seq").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Deletes the log file's records after `seq`, behind the store's back.
    fn truncate_log(path: &Path, seq: i64) {
        let c = Connection::open(audit_path(path)).unwrap();
        c.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS audit_log_append_only_delete; \
             DELETE FROM audit_log WHERE seq > {seq}; DELETE FROM audit_patient WHERE seq > {seq};"
        ))
        .unwrap();
    }

    /// Reads' audit commits go to the log's own file: the database file's
    /// WAL does not move, so readers keep their page cache of it.
    #[tokio::test]
    async fn reads_audit_records_leave_the_database_file_alone() {
        use store::Store as _;
        let dir = test_dir("audit-file");
        let path = dir.join("t.db");
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        let main_wal = |p: &Path| {
            let mut f = p.as_os_str().to_owned();
            f.push("-wal");
            std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)
        };
        let before = main_wal(&path);
        s.append_audit(&[new_audit(1), new_audit(2)]).await.unwrap();
        assert_eq!(main_wal(&path), before);
        assert_eq!(log_seqs(&path), [1, 2]);
        assert!(audit_path(&path).ends_with("t.audit.db"));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A crash after the database file committed a write but before the
    /// log file did: the write's records come back from `audit_pending`,
    /// chained exactly as they were.
    #[tokio::test]
    async fn a_writes_records_lost_from_the_log_file_are_put_back() {
        use store::Store as _;
        let dir = test_dir("audit-pending");
        let path = dir.join("t.db");
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        audited_writes(&s, 2, 3).await;
        audited_write(&s, &[new_audit(7), new_audit(8)]).await;
        let rows = all_rows(&s).await;
        assert_eq!(rows.len(), 10);
        drop(s);
        // The log file loses its last commit (the write's two records).
        truncate_log(&path, 8);
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        assert_eq!(all_rows(&s).await, rows, "put back as they were chained");
        // And the chain goes on from them.
        s.append_audit(&[new_audit(9)]).await.unwrap();
        assert_eq!(log_seqs(&path), (1..=11).collect::<Vec<_>>());
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A write whose commit failed after the database file's part may
    /// leave its records in `audit_pending` alone: the next append, a
    /// read's included, puts them back before chaining on.
    #[tokio::test]
    async fn after_a_failed_commit_the_next_append_puts_records_back() {
        use std::sync::atomic::Ordering;
        use store::Store as _;
        let dir = test_dir("audit-behind-live");
        let path = dir.join("t.db");
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        audited_writes(&s, 1, 2).await;
        audited_write(&s, &[new_audit(7), new_audit(8)]).await;
        let rows = all_rows(&s).await;
        // The log file loses the write's two records, as when its commit
        // fails after the database file's, and the commit says so.
        truncate_log(&path, 3);
        s.inner.audit_behind.store(true, Ordering::Release);
        s.append_audit(&[new_audit(9)]).await.unwrap();
        assert_eq!(log_seqs(&path), (1..=6).collect::<Vec<_>>());
        assert_eq!(all_rows(&s).await[..5], rows[..], "put back as chained");
        assert!(!s.inner.audit_behind.load(Ordering::Acquire));
        drop(s);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A log file that lost more than the last write's records (replaced
    /// by an old copy, or deleted) is refused rather than started again.
    #[tokio::test]
    async fn a_log_file_behind_the_database_is_refused() {
        let dir = test_dir("audit-behind");
        let path = dir.join("t.db");
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        audited_writes(&s, 3, 2).await;
        drop(s);
        let log = audit_path(&path).to_string_lossy().into_owned();
        for f in files(&path) {
            if f.to_string_lossy().starts_with(&log) {
                let _ = std::fs::remove_file(f);
            }
        }
        let err = SqliteStore::open(SqliteConfig::new(&path)).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("audit log file ends at record 0")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database from before the move keeps its log: the records are
    /// copied into the log file, once, and the old tables dropped.
    #[tokio::test]
    async fn a_log_in_the_database_file_moves_to_its_own_file() {
        use store::Store as _;
        let dir = test_dir("audit-move");
        let path = dir.join("t.db");
        {
            // The schema as migration 5 left it, without the log file.
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
            )
            .unwrap();
            for (version, sql) in migrations::MIGRATIONS.iter().take(5) {
                c.execute_batch(sql).unwrap();
                c.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'then')",
                    [version],
                )
                .unwrap();
            }
            let mut prev = store::audit::GENESIS.to_owned();
            for seq in 1..=3i64 {
                let record = format!(r#"{{"n":{seq}}}"#);
                let hash = store::audit::chain_hash(&prev, seq, &record);
                c.execute(
                    "INSERT INTO audit_log (seq, time, record, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![seq, 1000 + seq, record, prev, hash],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO audit_patient (patient_id, seq) VALUES ('p1', ?1)",
                    [seq],
                )
                .unwrap();
                prev = hash;
            }
        }
        let s = SqliteStore::open(SqliteConfig::new(&path)).unwrap();
        let rows = all_rows(&s).await;
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(rows.iter().all(|r| r.patients == ["p1"]));
        s.append_audit(&[new_audit(4)]).await.unwrap();
        drop(s);
        assert_eq!(log_seqs(&path), [1, 2, 3, 4]);
        let c = Connection::open(&path).unwrap();
        let old: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('audit_log', 'audit_patient', 'audit_checkpoint')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old, 0, "the old tables are gone");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// One person's search is driven by the compartment index and probes
    /// each candidate's own index rows, whatever the planner would guess
    /// without statistics (it walked every resource of the type).
    #[test]
    fn compartment_searches_use_the_compartment_and_owner_indexes() {
        let dir = test_dir("plan");
        let mut conn = open_connection(&dir.join("t.db"), false).unwrap();
        migrate(&mut conn).unwrap();
        let filters = [
            Filter::Compartment("p1".into()),
            Filter::Token {
                param: "code".into(),
                not: false,
                any_of: vec![store::search::TokenValue {
                    system: Some("http://loinc.org".into()),
                    code: Some("29463-7".into()),
                }],
            },
        ];
        let mut b = Builder::new(Dialect::Sqlite);
        let select = format!("SELECT c.id FROM {}", current_table(&filters));
        let sql = filtered(&mut b, &select, "Observation", &filters);
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql} ORDER BY c.id"))
            .unwrap();
        let plan = stmt
            .query_map(params_from_iter(args(&b)), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n");
        assert!(
            plan.contains("USING INDEX resource_current_compartment (patient_id=? AND rtype=?)"),
            "{plan}"
        );
        assert!(
            plan.contains("USING INDEX idx_token_owner (rtype=? AND id=?)"),
            "{plan}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The hot reads run from the statement cache: binding other values must
    /// never make SQLite compile them again (a partial index whose `WHERE`
    /// the planner checks against a bound value does exactly that).
    #[test]
    fn hot_statements_are_not_reprepared_per_binding() {
        let dir = test_dir("qpsg");
        let mut conn = open_connection(&dir.join("t.db"), false).unwrap();
        migrate(&mut conn).unwrap();
        for i in 0..20 {
            conn.execute(
                "INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) VALUES ('Observation', ?1, 1, 0, 0, ?2, '{}')",
                params![format!("o{i}"), format!("p{i}")],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO resource_current (rtype, id, version, seq, deleted, patient_id) VALUES ('Observation', ?1, 1, ?2, 0, ?3)",
                params![format!("o{i}"), i + 1, format!("p{i}")],
            )
            .unwrap();
        }
        for i in 0..20 {
            read_current(&conn, "Observation", &format!("o{i}")).unwrap();
            relationships(&conn, &format!("p{i}"), Some("A1"), Some("u")).unwrap();
        }
        let read = format!("{SELECT_CURRENT} WHERE c.rtype = ?1 AND c.id = ?2");
        assert_eq!(reprepares(&conn, &read), 0, "read_current");
        let mut b = Builder::new(Dialect::Sqlite);
        let rel = store_sql::relationships_query(&mut b, "p0", Some("A1"), Some("u"));
        assert_eq!(reprepares(&conn, &rel), 0, "relationships");
    }
}
