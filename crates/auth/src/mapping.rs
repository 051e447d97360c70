//! From a verified token's claims to an [`Identity`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{AuthError, Identity};

/// How to read an [`Identity`] from a trusted issuer's claims.
///
/// It is read from the server's TOML configuration, tagged by `kind`:
///
/// ```toml
/// mapping = { kind = "direct" }                    # our own claim names (the default)
/// mapping = { kind = "claims", role = "roles", org = "ods" }
/// mapping = { kind = "cis2", role_map = { R8000 = "gp", R8001 = "care-worker" } }
/// ```
///
/// Whatever the mapping, the subject is always `sub` and the token id
/// `jti`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(from = "RawMapping")]
pub enum ClaimMapping {
    /// Our own claim names ([`crate::TokenClaims`]): `name`, `role`, `org`,
    /// `registration`, `patient`, `related_person`, `scope`, `client_id`.
    #[default]
    Direct,
    /// The names of the top-level claims to read each field from. A field
    /// left out is read from the claim of the same name as in `Direct`.
    Claims {
        /// The role claim (a string), e.g. `roles` or `https://example/role`.
        role: String,
        /// The display name.
        name: Option<String>,
        /// The organisation's ODS code.
        org: Option<String>,
        /// The professional registration.
        registration: Option<String>,
        /// The patient in context.
        patient: Option<String>,
        /// The RelatedPerson id.
        related_person: Option<String>,
        /// The scopes: a space-separated string or an array of strings.
        scope: Option<String>,
        /// The OAuth client id (e.g. `azp`).
        client_id: Option<String>,
    },
    /// NHS Care Identity Service 2. The role is the entry of
    /// `nhsid_nrbac_roles` whose `person_roleid` is `selected_roleid`: the
    /// organisation is its `org_code`, the activities its `activity_codes`,
    /// and the role is looked up in `role_map` by the job-role part of its
    /// `role_code` (`R8000` in `S8000:G8000:R8000`), then by the whole
    /// `role_code`. The name is `name`, the registration `uid`.
    Cis2 {
        /// From national RBAC role codes to sharedcare roles.
        role_map: BTreeMap<String, String>,
    },
}

/// The configuration shape of [`ClaimMapping`]. Serde ignores extra
/// fields next to the tag of a unit variant, so `Direct` is an empty struct
/// here, where `deny_unknown_fields` does apply.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawMapping {
    Direct {},
    Claims {
        role: String,
        name: Option<String>,
        org: Option<String>,
        registration: Option<String>,
        patient: Option<String>,
        related_person: Option<String>,
        scope: Option<String>,
        client_id: Option<String>,
    },
    Cis2 {
        role_map: BTreeMap<String, String>,
    },
}

impl From<RawMapping> for ClaimMapping {
    fn from(raw: RawMapping) -> ClaimMapping {
        match raw {
            RawMapping::Direct {} => ClaimMapping::Direct,
            RawMapping::Claims {
                role,
                name,
                org,
                registration,
                patient,
                related_person,
                scope,
                client_id,
            } => ClaimMapping::Claims {
                role,
                name,
                org,
                registration,
                patient,
                related_person,
                scope,
                client_id,
            },
            RawMapping::Cis2 { role_map } => ClaimMapping::Cis2 { role_map },
        }
    }
}

impl ClaimMapping {
    /// Refuses a mapping that could never produce an identity.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self {
            ClaimMapping::Direct => Ok(()),
            ClaimMapping::Claims { role, .. } if role.is_empty() => {
                Err("the `claims` mapping names no role claim".to_owned())
            }
            ClaimMapping::Claims { .. } => Ok(()),
            ClaimMapping::Cis2 { role_map } if role_map.is_empty() => {
                Err("the `cis2` mapping has an empty `role_map`".to_owned())
            }
            ClaimMapping::Cis2 { .. } => Ok(()),
        }
    }
}

/// What the verifier has already established.
pub(crate) struct Verified {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) expires_at: i64,
    pub(crate) token_id: Option<String>,
}

pub(crate) fn apply(
    mapping: &ClaimMapping,
    claims: &Map<String, Value>,
    verified: Verified,
) -> Result<Identity, AuthError> {
    match mapping {
        ClaimMapping::Direct => by_names(claims, &Names::DIRECT, verified),
        ClaimMapping::Claims {
            role,
            name,
            org,
            registration,
            patient,
            related_person,
            scope,
            client_id,
        } => {
            let d = Names::DIRECT;
            let names = Names {
                role,
                name: name.as_deref().unwrap_or(d.name),
                org: org.as_deref().unwrap_or(d.org),
                registration: registration.as_deref().unwrap_or(d.registration),
                patient: patient.as_deref().unwrap_or(d.patient),
                related_person: related_person.as_deref().unwrap_or(d.related_person),
                scope: scope.as_deref().unwrap_or(d.scope),
                client_id: client_id.as_deref().unwrap_or(d.client_id),
            };
            by_names(claims, &names, verified)
        }
        ClaimMapping::Cis2 { role_map } => cis2(claims, role_map, verified),
    }
}

struct Names<'a> {
    role: &'a str,
    name: &'a str,
    org: &'a str,
    registration: &'a str,
    patient: &'a str,
    related_person: &'a str,
    scope: &'a str,
    client_id: &'a str,
}

impl Names<'static> {
    const DIRECT: Names<'static> = Names {
        role: "role",
        name: "name",
        org: "org",
        registration: "registration",
        patient: "patient",
        related_person: "related_person",
        scope: "scope",
        client_id: "client_id",
    };
}

fn by_names(
    claims: &Map<String, Value>,
    names: &Names<'_>,
    verified: Verified,
) -> Result<Identity, AuthError> {
    Ok(Identity {
        name: required(claims, names.name)?,
        role: required(claims, names.role)?,
        org: optional(claims, names.org)?,
        registration: optional(claims, names.registration)?,
        patient: optional(claims, names.patient)?,
        related_person: optional(claims, names.related_person)?,
        scopes: scopes(claims, names.scope)?,
        activities: Vec::new(),
        client_id: optional(claims, names.client_id)?,
        issuer: verified.issuer,
        subject: verified.subject,
        expires_at: verified.expires_at,
        token_id: verified.token_id,
    })
}

fn cis2(
    claims: &Map<String, Value>,
    role_map: &BTreeMap<String, String>,
    verified: Verified,
) -> Result<Identity, AuthError> {
    const ROLES: &str = "nhsid_nrbac_roles";
    let selected = required(claims, "selected_roleid")?;
    let roles = match claims.get(ROLES) {
        None | Some(Value::Null) => return Err(AuthError::MissingClaim(ROLES.to_owned())),
        Some(Value::Array(roles)) => roles,
        Some(_) => return Err(AuthError::InvalidClaim(ROLES.to_owned())),
    };
    let role = roles
        .iter()
        .filter_map(Value::as_object)
        .find(|role| role.get("person_roleid").and_then(Value::as_str) == Some(selected.as_str()))
        // The selected role is not among the user's roles.
        .ok_or_else(|| AuthError::MissingClaim(ROLES.to_owned()))?;
    let in_role = |member: &str| format!("{ROLES}.{member}");
    let org = role
        .get("org_code")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::MissingClaim(in_role("org_code")))?;
    let role_code = role
        .get("role_code")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AuthError::MissingClaim(in_role("role_code")))?;
    let job_role = role_code.rsplit(':').next().unwrap_or(role_code);
    let mapped = role_map
        .get(job_role)
        .or_else(|| role_map.get(role_code))
        .ok_or(AuthError::UnmappedRole)?;
    let activities = match role.get("activity_codes") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => strings(v).ok_or_else(|| AuthError::InvalidClaim(in_role("activity_codes")))?,
    };
    Ok(Identity {
        name: required(claims, "name")?,
        role: mapped.clone(),
        org: Some(org.to_owned()),
        registration: optional(claims, "uid")?,
        patient: None,
        related_person: None,
        scopes: scopes(claims, "scope")?,
        activities,
        client_id: optional(claims, "client_id")?,
        issuer: verified.issuer,
        subject: verified.subject,
        expires_at: verified.expires_at,
        token_id: verified.token_id,
    })
}

/// A string claim; absent, `null` and `""` all count as missing.
pub(crate) fn optional(
    claims: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuthError::InvalidClaim(name.to_owned())),
    }
}

pub(crate) fn required(claims: &Map<String, Value>, name: &str) -> Result<String, AuthError> {
    optional(claims, name)?.ok_or_else(|| AuthError::MissingClaim(name.to_owned()))
}

/// Scopes: a space-separated string (OAuth 2) or an array of strings.
fn scopes(claims: &Map<String, Value>, name: &str) -> Result<Vec<String>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(v) => strings(v).ok_or_else(|| AuthError::InvalidClaim(name.to_owned())),
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}
