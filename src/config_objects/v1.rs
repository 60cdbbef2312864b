//! The configuration as `gzip-postcard-v1` laid it out, before `ApiConfig` gained
//! `scope_descriptions` and `introspection_clients` and `ClientConfig` gained `display_name`:
//! postcard writes no field names, so a configuration of that version is read with these types
//! and converted. Read only, for issuers that follow a controller of
//! the previous version during a rolling upgrade.

use crate::api::{ClientType, GrantType, RefreshTokenSettings, SigningAlgorithm};
use crate::config::{ApiConfig, ClientConfig, IssuerConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// `IssuerConfig` of `gzip-postcard-v1`.
#[derive(Serialize, Deserialize)]
pub(crate) struct IssuerConfigV1 {
    apis: BTreeMap<String, ApiConfigV1>,
    clients: BTreeMap<String, ClientConfigV1>,
}

/// `ClientConfig` of `gzip-postcard-v1`, its fields in their order then. The secret's hash is
/// 32 raw bytes, as `ClientConfig` writes it in binary formats.
#[derive(Serialize, Deserialize)]
struct ClientConfigV1 {
    client_id: String,
    namespace: String,
    client_type: ClientType,
    secret_sha256: Option<[u8; 32]>,
    grant_types: BTreeSet<GrantType>,
    redirect_uris: Vec<String>,
    audiences: BTreeMap<String, BTreeSet<String>>,
}

impl From<ClientConfigV1> for ClientConfig {
    fn from(old: ClientConfigV1) -> Self {
        Self {
            client_id: old.client_id,
            namespace: old.namespace,
            display_name: None,
            client_type: old.client_type,
            secret_sha256: old.secret_sha256,
            grant_types: old.grant_types,
            redirect_uris: old.redirect_uris,
            audiences: old.audiences,
        }
    }
}

impl From<&ClientConfig> for ClientConfigV1 {
    fn from(client: &ClientConfig) -> Self {
        Self {
            client_id: client.client_id.clone(),
            namespace: client.namespace.clone(),
            client_type: client.client_type,
            secret_sha256: client.secret_sha256,
            grant_types: client.grant_types.clone(),
            redirect_uris: client.redirect_uris.clone(),
            audiences: client.audiences.clone(),
        }
    }
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
                    scope_descriptions: BTreeMap::new(),
                    introspection_clients: BTreeSet::new(),
                };
                (audience, api)
            })
            .collect();
        Self {
            apis,
            clients: old
                .clients
                .into_iter()
                .map(|(id, c)| (id, c.into()))
                .collect(),
            workload_identity: Default::default(),
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
            clients: config
                .clients
                .iter()
                .map(|(id, c)| (id.clone(), c.into()))
                .collect(),
        }
    }
}
