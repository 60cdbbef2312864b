//! The one pure function from declared objects to the issuer's configuration.
//!
//! The controller (from its caches), standalone mode (from files) and `validate` (for the
//! problems only a whole set shows) all call [`build`]; tests call it with plain values. It
//! decides which policy owns an audience, which clients are accepted, which audiences and
//! scopes each client may ask for, and says why for every object that is not fully enforced.
//! No I/O and no clock.

pub(crate) mod workload_identity;

use crate::api::guardrail::{self, Breach, GuardrailBreach};
use crate::api::{
    ApiClient, ApiTokenPolicy, AudienceGuardrail, ClientType, FederatedIssuer, GrantType, Kind,
    RefreshTokenSettings, RotationMode, SigningAlgorithm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
pub use workload_identity::{
    FederatedIssuerConfig, FederatedSubjectConfig, ServiceAccountConfig, ServiceAccounts,
    WorkloadIdentityConfig, service_account_key,
};

/// Shortest client secret accepted. Generated secrets have 256 bits (43 base64url
/// characters); a user-given one shorter than this is too weak to store as a fast hash.
pub(crate) const MIN_CLIENT_SECRET_LEN: usize = 32;

/// The objects a configuration is built from, in declaration order (older first where the
/// objects carry no creation time, as in files).
#[derive(Clone, Debug, Default)]
pub struct Declared {
    /// Shared, not copied: the controller passes its watch caches as they are.
    pub policies: Vec<Arc<ApiTokenPolicy>>,
    pub clients: Vec<Arc<ApiClient>>,
    /// The platform team's guardrails. None: every audience is first come, first served.
    pub guardrails: Vec<Arc<AudienceGuardrail>>,
    /// Secrets by (namespace, name). `None`: secrets are not known (as in `validate`), so
    /// client secrets are not checked and such clients carry no secret hash.
    pub secrets: Option<Secrets>,
    /// The platform team's trusted external OpenID Connect issuers.
    pub federated_issuers: Vec<Arc<FederatedIssuer>>,
    /// The UIDs of the ServiceAccounts clients name. `None`: not known (standalone mode and
    /// `validate`, which have no cluster), so no ServiceAccount acts as a client.
    pub service_accounts: Option<ServiceAccounts>,
}

/// Secrets by (namespace, name).
pub type Secrets = BTreeMap<(String, String), SecretData>;

/// The data of one Secret, by key. Its `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// What the issuer enforces: every API by audience and every client by client id.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerConfig {
    pub apis: BTreeMap<String, ApiConfig>,
    pub clients: BTreeMap<String, ClientConfig>,
    /// Who may act as which client without a secret. Last, so that the configuration of
    /// `gzip-postcard-v2` is this one without it.
    #[serde(default)]
    pub workload_identity: WorkloadIdentityConfig,
}

/// One API's token policy, as enforced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiConfig {
    pub audience: String,
    pub token_expiration_seconds: i64,
    pub offline_access: bool,
    pub signing_algorithm: SigningAlgorithm,
    pub scopes: BTreeSet<String>,
    pub refresh_tokens: RefreshTokenSettings,
    /// The descriptions the policy gives its scopes, shown where a user agrees to a sign-in.
    #[serde(default)]
    pub scope_descriptions: BTreeMap<String, String>,
    /// Client ids that may introspect this API's access tokens: the policy's
    /// `introspectionClients`, resolved in its namespace.
    #[serde(default)]
    pub introspection_clients: BTreeSet<String>,
}

/// One client, as accepted.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub client_id: String,
    pub namespace: String,
    /// `spec.displayName`, shown with the client id where a user agrees to a sign-in.
    #[serde(default)]
    pub display_name: Option<String>,
    pub client_type: ClientType,
    /// SHA-256 of the client secret (Confidential clients whose Secret is known).
    #[serde(default, with = "hex_hash")]
    pub secret_sha256: Option<[u8; 32]>,
    pub grant_types: BTreeSet<GrantType>,
    pub redirect_uris: Vec<String>,
    /// Audience -> scopes this client may ask for there.
    pub audiences: BTreeMap<String, BTreeSet<String>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("client_id", &self.client_id)
            .field("namespace", &self.namespace)
            .field("display_name", &self.display_name)
            .field("client_type", &self.client_type)
            .field("secret_sha256", &self.secret_sha256.map(|_| "<redacted>"))
            .field("grant_types", &self.grant_types)
            .field("redirect_uris", &self.redirect_uris)
            .field("audiences", &self.audiences)
            .finish()
    }
}

/// A SHA-256 as 64 hex digits in text formats (JSON), as 32 bytes in binary ones.
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(
        hash: &Option<[u8; 32]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match hash {
            Some(bytes) if s.is_human_readable() => {
                s.serialize_some(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            Some(bytes) => s.serialize_some(bytes),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        if !d.is_human_readable() {
            return Option::<[u8; 32]>::deserialize(d);
        }
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        if text.len() != 64 {
            return Err(D::Error::custom("a SHA-256 hash has 64 hex digits"));
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| D::Error::custom("a SHA-256 hash has 64 hex digits"))?;
        }
        Ok(Some(out))
    }
}

/// Why an object is, or is not, enforced. The names are the `Ready` condition's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Reason {
    /// Everything the object declares is enforced.
    Enforced,
    /// An older policy declares the same audience; this one is ignored.
    AudienceConflict,
    /// An older client has the same client id; this one is ignored.
    ClientIdConflict,
    /// The client's Secret does not exist (yet).
    SecretNotFound,
    /// The client's Secret has no usable secret under the key.
    InvalidSecret,
    /// The controller may not read Secrets in the client's namespace (`--secret-namespaces`).
    SecretNotAccessible,
    /// The API server refused the Secret the controller writes for the client (a name too
    /// long, a quota, an admission webhook).
    SecretNotCreated,
    /// A granted audience has no policy.
    UnknownAudience,
    /// A granted audience's policy does not allow clients of this namespace.
    NamespaceNotAllowed,
    /// A granted scope is not defined by the audience's policy.
    UnknownScope,
    /// A Public client that may refresh is granted an audience whose policy keeps refresh
    /// tokens `NonRotating` with offline access: the grant is dropped (RFC 9700 §4.14.2).
    RotationRequired,
    /// With this object the configuration would be more than the issuer reads; the newest
    /// objects are left out until it fits (the controller only).
    ConfigurationTooLarge,
    /// An AudienceGuardrail reserves the policy's audience for other namespaces.
    AudienceReserved,
    /// An AudienceGuardrail lets the policy's namespace declare only other audiences.
    AudienceNotAllowed,
    /// `tokenExpirationSeconds` is above an AudienceGuardrail's maximum.
    TokenLifetimeAboveMaximum,
    /// `offlineAccess: true` where an AudienceGuardrail forbids it.
    OfflineAccessForbidden,
    /// A `signingAlgorithm` that an AudienceGuardrail does not allow.
    SigningAlgorithmNotAllowed,
    /// A ServiceAccount named in `spec.workloadIdentity.serviceAccounts` does not exist (yet).
    ServiceAccountNotFound,
    /// A FederatedIssuer named in `spec.workloadIdentity.federated` does not exist (yet).
    UnknownFederatedIssuer,
    /// A FederatedIssuer named in `spec.workloadIdentity.federated` does not allow ApiClients
    /// of the client's namespace.
    FederatedIssuerNotAllowed,
}

impl Reason {
    /// Whether the problem waits for a person: a conflict with another object, a spec the
    /// policy forbids, a Secret whose content is unusable or that cannot be written, a namespace
    /// the controller may not read. A missing Secret (generated, or synced by another tool) and
    /// an audience whose policy does not exist yet (applied in the same sync) usually clear by
    /// themselves.
    pub(crate) fn needs_a_person(self) -> bool {
        match self {
            Self::Enforced
            | Self::SecretNotFound
            | Self::UnknownAudience
            | Self::ServiceAccountNotFound
            | Self::UnknownFederatedIssuer => false,
            Self::AudienceConflict
            | Self::ClientIdConflict
            | Self::InvalidSecret
            | Self::SecretNotAccessible
            | Self::SecretNotCreated
            | Self::NamespaceNotAllowed
            | Self::UnknownScope
            | Self::RotationRequired
            | Self::ConfigurationTooLarge
            | Self::AudienceReserved
            | Self::AudienceNotAllowed
            | Self::TokenLifetimeAboveMaximum
            | Self::OfflineAccessForbidden
            | Self::SigningAlgorithmNotAllowed
            | Self::FederatedIssuerNotAllowed => true,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "Enforced",
            Self::AudienceConflict => "AudienceConflict",
            Self::ClientIdConflict => "ClientIdConflict",
            Self::SecretNotFound => "SecretNotFound",
            Self::InvalidSecret => "InvalidSecret",
            Self::SecretNotAccessible => "SecretNotAccessible",
            Self::SecretNotCreated => "SecretNotCreated",
            Self::UnknownAudience => "UnknownAudience",
            Self::NamespaceNotAllowed => "NamespaceNotAllowed",
            Self::UnknownScope => "UnknownScope",
            Self::RotationRequired => "RotationRequired",
            Self::ConfigurationTooLarge => "ConfigurationTooLarge",
            Self::AudienceReserved => "AudienceReserved",
            Self::AudienceNotAllowed => "AudienceNotAllowed",
            Self::TokenLifetimeAboveMaximum => "TokenLifetimeAboveMaximum",
            Self::OfflineAccessForbidden => "OfflineAccessForbidden",
            Self::SigningAlgorithmNotAllowed => "SigningAlgorithmNotAllowed",
            Self::ServiceAccountNotFound => "ServiceAccountNotFound",
            Self::UnknownFederatedIssuer => "UnknownFederatedIssuer",
            Self::FederatedIssuerNotAllowed => "FederatedIssuerNotAllowed",
        }
    }

    /// The reason for a policy that breaks a guardrail's rule.
    pub(crate) fn of_breach(breach: &Breach) -> Self {
        match breach {
            Breach::AudienceReserved => Self::AudienceReserved,
            Breach::AudienceNotAllowed => Self::AudienceNotAllowed,
            Breach::TokenLifetimeAboveMaximum { .. } => Self::TokenLifetimeAboveMaximum,
            Breach::OfflineAccessForbidden => Self::OfflineAccessForbidden,
            Breach::SigningAlgorithmNotAllowed => Self::SigningAlgorithmNotAllowed,
        }
    }
}

/// The verdict on one declared object: its `Ready` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// `Enforced` when ready; otherwise the first problem.
    pub reason: Reason,
    /// What is enforced, or what to fix.
    pub message: String,
    /// Whether any of its problems, not only the first, waits for a person
    /// ([`Reason::needs_a_person`]): then waiters should give up (`Stalled`).
    pub stalled: bool,
}

impl Verdict {
    pub(crate) fn is_ready(&self) -> bool {
        self.reason == Reason::Enforced
    }
}

/// The configuration and a verdict for every declared object.
#[derive(Clone, Debug, Default)]
pub struct Built {
    pub config: IssuerConfig,
    pub verdicts: Vec<Verdict>,
}

/// The default client id of a client without `spec.clientId`.
pub(crate) fn client_id_of(client: &ApiClient) -> String {
    client.spec.client_id.clone().unwrap_or_else(|| {
        format!(
            "{}.{}",
            client.namespace().unwrap_or_default(),
            client.name_any()
        )
    })
}

/// The Secret a Confidential client's secret is kept in: `spec.secretRef`, or by default
/// `<name>-oauth` with key `clientSecret`. A client with `workloadIdentity` and no
/// `secretRef` has no secret: its workloads are its credentials.
pub(crate) fn secret_ref_of(client: &ApiClient) -> Option<crate::api::SecretKeyRef> {
    match client.spec.client_type {
        ClientType::Public => None,
        ClientType::Confidential
            if client.spec.workload_identity.is_some() && client.spec.secret_ref.is_none() =>
        {
            None
        }
        ClientType::Confidential => {
            Some(
                client
                    .spec
                    .secret_ref
                    .clone()
                    .unwrap_or_else(|| crate::api::SecretKeyRef {
                        name: format!("{}-oauth", client.name_any()),
                        key: crate::api::client::DEFAULT_SECRET_KEY.to_owned(),
                    }),
            )
        }
    }
}

/// The SHA-256 of a client secret, as kept in the configuration.
pub(crate) fn hash_client_secret(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

impl Declared {
    /// From watch caches, which list objects in no particular order (a hash map's, different
    /// in every process): they are declared in namespace/name order, so that two policies with
    /// one audience created in the same second (`creationTimestamp` has whole seconds) give
    /// the same winner on every controller, after every restart and relist.
    pub(crate) fn from_caches(
        mut policies: Vec<Arc<ApiTokenPolicy>>,
        mut clients: Vec<Arc<ApiClient>>,
        mut guardrails: Vec<Arc<AudienceGuardrail>>,
        secrets: Secrets,
        mut federated_issuers: Vec<Arc<FederatedIssuer>>,
        service_accounts: ServiceAccounts,
    ) -> Self {
        in_name_order(&mut policies);
        in_name_order(&mut clients);
        in_name_order(&mut guardrails);
        in_name_order(&mut federated_issuers);
        Self {
            policies,
            clients,
            guardrails,
            secrets: Some(secrets),
            federated_issuers,
            service_accounts: Some(service_accounts),
        }
    }
}

fn in_name_order<T: kube::Resource>(objects: &mut [Arc<T>]) {
    objects.sort_by(|a, b| {
        let (a, b) = (a.meta(), b.meta());
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
}

/// Older objects first: by creation time, then by declaration order.
fn by_age<T: kube::Resource>(objects: &[Arc<T>]) -> Vec<&T> {
    let mut order: Vec<(Option<&Time>, usize, &T)> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (o.meta().creation_timestamp.as_ref(), i, &**o))
        .collect();
    order.sort_by(|a, b| (a.0.map(|t| t.0), a.1).cmp(&(b.0.map(|t| t.0), b.1)));
    order.into_iter().map(|(_, _, o)| o).collect()
}

/// Build the issuer configuration from the declared objects.
pub fn build(declared: &Declared) -> Built {
    let mut built = Built::default();
    let mut owners: BTreeMap<String, &ApiTokenPolicy> = BTreeMap::new();
    for policy in by_age(&declared.policies) {
        let audience = &policy.spec.audience;
        // A policy that breaks a guardrail owns nothing, so with ownership declared an audience
        // belongs to its namespaces whatever the creation times say.
        let (reason, message) = match (guardrail_breach(declared, policy), owners.get(audience)) {
            (Some(breach), _) => (Reason::of_breach(&breach.breach), breach.message),
            (None, Some(owner)) => (
                Reason::AudienceConflict,
                format!(
                    "audience {audience:?} is already declared by the older ApiTokenPolicy {}/{}; give this API another audience or delete one of them",
                    owner.namespace().unwrap_or_default(),
                    owner.name_any()
                ),
            ),
            (None, None) => {
                owners.insert(audience.clone(), policy);
                built
                    .config
                    .apis
                    .insert(audience.clone(), api_config(policy));
                (
                    Reason::Enforced,
                    format!(
                        "access tokens for {audience:?} live {} s; offline access {}",
                        policy.spec.token_expiration_seconds,
                        if policy.spec.offline_access {
                            "allowed"
                        } else {
                            "not allowed"
                        }
                    ),
                )
            }
        };
        built
            .verdicts
            .push(verdict(Kind::ApiTokenPolicy, policy, reason, message));
    }

    let mut client_owners: BTreeMap<String, &ApiClient> = BTreeMap::new();
    for client in by_age(&declared.clients) {
        let client_id = client_id_of(client);
        if let Some(owner) = client_owners.get(&client_id) {
            let message = format!(
                "client id {client_id:?} is already used by the older ApiClient {}/{}; set another spec.clientId",
                owner.namespace().unwrap_or_default(),
                owner.name_any()
            );
            built.verdicts.push(verdict(
                Kind::ApiClient,
                client,
                Reason::ClientIdConflict,
                message,
            ));
            continue;
        }
        client_owners.insert(client_id.clone(), client);
        let (config, mut problems) = client_config(client, client_id, &owners, declared);
        let (identities, identity_problems) =
            workload_identity::of_client(client, &config.client_id, declared);
        problems.extend(identity_problems);
        let stalled = problems.iter().any(|(reason, _)| reason.needs_a_person());
        let unusable_secret = problems
            .iter()
            .any(|(reason, _)| matches!(reason, Reason::SecretNotFound | Reason::InvalidSecret));
        let (reason, message) = match problems.first() {
            None => (
                Reason::Enforced,
                format!("client {:?} accepted", config.client_id),
            ),
            Some((reason, _)) => (
                *reason,
                problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        // A client whose secret is unusable cannot authenticate: it is not loaded at all.
        if !unusable_secret {
            built
                .config
                .workload_identity
                .add(&config.namespace, &config.client_id, identities);
            built
                .config
                .clients
                .insert(config.client_id.clone(), config);
        }
        let mut verdict = verdict(Kind::ApiClient, client, reason, message);
        verdict.stalled |= stalled;
        built.verdicts.push(verdict);
    }
    resolve_introspection_clients(&mut built.config, &owners, &client_owners);
    built
}

fn verdict<T: kube::Resource>(kind: Kind, object: &T, reason: Reason, message: String) -> Verdict {
    Verdict {
        kind,
        namespace: object.meta().namespace.clone().unwrap_or_default(),
        name: object.meta().name.clone().unwrap_or_default(),
        reason,
        message,
        stalled: reason.needs_a_person(),
    }
}

/// The first rule of the first guardrail (by name) that `policy` breaks.
fn guardrail_breach(declared: &Declared, policy: &ApiTokenPolicy) -> Option<GuardrailBreach> {
    let namespace = policy.namespace().unwrap_or_default();
    declared
        .guardrails
        .iter()
        .find_map(|g| guardrail::check(g, &namespace, &policy.spec))
}

fn api_config(policy: &ApiTokenPolicy) -> ApiConfig {
    let spec = &policy.spec;
    ApiConfig {
        audience: spec.audience.clone(),
        token_expiration_seconds: spec.token_expiration_seconds,
        offline_access: spec.offline_access,
        signing_algorithm: spec.signing_algorithm,
        scopes: spec.scopes.iter().map(|s| s.name.clone()).collect(),
        refresh_tokens: spec.refresh_tokens.clone(),
        scope_descriptions: spec
            .scopes
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.description.clone()?)))
            .collect(),
        introspection_clients: BTreeSet::new(),
    }
}

/// Each API's `introspectionClients`, from ApiClient names in its policy's namespace to the
/// client ids of the clients accepted under those names. A name with no such client (not yet
/// applied, or one that lost its client id to an older client) gives nothing: the API's
/// tokens are shown to the clients that are there.
fn resolve_introspection_clients(
    config: &mut IssuerConfig,
    owners: &BTreeMap<String, &ApiTokenPolicy>,
    client_owners: &BTreeMap<String, &ApiClient>,
) {
    let by_name: BTreeMap<(String, String), &str> = client_owners
        .iter()
        .filter(|(client_id, _)| config.clients.contains_key(*client_id))
        .map(|(client_id, c)| {
            (
                (c.namespace().unwrap_or_default(), c.name_any()),
                client_id.as_str(),
            )
        })
        .collect();
    for (audience, policy) in owners {
        let Some(api) = config.apis.get_mut(audience) else {
            continue;
        };
        let namespace = policy.namespace().unwrap_or_default();
        api.introspection_clients = policy
            .spec
            .introspection_clients
            .iter()
            .filter_map(|name| by_name.get(&(namespace.clone(), name.clone())))
            .map(|client_id| (*client_id).to_owned())
            .collect();
    }
}

/// May clients of `namespace` get tokens for this policy?
pub(crate) fn namespace_allowed(policy: &ApiTokenPolicy, namespace: &str) -> bool {
    let allowed = &policy.spec.allowed_client_namespaces;
    if allowed.is_empty() {
        policy.namespace().as_deref() == Some(namespace)
    } else {
        allowed.iter().any(|n| n == "*" || n == namespace)
    }
}

type Problem = (Reason, String);

fn client_config(
    client: &ApiClient,
    client_id: String,
    owners: &BTreeMap<String, &ApiTokenPolicy>,
    declared: &Declared,
) -> (ClientConfig, Vec<Problem>) {
    let namespace = client.namespace().unwrap_or_default();
    let mut problems = Vec::new();
    let secret_sha256 = match (&declared.secrets, secret_ref_of(client)) {
        (Some(secrets), Some(secret_ref)) => match secret_hash(secrets, &namespace, &secret_ref) {
            Ok(hash) => Some(hash),
            Err(problem) => {
                problems.push(problem);
                None
            }
        },
        _ => None,
    };
    let mut audiences = BTreeMap::new();
    for grant in &client.spec.audiences {
        let Some(policy) = owners.get(&grant.audience) else {
            problems.push((
                Reason::UnknownAudience,
                format!("no ApiTokenPolicy declares audience {:?}", grant.audience),
            ));
            continue;
        };
        if !namespace_allowed(policy, &namespace) {
            problems.push((
                Reason::NamespaceNotAllowed,
                format!(
                    "ApiTokenPolicy {}/{} does not allow clients of namespace {namespace:?} (see its spec.allowedClientNamespaces)",
                    policy.namespace().unwrap_or_default(),
                    policy.name_any()
                ),
            ));
            continue;
        }
        if let Some(problem) = rotation_required(client, policy) {
            problems.push(problem);
            continue;
        }
        let defined: BTreeSet<&str> = policy.spec.scopes.iter().map(|s| s.name.as_str()).collect();
        let unknown: Vec<&str> = grant
            .scopes
            .iter()
            .map(String::as_str)
            .filter(|s| !defined.contains(s))
            .collect();
        if !unknown.is_empty() {
            problems.push((
                Reason::UnknownScope,
                format!(
                    "audience {:?} defines no scope {}",
                    grant.audience,
                    unknown.join(", ")
                ),
            ));
        }
        let scopes: BTreeSet<String> = grant
            .scopes
            .iter()
            .filter(|s| defined.contains(s.as_str()))
            .cloned()
            .collect();
        audiences.insert(grant.audience.clone(), scopes);
    }
    let config = ClientConfig {
        client_id,
        namespace,
        display_name: client.spec.display_name.clone(),
        client_type: client.spec.client_type,
        secret_sha256,
        grant_types: client.spec.grant_types.iter().copied().collect(),
        redirect_uris: client.spec.redirect_uris.clone(),
        audiences,
    };
    (config, problems)
}

/// A Public client that may use the refresh_token grant cannot hold a refresh token that never
/// rotates: with no secret, rotation and reuse detection are all that limit a stolen one
/// (RFC 9700 §4.14.2). The schema of one object cannot see the other, so the rule lives here;
/// the issuer rotates for Public clients whatever the policy says as well
/// ([`crate::issuer::protocol::refresh_rotates`]).
fn rotation_required(client: &ApiClient, policy: &ApiTokenPolicy) -> Option<Problem> {
    let refreshes = client.spec.client_type == ClientType::Public
        && client.spec.grant_types.contains(&GrantType::RefreshToken)
        && policy.spec.offline_access;
    (refreshes && policy.spec.refresh_tokens.rotation == RotationMode::NonRotating).then(|| {
        (
            Reason::RotationRequired,
            format!(
                "ApiTokenPolicy {}/{} keeps refresh tokens NonRotating, and a Public client's must rotate (RFC 9700 §4.14.2): set its spec.refreshTokens.rotation to Rotating, or remove refresh_token from this client's spec.grantTypes",
                policy.namespace().unwrap_or_default(),
                policy.name_any()
            ),
        )
    })
}

fn secret_hash(
    secrets: &Secrets,
    namespace: &str,
    secret_ref: &crate::api::SecretKeyRef,
) -> Result<[u8; 32], Problem> {
    let Some(data) = secrets.get(&(namespace.to_owned(), secret_ref.name.clone())) else {
        return Err((
            Reason::SecretNotFound,
            format!("Secret {namespace}/{} does not exist", secret_ref.name),
        ));
    };
    let Some(secret) = data.0.get(&secret_ref.key) else {
        return Err((
            Reason::InvalidSecret,
            format!(
                "Secret {namespace}/{} has no key {:?}",
                secret_ref.name, secret_ref.key
            ),
        ));
    };
    if secret.len() < MIN_CLIENT_SECRET_LEN {
        return Err((
            Reason::InvalidSecret,
            format!(
                "the client secret in Secret {namespace}/{} key {:?} has fewer than {MIN_CLIENT_SECRET_LEN} characters; use a random secret of at least 256 bits, or delete the key to have one generated",
                secret_ref.name, secret_ref.key
            ),
        ));
    }
    Ok(hash_client_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiTokenPolicySpec, AudienceGrant, ScopeDefinition};
    use k8s_openapi::jiff::Timestamp;

    fn policy(ns: &str, name: &str, audience: &str, created: Option<i64>) -> ApiTokenPolicy {
        let mut p = ApiTokenPolicy::new(
            name,
            ApiTokenPolicySpec {
                audience: audience.into(),
                token_expiration_seconds: 600,
                offline_access: false,
                signing_algorithm: SigningAlgorithm::Es256,
                scopes: vec![ScopeDefinition {
                    name: "read".into(),
                    description: None,
                }],
                refresh_tokens: RefreshTokenSettings::default(),
                allowed_client_namespaces: vec![],
                introspection_clients: vec![],
            },
        );
        p.metadata.namespace = Some(ns.into());
        p.metadata.creation_timestamp =
            created.map(|s| Time(Timestamp::from_second(s).expect("valid time")));
        p
    }

    fn client(ns: &str, name: &str, audiences: &[(&str, &[&str])]) -> ApiClient {
        let grants = audiences.iter().map(|(a, s)| AudienceGrant {
            audience: (*a).into(),
            scopes: s.iter().map(|s| (*s).into()).collect(),
        });
        crate::at_scale::machine_client(ns, name, grants.collect())
    }

    fn reason_of(built: &Built, name: &str) -> Reason {
        built
            .verdicts
            .iter()
            .find(|v| v.name == name)
            .expect("verdict")
            .reason
    }

    #[test]
    fn the_older_policy_keeps_a_contested_audience() {
        let declared = Declared {
            policies: vec![
                policy("a", "newer", "https://x", Some(2_000)).into(),
                policy("b", "older", "https://x", Some(1_000)).into(),
            ],
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(reason_of(&built, "older"), Reason::Enforced);
        assert_eq!(reason_of(&built, "newer"), Reason::AudienceConflict);
        assert_eq!(built.config.apis.len(), 1);
        assert!(built.verdicts.iter().any(|v| v.message.contains("b/older")));
    }

    #[test]
    fn policies_created_in_the_same_second_from_a_cache_in_any_order_give_one_winner() {
        let first = Arc::new(policy("a", "first", "https://x", Some(1_000)));
        let second = Arc::new(policy("b", "second", "https://x", Some(1_000)));
        for listed in [
            vec![first.clone(), second.clone()],
            vec![second.clone(), first.clone()],
        ] {
            let built = build(&Declared::from_caches(
                listed,
                vec![],
                vec![],
                Secrets::new(),
                vec![],
                ServiceAccounts::new(),
            ));
            assert_eq!(reason_of(&built, "first"), Reason::Enforced);
            assert_eq!(reason_of(&built, "second"), Reason::AudienceConflict);
        }
    }

    fn guardrail(namespaces: &[&str], audiences: &[&str]) -> Arc<AudienceGuardrail> {
        Arc::new(AudienceGuardrail::new(
            "team",
            crate::api::AudienceGuardrailSpec {
                namespaces: namespaces.iter().map(|s| (*s).into()).collect(),
                audiences: audiences.iter().map(|s| (*s).into()).collect(),
                max_token_expiration_seconds: Some(300),
                offline_access: crate::api::OfflineAccessRule::Allowed,
                signing_algorithms: vec![],
            },
        ))
    }

    #[test]
    fn with_ownership_declared_the_owners_newer_policy_wins_over_an_older_claim_from_elsewhere() {
        let mut owner = policy(
            "payments",
            "banking",
            "https://bank.example.com",
            Some(2_000),
        );
        owner.spec.token_expiration_seconds = 300;
        let declared = Declared {
            policies: vec![
                policy(
                    "squatter",
                    "banking",
                    "https://bank.example.com",
                    Some(1_000),
                )
                .into(),
                owner.into(),
            ],
            guardrails: vec![guardrail(&["payments"], &["https://bank.example.com"])],
            ..Declared::default()
        };
        let built = build(&declared);
        let squatter = built
            .verdicts
            .iter()
            .find(|v| v.namespace == "squatter")
            .expect("verdict");
        assert_eq!(squatter.reason, Reason::AudienceReserved);
        assert!(squatter.stalled);
        assert!(
            squatter.message.contains("AudienceGuardrail team"),
            "{}",
            squatter.message
        );
        assert_eq!(reason_of(&built, "banking"), Reason::AudienceReserved);
        let owner = built
            .verdicts
            .iter()
            .find(|v| v.namespace == "payments")
            .expect("verdict");
        assert_eq!(owner.reason, Reason::Enforced);
        assert_eq!(
            built.config.apis["https://bank.example.com"].token_expiration_seconds,
            300
        );
    }

    #[test]
    fn a_policy_beyond_a_guardrails_bounds_is_not_enforced_and_its_clients_get_nothing() {
        let declared = Declared {
            policies: vec![policy("payments", "api", "https://bank.example.com", None).into()],
            clients: vec![
                client("payments", "worker", &[("https://bank.example.com", &[])]).into(),
            ],
            guardrails: vec![guardrail(&["payments"], &["https://bank.example.com"])],
            secrets: None,
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(reason_of(&built, "api"), Reason::TokenLifetimeAboveMaximum);
        assert!(built.config.apis.is_empty());
        assert_eq!(reason_of(&built, "worker"), Reason::UnknownAudience);
        assert!(built.config.clients["payments.worker"].audiences.is_empty());
    }

    #[test]
    fn a_problem_that_needs_a_person_stalls_the_client_whatever_its_place() {
        let mut open = policy("apis", "open", "https://open", None);
        open.spec.allowed_client_namespaces = vec!["*".into()];
        for grants in [
            [
                ("https://nowhere", &[][..]),
                ("https://open", &["nope"][..]),
            ],
            [
                ("https://open", &["nope"][..]),
                ("https://nowhere", &[][..]),
            ],
        ] {
            let declared = Declared {
                policies: vec![open.clone().into()],
                clients: vec![client("apps", "worker", &grants).into()],
                guardrails: Vec::new(),
                secrets: None,
                ..Declared::default()
            };
            let built = build(&declared);
            let verdict = built
                .verdicts
                .iter()
                .find(|v| v.name == "worker")
                .expect("verdict");
            assert!(verdict.stalled, "{grants:?}");
            let first = if grants[0].0 == "https://nowhere" {
                Reason::UnknownAudience
            } else {
                Reason::UnknownScope
            };
            assert_eq!(verdict.reason, first, "the first problem is the reason");
        }
    }

    #[test]
    fn a_client_gets_only_audiences_its_namespace_is_allowed() {
        let mut open = policy("apis", "open", "https://open", None);
        open.spec.allowed_client_namespaces = vec!["*".into()];
        let closed = policy("apis", "closed", "https://closed", None);
        let declared = Declared {
            policies: vec![open.into(), closed.into()],
            clients: vec![
                client(
                    "apps",
                    "worker",
                    &[("https://open", &["read"]), ("https://closed", &[])],
                )
                .into(),
            ],
            guardrails: Vec::new(),
            secrets: None,
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(reason_of(&built, "worker"), Reason::NamespaceNotAllowed);
        let worker = &built.config.clients["apps.worker"];
        assert_eq!(
            worker.audiences.keys().collect::<Vec<_>>(),
            ["https://open"]
        );
        assert!(worker.audiences["https://open"].contains("read"));
    }

    #[test]
    fn unknown_audiences_and_scopes_are_named() {
        let declared = Declared {
            policies: vec![policy("apps", "api", "https://api", None).into()],
            clients: vec![
                client("apps", "a", &[("https://nowhere", &[])]).into(),
                client("apps", "b", &[("https://api", &["write"])]).into(),
            ],
            guardrails: Vec::new(),
            secrets: None,
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(reason_of(&built, "a"), Reason::UnknownAudience);
        assert_eq!(reason_of(&built, "b"), Reason::UnknownScope);
    }

    #[test]
    fn client_secrets_reach_the_config_only_as_hashes_of_long_enough_secrets() {
        let secret = b"0123456789abcdef0123456789abcdef".to_vec();
        let mut secrets = BTreeMap::new();
        secrets.insert(
            ("apps".to_owned(), "good-oauth".to_owned()),
            SecretData(BTreeMap::from([(
                "clientSecret".to_owned(),
                secret.clone(),
            )])),
        );
        secrets.insert(
            ("apps".to_owned(), "short-oauth".to_owned()),
            SecretData(BTreeMap::from([(
                "clientSecret".to_owned(),
                b"hunter2".to_vec(),
            )])),
        );
        let declared = Declared {
            policies: vec![],
            clients: vec![
                client("apps", "good", &[]).into(),
                client("apps", "short", &[]).into(),
                client("apps", "none", &[]).into(),
            ],
            guardrails: Vec::new(),
            secrets: Some(secrets),
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(reason_of(&built, "good"), Reason::Enforced);
        assert_eq!(reason_of(&built, "short"), Reason::InvalidSecret);
        assert_eq!(reason_of(&built, "none"), Reason::SecretNotFound);
        assert_eq!(
            built.config.clients["apps.good"].secret_sha256,
            Some(hash_client_secret(&secret))
        );
        assert!(!built.config.clients.contains_key("apps.short"));
        let json = serde_json::to_string(&built.config).expect("json");
        assert!(!format!("{declared:?}").contains("hunter2"));
        assert!(!json.contains("0123456789abcdef0123456789abcdef"));
        assert!(
            !format!("{:?}", built.config).contains(&format!("{:?}", hash_client_secret(&secret)))
        );
        let back: IssuerConfig = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, built.config);
    }

    #[test]
    fn a_public_client_that_refreshes_loses_an_audience_whose_refresh_tokens_never_rotate() {
        let mut fixed = policy("apis", "fixed", "https://fixed", None);
        fixed.spec.offline_access = true;
        fixed.spec.refresh_tokens.rotation = RotationMode::NonRotating;
        fixed.spec.allowed_client_namespaces = vec!["*".into()];
        let mut rotating = fixed.clone();
        rotating.metadata.name = Some("rotating".into());
        rotating.spec.audience = "https://rotating".into();
        rotating.spec.refresh_tokens.rotation = RotationMode::Rotating;
        let mut offline_off = fixed.clone();
        offline_off.metadata.name = Some("online".into());
        offline_off.spec.audience = "https://online".into();
        offline_off.spec.offline_access = false;
        let grants: &[(&str, &[&str])] = &[
            ("https://fixed", &["read"]),
            ("https://rotating", &["read"]),
            ("https://online", &["read"]),
        ];
        let spa = |name: &str, grant_types: Vec<GrantType>, client_type: ClientType| {
            let mut c = client("apps", name, grants);
            c.spec.client_type = client_type;
            c.spec.secret_ref = None;
            c.spec.grant_types = grant_types;
            c
        };
        let declared = Declared {
            policies: vec![fixed.into(), rotating.into(), offline_off.into()],
            clients: vec![
                spa(
                    "spa",
                    vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    ClientType::Public,
                )
                .into(),
                spa(
                    "no-refresh",
                    vec![GrantType::AuthorizationCode],
                    ClientType::Public,
                )
                .into(),
                spa(
                    "server",
                    vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                    ClientType::Confidential,
                )
                .into(),
            ],
            guardrails: Vec::new(),
            secrets: None,
            ..Declared::default()
        };
        let built = build(&declared);
        let spa = built
            .verdicts
            .iter()
            .find(|v| v.name == "spa")
            .expect("spa");
        assert_eq!(spa.reason, Reason::RotationRequired);
        assert!(spa.stalled, "only a person can fix it");
        assert!(
            spa.message.contains("ApiTokenPolicy apis/fixed"),
            "{}",
            spa.message
        );
        assert!(
            spa.message.contains("spec.refreshTokens.rotation"),
            "{}",
            spa.message
        );
        assert_eq!(
            built.config.clients["apps.spa"]
                .audiences
                .keys()
                .collect::<Vec<_>>(),
            ["https://online", "https://rotating"],
            "only that audience is dropped"
        );
        for other in ["no-refresh", "server"] {
            assert_eq!(reason_of(&built, other), Reason::Enforced, "{other}");
            assert_eq!(
                built.config.clients[&format!("apps.{other}")]
                    .audiences
                    .len(),
                3
            );
        }
    }

    #[test]
    fn introspection_clients_are_resolved_by_name_in_the_policys_namespace_only() {
        let mut banking = policy("payments", "banking", "https://banking", None);
        banking.spec.introspection_clients = vec![
            "banking-api".into(),
            "ledger".into(),
            "not-applied-yet".into(),
        ];
        let mut api = client("payments", "banking-api", &[]);
        api.spec.client_id = Some("banking-resource-server".into());
        // Same name, another namespace: not the policy's.
        let squatter = client("other", "ledger", &[]);
        // A client that lost its client id to an older one is not the name's client either.
        let mut older = client("other", "first", &[]);
        older.spec.client_id = Some("taken".into());
        let mut loser = client("payments", "ledger", &[]);
        loser.spec.client_id = Some("taken".into());
        let declared = Declared {
            policies: vec![banking.into()],
            clients: vec![api.into(), squatter.into(), older.into(), loser.into()],
            guardrails: Vec::new(),
            secrets: None,
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(
            built.config.apis["https://banking"]
                .introspection_clients
                .iter()
                .collect::<Vec<_>>(),
            ["banking-resource-server"]
        );
        assert_eq!(reason_of(&built, "banking"), Reason::Enforced);
    }

    #[test]
    fn a_second_client_with_the_same_client_id_is_ignored() {
        let mut second = client("other", "worker", &[]);
        second.spec.client_id = Some("apps.worker".into());
        let declared = Declared {
            clients: vec![client("apps", "worker", &[]).into(), second.into()],
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(built.config.clients.len(), 1);
        assert_eq!(built.config.clients["apps.worker"].namespace, "apps");
        assert!(
            built
                .verdicts
                .iter()
                .any(|v| v.reason == Reason::ClientIdConflict && v.namespace == "other")
        );
    }
}
