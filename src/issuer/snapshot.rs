//! The configuration the issuer enforces, as a snapshot swapped whole on change: request
//! handlers load it without a lock, and a source replaces it. The source is an interface:
//! standalone mode follows files ([`super::standalone`]); cluster mode follows what the
//! controller writes.

use crate::config::IssuerConfig;
use arc_swap::ArcSwap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One version of the configuration.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases with every change the issuer takes.
    pub revision: u64,
    pub config: IssuerConfig,
}

/// The last time the issuer took up the controller's configuration, for the metrics that show
/// its lag behind the controller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Synced {
    /// The controller's revision of the configuration in force (the manifest's
    /// `data.revision`, the controller's `config_revision`); 0 before the first one, and in
    /// standalone mode, which has no manifest.
    pub manifest_revision: u64,
    /// When the issuer last put a manifest's configuration in force, or saw again the manifest
    /// of the configuration in force: unix seconds, 0 before the first.
    pub at: u64,
}

/// The snapshot in force: the issuer configuration every request reads, swapped whole by its
/// source (one name for it, from `config::build` to a request: docs/architecture.md).
#[derive(Clone, Debug)]
pub struct InForce {
    current: Arc<ArcSwap<Snapshot>>,
    loaded: Arc<AtomicBool>,
    synced: Arc<ArcSwap<Synced>>,
}

impl Default for InForce {
    fn default() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            loaded: Arc::new(AtomicBool::new(false)),
            synced: Arc::new(ArcSwap::from_pointee(Synced::default())),
        }
    }
}

impl InForce {
    /// The snapshot in force now: a cheap, lock-free load.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Put a new configuration in force, if it differs; returns the revision in force.
    pub(crate) fn replace(&self, config: IssuerConfig) -> u64 {
        let old = self.current.load();
        self.loaded.store(true, Ordering::Release);
        if old.revision > 0 && old.config == config {
            return old.revision;
        }
        let revision = old.revision + 1;
        self.current.store(Arc::new(Snapshot { revision, config }));
        revision
    }

    /// Whether a source has delivered a configuration yet (readiness).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Record that the configuration in force is the controller's `manifest_revision`, as of
    /// `at` (unix seconds). The revision is recorded apart from the snapshot's: the controller
    /// may publish an identical configuration under a new revision, which changes no snapshot.
    pub(crate) fn record_sync(&self, manifest_revision: u64, at: u64) {
        self.synced.store(Arc::new(Synced {
            manifest_revision,
            at,
        }));
    }

    /// The last [`Self::record_sync`].
    pub(crate) fn synced(&self) -> Synced {
        **self.synced.load()
    }
}

/// Where the configuration comes from. `run` keeps `policies` current until `shutdown`
/// resolves.
pub trait ConfigSource: Send + 'static {
    fn run(
        self,
        in_force: InForce,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identical_configuration_keeps_its_revision() {
        let in_force = InForce::default();
        assert!(!in_force.is_loaded());
        assert_eq!(in_force.replace(IssuerConfig::default()), 1);
        assert!(in_force.is_loaded());
        assert_eq!(in_force.replace(IssuerConfig::default()), 1);
        let mut changed = IssuerConfig::default();
        changed.clients.clear();
        changed.apis.insert(
            "https://a".into(),
            crate::config::ApiConfig {
                audience: "https://a".into(),
                token_expiration_seconds: 1,
                offline_access: false,
                signing_algorithm: Default::default(),
                scopes: Default::default(),
                refresh_tokens: Default::default(),
                scope_descriptions: Default::default(),
                introspection_clients: Default::default(),
            },
        );
        assert_eq!(in_force.replace(changed), 2);
        assert_eq!(in_force.current().revision, 2);
    }
}
