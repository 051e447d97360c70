//! Turning request bodies into stored versions: parse, check, stamp `id` and
//! `meta`, derive the Patient compartment and the index rows.

use fhir::{Issue, IssueCode, Severity};
use serde_json::{Map, Value};
use store::{IndexRow, Micros};

use crate::error::{CoreError, Result};
use crate::instant::to_instant;

/// Parses a request body as a JSON object with a `resourceType`.
pub fn parse_json(body: &[u8]) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // serde_json's message names the line and column, never the content.
        CoreError::MalformedJson(e.to_string())
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(CoreError::MalformedJson(
            "expected a JSON object".to_owned(),
        )),
    }
}

/// The `resourceType` of a parsed resource, which must be a known R4 type.
pub fn resource_type(map: &Map<String, Value>) -> Result<String> {
    match map.get("resourceType") {
        Some(Value::String(t)) if fhir::is_known_resource_type(t) => Ok(t.clone()),
        Some(Value::String(t)) => Err(CoreError::Invalid(vec![Issue {
            severity: Severity::Error,
            code: IssueCode::NotSupported,
            diagnostics: format!("'{t}' is not a FHIR R4 resource type"),
            expression: "resourceType".to_owned(),
        }])),
        _ => Err(CoreError::Invalid(vec![Issue {
            severity: Severity::Error,
            code: IssueCode::Required,
            diagnostics: "a resource needs a string 'resourceType'".to_owned(),
            expression: "resourceType".to_owned(),
        }])),
    }
}

/// Validates against the R4 definitions; errors reject, warnings are returned.
pub fn validate(map: Map<String, Value>) -> Result<(Map<String, Value>, Vec<Issue>)> {
    let value = Value::Object(map);
    let issues = fhir::validate_resource(&value);
    if fhir::has_errors(&issues) {
        return Err(CoreError::Invalid(issues));
    }
    match value {
        Value::Object(map) => Ok((map, issues)),
        _ => Err(CoreError::Internal),
    }
}

/// The stored form of a version, ready for `Tx::put`.
pub struct Stamped {
    pub body: String,
    pub patient_id: Option<String>,
    pub index: Vec<IndexRow>,
}

/// Sets `id` and `meta.versionId`/`meta.lastUpdated` (keeping the rest of
/// `meta`), orders `resourceType, id, meta` first, and serialises compactly.
pub fn stamp(
    mut map: Map<String, Value>,
    rtype: &str,
    id: &str,
    version: u64,
    last_updated: Micros,
) -> Result<Stamped> {
    let mut meta = match map.remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.remove("versionId");
    meta.remove("lastUpdated");
    let mut new_meta = Map::new();
    new_meta.insert("versionId".to_owned(), Value::String(version.to_string()));
    new_meta.insert(
        "lastUpdated".to_owned(),
        Value::String(to_instant(last_updated)),
    );
    new_meta.extend(meta);

    map.remove("resourceType");
    map.remove("id");
    let mut out = Map::new();
    out.insert("resourceType".to_owned(), Value::String(rtype.to_owned()));
    out.insert("id".to_owned(), Value::String(id.to_owned()));
    out.insert("meta".to_owned(), Value::Object(new_meta));
    out.extend(map);

    let (patient_id, index) = index(rtype, id, &out);
    let body = serde_json::to_string(&Value::Object(out)).map_err(|_| CoreError::Internal)?;
    Ok(Stamped {
        body,
        patient_id,
        index,
    })
}

/// Names the rules [`index`] applies; stored with the index so that a
/// change of rules triggers a rebuild at start-up.
pub const INDEX_VERSION: &str = "1-identifier";

/// The Patient compartment and the index rows of a resource.
pub fn index(rtype: &str, id: &str, map: &Map<String, Value>) -> (Option<String>, Vec<IndexRow>) {
    (compartment_patient(rtype, id, map), index_rows(map))
}

/// Elements that point at the patient a resource is about, in the order they
/// are tried. A stopgap until the search work derives compartments from the
/// official CompartmentDefinition through FHIRPath.
const PATIENT_ELEMENTS: &[&str] = &["patient", "subject", "beneficiary", "individual", "who"];

/// The Patient compartment a resource belongs to: a Patient is its own;
/// others follow their first patient-pointing reference.
pub fn compartment_patient(rtype: &str, id: &str, map: &Map<String, Value>) -> Option<String> {
    if rtype == "Patient" {
        return Some(id.to_owned());
    }
    PATIENT_ELEMENTS.iter().find_map(|name| {
        let reference = map.get(*name)?.get("reference")?.as_str()?;
        let rest = reference.strip_prefix("Patient/")?;
        let pid = rest.split('/').next()?;
        fhir::is_valid_id(pid).then(|| pid.to_owned())
    })
}

/// Index rows for the parameters this server can search today: `identifier`.
fn index_rows(map: &Map<String, Value>) -> Vec<IndexRow> {
    let mut rows = Vec::new();
    let identifiers: Vec<&Value> = match map.get("identifier") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        _ => vec![],
    };
    for ident in identifiers {
        if let Some(code) = ident.get("value").and_then(Value::as_str) {
            rows.push(IndexRow::Token {
                param: "identifier".to_owned(),
                system: ident
                    .get("system")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                code: Some(code.to_owned()),
                text: None,
            });
        }
    }
    rows
}

/// Calls `f` on every `Reference.reference` string in the resource (contained
/// resources included), letting it rewrite the value.
pub fn rewrite_references(
    value: &mut Value,
    f: &mut impl FnMut(&mut String) -> Result<()>,
) -> Result<()> {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(s) if key == "reference" => f(s)?,
                    Value::Object(_) | Value::Array(_) => rewrite_references(v, f)?,
                    _ => {}
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for v in items {
                rewrite_references(v, f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn stamp_orders_and_keeps_meta() {
        let m = obj(
            json!({"gender":"male","meta":{"versionId":"9","tag":[{"code":"t"}]},"resourceType":"Patient","id":"old"}),
        );
        let s = stamp(m, "Patient", "p1", 2, 0).unwrap();
        assert_eq!(
            s.body,
            r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000000Z","tag":[{"code":"t"}]},"gender":"male"}"#
        );
        assert_eq!(s.patient_id.as_deref(), Some("p1"));
    }

    #[test]
    fn compartment_and_index() {
        let m = obj(
            json!({"resourceType":"Observation","subject":{"reference":"Patient/abc"},
            "identifier":[{"system":"s","value":"1"},{"value":"2"}]}),
        );
        assert_eq!(
            compartment_patient("Observation", "o", &m).as_deref(),
            Some("abc")
        );
        assert_eq!(
            index_rows(&m),
            vec![
                IndexRow::Token {
                    param: "identifier".into(),
                    system: Some("s".into()),
                    code: Some("1".into()),
                    text: None,
                },
                IndexRow::Token {
                    param: "identifier".into(),
                    system: None,
                    code: Some("2".into()),
                    text: None,
                },
            ]
        );
        let m = obj(json!({"resourceType":"Observation","subject":{"reference":"Group/abc"}}));
        assert_eq!(compartment_patient("Observation", "o", &m), None);
    }

    #[test]
    fn rewrites_nested_references() {
        let mut v = json!({"a":{"reference":"urn:uuid:1"},"b":[{"reference":"urn:uuid:2"}],"contained":[{"x":{"reference":"urn:uuid:1"}}]});
        rewrite_references(&mut v, &mut |s: &mut String| {
            *s = s.replace("urn:uuid:", "Patient/");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            v,
            json!({"a":{"reference":"Patient/1"},"b":[{"reference":"Patient/2"}],"contained":[{"x":{"reference":"Patient/1"}}]})
        );
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_json(b"{"), Err(CoreError::MalformedJson(_))));
        assert!(matches!(
            parse_json(b"[]"),
            Err(CoreError::MalformedJson(_))
        ));
    }
}
