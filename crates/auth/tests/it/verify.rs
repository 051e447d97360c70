//! Verification: signatures, algorithms, keys, times, issuer and audience.

use auth::{
    ClaimMapping, Identity, MAX_TOKEN_BYTES, TrustedIssuer, Verifier, VerifierConfig,
    jwks_from_file,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::support::{
    AUDIENCE, ES256_JWKS, ISSUER, NOW, RS256_JWKS, b64, claims, es256_key, hand_made, json, key,
    other_ed_key, refused, rs256_key, sign, verifier, verifier_for,
};

fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// Signs claims with our key, as our issuer would.
fn ours(claims: &Value) -> String {
    sign(
        Algorithm::EdDSA,
        Some(key().kid()),
        claims,
        &other_ed_key([7; 32]),
    )
}

#[test]
fn round_trip_yields_the_identity() {
    let token = key().mint(&claims()).unwrap();
    let identity = verifier().verify(&token, NOW).unwrap();
    assert_eq!(
        identity,
        Identity {
            issuer: ISSUER.to_owned(),
            subject: "user-1".to_owned(),
            name: "Dr Ada Lovelace".to_owned(),
            role: "gp".to_owned(),
            org: Some("A81001".to_owned()),
            registration: Some("GMC:1234567".to_owned()),
            patient: None,
            related_person: None,
            scopes: vec!["user/*.read".to_owned(), "openid".to_owned()],
            activities: vec![],
            client_id: Some("demo-app".to_owned()),
            expires_at: NOW + 300,
            token_id: Some("token-1".to_owned()),
        }
    );
}

#[test]
fn launch_context_and_proxy_claims_are_carried() {
    let mut c = claims();
    c.role = "proxy".to_owned();
    c.patient = Some("pat-1".to_owned());
    c.related_person = Some("rp-1".to_owned());
    let identity = verifier().verify(&key().mint(&c).unwrap(), NOW).unwrap();
    assert_eq!(identity.patient.as_deref(), Some("pat-1"));
    assert_eq!(identity.related_person.as_deref(), Some("rp-1"));
    assert_eq!(identity.role, "proxy");
}

#[test]
fn expiry_is_checked_with_leeway() {
    let token = key().mint(&claims()).unwrap();
    let exp = NOW + 300;
    // The default leeway is 60 seconds.
    verifier().verify(&token, exp + 59).unwrap();
    refused(&verifier(), &token, exp + 60, "expired");
    refused(&verifier(), &token, exp + 100_000, "expired");

    let strict = Verifier::new(VerifierConfig {
        leeway_secs: 0,
        ..VerifierConfig::new(AUDIENCE, vec![key().trusted_issuer(ISSUER)])
    })
    .unwrap();
    strict.verify(&token, exp - 1).unwrap();
    refused(&strict, &token, exp, "expired");
}

#[test]
fn not_before_is_checked_with_leeway() {
    let mut c = claims();
    c.nbf = NOW + 100;
    let token = key().mint(&c).unwrap();
    refused(&verifier(), &token, NOW, "not_yet_valid");
    refused(&verifier(), &token, NOW + 39, "not_yet_valid");
    verifier().verify(&token, NOW + 40).unwrap();
}

#[test]
fn exp_is_required_and_must_be_a_number() {
    refused(
        &verifier(),
        &ours(&without(claims_json(), "exp")),
        NOW,
        "missing_claim",
    );
    refused(
        &verifier(),
        &ours(&with(claims_json(), "exp", json!("soon"))),
        NOW,
        "malformed",
    );
    // Fractional NumericDates are allowed; nbf is optional.
    let fractional = with(
        without(claims_json(), "nbf"),
        "exp",
        json!(NOW as f64 + 10.5),
    );
    let identity = verifier().verify(&ours(&fractional), NOW).unwrap();
    assert_eq!(identity.expires_at, NOW + 10);
}

#[test]
fn the_audience_must_be_ours() {
    let v = verifier();
    refused(
        &v,
        &ours(&with(claims_json(), "aud", json!("https://elsewhere"))),
        NOW,
        "wrong_audience",
    );
    refused(
        &v,
        &ours(&with(claims_json(), "aud", json!(["a", "b"]))),
        NOW,
        "wrong_audience",
    );
    refused(
        &v,
        &ours(&without(claims_json(), "aud")),
        NOW,
        "missing_claim",
    );
    refused(
        &v,
        &ours(&with(claims_json(), "aud", json!(42))),
        NOW,
        "malformed",
    );
    v.verify(
        &ours(&with(claims_json(), "aud", json!(["other", AUDIENCE]))),
        NOW,
    )
    .unwrap();
}

#[test]
fn the_issuer_must_be_trusted_exactly() {
    let v = verifier();
    refused(
        &v,
        &ours(&with(claims_json(), "iss", json!("https://evil.test"))),
        NOW,
        "untrusted_issuer",
    );
    refused(
        &v,
        &ours(&with(claims_json(), "iss", json!(format!("{ISSUER}/")))),
        NOW,
        "untrusted_issuer",
    );
    refused(
        &v,
        &ours(&without(claims_json(), "iss")),
        NOW,
        "missing_claim",
    );
}

#[test]
fn a_tampered_payload_fails_the_signature() {
    let token = key().mint(&claims()).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = with(claims_json(), "role", json!("integration"));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged_claims.to_string()),
        parts[2]
    );
    refused(&verifier(), &forged, NOW, "bad_signature");

    // A flipped signature bit, too.
    let mut signature = parts[2].to_owned();
    let last = if signature.ends_with('A') { "B" } else { "A" };
    signature.replace_range(signature.len() - 1.., last);
    refused(
        &verifier(),
        &format!("{}.{}.{signature}", parts[0], parts[1]),
        NOW,
        "bad_signature",
    );
}

#[test]
fn a_key_that_is_not_the_issuers_fails_the_signature() {
    // Same kid, wrong key.
    let token = sign(
        Algorithm::EdDSA,
        Some(key().kid()),
        &claims_json(),
        &other_ed_key([9; 32]),
    );
    refused(&verifier(), &token, NOW, "bad_signature");
    // No signature at all.
    let unsigned = token.rsplit_once('.').unwrap().0;
    refused(&verifier(), &format!("{unsigned}."), NOW, "bad_signature");
}

#[test]
fn alg_none_is_refused() {
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None","typ":"JWT"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        for signature in ["", "c2ln"] {
            let token = hand_made(header, &claims_json(), signature);
            refused(&verifier(), &token, NOW, "unsupported_alg");
        }
    }
    let kid_header = format!(r#"{{"alg":"none","kid":"{}"}}"#, key().kid());
    refused(
        &verifier(),
        &hand_made(&kid_header, &claims_json(), "c2ln"),
        NOW,
        "unsupported_alg",
    );
}

#[test]
fn hmac_with_the_public_key_as_secret_is_refused() {
    let jwks = key().jwks();
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let x_bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, x).unwrap();
    let secrets: [Vec<u8>; 4] = [
        x_bytes,
        x.as_bytes().to_vec(),
        jwks.to_string().into_bytes(),
        serde_json::to_string_pretty(&jwks).unwrap().into_bytes(),
    ];
    for secret in &secrets {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for kid in [Some(key().kid()), None] {
                let token = sign(alg, kid, &claims_json(), &EncodingKey::from_secret(secret));
                refused(&verifier(), &token, NOW, "unsupported_alg");
            }
        }
    }
}

#[test]
fn an_alg_that_does_not_suit_the_named_key_is_refused() {
    // An ES256 signature claiming to be by our Ed25519 key.
    let token = sign(
        Algorithm::ES256,
        Some(key().kid()),
        &claims_json(),
        &es256_key(),
    );
    refused(&verifier(), &token, NOW, "unsupported_alg");
    // Accepted algorithms other than ours, and no key for them: unknown key.
    let token = sign(Algorithm::RS256, None, &claims_json(), &rs256_key());
    refused(&verifier(), &token, NOW, "unknown_key");
    // Algorithms we never accept, even with a matching key type.
    for alg in [Algorithm::PS256, Algorithm::RS512] {
        let token = sign(alg, None, &claims_json(), &rs256_key());
        refused(&verifier(), &token, NOW, "unsupported_alg");
    }
}

#[test]
fn an_unknown_kid_is_refused() {
    let token = sign(
        Algorithm::EdDSA,
        Some("someone-else"),
        &claims_json(),
        &other_ed_key([9; 32]),
    );
    refused(&verifier(), &token, NOW, "unknown_key");
}

#[test]
fn without_a_kid_every_key_for_the_alg_is_tried() {
    let other = auth::IssuerKey::from_seed([9; 32]);
    let mut jwks = json(ES256_JWKS);
    let keys = jwks["keys"].as_array_mut().unwrap();
    keys.push(other.jwks()["keys"][0].clone());
    keys.push(key().jwks()["keys"][0].clone());
    let v = verifier_for(vec![TrustedIssuer {
        issuer: ISSUER.to_owned(),
        keys: jwks,
        mapping: ClaimMapping::Direct,
    }]);
    let token = sign(
        Algorithm::EdDSA,
        None,
        &claims_json(),
        &other_ed_key([7; 32]),
    );
    v.verify(&token, NOW).unwrap();
    let token = sign(Algorithm::ES256, None, &claims_json(), &es256_key());
    v.verify(&token, NOW).unwrap();
    let token = sign(
        Algorithm::EdDSA,
        None,
        &claims_json(),
        &other_ed_key([8; 32]),
    );
    refused(&v, &token, NOW, "bad_signature");
}

#[test]
fn garbage_and_oversized_tokens_are_refused() {
    let v = verifier();
    for garbage in [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "a.b.c.d.e",
        "Bearer abc.def.ghi",
        "!!!.???.***",
        "e30.e30.",
        "..",
        "e30.e30.e30",
        "W10.e30.e30",
        "eyJhbGciOiJFZERTQSJ9.bm90IGpzb24.c2ln",
    ] {
        refused(&v, garbage, NOW, "malformed");
    }
    let token = key().mint(&claims()).unwrap();
    refused(&v, &format!("{token}="), NOW, "malformed");
    refused(&v, &format!(" {token}"), NOW, "malformed");

    let big = "a".repeat(MAX_TOKEN_BYTES);
    let err = refused(&v, &format!("{big}.{big}.{big}"), NOW, "malformed");
    assert!(err.to_string().contains("16 KiB"));
    // A validly signed token that is too long is refused before parsing.
    let padded = with(claims_json(), "padding", json!("x".repeat(MAX_TOKEN_BYTES)));
    refused(&v, &ours(&padded), NOW, "malformed");
}

#[test]
fn critical_header_extensions_are_refused() {
    let token = hand_made(
        r#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#,
        &claims_json(),
        "c2ln",
    );
    refused(&verifier(), &token, NOW, "malformed");
}

fn external(jwks: &str) -> Verifier {
    verifier_for(vec![TrustedIssuer {
        issuer: "https://idp.test".to_owned(),
        keys: json(jwks),
        mapping: ClaimMapping::Direct,
    }])
}

fn external_claims() -> Value {
    with(claims_json(), "iss", json!("https://idp.test"))
}

#[test]
fn es256_tokens_verify_with_the_fixture_key() {
    let v = external(ES256_JWKS);
    let token = sign(
        Algorithm::ES256,
        Some("es256-test"),
        &external_claims(),
        &es256_key(),
    );
    assert_eq!(v.verify(&token, NOW).unwrap().issuer, "https://idp.test");
    let token = sign(Algorithm::ES256, None, &external_claims(), &es256_key());
    v.verify(&token, NOW).unwrap();
    // The kid names an EC key: an RSA signature is refused by name.
    let token = sign(
        Algorithm::RS256,
        Some("es256-test"),
        &external_claims(),
        &rs256_key(),
    );
    refused(&v, &token, NOW, "unsupported_alg");
}

#[test]
fn rs256_tokens_verify_with_the_fixture_key() {
    let v = external(RS256_JWKS);
    let token = sign(
        Algorithm::RS256,
        Some("rs256-test"),
        &external_claims(),
        &rs256_key(),
    );
    assert_eq!(v.verify(&token, NOW).unwrap().subject, "user-1");
    let token = sign(
        Algorithm::ES256,
        Some("rs256-test"),
        &external_claims(),
        &es256_key(),
    );
    refused(&v, &token, NOW, "unsupported_alg");
    // Our issuer's keys do not vouch for another issuer's tokens.
    let token = key().mint(&auth::TokenClaims {
        iss: "https://idp.test".to_owned(),
        ..claims()
    });
    refused(&v, &token.unwrap(), NOW, "unknown_key");
}

#[test]
fn the_jwks_fixtures_load_from_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let jwks = jwks_from_file(dir.join("rs256-jwks.json")).unwrap();
    assert_eq!(jwks, json(RS256_JWKS));
    let err = jwks_from_file(dir.join("missing.json")).unwrap_err();
    assert_eq!(err.code(), "io");
    let err = jwks_from_file(dir.join("README.md")).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
}

fn config_error(keys: Value) -> String {
    let err = Verifier::new(VerifierConfig::new(
        AUDIENCE,
        vec![TrustedIssuer {
            issuer: "https://idp.test".to_owned(),
            keys,
            mapping: ClaimMapping::Direct,
        }],
    ))
    .unwrap_err();
    assert_eq!(err.code(), "invalid_key", "{err}");
    assert!(!err.is_token_rejection());
    err.to_string()
}

#[test]
fn unusable_keys_are_refused_at_construction() {
    let ec = json(ES256_JWKS)["keys"][0].clone();
    let rsa = json(RS256_JWKS)["keys"][0].clone();
    let set = |k: Value| json!({ "keys": [k] });
    let patched = |k: &Value, name: &str, v: Value| {
        let mut k = k.clone();
        k[name] = v;
        set(k)
    };

    config_error(json!({}));
    config_error(json!({ "keys": [] }));
    config_error(json!({ "keys": ["x"] }));
    assert!(config_error(set(json!({"kty": "oct", "k": "c2VjcmV0"}))).contains("private"));
    config_error(set(json!({"kty": "oct"})));
    config_error(patched(&ec, "d", json!("AAAA")));
    config_error(patched(&ec, "crv", json!("P-384")));
    config_error(patched(&ec, "alg", json!("ES384")));
    config_error(patched(&ec, "alg", json!("HS256")));
    config_error(patched(&ec, "use", json!("enc")));
    config_error(patched(&ec, "key_ops", json!(["encrypt"])));
    config_error(patched(&ec, "x", json!(b64([1u8; 32]))));
    config_error(patched(&ec, "y", json!("not base64!")));
    config_error(patched(&rsa, "n", json!(b64([0xff_u8; 128]))));
    config_error(patched(&rsa, "e", json!("Ag")));
    config_error(patched(&rsa, "alg", json!("PS256")));
    config_error(set(
        json!({"kty": "OKP", "crv": "Ed25519", "x": b64([1u8; 31])}),
    ));
    config_error(set(
        json!({"kty": "OKP", "crv": "X25519", "x": b64([1u8; 32])}),
    ));
    config_error(json!({ "keys": [ec.clone(), ec.clone()] }));
    // Keys that pass are fine together, with or without kid, use, key_ops.
    let mut bare = rsa.clone();
    for member in ["kid", "alg", "use"] {
        bare.as_object_mut().unwrap().remove(member);
    }
    let ok = json!({ "keys": [ec, rsa, bare, key().jwks()["keys"][0]] });
    external(&ok.to_string());
}

#[test]
fn bad_configurations_are_refused() {
    let code = |config: VerifierConfig| Verifier::new(config).unwrap_err().code();
    let ours = || key().trusted_issuer(ISSUER);
    assert_eq!(
        code(VerifierConfig::new("", vec![ours()])),
        "invalid_config"
    );
    assert_eq!(
        code(VerifierConfig::new(AUDIENCE, vec![])),
        "invalid_config"
    );
    assert_eq!(
        code(VerifierConfig::new(AUDIENCE, vec![ours(), ours()])),
        "invalid_config"
    );
    assert_eq!(
        code(VerifierConfig {
            leeway_secs: 100_000,
            ..VerifierConfig::new(AUDIENCE, vec![ours()])
        }),
        "invalid_config"
    );
    let empty_map = TrustedIssuer {
        mapping: ClaimMapping::Cis2 {
            role_map: Default::default(),
        },
        ..ours()
    };
    assert_eq!(
        code(VerifierConfig::new(AUDIENCE, vec![empty_map])),
        "invalid_config"
    );
}

#[test]
fn error_codes_are_stable() {
    use auth::AuthError as E;
    let codes: Vec<&str> = [
        E::Malformed("x"),
        E::InvalidClaim("x".into()),
        E::UnsupportedAlg,
        E::UnknownKey,
        E::BadSignature,
        E::UntrustedIssuer,
        E::WrongAudience,
        E::Expired,
        E::NotYetValid,
        E::MissingClaim("x".into()),
        E::UnmappedRole,
        E::Config("x".into()),
        E::InvalidKey("x".into()),
        E::Signing,
    ]
    .iter()
    .map(E::code)
    .collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "malformed",
            "unsupported_alg",
            "unknown_key",
            "bad_signature",
            "untrusted_issuer",
            "wrong_audience",
            "expired",
            "not_yet_valid",
            "missing_claim",
            "unmapped_role",
            "invalid_config",
            "invalid_key",
            "signing_failed",
        ]
    );
}

#[test]
fn only_the_given_time_is_used() {
    // A token that expired decades ago verifies at a time within its
    // validity: no library reads the system clock.
    let mut c = claims();
    (c.iat, c.nbf, c.exp) = (1_000, 1_000, 2_000);
    let token = key().mint(&c).unwrap();
    assert_eq!(verifier().verify(&token, 1_500).unwrap().expires_at, 2_000);
    refused(&verifier(), &token, NOW, "expired");
}
