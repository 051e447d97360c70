//! Legitimate relationships, derived from the record itself.
//!
//! At write time the core asks [`drafts`] which organisations a resource
//! relates to its patient; it resolves each organisation reference to an
//! organisation code and stores the rows. At decision time
//! [`Relationship::is_current`] says which of them count now. The store's
//! population filter (`Filter::Related`) implements the same rule in SQL;
//! the property tests hold the two together.

use serde_json::Value;

use crate::Micros;
use crate::json::{date_micros, string, strings, values};

/// The kinds of relationship, as stored.
pub const GP_REGISTRATION: &str = "gp-registration";
pub const ENCOUNTER: &str = "encounter";
pub const EPISODE_OF_CARE: &str = "episode-of-care";
pub const CARE_TEAM: &str = "care-team";
pub const REFERRAL: &str = "referral";
pub const BREAK_GLASS: &str = "break-glass";
/// Not a relationship: one row per sealed item, naming its recording
/// organisation, so that a decision knows whether anything is withheld.
pub const SEALED: &str = "sealed";
/// Not a relationship: one row per item withheld from the patient (`NOPAT`,
/// third-party information).
pub const NOT_FOR_PATIENT: &str = "not-for-patient";

/// The resource types whose writes can create relationship rows.
pub const SOURCE_TYPES: &[&str] = &[
    "Patient",
    "Encounter",
    "EpisodeOfCare",
    "CareTeam",
    "ServiceRequest",
    "Task",
];

/// One stored relationship fact, as the policy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub org: String,
    pub kind: String,
    /// Per-user grants (break-glass) name the user's subject.
    pub user: Option<String>,
    pub active: bool,
    pub start: Option<Micros>,
    pub end: Option<Micros>,
}

impl Relationship {
    /// Does this row give `org` (and, for per-user grants, `user`) a current
    /// relationship at `now`? Active rows count inside their period; a
    /// finished encounter counts for `recent` microseconds after it ended.
    pub fn is_current(&self, org: &str, user: &str, now: Micros, recent: Micros) -> bool {
        if self.org != org || self.kind == SEALED || self.kind == NOT_FOR_PATIENT {
            return false;
        }
        if self.user.as_deref().is_some_and(|u| u != user) {
            return false;
        }
        // A per-user grant that names no user grants nobody (fail closed).
        if self.kind == BREAK_GLASS && self.user.is_none() {
            return false;
        }
        let in_period = self.start.is_none_or(|s| s <= now) && self.end.is_none_or(|e| e >= now);
        (self.active && in_period)
            || (self.kind == ENCOUNTER && self.end.is_some_and(|e| e >= now - recent && e <= now))
    }
}

/// Where a relationship points before resolution: an organisation by
/// logical id (`Organization/abc`) or by ODS code (a logical reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRef {
    Id(String),
    Code(String),
}

/// A relationship a resource states, before its organisation is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub org: OrgRef,
    pub kind: &'static str,
    pub active: bool,
    pub start: Option<Micros>,
    pub end: Option<Micros>,
}

pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// The organisation a `Reference` value names, if it names one.
pub fn org_ref(reference: &Value) -> Option<OrgRef> {
    if let Some(r) = reference.get("reference").and_then(Value::as_str) {
        return match crate::json::split_reference(r) {
            Some(("Organization", id)) => Some(OrgRef::Id(id.to_owned())),
            _ => None,
        };
    }
    let ident = reference.get("identifier")?;
    if ident.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM) {
        return ident
            .get("value")
            .and_then(Value::as_str)
            .map(|v| OrgRef::Code(v.to_owned()));
    }
    None
}

/// The organisation code an `Organization` resource is known by: its ODS
/// code, else its logical id.
pub fn org_code(organization: &Value, id: &str) -> String {
    values(organization, "identifier")
        .into_iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM))
        .and_then(|i| i.get("value").and_then(Value::as_str))
        .unwrap_or(id)
        .to_owned()
}

fn period(v: &Value, path: &str) -> (Option<Micros>, Option<Micros>) {
    (
        string(v, &format!("{path}.start")).and_then(date_micros),
        string(v, &format!("{path}.end")).and_then(date_micros),
    )
}

/// The relationships a resource states between its patient and
/// organisations.
pub fn drafts(rtype: &str, r: &Value) -> Vec<Draft> {
    let status = string(r, "status").unwrap_or("");
    let mut out = Vec::new();
    let mut push = |refs: Vec<&Value>, kind: &'static str, active: bool, start, end| {
        for reference in refs {
            if let Some(org) = org_ref(reference) {
                let d = Draft {
                    org,
                    kind,
                    active,
                    start,
                    end,
                };
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    };
    match rtype {
        "Patient" => {
            let active = r.get("active").and_then(Value::as_bool) != Some(false)
                && r.get("deceasedBoolean").and_then(Value::as_bool) != Some(true)
                && r.get("deceasedDateTime").is_none();
            push(
                values(r, "generalPractitioner"),
                GP_REGISTRATION,
                active,
                None,
                None,
            );
        }
        // Cancelled and erroneous encounters never happened.
        "Encounter" if matches!(status, "cancelled" | "entered-in-error") => {}
        "Encounter" => {
            let active = matches!(
                status,
                "planned" | "arrived" | "triaged" | "in-progress" | "onleave"
            );
            let (start, end) = period(r, "period");
            // A finished encounter without an end counts from its start.
            let end = if active { end } else { end.or(start) };
            push(values(r, "serviceProvider"), ENCOUNTER, active, start, end);
        }
        "EpisodeOfCare" => {
            let active = matches!(status, "active" | "onhold" | "waitlist");
            let (start, end) = period(r, "period");
            push(
                values(r, "managingOrganization"),
                EPISODE_OF_CARE,
                active,
                start,
                end,
            );
        }
        "CareTeam" => {
            let active = status == "active";
            let (start, end) = period(r, "period");
            let mut refs = values(r, "managingOrganization");
            refs.extend(values(r, "participant.member"));
            refs.extend(values(r, "participant.onBehalfOf"));
            push(refs, CARE_TEAM, active, start, end);
        }
        "ServiceRequest" => {
            let active = status == "active";
            let (start, end) = period(r, "occurrencePeriod");
            push(values(r, "performer"), REFERRAL, active, start, end);
        }
        "Task" => {
            let active = matches!(
                status,
                "requested" | "received" | "accepted" | "ready" | "in-progress" | "on-hold"
            );
            let (start, end) = period(r, "executionPeriod");
            push(values(r, "owner"), REFERRAL, active, start, end);
        }
        _ => {}
    }
    out
}

/// Proxy access levels (NHS England VRS codes) a proxy `Consent` grants to
/// `related_person` at `now`: active, a permit, naming the RelatedPerson as
/// actor, within its period. Codes come from `provision.action`.
pub fn proxy_scopes(consents: &[Value], related_person: &str, now: Micros) -> Vec<String> {
    let want = format!("RelatedPerson/{related_person}");
    let mut out: Vec<String> = Vec::new();
    for c in consents {
        if string(c, "status") != Some("active") {
            continue;
        }
        if string(c, "provision.type").is_some_and(|t| t != "permit") {
            continue;
        }
        let names_actor = strings(c, "provision.actor.reference.reference")
            .iter()
            .any(|r| r.ends_with(&want) || *r == want);
        if !names_actor {
            continue;
        }
        let (start, end) = period(c, "provision.period");
        if start.is_some_and(|s| s > now) || end.is_some_and(|e| e < now) {
            continue;
        }
        for code in strings(c, "provision.action.coding.code") {
            if !out.iter().any(|o| o == code) {
                out.push(code.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn encounter_rows() {
        let e = json!({"status": "finished", "period": {"start": "2026-01-01", "end": "2026-01-02"},
            "serviceProvider": {"reference": "Organization/h1"}});
        let d = drafts("Encounter", &e);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].org, OrgRef::Id("h1".into()));
        assert!(!d[0].active);
        let r = Relationship {
            org: "H1".into(),
            kind: ENCOUNTER.into(),
            user: None,
            active: false,
            start: d[0].start,
            end: d[0].end,
        };
        let end = d[0].end.unwrap();
        assert!(r.is_current("H1", "u", end + 29 * DAY, 30 * DAY));
        assert!(!r.is_current("H1", "u", end + 31 * DAY, 30 * DAY));
        assert!(!r.is_current("H2", "u", end, 30 * DAY));
    }

    #[test]
    fn gp_registration_by_identifier() {
        let p = json!({"generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": "Y123"}}, {"reference": "Practitioner/x"}]});
        let d = drafts("Patient", &p);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].org, OrgRef::Code("Y123".into()));
        assert!(d[0].active);
    }

    #[test]
    fn break_glass_is_per_user() {
        let r = Relationship {
            org: "A".into(),
            kind: BREAK_GLASS.into(),
            user: Some("alice".into()),
            active: true,
            start: Some(0),
            end: Some(10),
        };
        assert!(r.is_current("A", "alice", 5, 0));
        assert!(!r.is_current("A", "bob", 5, 0));
        assert!(!r.is_current("A", "alice", 11, 0));
    }

    #[test]
    fn proxy_consent_scopes() {
        let c = json!({"status": "active", "provision": {"type": "permit",
            "period": {"start": "2020-01-01"},
            "actor": [{"reference": {"reference": "RelatedPerson/rp1"}}],
            "action": [{"coding": [{"code": "VACC"}, {"code": "PRESCR"}]}]}});
        assert_eq!(
            proxy_scopes(std::slice::from_ref(&c), "rp1", 1_800_000_000_000_000),
            vec!["VACC", "PRESCR"]
        );
        assert!(proxy_scopes(std::slice::from_ref(&c), "rp2", 1_800_000_000_000_000).is_empty());
        assert!(proxy_scopes(&[c], "rp1", 0).is_empty(), "before its period");
    }
}
