//! Reading the audit log through the API: FHIR `AuditEvent` search for a
//! patient's data controller (and system clients granted `AuditEvent`),
//! and a person's own "who looked at my record" list (`$access-log`).
//!
//! Invariants:
//! - Nobody reads audit records without a decision here: a data controller
//!   only for patients registered with their own practice; a patient only
//!   their own; a proxy only for the person their active proxy Consent
//!   names; a system client only with an `AuditEvent` read scope. Everyone
//!   else is refused (403), whatever their clinical access.
//! - A person's list names organisations and roles, never staff names.

use policy::{Permission, RoleKind};
use serde_json::{Value, json};
use store::Store;
use store::audit::{AuditQuery, AuditRow};

use crate::access::{Caller, forbid};
use crate::bundle_writer::BundleWriter;
use crate::error::{CoreError, Result};
use crate::{Service, instant};

/// Most records one page returns.
const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;

fn refuse(message: &str) -> CoreError {
    CoreError::Forbidden {
        reason: "audit-access",
        message: message.to_owned(),
        break_glass: false,
    }
}

/// The AuditEvent search a request asked for.
#[derive(Debug, Default)]
struct Criteria {
    patient: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    agent: Option<String>,
    entity: Option<String>,
    outcome: Option<String>,
    after: Option<i64>,
    count: usize,
}

fn parse(params: &[(String, String)]) -> Result<Criteria> {
    let mut c = Criteria {
        count: DEFAULT_PAGE,
        ..Default::default()
    };
    let bad = |m: String| CoreError::BadRequest(m);
    for (k, v) in params {
        match k.as_str() {
            "patient" => {
                let id = v.strip_prefix("Patient/").unwrap_or(v);
                crate::check_id(id)?;
                c.patient = Some(id.to_owned());
            }
            "date" => {
                let (prefix, value) = match v.get(..2) {
                    Some(p @ ("ge" | "gt" | "le" | "lt" | "eq")) => (p, v.get(2..).unwrap_or("")),
                    _ => ("eq", v.as_str()),
                };
                let (low, high) = search::parse_date_range(value)
                    .ok_or_else(|| bad(format!("date: '{value}' is not a FHIR date")))?;
                match prefix {
                    "ge" => c.from = Some(low),
                    "gt" => c.from = Some(high + 1),
                    "le" => c.to = Some(high + 1),
                    "lt" => c.to = Some(low),
                    _ => {
                        c.from = Some(low);
                        c.to = Some(high + 1);
                    }
                }
            }
            "agent" => c.agent = Some(v.clone()),
            "entity" => c.entity = Some(v.clone()),
            "outcome" => {
                if !matches!(v.as_str(), "0" | "4" | "8" | "12") {
                    return Err(bad("outcome must be 0, 4, 8 or 12".to_owned()));
                }
                c.outcome = Some(v.clone());
            }
            "_count" => {
                c.count = v
                    .parse::<usize>()
                    .map_err(|_| bad("_count must be a number".to_owned()))?
                    .clamp(1, MAX_PAGE);
            }
            "_after" => {
                c.after = Some(
                    v.parse::<i64>()
                        .map_err(|_| bad("_after must be a record number".to_owned()))?,
                );
            }
            other => return Err(CoreError::UnknownParameter(other.to_owned())),
        }
    }
    Ok(c)
}

/// The record a row holds; an unreadable one is a server fault.
fn parse_record(row: &AuditRow) -> Result<audit::AuditRecord> {
    audit::AuditRecord::from_json(&row.record).map_err(|_| {
        tracing::error!(seq = row.seq, "unreadable audit record");
        CoreError::Internal
    })
}

impl<S: Store> Service<S> {
    /// Every audit record naming `patient`, in seq order.
    async fn patient_records(&self, patient: &str) -> Result<Vec<(i64, audit::AuditRecord)>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let rows = self
                .store
                .audit_rows(&AuditQuery {
                    patient: Some(patient.to_owned()),
                    after,
                    limit: MAX_PAGE,
                    // The record names its patients itself.
                    without_patients: true,
                    ..Default::default()
                })
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.seq);
            let full_page = rows.len() == MAX_PAGE;
            for row in &rows {
                out.push((row.seq, parse_record(row)?));
            }
            if !full_page {
                break;
            }
        }
        Ok(out)
    }

    /// May `caller` read the audit of `patient`? A data controller of the
    /// practice the person is registered with, or a system client with an
    /// `AuditEvent` read scope.
    async fn audit_reader(&self, caller: &Caller, patient: Option<&str>) -> Result<()> {
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        match role.kind {
            RoleKind::Integration => self
                .policy
                .unlinked(p, "AuditEvent", Permission::Read)
                .map_err(forbid),
            RoleKind::DataController => {
                let Some(patient) = patient else {
                    return Err(CoreError::BadRequest(
                        "a data controller's AuditEvent search must name a patient".to_owned(),
                    ));
                };
                let Some(org) = p.org.as_deref() else {
                    return Err(refuse("a data controller needs an organisation"));
                };
                caller.trail().patient(patient);
                let rows = self.store.relationships(patient, Some(org), None).await?;
                let registered = rows.iter().any(|r| {
                    r.org == org && r.kind == store::relationship::GP_REGISTRATION && r.active
                });
                if registered {
                    Ok(())
                } else {
                    Err(refuse(
                        "the audit of this person is for the data controller of the practice they are registered with",
                    ))
                }
            }
            _ => Err(refuse(
                "audit records are for the person's data controller and for audit roles",
            )),
        }
    }

    /// `GET AuditEvent?patient=&date=&agent=&entity=&outcome=&_count=`:
    /// a searchset of IHE BALP AuditEvents, oldest first, with a `next`
    /// link while more remain.
    pub async fn audit_events(
        &self,
        caller: &Caller,
        params: &[(String, String)],
    ) -> Result<String> {
        let c = parse(params)?;
        self.audit_reader(caller, c.patient.as_deref()).await?;
        // Filters the store does not index are applied to each page; walk
        // pages until one page of matches is full or the log ends.
        let mut out: Vec<(AuditRow, audit::AuditRecord)> = Vec::new();
        let mut after = c.after;
        let mut more = false;
        'pages: loop {
            let rows = self
                .store
                .audit_rows(&AuditQuery {
                    patient: c.patient.clone(),
                    from: c.from,
                    to: c.to,
                    after,
                    limit: MAX_PAGE,
                    // The record names its patients itself.
                    without_patients: true,
                })
                .await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.seq);
            let full_page = rows.len() == MAX_PAGE;
            for row in rows {
                let record = parse_record(&row)?;
                if !matches(&c, &record) {
                    continue;
                }
                if out.len() == c.count {
                    more = true;
                    break 'pages;
                }
                out.push((row, record));
            }
            if !full_page {
                break;
            }
        }
        let now = self.clock.now();
        let mut w = BundleWriter::new("searchset", &self.ids.new_id(), &instant::to_instant(now));
        let base = format!("{}/AuditEvent", self.config.base_url);
        let mut query: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "_after")
            .map(|(k, v)| format!("{k}={}", url_escape(v)))
            .collect();
        let this = format!("{base}?{}", query.join("&"));
        let next = match (more, out.last()) {
            (true, Some((row, _))) => {
                query.push(format!("_after={}", row.seq));
                Some(format!("{base}?{}", query.join("&")))
            }
            _ => None,
        };
        let mut links = vec![("self", this.as_str())];
        if let Some(n) = &next {
            links.push(("next", n.as_str()));
        }
        w.links(&links);
        for (row, record) in &out {
            let event = audit::audit_event(row, record);
            let full_url = format!("{base}/{}", row.seq);
            w.entry(
                Some(&full_url),
                Some(&event.to_string()),
                Some("match"),
                None,
                None,
            );
        }
        Ok(w.finish())
    }

    /// `GET Patient/[id]/$access-log`: who looked at this person's record,
    /// in plain terms, newest first, for the person themself and for a
    /// proxy acting for them. A `Parameters` resource with one `access`
    /// parameter per access.
    pub async fn access_log(&self, caller: &Caller, patient: &str) -> Result<String> {
        crate::check_id(patient)?;
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        let own = p.patient.as_deref() == Some(patient);
        match role.kind {
            RoleKind::Patient if own => {}
            // A proxy: only with an active proxy Consent for this person.
            RoleKind::Proxy if own => {
                self.access_for(caller, patient, Some(&[])).await?;
            }
            _ => {
                return Err(refuse(
                    "this list is for the person and the caregivers they have approved",
                ));
            }
        }
        caller.trail().patient(patient);
        let mut entries: Vec<audit::AccessEntry> = self
            .patient_records(patient)
            .await?
            .iter()
            .filter_map(|(_, r)| audit::access_entry(r))
            .collect();
        entries.reverse();
        let params: Vec<Value> = entries.iter().map(access_parameter).collect();
        Ok(json!({
            "resourceType": "Parameters",
            "parameter": params,
        })
        .to_string())
    }
}

/// Denied accesses by one organisation to a practice's patients within
/// this window, this many or more, raise one "denied burst" alert.
const BURST_WINDOW: i64 = 10 * 60 * 1_000_000;
/// Refusals within [`BURST_WINDOW`] that make a burst, unless the
/// practice's data controller set another threshold (`$sharing`).
pub(crate) const BURST_COUNT: usize = 5;

/// Roles whose accesses are staff accesses (an organisation's first one
/// alerts the practice).
fn is_staff(role: &str) -> bool {
    !matches!(
        role,
        "patient" | "proxy" | "integration" | "data-controller" | "admin" | "commissioner" | "none"
    )
}

/// One alert for a practice, derived from the audit log.
struct Alert {
    seq: i64,
    time: i64,
    kind: &'static str,
    patient: Option<String>,
    text: String,
}

/// The alerts for `practice` over `records` (every audit record naming one
/// of its registered patients, in seq order): the first access by each
/// other organisation, every break-glass, every consent change, every
/// burst of denied accesses by one organisation.
fn alerts_of(
    practice: &str,
    records: &[(i64, audit::AuditRecord)],
    burst_count: usize,
) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut seen_orgs: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut requesting: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut reviews: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut denied: std::collections::BTreeMap<&str, Vec<i64>> = std::collections::BTreeMap::new();
    for (seq, r) in records {
        let patient = r.patients.first().cloned();
        let org = r.user.org.as_deref();
        let who = match org {
            Some(o) => format!("{} ({})", o, audit::access_log::role_display(&r.user.role)),
            None => audit::access_log::role_display(&r.user.role).to_owned(),
        };
        if r.decision.permit
            && let Some(o) = org
            && o != practice
            && is_staff(&r.user.role)
            && seen_orgs.insert(o)
        {
            out.push(Alert {
                seq: *seq,
                time: r.time,
                kind: "new-organisation",
                patient: patient.clone(),
                text: format!("{who} accessed one of your patients' records for the first time"),
            });
        }
        if matches!(r.action, audit::Action::BreakGlass) && r.decision.permit {
            out.push(Alert {
                seq: *seq,
                time: r.time,
                kind: "break-glass",
                patient: patient.clone(),
                text: format!("{who} used emergency access (break-glass) to a patient's record"),
            });
        }
        if matches!(r.action, audit::Action::ConsentChange) && r.decision.permit {
            out.push(Alert {
                seq: *seq,
                time: r.time,
                kind: "consent-change",
                patient: patient.clone(),
                text: format!("{who} changed a patient's sharing choices or proxy access"),
            });
        }
        let reason = |code: &str| r.decision.reasons.iter().any(|x| x == code);
        if !r.decision.permit
            && reason(policy::APPROVAL_REQUIRED)
            && let Some(o) = org
            && requesting.insert(o)
        {
            out.push(Alert {
                seq: *seq,
                time: r.time,
                kind: "approval-request",
                patient: patient.clone(),
                text: format!(
                    "{who} asks to access your patients' records; approve or reject it with POST $sharing"
                ),
            });
        }
        if r.decision.permit
            && reason(crate::trail::PROXY_REVIEW_DUE)
            && let Some(p) = &patient
            && reviews.insert(p.clone())
        {
            out.push(Alert {
                seq: *seq,
                time: r.time,
                kind: "proxy-review",
                patient: patient.clone(),
                text: "a parent's proxy access to a child who is now 11 or over is due for review"
                    .to_owned(),
            });
        }
        if !r.decision.permit
            && r.status == 403
            && let Some(o) = org
        {
            let times = denied.entry(o).or_default();
            times.retain(|t| r.time - *t < BURST_WINDOW);
            times.push(r.time);
            if times.len() == burst_count {
                out.push(Alert {
                    seq: *seq,
                    time: r.time,
                    kind: "denied-burst",
                    patient: patient.clone(),
                    text: format!(
                        "{who} was refused access to your patients' records {burst_count} times within 10 minutes"
                    ),
                });
                times.clear();
            }
        }
    }
    out
}

impl<S: Store> Service<S> {
    /// `GET $alerts`: a data controller's alerts for their practice, newest
    /// first, as `Communication`s (derived from the audit log, so they are
    /// exactly as tamper-evident as it is).
    pub async fn alerts(&self, caller: &Caller, params: &[(String, String)]) -> Result<String> {
        if let Some((k, _)) = params.first() {
            return Err(CoreError::UnknownParameter(k.clone()));
        }
        let p = caller.principal();
        let role = self.policy.role_of(p).map_err(forbid)?;
        let Some(practice) = p
            .org
            .as_deref()
            .filter(|_| role.kind == RoleKind::DataController)
        else {
            return Err(refuse("alerts are for a practice's data controller"));
        };
        let mut records: Vec<(i64, audit::AuditRecord)> = Vec::new();
        for patient in self.store.registered_patients(practice).await? {
            records.extend(self.patient_records(&patient).await?);
        }
        // A record naming several of the practice's patients counts once.
        records.sort_by_key(|(seq, _)| *seq);
        records.dedup_by_key(|(seq, _)| *seq);
        let burst = self.denied_burst_threshold(practice).await?;
        let mut alerts = alerts_of(practice, &records, burst);
        alerts.reverse();
        let now = self.clock.now();
        let mut w = BundleWriter::new("searchset", &self.ids.new_id(), &instant::to_instant(now));
        let base = &self.config.base_url;
        w.total(alerts.len() as u64);
        for a in &alerts {
            let id = format!("alert-{}-{}", a.seq, a.kind);
            let mut c = json!({
                "resourceType": "Communication",
                "id": id,
                "status": "completed",
                "category": [{"coding": [{"system": "https://fhir.sharedcare.org.uk/CodeSystem/alert", "code": a.kind}]}],
                "priority": if a.kind == "break-glass" || a.kind == "denied-burst" { "urgent" } else { "routine" },
                "sent": audit::format_instant(a.time),
                "recipient": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": practice}}],
                "about": [{"reference": format!("AuditEvent/{}", a.seq)}],
                "payload": [{"contentString": a.text}],
            });
            if let (Some(pid), Some(map)) = (&a.patient, c.as_object_mut()) {
                map.insert(
                    "subject".into(),
                    json!({"reference": format!("Patient/{pid}")}),
                );
            }
            let full_url = format!("{base}/Communication/{id}");
            w.entry(
                Some(&full_url),
                Some(&c.to_string()),
                Some("match"),
                None,
                None,
            );
        }
        Ok(w.finish())
    }
}

fn matches(c: &Criteria, r: &audit::AuditRecord) -> bool {
    if let Some(agent) = &c.agent
        && r.user.subject != *agent
        && r.user.org.as_deref() != Some(agent.as_str())
    {
        return false;
    }
    if let Some(entity) = &c.entity {
        let hit = r
            .entities
            .iter()
            .any(|e| format!("{}/{}", e.rtype, e.id) == *entity)
            || r.patients.iter().any(|p| format!("Patient/{p}") == *entity);
        if !hit {
            return false;
        }
    }
    if let Some(outcome) = &c.outcome {
        let code = match r.outcome {
            audit::Outcome::Success => "0",
            audit::Outcome::MinorFailure => "4",
            audit::Outcome::SeriousFailure => "8",
        };
        if code != outcome {
            return false;
        }
    }
    true
}

fn url_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One access as a `Parameters.parameter` with parts, and a sentence.
fn access_parameter(e: &audit::AccessEntry) -> Value {
    let who = match &e.organisation {
        Some(org) => format!("{} at {org}", e.role_display),
        None => e.role_display.clone(),
    };
    let what = if e.categories.is_empty() {
        "your record".to_owned()
    } else {
        format!("your record ({})", e.categories.join(", "))
    };
    let mut sentence = if e.denied {
        format!("{who} tried to see {what} and was refused")
    } else {
        format!("{who} {} {what}", e.action)
    };
    if e.break_glass {
        sentence.push_str(", using emergency access");
    }
    let mut parts = vec![
        json!({"name": "when", "valueInstant": e.when_utc}),
        json!({"name": "role", "valueString": e.role_display}),
        json!({"name": "action", "valueString": e.action}),
        json!({"name": "breakGlass", "valueBoolean": e.break_glass}),
        json!({"name": "refused", "valueBoolean": e.denied}),
        json!({"name": "summary", "valueString": sentence}),
    ];
    if let Some(org) = &e.organisation {
        parts.insert(
            1,
            json!({"name": "organisation", "valueIdentifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": org}}),
        );
    }
    for c in &e.categories {
        parts.push(json!({"name": "category", "valueString": c}));
    }
    json!({"name": "access", "part": parts})
}
