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

pub fn service<S: store::Store>(store: S) -> Service<S> {
    Service::new(
        store,
        Arc::new(StepClock(AtomicI64::new(1_767_225_600_000_000))),
        Arc::new(SeqIds(AtomicU64::new(1))),
        ServiceConfig {
            base_url: BASE.to_owned(),
        },
    )
}

/// The test issuer's key (a fixed seed: tests are deterministic).
pub fn issuer_key() -> auth::IssuerKey {
    auth::IssuerKey::from_seed([7u8; 32])
}

/// Tokens are valid from before the step clock's start for ten years.
const NBF: i64 = 1_767_225_000;
const EXP: i64 = 1_767_225_600 + 10 * 365 * 86_400;

/// A token from the test issuer.
pub struct Who<'a> {
    pub sub: &'a str,
    pub role: &'a str,
    pub org: Option<&'a str>,
    pub registration: Option<&'a str>,
    pub patient: Option<&'a str>,
    pub related_person: Option<&'a str>,
    pub scope: &'a str,
}

impl Default for Who<'_> {
    fn default() -> Self {
        Who {
            sub: "integration-engine",
            role: "integration",
            org: None,
            registration: None,
            patient: None,
            related_person: None,
            scope: "system/*.cruds",
        }
    }
}

pub fn token(who: &Who) -> String {
    issuer_key()
        .mint(&auth::TokenClaims {
            iss: BASE.to_owned(),
            aud: BASE.to_owned(),
            sub: who.sub.to_owned(),
            exp: EXP,
            nbf: NBF,
            iat: NBF,
            jti: format!("jti-{}", who.sub),
            name: format!("Test {}", who.sub),
            role: who.role.to_owned(),
            scope: who.scope.to_owned(),
            org: who.org.map(str::to_owned),
            registration: who.registration.map(str::to_owned),
            patient: who.patient.map(str::to_owned),
            related_person: who.related_person.map(str::to_owned),
            client_id: None,
        })
        .unwrap()
}

/// The bearer header value for a system client with every scope (what the
/// tests of FHIR behaviour run as).
pub fn system_bearer() -> String {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    format!("Bearer {}", TOKEN.get_or_init(|| token(&Who::default())))
}

pub fn config() -> api::ApiConfig {
    let key = issuer_key();
    let verifier = auth::Verifier::new(auth::VerifierConfig::new(
        BASE,
        vec![key.trusted_issuer(BASE)],
    ))
    .unwrap();
    api::ApiConfig {
        max_body_bytes: 64 * 1024 * 1024,
        software_version: "test".to_owned(),
        auth: Arc::new(api::auth::AuthConfig::new(
            verifier,
            Some(api::auth::EmbeddedIssuer {
                key,
                issuer: BASE.to_owned(),
                audience: BASE.to_owned(),
            }),
            vec![api::auth::OAuthClient {
                client_id: "ehr-feed".to_owned(),
                secret_sha256: api::auth::secret_digest("s3cret"),
                name: "A hospital EPR feed".to_owned(),
                role: "integration".to_owned(),
                org: Some("RXX01".to_owned()),
                registration: None,
                patient: None,
                related_person: None,
                scope: "system/Encounter.cru system/Patient.rs".to_owned(),
            }],
            3600,
        )),
        audit_requests: true,
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
    pub fn new(name: &'static str, app: Router) -> TestApp {
        TestApp {
            name,
            app,
            _dir: None,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        let mut has_ct = false;
        let mut has_auth = false;
        for (k, v) in headers {
            has_ct |= k.eq_ignore_ascii_case("content-type");
            has_auth |= k.eq_ignore_ascii_case("authorization");
            // An empty value means "send no such header".
            if !v.is_empty() {
                req = req.header(*k, *v);
            }
        }
        if !has_auth {
            req = req.header("authorization", system_bearer());
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
