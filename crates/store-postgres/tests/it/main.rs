//! The storage conformance suite, run against PostgreSQL when
//! `SHAREDCARE_TEST_DATABASE_URL` is set (CI sets it); skipped, saying so, otherwise.

// Test code: panicking on failure is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite() {
    let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: postgres conformance suite (SHAREDCARE_TEST_DATABASE_URL is not set)");
        return;
    };
    let n = std::sync::atomic::AtomicUsize::new(0);
    let run = format!(
        "t{}_{}",
        std::process::id(),
        {
            #[allow(clippy::disallowed_methods)]
            std::time::SystemTime::now()
        }
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
    );
    store_conformance::run_all(|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut config = store_postgres::PostgresConfig::new(url.clone());
        config.schema = Some(format!("conf_{run}_{i}"));
        async move {
            store_postgres::PostgresStore::connect(config)
                .await
                .unwrap()
        }
    })
    .await;
}

/// The relationship lookup (on every read request) and the population
/// search use their indexes once the planner has statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relationship_queries_use_their_indexes() {
    use store::{RelationshipRow, Store, Tx};
    let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") else {
        eprintln!("SKIPPED: postgres relationship plans (SHAREDCARE_TEST_DATABASE_URL is not set)");
        return;
    };
    let schema = format!(
        "plan_{}_{}",
        std::process::id(),
        {
            #[allow(clippy::disallowed_methods)]
            std::time::SystemTime::now()
        }
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
    );
    let mut config = store_postgres::PostgresConfig::new(url.clone());
    config.schema = Some(schema.clone());
    let s = store_postgres::PostgresStore::connect(config)
        .await
        .unwrap();
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

    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path = {schema}; ANALYZE relationship"))
        .await
        .unwrap();
    let plan = async |sql: &str, b: &store_sql::Builder| -> String {
        let args: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = b
            .args
            .iter()
            .map(|v| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                match v {
                    store_sql::SqlValue::Text(s) => Box::new(s.clone()),
                    store_sql::SqlValue::Int(i) => Box::new(*i),
                    other => panic!("unexpected bind {other:?}"),
                }
            })
            .collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = client
            .query(&format!("EXPLAIN {sql}"), &refs)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut b = store_sql::Builder::new(store_sql::Dialect::Postgres);
    let sql = store_sql::relationships_query(&mut b, "p7", Some("O7"), Some("u1"));
    let p = plan(&sql, &b).await;
    assert!(p.contains("relationship_patient_org"), "{p}");
    let mut b = store_sql::Builder::new(store_sql::Dialect::Postgres);
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
        "SELECT c.id FROM resource_current c WHERE c.rtype = 'Patient' AND NOT c.deleted AND {cond}"
    );
    let p = plan(&sql, &b).await;
    assert!(p.contains("relationship_org_patient"), "{p}");
    let found = s.relationships("p7", Some("O7"), None).await.unwrap();
    assert_eq!(found.len(), 2);

    // One person's search is driven by their compartment, whatever the
    // planner's statistics: each value condition (a tag, a code, a chain)
    // is a probe of the person's own rows, never a semi-join that could
    // start from every resource in the population with that tag.
    let mut b = store_sql::Builder::new(store_sql::Dialect::Postgres);
    let token = |param: &str, code: &str, not: bool| store::Filter::Token {
        param: param.into(),
        not,
        any_of: vec![store::search::TokenValue {
            system: Some("https://example.org/tags".into()),
            code: Some(code.into()),
        }],
    };
    let cond = store_sql::filters(
        &mut b,
        "c",
        "Encounter",
        &[
            store::Filter::Compartment("p7".into()),
            token("_tag", "G7", false),
            token("_security", "R", true),
            store::Filter::Chain {
                param: "subject".into(),
                target_type: "Patient".into(),
                filters: vec![token("identifier", "9000000009", false)],
            },
        ],
    );
    let sql = format!(
        "SELECT c.id FROM resource_current c WHERE c.rtype = 'Encounter' AND NOT c.deleted AND {cond}"
    );
    let p = plan(&sql, &b).await;
    assert!(p.contains("resource_current_compartment"), "{p}");
    assert!(p.contains("SubPlan"), "{p}");
    assert!(!p.contains("Semi Join") && !p.contains("Anti Join"), "{p}");
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
