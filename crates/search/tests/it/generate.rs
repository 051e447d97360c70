//! The generator of `data/r4-search-parameters.json` from the official R4
//! SearchParameters and the Patient CompartmentDefinition.
//!
//! Run `cargo test -p search --test it -- --ignored regenerate_registry` to
//! rewrite the file; `committed_registry_is_up_to_date` checks it whenever the
//! official definitions are present beside the repository. The format is
//! documented in `src/registry.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the official definitions are, when present: `/work/shared/data/fhir-r4`
/// for a checkout at `/work/main`.
pub fn official_definitions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fhir-r4")
}

fn committed_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/r4-search-parameters.json")
}

fn read_json(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The strings of a JSON array property (empty when absent).
fn strings(v: &Value, key: &str) -> Vec<Value> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Value::from(s.as_str().expect("string")))
        .collect()
}

/// Generates the derived registry file from the official files in `dir`.
pub fn generate(dir: &Path) -> String {
    let bundle = read_json(dir, "search-parameters.json");
    let compartment = read_json(dir, "compartmentdefinition-patient.json");
    let params: Vec<&Value> = bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == "SearchParameter")
        .collect();
    // Every R4 resource type: the CompartmentDefinition lists them all.
    let all_types: Vec<Value> = compartment["resource"]
        .as_array()
        .expect("resource")
        .iter()
        .map(|r| Value::from(str_of(r, "code")))
        .collect();
    let type_by_url: HashMap<&str, &str> = params
        .iter()
        .map(|p| (str_of(p, "url"), str_of(p, "type")))
        .collect();

    let mut lines = Vec::new();
    for p in &params {
        let components: Vec<Value> = p["component"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let definition = str_of(c, "definition");
                let kind = type_by_url
                    .get(definition)
                    .unwrap_or_else(|| panic!("{}: unknown component {definition}", p["url"]));
                Value::from(vec![
                    Value::from(*kind),
                    Value::from(str_of(c, "expression")),
                ])
            })
            .collect();
        // A reference to any resource type lists every type: write `*`.
        let mut targets = strings(p, "target");
        if targets.len() == all_types.len() && all_types.iter().all(|t| targets.contains(t)) {
            targets = vec![Value::from("*")];
        }
        let line = Value::from(vec![
            Value::from(str_of(p, "code")),
            Value::from(str_of(p, "type")),
            Value::from(strings(p, "base")),
            p["expression"].as_str().map_or(Value::Null, Value::from),
            Value::from(targets),
            Value::from(components),
        ]);
        lines.push(line.to_string());
    }

    let mut compartment_lines = Vec::new();
    for resource in compartment["resource"].as_array().expect("resource") {
        let codes = strings(resource, "param");
        if !codes.is_empty() {
            compartment_lines.push(
                Value::from(vec![
                    Value::from(str_of(resource, "code")),
                    Value::from(codes),
                ])
                .to_string(),
            );
        }
    }

    let mut out = String::from("{\"fhirVersion\":\"4.0.1\",\n\"resourceTypes\":");
    out.push_str(&Value::from(all_types).to_string());
    out.push_str(",\n\"params\":[\n");
    out.push_str(&lines.join(",\n"));
    out.push_str("\n],\n\"patientCompartment\":[\n");
    out.push_str(&compartment_lines.join(",\n"));
    out.push_str("\n]}\n");
    out
}

#[test]
#[ignore = "rewrites data/r4-search-parameters.json from the official definitions; run explicitly"]
fn regenerate_registry() {
    let dir = official_definitions_dir();
    assert!(
        dir.exists(),
        "the official definitions are not at {}",
        dir.display()
    );
    let generated = generate(&dir);
    std::fs::write(committed_file(), &generated).expect("write registry");
    eprintln!(
        "wrote {} ({} bytes)",
        committed_file().display(),
        generated.len()
    );
}

#[test]
fn committed_registry_is_up_to_date() {
    let dir = official_definitions_dir();
    if !dir.exists() {
        eprintln!(
            "skipped: the official R4 definitions are not at {}, so the committed \
             data/r4-search-parameters.json cannot be compared with a fresh generation",
            dir.display()
        );
        return;
    }
    let generated = generate(&dir);
    let committed = std::fs::read_to_string(committed_file()).expect("read committed registry");
    assert!(
        generated == committed,
        "data/r4-search-parameters.json is out of date: run \
         `cargo test -p search --test it -- --ignored regenerate_registry`"
    );
}
