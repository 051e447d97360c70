//! Search parameters to filters. Expected values are worked out by hand from
//! the R4 search specification (http://hl7.org/fhir/R4/search.html).

use search::{
    Include, ParsedSearch, ResultParams, SearchError, Summary, Total, is_result_parameter, parse,
    parse_date_range,
};
use store::search::{
    CompositeFilter, CompositeSecond, Filter, IndexKind, Prefix, QuantityValue, RangeValue,
    ReferenceValue, SortKey, StringMatch, TokenValue, UriMatch,
};

/// 2015-01-01T00:00:00Z and 2016-01-01T00:00:00Z in microseconds.
const Y2015: i64 = 1_420_070_400_000_000;
const Y2016: i64 = 1_451_606_400_000_000;
/// 2025-01-01T00:00:00Z: 3,288 days after 2016-01-01.
const NOW: i64 = Y2016 + 3_288 * 86_400_000_000;
const LOINC: &str = "http://loinc.org";

fn search(rtype: &str, query: &[(&str, &str)]) -> Result<ParsedSearch, SearchError> {
    let params: Vec<(String, String)> = query
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    parse(rtype, &params, NOW, false)
}

fn lenient(rtype: &str, query: &[(&str, &str)]) -> Result<ParsedSearch, SearchError> {
    let params: Vec<(String, String)> = query
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    parse(rtype, &params, NOW, true)
}

/// The filters of a search that must parse.
#[track_caller]
fn filters(rtype: &str, query: &[(&str, &str)]) -> Vec<Filter> {
    match search(rtype, query) {
        Ok(parsed) => {
            assert!(parsed.ignored.is_empty());
            assert_eq!(parsed.result, ResultParams::default());
            parsed.filters
        }
        Err(e) => panic!("{query:?}: {e}"),
    }
}

/// The single filter of a one-parameter search.
#[track_caller]
fn filter(rtype: &str, name: &str, value: &str) -> Filter {
    let mut all = filters(rtype, &[(name, value)]);
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn token(system: Option<&str>, code: Option<&str>) -> TokenValue {
    TokenValue {
        system: system.map(Into::into),
        code: code.map(Into::into),
    }
}

fn reference(rtype: Option<&str>, id: Option<&str>, url: Option<&str>) -> ReferenceValue {
    ReferenceValue {
        target_type: rtype.map(Into::into),
        id: id.map(Into::into),
        url: url.map(Into::into),
    }
}

fn string(param: &str, mode: StringMatch, values: &[&str]) -> Filter {
    Filter::String {
        param: param.into(),
        mode,
        any_of: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

fn range<T>(prefix: Prefix, low: T, high: T) -> RangeValue<T> {
    RangeValue { prefix, low, high }
}

// ---------------------------------------------------------------------------
// Dates
// ---------------------------------------------------------------------------

#[test]
fn a_year_is_the_whole_year() {
    assert_eq!(
        filter("Patient", "birthdate", "2015"),
        Filter::Date {
            param: "birthdate".into(),
            any_of: vec![range(Prefix::Eq, Y2015, Y2016 - 1)],
        }
    );
}

#[test]
fn a_date_time_is_precise_to_the_second() {
    // 2015-02-07T13:28:17-05:00 is 18:28:17Z: 37 days and 66,497 s into 2015.
    let at = Y2015 + 37 * 86_400_000_000 + 66_497_000_000;
    assert_eq!(
        filter("Observation", "date", "2015-02-07T13:28:17-05:00"),
        Filter::Date {
            param: "date".into(),
            any_of: vec![range(Prefix::Eq, at, at + 999_999)],
        }
    );
}

#[test]
fn every_prefix() {
    let year = |prefix| range(prefix, Y2015, Y2016 - 1);
    for (written, prefix) in [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
        ("sa", Prefix::Sa),
        ("eb", Prefix::Eb),
    ] {
        assert_eq!(
            filter("Patient", "birthdate", &format!("{written}2015")),
            Filter::Date {
                param: "birthdate".into(),
                any_of: vec![year(prefix)],
            },
            "{written}"
        );
    }
}

#[test]
fn approximately_widens_dates_by_a_tenth_of_the_distance_to_now() {
    // The year ends 1 µs before 2016; from there to NOW is 3,288 days + 1 µs.
    let gap = 3_288 * 86_400_000_000 + 1;
    let widen = gap / 10; // 28,408,320,000,000 µs (32.88 days)
    assert_eq!(widen, 28_408_320_000_000);
    assert_eq!(
        filter("Patient", "birthdate", "ap2015"),
        Filter::Date {
            param: "birthdate".into(),
            any_of: vec![range(Prefix::Overlaps, Y2015 - widen, Y2016 - 1 + widen)],
        }
    );
}

#[test]
fn last_updated_is_its_own_filter() {
    assert_eq!(
        filter("Patient", "_lastUpdated", "gt2015"),
        Filter::LastUpdated(vec![range(Prefix::Gt, Y2015, Y2016 - 1)])
    );
}

// ---------------------------------------------------------------------------
// Numbers and quantities
// ---------------------------------------------------------------------------

#[test]
fn numbers_have_an_implicit_range() {
    assert_eq!(
        filter("RiskAssessment", "probability", "0.8,gt100.00"),
        Filter::Number {
            param: "probability".into(),
            any_of: vec![
                range(Prefix::Eq, 0.75, 0.85),
                range(Prefix::Gt, 99.995, 100.005)
            ],
        }
    );
    // ap: ±10% of the value around the implicit range [99.5, 100.5].
    assert_eq!(
        filter("RiskAssessment", "probability", "ap100"),
        Filter::Number {
            param: "probability".into(),
            any_of: vec![range(Prefix::Overlaps, 89.5, 110.5)],
        }
    );
}

#[test]
fn quantities_with_and_without_units() {
    let q = |prefix, low, high, system: Option<&str>, code: Option<&str>| QuantityValue {
        prefix,
        low,
        high,
        system: system.map(Into::into),
        code: code.map(Into::into),
    };
    assert_eq!(
        filter(
            "Observation",
            "value-quantity",
            "gt5.4|http://unitsofmeasure.org|mg,5.4||mg,5.4"
        ),
        Filter::Quantity {
            param: "value-quantity".into(),
            any_of: vec![
                q(
                    Prefix::Gt,
                    5.35,
                    5.45,
                    Some("http://unitsofmeasure.org"),
                    Some("mg")
                ),
                q(Prefix::Eq, 5.35, 5.45, None, Some("mg")),
                q(Prefix::Eq, 5.35, 5.45, None, None),
            ],
        }
    );
    assert_eq!(
        filter("Observation", "value-quantity", "ap100||mg"),
        Filter::Quantity {
            param: "value-quantity".into(),
            any_of: vec![q(Prefix::Overlaps, 89.5, 110.5, None, Some("mg"))],
        }
    );
}

// ---------------------------------------------------------------------------
// Strings, tokens, URIs
// ---------------------------------------------------------------------------

#[test]
fn string_modifiers() {
    assert_eq!(
        filter("Patient", "name", "Adán,  Peter  James "),
        string("name", StringMatch::Prefix, &["adan", "peter james"])
    );
    assert_eq!(
        filter("Patient", "name:contains", "ETE"),
        string("name", StringMatch::Contains, &["ete"])
    );
    assert_eq!(
        filter("Patient", "name:exact", "Adán"),
        string("name", StringMatch::Exact, &["Adán"])
    );
}

#[test]
fn escaped_separators_are_literal() {
    assert_eq!(
        filter("Patient", "name", "a\\,b,c"),
        string("name", StringMatch::Prefix, &["a,b", "c"])
    );
    assert_eq!(
        filter("Patient", "identifier", "http://x|a\\,b\\|c\\\\"),
        Filter::Token {
            param: "identifier".into(),
            not: false,
            any_of: vec![token(Some("http://x"), Some("a,b|c\\"))],
        }
    );
}

#[test]
fn token_forms_and_modifiers() {
    assert_eq!(
        filter(
            "Observation",
            "code",
            "http://loinc.org|1234-5,|abc,http://snomed.info/sct|,xyz"
        ),
        Filter::Token {
            param: "code".into(),
            not: false,
            any_of: vec![
                token(Some(LOINC), Some("1234-5")),
                token(Some(""), Some("abc")),
                token(Some("http://snomed.info/sct"), None),
                token(None, Some("xyz")),
            ],
        }
    );
    assert_eq!(
        filter("Patient", "gender:not", "male"),
        Filter::Token {
            param: "gender".into(),
            not: true,
            any_of: vec![token(None, Some("male"))],
        }
    );
    assert_eq!(
        filter("Observation", "code:text", "Heart  Rate"),
        Filter::TokenText {
            param: "code".into(),
            any_of: vec!["heart rate".into()],
        }
    );
    assert_eq!(
        filter(
            "Patient",
            "identifier:of-type",
            "http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"
        ),
        Filter::Token {
            param: "identifier:of-type".into(),
            not: false,
            any_of: vec![token(
                None,
                Some("http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053")
            )],
        }
    );
}

#[test]
fn common_parameters_are_ordinary_parameters() {
    assert_eq!(
        filter("Observation", "_tag", "http://example.org/tags|vip"),
        Filter::Token {
            param: "_tag".into(),
            not: false,
            any_of: vec![token(Some("http://example.org/tags"), Some("vip"))],
        }
    );
    assert_eq!(
        filter(
            "Patient",
            "_profile:below",
            "http://example.org/StructureDefinition/"
        ),
        Filter::Uri {
            param: "_profile".into(),
            mode: UriMatch::Below,
            any_of: vec!["http://example.org/StructureDefinition/".into()],
        }
    );
    assert_eq!(
        filter(
            "ValueSet",
            "url:above",
            "http://example.org/fhir/ValueSet/a/b"
        ),
        Filter::Uri {
            param: "url".into(),
            mode: UriMatch::Above,
            any_of: vec!["http://example.org/fhir/ValueSet/a/b".into()],
        }
    );
    assert_eq!(
        filter("Patient", "_source", "http://example.org/feed"),
        Filter::Uri {
            param: "_source".into(),
            mode: UriMatch::Exact,
            any_of: vec!["http://example.org/feed".into()],
        }
    );
    assert_eq!(
        filter(
            "Patient",
            "_security",
            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"
        ),
        Filter::Token {
            param: "_security".into(),
            not: false,
            any_of: vec![token(
                Some("http://terminology.hl7.org/CodeSystem/v3-Confidentiality"),
                Some("R")
            )],
        }
    );
    assert_eq!(
        filter("Patient", "_id", "a1,b-2.x"),
        Filter::Id(vec!["a1".into(), "b-2.x".into()])
    );
}

#[test]
fn missing_on_every_kind() {
    for (rtype, name, kind) in [
        ("Patient", "name", IndexKind::String),
        ("Patient", "gender", IndexKind::Token),
        ("Patient", "organization", IndexKind::Reference),
        ("Patient", "birthdate", IndexKind::Date),
        ("RiskAssessment", "probability", IndexKind::Number),
        ("Observation", "value-quantity", IndexKind::Quantity),
        ("Patient", "_profile", IndexKind::Uri),
        ("Observation", "code-value-quantity", IndexKind::Composite),
    ] {
        assert_eq!(
            filter(rtype, &format!("{name}:missing"), "true"),
            Filter::Missing {
                param: name.into(),
                kind,
                missing: true,
            }
        );
    }
    assert_eq!(
        filter("Patient", "gender:missing", "false"),
        Filter::Missing {
            param: "gender".into(),
            kind: IndexKind::Token,
            missing: false,
        }
    );
}

// ---------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------

#[test]
fn reference_forms() {
    assert_eq!(
        filter(
            "Observation",
            "subject",
            "123,Patient/456,Patient/789/_history/2,http://other.org/fhir/Patient/1"
        ),
        Filter::Reference {
            param: "subject".into(),
            any_of: vec![
                reference(None, Some("123"), None),
                reference(Some("Patient"), Some("456"), None),
                reference(Some("Patient"), Some("789"), None),
                reference(None, None, Some("http://other.org/fhir/Patient/1")),
            ],
        }
    );
    assert_eq!(
        filter("Observation", "subject:Patient", "123"),
        Filter::Reference {
            param: "subject".into(),
            any_of: vec![reference(Some("Patient"), Some("123"), None)],
        }
    );
    assert_eq!(
        filter(
            "Observation",
            "subject:identifier",
            "http://example.org/nhs|9000000009"
        ),
        Filter::Token {
            param: "subject:identifier".into(),
            not: false,
            any_of: vec![token(Some("http://example.org/nhs"), Some("9000000009"))],
        }
    );
}

// ---------------------------------------------------------------------------
// Composites
// ---------------------------------------------------------------------------

#[test]
fn composites() {
    assert_eq!(
        filter(
            "Observation",
            "code-value-quantity",
            "http://loinc.org|8480-6$gt100,8462-4$lt60||mm[Hg]"
        ),
        Filter::Composite {
            param: "code-value-quantity".into(),
            any_of: vec![
                CompositeFilter {
                    token: token(Some(LOINC), Some("8480-6")),
                    second: CompositeSecond::Quantity(QuantityValue {
                        prefix: Prefix::Gt,
                        low: 99.5,
                        high: 100.5,
                        system: None,
                        code: None,
                    }),
                },
                CompositeFilter {
                    token: token(None, Some("8462-4")),
                    second: CompositeSecond::Quantity(QuantityValue {
                        prefix: Prefix::Lt,
                        low: 59.5,
                        high: 60.5,
                        system: None,
                        code: Some("mm[Hg]".into()),
                    }),
                },
            ],
        }
    );
    assert_eq!(
        filter(
            "Observation",
            "code-value-concept",
            "http://loinc.org|72166-2$http://snomed.info/sct|8517006"
        ),
        Filter::Composite {
            param: "code-value-concept".into(),
            any_of: vec![CompositeFilter {
                token: token(Some(LOINC), Some("72166-2")),
                second: CompositeSecond::Token(token(
                    Some("http://snomed.info/sct"),
                    Some("8517006")
                )),
            }],
        }
    );
    assert_eq!(
        filter("Observation", "code-value-date", "1234-5$ge2015"),
        Filter::Composite {
            param: "code-value-date".into(),
            any_of: vec![CompositeFilter {
                token: token(None, Some("1234-5")),
                second: CompositeSecond::Date(range(Prefix::Ge, Y2015, Y2016 - 1)),
            }],
        }
    );
    assert_eq!(
        filter("Observation", "code-value-string", "1234-5$Très Bien"),
        Filter::Composite {
            param: "code-value-string".into(),
            any_of: vec![CompositeFilter {
                token: token(None, Some("1234-5")),
                second: CompositeSecond::String("tres bien".into()),
            }],
        }
    );
    // An escaped `$` does not split.
    assert!(matches!(
        search("Observation", &[("code-value-string", "a\\$b")]),
        Err(SearchError::InvalidValue { .. })
    ));
}

// ---------------------------------------------------------------------------
// AND / OR
// ---------------------------------------------------------------------------

#[test]
fn repetition_is_and_commas_are_or() {
    assert_eq!(
        filters("Patient", &[("given", "peter,paul"), ("given", "james")]),
        vec![
            string("given", StringMatch::Prefix, &["peter", "paul"]),
            string("given", StringMatch::Prefix, &["james"]),
        ]
    );
}

// ---------------------------------------------------------------------------
// Chains
// ---------------------------------------------------------------------------

fn name_peter() -> Filter {
    string("name", StringMatch::Prefix, &["peter"])
}

#[test]
fn chain_with_a_type() {
    assert_eq!(
        filter("Observation", "subject:Patient.name", "peter"),
        Filter::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            filters: vec![name_peter()],
        }
    );
}

#[test]
fn chain_to_a_single_target() {
    // Patient.organization can only refer to an Organization.
    assert_eq!(
        filter("Patient", "organization.name", "peter"),
        Filter::Chain {
            param: "organization".into(),
            target_type: "Organization".into(),
            filters: vec![name_peter()],
        }
    );
}

#[test]
fn chain_without_a_type_covers_every_target_with_the_parameter() {
    // Observation.subject: Group, Device, Patient, Location; `name` exists on
    // Patient and Location only.
    let chain = |target: &str| Filter::Chain {
        param: "subject".into(),
        target_type: target.into(),
        filters: vec![name_peter()],
    };
    assert_eq!(
        filter("Observation", "subject.name", "peter"),
        Filter::AnyOf(vec![vec![chain("Patient")], vec![chain("Location")]])
    );
}

#[test]
fn multi_level_chain() {
    // `organization` exists on Device (owner), Patient and Location (not Group),
    // and always refers to an Organization.
    let chain = |target: &str| Filter::Chain {
        param: "subject".into(),
        target_type: target.into(),
        filters: vec![Filter::Chain {
            param: "organization".into(),
            target_type: "Organization".into(),
            filters: vec![string("name", StringMatch::Prefix, &["x"])],
        }],
    };
    assert_eq!(
        filter("Observation", "subject.organization.name", "x"),
        Filter::AnyOf(vec![
            vec![chain("Device")],
            vec![chain("Patient")],
            vec![chain("Location")]
        ])
    );
    assert_eq!(
        filter(
            "Observation",
            "subject:Patient.organization.name:exact",
            "X"
        ),
        Filter::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            filters: vec![Filter::Chain {
                param: "organization".into(),
                target_type: "Organization".into(),
                filters: vec![string("name", StringMatch::Exact, &["X"])],
            }],
        }
    );
}

#[test]
fn chain_through_a_reference_to_any_type() {
    // Provenance.target may refer to any type: every type with a `name`
    // parameter is a candidate (Patient, Organization, Location… but not
    // Observation).
    let Filter::AnyOf(groups) = filter("Provenance", "target.name", "x") else {
        panic!("expected AnyOf");
    };
    let targets: Vec<&str> = groups
        .iter()
        .map(|group| match group.as_slice() {
            [
                Filter::Chain {
                    param, target_type, ..
                },
            ] if param == "target" => target_type.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    for expected in ["Patient", "Organization", "Location", "Practitioner"] {
        assert!(targets.contains(&expected), "{expected}");
    }
    assert!(!targets.contains(&"Observation"));
    // With a type, a single chain.
    assert_eq!(
        filter("Provenance", "target:Patient.name", "x"),
        Filter::Chain {
            param: "target".into(),
            target_type: "Patient".into(),
            filters: vec![string("name", StringMatch::Prefix, &["x"])],
        }
    );
}

#[test]
fn reverse_chains() {
    assert_eq!(
        filter("Patient", "_has:Observation:patient:code", "1234-5"),
        Filter::Has {
            source_type: "Observation".into(),
            param: "patient".into(),
            filters: vec![Filter::Token {
                param: "code".into(),
                not: false,
                any_of: vec![token(None, Some("1234-5"))],
            }],
        }
    );
    assert_eq!(
        filter(
            "Patient",
            "_has:Observation:patient:_has:AuditEvent:entity:agent",
            "x"
        ),
        Filter::Has {
            source_type: "Observation".into(),
            param: "patient".into(),
            filters: vec![Filter::Has {
                source_type: "AuditEvent".into(),
                param: "entity".into(),
                filters: vec![Filter::Reference {
                    param: "agent".into(),
                    any_of: vec![reference(None, Some("x"), None)],
                }],
            }],
        }
    );
}

// ---------------------------------------------------------------------------
// Result parameters
// ---------------------------------------------------------------------------

#[test]
fn result_parameters() {
    let parsed = search(
        "Observation",
        &[
            ("_sort", "-date,status,_id,-_lastUpdated"),
            ("_count", "10"),
            ("_include", "Observation:subject:Patient"),
            ("_include:iterate", "Patient:organization"),
            ("_revinclude", "Provenance:target"),
            ("_total", "accurate"),
            ("_summary", "count"),
            ("_elements", "id,code,Observation.status"),
            ("_cursor", "opaque=="),
            ("_format", "json"),
            ("_pretty", "true"),
            ("status", "final"),
        ],
    )
    .unwrap();
    assert_eq!(
        parsed.result,
        ResultParams {
            count: Some(10),
            sort: vec![
                SortKey::Param {
                    param: "date".into(),
                    kind: IndexKind::Date,
                    descending: true
                },
                SortKey::Param {
                    param: "status".into(),
                    kind: IndexKind::Token,
                    descending: false
                },
                SortKey::Id { descending: false },
                SortKey::LastUpdated { descending: true },
            ],
            include: vec![
                Include {
                    source_type: "Observation".into(),
                    param: Some("subject".into()),
                    target_type: Some("Patient".into()),
                    iterate: false,
                },
                Include {
                    source_type: "Patient".into(),
                    param: Some("organization".into()),
                    target_type: None,
                    iterate: true,
                },
            ],
            revinclude: vec![Include {
                source_type: "Provenance".into(),
                param: Some("target".into()),
                target_type: None,
                iterate: false,
            }],
            total: Some(Total::Accurate),
            summary: Some(Summary::Count),
            elements: vec!["id".into(), "code".into(), "Observation.status".into()],
            cursor: Some("opaque==".into()),
        }
    );
    assert_eq!(
        parsed.filters,
        vec![Filter::Token {
            param: "status".into(),
            not: false,
            any_of: vec![token(None, Some("final"))],
        }]
    );
    assert!(parsed.ignored.is_empty());
}

#[test]
fn include_wildcards() {
    let parsed = search(
        "Observation",
        &[("_include", "*"), ("_include", "Observation:*")],
    )
    .unwrap();
    let all = Include {
        source_type: "Observation".into(),
        param: None,
        target_type: None,
        iterate: false,
    };
    assert_eq!(parsed.result.include, vec![all.clone(), all]);
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[track_caller]
fn error(rtype: &str, name: &str, value: &str) -> SearchError {
    match search(rtype, &[(name, value)]) {
        Ok(parsed) => panic!("{name}={value} parsed: {parsed:?}"),
        Err(e) => e,
    }
}

fn invalid_value(param: &str) -> impl Fn(&SearchError) -> bool + '_ {
    move |e| matches!(e, SearchError::InvalidValue { param: p, .. } if p == param)
}

#[test]
fn unknown_types_and_parameters() {
    assert_eq!(
        error("Nope", "name", "x"),
        SearchError::UnknownResourceType("Nope".into())
    );
    assert_eq!(
        error("Patient", "foo", "x"),
        SearchError::UnknownParameter("foo".into())
    );
    assert_eq!(
        error("Patient", "code", "x"),
        SearchError::UnknownParameter("code".into())
    );
    // No target of Observation.subject has `foo`.
    assert_eq!(
        error("Observation", "subject.foo", "x"),
        SearchError::UnknownParameter("subject.foo".into())
    );
}

#[test]
fn invalid_modifiers() {
    for (rtype, name, modifier) in [
        ("Patient", "name:foo", "foo"),
        ("Patient", "name:not", "not"),
        ("Patient", "birthdate:exact", "exact"),
        ("Patient", "gender:exact", "exact"),
        ("Patient", "gender:Patient", "Patient"),
        ("Observation", "subject:Practitioner", "Practitioner"),
        ("Observation", "value-quantity:text", "text"),
        ("Patient", "_id:missing", "missing"),
        ("Patient", "_lastUpdated:exact", "exact"),
        ("Patient", "_profile:contains", "contains"),
        ("Observation", "code-value-quantity:exact", "exact"),
        ("Observation", "_count:x", "x"),
        ("Observation", "_include:recurse", "recurse"),
    ] {
        assert_eq!(
            error(rtype, name, "x"),
            SearchError::InvalidModifier {
                param: name.into(),
                modifier: modifier.into(),
            },
            "{name}"
        );
    }
}

#[test]
fn malformed_values() {
    for (rtype, name, value) in [
        ("Patient", "birthdate", "2015-13"),
        ("Patient", "birthdate", "xx2015"),
        ("Patient", "birthdate", "2015,"),
        ("Patient", "birthdate", ""),
        ("RiskAssessment", "probability", "1.5.5"),
        ("RiskAssessment", "probability", "gtabc"),
        ("Observation", "value-quantity", "5|mg"),
        ("Patient", "gender", "|"),
        ("Patient", "identifier:of-type", "http://x|MR"),
        ("Observation", "subject", "Nope/1"),
        ("Observation", "subject", "bad id"),
        ("Observation", "subject:Patient", "Group/1"),
        ("Patient", "name", "   "),
        ("Patient", "gender:missing", "yes"),
        ("Patient", "_id", "bad id"),
        ("Observation", "code-value-quantity", "1234-5"),
        ("Observation", "code-value-quantity", "a$b$c"),
        ("Observation", "code-value-quantity", "1234-5$abc"),
        ("Observation", "_count", "-1"),
        ("Observation", "_total", "some"),
        ("Observation", "_summary", "yes"),
        ("Observation", "_elements", "a b"),
        ("Observation", "_sort", "nope"),
        ("Observation", "_sort", "date,"),
        ("Observation", "_include", "Observation"),
        ("Observation", "_include", "Patient:organization"),
        ("Observation", "_include", "Observation:status"),
        (
            "Observation",
            "_include",
            "Observation:subject:Practitioner",
        ),
        ("Observation", "_revinclude", "Patient:organization"),
    ] {
        let e = error(rtype, name, value);
        assert!(invalid_value(name)(&e), "{name}={value}: {e:?}");
    }
    // A repeated single-valued result parameter.
    let e = search("Observation", &[("_count", "1"), ("_count", "2")]).unwrap_err();
    assert!(invalid_value("_count")(&e), "{e:?}");
}

#[test]
fn invalid_chains() {
    for (rtype, name) in [
        ("Observation", "status.name"),
        ("Patient", "_has:Nope:patient:code"),
        ("Patient", "_has:Observation:nope:code"),
        ("Patient", "_has:Observation:status:code"),
        ("Patient", "_has:Observation:performer"),
        ("Practitioner", "_has:Observation:patient:code"),
    ] {
        let e = error(rtype, name, "x");
        assert!(
            matches!(&e, SearchError::InvalidChain { param, .. } if param == name),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn unsupported_features() {
    for (rtype, name) in [
        ("Observation", "code:below"),
        ("Observation", "code:above"),
        ("Observation", "code:in"),
        ("Observation", "code:not-in"),
        ("Observation", "subject:above"),
        ("Observation", "_revinclude"),
        ("Observation", "_sort"),
    ] {
        let value = match name {
            "_revinclude" => "*",
            "_sort" => "code-value-quantity",
            _ => "x",
        };
        let e = error(rtype, name, value);
        assert!(
            matches!(&e, SearchError::Unsupported { param, .. } if param == name),
            "{name}: {e:?}"
        );
    }
    // Chains deeper than MAX_DEPTH.
    let deep = "subject:Patient.organization.partof.partof.partof.name";
    let e = error("Observation", deep, "x");
    assert!(matches!(e, SearchError::Unsupported { .. }), "{e:?}");
}

#[test]
fn unsupported_parameters() {
    for (rtype, name) in [
        ("Patient", "_text"),
        ("Patient", "_content"),
        ("Patient", "_list"),
        ("Patient", "_type"),
        ("Patient", "_filter"),
        ("Patient", "_query"),
        ("Patient", "_contained"),
        ("Location", "near"),
        ("DocumentReference", "relationship"),
        ("MolecularSequence", "chromosome-variant-coordinate"),
    ] {
        let e = error(rtype, name, "x");
        assert!(
            matches!(&e, SearchError::UnsupportedParameter { param, .. } if param == name),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn lenient_mode_skips_unknown_and_unsupported_parameters_only() {
    let parsed = lenient(
        "Patient",
        &[
            ("foo", "x"),
            ("gender", "male"),
            ("_text", "cancer"),
            ("organization.nope", "x"),
            ("_contained", "true"),
        ],
    )
    .unwrap();
    assert_eq!(
        parsed.ignored,
        ["foo", "_text", "organization.nope", "_contained"]
    );
    assert_eq!(
        parsed.filters,
        vec![Filter::Token {
            param: "gender".into(),
            not: false,
            any_of: vec![token(None, Some("male"))],
        }]
    );
    // Malformed values and bad modifiers are still errors.
    assert!(lenient("Patient", &[("birthdate", "soon")]).is_err());
    assert!(lenient("Patient", &[("name:foo", "x")]).is_err());
}

#[test]
fn helpers_for_the_caller() {
    for name in [
        "_sort",
        "_count",
        "_include:iterate",
        "_revinclude",
        "_format",
        "_cursor",
    ] {
        assert!(is_result_parameter(name), "{name}");
    }
    for name in [
        "_id",
        "_tag",
        "name",
        "_has:Observation:patient:code",
        "_lastUpdated",
    ] {
        assert!(!is_result_parameter(name), "{name}");
    }
    assert_eq!(parse_date_range("2015"), Some((Y2015, Y2016 - 1)));
    assert_eq!(parse_date_range("2015-13"), None);
}
