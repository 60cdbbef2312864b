//! `tokenwarden issuer`: start the issuer from command-line options. Standalone mode
//! (`--policies DIR`) follows a folder of manifests and keeps keys and tokens under
//! `--data-dir`. Cluster mode (no `--policies`) follows the configuration and signing keys the
//! controller writes in `--namespace` ([`super::cluster`]) and keeps tokens under
//! `--data-dir`.

use super::cluster::ClusterSource;
use super::key_file::KeyFile;
use super::snapshot::{ConfigSource, InForce};
use super::standalone::DirectorySource;
use super::state::{Clock, Draining, Issuer, Keys};
use super::upstream::{Upstream, UpstreamOptions};
use super::users::Users;
use super::workload_identity::Workloads;
use crate::store::{AnyStore, DatabaseUrl, EmbeddedStore, PostgresStore, Store, StoreError};
use crate::tokens::KeySet;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Options of `tokenwarden issuer`. Each also reads `TOKENWARDEN_<FLAG>`.
#[derive(Clone, Debug, clap::Args)]
pub struct IssuerOptions {
    /// Standalone mode: read ApiTokenPolicy, ApiClient and Secret YAML from this folder and
    /// follow its changes. Without it the issuer follows the cluster (cluster mode).
    #[arg(long, env = "TOKENWARDEN_POLICIES", value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Cluster mode: the namespace of the controller's configuration objects and signing keys.
    /// Default: the pod's namespace, else `tokenwarden-system`.
    #[arg(long, env = "TOKENWARDEN_NAMESPACE")]
    pub namespace: Option<String>,
    /// Where signing keys (standalone mode) and the embedded store (refresh tokens, codes,
    /// revocations) live. With --database-url the store is PostgreSQL instead.
    #[arg(
        long,
        env = "TOKENWARDEN_DATA_DIR",
        value_name = "DIR",
        default_value = "tokenwarden-data"
    )]
    pub data_dir: PathBuf,
    /// Static users who may sign in: a YAML list of {username, passwordHash, subject?, email?}.
    #[arg(long, env = "TOKENWARDEN_USERS", value_name = "FILE")]
    pub users: Option<PathBuf>,
    /// Keep refresh tokens, codes and revocations in PostgreSQL, shared by every replica:
    /// `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=verify-full&sslrootcert=CA.pem` (see
    /// docs/postgresql.md). Without it (or --database-url-file): the embedded store.
    #[arg(
        long,
        env = "TOKENWARDEN_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        conflicts_with = "database_url_file"
    )]
    pub database_url: Option<DatabaseUrl>,
    /// Like --database-url, read from this file (a mounted Kubernetes Secret).
    #[arg(long, env = "TOKENWARDEN_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,
    /// Address of the OAuth endpoints.
    #[arg(long, env = "TOKENWARDEN_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    #[arg(
        long,
        env = "TOKENWARDEN_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: SocketAddr,
    /// Proxies in front of the issuer (comma-separated networks or addresses, e.g. the ingress
    /// controller's pod network) whose `X-Forwarded-For` names the client for the login
    /// form's per-address limit. Default: none, the TCP peer is the client.
    #[arg(
        long,
        env = "TOKENWARDEN_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        default_value = ""
    )]
    pub trusted_proxies: super::client_address::TrustedProxies,
    /// Clients the platform vouches for (comma-separated `<namespace>/<clientId>`): they
    /// skip the page where a user agrees to a sign-in before going to the upstream provider,
    /// and errors in their requests go straight back to their redirect URI. Default: none.
    #[arg(
        long,
        env = "TOKENWARDEN_FIRST_PARTY_CLIENTS",
        value_name = "NAMESPACE/CLIENT_ID,...",
        default_value = ""
    )]
    pub first_party_clients: super::first_party::FirstPartyClients,
    /// The issuer identifier (`iss`). Default: `http://<listen>`.
    #[arg(long, env = "TOKENWARDEN_ISSUER_URL", value_name = "URL")]
    pub issuer_url: Option<String>,
    /// Seconds the issuer keeps serving after SIGTERM or SIGINT, with `/readyz` failing and
    /// every answer closing its connection, so that Services and load balancers move clients
    /// to other replicas before it stops accepting; then requests in flight finish and it
    /// exits. 0: stop accepting at once (requests in flight still finish).
    #[arg(
        long,
        env = "TOKENWARDEN_SHUTDOWN_DRAIN_SECONDS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=300),
        value_name = "SECONDS"
    )]
    pub shutdown_drain_seconds: u64,
    /// Standalone mode rotates `keys.json` itself; in cluster mode the controller rotates.
    #[command(flatten)]
    pub rotation: crate::tokens::rotation::RotationOptions,
    #[command(flatten)]
    pub oidc: UpstreamOptions,
}

/// Everything that stops the issuer from starting, said so that the user can fix it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error(
        "cluster mode (no --policies): cannot find the cluster (KUBECONFIG, ~/.kube/config or the pod's service account): {0}; pass --policies DIR for standalone mode"
    )]
    Cluster(#[source] kube::Error),
    #[error("{0}")]
    DataDir(#[from] crate::file_modes::FileModeError),
    #[error("signing keys: {0}")]
    Keys(#[from] crate::tokens::TokenError),
    #[error("cannot read --database-url-file {path}: {source}")]
    DatabaseUrlFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Rotation(String),
    #[error("store: {}", ErrorChain(.0))]
    Store(#[from] crate::store::StoreError),
    #[error("users: {0}")]
    Users(#[from] super::users::UsersError),
    #[error("upstream sign-in: {0}")]
    Upstream(#[from] super::upstream::UpstreamError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--policies {0}: not a readable folder")]
    PoliciesDir(PathBuf),
    #[error(
        "--issuer-url must be an http or https URL with a host and no path, query or fragment: \
         the issuer serves its endpoints at the root ({0})"
    )]
    IssuerUrl(&'static str),
}

/// Where the configuration comes from.
enum Source {
    Directory(DirectorySource),
    Cluster(ClusterSource),
}

/// Run the issuer until `shutdown` is cancelled.
pub(crate) async fn run(
    options: IssuerOptions,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    if let Some(dir) = &options.policies
        && !dir.is_dir()
    {
        return Err(StartError::PoliciesDir(dir.clone()));
    }
    let issuer_url = options
        .issuer_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", options.listen));
    check_issuer_url(&issuer_url).map_err(StartError::IssuerUrl)?;
    crate::file_modes::create_private_dir(&options.data_dir)?;
    let schedule = options.rotation.schedule().map_err(StartError::Rotation)?;
    let clock = Clock::System;
    let now = clock.now();
    let in_force = InForce::default();
    // Cluster mode starts without keys: the source loads them, and the issuer is ready only
    // once it has.
    let (keys, key_file) = match &options.policies {
        Some(_) => {
            let (file, keys, generated) = KeyFile::open(&options.data_dir, now)?;
            let done = if generated { "generated" } else { "loaded" };
            tracing::info!(
                file = %options.data_dir.join("keys.json").display(),
                "{done} the signing keys of every algorithm"
            );
            (keys, Some(file))
        }
        None => (KeySet::new(), None),
    };
    let keys = Arc::new(ArcSwap::from_pointee(Keys::new(keys, now)));
    let mut cluster_client = None;
    let source = match options.policies.clone() {
        Some(dir) => {
            let mut source = DirectorySource::new(dir);
            source.reload(&in_force);
            Source::Directory(source)
        }
        None => {
            let client = kube::Client::try_default()
                .await
                .map_err(StartError::Cluster)?;
            cluster_client = Some(client.clone());
            let namespace = crate::config_objects::resolve_namespace(options.namespace.clone());
            tracing::info!(namespace = %namespace, "following the cluster's configuration");
            Source::Cluster(ClusterSource::new(
                client,
                namespace,
                keys.clone(),
                clock.clone(),
            ))
        }
    };
    let store = open_store(&options).await?;
    let users = match &options.users {
        Some(path) => Users::load(path)?,
        None => Users::default(),
    };
    let upstream = Upstream::from_options(&options.oidc, &issuer_url)?.map(Arc::new);

    let issuer = Issuer {
        issuer_url: issuer_url.into(),
        in_force: in_force.clone(),
        keys,
        store: store.clone(),
        users: Arc::new(users),
        trusted_proxies: Arc::new(options.trusted_proxies.clone()),
        first_party: Arc::new(options.first_party_clients.clone()),
        clock,
        metrics: Arc::default(),
        upstream,
        workloads: Arc::new(Workloads::new(cluster_client)),
        draining: Draining::default(),
    };
    let listener = bind(options.listen).await?;
    let metrics_listener = bind(options.metrics_listen).await?;
    tracing::info!(
        listen = %options.listen,
        metrics = %options.metrics_listen,
        issuer = %issuer.issuer_url,
        data_dir = %options.data_dir.display(),
        store = match store { AnyStore::Embedded(_) => "embedded", AnyStore::Postgres(_) => "postgresql" },
        mode = if options.policies.is_some() { "standalone" } else { "cluster" },
        oidc_issuer = issuer.upstream.as_ref().map(|u| u.provider.issuer()),
        "issuer started"
    );

    // The signal starts the drain; the servers and background tasks stop when it ends.
    let shutdown = drain(
        shutdown,
        issuer.draining.clone(),
        Duration::from_secs(options.shutdown_drain_seconds),
    );
    let stop = shutdown.clone();
    let stopped = async move { stop.cancelled().await };
    match source {
        Source::Directory(source) => tokio::spawn(source.run(in_force, stopped)),
        Source::Cluster(source) => tokio::spawn(source.run(in_force, stopped)),
    };
    if let Some(key_file) = key_file {
        tokio::spawn(super::key_file::rotate(
            key_file,
            schedule,
            issuer.keys.clone(),
            issuer.in_force.clone(),
            issuer.clock.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(purge_expired(store, issuer.clock.clone(), shutdown.clone()));
    if let Some(upstream) = issuer.upstream.clone() {
        tokio::spawn(discover(upstream));
    }
    let metrics = crate::serve::serve(
        metrics_listener,
        super::metrics_router(issuer.clone()),
        cancelled(shutdown.clone()),
    );
    let app = crate::serve::serve(listener, super::router(issuer), cancelled(shutdown.clone()));
    let (app, metrics) = tokio::join!(app, metrics);
    for result in [app, metrics] {
        if let Err(e) = result {
            tracing::error!(error = %e, "server stopped with an error");
        }
    }
    Ok(())
}

/// How long start-up keeps trying to reach PostgreSQL before it gives up.
const DATABASE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long start-up waits for the embedded store while another process has it open: a pod
/// deleted (or evicted) is replaced at once, on the same volume, while it still drains (up to
/// `--shutdown-drain-seconds` and the 30 s request timeout). Beyond the chart's default grace
/// period of 40 s.
const EMBEDDED_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The embedded store under `data_dir`, waiting up to [`EMBEDDED_LOCK_TIMEOUT`] while another
/// process (the pod this one replaces) has it open.
async fn open_embedded(data_dir: &Path) -> Result<AnyStore, StartError> {
    let deadline = tokio::time::Instant::now() + EMBEDDED_LOCK_TIMEOUT;
    let mut warned = false;
    loop {
        match EmbeddedStore::open(data_dir) {
            Ok(store) => return Ok(AnyStore::Embedded(store)),
            Err(e @ StoreError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                if !warned {
                    tracing::warn!(
                        error = %ErrorChain(&e),
                        "another process has the store open (the pod this one replaces, still \
                         stopping?); waiting for it"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// PostgreSQL when a database URL is given, else the embedded store under `--data-dir`.
/// PostgreSQL is retried for [`DATABASE_START_TIMEOUT`], so replicas that start while the
/// database does (or restarts) wait for it rather than crash.
async fn open_store(options: &IssuerOptions) -> Result<AnyStore, StartError> {
    let url = match (&options.database_url, &options.database_url_file) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => {
            DatabaseUrl::from_file(file).map_err(|source| StartError::DatabaseUrlFile {
                path: file.clone(),
                source,
            })?
        }
        (None, None) => return open_embedded(&options.data_dir).await,
    };
    let deadline = tokio::time::Instant::now() + DATABASE_START_TIMEOUT;
    loop {
        match PostgresStore::connect(&url).await {
            Ok(store) => return Ok(AnyStore::Postgres(store)),
            Err(e @ StoreError::Unavailable(_)) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %ErrorChain(&e), "cannot reach PostgreSQL yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// An error and its sources, `: `-separated, for a store error whose cause matters to the
/// operator (tokio-postgres and the pool never show the password in theirs).
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// Discover the upstream provider once at start: says early in the log whether it can be
/// used, and fills the cache the login page reads. A failure does not stop the issuer; the
/// next sign-in tries again.
async fn discover(upstream: Arc<Upstream>) {
    match upstream.provider.metadata().await {
        Ok(metadata) => tracing::info!(
            provider = %metadata.issuer,
            "upstream OpenID Provider discovered"
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "the upstream OpenID Provider cannot be used yet; sign-ins through it will retry"
        ),
    }
}

/// A token cancelled `period` after `signal` is: meanwhile the issuer is [`Draining`].
fn drain(signal: CancellationToken, draining: Draining, period: Duration) -> CancellationToken {
    let stop = CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        signal.cancelled().await;
        draining.start();
        if !period.is_zero() {
            tracing::info!(
                drain_seconds = period.as_secs(),
                "draining: not ready, still serving, then finishing the requests in flight"
            );
            tokio::time::sleep(period).await;
        }
        stopping.cancel();
    });
    stop
}

async fn cancelled(token: CancellationToken) {
    token.cancelled().await
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}

/// How often expired rows are cleaned up, and how many at most per write.
const PURGE_EVERY: Duration = Duration::from_secs(60);
const PURGE_BATCH: usize = 500;

/// Remove expired families, codes, revocations and sign-ins in small batches, off the hot path.
async fn purge_expired(store: AnyStore, clock: Clock, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PURGE_EVERY) => {}
        }
        loop {
            match store.purge_expired(clock.now(), PURGE_BATCH).await {
                Ok(report) if report.more => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "clean-up of expired tokens failed; will retry");
                    break;
                }
            }
        }
    }
}

/// An issuer URL is an origin (RFC 8414 §2 allows a path, but every endpoint here is served
/// at the root, so a path would advertise URLs that answer 404). `Err` says what is wrong.
fn check_issuer_url(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the scheme is not http or https");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("it has user information");
    }
    if parsed.path() != "/" {
        return Err("it has a path");
    }
    if url.contains('?') || url.contains('#') {
        return Err("it has a query or a fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_issuer_url;

    #[test]
    fn an_issuer_url_is_an_http_or_https_origin() {
        for good in [
            "https://login.example.com",
            "https://login.example.com/",
            "http://127.0.0.1:8080",
            "http://tw-issuer.tw-system.svc:8080",
        ] {
            assert_eq!(check_issuer_url(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("https://login.example.com/auth", "it has a path"),
            (
                "https://login.example.com?x=1",
                "it has a query or a fragment",
            ),
            (
                "https://login.example.com/#x",
                "it has a query or a fragment",
            ),
            ("ftp://login.example.com", "the scheme is not http or https"),
            (
                "https://user:pw@login.example.com",
                "it has user information",
            ),
            ("login.example.com", "not a URL"),
        ] {
            assert_eq!(check_issuer_url(bad), Err(why), "{bad}");
        }
    }
}
