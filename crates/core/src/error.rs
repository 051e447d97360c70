//! The errors of the FHIR interactions.
//!
//! Each variant has a stable code (`SC-…`), greppable in logs and documented
//! for client developers. The API crate maps them to HTTP statuses and
//! `OperationOutcome`s in exactly one place (`api::error`). Messages never
//! contain SQL, driver text, or values from the resource (personal data).

pub use fhir::Issue;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The body is not JSON, or not a JSON object.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The resource failed validation; the issues say where and why.
    #[error("the resource is not valid FHIR R4")]
    Invalid(Vec<Issue>),
    /// Something about the request is wrong (ids, parameters, bundle shape).
    #[error("{0}")]
    BadRequest(String),
    /// An unknown or unsupported search parameter (strict handling).
    #[error("unknown or unsupported search parameter '{0}'")]
    UnknownParameter(String),
    #[error("'{0}' is not a FHIR R4 resource type")]
    UnknownType(String),
    #[error("{rtype}/{id} is not known")]
    NotFound { rtype: String, id: String },
    #[error("{rtype}/{id} has been deleted")]
    Gone { rtype: String, id: String },
    /// If-Match named a version that is not the current one.
    #[error("version conflict: {0}")]
    VersionConflict(String),
    /// Conditional interaction criteria matched more than one resource.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A concurrent writer changed the same resource; retrying may succeed.
    #[error("a concurrent change to {0} won; retry the request")]
    Conflict(String),
    /// A feature this server does not offer.
    #[error("{0}")]
    NotSupported(String),
    /// A transaction failed on one entry: the whole transaction was rolled back.
    #[error("transaction failed at entry {index}: {source}")]
    InEntry {
        index: usize,
        source: Box<CoreError>,
    },
    /// The access policy refused (a stable policy reason code and a message
    /// that never names withheld content).
    #[error("{message}")]
    Forbidden {
        reason: &'static str,
        message: String,
        break_glass: bool,
    },
    /// No valid bearer token (the API adds `WWW-Authenticate`).
    #[error("{0}")]
    Unauthorized(String),
    #[error("the database is unavailable")]
    Unavailable,
    /// The request's audit record could not be written, so the request
    /// was not completed (nothing it would have returned left the server).
    #[error("the request was not completed because its audit record could not be written")]
    AuditFailed,
    #[error("internal error")]
    Internal,
}

impl CoreError {
    /// The stable, documented code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::MalformedJson(_) => "SC-1001",
            CoreError::Invalid(_) => "SC-1002",
            CoreError::BadRequest(_) => "SC-1003",
            CoreError::UnknownParameter(_) => "SC-1004",
            CoreError::UnknownType(_) => "SC-1005",
            CoreError::NotFound { .. } => "SC-1101",
            CoreError::Gone { .. } => "SC-1102",
            CoreError::VersionConflict(_) => "SC-1201",
            CoreError::PreconditionFailed(_) => "SC-1202",
            CoreError::Conflict(_) => "SC-1203",
            CoreError::NotSupported(_) => "SC-1301",
            CoreError::InEntry { source, .. } => source.code(),
            CoreError::Forbidden { .. } => "SC-1401",
            CoreError::Unauthorized(_) => "SC-1402",
            CoreError::Unavailable => "SC-1901",
            CoreError::AuditFailed => "SC-1902",
            CoreError::Internal => "SC-1900",
        }
    }

    /// The error behind any `InEntry` wrapping.
    pub fn root(&self) -> &CoreError {
        match self {
            CoreError::InEntry { source, .. } => source.root(),
            other => other,
        }
    }
}

impl From<store::StoreError> for CoreError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::Conflict { rtype, id } => {
                CoreError::Conflict(format!("{rtype}/{id}"))
            }
            store::StoreError::Unavailable(_) => CoreError::Unavailable,
            store::StoreError::Internal(_) => CoreError::Internal,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// The single mapping from errors to FHIR's HTTP statuses and
/// `OperationOutcome`s. The API crate uses it for responses and the bundle
/// processor for batch entry responses; nowhere else decides a status.
///
/// | error | status | issue code |
/// |---|---|---|
/// | MalformedJson | 400 | structure |
/// | Invalid | 422 | from the validator |
/// | BadRequest | 400 | invalid |
/// | UnknownParameter | 400 | not-supported |
/// | UnknownType | 404 | not-supported |
/// | NotFound | 404 | not-found |
/// | Gone | 410 | deleted |
/// | VersionConflict | 412 | conflict |
/// | PreconditionFailed | 412 | multiple-matches / processing |
/// | Conflict | 409 | conflict |
/// | NotSupported | 400 | not-supported |
/// | Unavailable | 503 | transient |
/// | AuditFailed | 503 | transient |
/// | Internal | 500 | exception |
impl CoreError {
    pub fn http_status(&self) -> u16 {
        match self.root() {
            CoreError::MalformedJson(_)
            | CoreError::BadRequest(_)
            | CoreError::UnknownParameter(_) => 400,
            CoreError::Invalid(_) => 422,
            CoreError::UnknownType(_) | CoreError::NotFound { .. } => 404,
            CoreError::Gone { .. } => 410,
            CoreError::VersionConflict(_) | CoreError::PreconditionFailed(_) => 412,
            CoreError::Conflict(_) => 409,
            CoreError::NotSupported(_) => 400,
            CoreError::Forbidden { .. } => 403,
            CoreError::Unauthorized(_) => 401,
            CoreError::Unavailable | CoreError::AuditFailed => 503,
            CoreError::Internal | CoreError::InEntry { .. } => 500,
        }
    }

    fn issue_code(&self) -> &'static str {
        match self.root() {
            CoreError::MalformedJson(_) => "structure",
            CoreError::Invalid(_) | CoreError::BadRequest(_) => "invalid",
            CoreError::UnknownParameter(_)
            | CoreError::UnknownType(_)
            | CoreError::NotSupported(_) => "not-supported",
            CoreError::NotFound { .. } => "not-found",
            CoreError::Gone { .. } => "deleted",
            CoreError::VersionConflict(_) | CoreError::Conflict(_) => "conflict",
            CoreError::PreconditionFailed(_) => "multiple-matches",
            CoreError::Forbidden { .. } => "forbidden",
            CoreError::Unauthorized(_) => "login",
            CoreError::Unavailable | CoreError::AuditFailed => "transient",
            CoreError::Internal | CoreError::InEntry { .. } => "exception",
        }
    }

    /// The `OperationOutcome` describing this error. Validation issues keep
    /// their own codes and locations; inside a Bundle, locations are prefixed
    /// with `Bundle.entry[i]`.
    pub fn operation_outcome(&self) -> serde_json::Value {
        use serde_json::json;
        let prefix = match self {
            CoreError::InEntry { index, .. } => Some(format!("Bundle.entry[{index}]")),
            _ => None,
        };
        let details = |text: String| json!({"coding": [{"system": "https://sharedcare.dev/CodeSystem/error", "code": self.code()}], "text": text});
        let issues: Vec<serde_json::Value> = match self.root() {
            CoreError::Invalid(issues) => issues
                .iter()
                .map(|i| {
                    let expr = match &prefix {
                        Some(p) => match i.expression.split_once('.') {
                            Some((_, rest)) => format!("{p}.resource.{rest}"),
                            None => format!("{p}.resource"),
                        },
                        None => i.expression.clone(),
                    };
                    json!({
                        "severity": i.severity.as_str(),
                        "code": i.code.as_str(),
                        "details": details(i.diagnostics.clone()),
                        "diagnostics": i.diagnostics,
                        "expression": [expr],
                    })
                })
                .collect(),
            root => {
                let mut issue = json!({
                    "severity": "error",
                    "code": self.issue_code(),
                    "details": details(root.to_string()),
                    "diagnostics": root.to_string(),
                });
                if let (Some(p), Some(obj)) = (&prefix, issue.as_object_mut()) {
                    obj.insert("expression".to_owned(), json!([p]));
                }
                if let CoreError::Forbidden { reason, .. } = root
                    && let Some(codings) = issue
                        .pointer_mut("/details/coding")
                        .and_then(serde_json::Value::as_array_mut)
                {
                    codings.push(json!({"system": "https://fhir.sharedcare.org.uk/CodeSystem/access-decision", "code": reason}));
                }
                vec![issue]
            }
        };
        json!({"resourceType": "OperationOutcome", "issue": issues})
    }
}
