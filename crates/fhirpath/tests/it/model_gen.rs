//! Developer tool: regenerates `src/model/r4.txt`, the compact FHIR R4 type
//! model embedded in the engine, from the official StructureDefinitions.
//!
//! Run with
//! `cargo test -p fhirpath --test it -- --ignored regenerate_r4_model`
//! when `/work/shared/data/fhir-r4` is present. The output is deterministic
//! (it follows the order of the source bundles), so re-running it on the same
//! input produces no diff.
//!
//! Output format (one definition per block):
//!
//! ```text
//! T <type name> <base type or -> <kind: p|c|r|b>
//!  <element name, with [x] for choice elements> <type>[|<type>...]
//! ```
//!
//! Backbone elements (and `Element`-typed elements with children, such as
//! `Timing.repeat`) become their own `b` types named by their full path, and
//! `contentReference` elements point at such a path. Elements inherited from
//! the base type are not repeated: the loader flattens the hierarchy.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

const SOURCE_DIR: &str = "/work/shared/data/fhir-r4";
const SYSTEM_PREFIX: &str = "http://hl7.org/fhirpath/System.";
const FHIR_TYPE_EXT: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

struct TypeBlock {
    name: String,
    base: String,
    kind: char,
    lines: Vec<String>,
}

fn element_type_codes(element: &Value, path: &str) -> Vec<String> {
    if path == "Resource.id" {
        // The snapshot encodes Resource.id as a System.String with a
        // fhir-type extension of `string`, but the FHIR specification (and the
        // official FHIRPath tests) type it as `id`.
        return vec!["id".to_string()];
    }
    let mut codes = Vec::new();
    for ty in element["type"].as_array().into_iter().flatten() {
        let code = ty["code"].as_str().unwrap_or_default();
        if let Some(system) = code.strip_prefix(SYSTEM_PREFIX) {
            let fhir_type = ty["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| e["url"] == FHIR_TYPE_EXT)
                .and_then(|e| e["valueUrl"].as_str().or_else(|| e["valueUri"].as_str()));
            match fhir_type {
                Some(t) => codes.push(t.to_string()),
                None => codes.push(system.to_lowercase()),
            }
        } else if !code.is_empty() {
            codes.push(code.to_string());
        }
    }
    codes
}

#[test]
#[ignore = "developer tool: regenerates src/model/r4.txt from /work/shared/data/fhir-r4"]
fn regenerate_r4_model() {
    let dir = Path::new(SOURCE_DIR);
    let mut blocks: Vec<TypeBlock> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();

    for file in ["profiles-types.json", "profiles-resources.json"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let bundle: Value = serde_json::from_str(&text).unwrap();
        for entry in bundle["entry"].as_array().unwrap() {
            let sd = &entry["resource"];
            if sd["resourceType"] != "StructureDefinition" || sd["derivation"] == "constraint" {
                continue;
            }
            let kind = match sd["kind"].as_str() {
                Some("primitive-type") => 'p',
                Some("complex-type") => 'c',
                Some("resource") => 'r',
                _ => continue,
            };
            let type_name = sd["type"].as_str().unwrap().to_string();
            let base = sd["baseDefinition"]
                .as_str()
                .and_then(|b| b.rsplit('/').next())
                .unwrap_or("-")
                .to_string();
            index.insert(type_name.clone(), blocks.len());
            blocks.push(TypeBlock {
                name: type_name.clone(),
                base,
                kind,
                lines: Vec::new(),
            });
            if kind == 'p' {
                // Primitive types only carry inherited id/extension and the
                // internal `value`, which FHIRPath does not navigate.
                continue;
            }

            let elements = sd["snapshot"]["element"].as_array().unwrap();
            let paths: HashSet<&str> = elements.iter().filter_map(|e| e["path"].as_str()).collect();
            let has_children = |p: &str| {
                paths
                    .iter()
                    .any(|q| q.len() > p.len() && q.starts_with(p) && q.as_bytes()[p.len()] == b'.')
            };
            for element in elements {
                let path = element["path"].as_str().unwrap();
                let Some((parent, name)) = path.rsplit_once('.') else {
                    continue; // the root element
                };
                let base_path = element["base"]["path"].as_str().unwrap_or(path);
                if base_path.split('.').next() != Some(type_name.as_str()) {
                    continue; // inherited from the base type
                }
                let types: Vec<String> =
                    if let Some(reference) = element["contentReference"].as_str() {
                        vec![reference.trim_start_matches('#').to_string()]
                    } else {
                        let codes = element_type_codes(element, path);
                        if has_children(path)
                            && codes.len() == 1
                            && (codes[0] == "BackboneElement" || codes[0] == "Element")
                        {
                            index.insert(path.to_string(), blocks.len());
                            blocks.push(TypeBlock {
                                name: path.to_string(),
                                base: codes[0].clone(),
                                kind: 'b',
                                lines: Vec::new(),
                            });
                            vec![path.to_string()]
                        } else {
                            codes
                        }
                    };
                let owner = *index
                    .get(parent)
                    .unwrap_or_else(|| panic!("no owner for {path}"));
                blocks[owner]
                    .lines
                    .push(format!(" {name} {}", types.join("|")));
            }
        }
    }

    // Sanity check: every referenced type must be defined.
    for block in &blocks {
        for line in &block.lines {
            let types = line.trim().split(' ').nth(1).unwrap();
            for t in types.split('|') {
                assert!(index.contains_key(t), "{}: unknown type {t}", block.name);
            }
        }
    }

    let mut out = String::new();
    out.push_str("# FHIR R4 (4.0.1) type model for the FHIRPath engine.\n");
    out.push_str("# Generated by tests/it/model_gen.rs from profiles-types.json and\n");
    out.push_str("# profiles-resources.json; do not edit by hand.\n");
    for block in &blocks {
        writeln!(out, "T {} {} {}", block.name, block.base, block.kind).unwrap();
        for line in &block.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/model/r4.txt");
    std::fs::write(&target, out).unwrap();
    println!("wrote {} types to {}", blocks.len(), target.display());
}
