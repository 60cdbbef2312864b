//! End to end against the real API server: `kubectl apply` a policy, and an issuer in cluster
//! mode changes behaviour within a second, with statuses that say so. The controller and the
//! issuers are the real binary as processes; one controller serves every test of this binary
//! (each test has namespaces, audiences and client ids of its own), each test starts its own
//! issuer.

#[path = "support/argocd.rs"]
mod argocd;
mod fixtures;
mod operator;
mod support;
#[path = "controller_e2e/workload_identity.rs"]
mod workload_identity;

use fixtures::client_credentials;
use kube::Api;
use kube::api::ListParams;
use operator::scenario::{self, CONVERGE, Worker};
use operator::{
    apply, client_ready, documents, eventually, lifetime, machine_client_yaml, policy_conditions,
    policy_ready, policy_yaml, start_issuer,
};
use std::time::Duration;

const SECRET: &str = "e2e-secret-0123456789abcdefghijklmnopqrstuvwxyz";

async fn issuer_for(ns: &str, data: &std::path::Path) -> operator::Issuer {
    let system = operator::shared_controller().await;
    start_issuer(support::cluster(), &format!("issuer-{ns}"), system, data).await
}

/// A new namespace `prefix-…` with the policy `api` (600 s) and its Ready client `worker`, and
/// an issuer (with its data dir) that follows the controller.
async fn worker_and_issuer(prefix: &str) -> (Worker, operator::Issuer, tempfile::TempDir) {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let worker =
        scenario::apply_worker(cluster, &cluster.new_namespace(prefix).await, SECRET).await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&worker.ns, data.path()).await;
    (worker, issuer, data)
}

#[tokio::test]
async fn a_patched_lifetime_reaches_the_next_token_within_a_second_without_an_issuer_restart() {
    let (worker, issuer, _data) = worker_and_issuer("lifetime").await;
    let cluster = support::cluster();
    scenario::a_patched_lifetime_reaches_the_next_token(
        cluster,
        &issuer.base,
        &worker,
        Duration::from_secs(1),
    )
    .await;
    assert!(cluster.component_running(&issuer.name), "no issuer restart");
}

#[tokio::test]
async fn refresh_after_offline_access_is_revoked_fails_with_invalid_grant() {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("offline").await;
    let audience = format!("https://{ns}.example.com");
    let web_id = format!("{ns}-web");
    let data = tempfile::tempdir().expect("data dir");
    scenario::seed_code(data.path(), &web_id, &audience, fixtures::CHALLENGE).await;
    apply(
        cluster,
        &scenario::offline_policy_and_web_client(&ns, &audience, &web_id),
    )
    .expect("apply");
    scenario::wait_client_ready(cluster, &ns, "web").await;
    let issuer = issuer_for(&ns, data.path()).await;
    scenario::refresh_fails_once_offline_access_is_revoked(
        cluster,
        &ns,
        &issuer.base,
        &web_id,
        fixtures::VERIFIER,
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn a_lifetime_of_2592001_is_refused_by_the_api_server_and_the_issuer_keeps_600_until_the_next_valid_change()
 {
    let (worker, issuer, _data) = worker_and_issuer("refused").await;
    let cluster = support::cluster();
    assert_eq!(lifetime(&worker.token(&issuer.base).await), 600);
    let with_lifetime = |seconds: i64| {
        operator::policy_and_client(
            &worker.ns,
            &worker.audience,
            seconds,
            &worker.client_id,
            SECRET,
        )
    };
    let error =
        apply(cluster, &with_lifetime(2_592_001)).expect_err("the API server refuses 2592001");
    assert!(error.contains("spec.tokenExpirationSeconds"), "{error}");
    // The next change the API server accepts is the one the issuer takes, and until it
    // arrives the issuer serves what it had: never the refused value, never an error.
    apply(cluster, &with_lifetime(601)).expect("a valid change");
    eventually(CONVERGE, "the issuer takes 601", || async {
        let answer = worker.token(&issuer.base).await;
        let seconds = lifetime(&answer);
        assert!(
            seconds == 600 || seconds == 601,
            "after the refused apply the issuer gave a token of {seconds} s: {answer}"
        );
        (seconds == 601).then_some(())
    })
    .await;
    let (status, reason, current) = eventually(CONVERGE, "the policy's status follows", || async {
        policy_ready(cluster, &worker.ns, "api")
            .await
            .filter(|(_, _, current)| *current)
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str(), current),
        ("True", "Enforced", true)
    );
}

#[tokio::test]
async fn the_newer_of_two_policies_with_one_audience_gets_audience_conflict_and_the_older_keeps_working()
 {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let older =
        scenario::apply_worker(cluster, &cluster.new_namespace("older").await, SECRET).await;
    let newer_ns = cluster.new_namespace("newer").await;
    scenario::a_newer_policy_for_the_audience_gets_audience_conflict(
        cluster,
        &newer_ns,
        "api",
        &older.audience,
    )
    .await;
    let (status, reason, _) = policy_ready(cluster, &older.ns, "api")
        .await
        .expect("older");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Enforced"));
    // The problem is announced once, as a Warning on the newer policy.
    let announced = eventually(CONVERGE, "the conflict's Event", || async {
        Some(events_about(&newer_ns, "api").await).filter(|e| !e.is_empty())
    })
    .await;
    assert_eq!(
        announced,
        [("Warning".to_owned(), "AudienceConflict".to_owned())]
    );

    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&older.ns, data.path()).await;
    assert_eq!(lifetime(&older.token(&issuer.base).await), 600);

    // Stalled while the conflict lasts, which kstatus (Flux's health checks) reads as Failed;
    // gone, by server-side apply, once the older policy is deleted and the newer one enforced.
    let current = |t: &str, s: &str, r: &str| (t.to_owned(), s.to_owned(), r.to_owned(), true);
    let conditions = policy_conditions(cluster, &newer_ns, "api").await;
    assert_eq!(
        conditions.expect("a status"),
        [
            current("Ready", "False", "AudienceConflict"),
            current("Stalled", "True", "AudienceConflict"),
        ]
    );
    let kstatus = |ns: &str| cluster.kstatus(ns, "apitokenpolicy", "api");
    assert_eq!(kstatus(&newer_ns).as_deref(), Ok("Failed"));
    assert_eq!(kstatus(&older.ns).as_deref(), Ok("Current"));
    // And Argo CD, with the health check of docs/gitops.md, on the same stored objects.
    let stored = |ns: &str, kind: &str, name: &str| -> serde_json::Value {
        let json = cluster
            .run_kubectl(&["get", kind, name, "-n", ns, "-o", "json"])
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&json).expect("json")
    };
    let (health, message) = argocd::health(&stored(&newer_ns, "apitokenpolicy", "api"));
    assert_eq!(health, "Degraded");
    assert!(message.contains("already declared"), "{message}");
    let mut older_policy = stored(&older.ns, "apitokenpolicy", "api");
    assert_eq!(argocd::health(&older_policy).0, "Healthy");
    assert_eq!(
        argocd::health(&stored(&older.ns, "apiclient", "worker")).0,
        "Healthy",
        "the same script for ApiClient"
    );
    // An edit the controller has not seen yet: its generation is ahead of the status.
    let generation = older_policy["metadata"]["generation"]
        .as_i64()
        .expect("generation");
    older_policy["metadata"]["generation"] = (generation + 1).into();
    assert_eq!(argocd::health(&older_policy).0, "Progressing");
    cluster
        .run_kubectl(&["delete", "apitokenpolicy", "api", "-n", &older.ns])
        .unwrap_or_else(|e| panic!("{e}"));
    let enforced = eventually(CONVERGE, "the newer policy is enforced", || async {
        let conditions = policy_conditions(cluster, &newer_ns, "api").await?;
        conditions
            .iter()
            .any(|(t, s, _, _)| t == "Ready" && s == "True")
            .then_some(conditions)
    })
    .await;
    assert_eq!(
        enforced,
        [current("Ready", "True", "Enforced")],
        "Stalled is removed"
    );
    assert_eq!(kstatus(&newer_ns).as_deref(), Ok("Current"));
}

#[tokio::test]
async fn a_client_without_its_secret_gets_one_generated_that_the_token_endpoint_accepts() {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("generated").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-job");
    apply(
        cluster,
        &documents(&[
            policy_yaml(&ns, &audience, Some(700)),
            machine_client_yaml(&ns, "job", Some(&client_id), &audience),
        ]),
    )
    .expect("apply");
    scenario::wait_client_ready(cluster, &ns, "job").await;
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
    let managers: Vec<_> = secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.as_deref())
        .collect();
    assert_eq!(managers, ["tokenwarden-controller"], "who wrote it");
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
async fn a_secret_the_api_server_refuses_is_that_clients_problem_and_the_others_carry_on() {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("refused").await;
    let audience = format!("https://{ns}.example.com");
    // A name the API server accepts for the client (253 characters at most) but not for its
    // Secret, which gets "-oauth" appended.
    let long = "l".repeat(250);
    apply(
        cluster,
        &documents(&[
            policy_yaml(&ns, &audience, None),
            machine_client_yaml(&ns, &long, Some(&format!("{ns}-long")), &audience),
            machine_client_yaml(&ns, "job", Some(&format!("{ns}-job")), &audience),
        ]),
    )
    .expect("apply");
    scenario::wait_client_ready(cluster, &ns, "job").await;
    let (status, reason, _) = eventually(CONVERGE, "the long client's verdict", || async {
        client_ready(cluster, &ns, &long)
            .await
            .filter(|(status, _, _)| status == "False")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotCreated")
    );
    let shown = cluster.kstatus(&ns, "apiclient", &long);
    assert_eq!(shown.as_deref(), Ok("Failed"), "Stalled: a person must act");
}

/// (type, reason) of every Event about the object `name` in `ns`.
async fn events_about(ns: &str, name: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(support::cluster().client(), ns);
    events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn the_issuer_follows_the_cluster_with_rbac_on_its_object_names_only() {
    let system = operator::shared_controller().await;
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
    let in_force = tokenwarden::issuer::InForce::default();
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
        in_force.clone(),
        async move { stopped.cancelled().await },
    ));
    eventually(CONVERGE, "the configuration and keys load", || async {
        in_force.is_loaded().then_some(())
    })
    .await;
    assert!(
        !keys.load().set.jwks(0).keys.is_empty(),
        "signing keys loaded"
    );
    // And it follows: a policy applied now, then changed, reaches the source's snapshot.
    let ns = cluster.new_namespace("followed").await;
    let audience = format!("https://{ns}.example.com");
    let followed = |seconds: i64| {
        let in_force = in_force.clone();
        let audience = audience.clone();
        async move {
            eventually(
                CONVERGE,
                &format!("the source follows {audience} at {seconds} s"),
                || async {
                    let snapshot = in_force.current();
                    let api = snapshot
                        .config
                        .apis
                        .values()
                        .find(|api| api.audience == audience)?;
                    (api.token_expiration_seconds == seconds).then_some(())
                },
            )
            .await;
        }
    };
    apply(cluster, &policy_yaml(&ns, &audience, Some(777))).expect("apply a policy");
    followed(777).await;
    apply(cluster, &policy_yaml(&ns, &audience, Some(778))).expect("change the policy");
    followed(778).await;
    // The same account may not read anything else.
    let other: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(
        cluster.service_account_client(system, "issuer").await,
        system,
    );
    let denied = other.list(&ListParams::default()).await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(status)) if status.code == 403),
        "{denied:?}"
    );
    stop.cancel();
    task.await.expect("the source stops");
}

#[tokio::test]
async fn deleting_a_policy_removes_its_audience_from_the_issuer() {
    let (worker, issuer, _data) = worker_and_issuer("deleted").await;
    let cluster = support::cluster();
    let first = worker.token(&issuer.base).await;
    assert_eq!(lifetime(&first), 600, "{first}");

    cluster
        .run_kubectl(&["delete", "atp/api", "-n", &worker.ns, "--wait=true"])
        .expect("delete the policy");
    let refused = eventually(
        Duration::from_secs(5),
        "the issuer stops issuing tokens for the deleted API",
        || async {
            let answer = worker.token(&issuer.base).await;
            (answer["error"] == "invalid_target").then_some(answer)
        },
    )
    .await;
    assert!(refused.get("access_token").is_none(), "{refused}");
    eventually(CONVERGE, "the client says its audience is gone", || async {
        client_ready(cluster, &worker.ns, "worker")
            .await
            .filter(|(status, reason, _)| status == "False" && reason == "UnknownAudience")
    })
    .await;
    // A policy may yet come (the next sync): kstatus waits (InProgress) rather than fail.
    let kstatus = cluster.kstatus(&worker.ns, "apiclient", "worker");
    assert_eq!(kstatus.as_deref(), Ok("InProgress"));
}

/// A user's Secret that changed after the controller read it: adding a missing key to it with
/// the old copy's resourceVersion is a conflict, after which the controller reads the Secret
/// again and adds the key, keeping what the user wrote (it used to retry with the stale copy
/// until that copy aged out, five minutes later, failing every reconcile meanwhile).
#[tokio::test]
async fn a_key_is_added_to_a_secret_that_changed_since_the_controller_read_it() {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("changed-secret").await;
    let audience = format!("https://{ns}.example.com");
    let first_id = format!("{ns}-first");
    apply(
        cluster,
        &operator::policy_and_client(&ns, &audience, 600, &first_id, SECRET),
    )
    .expect("apply");
    scenario::wait_client_ready(cluster, &ns, "worker").await;

    // The user rotates the first client's secret; the controller does not watch unlabelled
    // Secrets, so its copy is now out of date.
    let rotated = "rotated-0123456789abcdefghijklmnopqrstuvwxyz";
    operator::patch(
        cluster,
        &ns,
        "secret/worker-credentials",
        &format!(r#"{{"stringData":{{"clientSecret":"{rotated}"}}}}"#),
    )
    .expect("patch the Secret");
    let second_id = format!("{ns}-second");
    apply(
        cluster,
        &format!(
            r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: second, namespace: {ns}}}
spec:
  clientId: {second_id}
  secretRef: {{name: worker-credentials, key: second}}
  grantTypes: [client_credentials]
  audiences: [{{audience: "{audience}", scopes: ["read"]}}]
"#
        ),
    )
    .expect("apply the second client");
    eventually(CONVERGE, "the second client is Ready", || async {
        client_ready(cluster, &ns, "second")
            .await
            .filter(|(status, _, _)| status == "True")
    })
    .await;

    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cluster.client(), &ns);
    let secret = secrets.get("worker-credentials").await.expect("the Secret");
    let data = secret.data.expect("data");
    assert_eq!(
        data["clientSecret"].0,
        rotated.as_bytes(),
        "the user's value is kept"
    );
    assert_eq!(
        data["second"].0.len(),
        43,
        "a generated secret under the new key"
    );
    let second = String::from_utf8(data["second"].0.clone()).expect("utf-8");
    let data = tempfile::tempdir().expect("data dir");
    let issuer = issuer_for(&ns, data.path()).await;
    let answer = client_credentials(&issuer.base, &second_id, &second, &audience).await;
    assert_eq!(lifetime(&answer), 600, "{answer}");
}

/// An issuer pointed at a namespace where no controller writes (a wrong `--namespace`) is not
/// ready, says that its signing keys are missing, and logs which objects it did not find.
#[tokio::test]
async fn an_issuer_in_a_namespace_without_the_controllers_objects_says_what_is_missing() {
    operator::shared_controller().await;
    let cluster = support::cluster();
    let empty = cluster.new_namespace("no-controller").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = operator::spawn_issuer(cluster, &format!("issuer-{empty}"), &empty, data.path());
    let (status, body) = eventually(CONVERGE, "the issuer answers /readyz", || async {
        let answer = reqwest::get(format!("{}/readyz", issuer.base)).await.ok()?;
        let status = answer.status().as_u16();
        Some((status, answer.text().await.ok()?))
    })
    .await;
    assert_eq!((status, body.as_str()), (503, "no signing keys loaded yet"));
    eventually(CONVERGE, "the log names what is missing", || async {
        let log = std::fs::read_to_string(&issuer.log).ok()?;
        (log.contains("tokenwarden-signing-keys")
            && log.contains("tokenwarden-issuer-config")
            && log.contains("not found"))
        .then_some(())
    })
    .await;
    assert!(support::cluster().stop_component(&issuer.name));
}

/// The value of `series` (a metric name with its labels, as rendered) in `text`.
fn sample(text: &str, series: &str) -> Option<i64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// The issuer's `/metrics` names the controller's revision (the manifest's `data.revision`) of
/// the configuration it serves and when it took it up, so that an alert can compare it with
/// the controller's `config_revision`. The same configuration published again under a new
/// revision counts as taken up, though the issuer's own snapshot does not change. The objects
/// are written here as the controller writes them, so the revisions are the test's own.
#[tokio::test]
async fn the_issuers_metrics_name_the_manifest_revision_it_serves_and_when_it_took_it_up() {
    use axum::body::Body;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use kube::api::{Patch, PatchParams, PostParams};
    use tokenwarden::config_objects;
    use tower::ServiceExt as _;

    let cluster = support::cluster();
    let ns = cluster.new_namespace("synced").await;
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let apply = PatchParams::apply("test").force();
    let publish = |config: tokenwarden::config::IssuerConfig, revision: u64| {
        let (maps, apply) = (maps.clone(), apply.clone());
        let ns = ns.clone();
        async move {
            let encoded = config_objects::encode(&config).expect("encode");
            for index in 1..=encoded.shards.len() {
                let shard = config_objects::shard_object(&ns, &encoded, index).expect("shard");
                let name = config_objects::shard_name(index);
                maps.patch(&name, &apply, &Patch::Apply(&shard))
                    .await
                    .expect("write a shard");
            }
            let manifest = config_objects::manifest_object(&ns, &encoded.manifest(revision));
            maps.patch(
                config_objects::MANIFEST_NAME,
                &apply,
                &Patch::Apply(&manifest),
            )
            .await
            .expect("write the manifest");
        }
    };
    const T: u64 = 1_000_000;
    let mut key_set = tokenwarden::tokens::KeySet::new();
    key_set
        .ensure(&tokenwarden::tokens::Algorithm::ALL, T)
        .expect("keys");
    let keys_secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(config_objects::SIGNING_KEYS_SECRET.into()),
            ..Default::default()
        },
        data: Some(
            [(
                config_objects::SIGNING_KEYS_KEY.to_owned(),
                k8s_openapi::ByteString(key_set.to_json().expect("key JSON").to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(cluster.client(), &ns)
        .create(&PostParams::default(), &keys_secret)
        .await
        .expect("write the signing keys");

    // An issuer in-process: the fixture's state, with the cluster source's snapshot and keys.
    let fixture = fixtures::TestIssuer::standard();
    let standard = fixture.issuer.in_force.current().config.clone();
    let mut issuer = fixture.issuer.clone();
    issuer.in_force = tokenwarden::issuer::InForce::default();
    issuer.keys = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(
        tokenwarden::issuer::Keys::new(tokenwarden::tokens::KeySet::new(), 0),
    ));
    let clock = tokenwarden::issuer::Clock::manual(T);
    let scrape = || {
        let app = tokenwarden::issuer::metrics_router(issuer.clone());
        async move {
            let request = axum::http::Request::get("/metrics")
                .body(Body::empty())
                .expect("request");
            let response = app.oneshot(request).await.expect("infallible");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            String::from_utf8(body.to_vec()).expect("utf-8")
        }
    };
    let before = scrape().await;
    for series in [
        "tokenwarden_issuer_config_manifest_revision",
        "tokenwarden_issuer_config_last_sync_timestamp_seconds",
        "tokenwarden_issuer_ready",
    ] {
        assert_eq!(sample(&before, series), Some(0), "{series} in {before}");
    }
    let source = tokenwarden::issuer::cluster::ClusterSource::new(
        cluster.client(),
        ns.clone(),
        issuer.keys.clone(),
        clock.clone(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(tokenwarden::issuer::ConfigSource::run(
        source,
        issuer.in_force.clone(),
        async move { stopped.cancelled().await },
    ));
    let taken_up = |revision: i64| {
        let scrape = &scrape;
        async move {
            eventually(
                CONVERGE,
                &format!("the issuer takes up revision {revision}"),
                || async {
                    let text = scrape().await;
                    (sample(&text, "tokenwarden_issuer_config_manifest_revision") == Some(revision))
                        .then_some(text)
                },
            )
            .await
        }
    };

    publish(standard.clone(), 7).await;
    let text = taken_up(7).await;
    let at = |text: &str| {
        sample(
            text,
            "tokenwarden_issuer_config_last_sync_timestamp_seconds",
        )
    };
    assert_eq!(at(&text), Some(T as i64), "{text}");
    assert_eq!(sample(&text, "tokenwarden_issuer_ready"), Some(1), "{text}");
    assert_eq!(
        sample(&text, "tokenwarden_issuer_config_revision"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"tokenwarden_issuer_signing_key_created_timestamp_seconds{algorithm="ES256"}"#
        ),
        Some(T as i64),
        "{text}"
    );

    clock.advance(60);
    publish(standard, 8).await;
    let text = taken_up(8).await;
    assert_eq!(at(&text), Some(T as i64 + 60), "{text}");
    assert_eq!(
        sample(&text, "tokenwarden_issuer_config_revision"),
        Some(1),
        "the same configuration: the snapshot stays; {text}"
    );

    clock.advance(60);
    publish(tokenwarden::config::IssuerConfig::default(), 9).await;
    let text = taken_up(9).await;
    assert_eq!(at(&text), Some(T as i64 + 120), "{text}");
    assert_eq!(
        sample(&text, "tokenwarden_issuer_config_revision"),
        Some(2),
        "{text}"
    );
    stop.cancel();
    task.await.expect("the source stops");
}
