//! Declared objects at scale, for the benchmarks and the size tests: `n` ApiTokenPolicies in
//! 100 namespaces and `n` Confidential ApiClients, each client with a secret of its own (so
//! that its hash does not compress, as in a real cluster) and two audiences.
//!
//! Not part of the library: the benchmarks include this file with `#[path]`, and so do the
//! library's unit tests (as `crate::at_scale`, through `extern crate self as tokenwarden`), so
//! it names everything by the crate's public paths.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use tokenwarden::api::{
    ApiClient, ApiClientSpec, ApiTokenPolicy, ApiTokenPolicySpec, AudienceGrant, ClientType,
    GrantType, ScopeDefinition,
};
use tokenwarden::config::{Declared, SecretData, Secrets};

/// The audience of policy `i`.
pub(crate) fn audience(i: usize) -> String {
    format!("https://api-{i}.payments.example.com")
}

/// A Confidential client_credentials client `name` in `namespace`, granted `audiences`, whose
/// Secret is the default `<name>-oauth` (no `secretRef`).
pub(crate) fn machine_client(
    namespace: &str,
    name: &str,
    audiences: Vec<AudienceGrant>,
) -> ApiClient {
    let mut c = ApiClient::new(
        name,
        ApiClientSpec {
            client_id: None,
            display_name: None,
            client_type: ClientType::Confidential,
            secret_ref: None,
            grant_types: vec![GrantType::ClientCredentials],
            redirect_uris: vec![],
            audiences,
            workload_identity: None,
        },
    );
    c.metadata.namespace = Some(namespace.into());
    c
}

/// `n` policies and `n` clients, as the controller's caches would hold them.
pub(crate) fn declared(n: usize) -> Declared {
    let namespace = |i: usize| format!("team-{}", i % 100);
    let policies = (0..n)
        .map(|i| {
            let mut p = ApiTokenPolicy::new(
                &format!("api-{i}"),
                ApiTokenPolicySpec {
                    audience: audience(i),
                    token_expiration_seconds: 600 + i as i64,
                    offline_access: i % 2 == 0,
                    signing_algorithm: Default::default(),
                    scopes: vec![
                        ScopeDefinition {
                            name: "accounts:read".into(),
                            description: Some("Read accounts".into()),
                        },
                        ScopeDefinition {
                            name: "accounts:write".into(),
                            description: None,
                        },
                    ],
                    refresh_tokens: Default::default(),
                    allowed_client_namespaces: vec!["*".into()],
                    introspection_clients: vec![],
                },
            );
            p.metadata.namespace = Some(namespace(i));
            p.into()
        })
        .collect();
    let mut secrets = Secrets::new();
    let clients = (0..n)
        .map(|i| {
            let grants = [i, (i + 1) % n].into_iter().map(|a| AudienceGrant {
                audience: audience(a),
                scopes: vec!["accounts:read".into()],
            });
            let c = machine_client(&namespace(i), &format!("client-{i}"), grants.collect());
            let secret: String = Sha256::digest(format!("secret {i}"))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            secrets.insert(
                (namespace(i), format!("client-{i}-oauth")),
                SecretData(BTreeMap::from([(
                    "clientSecret".to_owned(),
                    secret.into_bytes(),
                )])),
            );
            c.into()
        })
        .collect();
    Declared {
        policies,
        clients,
        guardrails: Vec::new(),
        secrets: Some(secrets),
        federated_issuers: Vec::new(),
        service_accounts: Some(Default::default()),
    }
}
