//! The configuration as `gzip-postcard-v1` laid it out, before `ApiConfig` gained
//! `introspection_clients`: postcard writes no field names, so a configuration of that version
//! is read with these types and converted. Read only, for issuers that follow a controller of
//! the previous version during a rolling upgrade.

use crate::api::{RefreshTokenSettings, SigningAlgorithm};
use crate::config::{ApiConfig, ClientConfig, IssuerConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `IssuerConfig` of `gzip-postcard-v1`.
#[derive(Serialize, Deserialize)]
pub struct IssuerConfigV1 {
    apis: BTreeMap<String, ApiConfigV1>,
    clients: BTreeMap<String, ClientConfig>,
}

/// `ApiConfig` of `gzip-postcard-v1`, its fields in their order then.
#[derive(Serialize, Deserialize)]
struct ApiConfigV1 {
    audience: String,
    token_expiration_seconds: i64,
    offline_access: bool,
    signing_algorithm: SigningAlgorithm,
    scopes: BTreeSet<String>,
    refresh_tokens: RefreshTokenSettings,
}

impl From<IssuerConfigV1> for IssuerConfig {
    /// No API names an introspection client in a configuration of that version: until the
    /// new controller publishes, no client may introspect access tokens.
    fn from(old: IssuerConfigV1) -> Self {
        let apis = old
            .apis
            .into_iter()
            .map(|(audience, api)| {
                let api = ApiConfig {
                    audience: api.audience,
                    token_expiration_seconds: api.token_expiration_seconds,
                    offline_access: api.offline_access,
                    signing_algorithm: api.signing_algorithm,
                    scopes: api.scopes,
                    refresh_tokens: api.refresh_tokens,
                    introspection_clients: BTreeSet::new(),
                };
                (audience, api)
            })
            .collect();
        Self {
            apis,
            clients: old.clients,
        }
    }
}

impl From<&IssuerConfig> for IssuerConfigV1 {
    /// What the previous version wrote for `config` (for tests of the upgrade path).
    fn from(config: &IssuerConfig) -> Self {
        let apis = config
            .apis
            .iter()
            .map(|(audience, api)| {
                let api = ApiConfigV1 {
                    audience: api.audience.clone(),
                    token_expiration_seconds: api.token_expiration_seconds,
                    offline_access: api.offline_access,
                    signing_algorithm: api.signing_algorithm,
                    scopes: api.scopes.clone(),
                    refresh_tokens: api.refresh_tokens.clone(),
                };
                (audience.clone(), api)
            })
            .collect();
        Self {
            apis,
            clients: config.clients.clone(),
        }
    }
}
