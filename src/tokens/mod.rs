//! Signing keys and access-token minting.
//!
//! This module owns the issuer's key material and the bytes of every access token it signs:
//! - [`keys`]: one signing key (generation, PKCS#8 import/export, RFC 7638 `kid`, raw signature);
//! - [`keyset`]: the keys of every algorithm in their stages (next, active, retired with a
//!   publication deadline), and the stable JSON form kept under `--data-dir` or in a
//!   Kubernetes Secret;
//! - [`rotation`]: the schedule that moves keys through those stages, as a pure function of
//!   the key set and the time;
//! - [`jwk`]: the public JWK and JWKS documents (RFC 7517) served at `/.well-known/jwks.json`;
//! - [`mint`]: the [`Minter`], which turns claims into RFC 9068 JWT access tokens with the
//!   parsed keys it holds, so the hot path neither parses a key nor takes a lock;
//! - [`verify`]: the [`Verifier`], which checks the issuer's own tokens against the published
//!   public keys (for revocation and introspection).
//!
//! It knows nothing of policies, clients, HTTP or stores: callers pass the algorithm, the
//! claims, the lifetime and the time (`now`, unix seconds). Time is never read here.
//! Private key material never appears in `Debug` output or in errors.

pub(crate) mod jwk;
pub(crate) mod keys;
pub(crate) mod keyset;
pub(crate) mod mint;
pub(crate) mod rotation;
pub(crate) mod verify;

pub(crate) use jwk::Jwks;
pub use keyset::{KeySet, RetiredKey};
pub use mint::{AccessTokenClaims, MintedToken, Minter};
pub(crate) use verify::{VerifiedClaims, Verifier};

use std::str::FromStr;

/// The JWS algorithms, as an `ApiTokenPolicy` names them (`signingAlgorithm`): one enum for the
/// resource and the keys.
pub use crate::api::SigningAlgorithm as Algorithm;

impl FromStr for Algorithm {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or(TokenError::UnknownAlgorithm)
    }
}

/// Everything that can go wrong with keys and tokens. Messages name the cause and never carry
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("unknown signing algorithm (expected RS256, PS256, ES256 or EdDSA)")]
    UnknownAlgorithm,
    #[error("no signing key for {0}")]
    NoSigningKey(Algorithm),
    #[error("could not generate a {0} key")]
    KeyGeneration(Algorithm),
    #[error("could not sign with the {0} key")]
    Signing(Algorithm),
    #[error("could not encode the {0} key")]
    KeyEncoding(Algorithm),
    #[error("{alg} private key rejected: {reason}")]
    KeyRejected { alg: Algorithm, reason: String },
    #[error("key set entry {entry} ({alg}, kid {kid}) is invalid: {reason}")]
    InvalidKey {
        entry: String,
        alg: Algorithm,
        kid: String,
        reason: String,
    },
    #[error("key set has two {alg} keys in \"{list}\"")]
    DuplicateKey { list: &'static str, alg: Algorithm },
    #[error("token lifetime {0} s overflows the expiry time")]
    Lifetime(u64),
    #[error("key set is not valid JSON of the expected shape: {0}")]
    KeySetFormat(String),
    #[error("key set version {0} is not supported (expected 1)")]
    UnsupportedVersion(u32),
    #[error("key set has two keys with kid {0}")]
    DuplicateKid(String),
    #[error("could not encode the token claims: {0}")]
    Claims(#[source] serde_json::Error),
    #[error("the token is not a well-formed JWS")]
    Malformed,
    #[error("the token's typ is not at+jwt")]
    WrongType,
    #[error("the token names no published key of its algorithm")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token has expired")]
    Expired,
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    FileModes(#[from] crate::file_modes::FileModeError),
}

#[cfg(test)]
mod tests;
