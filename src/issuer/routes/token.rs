//! `POST /oauth/token` (RFC 6749 §3.2): parse the request, authenticate the client, call its
//! grant ([`crate::issuer::grants`]), count and time it, and render the answer. Which token is
//! issued, and the order of the store writes, are the grants' to decide.

use crate::issuer::audit::Decision;
use crate::issuer::client_auth;
use crate::issuer::error::OAuthError;
use crate::issuer::form::Form;
use crate::issuer::grants::{Context, Issued, TokenRequest};
use crate::issuer::metrics::{GrantLabel, GrantLabels};
use crate::issuer::routes::respond::{forbid_caching, require_form_content_type};
use crate::issuer::state::Issuer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Instant;
use tracing::Instrument as _;

/// The handler: counts every request by grant type, audience and outcome, times it by grant
/// type, and describes the decision for the audit trail ([`Decision`]) from what the grant
/// returned, so that every grant is audited alike.
pub async fn token(State(issuer): State<Issuer>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let form = Form::parse(&body);
    let grant = grant_label(form.as_ref().ok());
    let mut client_id = None;
    let result = handle(&issuer, &headers, form, grant, &mut client_id).await;
    let (audience, outcome) = match &result {
        Ok(issued) => (issued.audience.clone(), "issued"),
        Err(e) => (String::new(), e.code.as_str()),
    };
    let labels = GrantLabels {
        grant,
        audience,
        outcome,
    };
    issuer.metrics.token_requests.get_or_create(&labels).inc();
    issuer
        .metrics
        .token_latency
        .get_or_create(&GrantLabel { grant })
        .observe(started.elapsed().as_secs_f64());
    let (decision, response) = match result {
        Ok(issued) => {
            let decision = Decision {
                grant: Some(grant),
                client_id,
                audience: Some(labels.audience),
                scope: Some(issued.scope.clone()),
                ..Decision::new(ENDPOINT, "issued")
            }
            .with_minted(&issued.access_token);
            (decision, TokenResponse::from(issued).into_response())
        }
        Err(error) => {
            let decision = Decision {
                grant: Some(grant),
                client_id,
                ..Decision::refused(ENDPOINT, &error)
            };
            (decision, error.into_response())
        }
    };
    decision.attach(response)
}

/// The endpoint's name in the audit trail.
const ENDPOINT: &str = "token";

/// Answer the request; `client_id` is set once the client is authenticated. The grant runs in
/// a span of its own (`grant`), whatever the grant.
async fn handle(
    issuer: &Issuer,
    headers: &HeaderMap,
    form: Result<Form, OAuthError>,
    grant: &'static str,
    client_id: &mut Option<String>,
) -> Result<Issued, OAuthError> {
    require_form_content_type(headers)?;
    let form = form?;
    let snapshot = issuer.in_force.current();
    let (client, _) = client_auth::authenticate(&snapshot.config, headers, &form)?;
    *client_id = Some(client.client_id.clone());
    let request = TokenRequest::parse(&form, client)?;
    let keys = issuer.keys.load();
    let context = Context {
        config: &snapshot.config,
        client,
        store: &issuer.store,
        minter: &keys.minter,
        issuer_url: &issuer.issuer_url,
        now: issuer.clock.now(),
        refresh_reuse_detected: &issuer.metrics.refresh_reuse_detected,
    };
    let span = if crate::telemetry::traces_on() {
        tracing::info_span!(
            "grant",
            otel.name = %format_args!("grant {grant}"),
            grant,
            client_id = %client.client_id,
        )
    } else {
        tracing::Span::none()
    };
    request.issue(&context).instrument(span).await
}

/// The grant type as a bounded metric label.
fn grant_label(form: Option<&Form>) -> &'static str {
    match form.and_then(|f| f.get("grant_type")) {
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}

/// The successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: issued.scope,
            refresh_token: issued.refresh_token.map(|t| t.expose().to_owned()),
        }
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        forbid_caching(response.headers_mut());
        response
    }
}
