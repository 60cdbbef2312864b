//! What every request handler shares: the configuration snapshot, the signing keys, the store,
//! the clock, the metrics, the sign-ins in progress and the upstream connector. Cheap to clone.

use super::metrics::Metrics;
use super::snapshot::InForce;
use super::upstream::Upstream;
use super::users::Users;
use crate::store::AnyStore;
use crate::tokens::{Jwks, KeySet, Minter, Verifier};
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The time, as unix seconds. Handlers read it once per request and pass it down.
#[derive(Clone, Debug)]
pub enum Clock {
    System,
    /// A clock tests set and advance.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn manual(start: u64) -> Self {
        Self::Manual(Arc::new(AtomicU64::new(start)))
    }

    pub fn now(&self) -> u64 {
        match self {
            Self::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            Self::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Move a manual clock forward (no effect on the system clock).
    pub fn advance(&self, seconds: u64) {
        if let Self::Manual(t) = self {
            t.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}

/// The signing keys in force: the minter for new tokens, the verifier of tokens already out
/// (revocation, introspection) and the JWKS document for other verifiers.
#[derive(Debug)]
pub struct Keys {
    pub set: KeySet,
    pub minter: Minter,
    pub verifier: Verifier,
    /// The JWKS, serialised once per key change.
    pub jwks_json: Vec<u8>,
}

impl Keys {
    pub fn new(set: KeySet, now: u64) -> Self {
        let minter = set.minter();
        let verifier = set.verifier();
        let jwks: Jwks = set.jwks(now);
        let jwks_json = serde_json::to_vec(&jwks).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec());
        Self {
            set,
            minter,
            verifier,
            jwks_json,
        }
    }
}

/// Whether the issuer is shutting down: from the signal on, `/readyz` fails (so load balancers
/// and Services stop sending new requests) and answers close their connections, while the
/// issuer still serves for the drain period and lets requests in flight finish.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The issuer's shared state.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The `iss` of every token, and the base of the metadata's endpoint URLs.
    pub issuer_url: Arc<str>,
    pub in_force: InForce,
    pub keys: Arc<ArcSwap<Keys>>,
    pub store: AnyStore,
    pub users: Arc<Users>,
    /// Whose `X-Forwarded-For` names the client ([`super::client_address`]).
    pub trusted_proxies: Arc<super::client_address::TrustedProxies>,
    /// The clients that skip the user's agreement and whose errors are sent back at once
    /// ([`super::first_party`]).
    pub first_party: Arc<super::first_party::FirstPartyClients>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    /// The upstream OpenID Connect connector, when `--oidc-issuer` is set.
    pub upstream: Option<Arc<Upstream>>,
    /// The keys of the workloads' token issuers (workload identity).
    pub workloads: Arc<super::workload_identity::Workloads>,
    pub draining: Draining,
}
