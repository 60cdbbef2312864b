//! `POST /oauth/token` (RFC 6749 §3.2): parse the request, authenticate the client, call its
//! grant ([`crate::issuer::grants`]), count and time it, and render the answer. Which token is
//! issued, and the order of the store writes, are the grants' to decide.
//!
//! A workload authenticates with its own token ([`crate::issuer::workload_identity`]): as a
//! client assertion (RFC 7523), or as the subject token of a token exchange (RFC 8693), which
//! then needs no other client authentication; with one, the subject token must act as the
//! same client.

use crate::config::IssuerConfig;
use crate::issuer::audit::Decision;
use crate::issuer::client_auth::{self, VerifyWorkload};
use crate::issuer::error::OAuthError;
use crate::issuer::form::Form;
use crate::issuer::grants::{Context, Issued, TokenRequest, token_exchange};
use crate::issuer::metrics::{GrantLabel, GrantLabels, WorkloadLabels, WorkloadRefusalLabel};
use crate::issuer::routes::respond::{forbid_caching, require_form_content_type};
use crate::issuer::state::Issuer;
use crate::issuer::workload_identity::Resolved;
use crate::issuer::workload_identity::verify::{Workload, WorkloadTokenError};
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
pub(crate) async fn token(
    State(issuer): State<Issuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    let config = &snapshot.config;
    let now = issuer.clock.now();
    let verifier = Verifier {
        issuer,
        config,
        now,
    };
    let (client, workload) =
        client_auth::token_request_client(config, headers, &form, &verifier).await?;
    *client_id = Some(client.client_id.clone());
    let request = TokenRequest::parse(&form, client)?;
    let keys = issuer.keys.load();
    let context = Context {
        config,
        client,
        store: &issuer.store,
        minter: &keys.minter,
        issuer_url: &issuer.issuer_url,
        now,
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
    let issued = request.issue(&context).instrument(span).await?;
    if let Some(workload) = workload {
        count_workload(issuer, &workload, &client.client_id, &issued);
    }
    Ok(issued)
}

/// Verifies workloads' tokens for one request; a refusal is counted and logged by reason,
/// never with the token.
struct Verifier<'a> {
    issuer: &'a Issuer,
    config: &'a IssuerConfig,
    now: u64,
}

impl VerifyWorkload for Verifier<'_> {
    async fn verify(
        &self,
        token: &str,
        client_id: Option<&str>,
    ) -> Result<Resolved, WorkloadTokenError> {
        let issuer = self.issuer;
        let resolved = issuer
            .workloads
            .resolve(self.config, token, client_id, &issuer.issuer_url, self.now)
            .await;
        if let Err(reason) = &resolved {
            issuer
                .metrics
                .workload_refusals
                .get_or_create(&WorkloadRefusalLabel {
                    reason: reason.as_str(),
                })
                .inc();
            tracing::info!(reason = %reason, "a workload's token was refused");
        }
        resolved
    }
}

/// Which workload got which token: counted by workload and audience, and logged.
fn count_workload(issuer: &Issuer, workload: &Workload, client_id: &str, issued: &Issued) {
    let (kind, name, subject) = match workload {
        Workload::ServiceAccount {
            namespace, name, ..
        } => (
            "serviceaccount",
            format!("{namespace}/{name}"),
            String::new(),
        ),
        Workload::Federated { issuer, subject } => ("federated", issuer.clone(), subject.clone()),
    };
    issuer
        .metrics
        .workload_tokens
        .get_or_create(&WorkloadLabels {
            kind,
            workload: name,
            subject,
            audience: issued.audience.clone(),
        })
        .inc();
    tracing::info!(
        workload = %workload,
        client_id = %client_id,
        audience = %issued.audience,
        jti = %issued.access_token.jti,
        "a workload got a token"
    );
}

/// The grant type as a bounded metric label.
fn grant_label(form: Option<&Form>) -> &'static str {
    match form.and_then(|f| f.get("grant_type")) {
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some(token_exchange::GRANT_TYPE) => "token_exchange",
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
    /// RFC 8693 §2.2.1, token exchanges only.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

impl From<Issued> for TokenResponse {
    fn from(issued: Issued) -> Self {
        Self {
            access_token: issued.access_token.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            scope: issued.scope,
            refresh_token: issued.refresh_token.map(|t| t.expose().to_owned()),
            issued_token_type: issued.issued_token_type,
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
