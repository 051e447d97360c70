//! The audit trail of one request: what the core did on the caller's
//! behalf (patients concerned, resources released or changed, break-glass),
//! collected as it happens and turned into one [`audit::AuditRecord`].
//!
//! Invariants:
//! - One trail per request. The API creates it before authentication, the
//!   [`crate::Caller`] built from the token shares it, and exactly one
//!   record is appended for it: inside the write's transaction by
//!   [`crate::Service`] for a write that commits, otherwise by the API
//!   before the response leaves (`Service::append_request_audit`).
//! - A trail holds ids, versions and label codes only: never bodies or
//!   query values.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use audit::{Action, AuditEntity, AuditRecord, AuditSearch, AuditUser, Decision, Outcome};
use serde_json::Value;

/// Largest number of entities one record lists (a big search page or
/// `$everything` names its first this-many resources, and the count).
pub const MAX_ENTITIES: usize = 1_000;

#[derive(Debug, Default)]
pub struct TrailState {
    pub request_id: String,
    pub action: Option<Action>,
    pub user: Option<AuditUser>,
    pub client: Option<String>,
    pub patients: BTreeSet<String>,
    pub entities: Vec<AuditEntity>,
    pub more_entities: u64,
    pub break_glass: bool,
    pub purpose_of_use: Option<String>,
    pub search: Option<AuditSearch>,
    /// Reason codes to record beside the decision (e.g. that a parent's
    /// proxy access is due for review).
    pub notices: Vec<String>,
    /// Set once a record for this request has been appended (its seq).
    pub appended: Option<i64>,
}

/// A request's trail, shared between the API and the core.
#[derive(Debug, Clone, Default)]
pub struct Trail(Arc<Mutex<TrailState>>);

impl Trail {
    pub fn new(request_id: String, action: Action) -> Trail {
        Trail(Arc::new(Mutex::new(TrailState {
            request_id,
            action: Some(action),
            ..Default::default()
        })))
    }

    /// The state; a poisoned lock still yields it (a trail is plain data).
    pub fn state(&self) -> MutexGuard<'_, TrailState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the action unless the API already named it.
    pub fn default_action(&self, action: Action) {
        let mut s = self.state();
        if s.action.is_none() {
            s.action = Some(action);
        }
    }

    pub fn patient(&self, id: &str) {
        self.state().patients.insert(id.to_owned());
    }

    /// A resource released to the caller or changed by them; `body` (its
    /// stored JSON) gives the security label codes.
    pub fn entity(&self, rtype: &str, id: &str, version: Option<u64>, body: Option<&str>) {
        // Most bodies carry no labels: only parse those that might.
        let labels = body
            .filter(|b| b.contains("\"security\""))
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .map(|v| security_codes(&v))
            .unwrap_or_default();
        let mut s = self.state();
        if s.entities.len() >= MAX_ENTITIES {
            s.more_entities += 1;
            return;
        }
        s.entities.push(AuditEntity {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
            version,
            labels,
        });
    }

    /// The record for this trail, ending with `status` (and `error_code`,
    /// `reason` for a refusal).
    pub fn record(
        &self,
        time: store::Micros,
        status: u16,
        error_code: Option<&str>,
        reason: Option<&str>,
    ) -> AuditRecord {
        let s = self.state();
        let permit = !(status == 401 || status == 403);
        let mut reasons = Vec::new();
        if let Some(r) = reason {
            reasons.push(r.to_owned());
        }
        if s.break_glass {
            reasons.push("break-glass".to_owned());
        }
        reasons.extend(s.notices.iter().cloned());
        AuditRecord {
            time,
            request_id: s.request_id.clone(),
            action: s.action.clone().unwrap_or(Action::Read),
            user: s.user.clone().unwrap_or_else(|| AuditUser {
                subject: "unauthenticated".to_owned(),
                name: String::new(),
                role: "none".to_owned(),
                registration: None,
                org: None,
            }),
            client: s.client.clone(),
            purpose_of_use: s.purpose_of_use.clone(),
            patients: s.patients.iter().cloned().collect(),
            entities: s.entities.clone(),
            decision: Decision { permit, reasons },
            outcome: Outcome::from_status(status),
            status,
            error_code: error_code.map(str::to_owned),
            break_glass: s.break_glass,
            search: s.search.clone().map(|mut q| {
                q.total = s.entities.len() as u64 + s.more_entities;
                q
            }),
        }
    }
}

/// The notice recorded when a parent's proxy access to a child of 11 or
/// over is due for the practice's review.
pub const PROXY_REVIEW_DUE: &str = "proxy-review-due";

/// The stored form of `record`: its canonical JSON (what the chain
/// hashes) and the patients it names.
pub fn new_audit(record: &AuditRecord) -> store::audit::NewAudit {
    store::audit::NewAudit {
        time: record.time,
        patients: record.patients.clone(),
        record: record.to_canonical_json(),
    }
}

/// The codes of `meta.security` (labels only, never their displays).
fn security_codes(body: &Value) -> Vec<String> {
    body.get("meta")
        .and_then(|m| m.get("security"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
