//! Offline admission: what the Kubernetes API server does to a tokenwarden object on create,
//! done against the CRDs generated from our types, so `validate`, standalone mode and the
//! cluster give the same verdict.
//!
//! In order, as the API server: strict decoding (unknown fields are errors), pruning of nulls,
//! schema defaults, the OpenAPI v3 schema (types, bounds, lengths, patterns, enums, required
//! fields, list uniqueness), then the CEL rules (`x-kubernetes-validations`). `status` is
//! dropped, as the status subresource does on create. Transition rules (`oldSelf`) need an
//! old object and are not evaluated here, as on create.
//!
//! This module owns no rule of its own: every bound and rule comes from the CRD schema.

use super::Kind;
use kube::core::cel::{CompiledSchema, Validator, apply_defaults, compile_schema};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::OnceLock;

/// One problem with one field, as the API server reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `spec.tokenExpirationSeconds`; empty for the whole object.
    pub path: String,
    /// What is wrong, e.g. `Invalid value: 0: should be greater than or equal to 1`.
    pub message: String,
}

impl FieldError {
    fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Admit one object of `kind` as the API server would on create. Returns the object with
/// defaults filled in, or every problem found.
pub fn admit(kind: Kind, object: &Value) -> Result<Value, Vec<FieldError>> {
    admit_change(kind, object, None)
}

/// Admit a change of an object from `old` (as stored) to `object`, as the API server would on
/// update: also the transition rules, such as the immutable `audience`.
pub fn admit_update(kind: Kind, object: &Value, old: &Value) -> Result<Value, Vec<FieldError>> {
    admit_change(kind, object, Some(old))
}

fn admit_change(kind: Kind, object: &Value, old: Option<&Value>) -> Result<Value, Vec<FieldError>> {
    let Some(fields) = object.as_object() else {
        return Err(vec![FieldError::new("", "the document is not an object")]);
    };
    let mut object = Value::Object(prune_nulls(fields));
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }

    let schemas = schemas(kind);
    let mut errors = Vec::new();
    check_metadata(object.get("metadata"), &mut errors);
    let object = apply_defaults(&schemas.openapi, &object);
    check_node(&schemas.openapi, &object, "", &mut errors);
    if !errors.is_empty() {
        // The API server stops before CEL when the schema fails.
        return Err(errors);
    }
    if let Err(failures) = Validator::new().validate_compiled(&schemas.cel, &object, old) {
        errors.extend(
            failures
                .into_vec()
                .into_iter()
                .map(|e| FieldError::new(&e.field_path, format!("Invalid value: {}", e.message))),
        );
    }
    if errors.is_empty() {
        Ok(object)
    } else {
        Err(errors)
    }
}

struct Schemas {
    openapi: Value,
    cel: CompiledSchema,
}

/// The generated schema of each kind, and its CEL rules compiled, made once per process.
fn schemas(kind: Kind) -> &'static Schemas {
    static POLICY: OnceLock<Schemas> = OnceLock::new();
    static CLIENT: OnceLock<Schemas> = OnceLock::new();
    static GUARDRAIL: OnceLock<Schemas> = OnceLock::new();
    static FEDERATED_ISSUER: OnceLock<Schemas> = OnceLock::new();
    let cell = match kind {
        Kind::ApiTokenPolicy => &POLICY,
        Kind::ApiClient => &CLIENT,
        Kind::AudienceGuardrail => &GUARDRAIL,
        Kind::FederatedIssuer => &FEDERATED_ISSUER,
    };
    cell.get_or_init(|| {
        let crd = kind.crd();
        let openapi = crd
            .spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null);
        let cel = compile_schema(&openapi);
        Schemas { openapi, cel }
    })
}

/// Null values are dropped before defaulting and validation, as for non-nullable fields.
fn prune_nulls(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::Object(inner) => Value::Object(prune_nulls(inner)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "finalizers",
    "ownerReferences",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The parts of ObjectMeta a manifest gets wrong: a missing or malformed name or namespace,
/// and fields ObjectMeta does not have.
fn check_metadata(metadata: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(metadata) = metadata.and_then(Value::as_object) else {
        errors.push(FieldError::new(
            "metadata.name",
            "Required value: name or generateName is required",
        ));
        return;
    };
    for key in metadata.keys() {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                "",
                format!("unknown field \"metadata.{key}\""),
            ));
        }
    }
    match metadata.get("name").and_then(Value::as_str) {
        Some(name) if !is_dns_subdomain(name) => errors.push(FieldError::new(
            "metadata.name",
            format!(
                "Invalid value: {}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                quote(name)
            ),
        )),
        Some(_) => {}
        None if metadata.get("generateName").is_some() => {}
        None => errors.push(FieldError::new(
            "metadata.name",
            "Required value: name or generateName is required",
        )),
    }
    if let Some(namespace) = metadata.get("namespace").and_then(Value::as_str)
        && !is_dns_label(namespace)
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            format!(
                "Invalid value: {}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                quote(namespace)
            ),
        ));
    }
}

fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// JSON text of a value, as the API server quotes values in its messages.
fn quote(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_default()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(value: &Value, expected: &str) -> bool {
    match expected {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => type_name(value) == other,
    }
}

/// Check one value against its schema node, and its children against theirs.
fn check_node(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(expected) = schema.get("type").and_then(Value::as_str)
        && !has_type(value, expected)
    {
        let actual = type_name(value);
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {}: {path} in body must be of type {expected}: {}",
                quote(actual),
                quote(actual)
            ),
        ));
        return;
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::Number(n) => check_number(schema, n, path, errors),
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Array(items) => check_array(schema, items, path, errors),
        Value::Object(fields) => check_object(schema, fields, path, errors),
        _ => {}
    }
}

fn check_enum(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let supported: Vec<String> = allowed.iter().map(quote).collect();
        errors.push(FieldError::new(
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                supported.join(", ")
            ),
        ));
    }
}

fn check_number(schema: &Value, n: &serde_json::Number, path: &str, errors: &mut Vec<FieldError>) {
    let Some(x) = n.as_f64() else { return };
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && x < min
    {
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {n}: {path} in body should be greater than or equal to {}",
                number(min)
            ),
        ));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && x > max
    {
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {n}: {path} in body should be less than or equal to {}",
                number(max)
            ),
        ));
    }
}

/// A bound as written in the schema: integral bounds without a fraction.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<FieldError>) {
    let chars = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                quote(s)
            ),
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        errors.push(FieldError::new(
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && !pattern_matches(pattern, s)
    {
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {}: {path} in body should match '{pattern}'",
                quote(s)
            ),
        ));
    }
}

/// Patterns come from our own schema; each is compiled once.
fn pattern_matches(pattern: &str, s: &str) -> bool {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, Option<regex::Regex>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let Ok(mut cache) = cache.lock() else {
        return false;
    };
    let compiled = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| regex::Regex::new(pattern).ok());
    compiled.as_ref().is_some_and(|re| re.is_match(s))
}

fn check_array(schema: &Value, items: &[Value], path: &str, errors: &mut Vec<FieldError>) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            format!(
                "Invalid value: {}: {path} in body should have at least {min} items",
                items.len()
            ),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && (items.len() as u64) > max
    {
        errors.push(FieldError::new(
            path,
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check_node(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
    check_list_uniqueness(schema, items, path, errors);
}

/// `x-kubernetes-list-type: set` items and `map` keys are unique.
fn check_list_uniqueness(
    schema: &Value,
    items: &[Value],
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let key_of = |item: &Value| -> Option<Value> {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => Some(item.clone()),
            Some("map") => {
                let keys = schema.get("x-kubernetes-list-map-keys")?.as_array()?;
                let picked: Map<String, Value> = keys
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|k| (k.to_owned(), item.get(k).cloned().unwrap_or(Value::Null)))
                    .collect();
                Some(Value::Object(picked))
            }
            _ => None,
        }
    };
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(key) = key_of(item) {
            let text = quote(&key);
            if !seen.insert(text.clone()) {
                errors.push(FieldError::new(
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {text}"),
                ));
            }
        }
    }
}

/// Fields of every object that the API server checks itself (`metadata` by `check_metadata`).
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

fn check_object(
    schema: &Value,
    fields: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                errors.push(FieldError::new(&join(path, name), "Required value"));
            }
        }
    }
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (name, value) in fields {
        let child = join(path, name);
        match (properties.get(name), additional) {
            (Some(child_schema), _) | (None, Some(child_schema)) => {
                // ObjectMeta is checked by `check_metadata`; its schema here is only `object`.
                if child != "metadata" {
                    check_node(child_schema, value, &child, errors);
                }
            }
            (None, None) if preserve || path.is_empty() && ROOT_FIELDS.contains(&name.as_str()) => {
            }
            (None, None) => errors.push(FieldError::new("", format!("unknown field \"{child}\""))),
        }
    }
}
