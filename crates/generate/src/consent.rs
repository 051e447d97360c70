//! Consent resources, in the exact shapes the record enforces (see the
//! README). Every Consent carries `dateTime`, `patient` and `performer`, and
//! a `policyRule` (R4's ppc-1 needs a policy or a rule): the proxy legal
//! basis for proxies, `v3-ActCode` `OPTOUT` for dissents and opt-outs,
//! `OPTIN` for explicit consent to share sensitive items.

use serde_json::{Value, json};

use crate::ics::{ORG_TYPE_SYSTEM, ods_ref};
use crate::labels::ACT_CODE;

pub const SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/consent-category";
pub const PROXY_BASIS: &str = "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis";
pub const VRS: &str = "https://fhir.nhs.uk/England/CodeSystem/England-VRSAccessLevel";
pub const GRANTOR: &str = "https://hl7.org/fhir/5.0/StructureDefinition/extension-Consent.grantor";
pub const ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub const ORG_TYPE_EXTENSION: &str =
    "https://fhir.sharedcare.org.uk/StructureDefinition/organisation-type";

/// Every VRS access level.
pub const ALL_LEVELS: &[&str] = &[
    "PRESCR", "APPT", "RECRD", "TEST", "VACC", "COND", "CONSULT", "DOCS",
];

fn scope(code: &str) -> Value {
    json!({"coding": [{"system": SCOPE, "code": code}]})
}

fn category(system: &str, code: &str) -> Value {
    json!([{"coding": [{"system": system, "code": code}]}])
}

fn rule(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

/// Proxy access for a RelatedPerson, granted by the practice.
#[allow(clippy::too_many_arguments)]
pub fn proxy(
    id: &str,
    patient: &str,
    related_person: &str,
    basis: &str,
    levels: &[&str],
    practice: &str,
    start: &str,
    performer: Value,
) -> Value {
    let action: Vec<Value> = levels
        .iter()
        .map(|l| json!({"system": VRS, "code": l}))
        .collect();
    json!({
        "resourceType": "Consent",
        "id": id,
        "extension": [{"url": GRANTOR, "valueReference": ods_ref(practice)}],
        "status": "active",
        "scope": scope("patient-privacy"),
        "category": category(ACT_CODE, "INFA"),
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": start,
        "performer": [performer],
        "policyRule": rule(PROXY_BASIS, basis),
        "provision": {
            "type": "permit",
            "period": {"start": start},
            "actor": [{
                "role": {"coding": [{"system": ROLE_CODE, "code": "PROV"}]},
                "reference": {"reference": format!("RelatedPerson/{related_person}")}
            }],
            "action": [{"coding": action}]
        }
    })
}

/// What a dissent to share covers.
pub enum Dissent {
    /// The whole record, from everyone.
    Whole,
    /// Named organisations (ODS codes).
    Orgs(Vec<String>),
    /// Kinds of organisation (`organisation-type` codes).
    Kinds(Vec<&'static str>),
}

pub fn dissent(id: &str, patient: &str, what: &Dissent, date: &str, performer: Value) -> Value {
    let provision = match what {
        Dissent::Whole => json!({"type": "deny"}),
        Dissent::Orgs(codes) => {
            let actors: Vec<Value> = codes
                .iter()
                .map(|c| {
                    json!({
                        "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                        "reference": ods_ref(c)
                    })
                })
                .collect();
            json!({"type": "deny", "actor": actors})
        }
        Dissent::Kinds(kinds) => {
            let ext: Vec<Value> = kinds
                .iter()
                .map(|k| {
                    json!({
                        "url": ORG_TYPE_EXTENSION,
                        "valueCoding": {"system": ORG_TYPE_SYSTEM, "code": k}
                    })
                })
                .collect();
            json!({"extension": ext, "type": "deny"})
        }
    };
    json!({
        "resourceType": "Consent",
        "id": id,
        "status": "active",
        "scope": scope("patient-privacy"),
        "category": category(CATEGORY, "share-dissent"),
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": date,
        "performer": [performer],
        "policyRule": rule(ACT_CODE, "OPTOUT"),
        "provision": provision
    })
}

/// Explicit consent to share sealed items (by their labels) with one
/// organisation.
pub fn sensitive_share(
    id: &str,
    patient: &str,
    org: &str,
    labels: &[(&str, &str)],
    date: &str,
    performer: Value,
) -> Value {
    let security: Vec<Value> = labels
        .iter()
        .map(|(s, c)| json!({"system": s, "code": c}))
        .collect();
    json!({
        "resourceType": "Consent",
        "id": id,
        "status": "active",
        "scope": scope("patient-privacy"),
        "category": category(CATEGORY, "sensitive-share"),
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": date,
        "performer": [performer],
        "policyRule": rule(ACT_CODE, "OPTIN"),
        "provision": {
            "type": "permit",
            "actor": [{
                "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "reference": ods_ref(org)
            }],
            "securityLabel": security
        }
    })
}

/// A secondary-use opt-out: `national-data-opt-out` or `type-1-opt-out`.
pub fn opt_out(id: &str, patient: &str, kind: &str, date: &str, performer: Value) -> Value {
    json!({
        "resourceType": "Consent",
        "id": id,
        "status": "active",
        "scope": scope("research"),
        "category": category(CATEGORY, kind),
        "patient": {"reference": format!("Patient/{patient}")},
        "dateTime": date,
        "performer": [performer],
        "policyRule": rule(ACT_CODE, "OPTOUT"),
        "provision": {"type": "deny"}
    })
}
