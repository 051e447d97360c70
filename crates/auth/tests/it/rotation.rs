//! Replacing an issuer's keys while the verifier is in use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth::IssuerKey;
use serde_json::json;

use crate::support::{ISSUER, NOW, claims, key, refused, verifier};

fn other() -> IssuerKey {
    IssuerKey::from_seed([9; 32])
}

#[test]
fn a_jwk_set_is_read_from_bytes_with_its_source_in_errors() {
    let jwks = auth::jwks_from_slice(
        "https://idp.test/jwks",
        other().jwks().to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(jwks, other().jwks());
    for (bytes, reason) in [
        (&b"<html></html>"[..], "not a JSON document"),
        (br#"{"keys": {}}"#, "not a JWK Set"),
        (b"[]", "not a JWK Set"),
    ] {
        let err = auth::jwks_from_slice("https://idp.test/jwks", bytes).unwrap_err();
        assert_eq!(err.code(), "invalid_key");
        let text = err.to_string();
        assert!(
            text.contains("https://idp.test/jwks") && text.contains(reason),
            "{text}"
        );
    }
}

#[test]
fn replaced_keys_apply_to_every_clone_at_once() {
    let v = verifier();
    let clone = v.clone();
    let keys = v.issuer_keys(ISSUER).unwrap();
    assert_eq!(keys.issuer(), ISSUER);
    assert_eq!(keys.kids(), vec![key().kid().to_owned()]);
    let old = key().mint(&claims()).unwrap();
    let new = other().mint(&claims()).unwrap();
    v.verify(&old, NOW).unwrap();
    refused(&v, &new, NOW, "unknown_key");

    assert_eq!(keys.replace(&other().jwks()).unwrap(), 1);
    assert_eq!(keys.kids(), vec![other().kid().to_owned()]);
    for verifier in [&v, &clone] {
        verifier.verify(&new, NOW).unwrap();
        refused(verifier, &old, NOW, "unknown_key");
    }

    // Both keys during a rotation's overlap.
    let mut both = key().jwks();
    both["keys"]
        .as_array_mut()
        .unwrap()
        .extend(other().jwks()["keys"].as_array().unwrap().clone());
    assert_eq!(keys.replace(&both).unwrap(), 2);
    v.verify(&old, NOW).unwrap();
    v.verify(&new, NOW).unwrap();
    assert!(v.issuer_keys("https://unknown.test").is_none());
}

#[test]
fn an_unusable_set_is_refused_and_the_previous_keys_stay() {
    let v = verifier();
    let keys = v.issuer_keys(ISSUER).unwrap();
    let token = key().mint(&claims()).unwrap();
    let mut private = other().jwks();
    private["keys"][0]["d"] = json!("AAAA");
    let mut duplicate = key().jwks();
    let first = duplicate["keys"][0].clone();
    duplicate["keys"].as_array_mut().unwrap().push(first);
    for bad in [
        json!({"keys": []}),
        json!({"not": "a set"}),
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
        private,
        duplicate,
    ] {
        let err = keys.replace(&bad).unwrap_err();
        assert_eq!(err.code(), "invalid_key", "{bad}: {err}");
        assert!(err.to_string().contains(ISSUER), "{err}");
        v.verify(&token, NOW).unwrap();
    }
}

#[test]
fn an_unknown_key_runs_the_hook_and_other_refusals_do_not() {
    let v = verifier();
    let keys = v.issuer_keys(ISSUER).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    assert!(keys.on_unknown_key(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    assert!(!keys.on_unknown_key(|| {}), "only the first hook is kept");

    v.verify(&key().mint(&claims()).unwrap(), NOW).unwrap();
    refused(&v, &key().mint(&claims()).unwrap(), NOW + 3600, "expired");
    let mut wrong_aud = claims();
    wrong_aud.aud = "https://elsewhere.test".to_owned();
    refused(&v, &key().mint(&wrong_aud).unwrap(), NOW, "wrong_audience");
    assert_eq!(seen.load(Ordering::SeqCst), 0);

    // Rotated by the issuer, not yet here: refused, and the hook runs.
    refused(&v, &other().mint(&claims()).unwrap(), NOW, "unknown_key");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    keys.replace(&other().jwks()).unwrap();
    v.verify(&other().mint(&claims()).unwrap(), NOW).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
