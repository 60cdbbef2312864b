//! `POST /oauth/token` (RFC 6749 §3.2): client_credentials, authorization_code with PKCE
//! (RFC 7636, S256 only) and refresh_token. The decisions are in [`super::super::protocol`];
//! this file reads the request, calls the store and the minter in the right order, and writes
//! the response. No token leaves before what it depends on is stored.

use crate::api::GrantType;
use crate::config::{ApiConfig, ClientConfig};
use crate::issuer::client_auth;
use crate::issuer::error::{OAuthError, store_error};
use crate::issuer::form::Form;
use crate::issuer::metrics::GrantLabels;
use crate::issuer::protocol::{self, FamilyGrant, GrantedScopes, OFFLINE_ACCESS, Subject};
use crate::issuer::routes::respond::{forbid_caching, require_form_content_type};
use crate::issuer::state::Issuer;
use crate::store::{
    CodeGrant, CodeOutcome, FamilyId, NewFamily, OpaqueToken, RefreshOutcome, RefreshRequest,
    RefreshTokenView, Store, TokenHash,
};
use crate::tokens::{AccessTokenClaims, MintedToken};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Instant;
use subtle::ConstantTimeEq;

/// The successful token response (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// The API the token is for: a metric label, not part of the response.
    #[serde(skip)]
    audience: String,
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self).into_response();
        forbid_caching(response.headers_mut());
        response
    }
}

/// The handler: counts every request by grant type, audience and outcome, and times it by
/// grant type.
pub async fn token(State(issuer): State<Issuer>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let form = Form::parse(&body);
    let grant = grant_label(form.as_ref().ok());
    let result = handle(&issuer, &headers, form).await;
    let labels = match &result {
        Ok(issued) => GrantLabels {
            grant,
            audience: issued.audience.clone(),
            outcome: "issued",
        },
        Err(e) => GrantLabels {
            grant,
            audience: String::new(),
            outcome: e.code.as_str(),
        },
    };
    issuer.metrics.token_requests.get_or_create(&labels).inc();
    issuer
        .metrics
        .token_latency
        .get_or_create(&crate::issuer::metrics::GrantLabel { grant })
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The grant type as a bounded metric label.
fn grant_label(form: Option<&Form>) -> &'static str {
    match form.and_then(|f| f.get("grant_type")) {
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}

async fn handle(
    issuer: &Issuer,
    headers: &HeaderMap,
    form: Result<Form, OAuthError>,
) -> Result<TokenResponse, OAuthError> {
    require_form_content_type(headers)?;
    let form = form?;
    let snapshot = issuer.policies.current();
    let (client, _) = client_auth::authenticate(&snapshot.config, headers, &form)?;
    let grant = match form.require("grant_type", "grant_type is required")? {
        "client_credentials" => GrantType::ClientCredentials,
        "authorization_code" => GrantType::AuthorizationCode,
        "refresh_token" => GrantType::RefreshToken,
        _ => {
            return Err(OAuthError::new(
                crate::issuer::error::ErrorCode::UnsupportedGrantType,
                "supported grant types: client_credentials, authorization_code, refresh_token",
            ));
        }
    };
    require_grant(client, grant)?;
    let request = GrantRequest {
        issuer,
        config: &snapshot.config,
        client,
        form: &form,
        now: issuer.clock.now(),
    };
    match grant {
        GrantType::ClientCredentials => request.client_credentials(),
        GrantType::AuthorizationCode => request.authorization_code().await,
        GrantType::RefreshToken => request.refresh_token().await,
    }
}

/// A token request of an authenticated client that may use its grant type: what each grant
/// works from.
#[derive(Clone, Copy)]
struct GrantRequest<'a> {
    issuer: &'a Issuer,
    config: &'a crate::config::IssuerConfig,
    client: &'a ClientConfig,
    form: &'a Form,
    now: u64,
}

fn require_grant(client: &ClientConfig, grant: GrantType) -> Result<(), OAuthError> {
    if client.grant_types.contains(&grant) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(
            "this client may not use this grant type",
        ))
    }
}

impl GrantRequest<'_> {
    fn client_credentials(self) -> Result<TokenResponse, OAuthError> {
        if self.client.client_type != crate::api::ClientType::Confidential {
            return Err(OAuthError::unauthorized_client(
                "client_credentials is for confidential clients",
            ));
        }
        let api = protocol::select_api(
            self.config,
            self.client,
            self.form.get("audience"),
            &self.form.all("resource"),
        )?;
        // offline_access is ignored: client_credentials never gets a refresh token (§4.4.3).
        let GrantedScopes { api_scopes, .. } =
            protocol::grant_scopes(api, self.client, self.form.get("scope"))?;
        let scope = protocol::scope_string(&api_scopes);
        let minted = mint(
            self.issuer,
            api,
            Subject::Client(&self.client.client_id),
            &self.client.client_id,
            &scope,
            None,
            self.now,
        )?;
        Ok(response(api, minted, api_scopes, None))
    }

    async fn authorization_code(self) -> Result<TokenResponse, OAuthError> {
        let code = OpaqueToken::from_presented(self.form.require("code", "code is required")?);
        let redirect_uri = self
            .form
            .require("redirect_uri", "redirect_uri is required")?;
        let verifier = self
            .form
            .require("code_verifier", "code_verifier is required (PKCE)")?;
        let hash = code.hash();
        let granted = match self
            .issuer
            .store
            .take_code(hash, self.now)
            .await
            .map_err(store_error)?
        {
            CodeOutcome::Valid(granted) => granted,
            CodeOutcome::Replayed => {
                return Err(OAuthError::invalid_grant(
                    "the code was already used; what it issued is revoked",
                ));
            }
            CodeOutcome::Expired | CodeOutcome::NotFound => {
                return Err(OAuthError::invalid_grant("the code is invalid or expired"));
            }
        };
        if granted.client_id != self.client.client_id || granted.redirect_uri != redirect_uri {
            return Err(OAuthError::invalid_grant(
                "the code was issued to another client or redirect_uri",
            ));
        }
        if !pkce_s256_matches(verifier, &granted.code_challenge) {
            return Err(OAuthError::invalid_grant(
                "the code_verifier does not match",
            ));
        }
        protocol::require_granted_audience(
            &granted.audience,
            self.form.get("audience"),
            &self.form.all("resource"),
        )?;
        let api = self
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
            self.client,
            offline_asked,
        ) {
            Some(FamilyId::generate().map_err(store_error)?)
        } else {
            None
        };
        let minted = mint(
            self.issuer,
            api,
            Subject::User(&granted.subject),
            &self.client.client_id,
            &scope,
            family,
            self.now,
        )?;
        let refresh_token = match family {
            Some(id) => Some(
                new_family(
                    self.issuer,
                    id,
                    api,
                    self.client,
                    &granted.subject,
                    &scopes,
                    self.now,
                )
                .await?,
            ),
            None => None,
        };
        let grant = CodeGrant {
            access_token_jti: minted.jti.clone(),
            access_token_expires_at: minted.expires_at,
            family: refresh_token.as_ref().map(|(_, family)| *family),
        };
        if !self
            .issuer
            .store
            .record_code_grant(hash, grant, self.now)
            .await
            .map_err(store_error)?
        {
            return Err(OAuthError::invalid_grant(
                "the code was already used; what it issued is revoked",
            ));
        }
        Ok(response(
            api,
            minted,
            scopes,
            refresh_token.map(|(token, _)| token),
        ))
    }

    async fn refresh_token(self) -> Result<TokenResponse, OAuthError> {
        let presented = self
            .form
            .require("refresh_token", "refresh_token is required")?;
        let (hash, view) = find_refresh_token(self.issuer, presented)
            .await?
            .ok_or(OAuthError::invalid_grant("the refresh token is invalid"))?;
        let mut original = protocol::parse_scope(Some(&view.family.scope));
        original.remove(OFFLINE_ACCESS);
        let family = FamilyGrant {
            client_id: &view.family.client_id,
            audience: &view.family.audience,
            scopes: &original,
        };
        let (api, scopes) = protocol::check_refresh(
            self.config,
            self.client,
            &family,
            self.form.get("audience"),
            &self.form.all("resource"),
            self.form.get("scope"),
        )?;
        let new = OpaqueToken::generate_refresh(view.family.id).map_err(store_error)?;
        let request = RefreshRequest {
            presented: hash,
            new: new.refresh_key(),
            client_id: self.client.client_id.clone(),
            audience: api.audience.clone(),
        };
        let outcome = self
            .issuer
            .store
            .refresh(
                request,
                self.now,
                protocol::refresh_rules(api, self.client.client_type),
            )
            .await
            .map_err(store_error)?;
        let mut returned = match &outcome {
            RefreshOutcome::Rotated { .. } | RefreshOutcome::ReuseWithinGrace { .. } => Some(new),
            RefreshOutcome::NonRotating { .. } => None,
            RefreshOutcome::ReplayDetected { .. } => {
                self.issuer.metrics.refresh_reuse_detected.inc();
                tracing::warn!(client_id = %self.client.client_id, "retired refresh token presented again; its family is revoked");
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
        let offline_asked = self
            .form
            .get("scope")
            .is_none_or(|asked| asked.split(' ').any(|s| s == OFFLINE_ACCESS));
        let mut family = Some(view.family.id);
        if !protocol::may_issue_refresh_token(
            GrantType::RefreshToken,
            api,
            self.client,
            offline_asked,
        ) {
            self.issuer
                .store
                .revoke_refresh_token(hash, &self.client.client_id, self.now)
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
        let minted = mint(
            self.issuer,
            api,
            Subject::User(&subject),
            &self.client.client_id,
            &scope,
            family,
            self.now,
        )?;
        Ok(response(api, minted, scopes, returned))
    }
}

fn response(
    api: &ApiConfig,
    minted: MintedToken,
    mut scopes: BTreeSet<String>,
    refresh: Option<OpaqueToken>,
) -> TokenResponse {
    if refresh.is_some() {
        scopes.insert(OFFLINE_ACCESS.to_owned());
    }
    TokenResponse {
        access_token: minted.token,
        token_type: "Bearer",
        expires_in: protocol::access_token_lifetime(api),
        scope: protocol::scope_string(&scopes),
        refresh_token: refresh.map(|t| t.expose().to_owned()),
        audience: api.audience.clone(),
    }
}

/// Start the refresh-token family `id`; the token is stored (as a hash) before it is returned.
async fn new_family(
    issuer: &Issuer,
    id: FamilyId,
    api: &ApiConfig,
    client: &ClientConfig,
    subject: &str,
    scopes: &BTreeSet<String>,
    now: u64,
) -> Result<(OpaqueToken, FamilyId), OAuthError> {
    let token = OpaqueToken::generate_refresh(id).map_err(store_error)?;
    let family = NewFamily {
        id,
        client_id: client.client_id.clone(),
        audience: api.audience.clone(),
        subject: subject.to_owned(),
        scope: protocol::scope_string(scopes),
    };
    let family = issuer
        .store
        .create_family(
            family,
            token.refresh_key(),
            now,
            protocol::refresh_rules(api, client.client_type),
        )
        .await
        .map_err(store_error)?;
    Ok((token, family.id))
}

fn mint(
    issuer: &Issuer,
    api: &ApiConfig,
    subject: Subject<'_>,
    client_id: &str,
    scope: &str,
    family: Option<FamilyId>,
    now: u64,
) -> Result<MintedToken, OAuthError> {
    let keys = issuer.keys.load();
    let subject = subject.claim();
    let session = family.map(|id| id.to_string());
    let claims = AccessTokenClaims {
        issuer: &issuer.issuer_url,
        subject: &subject,
        audience: &api.audience,
        client_id,
        scope,
        session: session.as_deref(),
    };
    keys.minter
        .mint(
            api.signing_algorithm,
            &claims,
            protocol::access_token_lifetime(api),
            now,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "cannot sign an access token");
            OAuthError::server_error()
        })
}

/// RFC 7636 S256: BASE64URL(SHA256(verifier)) == challenge, compared in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
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

/// The stored refresh token with the value a client presented, and its hash; `None`: no
/// refresh token has this value.
pub async fn find_refresh_token(
    issuer: &Issuer,
    presented: &str,
) -> Result<Option<(TokenHash, RefreshTokenView)>, OAuthError> {
    let hash = OpaqueToken::from_presented(presented).refresh_key();
    let view = issuer
        .store
        .lookup_refresh_token(hash)
        .await
        .map_err(store_error)?;
    Ok(view.map(|view| (hash, view)))
}
