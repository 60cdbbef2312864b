//! The refresh_token grant (RFC 6749 §6): a client trades a refresh token for a new access
//! token and, while the family rotates, a new refresh token.
//!
//! The store runs the rotation state machine in one transaction ([`Store::refresh`]); the new
//! token is stored by it before it is returned. A retired token presented again revokes its
//! whole family (reuse detection, RFC 9700 §4.14.2). A refresh that leaves `offline_access`
//! out ends the family, stored before the answer.

use super::{Context, Issued, Target};
use crate::api::GrantType;
use crate::issuer::error::{OAuthError, store_error};
use crate::issuer::form::Form;
use crate::issuer::protocol::{self, FamilyGrant, OFFLINE_ACCESS, Subject};
use crate::store::{
    OpaqueToken, RefreshOutcome, RefreshRequest, RefreshTokenView, Store, TokenHash,
};

/// A refresh_token request's parameters.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Refresh<'f> {
    pub refresh_token: &'f str,
    pub target: Target<'f>,
}

impl std::fmt::Debug for Refresh<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<'f> Refresh<'f> {
    pub(super) fn parse(form: &'f Form, target: Target<'f>) -> Result<Self, OAuthError> {
        Ok(Self {
            refresh_token: form.require("refresh_token", "refresh_token is required")?,
            target,
        })
    }
}

/// Refresh: find the token, check the request against its family ([`protocol::check_refresh`]),
/// rotate it in the store, end the family if offline access is given up, then mint.
pub(crate) async fn issue<S: Store>(
    cx: &Context<'_, S>,
    refresh: &Refresh<'_>,
) -> Result<Issued, OAuthError> {
    let (hash, view) = find(cx.store, refresh.refresh_token)
        .await?
        .ok_or(OAuthError::invalid_grant("the refresh token is invalid"))?;
    let mut original = protocol::parse_scope(Some(&view.family.scope));
    original.remove(OFFLINE_ACCESS);
    let family = FamilyGrant {
        client_id: &view.family.client_id,
        audience: &view.family.audience,
        scopes: &original,
    };
    let target = &refresh.target;
    let (api, scopes) = protocol::check_refresh(
        cx.config,
        cx.client,
        &family,
        target.audience,
        &target.resources,
        target.scope,
    )?;
    let new = OpaqueToken::generate_refresh(view.family.id).map_err(store_error)?;
    let request = RefreshRequest {
        presented: hash,
        new: new.refresh_key(),
        client_id: cx.client.client_id.clone(),
        audience: api.audience.clone(),
    };
    let outcome = cx
        .store
        .refresh(
            request,
            cx.now,
            protocol::refresh_rules(api, cx.client.client_type),
        )
        .await
        .map_err(store_error)?;
    let mut returned = match &outcome {
        RefreshOutcome::Rotated { .. } | RefreshOutcome::ReuseWithinGrace { .. } => Some(new),
        RefreshOutcome::NonRotating { .. } => None,
        RefreshOutcome::ReplayDetected { .. } => {
            cx.refresh_reuse_detected.inc();
            tracing::warn!(client_id = %cx.client.client_id, "retired refresh token presented again; its family is revoked");
            return Err(OAuthError::invalid_grant("the refresh token is invalid"));
        }
        RefreshOutcome::Expired(_) => {
            return Err(OAuthError::invalid_grant("the refresh token has expired"));
        }
        RefreshOutcome::Revoked | RefreshOutcome::WrongClient | RefreshOutcome::NotFound => {
            return Err(OAuthError::invalid_grant("the refresh token is invalid"));
        }
    };
    // A refresh is a user-delegated grant like the code exchange: it yields a refresh
    // token only while its scope includes offline_access. Without `scope` it asks for the
    // original grant's (RFC 6749 §6), which did. A client that leaves offline_access out
    // gives up offline access: the family ends here, whatever its rotation mode.
    let offline_asked = target
        .scope
        .is_none_or(|asked| asked.split(' ').any(|s| s == OFFLINE_ACCESS));
    let mut family = Some(view.family.id);
    if !protocol::may_issue_refresh_token(GrantType::RefreshToken, api, cx.client, offline_asked) {
        cx.store
            .revoke_refresh_token(hash, &cx.client.client_id, cx.now)
            .await
            .map_err(store_error)?;
        returned = None;
        // The family ends here; the access token outlives it as a plain one.
        family = None;
    }
    let subject = outcome
        .granted()
        .map(|f| f.subject.clone())
        .unwrap_or_default();
    let scope = protocol::scope_string(&scopes);
    let minted = cx.mint(api, Subject::User(&subject), &scope, family)?;
    Ok(Issued::new(api, minted, scopes, returned))
}

/// The stored refresh token with the value a client presented, and its hash; `None`: no
/// refresh token has this value.
pub(crate) async fn find(
    store: &impl Store,
    presented: &str,
) -> Result<Option<(TokenHash, RefreshTokenView)>, OAuthError> {
    let hash = OpaqueToken::from_presented(presented).refresh_key();
    let view = store
        .lookup_refresh_token(hash)
        .await
        .map_err(store_error)?;
    Ok(view.map(|view| (hash, view)))
}
