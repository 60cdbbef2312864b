//! Prometheus metrics of the issuer, served on their own port. Labels take bounded values:
//! grant types and error codes (`&'static str`), and the audience of an issued token, which
//! is always one of the configuration's APIs (one per ApiTokenPolicy). Never client ids, raw
//! request input or error text.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabel {
    pub grant: &'static str,
}

/// The issuer's metrics and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub token_requests: Family<GrantLabels, Counter>,
    pub token_latency: Family<GrantLabel, Histogram>,
    pub refresh_reuse_detected: Counter,
    pub config_revision: Gauge,
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
        let config_revision = Gauge::default();
        registry.register(
            "config_revision",
            "Revision of the configuration in force",
            config_revision.clone(),
        );
        Self {
            registry,
            token_requests,
            token_latency,
            refresh_reuse_detected,
            config_revision,
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
