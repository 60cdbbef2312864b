//! The CRDs of `crds/` on a real API server: they apply server-side, become Established, are
//! listed by kubectl, and RBAC guards the resources they define.

use crate::support;

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};
use std::time::{Duration, Instant};
use tokenwarden::api::{self, ApiTokenPolicy};

#[tokio::test]
async fn the_crds_apply_server_side_become_established_and_kubectl_lists_them() {
    let cluster = support::cluster();
    let crds = support::crds_dir();
    let applied = cluster
        .run_kubectl(&["apply", "--server-side", "-f", &crds.to_string_lossy()])
        .unwrap_or_else(|message| panic!("{message}"));
    let names: Vec<String> = api::crds()
        .into_iter()
        .map(|crd| crd.metadata.name.expect("a CRD has a name"))
        .collect();
    assert!(!names.is_empty());
    for name in &names {
        assert!(
            applied.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{name} serverside-applied"
            )),
            "kubectl apply --server-side did not apply {name}:\n{applied}"
        );
    }

    cluster.install_crds(); // waits for Established
    let crd_api: Api<CustomResourceDefinition> = Api::all(cluster.client());
    for name in &names {
        let crd = crd_api.get(name).await.expect("reading the CRD back");
        let established = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .into_iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} is not Established");
    }

    let listed = cluster
        .run_kubectl(&["get", "crd", "-o", "name"])
        .unwrap_or_else(|message| panic!("{message}"));
    for name in &names {
        assert!(
            listed.lines().any(|line| line == format!("customresourcedefinition.apiextensions.k8s.io/{name}")),
            "kubectl get crd does not list {name}:\n{listed}"
        );
    }
}

#[tokio::test]
async fn a_user_without_rights_gets_403_listing_policies_and_can_after_a_role_binding() {
    let cluster = support::cluster();
    cluster.install_crds();
    let ns = cluster.new_namespace("rbac").await;
    let as_alice: Api<ApiTokenPolicy> =
        Api::namespaced(cluster.client_as_user(support::ALICE), &ns);

    let denied = as_alice
        .list(&ListParams::default())
        .await
        .expect_err("alice has no RoleBinding yet");
    assert!(
        matches!(&denied, kube::Error::Api(status) if status.code == 403),
        "expected 403 Forbidden, got {denied:?}"
    );

    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ns.clone()),
        ..ObjectMeta::default()
    };
    let role = Role {
        metadata: meta("policy-reader"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![api::GROUP.to_owned()]),
            resources: Some(vec!["apitokenpolicies".to_owned()]),
            verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
            ..PolicyRule::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: meta("alice-reads-policies"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: "policy-reader".to_owned(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "User".to_owned(),
            name: support::ALICE.to_owned(),
            ..Subject::default()
        }]),
    };
    let admin = cluster.client();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("creating the Role");
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("creating the RoleBinding");

    // The authorizer learns of the binding through a watch: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let policies = loop {
        match as_alice.list(&ListParams::default()).await {
            Ok(list) => break list,
            Err(kube::Error::Api(status)) if status.code == 403 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("alice still cannot list policies after the RoleBinding: {error}"),
        }
    };
    assert!(policies.items.is_empty(), "a new namespace has no policies");
}
