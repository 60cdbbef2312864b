//! End to end against the real API server: `kubectl apply` a policy, and an issuer in cluster
//! mode changes behaviour within a second, with statuses that say so. The controller and the
//! issuers are the real binary as processes; one controller serves every test of this binary
//! (each test has namespaces, audiences and client ids of its own), each test starts its own
//! issuer.

mod fixtures;
mod operator;
mod support;

use kube::Api;
use kube::api::ListParams;
use operator::{
    apply, client_credentials, client_ready, eventually, lifetime, patch, policy_and_client,
    policy_ready, start_controller, start_issuer, token,
};
use std::time::{Duration, Instant};
use tokenwarden::api::ApiTokenPolicy;
use tokenwarden::store::{AnyStore, AuthorizationCode, EmbeddedStore, OpaqueToken, Store as _};

const SECRET: &str = "e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const CONVERGE: Duration = Duration::from_secs(30);

static CONTROLLER: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// The namespace of the one controller of this binary, started on first use.
async fn controller() -> &'static str {
    CONTROLLER
        .get_or_init(|| async {
            let cluster = support::cluster();
            cluster.install_crds();
            let namespace = cluster.new_namespace("tokenwarden-system").await;
            start_controller(cluster, "controller", &namespace).await;
            namespace
        })
        .await
}

async fn issuer_for(ns: &str, data: &std::path::Path) -> operator::Issuer {
    let system = controller().await;
    start_issuer(support::cluster(), &format!("issuer-{ns}"), system, data).await
}

async fn wait_client_ready(ns: &str, name: &str) {
    let cluster = support::cluster();
    eventually(CONVERGE, "the client becomes Ready", || async {
        client_ready(cluster, ns, name)
            .await
            .filter(|(status, _, _)| status == "True")
    })
    .await;
}

#[tokio::test]
async fn a_patched_lifetime_reaches_the_next_token_within_a_second_without_an_issuer_restart() {
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("lifetime").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-worker");
    apply(
        cluster,
        &policy_and_client(&ns, &audience, 600, &client_id, SECRET),
    )
    .expect("apply");
    wait_client_ready(&ns, "worker").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&ns, data.path()).await;

    let first = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
    assert_eq!(lifetime(&first), 600, "{first}");
    assert_eq!(first["expires_in"], 600);
    let (status, reason, current) = policy_ready(cluster, &ns, "api").await.expect("status");
    assert_eq!(
        (status.as_str(), reason.as_str(), current),
        ("True", "Enforced", true)
    );

    patch(
        cluster,
        &ns,
        "atp/api",
        r#"{"spec":{"tokenExpirationSeconds":1200}}"#,
    )
    .expect("patch");
    let patched = Instant::now();
    let next = eventually(
        Duration::from_secs(1),
        "the next token follows the patch",
        || async {
            let answer = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
            (answer["expires_in"] == 1200).then_some(answer)
        },
    )
    .await;
    assert_eq!(lifetime(&next), 1200);
    eprintln!("apply-to-enforced: {:?}", patched.elapsed());
    assert!(cluster.component_running(&issuer.name), "no issuer restart");
    eventually(
        CONVERGE,
        "the status describes the new generation",
        || async {
            policy_ready(cluster, &ns, "api")
                .await
                .filter(|(s, _, current)| s == "True" && *current)
        },
    )
    .await;
}

#[tokio::test]
async fn refresh_after_offline_access_is_revoked_fails_with_invalid_grant() {
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("offline").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-web");
    let data = tempfile::tempdir().expect("data dir");
    {
        let store = AnyStore::Embedded(EmbeddedStore::open(data.path()).expect("store"));
        let now = tokenwarden::controller::reconcile::unix_now();
        let code = AuthorizationCode {
            client_id: client_id.clone(),
            redirect_uri: "https://app.example.com/cb".into(),
            audience: audience.clone(),
            scope: "read offline_access".into(),
            subject: "alice".into(),
            code_challenge: fixtures::CHALLENGE.into(),
            nonce: None,
            expires_at: now + 600,
        };
        store
            .put_code(OpaqueToken::from_presented("the-code").hash(), code)
            .await
            .expect("seed the code");
    }
    apply(
        cluster,
        &format!(
            r#"
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: todo, namespace: {ns}}}
spec:
  audience: {audience}
  tokenExpirationSeconds: 300
  offlineAccess: true
  scopes: [{{name: read}}]
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: web, namespace: {ns}}}
spec:
  clientId: {client_id}
  type: Public
  grantTypes: [authorization_code, refresh_token]
  redirectUris: [https://app.example.com/cb]
  audiences: [{{audience: {audience}, scopes: [read]}}]
"#
        ),
    )
    .expect("apply");
    wait_client_ready(&ns, "web").await;
    let issuer = issuer_for(&ns, data.path()).await;
    let exchanged = token(
        &issuer.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", "the-code"),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", fixtures::VERIFIER),
        ],
    )
    .await;
    let mut refresh_token = exchanged["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("a refresh token while offline access is allowed: {exchanged}"))
        .to_owned();

    patch(
        cluster,
        &ns,
        "atp/todo",
        r#"{"spec":{"offlineAccess":false}}"#,
    )
    .expect("patch");
    // Until the change arrives a refresh succeeds and rotates: follow the rotation.
    let deadline = Instant::now() + Duration::from_secs(1);
    let answer = loop {
        let answer = token(
            &issuer.base,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client_id),
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
            "refresh still allowed a second after the patch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer["error"], "invalid_grant", "{answer}");
    assert!(answer.get("refresh_token").is_none(), "{answer}");
}

#[tokio::test]
async fn a_lifetime_of_2592001_is_refused_by_the_api_server_and_the_issuer_keeps_its_configuration()
{
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("refused").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-worker");
    apply(
        cluster,
        &policy_and_client(&ns, &audience, 600, &client_id, SECRET),
    )
    .expect("apply");
    wait_client_ready(&ns, "worker").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&ns, data.path()).await;
    assert_eq!(
        lifetime(&client_credentials(&issuer.base, &client_id, SECRET, &audience).await),
        600
    );
    let error = apply(
        cluster,
        &policy_and_client(&ns, &audience, 2_592_001, &client_id, SECRET),
    )
    .expect_err("the API server refuses 2592001");
    assert!(error.contains("spec.tokenExpirationSeconds"), "{error}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        lifetime(&client_credentials(&issuer.base, &client_id, SECRET, &audience).await),
        600
    );
    let stored = Api::<ApiTokenPolicy>::namespaced(cluster.client(), &ns)
        .get("api")
        .await
        .expect("policy");
    assert_eq!(stored.spec.token_expiration_seconds, 600);
}

#[tokio::test]
async fn the_newer_of_two_policies_with_one_audience_gets_audience_conflict_and_the_older_keeps_working()
 {
    controller().await;
    let cluster = support::cluster();
    let older_ns = cluster.new_namespace("older").await;
    let newer_ns = cluster.new_namespace("newer").await;
    let audience = format!("https://{older_ns}.shared.example.com");
    let client_id = format!("{older_ns}-worker");
    apply(
        cluster,
        &policy_and_client(&older_ns, &audience, 600, &client_id, SECRET),
    )
    .expect("apply the older");
    wait_client_ready(&older_ns, "worker").await;
    // Creation times have a resolution of one second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apply(
        cluster,
        &format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {{name: api, namespace: {newer_ns}}}\nspec: {{audience: \"{audience}\", tokenExpirationSeconds: 900}}\n"
        ),
    )
    .expect("apply the newer");
    let (status, reason, current) =
        eventually(CONVERGE, "the newer policy gets a status", || async {
            policy_ready(cluster, &newer_ns, "api").await
        })
        .await;
    assert_eq!(
        (status.as_str(), reason.as_str(), current),
        ("False", "AudienceConflict", true)
    );
    let (status, reason, _) = policy_ready(cluster, &older_ns, "api")
        .await
        .expect("older");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Enforced"));

    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&older_ns, data.path()).await;
    assert_eq!(
        lifetime(&client_credentials(&issuer.base, &client_id, SECRET, &audience).await),
        600
    );
}

#[tokio::test]
async fn a_client_without_its_secret_gets_one_generated_that_the_token_endpoint_accepts() {
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("generated").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-job");
    apply(
        cluster,
        &format!(
            r#"
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: api, namespace: {ns}}}
spec: {{audience: "{audience}", tokenExpirationSeconds: 700}}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: job, namespace: {ns}}}
spec:
  clientId: {client_id}
  grantTypes: [client_credentials]
  audiences: [{{audience: "{audience}"}}]
"#
        ),
    )
    .expect("apply");
    wait_client_ready(&ns, "job").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cluster.client(), &ns);
    let secret = secrets
        .get("job-oauth")
        .await
        .expect("the generated Secret");
    let value = String::from_utf8(
        secret.data.as_ref().expect("data")["clientSecret"]
            .0
            .clone(),
    )
    .expect("utf-8");
    assert_eq!(value.len(), 43, "256 bits in base64url");
    assert_eq!(
        secret.metadata.labels.as_ref().expect("labels")["tokenwarden.dev/client-secret"],
        "true"
    );
    let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ApiClient", "job")
    );
    let (_, _, shown_id) = client_ready(cluster, &ns, "job").await.expect("status");
    assert_eq!(shown_id.as_deref(), Some(client_id.as_str()));

    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&ns, data.path()).await;
    let answer = client_credentials(&issuer.base, &client_id, &value, &audience).await;
    assert_eq!(lifetime(&answer), 700, "{answer}");
    let wrong = client_credentials(&issuer.base, &client_id, &"x".repeat(43), &audience).await;
    assert_eq!(wrong["error"], "invalid_client");
}

#[tokio::test]
async fn statuses_are_not_written_again_when_nothing_changes() {
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("quiet").await;
    let audience = format!("https://{ns}.example.com");
    apply(
        cluster,
        &policy_and_client(&ns, &audience, 600, &format!("{ns}-w"), SECRET),
    )
    .expect("apply");
    wait_client_ready(&ns, "worker").await;
    let policies = Api::<ApiTokenPolicy>::namespaced(cluster.client(), &ns);
    let clients = Api::<tokenwarden::api::ApiClient>::namespaced(cluster.client(), &ns);
    let before = (
        policies
            .get("api")
            .await
            .expect("policy")
            .metadata
            .resource_version,
        clients
            .get("worker")
            .await
            .expect("client")
            .metadata
            .resource_version,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        policies
            .get("api")
            .await
            .expect("policy")
            .metadata
            .resource_version,
        clients
            .get("worker")
            .await
            .expect("client")
            .metadata
            .resource_version,
    );
    assert_eq!(before, after, "something wrote while nothing changed");
    // One transition, one Event.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), &ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    let about_policy: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("api"))
        .collect();
    assert_eq!(about_policy.len(), 1, "{about_policy:?}");
    assert_eq!(about_policy[0].reason.as_deref(), Some("Enforced"));
}

#[tokio::test]
async fn the_issuer_follows_the_cluster_with_rbac_on_its_object_names_only() {
    let system = controller().await;
    let cluster = support::cluster();
    let shards: Vec<String> = (1..=32)
        .map(|i| format!("tokenwarden-issuer-config-{i}"))
        .collect();
    apply(
        cluster,
        &format!(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: issuer, namespace: {system}}}
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [tokenwarden-issuer-config, {shards}]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [secrets]
  resourceNames: [tokenwarden-signing-keys]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: issuer, namespace: {system}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: issuer}}
subjects: [{{kind: ServiceAccount, name: issuer, namespace: {system}}}]
"#,
            shards = shards.join(", ")
        ),
    )
    .expect("apply the Role");
    let client = cluster.service_account_client(system, "issuer").await;
    let keys = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
        tokenwarden::issuer::Keys::new(tokenwarden::tokens::KeySet::new(), 0),
    ));
    let policies = tokenwarden::issuer::Policies::default();
    let source = tokenwarden::issuer::cluster::ClusterSource::new(
        client,
        system.to_owned(),
        keys.clone(),
        tokenwarden::issuer::Clock::System,
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(tokenwarden::issuer::ConfigSource::run(
        source,
        policies.clone(),
        async move { stopped.cancelled().await },
    ));
    eventually(CONVERGE, "the configuration and keys load", || async {
        policies.is_loaded().then_some(())
    })
    .await;
    assert!(
        !keys.load().set.jwks(0).keys.is_empty(),
        "signing keys loaded"
    );
    // The same account may not read anything else.
    let other: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(
        cluster.service_account_client(system, "issuer").await,
        system,
    );
    assert!(other.list(&ListParams::default()).await.is_err());
    stop.cancel();
    task.await.expect("the source stops");
}

#[tokio::test]
async fn deleting_a_policy_removes_its_audience_from_the_issuer() {
    controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("deleted").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-worker");
    apply(
        cluster,
        &policy_and_client(&ns, &audience, 600, &client_id, SECRET),
    )
    .expect("apply");
    wait_client_ready(&ns, "worker").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&ns, data.path()).await;
    let first = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
    assert_eq!(lifetime(&first), 600, "{first}");

    cluster
        .run_kubectl(&["delete", "atp/api", "-n", &ns, "--wait=true"])
        .expect("delete the policy");
    let refused = eventually(
        Duration::from_secs(5),
        "the issuer stops issuing tokens for the deleted API",
        || async {
            let answer = client_credentials(&issuer.base, &client_id, SECRET, &audience).await;
            (answer["error"] == "invalid_target").then_some(answer)
        },
    )
    .await;
    assert!(refused.get("access_token").is_none(), "{refused}");
    eventually(CONVERGE, "the client says its audience is gone", || async {
        client_ready(cluster, &ns, "worker")
            .await
            .filter(|(status, reason, _)| status == "False" && reason == "UnknownAudience")
    })
    .await;
}
