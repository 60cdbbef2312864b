//! The HTTP form of the protocol's answers: an [`OAuthError`] as its status code and RFC 6749
//! §5.2 JSON body with `Cache-Control: no-store`, and the checks of a request's headers that
//! every OAuth endpoint shares.
//!
//! Owns status codes, headers and bodies. Must not decide anything: which error a request
//! earns is decided by the protocol decisions ([`crate::issuer::protocol`]).

use crate::issuer::error::{ErrorCode, OAuthError};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The HTTP status of an OAuth error.
pub(crate) fn status(error: &OAuthError) -> StatusCode {
    match error.code {
        // 401 also without Basic: RFC 6749 §5.2 allows it, and clients expect it.
        ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    error_description: &'static str,
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: for every answer that carries or concerns
/// a token (RFC 6749 §5.1), and for errors.
pub(crate) fn forbid_caching(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Seconds a client should wait before retrying when the store is down.
pub(crate) const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code.as_str(),
            error_description: self.description,
        };
        let mut response = (status(&self), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        forbid_caching(headers);
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tokenwarden\", charset=\"UTF-8\""),
            );
        }
        if self.code == ErrorCode::TemporarilyUnavailable {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

/// Token, revocation and introspection requests, and the login form, are form-encoded
/// (RFC 6749 §4.1.3, §4.4.2, §6; RFC 7009 §2.1; RFC 7662 §2.1).
pub(crate) fn require_form_content_type(headers: &HeaderMap) -> Result<(), OAuthError> {
    if headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .nth(1)
        .is_some()
    {
        return Err(OAuthError::invalid_request(
            "send one Content-Type header, not several",
        ));
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if is_form {
        Ok(())
    } else {
        Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}
