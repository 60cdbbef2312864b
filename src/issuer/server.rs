//! The router and the servers. `router` builds the public app (so most tests run it with
//! `tower::ServiceExt::oneshot`), `metrics_router` the one for the metrics port, and `serve`
//! runs either on a listener until the shared shutdown signal.

use super::form::MAX_BODY_BYTES;
use super::routes::{authorize, callback, discovery, health, introspect, revoke, token};
use super::state::Issuer;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use std::future::Future;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;

/// How long a request may take before the server gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The public endpoints.
pub fn router(issuer: Issuer) -> Router {
    Router::new()
        .route("/authorize", get(authorize::show).post(authorize::submit))
        .route(super::upstream::CALLBACK_PATH, get(callback::callback))
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(issuer)
}

/// The metrics endpoint, for its own port.
pub fn metrics_router(issuer: Issuer) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(issuer)
}

async fn metrics(State(issuer): State<Issuer>) -> impl IntoResponse {
    issuer
        .metrics
        .config_revision
        .set(i64::try_from(issuer.policies.current().revision).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        issuer.metrics.render(),
    )
}

/// Serve `app` on `listener` until `shutdown` resolves; requests in flight finish first.
/// Handlers see the peer address (`ConnectInfo<SocketAddr>`), which the login form's
/// brute-force limits count by. Every connection has `TCP_NODELAY`: a response leaves at once
/// rather than waiting for the client's ACK of the previous segment (Nagle).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
