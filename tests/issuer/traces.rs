//! Traces (docs/audit.md#traces): the real issuer binary exports its spans over OTLP/HTTP to
//! a real receiver (Jaeger v2, `support::jaeger`), flushed when it stops. The token endpoint's span is
//! the parent of the grant's, the grant's of the store's; a W3C `traceparent` from a trusted
//! proxy becomes the request's parent and one from any other client is ignored; no attribute
//! or event holds a secret.

use crate::fixtures::binary::{
    folder_with_policies, free_port, seed_code_in, start_standalone_with,
};
use crate::fixtures::{SECRET, STANDARD, VERIFIER, WEB_CB};
use crate::support::jaeger::jaeger;
use serde_json::Value;
use std::time::Duration;

/// The trace and span a trusted proxy says the request belongs to.
const PROXY_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PROXY_SPAN: &str = "00f067aa0ba902b7";
/// What a client talking to the issuer directly claims.
const CLIENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

/// The spans of all `traces`.
fn spans(traces: &[Value]) -> Vec<&Value> {
    traces
        .iter()
        .flat_map(|t| t["spans"].as_array().into_iter().flatten())
        .collect()
}

/// The one span named `name`.
#[track_caller]
fn named<'a>(spans: &[&'a Value], name: &str) -> &'a Value {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s["operationName"] == name)
        .collect();
    assert_eq!(found.len(), 1, "one span {name}: {spans:#?}");
    found[0]
}

/// The span a span's `CHILD_OF` reference names: (trace id, span id).
fn parent(span: &Value) -> Option<(&str, &str)> {
    let reference = span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")?;
    Some((
        reference["traceID"].as_str()?,
        reference["spanID"].as_str()?,
    ))
}

fn id(span: &Value) -> &str {
    span["spanID"].as_str().expect("a span id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_otlp_receiver_with_their_parents_and_no_secret() {
    let jaeger = jaeger();
    let service = format!("tokenwarden-traces-{}-{}", std::process::id(), free_port());
    let dir = folder_with_policies(STANDARD);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    seed_code_in(&data, "code-to-be-traced").await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.otlp_endpoint()),
        ("OTEL_SERVICE_NAME", service.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let trust = ["--trusted-proxies".to_owned(), "127.0.0.2".to_owned()];
    let mut issuer = start_standalone_with(dir.path(), free_port(), &trust, &env).await;
    let token_url = format!("{}/oauth/token", issuer.base);

    // Through the trusted proxy (127.0.0.2): a code exchange, in the proxy's trace.
    let proxy = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let exchange = proxy
        .post(&token_url)
        .header("traceparent", format!("00-{PROXY_TRACE}-{PROXY_SPAN}-01"))
        .header("tracestate", "proxy=1")
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", "code-to-be-traced"),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("exchange");
    assert_eq!(exchange.status(), 200);
    let exchanged: Value = exchange.json().await.expect("JSON");

    // Directly (127.0.0.1): client_credentials, claiming a trace of its own.
    let direct = reqwest::Client::new()
        .post(&token_url)
        .header("traceparent", format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"))
        .basic_auth("worker", Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", "https://banking.example.com"),
        ])
        .send()
        .await
        .expect("client_credentials");
    assert_eq!(direct.status(), 200);
    let issued: Value = direct.json().await.expect("JSON");

    // The batch exporter waits 5 s between exports: these spans leave only by the flush at
    // shutdown.
    assert!(issuer.stop_gracefully(), "{}", issuer.log_text());
    let traces = jaeger
        .wait_for_spans(&service, 6, Duration::from_secs(30))
        .await;
    let all = spans(&traces);

    let request = all
        .iter()
        .find(|s| s["operationName"] == "POST /oauth/token" && s["traceID"] == PROXY_TRACE)
        .unwrap_or_else(|| panic!("the exchange's request span in the proxy's trace: {all:#?}"));
    assert_eq!(
        parent(request),
        Some((PROXY_TRACE, PROXY_SPAN)),
        "the trusted proxy's traceparent is the request's parent: {request:#}"
    );
    let grant = named(&all, "grant authorization_code");
    assert_eq!(parent(grant), Some((PROXY_TRACE, id(request))));
    let stores: Vec<_> = all
        .iter()
        .filter(|s| {
            s["operationName"]
                .as_str()
                .is_some_and(|n| n.starts_with("store."))
        })
        .collect();
    assert!(!stores.is_empty(), "store spans: {all:#?}");
    for store in &stores {
        assert_eq!(parent(store), Some((PROXY_TRACE, id(grant))), "{store:#}");
    }

    // The direct client's traceparent is ignored: its request starts a trace of its own.
    assert!(
        all.iter().all(|s| s["traceID"] != CLIENT_TRACE),
        "an untrusted traceparent was followed: {all:#?}"
    );
    let cc_grant = named(&all, "grant client_credentials");
    let cc_request = all
        .iter()
        .find(|s| s["operationName"] == "POST /oauth/token" && s["traceID"] == cc_grant["traceID"])
        .expect("the client_credentials request");
    assert_eq!(parent(cc_request), None, "a root: {cc_request:#}");
    assert_eq!(
        parent(cc_grant),
        Some((cc_grant["traceID"].as_str().expect("id"), id(cc_request)))
    );

    // No secret anywhere: names, tags, events.
    let text = serde_json::to_string(&traces).expect("JSON");
    let refresh = exchanged["refresh_token"].as_str().expect("refresh token");
    let access = exchanged["access_token"].as_str().expect("access token");
    let worker_token = issued["access_token"].as_str().expect("access token");
    for secret in [
        SECRET,
        "code-to-be-traced",
        VERIFIER,
        refresh,
        access,
        worker_token,
    ] {
        assert!(!text.contains(secret), "{secret:?} in the spans");
    }
}
