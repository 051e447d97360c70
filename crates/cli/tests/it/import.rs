//! `sharedcare import` (issue #6): bad records are listed and the rest
//! loads, an interrupted import resumes without writing anything twice,
//! transaction Bundles keep their `urn:uuid:` references, and a re-run of a
//! finished import loads nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::client::{Server, get, mint, request_as, temp_dir};

struct Run {
    code: i32,
    stdout: String,
}

fn import(data: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_sharedcare"))
        .arg("import")
        .arg("--data")
        .arg(data)
        .args(args)
        .env("SHAREDCARE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "import {args:?}: {:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
    }
}

/// NHS numbers from the test range (999 000 0000–999 999 9999) with a
/// valid Modulus 11 check digit.
fn nhs_numbers(n: usize) -> Vec<String> {
    (1..)
        .map(|i| format!("999{i:06}"))
        .filter_map(|nine| {
            let sum: u32 = nine
                .bytes()
                .zip((2..=10).rev())
                .map(|(d, w)| u32::from(d - b'0') * w)
                .sum();
            match 11 - sum % 11 {
                11 => Some(format!("{nine}0")),
                10 => None,
                check => Some(format!("{nine}{check}")),
            }
        })
        .take(n)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn organization(id: &str, ods: &str) -> String {
    json!({
        "resourceType": "Organization", "id": id, "name": format!("Practice {ods}"),
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods}]
    })
    .to_string()
}

fn patient(id: &str, nhs: &str, org: &str) -> String {
    json!({
        "resourceType": "Patient", "id": id,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
        "name": [{"family": format!("Test{id}")}],
        "generalPractitioner": [{"reference": format!("Organization/{org}")}]
    })
    .to_string()
}

/// An Observation; without an id when `id` is `None`.
fn observation(id: Option<&str>, patient: &str, n: usize) -> String {
    let mut o = json!({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "27113001"}], "text": format!("weight {n}")},
        "subject": {"reference": format!("Patient/{patient}")},
        "valueQuantity": {"value": 60 + n, "unit": "kg"}
    });
    if let Some(id) = id {
        o["id"] = json!(id);
    }
    o.to_string()
}

/// Every version of every resource of `rtype`: id → versions.
fn versions(server: &Server, rtype: &str) -> BTreeMap<String, Vec<String>> {
    let r = get(server.addr, &format!("/fhir/{rtype}/_history?_count=1000"));
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in r.json()["entry"].as_array().into_iter().flatten() {
        let res = &e["resource"];
        out.entry(res["id"].as_str().unwrap().to_owned())
            .or_default()
            .push(res["meta"]["versionId"].as_str().unwrap().to_owned());
    }
    out
}

/// `rtype` holds `n` resources, each once, each at version 1.
fn assert_once_each(server: &Server, rtype: &str, n: usize) {
    let v = versions(server, rtype);
    assert_eq!(v.len(), n, "{rtype}: {v:?}");
    for (id, vs) in &v {
        assert_eq!(vs, &["1"], "{rtype}/{id} was written more than once");
    }
}

fn gp_token(data: &Path, server: &Server, ods: &str) -> String {
    mint(
        data,
        server.addr,
        &format!("gp-{ods}"),
        "gp",
        Some(ods),
        Some("GMC:7654321"),
        None,
        "user/*.cruds",
    )
}

#[test]
fn bad_records_are_listed_and_the_good_ones_load() {
    let dir = temp_dir("import-bad");
    let input = dir.join("in");
    let data = dir.join("data");
    std::fs::create_dir_all(input.join("more")).unwrap();
    let nhs = nhs_numbers(3);
    write_lines(
        &input.join("Organization.ndjson"),
        &[organization("org-1", "Y12345")],
    );
    write_lines(
        &input.join("Patient.ndjson"),
        &[
            patient("p0", &nhs[0], "org-1"),
            patient("p1", &nhs[1], "org-1"),
            patient("p2", &nhs[2], "org-1"),
            // A wrong check digit.
            patient("pbad", "9990000019", "org-1"),
        ],
    );
    write_lines(
        &input.join("more").join("Observation.ndjson"),
        &[
            observation(Some("o1"), "p0", 1),
            r#"{"resourceType": "Observation", "status": "final", "code": "#.to_owned(),
            observation(None, "p1", 2),
            String::new(),
            observation(Some("o3"), "p2", 3),
        ],
    );
    // The generator's users: not FHIR, skipped in a folder.
    write_lines(&input.join("users.ndjson"), &[r#"{"sub":"u1"}"#.to_owned()]);
    std::fs::write(input.join("README.txt"), "not data").unwrap();

    let run = import(&data, &[input.to_str().unwrap()]);
    assert_eq!(run.code, 1, "anything rejected exits 1");
    let out = &run.stdout;
    assert!(out.contains("rejected 2 resources:"), "{out}");
    assert!(
        out.contains("Patient.ndjson:4: Patient/pbad: SC-1002 Patient.identifier[0].value: NHS number fails the Modulus 11 check"),
        "{out}"
    );
    assert!(
        out.contains("Observation.ndjson:2: not valid JSON"),
        "{out}"
    );
    assert!(
        out.contains("users.ndjson (not named after a FHIR resource type)"),
        "{out}"
    );
    assert!(out.contains("ignored 1 files"), "{out}");
    assert!(
        out.contains("loaded 7 resources (7 new, 0 updated)"),
        "{out}"
    );
    assert!(
        !out.contains("Test"),
        "no resource content in the summary: {out}"
    );

    let server = Server::start(&data, &[]);
    assert_eq!(get(server.addr, "/fhir/Patient/p0").status, 200);
    assert_eq!(get(server.addr, "/fhir/Patient/pbad").status, 404);
    assert_once_each(&server, "Patient", 3);
    assert_once_each(&server, "Observation", 3);
    // Written through the policy's write path: the GP registration is a
    // relationship fact, so the practice's GP reads the record.
    let gp = gp_token(&data, &server, "Y12345");
    let r = request_as(server.addr, "GET", "/fhir/Patient/p1", None, Some(&gp)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    drop(server);

    // A re-run writes nothing, and still reports the rejections.
    let again = import(&data, &[input.to_str().unwrap()]);
    assert_eq!(again.code, 1);
    assert!(
        again.stdout.contains("loaded 0 resources"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("2 resources were rejected by an earlier run"),
        "{}",
        again.stdout
    );
}

#[test]
fn directory_types_load_first_whatever_the_order_named() {
    let dir = temp_dir("import-order");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let nhs = nhs_numbers(1);
    write_lines(
        &dir.join("Patient.ndjson"),
        &[patient("p0", &nhs[0], "org-9")],
    );
    write_lines(
        &dir.join("Organization.ndjson"),
        &[organization("org-9", "Y99999")],
    );
    let run = import(
        &data,
        &[
            dir.join("Patient.ndjson").to_str().unwrap(),
            dir.join("Organization.ndjson").to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0);
    let server = Server::start(&data, &[]);
    // The registration names the practice by ODS code, resolved when the
    // Patient was written: the Organization was there first.
    let gp = gp_token(&data, &server, "Y99999");
    let r = request_as(server.addr, "GET", "/fhir/Patient/p0", None, Some(&gp)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_interrupted_import_resumes_without_writing_twice() {
    let dir = temp_dir("import-resume");
    let input = dir.join("in");
    let data = dir.join("data");
    std::fs::create_dir_all(&input).unwrap();
    let nhs = nhs_numbers(20);
    let orgs: Vec<String> = (0..5)
        .map(|i| organization(&format!("org-{i}"), &format!("Y1000{i}")))
        .collect();
    let patients: Vec<String> = (0..20)
        .map(|i| patient(&format!("p{i}"), &nhs[i], &format!("org-{}", i % 5)))
        .collect();
    // Half without ids: theirs come from their content.
    let observations: Vec<String> = (0..30)
        .map(|i| {
            let id = format!("o{i}");
            observation(
                (i % 2 == 0).then_some(id.as_str()),
                &format!("p{}", i % 20),
                i,
            )
        })
        .collect();
    write_lines(&input.join("Organization.ndjson"), &orgs);
    write_lines(&input.join("Patient.ndjson"), &patients);
    write_lines(&input.join("Observation.ndjson"), &observations);
    let path = input.to_str().unwrap();

    // Batches: the 5 organisations, then patients 1-10, which commit; the
    // process ends before the state records them (the worst moment).
    let first = import(
        &data,
        &["--batch", "10", "--abort-after-batches", "2", path],
    );
    assert_eq!(first.code, 3, "ended abruptly");
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("import-state.json")).unwrap()).unwrap();
    let pending = state["files"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("Patient.ndjson"))
        .map(|(_, v)| v["pending"].clone())
        .unwrap();
    assert!(
        pending.is_object(),
        "the patients' batch was in flight: {state}"
    );

    // Another batch size on resume: the interrupted batch is read whole.
    let second = import(&data, &["--batch", "7", path]);
    assert_eq!(second.code, 0);
    assert!(
        second
            .stdout
            .contains("skipped 15 resources already loaded by an earlier run"),
        "{}",
        second.stdout
    );
    assert!(
        second
            .stdout
            .contains("loaded 40 resources (40 new, 0 updated)"),
        "{}",
        second.stdout
    );

    let server = Server::start(&data, &[]);
    assert_once_each(&server, "Organization", 5);
    assert_once_each(&server, "Patient", 20);
    assert_once_each(&server, "Observation", 30);
    drop(server);

    // The audit chain holds every write (and verifies).
    let verify = Command::new(env!("CARGO_BIN_EXE_sharedcare"))
        .args(["audit", "--data", data.to_str().unwrap(), "verify"])
        .env("SHAREDCARE_LOG", "warn")
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
}

#[test]
fn a_finished_import_run_again_loads_nothing() {
    let dir = temp_dir("import-again");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let nhs = nhs_numbers(2);
    let file = dir.join("Patient.ndjson");
    write_lines(
        &file,
        &[patient("a", &nhs[0], "x"), patient("b", &nhs[1], "x")],
    );
    let file = file.to_str().unwrap();
    assert_eq!(import(&data, &[file]).code, 0);
    let again = import(&data, &[file]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("loaded 0 resources"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("skipped 2 resources already loaded by an earlier run"),
        "{}",
        again.stdout
    );
    let server = Server::start(&data, &[]);
    assert_once_each(&server, "Patient", 2);
}

#[test]
fn transaction_bundles_keep_their_references_and_batches_report_entries() {
    let dir = temp_dir("import-bundle");
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let nhs = nhs_numbers(2);
    let patient_url = "urn:uuid:4f1c2a9e-8b0d-4c55-9a1e-3d2b7c6e5f40";
    let transaction = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0a9b8c7d-6e5f-4a3b-8c2d-1e0f9a8b7c6d",
             "resource": {"resourceType": "Observation", "status": "final",
                          "code": {"text": "weight"},
                          "subject": {"reference": patient_url}},
             "request": {"method": "POST", "url": "Observation"}},
            {"fullUrl": patient_url,
             "resource": {"resourceType": "Patient",
                          "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs[0]}]},
             "request": {"method": "POST", "url": "Patient"}}
        ]
    });
    let batch = json!({
        "resourceType": "Bundle", "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "b1",
                          "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs[1]}]},
             "request": {"method": "PUT", "url": "Patient/b1"}},
            {"resource": {"resourceType": "Patient", "id": "b2", "bogus": true},
             "request": {"method": "PUT", "url": "Patient/b2"}}
        ]
    });
    let tx_file = dir.join("transaction.json");
    std::fs::write(
        &tx_file,
        serde_json::to_string_pretty(&transaction).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("batch.json"), batch.to_string()).unwrap();

    let run = import(&data, &[dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "the batch's bad entry is rejected");
    assert!(
        run.stdout
            .contains("batch.json: entry 1 (Patient/b2): 422 Unprocessable Entity: SC-1002"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("loaded 3 resources"), "{}", run.stdout);

    // The transaction ran whole: the reference names the Patient written.
    let server = Server::start(&data, &[]);
    let patient_id = patient_url.trim_start_matches("urn:uuid:");
    assert_eq!(
        get(server.addr, &format!("/fhir/Patient/{patient_id}")).status,
        200
    );
    let obs = versions(&server, "Observation");
    assert_eq!(obs.len(), 1);
    let id = obs.keys().next().unwrap();
    let o = get(server.addr, &format!("/fhir/Observation/{id}")).json();
    assert_eq!(
        o["subject"]["reference"],
        format!("Patient/{patient_id}").as_str()
    );
    drop(server);

    // Changed, it is read again: its POSTs update the same resources.
    let mut text = std::fs::read(&tx_file).unwrap();
    text.push(b'\n');
    std::fs::write(&tx_file, text).unwrap();
    let again = import(&data, &[tx_file.to_str().unwrap()]);
    assert_eq!(again.code, 0);
    assert!(
        again
            .stdout
            .contains("loaded 2 resources (0 new, 2 updated)"),
        "{}",
        again.stdout
    );
    let server = Server::start(&data, &[]);
    assert_eq!(versions(&server, "Observation").len(), 1, "no duplicate");
    assert_eq!(versions(&server, "Patient").len(), 2);
}
