//! Workload identity in the issuer configuration: which ServiceAccounts (by their UID now) and
//! which subjects of which FederatedIssuers may act as which clients. Part of [`super::build`]:
//! pure, no I/O. The ServiceAccounts' UIDs are declared facts the controller reads from the
//! cluster, as it reads Secrets, so the issuer compares a token's UID without a call.

use super::{Declared, Problem, Reason};
use crate::api::{ApiClient, FederatedIssuer};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// ServiceAccounts by (namespace, name): their UIDs.
pub type ServiceAccounts = BTreeMap<(String, String), String>;

/// Who may act as which client without a secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentityConfig {
    /// `<namespace>/<name>` of a ServiceAccount that exists -> its UID and the clients it may
    /// act as.
    pub service_accounts: BTreeMap<String, ServiceAccountConfig>,
    /// FederatedIssuer name -> what its tokens are checked against (only issuers some
    /// accepted client names).
    pub federated_issuers: BTreeMap<String, FederatedIssuerConfig>,
    /// Every federated subject an accepted client declares, with that client.
    pub federated_subjects: Vec<FederatedSubjectConfig>,
}

/// A ServiceAccount as it exists now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountConfig {
    /// `metadata.uid`: a token of a deleted ServiceAccount of the same name carries another.
    pub uid: String,
    pub client_ids: BTreeSet<String>,
}

/// A FederatedIssuer, as enforced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedIssuerConfig {
    pub issuer_url: String,
    /// None: from the issuer's OpenID Connect discovery.
    pub jwks_uri: Option<String>,
    /// Empty: the tokenwarden issuer's own URL.
    pub audiences: Vec<String>,
}

/// A subject of a FederatedIssuer that may act as a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederatedSubjectConfig {
    /// The FederatedIssuer's name.
    pub issuer: String,
    pub subject: String,
    pub claims: BTreeMap<String, String>,
    pub client_id: String,
}

/// The `<namespace>/<name>` key of a ServiceAccount, as metrics and logs name it too.
pub fn service_account_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What one client's `spec.workloadIdentity` adds to the configuration.
#[derive(Debug, Default)]
pub(super) struct ClientIdentities {
    service_accounts: Vec<(String, String)>,
    issuers: Vec<(String, FederatedIssuerConfig)>,
    subjects: Vec<FederatedSubjectConfig>,
}

/// The identities `client` declares that hold, and a problem for each that does not: a
/// ServiceAccount that does not exist (when the ServiceAccounts are known), a FederatedIssuer
/// that does not exist or does not allow the client's namespace.
pub(super) fn of_client(
    client: &ApiClient,
    client_id: &str,
    declared: &Declared,
) -> (ClientIdentities, Vec<Problem>) {
    let mut out = ClientIdentities::default();
    let mut problems = Vec::new();
    let Some(identity) = &client.spec.workload_identity else {
        return (out, problems);
    };
    let namespace = client.namespace().unwrap_or_default();
    if let Some(known) = &declared.service_accounts {
        for name in &identity.service_accounts {
            match known.get(&(namespace.clone(), name.clone())) {
                Some(uid) => out.service_accounts.push((name.clone(), uid.clone())),
                None => problems.push((
                    Reason::ServiceAccountNotFound,
                    format!("ServiceAccount {namespace}/{name} does not exist"),
                )),
            }
        }
    }
    for wanted in &identity.federated {
        let Some(issuer) = find_issuer(&declared.federated_issuers, &wanted.issuer) else {
            problems.push((
                Reason::UnknownFederatedIssuer,
                format!("no FederatedIssuer is named {:?}", wanted.issuer),
            ));
            continue;
        };
        if !issuer.spec.allows_namespace(&namespace) {
            problems.push((
                Reason::FederatedIssuerNotAllowed,
                format!(
                    "FederatedIssuer {} does not allow ApiClients of namespace {namespace:?} (its spec.namespaces: {}); ask the platform team, or remove it from spec.workloadIdentity.federated",
                    wanted.issuer,
                    issuer.spec.namespaces.join(", ")
                ),
            ));
            continue;
        }
        out.issuers.push((
            wanted.issuer.clone(),
            FederatedIssuerConfig {
                issuer_url: issuer.spec.issuer_url.clone(),
                jwks_uri: issuer.spec.jwks_uri.clone(),
                audiences: issuer.spec.audiences.clone(),
            },
        ));
        out.subjects.push(FederatedSubjectConfig {
            issuer: wanted.issuer.clone(),
            subject: wanted.subject.clone(),
            claims: wanted.claims.clone(),
            client_id: client_id.to_owned(),
        });
    }
    (out, problems)
}

fn find_issuer<'d>(
    issuers: &'d [std::sync::Arc<FederatedIssuer>],
    name: &str,
) -> Option<&'d FederatedIssuer> {
    issuers.iter().map(|i| &**i).find(|i| i.name_any() == name)
}

impl WorkloadIdentityConfig {
    /// Add the identities of an accepted client.
    pub(super) fn add(&mut self, namespace: &str, client_id: &str, identities: ClientIdentities) {
        for (name, uid) in identities.service_accounts {
            let entry = self
                .service_accounts
                .entry(service_account_key(namespace, &name))
                .or_default();
            entry.uid = uid;
            entry.client_ids.insert(client_id.to_owned());
        }
        self.federated_issuers.extend(identities.issuers);
        self.federated_subjects.extend(identities.subjects);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Built, build};
    use super::*;
    use crate::api::{FederatedIssuerSpec, FederatedSubject, WorkloadIdentity};
    use crate::at_scale::machine_client;
    use std::sync::Arc;

    fn worker(identity: WorkloadIdentity) -> Arc<ApiClient> {
        let mut client = machine_client("apps", "worker", vec![]);
        client.spec.workload_identity = Some(identity);
        Arc::new(client)
    }

    fn github(namespaces: &[&str]) -> Arc<FederatedIssuer> {
        Arc::new(FederatedIssuer::new(
            "github",
            FederatedIssuerSpec {
                issuer_url: "https://token.actions.githubusercontent.com".into(),
                jwks_uri: None,
                audiences: vec![],
                namespaces: namespaces.iter().map(|n| (*n).into()).collect(),
            },
        ))
    }

    fn from_github(subject: &str) -> FederatedSubject {
        FederatedSubject {
            issuer: "github".into(),
            subject: subject.into(),
            claims: BTreeMap::from([("repository".into(), "octo/app".into())]),
        }
    }

    fn verdict_of(built: &Built) -> (Reason, String, bool) {
        let v = built
            .verdicts
            .iter()
            .find(|v| v.name == "worker")
            .expect("verdict");
        (v.reason, v.message.clone(), v.stalled)
    }

    #[test]
    fn a_client_with_workload_identity_and_no_secret_ref_has_no_secret_and_is_accepted() {
        let client = worker(WorkloadIdentity {
            service_accounts: vec!["worker".into()],
            federated: vec![],
        });
        assert_eq!(crate::config::secret_ref_of(&client), None);
        let declared = Declared {
            clients: vec![client],
            secrets: Some(Default::default()),
            service_accounts: Some(BTreeMap::from([(
                ("apps".into(), "worker".into()),
                "uid-1".into(),
            )])),
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(verdict_of(&built).0, Reason::Enforced);
        assert_eq!(built.config.clients["apps.worker"].secret_sha256, None);
        assert_eq!(
            built.config.workload_identity.service_accounts["apps/worker"],
            ServiceAccountConfig {
                uid: "uid-1".into(),
                client_ids: ["apps.worker".to_owned()].into(),
            }
        );
    }

    #[test]
    fn a_service_account_that_does_not_exist_is_named_and_acts_as_nobody() {
        let client = worker(WorkloadIdentity {
            service_accounts: vec!["worker".into(), "gone".into()],
            federated: vec![],
        });
        let declared = Declared {
            clients: vec![client],
            secrets: Some(Default::default()),
            service_accounts: Some(BTreeMap::from([
                (("apps".into(), "worker".into()), "uid-1".into()),
                // Same name, other namespace: not this client's.
                (("other".into(), "gone".into()), "uid-2".into()),
            ])),
            ..Declared::default()
        };
        let built = build(&declared);
        let (reason, message, stalled) = verdict_of(&built);
        assert_eq!(reason, Reason::ServiceAccountNotFound);
        assert_eq!(message, "ServiceAccount apps/gone does not exist");
        assert!(!stalled, "it may be created in the same sync");
        let accounts = &built.config.workload_identity.service_accounts;
        assert_eq!(accounts.keys().collect::<Vec<_>>(), ["apps/worker"]);
    }

    #[test]
    fn a_federated_subject_needs_an_issuer_that_allows_the_clients_namespace() {
        let identity = WorkloadIdentity {
            service_accounts: vec![],
            federated: vec![from_github("repo:octo/app:ref:refs/heads/main")],
        };
        let declared = |issuers: Vec<Arc<FederatedIssuer>>| Declared {
            clients: vec![worker(identity.clone())],
            secrets: Some(Default::default()),
            federated_issuers: issuers,
            ..Declared::default()
        };

        let built = build(&declared(vec![]));
        let (reason, message, stalled) = verdict_of(&built);
        assert_eq!(reason, Reason::UnknownFederatedIssuer);
        assert_eq!(message, "no FederatedIssuer is named \"github\"");
        assert!(!stalled);

        let built = build(&declared(vec![github(&["ci-*"])]));
        let (reason, message, stalled) = verdict_of(&built);
        assert_eq!(reason, Reason::FederatedIssuerNotAllowed);
        assert!(
            message.starts_with(
                "FederatedIssuer github does not allow ApiClients of namespace \"apps\" (its spec.namespaces: ci-*)"
            ),
            "{message}"
        );
        assert!(stalled, "only the platform team can change it");
        assert!(built.config.workload_identity.federated_subjects.is_empty());
        assert!(built.config.workload_identity.federated_issuers.is_empty());

        let built = build(&declared(vec![github(&["ci-*", "apps"])]));
        assert_eq!(verdict_of(&built).0, Reason::Enforced);
        let wi = &built.config.workload_identity;
        assert_eq!(
            wi.federated_issuers["github"].issuer_url,
            "https://token.actions.githubusercontent.com"
        );
        assert_eq!(
            wi.federated_subjects,
            [FederatedSubjectConfig {
                issuer: "github".into(),
                subject: "repo:octo/app:ref:refs/heads/main".into(),
                claims: BTreeMap::from([("repository".into(), "octo/app".into())]),
                client_id: "apps.worker".into(),
            }]
        );
    }

    #[test]
    fn without_the_clusters_service_accounts_none_acts_as_a_client() {
        // Standalone mode and `validate` have no cluster.
        let declared = Declared {
            clients: vec![worker(WorkloadIdentity {
                service_accounts: vec!["worker".into()],
                federated: vec![],
            })],
            secrets: Some(Default::default()),
            ..Declared::default()
        };
        let built = build(&declared);
        assert_eq!(verdict_of(&built).0, Reason::Enforced);
        assert!(built.config.workload_identity.service_accounts.is_empty());
    }
}
