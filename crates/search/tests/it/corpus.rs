//! Checks over the shared reference data, when present (skipped otherwise):
//! every official SearchParameter expression compiles, and extraction runs
//! over every Synthea resource. Also an ignored throughput timing.
//!
//! Run the timing with
//! `cargo test -p search --release --test it -- --ignored --nocapture extraction_throughput`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use search::{extract_with_issues, patient_compartment, registry};
use serde_json::Value;
use store::search::IndexRow;

/// `/work/shared/data` for a checkout at `/work/main`.
fn shared_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

/// The Synthea bundles, parsed, or `None` (with a note) when absent.
fn synthea_bundles() -> Option<Vec<Value>> {
    let dir = shared_data_dir().join("synthea");
    let Ok(read) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: the Synthea data is not at {}", dir.display());
        return None;
    };
    let mut files: Vec<PathBuf> = read
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    Some(
        files
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).expect("read");
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .collect(),
    )
}

/// Each entry resource of the bundles, with its type.
fn resources(bundles: &[Value]) -> Vec<(&str, &Value)> {
    bundles
        .iter()
        .flat_map(|b| b["entry"].as_array().expect("entries"))
        .map(|e| {
            let resource = &e["resource"];
            (resource["resourceType"].as_str().expect("type"), resource)
        })
        .collect()
}

#[test]
fn every_official_expression_compiles() {
    let path = shared_data_dir().join("fhir-r4/search-parameters.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "skipped: the official SearchParameters are not at {}",
            path.display()
        );
        return;
    };
    let bundle: Value = serde_json::from_str(&text).expect("json");
    let mut total = 0;
    let mut failures = Vec::new();
    for entry in bundle["entry"].as_array().expect("entries") {
        let sp = &entry["resource"];
        let expressions = sp["expression"].as_str().into_iter().chain(
            sp["component"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["expression"].as_str()),
        );
        for expression in expressions {
            total += 1;
            if let Err(e) = fhirpath::compile(expression) {
                failures.push(format!("{}: {expression}: {e}", sp["id"]));
            }
        }
    }
    eprintln!(
        "compiled {}/{total} official SearchParameter expressions",
        total - failures.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(registry().compile_errors(), &[] as &[String]);
}

fn kind(row: &IndexRow) -> &'static str {
    match row {
        IndexRow::String { .. } => "string",
        IndexRow::Token { .. } => "token",
        IndexRow::Reference { .. } => "reference",
        IndexRow::Date { .. } => "date",
        IndexRow::Number { .. } => "number",
        IndexRow::Quantity { .. } => "quantity",
        IndexRow::Uri { .. } => "uri",
        IndexRow::Composite { .. } => "composite",
    }
}

#[test]
fn synthea_extraction() {
    let Some(bundles) = synthea_bundles() else {
        return;
    };
    let resources = resources(&bundles);
    // type → (resources, rows, rows by kind)
    let mut per_type: BTreeMap<&str, (usize, usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    let mut issues = Vec::new();
    let mut total_rows = 0;
    for (rtype, resource) in &resources {
        let (rows, found) = extract_with_issues(rtype, resource);
        for issue in found {
            issues.push(format!("{rtype}.{}: {}", issue.param, issue.message));
        }
        assert!(!rows.is_empty(), "{rtype} without rows");
        let entry = per_type.entry(rtype).or_default();
        entry.0 += 1;
        entry.1 += rows.len();
        for row in &rows {
            *entry.2.entry(kind(row)).or_default() += 1;
        }
        total_rows += rows.len();
        // Synthea references are urn:uuid:, which cannot be placed in a
        // compartment without the transaction's id map; a Patient is its own.
        let id = resource["id"].as_str().unwrap_or("x");
        if *rtype == "Patient" {
            assert_eq!(patient_compartment(rtype, id, &rows), Some(id.to_owned()));
        }
    }
    eprintln!(
        "extracted {total_rows} rows from {} Synthea resources",
        resources.len()
    );
    for (rtype, (count, rows, kinds)) in &per_type {
        eprintln!("  {rtype:28} {count:6} resources {rows:8} rows  {kinds:?}");
    }
    assert!(issues.is_empty(), "{issues:#?}");
    assert_eq!(resources.len(), 16_771);
}

#[test]
#[ignore = "timing: needs the shared data; run with --release --ignored --nocapture"]
fn extraction_throughput() {
    let Some(bundles) = synthea_bundles() else {
        return;
    };
    let started = Instant::now();
    let registry = registry();
    eprintln!(
        "registry load: {:?} ({} expressions)",
        started.elapsed(),
        registry.expression_count()
    );
    let resources = resources(&bundles);
    let mut passes = 0;
    let mut rows = 0;
    let started = Instant::now();
    while passes == 0 || started.elapsed() < Duration::from_secs(3) {
        passes += 1;
        for (rtype, resource) in &resources {
            rows += search::extract(rtype, resource).len();
        }
    }
    let elapsed = started.elapsed();
    let count = resources.len() * passes;
    eprintln!(
        "{count} resources ({rows} rows) in {elapsed:?}: {:.0} resources/s, {:.1} µs/resource",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / count as f64
    );
}
