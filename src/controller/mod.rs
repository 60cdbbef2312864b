//! `tokenwarden controller`: the operator. It follows every ApiTokenPolicy, ApiClient and
//! AudienceGuardrail in the cluster, computes the issuer's configuration with the same pure function standalone
//! mode uses ([`crate::config::build`]), writes it into ConfigMaps in `--namespace`
//! ([`crate::config_objects`]) and tells every object whether it is enforced.
//!
//! - [`reconcile`]: one global reconcile, the dispatcher;
//! - [`secrets`]: client Secrets, found or created; [`keys`]: the signing-keys Secret;
//! - [`fit`]: the configuration within what the issuer reads, the newest objects left out
//!   when it is not; [`publish`]: the configuration objects, written with server-side apply;
//! - [`status`]: what a status should say, and whether it must be written (pure);
//! - [`leader`]: leader election, so that only one replica reconciles;
//! - [`pacing`]: when to reconcile (debounce, backoff, resync, keys due, leadership), a pure
//!   state machine over the time; `reconcile_loop`: the loop that waits for it;
//! - [`changes`]: which watch events call for a reconcile;
//! - [`metrics`]: Prometheus metrics.
//!
//! Any change seen by a watch ([`changes`]: not the status writes) triggers, after a short
//! debounce, one reconcile of everything:
//! the configuration is one document, and conflicts (audiences, client ids) are global. A
//! failed reconcile is retried with a growing, capped backoff ([`pacing`]); a bad spec is not a failure
//! but a status. The controller owns its configuration objects, the signing keys, the Secrets
//! it generated and the status fields it writes; it changes nothing else.

pub(crate) mod changes;
pub(crate) mod fit;
pub(crate) mod keys;
pub(crate) mod leader;
pub mod metrics;
pub(crate) mod pacing;
pub(crate) mod publish;
pub(crate) mod reconcile;
mod reconcile_loop;
pub(crate) mod secrets;
pub(crate) mod status;

use crate::api::{ApiClient, ApiTokenPolicy, AudienceGuardrail, FederatedIssuer};
use crate::config_objects::{self, MANIFEST_NAME, ObjectsError};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};
use metrics::Metrics;
use reconcile::Reconciler;
use secrets::{CLIENT_SECRET_LABEL, ClientSecrets, SecretScope};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The field manager of every server-side apply the controller makes.
pub(crate) const FIELD_MANAGER: &str = "tokenwarden-controller";

/// Create and replace under [`FIELD_MANAGER`], as every server-side apply is, so
/// `managedFields` names the controller for everything it writes.
pub(crate) fn post_params() -> kube::api::PostParams {
    kube::api::PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..kube::api::PostParams::default()
    }
}
/// How long the first reconcile waits for the watches of labelled client Secrets, and for those
/// of ServiceAccounts and FederatedIssuers.
const SECRET_WATCH_WAIT: Duration = Duration::from_secs(10);

/// Options of `tokenwarden controller`. Each also reads `TOKENWARDEN_<FLAG>`.
#[derive(Clone, Debug, clap::Args)]
pub struct ControllerOptions {
    /// Namespace of the issuer's configuration objects and signing keys. Default: the pod's
    /// namespace, else `tokenwarden-system`.
    #[arg(long, env = "TOKENWARDEN_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "TOKENWARDEN_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Take part in leader election (a Lease in `--namespace`) so that only one replica
    /// reconciles. Turn it off only when exactly one replica runs.
    #[arg(
        long,
        env = "TOKENWARDEN_LEADER_ELECTION",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_name = "BOOL"
    )]
    pub leader_election: bool,
    /// Namespaces whose client Secrets the controller may read, watch, create and complete
    /// (comma-separated). Not set (or `*`): every namespace, which needs cluster-wide rights on
    /// Secrets. Empty (`--secret-namespaces=`): none, so only Public clients work. A
    /// Confidential ApiClient of any other namespace is not loaded and gets `Ready=False` with
    /// reason `SecretNotAccessible`.
    #[arg(
        long,
        env = "TOKENWARDEN_SECRET_NAMESPACES",
        value_delimiter = ',',
        value_name = "NS,..."
    )]
    pub secret_namespaces: Option<Vec<String>>,
    #[command(flatten)]
    pub rotation: crate::tokens::rotation::RotationOptions,
}

/// Everything that stops the controller or fails a reconcile. Messages name the cause and
/// never carry secret values.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControllerError {
    #[error(
        "cannot find the cluster (KUBECONFIG, ~/.kube/config or the pod's service account): {0}"
    )]
    Connect(#[source] kube::Error),
    #[error("Kubernetes API: {0}")]
    Api(#[source] kube::Error),
    #[error("Kubernetes API: no answer within {} s", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    #[error("signing keys: {0}")]
    SigningKeys(String),
    #[error("{0}")]
    Options(String),
    #[error("the system random number generator failed")]
    Random,
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Run the controller until `shutdown` is cancelled.
pub(crate) async fn run(
    options: ControllerOptions,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let namespace = config_objects::resolve_namespace(options.namespace);
    let schedule = options
        .rotation
        .schedule()
        .map_err(ControllerError::Options)?;
    let client = Client::try_default()
        .await
        .map_err(ControllerError::Connect)?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (leading, election) = elect(options.leader_election, &client, &namespace, &shutdown);
    let server = serve_probes(options.listen, &metrics, &ready, &shutdown).await?;
    tracing::info!(namespace = %namespace, listen = %options.listen, "controller started");

    let trigger = Arc::new(Notify::new());
    let secret_scope = SecretScope::new(options.secret_namespaces.as_deref());
    let caches = Caches::follow(&client, &namespace, &secret_scope, &trigger);
    tokio::select! {
        () = shutdown.cancelled() => return finish(server, election).await,
        () = caches.wait_until_ready() => {}
    }

    let reporter = Reporter {
        controller: FIELD_MANAGER.to_owned(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let mut reconciler = Reconciler {
        own_manifest: caches.own_manifest,
        recorder: Recorder::new(client.clone(), reporter),
        secrets: ClientSecrets::new(client.clone(), secret_scope, caches.labelled),
        keys: keys::SigningKeys::new(
            Api::namespaced(client.clone(), &namespace),
            namespace.clone(),
            schedule,
        ),
        client,
        namespace,
        policies: caches.policies,
        clients: caches.clients,
        guardrails: caches.guardrails,
        federated_issuers: caches.federated_issuers,
        service_accounts: caches.service_accounts,
        metrics: metrics.clone(),
    };
    let signals = reconcile_loop::Signals {
        trigger: &trigger,
        leading,
        shutdown: &shutdown,
        metrics: &metrics,
        ready: &ready,
    };
    reconcile_loop::run_loop(&mut reconciler, pacing::Clock::System, signals).await;
    finish(server, election).await
}

/// Take part in leader election when `--leader-election` is on: whether this replica leads
/// (a closed channel: always, without an election), and the election task, awaited at
/// shutdown so that the leader releases the Lease before the process ends.
fn elect(
    election: bool,
    client: &Client,
    namespace: &str,
    shutdown: &CancellationToken,
) -> (
    tokio::sync::watch::Receiver<bool>,
    Option<tokio::task::JoinHandle<()>>,
) {
    let (leading_tx, leading) = tokio::sync::watch::channel(!election);
    if !election {
        return (leading, None);
    }
    let elector = leader::Elector::new(
        Api::namespaced(client.clone(), namespace),
        leader::identity(),
    );
    let election = tokio::spawn(elector.run(leading_tx, shutdown.clone()));
    (leading, Some(election))
}

/// Serve `/healthz`, `/readyz` and `/metrics` on `listen` until `shutdown`.
async fn serve_probes(
    listen: SocketAddr,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, ControllerError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ControllerError::Listen {
            addr: listen,
            source,
        })?;
    let stop = shutdown.clone();
    let probe = Probe {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    Ok(tokio::spawn(crate::serve::serve(
        listener,
        router(probe),
        async move { stop.cancelled().await },
    )))
}

/// The caches a reconcile reads, each kept by a watch that pulls the trigger on a change.
struct Caches {
    policies: Store<ApiTokenPolicy>,
    clients: Store<ApiClient>,
    guardrails: Store<AudienceGuardrail>,
    federated_issuers: Store<FederatedIssuer>,
    /// Every ServiceAccount's metadata, for the UIDs of those that clients name (workload
    /// identity).
    service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    /// The labelled client Secrets, one watch per namespace of `--secret-namespaces`.
    labelled: Vec<Store<Secret>>,
    /// The manifest the controller last wrote, so its own writes pull no trigger.
    own_manifest: publish::OwnManifest,
    /// The manifest as seen, which no reconcile reads: its watch only pulls the trigger.
    _manifest: Store<ConfigMap>,
}

impl Caches {
    /// Start every watch.
    fn follow(
        client: &Client,
        namespace: &str,
        secret_scope: &SecretScope,
        trigger: &Arc<Notify>,
    ) -> Self {
        let policies = follow(
            Api::<ApiTokenPolicy>::all(client.clone()),
            watcher::Config::default(),
            trigger,
        );
        let clients = follow(
            Api::<ApiClient>::all(client.clone()),
            watcher::Config::default(),
            trigger,
        );
        let guardrails = follow(
            Api::<AudienceGuardrail>::all(client.clone()),
            watcher::Config::default(),
            trigger,
        );
        let federated_issuers = follow(
            Api::<FederatedIssuer>::all(client.clone()),
            watcher::Config::default(),
            trigger,
        );
        // Metadata only (kube asks for PartialObjectMeta): ServiceAccounts are many, and a
        // reconcile reads nothing of them but their UIDs.
        let service_accounts = follow(
            Api::<PartialObjectMeta<ServiceAccount>>::all(client.clone()),
            watcher::Config::default(),
            trigger,
        );
        let labelled: Vec<Store<Secret>> = secret_scope
            .apis(client)
            .into_iter()
            .map(|api| {
                follow(
                    api,
                    watcher::Config::default().labels(CLIENT_SECRET_LABEL),
                    trigger,
                )
            })
            .collect();
        // Someone changing or deleting the configuration objects: put them back. The controller's
        // own manifest writes start no reconcile: a ConfigMap has no generation to tell them from
        // others' by, and at 10,000 objects a useless reconcile delays the next real one.
        let own_manifest = Arc::new(std::sync::Mutex::new(None));
        let manifest = follow_except(
            Api::<ConfigMap>::namespaced(client.clone(), namespace),
            watcher::Config::default().fields(&format!("metadata.name={MANIFEST_NAME}")),
            trigger,
            publish::is_own(own_manifest.clone()),
        );
        Self {
            policies,
            clients,
            guardrails,
            federated_issuers,
            service_accounts,
            labelled,
            own_manifest,
            _manifest: manifest,
        }
    }

    /// Until every cache is filled. The first reconcile must see every policy and client, or
    /// it would publish a partial configuration. A Secret the watches have not brought yet is
    /// read with a GET instead, so their wait is bounded: one namespace whose Secrets cannot be
    /// listed (its Role deleted) must not keep every other from being reconciled.
    async fn wait_until_ready(&self) {
        let secrets_listed = async {
            let all = futures::future::join_all(self.labelled.iter().map(Store::wait_until_ready));
            if tokio::time::timeout(SECRET_WATCH_WAIT, all).await.is_err() {
                tracing::warn!(
                    "the watch of labelled client Secrets is not ready after {SECRET_WATCH_WAIT:?}: can the controller list Secrets in every namespace of --secret-namespaces? Reading them one by one meanwhile"
                );
            }
        };
        // Workload identity's caches are waited for only so long too: a controller whose RBAC
        // predates them (a chart not yet upgraded) or a cluster without the FederatedIssuer CRD
        // (`helm upgrade` installs no CRD) must still enforce everything else. Meanwhile the
        // clients that name ServiceAccounts or FederatedIssuers say they are not found.
        let workload_caches = async {
            let both = futures::future::join(
                self.federated_issuers.wait_until_ready(),
                self.service_accounts.wait_until_ready(),
            );
            if tokio::time::timeout(SECRET_WATCH_WAIT, both).await.is_err() {
                tracing::warn!(
                    "the watches of ServiceAccounts and FederatedIssuers are not ready after {SECRET_WATCH_WAIT:?}: is the FederatedIssuer CRD installed, and may the controller list both cluster-wide? Workload identity waits for them"
                );
            }
        };
        // A cache whose watch is gone (the runtime stopping) has nothing more to wait for.
        let _ = futures::future::join4(
            self.policies.wait_until_ready(),
            self.clients.wait_until_ready(),
            futures::future::join(self.guardrails.wait_until_ready(), workload_caches),
            secrets_listed,
        )
        .await;
    }
}

async fn finish(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    election: Option<tokio::task::JoinHandle<()>>,
) -> Result<(), ControllerError> {
    if let Some(election) = election
        && let Err(e) = election.await
    {
        tracing::error!(error = %e, "the leader election task failed");
    }
    match server.await {
        Ok(Err(e)) => tracing::error!(error = %e, "the health server stopped with an error"),
        Err(e) => tracing::error!(error = %e, "the health server task failed"),
        Ok(Ok(())) => {}
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// The annotation `kubectl apply` (client-side) keeps a whole copy of the object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Keep a cache of the objects `api` and `config` select, and pull `trigger` on every change.
/// Errors are logged and the watch retries with [`crate::watch_backoff`].
fn follow<K>(api: Api<K>, config: watcher::Config, trigger: &Arc<Notify>) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    follow_except(api, config, trigger, |_: &K| false)
}

/// [`follow`], except that a changed object for which `own` holds (the controller's own write)
/// pulls no trigger.
fn follow_except<K, F>(
    api: Api<K>,
    config: watcher::Config,
    trigger: &Arc<Notify>,
    own: F,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    F: Fn(&K) -> bool + Send + 'static,
{
    let (store, writer) = reflector::store();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watcher(api, config)
        .backoff(crate::watch_backoff::WatchBackoff::default())
        .modify(|object| {
            // Not read by a reconcile; at 10,000 objects they would dominate the caches.
            object.managed_fields_mut().clear();
            object.annotations_mut().remove(LAST_APPLIED);
        })
        .reflect(writer);
    tokio::spawn(drive(stream, kind, trigger.clone(), own));
    store
}

/// Pull `trigger` on every event that may change a reconcile's outcome ([`changes`]).
async fn drive<S, K, F>(stream: S, kind: String, trigger: Arc<Notify>, own: F)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send,
    K: Resource,
    F: Fn(&K) -> bool,
{
    let mut stream = std::pin::pin!(stream);
    let mut generations = changes::Generations::default();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                let own_write = matches!(&event, watcher::Event::Apply(object) if own(object));
                if generations.changed(&event) && !own_write {
                    trigger.notify_one();
                }
            }
            Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
        }
    }
}

#[derive(Clone)]
struct Probe {
    metrics: Arc<Metrics>,
    /// Whether the caches are filled and, when leading, a reconcile succeeded.
    ready: Arc<AtomicBool>,
}

/// `/healthz` (the process answers), `/readyz` (caches filled; the leader: a reconcile
/// succeeded) and `/metrics`.
fn router(probe: Probe) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(probe)
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    if probe.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not reconciled yet")
    }
}

async fn render_metrics(State(probe): State<Probe>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        probe.metrics.render(),
    )
}
