//! The audit log: what is recorded for every request, how the hash chain
//! that holds it is verified, and how a record is shown as a FHIR R4
//! `AuditEvent` (IHE Basic Audit Log Patterns) or as a line of a person's
//! "who looked at my record" list.
//!
//! This crate is pure: no IO, no clock, no keys. The store
//! ([`store::audit`]) holds the rows and computes the chain hashes; the
//! server signs checkpoints. This crate only builds, reads and checks.
//!
//! Invariants:
//! - An [`AuditRecord`] carries no clinical content: no resource bodies, no
//!   search parameter values, no free text from the request. It names
//!   people and resources by logical id, and search parameters by name.
//! - The text stored in a row (`AuditRow::record`) is what the chain hashes.
//!   Verification always hashes that stored text, never a re-serialisation
//!   of a parsed record.
//! - No error or problem message produced here contains personal data:
//!   they name record sequence numbers, checkpoint numbers and positions in
//!   JSON text only.

pub mod access_log;
pub mod event;
pub mod record;
pub mod time;
pub mod verify;

pub use access_log::{AccessEntry, access_entry};
pub use event::audit_event;
pub use record::{Action, AuditEntity, AuditRecord, AuditSearch, AuditUser, Decision, Outcome};
pub use time::format_instant;
pub use verify::{Problem, ProblemKind, Verifier};

use std::fmt;

/// What can go wrong reading an audit record.
///
/// The messages never quote the input: a malformed record may hold
/// personal data, so only its position is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditError {
    /// The text is not JSON (or ends early).
    Syntax { line: usize, column: usize },
    /// The text is JSON but not an audit record: a missing, unknown or
    /// wrongly typed field.
    Shape { line: usize, column: usize },
}

impl AuditError {
    /// A stable code for logs and operation outcomes.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::Syntax { .. } => "audit-record-syntax",
            AuditError::Shape { .. } => "audit-record-shape",
        }
    }
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditError::Syntax { line, column } => write!(
                f,
                "the audit record is not valid JSON (line {line}, column {column})"
            ),
            AuditError::Shape { line, column } => write!(
                f,
                "the audit record does not have the expected fields (line {line}, column {column})"
            ),
        }
    }
}

impl std::error::Error for AuditError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_name_positions_only() {
        let e = AuditError::Shape { line: 1, column: 7 };
        assert_eq!(
            e.to_string(),
            "the audit record does not have the expected fields (line 1, column 7)"
        );
        assert_eq!(e.code(), "audit-record-shape");
        let e = AuditError::Syntax { line: 2, column: 3 };
        assert!(e.to_string().contains("not valid JSON"));
        assert_eq!(e.code(), "audit-record-syntax");
    }
}
