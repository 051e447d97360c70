//! The registry of R4 SearchParameters, as compiled from the committed file.

use std::collections::BTreeSet;
use std::time::Instant;

use search::{ParamKind, Support, registry};

#[test]
fn every_expression_compiles() {
    let started = Instant::now();
    let registry = registry();
    eprintln!(
        "registry ready in {:?} (or already loaded): {} distinct expressions compiled",
        started.elapsed(),
        registry.expression_count()
    );
    assert_eq!(registry.compile_errors(), &[] as &[String]);
    assert_eq!(registry.resource_types().len(), 145);
}

#[test]
fn looks_up_parameters_per_type() {
    let registry = registry();
    let name = registry.param("Patient", "name").unwrap();
    assert_eq!(name.kind, ParamKind::String);
    assert_eq!(name.expression.as_deref(), Some("Patient.name"));
    assert!(name.is_indexed());

    // A parameter shared by many types keeps only its own branch.
    let code = registry.param("Observation", "code").unwrap();
    assert_eq!(code.kind, ParamKind::Token);
    assert_eq!(code.expression.as_deref(), Some("Observation.code"));

    let subject = registry.param("Observation", "subject").unwrap();
    assert_eq!(subject.kind, ParamKind::Reference);
    assert_eq!(subject.targets, ["Group", "Device", "Patient", "Location"]);

    // References to Any list every resource type.
    let target = registry.param("Provenance", "target").unwrap();
    assert_eq!(target.targets.len(), 145);
    assert!(target.may_target("Observation"));

    assert!(registry.param("Patient", "code").is_none());
    assert!(registry.param("NotAType", "name").is_none());
    assert!(registry.params("NotAType").is_empty());
}

#[test]
fn common_parameters_apply_to_every_type() {
    let registry = registry();
    for rtype in registry.resource_types() {
        for code in ["_tag", "_profile", "_security", "_source"] {
            let def = registry
                .param(rtype, code)
                .unwrap_or_else(|| panic!("{rtype} lacks {code}"));
            assert!(def.is_indexed(), "{rtype}.{code}");
        }
        assert_eq!(
            registry.param(rtype, "_id").unwrap().support,
            Support::Column
        );
        assert_eq!(
            registry.param(rtype, "_lastUpdated").unwrap().support,
            Support::Column
        );
    }
    // `_text` is defined on DomainResource: Bundle and Binary do not have it.
    assert!(registry.param("Patient", "_text").is_some());
    assert!(registry.param("Bundle", "_text").is_none());
    assert!(registry.param("Binary", "_text").is_none());
}

/// The indexed parameters never include `_id`/`_lastUpdated` (columns) or the
/// parameters without an index.
#[test]
fn indexed_parameters_exclude_columns_and_unsupported() {
    let codes: Vec<&str> = registry()
        .indexed_params("Patient")
        .map(|d| d.code.as_str())
        .collect();
    for absent in ["_id", "_lastUpdated", "_text", "_content", "_query"] {
        assert!(!codes.contains(&absent), "{absent}");
    }
    for present in [
        "_tag",
        "name",
        "family",
        "given",
        "birthdate",
        "identifier",
        "organization",
    ] {
        assert!(codes.contains(&present), "{present}");
    }
}

/// Every R4 parameter is supported except these (by hand, from the R4
/// definitions): full text and named queries, `near` (special), and the
/// composites that are not a token and one token/quantity/date/string.
#[test]
fn unsupported_parameters_are_exactly_the_expected_ones() {
    let registry = registry();
    let mut unsupported = BTreeSet::new();
    for rtype in registry.resource_types() {
        for def in registry.params(rtype) {
            if let Support::Unsupported(_) = def.support
                && !matches!(def.code.as_str(), "_text" | "_content" | "_query")
            {
                unsupported.insert(format!("{rtype}.{}", def.code));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "DocumentReference.relationship",
        "Location.near",
        "MolecularSequence.chromosome-variant-coordinate",
        "MolecularSequence.chromosome-window-coordinate",
        "MolecularSequence.referenceseqid-variant-coordinate",
        "MolecularSequence.referenceseqid-window-coordinate",
    ]
    .map(String::from)
    .into();
    assert_eq!(unsupported, expected);
}

#[test]
fn composites_have_their_components() {
    let def = registry()
        .param("Observation", "code-value-quantity")
        .unwrap();
    assert_eq!(def.kind, ParamKind::Composite);
    let components: Vec<(ParamKind, &str)> = def
        .components
        .iter()
        .map(|c| (c.kind, c.expression.as_str()))
        .collect();
    assert_eq!(
        components,
        [
            (ParamKind::Token, "code"),
            (ParamKind::Quantity, "value.as(Quantity)")
        ]
    );
}

#[test]
fn patient_compartment_parameters_follow_the_definition() {
    let registry = registry();
    assert_eq!(
        registry.compartment_params("Observation"),
        ["subject", "performer"]
    );
    assert_eq!(
        registry.compartment_params("Condition"),
        ["patient", "asserter"]
    );
    assert_eq!(registry.compartment_params("Patient"), ["link"]);
    assert!(registry.compartment_params("Organization").is_empty());
}
