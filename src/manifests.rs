//! Reading Kubernetes manifests from files and folders: multi-document YAML, admitted as the
//! API server would (see [`crate::api::admission`]). Used by `validate` and by the issuer's
//! standalone mode. Every problem names its file, document and field; a bad document is left
//! out and the rest still load.

use crate::api::{
    self, ApiClient, ApiTokenPolicy, AudienceGuardrail, FederatedIssuer, FieldError, Kind,
};
use crate::config::Declared;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a document came from: a file and the document's number in it (from 1; 0 is the file
/// as a whole).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    pub document: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            // The file as a whole (it cannot be read).
            0 => write!(f, "{}", self.file.display()),
            n => write!(f, "{}: document {n}", self.file.display()),
        }
    }
}

/// One problem: where, which object (when known), and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    /// `Kind namespace/name`, when the document got that far.
    pub object: Option<String>,
    pub error: FieldError,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{} ({object}): {}", self.location, self.error),
            None => write!(f, "{}: {}", self.location, self.error),
        }
    }
}

/// Whether `object` is the one named `namespace`/`name` (`namespace` empty: cluster-scoped).
fn is_named<T: kube::Resource>(object: &T, namespace: &str, name: &str) -> bool {
    let meta = object.meta();
    meta.namespace.as_deref().unwrap_or_default() == namespace && meta.name.as_deref() == Some(name)
}

fn find<'a, T: kube::Resource>(objects: &'a [Arc<T>], key: &ObjectKey) -> Option<&'a Arc<T>> {
    objects.iter().find(|o| is_named(&***o, &key.1, &key.2))
}

fn to_json<T: serde::Serialize>(object: &T) -> Option<Value> {
    serde_json::to_value(object).ok()
}

/// Everything read from a set of paths.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The admitted objects, in file order, and the Secrets' data.
    pub declared: Declared,
    /// Where each admitted object came from, by (kind, namespace, name).
    pub locations: BTreeMap<ObjectKey, Location>,
    /// What could not be read or admitted.
    pub problems: Vec<Problem>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// The `spec.audience` of every ApiTokenPolicy that was not admitted: a client granted one
    /// of these is told that its policy is invalid, not that none exists.
    pub refused_audiences: std::collections::BTreeSet<String>,
}

/// An admitted object: (kind, namespace, name).
pub(crate) type ObjectKey = (Kind, String, String);

impl Loaded {
    /// The admitted object `key` as JSON, as admission sees it.
    pub(crate) fn object(&self, key: &ObjectKey) -> Option<Value> {
        let declared = &self.declared;
        match key.0 {
            Kind::ApiTokenPolicy => find(&declared.policies, key).and_then(|o| to_json(&**o)),
            Kind::ApiClient => find(&declared.clients, key).and_then(|o| to_json(&**o)),
            Kind::AudienceGuardrail => find(&declared.guardrails, key).and_then(|o| to_json(&**o)),
            Kind::FederatedIssuer => {
                find(&declared.federated_issuers, key).and_then(|o| to_json(&**o))
            }
        }
    }

    /// Leave the object `key` out, as if its document had not been admitted.
    pub(crate) fn remove(&mut self, key: &ObjectKey) {
        fn drop<T: kube::Resource>(objects: &mut Vec<Arc<T>>, key: &ObjectKey) {
            objects.retain(|o| !is_named(&**o, &key.1, &key.2));
        }
        let declared = &mut self.declared;
        match key.0 {
            Kind::ApiTokenPolicy => drop(&mut declared.policies, key),
            Kind::ApiClient => drop(&mut declared.clients, key),
            Kind::AudienceGuardrail => drop(&mut declared.guardrails, key),
            Kind::FederatedIssuer => drop(&mut declared.federated_issuers, key),
        }
        self.locations.remove(key);
    }

    /// Add the object `key` as `other` has it, from where `other` read it; false if `other`
    /// has no such object.
    pub(crate) fn copy_from(&mut self, other: &Loaded, key: &ObjectKey) -> bool {
        fn copy<T: kube::Resource>(to: &mut Vec<Arc<T>>, from: &[Arc<T>], key: &ObjectKey) -> bool {
            find(from, key).map(|o| to.push(o.clone())).is_some()
        }
        let (to, from) = (&mut self.declared, &other.declared);
        let copied = match key.0 {
            Kind::ApiTokenPolicy => copy(&mut to.policies, &from.policies, key),
            Kind::ApiClient => copy(&mut to.clients, &from.clients, key),
            Kind::AudienceGuardrail => copy(&mut to.guardrails, &from.guardrails, key),
            Kind::FederatedIssuer => copy(&mut to.federated_issuers, &from.federated_issuers, key),
        };
        if let Some(location) = other.locations.get(key).filter(|_| copied) {
            self.locations.insert(key.clone(), location.clone());
        }
        copied
    }

    /// Sort problems by file (in reading order), then document; stable within a document.
    pub(crate) fn sort(&self, problems: &mut [Problem]) {
        let rank = |p: &Problem| {
            let file = self
                .files
                .iter()
                .position(|f| *f == p.location.file)
                .unwrap_or(usize::MAX);
            (file, p.location.document)
        };
        problems.sort_by_key(rank);
    }
}

/// The namespace of a manifest without one, as kubectl applies it.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Read every `*.yaml`/`*.yml` file under `paths` (files are read whatever their name),
/// in a stable order.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded {
        declared: Declared {
            secrets: Some(BTreeMap::new()),
            ..Declared::default()
        },
        ..Loaded::default()
    };
    for path in paths {
        match files_under(path) {
            Ok(files) => {
                for file in files {
                    load_file(&file, &mut loaded);
                    loaded.files.push(file);
                }
            }
            Err(e) => loaded.problems.push(Problem {
                location: Location {
                    file: path.clone(),
                    document: 0,
                },
                object: None,
                error: FieldError {
                    path: String::new(),
                    message: format!("cannot read: {e}"),
                },
            }),
        }
    }
    loaded
}

/// The manifest files `load` would read under `paths`, in order (unreadable paths left out).
pub(crate) fn files(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .flat_map(|p| files_under(p).unwrap_or_default())
        .collect()
}

fn files_under(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            files.extend(files_under(&entry)?);
        } else if matches!(
            entry.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(entry);
        }
    }
    Ok(files)
}

fn load_file(file: &Path, loaded: &mut Loaded) {
    let problem = |document: usize, message: String| Problem {
        location: Location {
            file: file.to_path_buf(),
            document,
        },
        object: None,
        error: FieldError {
            path: String::new(),
            message,
        },
    };
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            loaded
                .problems
                .push(problem(0, format!("cannot read: {e}")));
            return;
        }
    };
    for (i, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let location = Location {
            file: file.to_path_buf(),
            document: i + 1,
        };
        match StrictValue::deserialize(document) {
            Ok(StrictValue(Value::Null)) => {}
            Ok(StrictValue(value)) => load_document(location, value, loaded),
            Err(e) => {
                loaded
                    .problems
                    .push(problem(i + 1, format!("invalid YAML: {e}")));
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        }
    }
}

fn load_document(location: Location, mut value: Value, loaded: &mut Loaded) {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let (Some(api_version), Some(kind)) = (text(&value, "apiVersion"), text(&value, "kind")) else {
        let error = FieldError {
            path: String::new(),
            message: "not a Kubernetes object: apiVersion and kind are required".to_owned(),
        };
        loaded.problems.push(Problem {
            location,
            object: None,
            error,
        });
        return;
    };
    let ours = Kind::of(&api_version, &kind);
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        if ours.is_some_and(|k| !k.is_namespaced()) {
            // As kubectl: a cluster-scoped object has no namespace, whatever the file says.
            metadata.remove("namespace");
        } else if !metadata.contains_key("namespace") {
            metadata.insert("namespace".into(), DEFAULT_NAMESPACE.into());
        }
    }
    if api_version == "v1" && kind == "Secret" {
        load_secret(&value, loaded);
        return;
    }
    let Some(kind) = ours else {
        if api_version.starts_with(&format!("{}/", api::GROUP)) {
            let error = FieldError {
                path: String::new(),
                message: format!(
                    "no kind {kind:?} in version {api_version:?}: {} has ApiTokenPolicy, ApiClient, AudienceGuardrail and FederatedIssuer",
                    api::API_VERSION
                ),
            };
            loaded.problems.push(Problem {
                location,
                object: None,
                error,
            });
        }
        // Other kinds (Deployments, ConfigMaps, ...) are not ours to check.
        return;
    };
    let namespace = text(&value["metadata"], "namespace").unwrap_or_default();
    let name = text(&value["metadata"], "name").unwrap_or_default();
    let object = object_name(kind, &namespace, &name);
    let admitted = match api::admit(kind, &value) {
        Ok(admitted) => admitted,
        Err(errors) => {
            if let (Kind::ApiTokenPolicy, Some(audience)) = (kind, text(&value["spec"], "audience"))
            {
                loaded.refused_audiences.insert(audience);
            }
            for error in errors {
                loaded.problems.push(Problem {
                    location: location.clone(),
                    object: Some(object.clone()),
                    error,
                });
            }
            return;
        }
    };
    let key = (kind, namespace, name);
    if let Some(first) = loaded.locations.get(&key) {
        let error = FieldError {
            path: "metadata.name".into(),
            message: format!("Duplicate value: the same object is declared at {first}"),
        };
        loaded.problems.push(Problem {
            location,
            object: Some(object),
            error,
        });
        return;
    }
    let typed = match kind {
        Kind::ApiTokenPolicy => serde_json::from_value::<ApiTokenPolicy>(admitted)
            .map(|p| loaded.declared.policies.push(Arc::new(p))),
        Kind::ApiClient => serde_json::from_value::<ApiClient>(admitted)
            .map(|c| loaded.declared.clients.push(Arc::new(c))),
        Kind::AudienceGuardrail => serde_json::from_value::<AudienceGuardrail>(admitted)
            .map(|g| loaded.declared.guardrails.push(Arc::new(g))),
        Kind::FederatedIssuer => serde_json::from_value::<FederatedIssuer>(admitted)
            .map(|i| loaded.declared.federated_issuers.push(Arc::new(i))),
    };
    match typed {
        Ok(()) => {
            loaded.locations.insert(key, location);
        }
        Err(e) => loaded.problems.push(Problem {
            location,
            object: Some(object),
            error: FieldError {
                path: String::new(),
                message: format!("cannot decode: {e}"),
            },
        }),
    }
}

/// How problems name an object: `Kind namespace/name`, or `Kind name` when cluster-scoped.
pub(crate) fn object_name(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.is_namespaced() {
        format!("{} {namespace}/{name}", kind.as_str())
    } else {
        format!("{} {name}", kind.as_str())
    }
}

/// A YAML document as JSON, refusing a mapping key given twice, as kubectl does (`mapping key
/// "x" already defined`): serde_json's own `Value` keeps the last one silently, so a policy
/// with two `tokenExpirationSeconds` would pass here and fail in the pipeline's `kubectl
/// apply`. The error names the key, never a value, and serde_yaml adds the position.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!(
                    "mapping key {key:?} already defined"
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Keep a Secret's `data` (base64) and `stringData`, as the API server merges them.
fn load_secret(value: &Value, loaded: &mut Loaded) {
    use base64::Engine as _;
    let metadata = &value["metadata"];
    let (Some(namespace), Some(name)) = (
        metadata.get("namespace").and_then(Value::as_str),
        metadata.get("name").and_then(Value::as_str),
    ) else {
        return;
    };
    let mut data = BTreeMap::new();
    if let Some(encoded) = value.get("data").and_then(Value::as_object) {
        for (key, v) in encoded {
            if let Some(bytes) = v
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            {
                data.insert(key.clone(), bytes);
            }
        }
    }
    if let Some(plain) = value.get("stringData").and_then(Value::as_object) {
        for (key, v) in plain {
            if let Some(s) = v.as_str() {
                data.insert(key.clone(), s.as_bytes().to_vec());
            }
        }
    }
    if let Some(secrets) = loaded.declared.secrets.as_mut() {
        secrets.insert(
            (namespace.to_owned(), name.to_owned()),
            crate::config::SecretData(data),
        );
    }
}
