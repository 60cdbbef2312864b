//! The controller stopped and started again with nothing changed in between: the new process
//! reconciles everything from scratch (fresh caches, nothing it remembers) and writes nothing,
//! since everything it would write is already as it should be: no status, no Event, no
//! configuration object; and one that finds a configuration object deleted puts it back at
//! once. A test binary of its own, because it stops and starts its own
//! controller, which every other test of a binary would see. The first controller exports its
//! traces to a real OTLP receiver (Jaeger): its reconcile span arrives.

mod fixtures;
mod operator;
mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::ListParams;
use operator::scenario::{self, CONVERGE};
use operator::{eventually, metric_sum, policy_ready, start_controller};
use tokenwarden::api::{ApiClient, ApiTokenPolicy};

const SECRET: &str = "restart-secret-0123456789abcdefghijklmnopqrstuvwxyz";

#[tokio::test]
async fn a_restarted_controller_writes_no_status_when_nothing_changed() {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    // The first controller also exports its traces to a real OTLP receiver: its reconcile
    // span must reach it, flushed when it stops (docs/audit.md#traces).
    let jaeger = support::jaeger::jaeger();
    let service = format!("tokenwarden-controller-{}", std::process::id());
    let otlp = jaeger.otlp_endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", service.as_str()),
    ];
    let first = operator::spawn_controller_with_env(
        cluster,
        "controller-1",
        &system,
        cluster.kubeconfig_path(),
        &[],
        &env,
    );
    let first = operator::ready(cluster, first).await;
    let ns = scenario::apply_worker(cluster, &cluster.new_namespace("quiet").await, SECRET)
        .await
        .ns;
    // The client is Ready; the policy's status may still be on its way.
    eventually(CONVERGE, "the policy is Ready", || async {
        policy_ready(cluster, &ns, "api")
            .await
            .filter(|(status, _, current)| status == "True" && *current)
    })
    .await;

    let policies = Api::<ApiTokenPolicy>::namespaced(cluster.client(), &ns);
    let clients = Api::<ApiClient>::namespaced(cluster.client(), &ns);
    let maps = Api::<ConfigMap>::namespaced(cluster.client(), &system);
    let versions = || async {
        let policy = policies.get("api").await.expect("policy");
        let client = clients.get("worker").await.expect("client");
        let config = maps
            .list(&ListParams::default())
            .await
            .expect("config maps")
            .items
            .into_iter()
            .map(|m| (m.metadata.name, m.metadata.resource_version))
            .collect::<Vec<_>>();
        (
            policy.metadata.resource_version,
            client.metadata.resource_version,
            config,
        )
    };
    assert!(cluster.stop_component(&first.name), "stop controller-1");
    let before = versions().await;
    let traces = jaeger
        .wait_for_spans(&service, 1, std::time::Duration::from_secs(30))
        .await;
    let reconciles = traces
        .iter()
        .flat_map(|t| t["spans"].as_array().into_iter().flatten())
        .filter(|s| s["operationName"] == "reconcile")
        .count();
    assert!(
        reconciles >= 1,
        "no reconcile span reached Jaeger: {traces:#?}"
    );

    // A new process: its first reconcile goes over every object with nothing remembered.
    let second = start_controller(cluster, "controller-2", &system).await;
    eventually(
        CONVERGE,
        "controller-2 reconciles as the leader",
        || async {
            let done = metric_sum(
                &second.base,
                "tokenwarden_controller_reconciles_total{outcome=\"success\"}",
            )
            .await?;
            (done >= 1.0).then_some(())
        },
    )
    .await;
    // It saw the objects: the reconcile went over them.
    for kind in ["ApiTokenPolicy", "ApiClient"] {
        let name = format!("tokenwarden_controller_objects{{kind=\"{kind}\"}}");
        assert_eq!(metric_sum(&second.base, &name).await, Some(1.0), "{name}");
    }
    let after = versions().await;
    assert_eq!(before, after, "something was written while nothing changed");
    let metric = |name: &'static str| {
        let base = second.base.clone();
        async move {
            metric_sum(&base, name)
                .await
                .unwrap_or_else(|| panic!("controller-2 serves no /metrics"))
        }
    };
    assert_eq!(
        metric("tokenwarden_controller_status_writes_total").await,
        0.0,
        "status writes of controller-2"
    );
    assert_eq!(
        metric("tokenwarden_controller_config_writes_total").await,
        0.0,
        "configuration writes of controller-2"
    );
    // A first Ready=True is in the status, not announced (docs/decisions.md); nothing was
    // announced again after the restart either.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), &ns);
    let events: Vec<_> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| (e.type_, e.reason, e.regarding.and_then(|r| r.name)))
        .collect();
    assert_eq!(events, [], "Events in {ns}");

    // A configuration object deleted while no controller ran is put back by the next one's
    // first reconcile, not at its first periodic resync minutes later: until then, an issuer
    // that starts could not load its configuration.
    assert!(cluster.stop_component(&second.name), "stop controller-2");
    maps.delete("tokenwarden-issuer-config-1", &Default::default())
        .await
        .expect("delete the shard");
    let _third = start_controller(cluster, "controller-3", &system).await;
    eventually(CONVERGE, "the deleted shard is back", || async {
        maps.get_opt("tokenwarden-issuer-config-1")
            .await
            .expect("get the shard")
    })
    .await;
}
