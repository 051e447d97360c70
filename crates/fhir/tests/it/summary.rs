//! The generator of `data/r4-summary.json`: per resource type, the top-level
//! elements marked `isSummary` and those with `min >= 1` in the official R4
//! StructureDefinitions (for `_summary=true` and `_summary=text`).
//!
//! Run `cargo test -p fhir -- --ignored regenerate_summary` to rewrite it;
//! `committed_summary_is_up_to_date` checks it when the definitions are present.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::generate::official_definitions_dir;

fn committed_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/r4-summary.json")
}

fn generate(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("profiles-resources.json")).unwrap();
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let mut lines = Vec::new();
    for sd in bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
    {
        if sd["resourceType"] != "StructureDefinition"
            || sd["kind"] != "resource"
            || sd["abstract"] == true
        {
            continue;
        }
        let rtype = sd["type"].as_str().unwrap();
        let mut summary = Vec::new();
        let mut mandatory = Vec::new();
        for el in sd["snapshot"]["element"].as_array().unwrap() {
            let path = el["path"].as_str().unwrap();
            let Some(name) = path.strip_prefix(&format!("{rtype}.")) else {
                continue;
            };
            if name.contains('.') {
                continue;
            }
            // Choice elements are matched by their prefix (`value[x]` → `value`).
            let name = name.trim_end_matches("[x]").to_owned();
            if el["isSummary"] == true {
                summary.push(name.clone());
            }
            if el["min"].as_u64().unwrap_or(0) >= 1 {
                mandatory.push(name);
            }
        }
        lines.push(format!(
            "{}:{{\"summary\":{},\"mandatory\":{}}}",
            serde_json::to_string(rtype).unwrap(),
            serde_json::to_string(&summary).unwrap(),
            serde_json::to_string(&mandatory).unwrap()
        ));
    }
    format!("{{\n{}\n}}\n", lines.join(",\n"))
}

#[test]
#[ignore = "rewrites data/r4-summary.json from the official definitions; run explicitly"]
fn regenerate_summary() {
    let dir = official_definitions_dir();
    assert!(
        dir.exists(),
        "the official definitions are not at {}",
        dir.display()
    );
    std::fs::write(committed_file(), generate(&dir)).unwrap();
}

#[test]
fn committed_summary_is_up_to_date() {
    let dir = official_definitions_dir();
    if !dir.exists() {
        eprintln!(
            "skipped: the official R4 definitions are not at {}",
            dir.display()
        );
        return;
    }
    let committed = std::fs::read_to_string(committed_file()).unwrap();
    assert!(
        generate(&dir) == committed,
        "data/r4-summary.json is out of date: run `cargo test -p fhir -- --ignored regenerate_summary`"
    );
}

#[test]
fn summary_elements_follow_the_specification() {
    // Patient: isSummary per R4 patient.html (Σ column), written by hand.
    let s = fhir::summary::summary_elements("Patient").unwrap();
    for name in [
        "id",
        "meta",
        "implicitRules",
        "identifier",
        "active",
        "name",
        "telecom",
        "gender",
        "birthDate",
        "deceased",
        "address",
        "managingOrganization",
        "link",
    ] {
        assert!(s.contains(&name), "{name}");
    }
    for name in ["text", "contact", "photo", "maritalStatus", "communication"] {
        assert!(!s.contains(&name), "{name}");
    }
    assert_eq!(
        fhir::summary::mandatory_elements("Observation").unwrap(),
        ["status", "code"]
    );
    assert!(fhir::summary::summary_elements("NotAType").is_none());
}
