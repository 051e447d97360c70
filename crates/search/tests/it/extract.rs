//! Extraction of index rows from hand-written resources. Every expected row
//! is worked out by hand from the R4 SearchParameter definitions and the
//! search specification, never copied from the code's output.

use search::{extract, extract_with_issues, patient_compartment};
use serde_json::json;
use store::search::{CompositeValue, IndexRow};

/// 2015-01-01T00:00:00Z in microseconds (1,420,070,400 s after the epoch).
const Y2015: i64 = 1_420_070_400_000_000;
/// 2020-01-01T00:00:00Z (18,262 days after the epoch).
const Y2020: i64 = 1_577_836_800_000_000;
const DAY: i64 = 86_400_000_000;
const UCUM: &str = "http://unitsofmeasure.org";
const LOINC: &str = "http://loinc.org";

fn string(param: &str, normalized: &str, exact: &str) -> IndexRow {
    IndexRow::String {
        param: param.into(),
        normalized: normalized.into(),
        exact: exact.into(),
    }
}

fn token(param: &str, system: Option<&str>, code: Option<&str>, text: Option<&str>) -> IndexRow {
    IndexRow::Token {
        param: param.into(),
        system: system.map(Into::into),
        code: code.map(Into::into),
        text: text.map(Into::into),
    }
}

fn reference(param: &str, rtype: Option<&str>, id: Option<&str>, url: Option<&str>) -> IndexRow {
    IndexRow::Reference {
        param: param.into(),
        target_type: rtype.map(Into::into),
        target_id: id.map(Into::into),
        url: url.map(Into::into),
    }
}

fn date(param: &str, low: i64, high: i64) -> IndexRow {
    IndexRow::Date {
        param: param.into(),
        low,
        high,
    }
}

/// Asserts that `actual` holds exactly the rows of `expected`, in any order.
#[track_caller]
fn assert_rows(actual: &[IndexRow], expected: &[IndexRow]) {
    let missing: Vec<&IndexRow> = expected.iter().filter(|r| !actual.contains(r)).collect();
    let extra: Vec<&IndexRow> = actual.iter().filter(|r| !expected.contains(r)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && actual.len() == expected.len(),
        "missing rows: {missing:#?}\nunexpected rows: {extra:#?}\n({} rows, {} expected)",
        actual.len(),
        expected.len()
    );
}

#[test]
fn patient() {
    let patient = json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"tag": [{"system": "http://example.org/tags", "code": "vip"}]},
        "identifier": [{
            "type": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}],
                "text": "Medical record"
            },
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": "12345"
        }],
        "active": true,
        "name": [{"use": "official", "family": "Chalmers", "given": ["Peter", "James"]}],
        "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work"}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "address": [{
            "line": ["534 Erewhon St"],
            "city": "Pleasantville",
            "state": "Vic",
            "postalCode": "3999"
        }],
        "generalPractitioner": [{"reference": "Practitioner/dr1"}],
        "managingOrganization": {"reference": "Organization/1"}
    });
    // 1974-12-25 is day 1,461 + 358 = 1,819 after the epoch.
    let birth = 1_819 * DAY;
    let expected = [
        token("_tag", Some("http://example.org/tags"), Some("vip"), None),
        token("active", None, Some("true"), None),
        string("address", "534 erewhon st", "534 Erewhon St"),
        string("address", "pleasantville", "Pleasantville"),
        string("address", "vic", "Vic"),
        string("address", "3999", "3999"),
        string("address-city", "pleasantville", "Pleasantville"),
        string("address-state", "vic", "Vic"),
        string("address-postalcode", "3999", "3999"),
        date("birthdate", birth, birth + DAY - 1),
        // `Patient.deceased.exists() and Patient.deceased != false` is false.
        token("deceased", None, Some("false"), None),
        string("family", "chalmers", "Chalmers"),
        token("gender", None, Some("male"), None),
        reference(
            "general-practitioner",
            Some("Practitioner"),
            Some("dr1"),
            None,
        ),
        string("given", "peter", "Peter"),
        string("given", "james", "James"),
        token(
            "identifier",
            Some("urn:oid:1.2.36.146.595.217.0.1"),
            Some("12345"),
            Some("medical record"),
        ),
        token(
            "identifier:of-type",
            None,
            Some("http://terminology.hl7.org/CodeSystem/v2-0203|MR|12345"),
            None,
        ),
        string("name", "chalmers", "Chalmers"),
        string("name", "peter", "Peter"),
        string("name", "james", "James"),
        reference("organization", Some("Organization"), Some("1"), None),
        token("phone", None, Some("(03) 5555 6473"), None),
        string("phonetic", "chalmers", "Chalmers"),
        string("phonetic", "peter", "Peter"),
        string("phonetic", "james", "James"),
        token("telecom", None, Some("(03) 5555 6473"), None),
    ];
    let (rows, issues) = extract_with_issues("Patient", &patient);
    assert!(issues.is_empty(), "{issues:?}");
    assert_rows(&rows, &expected);
    assert_eq!(
        patient_compartment("Patient", "p1", &rows),
        Some("p1".into())
    );
}

#[test]
fn observation_with_a_quantity() {
    let observation = json!({
        "resourceType": "Observation",
        "id": "hr",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs"
        }]}],
        "code": {
            "coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate"
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2015-02-07T13:28:17-05:00",
        "valueQuantity": {"value": 72, "unit": "beats/minute", "system": UCUM, "code": "/min"}
    });
    // 2015-02-07T18:28:17Z: 37 days and 66,497 s into 2015; one second wide.
    let effective = Y2015 + 37 * DAY + 66_497_000_000;
    let quantity = |param: &str| IndexRow::Quantity {
        param: param.into(),
        system: Some(UCUM.into()),
        code: Some("/min".into()),
        unit: Some("beats/minute".into()),
        value: 72.0,
        low: 71.5,
        high: 72.5,
    };
    let composite = |param: &str| IndexRow::Composite {
        param: param.into(),
        system: Some(LOINC.into()),
        code: "8867-4".into(),
        second: CompositeValue::Quantity {
            system: Some(UCUM.into()),
            code: Some("/min".into()),
            low: 71.5,
            high: 72.5,
        },
    };
    let expected = [
        token("code", Some(LOINC), Some("8867-4"), Some("heart rate")),
        token("code", None, None, Some("heart rate")),
        token(
            "combo-code",
            Some(LOINC),
            Some("8867-4"),
            Some("heart rate"),
        ),
        token("combo-code", None, None, Some("heart rate")),
        token(
            "category",
            Some("http://terminology.hl7.org/CodeSystem/observation-category"),
            Some("vital-signs"),
            Some("vital signs"),
        ),
        token("status", None, Some("final"), None),
        date("date", effective, effective + 999_999),
        reference("patient", Some("Patient"), Some("p1"), None),
        reference("subject", Some("Patient"), Some("p1"), None),
        quantity("value-quantity"),
        quantity("combo-value-quantity"),
        composite("code-value-quantity"),
        composite("combo-code-value-quantity"),
    ];
    let rows = extract("Observation", &observation);
    assert_rows(&rows, &expected);
    assert_eq!(
        patient_compartment("Observation", "hr", &rows),
        Some("p1".into())
    );
}

/// A blood pressure panel: components give component and combo rows; the
/// observation itself has no value.
#[test]
fn observation_components() {
    let observation = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 107, "system": UCUM, "code": "mm[Hg]"}
            },
            {
                "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                "valueQuantity": {"value": 60.5, "system": UCUM, "code": "mm[Hg]"}
            }
        ]
    });
    let quantity = |param: &str, value: f64, low: f64, high: f64| IndexRow::Quantity {
        param: param.into(),
        system: Some(UCUM.into()),
        code: Some("mm[Hg]".into()),
        unit: None,
        value,
        low,
        high,
    };
    let composite = |param: &str, code: &str, low: f64, high: f64| IndexRow::Composite {
        param: param.into(),
        system: Some(LOINC.into()),
        code: code.into(),
        second: CompositeValue::Quantity {
            system: Some(UCUM.into()),
            code: Some("mm[Hg]".into()),
            low,
            high,
        },
    };
    let expected = [
        token("code", Some(LOINC), Some("85354-9"), None),
        token("combo-code", Some(LOINC), Some("85354-9"), None),
        token("combo-code", Some(LOINC), Some("8480-6"), None),
        token("combo-code", Some(LOINC), Some("8462-4"), None),
        token("component-code", Some(LOINC), Some("8480-6"), None),
        token("component-code", Some(LOINC), Some("8462-4"), None),
        token("status", None, Some("final"), None),
        quantity("component-value-quantity", 107.0, 106.5, 107.5),
        quantity("component-value-quantity", 60.5, 60.45, 60.55),
        quantity("combo-value-quantity", 107.0, 106.5, 107.5),
        quantity("combo-value-quantity", 60.5, 60.45, 60.55),
        composite("component-code-value-quantity", "8480-6", 106.5, 107.5),
        composite("component-code-value-quantity", "8462-4", 60.45, 60.55),
        composite("combo-code-value-quantity", "8480-6", 106.5, 107.5),
        composite("combo-code-value-quantity", "8462-4", 60.45, 60.55),
    ];
    assert_rows(&extract("Observation", &observation), &expected);
}

#[test]
fn observation_with_a_concept_and_a_period() {
    let observation = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
        "subject": {"reference": "Group/g1"},
        "performer": [{"reference": "Patient/p3"}],
        "effectivePeriod": {"start": "2020-01-01"},
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "8517006"}]}
    });
    let concept = |param: &str| token(param, Some("http://snomed.info/sct"), Some("8517006"), None);
    let expected = [
        token("code", Some(LOINC), Some("72166-2"), None),
        token("combo-code", Some(LOINC), Some("72166-2"), None),
        token("status", None, Some("final"), None),
        // A period without an end is open-ended.
        date("date", Y2020, i64::MAX),
        reference("subject", Some("Group"), Some("g1"), None),
        reference("performer", Some("Patient"), Some("p3"), None),
        concept("value-concept"),
        concept("combo-value-concept"),
        IndexRow::Composite {
            param: "code-value-concept".into(),
            system: Some(LOINC.into()),
            code: "72166-2".into(),
            second: CompositeValue::Token {
                system: Some("http://snomed.info/sct".into()),
                code: "8517006".into(),
            },
        },
        IndexRow::Composite {
            param: "combo-code-value-concept".into(),
            system: Some(LOINC.into()),
            code: "72166-2".into(),
            second: CompositeValue::Token {
                system: Some("http://snomed.info/sct".into()),
                code: "8517006".into(),
            },
        },
    ];
    let rows = extract("Observation", &observation);
    assert_rows(&rows, &expected);
    // The subject is a Group: the compartment comes from the performer.
    assert_eq!(
        patient_compartment("Observation", "o", &rows),
        Some("p3".into())
    );
}

#[test]
fn references_of_every_form() {
    let list = json!({
        "resourceType": "List",
        "status": "current",
        "mode": "working",
        "subject": {"reference": "http://example.org/fhir/Patient/p9/_history/3"},
        "source": {"identifier": {"system": "http://example.org/staff", "value": "S-1"}},
        "contained": [{"resourceType": "Patient", "id": "c1"}],
        "entry": [
            {"item": {"reference": "Condition/c7/_history/2"}},
            {"item": {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}},
            {"item": {"reference": "#c1"}},
            {"item": {"reference": "Condition/c7"}}
        ]
    });
    let expected = [
        token("status", None, Some("current"), None),
        reference(
            "subject",
            Some("Patient"),
            Some("p9"),
            Some("http://example.org/fhir/Patient/p9/_history/3"),
        ),
        // `patient` is `List.subject.where(resolve() is Patient)`: the stub
        // typed from the URL resolves.
        reference(
            "patient",
            Some("Patient"),
            Some("p9"),
            Some("http://example.org/fhir/Patient/p9/_history/3"),
        ),
        token(
            "source:identifier",
            Some("http://example.org/staff"),
            Some("S-1"),
            None,
        ),
        // Condition/c7 twice (with and without a version) is one row; the
        // contained reference has none.
        reference("item", Some("Condition"), Some("c7"), None),
        reference(
            "item",
            None,
            None,
            Some("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"),
        ),
    ];
    let rows = extract("List", &list);
    assert_rows(&rows, &expected);
    assert_eq!(patient_compartment("List", "l", &rows), Some("p9".into()));
}

#[test]
fn names_and_addresses_index_every_part() {
    let practitioner = json!({
        "resourceType": "Practitioner",
        "name": [{
            "text": "Dr Adán Müller-Lüdenscheidt Jr",
            "family": "Müller-Lüdenscheidt",
            "given": ["Adán"],
            "prefix": ["Dr"],
            "suffix": ["Jr"]
        }],
        "address": [{"district": "Ørsted", "country": "DK", "text": "1 Straße"}]
    });
    let name_rows = |param: &str| {
        vec![
            string(
                param,
                "dr adan muller-ludenscheidt jr",
                "Dr Adán Müller-Lüdenscheidt Jr",
            ),
            string(param, "muller-ludenscheidt", "Müller-Lüdenscheidt"),
            string(param, "adan", "Adán"),
            string(param, "dr", "Dr"),
            string(param, "jr", "Jr"),
        ]
    };
    let mut expected = name_rows("name");
    expected.extend(name_rows("phonetic"));
    expected.extend([
        string("family", "muller-ludenscheidt", "Müller-Lüdenscheidt"),
        string("given", "adan", "Adán"),
        string("address", "orsted", "Ørsted"),
        string("address", "dk", "DK"),
        string("address", "1 strasse", "1 Straße"),
        string("address-country", "dk", "DK"),
    ]);
    let rows = extract("Practitioner", &practitioner);
    assert_rows(&rows, &expected);
    // Practitioners are not in the Patient compartment.
    assert_eq!(patient_compartment("Practitioner", "x", &rows), None);
}

#[test]
fn timings_periods_and_canonicals() {
    let care_plan = json!({
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/p1"},
        "instantiatesCanonical": ["http://example.org/PlanDefinition/pd1"],
        "period": {"end": "2020-03-31"},
        "activity": [{"detail": {
            "status": "scheduled",
            "scheduledTiming": {
                "event": ["2020-01-01"],
                "repeat": {"boundsPeriod": {"start": "2020-01-01", "end": "2020-03-31"}}
            }
        }}]
    });
    // 2020-04-01 is 31 + 29 + 31 = 91 days after 2020-01-01.
    let april = Y2020 + 91 * DAY;
    let expected = [
        token("status", None, Some("active"), None),
        token("intent", None, Some("plan"), None),
        reference("subject", Some("Patient"), Some("p1"), None),
        reference("patient", Some("Patient"), Some("p1"), None),
        reference(
            "instantiates-canonical",
            None,
            None,
            Some("http://example.org/PlanDefinition/pd1"),
        ),
        date("date", i64::MIN, april - 1),
        date("activity-date", Y2020, Y2020 + DAY - 1),
        date("activity-date", Y2020, april - 1),
    ];
    assert_rows(&extract("CarePlan", &care_plan), &expected);
}

#[test]
fn numbers_money_and_uris() {
    let risk = json!({
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "prediction": [{"probabilityDecimal": 0.25}]
    });
    assert_rows(
        &extract("RiskAssessment", &risk),
        // R4 defines no `status` parameter on RiskAssessment.
        &[
            reference("subject", Some("Patient"), Some("p1"), None),
            reference("patient", Some("Patient"), Some("p1"), None),
            IndexRow::Number {
                param: "probability".into(),
                value: 0.25,
                low: 0.245,
                high: 0.255,
            },
        ],
    );

    let charge = json!({
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"text": "Consultation"},
        "subject": {"reference": "Patient/p1"},
        "priceOverride": {"value": 40, "currency": "EUR"},
        "meta": {"profile": ["http://example.org/StructureDefinition/charge"]}
    });
    assert_rows(
        &extract("ChargeItem", &charge),
        &[
            token("code", None, None, Some("consultation")),
            reference("subject", Some("Patient"), Some("p1"), None),
            reference("patient", Some("Patient"), Some("p1"), None),
            IndexRow::Quantity {
                param: "price-override".into(),
                system: Some("urn:iso:std:iso:4217".into()),
                code: Some("EUR".into()),
                unit: None,
                value: 40.0,
                low: 39.5,
                high: 40.5,
            },
            IndexRow::Uri {
                param: "_profile".into(),
                value: "http://example.org/StructureDefinition/charge".into(),
            },
        ],
    );
}

#[test]
fn quantity_comparators_open_the_range() {
    let observation = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": 5, "comparator": "<", "system": UCUM, "code": "mg"}
    });
    let rows = extract("Observation", &observation);
    let value = rows
        .iter()
        .find(|r| matches!(r, IndexRow::Quantity { param, .. } if param == "value-quantity"))
        .unwrap();
    assert_eq!(
        value,
        &IndexRow::Quantity {
            param: "value-quantity".into(),
            system: Some(UCUM.into()),
            code: Some("mg".into()),
            unit: None,
            value: 5.0,
            low: f64::NEG_INFINITY,
            high: 5.5,
        }
    );
}

/// `context-type-quantity` composes a token with a Quantity or a Range.
#[test]
fn composite_with_a_range() {
    let library = json!({
        "resourceType": "Library",
        "status": "active",
        "type": {"text": "logic"},
        "useContext": [{
            "code": {"system": "http://terminology.hl7.org/CodeSystem/usage-context-type", "code": "age"},
            "valueRange": {
                "low": {"value": 18, "system": UCUM, "code": "a"},
                "high": {"value": 65, "system": UCUM, "code": "a"}
            }
        }]
    });
    let rows = extract("Library", &library);
    let composite: Vec<&IndexRow> = rows
        .iter()
        .filter(|r| matches!(r, IndexRow::Composite { .. }))
        .collect();
    assert_eq!(
        composite,
        [&IndexRow::Composite {
            param: "context-type-quantity".into(),
            system: Some("http://terminology.hl7.org/CodeSystem/usage-context-type".into()),
            code: "age".into(),
            second: CompositeValue::Quantity {
                system: Some(UCUM.into()),
                code: Some("a".into()),
                low: 18.0,
                high: 65.0,
            },
        }]
    );
}

#[test]
fn unknown_types_and_empty_resources_give_no_rows() {
    assert!(extract("NotAType", &json!({"resourceType": "NotAType"})).is_empty());
    // A bare Patient: only `deceased` (the expression is `false`).
    assert_rows(
        &extract("Patient", &json!({"resourceType": "Patient"})),
        &[token("deceased", None, Some("false"), None)],
    );
}

#[test]
fn compartment_follows_the_definition_order() {
    // Condition: `patient` (subject.where(resolve() is Patient)) before `asserter`.
    let condition = json!({
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p1"},
        "asserter": {"reference": "Patient/p2"}
    });
    let rows = extract("Condition", &condition);
    assert_eq!(
        patient_compartment("Condition", "c", &rows),
        Some("p1".into())
    );
    // A Condition about a Group, asserted by a patient.
    let condition = json!({
        "resourceType": "Condition",
        "subject": {"reference": "Group/g"},
        "asserter": {"reference": "Patient/p2"}
    });
    let rows = extract("Condition", &condition);
    assert_eq!(
        patient_compartment("Condition", "c", &rows),
        Some("p2".into())
    );
    // An unresolved urn:uuid subject cannot be placed.
    let condition = json!({
        "resourceType": "Condition",
        "subject": {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}
    });
    let rows = extract("Condition", &condition);
    assert_eq!(patient_compartment("Condition", "c", &rows), None);
}
