//! Liveness and readiness. Live: the process answers. Ready: a configuration is loaded, there
//! is an active signing key for every algorithm its policies name (so every token request it
//! allows can succeed), and the issuer is not shutting down.

use crate::issuer::state::Issuer;
use crate::tokens::Algorithm;
use axum::extract::State;
use axum::http::StatusCode;
use std::borrow::Cow;

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(issuer): State<Issuer>) -> (StatusCode, Cow<'static, str>) {
    match readiness(&issuer) {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// Whether the issuer is ready, or why not; `/readyz` and the `ready` metric both say this.
pub(crate) fn readiness(issuer: &Issuer) -> Result<(), Cow<'static, str>> {
    if issuer.draining.is_draining() {
        return Err("shutting down".into());
    }
    let keys = &issuer.keys.load().set;
    if !issuer.in_force.is_loaded() {
        // In cluster mode a configuration waits for the signing keys: say which is missing.
        let message = if Algorithm::ALL
            .iter()
            .all(|a| keys.signing_key(*a).is_none())
        {
            "no signing keys loaded yet"
        } else {
            "no configuration loaded yet"
        };
        return Err(message.into());
    }
    let snapshot = issuer.in_force.current();
    let unsigned = snapshot
        .config
        .apis
        .values()
        .map(|api| api.signing_algorithm)
        .find(|alg| keys.signing_key(*alg).is_none());
    if let Some(alg) = unsigned {
        return Err(format!("no active {alg} signing key, which a policy names").into());
    }
    Ok(())
}
