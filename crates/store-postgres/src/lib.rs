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

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use store::audit::{AuditQuery, AuditRow, Checkpoint, NewAudit};
use store::relationship_cache::{RelationshipCache, Versions};
use store::search::{CompositeValue, IndexKind, SortValue};
use store::{
    Filter, HistoryQuery, IndexRow, Key, NewVersion, ReadWithFacts, RelationshipRow, Result,
    SearchQuery, SearchRow, StoreError, StoredResource,
};
use store_sql::{Builder, Dialect, SqlValue};
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
    /// Relationship rows by the versions they were read at (never stale:
    /// see `store::relationship_cache`).
    relationship_cache: Arc<RelationshipCache>,
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
        StoreError::Internal(format!("postgres: {e}"))
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
        let store = PostgresStore {
            pool,
            relationship_cache: Arc::default(),
        };
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

/// The columns [`row_to_resource`] reads, in its order.
macro_rules! current_columns {
    () => {
        "c.rtype, c.id, c.version, v.last_updated, c.deleted, v.body, c.seq"
    };
}
/// What they are selected from: the current row and its version.
macro_rules! from_current {
    () => {
        "FROM resource_current c JOIN resource_version v ON v.seq = c.seq"
    };
}
const CURRENT_COLUMNS: &str = current_columns!();
const FROM_CURRENT: &str = from_current!();
const SELECT_CURRENT: &str = concat!("SELECT ", current_columns!(), " ", from_current!());
/// [`CURRENT_COLUMNS`] with `c.patient_id` as an eighth (more may
/// follow), before [`FROM_CURRENT`].
const SELECT_CURRENT_WITH_PATIENT_COLUMNS: &str =
    concat!("SELECT ", current_columns!(), ", c.patient_id");

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

type Arg = Box<dyn ToSql + Sync + Send>;
type Args = Vec<Arg>;
/// The nullable columns of a composite row's second part.
type CompositeColumns = (
    Option<String>,
    Option<String>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn refs(args: &Args) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn push_arg(args: &mut Args, v: impl ToSql + Sync + Send + 'static) -> String {
    args.push(Box::new(v));
    format!("${}", args.len())
}

fn to_args(b: &Builder) -> Args {
    b.args
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync + Send> {
            match v {
                SqlValue::Text(s) => Box::new(s.clone()),
                SqlValue::Int(i) => Box::new(*i),
                SqlValue::Real(r) => Box::new(*r),
                SqlValue::Bool(v) => Box::new(*v),
                SqlValue::Null => Box::new(Option::<String>::None),
                SqlValue::NullInt => Box::new(Option::<i64>::None),
            }
        })
        .collect()
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Runs SQL whose text varies with the request (filters, key lists) as an
/// unnamed statement: caching it would grow the statement cache without bound.
async fn query_dynamic(client: &Object, sql: &str, args: &Args) -> Result<Vec<StoredResource>> {
    let rows = client.query(sql, &refs(args)).await.map_err(db_error)?;
    rows.iter().map(row_to_resource).collect()
}

async fn query_resources(client: &Object, sql: &str, args: &Args) -> Result<Vec<StoredResource>> {
    let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
    let rows = client.query(&stmt, &refs(args)).await.map_err(db_error)?;
    rows.iter().map(row_to_resource).collect()
}

async fn query_keys(client: &Object, sql: &str, b: &Builder) -> Result<Vec<Key>> {
    let rows = client
        .query(sql, &refs(&to_args(b)))
        .await
        .map_err(db_error)?;
    // Rows with a NULL part (an absolute or canonical reference) are skipped.
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let t: Option<String> = r.try_get(0).map_err(db_error)?;
        let i: Option<String> = r.try_get(1).map_err(db_error)?;
        if let (Some(t), Some(i)) = (t, i) {
            out.push((t, i));
        }
    }
    Ok(out)
}

/// `SELECT ... WHERE` over current resources of one type matching `filters`.
fn filtered(b: &mut Builder, select: &str, rtype: &str, filters: &[Filter]) -> String {
    let t = b.arg(SqlValue::Text(rtype.to_owned()));
    let live = b.not_deleted("c");
    let cond = store_sql::filters(b, "c", rtype, filters);
    format!("{select} WHERE c.rtype = {t} AND {live} AND {cond}")
}

/// Key lists are processed in chunks to keep statements a sensible size.
const KEY_CHUNK: usize = 400;

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

/// The columns and values of one index row, for a multi-row insert.
fn index_insert(row: &IndexRow) -> (IndexKind, &'static str, Vec<Box<dyn ToSql + Sync + Send>>) {
    fn b<T: ToSql + Sync + Send + 'static>(v: T) -> Box<dyn ToSql + Sync + Send> {
        Box::new(v)
    }
    match row {
        IndexRow::String {
            param,
            normalized,
            exact,
        } => (
            IndexKind::String,
            "param, normalized, exact",
            vec![b(param.clone()), b(normalized.clone()), b(exact.clone())],
        ),
        IndexRow::Token {
            param,
            system,
            code,
            text,
        } => (
            IndexKind::Token,
            "param, system, code, text",
            vec![
                b(param.clone()),
                b(system.clone()),
                b(code.clone()),
                b(text.clone()),
            ],
        ),
        IndexRow::Reference {
            param,
            target_type,
            target_id,
            url,
        } => (
            IndexKind::Reference,
            "param, target_type, target_id, url",
            vec![
                b(param.clone()),
                b(target_type.clone()),
                b(target_id.clone()),
                b(url.clone()),
            ],
        ),
        IndexRow::Date { param, low, high } => (
            IndexKind::Date,
            "param, low, high",
            vec![b(param.clone()), b(*low), b(*high)],
        ),
        IndexRow::Number {
            param,
            value,
            low,
            high,
        } => (
            IndexKind::Number,
            "param, value, low, high",
            vec![b(param.clone()), b(*value), b(*low), b(*high)],
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
                b(param.clone()),
                b(system.clone()),
                b(code.clone()),
                b(unit.clone()),
                b(*value),
                b(*low),
                b(*high),
            ],
        ),
        IndexRow::Uri { param, value } => (
            IndexKind::Uri,
            "param, value",
            vec![b(param.clone()), b(value.clone())],
        ),
        IndexRow::Composite {
            param,
            system,
            code,
            second,
        } => {
            let (ss, sc, ln, hn, ld, hd, st): CompositeColumns = match second {
                CompositeValue::Token { system, code } => (
                    system.clone(),
                    Some(code.clone()),
                    None,
                    None,
                    None,
                    None,
                    None,
                ),
                CompositeValue::Quantity {
                    system,
                    code,
                    low,
                    high,
                } => (
                    system.clone(),
                    code.clone(),
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
                    (None, None, None, None, None, None, Some(normalized.clone()))
                }
            };
            (
                IndexKind::Composite,
                "param, system, code, s_system, s_code, s_low_n, s_high_n, s_low_d, s_high_d, s_str",
                vec![
                    b(param.clone()),
                    b(system.clone()),
                    b(code.clone()),
                    b(ss),
                    b(sc),
                    b(ln),
                    b(hn),
                    b(ld),
                    b(hd),
                    b(st),
                ],
            )
        }
    }
}

/// An index row waiting to be written, with its owner.
struct PendingRow {
    rtype: String,
    id: String,
    patient: Option<String>,
    row: IndexRow,
}

/// Deletes every index row of `rtype/id`, in one round trip.
async fn delete_index(client: &Object, rtype: &str, id: &str) -> Result<()> {
    let ctes: Vec<String> = INDEX_TABLES
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "d{i} AS (DELETE FROM {} WHERE rtype = $1 AND id = $2)",
                store_sql::table(*k)
            )
        })
        .collect();
    let sql = format!("WITH {} SELECT 1", ctes.join(", "));
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    client
        .execute(&stmt, &[&rtype, &id])
        .await
        .map_err(db_error)?;
    Ok(())
}

/// PostgreSQL accepts at most 65,535 bind values per statement.
const MAX_BINDS: usize = 30_000;

/// Writes pending index rows: one multi-row INSERT per table (chunked),
/// however many resources the transaction wrote.
async fn flush_index(client: &Object, pending: Vec<PendingRow>) -> Result<()> {
    let mut by_kind: Vec<(IndexKind, &'static str, Vec<Args>)> = Vec::new();
    for p in pending {
        let (kind, cols, vals) = index_insert(&p.row.clipped());
        let mut all: Args = Vec::with_capacity(vals.len() + 3);
        all.push(Box::new(p.rtype));
        all.push(Box::new(p.id));
        all.push(Box::new(p.patient));
        all.extend(vals);
        match by_kind.iter_mut().find(|(k, _, _)| *k == kind) {
            Some((_, _, list)) => list.push(all),
            None => by_kind.push((kind, cols, vec![all])),
        }
    }
    for (kind, cols, list) in by_kind {
        let width = list.first().map_or(1, Vec::len).max(1);
        let per_statement = (MAX_BINDS / width).max(1);
        let mut rows = list.into_iter().peekable();
        while rows.peek().is_some() {
            let mut args: Args = Vec::new();
            let mut sql = format!(
                "INSERT INTO {} (rtype, id, patient_id, {cols}) VALUES ",
                store_sql::table(kind)
            );
            for (i, vals) in rows.by_ref().take(per_statement).enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                let mut placeholders = Vec::with_capacity(vals.len());
                for v in vals {
                    args.push(v);
                    placeholders.push(format!("${}", args.len()));
                }
                sql.push_str(&format!("({})", placeholders.join(", ")));
            }
            client
                .execute(sql.as_str(), &refs(&args))
                .await
                .map_err(db_error)?;
        }
    }
    Ok(())
}

async fn find_ids(
    client: &Object,
    rtype: &str,
    filters: &[Filter],
    limit: usize,
) -> Result<Vec<String>> {
    let mut b = Builder::new(Dialect::Postgres);
    let mut sql = filtered(
        &mut b,
        "SELECT c.id FROM resource_current c",
        rtype,
        filters,
    );
    sql.push_str(&format!(
        " ORDER BY c.id COLLATE \"C\" LIMIT {}",
        limit_of(limit)
    ));
    let rows = client
        .query(sql.as_str(), &refs(&to_args(&b)))
        .await
        .map_err(db_error)?;
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(db_error))
        .collect()
}

/// The relationship rows of `store::Store::relationships` on one
/// connection, in one statement: the patient's [`Versions`], their rows
/// and their practices' rules as two JSON arrays (see [`as_json_rows`]).
/// One snapshot, so the rows are exactly those of the versions. Four texts
/// at most (org and user each present or not): prepared once per
/// connection.
async fn relationships(
    client: &Object,
    patient_id: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> Result<(Versions, Vec<RelationshipRow>)> {
    let mut b = Builder::new(Dialect::Postgres);
    let p = b.arg(SqlValue::Text(patient_id.to_owned()));
    let versions = store_sql::versions_of_patient_expr(&mut b, &p);
    let rels = store_sql::relationships_query(&mut b, patient_id, org, user);
    let rules = org.map(|o| store_sql::practice_rules_query(&mut b, patient_id, o));
    let sql = format!(
        "SELECT {versions}, {}",
        json_columns(&rels, rules.as_deref())
    );
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let row = client
        .query_one(&stmt, &refs(&to_args(&b)))
        .await
        .map_err(db_error)?;
    let rows = store_sql::finish_relationships(json_rows(&row, 2)?, json_rows(&row, 3)?);
    Ok((versions_at(&row, 0)?, rows))
}

/// The [`Versions`] in columns `col` and `col + 1` of `row`.
fn versions_at(row: &Row, col: usize) -> Result<Versions> {
    Ok(Versions {
        patient: row.try_get(col).map_err(db_error)?,
        rules: row.try_get(col + 1).map_err(db_error)?,
    })
}

/// [`relationships`] through `cache`, for a reader that has just read the
/// patient's `versions`: the cached rows when they were read at those
/// versions, else the rows read now (with the versions they were read at,
/// which are kept with them).
async fn cached_relationships(
    client: &Object,
    cache: &RelationshipCache,
    patient_id: &str,
    org: Option<&str>,
    user: Option<&str>,
    versions: Versions,
) -> Result<Vec<RelationshipRow>> {
    if let Some(rows) = cache.get(patient_id, org, user, versions) {
        return Ok(rows);
    }
    let (now, rows) = relationships(client, patient_id, org, user).await?;
    cache.put(patient_id, org, user, now, &rows);
    Ok(rows)
}

/// `store::Store::read_with_relationships`: the current row, its stored
/// `patient_id` and that patient's relationship [`Versions`] in one
/// statement (two primary-key probes beside the read), then the rows
/// through `cache` (one more statement only when they changed).
async fn read_with_relationships(
    client: &Object,
    cache: &RelationshipCache,
    rtype: &str,
    id: &str,
    org: Option<&str>,
    user: Option<&str>,
) -> Result<Option<ReadWithFacts>> {
    let mut b = Builder::new(Dialect::Postgres);
    let t = b.arg(SqlValue::Text(rtype.to_owned()));
    let i = b.arg(SqlValue::Text(id.to_owned()));
    let versions = store_sql::versions_of_patient_expr(&mut b, "c.patient_id");
    let sql = format!(
        "{SELECT_CURRENT_WITH_PATIENT_COLUMNS}, {versions} {FROM_CURRENT} WHERE c.rtype = {t} AND c.id = {i}"
    );
    let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
    let Some(row) = client
        .query_opt(&stmt, &refs(&to_args(&b)))
        .await
        .map_err(db_error)?
    else {
        return Ok(None);
    };
    let resource = row_to_resource(&row)?;
    let patient_id: Option<String> = row.try_get(7).map_err(db_error)?;
    let relationships = match &patient_id {
        Some(p) => {
            let versions = versions_at(&row, 8)?;
            cached_relationships(client, cache, p, org, user, versions).await?
        }
        None => vec![],
    };
    Ok(Some(ReadWithFacts {
        resource,
        patient_id,
        relationships,
    }))
}

/// The two relationship columns both reads select: the patient's rows and
/// (when the caller has an organisation) their practice's rules, each as
/// [`as_json_rows`]; read back by [`json_rows`].
fn json_columns(rels: &str, rules: Option<&str>) -> String {
    let rules = rules.map_or_else(|| "NULL".to_owned(), as_json_rows);
    format!("{}, {rules}", as_json_rows(rels))
}

/// A relationship query (selecting [`store_sql::RELATIONSHIP_COLUMNS`]) as
/// a scalar subquery giving its rows as one JSON array of arrays (text;
/// `NULL` when there are none), read back by [`json_rows`].
fn as_json_rows(select: &str) -> String {
    format!(
        "(SELECT CAST(json_agg(json_build_array(x.org, x.kind, x.user_sub, x.active, x.start_at, \
         x.end_at, x.src_type, x.src_id, x.detail)) AS TEXT) FROM ({select}) x)"
    )
}

/// One relationship row as [`as_json_rows`] writes it.
type JsonRelationship = (
    String,
    String,
    Option<String>,
    bool,
    Option<i64>,
    Option<i64>,
    String,
    String,
    Option<String>,
);

/// The rows of an [`as_json_rows`] column.
fn json_rows(row: &Row, col: usize) -> Result<Vec<RelationshipRow>> {
    let Some(text) = row.try_get::<_, Option<String>>(col).map_err(db_error)? else {
        return Ok(vec![]);
    };
    // The text is the database's own JSON; a failure here is a bug, and
    // its message (which may quote row values) stays out of the error.
    let rows: Vec<JsonRelationship> = serde_json::from_str(&text).map_err(|_| {
        tracing::error!("relationship rows not in the shape written");
        StoreError::Internal("relationship rows not in the shape written".to_owned())
    })?;
    Ok(rows
        .into_iter()
        .map(
            |(org, kind, user, active, start, end, src_type, src_id, detail)| RelationshipRow {
                org,
                kind,
                user,
                active,
                start,
                end,
                src_type,
                src_id,
                detail,
            },
        )
        .collect())
}

/// Appends one audit record: advances the chain head, computes the new
/// hash in SQL (`sha256(prev bytes || int8send(seq) || record UTF-8)`,
/// exactly `store::audit::chain_hash`), inserts the record and its patient
/// rows, in one statement. Inside a transaction the head's row lock is held
/// until commit, which gives the chain one order.
const APPEND_AUDIT: &str = "WITH h AS ( \
       UPDATE audit_head SET seq = seq + 1, prev = hash, \
         hash = encode(sha256(decode(hash, 'hex') || int8send(seq + 1) || convert_to($2, 'UTF8')), 'hex') \
       WHERE id = 1 RETURNING seq, prev, hash), \
     l AS (INSERT INTO audit_log (seq, time, record, prev_hash, hash) \
       SELECT seq, $1, $2, prev, hash FROM h RETURNING seq), \
     p AS (INSERT INTO audit_patient (patient_id, seq) \
       SELECT DISTINCT x, h.seq FROM h, unnest($3::text[]) AS x) \
     SELECT seq FROM l";

/// Appends audit records: one record with [`APPEND_AUDIT`] (one
/// statement, atomic on its own), more with [`append_audit_batch`] (which
/// needs a transaction around it: its head lock lasts until commit).
async fn append_audit(client: &Object, records: &[NewAudit]) -> Result<Vec<i64>> {
    if records.len() > 1 {
        return append_audit_batch(client, records).await;
    }
    let stmt = client
        .prepare_cached(APPEND_AUDIT)
        .await
        .map_err(db_error)?;
    let mut seqs = Vec::with_capacity(records.len());
    for rec in records {
        let row = client
            .query_one(&stmt, &[&rec.time, &rec.record, &rec.patients])
            .await
            .map_err(db_error)?;
        seqs.push(row.try_get(0).map_err(db_error)?);
    }
    Ok(seqs)
}

/// Locks the chain's head row (until the transaction ends).
const AUDIT_HEAD_FOR_UPDATE: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";
/// Every record of a batch, from arrays: seq, time, record, prev, hash.
const INSERT_AUDIT_BATCH: &str = "INSERT INTO audit_log (seq, time, record, prev_hash, hash) \
     SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[])";
/// Every (patient, seq) pair of a batch, from arrays.
const INSERT_AUDIT_PATIENTS: &str = "INSERT INTO audit_patient (patient_id, seq) \
     SELECT * FROM unnest($1::text[], $2::int8[])";
const SET_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, prev = $2, hash = $3 WHERE id = 1";

/// Appends a batch of audit records inside the caller's transaction in
/// two round trips whatever its size: the head row locked and read, the
/// chain computed here (`store::audit::chain_hash`, the formula
/// [`APPEND_AUDIT`] computes in SQL), then the records, their patient rows
/// and the new head in three pipelined statements. One statement per
/// record (each updating the head row again) cost PostgreSQL several
/// times more per record.
async fn append_audit_batch(client: &Object, records: &[NewAudit]) -> Result<Vec<i64>> {
    let head = client
        .prepare_cached(AUDIT_HEAD_FOR_UPDATE)
        .await
        .map_err(db_error)?;
    let row = client.query_one(&head, &[]).await.map_err(db_error)?;
    let mut seq: i64 = row.try_get(0).map_err(db_error)?;
    let mut prev: String = row.try_get(1).map_err(db_error)?;
    let mut seqs = Vec::with_capacity(records.len());
    let mut times = Vec::with_capacity(records.len());
    let mut texts = Vec::with_capacity(records.len());
    let mut prevs = Vec::with_capacity(records.len());
    let mut hashes = Vec::with_capacity(records.len());
    let mut patient_ids: Vec<&str> = Vec::new();
    let mut patient_seqs: Vec<i64> = Vec::new();
    for rec in records {
        seq += 1;
        let hash = store::audit::chain_hash(&prev, seq, &rec.record);
        let mut patients: Vec<&str> = rec.patients.iter().map(String::as_str).collect();
        patients.sort_unstable();
        patients.dedup();
        for p in patients {
            patient_ids.push(p);
            patient_seqs.push(seq);
        }
        seqs.push(seq);
        times.push(rec.time);
        texts.push(rec.record.as_str());
        prevs.push(std::mem::replace(&mut prev, hash.clone()));
        hashes.push(hash);
    }
    let (insert, patients, set_head) = futures_util::future::try_join3(
        client.prepare_cached(INSERT_AUDIT_BATCH),
        client.prepare_cached(INSERT_AUDIT_PATIENTS),
        client.prepare_cached(SET_AUDIT_HEAD),
    )
    .await
    .map_err(db_error)?;
    let last_prev = prevs.last().cloned().unwrap_or_default();
    futures_util::future::try_join3(
        client.execute(&insert, &[&seqs, &times, &texts, &prevs, &hashes]),
        client.execute(&patients, &[&patient_ids, &patient_seqs]),
        client.execute(&set_head, &[&seq, &last_prev, &prev]),
    )
    .await
    .map_err(db_error)?;
    Ok(seqs)
}

/// Relationship rows up to this many per source are written with a cached
/// statement (a bounded set of texts); more, rare, go unnamed.
const CACHED_RELATIONSHIP_ROWS: usize = 8;

/// `store::Tx::put_relationships`: the delete and the first INSERT in one
/// statement (one round trip), returning the patients whose rows were
/// deleted; then the versions of every patient whose rows changed bumped.
/// Both parts of the first statement see its starting snapshot, so the
/// delete removes the old rows only, never the ones just inserted.
async fn put_relationships(
    client: &Object,
    src_type: &str,
    src_id: &str,
    patient_id: Option<&str>,
    rows: &[RelationshipRow],
) -> Result<()> {
    store::relationship::check_sources(src_type, src_id, rows)?;
    let mut chunks = rows.chunks(store_sql::RELATIONSHIP_ROWS_PER_INSERT);
    let mut b = Builder::new(Dialect::Postgres);
    let delete = store_sql::relationship_delete(&mut b, src_type, src_id);
    let first = patient_id.and_then(|p| Some((p, chunks.next()?)));
    let sql = match first {
        Some((patient_id, chunk)) => {
            let insert = store_sql::relationship_insert(&mut b, patient_id, chunk);
            format!("WITH d AS ({delete}), i AS ({insert}) SELECT patient_id FROM d")
        }
        None => delete,
    };
    let cached = rows.len() <= CACHED_RELATIONSHIP_ROWS;
    let deleted: Vec<String> = query(client, &sql, &to_args(&b), cached)
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(db_error))
        .collect::<Result<_>>()?;
    if let Some(patient_id) = patient_id {
        for chunk in chunks {
            let mut b = Builder::new(Dialect::Postgres);
            let sql = store_sql::relationship_insert(&mut b, patient_id, chunk);
            execute(client, &sql, &to_args(&b), false).await?;
        }
    }
    for key in store_sql::versions_to_bump(&deleted, patient_id, rows.len()) {
        let mut b = Builder::new(Dialect::Postgres);
        let sql = store_sql::relationship_version_bump(&mut b, key);
        execute(client, &sql, &to_args(&b), true).await?;
    }
    Ok(())
}

/// Executes `sql`, through the statement cache when its text is one of a
/// bounded set (`cached`), else as an unnamed statement.
async fn execute(client: &Object, sql: &str, args: &Args, cached: bool) -> Result<u64> {
    if cached {
        let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
        client.execute(&stmt, &refs(args)).await.map_err(db_error)
    } else {
        client.execute(sql, &refs(args)).await.map_err(db_error)
    }
}

/// [`execute`] for a statement that returns rows.
async fn query(client: &Object, sql: &str, args: &Args, cached: bool) -> Result<Vec<Row>> {
    if cached {
        let stmt = client.prepare_cached(sql).await.map_err(db_error)?;
        client.query(&stmt, &refs(args)).await.map_err(db_error)
    } else {
        client.query(sql, &refs(args)).await.map_err(db_error)
    }
}

fn sort_value(r: &Row, i: usize) -> Result<SortValue> {
    use tokio_postgres::types::Type;
    let ty = r
        .columns()
        .get(i)
        .map(|c| c.type_().clone())
        .ok_or_else(|| StoreError::Internal("column".to_owned()))?;
    Ok(if ty == Type::INT8 {
        SortValue::Int(r.try_get(i).map_err(db_error)?)
    } else if ty == Type::FLOAT8 || ty == Type::NUMERIC {
        SortValue::Real(r.try_get(i).map_err(db_error)?)
    } else {
        SortValue::Text(r.try_get(i).map_err(db_error)?)
    })
}

impl store::Store for PostgresStore {
    type Tx = PostgresTx;

    async fn begin(&self) -> Result<PostgresTx> {
        let client = self.pool.get().await.map_err(pool_error)?;
        // Own the connection before BEGIN is sent: if this future is dropped
        // mid-way, the transaction's Drop rolls back instead of returning a
        // connection with an open transaction to the pool.
        let tx = PostgresTx {
            client: Some(client),
            pending: Vec::new(),
            queued: Default::default(),
        };
        tx.client()?
            .batch_execute("BEGIN")
            .await
            .map_err(db_error)?;
        Ok(tx)
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

    async fn search(&self, q: &SearchQuery) -> Result<Vec<SearchRow>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut b = Builder::new(Dialect::Postgres);
        let exprs = store_sql::sort_exprs(&mut b, "c", &q.sort);
        let mut select = format!("SELECT {CURRENT_COLUMNS}");
        for (i, (e, _)) in exprs.iter().enumerate() {
            select.push_str(&format!(", {e} AS s{i}"));
        }
        select.push_str(&format!(" {FROM_CURRENT}"));
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
            limit_of(q.limit)
        ));
        let rows = client
            .query(sql.as_str(), &refs(&to_args(&b)))
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let resource = row_to_resource(r)?;
                let sort_values = (0..exprs.len())
                    .map(|i| sort_value(r, 7 + i))
                    .collect::<Result<Vec<_>>>()?;
                Ok(SearchRow {
                    resource,
                    sort_values,
                })
            })
            .collect()
    }

    async fn count(&self, rtype: &str, filters: &[Filter]) -> Result<u64> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut b = Builder::new(Dialect::Postgres);
        let sql = filtered(
            &mut b,
            "SELECT count(*) FROM resource_current c",
            rtype,
            filters,
        );
        let row = client
            .query_one(sql.as_str(), &refs(&to_args(&b)))
            .await
            .map_err(db_error)?;
        let n: i64 = row.try_get(0).map_err(db_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn references_from(
        &self,
        sources: &[Key],
        param: Option<&str>,
        target_type: Option<&str>,
    ) -> Result<Vec<Key>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut out = Vec::new();
        for chunk in sources.chunks(KEY_CHUNK) {
            let mut b = Builder::new(Dialect::Postgres);
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
            out.extend(query_keys(&client, &sql, &b).await?);
        }
        Ok(out)
    }

    async fn referrers(
        &self,
        source_type: &str,
        param: Option<&str>,
        targets: &[Key],
    ) -> Result<Vec<Key>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut out = Vec::new();
        for chunk in targets.chunks(KEY_CHUNK) {
            let mut b = Builder::new(Dialect::Postgres);
            let keys = store_sql::keys(&mut b, chunk, "r.target_type", "r.target_id");
            let st = b.arg(SqlValue::Text(source_type.to_owned()));
            let mut sql = format!(
                "SELECT DISTINCT r.rtype, r.id FROM idx_reference r JOIN resource_current c ON c.rtype = r.rtype AND c.id = r.id \
                 WHERE {keys} AND r.rtype = {st} AND NOT c.deleted"
            );
            if let Some(p) = param {
                let a = b.arg(SqlValue::Text(p.to_owned()));
                sql.push_str(&format!(" AND r.param = {a}"));
            }
            out.extend(query_keys(&client, &sql, &b).await?);
        }
        Ok(out)
    }

    async fn read_many(&self, keys: &[Key]) -> Result<Vec<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut out = Vec::new();
        for chunk in keys.chunks(KEY_CHUNK) {
            let mut b = Builder::new(Dialect::Postgres);
            let cond = store_sql::keys(&mut b, chunk, "c.rtype", "c.id");
            let sql = format!("{SELECT_CURRENT} WHERE {cond} AND NOT c.deleted");
            out.extend(query_dynamic(&client, &sql, &to_args(&b)).await?);
        }
        Ok(out)
    }

    async fn scan(&self, after: Option<&Key>, limit: usize) -> Result<Vec<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let (t, i) = after.cloned().unwrap_or_default();
        let args: Args = vec![Box::new(t), Box::new(i), Box::new(limit_of(limit))];
        let sql = format!(
            "{SELECT_CURRENT} WHERE NOT c.deleted AND (c.rtype COLLATE \"C\" > $1 OR (c.rtype = $1 AND c.id COLLATE \"C\" > $2)) \
             ORDER BY c.rtype COLLATE \"C\", c.id COLLATE \"C\" LIMIT $3"
        );
        query_resources(&client, &sql, &args).await
    }

    async fn compartment(&self, q: &store::CompartmentQuery) -> Result<Vec<StoredResource>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut b = Builder::new(Dialect::Postgres);
        let cond = store_sql::compartment_conditions(&mut b, q);
        let sql = format!(
            "{SELECT_CURRENT} WHERE {cond} ORDER BY c.rtype COLLATE \"C\", c.id COLLATE \"C\" LIMIT {}",
            limit_of(q.limit)
        );
        query_dynamic(&client, &sql, &to_args(&b)).await
    }

    async fn relationships(
        &self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<RelationshipRow>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let mut b = Builder::new(Dialect::Postgres);
        let sql = store_sql::versions_query(&mut b, patient_id);
        let stmt = client.prepare_cached(&sql).await.map_err(db_error)?;
        let row = client
            .query_one(&stmt, &refs(&to_args(&b)))
            .await
            .map_err(db_error)?;
        let versions = versions_at(&row, 0)?;
        let cache = &self.relationship_cache;
        cached_relationships(&client, cache, patient_id, org, user, versions).await
    }

    async fn read_with_relationships(
        &self,
        rtype: &str,
        id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Option<ReadWithFacts>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let cache = &self.relationship_cache;
        read_with_relationships(&client, cache, rtype, id, org, user).await
    }

    async fn registered_patients(&self, org: &str) -> Result<Vec<String>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT DISTINCT patient_id FROM relationship \
                 WHERE org = $1 AND kind = $2 AND active ORDER BY patient_id",
                &[
                    &store::search::clip(org),
                    &store::relationship::GP_REGISTRATION,
                ],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| r.try_get(0).map_err(db_error))
            .collect()
    }

    async fn append_audit(&self, records: &[NewAudit]) -> Result<Vec<i64>> {
        if records.len() == 1 {
            // One statement: atomic on its own, one round trip.
            let client = self.pool.get().await.map_err(pool_error)?;
            return append_audit(&client, records).await;
        }
        let mut tx = self.begin().await?;
        let seqs = store::Tx::append_audit(&mut tx, records).await?;
        store::Tx::commit(tx).await?;
        Ok(seqs)
    }

    async fn audit_rows(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let patients = if q.without_patients {
            "ARRAY[]::text[]"
        } else {
            "array(SELECT p.patient_id FROM audit_patient p WHERE p.seq = a.seq ORDER BY p.patient_id)"
        };
        let mut sql = format!(
            "SELECT a.seq, a.time, a.record, a.prev_hash, a.hash, {patients} FROM audit_log a WHERE TRUE"
        );
        let mut args: Args = Vec::new();
        if let Some(p) = &q.patient {
            args.push(Box::new(p.clone()));
            sql.push_str(&format!(
                " AND a.seq IN (SELECT p.seq FROM audit_patient p WHERE p.patient_id = ${})",
                args.len()
            ));
        }
        for (value, cond) in [(q.from, ">="), (q.to, "<")] {
            if let Some(t) = value {
                args.push(Box::new(t));
                sql.push_str(&format!(" AND a.time {cond} ${}", args.len()));
            }
        }
        if let Some(after) = q.after {
            args.push(Box::new(after));
            sql.push_str(&format!(" AND a.seq > ${}", args.len()));
        }
        sql.push_str(&format!(
            " ORDER BY a.seq LIMIT {}",
            i64::try_from(q.limit).unwrap_or(i64::MAX)
        ));
        let rows = client.query(&sql, &refs(&args)).await.map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    seq: r.try_get(0).map_err(db_error)?,
                    time: r.try_get(1).map_err(db_error)?,
                    record: r.try_get(2).map_err(db_error)?,
                    prev_hash: r.try_get(3).map_err(db_error)?,
                    hash: r.try_get(4).map_err(db_error)?,
                    patients: r.try_get(5).map_err(db_error)?,
                })
            })
            .collect()
    }

    async fn add_audit_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client
            .execute(
                "INSERT INTO audit_checkpoint (seq, hash, time, kid, signature) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (seq) DO NOTHING",
                &[&cp.seq, &cp.hash, &cp.time, &cp.kid, &cp.signature],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                "SELECT seq, hash, time, kid, signature FROM audit_checkpoint ORDER BY seq",
                &[],
            )
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    seq: r.try_get(0).map_err(db_error)?,
                    hash: r.try_get(1).map_err(db_error)?,
                    time: r.try_get(2).map_err(db_error)?,
                    kid: r.try_get(3).map_err(db_error)?,
                    signature: r.try_get(4).map_err(db_error)?,
                })
            })
            .collect()
    }

    async fn setting(&self, key: &str) -> Result<Option<String>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt("SELECT value FROM store_setting WHERE key = $1", &[&key])
            .await
            .map_err(db_error)?;
        row.map(|r| r.try_get(0).map_err(db_error)).transpose()
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
    /// Index rows not yet written: flushed in bulk before any read of the
    /// index inside this transaction, and at commit.
    pending: Vec<PendingRow>,
    /// The owners in `pending`, to skip the scan when a key is new.
    queued: std::collections::HashSet<Key>,
}

impl PostgresTx {
    fn client(&self) -> Result<&Object> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Internal("transaction already ended".to_owned()))
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.queued.clear();
        flush_index(self.client()?, pending).await
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

    async fn find(&mut self, rtype: &str, filters: &[Filter], limit: usize) -> Result<Vec<String>> {
        self.flush().await?;
        find_ids(self.client()?, rtype, filters, limit).await
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
             INSERT INTO resource_current (rtype, id, version, seq, deleted, patient_id, last_updated) \
             SELECT $1, $2, $3, v.seq, $5, $6, $4 FROM v RETURNING seq"
        } else {
            "WITH v AS (INSERT INTO resource_version (rtype, id, version, last_updated, deleted, patient_id, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq) \
             UPDATE resource_current c SET version = $3, seq = v.seq, deleted = $5, patient_id = $6, last_updated = $4 \
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
            delete_index(client, &v.rtype, &v.id).await?;
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
        let client = self.client()?;
        client
            .execute(
                "UPDATE resource_current SET patient_id = $3 WHERE rtype = $1 AND id = $2",
                &[&rtype, &id, &patient_id],
            )
            .await
            .map_err(db_error)?;
        delete_index(client, rtype, id).await?;
        self.queue(rtype, id, patient_id, rows);
        Ok(())
    }

    async fn set_setting(&mut self, key: &str, value: &str) -> Result<()> {
        self.client()?
            .execute(
                "INSERT INTO store_setting (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn put_relationships(
        &mut self,
        src_type: &str,
        src_id: &str,
        patient_id: Option<&str>,
        rows: &[RelationshipRow],
    ) -> Result<()> {
        put_relationships(self.client()?, src_type, src_id, patient_id, rows).await
    }

    async fn append_audit(&mut self, records: &[NewAudit]) -> Result<Vec<i64>> {
        append_audit(self.client()?, records).await
    }

    async fn relationships(
        &mut self,
        patient_id: &str,
        org: Option<&str>,
        user: Option<&str>,
    ) -> Result<Vec<RelationshipRow>> {
        // Inside a transaction: its own writes count, so no cache.
        let (_, rows) = relationships(self.client()?, patient_id, org, user).await?;
        Ok(rows)
    }

    async fn commit(mut self) -> Result<()> {
        self.flush().await?;
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
