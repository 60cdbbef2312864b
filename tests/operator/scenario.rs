//! The steps of the end-to-end scenario, shared by `tests/controller_e2e.rs` (one step a test,
//! as the cluster's administrator) and `tests/helm_release.rs` (every step in one test, as the
//! Helm chart's ServiceAccounts): the objects each step applies, what it changes and what the
//! issuer must answer afterwards. The callers start the controller and the issuer.

use super::{apply, client_ready, eventually, lifetime, patch, policy_and_client, policy_ready};
use crate::fixtures::{Reply, client_credentials, code_of_alice, token, unix_now};
use crate::support::ControlPlane;
use std::path::Path;
use std::time::{Duration, Instant};
use tokenwarden::store::{AnyStore, AuthorizationCode, EmbeddedStore};

/// How long a status may take to follow a change.
pub const CONVERGE: Duration = Duration::from_secs(30);

/// Where the public client `web` sends its users back to.
const WEB_CB: &str = "https://app.example.com/cb";
/// The authorization code [`seed_code`] stores.
const CODE: &str = "the-code";

/// The policy `api` (600 s) and the confidential client `worker` of [`policy_and_client`] in
/// one namespace, with their audience and client id.
pub struct Worker {
    pub ns: String,
    pub audience: String,
    pub client_id: String,
    pub secret: String,
}

impl Worker {
    /// The client_credentials answer for `worker`.
    pub async fn token(&self, base: &str) -> Reply {
        client_credentials(base, &self.client_id, &self.secret, &self.audience).await
    }
}

/// Applies the policy `api` (600 s) and the client `worker` with `secret` in `ns` and waits
/// until the client is Ready.
pub async fn apply_worker(cluster: &ControlPlane, ns: &str, secret: &str) -> Worker {
    let worker = Worker {
        ns: ns.to_owned(),
        audience: format!("https://{ns}.example.com"),
        client_id: format!("{ns}-worker"),
        secret: secret.to_owned(),
    };
    apply(
        cluster,
        &policy_and_client(ns, &worker.audience, 600, &worker.client_id, secret),
    )
    .expect("apply the policy and client");
    wait_client_ready(cluster, ns, "worker").await;
    worker
}

/// Waits until the client `name` in `ns` has the condition Ready=True.
pub async fn wait_client_ready(cluster: &ControlPlane, ns: &str, name: &str) {
    eventually(
        CONVERGE,
        &format!("the client {name} becomes Ready"),
        || async {
            client_ready(cluster, ns, name)
                .await
                .filter(|(status, _, _)| status == "True")
        },
    )
    .await;
}

/// The policy `todo` (300 s, offline access) for `audience` and the public client `web` with
/// `web_id` that may exchange codes and refresh for it, in `ns`.
pub fn offline_policy_and_web_client(ns: &str, audience: &str, web_id: &str) -> String {
    format!(
        r#"
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: todo, namespace: {ns}}}
spec:
  audience: "{audience}"
  tokenExpirationSeconds: 300
  offlineAccess: true
  scopes: [{{name: read}}]
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: web, namespace: {ns}}}
spec:
  clientId: {web_id}
  type: Public
  grantTypes: [authorization_code, refresh_token]
  redirectUris: [{WEB_CB}]
  audiences: [{{audience: "{audience}", scopes: [read]}}]
"#
    )
}

/// Stores an authorization code for `web_id` and `audience` (scope `read offline_access`, PKCE
/// `challenge`) in the embedded store in `data_dir`, as a sign-in would, before the issuer
/// opens it.
pub async fn seed_code(data_dir: &Path, web_id: &str, audience: &str, challenge: &str) {
    let store = AnyStore::Embedded(EmbeddedStore::open(data_dir).expect("store"));
    let expires_at = unix_now() + 600;
    let code = AuthorizationCode {
        code_challenge: challenge.into(),
        ..code_of_alice(web_id, WEB_CB, audience, "read offline_access", expires_at)
    };
    crate::fixtures::seed_code(&store, CODE, code).await;
}

/// Exchanges the code of [`seed_code`] with the PKCE `verifier`; the refresh token, which the
/// policy's offline access must grant.
pub async fn exchange_the_code(base: &str, web_id: &str, verifier: &str) -> String {
    let exchanged = token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", web_id),
            ("code", CODE),
            ("redirect_uri", WEB_CB),
            ("code_verifier", verifier),
        ],
    )
    .await;
    exchanged["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh token while offline access is allowed: {exchanged}"))
        .to_owned()
}

/// Exchanges the code of [`seed_code`] at `base` for a refresh token, then patches
/// `offlineAccess: false` into the policy `todo` in `ns`; until the change arrives a refresh by
/// `web_id` succeeds and rotates (followed), and within `within` it fails with `invalid_grant`
/// and no refresh token.
pub async fn refresh_fails_once_offline_access_is_revoked(
    cluster: &ControlPlane,
    ns: &str,
    base: &str,
    web_id: &str,
    verifier: &str,
    within: Duration,
) {
    let mut refresh_token = exchange_the_code(base, web_id, verifier).await;
    patch(
        cluster,
        ns,
        "atp/todo",
        r#"{"spec":{"offlineAccess":false}}"#,
    )
    .expect("patch");
    let deadline = Instant::now() + within;
    let answer = loop {
        let answer = token(
            base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", web_id),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
        match answer["refresh_token"].as_str() {
            Some(rotated) if answer["error"].is_null() => refresh_token = rotated.to_owned(),
            _ => break answer,
        }
        assert!(
            Instant::now() < deadline,
            "refresh still allowed {within:?} after the patch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer["error"], "invalid_grant", "{answer}");
    assert!(answer.get("refresh_token").is_none(), "{answer}");
}

/// The policy of `worker` is Enforced at its generation; a patch of its lifetime to 1200 s
/// reaches the next token from `base` within `within`, and then the status describes the new
/// generation. The first token (600 s) is returned.
pub async fn a_patched_lifetime_reaches_the_next_token(
    cluster: &ControlPlane,
    base: &str,
    worker: &Worker,
    within: Duration,
) -> Reply {
    let first = worker.token(base).await;
    assert_eq!(lifetime(&first), 600, "{first}");
    assert_eq!(first["expires_in"], 600);
    let (status, reason, current) = policy_ready(cluster, &worker.ns, "api")
        .await
        .expect("status");
    assert_eq!(
        (status.as_str(), reason.as_str(), current),
        ("True", "Enforced", true)
    );

    patch(
        cluster,
        &worker.ns,
        "atp/api",
        r#"{"spec":{"tokenExpirationSeconds":1200}}"#,
    )
    .expect("patch");
    let patched = Instant::now();
    let next = eventually(within, "the next token follows the patch", || async {
        let answer = worker.token(base).await;
        (answer["expires_in"] == 1200).then_some(answer)
    })
    .await;
    assert_eq!(lifetime(&next), 1200);
    eprintln!("apply-to-enforced: {:?}", patched.elapsed());
    eventually(
        CONVERGE,
        "the status describes the new generation",
        || async {
            policy_ready(cluster, &worker.ns, "api")
                .await
                .filter(|(s, _, current)| s == "True" && *current)
        },
    )
    .await;
    first
}

/// A second policy `name` in `ns` for `audience`, created after the one that has it (a second
/// later: creation times have a resolution of one second), gets Ready=False AudienceConflict.
pub async fn a_newer_policy_for_the_audience_gets_audience_conflict(
    cluster: &ControlPlane,
    ns: &str,
    name: &str,
    audience: &str,
) {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply(
        cluster,
        &format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{audience: \"{audience}\", tokenExpirationSeconds: 900}}\n"
        ),
    )
    .expect("apply the newer policy");
    let (status, reason, current) =
        eventually(CONVERGE, "the newer policy gets a status", || async {
            policy_ready(cluster, ns, name).await
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str(), current),
        ("False", "AudienceConflict", true)
    );
}
