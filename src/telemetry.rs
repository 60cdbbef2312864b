//! Logs and the audit trail, for both components: one tracing subscriber, set up once at
//! start-up by [`init`].
//!
//! Logs go to stderr; `RUST_LOG` filters them (default `info`), `TOKENWARDEN_LOG_FORMAT=json`
//! makes them JSON lines. Colours only on a terminal. The audit trail
//! ([`crate::issuer::audit`]) shares the stream and the filter, but is always JSON, whatever
//! the format of the other lines, so a pipeline can pick it out by its `target`. A log line
//! that cannot be written (a closed pipe, a full disk) is dropped: tracing's own report of it
//! would go to stderr with `eprintln!`, which panics, and take down the task that logged.

use crate::issuer::audit;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Install the subscriber (once; a second call changes nothing).
pub fn init() {
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
    let logs = logs.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() != audit::TARGET
    }));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(audit::layer(std::io::stderr))
        .try_init();
}
