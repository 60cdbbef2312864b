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
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The variables that switch traces on.
pub(crate) const ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// Whether traces are exported: the request, grant and store spans are made only then (a span
/// no one reads would still cost its bookkeeping on every request).
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether [`init`] switched traces on.
pub(crate) fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// What must be flushed before the process exits.
#[must_use = "call shutdown before exiting, or the last spans and audit lines are lost"]
pub(crate) struct Telemetry {
    traces: Option<SdkTracerProvider>,
    audit: AuditFlusher,
}

impl Telemetry {
    /// Export the spans still buffered and stop the exporter (at most its timeout), then write
    /// the audit lines still buffered. Call it outside the async runtime: the exporter's
    /// client blocks.
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "the last spans could not be exported");
        }
        self.audit.stop();
    }
}

/// How often the audit lines buffered are written out.
const AUDIT_FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A request that finds this much buffered writes it out itself, so the buffer stays bounded
/// and no line is ever dropped.
const AUDIT_MAX_BUFFERED: usize = 256 * 1024;

/// Where the audit lines go: a buffer, written to stderr in one piece every
/// [`AUDIT_FLUSH_EVERY`] by [`AuditFlusher`]'s thread, so a request neither waits for a write
/// nor wakes a thread. Writes out happen one at a time, in order.
#[derive(Clone, Default)]
struct AuditBuffer {
    lines: Arc<Mutex<Vec<u8>>>,
    /// Held while writing out: the buffer written out last, emptied and kept for its capacity,
    /// which takes the place of `lines` at the next write out, so the buffer does not grow
    /// again from nothing every [`AUDIT_FLUSH_EVERY`].
    spare: Arc<Mutex<Vec<u8>>>,
}

impl AuditBuffer {
    /// Write everything buffered to stderr.
    fn write_out(&self) {
        let mut out = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(
            &mut *self.lines.lock().unwrap_or_else(PoisonError::into_inner),
            &mut *out,
        );
        if !out.is_empty() {
            // Nowhere to report a failed write: the line is dropped, as a log line would be.
            let _ = std::io::stderr().write_all(&out);
            out.clear();
        }
    }
}

/// One line's writer (the formatter writes each line whole).
struct AuditLine<'b>(&'b AuditBuffer);

impl std::io::Write for AuditLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut lines = self.0.lines.lock().unwrap_or_else(PoisonError::into_inner);
            lines.extend_from_slice(bytes);
            lines.len() >= AUDIT_MAX_BUFFERED
        };
        if full {
            self.0.write_out();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'b> tracing_subscriber::fmt::MakeWriter<'b> for AuditBuffer {
    type Writer = AuditLine<'b>;

    fn make_writer(&'b self) -> Self::Writer {
        AuditLine(self)
    }
}

/// The thread that writes the audit buffer out, until [`AuditFlusher::stop`] writes the rest.
struct AuditFlusher {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl AuditFlusher {
    fn start(buffer: AuditBuffer) -> Result<Self, String> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tokenwarden-audit".to_owned())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(AUDIT_FLUSH_EVERY) {
                    buffer.write_out();
                }
                buffer.write_out();
            })
            .map_err(|e| format!("cannot start the thread that writes the audit trail: {e}"))?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

/// `RUST_LOG` (default `info`), each layer's own copy: a layer that takes no span (the logs,
/// the audit trail) then makes none exist, so without traces a span costs nothing.
fn env_filter() -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // tokio-postgres logs every statement's parameters at debug level: token hashes and sealed
    // sign-ins. A general `RUST_LOG=debug` leaves it at info; naming it turns it on.
    if !std::env::var("RUST_LOG").is_ok_and(|v| v.contains("tokio_postgres"))
        && let Ok(directive) = "tokio_postgres=info".parse()
    {
        filter = filter.add_directive(directive);
    }
    filter
}

/// Install the subscriber for `component` (`issuer`, `controller`). An error names the
/// variable that is wrong; nothing is installed then.
///
/// The audit lines are buffered and written out every [`AUDIT_FLUSH_EVERY`] in one write, so
/// a request does not wait for the disk; no line is dropped, and [`Telemetry::shutdown`]
/// writes what is left (a process killed with SIGKILL loses at most the last 100 ms).
pub(crate) fn init(component: &str) -> Result<Telemetry, String> {
    use tracing_subscriber::filter::{FilterExt as _, filter_fn};
    let traces = traces(component)?;
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
    // trace).
    let logs = logs.with_filter(env_filter().and(filter_fn(|meta| {
        meta.is_event() && meta.target() != audit::TARGET
    })));
    let audit_buffer = AuditBuffer::default();
    let audit_flusher = AuditFlusher::start(audit_buffer.clone())?;
    let audit = audit::layer(audit_buffer).with_filter(env_filter());
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tokenwarden"))
            // Only tokenwarden's own spans: the exporter's HTTP client must not trace itself.
            .with_filter(
                env_filter().and(filter_fn(|meta| meta.target().starts_with("tokenwarden"))),
            )
    });
    TRACES_ON.store(traces.is_some(), Ordering::Relaxed);
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(audit)
        .with(spans)
        .try_init();
    Ok(Telemetry {
        traces,
        audit: audit_flusher,
    })
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
