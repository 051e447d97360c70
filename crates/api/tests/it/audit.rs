//! Every request leaves exactly one audit record, written before the
//! response leaves (or inside the write's own transaction), on both
//! backends; and a request whose audit record cannot be written fails and
//! changes nothing.

use serde_json::Value;
use store::Store;
use store::audit::{AuditQuery, AuditRow};

use crate::harness::{self, TestApp, Who, token};

/// A backend's store beside its app, for reading the log directly.
enum Raw {
    Sqlite(store_sqlite::SqliteStore, std::path::PathBuf),
    Postgres(store_postgres::PostgresStore, String, String),
}

impl Raw {
    async fn rows(&self) -> Vec<AuditRow> {
        let q = AuditQuery {
            limit: 10_000,
            ..Default::default()
        };
        match self {
            Raw::Sqlite(s, _) => s.audit_rows(&q).await.unwrap(),
            Raw::Postgres(s, _, _) => s.audit_rows(&q).await.unwrap(),
        }
    }

    async fn records(&self) -> Vec<Value> {
        self.rows()
            .await
            .iter()
            .map(|r| serde_json::from_str(&r.record).unwrap())
            .collect()
    }

    async fn exists(&self, rtype: &str, id: &str) -> bool {
        match self {
            Raw::Sqlite(s, _) => s.read(rtype, id).await.unwrap().is_some(),
            Raw::Postgres(s, _, _) => s.read(rtype, id).await.unwrap().is_some(),
        }
    }

    /// Makes every audit append fail from now on.
    async fn break_audit(&self) {
        match self {
            Raw::Sqlite(_, path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(
                    "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log \
                     BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
                )
                .unwrap(),
            Raw::Postgres(_, url, schema) => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute(&format!(
                        "SET search_path = {schema}; \
                         CREATE FUNCTION audit_broken() RETURNS trigger LANGUAGE plpgsql AS $$ \
                         BEGIN RAISE EXCEPTION 'disk full'; END $$; \
                         CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log \
                         FOR EACH ROW EXECUTE FUNCTION audit_broken();"
                    ))
                    .await
                    .unwrap();
            }
        }
    }
}

async fn apps() -> Vec<(TestApp, Raw, Option<store_conformance::TempDir>)> {
    let mut out = Vec::new();
    let dir = store_conformance::TempDir::new("api-audit");
    let path = dir.path().join("db.sqlite");
    let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig {
        path: path.clone(),
        durable: false,
        max_idle_readers: 4,
    })
    .unwrap();
    out.push((
        TestApp::new(
            "sqlite",
            api::router(harness::service(store.clone()), harness::config()),
        ),
        Raw::Sqlite(store, path),
        Some(dir),
    ));
    if let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let schema = format!(
            "api_audit_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let mut pc = store_postgres::PostgresConfig::new(url.clone());
        pc.schema = Some(schema.clone());
        let store = store_postgres::PostgresStore::connect(pc).await.unwrap();
        out.push((
            TestApp::new(
                "postgres",
                api::router(harness::service(store.clone()), harness::config()),
            ),
            Raw::Postgres(store, url, schema),
            None,
        ));
    }
    out
}

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}"#;

#[tokio::test]
async fn one_record_per_request_in_order_with_outcome() {
    for (t, raw, _dir) in apps().await {
        // A write: its record is appended inside its own transaction.
        let r = t.put("/fhir/Patient/p1", PATIENT).await;
        assert_eq!(r.status, 201, "{}: {}", t.name, r.text);
        let recs = raw.records().await;
        assert_eq!(recs.len(), 1, "{}", t.name);
        assert_eq!(recs[0]["action"], "update", "{}", t.name);
        assert_eq!(recs[0]["status"], 200);
        assert_eq!(recs[0]["patients"], serde_json::json!(["p1"]));
        assert_eq!(recs[0]["entities"][0]["rtype"], "Patient");
        assert_eq!(recs[0]["entities"][0]["version"], 1);
        assert_eq!(recs[0]["user"]["role"], "integration");

        // A read.
        let r = t.get("/fhir/Patient/p1").await;
        assert_eq!(r.status, 200, "{}", t.name);
        // A search: names its parameters, never their values.
        let r = t.get("/fhir/Patient?identifier=9000000009").await;
        assert_eq!(r.status, 200, "{}", t.name);
        // Refused: a hospital clinician with no relationship.
        let doc = format!(
            "Bearer {}",
            token(&Who {
                sub: "dr-h",
                role: "hospital-clinician",
                org: Some("RXX01"),
                registration: Some("GMC:7654321"),
                scope: "user/*.cruds",
                ..Who::default()
            })
        );
        let r = t
            .call(
                "GET",
                "/fhir/Patient/p1",
                &[("authorization", doc.as_str())],
                None,
            )
            .await;
        assert_eq!(r.status, 403, "{}: {}", t.name, r.text);
        // No token at all.
        let r = t
            .call("GET", "/fhir/Patient/p1", &[("authorization", "")], None)
            .await;
        assert_eq!(r.status, 401, "{}", t.name);
        // A read of something that does not exist.
        let r = t.get("/fhir/Patient/nobody").await;
        assert_eq!(r.status, 404, "{}", t.name);

        let recs = raw.records().await;
        let got: Vec<(String, u64, bool)> = recs
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap().to_owned(),
                    r["status"].as_u64().unwrap(),
                    r["decision"]["permit"].as_bool().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, u64, bool)> = [
            ("update", 200, true),
            ("read", 200, true),
            ("search", 200, true),
            ("read", 403, false),
            ("read", 401, false),
            ("read", 404, true),
        ]
        .iter()
        .map(|(a, s, p)| ((*a).to_owned(), *s, *p))
        .collect();
        assert_eq!(got, want, "{}", t.name);
        assert_eq!(recs[1]["entities"][0]["id"], "p1");
        assert_eq!(recs[2]["entities"][0]["id"], "p1");
        assert!(
            !recs[2].to_string().contains("9000000009"),
            "{}: a search value reached the audit log",
            t.name
        );
        assert_eq!(recs[3]["user"]["org"], "RXX01");
        assert_eq!(recs[3]["user"]["registration"], "GMC:7654321");
        assert_eq!(recs[3]["patients"], serde_json::json!(["p1"]));
        assert_eq!(
            recs[3]["entities"],
            serde_json::json!([]),
            "nothing released"
        );
        assert_eq!(recs[3]["error_code"], "SC-1401");
        assert_eq!(recs[3]["decision"]["reasons"][0], "no-relationship");
        assert_eq!(recs[4]["user"]["subject"], "unauthenticated");
        assert_eq!(recs[5]["error_code"], "SC-1101");
        // And the chain verifies.
        let report = match &raw {
            Raw::Sqlite(s, _) => sharedcare_core::audit_log::verify(s, |_| true).await,
            Raw::Postgres(s, _, _) => sharedcare_core::audit_log::verify(s, |_| true).await,
        }
        .unwrap();
        assert!(report.problem.is_none(), "{}", t.name);
        assert_eq!(report.records, 6, "{}", t.name);
    }
}

#[tokio::test]
async fn a_request_whose_audit_cannot_be_written_fails_and_changes_nothing() {
    for (t, raw, _dir) in apps().await {
        assert_eq!(t.put("/fhir/Patient/p1", PATIENT).await.status, 201);
        raw.break_audit().await;
        // A write: 503, and the resource is not there.
        let r = t
            .put(
                "/fhir/Patient/p2",
                &PATIENT
                    .replace("\"p1\"", "\"p2\"")
                    .replace("9000000009", "9000000017"),
            )
            .await;
        assert_eq!(r.status, 503, "{}: {}", t.name, r.text);
        assert_eq!(r.outcome().1, "SC-1902");
        assert!(!raw.exists("Patient", "p2").await, "{}", t.name);
        // A read: 503, and the record does not leave.
        let r = t.get("/fhir/Patient/p1").await;
        assert_eq!(r.status, 503, "{}", t.name);
        assert!(!r.text.contains("9000000009"), "{}", t.name);
        assert_eq!(raw.rows().await.len(), 1, "{}", t.name);
    }
}
