//! `POST /oauth/introspect` (RFC 7662), for authenticated confidential clients only.
//!
//! An access token is active while its signature verifies with a published key, its `iss` is
//! this issuer, `now < exp`, its policy and its client are still configured, its `jti` was not
//! revoked, and the refresh-token family it was minted from (its `sid`), if any, still stands
//! ([`crate::store::Family::stands_at`]). A refresh token is active while it is its family's
//! current token, the family is not revoked, and the policy of its audience still allows
//! offline access and has not let it expire. Anything else — unknown, malformed, expired,
//! revoked, or a token the caller may not see ([`protocol::may_introspect_access_token`]:
//! the resource servers the API's policy names; [`protocol::may_introspect_refresh_token`]:
//! the token's own client) — is `{"active": false}` and nothing more (§2.2, §4).

use super::respond::{forbid_caching, require_form_content_type};
use super::revoke::Hint;
use crate::api::ClientType;
use crate::config::{ClientConfig, IssuerConfig};
use crate::issuer::audit::Decision;
use crate::issuer::client_auth;
use crate::issuer::error::{OAuthError, store_error};
use crate::issuer::form::Form;
use crate::issuer::protocol::{self, OFFLINE_ACCESS};
use crate::issuer::state::Issuer;
use crate::store::{FamilyId, Store, rotation};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The introspection response (RFC 7662 §2.2). Inactive: `active: false` alone.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

impl Introspection {
    fn inactive() -> Self {
        Self::default()
    }
}

impl IntoResponse for Introspection {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        forbid_caching(response.headers_mut());
        response
    }
}

/// The endpoint's name in the audit trail.
const ENDPOINT: &str = "introspect";

/// The handler; the audit trail's [`Decision`] is `active` (with the token's identifiers),
/// `inactive` or `refused`, and names the calling client.
pub(crate) async fn introspect(
    State(issuer): State<Issuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut client_id = None;
    match handle(&issuer, &headers, &body, &mut client_id).await {
        Ok(answer) => {
            let decision = Decision {
                client_id,
                audience: answer.aud.clone(),
                scope: answer.scope.clone(),
                subject: answer.sub.clone(),
                jti: answer.jti.clone(),
                ..Decision::new(ENDPOINT, if answer.active { "active" } else { "inactive" })
            };
            decision.attach(answer.into_response())
        }
        Err(error) => {
            let decision = Decision {
                client_id,
                ..Decision::refused(ENDPOINT, &error)
            };
            decision.attach(error.into_response())
        }
    }
}

/// Answer the request; `client_id` is set once the caller is authenticated.
async fn handle(
    issuer: &Issuer,
    headers: &HeaderMap,
    body: &[u8],
    client_id: &mut Option<String>,
) -> Result<Introspection, OAuthError> {
    require_form_content_type(headers)?;
    let form = Form::parse(body)?;
    let snapshot = issuer.in_force.current();
    let (client, method) = client_auth::authenticate(&snapshot.config, headers, &form)?;
    *client_id = Some(client.client_id.clone());
    if client.client_type != ClientType::Confidential {
        // A public client proves nothing: introspection needs client authentication (§2.1).
        return Err(OAuthError::invalid_client(
            method == client_auth::Method::Basic,
        ));
    }
    let token = form.require("token", "token is required")?;
    let now = issuer.clock.now();
    let hint = Hint::parse(&form);
    if hint == Hint::RefreshToken
        && let Some(answer) = refresh_token(issuer, &snapshot.config, client, token, now).await?
    {
        return Ok(answer);
    }
    if let Some(answer) = access_token(issuer, &snapshot.config, client, token, now).await? {
        return Ok(answer);
    }
    if hint != Hint::RefreshToken
        && let Some(answer) = refresh_token(issuer, &snapshot.config, client, token, now).await?
    {
        return Ok(answer);
    }
    Ok(Introspection::inactive())
}

/// `None`: not a valid access token of this issuer. `Some(inactive)`: one the caller may not
/// see, or a revoked one.
async fn access_token(
    issuer: &Issuer,
    config: &IssuerConfig,
    client: &ClientConfig,
    token: &str,
    now: u64,
) -> Result<Option<Introspection>, OAuthError> {
    let Ok(claims) = issuer
        .keys
        .load()
        .verifier
        .verify(token, &issuer.issuer_url, now)
    else {
        return Ok(None);
    };
    let api = protocol::api_of_access_token(config, &claims.aud, &claims.client_id);
    if !api.is_some_and(|api| protocol::may_introspect_access_token(client, api)) {
        return Ok(Some(Introspection::inactive()));
    }
    if issuer
        .store
        .is_access_token_revoked(&claims.jti, now)
        .await
        .map_err(store_error)?
    {
        return Ok(Some(Introspection::inactive()));
    }
    if let Some(sid) = &claims.sid
        && !family_stands(issuer, sid, now).await?
    {
        return Ok(Some(Introspection::inactive()));
    }
    Ok(Some(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        jti: Some(claims.jti),
        token_type: Some("Bearer"),
    }))
}

/// Whether the refresh-token family an access token names still stands: revoked (RFC 7009,
/// reuse detection) or past its deadline, its access tokens are inactive too.
async fn family_stands(issuer: &Issuer, sid: &str, now: u64) -> Result<bool, OAuthError> {
    let Ok(id) = sid.parse::<FamilyId>() else {
        return Ok(false);
    };
    let family = issuer.store.lookup_family(id).await.map_err(store_error)?;
    Ok(family.is_some_and(|family| family.stands_at(now)))
}

/// `None`: no refresh token has this value. `Some(inactive)`: one that is not active, or not
/// the caller's.
async fn refresh_token(
    issuer: &Issuer,
    config: &IssuerConfig,
    client: &ClientConfig,
    token: &str,
    now: u64,
) -> Result<Option<Introspection>, OAuthError> {
    let Some((_, view)) = crate::issuer::grants::refresh_token::find(&issuer.store, token).await?
    else {
        return Ok(None);
    };
    let family = &view.family;
    let api = config
        .apis
        .get(&family.audience)
        .filter(|api| api.offline_access);
    let Some(api) = api else {
        return Ok(Some(Introspection::inactive()));
    };
    let rules = protocol::refresh_rules(api, client.client_type);
    if !protocol::may_introspect_refresh_token(client, &family.client_id)
        || !view.is_active(now, &rules)
    {
        return Ok(Some(Introspection::inactive()));
    }
    let mut scopes = protocol::parse_scope(Some(&family.scope));
    scopes.insert(OFFLINE_ACCESS.to_owned());
    Ok(Some(Introspection {
        active: true,
        scope: Some(protocol::scope_string(&scopes)),
        client_id: Some(family.client_id.clone()),
        sub: Some(family.subject.clone()),
        aud: Some(family.audience.clone()),
        iss: Some(issuer.issuer_url.to_string()),
        exp: Some(rotation::expires_at(family, &rules)),
        iat: Some(view.token.issued_at),
        jti: None,
        token_type: Some("refresh_token"),
    }))
}
