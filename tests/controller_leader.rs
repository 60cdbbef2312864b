//! Two controller replicas: one leads (holds the Lease and reconciles), the other follows with
//! warm caches and takes over when the leader dies. A test binary of its own, because it runs
//! and kills its own controllers.

mod operator;
mod support;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use operator::{apply, eventually, patch, policy_ready, spawn_controller, start_controller};
use std::time::Duration;

async fn leads(base: &str) -> Option<bool> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("tokenwarden_controller_leader "))?;
    Some(line.ends_with(" 1"))
}

#[tokio::test]
async fn one_of_two_controllers_leads_and_the_other_takes_over_when_it_dies() {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let ns = cluster.new_namespace("leader").await;
    let first = start_controller(cluster, "controller-a", &system).await;
    let second = spawn_controller(cluster, "controller-b", &system);
    eventually(Duration::from_secs(30), "both replicas answer", || async {
        Some((leads(&first.base).await?, leads(&second.base).await?))
    })
    .await;
    assert_eq!(
        leads(&first.base).await,
        Some(true),
        "the first replica leads"
    );
    assert_eq!(leads(&second.base).await, Some(false), "the second follows");
    let lease = Api::<Lease>::namespaced(cluster.client(), &system)
        .get("tokenwarden-controller")
        .await
        .expect("the Lease");
    let holder = lease
        .spec
        .and_then(|s| s.holder_identity)
        .expect("a holder");

    let audience = format!("https://{ns}.example.com");
    apply(
        cluster,
        &format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {{name: api, namespace: {ns}}}\nspec: {{audience: \"{audience}\", tokenExpirationSeconds: 600}}\n"
        ),
    )
    .expect("apply");
    eventually(Duration::from_secs(30), "the leader reconciles", || async {
        policy_ready(cluster, &ns, "api")
            .await
            .filter(|(s, _, current)| s == "True" && *current)
    })
    .await;

    assert!(cluster.kill_component(&first.name), "SIGKILL the leader");
    patch(
        cluster,
        &ns,
        "atp/api",
        r#"{"spec":{"tokenExpirationSeconds":900}}"#,
    )
    .expect("patch");
    eventually(
        Duration::from_secs(40),
        "the follower takes over",
        || async { leads(&second.base).await.filter(|l| *l) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the new leader reconciles the change",
        || async {
            policy_ready(cluster, &ns, "api")
                .await
                .filter(|(s, _, current)| s == "True" && *current)
        },
    )
    .await;
    let lease = Api::<Lease>::namespaced(cluster.client(), &system)
        .get("tokenwarden-controller")
        .await
        .expect("the Lease");
    let spec = lease.spec.expect("spec");
    assert_ne!(spec.holder_identity.as_deref(), Some(holder.as_str()));
    assert_eq!(spec.lease_transitions, Some(1));

    // A graceful stop releases the Lease at once.
    assert!(cluster.stop_component(&second.name));
    let lease = Api::<Lease>::namespaced(cluster.client(), &system)
        .get("tokenwarden-controller")
        .await
        .expect("the Lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity), None);
}
