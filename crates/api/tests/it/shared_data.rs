//! The shared reference data, when `../shared` is beside the repository
//! (CI has it): every Synthea bundle loads as a transaction with all its
//! entries readable, and the UK Core examples are accepted except the
//! genuinely invalid ones. Skipped, saying so, when the folder is absent.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::apps;

fn shared(sub: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(sub);
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("SKIPPED: {} is absent", p.display());
        None
    }
}

fn json_files(dir: &PathBuf) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_synthea_bundle_loads_and_reads_back() {
    let Some(dir) = shared("synthea") else { return };
    let files = json_files(&dir);
    assert_eq!(files.len(), 60);
    for t in apps().await {
        let mut total = 0;
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let sent: Value = serde_json::from_str(&text).unwrap();
            let r = t.post("/fhir", &text).await;
            assert_eq!(
                r.status,
                200,
                "{}: {}: {}",
                t.name,
                f.display(),
                &r.text[..r.text.len().min(500)]
            );
            let b = r.json();
            let entries = b["entry"].as_array().unwrap();
            assert_eq!(entries.len(), sent["entry"].as_array().unwrap().len());
            for (e, s) in entries.iter().zip(sent["entry"].as_array().unwrap()) {
                assert_eq!(e["response"]["status"], "201 Created");
                let loc = e["response"]["location"]
                    .as_str()
                    .unwrap()
                    .split("/_history")
                    .next()
                    .unwrap()
                    .to_owned();
                let got = t.get(&format!("/fhir/{loc}")).await;
                assert_eq!(got.status, 200, "{loc}");
                let got = got.json();
                assert_eq!(got["resourceType"], s["resource"]["resourceType"]);
                // No placeholder survives.
                assert!(!got.to_string().contains("urn:uuid:"), "{loc}");
                total += 1;
            }
        }
        eprintln!("{}: {total} Synthea resources loaded and read back", t.name);
        assert_eq!(total, 16_771);
    }
}

#[tokio::test]
async fn a_synthea_bundle_with_one_invalid_entry_stores_nothing() {
    let Some(dir) = shared("synthea") else { return };
    let f = json_files(&dir).into_iter().next().unwrap();
    let mut bundle: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
    let entries = bundle["entry"].as_array_mut().unwrap();
    let last = entries.len() - 1;
    // One bad code deep in the last entry.
    entries[last]["resource"]["status"] = Value::String("not-a-status".into());
    for t in apps().await {
        let r = t.post("/fhir", &bundle.to_string()).await;
        assert_eq!(r.status, 422, "{}", r.text);
        let expr = r.json()["issue"][0]["expression"][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(expr.starts_with(&format!("Bundle.entry[{last}]")), "{expr}");
        assert!(
            t.get("/fhir/_history").await.json().get("entry").is_none(),
            "{}: something was stored",
            t.name
        );
    }
}

/// UK Core examples that are themselves invalid, and why (see the fhir crate's
/// corpus test for the same list).
const INVALID_UK_CORE: &[&str] = &[
    // authorizingPrescription.reference is a bare id, without a resource type.
    "UKCore-MedicationDispense-Amoxicillin-Example.json",
    "UKCore-MedicationDispense-CiprofloxacinIV-Example.json",
    "UKCore-MedicationDispense-CiprofloxacinOral-Example.json",
    // The NHS number 9912003890 fails the Modulus 11 check.
    "UKCore-Patient-BabyPatient-Example.json",
    // onBehalfOf.reference is Organization/<a URL>: a URL is not a FHIR id.
    "UKCore-Provenance-RARecordConsent-Example.json",
];

#[tokio::test]
async fn uk_core_examples_are_accepted() {
    let Some(dir) = shared("uk/ukcore-examples") else {
        return;
    };
    let files = json_files(&dir);
    assert_eq!(files.len(), 215);
    for t in apps().await {
        let mut accepted = 0;
        for f in &files {
            let name = f.file_name().unwrap().to_str().unwrap();
            let text = std::fs::read_to_string(f).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap();
            let rtype = v["resourceType"].as_str().unwrap();
            let r = t.post(&format!("/fhir/{rtype}"), &text).await;
            if INVALID_UK_CORE.contains(&name) {
                assert_eq!(r.status, 422, "{name} should be refused: {}", r.text);
            } else {
                assert_eq!(r.status, 201, "{}: {name}: {}", t.name, r.text);
                accepted += 1;
            }
        }
        assert_eq!(accepted, 210);
    }
}
