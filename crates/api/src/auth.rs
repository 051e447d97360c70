//! Authentication: bearer JWTs on every `/fhir` request (except the
//! CapabilityStatement and SMART discovery), the embedded issuer's JWKS, and
//! the OAuth2 token endpoint (`client_credentials`).
//!
//! Invariants:
//! - A request reaches a FHIR handler only with a [`Caller`] built from a
//!   token that verified (signature, issuer, audience, time); otherwise 401
//!   with `WWW-Authenticate`.
//! - Tokens and client secrets are never logged; secrets are held only as
//!   SHA-256 digests and compared in constant time.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sharedcare_core::{Caller, CoreError};
use store::Store;

use crate::error::ApiError;
use crate::{AppState, St, read_body};

/// A client of the token endpoint (a demo user or a system client). The
/// identity it gets is configured here, never taken from the request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthClient {
    pub client_id: String,
    /// Hex SHA-256 of the client secret.
    pub secret_sha256: String,
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub registration: Option<String>,
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub related_person: Option<String>,
    /// The SMART scopes this client may have (space-separated).
    pub scope: String,
}

/// The embedded issuer: its key, its `iss`, and the audience it mints for.
pub struct EmbeddedIssuer {
    pub key: auth::IssuerKey,
    pub issuer: String,
    pub audience: String,
}

/// Who may call.
pub struct AuthConfig {
    verifier: Option<auth::Verifier>,
    issuer: Option<EmbeddedIssuer>,
    clients: Vec<OAuthClient>,
    token_ttl_secs: i64,
}

impl AuthConfig {
    /// Refuses every token (the default until configured).
    pub fn deny_all() -> AuthConfig {
        AuthConfig {
            verifier: None,
            issuer: None,
            clients: vec![],
            token_ttl_secs: 3600,
        }
    }

    pub fn new(
        verifier: auth::Verifier,
        issuer: Option<EmbeddedIssuer>,
        clients: Vec<OAuthClient>,
        token_ttl_secs: i64,
    ) -> AuthConfig {
        AuthConfig {
            verifier: Some(verifier),
            issuer,
            clients,
            token_ttl_secs,
        }
    }
}

/// The SHA-256 of a secret, hex: how client secrets are configured.
pub fn secret_digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The policy's view of a verified identity.
pub fn principal(id: auth::Identity) -> policy::Principal {
    policy::Principal {
        subject: id.subject,
        name: id.name,
        role: id.role,
        org: id.org,
        registration: id.registration,
        patient: id.patient,
        related_person: id.related_person,
        scopes: policy::scopes::parse(&id.scopes.join(" ")),
    }
}

fn unauthorized(message: &str, invalid_token: bool) -> Response {
    let mut response = ApiError::Core(CoreError::Unauthorized(message.to_owned())).into_response();
    let challenge = if invalid_token {
        format!(
            "Bearer realm=\"sharedcare\", error=\"invalid_token\", error_description=\"{}\"",
            message.replace('"', "'")
        )
    } else {
        "Bearer realm=\"sharedcare\"".to_owned()
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn now_secs<S: Store>(st: &AppState<S>) -> i64 {
    st.service.now().div_euclid(1_000_000)
}

/// Middleware: verifies the bearer token and attaches the [`Caller`].
pub(crate) async fn authenticate<S: Store>(
    State(st): St<S>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(token) = bearer(req.headers()) else {
        return unauthorized("this request needs an Authorization: Bearer token", false);
    };
    let Some(verifier) = &st.config.auth.verifier else {
        return unauthorized("no token issuer is trusted by this server", true);
    };
    match verifier.verify(token, now_secs(&st)) {
        Ok(identity) => {
            let trail = req
                .extensions()
                .get::<sharedcare_core::trail::Trail>()
                .cloned()
                .unwrap_or_default();
            if let Some(client) = &identity.client_id {
                trail.state().client = Some(client.clone());
            }
            req.extensions_mut()
                .insert(Caller::with_trail(principal(identity), trail));
            next.run(req).await
        }
        Err(e) if e.is_token_rejection() => {
            tracing::info!(target: "security", reason = e.code(), "token refused");
            unauthorized(&e.to_string(), true)
        }
        Err(e) => {
            tracing::error!(reason = e.code(), "token verification failed");
            ApiError::Core(CoreError::Internal).into_response()
        }
    }
}

/// `GET /fhir/.well-known/smart-configuration`
pub(crate) async fn smart_configuration<S: Store>(State(st): St<S>) -> Response {
    let base = st.service.config().base_url.clone();
    let root = base.strip_suffix("/fhir").unwrap_or(&base).to_owned();
    let issuer = st
        .config
        .auth
        .issuer
        .as_ref()
        .map(|i| i.issuer.clone())
        .unwrap_or_else(|| root.clone());
    let body = serde_json::json!({
        "issuer": issuer,
        "jwks_uri": format!("{root}/oauth/jwks"),
        "token_endpoint": format!("{root}/oauth/token"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["system/*.cruds", "user/*.cruds", "patient/*.rs", "patient/*.cruds"],
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-symmetric", "permission-v2", "permission-v1", "context-standalone-patient"],
        "code_challenge_methods_supported": ["S256"],
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// `GET /oauth/jwks`: the embedded issuer's public keys.
pub(crate) async fn jwks<S: Store>(State(st): St<S>) -> Response {
    let keys = st
        .config
        .auth
        .issuer
        .as_ref()
        .map(|i| i.key.jwks())
        .unwrap_or_else(|| serde_json::json!({"keys": []}));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        keys.to_string(),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut r = (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sharedcare\""),
        );
    }
    r
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /oauth/token` (`grant_type=client_credentials`): a token for a
/// configured client, with its configured identity and at most its scopes.
pub(crate) async fn token<S: Store>(State(st): St<S>, headers: HeaderMap, body: Body) -> Response {
    let Some(issuer) = &st.config.auth.issuer else {
        return oauth_error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "this server issues no tokens",
        );
    };
    let bytes = match read_body(&st, &headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let form = std::str::from_utf8(&bytes).unwrap_or("");
    let Ok(pairs) = sharedcare_core::query::parse_query_string(form) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body is not a form",
        );
    };
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("grant_type").as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        );
    }
    let credentials =
        basic_credentials(&headers).or_else(|| get("client_id").zip(get("client_secret")));
    let Some((client_id, secret)) = credentials else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication is required",
        );
    };
    let digest = secret_digest(&secret);
    let client = st.config.auth.clients.iter().find(|c| {
        c.client_id == client_id && constant_time_eq(c.secret_sha256.as_bytes(), digest.as_bytes())
    });
    let Some(client) = client else {
        tracing::info!(target: "security", "token request with bad client credentials");
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client or wrong secret",
        );
    };
    let allowed: Vec<&str> = client.scope.split_whitespace().collect();
    let scope = match get("scope") {
        Some(asked) => {
            let asked: Vec<&str> = asked.split_whitespace().collect();
            if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope '{bad}' is not granted to this client"),
                );
            }
            asked.join(" ")
        }
        None => allowed.join(" "),
    };
    let now = now_secs(&st);
    let ttl = st.config.auth.token_ttl_secs;
    let claims = auth::TokenClaims {
        iss: issuer.issuer.clone(),
        aud: issuer.audience.clone(),
        sub: client.client_id.clone(),
        exp: now + ttl,
        nbf: now,
        iat: now,
        jti: st.service.new_id(),
        name: client.name.clone(),
        role: client.role.clone(),
        scope: scope.clone(),
        org: client.org.clone(),
        registration: client.registration.clone(),
        patient: client.patient.clone(),
        related_person: client.related_person.clone(),
        client_id: Some(client.client_id.clone()),
    };
    match issuer.key.mint(&claims) {
        Ok(token) => {
            let body = serde_json::json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": ttl,
                "scope": scope,
            });
            (
                StatusCode::OK,
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                ],
                body.to_string(),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(reason = e.code(), "token signing failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the token could not be signed",
            )
        }
    }
}

impl std::fmt::Debug for AuthConfig {
    /// Never prints keys or secret digests.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("verifier", &self.verifier.is_some())
            .field("embedded_issuer", &self.issuer.as_ref().map(|i| &i.issuer))
            .field("clients", &self.clients.len())
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}
