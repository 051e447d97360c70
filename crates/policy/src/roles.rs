//! The default roles and their views (issue #4's table), as data.
//!
//! A view is a whitelist: resource types, each with the conditions an item
//! must meet and the elements it keeps. Nothing outside a view is shown.

use serde::Deserialize;
use std::sync::Arc;

/// What kind of user a role is; the decision rules hang on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoleKind {
    /// Registered clinical staff: full record, sealed items of their own
    /// organisation, break-glass.
    Clinical,
    /// Registered or non-clinical social care staff: a restricted view.
    SocialCare,
    /// The person themself.
    Patient,
    /// An approved caregiver, through a proxy Consent's scopes.
    Proxy,
    /// A practice's IG lead: no clinical content.
    DataController,
    /// No person-level data.
    Commissioner,
    /// A system client: what its `system/` scopes grant.
    Integration,
    /// Operators: configuration only.
    Admin,
}

/// One condition an item must meet to fall under a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Condition {
    /// The token search parameter `param` holds one of `codes`; `path` is
    /// where the code sits in the resource (`clinicalStatus.coding.code`).
    Code {
        param: String,
        path: String,
        codes: Vec<String>,
    },
    /// Recorded by the user's own organisation.
    RecordedByOwnOrg,
    /// Recorded by the practice the person is registered with.
    RecordedByRegisteredPractice,
    /// Carries a sharedcare record-category tag (`about-me`).
    Category(String),
    /// Dated within the last `days` days (search parameter `param`; the
    /// first date found at `paths`).
    WithinDays {
        param: String,
        paths: Vec<String>,
        days: i64,
    },
    /// Only the latest `n`, by the date search parameter `sort`, of the
    /// items meeting the rule's other conditions.
    Latest { n: usize, sort: String },
}

/// Items of one type a role may see (or create), and what of them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeRule {
    pub rtype: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Top-level elements kept (`a`, or `a.b` for one element inside `a`);
    /// `None` keeps all. `resourceType`, `id` and `meta` are always kept.
    #[serde(default)]
    pub elements: Option<Vec<String>>,
}

/// A role's view of a person it may access.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum View {
    /// Every type, every element.
    Full,
    /// Only these rules (an item is shown under the first rule it meets).
    Rules(Arc<[TypeRule]>),
    /// Derived from the proxy Consent's access levels at decision time.
    ProxyScopes,
    /// No person-level data.
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDef {
    pub code: String,
    pub kind: RoleKind,
    /// Needs a professional registration claim (GMC, NMC, HCPC, GPhC, SWE).
    pub needs_registration: bool,
    pub break_glass: bool,
    pub view: View,
    /// Person-level types it may create, with conditions the new item must
    /// meet. Clinical and integration roles may create any type.
    #[serde(default)]
    pub creates: Arc<[TypeRule]>,
    /// May read directory types (organisations, practitioners, medications).
    pub reads_directory: bool,
}

fn rule(rtype: &str, conditions: Vec<Condition>, elements: Option<&[&str]>) -> TypeRule {
    TypeRule {
        rtype: rtype.to_owned(),
        conditions,
        elements: elements.map(|e| e.iter().map(|s| (*s).to_owned()).collect()),
    }
}

fn code(param: &str, path: &str, codes: &[&str]) -> Condition {
    Condition::Code {
        param: param.to_owned(),
        path: path.to_owned(),
        codes: codes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

// Element whitelists of the restricted views: no narrative `text`, no
// `note`, no free-text comments.
const PATIENT: &[&str] = &[
    "identifier",
    "active",
    "name",
    "telecom",
    "gender",
    "birthDate",
    "deceasedBoolean",
    "deceasedDateTime",
    "address",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "contact",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "extension",
];
const ALLERGY: &[&str] = &[
    "clinicalStatus",
    "verificationStatus",
    "type",
    "category",
    "criticality",
    "code",
    "patient",
    "onsetDateTime",
    "onsetPeriod",
    "recordedDate",
    "lastOccurrence",
    "reaction.substance",
    "reaction.manifestation",
    "reaction.severity",
    "reaction.onset",
    "reaction.exposureRoute",
];
const MED_STATEMENT: &[&str] = &[
    "status",
    "category",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "effectiveDateTime",
    "effectivePeriod",
    "dateAsserted",
    "informationSource",
    "dosage",
];
const MED_REQUEST: &[&str] = &[
    "status",
    "intent",
    "category",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "authoredOn",
    "requester",
    "dosageInstruction",
    "dispenseRequest",
    "courseOfTherapyType",
];
const IMMUNIZATION: &[&str] = &[
    "status",
    "vaccineCode",
    "patient",
    "occurrenceDateTime",
    "occurrenceString",
    "primarySource",
    "site",
    "route",
    "doseQuantity",
    "protocolApplied",
];
const CONDITION: &[&str] = &[
    "clinicalStatus",
    "verificationStatus",
    "category",
    "severity",
    "code",
    "bodySite",
    "subject",
    "onsetDateTime",
    "onsetPeriod",
    "onsetAge",
    "recordedDate",
];
const CARE_PLAN: &[&str] = &[
    "status",
    "intent",
    "category",
    "title",
    "description",
    "subject",
    "period",
    "created",
    "author",
    "careTeam",
    "addresses",
    "goal",
    "activity.outcomeCodeableConcept",
    "activity.progress",
    "activity.detail",
];
const QUESTIONNAIRE_RESPONSE: &[&str] = &[
    "questionnaire",
    "status",
    "subject",
    "authored",
    "author",
    "source",
    "item",
];
const DOCUMENT_REFERENCE: &[&str] = &[
    "status",
    "docStatus",
    "type",
    "category",
    "subject",
    "date",
    "author",
    "description",
    "content",
];
const ENCOUNTER_DATES: &[&str] = &[
    "status",
    "class",
    "type",
    "serviceType",
    "subject",
    "period",
];
const ADMISSION: &[&str] = &[
    "status",
    "class",
    "type",
    "subject",
    "period",
    "serviceProvider",
    "hospitalization.admitSource",
    "hospitalization.dischargeDisposition",
    "hospitalization.destination",
];
const RELATED_PERSON: &[&str] = &[
    "active",
    "patient",
    "relationship",
    "name",
    "telecom",
    "address",
    "gender",
];
const MED_ADMIN: &[&str] = &[
    "status",
    "statusReason",
    "medicationCodeableConcept",
    "medicationReference",
    "subject",
    "effectiveDateTime",
    "effectivePeriod",
    "performer",
    "dosage",
];
const OBSERVATION_BRIEF: &[&str] = &[
    "status",
    "category",
    "code",
    "subject",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "performer",
    "valueQuantity",
    "valueCodeableConcept",
    "valueString",
    "component",
];
const COMMUNICATION: &[&str] = &[
    "status",
    "category",
    "subject",
    "sent",
    "received",
    "recipient",
    "sender",
    "payload",
];

const ACTIVE_MEDS: &[&str] = &["active", "intended", "on-hold"];

fn about_me() -> Vec<TypeRule> {
    vec![
        rule(
            "QuestionnaireResponse",
            vec![Condition::Category("about-me".into())],
            Some(QUESTIONNAIRE_RESPONSE),
        ),
        rule(
            "DocumentReference",
            vec![Condition::Category("about-me".into())],
            Some(DOCUMENT_REFERENCE),
        ),
    ]
}

fn common_summary() -> Vec<TypeRule> {
    let mut rules = vec![
        rule("Patient", vec![], Some(PATIENT)),
        rule("AllergyIntolerance", vec![], Some(ALLERGY)),
        rule(
            "MedicationStatement",
            vec![code("status", "status", ACTIVE_MEDS)],
            Some(MED_STATEMENT),
        ),
        rule(
            "MedicationRequest",
            vec![code("status", "status", ACTIVE_MEDS)],
            Some(MED_REQUEST),
        ),
        rule("Immunization", vec![], Some(IMMUNIZATION)),
    ];
    rules.extend(about_me());
    rules
}

/// The social worker's summary view.
fn social_worker_view() -> View {
    let mut rules = common_summary();
    rules.extend([
        rule(
            "Condition",
            vec![code(
                "clinical-status",
                "clinicalStatus.coding.code",
                &["active", "recurrence", "relapse"],
            )],
            Some(CONDITION),
        ),
        rule("CarePlan", vec![], Some(CARE_PLAN)),
        rule("Encounter", vec![], Some(ENCOUNTER_DATES)),
        rule("RelatedPerson", vec![], Some(RELATED_PERSON)),
        // What their own organisation recorded.
        rule(
            "Communication",
            vec![Condition::RecordedByOwnOrg],
            Some(COMMUNICATION),
        ),
        rule(
            "Observation",
            vec![Condition::RecordedByOwnOrg],
            Some(OBSERVATION_BRIEF),
        ),
    ]);
    View::Rules(rules.into())
}

/// The care worker's "appropriate information".
fn care_worker_view() -> View {
    let mut rules = common_summary();
    rules.extend([
        // The last 3 GP encounters: date and type only.
        rule(
            "Encounter",
            vec![
                Condition::RecordedByRegisteredPractice,
                Condition::Latest {
                    n: 3,
                    sort: "date".into(),
                },
            ],
            Some(ENCOUNTER_DATES),
        ),
        // Admissions and discharges.
        rule(
            "Encounter",
            vec![code("class", "class.code", &["IMP", "ACUTE", "NONAC"])],
            Some(ADMISSION),
        ),
        rule(
            "CarePlan",
            vec![code("status", "status", &["active"])],
            Some(CARE_PLAN),
        ),
        // The last fortnight's medication administrations.
        rule(
            "MedicationAdministration",
            vec![Condition::WithinDays {
                param: "effective-time".into(),
                paths: vec!["effectiveDateTime".into(), "effectivePeriod.start".into()],
                days: 14,
            }],
            Some(MED_ADMIN),
        ),
        // What their own organisation recorded.
        rule(
            "MedicationAdministration",
            vec![Condition::RecordedByOwnOrg],
            Some(MED_ADMIN),
        ),
        rule(
            "Observation",
            vec![Condition::RecordedByOwnOrg],
            Some(OBSERVATION_BRIEF),
        ),
        rule(
            "Communication",
            vec![Condition::RecordedByOwnOrg],
            Some(COMMUNICATION),
        ),
    ]);
    View::Rules(rules.into())
}

fn care_worker_creates() -> Vec<TypeRule> {
    vec![
        rule("MedicationAdministration", vec![], None),
        rule(
            "Observation",
            vec![code("category", "category.coding.code", &["vital-signs"])],
            None,
        ),
        rule("Communication", vec![], None),
        rule("CarePlan", vec![], None),
    ]
}

fn social_worker_creates() -> Vec<TypeRule> {
    vec![
        rule("Communication", vec![], None),
        rule("CarePlan", vec![], None),
        rule("ServiceRequest", vec![], None),
        rule("Task", vec![], None),
        rule("EpisodeOfCare", vec![], None),
        rule("Observation", vec![], None),
    ]
}

/// About Me and patient-reported observations (marked on write).
fn person_creates() -> Vec<TypeRule> {
    vec![
        rule(
            "QuestionnaireResponse",
            vec![Condition::Category("about-me".into())],
            None,
        ),
        rule(
            "DocumentReference",
            vec![Condition::Category("about-me".into())],
            None,
        ),
        rule("Observation", vec![], None),
    ]
}

/// The default roles (issue #4).
pub fn defaults() -> Vec<RoleDef> {
    let clinical = |code: &str| RoleDef {
        code: code.to_owned(),
        kind: RoleKind::Clinical,
        needs_registration: true,
        break_glass: true,
        view: View::Full,
        creates: Arc::from([]),
        reads_directory: true,
    };
    let none = |code: &str, kind: RoleKind, directory: bool| RoleDef {
        code: code.to_owned(),
        kind,
        needs_registration: false,
        break_glass: false,
        view: View::Nothing,
        creates: Arc::from([]),
        reads_directory: directory,
    };
    vec![
        clinical("gp"),
        clinical("hospital-clinician"),
        clinical("community-clinician"),
        clinical("pharmacist"),
        clinical("care-nurse"),
        RoleDef {
            code: "social-worker".into(),
            kind: RoleKind::SocialCare,
            needs_registration: true,
            break_glass: false,
            view: social_worker_view(),
            creates: social_worker_creates().into(),
            reads_directory: true,
        },
        RoleDef {
            code: "care-worker".into(),
            kind: RoleKind::SocialCare,
            needs_registration: false,
            break_glass: false,
            view: care_worker_view(),
            creates: care_worker_creates().into(),
            reads_directory: true,
        },
        RoleDef {
            code: "patient".into(),
            kind: RoleKind::Patient,
            needs_registration: false,
            break_glass: false,
            view: View::Full,
            creates: person_creates().into(),
            reads_directory: true,
        },
        RoleDef {
            code: "proxy".into(),
            kind: RoleKind::Proxy,
            needs_registration: false,
            break_glass: false,
            view: View::ProxyScopes,
            creates: person_creates().into(),
            reads_directory: true,
        },
        none("data-controller", RoleKind::DataController, true),
        none("commissioner", RoleKind::Commissioner, true),
        RoleDef {
            code: "integration".into(),
            kind: RoleKind::Integration,
            needs_registration: false,
            break_glass: false,
            view: View::Full,
            creates: Arc::from([]),
            reads_directory: true,
        },
        none("admin", RoleKind::Admin, false),
    ]
}

/// The types each NHS England proxy access level (VRS) opens.
pub fn proxy_level_types(level: &str) -> &'static [&'static str] {
    match level {
        "PRESCR" => &[
            "MedicationRequest",
            "MedicationStatement",
            "MedicationDispense",
            "MedicationAdministration",
        ],
        "APPT" => &["Appointment"],
        "TEST" => &["Observation", "DiagnosticReport", "Specimen"],
        "VACC" => &["Immunization", "ImmunizationRecommendation"],
        "COND" => &["Condition", "AllergyIntolerance"],
        "CONSULT" => &["Encounter", "ClinicalImpression", "Procedure"],
        "DOCS" => &["DocumentReference", "Composition", "QuestionnaireResponse"],
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
            "FamilyMemberHistory",
        ],
        _ => &[],
    }
}

/// Types with no person in them, readable by roles with `reads_directory`.
pub const DIRECTORY_TYPES: &[&str] = &[
    "Organization",
    "OrganizationAffiliation",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "MedicationKnowledge",
    "Substance",
    "Questionnaire",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
    "StructureDefinition",
    "SearchParameter",
    "OperationDefinition",
    "CapabilityStatement",
    "ActivityDefinition",
    "PlanDefinition",
];
