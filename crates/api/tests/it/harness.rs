use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use sharedcare_core::{Clock, IdGenerator, Service, ServiceConfig};
use store_conformance::TempDir;
use tower::ServiceExt;

pub const BASE: &str = "http://test.local/fhir";

/// A clock that advances one millisecond per reading, from 2026-01-01.
pub struct StepClock(AtomicI64);
impl Clock for StepClock {
    fn now(&self) -> i64 {
        self.0.fetch_add(1_000, Ordering::Relaxed)
    }
}

pub struct SeqIds(AtomicU64);
impl IdGenerator for SeqIds {
    fn new_id(&self) -> String {
        format!("id{}", self.0.fetch_add(1, Ordering::Relaxed))
    }
}

pub struct TestApp {
    pub name: &'static str,
    pub app: Router,
    _dir: Option<TempDir>,
}

fn service<S: store::Store>(store: S) -> Service<S> {
    Service::new(
        store,
        Arc::new(StepClock(AtomicI64::new(1_767_225_600_000_000))),
        Arc::new(SeqIds(AtomicU64::new(1))),
        ServiceConfig {
            base_url: BASE.to_owned(),
        },
    )
}

pub fn config() -> api::ApiConfig {
    api::ApiConfig {
        max_body_bytes: 64 * 1024 * 1024,
        software_version: "test".to_owned(),
    }
}

/// A fresh, empty app per backend.
pub async fn apps_with(config: api::ApiConfig) -> Vec<TestApp> {
    let mut out = Vec::new();
    let dir = TempDir::new("api");
    let store = store_sqlite::SqliteStore::open(store_sqlite::SqliteConfig {
        path: dir.path().join("db.sqlite"),
        durable: false,
        max_idle_readers: 8,
    })
    .unwrap();
    out.push(TestApp {
        name: "sqlite",
        app: api::router(service(store), config.clone()),
        _dir: Some(dir),
    });
    if let Ok(url) = std::env::var("SHAREDCARE_TEST_DATABASE_URL") {
        static N: AtomicU64 = AtomicU64::new(0);
        let mut pc = store_postgres::PostgresConfig::new(url);
        pc.schema = Some(format!(
            "api_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let store = store_postgres::PostgresStore::connect(pc).await.unwrap();
        out.push(TestApp {
            name: "postgres",
            app: api::router(service(store), config),
            _dir: None,
        });
    } else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            eprintln!(
                "NOTE: PostgreSQL API tests skipped (SHAREDCARE_TEST_DATABASE_URL is not set)"
            )
        });
    }
    out
}

pub async fn apps() -> Vec<TestApp> {
    apps_with(config()).await
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The OperationOutcome's first issue code and our error code.
    pub fn outcome(&self) -> (String, String) {
        let v = self.json();
        assert_eq!(v["resourceType"], "OperationOutcome", "{}", self.text);
        (
            v["issue"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            v["issue"][0]["details"]["coding"][0]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

impl TestApp {
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        let mut has_ct = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            req = req.header(*k, *v);
        }
        if body.is_some() && !has_ct {
            req = req.header("content-type", "application/fhir+json");
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_owned()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Resp {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub async fn get(&self, uri: &str) -> Resp {
        self.call("GET", uri, &[], None).await
    }
    pub async fn post(&self, uri: &str, body: &str) -> Resp {
        self.call("POST", uri, &[], Some(body)).await
    }
    pub async fn put(&self, uri: &str, body: &str) -> Resp {
        self.call("PUT", uri, &[], Some(body)).await
    }
}
