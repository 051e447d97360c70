//! Security labels (`meta.security`) and the sensitive-code starter list.
//!
//! A resource is *sensitive* (sealed) when it carries a confidentiality of
//! `R` or `V`, a sensitivity topic from `v3-ActCode`, or the local
//! safeguarding label. Sealed items are visible to clinical users of the
//! recording organisation only (and, from the consent work, to those named by
//! an explicit consent). `NOPAT` and the local third-party label withhold an
//! item from the patient and their proxies.

use serde_json::{Map, Value};

pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// sharedcare's own labels: `safeguarding`, `third-party`.
pub const LOCAL_LABELS: &str = "https://fhir.sharedcare.org.uk/CodeSystem/security-label";
/// The organisation (ODS code, or `Patient/…`/`RelatedPerson/…` for people)
/// that recorded an item, stamped by the server on every write (`meta.tag`).
pub const RECORDED_BY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/recorded-by";
/// Record categories the views refer to (`meta.tag`): `about-me`,
/// `patient-reported`.
pub const RECORD_CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/record-category";
pub const SNOMED: &str = "http://snomed.info/sct";

/// The sensitivity topics (`v3-ActCode`) that seal an item.
pub const SENSITIVITY_TOPICS: &[&str] = &[
    "HIV", "PSY", "SEX", "STD", "ETH", "SDV", "GDIS", "SUD", "SOC", "BH", "ETHUD", "OPIOIDUD",
    "PSYTHPN", "MH", "DEMO", "DIA", "DRGIS", "DVD", "RACE", "REL", "SICKLE", "TBOO",
];

/// The policy-relevant labels of an item, from its `meta.security`.
pub fn labels_of(resource: &Value) -> (bool, bool) {
    let mut sensitive = false;
    let mut not_for_patient = false;
    for c in crate::json::values(resource, "meta.security") {
        let system = c.get("system").and_then(Value::as_str).unwrap_or("");
        let code = c.get("code").and_then(Value::as_str).unwrap_or("");
        match (system, code) {
            (CONFIDENTIALITY, "R" | "V") => sensitive = true,
            (ACT_CODE, "NOPAT") => not_for_patient = true,
            (ACT_CODE, c) if SENSITIVITY_TOPICS.contains(&c) => sensitive = true,
            (LOCAL_LABELS, "safeguarding") => sensitive = true,
            (LOCAL_LABELS, "third-party") => not_for_patient = true,
            _ => {}
        }
    }
    (sensitive, not_for_patient)
}

/// The codes of the labels that seal an item (`R`, `V`, sensitivity
/// topics, `safeguarding`): what an explicit consent must name to open it.
pub fn sealing_codes(resource: &Value) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in crate::json::values(resource, "meta.security") {
        let system = c.get("system").and_then(Value::as_str).unwrap_or("");
        let code = c.get("code").and_then(Value::as_str).unwrap_or("");
        let seals = match system {
            CONFIDENTIALITY => matches!(code, "R" | "V"),
            ACT_CODE => SENSITIVITY_TOPICS.contains(&code),
            LOCAL_LABELS => code == "safeguarding",
            _ => false,
        };
        if seals && !out.contains(&code) {
            out.push(code);
        }
    }
    out
}

/// The tokens (system, code) whose presence in `meta.security` seals an item,
/// for search criteria.
pub fn sensitive_tokens() -> Vec<(String, String)> {
    let mut out = vec![
        (CONFIDENTIALITY.to_owned(), "R".to_owned()),
        (CONFIDENTIALITY.to_owned(), "V".to_owned()),
        (LOCAL_LABELS.to_owned(), "safeguarding".to_owned()),
    ];
    out.extend(
        SENSITIVITY_TOPICS
            .iter()
            .map(|t| (ACT_CODE.to_owned(), (*t).to_owned())),
    );
    out
}

/// The tokens that withhold an item from the patient and proxies.
pub fn not_for_patient_tokens() -> Vec<(String, String)> {
    vec![
        (ACT_CODE.to_owned(), "NOPAT".to_owned()),
        (LOCAL_LABELS.to_owned(), "third-party".to_owned()),
    ]
}

/// The organisation that recorded an item (the server's `recorded-by` tag).
pub fn recorded_by(resource: &Value) -> Option<&str> {
    resource.get("meta").and_then(recorded_by_in_meta)
}

/// [`recorded_by`], given the item's `meta`.
pub fn recorded_by_in_meta(meta: &Value) -> Option<&str> {
    crate::json::values(meta, "tag")
        .into_iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(RECORDED_BY))
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
}

/// The `meta.<field>` list of a resource (`tag`, `security`), created when
/// missing; `None` when `meta` or the field is not of the right shape.
pub fn meta_list<'a>(
    resource: &'a mut Map<String, Value>,
    field: &str,
) -> Option<&'a mut Vec<Value>> {
    resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()?
        .entry(field)
        .or_insert_with(|| Value::Array(vec![]))
        .as_array_mut()
}

/// Adds the coding (system, code) to a list unless one is there already.
pub fn add_coding(list: &mut Vec<Value>, system: &str, code: &str) {
    let present = list.iter().any(|c| {
        c.get("system").and_then(Value::as_str) == Some(system)
            && c.get("code").and_then(Value::as_str) == Some(code)
    });
    if !present {
        list.push(serde_json::json!({"system": system, "code": code}));
    }
}

/// Whether the item carries a record-category tag.
pub fn has_category(resource: &Value, code: &str) -> bool {
    crate::json::values(resource, "meta.tag")
        .into_iter()
        .any(|c| {
            c.get("system").and_then(Value::as_str) == Some(RECORD_CATEGORY)
                && c.get("code").and_then(Value::as_str) == Some(code)
        })
}

/// The starter list of SNOMED CT concepts that seal an item, per sensitivity
/// category. Deliberately small and exact-match (no hierarchy yet): the
/// terminology work replaces it with subsumption over these parents.
/// Concept ids come from the SNOMED CT International and UK editions.
pub const SENSITIVE_CODES: &[(&str, &str, &str)] = &[
    // HIV
    ("86406008", "HIV", "Human immunodeficiency virus infection"),
    ("165816005", "HIV", "Human immunodeficiency virus positive"),
    ("62479008", "HIV", "Acquired immune deficiency syndrome"),
    (
        "31676001",
        "HIV",
        "Human immunodeficiency virus antigen test",
    ),
    // sexually transmitted infections
    ("76272004", "STD", "Syphilis"),
    ("15628003", "STD", "Gonorrhea"),
    ("240589008", "STD", "Chlamydia trachomatis infection"),
    ("310861008", "STD", "Chlamydia antigen test"),
    ("165829005", "STD", "Gonorrhea infection test"),
    ("269828009", "STD", "Syphilis infection test"),
    // sexual and reproductive health
    ("714812005", "SEX", "Induced termination of pregnancy"),
    ("10383002", "SEX", "Counseling for termination of pregnancy"),
    ("386394001", "SEX", "Pregnancy termination care"),
    (
        "65200003",
        "SEX",
        "Insertion of intrauterine contraceptive device",
    ),
    (
        "169553002",
        "SEX",
        "Insertion of subcutaneous contraceptive",
    ),
    // mental health
    ("35489007", "PSY", "Depressive disorder"),
    ("58214004", "PSY", "Schizophrenia"),
    ("13746004", "PSY", "Bipolar disorder"),
    ("197480006", "PSY", "Anxiety disorder"),
    // substance use
    ("7200002", "ETH", "Alcoholism"),
    ("66590003", "ETH", "Alcohol dependence"),
    // safeguarding (UK edition)
    (
        "836881000000105",
        "safeguarding",
        "Child is cause for safeguarding concern",
    ),
    (
        "878111000000109",
        "safeguarding",
        "Unborn child is cause for safeguarding concern",
    ),
    (
        "342191000000101",
        "safeguarding",
        "Subject to child protection plan",
    ),
];

/// The category a SNOMED CT code seals under, if it is on the list.
pub fn sensitive_category(code: &str) -> Option<&'static str> {
    SENSITIVE_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, cat, _)| *cat)
}

/// Labels a resource on write: every SNOMED CT coding anywhere in it (codes,
/// values, reasons, medications) on the sensitive list adds its category
/// (`v3-ActCode` topic or the local safeguarding label) and confidentiality
/// `R` to `meta.security`, unless already present. Returns the categories
/// added.
pub fn auto_label(resource: &mut Map<String, Value>) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = Vec::new();
    for (k, v) in resource.iter() {
        if k != "meta" && k != "text" {
            collect_sensitive(v, &mut found);
        }
    }
    found.sort_unstable();
    found.dedup();
    if found.is_empty() {
        return found;
    }
    let Some(security) = meta_list(resource, "security") else {
        return vec![];
    };
    add_coding(security, CONFIDENTIALITY, "R");
    for cat in &found {
        if *cat == "safeguarding" {
            add_coding(security, LOCAL_LABELS, "safeguarding");
        } else {
            add_coding(security, ACT_CODE, cat);
        }
    }
    found
}

fn collect_sensitive(v: &Value, found: &mut Vec<&'static str>) {
    match v {
        Value::Object(m) => {
            if m.get("system").and_then(Value::as_str) == Some(SNOMED)
                && let Some(cat) = m
                    .get("code")
                    .and_then(Value::as_str)
                    .and_then(sensitive_category)
            {
                found.push(cat);
            }
            for x in m.values() {
                collect_sensitive(x, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_sensitive(x, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_a_sensitive_condition_once() {
        let mut r = serde_json::json!({"resourceType": "Condition",
            "code": {"coding": [{"system": SNOMED, "code": "86406008"}]}})
        .as_object()
        .cloned()
        .unwrap();
        assert_eq!(auto_label(&mut r), vec!["HIV"]);
        assert_eq!(auto_label(&mut r), vec!["HIV"]);
        let v = Value::Object(r);
        assert_eq!(labels_of(&v), (true, false));
        assert_eq!(crate::json::values(&v, "meta.security").len(), 2);
    }

    #[test]
    fn ordinary_codes_are_not_labelled() {
        let mut r = serde_json::json!({"resourceType": "Condition",
            "code": {"coding": [{"system": SNOMED, "code": "38341003"}]}})
        .as_object()
        .cloned()
        .unwrap();
        assert!(auto_label(&mut r).is_empty());
        assert!(r.get("meta").is_none());
    }

    #[test]
    fn nopat_and_third_party() {
        let v = serde_json::json!({"meta": {"security": [{"system": ACT_CODE, "code": "NOPAT"}]}});
        assert_eq!(labels_of(&v), (false, true));
        let v = serde_json::json!({"meta": {"security": [{"system": LOCAL_LABELS, "code": "third-party"}, {"system": CONFIDENTIALITY, "code": "N"}]}});
        assert_eq!(labels_of(&v), (false, true));
    }
}
