//! The operator as users run it, for tests against the test control plane: the real binary as
//! `tokenwarden controller` and `tokenwarden issuer` (cluster mode) processes with the
//! control plane's kubeconfig, `kubectl apply` of YAML, and waiting for statuses. Token
//! requests go through the kit's one client (`fixtures::token`, `fixtures::client_credentials`):
//! binaries that include this module include `fixtures` and `support` too.
#![allow(dead_code)] // each test binary uses a part of it

pub mod chart;
pub mod scenario;

use crate::support::ControlPlane;
use kube::Api;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenwarden::api::{ApiClient, ApiTokenPolicy};

/// How long a component may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

pub use crate::support::ports::free_port;

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
    ready(cluster, spawn_controller(cluster, name, namespace)).await
}

/// Starts the controller without waiting for it.
pub fn spawn_controller(cluster: &ControlPlane, name: &str, namespace: &str) -> Controller {
    spawn_controller_as(cluster, name, namespace, cluster.kubeconfig_path(), &[])
}

/// Starts the controller authenticated by `kubeconfig` (e.g. as the Helm chart's
/// ServiceAccount), with `extra` arguments, without waiting for it (see [`ready`]).
pub fn spawn_controller_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    kubeconfig: &Path,
    extra: &[String],
) -> Controller {
    spawn_controller_with_env(cluster, name, namespace, kubeconfig, extra, &[])
}

/// [`spawn_controller_as`] with these environment variables set (e.g. an OTLP endpoint).
pub fn spawn_controller_with_env(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    kubeconfig: &Path,
    extra: &[String],
    env: &[(&str, &str)],
) -> Controller {
    let args = ["controller", "--namespace", namespace].map(String::from);
    let (base, log) = spawn(cluster, name, kubeconfig, args.into(), extra, env);
    Controller {
        name: name.into(),
        namespace: namespace.into(),
        base,
        log,
    }
}

/// The namespace of the one controller of this test binary (each test keeps to namespaces,
/// audiences and client ids of its own), started on first use.
pub async fn shared_controller() -> &'static str {
    static CONTROLLER: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    CONTROLLER
        .get_or_init(|| async {
            let cluster = crate::support::cluster();
            cluster.install_crds();
            let namespace = cluster.new_namespace("tokenwarden-system").await;
            start_controller(cluster, "controller", &namespace).await;
            namespace
        })
        .await
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
    ready(cluster, spawn_issuer(cluster, name, namespace, data_dir)).await
}

/// Starts the issuer without waiting for it.
pub fn spawn_issuer(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
) -> Issuer {
    let kubeconfig = cluster.kubeconfig_path();
    spawn_issuer_as(cluster, name, namespace, data_dir, kubeconfig, &[])
}

/// [`spawn_issuer`] authenticated by `kubeconfig` (e.g. as the Helm chart's ServiceAccount),
/// with `extra` arguments.
pub fn spawn_issuer_as(
    cluster: &ControlPlane,
    name: &str,
    namespace: &str,
    data_dir: &Path,
    kubeconfig: &Path,
    extra: &[String],
) -> Issuer {
    let args = vec![
        "issuer".into(),
        "--namespace".into(),
        namespace.into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--metrics-listen".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    let (base, log) = spawn(cluster, name, kubeconfig, args, extra, &[]);
    Issuer {
        name: name.into(),
        base,
        log,
    }
}

/// Starts the binary with `args`, `--listen` on a free port and `extra` as the component
/// `name` authenticated by `kubeconfig`, with `env` set; its base URL and its log.
fn spawn(
    cluster: &ControlPlane,
    name: &str,
    kubeconfig: &Path,
    mut args: Vec<String>,
    extra: &[String],
    env: &[(&str, &str)],
) -> (String, PathBuf) {
    let port = free_port();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    args.extend_from_slice(extra);
    let log = cluster
        .start_component_with_env(name, binary(), &args, kubeconfig, env)
        .unwrap_or_else(|e| panic!("starting {name}: {e}"));
    (format!("http://127.0.0.1:{port}"), log)
}

/// A started process of the binary: its component name, base URL and log.
pub trait Component {
    fn process(&self) -> (&str, &str, &Path);
}

impl Component for Controller {
    fn process(&self) -> (&str, &str, &Path) {
        (&self.name, &self.base, &self.log)
    }
}

impl Component for Issuer {
    fn process(&self) -> (&str, &str, &Path) {
        (&self.name, &self.base, &self.log)
    }
}

/// Waits until `component` is ready (for a controller: it has reconciled once; for an issuer:
/// keys and configuration loaded) and gives it back; panics with its log if it exits or takes
/// longer than [`START_TIMEOUT`].
pub async fn ready<C: Component>(cluster: &ControlPlane, component: C) -> C {
    let (name, base, log) = component.process();
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await
            && r.status() == 200
        {
            return component;
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

/// `exp - iat` of the access token in a token response.
pub fn lifetime(response: &crate::fixtures::Reply) -> i64 {
    let jwt = response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {response}"));
    let claims = crate::fixtures::claims(jwt);
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

/// Every condition of a policy: (type, status, reason, observedGeneration == generation).
pub async fn policy_conditions(
    cluster: &ControlPlane,
    ns: &str,
    name: &str,
) -> Option<Vec<(String, String, String, bool)>> {
    let policy = Api::<ApiTokenPolicy>::namespaced(cluster.client(), ns)
        .get_opt(name)
        .await
        .ok()??;
    let generation = policy.metadata.generation;
    let conditions = policy.status?.conditions.into_iter().map(|c| {
        let current = c.observed_generation == generation;
        (c.type_, c.status, c.reason, current)
    });
    Some(conditions.collect())
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

/// The ApiTokenPolicy `api` in `ns` for `audience`: the default lifetime, or `lifetime`.
pub fn policy_yaml(ns: &str, audience: &str, lifetime: Option<i64>) -> String {
    let lifetime = lifetime.map_or(String::new(), |s| format!(", tokenExpirationSeconds: {s}"));
    format!(
        r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: api, namespace: {ns}}}
spec: {{audience: "{audience}"{lifetime}}}
"#
    )
}

/// The confidential ApiClient `name` in `ns` that may use client_credentials for `audience`,
/// with no `secretRef`: the controller generates its Secret `<name>-oauth`. `client_id: None`
/// leaves `spec.clientId` to its default.
pub fn machine_client_yaml(
    ns: &str,
    name: &str,
    client_id: Option<&str>,
    audience: &str,
) -> String {
    let client_id = client_id.map_or(String::new(), |id| format!("  clientId: {id}\n"));
    format!(
        r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: {name}, namespace: {ns}}}
spec:
{client_id}  grantTypes: [client_credentials]
  audiences: [{{audience: "{audience}"}}]
"#
    )
}

/// Several YAML documents as one stream.
pub fn documents(yaml: &[String]) -> String {
    yaml.join("---\n")
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

/// The sum of every sample of the metric `name` (all its label sets) that the component at
/// `base` serves on `/metrics` now, 0 when it has none yet (a family is rendered once it has a
/// series); `None` when `/metrics` does not answer.
pub async fn metric_sum(base: &str, name: &str) -> Option<f64> {
    let response = reqwest::get(format!("{base}/metrics")).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    let mut sum = 0.0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue; // another metric whose name starts with this one
        }
        let value = rest.rsplit(' ').next().expect("a value");
        sum += value
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{name}: {line}: {e}"));
    }
    Some(sum)
}
