//! Logs, the audit trail and traces, for both components: one tracing subscriber, set up once
//! at start-up by [`init`], and flushed by [`Telemetry::shutdown`] on the way out.
//!
//! Logs go to stderr; `RUST_LOG` filters them (default `info`), `TOKENWARDEN_LOG_FORMAT=json`
//! makes them JSON lines. Colours only on a terminal. The audit trail
//! ([`crate::issuer::audit`]) shares the stream and the filter, but is always JSON, whatever
//! the format of the other lines, so a pipeline can pick it out by its `target`. A log line
//! that cannot be written (a closed pipe, a full disk) is dropped: tracing's own report of it
//! would go to stderr with `eprintln!`, which panics, and take down the task that logged.
//!
//! Traces: off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set; then tokenwarden's own spans (the `tokenwarden` targets, at the level `RUST_LOG`
//! allows) go over OTLP/HTTP (protobuf) in batches. The SDK reads the other standard variables
//! itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_TRACES_SAMPLER`…); without a service name the component
//! names itself (`tokenwarden-issuer`, `tokenwarden-controller`).

use crate::issuer::audit;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variables that switch traces on.
pub const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// What must be flushed before the process exits.
#[must_use = "call shutdown before exiting, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter (at most its timeout). Call it
    /// outside the async runtime: the exporter's client blocks.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

/// Install the subscriber for `component` (`issuer`, `controller`). An error names the
/// variable that is wrong; nothing is installed then.
pub fn init(component: &str) -> Result<Telemetry, String> {
    let traces = traces(component)?;
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters at debug level: token hashes and sealed
    // sign-ins. A general `RUST_LOG=debug` leaves it at info; naming it turns it on.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("tokio_postgres"))
        && let Ok(directive) = "tokio_postgres=info".parse()
    {
        filter = filter.add_directive(directive);
    }
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .log_internal_errors(false);
    let logs = if std::env::var("TOKENWARDEN_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().boxed()
    } else {
        logs.boxed()
    };
    // Events only: a log line names no span (the request id is in the audit line and the
    // trace), so that without traces a span costs nothing at all.
    let logs = logs.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_event() && meta.target() != audit::TARGET
    }));
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tokenwarden"))
            // Only tokenwarden's own spans: the exporter's HTTP client must not trace itself.
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target().starts_with("tokenwarden")
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(audit::layer(std::io::stderr))
        .with(spans)
        .try_init();
    Ok(Telemetry { traces })
}

/// The tracer provider when an OTLP endpoint is set.
fn traces(component: &str) -> Result<Option<SdkTracerProvider>, String> {
    let configured = ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    if !configured {
        return Ok(None);
    }
    if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        && protocol != "http/protobuf"
    {
        return Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={protocol:?}: tokenwarden exports traces over http/protobuf only"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| {
            format!(
                "cannot export traces to {}: {e}",
                ENDPOINT_VARIABLES.join(" / ")
            )
        })?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    if !named {
        resource = resource.with_service_name(format!("tokenwarden-{component}"));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    Ok(Some(provider))
}
