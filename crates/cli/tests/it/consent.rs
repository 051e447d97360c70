//! Consent, the data controller's sharing settings and alerts, end to end
//! (issue #5): one scenario per objection GPs raise, against a running
//! server.
//!
//! The site: practice G81001 (whose data controller is the practice's IG
//! lead), a local hospital RLOC1, an out-of-area hospital ROUT1, care home
//! CH001. Person `pc1` is registered at G81001, lives at CH001 (an active
//! EpisodeOfCare), is an inpatient at both hospitals (in-progress
//! encounters), has a mental-health diagnosis the practice recorded
//! (sealed, PSY), an immunisation and a caregiver `rp1`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::access::{concept, iso, put, reference};
use crate::client::{Reply, Server, mint, mint_proxy, now_secs, request, request_as, temp_dir};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const SNOMED: &str = "http://snomed.info/sct";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const ORG_TYPE: &str = "https://fhir.sharedcare.org.uk/CodeSystem/organisation-type";
const CONSENT_CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/consent-category";
const LEGAL_BASIS: &str = "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis";
const DAY: i64 = 86_400;
const PRACTICE: &str = "G81001";

struct Site {
    server: Server,
    dir: PathBuf,
}

impl Site {
    fn new(name: &str) -> Site {
        let dir = temp_dir(&format!("consent-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        // This integrated care system: the practice, the local hospital and
        // the care home (not ROUT1).
        let config = dir.join("sharedcare.toml");
        std::fs::write(
            &config,
            "[policy]\nlocal_organisations = [\"G81001\", \"RLOC1\", \"CH001\"]\n",
        )
        .unwrap();
        let server = Server::start(&dir, &["--config", config.to_str().unwrap()]);
        let site = Site { server, dir };
        let r = request(
            site.addr(),
            "POST",
            "/fhir",
            Some(&population(now_secs()).to_string()),
        )
        .unwrap();
        assert_eq!(r.status, 200, "the site loads: {}", r.body);
        site
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    fn staff(&self, role: &str, org: &str) -> String {
        mint(
            &self.dir,
            self.addr(),
            &format!("{role}-{org}"),
            role,
            Some(org),
            Some("NMC:12A3456B"),
            None,
            "user/*.cruds",
        )
    }

    fn data_controller(&self) -> String {
        mint(
            &self.dir,
            self.addr(),
            "ig-lead-G81001",
            "data-controller",
            Some(PRACTICE),
            None,
            None,
            "user/*.rs",
        )
    }

    fn get(&self, token: &str, path: &str) -> Reply {
        request_as(self.addr(), "GET", path, None, Some(token)).unwrap()
    }

    fn send(&self, token: &str, method: &str, path: &str, body: &Value) -> Reply {
        let body = body.to_string();
        request_as(self.addr(), method, path, Some(&body), Some(token)).unwrap()
    }

    /// The practice's alerts of one kind (their patient ids).
    fn alerts(&self, kind: &str) -> Vec<String> {
        let r = self.get(&self.data_controller(), "/fhir/$alerts");
        assert_eq!(r.status, 200, "{}", r.body);
        let b = r.json();
        b["entry"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| e["resource"]["category"][0]["coding"][0]["code"].as_str() == Some(kind))
            .map(|e| e["resource"].to_string())
            .collect()
    }

    fn set_sharing(&self, params: Value) -> Reply {
        self.send(
            &self.data_controller(),
            "POST",
            "/fhir/$sharing",
            &json!({"resourceType": "Parameters", "parameter": params}),
        )
    }

    /// Writes a Consent as the practice's GP.
    fn consent(&self, id: &str, body: Value) {
        let mut body = body;
        body["resourceType"] = json!("Consent");
        body["id"] = json!(id);
        body["patient"] = reference("Patient/pc1");
        body["dateTime"] = json!(iso(now_secs() - DAY));
        if body.get("scope").is_none() {
            body["scope"] = concept(
                "http://terminology.hl7.org/CodeSystem/consentscope",
                "patient-privacy",
                "Privacy Consent",
            );
        }
        let r = self.send(
            &self.staff("gp", PRACTICE),
            "PUT",
            &format!("/fhir/Consent/{id}"),
            &body,
        );
        assert!(
            r.status == 200 || r.status == 201,
            "Consent/{id}: {} {}",
            r.status,
            r.body
        );
    }

    /// The number of matches of a search (its `total` when given, else
    /// the matches on its one page).
    fn total(&self, token: &str, path: &str) -> u64 {
        let r = self.get(token, path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let b = r.json();
        b["total"].as_u64().unwrap_or_else(|| {
            b["entry"].as_array().map_or(0, |e| {
                e.iter().filter(|e| e["search"]["mode"] == "match").count() as u64
            })
        })
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.server.child.kill();
        let _ = self.server.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn organization(id: &str, code: &str, kind: &str, name: &str) -> Value {
    put(
        "Organization",
        id,
        None,
        json!({"identifier": [{"system": ODS, "value": code}], "name": name,
            "type": [{"coding": [{"system": ORG_TYPE, "code": kind}]}]}),
    )
}

fn inpatient(id: &str, org: &str, now: i64) -> Value {
    put(
        "Encounter",
        id,
        None,
        json!({"status": "in-progress", "class": {"system": ACT_CODE, "code": "IMP"},
            "subject": reference("Patient/pc1"),
            "serviceProvider": {"identifier": {"system": ODS, "value": org}},
            "period": {"start": iso(now - DAY)}}),
    )
}

fn population(now: i64) -> Value {
    let entries = vec![
        organization("org-g81001", PRACTICE, "gp-practice", "Riverside Surgery"),
        organization("org-rloc1", "RLOC1", "acute-trust", "County Hospital"),
        organization("org-rout1", "ROUT1", "acute-trust", "Faraway Hospital"),
        organization("org-ch001", "CH001", "care-home", "Elm Care Home"),
        put(
            "Patient",
            "pc1",
            Some(PRACTICE),
            json!({"name": [{"family": "Gamma", "given": ["Cal"]}], "gender": "male",
                "birthDate": "1938-07-09",
                "generalPractitioner": [{"identifier": {"system": ODS, "value": PRACTICE}}]}),
        ),
        put(
            "EpisodeOfCare",
            "eoc-pc1",
            Some("CH001"),
            json!({"status": "active", "patient": reference("Patient/pc1"),
                "managingOrganization": {"identifier": {"system": ODS, "value": "CH001"}},
                "period": {"start": iso(now - 200 * DAY)}}),
        ),
        inpatient("enc-local", "RLOC1", now),
        inpatient("enc-away", "ROUT1", now),
        put(
            "Condition",
            "cond-psy",
            Some(PRACTICE),
            json!({"clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                "code": concept(SNOMED, "35489007", "Depressive disorder"),
                "subject": reference("Patient/pc1"),
                "meta": {"tag": [{"system": "https://fhir.sharedcare.org.uk/CodeSystem/recorded-by", "code": PRACTICE}],
                    "security": [{"system": ACT_CODE, "code": "PSY"}]}}),
        ),
        put(
            "Immunization",
            "imm-flu",
            Some(PRACTICE),
            json!({"status": "completed", "patient": reference("Patient/pc1"),
                "vaccineCode": concept(SNOMED, "1181000221105", "Influenza vaccine"),
                "occurrenceDateTime": iso(now - 30 * DAY)}),
        ),
        put(
            "RelatedPerson",
            "rp1",
            Some(PRACTICE),
            json!({"patient": reference("Patient/pc1"), "name": [{"family": "Gamma", "given": ["Dee"]}]}),
        ),
    ];
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

#[test]
fn a_new_organisations_first_access_raises_exactly_one_alert() {
    let site = Site::new("new-org");
    let before = site.alerts("new-organisation");
    assert!(before.is_empty(), "{before:?}");
    let worker = site.staff("care-worker", "CH001");
    for _ in 0..3 {
        assert_eq!(site.get(&worker, "/fhir/Patient/pc1").status, 200);
    }
    let after = site.alerts("new-organisation");
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(after[0].contains("CH001"), "{}", after[0]);
    // The practice's own reads raise nothing.
    let gp = site.staff("gp", PRACTICE);
    assert_eq!(site.get(&gp, "/fhir/Patient/pc1").status, 200);
    assert_eq!(site.alerts("new-organisation").len(), 1);
}

#[test]
fn a_practice_on_local_only_blocks_an_out_of_area_hospital() {
    let site = Site::new("local-only");
    let away = site.staff("hospital-clinician", "ROUT1");
    let local = site.staff("hospital-clinician", "RLOC1");
    assert_eq!(site.get(&away, "/fhir/Patient/pc1").status, 200, "before");
    let r = site.set_sharing(json!([{"name": "scope", "valueCode": "local"}]));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = site.get(&away, "/fhir/Patient/pc1");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("sharing-local-only"), "{}", r.body);
    assert_eq!(
        site.total(&away, "/fhir/Patient?_summary=count"),
        0,
        "population searches leave the practice's patients out"
    );
    assert_eq!(
        site.get(&away, "/fhir/Immunization?patient=pc1").status,
        403
    );
    assert_eq!(site.get(&local, "/fhir/Patient/pc1").status, 200);
    assert_eq!(site.total(&local, "/fhir/Patient?_summary=count"), 1);
    // The settings read back as set; only the data controller may see them.
    let r = site.get(&site.data_controller(), "/fhir/$sharing");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"valueCode\":\"local\""), "{}", r.body);
    assert_eq!(site.get(&local, "/fhir/$sharing").status, 403);
    // A deny-list and the switch work the same way.
    let r = site.set_sharing(json!([{"name": "deny", "valueString": "RLOC1"}]));
    assert_eq!(r.status, 200);
    assert_eq!(
        site.get(&away, "/fhir/Patient/pc1").status,
        200,
        "scope reset"
    );
    assert!(
        site.get(&local, "/fhir/Patient/pc1")
            .body
            .contains("sharing-denied")
    );
    site.set_sharing(json!([{"name": "sharing-out", "valueBoolean": false}]));
    let ch = site.staff("care-worker", "CH001");
    assert!(
        site.get(&ch, "/fhir/Patient/pc1")
            .body
            .contains("sharing-off")
    );
    // The practice itself is never kept out.
    let gp = site.staff("gp", PRACTICE);
    assert_eq!(site.get(&gp, "/fhir/Patient/pc1").status, 200);
}

#[test]
fn verify_first_needs_the_practices_approval() {
    let site = Site::new("verify");
    let away = site.staff("hospital-clinician", "ROUT1");
    site.set_sharing(json!([{"name": "verify-first", "valueString": "ROUT1"}]));
    let r = site.get(&away, "/fhir/Patient/pc1");
    assert_eq!(r.status, 403);
    assert!(r.body.contains("approval-required"), "{}", r.body);
    let settings = site.get(&site.data_controller(), "/fhir/$sharing").body;
    assert!(
        settings.contains("{\"name\":\"pending\",\"valueString\":\"ROUT1\"}"),
        "{settings}"
    );
    assert_eq!(site.alerts("approval-request").len(), 1);
    let r = site.set_sharing(json!([{"name": "approve", "valueString": "ROUT1"}]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("verify-first"),
        "decisions keep the settings"
    );
    assert_eq!(site.get(&away, "/fhir/Patient/pc1").status, 200);
    site.set_sharing(json!([{"name": "reject", "valueString": "ROUT1"}]));
    assert!(
        site.get(&away, "/fhir/Patient/pc1")
            .body
            .contains("sharing-rejected")
    );
}

#[test]
fn a_dissenting_patient_is_invisible_to_their_care_home_until_break_glass() {
    let site = Site::new("dissent");
    let nurse = site.staff("care-nurse", "CH001");
    assert_eq!(site.get(&nurse, "/fhir/Patient/pc1").status, 200, "before");
    site.consent(
        "dissent",
        json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": "share-dissent"}]}],
            "provision": {"type": "deny"}}),
    );
    let r = site.get(&nurse, "/fhir/Patient/pc1");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("dissent") && r.body.contains("break-glass"),
        "{}",
        r.body
    );
    assert_eq!(site.total(&nurse, "/fhir/Patient?_summary=count"), 0);
    assert_eq!(
        site.get(&nurse, "/fhir/Immunization?patient=pc1").status,
        403
    );
    let worker = site.staff("care-worker", "CH001");
    assert_eq!(site.get(&worker, "/fhir/Patient/pc1").status, 403);
    // The practice still sees its patient.
    assert_eq!(
        site.get(&site.staff("gp", PRACTICE), "/fhir/Patient/pc1")
            .status,
        200
    );
    assert!(site.alerts("break-glass").is_empty());
    let r = site.send(
        &nurse,
        "POST",
        "/fhir/Patient/pc1/$break-glass",
        &json!({"resourceType": "Parameters", "parameter": [
            {"name": "reason", "valueCode": "ETREAT"},
            {"name": "reasonText", "valueString": "Collapsed; paramedics need the medication list"}]}),
    );
    assert!(
        r.status == 200 || r.status == 201,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(site.get(&nurse, "/fhir/Patient/pc1").status, 200);
    assert_eq!(site.alerts("break-glass").len(), 1, "the practice is told");
    // The consent change itself was raised too.
    assert!(!site.alerts("consent-change").is_empty());
    // A dissent aimed at care homes (a type) keeps CH001 out as well, but
    // not the hospital.
    site.consent(
        "dissent",
        json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": "share-dissent"}]}],
            "provision": {"type": "deny", "extension": [{"url": "https://fhir.sharedcare.org.uk/StructureDefinition/organisation-type",
                "valueCoding": {"system": ORG_TYPE, "code": "care-home"}}]}}),
    );
    assert_eq!(site.get(&worker, "/fhir/Patient/pc1").status, 403);
    let hospital = site.staff("hospital-clinician", "RLOC1");
    assert_eq!(site.get(&hospital, "/fhir/Patient/pc1").status, 200);
}

#[test]
fn a_proxy_sees_only_their_scopes() {
    let site = Site::new("proxy");
    let proxy = mint_proxy(&site.dir, site.addr(), "rp1", "pc1");
    let r = site.get(&proxy, "/fhir/Patient/pc1");
    assert_eq!(r.status, 403, "no consent yet: {}", r.body);
    let grant = |basis: &str| {
        json!({"status": "active",
            "category": [{"coding": [{"system": ACT_CODE, "code": "INFA"}]}],
            "policyRule": {"coding": [{"system": LEGAL_BASIS, "code": basis}]},
            "provision": {"type": "permit", "period": {"start": iso(now_secs() - DAY)},
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PROV"}]},
                    "reference": {"reference": "RelatedPerson/rp1"}}],
                "action": [{"coding": [{"system": "https://fhir.nhs.uk/England/CodeSystem/England-VRSAccessLevel", "code": "VACC"}]}]}})
    };
    // Without a recognised legal basis, a consent grants nothing.
    site.consent("proxy", grant("friendly-neighbour"));
    assert_eq!(site.get(&proxy, "/fhir/Patient/pc1").status, 403);
    site.consent("proxy", grant("lasting-power-of-attorney"));
    assert_eq!(site.get(&proxy, "/fhir/Patient/pc1").status, 200);
    assert_eq!(site.total(&proxy, "/fhir/Immunization?patient=pc1"), 1);
    assert_eq!(site.get(&proxy, "/fhir/Condition?patient=pc1").status, 403);
    assert_eq!(site.get(&proxy, "/fhir/Encounter?patient=pc1").status, 403);
    // Withdrawn: gone on the next request.
    let mut withdrawn = grant("lasting-power-of-attorney");
    withdrawn["status"] = json!("inactive");
    site.consent("proxy", withdrawn);
    assert_eq!(
        site.get(&proxy, "/fhir/Immunization?patient=pc1").status,
        403
    );
}

#[test]
fn explicit_consent_opens_a_sealed_item_to_a_named_team_until_withdrawn() {
    let site = Site::new("sensitive");
    let nurse = site.staff("care-nurse", "CH001");
    let conditions = |token: &str| site.total(token, "/fhir/Condition?patient=pc1");
    assert_eq!(site.get(&nurse, "/fhir/Condition/cond-psy").status, 404);
    assert_eq!(conditions(&nurse), 0);
    let consent = |status: &str| {
        json!({"status": status,
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": "sensitive-share"}]}],
            "provision": {"type": "permit",
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                    "reference": {"identifier": {"system": ODS, "value": "CH001"}}}],
                "securityLabel": [{"system": ACT_CODE, "code": "PSY"}]}})
    };
    site.consent("share-psy", consent("active"));
    assert_eq!(site.get(&nurse, "/fhir/Condition/cond-psy").status, 200);
    assert_eq!(conditions(&nurse), 1);
    // Nobody else gains from it.
    let hospital = site.staff("hospital-clinician", "RLOC1");
    assert_eq!(site.get(&hospital, "/fhir/Condition/cond-psy").status, 404);
    assert_eq!(conditions(&hospital), 0);
    site.consent("share-psy", consent("inactive"));
    assert_eq!(site.get(&nurse, "/fhir/Condition/cond-psy").status, 404);
    assert_eq!(conditions(&nurse), 0);
}

#[test]
fn the_practice_sets_its_refusal_burst_threshold() {
    let site = Site::new("burst");
    let r = site.set_sharing(json!([
        {"name": "deny", "valueString": "ROUT1"},
        {"name": "denied-burst-threshold", "valueInteger": 2}
    ]));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body
            .contains("{\"name\":\"denied-burst-threshold\",\"valueInteger\":2}"),
        "{}",
        r.body
    );
    let away = site.staff("hospital-clinician", "ROUT1");
    assert_eq!(site.get(&away, "/fhir/Patient/pc1").status, 403);
    assert!(
        site.alerts("denied-burst").is_empty(),
        "one refusal is no burst"
    );
    assert_eq!(site.get(&away, "/fhir/Patient/pc1").status, 403);
    assert_eq!(site.alerts("denied-burst").len(), 1);
    let bad = site.set_sharing(json!([{"name": "denied-burst-threshold", "valueInteger": 1}]));
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn explicit_consent_can_name_a_care_team() {
    let site = Site::new("team");
    // The person's mental health care team: the practice and the local
    // hospital.
    let team = json!({"resourceType": "CareTeam", "id": "ct-mh", "status": "active",
        "subject": reference("Patient/pc1"),
        "participant": [{"member": {"identifier": {"system": ODS, "value": "RLOC1"}}},
                        {"member": {"identifier": {"system": ODS, "value": PRACTICE}}}]});
    let r = request(
        site.addr(),
        "PUT",
        "/fhir/CareTeam/ct-mh",
        Some(&team.to_string()),
    )
    .unwrap();
    assert!(r.status == 200 || r.status == 201, "{}", r.body);
    let hospital = site.staff("hospital-clinician", "RLOC1");
    let nurse = site.staff("care-nurse", "CH001");
    assert_eq!(site.get(&hospital, "/fhir/Condition/cond-psy").status, 404);
    site.consent(
        "share-team",
        json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": "sensitive-share"}]}],
            "provision": {"type": "permit",
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                    "reference": {"reference": "CareTeam/ct-mh"}}],
                "securityLabel": [{"system": ACT_CODE, "code": "PSY"}]}}),
    );
    assert_eq!(site.get(&hospital, "/fhir/Condition/cond-psy").status, 200);
    assert_eq!(
        site.get(&nurse, "/fhir/Condition/cond-psy").status,
        404,
        "not in the team"
    );
}
