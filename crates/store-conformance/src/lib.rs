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

use store::search::{
    CompositeFilter, CompositeSecond, CompositeValue, IndexKind, Prefix, QuantityValue, RangeValue,
    ReferenceValue, StringMatch, TokenValue, UriMatch,
};
use store::{
    Cursor, Filter, HistoryQuery, IndexRow, NewVersion, RelationshipRow, SearchQuery, SortKey,
    Store, StoreError, Tx, relationship,
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
        code: Some(code.into()),
        text: None,
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
    search_filters(make().await).await;
    sorting_and_cursors(make().await).await;
    references_scan_reindex_settings(make().await).await;
    compartment_pages(make().await).await;
    relationships_put_replace_delete(make().await).await;
    relationships_lookup_order(make().await).await;
    relationships_rollback(make().await).await;
    read_with_relationships_together(make().await).await;
    relationship_changes_apply_to_the_next_read(make().await).await;
    audit_chain_appends_and_queries(make().await).await;
    registered_patients_of_a_practice(make().await).await;
    audit_in_transaction_commits_or_not(make().await).await;
    related_filter(make().await).await;
    dissent_and_sharing_rules(make().await).await;
    compartment_filter(make().await).await;
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
            filters: vec![Filter::Id(vec!["a".into()])],
            sort: vec![],
            after: None,
            backward: false,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(found.is_empty(), "deleted resources are not found");
    let by_token = s
        .search(&SearchQuery {
            rtype: "Patient".into(),
            filters: vec![Filter::Token {
                param: "identifier".into(),
                not: false,
                any_of: vec![TokenValue {
                    system: None,
                    code: Some("123".into()),
                }],
            }],
            sort: vec![],
            after: None,
            backward: false,
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
        filters: vec![Filter::Token {
            param: "identifier".into(),
            not: false,
            any_of: values,
        }],
        sort: vec![],
        after: None,
        backward: false,
        limit: 10,
    };
    let tv = |system: Option<&str>, code: Option<&str>| TokenValue {
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
    };
    let ids = |rs: Vec<store::SearchRow>| rs.into_iter().map(|r| r.resource.id).collect::<Vec<_>>();
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
    both.filters.push(Filter::Id(vec!["b".into(), "c".into()]));
    assert_eq!(ids(s.search(&both).await.unwrap()), vec!["b"]);
    // Paging by id.
    let mut page = q(vec![tv(None, Some("111"))]);
    page.limit = 1;
    assert_eq!(ids(s.search(&page).await.unwrap()), vec!["a"]);
    page.after = Some(Cursor {
        values: vec![],
        last_id: "a".into(),
    });
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
    assert_eq!(found[0].resource.body.as_deref(), Some(r#"{"n":"a2"}"#));
    assert_eq!(found[0].resource.version, 2);
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
    let crit = [Filter::Token {
        param: "identifier".into(),
        not: false,
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

fn resource(rtype: &str, id: &str, t: i64, index: Vec<IndexRow>) -> NewVersion {
    let mut v = version(
        rtype,
        id,
        1,
        t,
        Some(&format!(r#"{{"resourceType":"{rtype}","id":"{id}"}}"#)),
    );
    v.index = index;
    v
}

fn string(param: &str, exact: &str) -> IndexRow {
    IndexRow::String {
        param: param.into(),
        normalized: exact.to_lowercase(),
        exact: exact.into(),
    }
}

fn reference(param: &str, target_type: &str, target_id: &str) -> IndexRow {
    IndexRow::Reference {
        param: param.into(),
        target_type: Some(target_type.into()),
        target_id: Some(target_id.into()),
        url: None,
    }
}

fn date(param: &str, low: i64, high: i64) -> IndexRow {
    IndexRow::Date {
        param: param.into(),
        low,
        high,
    }
}

fn coded(param: &str, system: &str, code: &str, text: &str) -> IndexRow {
    IndexRow::Token {
        param: param.into(),
        system: Some(system.into()),
        code: Some(code.into()),
        text: Some(text.into()),
    }
}

fn quantity(param: &str, code: &str, unit: &str, value: f64) -> IndexRow {
    IndexRow::Quantity {
        param: param.into(),
        system: Some("http://unitsofmeasure.org".into()),
        code: Some(code.into()),
        unit: Some(unit.into()),
        value,
        low: value - 0.5,
        high: value + 0.5,
    }
}

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";

/// Patients p1 (Smith, John, male, born 1980) and p2 (Smythe, female);
/// observations o1 (heart rate 70/min at t=100, of p1), o2 (systolic 120
/// mm[Hg] at t=200, of p2), o3 (heart rate over [150, 300], of p1, no value),
/// o4 (text-only code, no subject, no date).
async fn load_search_fixture<S: Store>(s: &S) {
    let rows = vec![
        resource(
            "Patient",
            "p1",
            10,
            vec![
                string("name", "Smith"),
                string("name", "John"),
                token("gender", None, "male"),
                date("birthdate", 1_000, 1_999),
            ],
        ),
        resource(
            "Patient",
            "p2",
            20,
            vec![
                string("name", "Smythe"),
                token("gender", None, "female"),
                date("birthdate", 5_000, 5_999),
            ],
        ),
        resource(
            "Observation",
            "o1",
            30,
            vec![
                reference("subject", "Patient", "p1"),
                coded("code", LOINC, "8867-4", "heart rate"),
                date("date", 100, 100),
                quantity("value-quantity", "/min", "beats/minute", 70.0),
                IndexRow::Composite {
                    param: "code-value-quantity".into(),
                    system: Some(LOINC.into()),
                    code: "8867-4".into(),
                    second: CompositeValue::Quantity {
                        system: Some(UCUM.into()),
                        code: Some("/min".into()),
                        low: 69.5,
                        high: 70.5,
                    },
                },
                IndexRow::Number {
                    param: "n".into(),
                    value: 5.0,
                    low: 4.5,
                    high: 5.5,
                },
                IndexRow::Uri {
                    param: "instantiates".into(),
                    value: "http://example.org/fhir/Q/1".into(),
                },
            ],
        ),
        resource(
            "Observation",
            "o2",
            40,
            vec![
                reference("subject", "Patient", "p2"),
                coded("code", LOINC, "8480-6", "systolic blood pressure"),
                date("date", 200, 200),
                quantity("value-quantity", "mm[Hg]", "mmHg", 120.0),
            ],
        ),
        resource(
            "Observation",
            "o3",
            50,
            vec![
                reference("subject", "Patient", "p1"),
                coded("code", LOINC, "8867-4", "heart rate"),
                date("date", 150, 300),
            ],
        ),
        resource(
            "Observation",
            "o4",
            60,
            vec![IndexRow::Token {
                param: "code".into(),
                system: None,
                code: None,
                text: Some("free text".into()),
            }],
        ),
    ];
    let mut tx = s.begin().await.unwrap();
    for r in rows {
        tx.put(&r).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn matching<S: Store>(s: &S, rtype: &str, filters: Vec<Filter>) -> Vec<String> {
    let rows = s
        .search(&SearchQuery {
            rtype: rtype.into(),
            filters: filters.clone(),
            sort: vec![],
            after: None,
            backward: false,
            limit: 100,
        })
        .await
        .unwrap();
    let ids: Vec<String> = rows.into_iter().map(|r| r.resource.id).collect();
    assert_eq!(
        s.count(rtype, &filters).await.unwrap(),
        ids.len() as u64,
        "count agrees with search"
    );
    ids
}

fn range<T>(prefix: Prefix, low: T, high: T) -> RangeValue<T> {
    RangeValue { prefix, low, high }
}

fn tv(system: Option<&str>, code: Option<&str>) -> TokenValue {
    TokenValue {
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
    }
}

/// Every filter kind, with results worked out by hand from the fixture and
/// the FHIR search rules (prefix semantics per R4 3.1.1.4.2).
async fn search_filters<S: Store>(s: S) {
    load_search_fixture(&s).await;
    let str_f = |mode, v: &str| Filter::String {
        param: "name".into(),
        mode,
        any_of: vec![v.to_lowercase_if(mode)],
    };
    assert_eq!(
        matching(&s, "Patient", vec![str_f(StringMatch::Prefix, "smi")]).await,
        ["p1"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![str_f(StringMatch::Prefix, "sm")]).await,
        ["p1", "p2"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![str_f(StringMatch::Prefix, "jo")]).await,
        ["p1"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![str_f(StringMatch::Contains, "yth")]).await,
        ["p2"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![str_f(StringMatch::Exact, "Smith")]).await,
        ["p1"]
    );
    assert!(
        matching(&s, "Patient", vec![str_f(StringMatch::Exact, "smith")])
            .await
            .is_empty()
    );
    // LIKE wildcards in a value are literal.
    assert!(
        matching(&s, "Patient", vec![str_f(StringMatch::Prefix, "s%")])
            .await
            .is_empty()
    );
    assert!(
        matching(&s, "Patient", vec![str_f(StringMatch::Contains, "_")])
            .await
            .is_empty()
    );

    let gender = |not, code: &str| Filter::Token {
        param: "gender".into(),
        not,
        any_of: vec![tv(None, Some(code))],
    };
    assert_eq!(
        matching(&s, "Patient", vec![gender(false, "male")]).await,
        ["p1"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![gender(true, "male")]).await,
        ["p2"]
    );
    let code = |v: TokenValue| Filter::Token {
        param: "code".into(),
        not: false,
        any_of: vec![v],
    };
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![code(tv(Some(LOINC), Some("8867-4")))]
        )
        .await,
        ["o1", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![code(tv(Some(LOINC), None))]).await,
        ["o1", "o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![code(tv(None, Some("8480-6")))]).await,
        ["o2"]
    );
    assert!(
        matching(&s, "Observation", vec![code(tv(Some(""), Some("8480-6")))])
            .await
            .is_empty()
    );
    let text = |v: &str| Filter::TokenText {
        param: "code".into(),
        any_of: vec![v.into()],
    };
    assert_eq!(
        matching(&s, "Observation", vec![text("heart")]).await,
        ["o1", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![text("free")]).await,
        ["o4"]
    );

    let subject = |t: Option<&str>, id: &str| Filter::Reference {
        param: "subject".into(),
        any_of: vec![ReferenceValue {
            target_type: t.map(str::to_owned),
            id: Some(id.into()),
            url: None,
        }],
    };
    assert_eq!(
        matching(&s, "Observation", vec![subject(None, "p1")]).await,
        ["o1", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![subject(Some("Patient"), "p2")]).await,
        ["o2"]
    );
    assert!(
        matching(&s, "Observation", vec![subject(Some("Group"), "p2")])
            .await
            .is_empty()
    );

    let d = |prefix, low, high| Filter::Date {
        param: "date".into(),
        any_of: vec![range(prefix, low, high)],
    };
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Eq, 100, 100)]).await,
        ["o1"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Eq, 0, 1_000)]).await,
        ["o1", "o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Ne, 100, 100)]).await,
        ["o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Gt, 150, 150)]).await,
        ["o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Ge, 200, 200)]).await,
        ["o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Lt, 150, 150)]).await,
        ["o1"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Le, 150, 150)]).await,
        ["o1"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Sa, 120, 120)]).await,
        ["o2", "o3"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Eb, 160, 160)]).await,
        ["o1"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![d(Prefix::Overlaps, 140, 160)]).await,
        ["o3"]
    );
    // OR within one filter, AND across filters.
    let either = Filter::Date {
        param: "date".into(),
        any_of: vec![range(Prefix::Eq, 100, 100), range(Prefix::Eq, 200, 200)],
    };
    assert_eq!(
        matching(&s, "Observation", vec![either.clone()]).await,
        ["o1", "o2"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![either, subject(None, "p1")]).await,
        ["o1"]
    );

    let q = |prefix, low, high, system: Option<&str>, code: Option<&str>| Filter::Quantity {
        param: "value-quantity".into(),
        any_of: vec![QuantityValue {
            prefix,
            low,
            high,
            system: system.map(str::to_owned),
            code: code.map(str::to_owned),
        }],
    };
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![q(Prefix::Eq, 69.5, 70.5, None, None)]
        )
        .await,
        ["o1"]
    );
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![q(Prefix::Gt, 100.0, 100.0, Some(UCUM), Some("mm[Hg]"))]
        )
        .await,
        ["o2"]
    );
    assert!(
        matching(
            &s,
            "Observation",
            vec![q(Prefix::Gt, 100.0, 100.0, Some(UCUM), Some("/min"))]
        )
        .await
        .is_empty()
    );
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![q(Prefix::Eq, 69.5, 70.5, None, Some("/min"))]
        )
        .await,
        ["o1"]
    );
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![q(Prefix::Eq, 69.5, 70.5, None, Some("beats/minute"))]
        )
        .await,
        ["o1"]
    );

    let n = |prefix, low, high| Filter::Number {
        param: "n".into(),
        any_of: vec![range(prefix, low, high)],
    };
    assert_eq!(
        matching(&s, "Observation", vec![n(Prefix::Eq, 4.5, 5.5)]).await,
        ["o1"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![n(Prefix::Eq, 4.95, 5.05)]).await,
        ["o1"],
        "a stored 5 equals a search for 5.0 (the value lies in the search range)"
    );
    assert!(
        matching(&s, "Observation", vec![n(Prefix::Eq, 5.95, 6.05)])
            .await
            .is_empty()
    );
    assert_eq!(
        matching(&s, "Observation", vec![n(Prefix::Lt, 6.5, 7.5)]).await,
        ["o1"]
    );

    let uri = |mode, v: &str| Filter::Uri {
        param: "instantiates".into(),
        mode,
        any_of: vec![v.into()],
    };
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![uri(UriMatch::Exact, "http://example.org/fhir/Q/1")]
        )
        .await,
        ["o1"]
    );
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![uri(UriMatch::Below, "http://example.org/fhir")]
        )
        .await,
        ["o1"]
    );
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![uri(
                UriMatch::Above,
                "http://example.org/fhir/Q/1/_history/2"
            )]
        )
        .await,
        ["o1"]
    );
    assert!(
        matching(
            &s,
            "Observation",
            vec![uri(UriMatch::Below, "http://example.org/fhir/Q/2")]
        )
        .await
        .is_empty()
    );

    let composite = |prefix, low, high| Filter::Composite {
        param: "code-value-quantity".into(),
        any_of: vec![CompositeFilter {
            token: tv(Some(LOINC), Some("8867-4")),
            second: CompositeSecond::Quantity(QuantityValue {
                prefix,
                low,
                high,
                system: None,
                code: None,
            }),
        }],
    };
    assert_eq!(
        matching(&s, "Observation", vec![composite(Prefix::Eq, 69.5, 70.5)]).await,
        ["o1"]
    );
    assert!(
        matching(&s, "Observation", vec![composite(Prefix::Gt, 100.0, 100.0)])
            .await
            .is_empty()
    );

    let missing = |m| Filter::Missing {
        param: "value-quantity".into(),
        kind: IndexKind::Quantity,
        missing: m,
    };
    assert_eq!(
        matching(&s, "Observation", vec![missing(true)]).await,
        ["o3", "o4"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![missing(false)]).await,
        ["o1", "o2"]
    );

    // subject:Patient.name=smy
    let chain = Filter::Chain {
        param: "subject".into(),
        target_type: "Patient".into(),
        filters: vec![Filter::String {
            param: "name".into(),
            mode: StringMatch::Prefix,
            any_of: vec!["smy".into()],
        }],
    };
    assert_eq!(matching(&s, "Observation", vec![chain]).await, ["o2"]);
    // Patient?_has:Observation:subject:code=8480-6
    let has = Filter::Has {
        source_type: "Observation".into(),
        param: "subject".into(),
        filters: vec![code(tv(None, Some("8480-6")))],
    };
    assert_eq!(matching(&s, "Patient", vec![has]).await, ["p2"]);
    // Nested: patients with an observation whose subject's name starts "joh" (p1 itself).
    let nested = Filter::Has {
        source_type: "Observation".into(),
        param: "subject".into(),
        filters: vec![Filter::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            filters: vec![Filter::String {
                param: "name".into(),
                mode: StringMatch::Prefix,
                any_of: vec!["joh".into()],
            }],
        }],
    };
    assert_eq!(matching(&s, "Patient", vec![nested]).await, ["p1"]);

    let any = Filter::AnyOf(vec![
        vec![Filter::Id(vec!["o1".into()])],
        vec![Filter::Id(vec!["o4".into()])],
    ]);
    assert_eq!(matching(&s, "Observation", vec![any]).await, ["o1", "o4"]);
    let lu = |prefix, low, high| Filter::LastUpdated(vec![range(prefix, low, high)]);
    assert_eq!(
        matching(&s, "Observation", vec![lu(Prefix::Ge, 40, 40)]).await,
        ["o2", "o3", "o4"]
    );
    assert_eq!(
        matching(&s, "Observation", vec![lu(Prefix::Eq, 30, 39)]).await,
        ["o1"]
    );
}

trait LowerIf {
    fn to_lowercase_if(&self, mode: StringMatch) -> String;
}
impl LowerIf for str {
    /// Normalised values are lower case; exact values are as written.
    fn to_lowercase_if(&self, mode: StringMatch) -> String {
        if mode == StringMatch::Exact {
            self.to_owned()
        } else {
            self.to_lowercase()
        }
    }
}

async fn sorting_and_cursors<S: Store>(s: S) {
    load_search_fixture(&s).await;
    let page = |sort: Vec<SortKey>, after: Option<Cursor>, limit| SearchQuery {
        rtype: "Observation".into(),
        filters: vec![],
        sort,
        after,
        backward: false,
        limit,
    };
    let by_date = vec![SortKey::Param {
        param: "date".into(),
        kind: IndexKind::Date,
        descending: false,
    }];
    let ids = |rows: &[store::SearchRow]| {
        rows.iter()
            .map(|r| r.resource.id.clone())
            .collect::<Vec<_>>()
    };
    // Ascending by the earliest date; no date sorts last.
    assert_eq!(
        ids(&s.search(&page(by_date.clone(), None, 10)).await.unwrap()),
        ["o1", "o3", "o2", "o4"]
    );
    // Descending by the latest date; still last when missing.
    let desc = vec![SortKey::Param {
        param: "date".into(),
        kind: IndexKind::Date,
        descending: true,
    }];
    assert_eq!(
        ids(&s.search(&page(desc.clone(), None, 10)).await.unwrap()),
        ["o3", "o2", "o1", "o4"]
    );
    // Page one row at a time with the cursor: the same order, no repeats.
    for sort in [by_date.clone(), desc.clone()] {
        let all = ids(&s.search(&page(sort.clone(), None, 10)).await.unwrap());
        let mut seen = vec![];
        let mut after = None;
        loop {
            let rows = s
                .search(&page(sort.clone(), after.clone(), 1))
                .await
                .unwrap();
            let Some(last) = rows.last() else { break };
            after = Some(Cursor {
                values: last.sort_values.clone(),
                last_id: last.resource.id.clone(),
            });
            seen.push(last.resource.id.clone());
            assert!(seen.len() <= 4, "cursor loops: {seen:?}");
        }
        assert_eq!(seen, all);
    }
    // Backward from a row: the rows before it, nearest first (a previous page).
    for sort in [
        by_date.clone(),
        desc.clone(),
        vec![SortKey::Id { descending: false }],
    ] {
        let all = s.search(&page(sort.clone(), None, 10)).await.unwrap();
        let third = &all[2];
        let mut q = page(
            sort.clone(),
            Some(Cursor {
                values: third.sort_values.clone(),
                last_id: third.resource.id.clone(),
            }),
            10,
        );
        q.backward = true;
        let before = ids(&s.search(&q).await.unwrap());
        assert_eq!(
            before,
            vec![all[1].resource.id.clone(), all[0].resource.id.clone()],
            "{sort:?}"
        );
    }
    // A change behind the cursor does not shift the next page (no offsets).
    let sort = vec![SortKey::Id { descending: false }];
    let first = s.search(&page(sort.clone(), None, 2)).await.unwrap();
    assert_eq!(ids(&first), ["o1", "o2"]);
    let cursor = Cursor {
        values: first[1].sort_values.clone(),
        last_id: "o2".into(),
    };
    put_one(&s, version("Observation", "o1", 2, 70, None)).await;
    assert_eq!(
        ids(&s
            .search(&page(sort.clone(), Some(cursor), 2))
            .await
            .unwrap()),
        ["o3", "o4"]
    );
    // Strings sort by the smallest value; lastUpdated and id descending.
    let patients = SearchQuery {
        rtype: "Patient".into(),
        filters: vec![],
        sort: vec![SortKey::Param {
            param: "name".into(),
            kind: IndexKind::String,
            descending: false,
        }],
        after: None,
        backward: false,
        limit: 10,
    };
    assert_eq!(
        ids(&s.search(&patients).await.unwrap()),
        ["p1", "p2"],
        "john < smythe"
    );
    let recent = page(vec![SortKey::LastUpdated { descending: true }], None, 10);
    assert_eq!(ids(&s.search(&recent).await.unwrap()), ["o4", "o3", "o2"]);
}

async fn references_scan_reindex_settings<S: Store>(s: S) {
    load_search_fixture(&s).await;
    let key = |t: &str, i: &str| (t.to_owned(), i.to_owned());
    let mut targets = s
        .references_from(
            &[key("Observation", "o1"), key("Observation", "o3")],
            Some("subject"),
            None,
        )
        .await
        .unwrap();
    targets.sort();
    assert_eq!(targets, vec![key("Patient", "p1")]);
    assert!(
        s.references_from(&[key("Observation", "o1")], Some("subject"), Some("Group"))
            .await
            .unwrap()
            .is_empty()
    );
    let mut refs = s
        .referrers(
            "Observation",
            Some("subject"),
            &[key("Patient", "p1"), key("Patient", "p2")],
        )
        .await
        .unwrap();
    refs.sort();
    assert_eq!(
        refs,
        vec![
            key("Observation", "o1"),
            key("Observation", "o2"),
            key("Observation", "o3")
        ]
    );
    let mut many = s
        .read_many(&[
            key("Patient", "p2"),
            key("Patient", "nope"),
            key("Observation", "o4"),
        ])
        .await
        .unwrap();
    many.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        many.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["o4", "p2"]
    );

    // scan walks every current resource in (type, id) order.
    let mut walked = vec![];
    let mut after: Option<(String, String)> = None;
    loop {
        let batch = s.scan(after.as_ref(), 4).await.unwrap();
        let Some(last) = batch.last() else { break };
        after = Some(key(&last.rtype, &last.id));
        walked.extend(batch.into_iter().map(|r| format!("{}/{}", r.rtype, r.id)));
    }
    assert_eq!(
        walked,
        [
            "Observation/o1",
            "Observation/o2",
            "Observation/o3",
            "Observation/o4",
            "Patient/p1",
            "Patient/p2"
        ]
    );

    // reindex replaces rows without a new version.
    let mut tx = s.begin().await.unwrap();
    tx.reindex(
        "Observation",
        "o4",
        Some("p2"),
        &[token("code", Some("local"), "x1")],
    )
    .await
    .unwrap();
    tx.set_setting("index_version", "7").await.unwrap();
    tx.commit().await.unwrap();
    let filters = vec![Filter::Token {
        param: "code".into(),
        not: false,
        any_of: vec![tv(Some("local"), Some("x1"))],
    }];
    assert_eq!(matching(&s, "Observation", filters).await, ["o4"]);
    assert!(
        matching(
            &s,
            "Observation",
            vec![Filter::TokenText {
                param: "code".into(),
                any_of: vec!["free".into()]
            }]
        )
        .await
        .is_empty()
    );
    assert_eq!(
        s.read("Observation", "o4").await.unwrap().unwrap().version,
        1
    );
    assert_eq!(
        s.setting("index_version").await.unwrap().as_deref(),
        Some("7")
    );
    assert_eq!(s.setting("other").await.unwrap(), None);
}

async fn compartment_pages<S: Store>(s: S) {
    let of = |rtype: &str, id: &str, patient: &str, t: i64, index: Vec<IndexRow>| {
        let mut v = resource(rtype, id, t, index);
        v.patient_id = Some(patient.into());
        v
    };
    let mut tx = s.begin().await.unwrap();
    for v in [
        of("Patient", "p1", "p1", 10, vec![]),
        of("Observation", "o1", "p1", 20, vec![date("date", 100, 100)]),
        of("Observation", "o2", "p1", 30, vec![date("date", 500, 500)]),
        of("Condition", "c1", "p1", 40, vec![]),
        of("Observation", "o3", "p2", 50, vec![date("date", 100, 100)]),
    ] {
        tx.put(&v).await.unwrap();
    }
    tx.commit().await.unwrap();
    let q = |f: &dyn Fn(&mut store::CompartmentQuery)| {
        let mut q = store::CompartmentQuery {
            patient_id: "p1".into(),
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let ids = |rows: Vec<store::StoredResource>| {
        rows.into_iter()
            .map(|r| format!("{}/{}", r.rtype, r.id))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.compartment(&q(&|_| {})).await.unwrap()),
        [
            "Condition/c1",
            "Observation/o1",
            "Observation/o2",
            "Patient/p1"
        ]
    );
    assert_eq!(
        ids(s
            .compartment(&q(&|q| q.types = Some(vec!["Observation".into()])))
            .await
            .unwrap()),
        ["Observation/o1", "Observation/o2"]
    );
    assert_eq!(
        ids(s.compartment(&q(&|q| q.start = Some(200))).await.unwrap()),
        ["Condition/c1", "Observation/o2", "Patient/p1"]
    );
    assert_eq!(
        ids(s.compartment(&q(&|q| q.end = Some(300))).await.unwrap()),
        ["Condition/c1", "Observation/o1", "Patient/p1"]
    );
    assert_eq!(
        ids(s.compartment(&q(&|q| q.since = Some(30))).await.unwrap()),
        ["Condition/c1", "Observation/o2"]
    );
    assert_eq!(
        ids(s
            .compartment(&q(&|q| q.after = Some(("Observation".into(), "o1".into()))))
            .await
            .unwrap()),
        ["Observation/o2", "Patient/p1"]
    );
    assert_eq!(
        ids(s.compartment(&q(&|q| q.limit = 2)).await.unwrap()),
        ["Condition/c1", "Observation/o1"]
    );
}

/// Dissent markers and a practice's sharing rules: what
/// [`Store::relationships`] returns of them, and how
/// [`Filter::Related`] applies them (the rule written out in
/// `store::search::Filter::Related`). Every patient has an active care
/// relationship with organisation `H` (a hospital) at now = 1000.
async fn dissent_and_sharing_rules<S: Store>(s: S) {
    use relationship::sharing;
    use relationship::{DISSENT, ENCOUNTER, GP_REGISTRATION, PRACTICE_PREFIX};
    let now = 1_000;
    let patients = ["d1", "d2", "d3", "d4", "d5", "g1", "g2", "g3", "n1"];
    let mut tx = s.begin().await.unwrap();
    for id in patients {
        let mut v = resource("Patient", id, 1, vec![]);
        v.patient_id = Some(id.to_owned());
        tx.put(&v).await.unwrap();
    }
    tx.commit().await.unwrap();
    let encounter = |p: &str| {
        rel(
            &format!("Encounter/e-{p}"),
            "H",
            ENCOUNTER,
            true,
            None,
            None,
        )
    };
    let gp = |p: &str, practice: &str| {
        rel(
            &format!("Patient/{p}"),
            practice,
            GP_REGISTRATION,
            true,
            None,
            None,
        )
    };
    let dissent = |p: &str, org: &str, end: Option<i64>| {
        rel(&format!("Consent/c-{p}"), org, DISSENT, true, None, end)
    };
    let mut facts: Vec<(&str, Vec<RelationshipRow>)> = vec![
        // Dissent from everyone, from H by name, from H's type, from another
        // type, and one that has lapsed.
        ("d1", vec![dissent("d1", "*", None)]),
        ("d2", vec![dissent("d2", "H", None)]),
        ("d3", vec![dissent("d3", "type:acute-trust", None)]),
        ("d4", vec![dissent("d4", "type:care-home", None)]),
        ("d5", vec![dissent("d5", "*", Some(999))]),
        // Registered at practices P1 (local only), P2 (verify H first), P3
        // (no rules).
        ("g1", vec![gp("g1", "P1")]),
        ("g2", vec![gp("g2", "P2")]),
        ("g3", vec![gp("g3", "P3")]),
        ("n1", vec![]),
    ];
    for (p, rows) in &mut facts {
        rows.push(encounter(p));
    }
    for (p, rows) in &facts {
        for row in rows {
            put_rels(&s, Some(p), std::slice::from_ref(row)).await;
        }
    }
    let rule = |practice: &str, kind: &str, org: &str| RelationshipRow {
        detail: Some(practice.into()),
        ..rel(&format!("$sharing/{practice}"), org, kind, true, None, None)
    };
    put_rels(
        &s,
        Some(&format!("{PRACTICE_PREFIX}P1")),
        &[
            rule("P1", sharing::LOCAL, "*"),
            rule("P1", sharing::DENY, "X"),
        ],
    )
    .await;
    put_rels(
        &s,
        Some(&format!("{PRACTICE_PREFIX}P2")),
        &[rule("P2", sharing::VERIFY, "H")],
    )
    .await;

    let related = |org: &str, org_type: Option<&str>, local: bool| Filter::Related {
        org: org.into(),
        user: None,
        now,
        recent_since: 0,
        org_type: org_type.map(str::to_owned),
        local,
    };
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![related("H", Some("acute-trust"), false)]
        )
        .await,
        ["d4", "d5", "g3", "n1"]
    );
    // H's kind unknown: every dissent aimed at a kind keeps it out.
    assert_eq!(
        matching(&s, "Patient", vec![related("H", None, true)]).await,
        ["d5", "g1", "g3", "n1"]
    );
    // An approval lets H in; a later rejection shuts it out again.
    let decision = |kind: &str| RelationshipRow {
        detail: Some("P2".into()),
        ..rel("$sharing-request/P2 H", "H", kind, true, None, None)
    };
    put_rels(
        &s,
        Some(&format!("{PRACTICE_PREFIX}P2")),
        &[decision(sharing::APPROVED)],
    )
    .await;
    assert!(
        matching(&s, "Patient", vec![related("H", None, true)])
            .await
            .contains(&"g2".to_owned())
    );
    put_rels(
        &s,
        Some(&format!("{PRACTICE_PREFIX}P2")),
        &[decision(sharing::REJECTED)],
    )
    .await;
    assert!(
        !matching(&s, "Patient", vec![related("H", None, true)])
            .await
            .contains(&"g2".to_owned())
    );
    // The practice itself passes its own rules and the dissent of its
    // patients; a marker never counts as a relationship.
    put_rels(&s, Some("g1"), &[dissent("g1", "*", None)]).await;
    assert_eq!(
        matching(&s, "Patient", vec![related("P1", None, false)]).await,
        ["g1"]
    );
    assert!(
        matching(&s, "Patient", vec![related("*", None, true)])
            .await
            .is_empty()
    );

    // The per-request lookup returns the dissent rows whoever asks, and the
    // rules of the person's practice that name the caller or everyone.
    let kinds = |rows: Vec<RelationshipRow>| {
        let mut k: Vec<(String, String)> = rows.into_iter().map(|r| (r.kind, r.org)).collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds(s.relationships("d3", Some("Z"), None).await.unwrap()),
        [(DISSENT.to_owned(), "type:acute-trust".to_owned())]
    );
    let g1 = kinds(s.relationships("g1", Some("H"), None).await.unwrap());
    assert!(
        g1.contains(&(sharing::LOCAL.to_owned(), "*".to_owned())),
        "{g1:?}"
    );
    assert!(
        !g1.iter().any(|(k, _)| k == sharing::DENY),
        "a rule about X is not H's business: {g1:?}"
    );
    let g1x = kinds(s.relationships("g1", Some("X"), None).await.unwrap());
    assert!(
        g1x.contains(&(sharing::DENY.to_owned(), "X".to_owned())),
        "{g1x:?}"
    );
    let read = s
        .read_with_relationships("Patient", "g2", Some("H"), None)
        .await
        .unwrap()
        .unwrap();
    let g2 = kinds(read.relationships);
    assert!(
        g2.contains(&(sharing::VERIFY.to_owned(), "H".to_owned())),
        "{g2:?}"
    );
    assert!(
        g2.contains(&(sharing::REJECTED.to_owned(), "H".to_owned())),
        "{g2:?}"
    );
    // The practice's own rows, for its data controller.
    let own = kinds(
        s.relationships(&format!("{PRACTICE_PREFIX}P1"), None, None)
            .await
            .unwrap(),
    );
    assert_eq!(own.len(), 2, "{own:?}");
}

/// A relationship row from `src` (`Type/id`) with no user and no detail.
fn rel(
    src: &str,
    org: &str,
    kind: &str,
    active: bool,
    start: Option<i64>,
    end: Option<i64>,
) -> RelationshipRow {
    let (src_type, src_id) = src.split_once('/').unwrap();
    RelationshipRow {
        org: org.into(),
        kind: kind.into(),
        user: None,
        active,
        start,
        end,
        src_type: src_type.into(),
        src_id: src_id.into(),
        detail: None,
    }
}

/// A break-glass grant for `user` at `org`, until `end`.
fn grant(id: &str, org: &str, user: &str, end: i64) -> RelationshipRow {
    RelationshipRow {
        user: Some(user.into()),
        detail: Some("EMERGENCY".into()),
        ..rel(
            &format!("{}/{id}", relationship::BREAK_GLASS_SOURCE),
            org,
            relationship::BREAK_GLASS,
            true,
            Some(0),
            Some(end),
        )
    }
}

async fn put_rels<S: Store>(s: &S, patient: Option<&str>, rows: &[RelationshipRow]) {
    let (src_type, src_id) = rows
        .first()
        .map(|r| (r.src_type.clone(), r.src_id.clone()))
        .unwrap();
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships(&src_type, &src_id, patient, rows)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Deletes every relationship row of one source, committed.
async fn clear_rels<S: Store>(s: &S, src_type: &str, src_id: &str) {
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships(src_type, src_id, None, &[])
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// `src_type/src_id` of each row, in order.
fn sources(rows: &[RelationshipRow]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("{}/{}", r.src_type, r.src_id))
        .collect()
}

/// A practice's list: active GP registrations at that organisation only.
async fn registered_patients_of_a_practice<S: Store>(s: S) {
    let gp = |src: &str, org: &str, active: bool| {
        rel(src, org, relationship::GP_REGISTRATION, active, None, None)
    };
    put_rels(&s, Some("p2"), &[gp("Patient/p2", "G1", true)]).await;
    put_rels(&s, Some("p1"), &[gp("Patient/p1", "G1", true)]).await;
    put_rels(&s, Some("p3"), &[gp("Patient/p3", "G1", false)]).await;
    put_rels(&s, Some("p4"), &[gp("Patient/p4", "G2", true)]).await;
    put_rels(
        &s,
        Some("p5"),
        &[rel(
            "Encounter/e5",
            "G1",
            relationship::ENCOUNTER,
            true,
            None,
            None,
        )],
    )
    .await;
    assert_eq!(s.registered_patients("G1").await.unwrap(), ["p1", "p2"]);
    assert_eq!(s.registered_patients("G2").await.unwrap(), ["p4"]);
    assert!(s.registered_patients("G3").await.unwrap().is_empty());
}

fn audit_rec(time: i64, patients: &[&str], text: &str) -> store::audit::NewAudit {
    store::audit::NewAudit {
        time,
        patients: patients.iter().map(|p| (*p).to_owned()).collect(),
        record: format!(r#"{{"t":{time},"x":"{text}"}}"#),
    }
}

fn all_audit() -> store::audit::AuditQuery {
    store::audit::AuditQuery {
        limit: 10_000,
        ..Default::default()
    }
}

/// Appended records get seq 1, 2, 3, … and a chain that
/// `store::audit::chain_hash` reproduces (on PostgreSQL the hash is
/// computed in SQL: this proves both agree); queries filter by patient,
/// time and seq; checkpoints round-trip.
async fn audit_chain_appends_and_queries<S: Store>(s: S) {
    use store::audit::{GENESIS, chain_hash};
    assert!(s.audit_rows(&all_audit()).await.unwrap().is_empty());
    assert_eq!(
        s.append_audit(&[audit_rec(10, &["p1"], "a")])
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(
        s.append_audit(&[
            audit_rec(20, &["p2", "p1", "p2"], "b"),
            audit_rec(30, &[], "c é")
        ])
        .await
        .unwrap(),
        [2, 3]
    );
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.append_audit(&[audit_rec(40, &["p2"], "d")])
            .await
            .unwrap(),
        [4]
    );
    tx.commit().await.unwrap();
    let rows = s.audit_rows(&all_audit()).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let mut prev = GENESIS.to_owned();
    for r in &rows {
        assert_eq!(r.prev_hash, prev, "row {}", r.seq);
        assert_eq!(r.hash, chain_hash(&prev, r.seq, &r.record), "row {}", r.seq);
        prev = r.hash.clone();
    }
    assert_eq!(rows[1].patients, ["p1", "p2"], "deduplicated, sorted");
    assert!(rows[2].patients.is_empty());
    assert_eq!(rows[2].record, r#"{"t":30,"x":"c é"}"#, "stored as given");
    let seqs = |q: store::audit::AuditQuery| {
        let s = &s;
        async move {
            s.audit_rows(&q)
                .await
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    let q = |patient: Option<&str>, from, to, after, limit| store::audit::AuditQuery {
        patient: patient.map(str::to_owned),
        from,
        to,
        after,
        limit,
        without_patients: false,
    };
    assert_eq!(seqs(q(Some("p1"), None, None, None, 100)).await, [1, 2]);
    let bare = s
        .audit_rows(&store::audit::AuditQuery {
            without_patients: true,
            ..all_audit()
        })
        .await
        .unwrap();
    assert!(bare.iter().all(|r| r.patients.is_empty()));
    assert_eq!(
        bare.iter().map(|r| &r.hash).collect::<Vec<_>>(),
        rows.iter().map(|r| &r.hash).collect::<Vec<_>>()
    );
    assert_eq!(seqs(q(Some("p2"), None, None, None, 100)).await, [2, 4]);
    assert_eq!(seqs(q(None, Some(20), Some(40), None, 100)).await, [2, 3]);
    assert_eq!(seqs(q(None, None, None, Some(2), 100)).await, [3, 4]);
    assert_eq!(seqs(q(None, None, None, None, 2)).await, [1, 2]);
    assert_eq!(seqs(q(Some("p2"), None, None, Some(2), 100)).await, [4]);

    let cp = store::audit::Checkpoint {
        seq: 4,
        hash: rows[3].hash.clone(),
        time: 50,
        kid: "k1".into(),
        signature: "sig".into(),
    };
    s.add_audit_checkpoint(&cp).await.unwrap();
    s.add_audit_checkpoint(&cp).await.unwrap();
    assert_eq!(s.audit_checkpoints().await.unwrap(), [cp]);
}

/// Records appended in a transaction that rolls back are not there, and
/// their seqs are used by the next append (no gap).
async fn audit_in_transaction_commits_or_not<S: Store>(s: S) {
    s.append_audit(&[audit_rec(1, &["p1"], "a")]).await.unwrap();
    let mut tx = s.begin().await.unwrap();
    assert_eq!(
        tx.append_audit(&[audit_rec(2, &["p1"], "b")])
            .await
            .unwrap(),
        [2]
    );
    drop(tx);
    assert_eq!(
        s.append_audit(&[audit_rec(3, &["p1"], "c")]).await.unwrap(),
        [2]
    );
    let rows = s.audit_rows(&all_audit()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].record.contains(r#""x":"c""#));
    assert_eq!(rows[1].prev_hash, rows[0].hash);
}

/// `read_with_relationships` returns the current version, its stored
/// patient, and exactly what `relationships` returns for that patient.
async fn read_with_relationships_together<S: Store>(s: S) {
    assert!(
        s.read_with_relationships("Observation", "none", Some("A"), Some("u1"))
            .await
            .unwrap()
            .is_none()
    );
    put_one(
        &s,
        NewVersion {
            patient_id: Some("p1".into()),
            ..version(
                "Observation",
                "o1",
                1,
                10,
                Some(r#"{"resourceType":"Observation","id":"o1"}"#),
            )
        },
    )
    .await;
    put_one(
        &s,
        NewVersion {
            patient_id: Some("p1".into()),
            ..version(
                "Observation",
                "o1",
                2,
                20,
                Some(r#"{"resourceType":"Observation","id":"o1","status":"final"}"#),
            )
        },
    )
    .await;
    put_one(
        &s,
        version(
            "Organization",
            "org1",
            1,
            10,
            Some(r#"{"resourceType":"Organization","id":"org1"}"#),
        ),
    )
    .await;
    let e1 = rel(
        "Encounter/e1",
        "A",
        relationship::ENCOUNTER,
        true,
        Some(10),
        None,
    );
    let gp = rel(
        "Patient/p1",
        "G",
        relationship::GP_REGISTRATION,
        true,
        None,
        None,
    );
    let other = rel(
        "Encounter/e2",
        "B",
        relationship::ENCOUNTER,
        true,
        Some(10),
        None,
    );
    put_rels(&s, Some("p1"), std::slice::from_ref(&e1)).await;
    put_rels(&s, Some("p1"), std::slice::from_ref(&gp)).await;
    put_rels(&s, Some("p1"), std::slice::from_ref(&other)).await;
    put_rels(
        &s,
        Some("p2"),
        &[rel(
            "Encounter/e3",
            "A",
            relationship::ENCOUNTER,
            true,
            None,
            None,
        )],
    )
    .await;
    for (org, user) in [(Some("A"), Some("u1")), (None, None), (Some("B"), None)] {
        let got = s
            .read_with_relationships("Observation", "o1", org, user)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.resource.version, 2);
        assert!(got.resource.body.unwrap().contains("final"));
        assert_eq!(got.patient_id.as_deref(), Some("p1"));
        assert_eq!(
            got.relationships,
            s.relationships("p1", org, user).await.unwrap(),
            "{org:?} {user:?}"
        );
    }
    let got = s
        .read_with_relationships("Observation", "o1", Some("A"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sources(&got.relationships).len(),
        2,
        "A's encounter and the GP registration"
    );
    // No patient: no rows.
    let org = s
        .read_with_relationships("Organization", "org1", Some("A"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(org.patient_id, None);
    assert!(org.relationships.is_empty());
    // A deleted current version comes back deleted, like `read`.
    put_one(&s, version("Observation", "o1", 3, 30, None)).await;
    let gone = s
        .read_with_relationships("Observation", "o1", Some("A"), None)
        .await
        .unwrap()
        .unwrap();
    assert!(gone.resource.deleted);
}

/// Every committed change of relationship rows shows in the very next
/// `relationships` and `read_with_relationships` (a store may cache rows,
/// never serve stale ones: `store::relationship_cache`), whichever way the
/// rows changed: added, replaced, moved to another patient, deleted, a
/// practice's sharing rules, a per-user grant; a rolled-back change never
/// shows. Each step reads twice, so the second read is the one a cache
/// answers.
async fn relationship_changes_apply_to_the_next_read<S: Store>(s: S) {
    use relationship::{DISSENT, ENCOUNTER, GP_REGISTRATION, PRACTICE_PREFIX, sharing};
    for p in ["p1", "p2"] {
        put_one(
            &s,
            NewVersion {
                patient_id: Some(p.into()),
                ..version(
                    "Observation",
                    &format!("o-{p}"),
                    1,
                    10,
                    Some(r#"{"resourceType":"Observation"}"#),
                )
            },
        )
        .await;
    }
    // What each reader sees, both ways, read twice.
    async fn seen<S: Store>(s: &S, p: &str, org: &str, user: Option<&str>) -> Vec<String> {
        let mut all = Vec::new();
        for _ in 0..2 {
            let listed = s.relationships(p, Some(org), user).await.unwrap();
            let read = s
                .read_with_relationships("Observation", &format!("o-{p}"), Some(org), user)
                .await
                .unwrap()
                .unwrap()
                .relationships;
            assert_eq!(listed, read, "{p} {org} {user:?}");
            all.push(
                listed
                    .iter()
                    .map(|r| format!("{}/{} {}", r.src_type, r.src_id, r.kind))
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(all[0], all[1], "{p} {org} {user:?}");
        let mut got = all.swap_remove(0);
        got.sort();
        got
    }
    let encounter = rel("Encounter/e1", "A", ENCOUNTER, true, Some(10), None);
    let gp = rel("Patient/p1", "G", GP_REGISTRATION, true, None, None);
    assert!(seen(&s, "p1", "A", None).await.is_empty());
    put_rels(&s, Some("p1"), std::slice::from_ref(&encounter)).await;
    assert_eq!(seen(&s, "p1", "A", None).await, ["Encounter/e1 encounter"]);
    put_rels(&s, Some("p1"), std::slice::from_ref(&gp)).await;
    let dissent = rel("Consent/c1", "*", DISSENT, true, None, None);
    put_rels(&s, Some("p1"), std::slice::from_ref(&dissent)).await;
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        [
            "Consent/c1 dissent",
            "Encounter/e1 encounter",
            "Patient/p1 gp-registration"
        ]
    );
    // Replaced: the encounter finished (still A's row, now inactive).
    let finished = rel("Encounter/e1", "A", ENCOUNTER, false, Some(10), Some(20));
    put_rels(&s, Some("p1"), std::slice::from_ref(&finished)).await;
    let listed = s.relationships("p1", Some("A"), None).await.unwrap();
    let e1 = listed.iter().find(|r| r.src_id == "e1").unwrap();
    assert!(!e1.active && e1.end == Some(20), "{e1:?}");
    // Moved to another patient: gone from p1's, in p2's.
    assert!(seen(&s, "p2", "A", None).await.is_empty());
    put_rels(&s, Some("p2"), std::slice::from_ref(&finished)).await;
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        ["Consent/c1 dissent", "Patient/p1 gp-registration"]
    );
    assert_eq!(seen(&s, "p2", "A", None).await, ["Encounter/e1 encounter"]);
    // Deleted (the consent withdrawn).
    clear_rels(&s, "Consent", "c1").await;
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        ["Patient/p1 gp-registration"]
    );
    // The practice's sharing rules: a rule about A appears and goes.
    let rule = RelationshipRow {
        detail: Some("G".into()),
        ..rel("$sharing/G", "A", sharing::DENY, true, None, None)
    };
    let practice = format!("{PRACTICE_PREFIX}G");
    put_rels(&s, Some(&practice), std::slice::from_ref(&rule)).await;
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        ["$sharing/G sharing-deny", "Patient/p1 gp-registration"]
    );
    clear_rels(&s, "$sharing", "G").await;
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        ["Patient/p1 gp-registration"]
    );
    // A break-glass grant counts for its user's reads from then on.
    assert_eq!(
        seen(&s, "p1", "A", Some("u1")).await,
        ["Patient/p1 gp-registration"]
    );
    put_rels(&s, Some("p1"), &[grant("g1", "Z", "u1", 5_000)]).await;
    let with_grant = seen(&s, "p1", "A", Some("u1")).await;
    assert!(
        with_grant.contains(&format!(
            "{}/g1 break-glass",
            relationship::BREAK_GLASS_SOURCE
        )),
        "{with_grant:?}"
    );
    // Rolled back: nothing changes, and the next committed change shows.
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships("Patient", "p1", None, &[])
        .await
        .unwrap();
    drop(tx);
    assert_eq!(
        seen(&s, "p1", "A", None).await,
        ["Patient/p1 gp-registration"]
    );
    clear_rels(&s, "Patient", "p1").await;
    assert!(seen(&s, "p1", "A", None).await.is_empty());
}

/// Rows are replaced per source; an empty list or no patient deletes; rows
/// from another source are refused; a transaction sees its own rows.
async fn relationships_put_replace_delete<S: Store>(s: S) {
    let e1 = rel(
        "Encounter/e1",
        "A",
        relationship::ENCOUNTER,
        true,
        Some(10),
        None,
    );
    put_rels(&s, Some("p1"), std::slice::from_ref(&e1)).await;
    put_rels(
        &s,
        Some("p1"),
        &[rel(
            "EpisodeOfCare/x1",
            "B",
            relationship::EPISODE_OF_CARE,
            true,
            None,
            None,
        )],
    )
    .await;
    // Read back whole: every field round-trips.
    assert_eq!(s.relationships("p1", Some("A"), None).await.unwrap(), [e1]);
    let full = RelationshipRow {
        detail: Some("X".into()),
        ..grant("g1", "Q", "u1", 99)
    };
    put_rels(&s, Some("p1"), std::slice::from_ref(&full)).await;
    assert_eq!(
        s.relationships("p1", None, Some("u1")).await.unwrap(),
        [full]
    );

    // Replace: the encounter moves to organisation C (two rows now).
    put_rels(
        &s,
        Some("p1"),
        &[
            rel(
                "Encounter/e1",
                "C",
                relationship::ENCOUNTER,
                false,
                Some(10),
                Some(20),
            ),
            rel(
                "Encounter/e1",
                "D",
                relationship::ENCOUNTER,
                false,
                Some(10),
                Some(20),
            ),
        ],
    )
    .await;
    assert!(
        s.relationships("p1", Some("A"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sources(&s.relationships("p1", Some("C"), None).await.unwrap()),
        ["Encounter/e1"]
    );
    assert_eq!(
        sources(&s.relationships("p1", Some("D"), None).await.unwrap()),
        ["Encounter/e1"]
    );
    // The other source is untouched.
    assert_eq!(
        sources(&s.relationships("p1", Some("B"), None).await.unwrap()),
        ["EpisodeOfCare/x1"]
    );

    // Delete: no rows, or no patient.
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships("Encounter", "e1", Some("p1"), &[])
        .await
        .unwrap();
    tx.put_relationships(
        "EpisodeOfCare",
        "x1",
        None,
        &[rel(
            "EpisodeOfCare/x1",
            "B",
            relationship::EPISODE_OF_CARE,
            true,
            None,
            None,
        )],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for org in ["B", "C", "D"] {
        assert!(
            s.relationships("p1", Some(org), None)
                .await
                .unwrap()
                .is_empty(),
            "{org}"
        );
    }

    // A row from another source is refused before anything is written.
    let mut tx = s.begin().await.unwrap();
    let err = tx
        .put_relationships(
            "Encounter",
            "e2",
            Some("p1"),
            &[
                rel(
                    "Encounter/e2",
                    "A",
                    relationship::ENCOUNTER,
                    true,
                    None,
                    None,
                ),
                rel(
                    "Encounter/e3",
                    "A",
                    relationship::ENCOUNTER,
                    true,
                    None,
                    None,
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    drop(tx);

    // Inside a transaction: its own rows are visible to it, to others only
    // after commit.
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships(
        "Encounter",
        "e2",
        Some("p1"),
        &[rel(
            "Encounter/e2",
            "A",
            relationship::ENCOUNTER,
            true,
            None,
            None,
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        sources(&tx.relationships("p1", Some("A"), None).await.unwrap()),
        ["Encounter/e2"]
    );
    assert!(
        s.relationships("p1", Some("A"), None)
            .await
            .unwrap()
            .is_empty()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        sources(&s.relationships("p1", Some("A"), None).await.unwrap()),
        ["Encounter/e2"]
    );
}

/// `relationships` returns the asking organisation's rows, every GP
/// registration and the user's own grants, of that patient only: active
/// first, then by end descending with no end first, then by source.
async fn relationships_lookup_order<S: Store>(s: S) {
    use relationship::{CARE_TEAM, ENCOUNTER, EPISODE_OF_CARE, GP_REGISTRATION, REFERRAL};
    let p1: Vec<RelationshipRow> = vec![
        rel("Encounter/e1", "A", ENCOUNTER, false, Some(50), Some(100)),
        rel(
            "EpisodeOfCare/x1",
            "A",
            EPISODE_OF_CARE,
            true,
            Some(0),
            None,
        ),
        rel("CareTeam/ct1", "A", CARE_TEAM, true, None, Some(500)),
        rel("Patient/p1", "G", GP_REGISTRATION, true, Some(0), None),
        rel("ServiceRequest/r1", "B", REFERRAL, true, None, None),
        grant("bg1", "B", "u2", 1_000),
    ];
    for row in &p1 {
        put_rels(&s, Some("p1"), std::slice::from_ref(row)).await;
    }
    // Another patient's rows, of the same organisations, never show.
    for row in [
        rel("Encounter/e9", "A", ENCOUNTER, true, None, None),
        rel("Patient/p2", "G", GP_REGISTRATION, true, None, None),
    ] {
        put_rels(&s, Some("p2"), &[row]).await;
    }
    put_rels(&s, Some("p2"), &[grant("bg9", "B", "u2", 2_000)]).await;

    let of = |org: Option<&'static str>, user: Option<&'static str>| {
        let s = s.clone();
        async move { sources(&s.relationships("p1", org, user).await.unwrap()) }
    };
    assert_eq!(
        of(Some("A"), None).await,
        [
            "EpisodeOfCare/x1",
            "Patient/p1",
            "CareTeam/ct1",
            "Encounter/e1"
        ]
    );
    assert_eq!(
        of(Some("A"), Some("u2")).await,
        [
            "EpisodeOfCare/x1",
            "Patient/p1",
            "$break-glass/bg1",
            "CareTeam/ct1",
            "Encounter/e1"
        ]
    );
    assert_eq!(of(Some("A"), Some("u1")).await, of(Some("A"), None).await);
    assert_eq!(
        of(None, Some("u2")).await,
        ["Patient/p1", "$break-glass/bg1"]
    );
    assert_eq!(of(None, None).await, ["Patient/p1"]);
    // B's referral, and the grant at B: rows of the organisation come back
    // whatever user asks (the caller checks `user`).
    assert_eq!(
        of(Some("B"), None).await,
        ["Patient/p1", "ServiceRequest/r1", "$break-glass/bg1"]
    );
    assert_eq!(of(Some("Z"), None).await, ["Patient/p1"]);
    assert!(
        s.relationships("p3", Some("A"), Some("u2"))
            .await
            .unwrap()
            .is_empty()
    );
    // The rows come back whole.
    let got = s.relationships("p1", Some("B"), None).await.unwrap();
    assert_eq!(got[2], p1[5]);

    // At most 200 rows (one source with 250: several INSERTs).
    let many: Vec<RelationshipRow> = (0..250)
        .map(|i| {
            rel(
                "Encounter/many",
                &format!("M{i:03}"),
                ENCOUNTER,
                true,
                None,
                Some(i),
            )
        })
        .collect();
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships("Encounter", "many", Some("p4"), &many[..1])
        .await
        .unwrap();
    tx.put_relationships("Encounter", "many", Some("p4"), &many)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for org in ["M000", "M249"] {
        assert_eq!(
            s.relationships("p4", Some(org), None).await.unwrap().len(),
            1
        );
    }
    let mut tx = s.begin().await.unwrap();
    // Every row of kind gp-registration counts: turn them all into one.
    let gp: Vec<RelationshipRow> = many
        .iter()
        .map(|r| RelationshipRow {
            kind: GP_REGISTRATION.into(),
            ..r.clone()
        })
        .collect();
    tx.put_relationships("Encounter", "many", Some("p4"), &gp)
        .await
        .unwrap();
    let top = tx.relationships("p4", None, None).await.unwrap();
    assert_eq!(top.len(), relationship::MAX_ROWS);
    // Ordered by end descending: 249 first.
    assert_eq!(top[0].org, "M249");
    assert_eq!(top[199].org, "M050");
    tx.commit().await.unwrap();
}

/// Relationship rows written in a transaction that is dropped are not
/// stored; rows it deleted stay.
async fn relationships_rollback<S: Store>(s: S) {
    let x1 = rel(
        "EpisodeOfCare/x1",
        "A",
        relationship::EPISODE_OF_CARE,
        true,
        None,
        None,
    );
    put_rels(&s, Some("p1"), std::slice::from_ref(&x1)).await;
    {
        let mut tx = s.begin().await.unwrap();
        tx.put_relationships(
            "Encounter",
            "e1",
            Some("p1"),
            &[rel(
                "Encounter/e1",
                "A",
                relationship::ENCOUNTER,
                true,
                None,
                None,
            )],
        )
        .await
        .unwrap();
        tx.put_relationships("EpisodeOfCare", "x1", None, &[])
            .await
            .unwrap();
        assert!(tx.relationships("p1", Some("A"), None).await.unwrap().len() == 1);
        drop(tx);
    }
    assert_eq!(s.relationships("p1", Some("A"), None).await.unwrap(), [x1]);
    // Population search agrees.
    let mut tx = s.begin().await.unwrap();
    tx.put(&resource("Patient", "p1", 1, vec![])).await.unwrap();
    tx.commit().await.unwrap();
    let related = Filter::Related {
        org: "A".into(),
        user: None,
        now: 10,
        recent_since: 0,
        org_type: None,
        local: false,
    };
    assert_eq!(matching(&s, "Patient", vec![related]).await, ["p1"]);
}

/// `Filter::Related`: population search over the relationship rows, with
/// the time rules worked out by hand (now = 1000, recent since 500).
/// `Filter::Compartment` matches what belongs to the patient (the stored
/// `patient_id`), never another person's item that merely refers to them.
async fn compartment_filter<S: Store>(s: S) {
    let mut tx = s.begin().await.unwrap();
    let mut own = resource(
        "Observation",
        "own",
        1,
        vec![reference("subject", "Patient", "p1")],
    );
    own.patient_id = Some("p1".into());
    let mut other = resource(
        "Observation",
        "other",
        1,
        vec![
            reference("subject", "Patient", "p2"),
            reference("performer", "Patient", "p1"),
        ],
    );
    other.patient_id = Some("p2".into());
    let unlinked = resource("Observation", "unlinked", 1, vec![]);
    for v in [own, other, unlinked] {
        tx.put(&v).await.unwrap();
    }
    tx.commit().await.unwrap();
    let p1 = || vec![Filter::Compartment("p1".into())];
    assert_eq!(matching(&s, "Observation", p1()).await, vec!["own"]);
    assert_eq!(s.count("Observation", &p1()).await.unwrap(), 1);
    assert_eq!(
        matching(&s, "Observation", vec![Filter::Compartment("p2".into())]).await,
        vec!["other"]
    );
    assert!(
        matching(&s, "Observation", vec![Filter::Compartment("p3".into())])
            .await
            .is_empty()
    );
}

async fn related_filter<S: Store>(s: S) {
    use relationship::{CARE_TEAM, ENCOUNTER, EPISODE_OF_CARE, GP_REGISTRATION, REFERRAL};
    let (now, recent_since) = (1_000, 500);
    let mut tx = s.begin().await.unwrap();
    for (id, gender) in [
        ("p1", "male"),
        ("p2", "male"),
        ("p3", "male"),
        ("p4", "female"),
        ("p5", "female"),
        ("p6", "female"),
        ("p7", "male"),
        ("p8", "male"),
        ("p9", "female"),
        ("pd", "male"),
    ] {
        tx.put(&resource(
            "Patient",
            id,
            1,
            vec![token("gender", None, gender)],
        ))
        .await
        .unwrap();
    }
    tx.put(&resource(
        "Observation",
        "o1",
        1,
        vec![reference("subject", "Patient", "p1")],
    ))
    .await
    .unwrap();
    tx.put(&resource(
        "Observation",
        "o7",
        1,
        vec![reference("subject", "Patient", "p7")],
    ))
    .await
    .unwrap();
    let facts: Vec<(&str, RelationshipRow)> = vec![
        // Active, started, no end: matches.
        (
            "p1",
            rel(
                "EpisodeOfCare/x1",
                "A",
                EPISODE_OF_CARE,
                true,
                Some(100),
                None,
            ),
        ),
        // A second matching row of p1: still one result.
        (
            "p1",
            rel("Patient/p1", "A", GP_REGISTRATION, true, None, None),
        ),
        // Ended before now.
        (
            "p2",
            rel("CareTeam/ct2", "A", CARE_TEAM, true, None, Some(900)),
        ),
        // Starts in the future.
        (
            "p3",
            rel("ServiceRequest/r3", "A", REFERRAL, true, Some(2_000), None),
        ),
        // A finished encounter within recent_since.
        (
            "p4",
            rel("Encounter/e4", "A", ENCOUNTER, false, Some(550), Some(600)),
        ),
        // A finished encounter before recent_since.
        (
            "p5",
            rel("Encounter/e5", "A", ENCOUNTER, false, Some(300), Some(400)),
        ),
        // A break-glass grant for u1 only.
        ("p6", grant("bg6", "A", "u1", 2_000)),
        // Another organisation.
        (
            "p7",
            rel("EpisodeOfCare/x7", "B", EPISODE_OF_CARE, true, None, None),
        ),
        // Inactive, and not an encounter: an open end does not help.
        (
            "p8",
            rel("EpisodeOfCare/x8", "A", EPISODE_OF_CARE, false, None, None),
        ),
        // Bounds are inclusive: starts and ends exactly now.
        (
            "p9",
            rel("CareTeam/ct9", "A", CARE_TEAM, true, Some(now), Some(now)),
        ),
        // A deleted patient is never found.
        (
            "pd",
            rel("EpisodeOfCare/xd", "A", EPISODE_OF_CARE, true, None, None),
        ),
    ];
    for (patient, row) in &facts {
        tx.put_relationships(
            &row.src_type,
            &row.src_id,
            Some(*patient),
            std::slice::from_ref(row),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    put_one(&s, version("Patient", "pd", 2, 2, None)).await;

    let related = |org: &str, user: Option<&str>| Filter::Related {
        org: org.into(),
        user: user.map(str::to_owned),
        now,
        recent_since,
        org_type: None,
        local: false,
    };
    assert_eq!(
        matching(&s, "Patient", vec![related("A", None)]).await,
        ["p1", "p4", "p9"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![related("A", Some("u1"))]).await,
        ["p1", "p4", "p6", "p9"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![related("A", Some("u2"))]).await,
        ["p1", "p4", "p9"]
    );
    assert_eq!(
        matching(&s, "Patient", vec![related("B", None)]).await,
        ["p7"]
    );
    assert!(
        matching(&s, "Patient", vec![related("Z", Some("u1"))])
            .await
            .is_empty()
    );
    // Moving recent_since past p4's end drops it.
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![Filter::Related {
                org: "A".into(),
                user: None,
                now,
                recent_since: 601,
                org_type: None,
                local: false,
            }]
        )
        .await,
        ["p1", "p9"]
    );

    // AND with other filters.
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![
                related("A", Some("u1")),
                Filter::Token {
                    param: "gender".into(),
                    not: false,
                    any_of: vec![tv(None, Some("female"))],
                },
            ]
        )
        .await,
        ["p4", "p6", "p9"]
    );
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![
                Filter::Id(vec!["p1".into(), "p2".into(), "p4".into()]),
                related("A", None),
            ]
        )
        .await,
        ["p1", "p4"]
    );
    // Inside AnyOf.
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![Filter::AnyOf(vec![
                vec![related("A", None)],
                vec![Filter::Id(vec!["p7".into()])],
            ])]
        )
        .await,
        ["p1", "p4", "p7", "p9"]
    );
    assert_eq!(
        matching(
            &s,
            "Patient",
            vec![Filter::AnyOf(vec![
                vec![related("B", None)],
                vec![
                    related("A", Some("u1")),
                    Filter::Token {
                        param: "gender".into(),
                        not: false,
                        any_of: vec![tv(None, Some("male"))],
                    },
                ],
            ])]
        )
        .await,
        ["p1", "p7"]
    );
    // Through a chain: observations of related patients.
    assert_eq!(
        matching(
            &s,
            "Observation",
            vec![Filter::Chain {
                param: "subject".into(),
                target_type: "Patient".into(),
                filters: vec![related("A", None)],
            }]
        )
        .await,
        ["o1"]
    );
    // Only Patients have relationships: any other type matches nothing.
    assert!(
        matching(&s, "Observation", vec![related("A", None)])
            .await
            .is_empty()
    );

    // Inside a transaction, its own rows count.
    let mut tx = s.begin().await.unwrap();
    tx.put_relationships(
        "Encounter",
        "e5",
        Some("p5"),
        &[rel("Encounter/e5", "A", ENCOUNTER, true, Some(300), None)],
    )
    .await
    .unwrap();
    assert_eq!(
        tx.find("Patient", &[related("A", None)], 10).await.unwrap(),
        ["p1", "p4", "p5", "p9"]
    );
    drop(tx);
    assert_eq!(
        matching(&s, "Patient", vec![related("A", None)]).await,
        ["p1", "p4", "p9"]
    );
}
