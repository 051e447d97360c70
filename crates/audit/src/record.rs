//! The audit record: what is appended to the audit log for every request.
//!
//! Invariants:
//! - A record holds no clinical content: no resource bodies, no search
//!   parameter *values*, no free text from the request. People and
//!   resources are named by logical id, search parameters by name, security
//!   labels by code, decisions by stable reason codes.
//! - The user is recorded as they were at the time (name, role,
//!   registration, organisation), so later changes to the directory do not
//!   rewrite history.
//! - [`AuditRecord::to_canonical_json`] is deterministic: `serde_json`
//!   writes fields in declaration order, every field is always written
//!   (absent optionals as `null`), and no map types are used. The text it
//!   returns is what the store hashes into the chain. Verification hashes
//!   the *stored text*; a record must never be parsed and re-serialised to
//!   check a hash, since a future field or formatting change would then
//!   break every old hash.
//! - Parsing is strict (`deny_unknown_fields` throughout), and parse errors
//!   never quote the input.
//!
//! The FHIR operation name is carried inside [`Action::Operation`], which
//! serialises as `{"operation":"everything"}`; every other action is a plain
//! kebab-case string such as `"read"` or `"break-glass"`.

use serde::{Deserialize, Serialize};
use store::Micros;

use crate::AuditError;

/// What the request did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Read,
    Vread,
    Search,
    History,
    Create,
    Update,
    Patch,
    Delete,
    Transaction,
    Batch,
    /// A FHIR operation, by name without the `$` (e.g. `everything`).
    Operation(String),
    /// A user invoked break-glass (emergency access) for a person.
    BreakGlass,
    /// A person's consent (sharing choices or a proxy grant) was created or
    /// changed.
    ConsentChange,
}

/// The user who made the request, as they were at the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditUser {
    /// The identity provider's subject identifier.
    pub subject: String,
    /// Display name.
    pub name: String,
    /// Role code (e.g. `gp`, `care-worker`, `patient`).
    pub role: String,
    /// Professional registration (e.g. a GMC or NMC number), if any.
    pub registration: Option<String>,
    /// ODS code of the user's organisation, if any.
    pub org: Option<String>,
}

/// A resource the request returned or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntity {
    /// Resource type, e.g. `Observation`.
    pub rtype: String,
    /// Logical id.
    pub id: String,
    /// Version id, when known.
    pub version: Option<u64>,
    /// Security label codes on the resource (codes only, no systems).
    pub labels: Vec<String>,
}

/// The access decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub permit: bool,
    /// Stable reason codes, never free text.
    pub reasons: Vec<String>,
}

/// How the request ended, by HTTP status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Any status below 400.
    Success,
    /// 4xx: the client's request failed (including denials).
    MinorFailure,
    /// 5xx: the server failed.
    SeriousFailure,
}

impl Outcome {
    /// The outcome of an HTTP status: below 400 success, 400–499 minor
    /// failure, 500 and above serious failure.
    pub fn from_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Success,
            400..=499 => Outcome::MinorFailure,
            _ => Outcome::SeriousFailure,
        }
    }
}

/// What a search asked for, without the values searched for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSearch {
    /// The type searched (e.g. `Observation`).
    pub rtype: String,
    /// Names of the parameters used (e.g. `patient`, `code`), never their
    /// values.
    pub params: Vec<String>,
    /// How many resources were returned.
    pub total: u64,
}

/// One audit record. See the module docs for what it may and may not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// When the request was handled, UTC microseconds.
    pub time: Micros,
    pub request_id: String,
    pub action: Action,
    pub user: AuditUser,
    /// OAuth client id, if any.
    pub client: Option<String>,
    /// `v3-ActReason` code, e.g. `TREAT`, or `ETREAT` under break-glass.
    pub purpose_of_use: Option<String>,
    /// Logical ids of the patients the request concerned.
    pub patients: Vec<String>,
    /// Resources returned or changed.
    pub entities: Vec<AuditEntity>,
    pub decision: Decision,
    pub outcome: Outcome,
    /// HTTP status.
    pub status: u16,
    /// Stable error code, e.g. `SC-1401`.
    pub error_code: Option<String>,
    pub break_glass: bool,
    /// For searches: what was searched, by parameter name only.
    pub search: Option<AuditSearch>,
}

impl AuditRecord {
    /// The canonical JSON text of the record: the text to store and hash.
    ///
    /// Deterministic (fields in declaration order, all fields present).
    /// Once stored, that text is the record: verify hashes against the
    /// stored text, never against this function's output for a parsed copy.
    pub fn to_canonical_json(&self) -> String {
        // Serialising this type cannot fail: every field is a string,
        // number, bool, enum or sequence of those, and there are no maps
        // with non-string keys. Fall back to an empty object rather than
        // panic, which would in any case fail verification visibly.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parse a stored record. Strict: unknown fields are rejected. The
    /// error names only the position of the fault, never the input.
    pub fn from_json(text: &str) -> Result<AuditRecord, AuditError> {
        serde_json::from_str(text).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            match e.classify() {
                serde_json::error::Category::Data => AuditError::Shape { line, column },
                serde_json::error::Category::Syntax
                | serde_json::error::Category::Eof
                | serde_json::error::Category::Io => AuditError::Syntax { line, column },
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A typical record: a GP reading an observation.
    pub(crate) fn sample() -> AuditRecord {
        AuditRecord {
            time: 1_700_000_000_000_000,
            request_id: "req-1".into(),
            action: Action::Read,
            user: AuditUser {
                subject: "u-42".into(),
                name: "Dr Ann Example".into(),
                role: "gp".into(),
                registration: Some("GMC 1234567".into()),
                org: Some("A81001".into()),
            },
            client: Some("gp-system".into()),
            purpose_of_use: Some("TREAT".into()),
            patients: vec!["p1".into()],
            entities: vec![AuditEntity {
                rtype: "Observation".into(),
                id: "o1".into(),
                version: Some(3),
                labels: vec!["N".into()],
            }],
            decision: Decision {
                permit: true,
                reasons: vec!["clinical-full".into()],
            },
            outcome: Outcome::Success,
            status: 200,
            error_code: None,
            break_glass: false,
            search: None,
        }
    }

    #[test]
    fn canonical_json_is_fixed_and_round_trips() {
        let r = sample();
        let text = r.to_canonical_json();
        assert_eq!(
            text,
            concat!(
                r#"{"time":1700000000000000,"request_id":"req-1","action":"read","#,
                r#""user":{"subject":"u-42","name":"Dr Ann Example","role":"gp","#,
                r#""registration":"GMC 1234567","org":"A81001"},"client":"gp-system","#,
                r#""purpose_of_use":"TREAT","patients":["p1"],"entities":[{"rtype":"Observation","#,
                r#""id":"o1","version":3,"labels":["N"]}],"decision":{"permit":true,"#,
                r#""reasons":["clinical-full"]},"outcome":"success","status":200,"#,
                r#""error_code":null,"break_glass":false,"search":null}"#
            )
        );
        assert_eq!(AuditRecord::from_json(&text).unwrap(), r);
        // Deterministic: the same record always gives the same text.
        assert_eq!(r.clone().to_canonical_json(), text);
    }

    #[test]
    fn actions_serialise_as_kebab_case() {
        let cases = [
            (Action::Read, r#""read""#),
            (Action::Vread, r#""vread""#),
            (Action::Search, r#""search""#),
            (Action::History, r#""history""#),
            (Action::Create, r#""create""#),
            (Action::Update, r#""update""#),
            (Action::Patch, r#""patch""#),
            (Action::Delete, r#""delete""#),
            (Action::Transaction, r#""transaction""#),
            (Action::Batch, r#""batch""#),
            (
                Action::Operation("everything".into()),
                r#"{"operation":"everything"}"#,
            ),
            (Action::BreakGlass, r#""break-glass""#),
            (Action::ConsentChange, r#""consent-change""#),
        ];
        for (action, json) in cases {
            assert_eq!(serde_json::to_string(&action).unwrap(), json);
            assert_eq!(serde_json::from_str::<Action>(json).unwrap(), action);
        }
    }

    #[test]
    fn outcomes_follow_the_status_class() {
        assert_eq!(Outcome::from_status(200), Outcome::Success);
        assert_eq!(Outcome::from_status(201), Outcome::Success);
        assert_eq!(Outcome::from_status(304), Outcome::Success);
        assert_eq!(Outcome::from_status(399), Outcome::Success);
        assert_eq!(Outcome::from_status(400), Outcome::MinorFailure);
        assert_eq!(Outcome::from_status(403), Outcome::MinorFailure);
        assert_eq!(Outcome::from_status(499), Outcome::MinorFailure);
        assert_eq!(Outcome::from_status(500), Outcome::SeriousFailure);
        assert_eq!(Outcome::from_status(503), Outcome::SeriousFailure);
        assert_eq!(
            serde_json::to_string(&Outcome::MinorFailure).unwrap(),
            r#""minor-failure""#
        );
        assert_eq!(
            serde_json::to_string(&Outcome::SeriousFailure).unwrap(),
            r#""serious-failure""#
        );
    }

    #[test]
    fn a_search_records_parameter_names_and_optionals_round_trip() {
        let mut r = sample();
        r.action = Action::Search;
        r.entities.clear();
        r.client = None;
        r.user.registration = None;
        r.user.org = None;
        r.search = Some(AuditSearch {
            rtype: "Observation".into(),
            params: vec!["patient".into(), "code".into()],
            total: 12,
        });
        let text = r.to_canonical_json();
        assert!(text.contains(
            r#""search":{"rtype":"Observation","params":["patient","code"],"total":12}"#
        ));
        assert!(text.contains(r#""client":null"#));
        assert_eq!(AuditRecord::from_json(&text).unwrap(), r);
    }

    #[test]
    fn parsing_is_strict_and_errors_do_not_quote_the_input() {
        // Unknown field.
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_canonical_json()).unwrap();
        v["diagnosis"] = serde_json::json!("Jane Smith has diabetes");
        let err = AuditRecord::from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, AuditError::Shape { .. }));
        assert!(!err.to_string().contains("diagnosis"));
        assert!(!err.to_string().contains("Jane"));

        // Wrong type holding personal data.
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_canonical_json()).unwrap();
        v["status"] = serde_json::json!("Jane Smith");
        let err = AuditRecord::from_json(&v.to_string()).unwrap_err();
        assert!(matches!(err, AuditError::Shape { .. }));
        assert!(!err.to_string().contains("Jane"));

        // Missing field.
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_canonical_json()).unwrap();
        v.as_object_mut().unwrap().remove("decision");
        assert!(matches!(
            AuditRecord::from_json(&v.to_string()),
            Err(AuditError::Shape { .. })
        ));

        // Not JSON, truncated, trailing text.
        assert!(matches!(
            AuditRecord::from_json("{\"time\": Jane"),
            Err(AuditError::Syntax { .. })
        ));
        let text = sample().to_canonical_json();
        assert!(matches!(
            AuditRecord::from_json(text.get(..text.len() - 1).unwrap()),
            Err(AuditError::Syntax { .. })
        ));
        assert!(matches!(
            AuditRecord::from_json(&format!("{text} x")),
            Err(AuditError::Syntax { .. })
        ));
    }
}
