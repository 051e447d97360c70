//! Legitimate relationships, derived from the record itself.
//!
//! At write time the core asks [`drafts`] which organisations a resource
//! relates to its patient; it resolves each organisation reference to an
//! organisation code and stores the rows. At decision time
//! [`Relationship::is_current`] says which of them count now. The store's
//! population filter (`Filter::Related`) implements the same rule in SQL;
//! the property tests hold the two together.

use serde_json::Value;

use crate::Micros;
use crate::json::{date_micros, string, strings, values};

/// The kinds of relationship, as stored.
pub const GP_REGISTRATION: &str = "gp-registration";
pub const ENCOUNTER: &str = "encounter";
pub const EPISODE_OF_CARE: &str = "episode-of-care";
pub const CARE_TEAM: &str = "care-team";
pub const REFERRAL: &str = "referral";
pub const BREAK_GLASS: &str = "break-glass";
/// Not a relationship: one row per sealed item, naming its recording
/// organisation, so that a decision knows whether anything is withheld.
pub const SEALED: &str = "sealed";
/// Not a relationship: one row per item withheld from the patient (`NOPAT`,
/// third-party information).
pub const NOT_FOR_PATIENT: &str = "not-for-patient";
/// Not a relationship: the person's dissent from sharing (a `share-dissent`
/// Consent). `org` is an organisation code, [`EVERY_ORGANISATION`], or
/// `type:` and an organisation type ([`org_type_key`]).
pub const DISSENT: &str = "dissent";
/// Not a relationship: an explicit consent (`sensitive-share`) that opens
/// sealed items of the categories in `detail` (label codes, space
/// separated) to the organisation `org`.
pub const SENSITIVE_CONSENT: &str = "sensitive-consent";
/// Not a relationship: a secondary-use opt-out; `org` is the opt-out's code
/// ([`NATIONAL_DATA_OPT_OUT`], [`TYPE_1_OPT_OUT`]). Never read by a
/// direct-care decision.
pub const OPT_OUT: &str = "opt-out";
/// The `org` of a dissent from sharing with every organisation.
pub const EVERY_ORGANISATION: &str = "*";

/// The relationship kinds that give an organisation access (everything
/// else in the table is a marker or a sharing rule).
pub const ACCESS_KINDS: &[&str] = &[
    GP_REGISTRATION,
    ENCOUNTER,
    EPISODE_OF_CARE,
    CARE_TEAM,
    REFERRAL,
    BREAK_GLASS,
];

/// sharedcare's consent categories (`Consent.category`).
pub const CONSENT_CATEGORY: &str = "https://fhir.sharedcare.org.uk/CodeSystem/consent-category";
pub const SHARE_DISSENT: &str = "share-dissent";
pub const SENSITIVE_SHARE: &str = "sensitive-share";
pub const NATIONAL_DATA_OPT_OUT: &str = "national-data-opt-out";
pub const TYPE_1_OPT_OUT: &str = "type-1-opt-out";
/// Organisation types (`Organization.type`), and the extension on
/// `Consent.provision` that aims a dissent at a type.
pub const ORG_TYPE_SYSTEM: &str = "https://fhir.sharedcare.org.uk/CodeSystem/organisation-type";
pub const ORG_TYPE_EXTENSION: &str =
    "https://fhir.sharedcare.org.uk/StructureDefinition/organisation-type";
/// The NHS England proxy legal bases (`Consent.policyRule`).
pub const PROXY_LEGAL_BASIS: &str =
    "https://fhir.nhs.uk/England/CodeSystem/England-NHSProxyLegalBasis";
/// The legal bases a proxy Consent may rest on.
pub const PROXY_LEGAL_BASES: &[&str] = &[
    "consent",
    "parental-responsibility",
    "lasting-power-of-attorney",
    "court-appointed-personal-welfare-deputy",
    "best-interest",
];

/// The `org` a dissent row aimed at an organisation type carries.
pub fn org_type_key(org_type: &str) -> String {
    format!("type:{org_type}")
}

/// A practice's sharing rules (set by its data controller) are stored as
/// rows of the relationship table under the pseudo patient
/// [`practice_key`]`(practice)`, which no FHIR id can equal (`#`, `:`).
/// `org` is the organisation a rule names, or [`EVERY_ORGANISATION`];
/// `detail` is the practice.
pub mod sharing {
    /// Sharing out is switched off (org `*`).
    pub const OFF: &str = "sharing-off";
    /// Only organisations of this integrated care system (org `*`).
    pub const LOCAL: &str = "sharing-local";
    /// Only organisations on the allow-list (org `*`).
    pub const ALLOW_LIST: &str = "sharing-allow-list";
    pub const ALLOW: &str = "sharing-allow";
    pub const DENY: &str = "sharing-deny";
    /// The organisation's first access needs the practice's approval.
    pub const VERIFY: &str = "sharing-verify";
    pub const PENDING: &str = "sharing-pending";
    pub const APPROVED: &str = "sharing-approved";
    pub const REJECTED: &str = "sharing-rejected";
    /// Every sharing kind.
    pub const KINDS: &[&str] = &[
        OFF, LOCAL, ALLOW_LIST, ALLOW, DENY, VERIFY, PENDING, APPROVED, REJECTED,
    ];
    /// The `src_type` of a practice's settings (`src_id`: the practice).
    pub const SETTINGS_SOURCE: &str = "$sharing";
    /// The `src_type` of one organisation's approval request or decision
    /// (`src_id`: practice, space, organisation).
    pub const REQUEST_SOURCE: &str = "$sharing-request";
}

/// The pseudo patient id a practice's sharing rules are stored under.
pub fn practice_key(practice: &str) -> String {
    format!("#practice:{practice}")
}

/// The resource types whose writes can create relationship rows.
pub const SOURCE_TYPES: &[&str] = &[
    "Consent",
    "Patient",
    "Encounter",
    "EpisodeOfCare",
    "CareTeam",
    "ServiceRequest",
    "Task",
];

/// One stored relationship fact, as the policy reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    pub org: String,
    pub kind: String,
    /// Per-user grants (break-glass) name the user's subject.
    pub user: Option<String>,
    pub active: bool,
    pub start: Option<Micros>,
    pub end: Option<Micros>,
    /// Marker detail: label codes of a sensitive consent; the practice of a
    /// sharing rule.
    pub detail: Option<String>,
}

impl Relationship {
    /// Is the row in force at `now` (active, inside its period)?
    pub fn in_force(&self, now: Micros) -> bool {
        self.active && self.start.is_none_or(|s| s <= now) && self.end.is_none_or(|e| e >= now)
    }

    /// Does this row give `org` (and, for per-user grants, `user`) a current
    /// relationship at `now`? Active rows count inside their period; a
    /// finished encounter counts for `recent` microseconds after it ended.
    pub fn is_current(&self, org: &str, user: &str, now: Micros, recent: Micros) -> bool {
        if self.org != org || !ACCESS_KINDS.contains(&self.kind.as_str()) {
            return false;
        }
        if self.user.as_deref().is_some_and(|u| u != user) {
            return false;
        }
        // A per-user grant that names no user grants nobody (fail closed).
        if self.kind == BREAK_GLASS && self.user.is_none() {
            return false;
        }
        self.in_force(now)
            || (self.kind == ENCOUNTER && self.end.is_some_and(|e| e >= now - recent && e <= now))
    }
}

/// Where a relationship points before resolution: an organisation by
/// logical id (`Organization/abc`) or by ODS code (a logical reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRef {
    Id(String),
    Code(String),
    /// A care team (`CareTeam/<id>`), named by an explicit consent: the
    /// organisations it states when the consent is written.
    CareTeam(String),
}

/// A relationship a resource states, before its organisation is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub org: OrgRef,
    pub kind: &'static str,
    pub active: bool,
    pub start: Option<Micros>,
    pub end: Option<Micros>,
    /// Label codes, for a sensitive consent.
    pub detail: Option<String>,
}

pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// The organisation a `Reference` value names, if it names one.
pub fn org_ref(reference: &Value) -> Option<OrgRef> {
    if let Some(r) = reference.get("reference").and_then(Value::as_str) {
        return match crate::json::split_reference(r) {
            Some(("Organization", id)) => Some(OrgRef::Id(id.to_owned())),
            _ => None,
        };
    }
    let ident = reference.get("identifier")?;
    if ident.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM) {
        return ident
            .get("value")
            .and_then(Value::as_str)
            .map(|v| OrgRef::Code(v.to_owned()));
    }
    None
}

/// The organisation code an `Organization` resource is known by: its ODS
/// code, else its logical id.
pub fn org_code(organization: &Value, id: &str) -> String {
    values(organization, "identifier")
        .into_iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(ODS_SYSTEM))
        .and_then(|i| i.get("value").and_then(Value::as_str))
        .unwrap_or(id)
        .to_owned()
}

fn period(v: &Value, path: &str) -> (Option<Micros>, Option<Micros>) {
    (
        string(v, &format!("{path}.start")).and_then(date_micros),
        string(v, &format!("{path}.end")).and_then(date_micros),
    )
}

/// The relationships a resource states between its patient and
/// organisations.
pub fn drafts(rtype: &str, r: &Value) -> Vec<Draft> {
    let status = string(r, "status").unwrap_or("");
    let mut out = Vec::new();
    let mut push = |refs: Vec<&Value>, kind: &'static str, active: bool, start, end| {
        for reference in refs {
            if let Some(org) = org_ref(reference) {
                let d = Draft {
                    org,
                    kind,
                    active,
                    start,
                    end,
                    detail: None,
                };
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
    };
    match rtype {
        "Patient" => {
            let active = r.get("active").and_then(Value::as_bool) != Some(false)
                && r.get("deceasedBoolean").and_then(Value::as_bool) != Some(true)
                && r.get("deceasedDateTime").is_none();
            push(
                values(r, "generalPractitioner"),
                GP_REGISTRATION,
                active,
                None,
                None,
            );
        }
        // Cancelled and erroneous encounters never happened.
        "Encounter" if matches!(status, "cancelled" | "entered-in-error") => {}
        "Encounter" => {
            let active = matches!(
                status,
                "planned" | "arrived" | "triaged" | "in-progress" | "onleave"
            );
            let (start, end) = period(r, "period");
            // A finished encounter without an end counts from its start.
            let end = if active { end } else { end.or(start) };
            push(values(r, "serviceProvider"), ENCOUNTER, active, start, end);
        }
        "EpisodeOfCare" => {
            let active = matches!(status, "active" | "onhold" | "waitlist");
            let (start, end) = period(r, "period");
            push(
                values(r, "managingOrganization"),
                EPISODE_OF_CARE,
                active,
                start,
                end,
            );
        }
        "CareTeam" => {
            let active = status == "active";
            let (start, end) = period(r, "period");
            let mut refs = values(r, "managingOrganization");
            refs.extend(values(r, "participant.member"));
            refs.extend(values(r, "participant.onBehalfOf"));
            push(refs, CARE_TEAM, active, start, end);
        }
        "ServiceRequest" => {
            let active = status == "active";
            let (start, end) = period(r, "occurrencePeriod");
            push(values(r, "performer"), REFERRAL, active, start, end);
        }
        "Task" => {
            let active = matches!(
                status,
                "requested" | "received" | "accepted" | "ready" | "in-progress" | "on-hold"
            );
            let (start, end) = period(r, "executionPeriod");
            push(values(r, "owner"), REFERRAL, active, start, end);
        }
        "Consent" => out.extend(consent_drafts(r)),
        _ => {}
    }
    out
}

/// The markers a `Consent` states: dissent from sharing (whole record,
/// named organisations, organisation types), explicit consent to share
/// sealed categories with named organisations, and secondary-use
/// opt-outs. Only an active Consent of one of sharedcare's categories
/// states anything (a withdrawn one states nothing, so its markers go);
/// its period is `provision.period`.
pub fn consent_drafts(c: &Value) -> Vec<Draft> {
    if string(c, "status") != Some("active") {
        return vec![];
    }
    let categories: Vec<&str> = values(c, "category.coding")
        .into_iter()
        .filter(|k| k.get("system").and_then(Value::as_str) == Some(CONSENT_CATEGORY))
        .filter_map(|k| k.get("code").and_then(Value::as_str))
        .collect();
    let provision_type = string(c, "provision.type");
    let (start, end) = period(c, "provision.period");
    let draft = |org: OrgRef, kind: &'static str, detail: Option<String>| Draft {
        org,
        kind,
        active: true,
        start,
        end,
        detail,
    };
    let actors: Vec<OrgRef> = values(c, "provision.actor.reference")
        .into_iter()
        .filter_map(org_ref)
        .collect();
    let mut out = Vec::new();
    for category in categories {
        match (category, provision_type) {
            (SHARE_DISSENT, Some("deny")) => {
                let types: Vec<&str> = values(c, "provision.extension")
                    .into_iter()
                    .filter(|e| e.get("url").and_then(Value::as_str) == Some(ORG_TYPE_EXTENSION))
                    .filter_map(|e| e.get("valueCoding"))
                    .filter(|k| k.get("system").and_then(Value::as_str) == Some(ORG_TYPE_SYSTEM))
                    .filter_map(|k| k.get("code").and_then(Value::as_str))
                    .collect();
                // A dissent with a named recipient that is not an
                // organisation (a person, a device) is read as a dissent
                // from sharing at all: fail closed.
                let named_others = !values(c, "provision.actor").is_empty() && actors.is_empty();
                if (actors.is_empty() && types.is_empty()) || named_others {
                    out.push(draft(
                        OrgRef::Code(EVERY_ORGANISATION.to_owned()),
                        DISSENT,
                        None,
                    ));
                }
                for org in &actors {
                    out.push(draft(org.clone(), DISSENT, None));
                }
                for t in types {
                    out.push(draft(OrgRef::Code(org_type_key(t)), DISSENT, None));
                }
            }
            (SENSITIVE_SHARE, Some("permit")) => {
                let labels: Vec<&str> = values(c, "provision.securityLabel")
                    .into_iter()
                    .filter_map(|l| l.get("code").and_then(Value::as_str))
                    .filter(|code| !code.contains(' '))
                    .collect();
                if labels.is_empty() {
                    continue;
                }
                let teams = values(c, "provision.actor.reference.reference")
                    .into_iter()
                    .filter_map(Value::as_str)
                    .filter_map(crate::json::split_reference)
                    .filter(|(t, _)| *t == "CareTeam")
                    .map(|(_, id)| OrgRef::CareTeam(id.to_owned()));
                for org in actors.iter().cloned().chain(teams) {
                    out.push(draft(org, SENSITIVE_CONSENT, Some(labels.join(" "))));
                }
            }
            (NATIONAL_DATA_OPT_OUT | TYPE_1_OPT_OUT, Some("deny")) => {
                let code = if category == NATIONAL_DATA_OPT_OUT {
                    NATIONAL_DATA_OPT_OUT
                } else {
                    TYPE_1_OPT_OUT
                };
                out.push(draft(OrgRef::Code(code.to_owned()), OPT_OUT, None));
            }
            _ => {}
        }
    }
    out.dedup();
    out
}

/// The proxy Consents among `consents` in force for `related_person` at
/// `now`: active, a permit, resting on a recognised NHS England legal basis
/// ([`PROXY_LEGAL_BASES`]), naming the RelatedPerson as actor, within their
/// period.
fn proxy_consents<'a>(
    consents: &'a [Value],
    related_person: &str,
    now: Micros,
) -> impl Iterator<Item = &'a Value> {
    let want = format!("RelatedPerson/{related_person}");
    consents.iter().filter(move |c| {
        if string(c, "status") != Some("active") {
            return false;
        }
        if string(c, "provision.type").is_some_and(|t| t != "permit") {
            return false;
        }
        if legal_basis(c).is_none() {
            return false;
        }
        let names_actor = strings(c, "provision.actor.reference.reference")
            .iter()
            .any(|r| r.ends_with(&want) || *r == want);
        if !names_actor {
            return false;
        }
        let (start, end) = period(c, "provision.period");
        !(start.is_some_and(|s| s > now) || end.is_some_and(|e| e < now))
    })
}

/// The recognised legal basis a proxy Consent rests on (`policyRule`).
pub fn legal_basis(c: &Value) -> Option<&str> {
    values(c, "policyRule.coding")
        .into_iter()
        .filter(|k| k.get("system").and_then(Value::as_str) == Some(PROXY_LEGAL_BASIS))
        .filter_map(|k| k.get("code").and_then(Value::as_str))
        .find(|code| PROXY_LEGAL_BASES.contains(code))
}

/// Proxy access levels (NHS England VRS codes) the proxy Consents in force
/// grant to `related_person` at `now` (see [`proxy_consents`]). Codes come
/// from `provision.action`.
pub fn proxy_scopes(consents: &[Value], related_person: &str, now: Micros) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in proxy_consents(consents, related_person, now) {
        for code in strings(c, "provision.action.coding.code") {
            if !out.iter().any(|o| o == code) {
                out.push(code.to_owned());
            }
        }
    }
    out
}

/// Is a parent's access due for review: a proxy Consent in force on the
/// ground of parental responsibility, granted before the child turned 11,
/// now that the child is 11 or older? (`birth_date`: the child's
/// `Patient.birthDate`.) The practice is told; access is not cut, as the
/// practice decides.
pub fn proxy_review_due(
    consents: &[Value],
    related_person: &str,
    birth_date: &str,
    now: Micros,
) -> bool {
    let Some(eleventh) = eleventh_birthday(birth_date) else {
        return false;
    };
    if now < eleventh {
        return false;
    }
    proxy_consents(consents, related_person, now).any(|c| {
        legal_basis(c) == Some("parental-responsibility")
            && string(c, "provision.period.start")
                .or_else(|| string(c, "dateTime"))
                .and_then(date_micros)
                .is_none_or(|granted| granted < eleventh)
    })
}

/// The start of the 11th birthday of someone born on `birth_date`
/// (`YYYY-MM-DD`; a 29 February birthday falls on 1 March).
fn eleventh_birthday(birth_date: &str) -> Option<Micros> {
    let year: i64 = birth_date.get(0..4)?.parse().ok()?;
    let rest = birth_date.get(4..)?;
    let rest = if rest == "-02-29" { "-03-01" } else { rest };
    date_micros(&format!("{:04}{rest}", year + 11))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn encounter_rows() {
        let e = json!({"status": "finished", "period": {"start": "2026-01-01", "end": "2026-01-02"},
            "serviceProvider": {"reference": "Organization/h1"}});
        let d = drafts("Encounter", &e);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].org, OrgRef::Id("h1".into()));
        assert!(!d[0].active);
        let r = Relationship {
            org: "H1".into(),
            kind: ENCOUNTER.into(),
            user: None,
            active: false,
            start: d[0].start,
            end: d[0].end,
            detail: None,
        };
        let end = d[0].end.unwrap();
        assert!(r.is_current("H1", "u", end + 29 * DAY, 30 * DAY));
        assert!(!r.is_current("H1", "u", end + 31 * DAY, 30 * DAY));
        assert!(!r.is_current("H2", "u", end, 30 * DAY));
    }

    #[test]
    fn gp_registration_by_identifier() {
        let p = json!({"generalPractitioner": [{"identifier": {"system": ODS_SYSTEM, "value": "Y123"}}, {"reference": "Practitioner/x"}]});
        let d = drafts("Patient", &p);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].org, OrgRef::Code("Y123".into()));
        assert!(d[0].active);
    }

    #[test]
    fn break_glass_is_per_user() {
        let r = Relationship {
            org: "A".into(),
            kind: BREAK_GLASS.into(),
            user: Some("alice".into()),
            active: true,
            start: Some(0),
            end: Some(10),
            detail: None,
        };
        assert!(r.is_current("A", "alice", 5, 0));
        assert!(!r.is_current("A", "bob", 5, 0));
        assert!(!r.is_current("A", "alice", 11, 0));
    }

    #[test]
    fn proxy_consent_scopes() {
        let c = json!({"status": "active",
            "policyRule": {"coding": [{"system": PROXY_LEGAL_BASIS, "code": "parental-responsibility"}]},
            "provision": {"type": "permit",
            "period": {"start": "2020-01-01"},
            "actor": [{"reference": {"reference": "RelatedPerson/rp1"}}],
            "action": [{"coding": [{"code": "VACC"}, {"code": "PRESCR"}]}]}});
        assert_eq!(
            proxy_scopes(std::slice::from_ref(&c), "rp1", 1_800_000_000_000_000),
            vec!["VACC", "PRESCR"]
        );
        assert!(proxy_scopes(std::slice::from_ref(&c), "rp2", 1_800_000_000_000_000).is_empty());
        assert!(
            proxy_scopes(std::slice::from_ref(&c), "rp1", 0).is_empty(),
            "before its period"
        );
        let mut no_basis = c.clone();
        no_basis["policyRule"]["coding"][0]["code"] = json!("neighbour");
        assert!(
            proxy_scopes(&[no_basis], "rp1", 1_800_000_000_000_000).is_empty(),
            "no recognised legal basis, no access"
        );
    }

    #[test]
    fn parental_access_review_at_eleven() {
        let c = json!({"status": "active",
            "policyRule": {"coding": [{"system": PROXY_LEGAL_BASIS, "code": "parental-responsibility"}]},
            "provision": {"type": "permit", "period": {"start": "2015-06-01"},
            "actor": [{"reference": {"reference": "RelatedPerson/mum"}}],
            "action": [{"coding": [{"code": "VACC"}]}]}});
        let at = |d: &str| date_micros(d).unwrap();
        let one = std::slice::from_ref(&c);
        assert!(!proxy_review_due(
            one,
            "mum",
            "2015-05-01",
            at("2026-04-30")
        ));
        assert!(proxy_review_due(one, "mum", "2015-05-01", at("2026-05-01")));
        assert!(proxy_review_due(one, "mum", "2016-02-29", at("2027-03-01")));
        assert!(!proxy_review_due(
            one,
            "dad",
            "2015-05-01",
            at("2027-01-01")
        ));
        // Granted (or renewed) after the 11th birthday: already reviewed.
        let mut renewed = c.clone();
        renewed["provision"]["period"]["start"] = json!("2026-06-01");
        assert!(!proxy_review_due(
            &[renewed],
            "mum",
            "2015-05-01",
            at("2026-07-01")
        ));
        // Other legal bases are not reviewed at 11.
        let mut lpa = c;
        lpa["policyRule"]["coding"][0]["code"] = json!("lasting-power-of-attorney");
        assert!(!proxy_review_due(
            &[lpa],
            "mum",
            "2015-05-01",
            at("2027-01-01")
        ));
    }

    #[test]
    fn consent_markers() {
        let dissent = json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": SHARE_DISSENT}]}],
            "provision": {"type": "deny"}});
        let d = drafts("Consent", &dissent);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].org, OrgRef::Code("*".into()));
        assert_eq!(d[0].kind, DISSENT);
        let named = json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": SHARE_DISSENT}]}],
            "provision": {"type": "deny",
              "actor": [{"role": {"coding": [{"code": "IRCP"}]}, "reference": {"identifier": {"system": ODS_SYSTEM, "value": "CH1"}}}],
              "extension": [{"url": ORG_TYPE_EXTENSION, "valueCoding": {"system": ORG_TYPE_SYSTEM, "code": "pharmacy"}}]}});
        let d = drafts("Consent", &named);
        let orgs: Vec<&OrgRef> = d.iter().map(|d| &d.org).collect();
        assert_eq!(
            orgs,
            vec![
                &OrgRef::Code("CH1".into()),
                &OrgRef::Code("type:pharmacy".into())
            ]
        );
        // A dissent naming a person is read as a dissent from all sharing.
        let person = json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": SHARE_DISSENT}]}],
            "provision": {"type": "deny", "actor": [{"reference": {"reference": "Practitioner/x"}}]}});
        assert_eq!(drafts("Consent", &person)[0].org, OrgRef::Code("*".into()));
        let sensitive = json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": SENSITIVE_SHARE}]}],
            "provision": {"type": "permit", "period": {"start": "2026-01-01"},
              "actor": [{"reference": {"reference": "Organization/ch"}}],
              "securityLabel": [{"system": crate::labels::ACT_CODE, "code": "PSY"}, {"code": "SDV"}]}});
        let d = drafts("Consent", &sensitive);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].kind, SENSITIVE_CONSENT);
        assert_eq!(d[0].org, OrgRef::Id("ch".into()));
        assert_eq!(d[0].detail.as_deref(), Some("PSY SDV"));
        assert!(d[0].start.is_some());
        let mut team = sensitive.clone();
        team["provision"]["actor"][0]["reference"]["reference"] = json!("CareTeam/ct1");
        assert_eq!(
            drafts("Consent", &team)[0].org,
            OrgRef::CareTeam("ct1".into())
        );
        let mut withdrawn = sensitive.clone();
        withdrawn["status"] = json!("inactive");
        assert!(
            drafts("Consent", &withdrawn).is_empty(),
            "withdrawn: no marker"
        );
        let ndoo = json!({"status": "active",
            "category": [{"coding": [{"system": CONSENT_CATEGORY, "code": NATIONAL_DATA_OPT_OUT}]}],
            "provision": {"type": "deny"}});
        let d = drafts("Consent", &ndoo);
        assert_eq!(
            (d[0].kind, &d[0].org),
            (OPT_OUT, &OrgRef::Code(NATIONAL_DATA_OPT_OUT.into()))
        );
        // Not one of ours: nothing.
        let other = json!({"status": "active", "provision": {"type": "deny"}});
        assert!(drafts("Consent", &other).is_empty());
    }
}
