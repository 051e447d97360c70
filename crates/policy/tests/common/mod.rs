//! Helpers shared by the policy's acceptance tests (`matrix.rs`,
//! `property.rs`): fixed instants, the label and tag systems, principal and
//! relationship builders, an independent evaluator of [`Criterion`] over
//! FHIR JSON, the resolution of `Latest` conditions as the core performs
//! it, and the check that a restricted view dropped what it must drop.
//!
//! Nothing here asks the policy what the answer should be.

use policy::{Criterion, PatientAccess, Principal, Relationship, keep_elements, scopes};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600_000_000;
pub const HOUR: i64 = 3_600_000_000;
pub const DAY: i64 = 24 * HOUR;

pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
pub const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// sharedcare's own security labels (`safeguarding`, `third-party`).
pub const LOCAL: &str = "https://fhir.sharedcare.org.uk/CodeSystem/security-label";
pub const RECORDED_BY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/recorded-by";
pub const RECORD_CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/record-category";

/// The labels issue #4 says seal an item: (name, system, code).
pub const SEALING: &[(&str, &str, &str)] = &[
    ("R", CONFIDENTIALITY, "R"),
    ("V", CONFIDENTIALITY, "V"),
    ("HIV", ACT_CODE, "HIV"),
    ("PSY", ACT_CODE, "PSY"),
    ("SEX", ACT_CODE, "SEX"),
    ("STD", ACT_CODE, "STD"),
    ("ETH", ACT_CODE, "ETH"),
    ("SDV", ACT_CODE, "SDV"),
    ("GDIS", ACT_CODE, "GDIS"),
    ("safeguarding", LOCAL, "safeguarding"),
];

/// The labels that withhold an item from the person and their proxies.
pub const NOT_FOR_PATIENT: &[(&str, &str, &str)] = &[
    ("NOPAT", ACT_CODE, "NOPAT"),
    ("third-party", LOCAL, "third-party"),
];

/// The clinical roles of issue #4.
pub const CLINICAL: &[&str] = &[
    "gp",
    "hospital-clinician",
    "community-clinician",
    "pharmacist",
    "care-nurse",
];

/// A principal with the scopes its kind of token carries.
pub fn principal(
    role: &str,
    org: Option<&str>,
    registration: Option<&str>,
    patient: Option<&str>,
    related_person: Option<&str>,
    scope: &str,
) -> Principal {
    Principal {
        subject: match (patient, related_person) {
            (_, Some(rp)) => format!("rp-{rp}"),
            (Some(p), None) if role == "patient" => format!("pt-{p}"),
            _ => format!("{role}-user"),
        },
        name: "Test User".into(),
        role: role.into(),
        org: org.map(str::to_owned),
        registration: registration.map(str::to_owned),
        patient: patient.map(str::to_owned),
        related_person: related_person.map(str::to_owned),
        scopes: scopes::parse(scope),
    }
}

pub fn rel(
    org: &str,
    kind: &str,
    user: Option<&str>,
    active: bool,
    start: Option<i64>,
    end: Option<i64>,
) -> Relationship {
    Relationship {
        org: org.into(),
        kind: kind.into(),
        user: user.map(str::to_owned),
        active,
        start,
        end,
        detail: None,
    }
}

/// Sets `meta.tag` (the recorder, and an optional record category) and
/// `meta.security` of an item, replacing what was there.
pub fn with_meta(
    mut item: Value,
    recorder: Option<&str>,
    category: Option<&str>,
    security: &[(&str, &str)],
) -> Value {
    let mut tags = Vec::new();
    if let Some(r) = recorder {
        tags.push(json!({"system": RECORDED_BY, "code": r}));
    }
    if let Some(c) = category {
        tags.push(json!({"system": RECORD_CATEGORY, "code": c}));
    }
    let security: Vec<Value> = security
        .iter()
        .map(|(s, c)| json!({"system": s, "code": c}))
        .collect();
    if let Some(m) = item.as_object_mut() {
        m.insert("meta".into(), json!({"tag": tags, "security": security}));
    }
    item
}

// ---------------------------------------------------------------------------
// Dates: written and read here in one format, `YYYY-MM-DDThh:mm:ssZ`.

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A FHIR `dateTime` (UTC, whole seconds) of an instant.
pub fn date_time(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Reads back what [`date_time`] writes.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    if s.len() != 20 || !s.ends_with('Z') {
        return None;
    }
    let days = days_from_civil(n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let secs = n(11, 13)? * 3600 + n(14, 16)? * 60 + n(17, 19)?;
    Some((days * 86_400 + secs) * 1_000_000)
}

// ---------------------------------------------------------------------------
// An evaluator of the policy's search criteria over FHIR JSON: the search
// parameters the default views use, mapped by hand to where they sit in the
// resources these tests build (R4 search parameter definitions).

fn codings(v: Option<&Value>) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    let mut push = |c: &Value| {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            let system = c.get("system").and_then(Value::as_str).map(str::to_owned);
            out.push((system, code.to_owned()));
        }
    };
    match v {
        Some(Value::Array(items)) => items.iter().for_each(&mut push),
        Some(c @ Value::Object(_)) => push(c),
        _ => {}
    }
    out
}

fn token_values(param: &str, r: &Value) -> Result<Vec<(Option<String>, String)>, String> {
    Ok(match param {
        "_tag" => codings(r.pointer("/meta/tag")),
        "_security" => codings(r.pointer("/meta/security")),
        "status" => r
            .get("status")
            .and_then(Value::as_str)
            .map(|s| vec![(None, s.to_owned())])
            .unwrap_or_default(),
        "clinical-status" => codings(r.pointer("/clinicalStatus/coding")),
        "class" => codings(r.get("class")),
        "category" => r
            .get("category")
            .and_then(Value::as_array)
            .map(|cats| cats.iter().flat_map(|c| codings(c.get("coding"))).collect())
            .unwrap_or_default(),
        other => {
            return Err(format!(
                "the evaluator does not know token parameter '{other}'"
            ));
        }
    })
}

/// The value of a date search parameter (the start of a period).
pub fn date_value(param: &str, r: &Value) -> Result<Option<i64>, String> {
    let rtype = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
    let paths: &[&str] = match (param, rtype) {
        ("effective-time", _) => &["/effectiveDateTime", "/effectivePeriod/start"],
        ("date", "Encounter") => &["/period/start"],
        ("date", "Observation") => &["/effectiveDateTime", "/effectivePeriod/start"],
        ("date", "MedicationAdministration") => &["/effectiveDateTime", "/effectivePeriod/start"],
        _ => {
            return Err(format!(
                "the evaluator does not know date parameter '{param}' on {rtype}"
            ));
        }
    };
    Ok(paths
        .iter()
        .find_map(|p| r.pointer(p).and_then(Value::as_str))
        .and_then(parse_date_time))
}

/// Does the item meet the criterion? `Err` for what the evaluator cannot
/// judge (an unknown parameter, or a population criterion on an item).
pub fn eval(c: &Criterion, r: &Value) -> Result<bool, String> {
    match c {
        Criterion::Token { param, not, any_of } => {
            let values = token_values(param, r)?;
            let hit = values.iter().any(|(vs, vc)| {
                any_of.iter().any(|(s, code)| {
                    code == vc && s.as_ref().is_none_or(|s| vs.as_ref() == Some(s))
                })
            });
            Ok(hit != *not)
        }
        Criterion::DateFrom { param, from } => {
            Ok(date_value(param, r)?.is_some_and(|d| d >= *from))
        }
        Criterion::Ids(ids) => Ok(r
            .get("id")
            .and_then(Value::as_str)
            .is_some_and(|id| ids.iter().any(|i| i == id))),
        Criterion::AnyOf(groups) => {
            for g in groups {
                if eval_all(g, r)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Criterion::Nothing => Ok(false),
        Criterion::Related { .. } => {
            Err("a population criterion in a search within one record".into())
        }
    }
}

/// Does the item meet every criterion (an AND list)?
pub fn eval_all(cs: &[Criterion], r: &Value) -> Result<bool, String> {
    for c in cs {
        if !eval(c, r)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Resolves the access's `Latest` conditions as the core does: run each
/// query's criteria over the record's items of its type, newest first by
/// its sort parameter, and keep the first `n` ids.
pub fn resolve_latest(access: &mut PatientAccess, record: &[Value]) -> Result<(), String> {
    for q in access.pending_latest() {
        let mut hits: Vec<(i64, String)> = Vec::new();
        for r in record
            .iter()
            .filter(|r| r.get("resourceType").and_then(Value::as_str) == Some(q.rtype.as_str()))
        {
            if eval_all(&q.criteria, r)? {
                let date = date_value(&q.sort, r)?.unwrap_or(i64::MIN);
                let id = r.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
                hits.push((date, id));
            }
        }
        hits.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        access.resolve_latest(q.rule, hits.into_iter().take(q.n).map(|h| h.1).collect());
    }
    Ok(())
}

/// Elements a restricted (non-clinical) view must never keep, whatever the
/// type: narrative, notes, free-text and anything that could carry them.
pub const NEVER_IN_RESTRICTED: &[&str] = &[
    "text",
    "note",
    "contained",
    "reaction.description",
    "reasonCode",
    "reasonReference",
    "diagnosis",
    "conclusion",
    "comment",
];

fn present(v: &Value, path: &str) -> bool {
    let mut current = vec![v];
    for step in path.split('.') {
        let mut next = Vec::new();
        for c in current {
            match c.get(step) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(other) => next.push(other),
                None => {}
            }
        }
        current = next;
    }
    !current.is_empty()
}

/// What is wrong with `item` cut down to `elements` by the policy's
/// `keep_elements`: forbidden paths still present, required ones gone.
pub fn element_faults(
    item: &Value,
    elements: &[String],
    forbidden: &[&str],
    required: &[&str],
) -> Vec<String> {
    let Some(map) = item.as_object() else {
        return vec!["not an object".into()];
    };
    let mut map = map.clone();
    keep_elements(&mut map, elements);
    let kept = Value::Object(map);
    let mut out = Vec::new();
    for f in NEVER_IN_RESTRICTED.iter().chain(forbidden) {
        if present(&kept, f) {
            out.push(format!("keeps '{f}'"));
        }
    }
    for r in required {
        if !present(&kept, r) {
            out.push(format!("drops '{r}'"));
        }
    }
    out
}
