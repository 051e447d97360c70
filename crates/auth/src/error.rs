//! The one error type of the crate.

use std::path::PathBuf;

/// Why a token was refused, or why the authentication machinery could not be
/// set up.
///
/// [`AuthError::code`] gives each variant a stable, short, machine-readable
/// reason. The messages (`Display`) are for people; they never contain the
/// token, nor any value taken from it: at most the name of a claim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The token is not a well-formed compact JWS (or is too long).
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// A claim is present but has the wrong JSON type.
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    /// The header names an algorithm other than RS256, ES256 or EdDSA, or one
    /// that does not suit the key it names.
    #[error("the token's signing algorithm is not accepted")]
    UnsupportedAlg,
    /// No key of the issuer matches the token's `kid` (or its algorithm).
    #[error("no trusted key matches the token")]
    UnknownKey,
    /// The signature does not verify with any candidate key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The `iss` claim names no trusted issuer.
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    /// The `aud` claim does not contain this server's audience.
    #[error("the token is not intended for this server")]
    WrongAudience,
    /// `exp` (plus the leeway) has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` (minus the leeway) is still in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is absent (or empty).
    #[error("the token lacks the claim `{0}`")]
    MissingClaim(String),
    /// The issuer's role has no entry in the configured role map.
    #[error("the token's role has no sharedcare mapping")]
    UnmappedRole,
    /// The verifier configuration is unusable.
    #[error("invalid authentication configuration: {0}")]
    Config(String),
    /// A key (in a JWKS or the issuer key file) is unusable.
    #[error("unusable key: {0}")]
    InvalidKey(String),
    /// Reading or writing a key file failed.
    #[error("cannot access {path}: {source}", path = .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Signing a token failed.
    #[error("signing the token failed")]
    Signing,
}

impl AuthError {
    /// A stable, short reason: one of `malformed`, `unsupported_alg`,
    /// `unknown_key`, `bad_signature`, `untrusted_issuer`, `wrong_audience`,
    /// `expired`, `not_yet_valid`, `missing_claim`, `unmapped_role` (token
    /// rejections), or `invalid_config`, `invalid_key`, `io`,
    /// `signing_failed` (set-up failures).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Malformed(_) | AuthError::InvalidClaim(_) => "malformed",
            AuthError::UnsupportedAlg => "unsupported_alg",
            AuthError::UnknownKey => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::UntrustedIssuer => "untrusted_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::UnmappedRole => "unmapped_role",
            AuthError::Config(_) => "invalid_config",
            AuthError::InvalidKey(_) => "invalid_key",
            AuthError::Io { .. } => "io",
            AuthError::Signing => "signing_failed",
        }
    }

    /// Whether the error is the client's: its token was refused (HTTP 401),
    /// as opposed to a failure of the server's own set-up.
    pub fn is_token_rejection(&self) -> bool {
        !matches!(
            self,
            AuthError::Config(_)
                | AuthError::InvalidKey(_)
                | AuthError::Io { .. }
                | AuthError::Signing
        )
    }
}
