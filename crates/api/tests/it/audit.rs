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
            Raw::Sqlite(_, path) => rusqlite::Connection::open(store_sqlite::audit_path(path))
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
        // Refused in content negotiation (before authentication).
        let r = t
            .call(
                "GET",
                "/fhir/Patient/p1",
                &[("accept", "application/pdf")],
                None,
            )
            .await;
        assert_eq!(r.status, 406, "{}: {}", t.name, r.text);

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
            ("read", 406, true),
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
        assert_eq!(recs[6]["user"]["subject"], "unauthenticated");
        // And the chain verifies.
        let report = match &raw {
            Raw::Sqlite(s, _) => sharedcare_core::audit_log::verify(s, |_| true).await,
            Raw::Postgres(s, _, _) => sharedcare_core::audit_log::verify(s, |_| true).await,
        }
        .unwrap();
        assert!(report.problem.is_none(), "{}", t.name);
        assert_eq!(report.records, 7, "{}", t.name);
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

fn bearer(who: &Who) -> String {
    format!("Bearer {}", token(who))
}

async fn get_as(t: &TestApp, who: &str, uri: &str) -> crate::harness::Resp {
    t.call("GET", uri, &[("authorization", who)], None).await
}

/// A scripted day in a person's record: what the person's access log says
/// is exactly what the audit holds, and who may read either.
#[tokio::test]
async fn a_persons_access_log_matches_the_audit() {
    const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
    for (t, _raw, _dir) in apps().await {
        let setup = [
            (
                "/fhir/Patient/p1",
                serde_json::json!({"resourceType": "Patient", "id": "p1",
                    "generalPractitioner": [{"identifier": {"system": ODS, "value": "A81001"}}]}),
            ),
            (
                "/fhir/EpisodeOfCare/eoc1",
                serde_json::json!({"resourceType": "EpisodeOfCare", "id": "eoc1", "status": "active",
                    "patient": {"reference": "Patient/p1"},
                    "managingOrganization": {"identifier": {"system": ODS, "value": "CH001"}}}),
            ),
            (
                "/fhir/MedicationStatement/m1",
                serde_json::json!({"resourceType": "MedicationStatement", "id": "m1", "status": "active",
                    "subject": {"reference": "Patient/p1"},
                    "medicationCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "322236009"}]}}),
            ),
        ];
        for (uri, body) in &setup {
            let r = t.put(uri, &body.to_string()).await;
            assert!(r.status.is_success(), "{}: {uri}: {}", t.name, r.text);
        }
        let gp = bearer(&Who {
            sub: "dr-gp",
            role: "gp",
            org: Some("A81001"),
            registration: Some("GMC:1234567"),
            scope: "user/*.cruds",
            ..Who::default()
        });
        let care = bearer(&Who {
            sub: "cw-1",
            role: "care-worker",
            org: Some("CH001"),
            scope: "user/*.cruds",
            ..Who::default()
        });
        let hosp = bearer(&Who {
            sub: "dr-h",
            role: "hospital-clinician",
            org: Some("RXX01"),
            registration: Some("GMC:7654321"),
            scope: "user/*.cruds",
            ..Who::default()
        });
        let patient = bearer(&Who {
            sub: "p1-self",
            role: "patient",
            patient: Some("p1"),
            scope: "patient/*.rs",
            ..Who::default()
        });
        let other_patient = bearer(&Who {
            sub: "p2-self",
            role: "patient",
            patient: Some("p2"),
            scope: "patient/*.rs",
            ..Who::default()
        });
        let dc = bearer(&Who {
            sub: "dc-a",
            role: "data-controller",
            org: Some("A81001"),
            scope: "user/*.rs",
            ..Who::default()
        });
        let other_dc = bearer(&Who {
            sub: "dc-b",
            role: "data-controller",
            org: Some("A81002"),
            scope: "user/*.rs",
            ..Who::default()
        });

        // The day.
        assert_eq!(
            get_as(&t, &gp, "/fhir/MedicationStatement/m1").await.status,
            200,
            "{}",
            t.name
        );
        assert_eq!(
            get_as(&t, &care, "/fhir/Patient/p1").await.status,
            200,
            "{}",
            t.name
        );
        assert_eq!(
            get_as(&t, &hosp, "/fhir/Patient/p1").await.status,
            403,
            "{}",
            t.name
        );
        let r = t
            .call(
                "POST",
                "/fhir/Patient/p1/$break-glass",
                &[("authorization", hosp.as_str())],
                Some(r#"{"resourceType":"Parameters","parameter":[{"name":"reason","valueCode":"ETREAT"},{"name":"reasonText","valueString":"unconscious in A&E"}]}"#),
            )
            .await;
        assert!(r.status.is_success(), "{}: {}", t.name, r.text);
        assert_eq!(
            get_as(&t, &hosp, "/fhir/MedicationStatement/m1")
                .await
                .status,
            200,
            "{}",
            t.name
        );

        // The person's list, newest first.
        let r = get_as(&t, &patient, "/fhir/Patient/p1/$access-log").await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let log = r.json();
        let part = |entry: &Value, name: &str| -> Value {
            entry["part"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| {
                    p.as_object()
                        .unwrap()
                        .iter()
                        .find(|(k, _)| k.starts_with("value"))
                        .unwrap()
                        .1
                        .clone()
                })
                .unwrap_or(Value::Null)
        };
        let entries = log["parameter"].as_array().unwrap();
        let summary: Vec<(String, Value, bool, bool)> = entries
            .iter()
            .take(5)
            .map(|e| {
                (
                    part(e, "role").as_str().unwrap().to_owned(),
                    part(e, "organisation")["value"].clone(),
                    part(e, "breakGlass").as_bool().unwrap(),
                    part(e, "refused").as_bool().unwrap(),
                )
            })
            .collect();
        let org = |s: &str| Value::String(s.to_owned());
        assert_eq!(
            summary,
            [
                ("Hospital clinician".to_owned(), org("RXX01"), true, false),
                ("Hospital clinician".to_owned(), org("RXX01"), true, false),
                ("Hospital clinician".to_owned(), org("RXX01"), false, true),
                (
                    "Care worker (non-clinical)".to_owned(),
                    org("CH001"),
                    false,
                    false
                ),
                ("GP".to_owned(), org("A81001"), false, false),
            ],
            "{}: {}",
            t.name,
            r.text
        );
        assert!(
            part(&entries[0], "summary")
                .as_str()
                .unwrap()
                .contains("emergency access"),
            "{}",
            t.name
        );
        assert!(
            !r.text.contains("dr-h") && !r.text.contains("Test dr-h"),
            "no staff names"
        );

        // The data controller's audit of the same person: one AuditEvent
        // per record naming them, the same as the person's list (which now
        // also holds the list request itself).
        let r = get_as(&t, &dc, "/fhir/AuditEvent?patient=p1&_count=1000").await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let events = r.json()["entry"].as_array().cloned().unwrap_or_default();
        assert_eq!(events.len(), entries.len() + 1, "{}", t.name);
        let last = &events[events.len() - 2]["resource"];
        assert_eq!(last["resourceType"], "AuditEvent");
        assert_eq!(last["outcome"], "0");
        assert!(
            last["purposeOfEvent"].to_string().contains("BTG"),
            "{}: {last}",
            t.name
        );
        let times: Vec<&str> = events
            .iter()
            .take(entries.len())
            .map(|e| e["resource"]["recorded"].as_str().unwrap())
            .collect();
        let listed: Vec<String> = entries
            .iter()
            .rev()
            .map(|e| part(e, "when").as_str().unwrap().to_owned())
            .collect();
        assert_eq!(times, listed, "{}: same accesses, same times", t.name);
        // Filters.
        let r = get_as(&t, &dc, "/fhir/AuditEvent?patient=p1&agent=RXX01&outcome=4").await;
        assert_eq!(
            r.json()["entry"].as_array().map(Vec::len),
            Some(1),
            "{}",
            t.name
        );
        let r = get_as(&t, &dc, "/fhir/AuditEvent?patient=p1&_count=2").await;
        assert!(r.text.contains("\"next\""), "{}: paged", t.name);

        // Who may not.
        for (who, uri) in [
            (&other_dc, "/fhir/AuditEvent?patient=p1"),
            (&gp, "/fhir/AuditEvent?patient=p1"),
            (&patient, "/fhir/AuditEvent?patient=p1"),
            (&other_patient, "/fhir/Patient/p1/$access-log"),
            (&gp, "/fhir/Patient/p1/$access-log"),
        ] {
            let r = get_as(&t, who, uri).await;
            assert_eq!(r.status, 403, "{}: {uri}: {}", t.name, r.text);
        }
        assert_eq!(
            get_as(&t, &dc, "/fhir/AuditEvent?patient=p1&name=x")
                .await
                .status,
            400,
            "{}: unknown parameter",
            t.name
        );
        // Nobody writes an AuditEvent through the API.
        let r = t
            .put(
                "/fhir/AuditEvent/x",
                r#"{"resourceType":"AuditEvent","id":"x","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}"#,
            )
            .await;
        assert_eq!(r.status, 403, "{}: {}", t.name, r.text);
    }
}

/// A consent change is audited as one.
#[tokio::test]
async fn consent_changes_are_audited_as_such() {
    for (t, raw, _dir) in apps().await {
        assert_eq!(t.put("/fhir/Patient/p1", PATIENT).await.status, 201);
        let consent = serde_json::json!({
            "resourceType": "Consent", "id": "c1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p1"},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
            "provision": {"type": "deny"}
        });
        let r = t.put("/fhir/Consent/c1", &consent.to_string()).await;
        assert!(r.status.is_success(), "{}: {}", t.name, r.text);
        let recs = raw.records().await;
        let last = recs.last().unwrap();
        assert_eq!(last["action"], "consent-change", "{}", t.name);
        assert_eq!(last["patients"], serde_json::json!(["p1"]), "{}", t.name);
        assert_eq!(recs.len(), 2, "{}", t.name);
    }
}

/// Only parameter names the search understood reach the log; a path's
/// unknown operation name never does.
#[tokio::test]
async fn client_text_does_not_reach_the_log() {
    for (t, raw, _dir) in apps().await {
        assert_eq!(t.put("/fhir/Patient/p1", PATIENT).await.status, 201);
        let r = t
            .call(
                "GET",
                "/fhir/Patient?gender=female&JaneDoe1970=x",
                &[("prefer", "handling=lenient")],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let r = t.get("/fhir/Patient?JaneDoe1970=x").await;
        assert_eq!(r.status, 400, "{}", t.name);
        let r = t.get("/fhir/Patient/p1/$JaneDoe1970").await;
        assert!(r.status.is_client_error(), "{}", t.name);
        let recs = raw.records().await;
        assert_eq!(recs.len(), 4, "{}", t.name);
        assert_eq!(
            recs[1]["search"]["params"],
            serde_json::json!(["gender"]),
            "{}",
            t.name
        );
        let all = serde_json::to_string(&recs).unwrap();
        assert!(!all.contains("JaneDoe"), "{}: {all}", t.name);
    }
}

/// The data controller's alerts: a new organisation's first access raises
/// exactly one alert; so do break-glass, a burst of refusals and a consent
/// change; another practice sees none of them.
#[tokio::test]
async fn data_controller_alerts() {
    const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
    for (t, _raw, _dir) in apps().await {
        let patient = |id: &str, practice: &str| {
            serde_json::json!({"resourceType": "Patient", "id": id,
                "generalPractitioner": [{"identifier": {"system": ODS, "value": practice}}]})
        };
        let episode = |id: &str, p: &str| {
            serde_json::json!({"resourceType": "EpisodeOfCare", "id": id, "status": "active",
                "patient": {"reference": format!("Patient/{p}")},
                "managingOrganization": {"identifier": {"system": ODS, "value": "CH001"}}})
        };
        for (uri, body) in [
            ("/fhir/Patient/p1", patient("p1", "A81001")),
            ("/fhir/Patient/p2", patient("p2", "A81001")),
            ("/fhir/Patient/p3", patient("p3", "A81002")),
            ("/fhir/EpisodeOfCare/e1", episode("e1", "p1")),
            ("/fhir/EpisodeOfCare/e2", episode("e2", "p2")),
        ] {
            let r = t.put(uri, &body.to_string()).await;
            assert!(r.status.is_success(), "{}: {uri}: {}", t.name, r.text);
        }
        let who = |sub: &'static str,
                   role: &'static str,
                   org: &'static str,
                   reg: Option<&'static str>| {
            bearer(&Who {
                sub,
                role,
                org: Some(org),
                registration: reg,
                scope: "user/*.cruds",
                ..Who::default()
            })
        };
        let care = who("cw-1", "care-worker", "CH001", None);
        let gp = who("dr-gp", "gp", "A81001", Some("GMC:1234567"));
        let hosp = who("dr-h", "hospital-clinician", "RXX01", Some("GMC:7654321"));
        let dc = who("dc-a", "data-controller", "A81001", None);
        let other_dc = who("dc-b", "data-controller", "A81002", None);

        for p in ["p1", "p1", "p2"] {
            let r = get_as(&t, &care, &format!("/fhir/Patient/{p}")).await;
            assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        }
        assert_eq!(get_as(&t, &gp, "/fhir/Patient/p1").await.status, 200);
        for _ in 0..5 {
            assert_eq!(get_as(&t, &hosp, "/fhir/Patient/p1").await.status, 403);
        }
        let r = t
            .call(
                "POST",
                "/fhir/Patient/p1/$break-glass",
                &[("authorization", hosp.as_str())],
                Some(r#"{"resourceType":"Parameters","parameter":[{"name":"reason","valueCode":"ETREAT"},{"name":"reasonText","valueString":"collapsed"}]}"#),
            )
            .await;
        assert!(r.status.is_success(), "{}: {}", t.name, r.text);
        assert_eq!(get_as(&t, &hosp, "/fhir/Patient/p1").await.status, 200);
        let consent = serde_json::json!({
            "resourceType": "Consent", "id": "c1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"reference": "Patient/p2"},
            "provision": {"type": "deny"}
        });
        assert!(
            t.put("/fhir/Consent/c1", &consent.to_string())
                .await
                .status
                .is_success()
        );

        let r = get_as(&t, &dc, "/fhir/$alerts").await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let v = r.json();
        let kinds: Vec<(String, String)> = v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let c = &e["resource"];
                (
                    c["category"][0]["coding"][0]["code"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    c["payload"][0]["contentString"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        let codes: Vec<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            codes,
            [
                "consent-change",
                "break-glass",
                "new-organisation",
                "denied-burst",
                "new-organisation"
            ],
            "{}: {kinds:?}",
            t.name
        );
        assert!(kinds[2].1.starts_with("RXX01"), "{}: {kinds:?}", t.name);
        assert!(kinds[4].1.starts_with("CH001"), "{}: {kinds:?}", t.name);
        assert_eq!(
            v["entry"][4]["resource"]["subject"]["reference"],
            "Patient/p1"
        );

        let r = get_as(&t, &other_dc, "/fhir/$alerts").await;
        assert_eq!(r.status, 200, "{}", t.name);
        assert_eq!(r.json()["total"], 0, "{}: {}", t.name, r.text);
        assert_eq!(
            get_as(&t, &gp, "/fhir/$alerts").await.status,
            403,
            "{}",
            t.name
        );
        assert_eq!(
            get_as(&t, &dc, "/fhir/$alerts?x=1").await.status,
            400,
            "{}",
            t.name
        );
    }
}

/// A parent's proxy access to a child is flagged to the practice for review
/// once the child is 11 (once per child); a younger child's is not, and
/// access goes on meanwhile (the practice decides).
#[tokio::test]
async fn a_parents_access_is_flagged_for_review_when_the_child_turns_eleven() {
    const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
    for (t, _raw, _dir) in apps().await {
        for (kid, born) in [("kid-12", "2014-06-01"), ("kid-8", "2018-03-04")] {
            let patient = serde_json::json!({"resourceType": "Patient", "id": kid,
                "birthDate": born,
                "generalPractitioner": [{"identifier": {"system": ODS, "value": "A81001"}}]});
            assert!(
                t.put(&format!("/fhir/Patient/{kid}"), &patient.to_string())
                    .await
                    .status
                    .is_success()
            );
            let parent = serde_json::json!({"resourceType": "RelatedPerson", "id": format!("mum-{kid}"),
                "patient": {"reference": format!("Patient/{kid}")}});
            assert!(
                t.put(
                    &format!("/fhir/RelatedPerson/mum-{kid}"),
                    &parent.to_string()
                )
                .await
                .status
                .is_success()
            );
            let consent = serde_json::json!({"resourceType": "Consent", "id": format!("proxy-{kid}"),
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}],
                "patient": {"reference": format!("Patient/{kid}")},
                "policyRule": {"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis", "code": "parental-responsibility"}]},
                "provision": {"type": "permit", "period": {"start": "2019-01-01"},
                    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PROV"}]},
                        "reference": {"reference": format!("RelatedPerson/mum-{kid}")}}],
                    "action": [{"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-VRSAccessLevel", "code": "VACC"}]}]}});
            assert!(
                t.put(&format!("/fhir/Consent/proxy-{kid}"), &consent.to_string())
                    .await
                    .status
                    .is_success()
            );
            let mum = format!("mum-{kid}");
            let proxy = bearer(&Who {
                sub: "nhs-login-mum",
                role: "proxy",
                patient: Some(kid),
                related_person: Some(&mum),
                scope: "patient/*.rs",
                ..Who::default()
            });
            for _ in 0..2 {
                let r = get_as(&t, &proxy, &format!("/fhir/Patient/{kid}")).await;
                assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
            }
        }
        let dc = bearer(&Who {
            sub: "dc-a",
            role: "data-controller",
            org: Some("A81001"),
            scope: "user/*.rs",
            ..Who::default()
        });
        let r = get_as(&t, &dc, "/fhir/$alerts").await;
        assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
        let reviews: Vec<Value> = r.json()["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .filter(|c| c["category"][0]["coding"][0]["code"] == "proxy-review")
            .collect();
        assert_eq!(reviews.len(), 1, "{}: {}", t.name, r.text);
        assert_eq!(reviews[0]["subject"]["reference"], "Patient/kid-12");
    }
}
