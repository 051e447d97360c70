//! The storage conformance suite, run against SQLite (always).

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let dir = store_conformance::TempDir::new("sqlite-conformance");
    let n = std::sync::atomic::AtomicUsize::new(0);
    store_conformance::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.path().join(format!("db{i}.sqlite"));
        async move { store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(path)).unwrap() }
    })
    .await;
}

/// The relationship lookup (on every read request) and the population
/// search are index searches, before and after `ANALYZE` has given the
/// planner statistics.
#[tokio::test]
async fn relationship_queries_use_their_indexes() {
    use store::{RelationshipRow, Store, Tx};
    let dir = store_conformance::TempDir::new("sqlite-relationship-plan");
    let path = dir.path().join("db.sqlite");
    let s = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig::new(&path)).unwrap();
    let mut tx = s.begin().await.unwrap();
    for i in 0..2_000 {
        let row = |org: String, kind: &str| RelationshipRow {
            org,
            kind: kind.into(),
            user: None,
            active: true,
            start: None,
            end: None,
            src_type: "EpisodeOfCare".into(),
            src_id: format!("x{i}"),
            detail: None,
        };
        let rows = [
            row(format!("O{}", i % 200), "episode-of-care"),
            row(format!("G{}", i % 50), store::relationship::GP_REGISTRATION),
        ];
        tx.put_relationships(
            "EpisodeOfCare",
            &format!("x{i}"),
            Some(&format!("p{i}")),
            &rows,
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan = |sql: &str, b: &store_sql::Builder| -> String {
        let args: Vec<rusqlite::types::Value> = b
            .args
            .iter()
            .map(|v| match v {
                store_sql::SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
                store_sql::SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
                other => panic!("unexpected bind {other:?}"),
            })
            .collect();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("\n")
    };
    // The per-read statements build no temporary b-tree (an `IN` list, a
    // sort with a limit, a subquery's result each cost one per execution).
    let temporary = |sql: &str, b: &store_sql::Builder| -> Vec<String> {
        let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let args = b.args.iter().map(|v| match v {
            store_sql::SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
            store_sql::SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
            other => panic!("unexpected bind {other:?}"),
        });
        let ops = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(1))
            .unwrap();
        ops.map(Result::unwrap)
            .filter(|op| op == "OpenEphemeral" || op == "SorterOpen" || op == "OpenAutoindex")
            .collect()
    };
    for analyzed in [false, true] {
        if analyzed {
            conn.execute_batch("ANALYZE").unwrap();
        }
        let mut b = store_sql::Builder::new(store_sql::Dialect::Sqlite);
        let sql = store_sql::relationships_query(&mut b, "p7", Some("O7"), Some("u1"));
        assert_eq!(temporary(&sql, &b), Vec::<String>::new(), "{sql}");
        let mut rb = store_sql::Builder::new(store_sql::Dialect::Sqlite);
        let rules = store_sql::practice_rules_query(&mut rb, "p7", "O7");
        assert_eq!(temporary(&rules, &rb), Vec::<String>::new(), "{rules}");
        let p = plan(&sql, &b);
        assert!(
            p.contains("USING INDEX relationship_patient_org (patient_id=?)"),
            "analyzed: {analyzed}\n{p}"
        );
        // The practice's sharing rules: by index, for the patient's GP
        // registrations and then under each practice's pseudo patient.
        let mut b = store_sql::Builder::new(store_sql::Dialect::Sqlite);
        let sql = store_sql::practice_rules_query(&mut b, "p7", "O7");
        let p = plan(&sql, &b);
        assert!(
            !p.contains("SCAN r") && !p.contains("SCAN g"),
            "analyzed: {analyzed}\n{p}"
        );
        assert!(
            p.contains("relationship_patient_org"),
            "analyzed: {analyzed}\n{p}"
        );
        let mut b = store_sql::Builder::new(store_sql::Dialect::Sqlite);
        let cond = store_sql::filters(
            &mut b,
            "c",
            "Patient",
            &[store::Filter::Related {
                org: "O7".into(),
                user: Some("u1".into()),
                now: 1,
                recent_since: 0,
                org_type: None,
                local: false,
            }],
        );
        let sql = format!(
            "SELECT c.id FROM resource_current c WHERE c.rtype = 'Patient' AND c.deleted = 0 AND {cond}"
        );
        let p = plan(&sql, &b);
        assert!(
            p.contains("USING INDEX relationship_org_patient (org=?)"),
            "analyzed: {analyzed}\n{p}"
        );
        // Dissent and practice rules are probed by index, never scanned.
        assert!(
            !p.contains("SCAN d")
                && !p.contains("SCAN s")
                && !p.contains("SCAN g")
                && !p.contains("SCAN x"),
            "analyzed: {analyzed}\n{p}"
        );
        // Beside an NHS number the number drives and the relationship is
        // probed for that one candidate, not walked for the whole list.
        let mut b = store_sql::Builder::new(store_sql::Dialect::Sqlite);
        let cond = store_sql::filters(
            &mut b,
            "c",
            "Patient",
            &[
                store::Filter::Related {
                    org: "O7".into(),
                    user: Some("u1".into()),
                    now: 1,
                    recent_since: 0,
                    org_type: None,
                    local: false,
                },
                store::Filter::Token {
                    param: "identifier".into(),
                    not: false,
                    any_of: vec![store::search::TokenValue {
                        system: Some("https://fhir.nhs.uk/Id/nhs-number".into()),
                        code: Some("9990000018".into()),
                    }],
                },
            ],
        );
        let sql = format!(
            "SELECT c.id FROM resource_current c WHERE c.rtype = 'Patient' AND c.deleted = 0 AND {cond}"
        );
        let p = plan(&sql, &b);
        assert!(
            (p.contains(
                "SEARCH r1 EXISTS USING INDEX relationship_patient_org (patient_id=? AND org=?)"
            ) || p.contains(
                "SEARCH r1 EXISTS USING INDEX relationship_org_patient (org=? AND patient_id=?)"
            )) && !p.contains("relationship_org_patient (org=?)"),
            "analyzed: {analyzed}\n{p}"
        );
        assert!(p.contains("idx_token_value"), "analyzed: {analyzed}\n{p}");
    }
    let found = s.relationships("p7", Some("O7"), None).await.unwrap();
    assert_eq!(found.len(), 2);
}
