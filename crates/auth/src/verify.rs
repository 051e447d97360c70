//! Verifying bearer tokens from trusted issuers.

use std::collections::{BTreeSet, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Validation;
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

use crate::jwks::{Alg, IssuerKeys, VerifyKey, parse_jwks};
use crate::mapping::{self, Verified};
use crate::{AuthError, ClaimMapping, Identity};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The default allowance for clock skew, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The largest clock-skew allowance a configuration may ask for.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// What a [`Verifier`] trusts.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// This server's audience: tokens must name it in `aud`.
    pub audience: String,
    /// The allowance for clock skew on `exp` and `nbf`, in seconds (at most
    /// [`MAX_LEEWAY_SECS`]).
    pub leeway_secs: u64,
    /// The issuers whose tokens are accepted.
    pub issuers: Vec<TrustedIssuer>,
}

impl VerifierConfig {
    /// A configuration with the default leeway ([`DEFAULT_LEEWAY_SECS`]).
    pub fn new(audience: impl Into<String>, issuers: Vec<TrustedIssuer>) -> VerifierConfig {
        VerifierConfig {
            audience: audience.into(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            issuers,
        }
    }
}

/// One issuer whose tokens are accepted.
#[derive(Debug, Clone)]
pub struct TrustedIssuer {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// Its public keys, as a JWK Set (e.g. from [`crate::jwks_from_file`]).
    pub keys: Value,
    /// How to read an identity from its claims.
    pub mapping: ClaimMapping,
}

/// Verifies bearer tokens: signature, issuer, audience and validity period,
/// then maps the claims to an [`Identity`].
///
/// Only RS256, ES256 and EdDSA are accepted, each only with a key of the
/// matching type; `none` and the HMAC algorithms never are, so a public key
/// can never be used as an HMAC secret.
///
/// Clones share each issuer's [`IssuerKeys`]: replacing an issuer's keys
/// changes what every clone accepts.
#[derive(Debug, Clone)]
pub struct Verifier {
    audience: String,
    leeway: i64,
    issuers: Vec<Issuer>,
}

#[derive(Debug, Clone)]
struct Issuer {
    keys: IssuerKeys,
    mapping: ClaimMapping,
}

impl Verifier {
    /// Checks the configuration and parses every key; an unusable key, an
    /// empty key set or a duplicate issuer is an error.
    pub fn new(config: VerifierConfig) -> Result<Verifier, AuthError> {
        if config.audience.trim().is_empty() {
            return Err(AuthError::Config("the audience is empty".to_owned()));
        }
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthError::Config(format!(
                "the leeway may be at most {MAX_LEEWAY_SECS} seconds"
            )));
        }
        if config.issuers.is_empty() {
            return Err(AuthError::Config("no trusted issuers".to_owned()));
        }
        let mut names = BTreeSet::new();
        let mut issuers = Vec::with_capacity(config.issuers.len());
        for trusted in config.issuers {
            if trusted.issuer.is_empty() {
                return Err(AuthError::Config("an issuer name is empty".to_owned()));
            }
            if !names.insert(trusted.issuer.clone()) {
                return Err(AuthError::Config(format!(
                    "issuer `{}` is listed twice",
                    trusted.issuer
                )));
            }
            trusted.mapping.check().map_err(|reason| {
                AuthError::Config(format!("issuer `{}`: {reason}", trusted.issuer))
            })?;
            let keys = parse_jwks(&trusted.issuer, &trusted.keys)?;
            issuers.push(Issuer {
                keys: IssuerKeys::new(trusted.issuer, keys),
                mapping: trusted.mapping,
            });
        }
        Ok(Verifier {
            audience: config.audience,
            leeway: i64::try_from(config.leeway_secs).unwrap_or(i64::MAX),
            issuers,
        })
    }

    /// The live keys of the trusted issuer `issuer` (its exact `iss`), to
    /// replace them when its JWK Set is fetched again.
    pub fn issuer_keys(&self, issuer: &str) -> Option<IssuerKeys> {
        self.issuers
            .iter()
            .find(|i| i.keys.issuer() == issuer)
            .map(|i| i.keys.clone())
    }

    /// Verifies `token` (a compact JWS, without the `Bearer ` prefix) at
    /// time `now_unix_secs`.
    ///
    /// A token refused because no current key of its issuer matches it
    /// ([`AuthError::UnknownKey`]) runs that issuer's
    /// [`IssuerKeys::on_unknown_key`] hook; the token is refused all the
    /// same (a refresh never happens on the request's path).
    pub fn verify(&self, token: &str, now_unix_secs: i64) -> Result<Identity, AuthError> {
        let segments = split(token)?;
        let header = decode_object(segments.header).ok_or(AuthError::Malformed(
            "the header is not base64url-encoded JSON",
        ))?;
        if header.contains_key("crit") {
            return Err(AuthError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => Alg::from_header(alg).ok_or(AuthError::UnsupportedAlg)?,
            _ => return Err(AuthError::Malformed("the header has no `alg`")),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(AuthError::Malformed("the header's `kid` is not a string")),
        };

        // The issuer is read before the signature is checked only to choose
        // the keys; the claims are trusted only once a key has verified them.
        let unverified = decode_object(segments.payload).ok_or(AuthError::Malformed(
            "the payload is not base64url-encoded JSON",
        ))?;
        let iss = mapping::required(&unverified, "iss")?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.keys.issuer() == iss)
            .ok_or(AuthError::UntrustedIssuer)?;
        let keys = issuer.keys.current();
        let candidates = match candidate_keys(&keys, kid, alg) {
            Ok(candidates) => candidates,
            Err(AuthError::UnknownKey) => {
                issuer.keys.unknown_key_seen();
                return Err(AuthError::UnknownKey);
            }
            Err(e) => return Err(e),
        };
        let claims = verify_signature(token, &candidates, alg)?;

        let expires_at = numeric_date(&claims, "exp")?
            .ok_or_else(|| AuthError::MissingClaim("exp".to_owned()))?;
        if now_unix_secs >= expires_at.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")?
            && now_unix_secs.saturating_add(self.leeway) < nbf
        {
            return Err(AuthError::NotYetValid);
        }
        let intended = match claims.get("aud") {
            None | Some(Value::Null) => return Err(AuthError::MissingClaim("aud".to_owned())),
            Some(Value::String(aud)) => *aud == self.audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&self.audience)),
            Some(_) => return Err(AuthError::InvalidClaim("aud".to_owned())),
        };
        if !intended {
            return Err(AuthError::WrongAudience);
        }

        let verified = Verified {
            issuer: iss,
            subject: mapping::required(&claims, "sub")?,
            expires_at,
            token_id: mapping::optional(&claims, "jti")?,
        };
        mapping::apply(&issuer.mapping, &claims, verified)
    }
}

struct Segments<'a> {
    header: &'a str,
    payload: &'a str,
}

fn split(token: &str) -> Result<Segments<'_>, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::Malformed("the token is longer than 16 KiB"));
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if !token.bytes().all(|b| base64url(b) || b == b'.') {
        return Err(AuthError::Malformed(
            "the token has characters outside base64url",
        ));
    }
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        // An empty signature is left to fail verification (or `alg: none`
        // to be refused by name).
        (Some(header), Some(payload), Some(_signature), None)
            if !header.is_empty() && !payload.is_empty() =>
        {
            Ok(Segments { header, payload })
        }
        _ => Err(AuthError::Malformed(
            "a token has three dot-separated parts",
        )),
    }
}

fn decode_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The keys that may have signed the token: those with its `kid` (which
/// must then suit its `alg`), or, without a `kid`, all keys for its `alg`.
fn candidate_keys<'a>(
    keys: &'a [VerifyKey],
    kid: Option<&str>,
    alg: Alg,
) -> Result<Vec<&'a VerifyKey>, AuthError> {
    let Some(kid) = kid else {
        let matching: Vec<_> = keys.iter().filter(|k| k.alg == alg).collect();
        return if matching.is_empty() {
            Err(AuthError::UnknownKey)
        } else {
            Ok(matching)
        };
    };
    let named: Vec<_> = keys
        .iter()
        .filter(|k| k.kid.as_deref() == Some(kid))
        .collect();
    if named.is_empty() {
        return Err(AuthError::UnknownKey);
    }
    let suitable: Vec<_> = named.into_iter().filter(|k| k.alg == alg).collect();
    if suitable.is_empty() {
        return Err(AuthError::UnsupportedAlg);
    }
    Ok(suitable)
}

/// Checks the signature with each candidate key in turn and returns the
/// claims the first one verifies. The library checks nothing else: times,
/// issuer and audience are checked by the caller against the given `now`,
/// so the library never reads the system clock.
fn verify_signature(
    token: &str,
    candidates: &[&VerifyKey],
    alg: Alg,
) -> Result<Map<String, Value>, AuthError> {
    let mut validation = Validation::new(alg.jwt());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    validation.leeway = 0;

    let mut refusal = AuthError::BadSignature;
    for key in candidates {
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
            Err(_) => refusal = AuthError::Malformed("the token could not be decoded"),
        }
    }
    Err(refusal)
}

/// A JWT NumericDate: seconds since the epoch, possibly fractional.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, AuthError> {
    let invalid = || AuthError::InvalidClaim(name.to_owned());
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(secs) => Ok(Some(secs)),
            // Saturating: a date beyond i64 is "never" (or "always").
            None => n
                .as_f64()
                .filter(|f| f.is_finite())
                .map(|f| Some(f.floor() as i64))
                .ok_or_else(invalid),
        },
        Some(_) => Err(invalid()),
    }
}
