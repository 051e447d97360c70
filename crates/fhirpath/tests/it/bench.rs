//! Micro benchmark over the official R4 SearchParameters (ignored by
//! default; needs `/work/shared/data`).
//!
//! Run with
//! `cargo test -p fhirpath --release --test it -- --ignored --nocapture search_parameter_benchmark`.
//!
//! 1. Compiles every SearchParameter expression in
//!    `/work/shared/data/fhir-r4/search-parameters.json` and fails if any
//!    does not compile or does not pass [`fhirpath::check`] for each of its
//!    base resource types.
//! 2. Evaluates every applicable expression (the resource type is in the
//!    parameter's `base`) against every resource of the first [`BUNDLES`]
//!    Synthea bundles in `/work/shared/data/synthea/`, with the bundle as
//!    `%rootResource` so `resolve()` finds `urn:uuid:` references, repeating
//!    for at least [`MIN_DURATION`], and prints evaluations/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fhirpath::{DateTime, Env, Expr, check, compile, evaluate};
use serde_json::Value;

const SEARCH_PARAMETERS: &str = "/work/shared/data/fhir-r4/search-parameters.json";
const SYNTHEA_DIR: &str = "/work/shared/data/synthea";
/// Number of Synthea bundles to load (in file-name order).
const BUNDLES: usize = 3;
/// Evaluation passes repeat until at least this much time has passed.
const MIN_DURATION: Duration = Duration::from_secs(2);

struct Compiled {
    code: String,
    bases: Vec<String>,
    expr: Expr,
}

#[test]
#[ignore = "benchmark: needs /work/shared/data; run with --release --ignored --nocapture"]
fn search_parameter_benchmark() {
    let Ok(text) = std::fs::read_to_string(SEARCH_PARAMETERS) else {
        println!("{SEARCH_PARAMETERS} not present; skipping");
        return;
    };
    let bundle: Value = serde_json::from_str(&text).unwrap();
    let mut compiled = Vec::new();
    let mut failures = Vec::new();
    let mut with_expression = 0;
    let started = Instant::now();
    for entry in bundle["entry"].as_array().unwrap() {
        let sp = &entry["resource"];
        let Some(expression) = sp["expression"].as_str() else {
            continue;
        };
        with_expression += 1;
        match compile(expression) {
            Ok(expr) => compiled.push(Compiled {
                code: sp["id"].as_str().unwrap_or_default().to_string(),
                bases: sp["base"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_str().unwrap().to_string())
                    .collect(),
                expr,
            }),
            Err(e) => failures.push(format!("{}: {expression}: {e}", sp["id"])),
        }
    }
    let compile_time = started.elapsed();
    let mut check_failures = Vec::new();
    for sp in &compiled {
        for base in &sp.bases {
            if let Err(e) = check(&sp.expr, base) {
                check_failures.push(format!("{} on {base}: {e}", sp.code));
            }
        }
    }
    println!(
        "compiled {}/{with_expression} SearchParameter expressions ({} entries) in {compile_time:?}",
        compiled.len(),
        bundle["entry"].as_array().unwrap().len()
    );
    for failure in &failures {
        println!("  does not compile: {failure}");
    }
    assert!(
        failures.is_empty(),
        "every SearchParameter expression must compile"
    );

    let mut files: Vec<_> = std::fs::read_dir(SYNTHEA_DIR)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.truncate(BUNDLES);
    if files.is_empty() {
        println!("no Synthea bundle in {SYNTHEA_DIR}; skipping evaluation");
        return;
    }
    let bundles: Vec<Value> = files
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect();
    let resource_count: usize = bundles
        .iter()
        .map(|b| b["entry"].as_array().unwrap().len())
        .sum();
    let now = DateTime::parse("2026-01-01T00:00:00Z").unwrap();

    let mut evaluations = 0u64;
    let mut values = 0u64;
    let mut passes = 0;
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let started = Instant::now();
    while passes == 0 || started.elapsed() < MIN_DURATION {
        passes += 1;
        for synthea in &bundles {
            let env = Env::new().with_now(now).with_root_resource(synthea);
            for entry in synthea["entry"].as_array().unwrap() {
                let resource = &entry["resource"];
                let rt = resource["resourceType"].as_str().unwrap_or_default();
                for sp in &compiled {
                    if !sp
                        .bases
                        .iter()
                        .any(|b| b == rt || b == "Resource" || b == "DomainResource")
                    {
                        continue;
                    }
                    evaluations += 1;
                    match evaluate(&sp.expr, resource, &env) {
                        Ok(result) => values += result.len() as u64,
                        Err(e) => {
                            let slot = errors
                                .entry(format!("{rt}:{}", sp.code))
                                .or_insert((0, e.to_string()));
                            slot.0 += 1;
                        }
                    }
                }
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "evaluated {evaluations} (resource, SearchParameter) pairs ({passes} passes over {resource_count} resources in {} Synthea bundles) in {elapsed:?}: {:.0} evaluations/s, {:.1} values per pass",
        bundles.len(),
        evaluations as f64 / elapsed.as_secs_f64(),
        values as f64 / f64::from(passes)
    );
    for (key, (count, message)) in &errors {
        println!("  {count} errors in {key}: {message}");
    }
}
