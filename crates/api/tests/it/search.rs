//! The search conformance suite: every parameter type, modifier, prefix and
//! result parameter the search issue names, on every backend. The fixture
//! is small and hand-made; every expected result below was worked out by
//! hand from the FHIR R4 search specification, not by running this server.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::harness::{BASE, TestApp, apps};

const LOINC: &str = "http://loinc.org";
const UCUM: &str = "http://unitsofmeasure.org";
const NHS: &str = "https://fhir.nhs.uk/Id/nhs-number";

fn put(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"resource": resource, "request": {"method": "PUT", "url": url}})
}

fn loinc(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": LOINC, "code": code, "display": display}]})
}

fn qty(value: f64, code: &str) -> Value {
    json!({"value": value, "unit": code, "system": UCUM, "code": code})
}

async fn load(t: &TestApp) {
    let entries = vec![
        put(
            json!({"resourceType": "Organization", "id": "org1", "name": "Riverside Medical Practice",
            "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "Y00001"}]}),
        ),
        put(json!({"resourceType": "Patient", "id": "p1",
            "meta": {"profile": ["http://example.org/StructureDefinition/my-patient"], "source": "urn:system:gp"},
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": NHS, "value": "9990000018"}],
            "name": [{"family": "Smith", "given": ["John"]}], "gender": "male", "birthDate": "1980-05-15",
            "address": [{"city": "Leeds"}], "managingOrganization": {"reference": "Organization/org1"}})),
        put(
            json!({"resourceType": "Patient", "id": "p2", "identifier": [{"system": NHS, "value": "9990000026"}],
            "name": [{"family": "Brontë", "given": ["Émile"]}], "gender": "female", "birthDate": "1990-02-01",
            "address": [{"city": "York"}]}),
        ),
        put(
            json!({"resourceType": "Patient", "id": "p3", "name": [{"family": "Smithson"}], "gender": "other",
            "birthDate": "2001-01", "active": false}),
        ),
        put(
            json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/p1"}, "serviceProvider": {"reference": "Organization/org1"},
            "period": {"start": "2015-02-07T13:00:00Z", "end": "2015-02-07T14:00:00Z"}}),
        ),
        put(
            json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": loinc("8867-4", "Heart rate"),
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
            "effectiveDateTime": "2015-02-07T13:28:17Z", "valueQuantity": qty(70.0, "/min")}),
        ),
        put(
            json!({"resourceType": "Observation", "id": "o2", "status": "final", "code": loinc("8480-6", "Systolic blood pressure"),
            "meta": {"tag": [{"system": "http://example.org/tags", "code": "flagged"}]},
            "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2016-06-01", "valueQuantity": qty(120.0, "mm[Hg]")}),
        ),
        put(
            json!({"resourceType": "Observation", "id": "o3", "status": "amended", "code": loinc("8867-4", "Heart rate"),
            "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]},
            "subject": {"reference": "Patient/p1"}, "effectivePeriod": {"start": "2014-01-01", "end": "2014-12-31"},
            "valueQuantity": qty(99.5, "/min")}),
        ),
        put(
            json!({"resourceType": "Observation", "id": "o4", "status": "final", "code": loinc("85354-9", "Blood pressure panel"),
            "subject": {"reference": "Patient/p2"}, "effectiveDateTime": "2017-03-03",
            "component": [
                {"code": loinc("8480-6", "Systolic blood pressure"), "valueQuantity": qty(140.0, "mm[Hg]")},
                {"code": loinc("8462-4", "Diastolic blood pressure"), "valueQuantity": qty(90.0, "mm[Hg]")}]}),
        ),
        put(
            json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}, "onsetDateTime": "2010"}),
        ),
        put(
            json!({"resourceType": "RiskAssessment", "id": "r1", "status": "final", "subject": {"reference": "Patient/p1"},
            "prediction": [{"probabilityDecimal": 0.25}]}),
        ),
        put(
            json!({"resourceType": "ValueSet", "id": "vs1", "status": "active", "url": "http://example.org/fhir/ValueSet/abc"}),
        ),
    ];
    let r = t
        .post(
            "/fhir",
            &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}: {}", t.name, r.text);
}

/// The ids a search returns as matches (any order), asserting success.
async fn ids(t: &TestApp, query: &str) -> BTreeSet<String> {
    let r = t.get(&format!("/fhir/{query}")).await;
    assert_eq!(r.status, 200, "{}: {query}: {}", t.name, r.text);
    let b = r.json();
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The match ids in order.
async fn ordered(t: &TestApp, query: &str) -> Vec<String> {
    let b = t.get(&format!("/fhir/{query}")).await.json();
    b["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// (query, expected matches), all worked out by hand.
const CASES: &[(&str, &[&str])] = &[
    // string: prefix, case- and accent-insensitive; :exact; :contains
    ("Patient?name=smi", &["p1", "p3"]),
    ("Patient?family=SMITH", &["p1", "p3"]),
    ("Patient?family:exact=Smith", &["p1"]),
    ("Patient?family:exact=smith", &[]),
    ("Patient?family:contains=ith", &["p1", "p3"]),
    ("Patient?given=emile", &["p2"]),
    ("Patient?family=bronte", &["p2"]),
    ("Patient?address-city=leeds", &["p1"]),
    // token: code, system|code, |code, system|, :not, :text, :of-type, :missing
    ("Patient?gender=male", &["p1"]),
    ("Patient?gender:not=male", &["p2", "p3"]),
    (
        "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9990000018",
        &["p1"],
    ),
    ("Patient?identifier=|9990000018", &[]),
    (
        "Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|",
        &["p1", "p2"],
    ),
    (
        "Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|9990000018",
        &["p1"],
    ),
    ("Patient?active:missing=true", &["p1", "p2"]),
    ("Patient?active:missing=false", &["p3"]),
    ("Observation?code=http://loinc.org|8867-4", &["o1", "o3"]),
    ("Observation?code=8867-4", &["o1", "o3"]),
    ("Observation?code:text=heart", &["o1", "o3"]),
    (
        "Observation?status=final,amended",
        &["o1", "o2", "o3", "o4"],
    ),
    // reference: id, Type/id, :Type, chained, multi-level chains
    ("Observation?subject=Patient/p1", &["o1", "o3"]),
    ("Observation?subject=p1", &["o1", "o3"]),
    ("Observation?subject:Patient=p1", &["o1", "o3"]),
    ("Observation?patient=p2", &["o2", "o4"]),
    ("Observation?encounter=Encounter/e1", &["o1"]),
    ("Patient?organization=Organization/org1", &["p1"]),
    ("Observation?subject:Patient.name=bronte", &["o2", "o4"]),
    ("Observation?patient.name=smith", &["o1", "o3"]),
    (
        "Observation?subject:Patient.organization.name=riverside",
        &["o1", "o3"],
    ),
    (
        "Observation?encounter.service-provider.name=riverside",
        &["o1"],
    ),
    // date: prefixes with implicit ranges by precision
    ("Observation?date=2015", &["o1"]),
    ("Observation?date=ge2015", &["o1", "o2", "o4"]),
    ("Observation?date=lt2015", &["o3"]),
    ("Observation?date=2015-02-07T13:28:17Z", &["o1"]),
    ("Observation?date=sa2015", &["o2", "o4"]),
    ("Observation?date=eb2015", &["o3"]),
    ("Observation?date=ne2015", &["o2", "o3", "o4"]),
    ("Observation?date=le2014-06", &["o3"]),
    ("Observation?date=gt2016-06-01", &["o4"]),
    ("Patient?birthdate=1980-05-15", &["p1"]),
    ("Patient?birthdate=gt1985", &["p2", "p3"]),
    ("Encounter?date=2015-02-07", &["e1"]),
    // number
    ("RiskAssessment?probability=0.25", &["r1"]),
    ("RiskAssessment?probability=gt0.2", &["r1"]),
    ("RiskAssessment?probability=lt0.2", &[]),
    // quantity: prefixes, system|code units
    ("Observation?value-quantity=70", &["o1"]),
    ("Observation?value-quantity=gt100", &["o2"]),
    (
        "Observation?value-quantity=lt100|http://unitsofmeasure.org|/min",
        &["o1", "o3"],
    ),
    ("Observation?value-quantity=120||mm[Hg]", &["o2"]),
    ("Observation?component-value-quantity=gt130", &["o4"]),
    // uri: exact, :below, :above
    (
        "ValueSet?url=http://example.org/fhir/ValueSet/abc",
        &["vs1"],
    ),
    ("ValueSet?url:below=http://example.org/fhir", &["vs1"]),
    (
        "ValueSet?url:above=http://example.org/fhir/ValueSet/abc/extra",
        &["vs1"],
    ),
    ("ValueSet?url=http://example.org/fhir", &[]),
    // composite
    (
        "Observation?code-value-quantity=http://loinc.org|8867-4$gt80",
        &["o3"],
    ),
    ("Observation?code-value-quantity=8867-4$70", &["o1"]),
    (
        "Observation?component-code-value-quantity=http://loinc.org|8480-6$gt130",
        &["o4"],
    ),
    (
        "Observation?component-code-value-quantity=http://loinc.org|8462-4$gt130",
        &[],
    ),
    // special and common parameters
    ("Observation?_id=o1,o2", &["o1", "o2"]),
    ("Observation?_tag=http://example.org/tags|flagged", &["o2"]),
    (
        "Observation?_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        &["o3"],
    ),
    (
        "Patient?_profile=http://example.org/StructureDefinition/my-patient",
        &["p1"],
    ),
    ("Patient?_source=urn:system:gp", &["p1"]),
    ("Observation?_lastUpdated=gt2020", &["o1", "o2", "o3", "o4"]),
    ("Observation?_lastUpdated=lt2020", &[]),
    // reverse chaining, nested
    ("Patient?_has:Observation:patient:code=8480-6", &["p2"]),
    (
        "Organization?_has:Patient:organization:_has:Observation:patient:code=8867-4",
        &["org1"],
    ),
    // AND across parameters, OR within one
    ("Observation?code=8867-4&date=lt2015", &["o3"]),
    ("Observation?code=8867-4,8480-6", &["o1", "o2", "o3"]),
    ("Observation?code=8867-4&code=8480-6", &[]),
];

#[tokio::test]
async fn every_parameter_type_modifier_and_prefix() {
    for t in apps().await {
        load(&t).await;
        for (query, expected) in CASES {
            assert_eq!(ids(&t, query).await, set(expected), "{}: {query}", t.name);
        }
        // POST _search with a form body gives the same answer.
        let r = t
            .call(
                "POST",
                "/fhir/Observation/_search",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                Some("code=8867-4&date=lt2015"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["entry"][0]["resource"]["id"], "o3");
    }
}

#[tokio::test]
async fn sorting_paging_totals_and_summaries() {
    for t in apps().await {
        load(&t).await;
        // Descending by the latest date; ascending by the earliest.
        assert_eq!(
            ordered(&t, "Observation?_sort=-date").await,
            ["o4", "o2", "o1", "o3"]
        );
        assert_eq!(
            ordered(&t, "Observation?_sort=date").await,
            ["o3", "o1", "o2", "o4"]
        );
        assert_eq!(
            ordered(&t, "Observation?_sort=status,-date").await,
            ["o3", "o4", "o2", "o1"]
        );
        assert_eq!(
            ordered(&t, "Patient?_sort=birthdate").await,
            ["p1", "p2", "p3"]
        );
        // Paging with next links, in sort order, with nothing repeated or lost,
        // even when a resource is added behind the cursor meanwhile.
        let mut url = "/fhir/Observation?_sort=-date&_count=2".to_owned();
        let mut seen = vec![];
        let mut pages = 0;
        loop {
            let b = t.get(&url).await.json();
            for e in b["entry"].as_array().into_iter().flatten() {
                seen.push(e["resource"]["id"].as_str().unwrap().to_owned());
            }
            pages += 1;
            if pages == 1 {
                let newer = json!({"resourceType": "Observation", "id": "o5", "status": "final", "code": loinc("8867-4", "Heart rate"), "effectiveDateTime": "2020-01-01"});
                assert_eq!(
                    t.put("/fhir/Observation/o5", &newer.to_string())
                        .await
                        .status,
                    201
                );
            }
            let next = b["link"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["relation"] == "next")
                .map(|l| l["url"].as_str().unwrap().to_owned());
            match next {
                Some(n) => url = n.strip_prefix("http://test.local").unwrap().to_owned(),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["o4", "o2", "o1", "o3"],
            "o5 sorts before the cursor and so does not appear"
        );
        // _total and _summary=count
        let b = t
            .get("/fhir/Observation?code=8867-4&_total=accurate")
            .await
            .json();
        assert_eq!(b["total"], 3);
        let b = t
            .get("/fhir/Observation?code=8867-4&_summary=count")
            .await
            .json();
        assert_eq!(b["total"], 3);
        assert!(b.get("entry").is_none());
        // _elements keeps the named elements (and id, meta), marked SUBSETTED.
        let b = t
            .get("/fhir/Observation?_id=o1&_elements=status")
            .await
            .json();
        let o = &b["entry"][0]["resource"];
        assert_eq!(o["status"], "final");
        assert!(o.get("code").is_none() && o.get("valueQuantity").is_none());
        assert_eq!(
            o["meta"]["tag"].as_array().unwrap().last().unwrap()["code"],
            "SUBSETTED"
        );
        // _summary=true keeps summary elements only.
        let b = t.get("/fhir/Patient?_id=p1&_summary=true").await.json();
        let p = &b["entry"][0]["resource"];
        assert!(p.get("name").is_some() && p.get("birthDate").is_some());
        let b = t.get("/fhir/Observation?_id=o1&_summary=data").await.json();
        assert!(b["entry"][0]["resource"].get("text").is_none());
    }
}

#[tokio::test]
async fn include_revinclude_compartments_and_everything() {
    for t in apps().await {
        load(&t).await;
        let modes = |b: &Value| -> BTreeSet<(String, String)> {
            b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    (
                        e["search"]["mode"].as_str().unwrap_or("").to_owned(),
                        e["resource"]["id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(m, i)| ((*m).to_owned(), (*i).to_owned()))
                .collect::<BTreeSet<_>>()
        };
        let b = t
            .get("/fhir/Observation?_id=o1&_include=Observation:subject")
            .await
            .json();
        assert_eq!(modes(&b), pairs(&[("match", "o1"), ("include", "p1")]));
        let b = t.get("/fhir/Observation?_id=o1&_include=Observation:encounter&_include:iterate=Encounter:service-provider").await.json();
        assert_eq!(
            modes(&b),
            pairs(&[("match", "o1"), ("include", "e1"), ("include", "org1")])
        );
        let b = t.get("/fhir/Observation?_id=o1&_include=*").await.json();
        assert_eq!(
            modes(&b),
            pairs(&[("match", "o1"), ("include", "p1"), ("include", "e1")])
        );
        let b = t
            .get("/fhir/Patient?_id=p1&_revinclude=Observation:subject")
            .await
            .json();
        assert_eq!(
            modes(&b),
            pairs(&[("match", "p1"), ("include", "o1"), ("include", "o3")])
        );
        let b = t
            .get("/fhir/Encounter?patient=p1&_revinclude=Observation:encounter")
            .await
            .json();
        assert_eq!(modes(&b), pairs(&[("match", "e1"), ("include", "o1")]));

        // Compartment search.
        assert_eq!(ids(&t, "Patient/p1/Observation").await, set(&["o1", "o3"]));
        assert_eq!(
            ids(&t, "Patient/p1/Observation?date=2015").await,
            set(&["o1"])
        );
        assert_eq!(ids(&t, "Patient/p2/Condition").await, set(&[]));

        // $everything: the patient's compartment and what it refers to.
        let b = t.get("/fhir/Patient/p1/$everything").await.json();
        let all: BTreeSet<String> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(all, set(&["p1", "e1", "o1", "o3", "c1", "r1", "org1"]));
        let b = t
            .get("/fhir/Patient/p1/$everything?_type=Observation")
            .await
            .json();
        let obs: BTreeSet<String> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == "match")
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(obs, set(&["o1", "o3"]));
        // Paged: every page adds new resources until there is no next link.
        let mut url = "/fhir/Patient/p1/$everything?_count=2".to_owned();
        let mut matched = BTreeSet::new();
        loop {
            let b = t.get(&url).await.json();
            for e in b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["search"]["mode"] == "match")
            {
                assert!(matched.insert(e["resource"]["id"].as_str().unwrap().to_owned()));
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
        assert_eq!(matched, set(&["p1", "e1", "o1", "o3", "c1", "r1"]));
        let _ = BASE;
    }
}

#[tokio::test]
async fn strict_and_lenient_handling_and_conditionals() {
    for t in apps().await {
        load(&t).await;
        for bad in [
            "Patient?foo=bar",
            "Patient?name:below=x",
            "Observation?date=notadate",
            "Observation?value-quantity=abc",
            "Patient?_sort=foo",
        ] {
            let r = t.get(&format!("/fhir/{bad}")).await;
            assert_eq!(r.status, 400, "{bad}: {}", r.text);
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
        }
        let r = t.get("/fhir/Patient?foo=bar").await;
        assert!(
            r.text.contains("foo"),
            "the outcome names the parameter: {}",
            r.text
        );
        let r = t
            .call(
                "GET",
                "/fhir/Patient?foo=bar&gender=male",
                &[("Prefer", "handling=lenient")],
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["entry"].as_array().unwrap().len(), 1);
        // Conditional create with any criteria: one match returns it, two are 412.
        let p = json!({"resourceType": "Patient", "name": [{"family": "Smith"}], "gender": "male"})
            .to_string();
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", "family=smith&gender=male")],
                Some(&p),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["id"], "p1");
        let r = t
            .call(
                "POST",
                "/fhir/Patient",
                &[("If-None-Exist", "family=smi")],
                Some(&p),
            )
            .await;
        assert_eq!(r.status, 412);
        // Conditional update by a chained criterion.
        let r = t.put("/fhir/Observation?subject:Patient.name=bronte&code=85354-9", &json!({"resourceType": "Observation", "status": "cancelled", "code": loinc("85354-9", "Blood pressure panel")}).to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["id"], "o4");
    }
}

#[tokio::test]
async fn system_search_across_types() {
    for t in apps().await {
        load(&t).await;
        // One type: the same as a type search, with _type kept in the links.
        let b = t.get("/fhir?_type=Patient&gender=male").await.json();
        assert_eq!(b["entry"].as_array().unwrap().len(), 1);
        assert_eq!(b["entry"][0]["resource"]["id"], "p1");
        assert_eq!(
            b["link"][0]["url"],
            format!("{BASE}?_type=Patient&gender=male")
        );
        // Several types with a shared parameter, in (type, id) order, paged.
        let b = t
            .get("/fhir?_type=Observation,Condition&_lastUpdated=gt2020&_count=3")
            .await
            .json();
        let first: Vec<String> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["resource"]["resourceType"].as_str().unwrap(),
                    e["resource"]["id"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(first, ["Condition/c1", "Observation/o1", "Observation/o2"]);
        let next = b["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            next.contains("_type=Observation,Condition")
                || next.contains("_type=Observation%2CCondition"),
            "{next}"
        );
        let b = t
            .get(next.strip_prefix("http://test.local").unwrap())
            .await
            .json();
        let second: Vec<String> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(second, ["o3", "o4"]);
        let b = t
            .get("/fhir?_type=Observation,Condition&_summary=count")
            .await
            .json();
        assert_eq!(b["total"], 5);
        // A parameter one of the types lacks is an error naming it; so is _sort.
        assert_eq!(
            t.get("/fhir?_type=Observation,Condition&code-value-quantity=x$1")
                .await
                .status,
            400
        );
        assert_eq!(
            t.get("/fhir?_type=Observation,Condition&_sort=_id")
                .await
                .status,
            400
        );
        assert_eq!(t.get("/fhir?gender=male").await.status, 400);
    }
}

#[tokio::test]
async fn previous_links_walk_back() {
    for t in apps().await {
        load(&t).await;
        let links = |b: &Value| -> (Option<String>, Option<String>) {
            let find = |rel: &str| {
                b["link"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["relation"] == rel)
                    .map(|l| {
                        l["url"]
                            .as_str()
                            .unwrap()
                            .strip_prefix("http://test.local")
                            .unwrap()
                            .to_owned()
                    })
            };
            (find("next"), find("previous"))
        };
        let page_ids = |b: &Value| -> Vec<String> {
            b["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = t.get("/fhir/Observation?_sort=date&_count=2").await.json();
        assert_eq!(page_ids(&first), ["o3", "o1"]);
        let (next, previous) = links(&first);
        assert!(previous.is_none(), "the first page has no previous");
        let second = t.get(&next.unwrap()).await.json();
        assert_eq!(page_ids(&second), ["o2", "o4"]);
        let (next, previous) = links(&second);
        assert!(next.is_none());
        let back = t.get(&previous.unwrap()).await.json();
        assert_eq!(
            page_ids(&back),
            ["o3", "o1"],
            "previous gives the first page again"
        );
        let (next, previous) = links(&back);
        assert!(previous.is_none() && next.is_some());
    }
}

#[tokio::test]
async fn long_values_and_control_characters() {
    for t in apps().await {
        // Text longer than any index entry may be is stored and found by its start.
        let long = format!("start {}", "x".repeat(5000));
        let o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "note"}, "valueString": long});
        let r = t.post("/fhir/Observation", &o.to_string()).await;
        assert_eq!(r.status, 201, "{}: {}", t.name, r.text);
        assert_eq!(ids(&t, "Observation?value-string=start").await.len(), 1);
        // A NUL in a resource is invalid FHIR; in a search value it is refused.
        let p = json!({"resourceType": "Patient", "name": [{"family": "a\u{0000}b"}]});
        assert_eq!(t.post("/fhir/Patient", &p.to_string()).await.status, 422);
        assert_eq!(t.get("/fhir/Patient?name=%00").await.status, 400);
        // _format with an unescaped + (decoded as a space) is still JSON.
        assert_eq!(
            t.get("/fhir/metadata?_format=application/fhir+json")
                .await
                .status,
            200
        );
        // A conditional update whose criteria match nothing may not overwrite
        // another resource through the id in its body.
        let mine = json!({"resourceType": "Patient", "id": "keep", "gender": "female"});
        assert_eq!(
            t.put("/fhir/Patient/keep", &mine.to_string()).await.status,
            201
        );
        let other = json!({"resourceType": "Patient", "id": "keep", "gender": "male"});
        let r = t
            .put("/fhir/Patient?family=nobody", &other.to_string())
            .await;
        assert_eq!(r.status, 409, "{}", r.text);
        assert_eq!(t.get("/fhir/Patient/keep").await.json()["gender"], "female");
    }
}

#[tokio::test]
async fn oversized_searches_are_refused() {
    for t in apps().await {
        let many: Vec<String> = (0..2000).map(|i| format!("p{i}")).collect();
        let r = t
            .get(&format!("/fhir/Patient?_id={}", many.join(",")))
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
        let params: Vec<String> = (0..150).map(|i| format!("family=x{i}")).collect();
        assert_eq!(
            t.get(&format!("/fhir/Patient?{}", params.join("&")))
                .await
                .status,
            400
        );
    }
}
