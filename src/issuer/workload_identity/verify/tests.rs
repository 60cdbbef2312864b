//! Workload tokens signed here with freshly generated keys, as the API server and a CI
//! system would sign them: each rule refuses what it must, and the right token names its
//! client.

use super::*;
use crate::config::{
    FederatedIssuerConfig, FederatedSubjectConfig, ServiceAccountConfig, WorkloadIdentityConfig,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::collections::BTreeMap;

const NOW: u64 = 1_800_000_000;
const CLUSTER: &str = "https://kubernetes.default.svc.cluster.local";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const TOKENWARDEN: &str = "https://tokens.example.com";
const UID: &str = "5f0c5a4e-2b1d-4d47-9b3a-0e2f0c1d2e3f";

struct Signer {
    key: EncodingKey,
    jwk: Value,
}

fn es256(kid: &str) -> Signer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref();
    Signer {
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn jwks(signers: &[&Signer]) -> JwkSet {
    serde_json::from_value(
        json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}),
    )
    .expect("jwks")
}

fn sign(signer: &Signer, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = signer.jwk["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &signer.key).expect("sign")
}

/// A projected ServiceAccount token's claims, as the API server writes them.
fn sa_claims(namespace: &str, name: &str, uid: &str) -> Value {
    json!({
        "iss": CLUSTER, "aud": [TOKENWARDEN], "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
            "pod": {"name": "worker-7d9f", "uid": "0a1b"},
        },
    })
}

fn with(mut claims: Value, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    change(claims.as_object_mut().expect("object"));
    claims
}

fn config() -> IssuerConfig {
    IssuerConfig {
        workload_identity: WorkloadIdentityConfig {
            service_accounts: BTreeMap::from([(
                "apps/worker".to_owned(),
                ServiceAccountConfig {
                    uid: UID.into(),
                    client_ids: ["apps.worker".to_owned()].into(),
                },
            )]),
            federated_issuers: BTreeMap::from([(
                "github".to_owned(),
                FederatedIssuerConfig {
                    issuer_url: GITHUB.into(),
                    jwks_uri: None,
                    audiences: vec![],
                },
            )]),
            federated_subjects: vec![FederatedSubjectConfig {
                issuer: "github".into(),
                subject: "repo:octo/app:ref:refs/heads/main".into(),
                claims: BTreeMap::from([("repository_owner".into(), "octo".into())]),
                client_id: "ci.deployer".into(),
            }],
        },
        ..IssuerConfig::default()
    }
}

fn audiences() -> Vec<String> {
    vec![TOKENWARDEN.to_owned()]
}

fn cluster_check(token: &str, keys: &JwkSet, now: u64) -> Result<String, WorkloadTokenError> {
    let config = config();
    let origin = origin(&config, Some(CLUSTER), &unverified_issuer(token)?)?;
    let audiences = audiences();
    let expected = Expected {
        issuer: CLUSTER,
        audiences: &audiences,
        now,
    };
    let claims = verify(token, keys, &expected)?;
    let (clients, _) = identify(&config, &origin, &claims)?;
    choose_client(&clients, None)
}

#[test]
fn the_right_service_account_token_names_its_client_and_workload() {
    let key = es256("k1");
    let token = sign(&key, &sa_claims("apps", "worker", UID));
    assert_eq!(
        cluster_check(&token, &jwks(&[&key]), NOW),
        Ok("apps.worker".into())
    );
    let config = config();
    let claims = verify(
        &token,
        &jwks(&[&key]),
        &Expected {
            issuer: CLUSTER,
            audiences: &audiences(),
            now: NOW,
        },
    )
    .expect("valid");
    let (_, workload) = identify(&config, &Origin::Cluster, &claims).expect("known");
    assert_eq!(workload.to_string(), "serviceaccount apps/worker");
}

#[test]
fn a_token_for_another_audience_is_refused() {
    let key = es256("k1");
    let claims = with(sa_claims("apps", "worker", UID), |c| {
        c.insert("aud".into(), json!(["https://kubernetes.default.svc"]));
    });
    assert_eq!(
        cluster_check(&sign(&key, &claims), &jwks(&[&key]), NOW),
        Err(WorkloadTokenError::Audience)
    );
}

#[test]
fn expiry_not_before_and_issued_at_hold_with_thirty_seconds_of_skew() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let token = sign(&key, &sa_claims("apps", "worker", UID));
    // exp = NOW + 3600: still accepted 29 s after, refused at 30 s.
    assert!(cluster_check(&token, &keys, NOW + 3600 + 29).is_ok());
    assert_eq!(
        cluster_check(&token, &keys, NOW + 3600 + 30),
        Err(WorkloadTokenError::Expired)
    );
    // nbf and iat NOW - 10: accepted from NOW - 40, not before.
    assert!(cluster_check(&token, &keys, NOW - 40).is_ok());
    let early = with(sa_claims("apps", "worker", UID), |c| {
        c.remove("iat");
    });
    assert_eq!(
        cluster_check(&sign(&key, &early), &keys, NOW),
        Err(WorkloadTokenError::IssuedAt)
    );
    let future = with(sa_claims("apps", "worker", UID), |c| {
        c.insert("nbf".into(), json!(NOW + 31));
    });
    assert_eq!(
        cluster_check(&sign(&key, &future), &keys, NOW),
        Err(WorkloadTokenError::NotYetValid)
    );
    let no_exp = with(sa_claims("apps", "worker", UID), |c| {
        c.remove("exp");
    });
    assert_eq!(
        cluster_check(&sign(&key, &no_exp), &keys, NOW),
        Err(WorkloadTokenError::Expired)
    );
}

#[test]
fn a_signature_from_a_key_the_issuer_does_not_publish_is_refused() {
    let (published, other) = (es256("k1"), es256("k1"));
    let token = sign(&other, &sa_claims("apps", "worker", UID));
    assert_eq!(
        cluster_check(&token, &jwks(&[&published]), NOW),
        Err(WorkloadTokenError::Signature)
    );
    let unknown_kid = es256("k2");
    let token = sign(&unknown_kid, &sa_claims("apps", "worker", UID));
    let err = cluster_check(&token, &jwks(&[&published]), NOW).expect_err("unknown kid");
    assert_eq!(err, WorkloadTokenError::UnknownKey);
    assert!(err.key_may_be_new());
}

#[test]
fn hmac_and_none_are_refused() {
    let key = es256("k1");
    let claims = sa_claims("apps", "worker", UID);
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"the public key is no secret"),
    )
    .expect("sign");
    assert_eq!(
        cluster_check(&hmac, &jwks(&[&key]), NOW),
        Err(WorkloadTokenError::Algorithm)
    );
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    assert_eq!(
        cluster_check(&none, &jwks(&[&key]), NOW),
        Err(WorkloadTokenError::Malformed)
    );
}

#[test]
fn another_service_account_namespace_or_uid_acts_as_no_client() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    for claims in [
        sa_claims("apps", "other", UID),
        sa_claims("elsewhere", "worker", UID),
        // Deleted and created again: same name, a new UID.
        sa_claims("apps", "worker", "6a1d6b5f-0000-4000-8000-000000000000"),
    ] {
        assert_eq!(
            cluster_check(&sign(&key, &claims), &keys, NOW),
            Err(WorkloadTokenError::UnknownServiceAccount)
        );
    }
    // The kubernetes.io claims and sub must agree.
    let lying = with(sa_claims("apps", "worker", UID), |c| {
        c.insert("sub".into(), json!("system:serviceaccount:apps:other"));
    });
    assert_eq!(
        cluster_check(&sign(&key, &lying), &keys, NOW),
        Err(WorkloadTokenError::ServiceAccountClaims)
    );
}

#[test]
fn an_issuer_that_is_neither_the_cluster_nor_a_federated_issuer_is_unknown() {
    let key = es256("k1");
    let claims = with(sa_claims("apps", "worker", UID), |c| {
        c.insert("iss".into(), json!("https://evil.example.com"));
    });
    assert_eq!(
        cluster_check(&sign(&key, &claims), &jwks(&[&key]), NOW),
        Err(WorkloadTokenError::UnknownIssuer)
    );
}

#[test]
fn a_federated_token_acts_as_the_client_whose_subject_and_claims_match_exactly() {
    let key = es256("gh");
    let keys = jwks(&[&key]);
    let config = config();
    let claims = json!({
        "iss": GITHUB, "aud": TOKENWARDEN, "sub": "repo:octo/app:ref:refs/heads/main",
        "repository_owner": "octo", "iat": NOW, "exp": NOW + 300,
    });
    let run = |claims: &Value| {
        let token = sign(&key, claims);
        let origin = origin(&config, Some(CLUSTER), &unverified_issuer(&token)?)?;
        assert_eq!(
            origin,
            Origin::Federated {
                name: "github".into(),
                issuer_url: GITHUB.into()
            }
        );
        let audiences = audiences();
        let verified = verify(
            &token,
            &keys,
            &Expected {
                issuer: GITHUB,
                audiences: &audiences,
                now: NOW,
            },
        )?;
        let (clients, workload) = identify(&config, &origin, &verified)?;
        Ok::<_, WorkloadTokenError>((choose_client(&clients, Some("ci.deployer"))?, workload))
    };
    let (client, workload) = run(&claims).expect("matches");
    assert_eq!(client, "ci.deployer");
    assert_eq!(
        workload.to_string(),
        "github subject repo:octo/app:ref:refs/heads/main"
    );
    for other in [
        with(claims.clone(), |c| {
            c.insert("sub".into(), json!("repo:octo/app:ref:refs/heads/dev"));
        }),
        with(claims.clone(), |c| {
            c.insert("repository_owner".into(), json!("mallory"));
        }),
        with(claims.clone(), |c| {
            c.remove("repository_owner");
        }),
    ] {
        assert_eq!(
            run(&other).map(|r| r.0),
            Err(WorkloadTokenError::UnknownSubject)
        );
    }
}

#[test]
fn client_id_chooses_among_the_clients_a_workload_may_act_as_and_must_be_one_of_them() {
    let one: BTreeSet<String> = ["a".to_owned()].into();
    let two: BTreeSet<String> = ["a".to_owned(), "b".to_owned()].into();
    assert_eq!(choose_client(&one, None), Ok("a".into()));
    assert_eq!(choose_client(&one, Some("a")), Ok("a".into()));
    assert_eq!(
        choose_client(&one, Some("b")),
        Err(WorkloadTokenError::OtherClient)
    );
    assert_eq!(
        choose_client(&two, None),
        Err(WorkloadTokenError::AmbiguousClient)
    );
    assert_eq!(choose_client(&two, Some("b")), Ok("b".into()));
}

#[test]
fn errors_never_carry_the_token_or_a_claim() {
    let key = es256("k1");
    let token = sign(&key, &sa_claims("apps", "other", UID));
    let err = cluster_check(&token, &jwks(&[&key]), NOW).expect_err("refused");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&token) && !shown.contains("other") && !shown.contains(UID));
}
