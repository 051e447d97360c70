//! The embedded issuer: the server's own Ed25519 signing key.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{AuthError, ClaimMapping, TokenClaims, TrustedIssuer};

/// The name of the key file inside the directory given to
/// [`IssuerKey::load_or_create`].
pub const KEY_FILE_NAME: &str = "issuer-key.json";

/// The DER prefix of a PKCS#8 (v1) Ed25519 private key (RFC 8410): the
/// 32-byte seed follows it.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Checks a detached Ed25519 signature (base64url) over `message` against
/// the public key `x` (base64url, as in an OKP JWK).
pub fn verify_with_x(x: &str, message: &[u8], signature: &str) -> bool {
    use ed25519_dalek::Verifier as _;
    let Ok(public) = URL_SAFE_NO_PAD.decode(x) else {
        return false;
    };
    let Ok(public) = <[u8; 32]>::try_from(public.as_slice()) else {
        return false;
    };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&public) else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&sig) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

/// The server's own token-signing key (Ed25519, `alg: EdDSA`).
///
/// On disk (see [`IssuerKey::load_or_create`]) it is a private JWK as
/// RFC 8037 defines it, one JSON object:
///
/// ```json
/// {"kty": "OKP", "crv": "Ed25519", "d": "<seed, base64url>",
///  "x": "<public key, base64url>", "kid": "<thumbprint>", "alg": "EdDSA", "use": "sig"}
/// ```
///
/// `d` is authoritative; `x` and `kid` are there for people and are checked
/// against `d` when the file is loaded.
#[derive(Clone)]
pub struct IssuerKey {
    encoding: EncodingKey,
    signing: SigningKey,
    x: String,
    kid: String,
}

impl fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key file's JSON shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kty: String,
    crv: String,
    d: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    usage: Option<String>,
}

impl IssuerKey {
    /// The key whose 32-byte Ed25519 seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> IssuerKey {
        let signing = SigningKey::from_bytes(&seed);
        let x = URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes());
        let mut pkcs8 = PKCS8_ED25519_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        IssuerKey {
            encoding: EncodingKey::from_ed_der(&pkcs8),
            signing,
            kid: thumbprint(&x),
            x,
        }
    }

    /// Loads the key from `dir/issuer-key.json`, or, when that file does
    /// not exist, creates a key from `seed()` and writes it there.
    ///
    /// The directory is created if need be. The file is written with mode
    /// 0600 to a temporary name and then linked into place, so a reader
    /// never sees half a key, and two servers starting together on one
    /// directory end up with the same key (the second loads the first's).
    pub fn load_or_create(
        dir: &Path,
        seed: impl FnOnce() -> [u8; 32],
    ) -> Result<IssuerKey, AuthError> {
        let path = dir.join(KEY_FILE_NAME);
        match fs::read(&path) {
            Ok(bytes) => IssuerKey::parse_file(&path, &bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(dir, &path, seed()),
            Err(source) => Err(AuthError::Io { path, source }),
        }
    }

    /// The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url) of the
    /// public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A detached Ed25519 signature over `message`, base64url (no padding):
    /// for the audit chain's checkpoints.
    pub fn sign(&self, message: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        URL_SAFE_NO_PAD.encode(self.signing.sign(message).to_bytes())
    }

    /// Checks a [`IssuerKey::sign`] signature against this key's public
    /// half.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        verify_with_x(&self.x, message, signature)
    }

    /// The public key as a JWK Set, for `/.well-known/jwks.json` and for
    /// [`IssuerKey::trusted_issuer`].
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }]})
    }

    /// The trust entry for tokens this key mints under the issuer name
    /// `issuer`, with the [`ClaimMapping::Direct`] mapping.
    pub fn trusted_issuer(&self, issuer: impl Into<String>) -> TrustedIssuer {
        TrustedIssuer {
            issuer: issuer.into(),
            keys: self.jwks(),
            mapping: ClaimMapping::Direct,
        }
    }

    /// Signs `claims` as a compact JWS with `alg: EdDSA`, `typ: JWT` and
    /// this key's `kid`.
    pub fn mint(&self, claims: &TokenClaims) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| AuthError::Signing)
    }

    fn parse_file(path: &Path, bytes: &[u8]) -> Result<IssuerKey, AuthError> {
        let invalid = |reason: &str| AuthError::InvalidKey(format!("{}: {reason}", path.display()));
        let file: KeyFile = serde_json::from_slice(bytes)
            .map_err(|_| invalid("not an Ed25519 private JWK (see the auth crate's docs)"))?;
        if file.kty != "OKP" || file.crv != "Ed25519" {
            return Err(invalid("not an Ed25519 key (`kty` OKP, `crv` Ed25519)"));
        }
        if file.alg.as_deref().is_some_and(|alg| alg != "EdDSA")
            || file.usage.as_deref().is_some_and(|usage| usage != "sig")
        {
            return Err(invalid("`alg` must be EdDSA and `use` sig"));
        }
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&file.d)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| invalid("`d` is not a base64url 32-byte seed"))?;
        let key = IssuerKey::from_seed(seed);
        if file.x.as_deref().is_some_and(|x| x != key.x) {
            return Err(invalid("`x` does not match `d`"));
        }
        if file.kid.as_deref().is_some_and(|kid| kid != key.kid) {
            return Err(invalid("`kid` does not match the key's thumbprint"));
        }
        Ok(key)
    }
}

/// The RFC 7638 thumbprint of an Ed25519 public key (`x`, base64url): the
/// SHA-256 of its required members in lexicographic order, without spaces.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn create(dir: &Path, path: &Path, seed: [u8; 32]) -> Result<IssuerKey, AuthError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AuthError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key = IssuerKey::from_seed(seed);
    let file = KeyFile {
        kty: "OKP".to_owned(),
        crv: "Ed25519".to_owned(),
        d: URL_SAFE_NO_PAD.encode(seed),
        x: Some(key.x.clone()),
        kid: Some(key.kid.clone()),
        alg: Some("EdDSA".to_owned()),
        usage: Some("sig".to_owned()),
    };
    let mut text = serde_json::to_string_pretty(&file)
        .map_err(|_| AuthError::InvalidKey("cannot encode the key file".to_owned()))?;
    text.push('\n');

    let tmp = temp_path(dir);
    // A leftover from a crash of this same process id; nothing else uses it.
    let _ = fs::remove_file(&tmp);
    write_private(&tmp, text.as_bytes()).map_err(io_err(&tmp))?;
    // A hard link never replaces an existing file: if another process won
    // the race, take its key instead of overwriting it.
    let placed = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        // File systems without hard links: fall back to a plain rename.
        Err(_) => fs::rename(&tmp, path).map(|()| true),
    };
    let _ = fs::remove_file(&tmp);
    if placed.map_err(io_err(path))? {
        sync_dir(dir);
        Ok(key)
    } else {
        let bytes = fs::read(path).map_err(io_err(path))?;
        IssuerKey::parse_file(path, &bytes)
    }
}

fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(".{KEY_FILE_NAME}.{}.tmp", std::process::id()))
}

/// Creates `path` (it must not exist) readable and writable by the owner
/// only, writes `bytes` and flushes them to disk.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the new directory entry durable; best effort, as not every
/// platform can open a directory.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_signatures_verify_only_for_their_message_and_key() {
        let key = IssuerKey::from_seed([7u8; 32]);
        let other = IssuerKey::from_seed([8u8; 32]);
        let sig = key.sign(b"checkpoint:10:abc");
        assert!(key.verify(b"checkpoint:10:abc", &sig));
        assert!(!key.verify(b"checkpoint:11:abc", &sig));
        assert!(!other.verify(b"checkpoint:10:abc", &sig));
        assert!(!key.verify(b"checkpoint:10:abc", "not base64!"));
        assert!(!verify_with_x("short", b"m", &sig));
    }
}
