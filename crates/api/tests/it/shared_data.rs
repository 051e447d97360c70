//! The shared reference data, when `../shared` is beside the repository
//! (CI has it): every Synthea bundle loads as a transaction with all its
//! entries readable, and the UK Core examples are accepted except the
//! genuinely invalid ones. Skipped, saying so, when the folder is absent.

use std::collections::BTreeSet;
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
            } else if rtype == "AuditEvent" {
                // Valid, but the audit log is the server's own: never
                // written through the API.
                assert_eq!(r.status, 403, "{}: {name}: {}", t.name, r.text);
                accepted += 1;
            } else {
                assert_eq!(r.status, 201, "{}: {name}: {}", t.name, r.text);
                accepted += 1;
            }
        }
        assert_eq!(accepted, 210);
    }
}

/// One loaded Synthea resource: its type, the id the server gave it, and
/// the source JSON with references rewritten to server ids.
struct Loaded {
    rtype: String,
    id: String,
    json: Value,
}

/// Loads every Synthea bundle and returns what was stored, in load order.
async fn load_synthea(t: &crate::harness::TestApp, dir: &PathBuf) -> Vec<Loaded> {
    let mut out = Vec::new();
    for f in json_files(dir) {
        let text = std::fs::read_to_string(&f).unwrap();
        let sent: Value = serde_json::from_str(&text).unwrap();
        let r = t.post("/fhir", &text).await;
        assert_eq!(r.status, 200);
        let b = r.json();
        let mut map = std::collections::HashMap::new();
        let mut batch = Vec::new();
        for (e, s) in b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .zip(sent["entry"].as_array().unwrap())
        {
            let loc = e["response"]["location"].as_str().unwrap();
            let mut parts = loc.split('/');
            let rtype = parts.next().unwrap().to_owned();
            let id = parts.next().unwrap().to_owned();
            map.insert(
                s["fullUrl"].as_str().unwrap().to_owned(),
                format!("{rtype}/{id}"),
            );
            batch.push(Loaded {
                rtype,
                id,
                json: s["resource"].clone(),
            });
        }
        for l in &mut batch {
            rewrite(&mut l.json, &map);
        }
        out.extend(batch);
    }
    out
}

fn rewrite(v: &mut Value, map: &std::collections::HashMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match x {
                    Value::String(s) if k == "reference" => {
                        if let Some(t) = map.get(s.as_str()) {
                            *s = t.clone();
                        }
                    }
                    _ => rewrite(x, map),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, map)),
        _ => {}
    }
}

fn reference_of(v: &Value, field: &str) -> Option<String> {
    v[field]["reference"].as_str().map(str::to_owned)
}

fn has_coding(v: &Value, system: Option<&str>, code: &str) -> bool {
    v["code"]["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["code"] == code && system.is_none_or(|s| c["system"] == s))
}

/// Every page of a search, following next links.
async fn all_pages(t: &crate::harness::TestApp, first: &str) -> Vec<(String, String, String)> {
    let mut url = first.to_owned();
    let mut out = Vec::new();
    loop {
        let r = t.get(&url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let b = r.json();
        for e in b["entry"].as_array().into_iter().flatten() {
            out.push((
                e["search"]["mode"].as_str().unwrap().to_owned(),
                e["resource"]["resourceType"].as_str().unwrap().to_owned(),
                e["resource"]["id"].as_str().unwrap().to_owned(),
            ));
        }
        match b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
        {
            Some(n) => {
                url = n["url"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("http://test.local")
                    .unwrap()
                    .to_owned()
            }
            None => break,
        }
    }
    out
}

/// The searches the search issue names, over all the Synthea data, against
/// sets computed directly from the source bundles (not by the search engine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthea_searches_return_exactly_the_right_sets() {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    let Some(dir) = shared("synthea") else { return };
    for t in apps().await {
        let all = load_synthea(&t, &dir).await;
        let of = |rtype: &'static str| all.iter().filter(move |l| l.rtype == rtype);

        // 1. Observation?code=http://loinc.org|29463-7&date=ge2015&_sort=-date
        //    (body weight: this Synthea set has no heart rates, 8867-4, which
        //    must then come back empty)
        assert!(
            all_pages(
                &t,
                "/fhir/Observation?code=http://loinc.org%7C8867-4&date=ge2015"
            )
            .await
            .is_empty()
        );
        let since = OffsetDateTime::parse("2015-01-01T00:00:00Z", &Rfc3339).unwrap();
        let mut expected: Vec<(OffsetDateTime, String)> = of("Observation")
            .filter(|l| has_coding(&l.json, Some("http://loinc.org"), "29463-7"))
            .filter_map(|l| {
                let when =
                    OffsetDateTime::parse(l.json["effectiveDateTime"].as_str()?, &Rfc3339).ok()?;
                (when >= since).then(|| (when, l.id.clone()))
            })
            .collect();
        // Newest first; equal instants by id.
        expected.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let got = all_pages(
            &t,
            "/fhir/Observation?code=http://loinc.org%7C29463-7&date=ge2015&_sort=-date&_count=100",
        )
        .await;
        assert!(!expected.is_empty());
        assert_eq!(
            got.iter().map(|(_, _, id)| id.clone()).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(_, id)| id.clone())
                .collect::<Vec<_>>(),
            "{}",
            t.name
        );
        let weights = expected.len();

        // 2. Condition?subject.name=cummings (two patients share the name)
        let cummings: BTreeSet<String> = of("Patient")
            .filter(|l| {
                l.json["name"].as_array().into_iter().flatten().any(|n| {
                    let parts = n["given"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(n["prefix"].as_array().into_iter().flatten())
                        .chain(std::iter::once(&n["family"]));
                    parts
                        .filter_map(Value::as_str)
                        .any(|p| p.to_lowercase().starts_with("cummings"))
                })
            })
            .map(|l| format!("Patient/{}", l.id))
            .collect();
        assert_eq!(cummings.len(), 2);
        let expected: BTreeSet<String> = of("Condition")
            .filter(|l| reference_of(&l.json, "subject").is_some_and(|s| cummings.contains(&s)))
            .map(|l| l.id.clone())
            .collect();
        let got: BTreeSet<String> =
            all_pages(&t, "/fhir/Condition?subject.name=cummings&_count=500")
                .await
                .into_iter()
                .map(|(_, _, id)| id)
                .collect();
        assert!(!expected.is_empty());
        assert_eq!(got, expected, "{}", t.name);

        // 3. Patient?_has:Observation:subject:code=72106-8
        let expected: BTreeSet<String> = of("Observation")
            .filter(|l| has_coding(&l.json, None, "72106-8"))
            .filter_map(|l| reference_of(&l.json, "subject"))
            .filter_map(|s| s.strip_prefix("Patient/").map(str::to_owned))
            .collect();
        let got: BTreeSet<String> =
            all_pages(&t, "/fhir/Patient?_has:Observation:subject:code=72106-8")
                .await
                .into_iter()
                .map(|(_, _, id)| id)
                .collect();
        assert_eq!(expected.len(), 5);
        assert_eq!(got, expected, "{}", t.name);

        // 4. Encounter?patient=<first patient>&_revinclude=Observation:encounter
        let patient = of("Patient").next().unwrap().id.clone();
        let encounters: BTreeSet<String> = of("Encounter")
            .filter(|l| {
                reference_of(&l.json, "subject").as_deref() == Some(&format!("Patient/{patient}"))
            })
            .map(|l| l.id.clone())
            .collect();
        let observations: BTreeSet<String> = of("Observation")
            .filter(|l| {
                reference_of(&l.json, "encounter")
                    .and_then(|e| e.strip_prefix("Encounter/").map(str::to_owned))
                    .is_some_and(|e| encounters.contains(&e))
            })
            .map(|l| l.id.clone())
            .collect();
        let got = all_pages(
            &t,
            &format!(
                "/fhir/Encounter?patient={patient}&_revinclude=Observation:encounter&_count=1000"
            ),
        )
        .await;
        let matched: BTreeSet<String> = got
            .iter()
            .filter(|(m, _, _)| m == "match")
            .map(|(_, _, id)| id.clone())
            .collect();
        let included: BTreeSet<String> = got
            .iter()
            .filter(|(m, rt, _)| m == "include" && rt == "Observation")
            .map(|(_, _, id)| id.clone())
            .collect();
        assert!(!encounters.is_empty() && !observations.is_empty());
        assert_eq!(matched, encounters, "{}", t.name);
        assert_eq!(included, observations, "{}", t.name);
        eprintln!(
            "{}: Synthea searches match: {} weights since 2015 in date order, {} encounters of one patient with {} observations",
            t.name,
            weights,
            encounters.len(),
            observations.len()
        );
    }
}
