//! `FederatedIssuer`: an OpenID Connect issuer outside the cluster (a CI system, another
//! cluster) whose tokens may act as ApiClients, and the namespaces whose ApiClients may name
//! it. Cluster-scoped, so only the platform team decides which issuers a namespace may trust;
//! an ApiClient names one in `spec.workloadIdentity.federated[].issuer`.

use super::guardrail::glob_matches;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// An external OpenID Connect issuer whose tokens ApiClients of some namespaces may accept.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tokenwarden.dev",
    version = "v1alpha1",
    kind = "FederatedIssuer",
    doc = "The platform team's trust in an external OpenID Connect issuer (a CI system, another cluster): ApiClients of the namespaces it names may accept its tokens for subjects they declare.",
    plural = "federatedissuers",
    shortname = "fedi",
    category = "tokenwarden",
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerUrl"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIssuerSpec {
    /// The issuer's URL, exactly as its tokens' `iss` claim says it (for GitHub Actions
    /// `https://token.actions.githubusercontent.com`). https, or http on a loopback address.
    #[schemars(
        length(min = 1, max = 1024),
        pattern(
            r"^(https://[^\s#?]+|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/[^\s#?]*)?)$"
        )
    )]
    pub issuer_url: String,

    /// Where the issuer publishes its signing keys (a JWK Set). Default: the `jwks_uri` of its
    /// OpenID Connect discovery document (`<issuerUrl>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        pattern(
            r"^(https://[^\s#]+|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?(/[^\s#]*)?)$"
        )
    )]
    pub jwks_uri: Option<String>,

    /// The `aud` values accepted: a token must name one of them. Default: the tokenwarden
    /// issuer's own URL, which is what a CI job asks its OIDC provider for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 1024)),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub audiences: Vec<String>,

    /// The namespaces whose ApiClients may name this issuer: names, or patterns with one `*`
    /// that matches any run of characters (`ci-*`), as in AudienceGuardrail; `"*"` is every
    /// namespace.
    #[schemars(
        length(min = 1, max = 256),
        inner(length(min = 1, max = 63), pattern(r"^[-a-z0-9]*\*?[-a-z0-9]*$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub namespaces: Vec<String>,
}

impl FederatedIssuerSpec {
    /// Whether ApiClients of `namespace` may name this issuer.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|p| glob_matches(p, namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_allows_the_namespaces_its_patterns_match() {
        let spec = FederatedIssuerSpec {
            issuer_url: "https://token.actions.githubusercontent.com".into(),
            jwks_uri: None,
            audiences: vec![],
            namespaces: vec!["ci-*".into(), "build".into()],
        };
        assert!(spec.allows_namespace("ci-web"));
        assert!(spec.allows_namespace("build"));
        assert!(!spec.allows_namespace("payments"));
        assert!(!spec.allows_namespace("builds"));
    }
}
