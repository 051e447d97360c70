//! Pure access decisions for sharedcare.
//!
//! Given who is asking ([`Principal`]), facts gathered from the record about
//! one person ([`Facts`]) and the time, the [`Policy`] answers whether the
//! principal may access that person and, if so, with which view
//! ([`PatientAccess`]): which items (per resource type, under conditions and
//! security labels) and which of their elements. The core applies the answer
//! to every path: it turns [`PatientAccess::criteria`] into search filters,
//! and checks every item with [`PatientAccess::item`] before it leaves.
//!
//! Invariants:
//! - No IO, no clock, no randomness, no async: time and facts are inputs.
//! - Deny by default: an unknown role, a type outside every rule, an
//!   unresolved condition or a missing scope denies.
//! - Views are whitelists; scopes only narrow what the role allows.
//! - Sealed items (sensitive labels) are visible only to clinical users of
//!   the recording organisation (and to the person, and to system clients);
//!   break-glass opens a role's view, never the seal.

pub mod json;
pub mod labels;
pub mod relationships;
pub mod roles;
pub mod scopes;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use relationships::Relationship;
pub use roles::{Condition, RoleDef, RoleKind, TypeRule, View};
pub use scopes::{Context, Permission, Scope};

/// Microseconds since the Unix epoch (UTC).
pub type Micros = i64;

const DAY: Micros = 86_400_000_000;

/// Who is asking, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub name: String,
    pub role: String,
    /// Organisation code (ODS).
    pub org: Option<String>,
    /// Professional registration (GMC, NMC, HCPC, GPhC, SWE…).
    pub registration: Option<String>,
    /// The patient a patient or proxy token is bound to (logical id).
    pub patient: Option<String>,
    /// The RelatedPerson a proxy acts as.
    pub related_person: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// The code written as `recorded-by` on what this principal writes.
    pub fn recorder(&self) -> Option<String> {
        if let Some(rp) = &self.related_person {
            return Some(format!("RelatedPerson/{rp}"));
        }
        if self.role == "patient"
            && let Some(p) = &self.patient
        {
            return Some(format!("Patient/{p}"));
        }
        self.org.clone()
    }
}

/// Why access was refused. `code` is stable; `message` is for people and
/// never names withheld content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: &'static str,
    pub message: String,
    /// The principal could open this person's record with break-glass.
    pub break_glass_available: bool,
}

fn deny(code: &'static str, message: impl Into<String>) -> Denial {
    Denial {
        code,
        message: message.into(),
        break_glass_available: false,
    }
}

/// What the record says about one person, for one principal.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub patient_id: &'a str,
    /// Rows for the principal's organisation, the person's GP registrations,
    /// the principal's own grants, and sealed-item markers.
    pub relationships: &'a [Relationship],
    /// For proxies: the access levels of their active proxy Consent(s).
    pub proxy_levels: &'a [String],
    /// The type of the principal's organisation (`Organization.type`,
    /// sharedcare's organisation-type codes), when a dissent names types.
    pub org_type: Option<&'a str>,
}

/// On what ground access was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Basis {
    /// A current relationship of this kind.
    Relationship(String),
    BreakGlass,
    /// The person themself.
    Subject,
    /// A proxy Consent.
    Proxy,
    /// A system client.
    System,
}

/// A filter the core must add to a search, in the policy's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// The token parameter has (or, with `not`, has none) of these
    /// (system, code) pairs; a `None` system matches any system.
    Token {
        param: String,
        not: bool,
        any_of: Vec<(Option<String>, String)>,
    },
    /// The date parameter is on or after `from`.
    DateFrom { param: String, from: Micros },
    /// Only these ids.
    Ids(Vec<String>),
    /// Patients with a current relationship to `org` (population search).
    Related {
        org: String,
        user: String,
        now: Micros,
        recent_since: Micros,
    },
    /// Any one group (each an AND).
    AnyOf(Vec<Vec<Criterion>>),
    /// Matches nothing.
    Nothing,
}

/// Whether an item may leave, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// Shown, keeping these elements (`None`: all).
    Show(Option<&'a [String]>),
    Withhold(Withheld),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withheld {
    /// Outside the role's view (or scopes).
    NotInView,
    /// Sealed by a security label.
    Sealed,
    /// Belongs to another person.
    OtherPerson,
}

/// A "latest n" condition the core must resolve with a query before the
/// access is complete.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestQuery {
    pub rule: usize,
    pub rtype: String,
    pub criteria: Vec<Criterion>,
    pub n: usize,
    pub sort: String,
}

/// Settings of the decision rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub roles: Vec<RoleDef>,
    /// How long a finished encounter keeps a relationship (default 30 days).
    pub recent_encounter: Micros,
    /// How long break-glass lasts (default 4 hours).
    pub break_glass_for: Micros,
    /// The organisations of this integrated care system: what a practice's
    /// "local only" sharing admits.
    pub local_organisations: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            roles: roles::defaults(),
            recent_encounter: 30 * DAY,
            break_glass_for: 4 * 3_600_000_000,
            local_organisations: Vec::new(),
        }
    }
}

/// The denial code of an organisation's first access to a practice's
/// patient under "verify first": the core files the request.
pub const APPROVAL_REQUIRED: &str = "approval-required";

/// Types outside every person-level view (the audit work exposes them).
pub const AUDIT_TYPES: &[&str] = &["AuditEvent", "Provenance"];

/// The break-glass reason codes accepted (purpose of use, `v3-ActReason`).
pub const BREAK_GLASS_REASONS: &[&str] = &["ETREAT", "BTG", "ERTREAT", "CLINTRL", "PUBHLTH"];

fn context_of(kind: RoleKind) -> Context {
    match kind {
        RoleKind::Patient | RoleKind::Proxy => Context::Patient,
        RoleKind::Integration => Context::System,
        _ => Context::User,
    }
}

/// The `[policy]` table of the configuration file: the defaults, changed.
/// A role whose `code` is a default role's replaces it; a new code adds a
/// role. Nothing here can remove the deny-by-default rules: a role still
/// needs a relationship, labels still seal, views are still whitelists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// How long a finished encounter keeps a relationship (1..=365 days).
    #[serde(default)]
    pub recent_encounter_days: Option<i64>,
    /// How long break-glass lasts (1..=24 hours).
    #[serde(default)]
    pub break_glass_hours: Option<i64>,
    #[serde(default)]
    pub roles: Vec<RoleDef>,
    /// The ODS codes of this integrated care system's organisations.
    #[serde(default)]
    pub local_organisations: Vec<String>,
}

impl Policy {
    /// The default policy with `settings` applied, or what is wrong with
    /// them.
    pub fn configured(settings: PolicySettings) -> Result<Policy, String> {
        let mut policy = Policy::default();
        if let Some(days) = settings.recent_encounter_days {
            if !(1..=365).contains(&days) {
                return Err(format!(
                    "policy.recent_encounter_days must be 1 to 365, not {days}"
                ));
            }
            policy.recent_encounter = days * DAY;
        }
        if let Some(hours) = settings.break_glass_hours {
            if !(1..=24).contains(&hours) {
                return Err(format!(
                    "policy.break_glass_hours must be 1 to 24, not {hours}"
                ));
            }
            policy.break_glass_for = hours * 3_600_000_000;
        }
        let mut seen: Vec<&str> = Vec::new();
        for role in &settings.roles {
            let code = role.code.as_str();
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(format!(
                    "policy.roles: role code {code:?} must be letters, digits and '-'"
                ));
            }
            if seen.contains(&code) {
                return Err(format!("policy.roles: role {code:?} is defined twice"));
            }
            seen.push(code);
            if role.break_glass && role.kind != RoleKind::Clinical {
                return Err(format!(
                    "policy.roles: role {code:?}: break-glass is for clinical roles only"
                ));
            }
            if role.kind == RoleKind::Clinical && !role.needs_registration {
                return Err(format!(
                    "policy.roles: role {code:?}: clinical roles need a professional registration"
                ));
            }
        }
        for org in &settings.local_organisations {
            if org.is_empty() || !org.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "policy.local_organisations: {org:?} is not an organisation code"
                ));
            }
        }
        policy.local_organisations = settings.local_organisations;
        for role in settings.roles {
            match policy.roles.iter_mut().find(|r| r.code == role.code) {
                Some(existing) => *existing = role,
                None => policy.roles.push(role),
            }
        }
        Ok(policy)
    }

    /// Is `org` one of this integrated care system's organisations?
    pub fn is_local(&self, org: &str) -> bool {
        self.local_organisations.iter().any(|o| o == org)
    }

    /// What keeps `org` (of type `org_type`) out of this person's record
    /// although it has a relationship: the person's dissent, or the sharing
    /// rules of their registered practice(s). `None`: nothing. Only
    /// break-glass passes it. The registered practice itself is never kept
    /// out (the caller checks).
    fn sharing_block(
        &self,
        org: &str,
        facts: &Facts,
        gp_orgs: &[String],
        now: Micros,
        break_glass: bool,
    ) -> Option<Denial> {
        let refuse = |code: &'static str, why: String| Denial {
            code,
            message: if break_glass {
                format!(
                    "{why}; break-glass is available to your role (POST Patient/[id]/$break-glass with a reason)"
                )
            } else {
                why
            },
            break_glass_available: break_glass,
        };
        let type_key = facts.org_type.map(relationships::org_type_key);
        // A dissent aimed at a kind of organisation keeps out an
        // organisation whose kind the record does not know (fail closed).
        let dissent = facts.relationships.iter().any(|r| {
            r.kind == relationships::DISSENT
                && r.in_force(now)
                && (r.org == relationships::EVERY_ORGANISATION
                    || r.org == org
                    || match &type_key {
                        Some(key) => *key == r.org,
                        None => r.org.starts_with("type:"),
                    })
        });
        if dissent {
            return Some(refuse(
                "dissent",
                format!(
                    "this person has asked that their record is not shared with organisation {org}"
                ),
            ));
        }
        use relationships::sharing;
        for practice in gp_orgs {
            let rules: Vec<&Relationship> = facts
                .relationships
                .iter()
                .filter(|r| {
                    sharing::KINDS.contains(&r.kind.as_str())
                        && r.detail.as_deref() == Some(practice.as_str())
                        && (r.org == org || r.org == relationships::EVERY_ORGANISATION)
                })
                .collect();
            let has = |kind: &str| rules.iter().any(|r| r.kind == kind);
            let named = |kind: &str| rules.iter().any(|r| r.kind == kind && r.org == org);
            if has(sharing::OFF) {
                return Some(refuse(
                    "sharing-off",
                    format!("practice {practice} does not share its patients' records"),
                ));
            }
            if named(sharing::DENY) {
                return Some(refuse(
                    "sharing-denied",
                    format!(
                        "practice {practice} does not share its patients' records with organisation {org}"
                    ),
                ));
            }
            if has(sharing::LOCAL) && !self.is_local(org) {
                return Some(refuse(
                    "sharing-local-only",
                    format!(
                        "practice {practice} shares only with organisations of its integrated care system"
                    ),
                ));
            }
            if has(sharing::ALLOW_LIST) && !named(sharing::ALLOW) {
                return Some(refuse(
                    "sharing-not-allowed",
                    format!("practice {practice} shares only with the organisations it has listed"),
                ));
            }
            if named(sharing::VERIFY) {
                if named(sharing::REJECTED) {
                    return Some(refuse(
                        "sharing-rejected",
                        format!("practice {practice} has declined access by organisation {org}"),
                    ));
                }
                if !named(sharing::APPROVED) {
                    return Some(refuse(
                        APPROVAL_REQUIRED,
                        format!(
                            "practice {practice} approves each new organisation's access first; a request has been sent to it"
                        ),
                    ));
                }
            }
        }
        None
    }

    pub fn role(&self, code: &str) -> Option<&RoleDef> {
        self.roles.iter().find(|r| r.code == code)
    }

    /// The role, refusing unknown roles and missing registrations.
    pub fn role_of(&self, p: &Principal) -> Result<&RoleDef, Denial> {
        let role = self.role(&p.role).ok_or_else(|| {
            deny(
                "unknown-role",
                format!("the role '{}' is not known", p.role),
            )
        })?;
        if role.needs_registration && p.registration.as_deref().is_none_or(str::is_empty) {
            return Err(deny(
                "registration-required",
                format!("the role '{}' needs a professional registration", role.code),
            ));
        }
        if matches!(role.kind, RoleKind::Clinical | RoleKind::SocialCare) && p.org.is_none() {
            return Err(deny(
                "organisation-required",
                "staff tokens must name their organisation",
            ));
        }
        Ok(role)
    }

    fn scope_check(
        &self,
        p: &Principal,
        kind: RoleKind,
        rtype: &str,
        perm: Permission,
    ) -> Result<(), Denial> {
        if scopes::grants(&p.scopes, context_of(kind), rtype, perm) {
            Ok(())
        } else {
            Err(deny(
                "scope",
                format!("the token's scopes do not allow {perm:?} on {rtype}"),
            ))
        }
    }

    /// Access to a type that belongs to no person (organisations,
    /// practitioners, medications…, or an item with no patient).
    pub fn unlinked(&self, p: &Principal, rtype: &str, perm: Permission) -> Result<(), Denial> {
        let role = self.role_of(p)?;
        self.scope_check(p, role.kind, rtype, perm)?;
        if role.kind == RoleKind::Integration {
            return Ok(());
        }
        let reading = matches!(perm, Permission::Read | Permission::Search);
        if reading && role.reads_directory && roles::DIRECTORY_TYPES.contains(&rtype) {
            return Ok(());
        }
        Err(deny(
            "type-not-permitted",
            format!(
                "the role '{}' may not {perm:?} {rtype} outside a person's record",
                role.code
            ),
        ))
    }

    /// May the principal register a new person (create a `Patient` that no
    /// relationship can yet cover)? Clinical roles and system clients.
    pub fn may_register(&self, p: &Principal) -> Result<(), Denial> {
        let role = self.role_of(p)?;
        self.scope_check(p, role.kind, "Patient", Permission::Create)?;
        if matches!(role.kind, RoleKind::Clinical | RoleKind::Integration) {
            Ok(())
        } else {
            Err(deny(
                "not-creatable",
                format!("the role '{}' may not register people", role.code),
            ))
        }
    }

    /// May the principal submit `rtype` at all (`$validate`)? Its role must
    /// write to records and a scope must grant create or update.
    pub fn may_submit(&self, p: &Principal, rtype: &str) -> Result<(), Denial> {
        let role = self.role_of(p)?;
        let context = context_of(role.kind);
        let scoped = [Permission::Create, Permission::Update]
            .iter()
            .any(|perm| scopes::grants(&p.scopes, context, rtype, *perm));
        let writes = !matches!(
            role.kind,
            RoleKind::DataController | RoleKind::Commissioner | RoleKind::Admin
        );
        if scoped && writes {
            Ok(())
        } else {
            Err(deny("scope", format!("this token may not submit {rtype}")))
        }
    }

    /// Whether the principal's role may use break-glass at all.
    pub fn may_break_glass(&self, p: &Principal) -> Result<&RoleDef, Denial> {
        let role = self.role_of(p)?;
        if role.break_glass && role.kind == RoleKind::Clinical {
            Ok(role)
        } else {
            Err(deny(
                "break-glass-not-allowed",
                format!("the role '{}' cannot use break-glass", role.code),
            ))
        }
    }

    /// The criterion restricting a population `Patient` search to people
    /// the principal may access, or a denial.
    pub fn population(&self, p: &Principal, now: Micros) -> Result<Criterion, Denial> {
        let role = self.role_of(p)?;
        self.scope_check(p, role.kind, "Patient", Permission::Search)?;
        match role.kind {
            RoleKind::Integration => Ok(Criterion::AnyOf(vec![vec![]])),
            RoleKind::Patient | RoleKind::Proxy => match &p.patient {
                Some(id) => Ok(Criterion::Ids(vec![id.clone()])),
                None => Err(deny("no-patient", "the token names no patient")),
            },
            RoleKind::Clinical | RoleKind::SocialCare => match &p.org {
                Some(org) => Ok(Criterion::Related {
                    org: org.clone(),
                    user: p.subject.clone(),
                    now,
                    recent_since: now - self.recent_encounter,
                }),
                None => Err(deny(
                    "organisation-required",
                    "staff tokens must name their organisation",
                )),
            },
            _ => Err(deny(
                "no-person-access",
                format!("the role '{}' has no access to people's records", role.code),
            )),
        }
    }

    /// May the principal access this person, and with what view?
    pub fn patient_access(
        &self,
        p: &Principal,
        facts: &Facts,
        now: Micros,
    ) -> Result<PatientAccess, Denial> {
        let role = self.role_of(p)?;
        let org = p.org.clone();
        let gp_orgs: Vec<String> = facts
            .relationships
            .iter()
            .filter(|r| r.kind == relationships::GP_REGISTRATION && r.active)
            .map(|r| r.org.clone())
            .collect();
        let (basis, view) = match role.kind {
            RoleKind::Integration => (Basis::System, View::Full),
            RoleKind::Patient => {
                if p.patient.as_deref() != Some(facts.patient_id) {
                    return Err(deny(
                        "not-your-record",
                        "this token may only access its own patient's record",
                    ));
                }
                (Basis::Subject, role.view.clone())
            }
            RoleKind::Proxy => {
                if p.patient.as_deref() != Some(facts.patient_id) || p.related_person.is_none() {
                    return Err(deny(
                        "not-your-record",
                        "this proxy token is for another person's record",
                    ));
                }
                if facts.proxy_levels.is_empty() {
                    return Err(deny(
                        "no-proxy-consent",
                        "there is no active proxy consent for this caregiver",
                    ));
                }
                (Basis::Proxy, proxy_view(facts.proxy_levels))
            }
            RoleKind::Clinical | RoleKind::SocialCare => {
                let Some(org) = org.as_deref() else {
                    return Err(deny(
                        "organisation-required",
                        "staff tokens must name their organisation",
                    ));
                };
                let current: Vec<&Relationship> = facts
                    .relationships
                    .iter()
                    .filter(|r| r.is_current(org, &p.subject, now, self.recent_encounter))
                    .collect();
                let relationship = current
                    .iter()
                    .find(|r| r.kind != relationships::BREAK_GLASS);
                let glass = role.break_glass
                    && current.iter().any(|r| r.kind == relationships::BREAK_GLASS);
                // The person's dissent and their practice's sharing rules
                // keep out every organisation but the practice, whatever its
                // relationship; only break-glass passes them.
                let block = if gp_orgs.iter().any(|g| g == org) {
                    None
                } else {
                    self.sharing_block(org, facts, &gp_orgs, now, role.break_glass)
                };
                match (relationship, block) {
                    (_, Some(_)) if glass => (Basis::BreakGlass, role.view.clone()),
                    (Some(_), Some(denial)) => return Err(denial),
                    (Some(r), None) => (Basis::Relationship(r.kind.clone()), role.view.clone()),
                    (None, _) if glass => (Basis::BreakGlass, role.view.clone()),
                    (None, _) => {
                        return Err(Denial {
                            code: "no-relationship",
                            message: if role.break_glass {
                                format!(
                                    "organisation {org} has no current care relationship with this person; break-glass is available to your role (POST Patient/[id]/$break-glass with a reason)"
                                )
                            } else {
                                format!(
                                    "organisation {org} has no current care relationship with this person"
                                )
                            },
                            break_glass_available: role.break_glass,
                        });
                    }
                }
            }
            RoleKind::DataController | RoleKind::Commissioner | RoleKind::Admin => {
                return Err(deny(
                    "no-person-access",
                    format!("the role '{}' has no access to people's records", role.code),
                ));
            }
        };
        // Sealed categories an explicit consent opens to this organisation.
        let consented: Vec<String> = match (role.kind, org.as_deref()) {
            (RoleKind::Clinical | RoleKind::SocialCare, Some(org)) => {
                let mut codes: Vec<String> = Vec::new();
                for r in facts.relationships.iter().filter(|r| {
                    r.kind == relationships::SENSITIVE_CONSENT && r.org == org && r.in_force(now)
                }) {
                    for code in r.detail.as_deref().unwrap_or("").split_whitespace() {
                        if !codes.iter().any(|c| c == code) {
                            codes.push(code.to_owned());
                        }
                    }
                }
                codes
            }
            _ => Vec::new(),
        };
        // A marker without its label codes (stored before they were kept)
        // counts as not covered.
        let covered = |r: &Relationship| {
            r.detail
                .as_deref()
                .is_some_and(|d| opened(&d.split_whitespace().collect::<Vec<_>>(), &consented))
        };
        let sealed_withheld = facts.relationships.iter().any(|r| {
            let sealed = r.kind == relationships::SEALED;
            match role.kind {
                RoleKind::Integration => false,
                // Telling the person (or a proxy) that something is kept
                // from them can itself harm: no notice for them.
                RoleKind::Patient | RoleKind::Proxy => false,
                RoleKind::Clinical => {
                    sealed && org.as_deref() != Some(r.org.as_str()) && !covered(r)
                }
                _ => sealed && !covered(r),
            }
        });
        Ok(PatientAccess {
            patient_id: facts.patient_id.to_owned(),
            basis,
            kind: role.kind,
            role: role.code.clone(),
            org,
            subject: p.subject.clone(),
            recorder: p.recorder(),
            gp_orgs,
            view,
            creates: role.creates.clone(),
            scopes: p.scopes.clone(),
            now,
            latest: Vec::new(),
            sealed_withheld,
            consented,
        })
    }
}

fn proxy_view(levels: &[String]) -> View {
    let mut rules = vec![TypeRule {
        rtype: "Patient".into(),
        conditions: vec![],
        elements: None,
    }];
    for level in levels {
        for t in roles::proxy_level_types(level) {
            if !rules.iter().any(|r| r.rtype == *t) {
                rules.push(TypeRule {
                    rtype: (*t).to_owned(),
                    conditions: vec![],
                    elements: None,
                });
            }
        }
    }
    View::Rules(rules.into())
}

/// A granted access to one person's record.
#[derive(Debug, Clone)]
pub struct PatientAccess {
    pub patient_id: String,
    pub basis: Basis,
    pub kind: RoleKind,
    pub role: String,
    org: Option<String>,
    subject: String,
    recorder: Option<String>,
    gp_orgs: Vec<String>,
    view: View,
    creates: std::sync::Arc<[TypeRule]>,
    scopes: Vec<Scope>,
    now: Micros,
    latest: Vec<(usize, Vec<String>)>,
    /// The record holds sealed items this principal cannot see.
    pub sealed_withheld: bool,
    /// Sealing label codes an explicit consent opens to this principal's
    /// organisation.
    consented: Vec<String>,
}

impl PatientAccess {
    fn rules_for(&self, rtype: &str) -> Vec<(usize, &TypeRule)> {
        match &self.view {
            View::Rules(rules) => rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.rtype == rtype)
                .collect(),
            _ => vec![],
        }
    }

    fn full(&self) -> bool {
        matches!(self.view, View::Full)
    }

    /// Does [`PatientAccess::item`] look at nothing but an item's `id` and
    /// `meta` (its labels and tags)? True for full views, whose items are
    /// shown whole or withheld by their labels: the core then need not
    /// parse the rest of the body.
    pub fn decides_by_meta(&self) -> bool {
        self.full()
    }

    /// May the principal read/search this type in this record at all?
    pub fn check(&self, rtype: &str, perm: Permission) -> Result<(), Denial> {
        if !scopes::grants(&self.scopes, context_of(self.kind), rtype, perm) {
            return Err(deny(
                "scope",
                format!("the token's scopes do not allow {perm:?} on {rtype}"),
            ));
        }
        // The audit trail is not part of anyone's clinical view.
        if AUDIT_TYPES.contains(&rtype) && self.kind != RoleKind::Integration {
            return Err(deny(
                "type-not-in-view",
                format!("{rtype} is available through the audit interfaces only"),
            ));
        }
        if self.full() || !self.rules_for(rtype).is_empty() {
            Ok(())
        } else {
            Err(deny(
                "type-not-in-view",
                format!("the '{}' view does not include {rtype}", self.role),
            ))
        }
    }

    /// The top-level elements of `rtype` this view lets a search look at:
    /// `None` when every element may be searched (full views, or a rule that
    /// keeps all elements); else the elements every rule for the type keeps,
    /// so that criteria cannot probe what an item's view drops.
    pub fn searchable_elements(&self, rtype: &str) -> Option<Vec<String>> {
        if self.full() {
            return None;
        }
        let mut out: Option<Vec<String>> = None;
        for (_, rule) in self.rules_for(rtype) {
            let Some(elements) = &rule.elements else {
                return None;
            };
            let tops: Vec<String> = elements
                .iter()
                .map(|e| e.split('.').next().unwrap_or(e).to_owned())
                .collect();
            out = Some(match out {
                None => tops,
                Some(prev) => prev.into_iter().filter(|e| tops.contains(e)).collect(),
            });
        }
        Some(out.unwrap_or_default())
    }

    /// The conditions still to be resolved by queries (`Latest`).
    pub fn pending_latest(&self) -> Vec<LatestQuery> {
        self.pending_latest_of(|_| true)
    }

    /// [`Self::pending_latest`] for the resource types `wanted` admits
    /// only: the others' criteria are never built (a single read needs its
    /// own type's, and building every one cost each restricted read
    /// measurably).
    pub fn pending_latest_of(&self, wanted: impl Fn(&str) -> bool) -> Vec<LatestQuery> {
        let View::Rules(rules) = &self.view else {
            return vec![];
        };
        let mut out = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if !wanted(&rule.rtype) {
                continue;
            }
            for c in &rule.conditions {
                if let Condition::Latest { n, sort } = c {
                    let criteria = rule
                        .conditions
                        .iter()
                        .filter(|c| !matches!(c, Condition::Latest { .. }))
                        .map(|c| self.condition_criterion(c, i))
                        .chain(self.label_criteria())
                        .collect();
                    out.push(LatestQuery {
                        rule: i,
                        rtype: rule.rtype.clone(),
                        criteria,
                        n: *n,
                        sort: sort.clone(),
                    });
                }
            }
        }
        out
    }

    /// Records the ids a `Latest` condition resolved to.
    pub fn resolve_latest(&mut self, rule: usize, ids: Vec<String>) {
        self.latest.retain(|(r, _)| *r != rule);
        self.latest.push((rule, ids));
    }

    fn latest_ids(&self, rule: usize) -> Option<&[String]> {
        self.latest
            .iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, ids)| ids.as_slice())
    }

    fn condition_criterion(&self, c: &Condition, rule: usize) -> Criterion {
        match c {
            Condition::Code { param, codes, .. } => Criterion::Token {
                param: param.clone(),
                not: false,
                any_of: codes.iter().map(|c| (None, c.clone())).collect(),
            },
            Condition::RecordedByOwnOrg => match &self.recorder {
                Some(r) => tag(labels::RECORDED_BY, r),
                None => Criterion::Nothing,
            },
            Condition::RecordedByRegisteredPractice => {
                if self.gp_orgs.is_empty() {
                    Criterion::Nothing
                } else {
                    Criterion::Token {
                        param: "_tag".into(),
                        not: false,
                        any_of: self
                            .gp_orgs
                            .iter()
                            .map(|o| (Some(labels::RECORDED_BY.to_owned()), o.clone()))
                            .collect(),
                    }
                }
            }
            Condition::Category(code) => tag(labels::RECORD_CATEGORY, code),
            Condition::WithinDays { param, days, .. } => Criterion::DateFrom {
                param: param.clone(),
                from: self.now - days * DAY,
            },
            Condition::Latest { .. } => match self.latest_ids(rule) {
                Some(ids) => Criterion::Ids(ids.to_vec()),
                None => Criterion::Nothing,
            },
        }
    }

    /// The label criteria for this principal's searches.
    fn label_criteria(&self) -> Vec<Criterion> {
        let not = |tokens: Vec<(String, String)>| Criterion::Token {
            param: "_security".into(),
            not: true,
            any_of: tokens.into_iter().map(|(s, c)| (Some(s), c)).collect(),
        };
        match self.kind {
            RoleKind::Integration => vec![],
            RoleKind::Patient => vec![not(labels::not_for_patient_tokens())],
            RoleKind::Proxy => {
                let mut t = labels::sensitive_tokens();
                t.extend(labels::not_for_patient_tokens());
                vec![not(t)]
            }
            RoleKind::Clinical => match &self.org {
                Some(org) => vec![Criterion::AnyOf(vec![
                    self.sealing_criteria(),
                    vec![tag(labels::RECORDED_BY, org)],
                ])],
                None => self.sealing_criteria(),
            },
            _ => self.sealing_criteria(),
        }
    }

    /// The criteria (an AND list) admitting only items whose seal this
    /// principal's consents open ([`opened`]), or that carry no seal.
    fn sealing_criteria(&self) -> Vec<Criterion> {
        let token = |not: bool, tokens: Vec<(String, String)>| Criterion::Token {
            param: "_security".into(),
            not,
            any_of: tokens.into_iter().map(|(s, c)| (Some(s), c)).collect(),
        };
        let consented = |code: &str| self.consented.iter().any(|c| c == code);
        let all = labels::sensitive_tokens();
        let is_r =
            |(system, code): &(String, String)| system == labels::CONFIDENTIALITY && code == "R";
        let closed: Vec<(String, String)> = all
            .iter()
            .filter(|t| !is_r(t) && !consented(&t.1))
            .cloned()
            .collect();
        let open: Vec<(String, String)> = all
            .iter()
            .filter(|t| !is_r(t) && consented(&t.1))
            .cloned()
            .collect();
        let r: Vec<(String, String)> = all.iter().filter(|t| is_r(t)).cloned().collect();
        if consented("R") {
            vec![token(true, closed)]
        } else if open.is_empty() {
            vec![token(true, all)]
        } else {
            // `R` comes with every sensitivity topic: an item restricted by
            // `R` alone stays closed, one with a consented topic opens.
            vec![
                token(true, closed),
                Criterion::AnyOf(vec![vec![token(true, r)], vec![token(false, open)]]),
            ]
        }
    }

    /// The filters a search over `rtype` in this record must carry (an AND
    /// list), so that paging, counts, sorting and includes see only what
    /// the principal may see.
    pub fn criteria(&self, rtype: &str) -> Result<Vec<Criterion>, Denial> {
        self.check(rtype, Permission::Search)?;
        let mut out = self.label_criteria();
        if !self.full() {
            let groups: Vec<Vec<Criterion>> = self
                .rules_for(rtype)
                .into_iter()
                .map(|(i, r)| {
                    r.conditions
                        .iter()
                        .map(|c| self.condition_criterion(c, i))
                        .collect()
                })
                .collect();
            if groups.iter().all(|g| !g.is_empty()) || groups.is_empty() {
                out.push(Criterion::AnyOf(groups));
            }
            // A rule without conditions admits every item: no filter.
        }
        Ok(out)
    }

    fn condition_holds(&self, c: &Condition, rule: usize, id: &str, r: &Value) -> bool {
        match c {
            Condition::Code { path, codes, .. } => json::strings(r, path)
                .iter()
                .any(|v| codes.iter().any(|c| c == v)),
            Condition::RecordedByOwnOrg => {
                self.recorder.is_some() && labels::recorded_by(r) == self.recorder.as_deref()
            }
            Condition::RecordedByRegisteredPractice => {
                labels::recorded_by(r).is_some_and(|o| self.gp_orgs.iter().any(|g| g == o))
            }
            Condition::Category(code) => labels::has_category(r, code),
            Condition::WithinDays { paths, days, .. } => paths
                .iter()
                .find_map(|p| json::string(r, p).and_then(json::date_micros))
                .is_some_and(|d| d >= self.now - days * DAY),
            Condition::Latest { .. } => self
                .latest_ids(rule)
                .is_some_and(|ids| ids.iter().any(|i| i == id)),
        }
    }

    fn labels_allow(&self, r: &Value) -> bool {
        let (sensitive, not_for_patient) = labels::labels_of(r);
        match self.kind {
            RoleKind::Integration => true,
            RoleKind::Patient => !not_for_patient,
            RoleKind::Proxy => !sensitive && !not_for_patient,
            RoleKind::Clinical => {
                !sensitive
                    || (self.org.is_some() && labels::recorded_by(r) == self.org.as_deref())
                    || self.consent_opens(r)
            }
            _ => !sensitive || self.consent_opens(r),
        }
    }

    /// Does an explicit consent open every sealing label of `r` to this
    /// principal's organisation?
    fn consent_opens(&self, r: &Value) -> bool {
        opened(&labels::sealing_codes(r), &self.consented)
    }

    /// The decision for one item of this person's record about to leave.
    /// `patient` is the person the item belongs to (its compartment).
    pub fn item<'a>(&'a self, rtype: &str, patient: Option<&str>, r: &Value) -> Item<'a> {
        if rtype != "Patient" && patient != Some(self.patient_id.as_str()) {
            return Item::Withhold(Withheld::OtherPerson);
        }
        if rtype == "Patient" && json::string(r, "id") != Some(self.patient_id.as_str()) {
            return Item::Withhold(Withheld::OtherPerson);
        }
        if self.check(rtype, Permission::Read).is_err() {
            return Item::Withhold(Withheld::NotInView);
        }
        if !self.labels_allow(r) {
            return Item::Withhold(Withheld::Sealed);
        }
        if self.full() {
            return Item::Show(None);
        }
        let id = json::string(r, "id").unwrap_or("");
        for (i, rule) in self.rules_for(rtype) {
            if rule
                .conditions
                .iter()
                .all(|c| self.condition_holds(c, i, id, r))
            {
                return Item::Show(rule.elements.as_deref());
            }
        }
        Item::Withhold(Withheld::NotInView)
    }

    /// May the principal write `new` (and replace `existing`, for an update
    /// or delete) in this record?
    pub fn may_write(
        &self,
        rtype: &str,
        perm: Permission,
        new: Option<&Value>,
        existing: Option<&Value>,
    ) -> Result<(), Denial> {
        if !scopes::grants(&self.scopes, context_of(self.kind), rtype, perm) {
            return Err(deny(
                "scope",
                format!("the token's scopes do not allow {perm:?} on {rtype}"),
            ));
        }
        if self.kind == RoleKind::Integration {
            return Ok(());
        }
        if let Some(old) = existing {
            let recorder = labels::recorded_by(old);
            // Only the recorder changes an entry, and nobody changes what
            // its labels hide from them.
            if recorder.is_none() || recorder != self.recorder.as_deref() || !self.labels_allow(old)
            {
                return Err(deny(
                    "other-organisations-entry",
                    "only the organisation (or person) that recorded an entry may change or delete it",
                ));
            }
        }
        if perm == Permission::Delete {
            // Deletes stay within the types the role may record.
            let may_record = match self.kind {
                RoleKind::Clinical => true,
                RoleKind::SocialCare | RoleKind::Patient | RoleKind::Proxy => {
                    existing.is_some_and(|old| self.creatable(rtype, old))
                }
                _ => false,
            };
            return if may_record {
                Ok(())
            } else {
                Err(deny(
                    "not-creatable",
                    format!("the role '{}' may not delete {rtype}", self.role),
                ))
            };
        }
        let Some(new) = new else { return Ok(()) };
        match self.kind {
            RoleKind::Clinical => Ok(()),
            RoleKind::SocialCare | RoleKind::Patient | RoleKind::Proxy => {
                if self.creatable(rtype, new) {
                    Ok(())
                } else {
                    Err(deny(
                        "not-creatable",
                        format!("the role '{}' may not record this {rtype}", self.role),
                    ))
                }
            }
            _ => Err(deny(
                "no-person-access",
                "this role cannot write to people's records",
            )),
        }
    }

    /// Does an item fall under one of the role's create rules?
    fn creatable(&self, rtype: &str, item: &Value) -> bool {
        let id = json::string(item, "id").unwrap_or("");
        self.creates.iter().enumerate().any(|(i, rule)| {
            rule.rtype == rtype
                && rule
                    .conditions
                    .iter()
                    .all(|c| self.condition_holds(c, usize::MAX - i, id, item))
        })
    }

    /// The subject this access was decided for (for audit).
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// Do explicit consents for the label codes `consented` open an item
/// sealed by `codes`? Every sensitivity topic (and `V`, `safeguarding`) it
/// carries must be consented; confidentiality `R`, which comes with every
/// topic, is opened by them, and must itself be named only on an item it
/// restricts alone.
fn opened(codes: &[&str], consented: &[String]) -> bool {
    let has = |code: &str| consented.iter().any(|c| c == code);
    let topics: Vec<&&str> = codes.iter().filter(|c| **c != "R").collect();
    if topics.is_empty() {
        codes.contains(&"R") && has("R")
    } else {
        topics.iter().all(|t| has(t))
    }
}

fn tag(system: &str, code: &str) -> Criterion {
    Criterion::Token {
        param: "_tag".into(),
        not: false,
        any_of: vec![(Some(system.to_owned()), code.to_owned())],
    }
}

/// Keeps `elements` (`a`, or `a.b`) of a resource, plus `resourceType`, `id`
/// and `meta`; every other element goes.
pub fn keep_elements(map: &mut Map<String, Value>, elements: &[String]) {
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if matches!(key.as_str(), "resourceType" | "id" | "meta") {
            continue;
        }
        if elements.contains(&key) {
            continue;
        }
        let inner: Vec<&str> = elements
            .iter()
            .filter_map(|e| {
                e.strip_prefix(key.as_str())
                    .and_then(|r| r.strip_prefix('.'))
            })
            .collect();
        if inner.is_empty() {
            map.remove(&key);
            continue;
        }
        let keep_inner = |v: &mut Value| {
            if let Value::Object(m) = v {
                m.retain(|k, _| inner.contains(&k.as_str()));
            }
        };
        match map.get_mut(&key) {
            Some(Value::Array(items)) => items.iter_mut().for_each(keep_inner),
            Some(v) => keep_inner(v),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests;
