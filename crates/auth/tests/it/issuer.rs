//! The embedded issuer key: derivation, the key file, the JWK Set, minting.

use std::path::PathBuf;

use auth::{IssuerKey, KEY_FILE_NAME};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::support::{NOW, claims, key, verifier};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("auth-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn seed(b64: &str) -> [u8; 32] {
    URL_SAFE_NO_PAD.decode(b64).unwrap().try_into().unwrap()
}

#[test]
fn derives_the_rfc_8037_public_key_and_rfc_7638_thumbprint() {
    // RFC 8037, appendix A.1 (the key) and A.3 (its thumbprint).
    let key = IssuerKey::from_seed(seed("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"));
    assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    assert_eq!(
        key.jwks(),
        serde_json::json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
            "alg": "EdDSA",
            "use": "sig",
        }]})
    );
}

#[test]
fn debug_does_not_show_the_private_key() {
    let key = IssuerKey::from_seed(seed("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"));
    let shown = format!("{key:?}");
    assert!(shown.contains(key.kid()));
    assert!(!shown.contains("nWGxne"));
}

#[test]
fn minted_header_has_alg_kid_and_typ() {
    let token = key().mint(&claims()).unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(key().kid()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
}

#[test]
fn load_or_create_creates_once_then_reloads_the_same_key() {
    let dir = TempDir::new("create");
    let nested = dir.0.join("keys");
    let created = IssuerKey::load_or_create(&nested, || [42; 32]).unwrap();
    let path = nested.join(KEY_FILE_NAME);
    assert!(path.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&nested).unwrap().count(), 1);

    let reloaded =
        IssuerKey::load_or_create(&nested, || panic!("the key must not be recreated")).unwrap();
    assert_eq!(reloaded.kid(), created.kid());
    assert_eq!(reloaded.jwks(), created.jwks());
    // A token minted before the restart verifies after it.
    let token = created.mint(&claims()).unwrap();
    let trusted =
        crate::support::verifier_for(vec![reloaded.trusted_issuer(crate::support::ISSUER)]);
    trusted.verify(&token, NOW).unwrap();
}

#[test]
fn the_key_file_is_a_private_jwk() {
    let dir = TempDir::new("format");
    let key = IssuerKey::load_or_create(&dir.0, || [42; 32]).unwrap();
    let text = std::fs::read_to_string(dir.0.join(KEY_FILE_NAME)).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["kty"], "OKP");
    assert_eq!(file["crv"], "Ed25519");
    assert_eq!(file["d"], URL_SAFE_NO_PAD.encode([42; 32]));
    assert_eq!(file["kid"], key.kid());
    assert_eq!(file["x"], key.jwks()["keys"][0]["x"]);
    assert_eq!(IssuerKey::from_seed([42; 32]).kid(), key.kid());
}

#[test]
fn a_corrupt_or_inconsistent_key_file_is_refused() {
    let dir = TempDir::new("corrupt");
    std::fs::create_dir_all(&dir.0).unwrap();
    let path = dir.0.join(KEY_FILE_NAME);
    let never = || -> [u8; 32] { panic!("must not overwrite an existing file") };

    std::fs::write(&path, "not json").unwrap();
    let err = IssuerKey::load_or_create(&dir.0, never).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
    assert!(!err.is_token_rejection());

    let good = IssuerKey::from_seed([1; 32]);
    let mismatched = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519",
        "d": URL_SAFE_NO_PAD.encode([2; 32]),
        "x": good.jwks()["keys"][0]["x"],
    });
    std::fs::write(&path, mismatched.to_string()).unwrap();
    let err = IssuerKey::load_or_create(&dir.0, never).unwrap_err();
    assert_eq!(err.code(), "invalid_key");
    // The message names the problem, never the secret.
    assert!(!err.to_string().contains(&URL_SAFE_NO_PAD.encode([2; 32])));

    // The file is left as it was.
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        mismatched.to_string()
    );
}

#[test]
fn mint_then_verify_round_trips() {
    let identity = verifier()
        .verify(&key().mint(&claims()).unwrap(), NOW)
        .unwrap();
    assert_eq!(identity.issuer, crate::support::ISSUER);
    assert_eq!(identity.subject, "user-1");
}
