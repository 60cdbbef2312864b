//! `AudienceGuardrail`: the platform team's word on which namespaces may declare which
//! audiences, and within what bounds. Cluster-scoped, so only who may write cluster-scoped
//! objects (the platform team) can change it.
//!
//! Every guardrail is a rule of its own, and an ApiTokenPolicy must pass every guardrail that
//! concerns it (so the strictest bound wins). For a policy in namespace `ns` with audience
//! `aud`, a guardrail whose `namespaces` match `ns` ("covers the namespace") and whose
//! `audiences` match `aud` ("covers the audience") says, in this order:
//! 1. it covers the audience but not the namespace: the audience is **reserved** for the
//!    guardrail's namespaces, whatever the creation times of the policies say;
//! 2. it covers the namespace but not the audience: the namespace may declare only the
//!    guardrail's audiences;
//! 3. it covers both: the bounds hold (`maxTokenExpirationSeconds`, `offlineAccess`,
//!    `signingAlgorithms`);
//! 4. it covers neither: it has nothing to say.
//!
//! Without any guardrail nothing changes: single-team clusters need none. The same rules run
//! in three places: at admission (the chart's ValidatingAdmissionPolicy, whose CEL mirrors
//! [`check`] and whose messages are [`Breach`]'s), in the controller and in standalone mode
//! ([`crate::config::build`]), and offline in `tokenwarden validate`.

use super::policy::{ApiTokenPolicySpec, MAX_TOKEN_EXPIRATION_SECONDS, SigningAlgorithm};
use kube::{CustomResource, KubeSchema, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which namespaces may declare which audiences, and within what bounds.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tokenwarden.dev",
    version = "v1alpha1",
    kind = "AudienceGuardrail",
    doc = "The platform team's rule for ApiTokenPolicies: which namespaces may declare which audiences, and within what bounds. Every guardrail that concerns a policy must pass.",
    plural = "audienceguardrails",
    shortname = "agr",
    category = "tokenwarden",
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces"}"#,
    printcolumn = r#"{"name":"Audiences","type":"string","jsonPath":".spec.audiences"}"#,
    printcolumn = r#"{"name":"Max-Lifetime","type":"integer","description":"Longest access-token lifetime in seconds","jsonPath":".spec.maxTokenExpirationSeconds"}"#,
    printcolumn = r#"{"name":"Offline","type":"string","description":"Whether offline access may be turned on","jsonPath":".spec.offlineAccess"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AudienceGuardrailSpec {
    /// The namespaces this guardrail is for: names, or patterns with one `*` that matches any
    /// run of characters (`payments-*`); `"*"` is every namespace. Policies of these
    /// namespaces may declare only `audiences`, within the bounds below.
    #[schemars(
        length(min = 1, max = 256),
        inner(length(min = 1, max = 63), pattern(r"^[-a-z0-9]*\*?[-a-z0-9]*$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub namespaces: Vec<String>,

    /// The audiences these namespaces own: exact values, or patterns with one `*` that
    /// matches any run of characters, `/` and `.` included (`https://*.payments.example.com`);
    /// `"*"` is every audience. An audience matched here may be declared by no other namespace.
    #[schemars(
        length(min = 1, max = 256),
        inner(length(min = 1, max = 1024), pattern(r"^[^*]*\*?[^*]*$")),
        extend("x-kubernetes-list-type" = "set")
    )]
    pub audiences: Vec<String>,

    /// The longest `tokenExpirationSeconds` these namespaces may declare for these audiences.
    /// Not set: up to the schema's 2592000 (30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TOKEN_EXPIRATION_SECONDS))]
    pub max_token_expiration_seconds: Option<i64>,

    /// Whether these namespaces may turn `offlineAccess` on for these audiences.
    #[serde(default)]
    pub offline_access: OfflineAccessRule,

    /// The signing algorithms these namespaces may choose. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), extend("x-kubernetes-list-type" = "set"))]
    pub signing_algorithms: Vec<SigningAlgorithm>,
}

/// Whether a guardrail lets policies turn offline access (refresh tokens) on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OfflineAccessRule {
    /// `offlineAccess: true` is allowed.
    #[default]
    Allowed,
    /// `offlineAccess` must be false.
    Forbidden,
}

/// Whether `value` matches `pattern`: equal, or, where the pattern has one `*`, starting with
/// what stands before it and ending with what stands after it (the `*` matches any run of
/// characters, the empty one included).
pub fn glob_matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len()
                && value.starts_with(prefix)
                && value.ends_with(suffix)
        }
    }
}

impl AudienceGuardrailSpec {
    /// Whether this guardrail is for policies of `namespace`.
    pub fn covers_namespace(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|p| glob_matches(p, namespace))
    }

    /// Whether this guardrail claims `audience` for its namespaces.
    pub fn covers_audience(&self, audience: &str) -> bool {
        self.audiences.iter().any(|p| glob_matches(p, audience))
    }
}

/// The rule of a guardrail that a policy breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Breach {
    /// The audience is reserved for the guardrail's namespaces.
    AudienceReserved,
    /// The guardrail lets the policy's namespace declare only its audiences.
    AudienceNotAllowed,
    /// `tokenExpirationSeconds` is above the guardrail's maximum.
    TokenLifetimeAboveMaximum { maximum: i64 },
    /// `offlineAccess: true` where the guardrail forbids it.
    OfflineAccessForbidden,
    /// `signingAlgorithm` is not one the guardrail allows.
    SigningAlgorithmNotAllowed,
}

/// A broken rule and the message that says so (naming the guardrail). The message is the one
/// the chart's ValidatingAdmissionPolicy gives at admission, word for word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardrailBreach {
    pub breach: Breach,
    pub message: String,
}

impl fmt::Display for GuardrailBreach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The first rule of `guardrail` that a policy of `namespace` with `spec` breaks, if any.
pub fn check(
    guardrail: &AudienceGuardrail,
    namespace: &str,
    spec: &ApiTokenPolicySpec,
) -> Option<GuardrailBreach> {
    let rule = &guardrail.spec;
    let name = guardrail.name_any();
    let audience = &spec.audience;
    let (in_namespace, in_audience) = (
        rule.covers_namespace(namespace),
        rule.covers_audience(audience),
    );
    let (breach, message) = match (in_namespace, in_audience) {
        (false, false) => return None,
        (false, true) => (
            Breach::AudienceReserved,
            format!(
                "audience {audience} is reserved by AudienceGuardrail {name} for the namespaces {}",
                rule.namespaces.join(", ")
            ),
        ),
        (true, false) => (
            Breach::AudienceNotAllowed,
            format!(
                "AudienceGuardrail {name} allows namespace {namespace} only the audiences {}",
                rule.audiences.join(", ")
            ),
        ),
        (true, true) => {
            if let Some(maximum) = rule
                .max_token_expiration_seconds
                .filter(|max| spec.token_expiration_seconds > *max)
            {
                (
                    Breach::TokenLifetimeAboveMaximum { maximum },
                    format!(
                        "tokenExpirationSeconds {} is above the maximum {maximum} of AudienceGuardrail {name}",
                        spec.token_expiration_seconds
                    ),
                )
            } else if spec.offline_access && rule.offline_access == OfflineAccessRule::Forbidden {
                (
                    Breach::OfflineAccessForbidden,
                    format!("AudienceGuardrail {name} forbids offlineAccess"),
                )
            } else if !rule.signing_algorithms.is_empty()
                && !rule.signing_algorithms.contains(&spec.signing_algorithm)
            {
                (
                    Breach::SigningAlgorithmNotAllowed,
                    format!(
                        "signingAlgorithm {} is not allowed by AudienceGuardrail {name}, which allows {}",
                        spec.signing_algorithm,
                        rule.signing_algorithms
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            } else {
                return None;
            }
        }
    };
    Some(GuardrailBreach { breach, message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RefreshTokenSettings;

    fn guardrail(namespaces: &[&str], audiences: &[&str]) -> AudienceGuardrail {
        AudienceGuardrail::new(
            "payments",
            AudienceGuardrailSpec {
                namespaces: namespaces.iter().map(|s| (*s).into()).collect(),
                audiences: audiences.iter().map(|s| (*s).into()).collect(),
                max_token_expiration_seconds: Some(3600),
                offline_access: OfflineAccessRule::Forbidden,
                signing_algorithms: vec![SigningAlgorithm::Es256, SigningAlgorithm::EdDsa],
            },
        )
    }

    fn policy(audience: &str) -> ApiTokenPolicySpec {
        ApiTokenPolicySpec {
            audience: audience.into(),
            token_expiration_seconds: 600,
            offline_access: false,
            signing_algorithm: SigningAlgorithm::Es256,
            scopes: vec![],
            refresh_tokens: RefreshTokenSettings::default(),
            allowed_client_namespaces: vec![],
            introspection_clients: vec![],
        }
    }

    #[test]
    fn a_pattern_has_one_star_that_matches_any_run_of_characters() {
        assert!(glob_matches("*", ""));
        assert!(glob_matches("*", "https://x"));
        assert!(glob_matches("payments-*", "payments-"));
        assert!(glob_matches("payments-*", "payments-prod"));
        assert!(!glob_matches("payments-*", "payments"));
        assert!(glob_matches(
            "https://*.payments.example.com",
            "https://api.eu.payments.example.com"
        ));
        assert!(!glob_matches(
            "https://*.payments.example.com",
            "https://payments.example.com"
        ));
        // Prefix and suffix may not overlap in the value.
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn an_audience_of_a_guardrail_is_reserved_for_its_namespaces() {
        let rule = guardrail(&["payments-*"], &["https://*.payments.example.com"]);
        let breach = check(
            &rule,
            "marketing",
            &policy("https://bank.payments.example.com"),
        )
        .expect("reserved");
        assert_eq!(breach.breach, Breach::AudienceReserved);
        assert_eq!(
            breach.message,
            "audience https://bank.payments.example.com is reserved by AudienceGuardrail payments for the namespaces payments-*"
        );
        assert_eq!(
            check(
                &rule,
                "payments-prod",
                &policy("https://bank.payments.example.com")
            ),
            None
        );
    }

    #[test]
    fn a_namespace_of_a_guardrail_declares_only_its_audiences() {
        let rule = guardrail(&["payments-*"], &["https://*.payments.example.com"]);
        let breach =
            check(&rule, "payments-dev", &policy("https://todo.example.com")).expect("confined");
        assert_eq!(breach.breach, Breach::AudienceNotAllowed);
        assert_eq!(
            check(&rule, "marketing", &policy("https://todo.example.com")),
            None,
            "a guardrail that covers neither has nothing to say"
        );
    }

    #[test]
    fn the_bounds_hold_where_a_guardrail_covers_namespace_and_audience() {
        let rule = guardrail(&["*"], &["*"]);
        let mut spec = policy("https://x");
        assert_eq!(check(&rule, "any", &spec), None);
        spec.token_expiration_seconds = 3601;
        assert_eq!(
            check(&rule, "any", &spec).map(|b| b.breach),
            Some(Breach::TokenLifetimeAboveMaximum { maximum: 3600 })
        );
        spec.token_expiration_seconds = 3600;
        spec.offline_access = true;
        assert_eq!(
            check(&rule, "any", &spec).map(|b| b.breach),
            Some(Breach::OfflineAccessForbidden)
        );
        spec.offline_access = false;
        spec.signing_algorithm = SigningAlgorithm::Rs256;
        let breach = check(&rule, "any", &spec).expect("algorithm");
        assert_eq!(breach.breach, Breach::SigningAlgorithmNotAllowed);
        assert!(breach.message.ends_with("which allows ES256, EdDSA"));
    }
}
