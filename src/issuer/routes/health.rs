//! Liveness and readiness. Live: the process answers. Ready: a configuration is loaded and
//! signing keys exist, so a token request can succeed.

use crate::issuer::state::Issuer;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(issuer): State<Issuer>) -> (StatusCode, &'static str) {
    if !issuer.policies.is_loaded() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration loaded yet",
        );
    }
    (StatusCode::OK, "ok")
}
