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

    let out = Value::Object(out);
    let (patient_id, index) = index(rtype, id, &out);
    let body = serde_json::to_string(&out).map_err(|_| CoreError::Internal)?;
    Ok(Stamped {
        body,
        patient_id,
        index,
    })
}

/// Names the rules [`index`] applies; stored with the index so that a
/// change of rules triggers a rebuild at start-up.
pub const INDEX_VERSION: &str = "4-r4-search-parameters-relationships-consent-markers";

/// The Patient compartment and the index rows of a resource, from the
/// official R4 SearchParameters and CompartmentDefinition.
pub fn index(rtype: &str, id: &str, resource: &Value) -> (Option<String>, Vec<IndexRow>) {
    let rows = search::extract(rtype, resource);
    (search::patient_compartment(rtype, id, &rows), rows)
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
        assert!(s.index.iter().any(|r| matches!(r, IndexRow::Token { param, code: Some(c), .. } if param == "gender" && c == "male")));
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
