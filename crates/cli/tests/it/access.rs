//! Access control end to end (issue #4): bearer tokens, each role's view of
//! one person's record, writes, and attempts to infer what is withheld.
//!
//! Every test starts its own server and loads the same small population
//! through the system client ([`World::new`]):
//!
//! - practices A81001 and A81002, hospital RXX01, care home CH001;
//! - P1: registered at A81001, an active care-home EpisodeOfCare at CH001, a
//!   hospital (RXX01) encounter that finished 10 days ago, and a record with
//!   items sealed by A81001 (HIV, auto-labelled) and by RXX01 (depression),
//!   one `NOPAT` document, four GP encounters and one admission;
//! - P2: registered at A81002 (by ODS identifier), nothing else but one
//!   Observation that names P1 as its performer and derives from P1's lab
//!   result.
//!
//! Tests that show a leak assert the secure behaviour and are ignored with
//! the reason, so that they pass once the leak is mended.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::client::{Reply, Server, mint, now_secs, request, request_as, temp_dir};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const RECORDED_BY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/recorded-by";
const ACCESS_DECISION: &str = "https://fhir.sharedcare.org.uk/CodeSystem/access-decision";
const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const DAY: i64 = 86_400;

/// Everything in P1's record (their Patient compartment).
const P1_RECORD: &[&str] = &[
    "Patient/p1",
    "EpisodeOfCare/eoc-ch",
    "Encounter/enc-hosp",
    "Encounter/enc-imp",
    "Encounter/enc-gp-1",
    "Encounter/enc-gp-2",
    "Encounter/enc-gp-3",
    "Encounter/enc-gp-4",
    "AllergyIntolerance/allergy",
    "MedicationStatement/ms-active",
    "MedicationStatement/ms-stopped",
    "MedicationStatement/ms-arv",
    "Condition/cond-active",
    "Condition/cond-hiv",
    "Condition/cond-psy",
    "Observation/obs-lab",
    "Observation/obs-hiv",
    "Observation/obs-panel",
    "DocumentReference/doc-nopat",
    "CarePlan/careplan",
];
/// Sealed items recorded by A81001 (P1's practice).
const SEALED_BY_GP: &[&str] = &[
    "Condition/cond-hiv",
    "Observation/obs-hiv",
    "MedicationStatement/ms-arv",
];
/// Sealed items recorded by RXX01 (the hospital).
const SEALED_BY_HOSPITAL: &[&str] = &["Condition/cond-psy"];
const NOT_FOR_PATIENT: &str = "DocumentReference/doc-nopat";

// ---------------------------------------------------------------------------
// The world: a server with the population loaded, and its users.

struct World {
    server: Server,
    dir: PathBuf,
}

impl World {
    fn new(name: &str) -> World {
        let dir = temp_dir(&format!("access-{name}"));
        let server = Server::start(&dir, &[]);
        let w = World { server, dir };
        let r = request(
            w.addr(),
            "POST",
            "/fhir",
            Some(&population(now_secs()).to_string()),
        )
        .unwrap();
        assert_eq!(r.status, 200, "the population loads: {}", r.body);
        w
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// A staff token (with a professional registration) for `sub`.
    fn user(&self, sub: &str, role: &str, org: &str) -> String {
        mint(
            &self.dir,
            self.addr(),
            sub,
            role,
            Some(org),
            Some("GMC:7654321"),
            None,
            "user/*.cruds",
        )
    }

    /// A staff token; one user per role and organisation.
    fn staff(&self, role: &str, org: &str) -> String {
        self.user(&format!("{role}-{org}"), role, org)
    }

    fn patient(&self, id: &str) -> String {
        mint(
            &self.dir,
            self.addr(),
            &format!("nhs-login-{id}"),
            "patient",
            None,
            None,
            Some(id),
            "patient/*.cruds",
        )
    }

    /// A role without an organisation or registration of interest.
    fn role(&self, role: &str) -> String {
        mint(
            &self.dir,
            self.addr(),
            &format!("{role}-user"),
            role,
            Some("A81001"),
            None,
            None,
            "user/*.cruds",
        )
    }

    fn get(&self, token: &str, path: &str) -> Reply {
        request_as(self.addr(), "GET", path, None, Some(token)).unwrap()
    }

    fn send(&self, token: &str, method: &str, path: &str, body: &Value) -> Reply {
        let body = body.to_string();
        request_as(self.addr(), method, path, Some(&body), Some(token)).unwrap()
    }

    /// As the system client (sees everything).
    fn system_get(&self, path: &str) -> Reply {
        request(self.addr(), "GET", path, None).unwrap()
    }

    fn break_glass(&self, token: &str, patient: &str) -> Reply {
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "reason", "valueCode": "ETREAT"},
            {"name": "reasonText", "valueString": "Unconscious in the emergency department"},
        ]});
        self.send(
            token,
            "POST",
            &format!("/fhir/Patient/{patient}/$break-glass"),
            &body,
        )
    }

    /// Every page of a search, following `next` links: the match ids.
    fn all_pages(&self, token: &str, path: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut path = path.to_owned();
        for _ in 0..50 {
            let r = self.get(token, &path);
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            let b = r.json();
            out.extend(in_order(&b, "match"));
            match next_link(&b) {
                Some(next) => {
                    path = next
                        .strip_prefix(&format!("http://{}", self.addr()))
                        .unwrap()
                        .to_owned()
                }
                None => return out,
            }
        }
        panic!("more than 50 pages: {path}");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------
// The population, as one transaction Bundle with our own ids.

/// `YYYY-MM-DDThh:mm:ssZ` of Unix seconds.
pub(crate) fn iso(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub(crate) fn reference(r: &str) -> Value {
    json!({"reference": r})
}

pub(crate) fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

fn clinical_status(system_tail: &str, code: &str) -> Value {
    json!({"coding": [{"system": format!("http://terminology.hl7.org/CodeSystem/{system_tail}"), "code": code}]})
}

fn narrative(text: &str) -> Value {
    json!({"status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{text}</div>")})
}

fn category(code: &str) -> Value {
    json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}])
}

/// A transaction entry `PUT rtype/id`, stating who recorded it.
pub(crate) fn put(rtype: &str, id: &str, recorded_by: Option<&str>, mut body: Value) -> Value {
    body["resourceType"] = json!(rtype);
    body["id"] = json!(id);
    if let Some(org) = recorded_by {
        body["meta"]["tag"] = json!([{"system": RECORDED_BY, "code": org}]);
    }
    json!({"resource": body, "request": {"method": "PUT", "url": format!("{rtype}/{id}")}})
}

fn organization(id: &str, code: &str, name: &str) -> Value {
    put(
        "Organization",
        id,
        None,
        json!({"identifier": [{"system": ODS, "value": code}], "name": name}),
    )
}

fn gp_encounter(id: &str, ended_days_ago: i64, now: i64) -> Value {
    put(
        "Encounter",
        id,
        Some("A81001"),
        json!({
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB"},
            "subject": reference("Patient/p1"),
            "serviceProvider": reference("Organization/org-a81001"),
            "reasonCode": [concept(SNOMED, "38341003", "Hypertension")],
            "period": {"start": iso(now - ended_days_ago * DAY - 1800), "end": iso(now - ended_days_ago * DAY)},
        }),
    )
}

fn population(now: i64) -> Value {
    let p1 = || reference("Patient/p1");
    let entries = vec![
        organization("org-a81001", "A81001", "Riverside Surgery"),
        organization("org-a81002", "A81002", "Hilltop Practice"),
        organization("org-rxx01", "RXX01", "County Hospital"),
        organization("org-ch001", "CH001", "Elm Care Home"),
        put(
            "Medication",
            "med-arv",
            None,
            json!({"code": concept("https://dmd.nhs.uk", "38726511000001104", "Bictegravir/emtricitabine/tenofovir alafenamide tablets")}),
        ),
        put(
            "Patient",
            "p1",
            Some("A81001"),
            json!({
                "text": narrative("Pat Alpha, lives at Elm Care Home"),
                "name": [{"family": "Alpha", "given": ["Pat"]}],
                "gender": "female",
                "birthDate": "1940-02-03",
                "generalPractitioner": [reference("Organization/org-a81001")],
            }),
        ),
        put(
            "Patient",
            "p2",
            Some("A81002"),
            json!({
                "name": [{"family": "Beta", "given": ["Bo"]}],
                "gender": "male",
                "birthDate": "1950-04-05",
                "generalPractitioner": [{"identifier": {"system": ODS, "value": "A81002"}}],
            }),
        ),
        put(
            "EpisodeOfCare",
            "eoc-ch",
            Some("CH001"),
            json!({"status": "active", "patient": p1(),
                "managingOrganization": reference("Organization/org-ch001"),
                "period": {"start": iso(now - 365 * DAY)}}),
        ),
        // The hospital's outpatient visit 10 days ago: a current relationship.
        put(
            "Encounter",
            "enc-hosp",
            Some("RXX01"),
            json!({"status": "finished", "class": {"system": ACT_CODE, "code": "AMB"},
                "subject": p1(), "serviceProvider": reference("Organization/org-rxx01"),
                "period": {"start": iso(now - 10 * DAY - 3600), "end": iso(now - 10 * DAY)}}),
        ),
        // An admission 100 days ago: no longer a relationship.
        put(
            "Encounter",
            "enc-imp",
            Some("RXX01"),
            json!({"status": "finished", "class": {"system": ACT_CODE, "code": "IMP"},
                "subject": p1(), "serviceProvider": reference("Organization/org-rxx01"),
                "period": {"start": iso(now - 105 * DAY), "end": iso(now - 100 * DAY)}}),
        ),
        gp_encounter("enc-gp-1", 200, now),
        gp_encounter("enc-gp-2", 150, now),
        gp_encounter("enc-gp-3", 60, now),
        gp_encounter("enc-gp-4", 20, now),
        put(
            "AllergyIntolerance",
            "allergy",
            Some("A81001"),
            json!({
                "text": narrative("Penicillin allergy"),
                "clinicalStatus": clinical_status("allergyintolerance-clinical", "active"),
                "code": concept(SNOMED, "91936005", "Allergy to penicillin"),
                "patient": p1(),
                "note": [{"text": "Private note: reaction during 1998 admission"}],
            }),
        ),
        put(
            "MedicationStatement",
            "ms-active",
            Some("A81001"),
            json!({"status": "active", "subject": p1(),
                "medicationCodeableConcept": concept("https://dmd.nhs.uk", "39720311000001101", "Amlodipine 5mg tablets"),
                "note": [{"text": "Private note: adherence concerns"}]}),
        ),
        put(
            "MedicationStatement",
            "ms-stopped",
            Some("A81001"),
            json!({"status": "stopped", "subject": p1(),
                "medicationCodeableConcept": concept("https://dmd.nhs.uk", "39732311000001104", "Sertraline 50mg tablets")}),
        ),
        put(
            "MedicationStatement",
            "ms-arv",
            Some("A81001"),
            json!({"meta": {"security": [{"system": ACT_CODE, "code": "HIV"}]},
                "status": "active", "subject": p1(),
                "medicationReference": reference("Medication/med-arv")}),
        ),
        put(
            "Condition",
            "cond-active",
            Some("A81001"),
            json!({"clinicalStatus": clinical_status("condition-clinical", "active"),
                "code": concept(SNOMED, "38341003", "Hypertension"), "subject": p1(),
                "note": [{"text": "Private note: discussed family history"}]}),
        ),
        // Auto-labelled HIV (sealed), recorded by the practice.
        put(
            "Condition",
            "cond-hiv",
            Some("A81001"),
            json!({"clinicalStatus": clinical_status("condition-clinical", "active"),
                "code": concept(SNOMED, "86406008", "Human immunodeficiency virus infection"),
                "subject": p1()}),
        ),
        // Auto-labelled depression (sealed), recorded by the hospital.
        put(
            "Condition",
            "cond-psy",
            Some("RXX01"),
            json!({"clinicalStatus": clinical_status("condition-clinical", "active"),
                "code": concept(SNOMED, "35489007", "Depressive disorder"),
                "subject": p1()}),
        ),
        put(
            "Observation",
            "obs-lab",
            Some("A81001"),
            json!({"status": "final", "category": category("laboratory"),
                "code": concept(LOINC, "2339-0", "Glucose"), "subject": p1(),
                "effectiveDateTime": iso(now - 30 * DAY),
                "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}}),
        ),
        put(
            "Observation",
            "obs-hiv",
            Some("A81001"),
            json!({"status": "final", "category": category("laboratory"),
                "code": concept(SNOMED, "31676001", "Human immunodeficiency virus antigen test"),
                "subject": p1(), "effectiveDateTime": iso(now - 40 * DAY),
                "valueString": "positive"}),
        ),
        // P2's item: performed by P1, derived from P1's lab result.
        put(
            "Observation",
            "obs-p2",
            Some("A81002"),
            json!({"status": "final", "category": category("laboratory"),
                "code": concept(LOINC, "4548-4", "Hemoglobin A1c"),
                "subject": reference("Patient/p2"), "performer": [p1()],
                "derivedFrom": [reference("Observation/obs-lab")],
                "effectiveDateTime": iso(now - 5 * DAY), "valueString": "P2 result"}),
        ),
        put(
            "Observation",
            "obs-panel",
            Some("A81001"),
            json!({"status": "final", "category": category("laboratory"),
                "code": concept(LOINC, "24323-8", "Comprehensive metabolic panel"),
                "subject": p1(), "effectiveDateTime": iso(now - 40 * DAY),
                "hasMember": [reference("Observation/obs-hiv"), reference("Observation/obs-p2")]}),
        ),
        put(
            "DocumentReference",
            "doc-nopat",
            Some("A81001"),
            json!({"meta": {"security": [{"system": ACT_CODE, "code": "NOPAT"}]},
                "status": "current", "subject": p1(),
                "description": "Third-party safeguarding information",
                "content": [{"attachment": {"contentType": "text/plain", "data": "c2VjcmV0"}}]}),
        ),
        put(
            "CarePlan",
            "careplan",
            Some("A81001"),
            json!({"status": "active", "intent": "plan", "subject": p1(),
                "title": "Blood pressure plan",
                "addresses": [reference("Condition/cond-active"), reference("Condition/cond-hiv")],
                "note": [{"text": "Private note: care plan discussion"}]}),
        ),
    ];
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

// ---------------------------------------------------------------------------
// Reading replies.

fn key(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    )
}

/// `Type/id` of the entries with this search mode, in Bundle order.
fn in_order(bundle: &Value, mode: &str) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| key(&e["resource"]))
                .collect()
        })
        .unwrap_or_default()
}

/// `Type/id` of the entries with this search mode, sorted.
fn entries(bundle: &Value, mode: &str) -> Vec<String> {
    let mut out = in_order(bundle, mode);
    out.sort();
    out
}

fn resources<'a>(bundle: &'a Value, mode: &str) -> Vec<&'a Value> {
    bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["search"]["mode"] == mode)
                .map(|e| &e["resource"])
                .collect()
        })
        .unwrap_or_default()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find(|l| l["relation"] == "next")
        .and_then(|l| l["url"].as_str())
        .map(str::to_owned)
}

/// `path` with one more query parameter.
fn with(path: &str, param: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{param}")
}

/// The search `total`.
fn total(r: &Reply) -> u64 {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["total"]
        .as_u64()
        .unwrap_or_else(|| panic!("no total: {}", r.body))
}

/// Does the Bundle carry the "confidential items withheld" warning?
fn warned(bundle: &Value) -> bool {
    resources(bundle, "outcome").iter().any(|o| {
        o["issue"][0]["code"] == "suppressed"
            && o["issue"][0]["details"]["coding"][0]["code"] == "confidential-items"
    })
}

/// P1's record without `hidden`, sorted.
fn p1_except(hidden: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = P1_RECORD
        .iter()
        .filter(|k| !hidden.contains(k))
        .map(|k| (*k).to_owned())
        .collect();
    out.sort();
    out
}

fn strings(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    out.sort();
    out
}

/// A 403 with the policy's reason code.
#[track_caller]
fn assert_forbidden(r: &Reply, reason: &str) {
    assert_eq!(r.status, 403, "expected 403 {reason}: {}", r.body);
    let o = r.json();
    assert_eq!(o["resourceType"], "OperationOutcome");
    let codings = o["issue"][0]["details"]["coding"].as_array().unwrap();
    assert!(
        codings
            .iter()
            .any(|c| c["system"] == ACCESS_DECISION && c["code"] == reason),
        "expected the access decision {reason}: {}",
        r.body
    );
}

/// The reply reveals nothing of `item`: refused, or an answer without it.
#[track_caller]
fn assert_hides(r: &Reply, item: &str) {
    match r.status {
        401 | 403 | 404 => {}
        200 => {
            let b = r.json();
            let shown: Vec<String> = ["match", "include"]
                .iter()
                .flat_map(|m| entries(&b, m))
                .collect();
            assert!(!shown.contains(&item.to_owned()), "{item} shown: {shown:?}");
        }
        other => panic!("unexpected {other}: {}", r.body),
    }
}

// ---------------------------------------------------------------------------
// 1. Tokens

/// The claims of a token for this server's base, valid for an hour.
fn claims(addr: SocketAddr, role: &str, org: Option<&str>) -> auth::TokenClaims {
    let base = format!("http://{addr}/fhir");
    let now = now_secs();
    auth::TokenClaims {
        iss: base.clone(),
        aud: base,
        sub: "crafted".to_owned(),
        exp: now + 3600,
        nbf: now - 5,
        iat: now - 5,
        jti: format!("crafted-{now}"),
        name: "Crafted".to_owned(),
        role: role.to_owned(),
        scope: if role == "integration" {
            "system/*.cruds"
        } else {
            "user/*.cruds"
        }
        .to_owned(),
        org: org.map(str::to_owned),
        registration: Some("GMC:1111111".to_owned()),
        patient: None,
        related_person: None,
        client_id: None,
    }
}

fn server_key(w: &World) -> auth::IssuerKey {
    auth::IssuerKey::load_or_create(&w.dir, || panic!("the server made no key")).unwrap()
}

/// The token is refused on FHIR paths with a 401 that says nothing of the
/// record.
#[track_caller]
fn assert_refused(w: &World, token: Option<&str>, what: &str) {
    for path in [
        "/fhir/Patient/p1",
        "/fhir/Patient/p1/$everything",
        "/fhir/Condition?patient=p1",
        "/fhir/Patient",
    ] {
        let r = request_as(w.addr(), "GET", path, None, token).unwrap();
        assert_eq!(r.status, 401, "{what} on {path}: {}", r.body);
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer "),
            "{what}: challenge {challenge:?}"
        );
        if token.is_some() {
            assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        }
        let o = r.json();
        assert_eq!(o["resourceType"], "OperationOutcome", "{what}");
        assert_eq!(o["issue"][0]["code"], "login", "{what}");
        for secret in ["Alpha", "86406008", "Hypertension", "entry"] {
            assert!(
                !r.body.contains(secret),
                "{what} leaks {secret}: {}",
                r.body
            );
        }
    }
}

#[test]
fn no_token_is_401_with_a_challenge() {
    let w = World::new("no-token");
    assert_refused(&w, None, "no Authorization header");
    let r = request_as(w.addr(), "POST", "/fhir", Some("{}"), None).unwrap();
    assert_eq!(r.status, 401);
    // A non-bearer scheme is no token either.
    let mut s = std::net::TcpStream::connect(w.addr()).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /fhir/Patient/p1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic YTpi\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(!raw.contains("Alpha"));
}

#[test]
fn garbage_tokens_are_401() {
    let w = World::new("garbage");
    for t in [
        "garbage",
        "a.b.c",
        "...",
        "eyJhbGciOiJFZERTQSJ9.e30.",
        "a.b.c.d",
    ] {
        assert_refused(&w, Some(t), t);
    }
    let huge = "a".repeat(20_000);
    let r = request_as(w.addr(), "GET", "/fhir/Patient/p1", None, Some(&huge)).unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn expired_and_not_yet_valid_tokens_are_401() {
    let w = World::new("times");
    let key = server_key(&w);
    let now = now_secs();
    let mut expired = claims(w.addr(), "integration", None);
    (expired.iat, expired.nbf, expired.exp) = (now - 7200, now - 7200, now - 3600);
    assert_refused(&w, Some(&key.mint(&expired).unwrap()), "expired");
    let mut early = claims(w.addr(), "integration", None);
    (early.iat, early.nbf, early.exp) = (now, now + 3600, now + 7200);
    assert_refused(&w, Some(&key.mint(&early).unwrap()), "nbf in the future");
    // The same claims, valid now, are accepted (the test is about time).
    let ok = key.mint(&claims(w.addr(), "integration", None)).unwrap();
    assert_eq!(w.get(&ok, "/fhir/Patient/p1").status, 200);
}

#[test]
fn wrong_audience_is_401() {
    let w = World::new("audience");
    let key = server_key(&w);
    for aud in ["http://127.0.0.1:1/fhir", "http://other.example/fhir", ""] {
        let mut c = claims(w.addr(), "integration", None);
        c.aud = aud.to_owned();
        assert_refused(&w, Some(&key.mint(&c).unwrap()), &format!("aud {aud:?}"));
    }
}

#[test]
fn untrusted_issuer_and_foreign_keys_are_401() {
    let w = World::new("issuer");
    let stranger = auth::IssuerKey::from_seed([42; 32]);
    // Our issuer's name, another key.
    let c = claims(w.addr(), "integration", None);
    assert_refused(&w, Some(&stranger.mint(&c).unwrap()), "foreign key");
    // Another issuer altogether, signed by ours and by its own key.
    let mut c = claims(w.addr(), "integration", None);
    c.iss = "https://evil.example/fhir".to_owned();
    assert_refused(&w, Some(&stranger.mint(&c).unwrap()), "untrusted issuer");
    assert_refused(
        &w,
        Some(&server_key(&w).mint(&c).unwrap()),
        "untrusted issuer, our key",
    );
}

#[test]
fn alg_none_is_401() {
    let w = World::new("alg-none");
    let payload = b64url(
        serde_json::to_string(&claims(w.addr(), "integration", None))
            .unwrap()
            .as_bytes(),
    );
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let token = format!("{}.{payload}.", b64url(header.as_bytes()));
        assert_refused(&w, Some(&token), header);
    }
}

#[test]
fn hmac_with_the_public_key_is_401() {
    let w = World::new("hmac");
    let key = server_key(&w);
    let jwks_reply = request_as(w.addr(), "GET", "/oauth/jwks", None, None).unwrap();
    let jwks = jwks_reply.json();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": key.kid()}).to_string();
    let payload = serde_json::to_string(&claims(w.addr(), "integration", None)).unwrap();
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("x bytes", b64url_decode(&x)),
        ("x text", x.as_bytes().to_vec()),
        ("JWKS text", jwks_reply.body.as_bytes().to_vec()),
        ("JWK text", jwks["keys"][0].to_string().into_bytes()),
    ];
    for (what, secret) in secrets {
        let sig = b64url(&hmac_sha256(&secret, signing_input.as_bytes()));
        assert_refused(&w, Some(&format!("{signing_input}.{sig}")), what);
    }
}

#[test]
fn tampered_payload_is_401() {
    let w = World::new("tamper");
    let token = w.staff("care-worker", "CH001");
    assert_eq!(w.get(&token, "/fhir/Patient/p1").status, 200);
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    payload["role"] = json!("integration");
    payload["scope"] = json!("system/*.cruds");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(payload.to_string().as_bytes()),
        parts[2]
    );
    assert_refused(&w, Some(&forged), "role flipped to integration");
    // A signature from another token does not fit either.
    let other = w.staff("gp", "A81001");
    let sig = other.split('.').nth(2).unwrap();
    let spliced = format!("{}.{}.{sig}", parts[0], parts[1]);
    assert_refused(&w, Some(&spliced), "spliced signature");
}

#[test]
fn discovery_needs_no_token() {
    let w = World::new("discovery");
    let r = request_as(w.addr(), "GET", "/fhir/metadata", None, None).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resourceType"], "CapabilityStatement");
    let r = request_as(
        w.addr(),
        "GET",
        "/fhir/.well-known/smart-configuration",
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let smart = r.json();
    assert!(smart["jwks_uri"].as_str().unwrap().ends_with("/oauth/jwks"));
    let r = request_as(w.addr(), "GET", "/oauth/jwks", None, None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), server_key(&w).jwks(), "the server's own key");
    assert!(!r.body.contains("\"d\""), "no private part");
}

#[test]
fn unknown_role_is_403_not_401() {
    let w = World::new("unknown-role");
    let token = server_key(&w)
        .mint(&claims(w.addr(), "superuser", Some("A81001")))
        .unwrap();
    assert_forbidden(&w.get(&token, "/fhir/Patient/p1"), "unknown-role");
    assert_forbidden(&w.get(&token, "/fhir/Patient"), "unknown-role");
}

// ---------------------------------------------------------------------------
// 2. Each role on P1

fn everything(w: &World, token: &str, patient: &str) -> Value {
    let r = w.get(token, &format!("/fhir/Patient/{patient}/$everything"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

#[test]
fn registered_gp_sees_the_record_with_its_own_sealed_items() {
    let w = World::new("gp-own");
    let gp = w.staff("gp", "A81001");
    let b = everything(&w, &gp, "p1");
    assert_eq!(entries(&b, "match"), p1_except(SEALED_BY_HOSPITAL));
    assert!(warned(&b), "the hospital's sealed item is withheld");
    let r = w.get(&gp, "/fhir/Condition/cond-hiv");
    assert_eq!(r.status, 200, "{}", r.body);
    let hiv = r.json();
    let security = hiv["meta"]["security"].to_string();
    assert!(
        security.contains("\"HIV\"") && security.contains("\"R\""),
        "auto-labelled: {security}"
    );
    assert_eq!(w.get(&gp, "/fhir/Condition/cond-psy").status, 404);
    let notes = w.get(&gp, "/fhir/Condition/cond-active").json();
    assert!(notes["note"].is_array(), "the full record keeps notes");
}

#[test]
fn gp_elsewhere_needs_break_glass_which_does_not_open_seals() {
    let w = World::new("gp-elsewhere");
    let gp = w.staff("gp", "A81002");
    let r = w.get(&gp, "/fhir/Patient/p1");
    assert_forbidden(&r, "no-relationship");
    assert!(r.body.contains("break-glass"), "{}", r.body);
    assert!(!r.body.contains("Alpha"));
    assert_forbidden(
        &w.get(&gp, "/fhir/Patient/p1/$everything"),
        "no-relationship",
    );
    assert_forbidden(&w.get(&gp, "/fhir/Condition?patient=p1"), "no-relationship");

    // A reason is needed, in code and in words.
    let empty = json!({"resourceType": "Parameters", "parameter": [{"name": "reason", "valueCode": "ETREAT"}]});
    let r = w.send(&gp, "POST", "/fhir/Patient/p1/$break-glass", &empty);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = w.break_glass(&gp, "p1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["parameter"][0]["name"], "expires");

    let b = everything(&w, &gp, "p1");
    let mut sealed = SEALED_BY_GP.to_vec();
    sealed.extend(SEALED_BY_HOSPITAL);
    assert_eq!(entries(&b, "match"), p1_except(&sealed));
    assert!(warned(&b));
    let b = w.get(&gp, "/fhir/Condition?patient=p1").json();
    assert_eq!(entries(&b, "match"), strings(&["Condition/cond-active"]));
    assert!(warned(&b), "the search says items were withheld");
    assert_eq!(w.get(&gp, "/fhir/Condition/cond-hiv").status, 404);

    // Break-glass is per user: a colleague at the same practice has none.
    let colleague = w.user("gp-a81002-colleague", "gp", "A81002");
    assert_forbidden(&w.get(&colleague, "/fhir/Patient/p1"), "no-relationship");
}

#[test]
fn hospital_with_recent_encounter_sees_the_record_but_not_others_seals() {
    let w = World::new("hospital");
    let h = w.staff("hospital-clinician", "RXX01");
    let b = everything(&w, &h, "p1");
    assert_eq!(entries(&b, "match"), p1_except(SEALED_BY_GP));
    assert!(warned(&b));
    assert_eq!(w.get(&h, "/fhir/Condition/cond-psy").status, 200);
    assert_eq!(w.get(&h, "/fhir/Condition/cond-hiv").status, 404);
    // No relationship with P2.
    assert_forbidden(&w.get(&h, "/fhir/Patient/p2"), "no-relationship");
}

#[test]
fn care_worker_sees_appropriate_information_only() {
    let w = World::new("care-worker");
    let cw = w.staff("care-worker", "CH001");
    let b = everything(&w, &cw, "p1");
    assert_eq!(
        entries(&b, "match"),
        strings(&[
            "Patient/p1",
            "AllergyIntolerance/allergy",
            "MedicationStatement/ms-active",
            "Encounter/enc-gp-2",
            "Encounter/enc-gp-3",
            "Encounter/enc-gp-4",
            "Encounter/enc-imp",
            "CarePlan/careplan",
        ])
    );
    for r in resources(&b, "match") {
        for element in ["note", "text"] {
            assert!(r.get(element).is_none(), "{} keeps {element}", key(r));
        }
    }
    for r in resources(&b, "match") {
        let k = key(r);
        if k.starts_with("Encounter/enc-gp") {
            assert!(
                r.get("serviceProvider").is_none(),
                "{k}: dates and type only"
            );
            assert!(r.get("reasonCode").is_none(), "{k}: dates and type only");
        }
    }
    let allergy = w.get(&cw, "/fhir/AllergyIntolerance/allergy").json();
    assert!(allergy.get("note").is_none() && allergy.get("text").is_none());
    // Observations: only what the care home recorded (none yet), never the
    // practice's lab results.
    let r = w.get(&cw, "/fhir/Observation?patient=p1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(entries(&r.json(), "match").is_empty(), "{}", r.body);
    assert_eq!(w.get(&cw, "/fhir/Observation/obs-lab").status, 404);
    assert_forbidden(
        &w.get(&cw, "/fhir/Condition?patient=p1"),
        "type-not-in-view",
    );
    assert_forbidden(
        &w.get(&cw, "/fhir/Condition/cond-active"),
        "type-not-in-view",
    );
    let meds = w.get(&cw, "/fhir/MedicationStatement?patient=p1").json();
    assert_eq!(
        entries(&meds, "match"),
        strings(&["MedicationStatement/ms-active"])
    );
    assert_eq!(
        w.get(&cw, "/fhir/MedicationStatement/ms-stopped").status,
        404
    );
}

#[test]
fn care_worker_has_no_way_into_an_unrelated_record() {
    let w = World::new("care-worker-p2");
    let cw = w.staff("care-worker", "CH001");
    assert_forbidden(&w.get(&cw, "/fhir/Patient/p2"), "no-relationship");
    let r = w.get(&cw, "/fhir/Patient/p2");
    assert!(!r.body.contains("break-glass is available"), "{}", r.body);
    assert_forbidden(&w.break_glass(&cw, "p2"), "break-glass-not-allowed");
    assert_forbidden(&w.get(&cw, "/fhir/Patient/p2"), "no-relationship");
}

#[test]
fn patient_sees_own_record_except_items_withheld_from_them() {
    let w = World::new("patient");
    let me = w.patient("p1");
    let b = everything(&w, &me, "p1");
    assert_eq!(entries(&b, "match"), p1_except(&[NOT_FOR_PATIENT]));
    assert_eq!(w.get(&me, "/fhir/Condition/cond-hiv").status, 200);
    assert_eq!(w.get(&me, "/fhir/DocumentReference/doc-nopat").status, 404);
    let docs = w.get(&me, "/fhir/DocumentReference?patient=p1").json();
    assert!(entries(&docs, "match").is_empty());
}

#[test]
fn patient_cannot_reach_another_person() {
    let w = World::new("patient-other");
    let me = w.patient("p1");
    let r = w.get(&me, "/fhir/Patient/p2");
    assert!(matches!(r.status, 403 | 404), "{}", r.body);
    assert!(!r.body.contains("Beta"));
    let r = w.get(&me, "/fhir/Patient/p2/$everything");
    assert!(matches!(r.status, 403 | 404), "{}", r.body);
    assert_hides(
        &w.get(&me, "/fhir/Observation?patient=p2"),
        "Observation/obs-p2",
    );
    assert_hides(
        &w.get(&me, "/fhir/Observation/obs-p2"),
        "Observation/obs-p2",
    );
    let b = w.get(&me, "/fhir/Patient").json();
    assert_eq!(entries(&b, "match"), strings(&["Patient/p1"]));
}

#[test]
fn non_clinical_roles_see_no_person_data() {
    let w = World::new("non-clinical");
    for role in ["data-controller", "commissioner", "admin"] {
        let t = w.role(role);
        for path in [
            "/fhir/Patient/p1",
            "/fhir/Patient/p1/$everything",
            "/fhir/Condition?patient=p1",
            "/fhir/Patient",
            "/fhir/Patient?name=Alpha",
        ] {
            let r = w.get(&t, path);
            assert_eq!(r.status, 403, "{role} {path}: {}", r.body);
            assert!(!r.body.contains("Alpha"), "{role} {path}");
        }
        assert_eq!(w.break_glass(&t, "p1").status, 403, "{role}");
    }
}

#[test]
fn integration_sees_everything() {
    let w = World::new("integration");
    let b = w.system_get("/fhir/Patient/p1/$everything").json();
    assert_eq!(entries(&b, "match"), p1_except(&[]));
    assert!(!warned(&b));
    let all = w.system_get("/fhir/Patient").json();
    assert_eq!(
        entries(&all, "match"),
        strings(&["Patient/p1", "Patient/p2"])
    );
}

#[test]
fn clinician_without_registration_is_refused() {
    let w = World::new("no-registration");
    let token = mint(
        &w.dir,
        w.addr(),
        "gp-unregistered",
        "gp",
        Some("A81001"),
        None,
        None,
        "user/*.cruds",
    );
    assert_forbidden(&w.get(&token, "/fhir/Patient/p1"), "registration-required");
    assert_forbidden(&w.get(&token, "/fhir/Patient"), "registration-required");
    let no_org = mint(
        &w.dir,
        w.addr(),
        "gp-no-org",
        "gp",
        None,
        Some("GMC:1"),
        None,
        "user/*.cruds",
    );
    assert_forbidden(&w.get(&no_org, "/fhir/Patient/p1"), "organisation-required");
}

// ---------------------------------------------------------------------------
// 3. Writes

fn vital_signs(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "meta": {"tag": [{"system": RECORDED_BY, "code": "A81001"}]},
        "category": category("vital-signs"),
        "code": concept(LOINC, "8867-4", "Heart rate"),
        "subject": reference(&format!("Patient/{patient}")),
        "effectiveDateTime": iso(now_secs()),
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

fn created_id(r: &Reply) -> String {
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            r.header("location")
                .and_then(|l| l.split("/_history").next())
                .and_then(|l| l.rsplit('/').next())
                .map(str::to_owned)
        })
        .unwrap()
}

fn recorded_by(resource: &Value) -> Option<String> {
    resource["meta"]["tag"]
        .as_array()?
        .iter()
        .find(|t| t["system"] == RECORDED_BY)
        .and_then(|t| t["code"].as_str())
        .map(str::to_owned)
}

#[test]
fn care_worker_records_vital_signs_but_nothing_clinical() {
    let w = World::new("care-writes");
    let cw = w.staff("care-worker", "CH001");
    let id = created_id(&w.send(&cw, "POST", "/fhir/Observation", &vital_signs("p1")));
    // Stamped with the care home, whatever the body claimed.
    let stored = w.system_get(&format!("/fhir/Observation/{id}")).json();
    assert_eq!(recorded_by(&stored).as_deref(), Some("CH001"));
    // Their own observation is now in their view.
    let mine = w.get(&cw, "/fhir/Observation?patient=p1").json();
    assert_eq!(entries(&mine, "match"), vec![format!("Observation/{id}")]);

    let mut lab = vital_signs("p1");
    lab["category"] = category("laboratory");
    assert_forbidden(
        &w.send(&cw, "POST", "/fhir/Observation", &lab),
        "not-creatable",
    );
    let condition = json!({"resourceType": "Condition", "subject": reference("Patient/p1"),
        "code": concept(SNOMED, "38341003", "Hypertension")});
    assert_forbidden(
        &w.send(&cw, "POST", "/fhir/Condition", &condition),
        "not-creatable",
    );
    assert_forbidden(
        &w.send(&cw, "POST", "/fhir/Observation", &vital_signs("p2")),
        "no-relationship",
    );
    // A refused write stores nothing.
    let all = w.system_get("/fhir/Observation?patient=p1&category=laboratory&_summary=count");
    assert_eq!(total(&all), 3);
    assert_eq!(total(&w.system_get("/fhir/Condition?_summary=count")), 3);
}

#[test]
fn nobody_changes_another_organisations_entry() {
    let w = World::new("other-org");
    let gp = w.staff("gp", "A81001");
    let mut enc = w.system_get("/fhir/Encounter/enc-hosp").json();
    enc["status"] = json!("cancelled");
    assert_forbidden(
        &w.send(&gp, "PUT", "/fhir/Encounter/enc-hosp", &enc),
        "other-organisations-entry",
    );
    assert_forbidden(
        &w.send(&gp, "DELETE", "/fhir/Encounter/enc-hosp", &json!({})),
        "other-organisations-entry",
    );
    // A sealed entry of the hospital: neither changed nor shown in the reply.
    let psy = json!({"resourceType": "Condition", "id": "cond-psy",
        "subject": reference("Patient/p1"),
        "code": concept(SNOMED, "38341003", "Hypertension")});
    let r = w.send(&gp, "PUT", "/fhir/Condition/cond-psy", &psy);
    assert!(matches!(r.status, 403 | 404), "{}", r.body);
    assert!(!r.body.contains("35489007"), "{}", r.body);
    let stored = w.system_get("/fhir/Encounter/enc-hosp").json();
    assert_eq!(stored["status"], "finished");
    assert_eq!(stored["meta"]["versionId"], "1");
    let stored = w.system_get("/fhir/Condition/cond-psy").json();
    assert_eq!(stored["meta"]["versionId"], "1");
    // The hospital may change its own.
    let h = w.staff("hospital-clinician", "RXX01");
    let r = w.send(&h, "PUT", "/fhir/Encounter/enc-hosp", &enc);
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn every_write_leaves_a_provenance() {
    let w = World::new("provenance");
    let cw = w.staff("care-worker", "CH001");
    let id = created_id(&w.send(&cw, "POST", "/fhir/Observation", &vital_signs("p1")));
    let r = w.system_get(&format!("/fhir/Provenance?target=Observation/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    let provs = resources(&b, "match");
    assert_eq!(provs.len(), 1, "{}", r.body);
    let p = provs[0];
    assert!(
        p["target"][0]["reference"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Observation/{id}")),
        "{p}"
    );
    assert_eq!(p["activity"]["coding"][0]["code"], "CREATE");
    let agent = &p["agent"][0];
    assert_eq!(agent["who"]["identifier"]["value"], "care-worker-CH001");
    assert_eq!(agent["role"][0]["coding"][0]["code"], "care-worker");
    assert_eq!(agent["onBehalfOf"]["identifier"]["value"], "CH001");
    // The audit trail is not in anyone's clinical view.
    let gp = w.staff("gp", "A81001");
    let r = w.get(&gp, &format!("/fhir/Provenance?target=Observation/{id}"));
    assert!(matches!(r.status, 403), "{}", r.body);
}

// ---------------------------------------------------------------------------
// 4. Inference

/// Users who may not see P1's HIV items (and, for the last, the hospital's
/// sealed depression item instead).
fn outsiders(w: &World) -> Vec<(&'static str, String)> {
    vec![
        ("care-worker", w.staff("care-worker", "CH001")),
        ("gp A81002", w.staff("gp", "A81002")),
        ("hospital", w.staff("hospital-clinician", "RXX01")),
    ]
}

#[test]
fn reverse_chains_do_not_reveal_sealed_items() {
    let w = World::new("has");
    for (who, t) in outsiders(&w) {
        for path in [
            "/fhir/Patient?_has:Condition:subject:code=86406008",
            "/fhir/Patient?_id=p1&_has:Condition:subject:code=86406008",
            "/fhir/Patient?_id=p1&_has:Observation:subject:code=31676001",
            "/fhir/Patient?_id=p1&_has:MedicationStatement:subject:medication=Medication/med-arv",
            "/fhir/Patient/p1/Patient?_has:Condition:subject:code=86406008",
        ] {
            let r = w.get(&t, path);
            assert!(r.status != 500, "{who} {path}: {}", r.body);
            assert_hides(&r, "Patient/p1");
        }
    }
    // The practice's own GP cannot probe the hospital's seal either.
    let gp = w.staff("gp", "A81001");
    assert_hides(
        &w.get(
            &gp,
            "/fhir/Patient?_id=p1&_has:Condition:subject:code=35489007",
        ),
        "Patient/p1",
    );
    // But it finds what it may see (the probe works at all).
    let b = w
        .get(
            &gp,
            "/fhir/Patient?_id=p1&_has:Condition:subject:code=86406008",
        )
        .json();
    assert_eq!(entries(&b, "match"), strings(&["Patient/p1"]));
    // The care worker cannot use _has to see stopped medicines.
    let cw = w.staff("care-worker", "CH001");
    assert_hides(
        &w.get(
            &cw,
            "/fhir/Patient?_id=p1&_has:MedicationStatement:subject:status=stopped",
        ),
        "Patient/p1",
    );
}

#[test]
fn chains_do_not_reach_withheld_items() {
    let w = World::new("chains");
    for (_, t) in outsiders(&w) {
        assert_hides(
            &w.get(&t, "/fhir/Condition?subject.name=Alpha"),
            "Condition/cond-active",
        );
        assert_hides(
            &w.get(
                &t,
                "/fhir/Condition?subject:Patient.name=Alpha&code=86406008",
            ),
            "Condition/cond-hiv",
        );
        // The panel is visible; whether its member is the HIV test is not.
        assert_hides(
            &w.get(
                &t,
                "/fhir/Observation?patient=p1&has-member:Observation.code=31676001",
            ),
            "Observation/obs-panel",
        );
    }
    let gp = w.staff("gp", "A81001");
    // Its own sealed member is fair game (the chain works at all)…
    let b = w
        .get(
            &gp,
            "/fhir/Observation?patient=p1&has-member:Observation.code=31676001",
        )
        .json();
    assert_eq!(entries(&b, "match"), strings(&["Observation/obs-panel"]));
}

#[test]
fn includes_do_not_bring_in_withheld_items() {
    let w = World::new("includes");
    let h = w.staff("hospital-clinician", "RXX01");
    let b = w
        .get(
            &h,
            "/fhir/Observation?patient=p1&_id=obs-panel&_include=Observation:has-member",
        )
        .json();
    assert_eq!(entries(&b, "match"), strings(&["Observation/obs-panel"]));
    assert!(entries(&b, "include").is_empty(), "{b}");
    let b = w
        .get(
            &h,
            "/fhir/Observation?patient=p1&_id=obs-panel&_include:iterate=Observation:has-member&_include=Observation:derived-from",
        )
        .json();
    assert!(entries(&b, "include").is_empty(), "{b}");
    let b = w
        .get(&h, "/fhir/Patient?_id=p1&_revinclude=Condition:subject")
        .json();
    assert_eq!(
        entries(&b, "include"),
        strings(&["Condition/cond-active", "Condition/cond-psy"])
    );
    let b = w
        .get(&h, "/fhir/CarePlan?patient=p1&_include=CarePlan:condition")
        .json();
    assert_eq!(entries(&b, "include"), strings(&["Condition/cond-active"]));
    // Another person's item that refers to P1's never rides along.
    let gp = w.staff("gp", "A81001");
    for path in [
        "/fhir/Observation?patient=p1&_revinclude=Observation:derived-from",
        "/fhir/Patient?_id=p1&_revinclude=Observation:performer",
        "/fhir/Patient?_revinclude=Observation:performer",
        "/fhir/Observation?patient=p1&_include=Observation:has-member",
    ] {
        assert_hides(&w.get(&gp, path), "Observation/obs-p2");
    }
    // The care worker: no clinical items through includes.
    let cw = w.staff("care-worker", "CH001");
    let b = w
        .get(&cw, "/fhir/CarePlan?patient=p1&_include=CarePlan:condition")
        .json();
    assert_eq!(entries(&b, "match"), strings(&["CarePlan/careplan"]));
    assert!(entries(&b, "include").is_empty(), "{b}");
    let b = w
        .get(&cw, "/fhir/Patient?_id=p1&_revinclude=MedicationStatement:subject&_revinclude=Observation:subject")
        .json();
    assert_eq!(
        entries(&b, "include"),
        strings(&["MedicationStatement/ms-active"])
    );
    // No person reached from a directory item without a relationship.
    let stranger = w.staff("gp", "A81002");
    let r = w.get(
        &stranger,
        "/fhir/Organization?_id=org-a81001&_revinclude=Patient:general-practitioner&_revinclude=Encounter:service-provider",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(entries(&r.json(), "include").is_empty(), "{}", r.body);
}

#[test]
fn includes_keep_what_the_view_shows() {
    let w = World::new("includes-view");
    let cw = w.staff("care-worker", "CH001");
    let visible = strings(&[
        "Encounter/enc-gp-2",
        "Encounter/enc-gp-3",
        "Encounter/enc-gp-4",
        "Encounter/enc-imp",
    ]);
    let b = w
        .get(&cw, "/fhir/Encounter?patient=p1&_include=Encounter:patient")
        .json();
    assert_eq!(entries(&b, "match"), visible);
    for path in [
        "/fhir/Patient?_id=p1&_revinclude=Encounter:patient",
        "/fhir/Patient?_revinclude=Encounter:patient",
    ] {
        let b = w.get(&cw, path).json();
        assert_eq!(entries(&b, "include"), visible, "{path}");
    }
}

#[test]
fn everything_includes_nothing_referenced_only_by_withheld_items() {
    let w = World::new("everything-includes");
    for t in [
        w.staff("hospital-clinician", "RXX01"),
        w.staff("care-worker", "CH001"),
    ] {
        let b = everything(&w, &t, "p1");
        assert!(
            !entries(&b, "include").contains(&"Medication/med-arv".to_owned()),
            "{:?}",
            entries(&b, "include")
        );
    }
}

#[test]
fn counts_equal_the_visible_items() {
    let w = World::new("counts");
    let cases = [
        (w.staff("gp", "A81001"), "Condition?patient=p1", 2),
        (w.staff("gp", "A81001"), "MedicationStatement?patient=p1", 3),
        (
            w.staff("hospital-clinician", "RXX01"),
            "Condition?patient=p1",
            2,
        ),
        (
            w.staff("hospital-clinician", "RXX01"),
            "MedicationStatement?patient=p1",
            2,
        ),
        (w.staff("care-worker", "CH001"), "Encounter?patient=p1", 4),
        (
            w.staff("care-worker", "CH001"),
            "MedicationStatement?patient=p1",
            1,
        ),
        (w.staff("care-worker", "CH001"), "Observation?patient=p1", 0),
        (w.patient("p1"), "DocumentReference?patient=p1", 0),
        (w.patient("p1"), "Condition?patient=p1", 3),
        (w.staff("gp", "A81001"), "Patient", 1),
        (
            w.staff("hospital-clinician", "RXX01"),
            "Patient?name=Alpha",
            1,
        ),
    ];
    for (t, path, expected) in cases {
        let path = format!("/fhir/{path}");
        let shown = w.all_pages(&t, &path);
        assert_eq!(shown.len(), expected, "{path}: {shown:?}");
        let count = total(&w.get(&t, &with(&path, "_summary=count")));
        assert_eq!(count as usize, expected, "{path} _summary=count");
        let accurate = total(&w.get(&t, &with(&path, "_total=accurate")));
        assert_eq!(accurate as usize, expected, "{path} _total=accurate");
    }
}

#[test]
fn another_persons_items_neither_count_nor_match() {
    let w = World::new("other-person");
    for t in [
        w.staff("gp", "A81001"),
        w.staff("hospital-clinician", "RXX01"),
    ] {
        for path in [
            "/fhir/Patient/p1/Observation",
            "/fhir/Observation?performer=Patient/p1",
            "/fhir/Observation?patient=p1",
        ] {
            let shown = w.all_pages(&t, path);
            assert!(!shown.contains(&"Observation/obs-p2".to_owned()));
            let count = total(&w.get(&t, &with(path, "_summary=count")));
            assert_eq!(count as usize, shown.len(), "{path} _summary=count");
            let accurate = total(&w.get(&t, &with(path, "_total=accurate")));
            assert_eq!(accurate as usize, shown.len(), "{path} _total=accurate");
        }
        assert_hides(
            &w.get(
                &t,
                "/fhir/Patient?_id=p1&_has:Observation:performer:code=4548-4",
            ),
            "Patient/p1",
        );
        for path in [
            "/fhir/Observation?patient=p1&has-member:Observation.subject=Patient/p2",
            "/fhir/Observation?patient=p1&has-member:Observation.code=4548-4",
        ] {
            assert_hides(&w.get(&t, path), "Observation/obs-panel");
        }
    }
}

#[test]
fn population_search_lists_related_people_only() {
    let w = World::new("population");
    let cases = [
        (w.staff("gp", "A81001"), vec!["Patient/p1"]),
        (w.staff("gp", "A81002"), vec!["Patient/p2"]),
        (w.staff("hospital-clinician", "RXX01"), vec!["Patient/p1"]),
        (w.staff("care-worker", "CH001"), vec!["Patient/p1"]),
        (w.staff("community-clinician", "ZZZ99"), vec![]),
    ];
    for (t, expected) in cases {
        for path in [
            "/fhir/Patient",
            "/fhir/Patient?gender=female,male",
            "/fhir/Patient?_sort=name&_count=1",
        ] {
            let mut shown = w.all_pages(&t, path);
            shown.sort();
            assert_eq!(shown, strings(&expected), "{path}");
        }
        let beta = w.all_pages(&t, "/fhir/Patient?name=Beta");
        let expected_beta: Vec<&str> = expected
            .iter()
            .copied()
            .filter(|k| *k == "Patient/p2")
            .collect();
        assert_eq!(beta, expected_beta);
    }
    // Break-glass adds the one person, for the one user.
    let gp = w.staff("gp", "A81002");
    assert_eq!(w.break_glass(&gp, "p1").status, 200);
    let mut shown = w.all_pages(&gp, "/fhir/Patient");
    shown.sort();
    assert_eq!(shown, strings(&["Patient/p1", "Patient/p2"]));
    let colleague = w.user("gp-a81002-colleague", "gp", "A81002");
    assert_eq!(w.all_pages(&colleague, "/fhir/Patient"), vec!["Patient/p2"]);
}

#[test]
fn sorting_and_paging_show_only_visible_items() {
    let w = World::new("paging");
    let cw = w.staff("care-worker", "CH001");
    assert_eq!(
        w.all_pages(&cw, "/fhir/Encounter?patient=p1&_sort=-date&_count=1"),
        vec![
            "Encounter/enc-gp-4",
            "Encounter/enc-gp-3",
            "Encounter/enc-imp",
            "Encounter/enc-gp-2",
        ]
    );
    assert_eq!(
        w.all_pages(&cw, "/fhir/Encounter?patient=p1&_sort=date&_count=3"),
        vec![
            "Encounter/enc-gp-2",
            "Encounter/enc-imp",
            "Encounter/enc-gp-3",
            "Encounter/enc-gp-4",
        ]
    );
    let h = w.staff("hospital-clinician", "RXX01");
    let mut shown = w.all_pages(&h, "/fhir/Condition?patient=p1&_sort=code&_count=1");
    shown.sort();
    assert_eq!(
        shown,
        strings(&["Condition/cond-active", "Condition/cond-psy"])
    );
    let shown = w.all_pages(
        &h,
        "/fhir/Observation?patient=p1&_sort=-date&_count=1&category=laboratory",
    );
    assert_eq!(shown, vec!["Observation/obs-lab", "Observation/obs-panel"]);
}

#[test]
fn criteria_on_stripped_elements_reveal_nothing() {
    let w = World::new("stripped");
    let cw = w.staff("care-worker", "CH001");
    for path in [
        "/fhir/Encounter?patient=p1&reason-code=38341003",
        "/fhir/Encounter?patient=p1&service-provider=Organization/org-a81001",
        "/fhir/Patient?_id=p1&_has:Encounter:patient:reason-code=38341003",
    ] {
        let r = w.get(&cw, path);
        if r.status == 200 {
            assert!(entries(&r.json(), "match").is_empty(), "{path}: {}", r.body);
        } else {
            assert!(matches!(r.status, 400 | 403), "{path}: {}", r.body);
        }
    }
}

#[test]
fn shaping_parameters_do_not_restore_stripped_elements() {
    let w = World::new("shaping");
    let cw = w.staff("care-worker", "CH001");
    for path in [
        "/fhir/AllergyIntolerance?patient=p1&_elements=note,text",
        "/fhir/AllergyIntolerance?patient=p1&_summary=text",
        "/fhir/AllergyIntolerance?patient=p1&_summary=false",
        "/fhir/Patient/p1/AllergyIntolerance?_elements=note",
    ] {
        let r = w.get(&cw, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(!r.body.contains("Private note"), "{path}: {}", r.body);
        assert!(
            !r.body.contains("Penicillin allergy</div>"),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn history_does_not_reveal_sealed_items() {
    let w = World::new("history");
    let h = w.staff("hospital-clinician", "RXX01");
    for path in [
        "/fhir/Condition/cond-hiv",
        "/fhir/Condition/cond-hiv/_history",
        "/fhir/Condition/cond-hiv/_history/1",
        "/fhir/Condition/_history",
        "/fhir/_history",
        "/fhir/Patient/p1/Condition?code=86406008",
        "/fhir?_type=Condition&patient=p1",
        "/fhir?_type=Condition,Observation&patient=p1",
    ] {
        let r = w.get(&h, path);
        assert!(
            !r.body.contains("Human immunodeficiency"),
            "{path}: {}",
            r.body
        );
        assert_hides(&r, "Condition/cond-hiv");
    }
    let stranger = w.staff("gp", "A81002");
    assert_forbidden(
        &w.get(&stranger, "/fhir/Condition/cond-hiv/_history"),
        "no-relationship",
    );
}

#[test]
fn batch_entries_are_decided_like_single_requests() {
    let w = World::new("batch");
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"request": {"method": "GET", "url": "Condition/cond-hiv"}},
        {"request": {"method": "GET", "url": "Condition?patient=p1"}},
    ]});
    let h = w.staff("hospital-clinician", "RXX01");
    let r = w.send(&h, "POST", "/fhir", &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Alpha"), "the hospital may see P1");
    assert!(!r.body.contains("86406008"), "{}", r.body);
    let stranger = w.staff("gp", "A81002");
    let r = w.send(&stranger, "POST", "/fhir", &batch);
    assert_eq!(r.status, 200, "{}", r.body);
    for e in r.json()["entry"].as_array().unwrap() {
        let status = e["response"]["status"].as_str().unwrap();
        assert!(status.starts_with("403"), "{e}");
        assert!(e.get("resource").is_none(), "{e}");
    }
    assert!(!r.body.contains("Alpha") && !r.body.contains("86406008"));
}

// ---------------------------------------------------------------------------
// Hand-made JWS pieces (for forged tokens): base64url, SHA-256, HMAC.

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn b64url_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {s}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, c)| n | (u32::from(value(*c)) << (18 - 6 * i)));
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().unwrap());
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let mut v = h;
        for (k, wi) in K.iter().zip(w) {
            let [a, b, c, d, e, f, g, hh] = v;
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(*k)
                .wrapping_add(wi);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            v = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
        }
        for (x, y) in h.iter_mut().zip(v) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&sha256(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = pad(0x36);
    inner.extend_from_slice(message);
    let mut outer = pad(0x5c);
    outer.extend_from_slice(&sha256(&inner));
    sha256(&outer)
}

#[test]
fn forging_helpers_are_right() {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(
        hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // RFC 4231, test case 2.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(b64url(b"hello?>"), "aGVsbG8_Pg");
    assert_eq!(b64url_decode("aGVsbG8_Pg"), b"hello?>");
}
