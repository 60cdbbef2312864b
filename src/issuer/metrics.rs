//! Prometheus metrics of the issuer, served on their own port. Labels take bounded values:
//! grant types, error codes and signing algorithms (`&'static str`), and the audience of an
//! issued token, which is always one of the configuration's APIs (one per ApiTokenPolicy),
//! and the workload that got a token without a secret, which is always one the configuration
//! declares (a ServiceAccount an ApiClient names, a FederatedIssuer's name and a subject an
//! ApiClient declares, which a token matched exactly): the issue of
//! workload identity asks which workload got which token. Never client ids, raw request input
//! or error text.
//!
//! Counters move as requests are answered; the gauges that describe the issuer's state (the
//! configuration in force, readiness, the signing keys) are read from it at each scrape
//! ([`Metrics::observe`]).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::state::Issuer;
use crate::tokens::Algorithm;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    /// `client_credentials`, `authorization_code`, `refresh_token` or `other`.
    pub grant: &'static str,
    /// The API of the issued token; empty for a refused request, whose audience may be
    /// unknown, absent or not yet resolved.
    pub audience: String,
    /// `issued`, or the OAuth error code.
    pub outcome: &'static str,
}

/// A workload that got a token with its own token instead of a secret.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadLabels {
    /// `serviceaccount` or `federated`.
    pub kind: &'static str,
    /// `<namespace>/<name>` of the ServiceAccount, or the FederatedIssuer's name.
    pub workload: String,
    /// The federated subject (one an ApiClient declares); empty for a ServiceAccount.
    pub subject: String,
    /// The API of the issued token.
    pub audience: String,
}

/// Why a workload's token was refused (`WorkloadTokenError::as_str`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkloadRefusalLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabel {
    pub grant: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlgorithmLabel {
    /// `RS256`, `PS256`, `ES256` or `EdDSA`.
    pub algorithm: &'static str,
}

/// The issuer's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub token_requests: Family<GrantLabels, Counter>,
    pub token_latency: Family<GrantLabel, Histogram>,
    pub refresh_reuse_detected: Counter,
    pub workload_tokens: Family<WorkloadLabels, Counter>,
    pub workload_refusals: Family<WorkloadRefusalLabel, Counter>,
    pub config_revision: Gauge,
    pub config_manifest_revision: Gauge,
    pub config_last_sync: Gauge,
    pub ready: Gauge,
    pub signing_key_created: Family<AlgorithmLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tokenwarden_issuer");
        let token_requests = Family::<GrantLabels, Counter>::default();
        registry.register(
            "token_requests",
            "Token endpoint requests by grant type, audience and outcome",
            token_requests.clone(),
        );
        let token_latency = Family::<GrantLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5,
            ])
        });
        registry.register(
            "token_request_duration_seconds",
            "Time to answer a token request, by grant type",
            token_latency.clone(),
        );
        let refresh_reuse_detected = Counter::default();
        registry.register(
            "refresh_token_reuse_detected",
            "Retired refresh tokens presented again; each revoked its whole family",
            refresh_reuse_detected.clone(),
        );
        let workload_tokens = Family::<WorkloadLabels, Counter>::default();
        registry.register(
            "workload_tokens",
            "Tokens issued to workloads that authenticated with their own token (a ServiceAccount's or a federated issuer's), by workload, subject and audience",
            workload_tokens.clone(),
        );
        let workload_refusals = Family::<WorkloadRefusalLabel, Counter>::default();
        registry.register(
            "workload_token_refusals",
            "Workload tokens refused (client assertions and token-exchange subject tokens), by reason",
            workload_refusals.clone(),
        );
        let config_revision = Gauge::default();
        registry.register(
            "config_revision",
            "Revision of the configuration in force",
            config_revision.clone(),
        );
        let config_manifest_revision = Gauge::default();
        registry.register(
            "config_manifest_revision",
            "The controller's revision of the configuration in force (its config_revision); \
             0 before the first and in standalone mode",
            config_manifest_revision.clone(),
        );
        let config_last_sync = Gauge::default();
        registry.register(
            "config_last_sync_timestamp_seconds",
            "When the configuration in force was last taken up or confirmed from the \
             controller's manifest, unix seconds; 0 before the first and in standalone mode",
            config_last_sync.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 while /readyz answers 200: configuration and a key for each algorithm it names",
            ready.clone(),
        );
        let signing_key_created = Family::<AlgorithmLabel, Gauge>::default();
        registry.register(
            "signing_key_created_timestamp_seconds",
            "When the active signing key of each algorithm was made, unix seconds",
            signing_key_created.clone(),
        );
        Self {
            registry,
            token_requests,
            token_latency,
            refresh_reuse_detected,
            workload_tokens,
            workload_refusals,
            config_revision,
            config_manifest_revision,
            config_last_sync,
            ready,
            signing_key_created,
        }
    }
}

impl Metrics {
    /// Set the gauges that describe `issuer`'s state now.
    pub fn observe(&self, issuer: &Issuer) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.config_revision
            .set(gauge(issuer.in_force.current().revision));
        let synced = issuer.in_force.synced();
        self.config_manifest_revision
            .set(gauge(synced.manifest_revision));
        self.config_last_sync.set(gauge(synced.at));
        self.ready
            .set(i64::from(super::routes::health::readiness(issuer).is_ok()));
        let keys = issuer.keys.load();
        for algorithm in Algorithm::ALL {
            let label = AlgorithmLabel {
                algorithm: algorithm.as_str(),
            };
            match keys.set.signing_key(algorithm) {
                Some(key) => {
                    self.signing_key_created
                        .get_or_create(&label)
                        .set(gauge(key.created_at()));
                }
                None => {
                    self.signing_key_created.remove(&label);
                }
            }
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
