use super::*;
use crate::api::{ClientType, GrantType};
use crate::config::build;
use std::collections::BTreeSet;

fn objects(encoded: &Encoded) -> Vec<Option<ConfigMap>> {
    (1..=encoded.shards.len())
        .map(|i| shard_object("ns", encoded, i))
        .collect()
}

#[test]
fn ten_thousand_policies_and_clients_fit_in_objects_under_one_mebibyte_and_read_back_equal() {
    let built = build(&crate::at_scale::declared(10_000));
    assert_eq!(built.config.apis.len(), 10_000);
    assert_eq!(built.config.clients.len(), 10_000);
    let encoded = encode(&built.config).expect("encoded");
    let manifest = encoded.manifest(7);
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
        "10,000 + 10,000: {} bytes uncompressed, {} compressed, {} shard(s)",
        encoded.uncompressed_bytes,
        encoded.compressed_bytes,
        encoded.shards.len()
    );
}

#[test]
fn equal_configurations_have_equal_checksums_and_a_change_changes_it() {
    let built = build(&crate::at_scale::declared(10_000));
    let a = encode(&built.config).expect("a");
    let b = encode(&built.config.clone()).expect("b");
    assert_eq!(a.sha256, b.sha256);
    let mut changed = built.config.clone();
    if let Some(api) = changed.apis.values_mut().next() {
        api.token_expiration_seconds += 1;
    }
    assert_ne!(encode(&changed).expect("changed").sha256, a.sha256);
}

/// One API; a confidential client (with a secret hash) and a public one (without).
fn small() -> (IssuerConfig, Encoded) {
    let mut config = IssuerConfig::default();
    config.apis.insert(
        "https://a".into(),
        crate::config::ApiConfig {
            audience: "https://a".into(),
            token_expiration_seconds: 600,
            offline_access: true,
            signing_algorithm: Default::default(),
            scopes: BTreeSet::from(["read".to_owned()]),
            refresh_tokens: Default::default(),
            scope_descriptions: BTreeMap::from([("read".to_owned(), "Read things".to_owned())]),
            introspection_clients: BTreeSet::from(["machine".to_owned()]),
        },
    );
    for (client_id, secret_sha256) in [("machine", Some([7u8; 32])), ("spa", None)] {
        config.clients.insert(
            client_id.into(),
            crate::config::ClientConfig {
                client_id: client_id.into(),
                namespace: "team".into(),
                display_name: secret_sha256.map(|_| "Machine".to_owned()),
                client_type: if secret_sha256.is_some() {
                    ClientType::Confidential
                } else {
                    ClientType::Public
                },
                secret_sha256,
                grant_types: BTreeSet::from([GrantType::ClientCredentials]),
                redirect_uris: vec!["https://spa.example/callback".into()],
                audiences: BTreeMap::from([(
                    "https://a".to_owned(),
                    BTreeSet::from(["read".to_owned()]),
                )]),
            },
        );
    }
    let encoded = encode(&config).expect("encoded");
    (config, encoded)
}

/// The objects and manifest the previous version wrote: JSON under `config.json.gz`.
fn written_as_json(config: &IssuerConfig) -> (Manifest, Vec<Option<ConfigMap>>) {
    written_as(config, Format::Json)
}

/// The objects and manifest a version writing `format` wrote.
fn written_as(config: &IssuerConfig, format: Format) -> (Manifest, Vec<Option<ConfigMap>>) {
    let mut json = Vec::new();
    format.serialize(config, &mut json).expect("serialise");
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(&json).expect("gzip");
    let compressed = gzip.finish().expect("gzip");
    let manifest = Manifest {
        format,
        revision: 3,
        sha256: hex(&Sha256::digest(&json)),
        shards: 1,
    };
    let mut shard = shard_object(
        "ns",
        &Encoded {
            sha256: manifest.sha256.clone(),
            uncompressed_bytes: json.len(),
            compressed_bytes: compressed.len(),
            shards: vec![compressed.clone()],
        },
        1,
    )
    .expect("shard");
    shard.binary_data = Some(BTreeMap::from([(
        format.shard_key().to_owned(),
        ByteString(compressed),
    )]));
    (manifest, vec![Some(shard)])
}

/// postcard has no field names: a configuration laid out before APIs named their
/// introspection clients must be read with the layout of then, not mistaken for the new one.
#[test]
fn a_configuration_written_as_postcard_v1_by_the_previous_version_is_read() {
    let (mut config, encoded) = small();
    // What v1 could not carry.
    for api in config.apis.values_mut() {
        api.introspection_clients.clear();
        api.scope_descriptions.clear();
    }
    for client in config.clients.values_mut() {
        client.display_name = None;
    }
    let (manifest, shards) = written_as(&config, Format::PostcardV1);
    let map = manifest_object("ns", &manifest);
    assert_eq!(
        map.data.as_ref().map(|d| d["format"].as_str()),
        Some("gzip-postcard-v1")
    );
    assert_eq!(read_manifest(&map).expect("manifest"), manifest);
    assert_eq!(assemble(&manifest, &shards).expect("assembled"), config);
    assert_eq!(
        manifest_object("ns", &encoded.manifest(1))
            .data
            .as_ref()
            .map(|d| d["format"].as_str()),
        Some("gzip-postcard-v3"),
        "this version writes v3"
    );
    // The new layout read as the old one does not pass for a configuration.
    let mut new_as_old = encoded.manifest(1);
    new_as_old.format = Format::PostcardV1;
    assert!(assemble(&new_as_old, &objects(&encoded)).is_err());
}

/// v2 is v3 without its last field, the workload identities.
#[test]
fn a_configuration_written_as_postcard_v2_before_workload_identity_is_read() {
    let (config, _) = small();
    let (manifest, shards) = written_as(&config, Format::PostcardV2);
    let map = manifest_object("ns", &manifest);
    assert_eq!(
        map.data.as_ref().map(|d| d["format"].as_str()),
        Some("gzip-postcard-v2")
    );
    assert_eq!(assemble(&manifest, &shards).expect("assembled"), config);
    // A v3 configuration with workload identities does not pass for a v2 one.
    let mut with_identity = config.clone();
    with_identity.workload_identity.service_accounts.insert(
        "apps/worker".into(),
        crate::config::ServiceAccountConfig {
            uid: "0b5e".into(),
            client_ids: ["apps.worker".to_owned()].into(),
        },
    );
    let (mut v3, shards) = written_as(&with_identity, Format::Postcard);
    assert_eq!(assemble(&v3, &shards).expect("v3"), with_identity);
    v3.format = Format::PostcardV2;
    assert!(assemble(&v3, &shards).is_err());
}

#[test]
fn a_configuration_written_as_json_by_the_previous_version_is_read() {
    let (config, _) = small();
    let (manifest, shards) = written_as_json(&config);
    let map = manifest_object("ns", &manifest);
    assert_eq!(
        map.data.as_ref().map(|d| d["format"].as_str()),
        Some("gzip-json-v1")
    );
    assert_eq!(read_manifest(&map).expect("manifest"), manifest);
    assert_eq!(assemble(&manifest, &shards).expect("assembled"), config);
    // The hash is hex in JSON, as the previous version wrote it.
    let json = String::from_utf8(serde_json::to_vec(&config).expect("json")).expect("utf-8");
    assert!(json.contains(&"07".repeat(32)), "{json}");
}

/// `shards` with their compressed bytes moved under `format`'s key.
fn relabelled(mut shards: Vec<Option<ConfigMap>>, format: Format) -> Vec<Option<ConfigMap>> {
    for shard in shards.iter_mut().flatten() {
        let bytes = shard
            .binary_data
            .take()
            .into_iter()
            .flat_map(|b| b.into_values());
        shard.binary_data = Some(bytes.map(|b| (format.shard_key().to_owned(), b)).collect());
    }
    shards
}

#[test]
fn bytes_are_decoded_as_the_manifest_says_never_guessed() {
    let (config, encoded) = small();
    let (json_manifest, json_shards) = written_as_json(&config);
    let mut postcard_as_json = encoded.manifest(1);
    postcard_as_json.format = Format::Json;
    let error = assemble(
        &postcard_as_json,
        &relabelled(objects(&encoded), Format::Json),
    )
    .expect_err("postcard is not JSON");
    assert!(matches!(error, ObjectsError::Decode(_)), "{error}");
    let mut json_as_postcard = json_manifest;
    json_as_postcard.format = Format::Postcard;
    let error = assemble(
        &json_as_postcard,
        &relabelled(json_shards, Format::Postcard),
    )
    .expect_err("JSON is not postcard");
    assert!(matches!(error, ObjectsError::Decode(_)), "{error}");
}

#[test]
fn a_shard_of_another_revision_is_a_write_in_progress() {
    let (_, encoded) = small();
    let (_, other) = {
        let mut config = IssuerConfig::default();
        config.clients.clear();
        (config.clone(), encode(&config).expect("other"))
    };
    let manifest = encoded.manifest(2);
    let error = assemble(&manifest, &objects(&other)).expect_err("mismatch");
    assert!(matches!(error, ObjectsError::ShardMismatch(_)), "{error}");
    let error = assemble(&manifest, &[None]).expect_err("missing");
    assert!(matches!(error, ObjectsError::ShardMissing(_)), "{error}");
}

#[test]
fn corrupted_bytes_fail_the_checksum_or_the_decoder() {
    let (config, encoded) = small();
    let manifest = encoded.manifest(1);
    assert_eq!(assemble(&manifest, &objects(&encoded)).expect("ok"), config);
    let mut shards = objects(&encoded);
    if let Some(Some(shard)) = shards.first_mut()
        && let Some(bytes) = shard
            .binary_data
            .as_mut()
            .and_then(|b| b.get_mut(Format::WRITTEN.shard_key()))
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
    let good = manifest_object("ns", &encoded.manifest(1));
    assert!(read_manifest(&good).is_ok());
    for (key, value) in [
        ("shards", "0"),
        ("shards", "33"),
        ("format", "zstd-json-v9"),
    ] {
        let mut map = good.clone();
        map.data
            .as_mut()
            .map(|d| d.insert(key.into(), value.into()));
        let error = read_manifest(&map).expect_err(value).to_string();
        assert!(
            error.contains(&format!("data.{key}")) || error.contains(value),
            "{error}"
        );
    }
}

#[test]
fn the_namespace_is_the_flag_else_the_pods_else_tokenwarden_system() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let pods = dir.path().join("namespace");
    let given = |flag: Option<&str>| namespace_or_pods(flag.map(str::to_owned), &pods);
    assert_eq!(given(None), "tokenwarden-system", "outside a pod");
    assert_eq!(
        given(Some("")),
        "tokenwarden-system",
        "an empty flag is none"
    );
    std::fs::write(&pods, "payments\n").expect("write");
    assert_eq!(given(None), "payments", "in a pod");
    assert_eq!(given(Some("tw")), "tw", "the flag first");
}

/// A shard that decompresses to more than the issuer reads (a gzip bomb, or a configuration
/// beyond the limit) is refused without reading it all, whatever its checksum says.
#[test]
fn more_than_the_limit_uncompressed_is_refused() {
    let zeros = vec![0u8; usize::try_from(MAX_DECODED_BYTES).expect("fits") + 1024];
    let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
    gzip.write_all(&zeros).expect("gzip");
    let compressed = gzip.finish().expect("gzip");
    assert!(compressed.len() < SHARD_BYTES, "one shard holds it");
    let encoded = Encoded {
        sha256: hex(&Sha256::digest(&zeros)),
        uncompressed_bytes: zeros.len(),
        compressed_bytes: compressed.len(),
        shards: vec![compressed],
    };
    let error = assemble(&encoded.manifest(1), &objects(&encoded)).expect_err("too large");
    assert!(
        error
            .to_string()
            .contains("larger than 67108864 bytes uncompressed"),
        "{error}"
    );
}
