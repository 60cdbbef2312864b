//! The test control plane itself: a real kube-apiserver that reports its release, enforces
//! RBAC for static-token users, and accepts ServiceAccount tokens from the TokenRequest API.

use crate::support;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};

async fn username(client: Client) -> String {
    Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("creating a SelfSubjectReview")
        .status
        .and_then(|status| status.user_info)
        .and_then(|user| user.username)
        .expect("a SelfSubjectReview names the user")
}

#[tokio::test]
async fn the_api_server_reports_the_pinned_kubernetes_release() {
    let version = support::cluster()
        .client()
        .apiserver_version()
        .await
        .expect("GET /version");
    assert_eq!(version.git_version, "v1.36.3");
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "36")
    );
}

#[tokio::test]
async fn the_admin_client_is_the_admin_user_and_may_list_namespaces() {
    let cluster = support::cluster();
    assert_eq!(username(cluster.client()).await, support::ADMIN);
    Api::<Namespace>::all(cluster.client())
        .list(&ListParams::default())
        .await
        .expect("the admin lists namespaces");
}

#[tokio::test]
async fn a_service_account_token_from_token_request_authenticates_as_that_account() {
    let cluster = support::cluster();
    let ns = cluster.new_namespace("sa-token").await;
    let client = cluster.service_account_client(&ns, "reader").await;

    assert_eq!(
        username(client.clone()).await,
        format!("system:serviceaccount:{ns}:reader")
    );
    let denied = Api::<ConfigMap>::namespaced(client, &ns)
        .list(&ListParams::default())
        .await
        .expect_err("a ServiceAccount without a RoleBinding may not list ConfigMaps");
    assert!(
        matches!(&denied, kube::Error::Api(status) if status.code == 403),
        "expected 403, got {denied:?}"
    );
}

#[tokio::test]
async fn kubectl_talks_to_the_control_plane_as_admin_and_as_each_user() {
    let cluster = support::cluster();
    for (context, expected) in [("admin", "admin"), ("alice", "alice")] {
        let output = cluster
            .kubectl()
            .args([
                "--context",
                context,
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .output()
            .expect("running kubectl");
        assert!(output.status.success(), "kubectl auth whoami: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}
