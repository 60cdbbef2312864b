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

/// The current snapshot, shared by every request.
#[derive(Clone, Debug)]
pub struct Policies {
    current: Arc<ArcSwap<Snapshot>>,
    loaded: Arc<AtomicBool>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            loaded: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Policies {
    /// Policies that start from `config` (for tests and fixed set-ups).
    pub fn fixed(config: IssuerConfig) -> Self {
        let policies = Self::default();
        policies.replace(config);
        policies
    }

    /// The snapshot in force now: a cheap, lock-free load.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Put a new configuration in force, if it differs; returns the revision in force.
    pub fn replace(&self, config: IssuerConfig) -> u64 {
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
}

/// Where the configuration comes from. `run` keeps `policies` current until `shutdown`
/// resolves.
pub trait ConfigSource: Send + 'static {
    fn run(
        self,
        policies: Policies,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identical_configuration_keeps_its_revision() {
        let policies = Policies::default();
        assert!(!policies.is_loaded());
        assert_eq!(policies.replace(IssuerConfig::default()), 1);
        assert!(policies.is_loaded());
        assert_eq!(policies.replace(IssuerConfig::default()), 1);
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
        assert_eq!(policies.replace(changed), 2);
        assert_eq!(policies.current().revision, 2);
    }
}
