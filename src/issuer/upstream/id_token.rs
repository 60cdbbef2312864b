//! Validating the ID token an upstream OpenID Provider returns from its token endpoint
//! (OpenID Connect Core §3.1.3.7), as a pure function of the token, the provider's JWKS, what
//! was expected, and the time.
//!
//! Owns: the rules. The signature must verify with the JWKS key named by the header's `kid`
//! (or the one key of the right type when there is no `kid`) and an asymmetric algorithm from
//! [`ALLOWED_ALGORITHMS`] (never `none`, never HMAC: the client secret is not a signing key
//! here); then `iss` equals the configured issuer, `aud` contains the client id (and with
//! several audiences `azp` names it), `exp` and `iat` hold with [`CLOCK_SKEW_SECS`], and
//! `nonce` equals the one sent. Must not do I/O, read the clock or log: the caller fetches the
//! keys and says what went wrong. No error carries the token or a claim's value.

use crate::issuer::token_times::{self, TimeClaim};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use subtle::ConstantTimeEq as _;

/// Signature algorithms accepted from the provider.
pub(crate) const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Tolerated difference between the provider's clock and ours.
pub(crate) const CLOCK_SKEW_SECS: u64 = 60;

/// Longest ID token looked at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What the ID token must say. No `Debug`: it holds the nonce.
#[derive(Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// The provider's issuer identifier, exactly as configured.
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sent with the authorization request.
    pub nonce: &'a str,
    /// The claim that names the user (`--oidc-subject-claim`).
    pub subject_claim: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// Why an ID token was refused. Fixed texts: no claim values, no token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IdTokenError {
    #[error("the ID token is not a well-formed JWS")]
    Malformed,
    #[error("the ID token's algorithm is not allowed (asymmetric algorithms only)")]
    Algorithm,
    #[error("no key of the provider's JWKS matches the ID token's kid and algorithm")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("the ID token's iss is not the configured issuer")]
    Issuer,
    #[error("the ID token's aud does not contain the client id")]
    Audience,
    #[error("the ID token's azp is missing or is not the client id")]
    AuthorizedParty,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token's iat is missing or in the future")]
    IssuedAt,
    #[error("the ID token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the ID token's nonce is missing or is not the one sent")]
    Nonce,
    #[error("the ID token has no string claim named by --oidc-subject-claim")]
    Subject,
    #[error(
        "the ID token's email is not verified (email_verified is not true), so it cannot be the subject"
    )]
    EmailNotVerified,
    #[error(
        "the ID token's subject ends with @clients, which only clients' tokens carry, so it cannot be a user's"
    )]
    ReservedSubject,
}

impl IdTokenError {
    /// Whether fetching the JWKS again could help (the provider may have rotated its keys).
    pub(crate) fn key_may_be_new(&self) -> bool {
        matches!(self, Self::UnknownKey)
    }
}

/// Validate `token` and return the user's subject.
pub(crate) fn validate(
    token: &str,
    jwks: &JwkSet,
    expected: &Expected<'_>,
) -> Result<String, IdTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(IdTokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg) {
        return Err(IdTokenError::Algorithm);
    }
    let jwk = find_key(jwks, header.kid.as_deref(), header.alg).ok_or(IdTokenError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::UnknownKey)?;
    // The signature only: every claim is checked below, against `expected.now`.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => IdTokenError::Algorithm,
            _ => IdTokenError::Malformed,
        })?
        .claims;
    check_claims(&claims, expected)
}

/// The key for `kid` and `alg`: by `kid` when the token names one, else the only key that
/// fits. A key that declares `use` other than `sig`, or another `alg`, never fits.
fn find_key<'a>(jwks: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let fits = |jwk: &&Jwk| {
        let use_ok = !matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        );
        let alg_ok = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| declared == KeyAlgorithm::from(alg));
        use_ok && alg_ok && key_family_fits(jwk, alg)
    };
    let mut candidates = jwks.keys.iter().filter(fits);
    match kid {
        Some(kid) => candidates.find(|jwk| jwk.common.key_id.as_deref() == Some(kid)),
        None => {
            let first = candidates.next()?;
            candidates.next().is_none().then_some(first)
        }
    }
}

/// The key type must be the algorithm's: RSA for RS/PS, EC for ES, OKP for EdDSA.
fn key_family_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    matches!(
        (&jwk.algorithm, alg),
        (
            P::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
        ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

fn check_claims(claims: &Value, expected: &Expected<'_>) -> Result<String, IdTokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Audience),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    match claims.get("azp") {
        Some(azp) if azp.as_str() != Some(expected.client_id) => {
            return Err(IdTokenError::AuthorizedParty);
        }
        None if audiences.len() > 1 => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    token_times::check(claims, expected.now, CLOCK_SKEW_SECS).map_err(|claim| match claim {
        TimeClaim::Expired => IdTokenError::Expired,
        TimeClaim::IssuedAt => IdTokenError::IssuedAt,
        TimeClaim::NotYetValid => IdTokenError::NotYetValid,
    })?;
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Nonce)?;
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err(IdTokenError::Nonce);
    }
    // An address the user typed and the provider never checked names nobody: anyone could
    // claim a colleague's (OpenID Connect Core §5.1).
    if expected.subject_claim == "email" {
        let verified = match claims.get("email_verified") {
            Some(Value::Bool(verified)) => *verified,
            // Some providers send it as a string.
            Some(Value::String(verified)) => verified == "true",
            _ => false,
        };
        if !verified {
            return Err(IdTokenError::EmailNotVerified);
        }
    }
    let subject = match claims.get(expected.subject_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Some providers name users by number (a numeric `sub` is not OpenID Connect, but an
        // `employee_id` claim may well be).
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(IdTokenError::Subject),
    };
    // A user whose subject looked like a client's would share its `sub` (RFC 9068 §5).
    if crate::issuer::protocol::is_reserved_for_clients(&subject) {
        return Err(IdTokenError::ReservedSubject);
    }
    Ok(subject)
}

#[cfg(test)]
mod tests;
