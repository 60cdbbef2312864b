//! The authorization request (RFC 6749 §4.1.1 with RFC 7636 PKCE and RFC 8707 / Auth0
//! `audience`), validated as a pure function of the configuration and the parameters, and the
//! redirect that answers it (RFC 6749 §4.1.2, RFC 9207 `iss`).
//!
//! Owns: which requests may reach the login page, what a code will be issued for, and where an
//! error may go. Must not touch HTTP, the store or the clock. The order of the checks matters:
//! until the client and its redirect URI are known good, nothing is sent back to the redirect
//! URI (RFC 6749 §4.1.2.1), so an attacker cannot use the issuer as an open redirector. And a
//! registered redirect URI is not yet a trusted one (RFC 9700 §4.11.2): any team may register
//! a client with any URI, so before the user has acted, an error goes back at once only to a
//! first-party client ([`unprompted`]); for any other, the user is shown the error and who
//! asked, and chooses whether to return.

use super::error::{ErrorCode, OAuthError};
use super::first_party::FirstPartyClients;
use super::form::Form;
use super::protocol::{self, OFFLINE_ACCESS};
use crate::api::GrantType;
use crate::config::{ClientConfig, IssuerConfig};

/// A valid authorization request: what a code will be issued for once the user signs in.
/// Its `Debug` leaves out the client's `state` and `nonce`, which bind the answer to one
/// browser's sign-in and so have no place in a log.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Sent back unchanged with the code or the error.
    pub state: Option<String>,
    /// The API chosen with `audience` or `resource`.
    pub audience: String,
    /// The API scopes granted, and `offline_access` when it was asked for, space-separated: the
    /// code's scope, from which the token endpoint decides about a refresh token.
    pub scope: String,
    /// RFC 7636 S256 challenge.
    pub code_challenge: String,
    /// OpenID Connect `nonce`, kept with the code.
    pub nonce: Option<String>,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let given = |value: &Option<String>| value.as_ref().map(|_| "<given>");
        f.debug_struct("AuthorizationRequest")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("state", &given(&self.state))
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .field("code_challenge", &self.code_challenge)
            .field("nonce", &given(&self.nonce))
            .finish()
    }
}

impl AuthorizationRequest {
    /// The API scopes, without `offline_access`.
    pub(crate) fn api_scopes(&self) -> impl Iterator<Item = &str> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty() && *s != OFFLINE_ACCESS)
    }

    /// Whether the user is asked for offline access (a refresh token, if the policy allows).
    pub(crate) fn offline_access(&self) -> bool {
        self.scope.split(' ').any(|s| s == OFFLINE_ACCESS)
    }
}

/// Why a request cannot be sent back to the client: the user sees an error page (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Untrusted {
    /// The query cannot be parsed (bad encoding, a repeated parameter, too large).
    Malformed,
    MissingClientId,
    UnknownClient,
    MissingRedirectUri,
    /// Not one of the client's `redirectUris`, by exact comparison.
    UnregisteredRedirectUri,
}

impl Untrusted {
    /// A fixed explanation for the error page; never the request's own values.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Malformed => "The sign-in request is malformed.",
            Self::MissingClientId => "The sign-in request does not name an application.",
            Self::UnknownClient => {
                "The application that sent you here is not known to this issuer."
            }
            Self::MissingRedirectUri => "The sign-in request does not say where to return.",
            Self::UnregisteredRedirectUri => {
                "The sign-in request asks to return to an address that is not registered for this application."
            }
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Show an error page; never redirect.
    Untrusted(Untrusted),
    /// The redirect URI is good: send the error to the client there.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
    /// The redirect URI is the client's own, but nobody vouches for it and the user has not
    /// acted yet: show the error and the client, and let the user choose to return there
    /// (RFC 9700 §4.11.2: "MAY inform the user and rely on the user").
    Confirm {
        client_id: String,
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
    },
}

impl Rejection {
    /// The OAuth error sent to the client; `None` for an error page.
    pub(crate) fn error(&self) -> Option<&OAuthError> {
        match self {
            Self::Untrusted(_) => None,
            Self::Redirect { error, .. } | Self::Confirm { error, .. } => Some(error),
        }
    }
}

/// A rejection of a request the user has not acted on yet (`GET /authorize`): an error goes
/// back to the redirect URI at once only when the client is first-party; any other client's
/// registered URI may be anyone's phishing site, so the user is asked first
/// ([`Rejection::Confirm`]).
pub(crate) fn unprompted(
    config: &IssuerConfig,
    first_party: &FirstPartyClients,
    form: &Form,
    rejection: Rejection,
) -> Rejection {
    let Rejection::Redirect {
        redirect_uri,
        state,
        error,
    } = rejection
    else {
        return rejection;
    };
    let client = form.get("client_id").and_then(|id| config.clients.get(id));
    match client {
        Some(client) if first_party.contains(client) => Rejection::Redirect {
            redirect_uri,
            state,
            error,
        },
        Some(client) => Rejection::Confirm {
            client_id: client.client_id.clone(),
            redirect_uri,
            state,
            error,
        },
        // A Redirect is made only for a known client; should that change, a page.
        None => Rejection::Untrusted(Untrusted::UnknownClient),
    }
}

/// The client and the redirect URI of a request, when both can be trusted: the client is
/// known and the URI is one of its own. Only then may an error be sent back there.
fn trusted_return<'f>(
    config: &'f IssuerConfig,
    form: &'f Form,
) -> Result<(&'f ClientConfig, &'f str), Rejection> {
    let client_id = form
        .get("client_id")
        .ok_or(Rejection::Untrusted(Untrusted::MissingClientId))?;
    let client = config
        .clients
        .get(client_id)
        .ok_or(Rejection::Untrusted(Untrusted::UnknownClient))?;
    // Required even with one registered URI: the token endpoint requires it too (RFC 6749
    // §4.1.3 asks for it there whenever it was sent here), and OAuth 2.1 drops the default.
    let redirect_uri = form
        .get("redirect_uri")
        .ok_or(Rejection::Untrusted(Untrusted::MissingRedirectUri))?;
    if !protocol::redirect_uri_registered(client, redirect_uri) {
        return Err(Rejection::Untrusted(Untrusted::UnregisteredRedirectUri));
    }
    Ok((client, redirect_uri))
}

/// Whether the user may be sent on without seeing who asks (in upstream-only mode, straight to
/// the provider): only for a first-party client. Any other client is shown with its API and
/// scopes first, and the user agrees with the page's button.
pub(crate) fn skips_agreement(
    config: &IssuerConfig,
    first_party: &FirstPartyClients,
    request: &AuthorizationRequest,
) -> bool {
    config
        .clients
        .get(&request.client_id)
        .is_some_and(|client| first_party.contains(client))
}

/// The rejection of a query [`Form::parse`] refused (a repeated parameter, bad encoding, a
/// value too long): always an error page. Nothing in a query that does not parse establishes
/// the client or its redirect URI (with a parameter repeated, which one was meant is
/// anyone's guess), so nothing is sent anywhere.
pub(crate) fn malformed() -> Rejection {
    Rejection::Untrusted(Untrusted::Malformed)
}

/// Validate an authorization request. `form` is the parsed query.
pub(crate) fn validate(
    config: &IssuerConfig,
    form: &Form,
) -> Result<AuthorizationRequest, Rejection> {
    let (client, redirect_uri) = trusted_return(config, form)?;
    let state = form.get("state").map(str::to_owned);
    let refuse = |error: OAuthError| Rejection::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
    };

    match form.get("response_type") {
        Some("code") => {}
        None => {
            return Err(refuse(OAuthError::invalid_request(
                "response_type is required",
            )));
        }
        Some(_) => {
            return Err(refuse(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            )));
        }
    }
    if form.get("response_mode").is_some_and(|m| m != "query") {
        return Err(refuse(OAuthError::invalid_request(
            "only response_mode=query is supported",
        )));
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(refuse(OAuthError::unauthorized_client(
            "this client may not use the authorization_code grant",
        )));
    }
    let code_challenge = form.get("code_challenge").ok_or_else(|| {
        refuse(OAuthError::invalid_request(
            "code_challenge is required (PKCE)",
        ))
    })?;
    if form.get("code_challenge_method") != Some("S256") {
        return Err(refuse(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        )));
    }
    if !is_s256_challenge(code_challenge) {
        return Err(refuse(OAuthError::invalid_request(
            "code_challenge must be a base64url SHA-256 (43 characters)",
        )));
    }
    let api = protocol::select_api(config, client, form.get("audience"), &form.all("resource"))
        .map_err(refuse)?;
    let granted = protocol::grant_scopes(api, client, form.get("scope")).map_err(refuse)?;
    // No session outlives a sign-in, so a request that forbids the login page fails at once
    // (OpenID Connect Core §3.1.2.6).
    if form
        .get("prompt")
        .is_some_and(|p| p.split(' ').any(|v| v == "none"))
    {
        return Err(refuse(OAuthError::new(
            ErrorCode::LoginRequired,
            "the user must sign in",
        )));
    }
    let mut scopes = granted.api_scopes;
    if granted.offline_access {
        scopes.insert(OFFLINE_ACCESS.to_owned());
    }
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        state,
        audience: api.audience.clone(),
        scope: protocol::scope_string(&scopes),
        code_challenge: code_challenge.to_owned(),
        nonce: form.get("nonce").map(str::to_owned),
    })
}

/// BASE64URL(SHA-256(verifier)) without padding is exactly 43 characters of the URL-safe
/// alphabet.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The URL that answers a request at `redirect_uri`: its own query kept, then `params`, then
/// `state` when there is one and `iss` (RFC 9207).
pub(crate) fn redirect_url(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    query.append_pair("iss", issuer);
    let separator = match redirect_uri.rfind('?') {
        None => "?",
        Some(i) if i + 1 == redirect_uri.len() || redirect_uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{redirect_uri}{separator}{}", query.finish())
}

/// The URL that sends an error back to the client.
pub(crate) fn error_url(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    redirect_url(
        redirect_uri,
        &[
            ("error", error.code.as_str()),
            ("error_description", error.description),
        ],
        state,
        issuer,
    )
}

#[cfg(test)]
mod tests;
