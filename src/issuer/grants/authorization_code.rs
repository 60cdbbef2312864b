//! The authorization_code grant with PKCE (RFC 6749 §4.1.3, RFC 7636, S256 only): a client
//! exchanges the code a sign-in gave it ([`crate::issuer::routes::authorize`]) for an access
//! token and, with offline access, the first refresh token of a new family.
//!
//! The order of the writes is the protection: the code is taken (consumed) before anything is
//! checked, so it can never be guessed at twice; the refresh-token family is stored before the
//! token is returned; and what the exchange issued is recorded with the code, so that a second
//! exchange of the code, even one racing this one, revokes it ([`Store::take_code`],
//! [`Store::record_code_grant`]).

use super::{Context, Issued, Target};
use crate::api::GrantType;
use crate::config::ApiConfig;
use crate::issuer::error::{OAuthError, store_error};
use crate::issuer::form::Form;
use crate::issuer::protocol::{self, OFFLINE_ACCESS, Subject};
use crate::store::{CodeGrant, CodeOutcome, FamilyId, NewFamily, OpaqueToken, Store};
use base64::Engine as _;
use std::collections::BTreeSet;
use subtle::ConstantTimeEq;

/// The answer to a code presented a second time: what its first exchange issued is revoked.
pub(crate) const REPLAYED: OAuthError =
    OAuthError::invalid_grant("the code was already used; what it issued is revoked");

/// An authorization_code request's parameters.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CodeExchange<'f> {
    pub code: &'f str,
    pub redirect_uri: &'f str,
    pub code_verifier: &'f str,
    /// A code exchange may name its API again (only the one of the code); its `scope` is
    /// ignored: the code's is granted.
    pub target: Target<'f>,
}

impl std::fmt::Debug for CodeExchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeExchange")
            .field("redirect_uri", &self.redirect_uri)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<'f> CodeExchange<'f> {
    pub(super) fn parse(form: &'f Form, target: Target<'f>) -> Result<Self, OAuthError> {
        Ok(Self {
            code: form.require("code", "code is required")?,
            redirect_uri: form.require("redirect_uri", "redirect_uri is required")?,
            code_verifier: form.require("code_verifier", "code_verifier is required (PKCE)")?,
            target,
        })
    }
}

/// Exchange the code: take it, check it was issued to this client and redirect URI with this
/// verifier's challenge, mint, store the new family if offline access was granted, then record
/// what was issued with the code.
pub(crate) async fn issue<S: Store>(
    cx: &Context<'_, S>,
    exchange: &CodeExchange<'_>,
) -> Result<Issued, OAuthError> {
    let hash = OpaqueToken::from_presented(exchange.code).hash();
    let granted = match cx
        .store
        .take_code(hash, cx.now)
        .await
        .map_err(store_error)?
    {
        CodeOutcome::Valid(granted) => granted,
        CodeOutcome::Replayed => return Err(REPLAYED),
        CodeOutcome::Expired | CodeOutcome::NotFound => {
            return Err(OAuthError::invalid_grant("the code is invalid or expired"));
        }
    };
    if granted.client_id != cx.client.client_id || granted.redirect_uri != exchange.redirect_uri {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client or redirect_uri",
        ));
    }
    if !pkce_s256_matches(exchange.code_verifier, &granted.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "the code_verifier does not match",
        ));
    }
    let target = &exchange.target;
    protocol::require_granted_audience(&granted.audience, target.audience, &target.resources)?;
    let api = cx
        .config
        .apis
        .get(&granted.audience)
        .ok_or(OAuthError::invalid_grant(
            "the API of this code no longer exists",
        ))?;
    let mut scopes = protocol::parse_scope(Some(&granted.scope));
    let offline_asked = scopes.remove(OFFLINE_ACCESS);
    let scope = protocol::scope_string(&scopes);
    // The access token names the family it comes with, so that ending the family ends it.
    let family = if protocol::may_issue_refresh_token(
        GrantType::AuthorizationCode,
        api,
        cx.client,
        offline_asked,
    ) {
        Some(FamilyId::generate().map_err(store_error)?)
    } else {
        None
    };
    let minted = cx.mint(api, Subject::User(&granted.subject), &scope, family)?;
    let refresh_token = match family {
        Some(id) => Some(new_family(cx, id, api, &granted.subject, &scopes).await?),
        None => None,
    };
    let grant = CodeGrant {
        access_token_jti: minted.jti.clone(),
        access_token_expires_at: minted.expires_at,
        family: refresh_token.as_ref().map(|(_, family)| *family),
    };
    if !cx
        .store
        .record_code_grant(hash, grant, cx.now)
        .await
        .map_err(store_error)?
    {
        return Err(REPLAYED);
    }
    Ok(Issued::new(
        api,
        minted,
        scopes,
        refresh_token.map(|(token, _)| token),
    ))
}

/// Start the refresh-token family `id`; the token is stored (as a hash) before it is returned.
async fn new_family<S: Store>(
    cx: &Context<'_, S>,
    id: FamilyId,
    api: &ApiConfig,
    subject: &str,
    scopes: &BTreeSet<String>,
) -> Result<(OpaqueToken, FamilyId), OAuthError> {
    let token = OpaqueToken::generate_refresh(id).map_err(store_error)?;
    let family = NewFamily {
        id,
        client_id: cx.client.client_id.clone(),
        audience: api.audience.clone(),
        subject: subject.to_owned(),
        scope: protocol::scope_string(scopes),
    };
    let family = cx
        .store
        .create_family(
            family,
            token.refresh_key(),
            cx.now,
            protocol::refresh_rules(api, cx.client.client_type),
        )
        .await
        .map_err(store_error)?;
    Ok((token, family.id))
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge, compared in constant time.
pub(crate) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let valid_verifier = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !valid_verifier {
        return false;
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(verifier.as_bytes());
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}
