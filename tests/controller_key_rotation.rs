//! Signing-key rotation while tokens are live, against the real API server: the controller
//! (a process, with a rotation schedule of seconds) rotates the signing-keys Secret and an
//! issuer in cluster mode follows it. Over HTTP, as a resource server sees it: a new key is in
//! the JWKS before any token names it and signs no sooner than the lead after the time the
//! controller recorded for it in the Secret, tokens after the promotion name the new key, and
//! a token signed by the old key verifies against the JWKS fetched after the rotation until
//! its `exp` has passed; the old key leaves the JWKS after `exp` plus the clock skew. A test
//! binary of its own, because it runs its own controller with a short schedule.

mod fixtures;
mod operator;
mod support;

use fixtures::{claims, client_credentials, unix_now};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use operator::{apply, eventually, policy_and_client, start_issuer};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const SECRET: &str = "rotation-secret-0123456789abcdefghijklmnopqrstuvwxyz";
/// The schedule: a key every 12 s, published 4 s before it signs, 2 s of skew.
const INTERVAL: u64 = 12;
const LEAD: u64 = 4;
const SKEW: u64 = 2;
/// The policy's token lifetime, so the old key is kept 10 + 2 s after the promotion.
const LIFETIME: u64 = 10;

async fn jwks(base: &str) -> JwkSet {
    reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json")
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys
        .iter()
        .filter_map(|k| k.common.key_id.clone())
        .collect()
}

/// When the controller staged the key `kid` (published it, not signing yet): its `createdAt`
/// in the signing-keys Secret of `system` (see `src/tokens/keyset.rs`).
async fn created_at(cluster: &support::ControlPlane, system: &str, kid: &str) -> u64 {
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(cluster.client(), system);
    let secret = secrets
        .get("tokenwarden-signing-keys")
        .await
        .expect("the signing keys");
    let json = &secret.data.as_ref().expect("data")["keys.json"].0;
    let set: serde_json::Value = serde_json::from_slice(json).expect("the key set's JSON");
    set["keys"]
        .as_array()
        .into_iter()
        .chain(set["next"].as_array())
        .flatten()
        .find(|key| key["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the signing-keys Secret: {set}"))
        ["createdAt"]
        .as_u64()
        .expect("createdAt")
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

/// Verifies `token` against `set` as a resource server would: signature, issuer, audience,
/// and `exp` against the real clock with no leeway.
fn verify(token: &str, set: &JwkSet, issuer: &str, audience: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or(format!("kid {kid} is not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[issuer]);
    validation.leeway = 0;
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn keys_rotate_on_schedule_and_a_token_of_the_old_key_verifies_until_it_expires() {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let ns = cluster.new_namespace("rotation").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-worker");
    apply(
        cluster,
        &policy_and_client(&ns, &audience, LIFETIME as i64, &client_id, SECRET),
    )
    .expect("apply");
    let (interval, lead, skew) = (
        format!("{INTERVAL}s"),
        format!("{LEAD}s"),
        format!("{SKEW}s"),
    );
    let controller = operator::spawn_controller_as(
        cluster,
        "controller",
        &system,
        cluster.kubeconfig_path(),
        &[
            "--key-rotation-interval".into(),
            interval,
            "--key-publish-lead".into(),
            lead,
            "--key-clock-skew".into(),
            skew,
        ],
    );
    operator::ready(cluster, controller).await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = start_issuer(cluster, "issuer", &system, data.path()).await;
    let iss = issuer.base.clone();

    // Watch the rotation as a resource server would: the JWKS and the kid of a fresh token,
    // every 100 ms, until a token names a second key.
    let first = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
    let old_kid = kid_of(first["access_token"].as_str().expect("a token"));
    let mut ever_published: HashSet<String> = HashSet::new();
    let mut last_old_token = first["access_token"].as_str().expect("a token").to_owned();
    let mut published_ahead = false;
    let deadline = Instant::now() + Duration::from_secs(INTERVAL + LEAD + 20);
    let new_kid = loop {
        assert!(
            Instant::now() < deadline,
            "no token with a new kid within {INTERVAL} s + {LEAD} s:\n{}",
            operator::tail(&issuer.log)
        );
        let published = kids(&jwks(&issuer.base).await);
        ever_published.extend(published.iter().cloned());
        let answer = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
        let token = answer["access_token"].as_str().expect("a token").to_owned();
        let kid = kid_of(&token);
        assert!(
            ever_published.contains(&kid),
            "a token names kid {kid}, never seen in the JWKS before"
        );
        if kid == old_kid {
            // A new ES256 key published while tokens still name the old one.
            published_ahead |= published.len() > 4;
            last_old_token = token;
        } else {
            // The lead, against the time the controller records for the key in the Secret
            // when it stages (publishes) it: the first token it signs is issued no sooner
            // than LEAD seconds after that.
            let staged = created_at(cluster, &system, &kid).await;
            let iat = claims(&token)["iat"].as_u64().expect("iat");
            assert!(
                iat >= staged + LEAD,
                "the new key signed at {iat}, {} s after it was staged at {staged}: \
                 less than the {LEAD} s lead",
                iat.saturating_sub(staged)
            );
            break kid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        published_ahead,
        "no JWKS showed the next keys while tokens still named the old key"
    );

    // From the promotion on, every token names the new key.
    for _ in 0..10 {
        let answer = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
        assert_eq!(
            kid_of(answer["access_token"].as_str().expect("a token")),
            new_kid
        );
    }

    // The last token of the old key verifies against the JWKS fetched after the rotation
    // until its exp; after exp plus the skew the old key is gone from the JWKS.
    let exp = claims(&last_old_token)["exp"].as_u64().expect("exp");
    assert!(exp > unix_now(), "the old key's last token is still live");
    while unix_now() + 1 < exp {
        let set = jwks(&issuer.base).await;
        verify(&last_old_token, &set, &iss, &audience)
            .unwrap_or_else(|e| panic!("a live token of the retired key: {e}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eventually(
        Duration::from_secs(LIFETIME + SKEW + 10),
        "the retired key leaves the JWKS after exp + skew",
        || async {
            let set = jwks(&issuer.base).await;
            (!kids(&set).contains(&old_kid)).then(|| {
                assert!(
                    unix_now() >= exp + SKEW,
                    "the retired key was removed before exp + skew"
                );
            })
        },
    )
    .await;
    assert!(
        cluster.component_running(&issuer.name),
        "the issuer followed the keys without a restart"
    );
}
