//! Cluster mode's configuration source: the configuration the controller writes into
//! ConfigMaps (layout in [`crate::config_objects`]) and the signing keys it keeps in a Secret,
//! both in `--namespace`, followed live.
//!
//! It watches exactly two objects by name (field selector `metadata.name`), so RBAC can grant
//! the issuer those names only: the manifest ConfigMap and the signing-keys Secret. When the
//! manifest changes it reads the shards the manifest names with GETs, reassembles and
//! verifies them, and swaps the snapshot. Nothing is replaced by anything that fails to
//! verify: while the API server is away, or a write is in progress, the issuer keeps serving
//! the last good configuration and keys, and catches up when the watch resumes.
//!
//! The first configuration is put in force only once the signing keys are loaded, so
//! `/readyz` says ready only when the issuer can both check and sign.

use super::snapshot::{ConfigSource, InForce};
use super::state::{Clock, Keys};
use crate::config::IssuerConfig;
use crate::config_objects::{
    self, MANIFEST_NAME, Manifest, ObjectsError, SIGNING_KEYS_KEY, SIGNING_KEYS_SECRET,
};
use crate::tokens::KeySet;
use arc_swap::ArcSwap;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt as _, watcher};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// First and longest wait before reading shards again after a failed reassembly.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Follows the controller's configuration objects and signing keys in one namespace.
pub struct ClusterSource {
    client: Client,
    namespace: String,
    keys: Arc<ArcSwap<Keys>>,
    clock: Clock,
}

impl ClusterSource {
    /// `keys` is the issuer's key slot, replaced whenever the signing-keys Secret changes.
    pub fn new(client: Client, namespace: String, keys: Arc<ArcSwap<Keys>>, clock: Clock) -> Self {
        Self {
            client,
            namespace,
            keys,
            clock,
        }
    }
}

/// What the source has taken so far.
#[derive(Default)]
struct Progress {
    /// The manifest of the configuration in force (or waiting for keys).
    applied: Option<Manifest>,
    /// A configuration read before the keys were.
    waiting: Option<IssuerConfig>,
    keys_loaded: bool,
    /// A manifest whose shards did not verify yet, to read again.
    retry: Option<Manifest>,
}

impl ConfigSource for ClusterSource {
    async fn run(self, in_force: InForce, shutdown: impl Future<Output = ()> + Send + 'static) {
        let by_name =
            |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut manifest = Followed::new("ConfigMap", MANIFEST_NAME, &self.namespace);
        let mut manifests = std::pin::pin!(
            watcher(maps.clone(), by_name(MANIFEST_NAME))
                .backoff(crate::watch_backoff::WatchBackoff::default())
                .filter_map(move |event| std::future::ready(manifest.object(event)))
        );
        let mut keys = Followed::new("Secret", SIGNING_KEYS_SECRET, &self.namespace);
        let mut key_sets = std::pin::pin!(
            watcher(secrets, by_name(SIGNING_KEYS_SECRET))
                .backoff(crate::watch_backoff::WatchBackoff::default())
                .filter_map(move |event| std::future::ready(keys.object(event)))
        );
        let mut shutdown = std::pin::pin!(shutdown);
        let mut progress = Progress::default();
        let mut retry_wait = RETRY_MIN;
        // When to read a manifest's shards again: a deadline, so that other events in between
        // do not put it off.
        let mut retry_at = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                Some(event) = manifests.next() => match event {
                    Ok(map) => match config_objects::read_manifest(&map) {
                        Ok(manifest) => {
                            retry_wait = RETRY_MIN;
                            self.take(&maps, manifest, &mut progress, &in_force).await;
                            retry_at = tokio::time::Instant::now() + retry_wait;
                        }
                        Err(e) => tracing::error!(error = %e, "the configuration manifest is unreadable; keeping the configuration in force"),
                    },
                    Err(e) => tracing::warn!(error = %e, "watching the configuration failed; serving the last one, retrying"),
                },
                Some(event) = key_sets.next() => match event {
                    Ok(secret) => self.take_keys(&secret, &mut progress, &in_force),
                    Err(e) => tracing::warn!(error = %e, "watching the signing keys failed; keeping the keys in force, retrying"),
                },
                () = tokio::time::sleep_until(retry_at), if progress.retry.is_some() => {
                    if let Some(manifest) = progress.retry.take() {
                        retry_wait = (retry_wait * 2).min(RETRY_MAX);
                        self.take(&maps, manifest, &mut progress, &in_force).await;
                        retry_at = tokio::time::Instant::now() + retry_wait;
                    }
                }
            }
        }
    }
}

impl ClusterSource {
    /// Read the shards `manifest` names and put the configuration in force.
    async fn take(
        &self,
        maps: &Api<ConfigMap>,
        manifest: Manifest,
        progress: &mut Progress,
        in_force: &InForce,
    ) {
        if progress
            .applied
            .as_ref()
            .is_some_and(|a| a.sha256 == manifest.sha256)
        {
            // The configuration in force, perhaps under a new revision: in sync.
            progress.retry = None;
            if progress.keys_loaded {
                in_force.record_sync(manifest.revision, self.clock.now());
            }
            progress.applied = Some(manifest);
            return;
        }
        let started = std::time::Instant::now();
        let mut shards = Vec::with_capacity(manifest.shards);
        for index in 1..=manifest.shards {
            match maps.get_opt(&config_objects::shard_name(index)).await {
                Ok(shard) => shards.push(shard),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the configuration failed; will retry");
                    progress.retry = Some(manifest);
                    return;
                }
            }
        }
        // Decompressing and decoding is CPU work (tens of milliseconds at 10,000 objects): off
        // the runtime that answers token requests.
        let read = manifest.clone();
        let assembled =
            tokio::task::spawn_blocking(move || config_objects::assemble(&read, &shards)).await;
        let config = match assembled {
            Ok(Ok(config)) => config,
            // Shards of another revision, or not there yet: a write in progress.
            Ok(Err(e @ (ObjectsError::ShardMismatch(_) | ObjectsError::ShardMissing(_)))) => {
                tracing::info!(revision = manifest.revision, reason = %e, "configuration not complete yet; will read it again");
                progress.retry = Some(manifest);
                return;
            }
            // Complete but wrong: reading it again gives the same bytes. The controller's next
            // revision (its periodic check rewrites shards that do not verify) is awaited.
            Ok(Err(e)) => {
                tracing::error!(revision = manifest.revision, error = %e, "the configuration in the cluster does not verify; keeping the one in force until the next revision");
                return;
            }
            Err(e) => {
                tracing::error!(revision = manifest.revision, error = %e, "reading the configuration failed; will read it again");
                progress.retry = Some(manifest);
                return;
            }
        };
        progress.retry = None;
        let (apis, clients) = (config.apis.len(), config.clients.len());
        if progress.keys_loaded {
            in_force.replace(config);
            in_force.record_sync(manifest.revision, self.clock.now());
        } else {
            progress.waiting = Some(config);
        }
        tracing::info!(
            revision = manifest.revision,
            apis,
            clients,
            took_ms = started.elapsed().as_millis() as u64,
            "configuration loaded from the cluster"
        );
        progress.applied = Some(manifest);
    }

    fn take_keys(&self, secret: &Secret, progress: &mut Progress, in_force: &InForce) {
        let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(SIGNING_KEYS_KEY)) else {
            tracing::error!(
                secret = SIGNING_KEYS_SECRET,
                key = SIGNING_KEYS_KEY,
                "the signing-keys Secret has no key set; keeping the keys in force"
            );
            return;
        };
        match KeySet::from_json(&bytes.0) {
            Ok(set) => {
                self.keys.store(Arc::new(Keys::new(set, self.clock.now())));
                progress.keys_loaded = true;
                tracing::info!("signing keys loaded from the cluster");
                if let Some(config) = progress.waiting.take() {
                    in_force.replace(config);
                    if let Some(manifest) = &progress.applied {
                        in_force.record_sync(manifest.revision, self.clock.now());
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the signing keys do not parse; keeping the keys in force")
            }
        }
    }
}

/// One watched object's events, told apart: the object when it comes, and a listing that
/// found none logged, since the issuer cannot be ready without it (most often: `--namespace`
/// is not the controller's).
struct Followed {
    kind: &'static str,
    name: &'static str,
    namespace: String,
    /// Whether the listing in progress brought the object.
    listed: bool,
}

impl Followed {
    fn new(kind: &'static str, name: &'static str, namespace: &str) -> Self {
        Self {
            kind,
            name,
            namespace: namespace.to_owned(),
            listed: false,
        }
    }

    /// The object `event` brings, or its error; `None` for the rest.
    fn object<K>(
        &mut self,
        event: Result<Event<K>, watcher::Error>,
    ) -> Option<Result<K, watcher::Error>> {
        let (kind, name, namespace) = (self.kind, self.name, self.namespace.as_str());
        match event {
            Ok(Event::Apply(object) | Event::InitApply(object)) => {
                self.listed = true;
                Some(Ok(object))
            }
            Ok(Event::Delete(_)) => {
                tracing::warn!(
                    kind,
                    name,
                    namespace,
                    "deleted; keeping what was loaded from it"
                );
                None
            }
            Ok(Event::Init) => {
                self.listed = false;
                None
            }
            Ok(Event::InitDone) => {
                if !self.listed {
                    tracing::warn!(
                        kind,
                        name,
                        namespace,
                        "not found; the issuer is ready once the controller has written it (is --namespace the controller's?)"
                    );
                }
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}
