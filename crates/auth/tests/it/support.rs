//! Helpers shared by the tests: keys, claims and hand-made tokens.

use auth::{AuthError, IssuerKey, TokenClaims, TrustedIssuer, Verifier, VerifierConfig};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

pub const ISSUER: &str = "https://sharedcare.test";
pub const AUDIENCE: &str = "https://sharedcare.test/fhir";
pub const NOW: i64 = 1_750_000_000;

pub const ES256_PRIVATE: &str = include_str!("../fixtures/es256-private.pem");
pub const ES256_JWKS: &str = include_str!("../fixtures/es256-jwks.json");
pub const RS256_PRIVATE: &str = include_str!("../fixtures/rs256-private.pem");
pub const RS256_JWKS: &str = include_str!("../fixtures/rs256-jwks.json");

pub fn key() -> IssuerKey {
    IssuerKey::from_seed([7; 32])
}

pub fn claims() -> TokenClaims {
    TokenClaims {
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
        sub: "user-1".to_owned(),
        exp: NOW + 300,
        nbf: NOW,
        iat: NOW,
        jti: "token-1".to_owned(),
        name: "Dr Ada Lovelace".to_owned(),
        role: "gp".to_owned(),
        org: Some("A81001".to_owned()),
        registration: Some("GMC:1234567".to_owned()),
        patient: None,
        related_person: None,
        scope: "user/*.read openid".to_owned(),
        client_id: Some("demo-app".to_owned()),
    }
}

pub fn verifier_for(issuers: Vec<TrustedIssuer>) -> Verifier {
    Verifier::new(VerifierConfig::new(AUDIENCE, issuers)).unwrap()
}

/// A verifier that trusts only [`key`] as [`ISSUER`].
pub fn verifier() -> Verifier {
    verifier_for(vec![key().trusted_issuer(ISSUER)])
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The DER inside a PEM file.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

pub fn es256_key() -> EncodingKey {
    EncodingKey::from_ec_der(&pem_der(ES256_PRIVATE))
}

pub fn rs256_key() -> EncodingKey {
    EncodingKey::from_rsa_der(&pem_der(RS256_PRIVATE))
}

/// An Ed25519 signing key other than [`key`], as the library wants it.
pub fn other_ed_key(seed: [u8; 32]) -> EncodingKey {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    EncodingKey::from_ed_der(&der)
}

/// Signs any claims with any key, `kid` optional.
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A token from its raw header and payload JSON and a raw signature part.
pub fn hand_made(header: &str, payload: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(payload.to_string()))
}

/// Asserts that `token` is refused with `code`, and that the message does
/// not echo the token.
#[track_caller]
pub fn refused(verifier: &Verifier, token: &str, now: i64, code: &str) -> AuthError {
    let err = verifier
        .verify(token, now)
        .expect_err("the token should be refused");
    assert_eq!(err.code(), code, "{err}");
    assert!(err.is_token_rejection());
    if token.len() > 8 {
        assert!(!err.to_string().contains(token));
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!err.to_string().contains(part), "{err}");
        }
    }
    err
}
