//! The generator's tests over generated populations: validity, referential
//! integrity, NHS numbers, prevalence, labels, consents, users, determinism,
//! restartability and both output formats.

// Test helpers outside `#[test]` functions may panic too.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use generate::clinical::{Calibration, LTCS};
use generate::ics::ODS_SYSTEM;
use generate::output::{BundleWriter, NdjsonWriter, generate as run};
use generate::{Date, Ics, Settings, User, is_showcase, person, person_and_users};
use serde_json::Value;

fn now() -> Date {
    Date::parse("2025-06-01").unwrap()
}

fn settings(seed: u64, people: u64) -> Settings {
    Settings::new(seed, people, now())
}

/// The directory and everyone in `0..people`, with the users.
fn population(seed: u64, people: u64) -> (Vec<Value>, Vec<User>) {
    let s = settings(seed, people);
    let ics = Ics::new(&s);
    let mut all = ics.directory();
    let mut users = ics.users.clone();
    for i in 0..people {
        let (r, u) = person_and_users(&ics, &s, i);
        all.extend(r);
        users.extend(u);
    }
    (all, users)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("sharedcare-generate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn kind(v: &Value) -> &str {
    v["resourceType"].as_str().unwrap()
}

/// Every `reference` and every ODS identifier reference in a value.
fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>, ods: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("reference") {
                refs.push(r);
            }
            if let Some(id) = m.get("identifier")
                && id.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM)
                && !m.contains_key("resourceType")
            {
                ods.push(id["value"].as_str().unwrap());
            }
            m.values().for_each(|x| walk(x, refs, ods));
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, refs, ods)),
        _ => {}
    }
}

#[test]
fn everything_validates() {
    let (all, _) = population(1, 300);
    let mut failures = Vec::new();
    for r in &all {
        let issues = fhir::validate_resource(r);
        if fhir::has_errors(&issues) {
            failures.push(format!("{} {}: {issues:?}", kind(r), r["id"]));
        }
    }
    assert!(
        failures.is_empty(),
        "{} invalid, e.g.\n{}",
        failures.len(),
        failures[..failures.len().min(10)].join("\n")
    );
}

#[test]
fn references_resolve() {
    let (all, users) = population(2, 300);
    let mut ids: HashSet<String> = HashSet::new();
    let mut orgs: HashSet<&str> = HashSet::new();
    for r in &all {
        assert!(
            ids.insert(format!("{}/{}", kind(r), r["id"].as_str().unwrap())),
            "duplicate id {}",
            r["id"]
        );
        assert!(fhir::is_valid_id(r["id"].as_str().unwrap()));
        if kind(r) == "Organization" {
            for i in r["identifier"].as_array().unwrap() {
                if i["system"] == ODS_SYSTEM {
                    orgs.insert(i["value"].as_str().unwrap());
                }
            }
        }
    }
    let mut refs = Vec::new();
    let mut ods = Vec::new();
    for r in &all {
        walk(r, &mut refs, &mut ods);
    }
    assert!(refs.len() > 1000 && ods.len() > 1000);
    for r in refs {
        assert!(ids.contains(r), "unresolved reference {r}");
    }
    for o in ods {
        assert!(orgs.contains(o), "unresolved ODS code {o}");
    }
    for u in users {
        if let Some(p) = &u.patient {
            assert!(ids.contains(&format!("Patient/{p}")), "{u:?}");
        }
        if let Some(rp) = &u.related_person {
            assert!(ids.contains(&format!("RelatedPerson/{rp}")), "{u:?}");
        }
        if let Some(o) = &u.org {
            assert!(orgs.contains(o.as_str()), "{u:?}");
        }
    }
}

#[test]
fn nhs_numbers_are_valid_and_unique() {
    let s = settings(3, 3_000);
    let ics = Ics::new(&s);
    let mut seen = HashSet::new();
    for i in 0..3_000 {
        let p = person(&ics, &s, i).into_iter().next().unwrap();
        assert_eq!(p["resourceType"], "Patient");
        let id = &p["identifier"][0];
        assert_eq!(id["system"], "https://fhir.nhs.uk/Id/nhs-number");
        let n = id["value"].as_str().unwrap();
        assert!(n.starts_with("999") && fhir::nhs_number::is_valid(n), "{n}");
        assert!(seen.insert(n.to_owned()), "duplicate {n}");
    }
    // Past the test range's capacity people carry a local identifier.
    let s = settings(3, 1_000_000);
    let ics = Ics::new(&s);
    let p = person(&ics, &s, generate::nhs::CAPACITY)
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(
        p["identifier"][0]["system"],
        "https://fhir.sharedcare.org.uk/Id/synthetic-person"
    );
}

/// The share of non-showcase people with each condition, against the
/// table, within 4.5 standard errors (plus 0.2 points for the rounding of
/// the age pyramid).
#[test]
fn prevalence_matches_the_table() {
    let n = 6_000;
    let s = settings(4, n);
    let ics = Ics::new(&s);
    let _ = Calibration::new();
    let mut eligible = vec![0u64; LTCS.len()];
    let mut cases = vec![0u64; LTCS.len()];
    for i in (0..n).filter(|i| !is_showcase(*i)) {
        let resources = person(&ics, &s, i);
        let birth = Date::parse(resources[0]["birthDate"].as_str().unwrap()).unwrap();
        let age = birth.age_on(now());
        let codes: HashSet<&str> = resources
            .iter()
            .filter(|r| kind(r) == "Condition")
            .filter(|r| r["category"][0]["coding"][0]["code"] == "problem-list-item")
            .map(|r| r["code"]["coding"][0]["code"].as_str().unwrap())
            .collect();
        for (k, c) in LTCS.iter().enumerate() {
            if age >= c.min_age {
                eligible[k] += 1;
                if c.codes.iter().any(|(code, _, _)| codes.contains(code)) {
                    cases[k] += 1;
                }
            }
        }
    }
    for (k, c) in LTCS.iter().enumerate() {
        let e = eligible[k] as f64;
        let observed = cases[k] as f64 / e;
        let se = (c.prevalence * (1.0 - c.prevalence) / e).sqrt();
        let tolerance = 4.5 * se + 0.002;
        assert!(
            (observed - c.prevalence).abs() <= tolerance,
            "{}: observed {observed:.4}, table {}, tolerance {tolerance:.4}",
            c.key,
            c.prevalence
        );
    }
}

/// The generator's labels already include everything the server's
/// labeller would add.
#[test]
fn labels_match_the_servers() {
    let (all, _) = population(5, 300);
    for r in &all {
        let mut copy = r.as_object().unwrap().clone();
        let before = copy.get("meta").and_then(|m| m.get("security")).cloned();
        policy::labels::auto_label(&mut copy);
        let after = copy.get("meta").and_then(|m| m.get("security")).cloned();
        assert_eq!(before, after, "{} {}", kind(r), r["id"]);
    }
}

#[test]
fn every_shape_appears_in_a_small_run() {
    let (all, users) = population(6, 300);
    let mut security: BTreeSet<(String, String)> = BTreeSet::new();
    let mut consent_kinds: BTreeSet<String> = BTreeSet::new();
    let mut bases: BTreeSet<String> = BTreeSet::new();
    let mut dissent_shapes: BTreeSet<&str> = BTreeSet::new();
    let mut org_types: BTreeSet<String> = BTreeSet::new();
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    let mut restricted_only = false;
    let mut about_me = 0;
    for r in &all {
        *types.entry(kind(r)).or_default() += 1;
        if let Some(list) = r.pointer("/meta/security").and_then(Value::as_array) {
            for c in list {
                security.insert((
                    c["system"].as_str().unwrap().into(),
                    c["code"].as_str().unwrap().into(),
                ));
            }
            restricted_only |= list.len() == 1;
        }
        if r.pointer("/meta/tag/0/code") == Some(&Value::from("about-me")) {
            about_me += 1;
        }
        match kind(r) {
            "Consent" => {
                let cat = r["category"][0]["coding"][0]["code"].as_str().unwrap();
                consent_kinds.insert(cat.into());
                if cat == "INFA" {
                    bases.insert(
                        r["policyRule"]["coding"][0]["code"]
                            .as_str()
                            .unwrap()
                            .into(),
                    );
                    assert_eq!(
                        r["provision"]["actor"][0]["role"]["coding"][0]["code"],
                        "PROV"
                    );
                    assert!(r["extension"][0]["valueReference"]["identifier"]["value"].is_string());
                }
                if cat == "share-dissent" {
                    let p = &r["provision"];
                    assert_eq!(p["type"], "deny");
                    dissent_shapes.insert(if p.get("actor").is_some() {
                        "orgs"
                    } else if p.get("extension").is_some() {
                        "kinds"
                    } else {
                        "whole"
                    });
                }
            }
            "Organization" => {
                org_types.insert(r["type"][0]["coding"][0]["code"].as_str().unwrap().into());
            }
            _ => {}
        }
    }
    for code in ["HIV", "PSY", "SEX", "STD", "ETH", "SDV"] {
        assert!(
            security.contains(&(
                "http://terminology.hl7.org/CodeSystem/v3-ActCode".into(),
                code.into()
            )),
            "{code}: {security:?}"
        );
    }
    assert!(security.contains(&(
        "https://fhir.sharedcare.org.uk/CodeSystem/security-label".into(),
        "safeguarding".into()
    )));
    assert!(restricted_only, "an item sealed with R alone");
    for k in [
        "INFA",
        "share-dissent",
        "sensitive-share",
        "national-data-opt-out",
        "type-1-opt-out",
    ] {
        assert!(consent_kinds.contains(k), "{k}: {consent_kinds:?}");
    }
    for b in [
        "consent",
        "parental-responsibility",
        "lasting-power-of-attorney",
        "court-appointed-personal-welfare-deputy",
        "best-interest",
    ] {
        assert!(bases.contains(b), "{b}: {bases:?}");
    }
    assert_eq!(dissent_shapes.len(), 3);
    assert_eq!(org_types.len(), 8, "{org_types:?}");
    for t in [
        "Patient",
        "RelatedPerson",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "AllergyIntolerance",
        "Immunization",
        "Encounter",
        "Procedure",
        "EpisodeOfCare",
        "CarePlan",
        "QuestionnaireResponse",
        "MedicationAdministration",
        "ServiceRequest",
        "Task",
        "DocumentReference",
        "Consent",
        "Organization",
        "Practitioner",
        "PractitionerRole",
    ] {
        assert!(types.contains_key(t), "{t}: {types:?}");
    }
    assert!(about_me > 0);
    let roles: BTreeSet<&str> = users.iter().map(|u| u.role.as_str()).collect();
    for role in [
        "gp",
        "hospital-clinician",
        "community-clinician",
        "pharmacist",
        "care-nurse",
        "social-worker",
        "care-worker",
        "data-controller",
        "commissioner",
        "patient",
        "proxy",
    ] {
        assert!(roles.contains(role), "{role}: {roles:?}");
    }
    let subs: HashSet<&str> = users.iter().map(|u| u.sub.as_str()).collect();
    assert_eq!(subs.len(), users.len(), "user subs are unique");
}

#[test]
fn encounters_and_episodes_have_the_expected_shapes() {
    let (all, _) = population(7, 300);
    let mut discharged_to_care_home = false;
    for r in &all {
        match kind(r) {
            "Encounter" => {
                assert!(r["serviceProvider"]["identifier"]["value"].is_string());
                let class = r["class"]["code"].as_str().unwrap();
                if class == "IMP" && r["status"] == "finished" {
                    let d = &r["hospitalization"]["dischargeDisposition"]["coding"][0]["code"];
                    assert!(d.is_string());
                    discharged_to_care_home |= d == "snf" || d == "long";
                }
                if r["serviceProvider"]["identifier"]["value"]
                    .as_str()
                    .unwrap()
                    .starts_with("Y1")
                {
                    assert_eq!(class, "AMB");
                    assert_eq!(r["status"], "finished");
                    assert!(r["period"]["start"].is_string());
                }
            }
            "EpisodeOfCare" => {
                assert_eq!(r["status"], "active");
                assert!(r["managingOrganization"]["identifier"]["value"].is_string());
                assert!(r["period"]["start"].is_string());
            }
            "ServiceRequest" => {
                assert!(r["performer"][0]["identifier"]["value"].is_string());
            }
            "Patient" => {
                assert!(
                    r["generalPractitioner"][0]["identifier"]["value"]
                        .as_str()
                        .unwrap()
                        .starts_with("Y1")
                );
                assert!(r["managingOrganization"]["identifier"]["value"].is_string());
            }
            _ => {}
        }
    }
    assert!(discharged_to_care_home);
}

fn files(dir: &PathBuf) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

#[test]
fn output_is_deterministic_and_resumable() {
    let write = |seed: u64, name: &str, ranges: &[(u64, u64)]| {
        let dir = temp_dir(name);
        for (i, (start, end)) in ranges.iter().enumerate() {
            let mut s = settings(seed, 400);
            s.start_index = *start;
            s.end_index = Some(*end);
            let ics = Ics::new(&s);
            let mut w = NdjsonWriter::create(&dir, i > 0).unwrap();
            run(&ics, &s, &mut w, |_| {}).unwrap();
        }
        let out = files(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        out
    };
    let a = write(8, "a", &[(0, 400)]);
    let b = write(8, "b", &[(0, 400)]);
    let c = write(9, "c", &[(0, 400)]);
    let resumed = write(8, "d", &[(0, 150), (150, 400)]);
    assert!(a.contains_key("Patient.ndjson") && a.contains_key("users.ndjson"));
    assert_eq!(a, b, "same seed, same bytes");
    assert_ne!(
        a.get("Patient.ndjson"),
        c.get("Patient.ndjson"),
        "another seed, other people"
    );
    assert_eq!(a, resumed, "a run in two parts writes the same files");
}

#[test]
fn bundles_are_valid_idempotent_transactions() {
    let dir = temp_dir("bundles");
    let s = settings(10, 120);
    let ics = Ics::new(&s);
    let mut w = BundleWriter::create(&dir, 50, false).unwrap();
    let counts = run(&ics, &s, &mut w, |_| {}).unwrap();
    let out = files(&dir);
    assert!(out.contains_key("directory.json"));
    assert!(out.contains_key("people-000000000.json") && out.contains_key("people-000000100.json"));
    let mut total = 0;
    for (name, bytes) in &out {
        if name == "users.ndjson" {
            continue;
        }
        let b: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(b["type"], "transaction");
        let resources: Vec<Value> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect();
        assert_eq!(
            b,
            generate::output::transaction(&resources),
            "{name}: streamed as built"
        );
        let issues = fhir::validate_resource(&b);
        assert!(!fhir::has_errors(&issues), "{name}: {issues:?}");
        for e in b["entry"].as_array().unwrap() {
            assert_eq!(e["request"]["method"], "PUT");
            let url = format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            );
            assert_eq!(e["request"]["url"], url.as_str());
            total += 1;
        }
    }
    assert_eq!(total, counts.values().sum::<u64>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn organisations_scale_with_the_population() {
    let count = |people: u64| {
        let ics = Ics::new(&settings(11, people));
        let mut by: HashMap<String, usize> = HashMap::new();
        for o in ics.organisations() {
            *by.entry(
                o["type"][0]["coding"][0]["code"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_default() += 1;
        }
        by
    };
    let small = count(1_000);
    assert_eq!(small["gp-practice"], 2);
    assert_eq!(small["acute-trust"], 1);
    assert_eq!(small["local-authority"], 1);
    assert_eq!(small["community-services"], 4);
    let large = count(400_000);
    assert_eq!(large["gp-practice"], 50);
    assert_eq!(large["pharmacy"], 80);
    assert!(large["care-home"] > 20, "{large:?}");
    let ics = Ics::new(&settings(11, 400_000));
    let beds: u64 = ics
        .organisations()
        .iter()
        .filter_map(|o| o.pointer("/extension/0/valueUnsignedInt"))
        .map(|b| b.as_u64().unwrap())
        .sum();
    // About 0.58% of people live in care homes, at 87% occupancy.
    assert!((2_200..3_200).contains(&beds), "{beds}");
}

/// Rare branches (current inpatients, transfers, every referral status) in
/// a larger population: `cargo test -p generate --release -- --ignored`.
#[test]
#[ignore = "slow: 20,000 people"]
fn a_larger_population_validates() {
    let s = settings(12, 20_000);
    let ics = Ics::new(&s);
    let mut statuses = BTreeSet::new();
    for i in 0..20_000 {
        for r in person(&ics, &s, i) {
            let issues = fhir::validate_resource(&r);
            assert!(
                !fhir::has_errors(&issues),
                "{} {}: {issues:?}",
                kind(&r),
                r["id"]
            );
            if kind(&r) == "Task" || (kind(&r) == "Encounter" && r["class"]["code"] == "IMP") {
                statuses.insert(format!("{} {}", kind(&r), r["status"].as_str().unwrap()));
            }
        }
    }
    assert!(statuses.len() >= 8, "{statuses:?}");
}

/// Every person-level item states the organisation that recorded it (the
/// server keeps what the loading integration client states): hospital
/// encounters the hospital, care-home episodes the home, everything
/// without another author the person's practice — always an organisation
/// of the system.
#[test]
fn every_item_names_its_recording_organisation() {
    let (all, _) = population(11, 300);
    let orgs: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|v| kind(v) == "Organization")
        .flat_map(|v| v["identifier"].as_array().unwrap())
        .filter_map(|i| i["value"].as_str())
        .collect();
    let recorder = |v: &Value| -> Option<String> {
        v["meta"]["tag"].as_array()?.iter().find_map(|t| {
            (t["system"] == generate::RECORDED_BY).then(|| t["code"].as_str().unwrap().to_owned())
        })
    };
    let mut hospital = 0;
    for v in all.iter().filter(|v| {
        !matches!(
            kind(v),
            "Organization" | "Practitioner" | "PractitionerRole"
        )
    }) {
        let by = recorder(v).unwrap_or_else(|| panic!("{} has no recorder", v["id"]));
        assert!(orgs.contains(by.as_str()), "{}: {by}", v["id"]);
        if kind(v) == "Encounter" {
            let provider = v["serviceProvider"]["identifier"]["value"]
                .as_str()
                .unwrap();
            assert_eq!(by, provider, "{}", v["id"]);
            if v["class"]["code"] == "IMP" {
                hospital += 1;
            }
        }
        if kind(v) == "EpisodeOfCare" {
            assert_eq!(
                by,
                v["managingOrganization"]["identifier"]["value"]
                    .as_str()
                    .unwrap()
            );
        }
    }
    assert!(hospital > 0, "some admissions, recorded by the hospital");
}
