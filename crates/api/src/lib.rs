//! The FHIR REST API: HTTP in, HTTP out.
//!
//! Architecture invariants:
//! - This is the only crate that knows HTTP. Handlers translate a request
//!   into a call on [`sharedcare_core::Service`] and its result into a
//!   response; they make no FHIR decisions of their own.
//! - Every error leaves as an `OperationOutcome` (see [`error`]), never as a
//!   stack trace, plain text or SQL.
//! - Nothing here logs personal data: request logs carry the route template,
//!   the status and the time taken, never ids from the path or the query.

pub mod auth;
pub mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sharedcare_core::{
    Caller, CoreError, DeleteOutcome, Resource, Service, WriteKind, WriteOutcome, instant, query,
};
use store::Store;

use crate::error::{ApiError, http_error};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Reported in the CapabilityStatement.
    pub software_version: String,
    /// Who may call, and the embedded token issuer (if any).
    pub auth: Arc<auth::AuthConfig>,
    /// Append an audit record for every request that writes nothing
    /// (reads, searches, refusals). Always on in the server (the CLI has no
    /// setting for it); the benchmark turns it off to measure what audit
    /// costs. Writes audit inside their own transaction regardless.
    pub audit_requests: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 16 * 1024 * 1024,
            software_version: "0.0.0".to_owned(),
            auth: Arc::new(auth::AuthConfig::deny_all()),
            audit_requests: true,
        }
    }
}

pub(crate) struct AppState<S> {
    service: Service<S>,
    config: ApiConfig,
}

pub(crate) type St<S> = State<Arc<AppState<S>>>;
type ApiResult = Result<Response, ApiError>;

/// Builds the whole HTTP application.
pub fn router<S: Store>(service: Service<S>, config: ApiConfig) -> Router {
    let state = Arc::new(AppState { service, config });
    let fhir = Router::new()
        .route("/", post(bundle::<S>).get(system_search::<S>))
        .route("/_history", get(history_system::<S>))
        .route("/$alerts", get(alerts::<S>))
        .route("/$sharing", get(sharing::<S>).post(set_sharing::<S>))
        .route(
            "/{rtype}",
            get(search::<S>)
                .post(create::<S>)
                .put(conditional_update::<S>)
                .delete(conditional_delete::<S>),
        )
        .route("/{rtype}/_search", post(search_post::<S>))
        .route("/{rtype}/_history", get(history_type::<S>))
        .route("/{rtype}/$validate", post(validate_type::<S>))
        .route(
            "/{rtype}/{id}",
            get(read::<S>).put(update::<S>).delete(delete::<S>),
        )
        .route("/{rtype}/{id}/$validate", post(validate_instance::<S>))
        .route("/{rtype}/{id}/$everything", get(everything::<S>))
        .route("/{rtype}/{id}/$access-log", get(access_log::<S>))
        .route("/{rtype}/{id}/$break-glass", post(break_glass::<S>))
        .route("/{rtype}/{id}/{ctype}", get(compartment::<S>))
        .route("/{rtype}/{id}/_history", get(history_instance::<S>))
        .route("/{rtype}/{id}/_history/{vid}", get(vread::<S>))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate::<S>,
        ))
        // Inside the audit: a request refused in negotiation (406, 415)
        // leaves its record like any other.
        .layer(middleware::from_fn(negotiate))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_request::<S>,
        ))
        .merge(
            Router::new()
                .route("/metadata", get(metadata::<S>))
                .route(
                    "/.well-known/smart-configuration",
                    get(auth::smart_configuration::<S>),
                )
                .layer(middleware::from_fn(negotiate)),
        );
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/token", post(auth::token::<S>))
        .route("/oauth/jwks", get(auth::jwks::<S>))
        .route("/readyz", get(readyz::<S>))
        .nest("/fhir", fhir)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

// ----- cross-cutting -----

/// Middleware around every authenticated FHIR route: opens the request's
/// audit trail (the core records into it), and appends the request's one
/// audit record before the response leaves, unless the core already
/// appended it inside the request's write transaction. If the record
/// cannot be written the response is replaced by a 503: nothing the
/// request produced leaves unaudited.
async fn audit_request<S: Store>(
    State(st): St<S>,
    mut req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let action = action_of(req.method(), req.uri().path());
    let trail = sharedcare_core::trail::Trail::new(st.service.new_id(), action);
    req.extensions_mut().insert(trail.clone());
    let response = next.run(req).await;
    if !st.config.audit_requests {
        return response;
    }
    let note = response.extensions().get::<error::AuditNote>().copied();
    let appended = st
        .service
        .append_request_audit(
            &trail,
            response.status().as_u16(),
            note.map(|n| n.code),
            note.and_then(|n| n.reason),
        )
        .await;
    match appended {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(
                code = e.code(),
                "audit record not written; response withheld"
            );
            ApiError::Core(CoreError::AuditFailed).into_response()
        }
    }
}

/// The interaction a request is, from its method and path (under /fhir).
fn action_of(method: &Method, path: &str) -> audit::Action {
    use audit::Action;
    let path = path.strip_prefix("/fhir").unwrap_or(path);
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(op) = parts.iter().find_map(|p| p.strip_prefix('$')) {
        // Only names the server knows: the path is the client's text and
        // must not reach the audit log.
        return match op {
            "break-glass" => Action::BreakGlass,
            "everything" | "validate" | "access-log" | "alerts" | "sharing" => {
                Action::Operation(op.to_owned())
            }
            _ => Action::Operation("unknown".to_owned()),
        };
    }
    let history = parts.contains(&"_history");
    match (method.as_str(), parts.as_slice()) {
        ("GET", [_, _, "_history", _]) => Action::Vread,
        ("GET", _) if history => Action::History,
        ("GET", [_, _]) => Action::Read,
        ("GET", _) => Action::Search,
        ("POST", [_, "_search"]) | ("POST", ["_search"]) => Action::Search,
        ("POST", []) => Action::Transaction,
        ("POST", _) => Action::Create,
        ("PUT", _) => Action::Update,
        ("PATCH", _) => Action::Patch,
        ("DELETE", _) => Action::Delete,
        _ => Action::Read,
    }
}

/// Logs route template, status and duration only (no ids, no query).
async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(req).await;
    tracing::info!(
        %method,
        route = route.as_deref().unwrap_or("<unmatched>"),
        status = response.status().as_u16(),
        micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Is this media type one we produce or accept? (JSON flavours only.)
fn is_json_media(m: &str) -> bool {
    let m = m
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        m.as_str(),
        "application/fhir+json" | "application/json" | "json" | "application/json+fhir"
    )
}

fn accept_ok(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let m = part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        m == "*/*" || m == "application/*" || is_json_media(&m)
    })
}

/// Content negotiation for `/fhir`: `_format` wins over `Accept`; only JSON
/// is produced (406 otherwise); bodies must be JSON (415 otherwise).
async fn negotiate(req: Request, next: Next) -> Response {
    let format = req.uri().query().and_then(|q| {
        query::parse_query_string(q)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == "_format")
            .map(|(_, v)| v)
    });
    let acceptable = match format {
        // A literal `+` in `_format=application/fhir+json` arrives form-decoded as a space.
        Some(f) => is_json_media(&f.replace(' ', "+")),
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_none_or(accept_ok),
    };
    if !acceptable {
        return http_error(
            StatusCode::NOT_ACCEPTABLE,
            "SC-2001",
            "not-supported",
            "this server produces FHIR JSON only (application/fhir+json)",
        );
    }
    if matches!(*req.method(), Method::POST | Method::PUT) {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let form_search = req.uri().path().ends_with("/_search");
        let ok = match ct {
            None => true,
            Some(ct) if form_search => {
                ct.starts_with("application/x-www-form-urlencoded") || is_json_media(ct)
            }
            Some(ct) => is_json_media(ct),
        };
        if !ok {
            return http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "SC-2002",
                "not-supported",
                "send FHIR JSON (Content-Type: application/fhir+json)",
            );
        }
    }
    next.run(req).await
}

async fn not_found() -> Response {
    http_error(
        StatusCode::NOT_FOUND,
        "SC-2004",
        "not-found",
        "no such endpoint",
    )
}

async fn method_not_allowed() -> Response {
    http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "SC-2005",
        "not-supported",
        "method not allowed on this endpoint",
    )
}

async fn readyz<S: Store>(State(st): St<S>) -> Response {
    match st.service.ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response(),
    }
}

/// Reads the body, refusing more than the configured limit with 413.
pub(crate) async fn read_body<S>(
    st: &AppState<S>,
    headers: &HeaderMap,
    body: Body,
) -> Result<axum::body::Bytes, ApiError> {
    let limit = st.config.max_body_bytes;
    let too_large = || {
        ApiError::Http(Box::new(http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SC-2003",
            "too-costly",
            &format!("the request body is larger than the limit of {limit} bytes"),
        )))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn pairs(q: &Option<String>) -> Result<Vec<(String, String)>, ApiError> {
    Ok(query::parse_query_string(q.as_deref().unwrap_or(""))?)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Return {
    Minimal,
    Representation,
    Outcome,
}

struct Prefer {
    ret: Return,
    lenient: bool,
}

fn prefer(headers: &HeaderMap) -> Prefer {
    let mut p = Prefer {
        ret: Return::Representation,
        lenient: false,
    };
    for v in headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for part in v.split([',', ';']).map(str::trim) {
            match part {
                "return=minimal" => p.ret = Return::Minimal,
                "return=representation" => p.ret = Return::Representation,
                "return=OperationOutcome" => p.ret = Return::Outcome,
                "handling=lenient" => p.lenient = true,
                "handling=strict" => p.lenient = false,
                _ => {}
            }
        }
    }
    p
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    header_str(headers, "if-match")
        .map(sharedcare_core::parse_version)
        .transpose()
        .map_err(ApiError::Core)
}

/// `Wed, 25 Nov 2026 15:25:04 GMT`
fn http_date(micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(micros.div_euclid(1_000_000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = DAYS
        .get(usize::from(t.weekday().number_days_from_monday()))
        .copied()
        .unwrap_or("Mon");
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{day}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""))
}

pub(crate) fn fhir_response(
    status: StatusCode,
    body: String,
    extra: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    for (k, v) in extra {
        h.insert(k, v);
    }
    resp
}

fn version_headers(r: &Resource) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (header::ETAG, hv(&format!("W/\"{}\"", r.version))),
        (header::LAST_MODIFIED, hv(&http_date(r.last_updated))),
    ]
}

fn info_outcome(text: &str) -> String {
    serde_json::json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational", "diagnostics": text}]}).to_string()
}

fn write_response<S: Store>(st: &AppState<S>, out: WriteOutcome, headers: &HeaderMap) -> Response {
    let p = prefer(headers);
    let status = match out.kind {
        WriteKind::Created => StatusCode::CREATED,
        WriteKind::Updated | WriteKind::Existing => StatusCode::OK,
    };
    let base = &st.service.config().base_url;
    let location = format!("{base}/{}", out.resource.versioned_ref());
    let mut extra = version_headers(&out.resource);
    extra.push((header::CONTENT_LOCATION, hv(&location)));
    if out.kind == WriteKind::Created {
        extra.push((header::LOCATION, hv(&location)));
    }
    let body = match p.ret {
        Return::Minimal => String::new(),
        Return::Representation => out.resource.body,
        Return::Outcome => {
            let text = match out.kind {
                WriteKind::Created => "created",
                WriteKind::Updated => "updated",
                WriteKind::Existing => "a matching resource already exists; nothing was created",
            };
            info_outcome(text)
        }
    };
    if body.is_empty() {
        let mut resp = status.into_response();
        for (k, v) in extra {
            resp.headers_mut().insert(k, v);
        }
        return resp;
    }
    fhir_response(status, body, extra)
}

fn delete_response(out: DeleteOutcome, headers: &HeaderMap) -> Response {
    let mut extra = vec![];
    if let DeleteOutcome::Deleted { version } = out {
        extra.push((header::ETAG, hv(&format!("W/\"{version}\""))));
    }
    if prefer(headers).ret == Return::Outcome {
        let text = match out {
            DeleteOutcome::Deleted { .. } => "deleted",
            DeleteOutcome::NothingToDelete => "nothing to delete",
        };
        return fhir_response(StatusCode::OK, info_outcome(text), extra);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for (k, v) in extra {
        resp.headers_mut().insert(k, v);
    }
    resp
}

/// A searchset or history bundle; ignored parameters (lenient handling) are
/// reported in a warning header as well as being left out of the self link.
fn bundle_response(body: String, ignored: &[String]) -> Response {
    let mut extra = vec![];
    if !ignored.is_empty() {
        extra.push((
            HeaderName::from_static("x-sharedcare-ignored-parameters"),
            hv(&ignored.join(",")),
        ));
    }
    fhir_response(StatusCode::OK, body, extra)
}

// ----- handlers -----

async fn metadata<S: Store>(State(st): St<S>) -> Response {
    let date = instant::to_instant(0);
    let cs = sharedcare_core::capabilities::capability_statement(
        &st.service.config().base_url,
        &st.config.software_version,
        &date,
    );
    fhir_response(StatusCode::OK, cs.to_string(), vec![])
}

async fn bundle<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let out = st.service.bundle(&caller, &bytes).await?;
    Ok(fhir_response(StatusCode::OK, out, vec![]))
}

/// `GET /fhir?_type=A,B&…`: a search across the named types.
async fn system_search<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let (body, ignored) = st
        .service
        .system_search(&caller, &pairs(&q)?, prefer(&headers).lenient)
        .await?;
    Ok(bundle_response(body, &ignored))
}

async fn compartment<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id, ctype)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    if rtype != "Patient" {
        return Err(ApiError::Core(CoreError::NotSupported(
            "only the Patient compartment is supported".to_owned(),
        )));
    }
    let (body, ignored) = st
        .service
        .compartment_search(&caller, &id, &ctype, &pairs(&q)?, prefer(&headers).lenient)
        .await?;
    Ok(bundle_response(body, &ignored))
}

async fn everything<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    if rtype != "Patient" {
        return Err(ApiError::Core(CoreError::NotSupported(
            "$everything is supported on Patient only".to_owned(),
        )));
    }
    Ok(bundle_response(
        st.service.everything(&caller, &id, &pairs(&q)?).await?,
        &[],
    ))
}

async fn create<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let out = st
        .service
        .create(
            &caller,
            &rtype,
            &bytes,
            header_str(&headers, "if-none-exist"),
        )
        .await?;
    Ok(write_response(&st, out, &headers))
}

async fn read<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
) -> ApiResult {
    let r = st.service.read(&caller, &rtype, &id).await?;
    let extra = version_headers(&r);
    Ok(fhir_response(StatusCode::OK, r.body, extra))
}

async fn vread<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id, vid)): Path<(String, String, String)>,
) -> ApiResult {
    let r = st.service.vread(&caller, &rtype, &id, &vid).await?;
    let extra = version_headers(&r);
    Ok(fhir_response(StatusCode::OK, r.body, extra))
}

async fn update<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let out = st
        .service
        .update(&caller, &rtype, &id, &bytes, if_match(&headers)?)
        .await?;
    Ok(write_response(&st, out, &headers))
}

async fn conditional_update<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let out = st
        .service
        .conditional_update(
            &caller,
            &rtype,
            q.as_deref().unwrap_or(""),
            &bytes,
            if_match(&headers)?,
        )
        .await?;
    Ok(write_response(&st, out, &headers))
}

async fn delete<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    Ok(delete_response(
        st.service.delete(&caller, &rtype, &id).await?,
        &headers,
    ))
}

async fn conditional_delete<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    Ok(delete_response(
        st.service
            .conditional_delete(&caller, &rtype, q.as_deref().unwrap_or(""))
            .await?,
        &headers,
    ))
}

async fn search<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    if rtype == "AuditEvent" {
        // The audit log, not stored resources.
        return Ok(bundle_response(
            st.service.audit_events(&caller, &pairs(&q)?).await?,
            &[],
        ));
    }
    let (body, ignored) = st
        .service
        .search(&caller, &rtype, &pairs(&q)?, prefer(&headers).lenient)
        .await?;
    Ok(bundle_response(body, &ignored))
}

/// `GET $alerts`: a data controller's alerts for their practice.
async fn alerts<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Ok(bundle_response(
        st.service.alerts(&caller, &pairs(&q)?).await?,
        &[],
    ))
}

/// `GET $sharing`: a data controller's sharing settings for their practice.
async fn sharing<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    if let Some((k, _)) = pairs(&q)?.first() {
        return Err(ApiError::Core(CoreError::UnknownParameter(k.clone())));
    }
    let body = st.service.sharing_settings(&caller).await?;
    Ok(fhir_response(StatusCode::OK, body, vec![]))
}

/// `POST $sharing`: changes them (a `Parameters` body).
async fn set_sharing<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let body = st.service.set_sharing(&caller, &bytes).await?;
    Ok(fhir_response(StatusCode::OK, body, vec![]))
}

/// `GET Patient/[id]/$access-log`: who looked at my record.
async fn access_log<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
) -> ApiResult {
    if rtype != "Patient" {
        return Err(ApiError::Core(CoreError::NotSupported(
            "$access-log is supported on Patient only".to_owned(),
        )));
    }
    let body = st.service.access_log(&caller, &id).await?;
    Ok(fhir_response(StatusCode::OK, body, vec![]))
}

async fn search_post<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    let form = std::str::from_utf8(&bytes).map_err(|_| {
        ApiError::Core(CoreError::BadRequest(
            "the form body is not UTF-8".to_owned(),
        ))
    })?;
    let mut all = pairs(&q)?;
    all.extend(query::parse_query_string(form)?);
    if rtype == "AuditEvent" {
        return Ok(bundle_response(
            st.service.audit_events(&caller, &all).await?,
            &[],
        ));
    }
    let (body, ignored) = st
        .service
        .search(&caller, &rtype, &all, prefer(&headers).lenient)
        .await?;
    Ok(bundle_response(body, &ignored))
}

async fn history_system<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Ok(bundle_response(
        st.service.history(&caller, None, None, &pairs(&q)?).await?,
        &[],
    ))
}

async fn history_type<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Ok(bundle_response(
        st.service
            .history(&caller, Some(&rtype), None, &pairs(&q)?)
            .await?,
        &[],
    ))
}

async fn history_instance<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Ok(bundle_response(
        st.service
            .history(&caller, Some(&rtype), Some(&id), &pairs(&q)?)
            .await?,
        &[],
    ))
}

fn validation_response(issues: Vec<fhir_issue::Issue>) -> Response {
    let mut list: Vec<serde_json::Value> = issues
        .iter()
        .map(|i| {
            serde_json::json!({
                "severity": i.severity.as_str(),
                "code": i.code.as_str(),
                "diagnostics": i.diagnostics,
                "expression": [i.expression],
            })
        })
        .collect();
    if list.is_empty() {
        list.push(serde_json::json!({"severity": "information", "code": "informational", "diagnostics": "the resource is valid"}));
    }
    let body = serde_json::json!({"resourceType": "OperationOutcome", "issue": list}).to_string();
    // $validate answers 200 whatever it finds: the outcome is the answer.
    fhir_response(StatusCode::OK, body, vec![])
}

mod fhir_issue {
    pub use sharedcare_core::error::Issue;
}

async fn validate_type<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path(rtype): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    Ok(validation_response(
        st.service.validate(&caller, &rtype, None, &bytes)?,
    ))
}

async fn validate_instance<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let bytes = read_body(&st, &headers, body).await?;
    Ok(validation_response(st.service.validate(
        &caller,
        &rtype,
        Some(&id),
        &bytes,
    )?))
}

/// `POST Patient/[id]/$break-glass` with a `Parameters` body: `reason` (a
/// `v3-ActReason` code, as valueCode or valueCoding) and `reasonText`.
async fn break_glass<S: Store>(
    State(st): St<S>,
    Extension(caller): Extension<Caller>,
    Path((rtype, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    if rtype != "Patient" {
        return Err(ApiError::Core(CoreError::NotSupported(
            "$break-glass is defined on Patient only".to_owned(),
        )));
    }
    let bytes = read_body(&st, &headers, body).await?;
    let params: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Core(CoreError::MalformedJson(e.to_string())))?;
    let find = |name: &str| {
        params
            .get("parameter")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("name").and_then(serde_json::Value::as_str) == Some(name))
            .cloned()
    };
    let reason = find("reason")
        .and_then(|p| {
            p.get("valueCode")
                .or_else(|| p.pointer("/valueCoding/code"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let text = find("reasonText")
        .and_then(|p| {
            p.get("valueString")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let expires = st.service.break_glass(&caller, &id, &reason, &text).await?;
    let out = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "expires", "valueInstant": instant::to_instant(expires)}]
    });
    Ok(fhir_response(StatusCode::OK, out.to_string(), vec![]))
}
