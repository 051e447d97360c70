//! Table-driven validation tests, written by hand from the FHIR R4 specification.
//!
//! Each case is a resource and the issues expected, as `(code, expression)`
//! pairs; an empty list means the resource is valid.

use fhir::{IssueCode, Severity, has_errors, validate_resource};
use serde_json::{Value, json};

/// Validates `resource` and compares the issues' codes and expressions with `expected`.
#[track_caller]
fn check(resource: Value, expected: &[(IssueCode, &str)]) {
    let issues = validate_resource(&resource);
    let actual: Vec<(IssueCode, &str)> = issues
        .iter()
        .map(|i| (i.code, i.expression.as_str()))
        .collect();
    assert_eq!(
        actual,
        expected,
        "issues:\n{}",
        issues
            .iter()
            .map(|i| format!("  {i}\n"))
            .collect::<String>()
    );
    assert!(issues.iter().all(|i| i.severity == Severity::Error));
    assert_eq!(has_errors(&issues), !expected.is_empty());
}

/// Validates `resource` and returns the single issue's diagnostics.
#[track_caller]
fn diagnostics(resource: Value) -> String {
    let issues = validate_resource(&resource);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    issues[0].diagnostics.clone()
}

use IssueCode::*;

#[test]
fn minimal_resources_are_valid() {
    check(json!({"resourceType": "Patient"}), &[]);
    check(
        json!({
            "resourceType": "Patient",
            "id": "example",
            "meta": {"versionId": "1", "lastUpdated": "2024-01-02T03:04:05.678Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jo Bloggs</div>"},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}],
            "active": true,
            "name": [{"use": "official", "family": "Bloggs", "given": ["Jo", "Anne"], "prefix": ["Ms"]}],
            "telecom": [{"system": "phone", "value": "01234 567890", "use": "home"}],
            "gender": "female",
            "birthDate": "1970-01-01",
            "deceasedBoolean": false,
            "address": [{"line": ["1 High Street"], "city": "Leeds", "postalCode": "LS1 1AA"}],
            "multipleBirthInteger": 1,
            "generalPractitioner": [{"reference": "Organization/Y12345", "display": "The Surgery"}],
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]}}]
        }),
        &[],
    );
    check(
        json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "urn:uuid:a656ed17-26cc-47cb-981e-22207719cc22"},
            "effectiveDateTime": "2020-05-06T07:08:09+01:00",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
        }),
        &[],
    );
}

#[test]
fn not_a_resource() {
    check(json!([]), &[(Structure, "")]);
    check(json!({"id": "x"}), &[(Required, "")]);
    check(json!({"resourceType": 5}), &[(Structure, "")]);
    check(json!({"resourceType": "Foo"}), &[(NotSupported, "")]);
    check(
        json!({"resourceType": "DomainResource"}),
        &[(NotSupported, "")],
    );
}

#[test]
fn unknown_elements() {
    check(
        json!({"resourceType": "Patient", "foo": 1}),
        &[(Structure, "Patient.foo")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"family": "X", "nickname": "Y"}]}),
        &[(Structure, "Patient.name[0].nickname")],
    );
    check(
        json!({"resourceType": "Patient", "contact": [{"name": {"family": "X"}, "age": 3}]}),
        &[(Structure, "Patient.contact[0].age")],
    );
    check(
        json!({"resourceType": "Patient", "_foo": {"id": "a"}}),
        &[(Structure, "Patient._foo")],
    );
    // Element names are case-sensitive.
    check(
        json!({"resourceType": "Patient", "Gender": "male"}),
        &[(Structure, "Patient.Gender")],
    );
    assert!(diagnostics(json!({"resourceType": "Patient", "foo": 1})).contains("\"foo\""));
}

#[test]
fn cardinality_both_ways() {
    // max 1 given an array
    check(
        json!({"resourceType": "Patient", "gender": ["male"]}),
        &[(Structure, "Patient.gender")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"family": ["X"]}]}),
        &[(Structure, "Patient.name[0].family")],
    );
    // max * given a single value
    check(
        json!({"resourceType": "Patient", "name": {"family": "X"}}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"given": "Jo"}]}),
        &[(Structure, "Patient.name[0].given")],
    );
}

#[test]
fn missing_required_elements() {
    check(
        json!({"resourceType": "Observation"}),
        &[
            (Required, "Observation.status"),
            (Required, "Observation.code"),
        ],
    );
    // Inside a present backbone element.
    check(
        json!({
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "component": [{"valueString": "y"}]
        }),
        &[(Required, "Observation.component[0].code")],
    );
    // Inside a complex data type: Extension.url.
    check(
        json!({"resourceType": "Patient", "extension": [{"valueString": "x"}]}),
        &[(Required, "Patient.extension[0].url")],
    );
    // A required choice element: MedicationRequest.medication[x].
    check(
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
               "subject": {"reference": "Patient/1"}}),
        &[(Required, "MedicationRequest.medication[x]")],
    );
    // A primitive present only through its extension counts as present.
    check(
        json!({"resourceType": "Observation",
               "_status": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]},
               "code": {"text": "x"}}),
        &[],
    );
}

#[test]
fn date_formats() {
    let patient = |birth_date: &str| json!({"resourceType": "Patient", "birthDate": birth_date});
    for ok in ["1970", "1970-01", "1970-01-01", "2020-02-29"] {
        check(patient(ok), &[]);
    }
    for bad in [
        "2020-13-01",
        "2020-02-30",
        "1970-1-1",
        "01/01/1970",
        "1970-01-01T00:00:00Z",
    ] {
        check(patient(bad), &[(Value, "Patient.birthDate")]);
    }
    let observation = |effective: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "effectiveDateTime": effective})
    };
    check(observation("2015-02-07T13:28:17-05:00"), &[]);
    check(observation("2015-02-07"), &[]);
    // A time needs a timezone, and seconds.
    check(
        observation("2015-02-07T13:28:17"),
        &[(Value, "Observation.effectiveDateTime")],
    );
    check(
        observation("2015-02-07T13:28Z"),
        &[(Value, "Observation.effectiveDateTime")],
    );
    // instant needs a full time.
    check(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "issued": "2015-02-07"}),
        &[(Value, "Observation.issued")],
    );
    // Diagnostics do not echo the value (a birth date is personal data).
    let message = diagnostics(patient("1970-02-31"));
    assert!(!message.contains("1970"), "{message}");
    assert!(message.contains("birthDate"), "{message}");
}

#[test]
fn primitive_json_kinds() {
    check(
        json!({"resourceType": "Patient", "active": "true"}),
        &[(Value, "Patient.active")],
    );
    check(
        json!({"resourceType": "Patient", "birthDate": 1970}),
        &[(Value, "Patient.birthDate")],
    );
    check(
        json!({"resourceType": "Patient", "multipleBirthInteger": 1.5}),
        &[(Value, "Patient.multipleBirthInteger")],
    );
    check(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "valueQuantity": {"value": "72"}}),
        &[(Value, "Observation.valueQuantity.value")],
    );
    check(
        json!({"resourceType": "Patient", "id": "a_b"}),
        &[(Value, "Patient.id")],
    );
    check(
        json!({"resourceType": "Patient", "name": "Jo"}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "name": ["Jo"]}),
        &[(Structure, "Patient.name[0]")],
    );
    check(
        json!({"resourceType": "Patient", "photo": [{"data": "not base64!"}]}),
        &[(Value, "Patient.photo[0].data")],
    );
}

#[test]
fn required_code_bindings() {
    check(
        json!({"resourceType": "Patient", "gender": "M"}),
        &[(CodeInvalid, "Patient.gender")],
    );
    check(
        json!({"resourceType": "Observation", "status": "done", "code": {"text": "x"}}),
        &[(CodeInvalid, "Observation.status")],
    );
    check(
        json!({"resourceType": "Bundle", "type": "bag"}),
        &[(CodeInvalid, "Bundle.type")],
    );
    check(
        json!({"resourceType": "Encounter", "status": "open", "class": {"code": "AMB"}}),
        &[(CodeInvalid, "Encounter.status")],
    );
    // Bindings inside data types: HumanName.use, Narrative.status.
    check(
        json!({"resourceType": "Patient", "name": [{"use": "nick", "family": "X"}]}),
        &[(CodeInvalid, "Patient.name[0].use")],
    );
    // The code is named in the diagnostics, with the value set.
    let message = diagnostics(json!({"resourceType": "Patient", "gender": "M"}));
    assert!(message.contains("\"M\""), "{message}");
    assert!(message.contains("administrative-gender"), "{message}");
    // Codings and CodeableConcepts are not checked against bindings.
    check(
        json!({"resourceType": "Observation", "status": "final", "code": {"coding": [{"code": "anything"}]}}),
        &[],
    );
    // A code with inner double spaces is malformed before it is unknown.
    check(
        json!({"resourceType": "Patient", "gender": " male"}),
        &[(Value, "Patient.gender")],
    );
}

#[test]
fn choice_types() {
    let observation = |extra: Value| {
        let mut o =
            json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    check(observation(json!({"valueQuantity": {"value": 1}})), &[]);
    check(observation(json!({"valueString": "high"})), &[]);
    check(
        observation(json!({"valueCodeableConcept": {"text": "high"}})),
        &[],
    );
    check(
        observation(json!({"valueFoo": 1})),
        &[(Structure, "Observation.valueFoo")],
    );
    check(
        observation(json!({"valueHumanName": {"family": "X"}})),
        &[(Structure, "Observation.valueHumanName")],
    );
    check(
        observation(json!({"value": 1})),
        &[(Structure, "Observation.value")],
    );
    check(
        observation(json!({"valuequantity": {"value": 1}})),
        &[(Structure, "Observation.valuequantity")],
    );
    let message = diagnostics(observation(json!({"value": 1})));
    assert!(
        message.contains("value[x]") && message.contains("valueQuantity"),
        "{message}"
    );
    let message = diagnostics(observation(json!({"valueFoo": 1})));
    assert!(
        message.contains("Foo") && message.contains("Quantity"),
        "{message}"
    );
    // The chosen type is validated.
    check(
        observation(json!({"valueBoolean": "yes"})),
        &[(Value, "Observation.valueBoolean")],
    );
    // Extension.value[x] allows any type.
    check(
        json!({"resourceType": "Patient", "extension": [
            {"url": "http://example.org/a", "valueHumanName": {"family": "X"}},
            {"url": "http://example.org/b", "valueDosage": {"text": "once"}},
            {"url": "http://example.org/c", "valueMeta": {"versionId": "1"}}
        ]}),
        &[],
    );
}

#[test]
fn primitive_companions() {
    let ext = json!({"extension": [{"url": "http://example.org/x", "valueString": "y"}]});
    // Single primitive with a companion.
    check(
        json!({"resourceType": "Patient", "birthDate": "1970", "_birthDate": ext}),
        &[],
    );
    // Arrays aligned with nulls.
    check(
        json!({"resourceType": "Patient", "name": [{"given": ["Jo", null], "_given": [null, ext]}]}),
        &[],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"_given": [ext, {"id": "g2"}]}]}),
        &[],
    );
    // Mismatched lengths.
    check(
        json!({"resourceType": "Patient", "name": [{"given": ["Jo", "Anne"], "_given": [null]}]}),
        &[(Structure, "Patient.name[0].given")],
    );
    // Null in both, and null without a companion.
    check(
        json!({"resourceType": "Patient", "name": [{"given": ["Jo", null], "_given": [null, null]}]}),
        &[(Structure, "Patient.name[0].given[1]")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"given": ["Jo", null]}]}),
        &[(Structure, "Patient.name[0].given[1]")],
    );
    // Companions must hold only id and extension.
    check(
        json!({"resourceType": "Patient", "_birthDate": {"value": "1970"}}),
        &[(Structure, "Patient.birthDate.value")],
    );
    // Companions only for primitives.
    check(
        json!({"resourceType": "Patient", "_name": [{"id": "x"}]}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"family": "X"}], "_name": [{"id": "x"}]}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "_contact": [{"id": "x"}]}),
        &[(Structure, "Patient.contact")],
    );
    // Companion of a choice primitive.
    check(
        json!({"resourceType": "Patient", "deceasedBoolean": true, "_deceasedBoolean": {"id": "d"}}),
        &[],
    );
    // A companion's shape follows the cardinality of its element.
    check(
        json!({"resourceType": "Patient", "birthDate": "1970", "_birthDate": [ext]}),
        &[(Structure, "Patient.birthDate")],
    );
}

#[test]
fn contained_resources() {
    check(
        json!({
            "resourceType": "MedicationRequest",
            "contained": [{"resourceType": "Medication", "id": "med1", "code": {"text": "Paracetamol"}}],
            "status": "active", "intent": "order",
            "medicationReference": {"reference": "#med1"},
            "subject": {"reference": "Patient/1"}
        }),
        &[],
    );
    check(
        json!({
            "resourceType": "MedicationRequest",
            "contained": [{"resourceType": "Medication", "id": "med1", "colour": "red"}],
            "status": "active", "intent": "order",
            "medicationReference": {"reference": "#med1"},
            "subject": {"reference": "Patient/1"}
        }),
        &[(Structure, "MedicationRequest.contained[0].colour")],
    );
    check(
        json!({"resourceType": "Patient", "contained": [{"id": "x"}]}),
        &[(Required, "Patient.contained[0]")],
    );
    check(
        json!({"resourceType": "Patient", "contained": [
            {"resourceType": "Organization", "id": "o", "contained": [{"resourceType": "Organization", "id": "p"}]}
        ]}),
        &[(Invariant, "Patient.contained[0]")],
    );
}

#[test]
fn bundle_and_parameters_resources() {
    check(
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:a656ed17-26cc-47cb-981e-22207719cc22",
             "resource": {"resourceType": "Patient", "gender": "bloke"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Nope"}, "request": {"method": "POST", "url": "Nope"}}
        ]}),
        &[
            (CodeInvalid, "Bundle.entry[0].resource.gender"),
            (NotSupported, "Bundle.entry[1].resource"),
        ],
    );
    check(
        json!({"resourceType": "Bundle", "type": "batch-response", "entry": [
            {"response": {"status": "400", "outcome": {"resourceType": "Patient"}}}
        ]}),
        &[(Structure, "Bundle.entry[0].response.outcome")],
    );
    check(
        json!({"resourceType": "Parameters", "parameter": [
            {"name": "resource", "resource": {"resourceType": "Patient", "gender": "x"}},
            {"name": "nested", "part": [{"name": "n", "valueInteger": "1"}]}
        ]}),
        &[
            (CodeInvalid, "Parameters.parameter[0].resource.gender"),
            (Value, "Parameters.parameter[1].part[0].valueInteger"),
        ],
    );
}

#[test]
fn content_references() {
    check(
        json!({"resourceType": "Questionnaire", "status": "active", "item": [
            {"linkId": "1", "type": "group", "item": [
                {"linkId": "1.1", "type": "string", "item": [{"linkId": "1.1.1", "type": "display", "bogus": true}]}
            ]}
        ]}),
        &[(Structure, "Questionnaire.item[0].item[0].item[0].bogus")],
    );
    check(
        json!({"resourceType": "Questionnaire", "status": "active", "item": [
            {"linkId": "1", "type": "group", "item": [{"type": "string"}]}
        ]}),
        &[(Required, "Questionnaire.item[0].item[0].linkId")],
    );
}

#[test]
fn nhs_numbers() {
    let patient = |number: &str| {
        json!({"resourceType": "Patient", "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": number}
        ]})
    };
    check(patient("9990000018"), &[]);
    check(patient("9434765919"), &[]);
    check(
        patient("9000000012"),
        &[(Value, "Patient.identifier[0].value")],
    );
    check(
        patient("943 476 5919"),
        &[(Value, "Patient.identifier[0].value")],
    );
    let message = diagnostics(patient("9000000012"));
    assert!(
        message.contains("NHS number fails the Modulus 11 check"),
        "{message}"
    );
    assert!(
        !message.contains("9000000012"),
        "the number must not be echoed: {message}"
    );
    // Other identifier systems are not checked.
    check(
        json!({"resourceType": "Patient", "identifier": [{"system": "http://example.org/mrn", "value": "123"}]}),
        &[],
    );
    // Identifiers anywhere, e.g. in a Reference.
    check(
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "subject": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1234567890"}}}),
        &[(Value, "Observation.subject.identifier.value")],
    );
}

#[test]
fn references() {
    let observation = |reference: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
               "subject": {"reference": reference}})
    };
    for ok in [
        "Patient/123",
        "Patient/123/_history/4",
        "urn:uuid:a656ed17-26cc-47cb-981e-22207719cc22",
        "urn:oid:1.2.3",
        "https://example.org/fhir/Patient/123",
        "#p1",
    ] {
        check(observation(ok), &[]);
    }
    for bad in [
        "Patient",
        "Patient/1/2",
        "Patients/1",
        "Patient/a b",
        "urn:uuid:nope",
        "12345",
    ] {
        check(
            observation(bad),
            &[(Value, "Observation.subject.reference")],
        );
    }
}

#[test]
fn null_and_empty_values() {
    check(
        json!({"resourceType": "Patient", "gender": null}),
        &[(Structure, "Patient.gender")],
    );
    check(
        json!({"resourceType": "Patient", "name": null}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "name": [null]}),
        &[(Structure, "Patient.name[0]")],
    );
    check(
        json!({"resourceType": "Patient", "name": []}),
        &[(Structure, "Patient.name")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{}]}),
        &[(Structure, "Patient.name[0]")],
    );
    check(
        json!({"resourceType": "Patient", "maritalStatus": {}}),
        &[(Structure, "Patient.maritalStatus")],
    );
    check(
        json!({"resourceType": "Patient", "id": ""}),
        &[(Structure, "Patient.id")],
    );
    check(
        json!({"resourceType": "Patient", "name": [{"family": ""}]}),
        &[(Structure, "Patient.name[0].family")],
    );
    check(
        json!({"resourceType": "Patient", "_gender": null}),
        &[(Structure, "Patient.gender")],
    );
}

#[test]
fn narrative_and_extensions() {
    check(
        json!({"resourceType": "Patient", "text": {"status": "generated", "div": "Jo"}}),
        &[(Value, "Patient.text.div")],
    );
    check(
        json!({"resourceType": "Patient", "text": {"status": "generated"}}),
        &[(Required, "Patient.text.div")],
    );
    // ext-1: a value or nested extensions, not both, not neither.
    check(
        json!({"resourceType": "Patient", "extension": [
            {"url": "http://example.org/a", "valueString": "x", "extension": [{"url": "b", "valueString": "y"}]}
        ]}),
        &[(Invariant, "Patient.extension[0]")],
    );
    check(
        json!({"resourceType": "Patient", "extension": [{"url": "http://example.org/a"}]}),
        &[(Invariant, "Patient.extension[0]")],
    );
    check(
        json!({"resourceType": "Patient", "modifierExtension": [
            {"url": "http://example.org/a", "extension": [{"url": "b", "valueCode": "y"}]}
        ]}),
        &[],
    );
}

#[test]
fn issues_are_reported_in_document_order_and_all_at_once() {
    check(
        json!({"resourceType": "Patient", "foo": 1, "gender": "x", "birthDate": "nope", "name": {}}),
        &[
            (Structure, "Patient.foo"),
            (CodeInvalid, "Patient.gender"),
            (Value, "Patient.birthDate"),
            (Structure, "Patient.name"),
        ],
    );
}

#[test]
fn legacy_fhir_comments_are_warnings() {
    let issues = validate_resource(&json!({
        "resourceType": "Patient",
        "fhir_comments": ["converted from an XML comment"],
        "name": [{"family": "X", "fhir_comments": ["another"]}]
    }));
    let found: Vec<(Severity, IssueCode, &str)> = issues
        .iter()
        .map(|i| (i.severity, i.code, i.expression.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (Severity::Warning, Informational, "Patient.fhir_comments"),
            (
                Severity::Warning,
                Informational,
                "Patient.name[0].fhir_comments"
            ),
        ]
    );
    assert!(!has_errors(&issues));
    check(
        json!({"resourceType": "Patient", "fhir_comments": "not an array"}),
        &[(Structure, "Patient.fhir_comments")],
    );
}

#[test]
fn deep_nesting_is_reported_not_followed() {
    let mut extension = json!({"url": "http://example.org/leaf", "valueString": "x"});
    for _ in 0..300 {
        extension = json!({"url": "http://example.org/node", "extension": [extension]});
    }
    let issues = validate_resource(&json!({"resourceType": "Patient", "extension": [extension]}));
    assert_eq!(issues.len(), 1, "{issues:#?}");
    assert_eq!(issues[0].code, Structure);
    assert!(issues[0].diagnostics.contains("nested too deeply"));
}

#[test]
fn display_of_an_issue() {
    let issues = validate_resource(&json!({"resourceType": "Patient", "gender": "M"}));
    assert_eq!(
        issues[0].to_string(),
        "error [code-invalid] Patient.gender: The code \"M\" of 'gender' is not in the required \
         value set http://hl7.org/fhir/ValueSet/administrative-gender"
    );
}
