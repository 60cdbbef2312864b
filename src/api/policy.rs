//! `ApiTokenPolicy`: how long access tokens for one API (resource server) live, and whether that
//! API allows offline access (refresh tokens). Bounds and defaults are declared here once; the
//! CRD schema, `tokenwarden validate` and standalone mode all derive from these attributes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default access-token lifetime: one day, as Auth0.
pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 86_400;
/// Longest access-token lifetime: 30 days, as Auth0.
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 2_592_000;
/// Longest refresh-token lifetime (absolute or idle): one year.
pub const MAX_REFRESH_LIFETIME_SECONDS: i64 = 31_557_600;
/// Default absolute refresh-token lifetime: 30 days.
pub const DEFAULT_ABSOLUTE_LIFETIME_SECONDS: i64 = 2_592_000;
/// Default idle refresh-token lifetime: 15 days.
pub const DEFAULT_IDLE_LIFETIME_SECONDS: i64 = 1_296_000;
/// Longest grace period in which a rotated refresh token may be presented again.
pub const MAX_REUSE_INTERVAL_SECONDS: i64 = 60;
/// Most ApiClients a policy may name in `introspectionClients`.
pub const MAX_INTROSPECTION_CLIENTS: u32 = 64;

/// The token policy of one API. The `audience` is the API's identifier and the `aud` claim of
/// its access tokens.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tokenwarden.dev",
    version = "v1alpha1",
    kind = "ApiTokenPolicy",
    doc = "How long access tokens for one API live, and whether it allows offline access (refresh tokens).",
    plural = "apitokenpolicies",
    shortname = "atp",
    category = "tokenwarden",
    namespaced,
    status = "ApiTokenPolicyStatus",
    printcolumn = r#"{"name":"Audience","type":"string","jsonPath":".spec.audience"}"#,
    printcolumn = r#"{"name":"Lifetime","type":"integer","description":"Access-token lifetime in seconds","jsonPath":".spec.tokenExpirationSeconds"}"#,
    printcolumn = r#"{"name":"Offline","type":"boolean","description":"Refresh tokens allowed","jsonPath":".spec.offlineAccess"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenPolicySpec {
    /// The API identifier, used as the `aud` claim. Unique in the cluster; cannot be changed.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("audience is immutable; create a new ApiTokenPolicy for a new API"))]
    pub audience: String,

    /// Lifetime of access tokens for this API, in seconds (1 to 2592000 = 30 days).
    #[serde(default = "default_token_expiration_seconds")]
    #[schemars(range(min = 1, max = MAX_TOKEN_EXPIRATION_SECONDS))]
    pub token_expiration_seconds: i64,

    /// Whether this API allows offline access: refresh tokens that get new access tokens
    /// without the user.
    #[serde(default)]
    pub offline_access: bool,

    /// The JWS algorithm access tokens for this API are signed with.
    #[serde(default)]
    pub signing_algorithm: SigningAlgorithm,

    /// The scopes this API defines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub scopes: Vec<ScopeDefinition>,

    /// How refresh tokens behave; used only while `offlineAccess` is true.
    #[serde(default)]
    pub refresh_tokens: RefreshTokenSettings,

    /// Namespaces whose ApiClients may get tokens for this API. Empty means the policy's own
    /// namespace; `"*"` means every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub allowed_client_namespaces: Vec<String>,

    /// Names of ApiClients in this policy's namespace that may introspect this API's access
    /// tokens (RFC 7662): the API's own resource servers. Names, not client ids, so no other
    /// team can take the place of one. Every other caller is told `active: false`. Empty: no
    /// client may introspect this API's access tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_INTROSPECTION_CLIENTS),
        inner(
            length(min = 1, max = 253),
            pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        ),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub introspection_clients: Vec<String>,
}

fn default_token_expiration_seconds() -> i64 {
    DEFAULT_TOKEN_EXPIRATION_SECONDS
}

/// JWS algorithms an API's access tokens can be signed with.
#[derive(
    JsonSchema,
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum SigningAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA 2048).
    #[default]
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PSS with SHA-256 and a 32-byte salt (RSA 2048).
    #[serde(rename = "PS256")]
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// EdDSA with Ed25519 (RFC 8037).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl SigningAlgorithm {
    /// Every algorithm, in a fixed order.
    pub const ALL: [Self; 4] = [Self::Rs256, Self::Ps256, Self::Es256, Self::EdDsa];

    /// The JWA name: the `alg` of the JWS header and of the JWK.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Position in [`Self::ALL`], for tables indexed by algorithm.
    pub const fn index(self) -> usize {
        match self {
            Self::Rs256 => 0,
            Self::Ps256 => 1,
            Self::Es256 => 2,
            Self::EdDsa => 3,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope the API defines.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ScopeDefinition {
    /// The scope token (RFC 6749 §3.3: printable ASCII without space, `"` or `\`).
    #[schemars(length(min = 1, max = 256), pattern(r#"^[\x21\x23-\x5B\x5D-\x7E]+$"#))]
    pub name: String,
    /// What the scope grants, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
}

/// How refresh tokens behave for one API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.idleLifetimeSeconds <= self.absoluteLifetimeSeconds").message("idleLifetimeSeconds must not be greater than absoluteLifetimeSeconds").field_path(".idleLifetimeSeconds"))]
pub struct RefreshTokenSettings {
    /// Rotating: every refresh returns a new refresh token and retires the old one.
    #[serde(default)]
    pub rotation: RotationMode,
    /// Seconds from the first issue after which the whole family expires.
    #[serde(default = "default_absolute_lifetime_seconds")]
    #[schemars(range(min = 1, max = MAX_REFRESH_LIFETIME_SECONDS))]
    pub absolute_lifetime_seconds: i64,
    /// Seconds without use after which a refresh token expires.
    #[serde(default = "default_idle_lifetime_seconds")]
    #[schemars(range(min = 1, max = MAX_REFRESH_LIFETIME_SECONDS))]
    pub idle_lifetime_seconds: i64,
    /// Seconds during which a just-rotated refresh token may be presented again without being
    /// treated as a replay (grace for a lost response).
    #[serde(default)]
    #[schemars(range(min = 0, max = MAX_REUSE_INTERVAL_SECONDS))]
    pub reuse_interval_seconds: i64,
}

fn default_absolute_lifetime_seconds() -> i64 {
    DEFAULT_ABSOLUTE_LIFETIME_SECONDS
}

fn default_idle_lifetime_seconds() -> i64 {
    DEFAULT_IDLE_LIFETIME_SECONDS
}

impl Default for RefreshTokenSettings {
    fn default() -> Self {
        Self {
            rotation: RotationMode::default(),
            absolute_lifetime_seconds: DEFAULT_ABSOLUTE_LIFETIME_SECONDS,
            idle_lifetime_seconds: DEFAULT_IDLE_LIFETIME_SECONDS,
            reuse_interval_seconds: 0,
        }
    }
}

/// Whether a refresh returns a new refresh token.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RotationMode {
    /// Every refresh returns a new refresh token and retires the one presented.
    #[default]
    Rotating,
    /// The same refresh token is used until it expires.
    NonRotating,
}

/// What the controller observed of a policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenPolicyStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` tells whether the issuer enforces this policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
