//! A real OTLP receiver for the trace tests: Jaeger v2 (built from its Go module by
//! `scripts/test-tools.sh`, pinned in tests/cluster/jaeger), with in-memory storage, OTLP/HTTP
//! and its query API on free loopback ports, started on first use by each test binary.
//!
//! Call [`jaeger()`]; give each process that exports to it a service name of its own and read
//! its spans back with [`Jaeger::traces`] (the query API's `/api/traces`, which says each
//! span's parent in its `references`). The process runs through the same machinery as the
//! control plane (`process`): tied to the test process, killed at exit, folder removed.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::ports::free_port;
use super::{log_tail, process, tools, write_file};

const NAME: &str = "jaeger";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

static SERVER: OnceLock<Result<Jaeger, String>> = OnceLock::new();

/// The Jaeger of this test binary, started on first use.
pub fn jaeger() -> &'static Jaeger {
    match SERVER.get_or_init(Jaeger::start) {
        Ok(server) => server,
        Err(message) => panic!("the test Jaeger did not start: {message}"),
    }
}

pub struct Jaeger {
    log: PathBuf,
    otlp_port: u16,
    query_port: u16,
}

/// Only what the tests need: the OTLP/HTTP receiver, in-memory storage and the query API
/// (HTTP, and gRPC because the extension always serves it); its own telemetry off, so nothing
/// listens on a fixed port.
fn config(otlp: u16, query: u16, query_grpc: u16) -> String {
    format!(
        r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
"#
    )
}

impl Jaeger {
    fn start() -> Result<Jaeger, String> {
        process::register_cleanup();
        let binary = tools::dir()?.join("jaeger");
        let dir = process::temporary_folder("tokenwarden-jaeger-")?;
        let (otlp_port, query_port) = (free_port(), free_port());
        let config_path = dir.join("config.yaml");
        write_file(&config_path, &config(otlp_port, query_port, free_port()))?;
        let log = dir.join("jaeger.log");
        let args = [format!("--config={}", config_path.display())];
        process::spawn(NAME, &binary, &args, &log)?;
        let server = Jaeger {
            log,
            otlp_port,
            query_port,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        let listening = |port| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        loop {
            if listening(query_port) && listening(otlp_port) {
                return Ok(server);
            }
            if !process::running(NAME) || Instant::now() > deadline {
                return Err(format!(
                    "Jaeger did not become ready:\n{}",
                    log_tail(&server.log)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP; `/v1/traces` is appended).
    pub fn otlp_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_port)
    }

    /// The base URL of the query API.
    pub fn query_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.query_port)
    }

    /// Every trace of `service` stored so far (the query API's `data` array: each trace with
    /// its `spans`, each span with `operationName`, `spanID`, `references` and `tags`).
    pub async fn traces(&self, service: &str) -> Vec<serde_json::Value> {
        let url = format!(
            "{}/api/traces?service={service}&limit=1000&lookback=1h",
            self.query_url()
        );
        let response = reqwest::get(&url).await.expect("the query API answers");
        let body: serde_json::Value = response.json().await.expect("JSON");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// The traces of `service` once at least `spans` of its spans are stored, waiting up to
    /// `within`; fails with Jaeger's log otherwise.
    pub async fn wait_for_spans(
        &self,
        service: &str,
        spans: usize,
        within: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let traces = self.traces(service).await;
            let count: usize = traces
                .iter()
                .map(|t| t["spans"].as_array().map_or(0, Vec::len))
                .sum();
            if count >= spans {
                return traces;
            }
            assert!(
                Instant::now() < deadline,
                "{count} of {spans} spans of {service} reached Jaeger in {within:?}:\n{traces:#?}\n{}",
                log_tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
