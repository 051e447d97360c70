//! Errors to HTTP responses. The status and `OperationOutcome` come from
//! [`CoreError::http_status`] and [`CoreError::operation_outcome`], the one
//! mapping table; this module only wraps them in HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sharedcare_core::CoreError;

use crate::FHIR_JSON;

/// An error on its way out as an `OperationOutcome`.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        ApiError(e)
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
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.0.code(), "request failed");
        }
        let body = self.0.operation_outcome().to_string();
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON))],
            body,
        )
            .into_response()
    }
}
