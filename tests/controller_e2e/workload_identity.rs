//! Workload identity against the real API server: ServiceAccount tokens minted by its
//! TokenRequest API (as a projected volume holds them), the controller writing the
//! ServiceAccounts' UIDs into the configuration, and an issuer in cluster mode reading the
//! cluster's OIDC discovery and JWKS through the API server.

use crate::fixtures::{self, Reply, claims, unix_now};
use crate::operator::{self, apply, eventually, lifetime, start_issuer};
use crate::support;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::DeleteParams;
use std::time::Duration;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const CONVERGE: Duration = Duration::from_secs(20);

/// A namespace with the policy `api` (480 s) and the ApiClient `worker`, which has no secret
/// and may act as ServiceAccount `worker`; the ServiceAccounts `worker` and `other`; an issuer.
struct Setup {
    ns: String,
    audience: String,
    issuer: operator::Issuer,
    _data: tempfile::TempDir,
}

async fn setup(prefix: &str) -> Setup {
    let system = operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace(prefix).await;
    let audience = format!("https://{ns}.example.com");
    // The ServiceAccounts first, so that the client is Ready at once.
    for name in ["worker", "other"] {
        cluster.service_account_token(&ns, name, &[], 600).await;
    }
    apply(
        cluster,
        &format!(
            r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: api, namespace: {ns}}}
spec: {{audience: "{audience}", tokenExpirationSeconds: 480}}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: worker, namespace: {ns}}}
spec:
  clientId: {ns}-worker
  grantTypes: [client_credentials]
  audiences: [{{audience: "{audience}"}}]
  workloadIdentity: {{serviceAccounts: [worker]}}
"#
        ),
    )
    .expect("apply");
    crate::operator::scenario::wait_client_ready(cluster, &ns, "worker").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = start_issuer(cluster, &format!("issuer-{ns}"), system, data.path()).await;
    Setup {
        ns,
        audience,
        issuer,
        _data: data,
    }
}

impl Setup {
    /// A TokenRequest token of `ns/name` for the issuer's URL (its `iss` and `--issuer-url`).
    async fn token(&self, ns: &str, name: &str) -> String {
        support::cluster()
            .service_account_token(ns, name, &[&self.issuer.base], 600)
            .await
    }

    async fn by_assertion(&self, token: &str) -> Reply {
        fixtures::token(
            &self.issuer.base,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", token),
                ("audience", &self.audience),
            ],
        )
        .await
    }

    async fn by_exchange(&self, token: &str) -> Reply {
        fixtures::token(
            &self.issuer.base,
            &[
                ("grant_type", EXCHANGE),
                ("subject_token_type", JWT),
                ("subject_token", token),
                ("audience", &self.audience),
            ],
        )
        .await
    }

    /// Refused both ways, with the RFC error of each.
    async fn assert_refused(&self, token: &str, what: &str) {
        let reply = self.by_assertion(token).await;
        assert_eq!(
            (reply.status.as_u16(), reply.json["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}, as a client assertion: {reply}"
        );
        let reply = self.by_exchange(token).await;
        assert_eq!(
            (reply.status.as_u16(), reply.json["error"].as_str()),
            (400, Some("invalid_request")),
            "{what}, as a subject token: {reply}"
        );
        assert!(!reply.text.contains(token), "the token is never echoed");
    }
}

/// `token`'s claims changed by `change`, signed with `pem` under the same `kid`.
fn resigned(token: &str, pem: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let header = jsonwebtoken::decode_header(token).expect("header");
    let mut body = claims(token);
    change(&mut body);
    let mut new = Header::new(Algorithm::ES256);
    new.kid = header.kid;
    let base64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .expect("PEM");
    let key = EncodingKey::from_ec_der(&der);
    jsonwebtoken::encode(&new, &body, &key).expect("sign")
}

#[tokio::test]
async fn a_service_account_token_gets_its_clients_token_with_the_declared_lifetime_and_no_secret() {
    let setup = setup("wi-right").await;
    let token = setup.token(&setup.ns, "worker").await;
    for reply in [
        setup.by_assertion(&token).await,
        setup.by_exchange(&token).await,
    ] {
        let body = reply.ok();
        assert_eq!(body["expires_in"], 480);
        assert_eq!(lifetime(&reply), 480);
        assert!(body.get("refresh_token").is_none());
        let access = claims(body["access_token"].as_str().expect("token"));
        assert_eq!(access["client_id"], format!("{}-worker", setup.ns));
        assert_eq!(access["aud"], setup.audience.as_str());
    }
    // No Secret was generated for a client whose workloads are its credentials.
    let secrets = support::cluster()
        .run_kubectl(&["get", "secrets", "-n", &setup.ns, "-o", "name"])
        .expect("kubectl");
    assert!(!secrets.contains("worker-oauth"), "{secrets}");
}

#[tokio::test]
async fn tokens_of_the_wrong_audience_another_service_account_or_namespace_are_refused() {
    let setup = setup("wi-refused").await;
    let cluster = support::cluster();
    let wrong_audience = cluster
        .service_account_token(&setup.ns, "worker", &["https://elsewhere.example.com"], 600)
        .await;
    setup
        .assert_refused(&wrong_audience, "another audience")
        .await;
    let other = setup.token(&setup.ns, "other").await;
    setup.assert_refused(&other, "another ServiceAccount").await;
    let elsewhere = cluster.new_namespace("wi-elsewhere").await;
    let same_name = setup.token(&elsewhere, "worker").await;
    setup
        .assert_refused(&same_name, "the same name in another namespace")
        .await;
}

/// The API server issues no token shorter than 10 minutes, so the expired token is the
/// cluster's own, its `exp` moved into the past and signed again with the cluster's signing
/// key (which the harness owns): only the time makes it wrong.
#[tokio::test]
async fn an_expired_token_and_a_signature_from_a_key_the_cluster_does_not_publish_are_refused() {
    let setup = setup("wi-expired").await;
    let token = setup.token(&setup.ns, "worker").await;
    let cluster_key = support::cluster().service_account_signing_key();
    // Re-signed with the cluster's key, unchanged: accepted (the test's signing is sound).
    let same = resigned(&token, &cluster_key, |_| {});
    setup.by_assertion(&same).await.ok();
    let now = unix_now();
    let expired = resigned(&token, &cluster_key, |c| {
        c["iat"] = (now - 1200).into();
        c["nbf"] = (now - 1200).into();
        c["exp"] = (now - 60).into();
    });
    setup.assert_refused(&expired, "expired a minute ago").await;
    let stranger = rcgen::KeyPair::generate().expect("a key").serialize_pem();
    let forged = resigned(&token, &stranger, |_| {});
    setup
        .assert_refused(&forged, "signed by a key the cluster does not publish")
        .await;
}

#[tokio::test]
async fn a_service_account_deleted_and_created_again_does_not_inherit_access() {
    let setup = setup("wi-recreated").await;
    let old = setup.token(&setup.ns, "worker").await;
    setup.by_assertion(&old).await.ok();
    let accounts: Api<ServiceAccount> = Api::namespaced(support::cluster().client(), &setup.ns);
    accounts
        .delete("worker", &DeleteParams::default())
        .await
        .expect("delete the ServiceAccount");
    eventually(
        CONVERGE,
        "the client says its ServiceAccount is missing",
        || async {
            operator::client_ready(support::cluster(), &setup.ns, "worker")
                .await
                .filter(|(status, reason, _)| {
                    status == "False" && reason == "ServiceAccountNotFound"
                })
        },
    )
    .await;
    eventually(
        CONVERGE,
        "the deleted ServiceAccount's token is refused",
        || async {
            let reply = setup.by_assertion(&old).await;
            (reply.json["error"] == "invalid_client").then_some(())
        },
    )
    .await;
    // Created again under the same name: a new UID. Its tokens work once the controller has
    // seen it; the old one's never again.
    let new = setup.token(&setup.ns, "worker").await;
    eventually(
        CONVERGE,
        "the new ServiceAccount's token is accepted",
        || async {
            let reply = setup.by_assertion(&new).await;
            (reply.status == 200).then_some(())
        },
    )
    .await;
    setup
        .assert_refused(&old, "the old ServiceAccount's token")
        .await;
}

/// A pod's projected token is bound to the pod: once the pod is gone, the API server no longer
/// accepts it, and the issuer, which asks it once per token at most every 15 s (a TokenReview,
/// never per request), refuses it too.
#[tokio::test]
async fn a_token_bound_to_a_pod_that_no_longer_exists_is_refused() {
    use k8s_openapi::api::core::v1::Pod;
    let setup = setup("wi-pod").await;
    let cluster = support::cluster();
    let pods: Api<Pod> = Api::namespaced(cluster.client(), &setup.ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "worker-1"},
        "spec": {
            "serviceAccountName": "worker",
            "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
        },
    }))
    .expect("a pod");
    let pod = pods
        .create(&kube::api::PostParams::default(), &pod)
        .await
        .expect("create the pod");
    let uid = pod.metadata.uid.clone().expect("uid");
    let token = cluster
        .bound_service_account_token(
            &setup.ns,
            "worker",
            &[&setup.issuer.base],
            600,
            Some(("worker-1", &uid)),
        )
        .await;
    assert_eq!(claims(&token)["kubernetes.io"]["pod"]["uid"], uid.as_str());
    setup.by_assertion(&token).await.ok();
    pods.delete("worker-1", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete the pod");
    eventually(
        Duration::from_secs(30),
        "the deleted pod's token is refused",
        || async {
            let reply = setup.by_assertion(&token).await;
            (reply.json["error"] == "invalid_client").then_some(())
        },
    )
    .await;
    setup
        .assert_refused(&token, "the token of a deleted pod")
        .await;
}

/// The same FederatedIssuer and ApiClient YAML as in standalone mode, applied to the cluster: a
/// CI job of node-oidc-provider gets its client's token from an issuer in cluster mode.
#[tokio::test]
async fn a_federated_ci_job_gets_its_clients_token_in_cluster_mode_and_another_job_does_not() {
    use crate::fixtures::upstream::{ci_job_token, start_ci_issuer};
    let system = operator::shared_controller().await;
    let cluster = support::cluster();
    let ns = cluster.new_namespace("wi-federated").await;
    // The issuer's URL, which the CI jobs' tokens name as their audience.
    let issuer_url = format!("https://tokens.{ns}.test");
    let provider = start_ci_issuer(&issuer_url);
    apply(
        cluster,
        &format!(
            r#"apiVersion: tokenwarden.dev/v1alpha1
kind: FederatedIssuer
metadata: {{name: {ns}-ci}}
spec: {{issuerUrl: "{issuer}", namespaces: [{ns}]}}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: api, namespace: {ns}}}
spec: {{audience: "https://{ns}.example.com", tokenExpirationSeconds: 360}}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: deployer, namespace: {ns}}}
spec:
  clientId: {ns}-deployer
  grantTypes: [client_credentials]
  audiences: [{{audience: "https://{ns}.example.com"}}]
  workloadIdentity:
    federated: [{{issuer: {ns}-ci, subject: ci-main}}]
"#,
            issuer = provider.issuer
        ),
    )
    .expect("apply");
    crate::operator::scenario::wait_client_ready(cluster, &ns, "deployer").await;
    let data = tempfile::tempdir().expect("data dir");
    let extra = ["--issuer-url".to_owned(), issuer_url.clone()];
    let issuer = crate::operator::ready(
        cluster,
        crate::operator::spawn_issuer_as(
            cluster,
            &format!("issuer-{ns}"),
            system,
            data.path(),
            cluster.kubeconfig_path(),
            &extra,
        ),
    )
    .await;
    let exchange = |token: String| {
        let base = issuer.base.clone();
        let audience = format!("https://{ns}.example.com");
        async move {
            fixtures::token(
                &base,
                &[
                    ("grant_type", EXCHANGE),
                    ("subject_token_type", JWT),
                    ("subject_token", &token),
                    ("audience", &audience),
                ],
            )
            .await
        }
    };
    let reply = exchange(ci_job_token(&provider, "ci-main").await).await;
    assert_eq!(lifetime(&reply), 360, "{reply}");
    let reply = exchange(ci_job_token(&provider, "ci-other").await).await;
    assert_eq!(reply.json["error"], "invalid_request", "{reply}");
}
