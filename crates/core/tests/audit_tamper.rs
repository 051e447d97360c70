//! Tamper tests: the audit log is changed directly in the database (as
//! someone with database access would: triggers dropped, rows altered,
//! deleted, inserted or moved), and `audit_log::verify` must name the first
//! bad record. Run on SQLite always and on PostgreSQL when
//! `SHAREDCARE_TEST_DATABASE_URL` is set (CI sets it); skipped, saying so,
//! otherwise.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use audit::ProblemKind;
use sharedcare_core::audit_log;
use store::Store;
use store::audit::{AuditQuery, Checkpoint, NewAudit, chain_hash, checkpoint_message};

const N: i64 = 100;

/// A stand-in signer: core holds no keys, so the test's "signature" is a
/// keyed digest only this test can make.
fn sign(m: &[u8]) -> String {
    chain_hash(
        store::audit::GENESIS,
        7,
        &format!("test-key:{}", String::from_utf8_lossy(m)),
    )
}

fn signature_ok(cp: &Checkpoint) -> bool {
    cp.signature == sign(checkpoint_message(cp.seq, &cp.hash).as_bytes())
}

fn record(i: i64) -> NewAudit {
    NewAudit {
        time: 1_000 + i,
        patients: vec![format!("p{}", i % 7)],
        record: format!(r#"{{"n":{i},"action":"read"}}"#),
    }
}

/// Direct access to the database behind a store.
enum Raw {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Raw {
    async fn exec(&self, sql: &str) -> Result<(), String> {
        match self {
            Raw::Sqlite(path) => rusqlite::Connection::open(path)
                .and_then(|c| c.execute_batch(sql))
                .map_err(|e| e.to_string()),
            Raw::Postgres { url, schema } => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("SET search_path = {schema}; {sql}"))
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn drop_guards(&self) -> &'static str {
        match self {
            Raw::Sqlite(_) => {
                "DROP TRIGGER audit_log_append_only_update; DROP TRIGGER audit_log_append_only_delete;"
            }
            Raw::Postgres { .. } => "ALTER TABLE audit_log DISABLE TRIGGER USER;",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Alter,
    Delete,
    DeleteLast,
    Insert,
    Reorder,
    RewriteTail,
}

async fn fill<S: Store>(s: &S) {
    let records: Vec<NewAudit> = (1..=N).map(record).collect();
    for chunk in records.chunks(30) {
        s.append_audit(chunk).await.unwrap();
    }
    let (report, cp) = audit_log::checkpoint(s, "test", sign, signature_ok, 5_000)
        .await
        .unwrap();
    assert!(report.problem.is_none());
    assert_eq!(cp.unwrap().seq, N);
}

async fn hash_of<S: Store>(s: &S, seq: i64) -> String {
    s.audit_rows(&AuditQuery {
        after: Some(seq - 1),
        limit: 1,
        ..Default::default()
    })
    .await
    .unwrap()[0]
        .hash
        .clone()
}

/// Tampers, verifies, returns (seq, kind) of the first problem.
async fn tamper<S: Store>(s: &S, raw: &Raw, how: Tamper) -> (i64, ProblemKind) {
    let guards = raw.drop_guards();
    let sql = match how {
        Tamper::Alter => format!(
            "{guards} UPDATE audit_log SET record = replace(record, 'read', 'none') WHERE seq = 50;"
        ),
        Tamper::Delete => format!("{guards} DELETE FROM audit_log WHERE seq = 50;"),
        Tamper::DeleteLast => format!("{guards} DELETE FROM audit_log WHERE seq = {N};"),
        Tamper::Insert => {
            // Make room at 50, then insert a forged record that links
            // properly to 49.
            let prev = hash_of(s, 49).await;
            let forged = r#"{"n":0,"action":"forged"}"#;
            let hash = chain_hash(&prev, 50, forged);
            format!(
                "{guards} UPDATE audit_log SET seq = -seq - 1 WHERE seq >= 50; \
                 UPDATE audit_log SET seq = -seq WHERE seq < 0; \
                 INSERT INTO audit_log (seq, time, record, prev_hash, hash) VALUES (50, 1050, '{forged}', '{prev}', '{hash}');"
            )
        }
        Tamper::Reorder => format!(
            "{guards} UPDATE audit_log SET seq = -1 WHERE seq = 40; \
             UPDATE audit_log SET seq = 40 WHERE seq = 41; \
             UPDATE audit_log SET seq = 41 WHERE seq = -1;"
        ),
        Tamper::RewriteTail => {
            // Replace the last record with a forged one whose chain is
            // perfect: only the signed checkpoint can tell.
            let prev = hash_of(s, N - 1).await;
            let forged = r#"{"n":0,"action":"forged"}"#;
            let hash = chain_hash(&prev, N, forged);
            format!(
                "{guards} UPDATE audit_log SET record = '{forged}', hash = '{hash}' WHERE seq = {N};"
            )
        }
    };
    raw.exec(&sql).await.unwrap();
    let report = audit_log::verify(s, signature_ok).await.unwrap();
    let p = report
        .problem
        .unwrap_or_else(|| panic!("{how:?} went unnoticed"));
    (p.seq, p.kind)
}

fn expected(how: Tamper) -> (i64, ProblemKind) {
    match how {
        Tamper::Alter => (50, ProblemKind::Altered),
        Tamper::Delete => (50, ProblemKind::Deleted),
        Tamper::DeleteLast => (N, ProblemKind::BadCheckpoint),
        Tamper::Insert => (50, ProblemKind::Inserted),
        Tamper::Reorder => (40, ProblemKind::Reordered),
        Tamper::RewriteTail => (N, ProblemKind::BadCheckpoint),
    }
}

const ALL: [Tamper; 6] = [
    Tamper::Alter,
    Tamper::Delete,
    Tamper::DeleteLast,
    Tamper::Insert,
    Tamper::Reorder,
    Tamper::RewriteTail,
];

async fn intact_and_guarded<S: Store>(s: &S, raw: &Raw) {
    let report = audit_log::verify(s, signature_ok).await.unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.records, N as u64);
    assert_eq!(report.checkpoints, 1);
    // Without dropping the guards, SQL cannot change or remove a record.
    assert!(
        raw.exec("UPDATE audit_log SET record = '{}' WHERE seq = 1;")
            .await
            .is_err()
    );
    assert!(
        raw.exec("DELETE FROM audit_log WHERE seq = 1;")
            .await
            .is_err()
    );
    // A checkpoint signed by someone else is refused.
    s.add_audit_checkpoint(&Checkpoint {
        seq: 10,
        hash: hash_of(s, 10).await,
        time: 1,
        kid: "test".into(),
        signature: "forged".into(),
    })
    .await
    .unwrap();
    let report = audit_log::verify(s, signature_ok).await.unwrap();
    assert_eq!(
        report.problem.map(|p| (p.seq, p.kind)),
        Some((10, ProblemKind::BadCheckpoint))
    );
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sc-tamper-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("t.db")
}

#[tokio::test]
async fn sqlite_tampering_is_found() {
    let open = |path: &PathBuf| {
        store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(path.clone())).unwrap()
    };
    let path = temp_db("intact");
    let s = open(&path);
    fill(&s).await;
    // The tamperer edits the audit log's own file.
    intact_and_guarded(&s, &Raw::Sqlite(store_sqlite::audit_path(&path))).await;
    for how in ALL {
        let path = temp_db(&format!("{how:?}"));
        let s = open(&path);
        fill(&s).await;
        assert_eq!(
            tamper(&s, &Raw::Sqlite(store_sqlite::audit_path(&path)), how).await,
            expected(how),
            "{how:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tampering_is_found() {
    let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: postgres audit tamper tests (SHAREDCARE_TEST_DATABASE_URL is not set)");
        return;
    };
    let run = format!("tamper_{}", std::process::id());
    let open = |schema: &str| {
        let mut config = store_postgres::PostgresConfig::new(url.clone());
        config.schema = Some(schema.to_owned());
        store_postgres::PostgresStore::connect(config)
    };
    let raw = |schema: &str| Raw::Postgres {
        url: url.clone(),
        schema: schema.to_owned(),
    };
    let mut schemas = vec![format!("{run}_intact")];
    let s = open(&schemas[0]).await.unwrap();
    fill(&s).await;
    intact_and_guarded(&s, &raw(&schemas[0])).await;
    for how in ALL {
        let schema = format!("{run}_{how:?}").to_lowercase();
        let s = open(&schema).await.unwrap();
        fill(&s).await;
        assert_eq!(
            tamper(&s, &raw(&schema), how).await,
            expected(how),
            "{how:?}"
        );
        schemas.push(schema);
    }
    for schema in schemas {
        raw("public")
            .exec(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }
}
