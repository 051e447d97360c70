//! Unit tests of the decision rules (the decision matrix and property tests
//! live in `tests/`).

use super::*;
use serde_json::json;

const NOW: Micros = 1_767_225_600_000_000; // 2026-01-01

fn staff(role: &str, org: &str) -> Principal {
    Principal {
        subject: format!("{role}-user"),
        name: "A User".into(),
        role: role.into(),
        org: Some(org.into()),
        registration: Some("GMC:1234567".into()),
        patient: None,
        related_person: None,
        scopes: scopes::parse("user/*.cruds"),
    }
}

fn rel(org: &str, kind: &str, active: bool) -> Relationship {
    Relationship {
        org: org.into(),
        kind: kind.into(),
        user: None,
        active,
        start: None,
        end: None,
        detail: None,
    }
}

#[test]
fn gp_with_registration_sees_everything_but_others_sealed_items() {
    let policy = Policy::default();
    let rels = [rel("GP1", relationships::GP_REGISTRATION, true)];
    let facts = Facts {
        patient_id: "p1",
        relationships: &rels,
        proxy_levels: &[],
        org_type: None,
    };
    let a = policy
        .patient_access(&staff("gp", "GP1"), &facts, NOW)
        .unwrap();
    assert_eq!(a.basis, Basis::Relationship("gp-registration".into()));
    let obs = json!({"resourceType": "Observation", "id": "o"});
    assert_eq!(a.item("Observation", Some("p1"), &obs), Item::Show(None));
    let sealed = json!({"resourceType": "Condition", "id": "c", "meta": {"security": [{"system": labels::ACT_CODE, "code": "HIV"}],
        "tag": [{"system": labels::RECORDED_BY, "code": "OTHER"}]}});
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed),
        Item::Withhold(Withheld::Sealed)
    );
    let own = json!({"resourceType": "Condition", "id": "c", "meta": {"security": [{"system": labels::ACT_CODE, "code": "HIV"}],
        "tag": [{"system": labels::RECORDED_BY, "code": "GP1"}]}});
    assert_eq!(a.item("Condition", Some("p1"), &own), Item::Show(None));
    assert_eq!(
        a.item("Observation", Some("p2"), &obs),
        Item::Withhold(Withheld::OtherPerson)
    );
}

#[test]
fn no_relationship_offers_break_glass_to_clinicians_only() {
    let policy = Policy::default();
    let facts = Facts {
        patient_id: "p1",
        relationships: &[],
        proxy_levels: &[],
        org_type: None,
    };
    let d = policy
        .patient_access(&staff("hospital-clinician", "H1"), &facts, NOW)
        .unwrap_err();
    assert_eq!(d.code, "no-relationship");
    assert!(d.break_glass_available);
    let d = policy
        .patient_access(&staff("care-worker", "CH1"), &facts, NOW)
        .unwrap_err();
    assert!(!d.break_glass_available);
}

#[test]
fn care_worker_view_is_restricted() {
    let policy = Policy::default();
    let rels = [
        rel("CH1", relationships::EPISODE_OF_CARE, true),
        rel("GP1", relationships::GP_REGISTRATION, true),
    ];
    let facts = Facts {
        patient_id: "p1",
        relationships: &rels,
        proxy_levels: &[],
        org_type: None,
    };
    let mut a = policy
        .patient_access(&staff("care-worker", "CH1"), &facts, NOW)
        .unwrap();
    assert!(a.check("DiagnosticReport", Permission::Read).is_err());
    let pending = a.pending_latest();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].rtype, "Encounter");
    // Asked for one type's only: the same query, or none for another type.
    let only = a.pending_latest_of(|t| t == "Encounter");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].criteria, pending[0].criteria);
    assert!(
        a.pending_latest_of(|t| t == "MedicationStatement")
            .is_empty()
    );
    let gp_enc = json!({"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/p1"},
        "class": {"code": "AMB"}, "meta": {"tag": [{"system": labels::RECORDED_BY, "code": "GP1"}]},
        "reasonCode": [{"text": "private"}], "period": {"start": "2025-12-01"}});
    assert_eq!(
        a.item("Encounter", Some("p1"), &gp_enc),
        Item::Withhold(Withheld::NotInView)
    );
    a.resolve_latest(pending[0].rule, vec!["e1".into()]);
    let Item::Show(Some(elements)) = a.item("Encounter", Some("p1"), &gp_enc) else {
        panic!("shown with elements")
    };
    let mut m = gp_enc.as_object().unwrap().clone();
    keep_elements(&mut m, elements);
    assert!(m.get("reasonCode").is_none() && m.get("period").is_some());
    let stopped = json!({"resourceType": "MedicationStatement", "id": "m", "status": "stopped"});
    assert_eq!(
        a.item("MedicationStatement", Some("p1"), &stopped),
        Item::Withhold(Withheld::NotInView)
    );
    // Writes: vital signs yes, other observations no, and never another org's entry.
    let vitals =
        json!({"resourceType": "Observation", "category": [{"coding": [{"code": "vital-signs"}]}]});
    assert!(
        a.may_write("Observation", Permission::Create, Some(&vitals), None)
            .is_ok()
    );
    let lab =
        json!({"resourceType": "Observation", "category": [{"coding": [{"code": "laboratory"}]}]});
    assert!(
        a.may_write("Observation", Permission::Create, Some(&lab), None)
            .is_err()
    );
    assert_eq!(
        a.may_write(
            "Observation",
            Permission::Update,
            Some(&vitals),
            Some(&gp_enc)
        )
        .unwrap_err()
        .code,
        "other-organisations-entry"
    );
}

#[test]
fn scopes_narrow() {
    let policy = Policy::default();
    let rels = [rel("GP1", relationships::GP_REGISTRATION, true)];
    let facts = Facts {
        patient_id: "p1",
        relationships: &rels,
        proxy_levels: &[],
        org_type: None,
    };
    let mut p = staff("gp", "GP1");
    p.scopes = scopes::parse("user/Observation.rs");
    let a = policy.patient_access(&p, &facts, NOW).unwrap();
    assert!(a.check("Observation", Permission::Read).is_ok());
    assert_eq!(
        a.check("Condition", Permission::Read).unwrap_err().code,
        "scope"
    );
    assert!(
        a.may_write("Observation", Permission::Create, Some(&json!({})), None)
            .is_err()
    );
}

#[test]
fn elements_keep_nested() {
    let mut m = json!({"resourceType": "AllergyIntolerance", "id": "a", "note": [{"text": "x"}],
        "reaction": [{"manifestation": [{"text": "rash"}], "description": "free text"}]})
    .as_object()
    .unwrap()
    .clone();
    keep_elements(&mut m, &["reaction.manifestation".to_owned()]);
    assert_eq!(
        Value::Object(m),
        json!({"resourceType": "AllergyIntolerance", "id": "a", "reaction": [{"manifestation": [{"text": "rash"}]}]})
    );
}

#[test]
fn configured_policy_replaces_and_adds_roles_and_refuses_nonsense() {
    let defaults = Policy::default();
    let mut care = defaults.role("care-worker").cloned().unwrap();
    care.view = View::Rules(
        vec![TypeRule {
            rtype: "AllergyIntolerance".into(),
            conditions: vec![],
            elements: None,
        }]
        .into(),
    );
    let mut reablement = care.clone();
    reablement.code = "reablement-worker".into();
    let p = Policy::configured(PolicySettings {
        recent_encounter_days: Some(10),
        break_glass_hours: Some(2),
        roles: vec![care.clone(), reablement],
        local_organisations: vec!["GP1".into()],
    })
    .unwrap();
    assert_eq!(p.recent_encounter, 10 * DAY);
    assert_eq!(p.break_glass_for, 2 * 3_600_000_000);
    assert_eq!(p.role("care-worker"), Some(&care), "replaced in place");
    assert!(p.role("reablement-worker").is_some(), "added");
    assert_eq!(p.roles.len(), defaults.roles.len() + 1);
    // An empty table is the defaults.
    assert_eq!(
        Policy::configured(PolicySettings::default()).unwrap().roles,
        defaults.roles
    );

    let bad = |s: PolicySettings| Policy::configured(s).unwrap_err();
    assert!(
        bad(PolicySettings {
            recent_encounter_days: Some(0),
            ..Default::default()
        })
        .contains("recent_encounter_days")
    );
    assert!(
        bad(PolicySettings {
            break_glass_hours: Some(48),
            ..Default::default()
        })
        .contains("break_glass_hours")
    );
    let mut glass = care.clone();
    glass.break_glass = true;
    assert!(
        bad(PolicySettings {
            roles: vec![glass],
            ..Default::default()
        })
        .contains("clinical roles only")
    );
    let mut unregistered = defaults.role("gp").cloned().unwrap();
    unregistered.needs_registration = false;
    assert!(
        bad(PolicySettings {
            roles: vec![unregistered],
            ..Default::default()
        })
        .contains("registration")
    );
    assert!(
        bad(PolicySettings {
            roles: vec![care.clone(), care.clone()],
            ..Default::default()
        })
        .contains("twice")
    );
    let mut odd = care;
    odd.code = "care worker".into();
    assert!(
        bad(PolicySettings {
            roles: vec![odd],
            ..Default::default()
        })
        .contains("letters")
    );
}

fn marker(org: &str, kind: &str, detail: Option<&str>) -> Relationship {
    Relationship {
        detail: detail.map(str::to_owned),
        ..rel(org, kind, true)
    }
}

fn facts<'a>(rels: &'a [Relationship], org_type: Option<&'a str>) -> Facts<'a> {
    Facts {
        patient_id: "p1",
        relationships: rels,
        proxy_levels: &[],
        org_type,
    }
}

#[test]
fn dissent_keeps_out_every_organisation_but_the_practice_until_break_glass() {
    let policy = Policy::default();
    let base = [
        rel("GP1", relationships::GP_REGISTRATION, true),
        rel("CH1", relationships::EPISODE_OF_CARE, true),
    ];
    let nurse = staff("care-nurse", "CH1");
    let worker = staff("care-worker", "CH1");
    for (dissent_org, org_type, applies) in [
        ("*", None, true),
        ("CH1", None, true),
        ("CH2", None, false),
        ("type:care-home", Some("care-home"), true),
        ("type:pharmacy", Some("care-home"), false),
        // The organisation's kind is unknown: fail closed.
        ("type:care-home", None, true),
    ] {
        let mut rels = base.to_vec();
        rels.push(marker(dissent_org, relationships::DISSENT, None));
        let got = policy.patient_access(&nurse, &facts(&rels, org_type), NOW);
        if applies {
            let d = got.unwrap_err();
            assert_eq!(d.code, "dissent", "{dissent_org}");
            assert!(d.break_glass_available);
            let d = policy
                .patient_access(&worker, &facts(&rels, org_type), NOW)
                .unwrap_err();
            assert_eq!(d.code, "dissent");
            assert!(!d.break_glass_available, "care workers have no break-glass");
        } else {
            assert!(got.is_ok(), "{dissent_org} {org_type:?}");
        }
        // The registered practice is never kept out.
        assert!(
            policy
                .patient_access(&staff("gp", "GP1"), &facts(&rels, org_type), NOW)
                .is_ok()
        );
        // Break-glass passes it.
        let mut glass = rels.clone();
        glass.push(Relationship {
            user: Some("care-nurse-user".into()),
            start: Some(NOW - 1),
            end: Some(NOW + 1),
            ..rel("CH1", relationships::BREAK_GLASS, true)
        });
        let a = policy
            .patient_access(&nurse, &facts(&glass, org_type), NOW)
            .unwrap();
        if applies {
            assert_eq!(a.basis, Basis::BreakGlass);
        }
    }
    // A dissent outside its period does not apply.
    let mut rels = base.to_vec();
    rels.push(Relationship {
        end: Some(NOW - 1),
        ..marker("*", relationships::DISSENT, None)
    });
    assert!(
        policy
            .patient_access(&nurse, &facts(&rels, None), NOW)
            .is_ok()
    );
    // Nor to someone without any relationship: they hear "no relationship".
    let d = policy
        .patient_access(
            &staff("hospital-clinician", "H9"),
            &facts(&[marker("*", relationships::DISSENT, None)], None),
            NOW,
        )
        .unwrap_err();
    assert_eq!(d.code, "no-relationship");
}

#[test]
fn practice_sharing_rules() {
    use relationships::sharing;
    let policy = Policy {
        local_organisations: vec!["H1".into()],
        ..Policy::default()
    };
    let hospital = |org: &str| staff("hospital-clinician", org);
    let with = |rules: &[(&str, &str)], org: &str| {
        let mut rels = vec![
            rel("GP1", relationships::GP_REGISTRATION, true),
            rel(org, relationships::ENCOUNTER, true),
        ];
        for (kind, target) in rules {
            rels.push(marker(target, kind, Some("GP1")));
        }
        policy
            .patient_access(&hospital(org), &facts(&rels, None), NOW)
            .map(|_| ())
            .map_err(|d| d.code)
    };
    assert_eq!(with(&[], "H2"), Ok(()));
    assert_eq!(with(&[(sharing::OFF, "*")], "H1"), Err("sharing-off"));
    assert_eq!(with(&[(sharing::DENY, "H2")], "H2"), Err("sharing-denied"));
    assert_eq!(with(&[(sharing::DENY, "H2")], "H1"), Ok(()));
    assert_eq!(with(&[(sharing::LOCAL, "*")], "H1"), Ok(()));
    assert_eq!(
        with(&[(sharing::LOCAL, "*")], "H2"),
        Err("sharing-local-only")
    );
    assert_eq!(
        with(&[(sharing::ALLOW_LIST, "*")], "H2"),
        Err("sharing-not-allowed")
    );
    assert_eq!(
        with(&[(sharing::ALLOW_LIST, "*"), (sharing::ALLOW, "H2")], "H2"),
        Ok(())
    );
    assert_eq!(
        with(&[(sharing::VERIFY, "H2")], "H2"),
        Err(APPROVAL_REQUIRED)
    );
    assert_eq!(
        with(&[(sharing::VERIFY, "H2"), (sharing::PENDING, "H2")], "H2"),
        Err(APPROVAL_REQUIRED)
    );
    assert_eq!(
        with(&[(sharing::VERIFY, "H2"), (sharing::APPROVED, "H2")], "H2"),
        Ok(())
    );
    assert_eq!(
        with(&[(sharing::VERIFY, "H2"), (sharing::REJECTED, "H2")], "H2"),
        Err("sharing-rejected")
    );
    // Another practice's rules do not apply to this person.
    let rels = vec![
        rel("GP1", relationships::GP_REGISTRATION, true),
        rel("H2", relationships::ENCOUNTER, true),
        marker("*", sharing::OFF, Some("GP9")),
    ];
    assert!(
        policy
            .patient_access(&hospital("H2"), &facts(&rels, None), NOW)
            .is_ok()
    );
}

#[test]
fn explicit_consent_opens_named_categories_to_a_named_organisation() {
    let policy = Policy::default();
    let sealed = |codes: &[&str]| {
        let security: Vec<Value> = codes
            .iter()
            .map(|c| {
                let system = if *c == "R" {
                    labels::CONFIDENTIALITY
                } else {
                    labels::ACT_CODE
                };
                json!({"system": system, "code": c})
            })
            .collect();
        json!({"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/p1"},
            "meta": {"security": security, "tag": [{"system": labels::RECORDED_BY, "code": "GP1"}]}})
    };
    let base = vec![
        rel("GP1", relationships::GP_REGISTRATION, true),
        rel("CH1", relationships::EPISODE_OF_CARE, true),
        marker("GP1", relationships::SEALED, Some("PSY")),
    ];
    let nurse = staff("care-nurse", "CH1");
    let a = policy
        .patient_access(&nurse, &facts(&base, None), NOW)
        .unwrap();
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY"])),
        Item::Withhold(Withheld::Sealed)
    );
    assert!(a.sealed_withheld);
    let mut rels = base.clone();
    rels.push(marker(
        "CH1",
        relationships::SENSITIVE_CONSENT,
        Some("PSY SDV"),
    ));
    let a = policy
        .patient_access(&nurse, &facts(&rels, None), NOW)
        .unwrap();
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY"])),
        Item::Show(None)
    );
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY", "SDV"])),
        Item::Show(None)
    );
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY", "HIV"])),
        Item::Withhold(Withheld::Sealed),
        "every sensitivity topic must be consented"
    );
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY", "R"])),
        Item::Show(None),
        "R comes with the topic"
    );
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["R"])),
        Item::Withhold(Withheld::Sealed),
        "R alone must be named"
    );
    assert!(!a.sealed_withheld, "the only sealed item is now open");
    // Search criteria admit exactly what the item check admits.
    let criteria = a.criteria("Condition").unwrap();
    for codes in [
        &["PSY"][..],
        &["PSY", "SDV"],
        &["PSY", "R"],
        &["PSY", "HIV"],
        &["R"],
        &["HIV", "R"],
        &[],
    ] {
        let item = sealed(codes);
        let by_item = matches!(a.item("Condition", Some("p1"), &item), Item::Show(_));
        assert_eq!(
            eval_security(&criteria, &item),
            by_item,
            "{codes:?}: {criteria:?}"
        );
    }
    // Another organisation gains nothing from it.
    let mut other = rels.clone();
    other.push(rel("CH2", relationships::EPISODE_OF_CARE, true));
    let a = policy
        .patient_access(&staff("care-nurse", "CH2"), &facts(&other, None), NOW)
        .unwrap();
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY"])),
        Item::Withhold(Withheld::Sealed)
    );
    // Withdrawn (the marker is gone) or expired: closed again.
    let mut expired = base;
    expired.push(Relationship {
        end: Some(NOW - 1),
        ..marker("CH1", relationships::SENSITIVE_CONSENT, Some("PSY"))
    });
    let a = policy
        .patient_access(&nurse, &facts(&expired, None), NOW)
        .unwrap();
    assert_eq!(
        a.item("Condition", Some("p1"), &sealed(&["PSY"])),
        Item::Withhold(Withheld::Sealed)
    );
}

/// Evaluates `_security` token criteria (and `_tag`, which these items'
/// recorder never matches here) against an item.
fn eval_security(cs: &[Criterion], r: &Value) -> bool {
    cs.iter().all(|c| match c {
        Criterion::Token { param, not, any_of } => {
            let list = if param == "_security" {
                "security"
            } else {
                "tag"
            };
            let has = json::values(r, &format!("meta.{list}"))
                .into_iter()
                .any(|l| {
                    any_of.iter().any(|(s, code)| {
                        l.get("code").and_then(Value::as_str) == Some(code.as_str())
                            && s.as_deref()
                                .is_none_or(|s| l.get("system").and_then(Value::as_str) == Some(s))
                    })
                });
            has != *not
        }
        Criterion::AnyOf(groups) => groups.iter().any(|g| eval_security(g, r)),
        _ => true,
    })
}
