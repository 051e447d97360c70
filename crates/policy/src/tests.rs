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
    };
    let mut a = policy
        .patient_access(&staff("care-worker", "CH1"), &facts, NOW)
        .unwrap();
    assert!(a.check("DiagnosticReport", Permission::Read).is_err());
    let pending = a.pending_latest();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].rtype, "Encounter");
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
    care.view = View::Rules(vec![TypeRule {
        rtype: "AllergyIntolerance".into(),
        conditions: vec![],
        elements: None,
    }]);
    let mut reablement = care.clone();
    reablement.code = "reablement-worker".into();
    let p = Policy::configured(PolicySettings {
        recent_encounter_days: Some(10),
        break_glass_hours: Some(2),
        roles: vec![care.clone(), reablement],
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
