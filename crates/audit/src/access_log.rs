//! "Who looked at my record": a person's view of the audit log.
//!
//! Invariants:
//! - An entry names the organisation (ODS code) and role of whoever
//!   accessed the record, never the individual: staff names, subjects and
//!   registrations are withheld from patients by default. (Reporting an
//!   individual is a data controller's job, from the full audit log.)
//! - Everything shown is plain English: the role ("GP"), what was done
//!   ("viewed"), and the kinds of information touched ("Medications").
//!   No resource ids, no search values, no reason codes.
//! - Only records about a person's record become entries: a record naming
//!   no patient (a directory read, a configuration change) yields `None`.
//! - Denied attempts are entries too (`denied: true`): a person has a right
//!   to know who tried.

use serde::Serialize;
use store::Micros;

use crate::record::{Action, AuditRecord};
use crate::time::format_instant;

/// One line of a person's access log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEntry {
    /// When, UTC microseconds.
    pub when: Micros,
    /// `when` as a FHIR instant (`YYYY-MM-DDThh:mm:ss.ffffffZ`).
    pub when_utc: String,
    /// ODS code of the accessing organisation, if any.
    pub organisation: Option<String>,
    /// Role code, e.g. `gp`.
    pub role: String,
    /// The role in plain English, e.g. "GP".
    pub role_display: String,
    /// What was done, to be read before "your record": "viewed",
    /// "searched", "added to", "changed", "removed from", …
    pub action: String,
    /// Kinds of information touched, in plain English, deduplicated, in
    /// order of first appearance.
    pub categories: Vec<String>,
    /// Access was under break-glass (emergency access).
    pub break_glass: bool,
    /// The access was refused.
    pub denied: bool,
}

/// The access-log entry for a record, or `None` when the record is not an
/// access to a person's record.
pub fn access_entry(record: &AuditRecord) -> Option<AccessEntry> {
    if record.patients.iter().all(String::is_empty) {
        return None;
    }
    let mut categories: Vec<String> = Vec::new();
    let types = record
        .entities
        .iter()
        .map(|e| e.rtype.as_str())
        .chain(record.search.as_ref().map(|s| s.rtype.as_str()));
    for rtype in types.filter(|t| !t.is_empty()) {
        let category = category(rtype);
        if !categories.iter().any(|c| c == category) {
            categories.push(category.to_owned());
        }
    }
    if record.action == Action::ConsentChange && categories.is_empty() {
        categories.push(category("Consent").to_owned());
    }
    Some(AccessEntry {
        when: record.time,
        when_utc: format_instant(record.time),
        organisation: record.user.org.clone().filter(|o| !o.is_empty()),
        role: record.user.role.clone(),
        role_display: role_display(&record.user.role).to_owned(),
        action: action_phrase(&record.action).to_owned(),
        categories,
        break_glass: record.break_glass || record.action == Action::BreakGlass,
        denied: !record.decision.permit,
    })
}

/// A role code in plain English; an unknown code is shown as it is.
pub fn role_display(role: &str) -> &str {
    match role {
        "gp" => "GP",
        "hospital-clinician" => "Hospital clinician",
        "community-clinician" => "Community clinician (midwife, health visitor, district nurse)",
        "pharmacist" => "Pharmacist",
        "care-nurse" => "Care home nurse",
        "social-worker" => "Social worker",
        "care-worker" => "Care worker (non-clinical)",
        "patient" => "You",
        "proxy" => "Your approved caregiver",
        "data-controller" => "Data controller",
        "commissioner" => "Commissioner",
        "integration" => "System (integration)",
        "admin" => "System administrator",
        other => other,
    }
}

/// What an action did to the record, as a phrase read before "your
/// record". Operations (such as `$everything`) read the record; a batch
/// may read or write, and says so.
fn action_phrase(action: &Action) -> &'static str {
    match action {
        Action::Read | Action::Vread | Action::History | Action::Operation(_) => "viewed",
        Action::Search => "searched",
        Action::Create => "added to",
        Action::Update | Action::Patch | Action::Transaction | Action::ConsentChange => "changed",
        Action::Delete => "removed from",
        Action::Batch => "viewed or changed",
        Action::BreakGlass => "used emergency access to",
    }
}

/// A resource type as the kind of information it holds; an unknown type
/// is shown by its name.
fn category(rtype: &str) -> &str {
    match rtype {
        "MedicationRequest"
        | "MedicationStatement"
        | "MedicationDispense"
        | "MedicationAdministration"
        | "Medication" => "Medications",
        "AllergyIntolerance" => "Allergies",
        "Observation" | "DiagnosticReport" | "Specimen" => "Test results",
        "Condition" => "Problems",
        "Encounter" | "Appointment" | "EpisodeOfCare" => "Appointments and visits",
        "Immunization" | "ImmunizationRecommendation" => "Vaccinations",
        "Procedure" => "Procedures",
        "DocumentReference" | "Composition" => "Documents",
        "CarePlan" | "Goal" => "Care plans",
        "Patient" => "Personal details",
        "RelatedPerson" => "Family and carers",
        "Consent" => "Sharing choices",
        "Flag" => "Alerts",
        "QuestionnaireResponse" => "Forms",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;
    use crate::record::{AuditEntity, AuditSearch};

    fn entity(rtype: &str, id: &str) -> AuditEntity {
        AuditEntity {
            rtype: rtype.into(),
            id: id.into(),
            version: None,
            labels: vec![],
        }
    }

    #[test]
    fn a_gp_read_shows_organisation_and_role_not_name() {
        let entry = access_entry(&sample()).unwrap();
        assert_eq!(
            entry,
            AccessEntry {
                when: 1_700_000_000_000_000,
                when_utc: "2023-11-14T22:13:20.000000Z".into(),
                organisation: Some("A81001".into()),
                role: "gp".into(),
                role_display: "GP".into(),
                action: "viewed".into(),
                categories: vec!["Test results".into()],
                break_glass: false,
                denied: false,
            }
        );
        let text = serde_json::to_string(&entry).unwrap();
        assert!(!text.contains("Ann"));
        assert!(!text.contains("u-42"));
        assert!(!text.contains("GMC"));
        assert!(!text.contains("o1"));
    }

    #[test]
    fn records_without_a_patient_are_not_entries() {
        let mut r = sample();
        r.patients.clear();
        r.entities = vec![entity("Organization", "org1")];
        assert_eq!(access_entry(&r), None);
        r.patients = vec![String::new()];
        assert_eq!(access_entry(&r), None);
    }

    #[test]
    fn categories_are_plain_and_deduplicated() {
        let mut r = sample();
        r.action = Action::Search;
        r.entities = vec![
            entity("MedicationRequest", "m1"),
            entity("MedicationStatement", "m2"),
            entity("AllergyIntolerance", "a1"),
            entity("Condition", "c1"),
            entity("Encounter", "e1"),
            entity("Observation", "o1"),
            entity("MedicationRequest", "m3"),
            entity("NutritionOrder", "n1"),
        ];
        r.search = Some(AuditSearch {
            rtype: "MedicationRequest".into(),
            params: vec!["patient".into()],
            total: 3,
        });
        let entry = access_entry(&r).unwrap();
        assert_eq!(entry.action, "searched");
        assert_eq!(
            entry.categories,
            [
                "Medications",
                "Allergies",
                "Problems",
                "Appointments and visits",
                "Test results",
                "NutritionOrder"
            ]
        );
    }

    #[test]
    fn actions_read_plainly() {
        let cases = [
            (Action::Read, "viewed"),
            (Action::Vread, "viewed"),
            (Action::History, "viewed"),
            (Action::Operation("everything".into()), "viewed"),
            (Action::Search, "searched"),
            (Action::Create, "added to"),
            (Action::Update, "changed"),
            (Action::Patch, "changed"),
            (Action::Transaction, "changed"),
            (Action::Delete, "removed from"),
            (Action::Batch, "viewed or changed"),
            (Action::BreakGlass, "used emergency access to"),
            (Action::ConsentChange, "changed"),
        ];
        for (action, phrase) in cases {
            let mut r = sample();
            r.action = action;
            assert_eq!(access_entry(&r).unwrap().action, phrase);
        }
    }

    #[test]
    fn roles_read_plainly() {
        let cases = [
            ("gp", "GP"),
            ("hospital-clinician", "Hospital clinician"),
            ("care-worker", "Care worker (non-clinical)"),
            ("social-worker", "Social worker"),
            ("pharmacist", "Pharmacist"),
            (
                "community-clinician",
                "Community clinician (midwife, health visitor, district nurse)",
            ),
            ("care-nurse", "Care home nurse"),
            ("patient", "You"),
            ("proxy", "Your approved caregiver"),
            ("data-controller", "Data controller"),
            ("integration", "System (integration)"),
            ("something-new", "something-new"),
        ];
        for (code, display) in cases {
            assert_eq!(role_display(code), display);
        }
    }

    #[test]
    fn break_glass_and_denials_are_flagged() {
        let mut r = sample();
        r.break_glass = true;
        r.purpose_of_use = Some("ETREAT".into());
        assert!(access_entry(&r).unwrap().break_glass);

        let mut r = sample();
        r.action = Action::BreakGlass;
        r.entities.clear();
        let entry = access_entry(&r).unwrap();
        assert!(entry.break_glass);
        assert!(entry.categories.is_empty());

        let mut r = sample();
        r.decision.permit = false;
        r.entities.clear();
        r.status = 403;
        let entry = access_entry(&r).unwrap();
        assert!(entry.denied);
        assert!(entry.categories.is_empty());
    }

    #[test]
    fn a_consent_change_is_about_sharing_choices() {
        let mut r = sample();
        r.action = Action::ConsentChange;
        r.entities.clear();
        r.user.role = "patient".into();
        r.user.org = None;
        let entry = access_entry(&r).unwrap();
        assert_eq!(entry.role_display, "You");
        assert_eq!(entry.organisation, None);
        assert_eq!(entry.categories, ["Sharing choices"]);
    }
}
