//! `ApiClient`: an application that asks for tokens, which APIs it may ask for, and how it
//! authenticates. Rules are declared here once and reach the CRD schema, `validate` and
//! standalone mode alike.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Key of the client secret in its Secret when `secretRef.key` is not given.
pub const DEFAULT_SECRET_KEY: &str = "clientSecret";

/// An OAuth 2.0 client of one or more APIs.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tokenwarden.dev",
    version = "v1alpha1",
    kind = "ApiClient",
    doc = "An application that asks for tokens: how it authenticates and which APIs and scopes it may ask for.",
    plural = "apiclients",
    shortname = "apic",
    category = "tokenwarden",
    namespaced,
    status = "ApiClientStatus",
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'Public' || !has(self.secretRef)").message("a Public client has no secretRef: it authenticates with PKCE, not a secret").field_path(".secretRef"))]
#[x_kube(validation = Rule::new("self.type != 'Public' || !self.grantTypes.exists(g, g == 'client_credentials')").message("a Public client cannot use the client_credentials grant").field_path(".grantTypes"))]
#[x_kube(validation = Rule::new("!self.grantTypes.exists(g, g == 'authorization_code') || (has(self.redirectUris) && size(self.redirectUris) > 0)").message("the authorization_code grant needs at least one redirectUri").field_path(".redirectUris"))]
#[x_kube(validation = Rule::new("self.type != 'Public' || !has(self.workloadIdentity)").message("a Public client has no workloadIdentity: workload identity authenticates a Confidential client").field_path(".workloadIdentity"))]
pub struct ApiClientSpec {
    /// The OAuth 2.0 `client_id`. Default: `<namespace>.<name>`. Unique in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[A-Za-z0-9][A-Za-z0-9._~:-]*$"))]
    pub client_id: Option<String>,

    /// The application's name as people know it, shown with the client id on the page where
    /// a user agrees to sign in to it. 1 to 100 characters, without control, format or line
    /// separator characters and without leading or trailing spaces. Default: the client id
    /// alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), pattern(r"^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp} ]([^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]*[^\p{Cc}\p{Cf}\p{Zl}\p{Zp} ])?$"))]
    pub display_name: Option<String>,

    /// Confidential clients authenticate with a secret; Public clients use PKCE only.
    #[serde(default, rename = "type")]
    pub client_type: ClientType,

    /// Where the client secret is kept (Confidential clients only). A missing Secret is created
    /// with a random 256-bit secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,

    /// The grants this client may use.
    #[schemars(length(min = 1, max = 3), extend("x-kubernetes-list-type" = "set"))]
    pub grant_types: Vec<GrantType>,

    /// Redirect URIs, matched exactly; required for `authorization_code`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 2048), pattern(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s#]+$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub redirect_uris: Vec<String>,

    /// The APIs this client may ask for tokens for, and which of their scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["audience"]))]
    pub audiences: Vec<AudienceGrant>,

    /// Workloads that may act as this client without a client secret: ServiceAccounts of this
    /// namespace (their projected tokens) and subjects of FederatedIssuers (CI systems, other
    /// clusters). A client with workloadIdentity and no secretRef has no secret at all; with a
    /// secretRef both ways work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
}

/// Most ServiceAccounts, and most federated subjects, one client may name.
pub const MAX_WORKLOAD_IDENTITIES: usize = 32;

/// The workloads that may act as a client (see `docs/workload-identity.md`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.serviceAccounts) && size(self.serviceAccounts) > 0) || (has(self.federated) && size(self.federated) > 0)").message("workloadIdentity names at least one ServiceAccount or one federated subject"))]
pub struct WorkloadIdentity {
    /// Names of ServiceAccounts in the client's namespace. A pod running as one of them
    /// presents its projected token (audience: the issuer's URL) as a client assertion or as
    /// the subject token of a token exchange. A ServiceAccount deleted and created again under
    /// the same name is a new one: it acts as this client once the controller has seen it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(min = 1, max = 253), pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub service_accounts: Vec<String>,

    /// Tokens of a FederatedIssuer whose `sub` and other claims match exactly. The
    /// FederatedIssuer must allow this client's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub federated: Vec<FederatedSubject>,
}

/// A subject of a FederatedIssuer that may act as a client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FederatedSubject {
    /// The name of a FederatedIssuer (cluster-scoped, declared by the platform team).
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub issuer: String,
    /// The token's `sub`, matched exactly (for GitHub Actions for example
    /// `repo:octo-org/octo-repo:ref:refs/heads/main`).
    #[schemars(length(min = 1, max = 1024))]
    pub subject: String,
    /// Further claims the token must carry, each a string matched exactly (for GitLab for
    /// example `project_path: group/project`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub claims: BTreeMap<String, String>,
}

/// How a client authenticates.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientType {
    /// Authenticates with a client secret (`client_secret_basic` or `client_secret_post`).
    #[default]
    Confidential,
    /// Cannot keep a secret (browser or mobile apps): sends only `client_id` and PKCE.
    Public,
}

/// The OAuth 2.0 grants tokenwarden serves.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// RFC 6749 §4.4: the client acts on its own behalf.
    ClientCredentials,
    /// RFC 6749 §4.1 with PKCE (RFC 7636): a user signs in.
    AuthorizationCode,
    /// RFC 6749 §6: a refresh token gets a new access token.
    RefreshToken,
}

impl GrantType {
    /// The `grant_type` parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A key of a Secret in the client's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The key in the Secret's data.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_secret_key() -> String {
    DEFAULT_SECRET_KEY.to_owned()
}

/// One API a client may ask for, with the scopes it may ask for there.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AudienceGrant {
    /// The `audience` of an ApiTokenPolicy.
    #[schemars(length(min = 1, max = 1024))]
    pub audience: String,
    /// Scopes of that API this client may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 256), pattern(r#"^[\x21\x23-\x5B\x5D-\x7E]+$"#)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub scopes: Vec<String>,
}

/// What the controller observed of a client.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiClientStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The `client_id` in effect (the default filled in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `Ready` tells whether the issuer accepts this client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
