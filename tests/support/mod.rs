//! Test control plane: a real etcd and kube-apiserver for the integration tests.
//!
//! Include it with `mod support;` and call [`cluster()`]. The first call in a test binary starts
//! etcd and kube-apiserver on free loopback ports (a generated CA and serving certificate, RBAC,
//! a static token file, service-account signing keys) and waits for `/readyz`; every test of
//! that binary shares it. Give each test a namespace of its own with
//! [`ControlPlane::new_namespace`]. The statics hold no runtime-bound objects: each call hands
//! out a fresh `kube::Client` bound to the caller's runtime.
//!
//! Tools come from the folder in `TOKENWARDEN_TEST_TOOLS`; without it `scripts/test-tools.sh`
//! is run to build or find them. A missing tool is a loud failure, never a skip.
//!
//! This module owns only the processes it starts and the temporary folder it makes. Children
//! are spawned from one long-lived thread with `PR_SET_PDEATHSIG`, so they die with the test
//! process however it ends; at a normal exit (tests passed or failed) an `atexit` hook stops
//! them and removes the folder. `TOKENWARDEN_TEST_KEEP=1` keeps the folder (logs, kubeconfig).
//!
//! [`jaeger`] starts a real OTLP receiver (Jaeger v2) for the trace tests the same way.
//!
//! [`postgres`] starts a throwaway PostgreSQL server for the store tests through the same
//! process machinery (`process`): one per test binary, on first use.
//!
//! What is not here: kube-controller-manager. Nothing garbage-collects owned objects, deletes
//! namespaces' contents, or creates the `default` ServiceAccount — except in the real-node
//! test, where [`node`] adds a node and the rest of the control plane to this one, inside a
//! network namespace of its own.
#![allow(dead_code)] // each test binary uses a part of it

pub mod node;

pub mod jaeger;
mod pki;
pub mod ports;
pub mod postgres;
mod process;
mod tools;

use std::io::BufRead;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// The user in `system:masters`; `client()`, `kubectl()` and `helm()` act as this user.
pub const ADMIN: &str = "admin";
/// Users with no rights beyond what RBAC grants `system:authenticated`, for RBAC tests.
pub const ALICE: &str = "alice";
pub const BOB: &str = "bob";

/// (user, groups) of the static token file; the kubeconfig has a context named after each.
const USERS: [(&str, &str); 3] = [(ADMIN, "system:masters"), (ALICE, ""), (BOB, "")];
const SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const APISERVER: &str = "kube-apiserver";

static CLUSTER: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static UNIQUE: AtomicU32 = AtomicU32::new(0);
static CRDS: OnceLock<Result<(), String>> = OnceLock::new();

/// The control plane of this test binary, started on first use.
///
/// Panics with the reason (and the end of the failing component's log) when it cannot start;
/// every later call panics with the same message instead of trying again.
pub fn cluster() -> &'static ControlPlane {
    match CLUSTER.get_or_init(|| ControlPlane::start_with(None)) {
        Ok(plane) => plane,
        Err(message) => panic!("the test control plane did not start: {message}"),
    }
}

/// The control plane of this test binary, facing a real node ([`node`]): its serving
/// certificate also names the node's `address` and the `kubernetes` Service's `service_ip`,
/// and the API server listens on every address of the (sealed) network namespace and
/// advertises `address`, which the `kubernetes` Service's endpoints point at. The first call
/// of the binary decides: call it before [`cluster()`].
pub fn cluster_facing_node(
    address: &'static str,
    service_ip: &'static str,
) -> &'static ControlPlane {
    match CLUSTER.get_or_init(|| ControlPlane::start_with(Some((address, service_ip)))) {
        Ok(plane) => plane,
        Err(message) => panic!("the test control plane did not start: {message}"),
    }
}

/// A running etcd and kube-apiserver, and what clients need to reach them.
pub struct ControlPlane {
    dir: PathBuf,
    tools: PathBuf,
    url: String,
    ca_der: Vec<u8>,
    kubeconfig: PathBuf,
    apiserver_args: Vec<String>,
    /// Serialises stop/start of the API server.
    apiserver_lock: Mutex<()>,
}

impl ControlPlane {
    /// An admin client (`system:masters`). Call it inside the test's runtime.
    pub fn client(&self) -> Client {
        self.client_as_user(ADMIN)
    }

    /// A client for a user of the static token file ([`ADMIN`], [`ALICE`], [`BOB`]).
    pub fn client_as_user(&self, user: &str) -> Client {
        assert!(
            USERS.iter().any(|(name, _)| *name == user),
            "no user {user:?} in the token file; known: {USERS:?}"
        );
        self.client_with_token_file(&self.dir.join(format!("{user}.token")))
    }

    /// A client that authenticates as ServiceAccount `ns/name` with a token from the
    /// TokenRequest API (valid for an hour). Creates the ServiceAccount when it is missing,
    /// because no controller-manager makes any here.
    pub async fn service_account_client(&self, ns: &str, name: &str) -> Client {
        let file = self.service_account_token_file(ns, name).await;
        self.client_with_token_file(&file)
    }

    /// A kubeconfig whose only context authenticates as ServiceAccount `ns/name` (a
    /// TokenRequest token, valid for an hour), for a component or kubectl that must act as
    /// that identity. Creates the ServiceAccount when it is missing.
    pub async fn service_account_kubeconfig(&self, ns: &str, name: &str) -> PathBuf {
        let file = self.service_account_token_file(ns, name).await;
        let token = std::fs::read_to_string(&file).expect("the token file just written");
        let kubeconfig = file.with_extension("kubeconfig");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: sa\nclusters:\n\
             - name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: sa\n  user:\n    token: {token}\n\
             contexts:\n- name: sa\n  context:\n    cluster: test\n    user: sa\n    namespace: {ns}\n",
            self.url,
            self.dir.join("ca.crt").display()
        );
        write_file(&kubeconfig, &yaml).unwrap_or_else(|message| panic!("{message}"));
        kubeconfig
    }

    /// A token of ServiceAccount `ns/name` from the TokenRequest API, as a projected volume
    /// would hold it: for `audiences` (the API server's own when empty), valid `seconds` (the
    /// API server's minimum is 600). Creates the ServiceAccount when it is missing.
    pub async fn service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[&str],
        seconds: i64,
    ) -> String {
        self.bound_service_account_token(ns, name, audiences, seconds, None)
            .await
    }

    /// [`Self::service_account_token`] bound to the pod `(name, uid)`, as the kubelet asks
    /// for a pod's projected token: the API server accepts it only while that pod exists.
    pub async fn bound_service_account_token(
        &self,
        ns: &str,
        name: &str,
        audiences: &[&str],
        seconds: i64,
        pod: Option<(&str, &str)>,
    ) -> String {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), ns);
        self.ensure_service_account(&accounts, ns, name).await;
        let audiences =
            (!audiences.is_empty()).then(|| audiences.iter().map(|a| (*a).to_owned()).collect());
        let bound_object_ref =
            pod.map(
                |(name, uid)| k8s_openapi::api::authentication::v1::BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name.into()),
                    uid: Some(uid.into()),
                },
            );
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences,
                expiration_seconds: Some(seconds),
                bound_object_ref,
            }),
            ..TokenRequest::default()
        };
        accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|error| panic!("TokenRequest for {ns}/{name}: {error}"))
            .status
            .and_then(|status| status.token)
            .unwrap_or_else(|| panic!("TokenRequest for {ns}/{name} returned no token"))
    }

    /// The PEM (PKCS #8) of the key the API server signs ServiceAccount tokens with
    /// (`--service-account-signing-key-file`), for tests that must sign what the API server
    /// would not issue (an expired token).
    pub fn service_account_signing_key(&self) -> String {
        std::fs::read_to_string(self.dir.join("sa.key")).expect("the harness's sa.key")
    }

    async fn ensure_service_account(&self, accounts: &Api<ServiceAccount>, ns: &str, name: &str) {
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("creating ServiceAccount {ns}/{name}: {error}"),
        }
    }

    async fn service_account_token_file(&self, ns: &str, name: &str) -> PathBuf {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), ns);
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => panic!("creating ServiceAccount {ns}/{name}: {error}"),
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None, // the API server's own audience
                expiration_seconds: Some(3600),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let response = accounts
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|error| panic!("TokenRequest for {ns}/{name}: {error}"));
        let token = response
            .status
            .and_then(|status| status.token)
            .unwrap_or_else(|| panic!("TokenRequest for {ns}/{name} returned no token"));
        let file = self.dir.join(format!(
            "sa-{ns}-{name}-{}.token",
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        write_file(&file, &token).unwrap_or_else(|message| panic!("{message}"));
        file
    }

    /// Creates a namespace named `<prefix>-<n>`, unique in this control plane.
    pub async fn new_namespace(&self, prefix: &str) -> String {
        let mut prefix: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        prefix.truncate(50);
        let name = format!(
            "{}-{}",
            prefix.trim_matches('-'),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(self.client())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|error| panic!("creating namespace {name}: {error}"));
        name
    }

    /// Applies the CRDs of `crds/` (server-side, as users do) once per test binary and waits
    /// until they are Established. Panics with kubectl's output when that fails.
    pub fn install_crds(&self) {
        let outcome = CRDS.get_or_init(|| {
            let crds = crds_dir();
            let crds = crds.to_string_lossy();
            self.run_kubectl(&["apply", "--server-side", "-f", &crds])?;
            self.run_kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                &crds,
            ])
            .map(drop)
        });
        if let Err(message) = outcome {
            panic!("installing the CRDs: {message}");
        }
    }

    /// Runs kubectl as the admin; its stdout on success, else a message with its output.
    pub fn run_kubectl(&self, args: &[&str]) -> Result<String, String> {
        let output = self
            .kubectl()
            .args(args)
            .output()
            .map_err(|e| format!("running kubectl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {} failed ({}):\n{}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// A kubeconfig whose current context is [`ADMIN`]; each user has a context of its name.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The control plane's folder: `ca.crt`, `sa.key` (the service-account signing key),
    /// `kubeconfig`, the logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of the tools (kube-apiserver, etcd, kubectl, helm, kstatus, promtool).
    pub fn tools_dir(&self) -> &Path {
        &self.tools
    }

    /// What kstatus (sigs.k8s.io/cli-utils, as Flux's health checks use it) computes for the
    /// object `kind/name` in `ns` as stored now: `Current`, `InProgress`, `Failed`, ...
    pub fn kstatus(&self, ns: &str, kind: &str, name: &str) -> Result<String, String> {
        let json = self.run_kubectl(&["get", kind, name, "-n", ns, "-o", "json"])?;
        let mut child = Command::new(self.tools.join("kstatus"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running kstatus: {e}"))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        std::io::Write::write_all(&mut stdin, json.as_bytes())
            .map_err(|e| format!("writing to kstatus: {e}"))?;
        drop(stdin);
        let output = child
            .wait_with_output()
            .map_err(|e| format!("running kstatus: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        match stdout.split('\t').next() {
            Some(status) if output.status.success() => Ok(status.to_owned()),
            _ => Err(format!(
                "kstatus failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )),
        }
    }

    /// `kubectl` with this control plane's kubeconfig (admin; `--context alice` for another user).
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.tools.join("kubectl"));
        process::dies_with_spawning_thread(&mut command);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"));
        command
    }

    /// Runs helm as the admin; (stdout, stderr) on success, else a message with its output.
    pub fn run_helm(&self, args: &[&str]) -> Result<(String, String), String> {
        let output = self
            .helm()
            .args(args)
            .output()
            .map_err(|e| format!("running helm: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            Ok((stdout, stderr))
        } else {
            Err(format!(
                "helm {} failed ({}):\n{stdout}{stderr}",
                args.join(" "),
                output.status
            ))
        }
    }

    /// `helm` with this control plane's kubeconfig, and its config, cache and data kept in the
    /// temporary folder rather than the user's home.
    pub fn helm(&self) -> Command {
        let mut command = Command::new(self.tools.join("helm"));
        process::dies_with_spawning_thread(&mut command);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"));
        command
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 30 s); etcd and its data stay.
    ///
    /// Every test of this binary sees the outage: put tests that call this in a test binary
    /// of their own.
    pub async fn stop_apiserver(&'static self) {
        tokio::task::spawn_blocking(move || {
            let _guard = self
                .apiserver_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            assert!(
                process::stop(APISERVER),
                "stop_apiserver: the API server was not running"
            );
        })
        .await
        .expect("stop_apiserver panicked");
    }

    /// Starts the API server again on the same port and etcd, and waits until it is ready.
    pub async fn start_apiserver(&'static self) {
        tokio::task::spawn_blocking(move || {
            let _guard = self
                .apiserver_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            assert!(
                !process::running(APISERVER),
                "start_apiserver: the API server is already running"
            );
            if let Err(message) = self.spawn_apiserver() {
                panic!("start_apiserver: {message}");
            }
        })
        .await
        .expect("start_apiserver panicked");
    }

    /// Starts `program args` as a long-lived child called `name` (unique in this test binary)
    /// with `KUBECONFIG` set to this control plane's admin kubeconfig, as a component of the
    /// system under test would run; returns its log file. It dies with the test process.
    pub fn start_component(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
    ) -> Result<PathBuf, String> {
        self.start_component_as(name, program, args, &self.kubeconfig)
    }

    /// [`Self::start_component`] with another identity's kubeconfig (e.g. one from
    /// [`Self::service_account_kubeconfig`]).
    pub fn start_component_as(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        kubeconfig: &Path,
    ) -> Result<PathBuf, String> {
        self.start_component_with_env(name, program, args, kubeconfig, &[])
    }

    /// [`Self::start_component_as`] with these environment variables set as well.
    pub fn start_component_with_env(
        &self,
        name: &str,
        program: &Path,
        args: &[String],
        kubeconfig: &Path,
        env: &[(&str, &str)],
    ) -> Result<PathBuf, String> {
        let log = self.dir.join(format!("{name}.log"));
        let mut command = Command::new(program);
        command
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info,tokenwarden=debug")
            .envs(env.iter().copied());
        process::spawn_command(name, command, &log)?;
        Ok(log)
    }

    /// Stops the component `name` gracefully (SIGTERM, then SIGKILL after 30 s).
    pub fn stop_component(&self, name: &str) -> bool {
        process::stop(name)
    }

    /// Kills the component `name` with SIGKILL, as a crash would.
    pub fn kill_component(&self, name: &str) -> bool {
        process::kill(name)
    }

    /// The process id of the component `name`, while it runs (benchmarks read `/proc`).
    pub fn component_pid(&self, name: &str) -> Option<u32> {
        process::pid(name).filter(|_| process::running(name))
    }

    /// Whether the component `name` is still running.
    pub fn component_running(&self, name: &str) -> bool {
        process::running(name)
    }

    fn client_with_token_file(&self, token_file: &Path) -> Client {
        let url = self.url.parse().expect("the API server URL parses");
        let mut config = kube::Config::new(url);
        config.root_cert = Some(vec![self.ca_der.clone()]);
        config.auth_info.token_file = Some(token_file.display().to_string());
        Client::try_from(config).expect("a kube client from the test config (inside a runtime?)")
    }

    /// `node`: the node's address and the Service IP of `kubernetes`, see [`cluster_facing_node`].
    fn start_with(node: Option<(&str, &str)>) -> Result<ControlPlane, String> {
        process::register_cleanup();
        let tools = tools::dir()?;
        let dir = process::temporary_folder("tokenwarden-cluster-")?;

        let names: Vec<&str> = node.iter().flat_map(|(a, s)| [*a, *s]).collect();
        let ca_der = pki::write_naming(&dir, &names)?;
        let tokens = USERS
            .iter()
            .map(|_| pki::random_token())
            .collect::<Result<Vec<String>, String>>()?;
        let mut token_csv = String::new();
        for ((user, groups), token) in USERS.iter().zip(&tokens) {
            token_csv.push_str(&format!("{token},{user},{user},\"{groups}\"\n"));
            write_file(&dir.join(format!("{user}.token")), token)?;
        }
        write_file(&dir.join("tokens.csv"), &token_csv)?;

        let etcd_client = ports::free_port();
        let etcd_peer = ports::free_port();
        let port = ports::free_port();
        let url = format!("https://127.0.0.1:{port}");
        let kubeconfig = dir.join("kubeconfig");
        write_file(
            &kubeconfig,
            &kubeconfig_yaml(&url, &dir.join("ca.crt"), &tokens),
        )?;

        let etcd_url = |port: u16| format!("http://127.0.0.1:{port}");
        let etcd_args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={}", etcd_url(etcd_client)),
            format!("--advertise-client-urls={}", etcd_url(etcd_client)),
            format!("--listen-peer-urls={}", etcd_url(etcd_peer)),
            format!("--initial-advertise-peer-urls={}", etcd_url(etcd_peer)),
            format!("--initial-cluster=default={}", etcd_url(etcd_peer)),
            "--unsafe-no-fsync".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        process::spawn(
            "etcd",
            &tools.join("etcd"),
            &etcd_args,
            &dir.join("etcd.log"),
        )?;
        wait_for_port("etcd", etcd_client, &dir.join("etcd.log"))?;

        let file = |name: &str| dir.join(name).display().to_string();
        let (bind, advertise) = match node {
            Some((address, _)) => ("0.0.0.0", address),
            None => ("127.0.0.1", "127.0.0.1"),
        };
        let mut apiserver_args = vec![
            format!("--etcd-servers={}", etcd_url(etcd_client)),
            format!("--bind-address={bind}"),
            format!("--advertise-address={advertise}"),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", file("apiserver.crt")),
            format!("--tls-private-key-file={}", file("apiserver.key")),
            format!("--client-ca-file={}", file("ca.crt")),
            "--authorization-mode=Node,RBAC".to_owned(),
            format!("--token-auth-file={}", file("tokens.csv")),
            format!("--service-account-issuer={SA_ISSUER}"),
            format!("--service-account-key-file={}", file("sa.pub")),
            format!("--service-account-signing-key-file={}", file("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--enable-priority-and-fairness=false".to_owned(),
            // Profiling (`/debug/pprof`, admin only) on request, for benchmarks to see where
            // the API server spends its CPU.
            format!(
                "--profiling={}",
                std::env::var_os("TOKENWARDEN_TEST_APISERVER_PROFILING").is_some()
            ),
        ];
        if node.is_some() {
            // No DNS knows the node's name: `kubectl logs` reaches the kubelet by address.
            apiserver_args.push("--kubelet-preferred-address-types=InternalIP".to_owned());
        }
        let plane = ControlPlane {
            dir,
            tools,
            url,
            ca_der,
            kubeconfig,
            apiserver_args,
            apiserver_lock: Mutex::new(()),
        };
        plane.spawn_apiserver()?;
        Ok(plane)
    }

    fn spawn_apiserver(&self) -> Result<(), String> {
        let log = self.dir.join("kube-apiserver.log");
        process::spawn(
            APISERVER,
            &self.tools.join("kube-apiserver"),
            &self.apiserver_args,
            &log,
        )?;
        self.wait_ready(&log)
    }

    /// Polls `/readyz` as the admin until it answers `ok`, the API server exits, or time runs out.
    fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let outcome = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| format!("a runtime for the readiness check: {e}"))?;
                    runtime.block_on(async {
                        let client = self.client();
                        let mut last = String::from("no answer yet");
                        while Instant::now() < deadline {
                            if !process::running(APISERVER) {
                                return Err(format!("{APISERVER} exited ({last})"));
                            }
                            let request = http::Request::get("/readyz")
                                .body(Vec::new())
                                .map_err(|e| e.to_string())?;
                            match client.request_text(request).await {
                                Ok(body) if body.trim() == "ok" => return Ok(()),
                                Ok(body) => last = body,
                                Err(error) => last = error.to_string(),
                            }
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        Err(format!("not ready after {READY_TIMEOUT:?} ({last})"))
                    })
                })
                .join()
                .unwrap_or_else(|_| Err("the readiness check panicked".to_owned()))
        });
        outcome.map_err(|message| format!("{message}\n{}", log_tail(log)))
    }
}

fn kubeconfig_yaml(url: &str, ca_file: &Path, tokens: &[String]) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: {ADMIN}\nclusters:\n\
         - name: test\n  cluster:\n    server: {url}\n    certificate-authority: {}\n",
        ca_file.display()
    );
    yaml.push_str("users:\n");
    for ((user, _), token) in USERS.iter().zip(tokens) {
        yaml.push_str(&format!("- name: {user}\n  user:\n    token: {token}\n"));
    }
    yaml.push_str("contexts:\n");
    for (user, _) in USERS {
        yaml.push_str(&format!(
            "- name: {user}\n  context:\n    cluster: test\n    user: {user}\n    namespace: default\n"
        ));
    }
    yaml
}

/// The Helm chart of the repository, `charts/tokenwarden`.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/tokenwarden")
}

/// The generated CRD manifests of the repository, `crds/`.
pub fn crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crds")
}

fn wait_for_port(name: &str, port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if !process::running(name) {
            return Err(format!("{name} exited\n{}", log_tail(log)));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{name} did not listen on {port} within {READY_TIMEOUT:?}\n{}",
        log_tail(log)
    ))
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn log_tail(log: &Path) -> String {
    let Ok(file) = std::fs::File::open(log) else {
        return format!("(no log at {})", log.display());
    };
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("--- last lines of {} ---\n{tail}", log.display())
}
