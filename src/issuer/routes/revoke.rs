//! `POST /oauth/revoke` (RFC 7009). Any registered client may call it, public clients with
//! their `client_id` only. A refresh token revokes its whole family (the newest token
//! included); an access token's `jti` is recorded as revoked until its `exp`, which
//! introspection honours. Only the client a token was issued to may revoke it.
//!
//! An unknown, malformed, expired or already revoked token is answered 200 (§2.2): the client
//! cannot tell, and has nothing left to do. `token_type_hint` only orders the lookups (§2.1);
//! since both token types can be revoked, `unsupported_token_type` is never the answer.

use super::respond::{forbid_caching, require_form_content_type};
use crate::issuer::audit::Decision;
use crate::issuer::client_auth;
use crate::issuer::error::{OAuthError, store_error};
use crate::issuer::form::Form;
use crate::issuer::grants::refresh_token;
use crate::issuer::state::Issuer;
use crate::store::{RevokeOutcome, Store};
use crate::tokens::VerifiedClaims;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// Which kind of token the client says it presents (`token_type_hint`, RFC 7009 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hint {
    AccessToken,
    RefreshToken,
    /// No hint, or one this server does not know: ignored.
    None,
}

impl Hint {
    pub(crate) fn parse(form: &Form) -> Self {
        match form.get("token_type_hint") {
            Some("access_token") => Self::AccessToken,
            Some("refresh_token") => Self::RefreshToken,
            _ => Self::None,
        }
    }
}

/// The answer to a token that is not the caller's (RFC 7009 §2.1: the request is refused).
pub(crate) const NOT_YOURS: OAuthError =
    OAuthError::unauthorized_client("the token was issued to another client");

/// The endpoint's name in the audit trail.
const ENDPOINT: &str = "revoke";

/// The handler; the audit trail's [`Decision`] says what was revoked: `revoked` (with the
/// token's identifiers) or `unknown` (nothing to revoke), or `refused`.
pub(crate) async fn revoke(
    State(issuer): State<Issuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut decision = Decision::new(ENDPOINT, "unknown");
    match handle(&issuer, &headers, &body, &mut decision).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            forbid_caching(response.headers_mut());
            decision.attach(response)
        }
        Err(error) => {
            let refused = Decision {
                client_id: decision.client_id,
                ..Decision::refused(ENDPOINT, &error)
            };
            refused.attach(error.into_response())
        }
    }
}

async fn handle(
    issuer: &Issuer,
    headers: &HeaderMap,
    body: &[u8],
    decision: &mut Decision,
) -> Result<(), OAuthError> {
    require_form_content_type(headers)?;
    let form = Form::parse(body)?;
    let snapshot = issuer.in_force.current();
    let (client, _) = client_auth::authenticate(&snapshot.config, headers, &form)?;
    decision.client_id = Some(client.client_id.clone());
    let token = form.require("token", "token is required")?;
    let now = issuer.clock.now();
    let access = || {
        issuer
            .keys
            .load()
            .verifier
            .verify(token, &issuer.issuer_url, now)
            .ok()
    };
    // A JWT is never a refresh token's value and the other way round, so the hint only saves
    // a lookup; without it the signature check goes first, as it touches no store.
    let hint = Hint::parse(&form);
    if hint == Hint::RefreshToken
        && revoke_refresh_token(issuer, token, &client.client_id, now, decision).await?
    {
        return Ok(());
    }
    if let Some(claims) = access() {
        revoke_access_token(issuer, &claims, &client.client_id).await?;
        decision.outcome = "revoked";
        decision.audience = Some(claims.aud);
        decision.subject = Some(claims.sub);
        decision.jti = Some(claims.jti);
        decision.family_id = claims.sid;
        return Ok(());
    }
    if hint != Hint::RefreshToken {
        revoke_refresh_token(issuer, token, &client.client_id, now, decision).await?;
    }
    Ok(())
}

async fn revoke_access_token(
    issuer: &Issuer,
    claims: &VerifiedClaims,
    client_id: &str,
) -> Result<(), OAuthError> {
    if claims.client_id != client_id {
        return Err(NOT_YOURS);
    }
    issuer
        .store
        .revoke_access_token(&claims.jti, claims.exp)
        .await
        .map_err(store_error)
}

/// Revokes the family of a refresh token issued to `client_id`, and says so in `decision`.
/// `Ok(false)`: no such token.
async fn revoke_refresh_token(
    issuer: &Issuer,
    token: &str,
    client_id: &str,
    now: u64,
    decision: &mut Decision,
) -> Result<bool, OAuthError> {
    // A read first, so junk tokens cost no write.
    let Some((hash, view)) = refresh_token::find(&issuer.store, token).await? else {
        return Ok(false);
    };
    if view.family.client_id != client_id {
        return Err(NOT_YOURS);
    }
    match issuer
        .store
        .revoke_refresh_token(hash, client_id, now)
        .await
        .map_err(store_error)?
    {
        RevokeOutcome::Revoked { family_id } => {
            decision.outcome = "revoked";
            decision.audience = Some(view.family.audience);
            decision.subject = Some(view.family.subject);
            decision.family_id = Some(family_id.to_string());
            Ok(true)
        }
        RevokeOutcome::WrongClient => Err(NOT_YOURS),
        RevokeOutcome::NotFound => Ok(false),
    }
}
