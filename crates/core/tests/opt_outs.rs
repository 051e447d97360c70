//! Secondary-use opt-outs (National Data Opt-out, Type 1) are recorded from
//! the person's Consents and exposed to the data-collection machinery, and
//! never restrict direct care. SQLite always; PostgreSQL too when
//! `SHAREDCARE_TEST_DATABASE_URL` is set.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use sharedcare_core::{Caller, Clock, IdGenerator, Service, ServiceConfig};
use store::Store;

const NOW: i64 = 1_767_225_600_000_000; // 2026-01-01
const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/consent-category";

struct Fixed;
impl Clock for Fixed {
    fn now(&self) -> i64 {
        NOW
    }
}

struct Seq(AtomicU64);
impl IdGenerator for Seq {
    fn new_id(&self) -> String {
        format!("id{}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

fn service<S: Store>(store: S) -> Service<S> {
    Service::new(
        store,
        Arc::new(Fixed),
        Arc::new(Seq(AtomicU64::new(1))),
        ServiceConfig {
            base_url: "http://localhost/fhir".to_owned(),
        },
    )
}

fn opt_out(id: &str, patient: &str, code: &str, status: &str) -> serde_json::Value {
    json!({"resourceType": "Consent", "id": id, "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": CATEGORY, "code": code}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": "2025-03-01",
        "provision": {"type": "deny"}})
}

async fn opt_outs_are_exposed_and_never_restrict_care<S: Store>(store: S, name: &str) {
    let s = service(store);
    let system = Caller::system("loader", None);
    let put = |v: serde_json::Value| {
        let s = &s;
        let system = &system;
        async move {
            let rtype = v["resourceType"].as_str().unwrap().to_owned();
            let id = v["id"].as_str().unwrap().to_owned();
            s.update(system, &rtype, &id, v.to_string().as_bytes(), None)
                .await
                .unwrap_or_else(|e| panic!("{name}: {rtype}/{id}: {e:?}"));
        }
    };
    for p in ["a", "b", "c"] {
        put(json!({"resourceType": "Patient", "id": p,
            "generalPractitioner": [{"identifier": {"system": ODS, "value": "G1"}}]}))
        .await;
    }
    put(opt_out("ndoo-a", "a", "national-data-opt-out", "active")).await;
    put(opt_out("t1-a", "a", "type-1-opt-out", "active")).await;
    put(opt_out("ndoo-b", "b", "national-data-opt-out", "active")).await;
    // Withdrawn: b opted back in.
    put(opt_out("ndoo-b", "b", "national-data-opt-out", "inactive")).await;
    put(opt_out("t1-c", "c", "type-1-opt-out", "active")).await;

    let got = s
        .secondary_use_opt_outs(&["a".to_owned(), "b".to_owned(), "c".to_owned()])
        .await
        .unwrap();
    let got: Vec<(&str, Vec<&str>)> = got
        .iter()
        .map(|(p, c)| (p.as_str(), c.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", vec!["national-data-opt-out", "type-1-opt-out"]),
            ("c", vec!["type-1-opt-out"]),
        ],
        "{name}"
    );
    // Direct care is untouched: the practice's GP reads a's record.
    let gp = Caller::new(policy::Principal {
        subject: "dr".into(),
        name: "Dr".into(),
        role: "gp".into(),
        org: Some("G1".into()),
        registration: Some("GMC:1".into()),
        patient: None,
        related_person: None,
        scopes: policy::scopes::parse("user/*.cruds"),
    });
    s.read(&gp, "Patient", "a")
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
}

#[tokio::test]
async fn opt_outs_on_every_backend() {
    let dir = store_conformance::TempDir::new("core-opt-outs");
    let sqlite = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(
        dir.path().join("db.sqlite"),
    ))
    .unwrap();
    opt_outs_are_exposed_and_never_restrict_care(sqlite, "sqlite").await;
    match std::env::var("SHAREDCARE_TEST_DATABASE_URL") {
        Ok(url) => {
            let mut pc = store_postgres::PostgresConfig::new(url);
            pc.schema = Some(format!("core_opt_outs_{}", std::process::id()));
            let pg = store_postgres::PostgresStore::connect(pc).await.unwrap();
            opt_outs_are_exposed_and_never_restrict_care(pg, "postgres").await;
        }
        Err(_) => eprintln!("SHAREDCARE_TEST_DATABASE_URL is not set: PostgreSQL skipped"),
    }
}
