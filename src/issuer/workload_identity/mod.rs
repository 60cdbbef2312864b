//! Workload identity: a workload's own token instead of a client secret. A pod presents its
//! projected ServiceAccount token, a CI job the OIDC token of its CI system (a FederatedIssuer),
//! as a client assertion (RFC 7523 §2.2) or as the subject token of a token exchange (RFC 8693).
//!
//! - `verify`: the rules, pure: signature, `iss`, `aud`, `exp`/`nbf`/`iat` with a stated
//!   skew, the ServiceAccount's UID now, federated subjects and claims; and which client the
//!   workload acts as.
//! - `keys`: the issuers' keys, cached and read again on an unknown `kid`.
//! - `pod_binding`: whether a pod-bound ServiceAccount token's pod still exists (a
//!   TokenReview per token at most every 15 s, never per request).
//!
//! `Workloads::resolve` puts them together for the token route. Must not decide grants or
//! render HTTP: the route authenticates the client with what this module says, and the grants
//! issue as for any client.

pub(crate) mod keys;
pub(crate) mod pod_binding;
pub(crate) mod verify;

use crate::config::IssuerConfig;
use keys::{ClusterKeys, FederatedKeys};
use pod_binding::PodBindings;
use verify::{Expected, Origin, Workload, WorkloadTokenError};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub(crate) const JWT_BEARER_ASSERTION: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The name under which RFC 8414 metadata lists client authentication with a workload's token.
/// Not `private_key_jwt`: that is a JWT the client signs with a key registered for it (OpenID
/// Connect Core §9); here a third party (the cluster, a CI system) signs it (docs/decisions.md).
pub(crate) const AUTH_METHOD: &str = "federated_jwt";

/// The key sources of the workloads' token issuers.
#[derive(Debug)]
pub struct Workloads {
    /// The cluster's service-account issuer (cluster mode only).
    cluster: Option<ClusterKeys>,
    /// The API server's word on pod-bound tokens (cluster mode only).
    pods: Option<PodBindings>,
    federated: Option<FederatedKeys>,
}

impl Default for Workloads {
    /// No cluster; FederatedIssuers over HTTP.
    fn default() -> Self {
        Self::new(None)
    }
}

/// The workload a token named, and the client it acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub client_id: String,
    pub workload: Workload,
}

impl Workloads {
    /// `cluster`: the API server, in cluster mode.
    pub(crate) fn new(cluster: Option<kube::Client>) -> Self {
        let federated = FederatedKeys::new()
            .inspect_err(|e| tracing::error!(error = %e, "cannot build the HTTP client for federated issuers' keys"))
            .ok();
        Self {
            pods: cluster.clone().map(PodBindings::new),
            cluster: cluster.map(ClusterKeys::new),
            federated,
        }
    }

    /// Verify `token` and find the client it acts as (the one `client_id` names, if given).
    /// `issuer_url` is tokenwarden's own: the audience ServiceAccount tokens must name, and
    /// that of a FederatedIssuer without `audiences`.
    pub(crate) async fn resolve(
        &self,
        config: &IssuerConfig,
        token: &str,
        client_id: Option<&str>,
        issuer_url: &str,
        now: u64,
    ) -> Result<Resolved, WorkloadTokenError> {
        let iss = verify::unverified_issuer(token)?;
        let cluster_issuer = match &self.cluster {
            Some(cluster) => cluster
                .issuer()
                .await
                .inspect_err(|e| tracing::warn!(error = %e, "cannot read the cluster's service-account issuer"))
                .ok(),
            None => None,
        };
        // A cluster token while the cluster's issuer cannot be read: unavailable, not refused.
        let cluster_unread = self.cluster.is_some() && cluster_issuer.is_none();
        let origin = verify::origin(config, cluster_issuer.as_deref(), &iss).map_err(|e| {
            if cluster_unread {
                WorkloadTokenError::KeysUnavailable
            } else {
                e
            }
        })?;
        let own = [issuer_url.to_owned()];
        let audiences: &[String] = match &origin {
            Origin::Cluster => &own,
            Origin::Federated { name, .. } => config
                .workload_identity
                .federated_issuers
                .get(name)
                .map(|i| i.audiences.as_slice())
                .filter(|a| !a.is_empty())
                .unwrap_or(&own),
        };
        let expected = Expected {
            issuer: &iss,
            audiences,
            now,
        };
        let mut claims =
            verify::verify(token, &self.keys(config, &origin, false).await?, &expected);
        if claims.as_ref().is_err_and(|e| e.key_may_be_new()) {
            claims = verify::verify(token, &self.keys(config, &origin, true).await?, &expected);
        }
        let (clients, workload) = verify::identify(config, &origin, &claims?)?;
        if let (Workload::ServiceAccount { pod: Some(_), .. }, Some(pods)) = (&workload, &self.pods)
        {
            match pods.still_bound(token, issuer_url).await {
                Ok(true) => {}
                Ok(false) => return Err(WorkloadTokenError::PodGone),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot ask the API server about a pod-bound token");
                    return Err(WorkloadTokenError::KeysUnavailable);
                }
            }
        }
        let client_id = verify::choose_client(&clients, client_id)?;
        Ok(Resolved {
            client_id,
            workload,
        })
    }

    async fn keys(
        &self,
        config: &IssuerConfig,
        origin: &Origin,
        refresh: bool,
    ) -> Result<jsonwebtoken::jwk::JwkSet, WorkloadTokenError> {
        let fetched = match origin {
            Origin::Cluster => match &self.cluster {
                Some(cluster) => cluster.keys(refresh).await,
                None => return Err(WorkloadTokenError::UnknownIssuer),
            },
            Origin::Federated { name, issuer_url } => {
                let jwks_uri = config
                    .workload_identity
                    .federated_issuers
                    .get(name)
                    .and_then(|i| i.jwks_uri.as_deref());
                match &self.federated {
                    Some(federated) => federated.keys(issuer_url, jwks_uri, refresh).await,
                    None => return Err(WorkloadTokenError::KeysUnavailable),
                }
            }
        };
        fetched.map_err(|e| {
            tracing::warn!(error = %e, "cannot read a workload token issuer's keys");
            WorkloadTokenError::KeysUnavailable
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// A token that names `iss`; its signature is never looked at in these tests.
    fn token_from(iss: &str) -> String {
        let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!(
            "{}.{}.c2ln",
            part(r#"{"alg":"RS256","kid":"k"}"#),
            part(&format!(r#"{{"iss":"{iss}"}}"#))
        )
    }

    #[tokio::test]
    async fn a_token_while_the_clusters_issuer_cannot_be_read_is_unavailable_not_refused() {
        // An API server that is not there.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let workloads = Workloads::new(Some(client));
        let token = token_from("https://kubernetes.default.svc.cluster.local");
        let result = workloads
            .resolve(&IssuerConfig::default(), &token, None, "https://tw.test", 1)
            .await;
        assert_eq!(result, Err(WorkloadTokenError::KeysUnavailable));
        // Without a cluster (standalone mode) the same token names an unknown issuer.
        let result = Workloads::new(None)
            .resolve(&IssuerConfig::default(), &token, None, "https://tw.test", 1)
            .await;
        assert_eq!(result, Err(WorkloadTokenError::UnknownIssuer));
    }
}
