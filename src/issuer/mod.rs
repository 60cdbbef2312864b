//! The token issuer: the OAuth 2.0 endpoints that enforce the reconciled policies.
//!
//! - [`protocol`]: the decisions (which API, which scopes, may a refresh token exist), pure.
//! - [`client_auth`]: who the client is.
//! - [`form`]: hostile-input parsing of request parameters.
//! - [`error`]: the RFC 6749 error responses.

pub mod client_auth;
pub mod error;
pub mod form;
pub mod protocol;
