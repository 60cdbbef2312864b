//! The operator as users run it, for tests against the test control plane: the real binary as
//! `tokenwarden controller` and `tokenwarden issuer` (cluster mode) processes with the
//! control plane's kubeconfig, `kubectl apply` of YAML, and token requests over HTTP.
#![allow(dead_code)] // each test binary uses a part of it

pub mod chart;
pub mod scenario;

use crate::support::ControlPlane;
use base64::Engine as _;
use kube::Api;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenwarden::api::{ApiClient, ApiTokenPolicy};

/// How long a component may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tokenwarden"))
}

/// A running controller: its component name, its namespace and its health address.
pub struct Controller {
    pub name: String,
    pub namespace: String,
    pub base: String,
    pub log: PathBuf,
}

/// Starts `tokenwarden controller --namespace <namespace>` as the component `name` and waits
/// until it has reconciled once.
pub async fn start_controller(cluster: &ControlPlane, name: &str, namespace: &str) -> Controller {
    let controller = spawn_controller(cluster, name, namespace);
    wait_ready(cluster, name, &controller.base, &controller.log).await;
    controller
}

/// Starts the controller without waiting for it.
pub fn spawn_controller(cluster: &ControlPlane, name: &str, namespace: &str) -> Controller {
    spawn_controller_as(cluster, name, namespace, cluster.kubeconfig_path(), &[])
}

/// Starts the controller authenticated by `kubeconfig` (e.g. as the Helm chart's
/// ServiceAccount), with `extra` arguments, and waits until it has reconciled once.
pub async fn start_controller_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    kubeconfig: &Path,
    extra: &[String],
) -> Controller {
    let controller = spawn_controller_as(cluster, name, namespace, kubeconfig, extra);
    wait_ready(cluster, name, &controller.base, &controller.log).await;
    controller
}

fn spawn_controller_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    kubeconfig: &Path,
    extra: &[String],
) -> Controller {
    let port = free_port();
    let mut args = vec![
        "controller".into(),
        "--namespace".into(),
        namespace.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
    ];
    args.extend_from_slice(extra);
    let log = cluster
        .start_component_as(name, binary(), &args, kubeconfig)
        .unwrap_or_else(|e| panic!("starting the controller: {e}"));
    Controller {
        name: name.into(),
        namespace: namespace.into(),
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

/// A running issuer in cluster mode.
pub struct Issuer {
    pub name: String,
    pub base: String,
    pub log: PathBuf,
}

/// Starts `tokenwarden issuer` in cluster mode following `namespace`, with its embedded store
/// in `data_dir`, and waits until it is ready (keys and configuration loaded).
pub async fn start_issuer(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
) -> Issuer {
    start_issuer_as(
        cluster,
        name,
        namespace,
        data_dir,
        cluster.kubeconfig_path(),
        &[],
    )
    .await
}

/// [`start_issuer`] authenticated by `kubeconfig` (e.g. as the Helm chart's ServiceAccount),
/// with `extra` arguments.
pub async fn start_issuer_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
    kubeconfig: &Path,
    extra: &[String],
) -> Issuer {
    let issuer = spawn_issuer_as(cluster, name, namespace, data_dir, kubeconfig, extra);
    wait_ready(cluster, name, &issuer.base, &issuer.log).await;
    issuer
}

/// Starts the issuer without waiting for it.
pub fn spawn_issuer(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
) -> Issuer {
    spawn_issuer_as(
        cluster,
        name,
        namespace,
        data_dir,
        cluster.kubeconfig_path(),
        &[],
    )
}

fn spawn_issuer_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
    kubeconfig: &Path,
    extra: &[String],
) -> Issuer {
    let port = free_port();
    let mut args: Vec<String> = vec![
        "issuer".into(),
        "--namespace".into(),
        namespace.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-listen".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    args.extend_from_slice(extra);
    let log = cluster
        .start_component_as(name, binary(), &args, kubeconfig)
        .unwrap_or_else(|e| panic!("starting the issuer: {e}"));
    Issuer {
        name: name.into(),
        base: format!("http://127.0.0.1:{port}"),
        log,
    }
}

async fn wait_ready(cluster: &ControlPlane, name: &str, base: &str, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return;
        }
        assert!(
            cluster.component_running(name),
            "{name} exited:\n{}",
            tail(log)
        );
        assert!(
            Instant::now() < deadline,
            "{name} not ready within {START_TIMEOUT:?}:\n{}",
            tail(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a component's log.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `kubectl apply -f` of `yaml`; kubectl's output or its error message.
pub fn apply(cluster: &ControlPlane, yaml: &str) -> Result<String, String> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write yaml");
    cluster.run_kubectl(&["apply", "-f", &file.path().to_string_lossy()])
}

/// `kubectl patch --type merge`.
pub fn patch(
    cluster: &ControlPlane,
    ns: &str,
    resource: &str,
    patch: &str,
) -> Result<String, String> {
    cluster.run_kubectl(&["patch", "-n", ns, resource, "--type", "merge", "-p", patch])
}

/// POST /oauth/token with a form; the JSON answer.
pub async fn token(base: &str, form: &[(&str, &str)]) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/oauth/token"))
        .form(form)
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json answer")
}

/// A client_credentials token request.
pub async fn client_credentials(
    base: &str,
    id: &str,
    secret: &str,
    audience: &str,
) -> serde_json::Value {
    token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", audience),
        ],
    )
    .await
}

/// The claims of a JWT (not verified: the tests look at lifetimes).
pub fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `exp - iat` of the access token in a token response.
pub fn lifetime(response: &serde_json::Value) -> i64 {
    let jwt = response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {response}"));
    let claims = claims(jwt);
    claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat")
}

/// Polls `check` every 20 ms until it gives `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `Ready` condition of a policy: (status, reason, observedGeneration == generation).
pub async fn policy_ready(
    cluster: &ControlPlane,
    ns: &str,
    name: &str,
) -> Option<(String, String, bool)> {
    let policy = Api::<ApiTokenPolicy>::namespaced(cluster.client(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let status = policy.status?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        status.observed_generation == policy.metadata.generation,
    ))
}

/// The `Ready` condition of a client: (status, reason, status.clientId).
pub async fn client_ready(
    cluster: &ControlPlane,
    ns: &str,
    name: &str,
) -> Option<(String, String, Option<String>)> {
    let client = Api::<ApiClient>::namespaced(cluster.client(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let status = client.status?;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((ready.status.clone(), ready.reason.clone(), status.client_id))
}

/// Creates a namespace with kubectl (for the controller's namespace, made before it starts).
pub fn create_namespace(cluster: &ControlPlane, name: &str) {
    cluster
        .run_kubectl(&["create", "namespace", name])
        .unwrap_or_else(|e| panic!("{e}"));
}

/// A policy and a confidential client with its own Secret, all in `ns`.
pub fn policy_and_client(
    ns: &str,
    audience: &str,
    lifetime: i64,
    client_id: &str,
    secret: &str,
) -> String {
    format!(
        r#"
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: api, namespace: {ns}}}
spec:
  audience: {audience}
  tokenExpirationSeconds: {lifetime}
  signingAlgorithm: ES256
  scopes: [{{name: "read"}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: worker-credentials, namespace: {ns}}}
stringData: {{clientSecret: {secret}}}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: worker, namespace: {ns}}}
spec:
  clientId: {client_id}
  secretRef: {{name: worker-credentials}}
  grantTypes: [client_credentials]
  audiences: [{{audience: {audience}, scopes: ["read"]}}]
"#
    )
}
