//! RFC 8414 authorization server metadata (served at both well-known paths, one document) and
//! the RFC 7517 JWKS: public keys only, every key a live token may still need.

use crate::issuer::grants::token_exchange;
use crate::issuer::state::Issuer;
use crate::issuer::workload_identity;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub(crate) async fn metadata(State(issuer): State<Issuer>) -> Response {
    let base = issuer.issuer_url.trim_end_matches('/');
    let document = json!({
        "issuer": &*issuer.issuer_url,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "grant_types_supported": [
            "client_credentials",
            "authorization_code",
            "refresh_token",
            token_exchange::GRANT_TYPE,
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        // A workload's token as a JWT client assertion (RFC 7523 §2.2) is listed under a name
        // of its own: it is signed by the cluster or a CI system, not by a key registered for
        // the client, so it is not private_key_jwt (docs/decisions.md).
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
            workload_identity::AUTH_METHOD,
        ],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["offline_access"],
        // No ID token is issued, but OpenID Connect Discovery requires these two, and the same
        // document is served at /.well-known/openid-configuration, where OIDC libraries check
        // them. No `token_endpoint_auth_signing_alg_values_supported`: that is for
        // private_key_jwt and client_secret_jwt, which are not accepted.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "authorization_response_iss_parameter_supported": true,
    });
    let mut response = axum::Json(document).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

pub(crate) async fn jwks(State(issuer): State<Issuer>) -> Response {
    let keys = issuer.keys.load();
    let mut response = keys.jwks_json.clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}
