//! Client secrets: finding the Secret each Confidential ApiClient names, and creating it with
//! a random 256-bit secret when it is missing. Only the referenced Secrets' data reaches
//! [`crate::config::build`], which keeps nothing but their SHA-256.
//!
//! What is watched, and why (see `docs/decisions.md`): Secrets the controller created carry
//! the label [`CLIENT_SECRET_LABEL`] and are followed by a label-selected watch, so an edit or
//! a deletion takes effect at once. Secrets users provide themselves are read with a GET when
//! a client first names them and again after [`RESYNC`]; labelling one makes its changes
//! apply at once too. The controller never watches every Secret of the cluster, and never
//! overwrites a Secret: it only creates a missing one, or adds a missing key.
//!
//! Where (see `docs/helm.md`): by default in every namespace; with `--secret-namespaces` only
//! in those, or in none when the list is empty ([`SecretScope`]), so that RBAC can grant Secret rights per namespace. A client
//! of another namespace is left alone and its verdict says why
//! ([`ClientSecrets::explain_missing`]).
//!
//! Secret values never reach logs, errors or `Debug` output.

use super::ControllerError;
use crate::api::ApiClient;
use crate::api::Kind;
use crate::config::{Reason, SecretData, Secrets, Verdict, secret_ref_of};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Label on the Secrets the controller creates (value `"true"`); the controller watches the
/// Secrets that carry it.
pub(crate) const CLIENT_SECRET_LABEL: &str = "tokenwarden.dev/client-secret";
/// How long a user-provided (unlabelled) Secret read with a GET is trusted before it is read
/// again.
pub(crate) const RESYNC: Duration = Duration::from_secs(300);
/// How many Secrets a reconcile reads at once.
const READ_CONCURRENCY: usize = 16;

/// Secrets created or completed in one reconcile.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Generated {
    pub created: u64,
    pub keys_added: u64,
}

/// The namespaces whose client Secrets the controller may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretScope {
    /// Every namespace (cluster-wide rights on Secrets).
    All,
    /// Only these (a Role in each).
    Namespaces(BTreeSet<String>),
}

impl SecretScope {
    /// From `--secret-namespaces`: not given, or containing `*`, is every namespace; given
    /// empty, none.
    pub(crate) fn new(namespaces: Option<&[String]>) -> Self {
        let Some(namespaces) = namespaces else {
            return Self::All;
        };
        let names: BTreeSet<String> = namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        if names.contains("*") {
            Self::All
        } else {
            Self::Namespaces(names)
        }
    }

    pub(crate) fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(names) => names.contains(namespace),
        }
    }

    /// The Secret APIs to watch: one cluster-wide, or one per namespace.
    pub(crate) fn apis(&self, client: &Client) -> Vec<Api<Secret>> {
        match self {
            Self::All => vec![Api::all(client.clone())],
            Self::Namespaces(names) => names
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }
}

/// The client secrets the controller knows.
pub(crate) struct ClientSecrets {
    client: Client,
    scope: SecretScope,
    /// Labelled Secrets, kept by the watches (one per namespace of the scope, or one for all).
    labelled: Vec<Store<Secret>>,
    /// Unlabelled Secrets read with a GET, and when.
    fetched: HashMap<(String, String), (Arc<Secret>, Instant)>,
    /// Secrets the API server refused to create or complete in the last pass, and its words.
    refused: HashMap<(String, String), String>,
    /// Namespaces of the scope where the last pass was forbidden to read Secrets (403: the
    /// Role there deleted, say): their clients are that namespace's problem, not the pass's.
    forbidden: BTreeSet<String>,
}

impl ClientSecrets {
    pub(crate) fn new(client: Client, scope: SecretScope, labelled: Vec<Store<Secret>>) -> Self {
        Self {
            client,
            scope,
            labelled,
            fetched: HashMap::new(),
            refused: HashMap::new(),
            forbidden: BTreeSet::new(),
        }
    }

    /// The data of every Secret a Confidential client names, creating missing Secrets and
    /// adding missing keys. With `verify` (the periodic full reconcile), user-provided Secrets
    /// are read again however recently they were, so a change to one applies within one
    /// resync period.
    pub(crate) async fn resolve(
        &mut self,
        clients: &[Arc<ApiClient>],
        now: Instant,
        verify: bool,
    ) -> Result<(Secrets, Generated), ControllerError> {
        if verify {
            self.fetched.clear();
        }
        self.forbidden.clear();
        let mut just_read = self.read_unknown(clients, now).await?;
        let mut secrets = Secrets::new();
        let mut generated = Generated::default();
        let mut used = HashMap::new();
        self.refused.clear();
        for client in clients {
            let Some(secret_ref) = secret_ref_of(client) else {
                continue;
            };
            let namespace = client.namespace().unwrap_or_default();
            if !self.scope.contains(&namespace) || self.forbidden.contains(&namespace) {
                continue;
            }
            let key = (namespace.clone(), secret_ref.name.clone());
            let found = match just_read.remove(&key) {
                Some(found) => found,
                None => self.lookup(&namespace, &secret_ref.name, now).await?,
            };
            if self.forbidden.contains(&namespace) {
                continue;
            }
            let secret = match found {
                Some(secret) => secret,
                None => match self.create(client, &secret_ref.name, &secret_ref.key).await {
                    Ok(secret) => {
                        generated.created += 1;
                        secret
                    }
                    Err(e) => {
                        self.refuse(key, "create", e)?;
                        continue;
                    }
                },
            };
            let secret = if has_key(&secret, &secret_ref.key) {
                secret
            } else {
                match self.add_key(&secret, &secret_ref.key, now).await {
                    Ok(secret) => {
                        generated.keys_added += 1;
                        secret
                    }
                    Err(e) => {
                        self.refuse(key, "add a key to", e)?;
                        continue;
                    }
                }
            };
            used.insert(key.clone(), ());
            secrets.insert(key, data_of(&secret));
        }
        self.fetched.retain(|key, _| used.contains_key(key));
        Ok((secrets, generated))
    }

    /// A write the API server refused for this one Secret (a name too long, a quota, a
    /// webhook: a 4xx other than a conflict or a rate limit) is that client's problem, kept
    /// for [`Self::explain_missing`]; anything else (the API server away, a 5xx) fails the pass.
    /// A conflict means the copy read is out of date (the Secret changed since): it is
    /// forgotten, so the pass retried after the backoff reads the Secret again.
    fn refuse(
        &mut self,
        key: (String, String),
        what: &str,
        error: ControllerError,
    ) -> Result<(), ControllerError> {
        if let ControllerError::Api(kube::Error::Api(status)) = &error
            && status.code == 409
        {
            self.fetched.remove(&key);
        }
        match &error {
            ControllerError::Api(kube::Error::Api(status))
                if (400..500).contains(&status.code) && ![408, 409, 429].contains(&status.code) =>
            {
                tracing::warn!(namespace = %key.0, secret = %key.1, code = status.code, "the API server refused to {what} a client Secret: {}", status.message);
                let message = format!(
                    "the API server refused to {what} Secret {}/{}: {}",
                    key.0, key.1, status.message
                );
                self.refused.insert(key, message);
                Ok(())
            }
            _ => Err(error),
        }
    }

    /// Say why a client has no secret when [`crate::config::build`] only saw none
    /// (`SecretNotFound`): the controller did not look, outside its scope; or the API server
    /// refused the Secret it writes.
    pub(crate) fn explain_missing(&self, clients: &[Arc<ApiClient>], verdicts: &mut [Verdict]) {
        for verdict in verdicts
            .iter_mut()
            .filter(|v| v.kind == Kind::ApiClient && v.reason == Reason::SecretNotFound)
        {
            let name = clients
                .iter()
                .find(|c| {
                    c.name_any() == verdict.name
                        && c.namespace().as_deref() == Some(verdict.namespace.as_str())
                })
                .and_then(|c| secret_ref_of(c))
                .map(|r| r.name)
                .unwrap_or_default();
            if !self.scope.contains(&verdict.namespace) {
                verdict.reason = Reason::SecretNotAccessible;
                verdict.stalled = true;
                verdict.message = format!(
                    "the controller may not read Secrets in namespace {:?}, so Secret {}/{name} is not used; add the namespace to its --secret-namespaces (the chart's controller.clientSecretNamespaces)",
                    verdict.namespace, verdict.namespace
                );
            } else if self.forbidden.contains(&verdict.namespace) {
                verdict.reason = Reason::SecretNotAccessible;
                verdict.stalled = true;
                verdict.message = format!(
                    "the API server forbids the controller to read Secrets in namespace {:?} (403), so Secret {}/{name} is not used; grant it get, list, watch, create and patch on Secrets there (the chart's Role in each namespace of controller.clientSecretNamespaces)",
                    verdict.namespace, verdict.namespace
                );
            } else if let Some(message) = self.refused.get(&(verdict.namespace.clone(), name)) {
                verdict.reason = Reason::SecretNotCreated;
                verdict.stalled = true;
                verdict.message = message.clone();
            }
        }
    }

    /// GET, [`READ_CONCURRENCY`] at a time, every named Secret that neither the watch nor a
    /// recent GET knows: at 10,000 clients with Secrets of their own, one after the other
    /// they would hold up the first reconcile for seconds.
    /// Returns what it read, found or missing, so that no Secret is read twice in one pass.
    async fn read_unknown(
        &mut self,
        clients: &[Arc<ApiClient>],
        now: Instant,
    ) -> Result<HashMap<(String, String), Option<Arc<Secret>>>, ControllerError> {
        let unknown: BTreeSet<(String, String)> = clients
            .iter()
            .filter_map(|client| {
                let namespace = client.namespace().unwrap_or_default();
                let name = secret_ref_of(client)?.name;
                (self.scope.contains(&namespace) && self.cached(&namespace, &name, now).is_none())
                    .then_some((namespace, name))
            })
            .collect();
        let client = &self.client;
        let read: Vec<((String, String), Readable)> =
            futures::stream::iter(unknown.into_iter().map(|(namespace, name)| async move {
                let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                let secret = readable(api.get_opt(&name).await)?;
                Ok::<_, ControllerError>(((namespace, name), secret))
            }))
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut just_read = HashMap::with_capacity(read.len());
        for (key, secret) in read {
            let Ok(secret) = secret else {
                self.forbidden.insert(key.0);
                continue;
            };
            let secret = secret.map(|mut secret| {
                secret.metadata.managed_fields = None;
                Arc::new(secret)
            });
            // A labelled Secret is the watch's to follow once it has seen it.
            if let Some(secret) = secret.as_ref().filter(|s| !is_labelled(s)) {
                self.fetched.insert(key.clone(), (secret.clone(), now));
            }
            just_read.insert(key, secret);
        }
        Ok(just_read)
    }

    /// The Secret `namespace/name` as the watch or a recent GET knows it.
    fn cached(&self, namespace: &str, name: &str, now: Instant) -> Option<Arc<Secret>> {
        let object = ObjectRef::new(name).within(namespace);
        self.labelled
            .iter()
            .find_map(|store| store.get(&object))
            .or_else(|| {
                self.fetched
                    .get(&(namespace.to_owned(), name.to_owned()))
                    .filter(|(_, at)| now.duration_since(*at) < RESYNC)
                    .map(|(secret, _)| secret.clone())
            })
    }

    /// The Secret, from the watch, from a recent GET, or from a GET now.
    async fn lookup(
        &mut self,
        namespace: &str,
        name: &str,
        now: Instant,
    ) -> Result<Option<Arc<Secret>>, ControllerError> {
        if let Some(secret) = self.cached(namespace, name, now) {
            return Ok(Some(secret));
        }
        let key = (namespace.to_owned(), name.to_owned());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let answer = match readable(api.get_opt(name).await)? {
            Ok(answer) => answer,
            Err(Forbidden) => {
                self.forbidden.insert(key.0);
                return Ok(None);
            }
        };
        let Some(mut secret) = answer else {
            self.fetched.remove(&key);
            return Ok(None);
        };
        secret.metadata.managed_fields = None;
        let secret = Arc::new(secret);
        // A labelled Secret is the watch's to follow: the watch may just not have seen it yet.
        if !is_labelled(&secret) {
            self.fetched.insert(key, (secret.clone(), now));
        }
        Ok(Some(secret))
    }

    /// Create the client's Secret with a random secret under `key`; if someone created it in
    /// the meantime, use theirs.
    async fn create(
        &mut self,
        client: &ApiClient,
        name: &str,
        key: &str,
    ) -> Result<Arc<Secret>, ControllerError> {
        let namespace = client.namespace().unwrap_or_default();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let owner = OwnerReference {
            api_version: ApiClient::api_version(&()).into_owned(),
            kind: ApiClient::kind(&()).into_owned(),
            name: client.name_any(),
            uid: client.uid().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: None,
        };
        let mut labels = crate::config_objects::labels();
        labels.insert(CLIENT_SECRET_LABEL.to_owned(), "true".to_owned());
        let value = random_secret()?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.clone()),
                labels: Some(labels),
                owner_references: Some(vec![owner]),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        match api.create(&super::post_params(), &secret).await {
            Ok(created) => {
                tracing::info!(namespace = %namespace, secret = %name, client = %client.name_any(), "created a client secret");
                Ok(Arc::new(created))
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                let existing = api.get(name).await.map_err(ControllerError::Api)?;
                Ok(Arc::new(existing))
            }
            Err(e) => Err(ControllerError::Api(redacted(e, &value))),
        }
    }

    /// Add a random secret under a missing key, on the condition that the Secret has not
    /// changed since it was read (so nothing anyone wrote is overwritten). The result is
    /// cached as read at `now`, the reconcile's time.
    async fn add_key(
        &mut self,
        secret: &Secret,
        key: &str,
        now: Instant,
    ) -> Result<Arc<Secret>, ControllerError> {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
        let value = random_secret()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": secret.resource_version()},
            "data": {key: encoded},
        });
        let patched = api
            .patch(
                &name,
                &PatchParams {
                    field_manager: Some(super::FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| ControllerError::Api(redacted(e, &value)))?;
        tracing::info!(namespace = %namespace, secret = %name, key, "added a generated client secret to an existing Secret");
        let patched = Arc::new(patched);
        if !is_labelled(&patched) {
            self.fetched
                .insert((namespace, name), (patched.clone(), now));
        }
        Ok(patched)
    }
}

fn is_labelled(secret: &Secret) -> bool {
    secret.labels().contains_key(CLIENT_SECRET_LABEL)
}

fn has_key(secret: &Secret, key: &str) -> bool {
    secret.data.as_ref().is_some_and(|d| d.contains_key(key))
}

fn data_of(secret: &Secret) -> SecretData {
    SecretData(
        secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    )
}

/// 256 random bits from the CSPRNG, base64url without padding (43 characters).
pub(crate) fn random_secret() -> Result<Zeroizing<String>, ControllerError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(&mut *bytes)
        .map_err(|_| ControllerError::Random)?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(*bytes),
    ))
}

/// `error` with `secret` cut out of the API server's message, as generated and as
/// base64-encoded in `data`: the message reaches logs, a status and an Event, and an admission
/// webhook that refuses a Secret may quote the object it was sent.
fn redacted(error: kube::Error, secret: &str) -> kube::Error {
    match error {
        kube::Error::Api(mut status) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
            for value in [secret, encoded.as_str()] {
                status.message = status.message.replace(value, "<redacted>");
            }
            kube::Error::Api(status)
        }
        other => other,
    }
}

/// A Secret GET's answer: the Secret or none; `Err(Forbidden)` for a 403, which is its
/// namespace's problem (see [`ClientSecrets::explain_missing`]), not the pass's.
type Readable = Result<Option<Secret>, Forbidden>;

/// The API server forbade reading a Secret.
struct Forbidden;

fn readable(answer: Result<Option<Secret>, kube::Error>) -> Result<Readable, ControllerError> {
    match answer {
        Ok(secret) => Ok(Ok(secret)),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(Err(Forbidden)),
        Err(e) => Err(ControllerError::Api(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_quotes_the_generated_secret_is_redacted() {
        let secret = random_secret().expect("secret");
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret.as_bytes());
        let quoted = format!(
            "admission webhook denied: data.clientSecret {encoded:?} ({}) is not allowed",
            secret.as_str()
        );
        let status = kube::core::Status::failure(&quoted, "BadRequest").with_code(400);
        let error = redacted(kube::Error::Api(status.boxed()), &secret);
        let kube::Error::Api(status) = error else {
            panic!("still an API error");
        };
        assert_eq!(
            status.message,
            r#"admission webhook denied: data.clientSecret "<redacted>" (<redacted>) is not allowed"#
        );
        assert_eq!(status.code, 400);
    }

    /// The scope `tokenwarden controller ARGS` runs with.
    fn scope_of(args: &[&str]) -> SecretScope {
        use clap::Parser as _;
        let argv = ["tokenwarden", "controller"].iter().chain(args);
        match crate::cli::Cli::try_parse_from(argv)
            .expect("parses")
            .command
        {
            crate::cli::Command::Controller(options) => {
                SecretScope::new(options.secret_namespaces.as_deref())
            }
            _ => unreachable!("the controller command"),
        }
    }

    #[test]
    fn no_flag_or_a_star_mean_every_namespace_an_empty_list_none_and_a_list_only_those() {
        assert_eq!(scope_of(&[]), SecretScope::All);
        assert_eq!(
            scope_of(&["--secret-namespaces=payments,*"]),
            SecretScope::All
        );
        let none = scope_of(&["--secret-namespaces="]);
        assert_eq!(none, SecretScope::Namespaces(BTreeSet::new()));
        assert!(!none.contains("default"));
        let scope = scope_of(&["--secret-namespaces=payments, billing ,"]);
        assert!(scope.contains("payments") && scope.contains("billing"));
        assert!(!scope.contains("kube-system"));
    }

    #[test]
    fn a_generated_secret_has_256_bits_in_43_url_safe_characters() {
        let a = random_secret().expect("a");
        let b = random_secret().expect("b");
        assert_eq!(a.len(), 43);
        assert!(a.len() >= crate::config::MIN_CLIENT_SECRET_LEN);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(*a, *b);
    }
}
