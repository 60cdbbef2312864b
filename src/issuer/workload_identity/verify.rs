//! Verifying a workload's token, as a pure function of the token, the keys of the issuer its
//! `iss` names, what is expected and the time; then finding the client it may act as in the
//! configuration in force.
//!
//! Owns the rules: an asymmetric algorithm (never `none`, never HMAC), the signature with the
//! key the header's `kid` names (or the only key of the right type), `iss` exactly, `aud`
//! containing one of the accepted audiences, `exp`, `nbf` and `iat` with [`CLOCK_SKEW_SECS`];
//! for a ServiceAccount token the `kubernetes.io` claims (namespace, name, and the UID the
//! ServiceAccount has now); for a federated token `sub` and the declared claims, exactly.
//! Must not do I/O, read the clock or log. No error carries the token or a claim's value.

use crate::config::{IssuerConfig, service_account_key};
use crate::issuer::token_times::{self, TimeClaim};
use crate::issuer::upstream::id_token::ALLOWED_ALGORITHMS;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;

/// Tolerated difference between the token issuer's clock and ours, in seconds: small, since
/// ServiceAccount tokens live minutes to hours and the cluster's clocks are synchronised.
pub(crate) const CLOCK_SKEW_SECS: u64 = 30;

/// Longest token looked at (a ServiceAccount token is about 1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a workload's token was refused. Fixed texts: no claim values, no token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WorkloadTokenError {
    #[error("the token is not a well-formed JWS")]
    Malformed,
    #[error("the token's iss is not a trusted issuer")]
    UnknownIssuer,
    #[error("the token's algorithm is not allowed (asymmetric algorithms only)")]
    Algorithm,
    #[error("no key the issuer publishes matches the token's kid and algorithm")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token's aud does not name an accepted audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token's iat is missing or in the future")]
    IssuedAt,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token's kubernetes.io claims are missing or incomplete")]
    ServiceAccountClaims,
    #[error(
        "the token's ServiceAccount may act as no client (deleted and created again, or not named by one)"
    )]
    UnknownServiceAccount,
    #[error("the token's subject and claims match no client's workloadIdentity")]
    UnknownSubject,
    #[error("the workload may act as several clients: send client_id")]
    AmbiguousClient,
    #[error("the workload may not act as the client named by client_id")]
    OtherClient,
    #[error(
        "the token is bound to a pod that no longer exists (or the API server no longer accepts it)"
    )]
    PodGone,
    #[error("the issuer's keys, or the API server's word on the token, cannot be read now")]
    KeysUnavailable,
}

impl WorkloadTokenError {
    /// Whether reading the issuer's keys again could help (it may have rotated them).
    pub(crate) fn key_may_be_new(self) -> bool {
        matches!(self, Self::UnknownKey)
    }

    /// A bounded label for metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::Signature => "signature",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::IssuedAt => "issued_at",
            Self::NotYetValid => "not_yet_valid",
            Self::ServiceAccountClaims => "service_account_claims",
            Self::UnknownServiceAccount => "unknown_service_account",
            Self::UnknownSubject => "unknown_subject",
            Self::AmbiguousClient => "ambiguous_client",
            Self::OtherClient => "other_client",
            Self::PodGone => "pod_gone",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Which issuer a token claims to come from, by its unverified `iss`: only to choose whose
/// keys verify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The cluster's service-account issuer.
    Cluster,
    /// A FederatedIssuer, by name, with its issuer URL.
    Federated { name: String, issuer_url: String },
}

/// The workload a verified token names: what metrics and logs say got a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Workload {
    ServiceAccount {
        namespace: String,
        name: String,
        /// The pod the token is bound to, if any (name, uid).
        pod: Option<(String, String)>,
    },
    Federated {
        issuer: String,
        subject: String,
    },
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceAccount {
                namespace, name, ..
            } => write!(f, "serviceaccount {namespace}/{name}"),
            Self::Federated { issuer, subject } => write!(f, "{issuer} subject {subject}"),
        }
    }
}

/// A token's `iss`, read without verifying anything.
pub(crate) fn unverified_issuer(token: &str) -> Result<String, WorkloadTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(WorkloadTokenError::Malformed);
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(WorkloadTokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| WorkloadTokenError::Malformed)?;
    let claims: Value =
        serde_json::from_slice(&bytes).map_err(|_| WorkloadTokenError::Malformed)?;
    claims
        .get("iss")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(WorkloadTokenError::Malformed)
}

/// Where `iss` comes from: the cluster (when it is the cluster's issuer) or a FederatedIssuer
/// of the configuration.
pub(crate) fn origin(
    config: &IssuerConfig,
    cluster_issuer: Option<&str>,
    iss: &str,
) -> Result<Origin, WorkloadTokenError> {
    if cluster_issuer == Some(iss) {
        return Ok(Origin::Cluster);
    }
    config
        .workload_identity
        .federated_issuers
        .iter()
        .find(|(_, issuer)| issuer.issuer_url == iss)
        .map(|(name, issuer)| Origin::Federated {
            name: name.clone(),
            issuer_url: issuer.issuer_url.clone(),
        })
        .ok_or(WorkloadTokenError::UnknownIssuer)
}

/// What a token must say.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expected<'a> {
    pub issuer: &'a str,
    /// `aud` must contain one of these.
    pub audiences: &'a [String],
    /// Unix seconds.
    pub now: u64,
}

/// Verify `token`'s signature with `jwks` and its registered claims; returns its claims.
pub(crate) fn verify(
    token: &str,
    jwks: &JwkSet,
    expected: &Expected<'_>,
) -> Result<Value, WorkloadTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(WorkloadTokenError::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| WorkloadTokenError::Malformed)?;
    if !ALLOWED_ALGORITHMS.contains(&header.alg) {
        return Err(WorkloadTokenError::Algorithm);
    }
    let jwk =
        find_key(jwks, header.kid.as_deref(), header.alg).ok_or(WorkloadTokenError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| WorkloadTokenError::UnknownKey)?;
    // The signature only: the claims are checked below, against `expected.now`.
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => WorkloadTokenError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
            | jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                WorkloadTokenError::Algorithm
            }
            _ => WorkloadTokenError::Malformed,
        })?
        .claims;
    check_registered_claims(&claims, expected)?;
    Ok(claims)
}

/// The key for `kid` and `alg`: by `kid` when the token names one, else the only key that
/// fits. A key for another use, algorithm or key type never fits.
fn find_key<'a>(jwks: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    let fits = |jwk: &&Jwk| {
        let use_ok = !matches!(
            jwk.common.public_key_use,
            Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
        );
        let alg_ok = jwk
            .common
            .key_algorithm
            .is_none_or(|declared| declared == KeyAlgorithm::from(alg));
        let family_ok = matches!(
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
        );
        use_ok && alg_ok && family_ok
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

fn check_registered_claims(
    claims: &Value,
    expected: &Expected<'_>,
) -> Result<(), WorkloadTokenError> {
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err(WorkloadTokenError::UnknownIssuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return Err(WorkloadTokenError::Audience),
    };
    if !audiences
        .iter()
        .any(|aud| expected.audiences.iter().any(|a| a == aud))
    {
        return Err(WorkloadTokenError::Audience);
    }
    token_times::check(claims, expected.now, CLOCK_SKEW_SECS).map_err(|claim| match claim {
        TimeClaim::Expired => WorkloadTokenError::Expired,
        TimeClaim::IssuedAt => WorkloadTokenError::IssuedAt,
        TimeClaim::NotYetValid => WorkloadTokenError::NotYetValid,
    })
}

/// The clients the verified `claims` may act as, and the workload they name.
pub(crate) fn identify(
    config: &IssuerConfig,
    origin: &Origin,
    claims: &Value,
) -> Result<(BTreeSet<String>, Workload), WorkloadTokenError> {
    match origin {
        Origin::Cluster => identify_service_account(config, claims),
        Origin::Federated { name, .. } => identify_federated(config, name, claims),
    }
}

fn identify_service_account(
    config: &IssuerConfig,
    claims: &Value,
) -> Result<(BTreeSet<String>, Workload), WorkloadTokenError> {
    let k8s = claims
        .get("kubernetes.io")
        .ok_or(WorkloadTokenError::ServiceAccountClaims)?;
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(namespace), Some(account)) = (text(k8s, "namespace"), k8s.get("serviceaccount"))
    else {
        return Err(WorkloadTokenError::ServiceAccountClaims);
    };
    let (Some(name), Some(uid)) = (text(account, "name"), text(account, "uid")) else {
        return Err(WorkloadTokenError::ServiceAccountClaims);
    };
    // `sub` says the same as the kubernetes.io claims (system:serviceaccount:NS:NAME).
    let sub = format!("system:serviceaccount:{namespace}:{name}");
    if claims.get("sub").and_then(Value::as_str) != Some(sub.as_str()) {
        return Err(WorkloadTokenError::ServiceAccountClaims);
    }
    let known = config
        .workload_identity
        .service_accounts
        .get(&service_account_key(&namespace, &name))
        .filter(|known| known.uid == uid)
        .ok_or(WorkloadTokenError::UnknownServiceAccount)?;
    let pod = k8s
        .get("pod")
        .and_then(|pod| Some((text(pod, "name")?, text(pod, "uid")?)));
    Ok((
        known.client_ids.clone(),
        Workload::ServiceAccount {
            namespace,
            name,
            pod,
        },
    ))
}

fn identify_federated(
    config: &IssuerConfig,
    issuer: &str,
    claims: &Value,
) -> Result<(BTreeSet<String>, Workload), WorkloadTokenError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(WorkloadTokenError::UnknownSubject)?;
    let clients: BTreeSet<String> = config
        .workload_identity
        .federated_subjects
        .iter()
        .filter(|s| s.issuer == issuer && s.subject == subject)
        .filter(|s| {
            s.claims
                .iter()
                .all(|(k, v)| claims.get(k).and_then(Value::as_str) == Some(v.as_str()))
        })
        .map(|s| s.client_id.clone())
        .collect();
    if clients.is_empty() {
        return Err(WorkloadTokenError::UnknownSubject);
    }
    Ok((
        clients,
        Workload::Federated {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
        },
    ))
}

/// The one client of `clients` the request acts as: the one `client_id` names, or the only one.
pub(crate) fn choose_client(
    clients: &BTreeSet<String>,
    client_id: Option<&str>,
) -> Result<String, WorkloadTokenError> {
    match client_id {
        Some(id) if clients.contains(id) => Ok(id.to_owned()),
        Some(_) => Err(WorkloadTokenError::OtherClient),
        None if clients.len() == 1 => clients
            .first()
            .cloned()
            .ok_or(WorkloadTokenError::UnknownSubject),
        None => Err(WorkloadTokenError::AmbiguousClient),
    }
}

#[cfg(test)]
mod tests;
