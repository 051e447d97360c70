//! Property tests of the policy against a small reference model written
//! from issue #4 (and issue #5's dissent from sharing).
//!
//! - `access_and_shown_items_agree_with_the_reference`: random principals,
//!   relationship rows, proxy levels and items. Whether the person's record
//!   opens at all must agree with the reference; every item the policy shows
//!   must be allowed by the reference; for the full-view principals
//!   (clinical, the person, proxies, system clients) every item the
//!   reference allows must be shown; restricted views never keep narrative,
//!   notes or free text.
//! - `is_current_agrees_with_the_rule`: `Relationship::is_current` against
//!   "active and within its period, or an encounter that ended within the
//!   recent window".
//! - `criteria_agree_with_item`: a search with `criteria()` (evaluated here)
//!   returns exactly the items `item()` shows, `Latest` resolved.

#[cfg(test)]
mod common;

use common::*;
use policy::{Context, Facts, Item, PatientAccess, Permission, Policy, Principal, Relationship};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// The reference model.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum K {
    Clinical,
    SocialWorker,
    CareWorker,
    Patient,
    Proxy,
    NoPersonData,
    Integration,
    Unknown,
}

const ROLES: &[(&str, K)] = &[
    ("gp", K::Clinical),
    ("hospital-clinician", K::Clinical),
    ("community-clinician", K::Clinical),
    ("pharmacist", K::Clinical),
    ("care-nurse", K::Clinical),
    ("social-worker", K::SocialWorker),
    ("care-worker", K::CareWorker),
    ("patient", K::Patient),
    ("proxy", K::Proxy),
    ("data-controller", K::NoPersonData),
    ("commissioner", K::NoPersonData),
    ("integration", K::Integration),
    ("admin", K::NoPersonData),
    ("doctor", K::Unknown),
];

fn kind_of(role: &str) -> K {
    ROLES
        .iter()
        .find(|r| r.0 == role)
        .map_or(K::Unknown, |r| r.1)
}

const RECENT: i64 = 30 * DAY;

/// The relationship rule: a row counts for `org` (and, if it names one,
/// `user`; break-glass always names one) when it is active within its
/// period, or is an encounter that ended within the recent window.
fn ref_current(r: &Relationship, org: &str, user: &str, now: i64, recent: i64) -> bool {
    if !RELATIONSHIP_KINDS.contains(&r.kind.as_str()) || r.org != org {
        return false;
    }
    let for_user = match &r.user {
        Some(u) => u == user,
        None => r.kind != "break-glass",
    };
    let in_period = r.start.is_none_or(|s| s <= now) && r.end.is_none_or(|e| e >= now);
    for_user
        && ((r.active && in_period)
            || (r.kind == "encounter" && r.end.is_some_and(|e| e >= now - recent && e <= now)))
}

/// Rows where issue #4 and the implementation read the rule differently
/// (see the ignored tests at the end): an encounter row not active within
/// its period whose end lies in the future, and a break-glass row naming
/// no user. The properties leave them out.
fn disputed(r: &Relationship, now: i64) -> bool {
    let in_period = r.start.is_none_or(|s| s <= now) && r.end.is_none_or(|e| e >= now);
    (r.kind == "encounter" && r.end.is_some_and(|e| e > now) && !(r.active && in_period))
        || (r.kind == "break-glass" && r.user.is_none())
}

/// May this principal open person `p1`'s record at all?
fn ref_access(p: &Principal, facts: &Facts) -> bool {
    let k = kind_of(&p.role);
    let registered = p.registration.as_deref().is_some_and(|r| !r.is_empty());
    if matches!(k, K::Clinical | K::SocialWorker) && !registered {
        return false;
    }
    let current = |break_glass_counts: bool| {
        p.org.as_deref().is_some_and(|org| {
            facts.relationships.iter().any(|r| {
                (break_glass_counts || r.kind != "break-glass")
                    && ref_current(r, org, &p.subject, NOW, RECENT)
            })
        })
    };
    // Issue #5: the person's dissent (from everyone, or from this
    // organisation), in force, keeps every organisation but the registered
    // practice out; only break-glass passes it.
    let in_force = |r: &Relationship| {
        r.active && r.start.is_none_or(|s| s <= NOW) && r.end.is_none_or(|e| e >= NOW)
    };
    let registered_here = facts.relationships.iter().any(|r| {
        r.kind == "gp-registration" && r.active && p.org.as_deref() == Some(r.org.as_str())
    });
    let dissent = facts.relationships.iter().any(|r| {
        r.kind == "dissent"
            && in_force(r)
            && (r.org == "*" || p.org.as_deref() == Some(r.org.as_str()))
    });
    let blocked = dissent && !registered_here;
    let glass = p.org.as_deref().is_some_and(|org| {
        facts
            .relationships
            .iter()
            .any(|r| r.kind == "break-glass" && ref_current(r, org, &p.subject, NOW, RECENT))
    });
    match k {
        K::Integration => true,
        K::Clinical if blocked => current(true) && glass,
        K::SocialWorker | K::CareWorker if blocked => false,
        K::Patient => p.patient.as_deref() == Some(facts.patient_id),
        K::Proxy => {
            p.patient.as_deref() == Some(facts.patient_id)
                && p.related_person.is_some()
                && !facts.proxy_levels.is_empty()
        }
        K::Clinical => current(true),
        K::SocialWorker | K::CareWorker => current(false),
        K::NoPersonData | K::Unknown => false,
    }
}

/// The types NHS proxy access levels (VRS) open.
fn level_types(level: &str) -> &'static [&'static str] {
    match level {
        "PRESCR" => &[
            "MedicationRequest",
            "MedicationStatement",
            "MedicationAdministration",
        ],
        "APPT" => &["Appointment"],
        "TEST" => &["Observation", "DiagnosticReport"],
        "VACC" => &["Immunization"],
        "COND" => &["Condition", "AllergyIntolerance"],
        "CONSULT" => &["Encounter", "Procedure"],
        "DOCS" => &["DocumentReference", "QuestionnaireResponse"],
        "RECRD" => &[
            "AllergyIntolerance",
            "Condition",
            "MedicationRequest",
            "MedicationStatement",
            "Immunization",
            "Observation",
            "DiagnosticReport",
            "Procedure",
            "Encounter",
            "CarePlan",
        ],
        _ => &[],
    }
}

fn s<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn recorder_of(item: &Value) -> Option<&str> {
    item.pointer("/meta/tag")
        .and_then(Value::as_array)?
        .iter()
        .find(|t| t.get("system").and_then(Value::as_str) == Some(RECORDED_BY))
        .and_then(|t| t.get("code"))
        .and_then(Value::as_str)
}

fn labels(item: &Value) -> (bool, bool) {
    let mut sensitive = false;
    let mut not_for_patient = false;
    for c in item
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let pair = (s(c, "/system").unwrap_or(""), s(c, "/code").unwrap_or(""));
        sensitive |= SEALING.iter().any(|(_, sys, code)| (*sys, *code) == pair);
        not_for_patient |= NOT_FOR_PATIENT
            .iter()
            .any(|(_, sys, code)| (*sys, *code) == pair);
    }
    (sensitive, not_for_patient)
}

fn about_me(item: &Value) -> bool {
    item.pointer("/meta/tag")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|t| s(t, "/system") == Some(RECORD_CATEGORY) && s(t, "/code") == Some("about-me"))
}

/// Coarse outer bounds of the social care views of issue #4 (what their
/// rules may show at most), plus what the role's own organisation recorded
/// of the kinds it contributes.
fn social_view_allows(k: K, item: &Value, org: Option<&str>, practices: &[&str]) -> bool {
    let rtype = s(item, "/resourceType").unwrap_or("");
    let status = s(item, "/status").unwrap_or("");
    let own = org.is_some() && recorder_of(item) == org;
    let current_med = matches!(status, "active" | "intended" | "on-hold");
    match rtype {
        "Patient" | "AllergyIntolerance" | "Immunization" => true,
        "MedicationStatement" | "MedicationRequest" => current_med,
        "QuestionnaireResponse" | "DocumentReference" => about_me(item),
        "Observation" | "Communication" => own,
        "Condition" => {
            k == K::SocialWorker
                && matches!(
                    s(item, "/clinicalStatus/coding/0/code"),
                    Some("active" | "recurrence" | "relapse")
                )
        }
        "CarePlan" => k == K::SocialWorker || status == "active",
        "RelatedPerson" => k == K::SocialWorker,
        "Encounter" => {
            k == K::SocialWorker
                || matches!(s(item, "/class/code"), Some("IMP" | "ACUTE" | "NONAC"))
                || recorder_of(item).is_some_and(|r| practices.contains(&r))
        }
        "MedicationAdministration" => {
            let when = s(item, "/effectiveDateTime")
                .or_else(|| s(item, "/effectivePeriod/start"))
                .and_then(parse_date_time);
            k == K::CareWorker && (own || when.is_some_and(|w| w >= NOW - 31 * DAY))
        }
        _ => false,
    }
}

fn context_of(k: K) -> Context {
    match k {
        K::Patient | K::Proxy => Context::Patient,
        K::Integration => Context::System,
        _ => Context::User,
    }
}

fn scope_allows(p: &Principal, rtype: &str, letter: char) -> bool {
    let ctx = context_of(kind_of(&p.role));
    p.scopes.iter().any(|sc| {
        sc.context == ctx
            && sc.rtype.as_deref().is_none_or(|t| t == rtype)
            && sc.perms.contains(letter)
    })
}

/// May the principal, who may open the record of `facts.patient_id`, see
/// this item (of person `patient`)?
fn ref_may_see(p: &Principal, facts: &Facts, patient: &str, item: &Value) -> bool {
    let k = kind_of(&p.role);
    let rtype = s(item, "/resourceType").unwrap_or("");
    if patient != facts.patient_id || !scope_allows(p, rtype, 'r') {
        return false;
    }
    let (sensitive, not_for_patient) = labels(item);
    let practices: Vec<&str> = facts
        .relationships
        .iter()
        .filter(|r| r.kind == "gp-registration")
        .map(|r| r.org.as_str())
        .collect();
    match k {
        K::Integration => true,
        K::Patient => !not_for_patient,
        K::Proxy => {
            !sensitive
                && !not_for_patient
                && (rtype == "Patient"
                    || facts
                        .proxy_levels
                        .iter()
                        .any(|l| level_types(l).contains(&rtype)))
        }
        K::Clinical => !sensitive || (p.org.is_some() && recorder_of(item) == p.org.as_deref()),
        K::SocialWorker | K::CareWorker => {
            !sensitive && social_view_allows(k, item, p.org.as_deref(), &practices)
        }
        K::NoPersonData | K::Unknown => false,
    }
}

// ---------------------------------------------------------------------------
// Generators.

const ORGS: &[&str] = &["A", "B", "C", "GP"];
const USERS: &[&str] = &["u1", "u2"];
const RELATIONSHIP_KINDS: &[&str] = &[
    "gp-registration",
    "encounter",
    "episode-of-care",
    "care-team",
    "referral",
    "break-glass",
];
const MARKERS: &[&str] = &["sealed", "not-for-patient", "dissent", "dissent"];
const STAFF_ORGS: &[&str] = &["A", "B", "C"];
const LEVELS: &[&str] = &[
    "PRESCR", "APPT", "RECRD", "TEST", "VACC", "COND", "CONSULT", "DOCS", "XYZ",
];

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        prop::sample::select(vec![
            -60 * DAY,
            -31 * DAY,
            -30 * DAY,
            -29 * DAY,
            -14 * DAY,
            -DAY,
            -HOUR,
            0,
            HOUR,
            DAY,
            10 * DAY
        ]),
        (-60 * DAY..60 * DAY),
    ]
}

fn arb_principal() -> impl Strategy<Value = Principal> {
    (
        // Social care and clinical roles more often: their rules are the
        // intricate ones.
        prop_oneof![
            2 => prop::sample::select(ROLES.to_vec()),
            1 => prop::sample::select(vec![("social-worker", K::SocialWorker), ("care-worker", K::CareWorker), ("gp", K::Clinical)]),
        ],
        prop::option::weighted(0.9, prop::sample::select(STAFF_ORGS)),
        prop::option::weighted(0.9, prop::sample::select(vec!["GMC:123", "GMC:123", "GMC:123", ""])),
        prop::option::weighted(0.9, prop::sample::select(vec!["p1", "p1", "p1", "p2"])),
        prop::option::weighted(0.8, Just("rp1")),
        prop::sample::select(USERS),
        0..7usize,
    )
        .prop_map(|((role, k), org, reg, patient, rp, user, scope)| {
            let ctx = match k {
                K::Patient | K::Proxy => "patient",
                K::Integration => "system",
                _ => "user",
            };
            let scope = match scope {
                0 | 1 => format!("{ctx}/*.cruds"),
                2 => format!("{ctx}/*.rs"),
                3 => format!("{ctx}/*.r {ctx}/Encounter.s"),
                4 => format!("{ctx}/Observation.rs {ctx}/Patient.rs {ctx}/Encounter.rs"),
                5 => "user/*.cruds".to_owned(),
                _ => "system/*.* patient/*.read".to_owned(),
            };
            let mut p = principal(role, org, reg, patient, if k == K::Proxy { rp } else { None }, &scope);
            if !matches!(k, K::Patient | K::Proxy) {
                p.subject = user.to_owned();
            }
            p
        })
}

fn arb_rel() -> impl Strategy<Value = Relationship> {
    (
        // Markers (sealed, not-for-patient) less often than relationships.
        prop_oneof![4 => prop::sample::select(RELATIONSHIP_KINDS), 1 => prop::sample::select(MARKERS)],
        prop::sample::select(ORGS),
        prop::option::of(prop::sample::select(USERS)),
        prop::bool::weighted(0.7),
        prop::option::of(offset()),
        prop::option::of(offset()),
    )
        .prop_map(|(kind, org, user, active, start, end)| {
            // A dissent from everyone about as often as from one
            // organisation.
            let org = if kind == "dissent" && user.is_some() { "*" } else { org };
            let user = if kind == "break-glass" { user } else { None };
            rel(org, kind, user, active, start.map(|s| NOW + s), end.map(|e| NOW + e))
        })
}

const TYPES: &[&str] = &[
    "Patient",
    "AllergyIntolerance",
    "Immunization",
    "MedicationStatement",
    "MedicationRequest",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "CarePlan",
    "QuestionnaireResponse",
    "DocumentReference",
    "Encounter",
    "MedicationAdministration",
    "RelatedPerson",
    "Communication",
    "Procedure",
    "Appointment",
];

const TOKENS: &[(&str, &str)] = &[
    (CONFIDENTIALITY, "R"),
    (CONFIDENTIALITY, "V"),
    (CONFIDENTIALITY, "N"),
    (ACT_CODE, "HIV"),
    (ACT_CODE, "PSY"),
    (ACT_CODE, "SEX"),
    (ACT_CODE, "STD"),
    (ACT_CODE, "ETH"),
    (ACT_CODE, "SDV"),
    (ACT_CODE, "GDIS"),
    (ACT_CODE, "NOPAT"),
    (LOCAL, "safeguarding"),
    (LOCAL, "third-party"),
    ("http://example.org/not-a-label-system", "HIV"),
    (ACT_CODE, "hiv"),
];

const RECORDERS: &[&str] = &["A", "B", "C", "GP", "Patient/p1", "RelatedPerson/rp1", ""];

/// One generated item: (type, of p1?, labels, recorder, status index,
/// about-me, date offset, whether the date is a period, class index,
/// category index).
type ItemSeed = (
    &'static str,
    bool,
    Vec<(&'static str, &'static str)>,
    &'static str,
    usize,
    bool,
    i64,
    bool,
    usize,
    usize,
);

fn arb_item() -> impl Strategy<Value = ItemSeed> {
    (
        prop::sample::select(TYPES),
        prop::bool::weighted(0.85),
        prop::collection::vec(prop::sample::select(TOKENS), 0..3),
        prop::sample::select(RECORDERS),
        0..6usize,
        prop::bool::weighted(0.5),
        (-120 * DAY..DAY),
        any::<bool>(),
        0..6usize,
        0..3usize,
    )
}

fn pick<'a>(xs: &[&'a str], i: usize) -> &'a str {
    xs.get(i % xs.len().max(1)).copied().unwrap_or("")
}

/// The item's JSON and the person it belongs to.
fn build(n: usize, seed: &ItemSeed) -> (String, Value) {
    let (rtype, of_p1, labels, recorder, status_index, about, date, period, class, category) = seed;
    let patient = if *of_p1 { "p1" } else { "p2" };
    let subject = json!({"reference": format!("Patient/{patient}")});
    let when = date_time(NOW + date);
    let clinical = pick(
        &[
            "active",
            "recurrence",
            "relapse",
            "inactive",
            "resolved",
            "remission",
        ],
        *status_index,
    );
    let status = match *rtype {
        "MedicationStatement" | "MedicationRequest" => pick(
            &[
                "active",
                "intended",
                "on-hold",
                "stopped",
                "completed",
                "entered-in-error",
            ],
            *status_index,
        ),
        "CarePlan" => pick(&["active", "completed", "draft", "revoked"], *status_index),
        "Encounter" => pick(
            &["finished", "in-progress", "planned", "cancelled"],
            *status_index,
        ),
        _ => pick(&["final", "completed", "current", "amended"], *status_index),
    };
    let mut r = json!({
        "resourceType": rtype,
        "id": if *rtype == "Patient" { patient.to_owned() } else { format!("i{n}") },
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">narrative</div>"},
        "note": [{"text": "free-text note"}],
        "status": status,
        "subject": subject,
        "patient": subject,
        "code": {"text": "something"},
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": pick(&["vital-signs", "laboratory", "social-history"], *category)}]}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": pick(&["AMB", "IMP", "ACUTE", "NONAC", "EMER", "HH"], *class)},
        "period": {"start": when},
        "reasonCode": [{"text": "free-text reason"}],
        "reaction": [{"manifestation": [{"text": "rash"}], "description": "free text"}],
    });
    if let Some(m) = r.as_object_mut() {
        if *period {
            m.insert("effectivePeriod".into(), json!({"start": when}));
        } else {
            m.insert("effectiveDateTime".into(), json!(when));
        }
        if *rtype == "Patient" {
            for k in [
                "subject",
                "patient",
                "status",
                "clinicalStatus",
                "category",
                "class",
                "period",
            ] {
                m.remove(k);
            }
        }
    }
    let recorder = (!recorder.is_empty()).then_some(*recorder);
    let category = about.then_some("about-me");
    (patient.to_owned(), with_meta(r, recorder, category, labels))
}

fn arb_case() -> impl Strategy<Value = (Principal, Vec<Relationship>, Vec<String>, Vec<ItemSeed>)> {
    (
        arb_principal(),
        // Each row, with a bool: make it the principal's organisation's
        // (and, for break-glass, the principal's own).
        prop::collection::vec((arb_rel(), prop::bool::weighted(0.6)), 0..7),
        prop::collection::vec(prop::sample::select(LEVELS), 0..3),
        prop::collection::vec(arb_item(), 1..14),
    )
        .prop_map(|(p, rels, levels, items)| {
            let mut rels: Vec<Relationship> = rels
                .into_iter()
                .map(|(mut r, mine)| {
                    if let (true, Some(org)) = (mine, &p.org) {
                        r.org.clone_from(org);
                        if r.user.is_some() {
                            r.user = Some(p.subject.clone());
                        }
                    }
                    r
                })
                .collect();
            rels.retain(|r| !disputed(r, NOW));
            let mut levels: Vec<String> = levels.into_iter().map(str::to_owned).collect();
            levels.dedup();
            (p, rels, levels, items)
        })
}

fn full_view(k: K) -> bool {
    matches!(k, K::Clinical | K::Patient | K::Proxy | K::Integration)
}

// ---------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn access_and_shown_items_agree_with_the_reference(case in arb_case()) {
        let (p, rels, levels, seeds) = case;
        let policy = Policy::default();
        let facts = Facts { patient_id: "p1", relationships: &rels, proxy_levels: &levels , org_type: None};
        let k = kind_of(&p.role);
        let access = policy.patient_access(&p, &facts, NOW);
        prop_assert_eq!(access.is_ok(), ref_access(&p, &facts), "access for {:?} with {:?}: {:?}", p, rels, access.as_ref().err());
        let Ok(mut a) = access else { return Ok(()) };
        let items: Vec<(String, Value)> = seeds.iter().enumerate().map(|(n, seed)| build(n, seed)).collect();
        let own: Vec<Value> = items.iter().filter(|(pt, _)| pt == "p1").map(|(_, v)| v.clone()).collect();
        resolve_latest(&mut a, &own).unwrap();
        for (patient, item) in &items {
            let rtype = s(item, "/resourceType").unwrap_or("");
            let allowed = ref_may_see(&p, &facts, patient, item);
            match a.item(rtype, Some(patient), item) {
                Item::Show(elements) => {
                    prop_assert!(allowed, "{} was shown {:?} to {:?} with {:?} {:?}", rtype, item, p, rels, levels);
                    match elements {
                        None => prop_assert!(full_view(k), "{} saw every element of {}", p.role, rtype),
                        Some(els) => {
                            prop_assert!(!full_view(k), "{} saw {} through a whitelist", p.role, rtype);
                            let faults = element_faults(item, els, &[], &[]);
                            prop_assert!(faults.is_empty(), "{} sees {}: {:?}", p.role, rtype, faults);
                        }
                    }
                }
                Item::Withhold(why) => {
                    prop_assert!(!(allowed && full_view(k)), "{} withheld ({:?}) from {:?} with {:?} {:?}: {:?}", rtype, why, p, rels, levels, item);
                }
            }
        }
    }

    #[test]
    fn is_current_agrees_with_the_rule(
        r in arb_rel(),
        other_org in prop::option::weighted(0.2, prop::sample::select(ORGS)),
        other_user in prop::option::weighted(0.2, prop::sample::select(USERS)),
        now_offset in offset(),
        // Sometimes `now` sits on a boundary: the end of the recent window,
        // the end or the start of the period (± 1 µs).
        anchor in 0..5usize,
        nudge in -1i64..=1,
        recent_days in prop::sample::select(vec![0i64, 1, 10, 30]),
    ) {
        let recent = recent_days * DAY;
        let now = match anchor {
            0 => r.end.map(|e| e + recent + nudge),
            1 => r.end.map(|e| e + nudge),
            2 => r.start.map(|s| s + nudge),
            _ => None,
        }
        .unwrap_or(NOW + now_offset);
        let org = other_org.unwrap_or(r.org.as_str());
        let user = other_user.or(r.user.as_deref()).unwrap_or("u1");
        prop_assume!(!disputed(&r, now));
        prop_assert_eq!(
            r.is_current(org, user, now, recent),
            ref_current(&r, org, user, now, recent),
            "{:?} for {} {} at {}, recent {}d", r, org, user, now, recent_days
        );
    }

    #[test]
    fn criteria_agree_with_item(case in arb_case()) {
        let (p, rels, levels, seeds) = case;
        let policy = Policy::default();
        let facts = Facts { patient_id: "p1", relationships: &rels, proxy_levels: &levels , org_type: None};
        let Ok(mut a) = policy.patient_access(&p, &facts, NOW) else { return Ok(()) };
        let own: Vec<Value> = seeds
            .iter()
            .enumerate()
            .map(|(n, seed)| build(n, seed))
            .filter(|(pt, _)| pt == "p1")
            .map(|(_, v)| v)
            .collect();
        resolve_latest(&mut a, &own).unwrap();
        for rtype in TYPES {
            let search = a.check(rtype, Permission::Search).is_ok();
            let read = a.check(rtype, Permission::Read).is_ok();
            match a.criteria(rtype) {
                Err(d) => prop_assert!(!search, "{} search allowed by check but criteria refused: {:?}", rtype, d),
                Ok(cs) => {
                    prop_assert!(search, "{} criteria given though search is not allowed", rtype);
                    if !read {
                        continue;
                    }
                    for item in own.iter().filter(|i| s(i, "/resourceType") == Some(rtype)) {
                        let by_criteria = eval_all(&cs, item).unwrap();
                        let shown = matches!(a.item(rtype, Some("p1"), item), Item::Show(_));
                        prop_assert_eq!(by_criteria, shown, "{} {:?} for {:?}: criteria {:?}", rtype, item, p, cs);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The disputed rows, as examples.

fn gp(subject: &str) -> Principal {
    let mut p = principal("gp", Some("A"), Some("GMC:123"), None, None, "user/*.cruds");
    p.subject = subject.to_owned();
    p
}

fn opens(rows: &[Relationship], p: &Principal) -> Result<PatientAccess, policy::Denial> {
    Policy::default().patient_access(
        p,
        &Facts {
            patient_id: "p1",
            relationships: rows,
            proxy_levels: &[],
            org_type: None,
        },
        NOW,
    )
}

#[test]
fn break_glass_is_per_user_and_time_boxed() {
    let current = rel(
        "A",
        "break-glass",
        Some("u1"),
        true,
        Some(NOW - HOUR),
        Some(NOW + 3 * HOUR),
    );
    assert!(opens(std::slice::from_ref(&current), &gp("u1")).is_ok());
    assert!(opens(std::slice::from_ref(&current), &gp("u2")).is_err());
    let expired = rel(
        "A",
        "break-glass",
        Some("u1"),
        true,
        Some(NOW - 5 * HOUR),
        Some(NOW - HOUR),
    );
    assert!(opens(&[expired], &gp("u1")).is_err());
    for role in CLINICAL {
        let mut p = gp("u1");
        p.role = (*role).to_owned();
        assert!(opens(std::slice::from_ref(&current), &p).is_ok(), "{role}");
    }
    for role in ["social-worker", "care-worker"] {
        let mut p = gp("u1");
        p.role = role.to_owned();
        assert!(opens(std::slice::from_ref(&current), &p).is_err(), "{role}");
    }
}

#[test]
fn break_glass_row_naming_no_user_grants_nobody() {
    let row = rel(
        "A",
        "break-glass",
        None,
        true,
        Some(NOW - HOUR),
        Some(NOW + 3 * HOUR),
    );
    assert!(opens(&[row], &gp("u2")).is_err());
}

#[test]
fn inactive_encounter_ending_in_the_future_is_no_relationship() {
    let row = rel(
        "A",
        "encounter",
        None,
        false,
        Some(NOW + 7 * DAY),
        Some(NOW + 7 * DAY),
    );
    assert!(!row.is_current("A", "u1", NOW, RECENT));
    assert!(opens(&[row], &gp("u1")).is_err());
}
