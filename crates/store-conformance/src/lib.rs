//! The storage conformance suite.
//!
//! Each backend's integration tests call [`run_all`] with a factory that
//! returns a fresh, empty, migrated store. Expected results are written from
//! the contract in the `store` crate's docs, not from any backend's output.
//!
//! This crate is only ever a dev-dependency: assertions panic by design.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::path::{Path, PathBuf};

use store::{
    Criterion, HistoryQuery, IndexRow, NewVersion, SearchQuery, Store, StoreError, TokenValue, Tx,
};

/// A temporary directory removed on drop (no extra dependency for tests).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("sharedcare-{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn version(rtype: &str, id: &str, v: u64, t: i64, body: Option<&str>) -> NewVersion {
    NewVersion {
        rtype: rtype.into(),
        id: id.into(),
        version: v,
        last_updated: t,
        deleted: body.is_none(),
        patient_id: None,
        body: body.map(str::to_owned),
        index: vec![],
    }
}

fn token(param: &str, system: Option<&str>, code: &str) -> IndexRow {
    IndexRow::Token {
        param: param.into(),
        system: system.map(str::to_owned),
        code: code.into(),
    }
}

async fn put_one<S: Store>(s: &S, v: NewVersion) {
    let mut tx = s.begin().await.unwrap();
    tx.put(&v).await.unwrap();
    tx.commit().await.unwrap();
}

/// Runs every check, each on a fresh store from `make`.
pub async fn run_all<S, F, Fut>(make: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    create_read_vread(make().await).await;
    version_rules(make().await).await;
    rollback_on_drop(make().await).await;
    delete_and_history(make().await).await;
    history_paging(make().await).await;
    token_search(make().await).await;
    tx_sees_own_writes(make().await).await;
    concurrent_increments(make().await).await;
    ready(make().await).await;
}

async fn ready<S: Store>(s: S) {
    s.ready().await.unwrap();
}

async fn create_read_vread<S: Store>(s: S) {
    assert!(s.read("Patient", "a").await.unwrap().is_none());
    put_one(&s, version("Patient", "a", 1, 1_000, Some(r#"{"v":1}"#))).await;
    put_one(&s, version("Patient", "a", 2, 2_000, Some(r#"{"v":2}"#))).await;
    let cur = s.read("Patient", "a").await.unwrap().unwrap();
    assert_eq!(
        (cur.version, cur.last_updated, cur.deleted),
        (2, 2_000, false)
    );
    assert_eq!(cur.body.as_deref(), Some(r#"{"v":2}"#));
    let v1 = s.vread("Patient", "a", 1).await.unwrap().unwrap();
    assert_eq!(v1.body.as_deref(), Some(r#"{"v":1}"#));
    assert!(s.vread("Patient", "a", 3).await.unwrap().is_none());
    // Types are separate namespaces.
    assert!(s.read("Observation", "a").await.unwrap().is_none());
}

async fn version_rules<S: Store>(s: S) {
    put_one(&s, version("Patient", "a", 1, 1, Some("{}"))).await;
    for bad in [1, 3] {
        let mut tx = s.begin().await.unwrap();
        let err = tx
            .put(&version("Patient", "a", bad, 2, Some("{}")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { .. }),
            "version {bad}: {err:?}"
        );
    }
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .put(&version("Patient", "b", 2, 2, Some("{}")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }));
}

async fn rollback_on_drop<S: Store>(s: S) {
    {
        let mut tx = s.begin().await.unwrap();
        tx.put(&version("Patient", "a", 1, 1, Some("{}")))
            .await
            .unwrap();
        tx.put(&version("Patient", "b", 1, 1, Some("{}")))
            .await
            .unwrap();
        drop(tx);
    }
    assert!(s.read("Patient", "a").await.unwrap().is_none());
    assert!(s.read("Patient", "b").await.unwrap().is_none());
    let h = s
        .history(&HistoryQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(h.is_empty());
    // The store is still usable afterwards.
    put_one(&s, version("Patient", "a", 1, 1, Some("{}"))).await;
    assert!(s.read("Patient", "a").await.unwrap().is_some());
}

async fn delete_and_history<S: Store>(s: S) {
    let mut v = version("Patient", "a", 1, 10, Some("{}"));
    v.index = vec![token("identifier", Some("sys"), "123")];
    put_one(&s, v).await;
    put_one(&s, version("Patient", "a", 2, 20, None)).await;
    let cur = s.read("Patient", "a").await.unwrap().unwrap();
    assert!(cur.deleted);
    assert!(cur.body.is_none());
    let found = s
        .search(&SearchQuery {
            rtype: "Patient".into(),
            criteria: vec![Criterion::Id(vec!["a".into()])],
            after_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(found.is_empty(), "deleted resources are not found");
    let by_token = s
        .search(&SearchQuery {
            rtype: "Patient".into(),
            criteria: vec![Criterion::Token {
                param: "identifier".into(),
                any_of: vec![TokenValue {
                    system: None,
                    code: Some("123".into()),
                }],
            }],
            after_id: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(by_token.is_empty(), "a deleted version has no index rows");
    let h = s
        .history(&HistoryQuery {
            rtype: Some("Patient".into()),
            id: Some("a".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        h.iter().map(|r| (r.version, r.deleted)).collect::<Vec<_>>(),
        vec![(2, true), (1, false)]
    );
    // Re-create after delete continues the version sequence.
    put_one(&s, version("Patient", "a", 3, 30, Some("{}"))).await;
    assert!(!s.read("Patient", "a").await.unwrap().unwrap().deleted);
}

async fn history_paging<S: Store>(s: S) {
    for i in 0..5u64 {
        put_one(
            &s,
            version(
                "Patient",
                &format!("p{i}"),
                1,
                100 + i64::try_from(i).unwrap(),
                Some("{}"),
            ),
        )
        .await;
        put_one(
            &s,
            version(
                "Observation",
                &format!("o{i}"),
                1,
                200 + i64::try_from(i).unwrap(),
                Some("{}"),
            ),
        )
        .await;
    }
    let all = s
        .history(&HistoryQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 10);
    assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let patients = s
        .history(&HistoryQuery {
            rtype: Some("Patient".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(patients.len(), 5);
    let since = s
        .history(&HistoryQuery {
            rtype: Some("Patient".into()),
            since: Some(103),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        since.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        vec!["p4", "p3"]
    );
    // Page through two at a time.
    let mut seen = vec![];
    let mut before = None;
    loop {
        let page = s
            .history(&HistoryQuery {
                rtype: Some("Patient".into()),
                before_seq: before,
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|r| r.seq);
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, vec!["p4", "p3", "p2", "p1", "p0"]);
}

async fn token_search<S: Store>(s: S) {
    let mut a = version("Patient", "a", 1, 1, Some(r#"{"n":"a"}"#));
    a.index = vec![
        token("identifier", Some("nhs"), "111"),
        token("identifier", Some("mrn"), "A1"),
    ];
    let mut b = version("Patient", "b", 1, 1, Some(r#"{"n":"b"}"#));
    b.index = vec![token("identifier", None, "111")];
    let mut c = version("Patient", "c", 1, 1, Some(r#"{"n":"c"}"#));
    c.index = vec![token("identifier", Some("nhs"), "222")];
    for v in [a, b, c] {
        put_one(&s, v).await;
    }
    let q = |values: Vec<TokenValue>| SearchQuery {
        rtype: "Patient".into(),
        criteria: vec![Criterion::Token {
            param: "identifier".into(),
            any_of: values,
        }],
        after_id: None,
        limit: 10,
    };
    let tv = |system: Option<&str>, code: Option<&str>| TokenValue {
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
    };
    let ids = |rs: Vec<store::StoredResource>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.search(&q(vec![tv(None, Some("111"))])).await.unwrap()),
        vec!["a", "b"]
    );
    assert_eq!(
        ids(s
            .search(&q(vec![tv(Some("nhs"), Some("111"))]))
            .await
            .unwrap()),
        vec!["a"]
    );
    assert_eq!(
        ids(s.search(&q(vec![tv(Some(""), Some("111"))])).await.unwrap()),
        vec!["b"]
    );
    assert_eq!(
        ids(s.search(&q(vec![tv(Some("nhs"), None)])).await.unwrap()),
        vec!["a", "c"]
    );
    assert_eq!(
        ids(s
            .search(&q(vec![
                tv(Some("mrn"), Some("A1")),
                tv(Some("nhs"), Some("222"))
            ]))
            .await
            .unwrap()),
        vec!["a", "c"]
    );
    assert!(
        s.search(&q(vec![tv(Some("nhs"), Some("999"))]))
            .await
            .unwrap()
            .is_empty()
    );
    // AND of two criteria.
    let mut both = q(vec![tv(None, Some("111"))]);
    both.criteria
        .push(Criterion::Id(vec!["b".into(), "c".into()]));
    assert_eq!(ids(s.search(&both).await.unwrap()), vec!["b"]);
    // Paging by id.
    let mut page = q(vec![tv(None, Some("111"))]);
    page.limit = 1;
    assert_eq!(ids(s.search(&page).await.unwrap()), vec!["a"]);
    page.after_id = Some("a".into());
    assert_eq!(ids(s.search(&page).await.unwrap()), vec!["b"]);
    // An update replaces the index rows.
    let mut a2 = version("Patient", "a", 2, 2, Some(r#"{"n":"a2"}"#));
    a2.index = vec![token("identifier", Some("nhs"), "333")];
    put_one(&s, a2).await;
    assert_eq!(
        ids(s.search(&q(vec![tv(None, Some("111"))])).await.unwrap()),
        vec!["b"]
    );
    let found = s.search(&q(vec![tv(None, Some("333"))])).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].body.as_deref(), Some(r#"{"n":"a2"}"#));
    assert_eq!(found[0].version, 2);
}

async fn tx_sees_own_writes<S: Store>(s: S) {
    let mut tx = s.begin().await.unwrap();
    let mut v = version("Patient", "a", 1, 1, Some("{}"));
    v.index = vec![token("identifier", Some("nhs"), "111")];
    tx.put(&v).await.unwrap();
    assert_eq!(
        tx.current("Patient", "a").await.unwrap().unwrap().version,
        1
    );
    let crit = [Criterion::Token {
        param: "identifier".into(),
        any_of: vec![TokenValue {
            system: Some("nhs".into()),
            code: Some("111".into()),
        }],
    }];
    assert_eq!(tx.find("Patient", &crit, 10).await.unwrap(), vec!["a"]);
    tx.lock_key("Patient?identifier=nhs|111").await.unwrap();
    tx.commit().await.unwrap();
    assert!(s.read("Patient", "a").await.unwrap().is_some());
}

/// Many writers increment one resource's version through read-then-put in a
/// transaction; none may be lost.
async fn concurrent_increments<S: Store>(s: S) {
    put_one(&s, version("Basic", "counter", 1, 1, Some("{}"))).await;
    let writers = 8;
    let per_writer = 10;
    let mut handles = vec![];
    for _ in 0..writers {
        let s = s.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0;
            while done < per_writer {
                let mut tx = s.begin().await.unwrap();
                let cur = tx.current("Basic", "counter").await.unwrap().unwrap();
                match tx
                    .put(&version("Basic", "counter", cur.version + 1, 1, Some("{}")))
                    .await
                {
                    Ok(_) => {
                        tx.commit().await.unwrap();
                        done += 1;
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let cur = s.read("Basic", "counter").await.unwrap().unwrap();
    assert_eq!(cur.version, 1 + writers * per_writer);
}
