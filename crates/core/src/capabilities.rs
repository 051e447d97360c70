//! The CapabilityStatement: only what this server really does.

use serde_json::{Value, json};

/// Search parameters every type supports today.
const SEARCH_PARAMS: &[(&str, &str, &str)] = &[
    ("_id", "token", "Logical id of the resource"),
    (
        "identifier",
        "token",
        "Business identifier (top-level Resource.identifier)",
    ),
];

pub fn capability_statement(base_url: &str, version: &str, date: &str) -> Value {
    let interactions: Vec<Value> = [
        "read",
        "vread",
        "update",
        "delete",
        "history-instance",
        "history-type",
        "create",
        "search-type",
    ]
    .iter()
    .map(|c| json!({"code": c}))
    .collect();
    let params: Vec<Value> = SEARCH_PARAMS
        .iter()
        .map(|(n, t, d)| json!({"name": n, "type": t, "documentation": d}))
        .collect();
    let resources: Vec<Value> = fhir::resource_types()
        .map(|t| {
            json!({
                "type": t,
                "interaction": interactions,
                "versioning": "versioned-update",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchParam": params,
                "operation": [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}],
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "sharedcare",
        "kind": "instance",
        "software": {"name": "sharedcare", "version": version},
        "implementation": {"description": "sharedcare shared health and social care record", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}],
        }],
    })
}
