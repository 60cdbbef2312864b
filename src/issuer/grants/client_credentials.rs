//! The client_credentials grant (RFC 6749 §4.4): a confidential client asks for a token for
//! itself. Nothing is stored, and no refresh token is ever issued (§4.4.3).

use super::{Context, Issued, Target};
use crate::api::ClientType;
use crate::issuer::error::OAuthError;
use crate::issuer::protocol::{self, GrantedScopes, Subject};

/// Mint the client's token for the API `target` names, with the scopes it asks for (all it
/// may have, without `scope`).
pub(crate) fn issue<S>(cx: &Context<'_, S>, target: &Target<'_>) -> Result<Issued, OAuthError> {
    if cx.client.client_type != ClientType::Confidential {
        return Err(OAuthError::unauthorized_client(
            "client_credentials is for confidential clients",
        ));
    }
    let api = protocol::select_api(cx.config, cx.client, target.audience, &target.resources)?;
    // offline_access is ignored: client_credentials never gets a refresh token (§4.4.3).
    let GrantedScopes { api_scopes, .. } = protocol::grant_scopes(api, cx.client, target.scope)?;
    let scope = protocol::scope_string(&api_scopes);
    let minted = cx.mint(api, Subject::Client(&cx.client.client_id), &scope, None)?;
    Ok(Issued::new(api, minted, api_scopes, None))
}
