//! ID tokens signed here with freshly generated keys, checked against a JWKS of their public
//! halves: each rule refuses what it must, and a valid token passes.

use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const NOW: u64 = 1_800_000_000;
const ISSUER: &str = "https://login.example.com";
const CLIENT: &str = "tokenwarden";
const NONCE: &str = "n-0S6_WzA2Mj";

/// A signing key and its public JWK.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    jwk: serde_json::Value,
}

fn es256(kid: &str) -> Signer {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref();
    Signer {
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn ed25519(kid: &str) -> Signer {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    Signer {
        alg: Algorithm::EdDSA,
        key: EncodingKey::from_ed_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        }),
    }
}

fn jwks(signers: &[&Signer]) -> JwkSet {
    serde_json::from_value(
        json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}),
    )
    .expect("jwks")
}

fn claims() -> serde_json::Value {
    json!({
        "iss": ISSUER, "sub": "user-1234", "aud": CLIENT, "nonce": NONCE,
        "iat": NOW - 5, "exp": NOW + 300, "email": "alice@example.com", "email_verified": true,
    })
}

fn sign(signer: &Signer, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = Header::new(signer.alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &signer.key).expect("sign")
}

fn expected() -> Expected<'static> {
    Expected {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: NONCE,
        subject_claim: "sub",
        now: NOW,
    }
}

fn check(token: &str, keys: &JwkSet) -> Result<String, IdTokenError> {
    validate(token, keys, &expected())
}

fn with(change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> serde_json::Value {
    let mut c = claims();
    change(c.as_object_mut().expect("object"));
    c
}

#[test]
fn a_valid_token_gives_the_subject_for_es256_and_eddsa() {
    let (ec, ed) = (es256("ec-1"), ed25519("ed-1"));
    let keys = jwks(&[&ec, &ed]);
    assert_eq!(
        check(&sign(&ec, Some("ec-1"), &claims()), &keys).as_deref(),
        Ok("user-1234")
    );
    assert_eq!(
        check(&sign(&ed, Some("ed-1"), &claims()), &keys).as_deref(),
        Ok("user-1234")
    );
}

#[test]
fn a_bad_signature_is_refused() {
    let published = es256("k1");
    let impostor = es256("k1");
    let keys = jwks(&[&published]);
    assert_eq!(
        check(&sign(&impostor, Some("k1"), &claims()), &keys),
        Err(IdTokenError::Signature)
    );
    // A valid token with its payload swapped for another's.
    let good = sign(&published, Some("k1"), &claims());
    let other = sign(
        &published,
        Some("k1"),
        &with(|c| {
            c.insert("sub".into(), json!("admin"));
        }),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let other_payload = other.split('.').nth(1).expect("payload");
    let spliced = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    assert_eq!(check(&spliced, &keys), Err(IdTokenError::Signature));
}

#[test]
fn a_wrong_audience_is_refused_and_several_need_azp() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let token = |c| sign(&key, Some("k1"), &c);
    assert_eq!(
        check(
            &token(with(|c| {
                c.insert("aud".into(), json!("another-client"));
            })),
            &keys
        ),
        Err(IdTokenError::Audience)
    );
    assert_eq!(
        check(
            &token(with(|c| {
                c.remove("aud");
            })),
            &keys
        ),
        Err(IdTokenError::Audience)
    );
    let several = json!([CLIENT, "https://api.example.com"]);
    assert_eq!(
        check(
            &token(with(|c| {
                c.insert("aud".into(), several.clone());
            })),
            &keys
        ),
        Err(IdTokenError::AuthorizedParty)
    );
    assert!(
        check(
            &token(with(|c| {
                c.insert("aud".into(), several.clone());
                c.insert("azp".into(), json!(CLIENT));
            })),
            &keys
        )
        .is_ok()
    );
    assert_eq!(
        check(
            &token(with(|c| {
                c.insert("azp".into(), json!("another-client"));
            })),
            &keys
        ),
        Err(IdTokenError::AuthorizedParty)
    );
}

#[test]
fn an_expired_token_is_refused_after_the_allowed_skew() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let expiring = |exp: u64| {
        sign(
            &key,
            Some("k1"),
            &with(|c| {
                c.insert("exp".into(), json!(exp));
            }),
        )
    };
    assert!(check(&expiring(NOW - CLOCK_SKEW_SECS + 1), &keys).is_ok());
    assert_eq!(
        check(&expiring(NOW - CLOCK_SKEW_SECS), &keys),
        Err(IdTokenError::Expired)
    );
    assert_eq!(
        check(&expiring(NOW - 3600), &keys),
        Err(IdTokenError::Expired)
    );
    let no_exp = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.remove("exp");
        }),
    );
    assert_eq!(check(&no_exp, &keys), Err(IdTokenError::Expired));
    let future = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.insert("iat".into(), json!(NOW + CLOCK_SKEW_SECS + 1));
        }),
    );
    assert_eq!(check(&future, &keys), Err(IdTokenError::IssuedAt));
}

#[test]
fn a_wrong_or_missing_nonce_is_refused() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let wrong = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.insert("nonce".into(), json!("replayed-nonce"));
        }),
    );
    assert_eq!(check(&wrong, &keys), Err(IdTokenError::Nonce));
    let missing = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.remove("nonce");
        }),
    );
    assert_eq!(check(&missing, &keys), Err(IdTokenError::Nonce));
}

#[test]
fn a_token_not_valid_yet_is_refused_after_the_allowed_skew() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let nbf = |value: serde_json::Value| {
        sign(
            &key,
            Some("k1"),
            &with(|c| {
                c.insert("nbf".into(), value);
            }),
        )
    };
    assert_eq!(check(&nbf(json!(NOW)), &keys).as_deref(), Ok("user-1234"));
    assert_eq!(
        check(&nbf(json!(NOW + 60)), &keys).as_deref(),
        Ok("user-1234")
    );
    assert_eq!(
        check(&nbf(json!(NOW + 61)), &keys),
        Err(IdTokenError::NotYetValid)
    );
    assert_eq!(
        check(&nbf(json!("soon")), &keys),
        Err(IdTokenError::NotYetValid)
    );
}

#[test]
fn another_issuer_is_refused() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let token = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.insert("iss".into(), json!("https://evil.example.com"));
        }),
    );
    assert_eq!(check(&token, &keys), Err(IdTokenError::Issuer));
}

#[test]
fn hmac_and_none_are_refused_even_with_the_jwk_as_secret() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let hmac = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(),
        &EncodingKey::from_secret(b"the client secret"),
    )
    .expect("sign");
    assert_eq!(check(&hmac, &keys), Err(IdTokenError::Algorithm));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
    // jsonwebtoken has no `none` algorithm: such a header does not even parse.
    assert_eq!(
        check(&format!("{header}.{payload}."), &keys),
        Err(IdTokenError::Malformed)
    );
    assert_eq!(check("not a token", &keys), Err(IdTokenError::Malformed));
}

#[test]
fn the_key_is_found_by_kid_and_must_fit_the_algorithm() {
    let (a, b) = (es256("a"), es256("b"));
    let keys = jwks(&[&a, &b]);
    assert_eq!(
        check(&sign(&a, Some("c"), &claims()), &keys),
        Err(IdTokenError::UnknownKey)
    );
    assert!(IdTokenError::UnknownKey.key_may_be_new());
    // Without a kid, only a single fitting key is used.
    assert_eq!(
        check(&sign(&a, None, &claims()), &keys),
        Err(IdTokenError::UnknownKey)
    );
    assert!(check(&sign(&a, None, &claims()), &jwks(&[&a])).is_ok());
    // An EdDSA header naming an EC key's kid does not verify with it.
    let ed = ed25519("a");
    assert_eq!(
        check(&sign(&ed, Some("a"), &claims()), &keys),
        Err(IdTokenError::UnknownKey)
    );
}

#[test]
fn the_subject_comes_from_the_configured_claim() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    let token = sign(&key, Some("k1"), &claims());
    let by = |claim: &'static str| {
        validate(
            &token,
            &keys,
            &Expected {
                subject_claim: claim,
                ..expected()
            },
        )
    };
    assert_eq!(by("email").as_deref(), Ok("alice@example.com"));
    assert_eq!(by("employee_id"), Err(IdTokenError::Subject));
    let email_subject = Expected {
        subject_claim: "email",
        ..expected()
    };
    for verified in [json!(false), json!("false"), json!(null)] {
        let unverified = sign(
            &key,
            Some("k1"),
            &with(|c| {
                c.insert("email_verified".into(), verified.clone());
            }),
        );
        assert_eq!(
            validate(&unverified, &keys, &email_subject),
            Err(IdTokenError::EmailNotVerified),
            "{verified}"
        );
    }
    let without = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.remove("email_verified");
        }),
    );
    assert_eq!(
        validate(&without, &keys, &email_subject),
        Err(IdTokenError::EmailNotVerified)
    );
    let as_text = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.insert("email_verified".into(), json!("true"));
        }),
    );
    assert_eq!(
        validate(&as_text, &keys, &email_subject).as_deref(),
        Ok("alice@example.com")
    );
    let numeric = sign(
        &key,
        Some("k1"),
        &with(|c| {
            c.insert("employee_id".into(), json!(4711));
        }),
    );
    assert_eq!(
        validate(
            &numeric,
            &keys,
            &Expected {
                subject_claim: "employee_id",
                ..expected()
            }
        )
        .as_deref(),
        Ok("4711")
    );
}

#[test]
fn a_subject_in_the_form_reserved_for_clients_is_refused() {
    let key = es256("k1");
    let keys = jwks(&[&key]);
    for subject in [json!("worker@clients"), json!("@clients")] {
        let token = sign(
            &key,
            Some("k1"),
            &with(|c| {
                c.insert("sub".into(), subject.clone());
            }),
        );
        assert_eq!(
            check(&token, &keys),
            Err(IdTokenError::ReservedSubject),
            "{subject}"
        );
    }
    let error = IdTokenError::ReservedSubject.to_string();
    assert!(
        !error.contains("worker"),
        "the log line names no subject: {error}"
    );
}

#[test]
fn keys_of_unknown_types_beside_the_right_one_do_no_harm() {
    let key = es256("k1");
    let mut document = json!({"keys": [
        {"kty": "AKP", "alg": "ML-DSA-44", "kid": "k1", "pub": "AAAA"},
        {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "k1", "n": "AQAB", "e": "AQAB"},
    ]});
    document["keys"]
        .as_array_mut()
        .expect("keys")
        .push(key.jwk.clone());
    let keys: JwkSet = serde_json::from_value(document).expect("a JWKS with unknown key types");
    assert_eq!(
        check(&sign(&key, Some("k1"), &claims()), &keys).as_deref(),
        Ok("user-1234")
    );
}
