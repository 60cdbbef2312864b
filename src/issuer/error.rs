//! The one error type of the HTTP layer: RFC 6749 §5.2 errors (plus RFC 8707's
//! `invalid_target`) rendered as JSON with `Cache-Control: no-store`.
//!
//! Descriptions are fixed texts chosen by the issuer, never raw request input, so nothing a
//! client sends is echoed back.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `error` codes tokenwarden answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1, at the authorization endpoint.
    UnsupportedResponseType,
    AccessDenied,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, but the user must sign in.
    LoginRequired,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth 2.0 error response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// A fixed, human-readable explanation (`error_description`).
    pub description: &'static str,
    /// The client tried HTTP Basic authentication: answer 401 with `WWW-Authenticate`.
    pub basic_challenge: bool,
}

impl OAuthError {
    pub const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            basic_challenge: false,
        }
    }

    pub const fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub const fn invalid_grant(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub const fn invalid_scope(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub const fn invalid_target(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    pub const fn unauthorized_client(description: &'static str) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    pub const fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the token store is unavailable; try again shortly",
        )
    }

    pub const fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the issuer could not complete the request",
        )
    }

    /// `invalid_client`; over HTTP Basic it is a 401 with a challenge (RFC 6749 §5.2).
    pub const fn invalid_client(basic: bool) -> Self {
        Self {
            code: ErrorCode::InvalidClient,
            description: "client authentication failed",
            basic_challenge: basic,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            // 401 also without Basic: RFC 6749 §5.2 allows it, and clients expect it.
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    error_description: &'static str,
}

/// `Cache-Control: no-store` and `Pragma: no-cache`: for every answer that carries or concerns
/// a token (RFC 6749 §5.1), and for errors.
pub fn forbid_caching(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Seconds a client should wait before retrying when the store is down.
pub const RETRY_AFTER_SECONDS: &str = "5";

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code.as_str(),
            error_description: self.description,
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
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
