//! Prometheus metrics of the controller, served with the health endpoints. Labels are bounded
//! sets of `&'static str`, never object names or error text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `success` or `error`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `ApiTokenPolicy` or `ApiClient`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// Where a reconcile failed: one of [`STEPS`].
    pub step: &'static str,
}

/// The steps of a reconcile that can fail: `publish` includes encoding.
pub(crate) const STEPS: [&str; 4] = ["secrets", "signing_keys", "publish", "status"];

/// The controller's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<OutcomeLabel, Counter>,
    pub reconcile_errors: Family<StepLabel, Counter>,
    pub reconcile_duration: Histogram,
    pub status_writes: Family<KindLabel, Counter>,
    pub secrets_created: Counter,
    pub objects: Family<KindLabel, Gauge>,
    pub not_ready: Family<KindLabel, Gauge>,
    pub config_revision: Gauge,
    pub config_bytes: Gauge,
    pub config_compressed_bytes: Gauge,
    pub config_shards: Gauge,
    pub config_writes: Counter,
    pub key_changes: Counter,
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tokenwarden_controller");
        let reconciles = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Global reconciles, by outcome",
            reconciles.clone(),
        );
        // Every outcome and step starts at 0, so that /metrics shows them (a family without
        // series is not rendered at all) and a rate over them is 0 rather than no data.
        for outcome in ["success", "error"] {
            drop(reconciles.get_or_create(&OutcomeLabel { outcome }));
        }
        let reconcile_errors = Family::<StepLabel, Counter>::default();
        for step in STEPS {
            drop(reconcile_errors.get_or_create(&StepLabel { step }));
        }
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by the step that failed",
            reconcile_errors.clone(),
        );
        let reconcile_duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "reconcile_duration_seconds",
            "Time of one global reconcile",
            reconcile_duration.clone(),
        );
        let status_writes = Family::<KindLabel, Counter>::default();
        registry.register(
            "status_writes",
            "Status updates written, by kind",
            status_writes.clone(),
        );
        let secrets_created = Counter::default();
        registry.register(
            "client_secrets_generated",
            "Client secrets generated (new Secrets and missing keys)",
            secrets_created.clone(),
        );
        let objects = Family::<KindLabel, Gauge>::default();
        registry.register("objects", "Declared objects, by kind", objects.clone());
        let not_ready = Family::<KindLabel, Gauge>::default();
        registry.register(
            "objects_not_ready",
            "Declared objects with Ready=False, by kind",
            not_ready.clone(),
        );
        let config_revision = Gauge::default();
        registry.register(
            "config_revision",
            "Revision of the published issuer configuration",
            config_revision.clone(),
        );
        let config_bytes = Gauge::default();
        registry.register(
            "config_bytes",
            "Size of the issuer configuration, uncompressed",
            config_bytes.clone(),
        );
        let config_compressed_bytes = Gauge::default();
        registry.register(
            "config_compressed_bytes",
            "Size of the issuer configuration as written (gzip)",
            config_compressed_bytes.clone(),
        );
        let config_shards = Gauge::default();
        registry.register(
            "config_shards",
            "ConfigMaps the configuration is split into",
            config_shards.clone(),
        );
        let config_writes = Counter::default();
        registry.register(
            "config_writes",
            "Times the configuration objects were written",
            config_writes.clone(),
        );
        let key_changes = Counter::default();
        registry.register(
            "signing_key_writes",
            "Times the signing-keys Secret was written (created, staged, promoted, pruned)",
            key_changes.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica leads", leader.clone());
        Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            secrets_created,
            objects,
            not_ready,
            config_revision,
            config_bytes,
            config_compressed_bytes,
            config_shards,
            config_writes,
            key_changes,
            leader,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
