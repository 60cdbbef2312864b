//! The issuer's configuration as Kubernetes objects: how the controller writes an
//! [`IssuerConfig`] into ConfigMaps and how the issuer reads it back. Pure encoding and
//! decoding, no I/O (except [`resolve_namespace`], which reads the pod's namespace file).
//!
//! A Kubernetes object holds about 1 MiB, and 10,000 policies and 10,000 clients are a few
//! MiB even in a compact binary serialisation, so the configuration is serialised with
//! postcard (serde's derives, no field names), gzip-compressed and cut into fixed-name shards:
//!
//! - `tokenwarden-issuer-config` (the manifest): `data.format` (`gzip-postcard-v3`),
//!   `data.revision` (grows by one with every change), `data.sha256` (of the uncompressed
//!   bytes) and `data.shards` (how many shards).
//! - `tokenwarden-issuer-config-1` .. `-N`: `binaryData["config.postcard.gz"]`, one slice of
//!   the compressed bytes each, and `data.sha256` naming the configuration the slice belongs
//!   to.
//!
//! Readers also accept the earlier `gzip-postcard-v2` (before workload identity: the
//! configuration without its last field), `gzip-postcard-v1` (before APIs named their
//! introspection clients; read with the types of then, in `src/config_objects/v1.rs`) and
//! `gzip-json-v1`
//! (JSON under `config.json.gz`), so issuers keep following a controller of a previous version
//! during a rolling upgrade.
//!
//! The controller writes the shards first and the manifest last, so a reader that sees a
//! manifest finds its shards; a shard whose `sha256` differs belongs to a write in progress
//! and the reader waits for the next manifest. The checksum is verified after reassembly.
//! Names are fixed so that RBAC can grant the issuer exactly these objects (see
//! `docs/configuration-objects.md`).

use crate::config::IssuerConfig;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};

/// Name of the manifest ConfigMap.
pub const MANIFEST_NAME: &str = "tokenwarden-issuer-config";
/// Name of the Secret holding the signing keys (the `KeySet` JSON under [`SIGNING_KEYS_KEY`]).
pub const SIGNING_KEYS_SECRET: &str = "tokenwarden-signing-keys";
/// Key of the `KeySet` JSON in the signing-keys Secret.
pub const SIGNING_KEYS_KEY: &str = "keys.json";
/// Compressed bytes per shard: well under the 1 MiB limit of an object.
pub(crate) const SHARD_BYTES: usize = 768 * 1024;
/// Most shards a configuration may have (24 MiB compressed); RBAC grants names up to this.
pub(crate) const MAX_SHARDS: usize = 32;
/// Largest uncompressed configuration a reader accepts (a guard against a gzip bomb), and so
/// the largest the controller publishes: 10,000 APIs and clients take about 2 MiB, and reading
/// this much takes up to twice as much memory while it lasts, well inside the issuer's
/// default limit (512 MiB).
pub(crate) const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;
/// The namespace when neither `--namespace` nor the pod's service account says one.
pub(crate) const DEFAULT_NAMESPACE: &str = "tokenwarden-system";

const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Labels on every object the controller writes.
pub(crate) fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "tokenwarden-controller".to_owned(),
        ),
        (
            "app.kubernetes.io/part-of".to_owned(),
            "tokenwarden".to_owned(),
        ),
    ])
}

/// `--namespace` if given, else the pod's namespace, else `tokenwarden-system`.
pub(crate) fn resolve_namespace(flag: Option<String>) -> String {
    namespace_or_pods(flag, std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE))
}

/// [`resolve_namespace`] with the pod's namespace read from `pod_namespace_file`.
fn namespace_or_pods(flag: Option<String>, pod_namespace_file: &std::path::Path) -> String {
    flag.filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string(pod_namespace_file)
                .ok()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// How the configuration is serialised before it is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// postcard: about half the bytes of JSON, encoded five times and decoded twice as fast
    /// (`benches/config_objects.rs`).
    Postcard,
    /// postcard before workload identity: [`IssuerConfig`] without its last field, which
    /// postcard lays out as the same bytes up to there; read for rolling upgrades.
    PostcardV2,
    /// postcard as an earlier version laid the configuration out (`src/config_objects/v1.rs`);
    /// read for rolling upgrades.
    PostcardV1,
    /// JSON, written by versions before the postcard format; read for rolling upgrades.
    Json,
}

impl Format {
    /// The format this version writes.
    pub(crate) const WRITTEN: Format = Format::Postcard;

    /// The manifest's `data.format`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            // postcard has no field names: a field added to the configuration is a new
            // version, so that an issuer of another version refuses it instead of misreading
            // it (v2: ApiConfig.introspectionClients and scopeDescriptions,
            // ClientConfig.displayName; v3: IssuerConfig.workloadIdentity); v1 and v2 are
            // still read.
            Format::Postcard => "gzip-postcard-v3",
            Format::PostcardV2 => "gzip-postcard-v2",
            Format::PostcardV1 => "gzip-postcard-v1",
            Format::Json => "gzip-json-v1",
        }
    }

    /// The key of the compressed slice in a shard's `binaryData`.
    pub(crate) fn shard_key(self) -> &'static str {
        match self {
            Format::Postcard | Format::PostcardV2 | Format::PostcardV1 => "config.postcard.gz",
            Format::Json => "config.json.gz",
        }
    }

    fn from_name(name: &str) -> Option<Format> {
        [
            Format::Postcard,
            Format::PostcardV2,
            Format::PostcardV1,
            Format::Json,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    fn serialize(self, config: &IssuerConfig, out: impl Write) -> Result<(), String> {
        match self {
            Format::Postcard => postcard::to_io(config, out)
                .map(drop)
                .map_err(|e| e.to_string()),
            Format::PostcardV2 => postcard::to_io(&(&config.apis, &config.clients), out)
                .map(drop)
                .map_err(|e| e.to_string()),
            Format::PostcardV1 => postcard::to_io(&v1::IssuerConfigV1::from(config), out)
                .map(drop)
                .map_err(|e| e.to_string()),
            Format::Json => serde_json::to_writer(out, config).map_err(|e| e.to_string()),
        }
    }

    fn deserialize(self, bytes: &[u8]) -> Result<IssuerConfig, String> {
        match self {
            Format::Postcard => match postcard::take_from_bytes(bytes) {
                Ok((config, [])) => Ok(config),
                Ok((_, rest)) => Err(format!("{} bytes after the end", rest.len())),
                Err(e) => Err(e.to_string()),
            },
            Format::PostcardV2 => match postcard::take_from_bytes(bytes) {
                Ok(((apis, clients), [])) => Ok(IssuerConfig {
                    apis,
                    clients,
                    workload_identity: Default::default(),
                }),
                Ok((_, rest)) => Err(format!("{} bytes after the end", rest.len())),
                Err(e) => Err(e.to_string()),
            },
            Format::PostcardV1 => match postcard::take_from_bytes::<v1::IssuerConfigV1>(bytes) {
                Ok((config, [])) => Ok(config.into()),
                Ok((_, rest)) => Err(format!("{} bytes after the end", rest.len())),
                Err(e) => Err(e.to_string()),
            },
            Format::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// Name of shard `index` (1-based).
pub fn shard_name(index: usize) -> String {
    format!("{MANIFEST_NAME}-{index}")
}

/// What goes wrong turning a configuration into objects or back.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("encoding the configuration: {0}")]
    Encode(String),
    #[error(
        "the configuration needs {0} shards, more than the {1} the issuer reads; that many APIs and clients is beyond what this version supports"
    )]
    TooManyShards(usize, usize),
    #[error(
        "the configuration is {0} bytes uncompressed, more than the {MAX_DECODED_BYTES} the issuer reads"
    )]
    TooLargeUncompressed(usize),
    #[error("ConfigMap {name}: {problem}")]
    Malformed { name: String, problem: String },
    #[error("shard {0} belongs to another revision (a write in progress)")]
    ShardMismatch(String),
    #[error("shard {0} is missing")]
    ShardMissing(String),
    #[error("the reassembled configuration does not match its checksum")]
    Checksum,
    #[error("decoding the configuration: {0}")]
    Decode(String),
}

impl ObjectsError {
    /// Whether the configuration is more than the issuer reads.
    pub(crate) fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::TooManyShards(..) | Self::TooLargeUncompressed(_)
        )
    }
}

/// The manifest's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub format: Format,
    pub revision: u64,
    /// SHA-256 of the uncompressed bytes, hex.
    pub sha256: String,
    pub shards: usize,
}

/// A configuration ready to be written, in [`Format::WRITTEN`].
#[derive(Clone, Debug)]
pub struct Encoded {
    /// SHA-256 of the uncompressed bytes, hex: equal configurations have equal checksums
    /// (every map in [`IssuerConfig`] is ordered), so it tells whether anything changed.
    pub sha256: String,
    pub uncompressed_bytes: usize,
    pub compressed_bytes: usize,
    /// The compressed bytes, cut into slices of at most [`SHARD_BYTES`].
    pub shards: Vec<Vec<u8>>,
}

impl Encoded {
    /// The manifest that publishes this configuration as `revision`.
    pub fn manifest(&self, revision: u64) -> Manifest {
        Manifest {
            format: Format::WRITTEN,
            revision,
            sha256: self.sha256.clone(),
            shards: self.shards.len(),
        }
    }
}

/// Serialise, compress and cut a configuration. The bytes are hashed and compressed as they
/// are written, never held whole: at 10,000 APIs and clients they are about 3 MB. gzip's
/// fastest level: at that size it compresses in half the time of the default level (less
/// latency from `kubectl apply` to an enforced policy) for about 10 % more bytes.
pub fn encode(config: &IssuerConfig) -> Result<Encoded, ObjectsError> {
    encode_within(config, Limits::ISSUER)
}

/// How the compressed configuration is cut, and into how many shards at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub shard_bytes: usize,
    pub max_shards: usize,
}

impl Limits {
    /// What the issuer reads: [`MAX_SHARDS`] of [`SHARD_BYTES`].
    pub(crate) const ISSUER: Self = Self {
        shard_bytes: SHARD_BYTES,
        max_shards: MAX_SHARDS,
    };
}

/// [`encode`] within `limits`.
pub(crate) fn encode_within(
    config: &IssuerConfig,
    limits: Limits,
) -> Result<Encoded, ObjectsError> {
    let failed = |e: std::io::Error| ObjectsError::Encode(e.to_string());
    let mut out = std::io::BufWriter::with_capacity(
        64 * 1024,
        Hashing {
            inner: GzEncoder::new(Vec::new(), Compression::fast()),
            sha256: Sha256::new(),
            bytes: 0,
        },
    );
    Format::WRITTEN
        .serialize(config, &mut out)
        .map_err(ObjectsError::Encode)?;
    let hashed = out.into_inner().map_err(|e| failed(e.into_error()))?;
    let compressed = hashed.inner.finish().map_err(failed)?;
    if u64::try_from(hashed.bytes).unwrap_or(u64::MAX) > MAX_DECODED_BYTES {
        return Err(ObjectsError::TooLargeUncompressed(hashed.bytes));
    }
    let shards: Vec<Vec<u8>> = compressed
        .chunks(limits.shard_bytes)
        .map(<[u8]>::to_vec)
        .collect();
    if shards.len() > limits.max_shards {
        return Err(ObjectsError::TooManyShards(shards.len(), limits.max_shards));
    }
    Ok(Encoded {
        sha256: hex(&hashed.sha256.finalize()),
        uncompressed_bytes: hashed.bytes,
        compressed_bytes: compressed.len(),
        shards,
    })
}

/// Passes bytes on to `inner`, hashing and counting them on the way.
struct Hashing<W> {
    inner: W,
    sha256: Sha256,
    bytes: usize,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.sha256.update(&buf[..written]);
        self.bytes += written;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn object_meta(name: String, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

/// The manifest ConfigMap, with only the fields the controller owns (for server-side apply).
pub fn manifest_object(namespace: &str, manifest: &Manifest) -> ConfigMap {
    ConfigMap {
        metadata: object_meta(MANIFEST_NAME.to_owned(), namespace),
        data: Some(BTreeMap::from([
            ("format".to_owned(), manifest.format.name().to_owned()),
            ("revision".to_owned(), manifest.revision.to_string()),
            ("sha256".to_owned(), manifest.sha256.clone()),
            ("shards".to_owned(), manifest.shards.to_string()),
        ])),
        ..ConfigMap::default()
    }
}

/// Shard `index` (1-based) of `encoded`.
pub fn shard_object(namespace: &str, encoded: &Encoded, index: usize) -> Option<ConfigMap> {
    let bytes = encoded.shards.get(index.checked_sub(1)?)?;
    Some(ConfigMap {
        metadata: object_meta(shard_name(index), namespace),
        data: Some(BTreeMap::from([(
            "sha256".to_owned(),
            encoded.sha256.clone(),
        )])),
        binary_data: Some(BTreeMap::from([(
            Format::WRITTEN.shard_key().to_owned(),
            ByteString(bytes.clone()),
        )])),
        ..ConfigMap::default()
    })
}

fn field<'a>(map: &'a ConfigMap, key: &str) -> Result<&'a str, ObjectsError> {
    map.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(String::as_str)
        .ok_or_else(|| ObjectsError::Malformed {
            name: map.metadata.name.clone().unwrap_or_default(),
            problem: format!("no data.{key}"),
        })
}

/// Read the manifest's fields.
pub(crate) fn read_manifest(map: &ConfigMap) -> Result<Manifest, ObjectsError> {
    let malformed = |problem: String| ObjectsError::Malformed {
        name: MANIFEST_NAME.to_owned(),
        problem,
    };
    let format = field(map, "format")?;
    let format = Format::from_name(format).ok_or_else(|| {
        malformed(format!(
            "format {format:?} is not {:?} (written by a newer controller?)",
            Format::WRITTEN.name()
        ))
    })?;
    let revision = field(map, "revision")?
        .parse()
        .map_err(|_| malformed("data.revision is not a number".to_owned()))?;
    let shards: usize = field(map, "shards")?
        .parse()
        .map_err(|_| malformed("data.shards is not a number".to_owned()))?;
    if shards == 0 || shards > MAX_SHARDS {
        return Err(malformed(format!("data.shards must be 1..{MAX_SHARDS}")));
    }
    Ok(Manifest {
        format,
        revision,
        sha256: field(map, "sha256")?.to_owned(),
        shards,
    })
}

/// Reassemble the configuration a manifest names from its shards (in any order, `None` for
/// one that does not exist), verifying the checksum.
pub fn assemble(
    manifest: &Manifest,
    shards: &[Option<ConfigMap>],
) -> Result<IssuerConfig, ObjectsError> {
    let mut compressed = Vec::new();
    for index in 1..=manifest.shards {
        let name = shard_name(index);
        let shard = shards
            .iter()
            .flatten()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| ObjectsError::ShardMissing(name.clone()))?;
        if field(shard, "sha256")? != manifest.sha256 {
            return Err(ObjectsError::ShardMismatch(name));
        }
        let key = manifest.format.shard_key();
        let bytes = shard
            .binary_data
            .as_ref()
            .and_then(|b| b.get(key))
            .ok_or_else(|| ObjectsError::Malformed {
                name: name.clone(),
                problem: format!("no binaryData[{key:?}]"),
            })?;
        compressed.extend_from_slice(&bytes.0);
    }
    let mut bytes = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ObjectsError::Decode(e.to_string()))?;
    if bytes.len() as u64 > MAX_DECODED_BYTES {
        return Err(ObjectsError::Decode(format!(
            "larger than {MAX_DECODED_BYTES} bytes uncompressed"
        )));
    }
    if hex(&Sha256::digest(&bytes)) != manifest.sha256 {
        return Err(ObjectsError::Checksum);
    }
    manifest
        .format
        .deserialize(&bytes)
        .map_err(ObjectsError::Decode)
}

#[cfg(test)]
mod tests;
mod v1;
