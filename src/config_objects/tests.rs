use super::*;
use crate::api::{
    ApiClient, ApiClientSpec, ApiTokenPolicy, ApiTokenPolicySpec, AudienceGrant, ClientType,
    GrantType, ScopeDefinition,
};
use crate::config::{Declared, SecretData, build};

/// 10,000 policies and 10,000 clients, each client with a 256-bit secret and two audiences,
/// built through the same function the controller calls.
fn declared_at_scale() -> Declared {
    let policies = (0..10_000)
        .map(|i| {
            let mut p = ApiTokenPolicy::new(
                &format!("api-{i}"),
                ApiTokenPolicySpec {
                    audience: format!("https://api-{i}.payments.example.com"),
                    token_expiration_seconds: 600 + i,
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
                },
            );
            p.metadata.namespace = Some(format!("team-{}", i % 100));
            p.into()
        })
        .collect();
    let mut secrets = crate::config::Secrets::new();
    let clients = (0..10_000)
        .map(|i| {
            let ns = format!("team-{}", i % 100);
            let mut c = ApiClient::new(
                &format!("client-{i}"),
                ApiClientSpec {
                    client_id: None,
                    client_type: ClientType::Confidential,
                    secret_ref: None,
                    grant_types: vec![GrantType::ClientCredentials],
                    redirect_uris: vec![],
                    audiences: [i, (i + 1) % 10_000]
                        .iter()
                        .map(|a| AudienceGrant {
                            audience: format!("https://api-{a}.payments.example.com"),
                            scopes: vec!["accounts:read".into()],
                        })
                        .collect(),
                },
            );
            c.metadata.namespace = Some(ns.clone());
            // A different, incompressible secret for every client.
            let secret = hex(&Sha256::digest(format!("secret {i}")));
            secrets.insert(
                (ns, format!("client-{i}-oauth")),
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
        secrets: Some(secrets),
    }
}

fn manifest_of(encoded: &Encoded, revision: u64) -> Manifest {
    Manifest {
        revision,
        sha256: encoded.sha256.clone(),
        shards: encoded.shards.len(),
    }
}

fn objects(encoded: &Encoded) -> Vec<Option<ConfigMap>> {
    (1..=encoded.shards.len())
        .map(|i| shard_object("ns", encoded, i))
        .collect()
}

#[test]
fn ten_thousand_policies_and_clients_fit_in_objects_under_one_mebibyte_and_read_back_equal() {
    let built = build(&declared_at_scale());
    assert_eq!(built.config.apis.len(), 10_000);
    assert_eq!(built.config.clients.len(), 10_000);
    let encoded = encode(&built.config).expect("encoded");
    let manifest = manifest_of(&encoded, 7);
    let shards = objects(&encoded);
    for shard in shards.iter().flatten() {
        // What the API server stores: the JSON of the object, binaryData in base64.
        let size = serde_json::to_vec(shard).expect("json").len();
        assert!(size < 1024 * 1024, "a shard of {size} bytes");
    }
    let manifest_object = manifest_object("ns", &manifest);
    assert_eq!(read_manifest(&manifest_object).expect("manifest"), manifest);
    let back = assemble(&manifest, &shards).expect("assembled");
    assert_eq!(back, built.config);
    eprintln!(
        "10,000 + 10,000: {} bytes of JSON, {} compressed, {} shard(s)",
        encoded.json_bytes,
        encoded.compressed_bytes,
        encoded.shards.len()
    );
}

#[test]
fn equal_configurations_have_equal_checksums_and_a_change_changes_it() {
    let built = build(&declared_at_scale());
    let a = encode(&built.config).expect("a");
    let b = encode(&built.config.clone()).expect("b");
    assert_eq!(a.sha256, b.sha256);
    let mut changed = built.config.clone();
    if let Some(api) = changed.apis.values_mut().next() {
        api.token_expiration_seconds += 1;
    }
    assert_ne!(encode(&changed).expect("changed").sha256, a.sha256);
}

fn small() -> (IssuerConfig, Encoded) {
    let mut config = IssuerConfig::default();
    config.apis.insert(
        "https://a".into(),
        crate::config::ApiConfig {
            audience: "https://a".into(),
            token_expiration_seconds: 600,
            offline_access: true,
            signing_algorithm: Default::default(),
            scopes: Default::default(),
            refresh_tokens: Default::default(),
        },
    );
    let encoded = encode(&config).expect("encoded");
    (config, encoded)
}

#[test]
fn a_shard_of_another_revision_is_a_write_in_progress() {
    let (_, encoded) = small();
    let (_, other) = {
        let mut config = IssuerConfig::default();
        config.clients.clear();
        (config.clone(), encode(&config).expect("other"))
    };
    let manifest = manifest_of(&encoded, 2);
    let error = assemble(&manifest, &objects(&other)).expect_err("mismatch");
    assert!(matches!(error, ObjectsError::ShardMismatch(_)), "{error}");
    let error = assemble(&manifest, &[None]).expect_err("missing");
    assert!(matches!(error, ObjectsError::ShardMissing(_)), "{error}");
}

#[test]
fn corrupted_bytes_fail_the_checksum_or_the_decoder() {
    let (config, encoded) = small();
    let manifest = manifest_of(&encoded, 1);
    assert_eq!(assemble(&manifest, &objects(&encoded)).expect("ok"), config);
    let mut shards = objects(&encoded);
    if let Some(Some(shard)) = shards.first_mut()
        && let Some(bytes) = shard
            .binary_data
            .as_mut()
            .and_then(|b| b.get_mut(SHARD_KEY))
    {
        let last = bytes.0.len() - 12;
        bytes.0[last] ^= 0xff;
    }
    assert!(assemble(&manifest, &shards).is_err());
    let mut wrong = manifest.clone();
    wrong.sha256 = "00".repeat(32);
    let mut relabelled = objects(&encoded);
    for shard in relabelled.iter_mut().flatten() {
        shard
            .data
            .as_mut()
            .map(|d| d.insert("sha256".into(), wrong.sha256.clone()));
    }
    assert!(matches!(
        assemble(&wrong, &relabelled),
        Err(ObjectsError::Checksum)
    ));
}

#[test]
fn a_manifest_of_an_unknown_format_or_shard_count_is_refused() {
    let (_, encoded) = small();
    let mut map = manifest_object("ns", &manifest_of(&encoded, 1));
    map.data
        .as_mut()
        .map(|d| d.insert("shards".into(), "0".into()));
    assert!(read_manifest(&map).is_err());
    map.data
        .as_mut()
        .map(|d| d.insert("format".into(), "zstd-json-v9".into()));
    assert!(read_manifest(&map).is_err());
}
