//! Errors to HTTP responses. The status and `OperationOutcome` come from
//! [`CoreError::http_status`] and [`CoreError::operation_outcome`], the one
//! mapping table; this module only wraps them in HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sharedcare_core::CoreError;

use crate::FHIR_JSON;

/// An error on its way out as an `OperationOutcome`: a core error, or a
/// response the HTTP layer has already built (413, 415…).
#[derive(Debug)]
pub enum ApiError {
    Core(CoreError),
    Http(Box<Response>),
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError::Core(e)
    }
}

/// Errors the HTTP layer itself finds before the core is reached.
pub(crate) fn http_error(status: StatusCode, code: &str, issue: &str, text: &str) -> Response {
    let body = serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue,
            "details": {"coding": [{"system": "https://sharedcare.dev/CodeSystem/error", "code": code}], "text": text},
            "diagnostics": text,
        }]
    });
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            ApiError::Core(e) => e,
            ApiError::Http(response) => return *response,
        };
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = error.code(), "request failed");
        }
        let body = error.operation_outcome().to_string();
        let reason = match &error {
            CoreError::Forbidden { reason, .. } => Some(*reason),
            CoreError::InEntry { source, .. } => match source.as_ref() {
                CoreError::Forbidden { reason, .. } => Some(*reason),
                _ => None,
            },
            _ => None,
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
            body,
        )
            .into_response();
        // For the request's audit record (never sent to the client).
        response.extensions_mut().insert(AuditNote {
            code: error.code(),
            reason,
        });
        response
    }
}

/// An error response's stable code and policy reason, for the audit
/// record the API appends before the response leaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuditNote {
    pub code: &'static str,
    pub reason: Option<&'static str>,
}
