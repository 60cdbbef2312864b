//! The controller killed with SIGKILL in the middle of reconciling, and started again,
//! converges with nothing duplicated or regenerated: one Secret per client with the value it
//! had, one signing key set, one set of configuration objects. A test binary of its own,
//! because it runs and kills its own controller.

mod fixtures;
mod operator;
mod support;

use fixtures::client_credentials;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::ListParams;
use operator::{apply, client_ready, eventually, lifetime, spawn_controller};
use std::collections::BTreeMap;
use std::time::Duration;

const CLIENTS: usize = 100;

fn values(secrets: &[Secret]) -> BTreeMap<String, Vec<u8>> {
    secrets
        .iter()
        .map(|s| {
            let data = s.data.clone().unwrap_or_default();
            (
                s.metadata.name.clone().unwrap_or_default(),
                data.get("clientSecret")
                    .map(|v| v.0.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_controller_killed_while_reconciling_converges_after_a_restart_with_no_duplicates() {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let ns = cluster.new_namespace("crash").await;
    let audience = format!("https://{ns}.example.com");

    // First the policy alone, so that the signing keys and the configuration exist before
    // the kill: the controller creates client Secrets before it writes the keys, so a kill
    // in the middle of the clients' first pass would otherwise find no keys to compare.
    apply(
        cluster,
        &format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {{name: api, namespace: {ns}}}\nspec: {{audience: \"{audience}\", tokenExpirationSeconds: 650}}\n"
        ),
    )
    .expect("apply the policy");
    let keys_api: Api<Secret> = Api::namespaced(cluster.client(), &system);
    let maps: Api<ConfigMap> = Api::namespaced(cluster.client(), &system);
    let setup = operator::start_controller(cluster, "controller-0", &system).await;
    let keys_before = eventually(
        Duration::from_secs(60),
        "the signing keys and the configuration are written",
        || async {
            maps.get_opt("tokenwarden-issuer-config").await.ok()??;
            keys_api
                .get_opt("tokenwarden-signing-keys")
                .await
                .ok()??
                .data
        },
    )
    .await;
    assert!(cluster.stop_component(&setup.name), "stop controller-0");

    // Then the clients, all at once while no controller runs, so that the next controller's
    // first reconcile creates their Secrets one after the other, and the kill lands in it.
    let mut yaml = String::new();
    for i in 0..CLIENTS {
        yaml.push_str(&format!(
            "---\napiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\nmetadata: {{name: c{i}, namespace: {ns}}}\nspec: {{clientId: {ns}-c{i}, grantTypes: [client_credentials], audiences: [{{audience: \"{audience}\"}}]}}\n"
        ));
    }
    apply(cluster, &yaml).expect("apply the clients");

    let secrets: Api<Secret> = Api::namespaced(cluster.client(), &ns);
    let generated = ListParams::default().labels("tokenwarden.dev/client-secret");
    let first = spawn_controller(cluster, "controller-1", &system);
    eventually(
        Duration::from_secs(60),
        "the controller creates Secrets",
        || async {
            let list = secrets.list(&generated).await.ok()?;
            (!list.items.is_empty()).then_some(())
        },
    )
    .await;
    assert!(cluster.kill_component(&first.name), "SIGKILL");
    let before = values(&secrets.list(&generated).await.expect("list").items);
    eprintln!("killed with {} of {CLIENTS} Secrets created", before.len());
    assert!(
        (1..CLIENTS).contains(&before.len()),
        "killed in the middle of creating Secrets (a handful are created when the kill lands)"
    );

    let second = operator::start_controller(cluster, "controller-2", &system).await;
    for i in 0..CLIENTS {
        let name = format!("c{i}");
        eventually(
            Duration::from_secs(60),
            "every client becomes Ready",
            || async {
                client_ready(cluster, &ns, &name)
                    .await
                    .filter(|(status, _, _)| status == "True")
            },
        )
        .await;
    }
    let after = secrets.list(&generated).await.expect("list").items;
    assert_eq!(after.len(), CLIENTS, "one Secret per client");
    for secret in &after {
        let owners = secret.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            Some(owners[0].name.as_str()),
            secret
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_suffix("-oauth"))
        );
    }
    let after = values(&after);
    for (name, value) in &before {
        assert_eq!(after.get(name), Some(value), "{name} was not regenerated");
    }
    let keys_after = keys_api
        .get("tokenwarden-signing-keys")
        .await
        .expect("keys")
        .data
        .expect("the signing keys have data");
    assert_eq!(
        keys_before, keys_after,
        "the signing keys were not regenerated"
    );
    let names: Vec<String> = maps
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=tokenwarden-controller"))
        .await
        .expect("config maps")
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    assert_eq!(
        names,
        ["tokenwarden-issuer-config", "tokenwarden-issuer-config-1"]
    );
    // At most one Event per client: a transition is announced once.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(cluster.client(), &ns);
    let mut per_object: BTreeMap<String, usize> = BTreeMap::new();
    for event in events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
    {
        let name = event.regarding.and_then(|r| r.name).unwrap_or_default();
        *per_object.entry(name).or_default() += 1;
    }
    assert!(per_object.values().all(|n| *n <= 1), "{per_object:?}");

    // A secret created before the kill works at an issuer following the new controller.
    let (name, value) = before.iter().next().expect("a Secret from before the kill");
    let client = name.strip_suffix("-oauth").expect("default name");
    let data = tempfile::tempdir().expect("data dir");
    let issuer = operator::start_issuer(cluster, "issuer", &system, data.path()).await;
    let answer = client_credentials(
        &issuer.base,
        &format!("{ns}-{client}"),
        std::str::from_utf8(value).expect("utf-8"),
        &audience,
    )
    .await;
    assert_eq!(lifetime(&answer), 650, "{answer}");
    assert!(cluster.component_running(&second.name));
}
