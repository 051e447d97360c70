//! The wire shape of our own tokens, and the verified identity.

use serde::{Deserialize, Serialize};

/// The claims of a token minted by the embedded issuer ([`crate::IssuerKey`]).
///
/// This is a wire shape: the JSON payload of our own JWTs. Times are unix
/// seconds. Optional claims are left out of the JSON when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The issuer: the server's own base URL.
    pub iss: String,
    /// The audience: the FHIR base URL the token is for.
    pub aud: String,
    /// The subject: a stable id of the user or client.
    pub sub: String,
    /// Expiry.
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// The token's unique id.
    pub jti: String,
    /// The display name of the user.
    pub name: String,
    /// The sharedcare role, e.g. `gp`, `care-worker`, `patient`, `proxy`,
    /// `integration`.
    pub role: String,
    /// The organisation's ODS code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// A professional registration, e.g. `GMC:1234567`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<String>,
    /// The patient's logical id (SMART launch context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// The RelatedPerson's logical id (for a proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related_person: Option<String>,
    /// Space-separated SMART scopes.
    pub scope: String,
    /// The OAuth client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// Who is calling, as established by a verified token.
///
/// The role is the issuer's (mapped) role string: deciding what it may do,
/// and refusing a role it does not know, is the policy's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The trusted issuer that vouched for the caller (`iss`).
    pub issuer: String,
    /// The caller's id at that issuer (`sub`).
    pub subject: String,
    /// The display name.
    pub name: String,
    /// The role string.
    pub role: String,
    /// The organisation's ODS code.
    pub org: Option<String>,
    /// A professional registration (for CIS2: the user's `uid`).
    pub registration: Option<String>,
    /// The patient in context (SMART launch context).
    pub patient: Option<String>,
    /// The RelatedPerson the caller acts as.
    pub related_person: Option<String>,
    /// The granted SMART scopes.
    pub scopes: Vec<String>,
    /// National RBAC activity codes (CIS2 only; empty otherwise).
    pub activities: Vec<String>,
    /// The OAuth client.
    pub client_id: Option<String>,
    /// When the token expires (unix seconds).
    pub expires_at: i64,
    /// The token's `jti`, when it has one.
    pub token_id: Option<String>,
}
