//! Authentication: who is calling.
//!
//! * [`IssuerKey`] is the embedded default issuer: the server's own Ed25519
//!   key, kept in `issuer-key.json` (a private JWK, mode 0600), which mints
//!   tokens ([`TokenClaims`]) and publishes its public key as a JWK Set.
//! * [`Verifier`] checks bearer tokens from trusted issuers (our own and
//!   external OpenID Connect providers such as NHS CIS2) and maps their
//!   claims ([`ClaimMapping`]) to an [`Identity`]. An issuer's keys
//!   ([`IssuerKeys`]) can be replaced while the verifier is in use, when
//!   its JWK Set has been fetched again.
//!
//! What the identity may do is the policy's decision, not this crate's.
//!
//! Architecture invariant: this crate reads no clock and no random source
//! (the time and the key seed are parameters), makes no network requests
//! (a JWK Set comes from a file, from our own key, or as bytes or JSON from
//! the caller, which fetches a JWK Set URL), and knows nothing of HTTP. Its
//! only IO is the issuer key file and JWK Set files.

mod claims;
mod error;
mod issuer;
mod jwks;
mod mapping;
mod verify;

pub use claims::{Identity, TokenClaims};
pub use error::AuthError;
pub use issuer::{IssuerKey, KEY_FILE_NAME, verify_with_x};
pub use jwks::{IssuerKeys, jwks_from_file, jwks_from_slice};
pub use mapping::ClaimMapping;
pub use verify::{
    DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, MAX_TOKEN_BYTES, TrustedIssuer, Verifier, VerifierConfig,
};
