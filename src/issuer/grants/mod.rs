//! The grants, one module per grant: [`client_credentials`], [`authorization_code`],
//! [`refresh_token`] and [`token_exchange`] (workload identity) at the token endpoint, each a function of the [`TokenRequest`] parsed once
//! and the [`Context`] it is answered in (the authenticated client, the configuration in force,
//! a store seen through the [`Store`] trait, the minter and the time), returning what was
//! [`Issued`] or an [`OAuthError`]; and [`sign_in`], which ends in the authorization code the
//! code grant exchanges.
//!
//! Owns: the order of the store writes (no token is returned before what it depends on is
//! stored), code replay, refresh rotation and the revocations they cause, and the order of a
//! password sign-in. The decisions that need no store (which API, which scopes, may a refresh
//! token exist) are [`crate::issuer::protocol`]'s. Must not touch HTTP (headers, status codes,
//! bodies, pages: that is `routes/`), the metrics registry, or the clock: the time is a
//! parameter ([`Context::now`]).

pub(crate) mod authorization_code;
pub(crate) mod client_credentials;
pub(crate) mod refresh_token;
pub(crate) mod sign_in;
pub(crate) mod token_exchange;

#[cfg(test)]
mod tests;

use crate::api::GrantType;
use crate::config::{ApiConfig, ClientConfig, IssuerConfig};
use crate::issuer::error::{ErrorCode, OAuthError};
use crate::issuer::form::Form;
use crate::issuer::protocol::{self, OFFLINE_ACCESS, Subject};
use crate::store::{FamilyId, OpaqueToken, Store};
use crate::tokens::{AccessTokenClaims, MintedToken, Minter};
use prometheus_client::metrics::counter::Counter;
use std::collections::BTreeSet;

/// What a grant works with, besides its request.
pub(crate) struct Context<'a, S> {
    /// The configuration in force for this request.
    pub config: &'a IssuerConfig,
    /// The authenticated client ([`crate::issuer::client_auth`]).
    pub client: &'a ClientConfig,
    pub store: &'a S,
    pub minter: &'a Minter,
    /// The `iss` of the tokens minted.
    pub issuer_url: &'a str,
    /// The time of the request, unix seconds, read once.
    pub now: u64,
    /// Counted each time a retired refresh token is presented again ([`refresh_token`]).
    pub refresh_reuse_detected: &'a Counter,
}

/// Which API a request names, and the scope it asks for: `audience` (as Auth0), `resource`
/// (RFC 8707, may repeat) and `scope` (RFC 6749 §3.3), each optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Target<'f> {
    pub audience: Option<&'f str>,
    pub resources: Vec<&'f str>,
    pub scope: Option<&'f str>,
}

impl<'f> Target<'f> {
    fn parse(form: &'f Form) -> Self {
        Self {
            audience: form.get("audience"),
            resources: form.all("resource"),
            scope: form.get("scope"),
        }
    }
}

/// A token request, its parameters read once from the form (RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TokenRequest<'f> {
    ClientCredentials(Target<'f>),
    AuthorizationCode(authorization_code::CodeExchange<'f>),
    RefreshToken(refresh_token::Refresh<'f>),
    TokenExchange(token_exchange::Exchange<'f>),
}

impl<'f> TokenRequest<'f> {
    /// The grant type (`unsupported_grant_type` if not one of the four), whether `client` may
    /// use it (`unauthorized_client`), then the grant's required parameters
    /// (`invalid_request`): in that order, the order of the errors a client sees. A token
    /// exchange issues what client_credentials issues, so it needs that grant.
    pub(crate) fn parse(form: &'f Form, client: &ClientConfig) -> Result<Self, OAuthError> {
        let grant_type = form.require("grant_type", "grant_type is required")?;
        if grant_type == token_exchange::GRANT_TYPE {
            if !client.grant_types.contains(&GrantType::ClientCredentials) {
                return Err(OAuthError::unauthorized_client(
                    "a token exchange issues the client's own token: the client needs the client_credentials grant",
                ));
            }
            let exchange = token_exchange::Exchange::parse(form, Target::parse(form))?;
            return Ok(Self::TokenExchange(exchange));
        }
        let grant = match grant_type {
            "client_credentials" => GrantType::ClientCredentials,
            "authorization_code" => GrantType::AuthorizationCode,
            "refresh_token" => GrantType::RefreshToken,
            _ => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "supported grant types: client_credentials, authorization_code, refresh_token, urn:ietf:params:oauth:grant-type:token-exchange",
                ));
            }
        };
        if !client.grant_types.contains(&grant) {
            return Err(OAuthError::unauthorized_client(
                "this client may not use this grant type",
            ));
        }
        let target = Target::parse(form);
        Ok(match grant {
            GrantType::ClientCredentials => Self::ClientCredentials(target),
            GrantType::AuthorizationCode => {
                Self::AuthorizationCode(authorization_code::CodeExchange::parse(form, target)?)
            }
            GrantType::RefreshToken => {
                Self::RefreshToken(refresh_token::Refresh::parse(form, target)?)
            }
        })
    }

    /// Answer the request with its grant.
    pub(crate) async fn issue<S: Store>(&self, cx: &Context<'_, S>) -> Result<Issued, OAuthError> {
        match self {
            Self::ClientCredentials(target) => client_credentials::issue(cx, target),
            Self::AuthorizationCode(exchange) => authorization_code::issue(cx, exchange).await,
            Self::RefreshToken(refresh) => refresh_token::issue(cx, refresh).await,
            Self::TokenExchange(exchange) => token_exchange::issue(cx, exchange),
        }
    }
}

/// What a grant issued (RFC 6749 §5.1): everything is stored that it depends on.
pub(crate) struct Issued {
    pub access_token: MintedToken,
    /// `expires_in`, seconds.
    pub expires_in: u64,
    /// The scope granted, `offline_access` included when a refresh token comes with it.
    pub scope: String,
    pub refresh_token: Option<OpaqueToken>,
    /// The API the token is for.
    pub audience: String,
    /// `issued_token_type` (RFC 8693 §2.2.1): token exchanges only.
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("jti", &self.access_token.jti)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Issued {
    fn new(
        api: &ApiConfig,
        access_token: MintedToken,
        mut scopes: BTreeSet<String>,
        refresh_token: Option<OpaqueToken>,
    ) -> Self {
        if refresh_token.is_some() {
            scopes.insert(OFFLINE_ACCESS.to_owned());
        }
        Self {
            access_token,
            expires_in: protocol::access_token_lifetime(api),
            scope: protocol::scope_string(&scopes),
            refresh_token,
            audience: api.audience.clone(),
            issued_token_type: None,
        }
    }
}

impl<S> Context<'_, S> {
    /// Sign an access token for `api` about `subject`, naming the refresh-token `family` it
    /// comes with, if any.
    fn mint(
        &self,
        api: &ApiConfig,
        subject: Subject<'_>,
        scope: &str,
        family: Option<FamilyId>,
    ) -> Result<MintedToken, OAuthError> {
        let subject = subject.claim();
        let session = family.map(|id| id.to_string());
        let claims = AccessTokenClaims {
            issuer: self.issuer_url,
            subject: &subject,
            audience: &api.audience,
            client_id: &self.client.client_id,
            scope,
            session: session.as_deref(),
        };
        self.minter
            .mint(
                api.signing_algorithm,
                &claims,
                protocol::access_token_lifetime(api),
                self.now,
            )
            .map_err(|e| {
                tracing::error!(error = %e, "cannot sign an access token");
                OAuthError::server_error()
            })
    }
}
