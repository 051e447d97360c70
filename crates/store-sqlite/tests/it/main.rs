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
