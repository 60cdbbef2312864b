//! Where a workload token's keys come from, cached, and read again on an unknown `kid` at most
//! every [`REFETCH_AT_MOST_EVERY`]:
//!
//! - the cluster's service-account issuer: its OIDC discovery (`/.well-known/openid-configuration`,
//!   for the `iss` its tokens carry) and JWKS (`/openid/v1/jwks`), read through the API server
//!   with the issuer's own ServiceAccount (the `system:service-account-issuer-discovery`
//!   ClusterRole), never from a URL a document names;
//! - a FederatedIssuer: its `jwksUri`, or the `jwks_uri` of its discovery document, over
//!   https (http on a loopback host only), without credentials.
//!
//! Must not verify tokens ([`super::verify`]) nor decide who acts as whom.

use crate::issuer::upstream::provider::{
    Fetched, ProviderError, REFETCH_AT_MOST_EVERY, acceptable_url, read_json,
};
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Keys and discovery documents are read again after this long.
const CACHE_FOR: Duration = Duration::from_secs(60 * 60);
/// How long one request for keys may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The part of a discovery document used here.
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// The cluster's service-account issuer, read through the API server.
pub(crate) struct ClusterKeys {
    client: kube::Client,
    discovery: Fetched<Discovery>,
    keys: Fetched<JwkSet>,
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterKeys").finish_non_exhaustive()
    }
}

impl ClusterKeys {
    pub(crate) fn new(client: kube::Client) -> Self {
        Self {
            client,
            discovery: Fetched::new("the cluster's service-account issuer discovery"),
            keys: Fetched::new("the cluster's service-account JWKS"),
        }
    }

    /// The `iss` of the cluster's ServiceAccount tokens.
    pub(crate) async fn issuer(&self) -> Result<String, ProviderError> {
        let discovery = self
            .discovery
            .get(CACHE_FOR, async || {
                api_server_json(
                    &self.client,
                    "discovery",
                    "/.well-known/openid-configuration",
                )
                .await
            })
            .await?;
        Ok(discovery.issuer)
    }

    /// The keys the cluster publishes; `refresh` reads them again (an unknown `kid`).
    pub(crate) async fn keys(&self, refresh: bool) -> Result<JwkSet, ProviderError> {
        self.keys
            .get(fresh_for(refresh), async || {
                api_server_json(&self.client, "JWKS", "/openid/v1/jwks").await
            })
            .await
    }
}

async fn api_server_json<T: serde::de::DeserializeOwned>(
    client: &kube::Client,
    step: &'static str,
    path: &str,
) -> Result<T, ProviderError> {
    let invalid = |reason: String| ProviderError::Invalid { step, reason };
    let request = axum::http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| invalid(e.to_string()))?;
    let text = client
        .request_text(request)
        .await
        .map_err(|e| invalid(format!("the API server refused or failed: {e}")))?;
    serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))
}

fn fresh_for(refresh: bool) -> Duration {
    if refresh {
        REFETCH_AT_MOST_EVERY
    } else {
        CACHE_FOR
    }
}

/// One FederatedIssuer's keys.
struct OidcKeys {
    issuer_url: String,
    jwks_uri: Option<String>,
    discovery: Fetched<Discovery>,
    keys: Fetched<JwkSet>,
}

/// A FederatedIssuer's issuer URL and `jwksUri`.
type IssuerKey = (String, Option<String>);

/// The keys of every FederatedIssuer asked about, by issuer URL and JWKS URL.
pub(crate) struct FederatedKeys {
    http: reqwest::Client,
    issuers: Mutex<HashMap<IssuerKey, Arc<OidcKeys>>>,
}

impl std::fmt::Debug for FederatedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedKeys").finish_non_exhaustive()
    }
}

impl FederatedKeys {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            issuers: Mutex::default(),
        })
    }

    /// The keys of the issuer at `issuer_url` (from `jwks_uri` when given, else its
    /// discovery); `refresh` reads them again.
    pub(crate) async fn keys(
        &self,
        issuer_url: &str,
        jwks_uri: Option<&str>,
        refresh: bool,
    ) -> Result<JwkSet, ProviderError> {
        let issuer = {
            let mut issuers = self
                .issuers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let key = (issuer_url.to_owned(), jwks_uri.map(str::to_owned));
            issuers
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(OidcKeys {
                        issuer_url: issuer_url.to_owned(),
                        jwks_uri: jwks_uri.map(str::to_owned),
                        discovery: Fetched::new("a federated issuer's discovery"),
                        keys: Fetched::new("a federated issuer's JWKS"),
                    })
                })
                .clone()
        };
        issuer
            .keys
            .get(fresh_for(refresh), async || {
                let uri = match &issuer.jwks_uri {
                    Some(uri) => uri.clone(),
                    None => self.discover(&issuer).await?.jwks_uri,
                };
                read_json("JWKS", self.http.get(&uri).send().await).await
            })
            .await
    }

    async fn discover(&self, issuer: &OidcKeys) -> Result<Discovery, ProviderError> {
        issuer
            .discovery
            .get(CACHE_FOR, async || {
                const STEP: &str = "discovery";
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    issuer.issuer_url.trim_end_matches('/')
                );
                let discovery: Discovery =
                    read_json(STEP, self.http.get(&url).send().await).await?;
                let invalid = |reason: &str| ProviderError::Invalid {
                    step: STEP,
                    reason: reason.to_owned(),
                };
                // OpenID Connect Discovery §4.3: exactly the issuer asked for.
                if discovery.issuer != issuer.issuer_url {
                    return Err(invalid("its issuer is not the FederatedIssuer's issuerUrl"));
                }
                if !acceptable_url(&discovery.jwks_uri) {
                    return Err(invalid(
                        "its jwks_uri is not an https URL (http only on a loopback host)",
                    ));
                }
                Ok(discovery)
            })
            .await
    }
}
