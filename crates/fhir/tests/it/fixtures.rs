//! Validation of UK Core examples committed under `tests/fixtures/`, so that
//! real-world coverage does not depend on the shared reference data.

use std::path::Path;

use fhir::{IssueCode, validate_resource};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn valid_uk_core_examples() {
    for name in [
        "UKCore-Patient-RichardSmith-Example.json",
        "UKCore-Observation-VitalSigns-BloodPressure-Example.json",
        "UKCore-MedicationRequest-ParacetamolOral-Example.json",
    ] {
        let issues = validate_resource(&fixture(name));
        assert!(issues.is_empty(), "{name}: {issues:#?}");
    }
}

#[test]
fn uk_core_patient_with_a_bad_nhs_number() {
    // The published example's NHS number 9912003890 fails the check digit
    // (the correct check digit for 991200389 would be 6).
    let issues = validate_resource(&fixture("UKCore-Patient-BabyPatient-Example.json"));
    let found: Vec<(IssueCode, &str)> = issues
        .iter()
        .map(|i| (i.code, i.expression.as_str()))
        .collect();
    assert_eq!(found, [(IssueCode::Value, "Patient.identifier[0].value")]);
    assert!(
        issues[0]
            .diagnostics
            .contains("NHS number fails the Modulus 11 check")
    );
    assert!(!issues[0].diagnostics.contains("9912003890"));
}

#[test]
fn breaking_a_valid_example_is_detected() {
    let mut patient = fixture("UKCore-Patient-RichardSmith-Example.json");
    patient["gender"] = Value::from("M");
    patient["birthDate"] = Value::from("1990-02-30");
    patient["name"][0]["nickname"] = Value::from("Dick");
    let codes: Vec<IssueCode> = validate_resource(&patient).iter().map(|i| i.code).collect();
    assert_eq!(codes.len(), 3, "{codes:?}");
    assert!(codes.contains(&IssueCode::CodeInvalid));
    assert!(codes.contains(&IssueCode::Value));
    assert!(codes.contains(&IssueCode::Structure));
}
