//! Public keys: parsing a JWK Set into verification keys, and an issuer's
//! current keys, which a refresh can replace while tokens are verified.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::AuthError;

/// The only signing algorithms the verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

impl Alg {
    /// The algorithm a JWS header names, if it is one we accept. Everything
    /// else (`none`, the HMAC family, PS*, ES384, …) is `None`.
    pub(crate) fn from_header(alg: &str) -> Option<Alg> {
        match alg {
            "RS256" => Some(Alg::Rs256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// One usable public key. Its algorithm follows from its type and curve,
/// so a token can never choose how the key is used.
#[derive(Debug, Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Alg,
    pub(crate) key: DecodingKey,
}

/// Reads a JWK Set (`{"keys": [...]}`) from a JSON file.
///
/// Only the outer shape is checked here; the keys themselves are checked
/// when a [`crate::Verifier`] is built from them.
pub fn jwks_from_file(path: impl AsRef<Path>) -> Result<Value, AuthError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| AuthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    jwks_from_slice(&path.display().to_string(), &bytes)
}

/// Reads a JWK Set (`{"keys": [...]}`) from the bytes of a JSON document,
/// e.g. the body of an HTTP response; `source` (a path or a URL) names it in
/// errors.
///
/// As with [`jwks_from_file`], only the outer shape is checked here; the
/// keys themselves are checked when a [`crate::Verifier`] is built from
/// them, or by [`IssuerKeys::replace`].
pub fn jwks_from_slice(source: &str, bytes: &[u8]) -> Result<Value, AuthError> {
    let jwks: Value = serde_json::from_slice(bytes)
        .map_err(|e| AuthError::InvalidKey(format!("{source}: not a JSON document ({e})")))?;
    if !jwks.get("keys").is_some_and(Value::is_array) {
        return Err(AuthError::InvalidKey(format!(
            "{source}: not a JWK Set (no `keys` array)"
        )));
    }
    Ok(jwks)
}

/// One trusted issuer's current verification keys.
///
/// Every clone of a [`crate::Verifier`] shares them (get them with
/// [`crate::Verifier::issuer_keys`]), so a JWK Set fetched again from the
/// issuer replaces them for all verifications at once. Verifying takes a
/// read lock only long enough to clone an `Arc`; a replacement parses the
/// new set first and swaps it in whole, so a verification sees either the
/// old keys or the new ones, never a mixture, and an unusable set changes
/// nothing.
#[derive(Clone)]
pub struct IssuerKeys {
    shared: Arc<Shared>,
}

struct Shared {
    issuer: String,
    keys: RwLock<Arc<[VerifyKey]>>,
    on_unknown_key: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("issuer", &self.shared.issuer)
            .field("keys", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl IssuerKeys {
    pub(crate) fn new(issuer: String, keys: Vec<VerifyKey>) -> IssuerKeys {
        IssuerKeys {
            shared: Arc::new(Shared {
                issuer,
                keys: RwLock::new(keys.into()),
                on_unknown_key: OnceLock::new(),
            }),
        }
    }

    /// The issuer (its exact `iss` value).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// The `kid`s of the current keys (keys without one are left out).
    pub fn kids(&self) -> Vec<String> {
        self.current()
            .iter()
            .filter_map(|k| k.kid.clone())
            .collect()
    }

    /// Replaces the keys with those of `jwks`, checked exactly as when the
    /// verifier was built. Returns the number of keys; on an error (an
    /// unusable key, an empty set, a duplicate `kid`) the previous keys stay.
    pub fn replace(&self, jwks: &Value) -> Result<usize, AuthError> {
        let keys: Arc<[VerifyKey]> = parse_jwks(&self.shared.issuer, jwks)?.into();
        let count = keys.len();
        *self
            .shared
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys;
        Ok(count)
    }

    /// Asks to be told when a token of this issuer is refused because no
    /// current key matches it (an unknown `kid`, or no key for its
    /// algorithm): the issuer may have rotated its keys. `hook` runs on the
    /// verification path, so it must return at once (e.g. wake a task that
    /// fetches the keys again); it learns nothing of the token. Only the
    /// first hook is kept; returns whether this one was.
    pub fn on_unknown_key(&self, hook: impl Fn() + Send + Sync + 'static) -> bool {
        self.shared.on_unknown_key.set(Box::new(hook)).is_ok()
    }

    /// The current keys; the lock is held only to clone the `Arc`.
    pub(crate) fn current(&self) -> Arc<[VerifyKey]> {
        Arc::clone(
            &self
                .shared
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    pub(crate) fn unknown_key_seen(&self) {
        if let Some(hook) = self.shared.on_unknown_key.get() {
            hook();
        }
    }
}

/// Parses every key of an issuer's JWK Set; any unusable key is an error.
pub(crate) fn parse_jwks(issuer: &str, jwks: &Value) -> Result<Vec<VerifyKey>, AuthError> {
    let invalid = |reason: String| AuthError::InvalidKey(format!("issuer `{issuer}`: {reason}"));
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Err(invalid("the JWK Set has no `keys` array".to_owned()));
    };
    if keys.is_empty() {
        return Err(invalid("the JWK Set is empty".to_owned()));
    }
    let mut parsed = Vec::with_capacity(keys.len());
    let mut kids = BTreeSet::new();
    for (i, jwk) in keys.iter().enumerate() {
        let key = parse_jwk(jwk).map_err(|reason| invalid(format!("key {i}: {reason}")))?;
        if let Some(kid) = &key.kid
            && !kids.insert(kid.clone())
        {
            return Err(invalid(format!("key {i}: the `kid` is used twice")));
        }
        parsed.push(key);
    }
    Ok(parsed)
}

/// Members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

fn parse_jwk(jwk: &Value) -> Result<VerifyKey, String> {
    let Some(jwk) = jwk.as_object() else {
        return Err("not a JSON object".to_owned());
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(format!(
            "holds private key material (`{member}`); publish public keys only"
        ));
    }
    if let Some(usage) = member(jwk, "use")?
        && usage != "sig"
    {
        return Err("not a signature key (`use`)".to_owned());
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
        if !verifies {
            return Err("`key_ops` does not allow `verify`".to_owned());
        }
    }
    let kid = member(jwk, "kid")?.map(str::to_owned);
    let kty = member(jwk, "kty")?.ok_or("no `kty`")?;
    let (alg, key) = match kty {
        "OKP" => {
            expect_curve(jwk, "Ed25519")?;
            let x = fixed_bytes(jwk, "x", 32)?;
            (Alg::EdDsa, DecodingKey::from_ed_der(&x))
        }
        "EC" => {
            expect_curve(jwk, "P-256")?;
            let mut point = vec![0x04];
            point.extend(fixed_bytes(jwk, "x", 32)?);
            point.extend(fixed_bytes(jwk, "y", 32)?);
            (Alg::Es256, DecodingKey::from_ec_der(&point))
        }
        "RSA" => {
            let n = bytes(jwk, "n")?;
            let e = bytes(jwk, "e")?;
            check_rsa(&n, &e)?;
            (Alg::Rs256, DecodingKey::from_rsa_raw_components(&n, &e))
        }
        "oct" => return Err("symmetric (`oct`) keys are never accepted".to_owned()),
        _ => return Err("unsupported `kty`".to_owned()),
    };
    if let Some(named) = member(jwk, "alg")?
        && named != alg.name()
    {
        return Err(format!(
            "`alg` {named} does not suit the key type; only {} can be used with it",
            alg.name()
        ));
    }
    // Building the verifier parses the key: an EC point off the curve or an
    // invalid Ed25519 point is refused here, not at the first request.
    if jsonwebtoken::crypto::verify("", b"probe", &key, alg.jwt()).is_err() {
        return Err("not a valid public key".to_owned());
    }
    Ok(VerifyKey { kid, alg, key })
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn expect_curve(jwk: &Map<String, Value>, curve: &str) -> Result<(), String> {
    match member(jwk, "crv")? {
        Some(crv) if crv == curve => Ok(()),
        _ => Err(format!("unsupported curve; expected {curve}")),
    }
}

fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = member(jwk, name)?.ok_or_else(|| format!("no `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("`{name}` is not base64url"))
}

fn fixed_bytes(jwk: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>, String> {
    let b = bytes(jwk, name)?;
    if b.len() == len {
        Ok(b)
    } else {
        Err(format!("`{name}` is not {len} bytes long"))
    }
}

/// RSA keys of 2048 to 4096 bits with an odd public exponent of at least 3.
fn check_rsa(n: &[u8], e: &[u8]) -> Result<(), String> {
    let n = strip_leading_zeros(n);
    let bits = n
        .first()
        .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(2048..=4096).contains(&bits) {
        return Err("the RSA modulus must be 2048 to 4096 bits long".to_owned());
    }
    let e = strip_leading_zeros(e);
    if e.len() > 8 {
        return Err("the RSA exponent is too large".to_owned());
    }
    let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err("the RSA exponent must be odd and at least 3".to_owned());
    }
    Ok(())
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}
