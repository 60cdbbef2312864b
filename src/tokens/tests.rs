//! Tokens checked the way a resource server would: through the published JWKS JSON and an
//! independent JWT library, never through the private key.

use super::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use std::collections::HashMap;

const ISS: &str = "https://issuer.example.com";
const AUD: &str = "https://banking.example.com";
const NOW: u64 = 1_800_000_000;

fn claims() -> AccessTokenClaims<'static> {
    AccessTokenClaims {
        issuer: ISS,
        subject: "billing-worker",
        audience: AUD,
        client_id: "payments.billing-worker",
        scope: "accounts:read accounts:write",
        session: None,
    }
}

/// One key per algorithm, generated once (RSA generation is slow) and cloned per test.
pub(super) fn full_set() -> KeySet {
    static SET: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    SET.get_or_init(|| {
        let mut set = KeySet::new();
        set.ensure(&Algorithm::ALL, NOW).unwrap();
        set
    })
    .clone()
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Ps256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    }
}

/// Verifies `token` against the JWKS as served (JSON text), returning header and claims.
fn verify(
    jwks_json: &str,
    alg: Algorithm,
    token: &str,
) -> Result<(jsonwebtoken::Header, HashMap<String, serde_json::Value>), String> {
    let set: JwkSet = serde_json::from_str(jwks_json).map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.clone().ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(jwt_alg(alg));
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[ISS]);
    // Tokens are minted at a fixed NOW; expiry is checked below, exactly.
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(token, &key, &validation)
        .map_err(|e| e.to_string())?;
    Ok((data.header, data.claims))
}

fn jwks_json(set: &KeySet, now: u64) -> String {
    serde_json::to_string(&set.jwks(now)).unwrap()
}

#[test]
fn every_algorithm_mints_tokens_that_verify_through_the_jwks_with_exact_lifetimes() {
    let set = full_set();
    let minter = set.minter();
    let jwks = jwks_json(&set, NOW);
    for alg in Algorithm::ALL {
        for lifetime in [1, 600, 2_592_000] {
            let minted = minter.mint(alg, &claims(), lifetime, NOW).unwrap();
            let (header, claims) = verify(&jwks, alg, &minted.token)
                .unwrap_or_else(|e| panic!("{alg} lifetime {lifetime}: {e}"));
            let kid = set.signing_key(alg).unwrap().kid();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.alg, jwt_alg(alg));
            assert_eq!(header.kid.as_deref(), Some(kid));
            assert_eq!(minted.kid, kid);
            assert_eq!(claims["iss"], ISS);
            assert_eq!(claims["sub"], "billing-worker");
            assert_eq!(claims["aud"], AUD);
            assert_eq!(claims["client_id"], "payments.billing-worker");
            assert_eq!(claims["scope"], "accounts:read accounts:write");
            assert_eq!(claims["iat"], NOW);
            assert_eq!(claims["exp"], NOW + lifetime);
            assert_eq!(claims["jti"], minted.jti.as_str());
            assert_eq!(claims.len(), 8, "{claims:?}");
            assert_eq!((minted.issued_at, minted.expires_at), (NOW, NOW + lifetime));
        }
    }
}

#[test]
fn the_header_is_exactly_alg_typ_kid() {
    let set = full_set();
    let minted = set
        .minter()
        .mint(Algorithm::Es256, &claims(), 60, NOW)
        .unwrap();
    let header = minted.token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "ES256", "typ": "at+jwt", "kid": minted.kid})
    );
}

#[test]
fn a_token_with_a_tampered_payload_fails_verification() {
    let set = full_set();
    let jwks = jwks_json(&set, NOW);
    for alg in Algorithm::ALL {
        let minted = set.minter().mint(alg, &claims(), 600, NOW).unwrap();
        let other = set.minter().mint(alg, &claims(), 601, NOW).unwrap();
        let mut parts: Vec<&str> = minted.token.split('.').collect();
        parts[1] = other.token.split('.').nth(1).unwrap();
        assert!(verify(&jwks, alg, &parts.join(".")).is_err(), "{alg}");
    }
}

#[test]
fn jti_is_fresh_for_every_token_and_carries_128_bits() {
    let minter = full_set().minter();
    let a = minter.mint(Algorithm::EdDsa, &claims(), 60, NOW).unwrap();
    let b = minter.mint(Algorithm::EdDsa, &claims(), 60, NOW).unwrap();
    assert_ne!(a.jti, b.jti);
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &a.jti).unwrap();
    assert!(raw.len() * 8 >= 128);
}

#[test]
fn minting_for_an_algorithm_without_a_key_fails_with_no_signing_key() {
    let mut set = KeySet::new();
    set.ensure(&[Algorithm::Es256], NOW).unwrap();
    let err = set
        .minter()
        .mint(Algorithm::Rs256, &claims(), 60, NOW)
        .unwrap_err();
    assert!(
        matches!(err, TokenError::NoSigningKey(Algorithm::Rs256)),
        "{err}"
    );
}

#[test]
fn a_lifetime_that_overflows_the_clock_is_an_error_not_a_wrapped_exp() {
    let minter = full_set().minter();
    let err = minter
        .mint(Algorithm::Es256, &claims(), u64::MAX, NOW)
        .unwrap_err();
    assert!(matches!(err, TokenError::Lifetime(_)), "{err}");
}

#[test]
fn jwks_publishes_public_parameters_only_with_use_sig() {
    let set = full_set();
    let value: serde_json::Value = serde_json::from_str(&jwks_json(&set, NOW)).unwrap();
    let keys = value["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys {
        let object = key.as_object().unwrap();
        let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
        names.sort_unstable();
        let expected: &[&str] = match key["kty"].as_str().unwrap() {
            "RSA" => &["alg", "e", "kid", "kty", "n", "use"],
            "EC" => &["alg", "crv", "kid", "kty", "use", "x", "y"],
            "OKP" => &["alg", "crv", "kid", "kty", "use", "x"],
            other => panic!("unexpected kty {other}"),
        };
        assert_eq!(names, expected);
        assert_eq!(key["use"], "sig");
    }
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    assert_eq!(algs, ["RS256", "PS256", "ES256", "EdDSA"]);
}

#[test]
fn a_key_set_round_trips_through_its_serialised_form() {
    let mut set = full_set();
    set.rotate(Algorithm::Rs256, NOW + 10, 1000).unwrap();
    let json = set.to_json().unwrap();
    let back = KeySet::from_json(&json).unwrap();
    assert_eq!(back.jwks(NOW + 10), set.jwks(NOW + 10));
    assert_eq!(back.retired(), set.retired());
    assert_eq!(back.to_json().unwrap(), json, "serialised form is stable");
    // The reloaded keys sign tokens that the original JWKS accepts.
    let jwks = jwks_json(&set, NOW + 10);
    for alg in Algorithm::ALL {
        let minted = back.minter().mint(alg, &claims(), 60, NOW).unwrap();
        verify(&jwks, alg, &minted.token).unwrap();
    }
}

#[test]
fn a_retired_key_stays_in_the_jwks_until_its_deadline_and_then_disappears() {
    let mut set = full_set();
    let old = set
        .minter()
        .mint(Algorithm::Ps256, &claims(), 600, NOW)
        .unwrap();
    set.rotate(Algorithm::Ps256, NOW + 100, 700).unwrap();
    let deadline = NOW + 800;
    assert_ne!(set.signing_key(Algorithm::Ps256).unwrap().kid(), old.kid);

    // Before the deadline the token signed by the old key still verifies.
    let jwks = jwks_json(&set, deadline - 1);
    verify(&jwks, Algorithm::Ps256, &old.token).unwrap();
    assert_eq!(set.jwks(deadline - 1).keys.len(), 5);
    assert!(!set.prune(deadline - 1));

    // From the deadline on it is gone, and pruning forgets it.
    assert!(set.jwks(deadline).keys.iter().all(|k| k.kid != old.kid));
    assert_eq!(set.jwks(deadline).keys.len(), 4);
    let err = verify(&jwks_json(&set, deadline), Algorithm::Ps256, &old.token).unwrap_err();
    assert!(err.contains("kid not in the JWKS"), "{err}");
    assert!(set.prune(deadline));
    assert!(set.retired().is_empty());
}

#[test]
fn new_tokens_use_the_rotated_key() {
    let mut set = full_set();
    set.rotate(Algorithm::Es256, NOW, 60).unwrap();
    let minted = set
        .minter()
        .mint(Algorithm::Es256, &claims(), 60, NOW)
        .unwrap();
    assert_eq!(minted.kid, set.signing_key(Algorithm::Es256).unwrap().kid());
    verify(&jwks_json(&set, NOW), Algorithm::Es256, &minted.token).unwrap();
}

#[test]
fn debug_output_of_key_set_and_minter_names_kids_but_no_private_material() {
    let set = full_set();
    let debug = format!("{set:?} {:?}", set.minter());
    let json = String::from_utf8(set.to_json().unwrap().to_vec()).unwrap();
    let stored: serde_json::Value = serde_json::from_str(&json).unwrap();
    for key in stored["keys"].as_array().unwrap() {
        assert!(debug.contains(key["kid"].as_str().unwrap()));
        let pem = key["privateKeyPem"].as_str().unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for window in body.as_bytes().windows(16).step_by(8) {
            assert!(
                !debug.contains(std::str::from_utf8(window).unwrap()),
                "{debug}"
            );
        }
    }
    assert!(!debug.contains("PRIVATE"));
    let minted = set
        .minter()
        .mint(Algorithm::Es256, &claims(), 60, NOW)
        .unwrap();
    assert!(!format!("{minted:?}").contains(&minted.token));
}

fn corrupt(json: &str, edit: impl FnOnce(&mut serde_json::Value)) -> TokenError {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
    edit(&mut value);
    KeySet::from_json(value.to_string().as_bytes()).unwrap_err()
}

#[test]
fn a_corrupt_key_set_is_rejected_with_an_error_that_names_the_problem() {
    let set = full_set();
    let json = String::from_utf8(set.to_json().unwrap().to_vec()).unwrap();

    let err = corrupt(&json, |v| {
        let pem = v["keys"][2]["privateKeyPem"]
            .as_str()
            .unwrap()
            .replace('a', "b");
        v["keys"][2]["privateKeyPem"] = pem.into();
    });
    let message = err.to_string();
    assert!(
        message.starts_with("key set entry keys[2] (ES256, kid "),
        "{message}"
    );
    assert!(
        message.contains("not a valid ES256 PKCS#8 private key"),
        "{message}"
    );

    let err = corrupt(&json, |v| v["keys"][0]["kid"] = "made-up".into());
    assert!(
        err.to_string().contains("the kid is not the thumbprint"),
        "{err}"
    );

    let err = corrupt(&json, |v| v["keys"][0]["alg"] = "PS256".into());
    assert!(
        matches!(
            err,
            TokenError::DuplicateKey {
                list: "keys",
                alg: Algorithm::Ps256
            }
        ),
        "{err}"
    );

    let err = corrupt(&json, |v| v["version"] = 2.into());
    assert!(matches!(err, TokenError::UnsupportedVersion(2)), "{err}");

    let err = corrupt(&json, |v| v["keys"][1]["privateKeyPem"] = 7.into());
    assert!(matches!(err, TokenError::KeySetFormat(_)), "{err}");

    let err = corrupt(&json, |v| {
        v["keys"][1]["createdAt"] = v["keys"][1]["privateKeyPem"].clone();
    });
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");

    let err = KeySet::from_json(&json.as_bytes()[..json.len() / 2]).unwrap_err();
    assert!(matches!(err, TokenError::KeySetFormat(_)), "{err}");
}

#[test]
fn loading_a_key_file_with_a_damaged_key_fails_and_a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let err = KeySet::load(&path).unwrap_err();
    assert!(matches!(err, TokenError::Io { .. }), "{err}");

    full_set().save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // Cut the middle out of the first PEM body.
    let start = text.find("PRIVATE KEY-----\\n").unwrap() + 40;
    let damaged = format!("{}{}", &text[..start], &text[start + 80..]);
    std::fs::write(&path, damaged).unwrap();
    let err = KeySet::load(&path).unwrap_err().to_string();
    assert!(err.starts_with("key set entry keys[0] (RS256"), "{err}");
}

#[test]
fn load_or_generate_creates_a_private_file_once_and_then_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signing-keys.json");
    let first = KeySet::load_or_generate(&path, &[Algorithm::Es256], NOW).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    let again = KeySet::load_or_generate(&path, &[Algorithm::Es256], NOW + 5).unwrap();
    assert_eq!(again.jwks(NOW), first.jwks(NOW));
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        modified
    );

    let more = KeySet::load_or_generate(&path, &Algorithm::ALL, NOW + 5).unwrap();
    assert_eq!(more.jwks(NOW).keys.len(), 4);
    assert_eq!(
        more.signing_key(Algorithm::Es256).unwrap().kid(),
        first.signing_key(Algorithm::Es256).unwrap().kid()
    );
    assert_eq!(KeySet::load(&path).unwrap().jwks(NOW), more.jwks(NOW));
}

#[test]
fn algorithm_names_parse_and_print_as_jwa_names() {
    for alg in Algorithm::ALL {
        assert_eq!(alg.as_str().parse::<Algorithm>().unwrap(), alg);
        assert_eq!(serde_json::to_value(alg).unwrap(), alg.as_str());
    }
    assert!("HS256".parse::<Algorithm>().is_err());
    assert!("rs256".parse::<Algorithm>().is_err());
}

#[test]
fn a_minter_is_shared_across_threads_without_locks() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Minter>();
    let minter = full_set().minter();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let minter = minter.clone();
            std::thread::spawn(move || {
                minter
                    .mint(Algorithm::EdDsa, &claims(), 60, NOW)
                    .unwrap()
                    .jti
            })
        })
        .collect();
    let jtis: std::collections::HashSet<_> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(jtis.len(), 4);
}

/// A set read from a file someone else wrote keeps the keys that signed here published, for
/// the longest lifetime they signed, so their tokens still verify through its JWKS.
#[test]
fn keys_that_signed_stay_published_in_a_set_written_elsewhere() {
    let mine = full_set();
    let token = mine
        .minter()
        .mint(Algorithm::Es256, &claims(), 600, NOW)
        .expect("mint")
        .token;
    let mut theirs = KeySet::new();
    theirs.ensure(&[Algorithm::Es256], NOW).expect("a key");
    assert!(verify(&jwks_json(&theirs, NOW + 1), Algorithm::Es256, &token).is_err());

    assert!(theirs.keep_published(&mine, NOW + 1, 300));
    assert!(
        !theirs.keep_published(&mine, NOW + 1, 300),
        "once is enough"
    );
    assert!(verify(&jwks_json(&theirs, NOW + 1), Algorithm::Es256, &token).is_ok());
    // Their own key still signs.
    assert_ne!(
        theirs.signing_key(Algorithm::Es256).expect("theirs").kid(),
        mine.signing_key(Algorithm::Es256).expect("mine").kid()
    );
}
