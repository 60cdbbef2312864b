//! The issuer's routers: `router` builds the public app (so most tests run it with
//! `tower::ServiceExt::oneshot`), `metrics_router` the one for the metrics port. The loop
//! that serves either on a listener is [`crate::serve`], shared with the controller.

use super::form::MAX_BODY_BYTES;
use super::routes::{authorize, callback, discovery, health, introspect, revoke, token};
use super::state::{Draining, Issuer};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

/// How long a request may take before the server gives up on it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The public endpoints: the routes, and around the router as a whole the layers every request
/// passes (outermost first): the audit trail's request context and line
/// ([`super::audit::Layer`]), `Connection: close` while draining, `nosniff`, the server's
/// own refusals in the endpoint's form ([`refusals`]), the request timeout and the body limit.
/// Around the router, not on each route (`Router::layer`): a request then clones the stack
/// once, rather than a boxed copy of every layer beneath each layer (docs/benchmarks.md, "The
/// audit trail's cost").
pub fn router(issuer: Issuer) -> impl crate::serve::App + Sync {
    let routes = Router::new()
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/oauth/introspect", post(introspect::introspect))
        .route("/authorize", get(authorize::show).post(authorize::submit))
        .route(super::upstream::CALLBACK_PATH, get(callback::callback))
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
        .with_state(issuer.clone());
    let draining = issuer.draining.clone();
    tower::ServiceBuilder::new()
        .layer(super::audit::Layer::new(issuer.trusted_proxies.clone()))
        .map_response(move |response| close_while_draining(&draining, response))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(axum::middleware::from_fn(refusals))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes)
}

/// While the issuer drains ([`super::state::Draining`]), every answer closes its connection,
/// so that a client that keeps connections alive opens its next one to another replica.
fn close_while_draining(draining: &Draining, mut response: Response) -> Response {
    if draining.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Whether the request declares a body over [`MAX_BODY_BYTES`]: refused from its header, before
/// a byte of it is waited for.
fn declares_too_large(request: &axum::extract::Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

/// How one group of endpoints answers the server's own refusals: a body over
/// [`MAX_BODY_BYTES`] (refused from its `Content-Length` before it is read, or when reading
/// passes the limit) and a request that did not arrive within [`REQUEST_TIMEOUT`].
trait Refusals {
    /// The `Content-Type` the group's own answers have: those pass untouched.
    const OWN_TYPE: &'static [u8];
    /// The group's answer for `status` (413 or 408).
    fn refusal(status: StatusCode) -> Response;
}

/// The OAuth endpoints: RFC 6749 §5.2 JSON with `Cache-Control: no-store`, like every other
/// answer there.
struct OAuthRefusals;

impl Refusals for OAuthRefusals {
    const OWN_TYPE: &'static [u8] = b"application/json";
    fn refusal(status: StatusCode) -> Response {
        let error = super::error::OAuthError::invalid_request(match status {
            StatusCode::PAYLOAD_TOO_LARGE => "the request is too large",
            _ => "the request did not arrive in time",
        });
        let mut response = error.into_response();
        *response.status_mut() = status;
        response
    }
}

/// The pages: their own error page (no-store and the pages' security headers) instead of
/// axum's plain text.
struct PageRefusals;

impl Refusals for PageRefusals {
    const OWN_TYPE: &'static [u8] = b"text/html";
    fn refusal(status: StatusCode) -> Response {
        let message = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "The request is too large.",
            _ => "The request did not arrive in time.",
        };
        super::page::error(status, message)
    }
}

/// The path prefix of the OAuth endpoints, whose refusals are [`OAuthRefusals`]; every other
/// path is a page's ([`PageRefusals`]).
const OAUTH_PATHS: &str = "/oauth/";

/// The middleware of the server's own refusals, in the form of the endpoint's group.
async fn refusals(request: axum::extract::Request, next: Next) -> Response {
    if request.uri().path().starts_with(OAUTH_PATHS) {
        refuse_as::<OAuthRefusals>(request, next).await
    } else {
        refuse_as::<PageRefusals>(request, next).await
    }
}

/// The refusals of the group `R`. Everything else passes.
async fn refuse_as<R: Refusals>(request: axum::extract::Request, next: Next) -> Response {
    if declares_too_large(&request) {
        return R::refusal(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let response = next.run(request).await;
    let is_own = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(R::OWN_TYPE));
    match response.status() {
        status @ (StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT) if !is_own => {
            R::refusal(status)
        }
        _ => response,
    }
}

/// The metrics endpoint, for its own port.
pub fn metrics_router(issuer: Issuer) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(issuer)
}

async fn metrics(State(issuer): State<Issuer>) -> impl IntoResponse {
    issuer.metrics.observe(&issuer);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        issuer.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt as _;

    /// A plain-text refusal from below the middleware (as a timeout or a body limit gives)
    /// leaves as OAuth JSON with its status; other answers pass untouched.
    #[tokio::test]
    async fn plain_refusals_on_the_oauth_endpoints_become_oauth_json() {
        let app = Router::new()
            .route(
                "/oauth/timeout",
                post(|| async { StatusCode::REQUEST_TIMEOUT }),
            )
            .route("/oauth/teapot", post(|| async { StatusCode::IM_A_TEAPOT }))
            .layer(axum::middleware::from_fn(refusals));
        let call = |path: &str| {
            let request = Request::post(path)
                .body(axum::body::Body::empty())
                .expect("request");
            app.clone().oneshot(request)
        };
        let timeout = call("/oauth/timeout").await.expect("answer");
        assert_eq!(timeout.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(timeout.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(timeout.into_body(), 1024)
            .await
            .expect("body");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"], "invalid_request");
        let teapot = call("/oauth/teapot").await.expect("answer");
        assert_eq!(teapot.status(), StatusCode::IM_A_TEAPOT);
        assert!(teapot.headers().get(header::CACHE_CONTROL).is_none());
    }

    /// On the pages, the same refusal is the pages' error page.
    #[tokio::test]
    async fn a_timeout_on_the_pages_is_an_error_page() {
        let app = Router::new()
            .route("/timeout", get(|| async { StatusCode::REQUEST_TIMEOUT }))
            .layer(axum::middleware::from_fn(refusals));
        let request = Request::get("/timeout")
            .body(axum::body::Body::empty())
            .expect("request");
        let timeout = app.oneshot(request).await.expect("answer");
        assert_eq!(timeout.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(timeout.headers()[header::CACHE_CONTROL], "no-store");
        let body = axum::body::to_bytes(timeout.into_body(), 64 * 1024)
            .await
            .expect("body");
        let page = String::from_utf8(body.to_vec()).expect("utf-8");
        assert!(
            page.contains("The request did not arrive in time."),
            "{page}"
        );
    }
}
