//! The generator of `data/r4-definitions.json` from the official R4 definitions.
//!
//! Run `cargo test -p fhir -- --ignored regenerate_definitions` to rewrite the
//! file; `committed_definitions_are_up_to_date` checks it whenever the official
//! definitions are present beside the repository. The format is documented in
//! `src/definitions.rs`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where the official definitions are, when present: `/work/shared/data/fhir-r4`
/// for a checkout at `/work/main`.
pub fn official_definitions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fhir-r4")
}

fn committed_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/r4-definitions.json")
}

fn read_bundle(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The resources in a Bundle's entries.
fn entries(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Terminology: ValueSets and CodeSystems by canonical URL.
struct Terminology<'a> {
    value_sets: HashMap<&'a str, &'a Value>,
    code_systems: HashMap<&'a str, &'a Value>,
}

impl<'a> Terminology<'a> {
    fn new(bundles: &'a [Value]) -> Self {
        let mut value_sets = HashMap::new();
        let mut code_systems = HashMap::new();
        for resource in bundles.iter().flat_map(entries) {
            match str_of(resource, "resourceType") {
                "ValueSet" => {
                    value_sets.insert(str_of(resource, "url"), resource);
                }
                "CodeSystem" => {
                    code_systems.insert(str_of(resource, "url"), resource);
                }
                _ => {}
            }
        }
        Terminology {
            value_sets,
            code_systems,
        }
    }

    /// All codes of a value set, or `None` if it cannot be expanded from the
    /// local definitions (unknown or incomplete code systems, filters, excludes).
    fn expand(&self, url: &str, depth: usize) -> Option<BTreeSet<String>> {
        if depth > 10 {
            return None;
        }
        let value_set = self.value_sets.get(url)?;
        let compose = value_set.get("compose")?;
        if compose.get("exclude").is_some() {
            return None;
        }
        let mut codes = BTreeSet::new();
        for include in compose["include"].as_array()? {
            if include.get("filter").is_some() {
                return None;
            }
            for imported in include["valueSet"].as_array().into_iter().flatten() {
                let imported = imported.as_str()?.split('|').next()?;
                codes.extend(self.expand(imported, depth + 1)?);
            }
            if let Some(concepts) = include["concept"].as_array() {
                codes.extend(concepts.iter().map(|c| str_of(c, "code").to_owned()));
            } else if let Some(system) = include["system"].as_str() {
                let code_system = self.code_systems.get(system)?;
                if str_of(code_system, "content") != "complete" {
                    return None;
                }
                collect_codes(&code_system["concept"], &mut codes);
            }
        }
        (!codes.is_empty()).then_some(codes)
    }
}

/// Adds the codes of a CodeSystem's concept hierarchy.
fn collect_codes(concepts: &Value, out: &mut BTreeSet<String>) {
    for concept in concepts.as_array().into_iter().flatten() {
        out.insert(str_of(concept, "code").to_owned());
        collect_codes(&concept["concept"], out);
    }
}

/// One type to emit.
struct TypeEntry<'a> {
    name: &'a str,
    kind: &'static str,
    definition: &'a Value,
}

/// The type code(s) of an element, as written in the derived file.
fn type_codes(resource_root_id: bool, element: &Value) -> Vec<String> {
    let mut codes = Vec::new();
    for ty in element["type"].as_array().into_iter().flatten() {
        let code = str_of(ty, "code");
        let code = if code.starts_with("http://hl7.org/fhirpath/System.") {
            // FHIRPath system types carry the FHIR type in an extension.
            ty["extension"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|e| {
                    str_of(e, "url")
                        == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
                })
                .map(|e| str_of(e, "valueUrl"))
                .unwrap_or_else(|| panic!("no FHIR type for {}", element["path"]))
        } else {
            code
        };
        codes.push(code.to_owned());
    }
    if resource_root_id {
        // Resource.id is declared as System.String (fhir-type string) in the
        // snapshot, but it is a FHIR id: validate its format.
        codes = vec![String::from("id")];
    }
    codes
}

/// Generates the derived definitions from the official files in `dir`.
pub fn generate(dir: &Path) -> String {
    let types_bundle = read_bundle(dir, "profiles-types.json");
    let resources_bundle = read_bundle(dir, "profiles-resources.json");
    let terminology_bundles = [
        read_bundle(dir, "valuesets.json"),
        read_bundle(dir, "v3-codesystems.json"),
    ];
    let terminology = Terminology::new(&terminology_bundles);

    let mut types: Vec<TypeEntry> = Vec::new();
    for sd in entries(&types_bundle).filter(|r| r["resourceType"] == "StructureDefinition") {
        let name = str_of(sd, "id");
        let complex = sd["kind"] == "complex-type" && sd["derivation"] != "constraint";
        // Element is abstract but describes the `_name` companions of primitives.
        if complex && (sd["abstract"] == false || name == "Element") {
            types.push(TypeEntry {
                name,
                kind: "complex",
                definition: sd,
            });
        }
    }
    for sd in entries(&resources_bundle).filter(|r| r["resourceType"] == "StructureDefinition") {
        if sd["kind"] == "resource" && sd["abstract"] == false {
            types.push(TypeEntry {
                name: str_of(sd, "id"),
                kind: "resource",
                definition: sd,
            });
        }
    }
    types.sort_by(|a, b| a.name.cmp(b.name));

    // Value sets in order of first use; indices refer to this list.
    let mut value_set_index: HashMap<String, Option<usize>> = HashMap::new();
    let mut value_sets: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut types_json = Vec::new();
    for ty in &types {
        let elements = ty.definition["snapshot"]["element"]
            .as_array()
            .expect("snapshot");
        let paths: Vec<&str> = elements.iter().map(|e| str_of(e, "path")).collect();
        let mut lines = Vec::new();
        for element in elements.iter().skip(1) {
            let path = str_of(element, "path");
            let relative = path
                .strip_prefix(ty.name)
                .and_then(|p| p.strip_prefix('.'))
                .unwrap_or_else(|| panic!("{path} outside {}", ty.name));
            let has_children = paths.iter().any(|p| {
                p.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.'))
            });
            let types_field = if let Some(target) = element["contentReference"].as_str() {
                let target = target
                    .strip_prefix('#')
                    .and_then(|t| t.strip_prefix(ty.name))
                    .and_then(|t| t.strip_prefix('.'))
                    .unwrap_or_else(|| panic!("{path}: unexpected contentReference {target}"));
                format!("#{target}")
            } else if has_children {
                let code = str_of(&element["type"][0], "code");
                assert!(
                    matches!(code, "BackboneElement" | "Element"),
                    "{path} has children but type {code}"
                );
                String::new()
            } else {
                let resource_root_id = ty.kind == "resource" && relative == "id";
                let codes = type_codes(resource_root_id, element);
                assert!(!codes.is_empty(), "{path} has no type");
                codes.join("|")
            };
            let is_code = types_field.split('|').any(|c| c == "code");
            let binding = &element["binding"];
            let value_set = if is_code && binding["strength"] == "required" {
                let url = str_of(binding, "valueSet").split('|').next().unwrap_or("");
                *value_set_index.entry(url.to_owned()).or_insert_with(|| {
                    terminology.expand(url, 0).map(|codes| {
                        value_sets.push((url.to_owned(), codes));
                        value_sets.len() - 1
                    })
                })
            } else {
                None
            };
            let min = element["min"].as_u64().expect("min");
            let max = str_of(element, "max");
            lines.push(format!(
                "[{},{min},{},{},{}]",
                Value::from(relative),
                Value::from(max),
                Value::from(types_field),
                value_set.map_or_else(|| String::from("null"), |i| i.to_string())
            ));
        }
        types_json.push(format!(
            "{{\"name\":{},\"kind\":{},\"elements\":[\n{}\n]}}",
            Value::from(ty.name),
            Value::from(ty.kind),
            lines.join(",\n")
        ));
    }

    let mut out = String::from("{\"fhirVersion\":\"4.0.1\",\n\"valueSets\":[\n");
    let value_set_lines: Vec<String> = value_sets
        .iter()
        .map(|(url, codes)| {
            let codes: Vec<Value> = codes.iter().map(|c| Value::from(c.as_str())).collect();
            format!("[{},{}]", Value::from(url.as_str()), Value::from(codes))
        })
        .collect();
    out.push_str(&value_set_lines.join(",\n"));
    out.push_str("\n],\n\"types\":[\n");
    out.push_str(&types_json.join(",\n"));
    out.push_str("\n]}\n");
    out
}

#[test]
#[ignore = "rewrites data/r4-definitions.json from the official definitions; run explicitly"]
fn regenerate_definitions() {
    let dir = official_definitions_dir();
    assert!(
        dir.exists(),
        "the official definitions are not at {}",
        dir.display()
    );
    let generated = generate(&dir);
    std::fs::write(committed_file(), &generated).expect("write definitions");
    eprintln!(
        "wrote {} ({} bytes)",
        committed_file().display(),
        generated.len()
    );
}

#[test]
fn committed_definitions_are_up_to_date() {
    let dir = official_definitions_dir();
    if !dir.exists() {
        eprintln!(
            "skipped: the official R4 definitions are not at {}, so the committed \
             data/r4-definitions.json cannot be compared with a fresh generation",
            dir.display()
        );
        return;
    }
    let generated = generate(&dir);
    let committed = std::fs::read_to_string(committed_file()).expect("read committed definitions");
    assert!(
        generated == committed,
        "data/r4-definitions.json is out of date: run `cargo test -p fhir -- --ignored regenerate_definitions`"
    );
}
