//! Validation of real-world corpora from the shared reference data, when present:
//! the Synthea R4 bundles and the UK Core examples.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fhir::{Issue, has_errors, validate_resource};
use serde_json::Value;

/// `/work/shared/data` for a checkout at `/work/main`.
fn shared_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The `.json` files in a shared data folder, sorted, or `None` (with a note
/// saying why the test is skipped) when the folder is absent.
fn corpus(folder: &str) -> Option<Vec<PathBuf>> {
    let dir = shared_data_dir().join(folder);
    let Ok(read) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipped: the shared reference data is not at {}",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = read
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Some(files)
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn describe(issues: &[Issue]) -> String {
    issues.iter().map(|i| format!("\n    {i}")).collect()
}

#[test]
fn synthea_bundles_are_valid() {
    let Some(files) = corpus("synthea") else {
        return;
    };
    assert_eq!(files.len(), 60, "expected the 60 Synthea bundles");
    let mut resources = 0;
    let mut failures = Vec::new();
    for path in &files {
        let bundle = load(path);
        // The Bundle itself, which validates every entry's resource as well.
        let issues = validate_resource(&bundle);
        if !issues.is_empty() {
            failures.push(format!(
                "{} (Bundle):{}",
                file_name(path),
                describe(&issues)
            ));
        }
        // Each entry's resource on its own, as the server would store it.
        for entry in bundle["entry"].as_array().expect("entries") {
            resources += 1;
            let issues = validate_resource(&entry["resource"]);
            if !issues.is_empty() {
                failures.push(format!("{}:{}", file_name(path), describe(&issues)));
            }
        }
    }
    eprintln!(
        "validated {} Synthea bundles, {resources} entry resources",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// UK Core examples that are genuinely invalid FHIR R4, each with the reason
/// and a fragment of the diagnostics that must be reported. (91 other examples
/// carry `fhir_comments`, converted from XML comments, which give warnings only.)
const INVALID_UK_CORE_EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "UKCore-MedicationDispense-Amoxicillin-Example.json",
        "authorizingPrescription.reference is a bare id without its resource type",
        "not a valid reference",
    ),
    (
        "UKCore-MedicationDispense-CiprofloxacinIV-Example.json",
        "authorizingPrescription.reference is a bare id without its resource type",
        "not a valid reference",
    ),
    (
        "UKCore-MedicationDispense-CiprofloxacinOral-Example.json",
        "authorizingPrescription.reference is a bare id without its resource type",
        "not a valid reference",
    ),
    (
        "UKCore-Patient-BabyPatient-Example.json",
        "its NHS number fails the Modulus 11 check",
        "NHS number fails the Modulus 11 check",
    ),
    (
        "UKCore-Provenance-RARecordConsent-Example.json",
        "agent.onBehalfOf.reference is `Organization/` followed by a URL, which is not a FHIR id",
        "not a valid reference",
    ),
];

#[test]
fn uk_core_examples_are_valid_except_known_ones() {
    let Some(files) = corpus("uk/ukcore-examples") else {
        return;
    };
    assert_eq!(files.len(), 215, "expected the 215 UK Core examples");
    let mut passed = 0;
    let mut unexpected = Vec::new();
    let mut report = Vec::new();
    for path in &files {
        let name = file_name(path);
        let issues = validate_resource(&load(path));
        let known = INVALID_UK_CORE_EXAMPLES
            .iter()
            .find(|(file, _, _)| *file == name);
        match (has_errors(&issues), known) {
            (false, None) => passed += 1,
            (true, Some((_, reason, fragment))) => {
                report.push(format!("{name}: {reason}{}", describe(&issues)));
                if !issues.iter().any(|i| i.diagnostics.contains(fragment)) {
                    unexpected.push(format!(
                        "{name}: expected {fragment:?}{}",
                        describe(&issues)
                    ));
                }
            }
            (true, None) => unexpected.push(format!("{name}:{}", describe(&issues))),
            (false, Some(_)) => unexpected.push(format!("{name}: listed as invalid but passes")),
        }
    }
    eprintln!(
        "UK Core examples: {passed} passed, {} known invalid:\n{}",
        report.len(),
        report.join("\n")
    );
    assert!(
        unexpected.is_empty(),
        "{} unexpected:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// Times validation of every Synthea resource (release build recommended:
/// `cargo test -p fhir --release -- --ignored synthea_throughput --nocapture`).
#[test]
#[ignore = "timing only; run explicitly, preferably with --release"]
fn synthea_throughput() {
    let Some(files) = corpus("synthea") else {
        return;
    };
    let resources: Vec<Value> = files
        .iter()
        .flat_map(|path| {
            let mut bundle = load(path);
            let entries = bundle["entry"]
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            entries.into_iter().map(|mut e| e["resource"].take())
        })
        .collect();
    // Warm up, including the one-off compilation of the definitions.
    let start = Instant::now();
    assert!(validate_resource(&resources[0]).is_empty());
    eprintln!(
        "first validation (compiles definitions): {:?}",
        start.elapsed()
    );
    let rounds = 10;
    let start = Instant::now();
    let mut issues = 0;
    for _ in 0..rounds {
        for resource in &resources {
            issues += validate_resource(resource).len();
        }
    }
    let elapsed = start.elapsed();
    let count = resources.len() * rounds;
    eprintln!(
        "validated {count} resources in {elapsed:?}: {:.0} resources/s, {:.2} µs each, {issues} issues (one thread)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
}
