//! Protocol decisions, free of HTTP and storage: which API a request is for, which scopes are
//! granted, whether a refresh token may be issued, whether a refresh may proceed, and how long
//! a token lives. Everything here is a pure function of the configuration and the request, so
//! it is tested without a socket.

use super::error::OAuthError;
use crate::api::{ClientType, GrantType, RotationMode};
use crate::config::{ApiConfig, ClientConfig, IssuerConfig};
use crate::store::RefreshRules;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// The scope that asks for a refresh token (OpenID Connect Core §11).
pub(crate) const OFFLINE_ACCESS: &str = "offline_access";

/// What every client's subject ends with: `<client_id>@clients` (the form Auth0 uses). No user
/// subject may end with it ([`is_reserved_for_clients`]), so a client's `sub` never equals a
/// user's (RFC 9068 §5).
pub(crate) const CLIENT_SUBJECT_SUFFIX: &str = "@clients";

/// Whom an access token is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Subject<'a> {
    /// The client itself (client_credentials): its client id.
    Client(&'a str),
    /// A user (authorization_code, refresh_token): the subject the connector gave.
    User(&'a str),
}

impl Subject<'_> {
    /// The `sub` claim (RFC 9068 §2.2): the user's subject as it is, or `<client_id>@clients`
    /// for a client, which no user subject can be. The one place `sub` is decided.
    pub(crate) fn claim(&self) -> Cow<'_, str> {
        match self {
            Self::Client(client_id) => Cow::Owned(format!("{client_id}{CLIENT_SUBJECT_SUFFIX}")),
            Self::User(subject) => Cow::Borrowed(subject),
        }
    }
}

/// Whether a user subject takes the form reserved for clients, and must be refused: from the
/// users file when it is loaded, from the upstream provider at sign-in.
pub(crate) fn is_reserved_for_clients(user_subject: &str) -> bool {
    user_subject.ends_with(CLIENT_SUBJECT_SUFFIX)
}

/// Pick the API a token request is for: `audience` (as Auth0) or `resource` (RFC 8707), which
/// may be given together only if they agree. Without either, a client granted exactly one
/// audience gets that one.
pub(crate) fn select_api<'c>(
    config: &'c IssuerConfig,
    client: &ClientConfig,
    audience: Option<&str>,
    resources: &[&str],
) -> Result<&'c ApiConfig, OAuthError> {
    if resources.len() > 1 {
        return Err(OAuthError::invalid_target(
            "one resource per request: a token has one audience",
        ));
    }
    let wanted = match (audience, resources.first().copied()) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_target(
                "audience and resource name different APIs",
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => match client.audiences.keys().collect::<Vec<_>>()[..] {
            [only] => only.as_str(),
            _ => {
                return Err(OAuthError::invalid_request(
                    "audience (or resource) is required: this client may ask for several APIs",
                ));
            }
        },
    };
    let api = config
        .apis
        .get(wanted)
        .ok_or(OAuthError::invalid_target("no API has this audience"))?;
    if !client.audiences.contains_key(wanted) {
        return Err(OAuthError::invalid_target(
            "this client may not ask for tokens for this audience",
        ));
    }
    Ok(api)
}

/// A code exchange or a refresh may name its API again, with `audience` or `resource`, but only
/// the one its grant is for: any other is `invalid_target` (RFC 8707 §2.2), never a token
/// silently for another API than the one asked for.
pub(crate) fn require_granted_audience(
    granted: &str,
    audience: Option<&str>,
    resources: &[&str],
) -> Result<(), OAuthError> {
    let mut named = audience.into_iter().chain(resources.iter().copied());
    if named.any(|a| a != granted) {
        Err(OAuthError::invalid_target(
            "this grant is for another API than the audience or resource asked for",
        ))
    } else {
        Ok(())
    }
}

/// The scope parameter split into its tokens (RFC 6749 §3.3).
pub(crate) fn parse_scope(scope: Option<&str>) -> BTreeSet<String> {
    scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Scopes as a `scope` string, in a stable order.
pub(crate) fn scope_string(scopes: &BTreeSet<String>) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a request asked for: the API scopes it is granted, and whether it asked for offline
/// access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrantedScopes {
    pub api_scopes: BTreeSet<String>,
    pub offline_access: bool,
}

/// Grant scopes for a new grant. Without a `scope` parameter the client gets every scope it
/// may have for the API (as Auth0 does for client_credentials). A scope the client may not
/// have is `invalid_scope`; `offline_access` is a request for a refresh token, not an API scope.
pub(crate) fn grant_scopes(
    api: &ApiConfig,
    client: &ClientConfig,
    requested: Option<&str>,
) -> Result<GrantedScopes, OAuthError> {
    let allowed = client
        .audiences
        .get(&api.audience)
        .cloned()
        .unwrap_or_default();
    let mut asked = parse_scope(requested);
    let offline_access = asked.remove(OFFLINE_ACCESS);
    let api_scopes = if requested.is_none() {
        allowed
    } else {
        if !asked.is_subset(&allowed) {
            return Err(OAuthError::invalid_scope(
                "a requested scope is not defined for this API or not allowed for this client",
            ));
        }
        asked
    };
    Ok(GrantedScopes {
        api_scopes,
        offline_access,
    })
}

/// The grants that act for a user, after which a refresh token may exist.
pub(crate) fn is_user_delegated(grant: GrantType) -> bool {
    matches!(
        grant,
        GrantType::AuthorizationCode | GrantType::RefreshToken
    )
}

/// May a refresh token be issued? Only when all hold: the grant is user-delegated, the API
/// allows offline access, the client may use the refresh_token grant, and `offline_access` was
/// asked for. client_credentials never gets one (RFC 6749 §4.4.3).
pub(crate) fn may_issue_refresh_token(
    grant: GrantType,
    api: &ApiConfig,
    client: &ClientConfig,
    offline_access_requested: bool,
) -> bool {
    is_user_delegated(grant)
        && api.offline_access
        && client.grant_types.contains(&GrantType::RefreshToken)
        && offline_access_requested
}

/// Does a refresh retire the token presented and return a new one? As the policy says, except
/// that a Public client's refresh tokens always rotate (RFC 9700 §4.14.2): without a secret,
/// rotation and its reuse detection are all that limit a stolen one. `config::build` already
/// refuses such a grant; this holds whatever configuration the issuer is given.
pub(crate) fn refresh_rotates(api: &ApiConfig, client_type: ClientType) -> bool {
    api.refresh_tokens.rotation == RotationMode::Rotating || client_type == ClientType::Public
}

/// The policy's refresh settings as the store's rules, for a family of a client of this type.
pub(crate) fn refresh_rules(api: &ApiConfig, client_type: ClientType) -> RefreshRules {
    let seconds = |s: i64| u64::try_from(s).unwrap_or(0);
    let settings = &api.refresh_tokens;
    RefreshRules {
        rotating: refresh_rotates(api, client_type),
        absolute_lifetime_secs: seconds(settings.absolute_lifetime_seconds),
        idle_lifetime_secs: seconds(settings.idle_lifetime_seconds),
        reuse_interval_secs: seconds(settings.reuse_interval_seconds),
    }
}

/// Whom a refresh token family was issued to, and for what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FamilyGrant<'a> {
    pub client_id: &'a str,
    pub audience: &'a str,
    pub scopes: &'a BTreeSet<String>,
}

/// May this refresh proceed, and with which scopes? It must come from the client the family was
/// issued to, for the same audience, with a scope no wider than the original; the API must
/// still exist and allow offline access, and the client must still be allowed the
/// refresh_token grant. The new access token carries the requested scopes (or the original
/// ones), less any the client is no longer allowed.
pub(crate) fn check_refresh<'c>(
    config: &'c IssuerConfig,
    client: &ClientConfig,
    family: &FamilyGrant<'_>,
    audience: Option<&str>,
    resources: &[&str],
    requested_scope: Option<&str>,
) -> Result<(&'c ApiConfig, BTreeSet<String>), OAuthError> {
    if family.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if !client.grant_types.contains(&GrantType::RefreshToken) {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the refresh_token grant",
        ));
    }
    require_granted_audience(family.audience, audience, resources)?;
    let Some(api) = config.apis.get(family.audience) else {
        return Err(OAuthError::invalid_grant(
            "the API of this refresh token no longer exists",
        ));
    };
    if !api.offline_access {
        return Err(OAuthError::invalid_grant(
            "the API of this refresh token no longer allows offline access",
        ));
    }
    let mut asked = parse_scope(requested_scope);
    asked.remove(OFFLINE_ACCESS);
    let scopes = if requested_scope.is_some() {
        if !asked.is_subset(family.scopes) {
            return Err(OAuthError::invalid_scope(
                "a refresh cannot widen the scope of the original grant",
            ));
        }
        asked
    } else {
        family.scopes.clone()
    };
    let Some(still_allowed) = client.audiences.get(family.audience) else {
        return Err(OAuthError::invalid_grant(
            "this client may no longer ask for tokens for this audience",
        ));
    };
    let scopes = scopes.intersection(still_allowed).cloned().collect();
    Ok((api, scopes))
}

/// The lifetime of an access token for this API, in seconds: `exp - iat` and `expires_in`.
pub(crate) fn access_token_lifetime(api: &ApiConfig) -> u64 {
    u64::try_from(api.token_expiration_seconds)
        .unwrap_or(1)
        .max(1)
}

/// Is `redirect_uri` one of the client's, by exact string comparison?
pub(crate) fn redirect_uri_registered(client: &ClientConfig, redirect_uri: &str) -> bool {
    client.redirect_uris.iter().any(|r| r == redirect_uri)
}

/// The API of an access token for `audience` issued to `client_id`, while both are still in
/// the configuration: a token whose policy or client was deleted still verifies, but what it
/// was issued under is gone, so introspection reports it inactive.
pub(crate) fn api_of_access_token<'c>(
    config: &'c IssuerConfig,
    audience: &str,
    client_id: &str,
) -> Option<&'c ApiConfig> {
    config
        .apis
        .get(audience)
        .filter(|_| config.clients.contains_key(client_id))
}

/// May `caller` see an access token for `api` (RFC 7662 §4)? Only if the API's policy names
/// it in `introspectionClients`: the authorization server "MUST determine whether or not the
/// token can be used at the protected resource making the introspection request", and an
/// access token is used at its API alone. So not the client the token was issued to (it is no
/// resource server of the API, unless listed), nor a client merely granted the audience.
pub(crate) fn may_introspect_access_token(caller: &ClientConfig, api: &ApiConfig) -> bool {
    caller.client_type == ClientType::Confidential
        && api.introspection_clients.contains(&caller.client_id)
}

/// May `caller` see a refresh token of a family issued to `family_client_id`? A refresh token
/// is used at this issuer alone, by its own client: so that client only.
pub(crate) fn may_introspect_refresh_token(caller: &ClientConfig, family_client_id: &str) -> bool {
    caller.client_type == ClientType::Confidential && caller.client_id == family_client_id
}

#[cfg(test)]
mod tests;
