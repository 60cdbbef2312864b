//! The protocol's one error type: RFC 6749 §5.2 errors (plus RFC 8707's `invalid_target`), as
//! the grants, the protocol decisions and client authentication return them.
//!
//! Owns the error codes and their fixed descriptions. Must not touch HTTP: the status codes and
//! the JSON rendering are the HTTP layer's ([`crate::issuer::routes::respond`]).
//!
//! Descriptions are fixed texts chosen by the issuer, never raw request input, so nothing a
//! client sends is echoed back.

use crate::store::StoreError;

/// The `error` codes tokenwarden answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    /// RFC 6749 §4.1.2.1, at the authorization endpoint.
    UnsupportedResponseType,
    AccessDenied,
    /// OpenID Connect Core §3.1.2.6: `prompt=none`, but the user must sign in.
    LoginRequired,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
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
pub(crate) struct OAuthError {
    pub code: ErrorCode,
    /// A fixed, human-readable explanation (`error_description`).
    pub description: &'static str,
    /// The client tried HTTP Basic authentication: answer 401 with `WWW-Authenticate`.
    pub basic_challenge: bool,
}

impl OAuthError {
    pub(crate) const fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            basic_challenge: false,
        }
    }

    pub(crate) const fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub(crate) const fn invalid_grant(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub(crate) const fn invalid_scope(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub(crate) const fn invalid_target(description: &'static str) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    pub(crate) const fn unauthorized_client(description: &'static str) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    pub(crate) const fn unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the token store is unavailable; try again shortly",
        )
    }

    pub(crate) const fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the issuer could not complete the request",
        )
    }

    /// `invalid_client`; over HTTP Basic it is a 401 with a challenge (RFC 6749 §5.2).
    pub(crate) const fn invalid_client(basic: bool) -> Self {
        Self {
            code: ErrorCode::InvalidClient,
            description: "client authentication failed",
            basic_challenge: basic,
        }
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A store error as the client sees it: `temporarily_unavailable` (HTTP 503) when the store is
/// down, `server_error` (HTTP 500) otherwise. The cause is logged, never answered.
pub(crate) fn store_error(error: StoreError) -> OAuthError {
    if error.is_unavailable() {
        tracing::warn!(error = %error, "store unavailable");
        OAuthError::unavailable()
    } else {
        tracing::error!(error = %error, "store error");
        OAuthError::server_error()
    }
}
