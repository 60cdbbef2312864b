//! Stopping and starting the API server of the test control plane: the data lives in etcd and
//! survives, and clients made before the restart work again after it. A test binary of its
//! own, because every test of a binary would see the outage.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::collections::BTreeMap;

#[tokio::test]
async fn objects_survive_an_api_server_stop_and_start_and_old_clients_reconnect() {
    let cluster = support::cluster();
    let ns = cluster.new_namespace("restart").await;
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client(), &ns);
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("kept".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    };
    config_maps
        .create(&PostParams::default(), &map)
        .await
        .expect("creating a ConfigMap");

    cluster.stop_apiserver().await;
    config_maps
        .get("kept")
        .await
        .expect_err("a request to a stopped API server fails");

    cluster.start_apiserver().await;
    let read = config_maps
        .get("kept")
        .await
        .expect("the ConfigMap after the restart");
    assert_eq!(read.data, map.data);
}
