//! The API server stopped and started under a running controller and issuer: the issuer keeps
//! serving from its last configuration while it is away, and follows a change made after it
//! is back. A test binary of its own, because every test of a binary would see the outage.

mod fixtures;
mod operator;
mod support;

use fixtures::client_credentials;
use operator::{
    apply, client_ready, eventually, lifetime, patch, policy_and_client, policy_ready,
    start_controller, start_issuer,
};
use std::time::Duration;

const SECRET: &str = "restart-secret-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn the_issuer_serves_its_last_configuration_while_the_api_server_is_away_and_catches_up_after()
 {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let ns = cluster.new_namespace("outage").await;
    let audience = format!("https://{ns}.example.com");
    let client_id = format!("{ns}-worker");
    let _controller = start_controller(cluster, "controller", &system).await;
    apply(
        cluster,
        &policy_and_client(&ns, &audience, 600, &client_id, SECRET),
    )
    .expect("apply");
    eventually(
        Duration::from_secs(30),
        "the client becomes Ready",
        || async {
            client_ready(cluster, &ns, "worker")
                .await
                .filter(|(status, _, _)| status == "True")
        },
    )
    .await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer = start_issuer(cluster, "issuer", &system, data.path()).await;
    let cc = || client_credentials(&issuer.base, &client_id, SECRET, &audience);
    assert_eq!(lifetime(&cc().await), 600);

    let t = std::time::Instant::now();
    cluster.stop_apiserver().await;
    eprintln!("stopped after {:?}", t.elapsed());
    for _ in 0..10 {
        assert_eq!(
            lifetime(&cc().await),
            600,
            "served while the API server is away"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = reqwest::get(format!("{}/readyz", issuer.base))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);

    cluster.start_apiserver().await;
    eprintln!("started after {:?}", t.elapsed());
    patch(
        cluster,
        &ns,
        "atp/api",
        r#"{"spec":{"tokenExpirationSeconds":1200}}"#,
    )
    .expect("patch");
    eventually(
        Duration::from_secs(60),
        "the issuer follows a change made after the restart",
        || async { (lifetime(&cc().await) == 1200).then_some(()) },
    )
    .await;
    eprintln!("caught up after {:?}", t.elapsed());
    eventually(
        Duration::from_secs(30),
        "the status describes the new generation",
        || async {
            policy_ready(cluster, &ns, "api")
                .await
                .filter(|(status, _, current)| status == "True" && *current)
        },
    )
    .await;
}
