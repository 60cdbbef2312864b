//! Liveness and readiness. Live: the process answers. Ready: a configuration is loaded and
//! signing keys exist, so a token request can succeed.

use crate::issuer::state::Issuer;
use crate::tokens::Algorithm;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(issuer): State<Issuer>) -> (StatusCode, &'static str) {
    if !issuer.policies.is_loaded() {
        // In cluster mode a configuration waits for the signing keys: say which is missing.
        let keys = &issuer.keys.load().set;
        let message = if Algorithm::ALL
            .iter()
            .all(|a| keys.signing_key(*a).is_none())
        {
            "no signing keys loaded yet"
        } else {
            "no configuration loaded yet"
        };
        return (StatusCode::SERVICE_UNAVAILABLE, message);
    }
    (StatusCode::OK, "ok")
}
