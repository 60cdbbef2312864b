//! The CRDs on a real kube-apiserver: every admission case gets the same verdict from the API
//! server as from `tokenwarden validate`, defaults are filled in by the server, the audience
//! is immutable, and `kubectl get atp` shows the columns users look at.

use crate::cases;
use crate::support;

use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokenwarden::api::{ApiTokenPolicy, ApiTokenPolicySpec};

fn offline_verdict(path: &std::path::Path) -> Vec<String> {
    tokenwarden::manifests::load(&[path.to_path_buf()])
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn every_case_gets_the_same_verdict_from_the_api_server_and_validate() {
    let cluster = support::cluster();
    cluster.install_crds();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ns = runtime.block_on(cluster.new_namespace("cases"));
    let mut disagreements = Vec::new();
    for (case, valid) in cases::valid()
        .into_iter()
        .map(|c| (c, true))
        .chain(cases::invalid().into_iter().map(|c| (c, false)))
    {
        let file = case.path.to_string_lossy().into_owned();
        let server = cluster.run_kubectl(&["apply", "--server-side", "-n", &ns, "-f", &file]);
        let offline = offline_verdict(&case.path);
        let server_accepts = server.is_ok();
        if server_accepts != valid || offline.is_empty() != valid {
            disagreements.push(format!(
                "{}: expected {}, API server {:?}, validate {:?}",
                case.name,
                if valid { "accepted" } else { "rejected" },
                server,
                offline
            ));
            continue;
        }
        if let Err(message) = server
            && !message.contains(&case.field)
        {
            disagreements.push(format!(
                "{}: the API server does not name {}: {message}",
                case.name, case.field
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}

#[tokio::test]
async fn a_policy_without_token_expiration_is_read_back_with_86400() {
    let cluster = support::cluster();
    cluster.install_crds();
    let ns = cluster.new_namespace("defaults").await;
    let api: Api<ApiTokenPolicy> = Api::namespaced(cluster.client(), &ns);
    let object: ApiTokenPolicy = serde_json::from_value(json!({
        "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiTokenPolicy",
        "metadata": {"name": "banking"},
        "spec": {"audience": "https://banking.example.com"},
    }))
    .expect("object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("created");
    let stored = api.get("banking").await.expect("read back");
    assert_eq!(stored.spec.token_expiration_seconds, 86_400);
    assert!(!stored.spec.offline_access);
    assert_eq!(
        stored.spec.refresh_tokens.absolute_lifetime_seconds,
        2_592_000
    );

    // The offline admission fills in exactly what the server did.
    let offline = tokenwarden::api::admit(
        tokenwarden::api::Kind::ApiTokenPolicy,
        &serde_json::to_value(&object).expect("json"),
    )
    .expect("admitted");
    let offline: ApiTokenPolicySpec =
        serde_json::from_value(offline["spec"].clone()).expect("spec");
    assert_eq!(offline, stored.spec);
}

#[tokio::test]
async fn the_api_server_rejects_0_and_2592001_in_the_words_validate_uses() {
    let cluster = support::cluster();
    cluster.install_crds();
    let ns = cluster.new_namespace("bounds").await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        cluster.client(),
        &ns,
        &kube::api::ApiResource::erase::<ApiTokenPolicy>(&()),
    );
    for (name, lifetime) in [
        ("zero", 0),
        ("too-long", 2_592_001),
        ("lower", 1),
        ("upper", 2_592_000),
    ] {
        let object = json!({
            "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiTokenPolicy",
            "metadata": {"name": name},
            "spec": {"audience": format!("https://{name}.example.com"), "tokenExpirationSeconds": lifetime},
        });
        let offline = tokenwarden::api::admit(tokenwarden::api::Kind::ApiTokenPolicy, &object);
        let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
        let result = api.create(&PostParams::default(), &object).await;
        match (lifetime, result) {
            (1 | 2_592_000, Ok(_)) => assert!(offline.is_ok(), "{lifetime}: {offline:?}"),
            (0 | 2_592_001, Err(kube::Error::Api(status))) => {
                assert_eq!(status.code, 422);
                // `tokenwarden validate` says it in the API server's own words.
                let offline = offline.expect_err("validate refuses it too");
                let [error] = &offline[..] else {
                    panic!("one problem, not {offline:?}");
                };
                assert!(
                    status.message.ends_with(&format!(": {error}")),
                    "API server: {}\nvalidate:   {error}",
                    status.message
                );
            }
            (lifetime, other) => panic!("{lifetime}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_audience_of_a_policy_cannot_change() {
    let cluster = support::cluster();
    cluster.install_crds();
    let ns = cluster.new_namespace("immutable").await;
    let api: Api<ApiTokenPolicy> = Api::namespaced(cluster.client(), &ns);
    let params = PatchParams::apply("tokenwarden-test").force();
    let policy = |audience: &str, lifetime: i64| {
        json!({
            "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiTokenPolicy",
            "metadata": {"name": "banking"},
            "spec": {"audience": audience, "tokenExpirationSeconds": lifetime},
        })
    };
    api.patch(
        "banking",
        &params,
        &Patch::Apply(policy("https://a.example.com", 600)),
    )
    .await
    .expect("created");
    api.patch(
        "banking",
        &params,
        &Patch::Apply(policy("https://a.example.com", 1200)),
    )
    .await
    .expect("lifetime may change");
    let error = api
        .patch(
            "banking",
            &params,
            &Patch::Apply(policy("https://b.example.com", 1200)),
        )
        .await
        .expect_err("the audience may not change");
    let kube::Error::Api(status) = error else {
        panic!("{error:?}")
    };
    assert!(
        status.message.contains("spec.audience") && status.message.contains("immutable"),
        "{}",
        status.message
    );
}

#[test]
fn kubectl_get_atp_shows_audience_lifetime_offline_ready_and_age() {
    let cluster = support::cluster();
    cluster.install_crds();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ns = runtime.block_on(cluster.new_namespace("columns"));
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/todo.yaml");
    let text = std::fs::read_to_string(&examples)
        .expect("example")
        .replace("namespace: productivity", &format!("namespace: {ns}"));
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), text).expect("write");
    cluster
        .run_kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &file.path().to_string_lossy(),
        ])
        .expect("apply the example");
    let table = cluster
        .run_kubectl(&["get", "atp", "-n", &ns])
        .expect("get atp");
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "AUDIENCE", "LIFETIME", "OFFLINE", "READY", "AGE"]
    );
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .expect("row")
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..4],
        ["todo", "https://todo.example.com", "86400", "true"]
    );
    let clients = cluster
        .run_kubectl(&["get", "apic", "-n", &ns])
        .expect("get apic");
    assert!(clients.contains("todo-web"), "{clients}");
    let all = cluster
        .run_kubectl(&["get", "tokenwarden", "-n", &ns])
        .expect("get by category");
    assert!(all.contains("todo") && all.contains("todo-web"), "{all}");
}
