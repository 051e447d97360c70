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
