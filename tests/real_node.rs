//! The chart on a real node, as users run it: the image built from this build's binary and
//! imported into containerd, `helm install` into a namespace that enforces Pod Security
//! "restricted", and then, step by step in the order of issue #20: the pods Ready through their
//! probes, the controller on its in-cluster configuration, a token through the issuer's
//! Service, an edit on the next token within 2 s, a refresh token surviving the issuer pod on
//! its PersistentVolumeClaim, a rolling update on PostgreSQL under load with zero failed
//! requests, a leader failover, and what `helm uninstall` leaves.
//!
//! The cluster (etcd, API server, controller-manager, scheduler, kube-proxy, containerd, the
//! kubelet, PostgreSQL) runs in network and mount namespaces this process makes for itself
//! (`support::node`), so this binary has no libtest harness: `main` seals the process while it
//! has one thread. A failed step prints `kubectl get pods -A -o wide`, the events, `describe`
//! and the logs of the pods, and the ends of the node's logs.
//!
//! `TOKENWARDEN_SKIP_NODE_TESTS=1` leaves it out, loudly (README, "Testing"); without root it
//! fails and says so.

mod fixtures;
mod operator;
mod support;

use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fixtures::{CHALLENGE, VERIFIER, token};
use operator::chart::install;
use operator::scenario::{self, CONVERGE, Worker};
use operator::{apply, eventually, machine_client_yaml};
use support::node::{self, NODE_IP, POD_RANGE};

const TEST: &str = "a_real_node_runs_the_chart_as_users_do";
const RELEASE: &str = "tokenwarden";
const NS: &str = "tokenwarden-system";
/// The namespace of the declarations (and the client Secrets the controller may read).
const APPS: &str = "apps";
const SECRET: &str = "node-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const WEB_ID: &str = "apps-web";
const TODO_AUDIENCE: &str = "https://todo.example.com";
/// The image's name: a registry host under the reserved `.test` domain, so nothing can pull it.
const IMAGE_REGISTRY: &str = "tokenwarden.test";
const IMAGE_REPOSITORY: &str = "tokenwarden";
/// The chart's uid of both components (and of the image's user).
const NONROOT: u32 = 65532;
const ROLLOUT_TIMEOUT: &str = "--timeout=240s";

/// The step running now, for the report of a failure.
static STEP: Mutex<&str> = Mutex::new("starting");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") {
        println!("{TEST}: test");
        return ExitCode::SUCCESS;
    }
    if !selected(&args) {
        println!("running 0 tests ({TEST} is filtered out)");
        return ExitCode::SUCCESS;
    }
    if std::env::var_os("TOKENWARDEN_SKIP_NODE_TESTS").is_some() {
        let line = "!".repeat(78);
        eprintln!(
            "{line}\n!! {TEST}: LEFT OUT by TOKENWARDEN_SKIP_NODE_TESTS.\n!! It did not run \
             and did not pass: the chart and the image are unproven on a node in this run.\n{line}"
        );
        println!("test {TEST} ... LEFT OUT (TOKENWARDEN_SKIP_NODE_TESTS)");
        return ExitCode::SUCCESS;
    }
    println!("running 1 test");
    if let Err(message) = node::seal() {
        eprintln!("{TEST}: {message}");
        println!("test {TEST} ... FAILED");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{TEST}: a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async { tokio::spawn(the_chart_on_a_real_node()).await });
    match outcome {
        Ok(()) => {
            println!("test {TEST} ... ok ({:.0?})", started.elapsed());
            ExitCode::SUCCESS
        }
        Err(_) => {
            let step = *STEP.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("\n{TEST}: the step \"{step}\" failed (its panic is above)");
            match node::started() {
                Some(node) => eprintln!("{}", node.report(&[NS, APPS])),
                None => eprintln!("(the node did not start: nothing more to report)"),
            }
            println!("test {TEST} ... FAILED (step \"{step}\")");
            ExitCode::FAILURE
        }
    }
}

/// Whether libtest-style arguments select this test: no filter, or a filter it contains (equals,
/// with `--exact`), and no `--skip` it contains; the values of libtest's other options are not
/// filters.
fn selected(args: &[String]) -> bool {
    const WITH_VALUE: [&str; 6] = [
        "--test-threads",
        "--logfile",
        "--format",
        "--color",
        "--shuffle-seed",
        "-Z",
    ];
    let exact = args.iter().any(|arg| arg == "--exact");
    let matches = |filter: &str| {
        if exact {
            TEST == filter
        } else {
            TEST.contains(filter)
        }
    };
    let mut filters = Vec::new();
    let mut skipped = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--skip" {
            skipped |= iter.next().is_some_and(|skip| matches(skip));
        } else if WITH_VALUE.contains(&arg.as_str()) {
            iter.next();
        } else if !arg.starts_with('-') {
            filters.push(arg);
        }
    }
    !skipped && (filters.is_empty() || filters.iter().any(|filter| matches(filter)))
}

fn step(name: &'static str) {
    *STEP.lock().unwrap_or_else(|e| e.into_inner()) = name;
    eprintln!("--- step: {name}");
}

async fn the_chart_on_a_real_node() {
    step("the node registers and becomes Ready");
    let node = tokio::task::spawn_blocking(node::node)
        .await
        .expect("starting the node");
    let cluster = node.cluster();

    step("the image is built from this build's binary and imported, never pulled");
    let version = env!("CARGO_PKG_VERSION");
    let started = Instant::now();
    let image = node
        .build_image(
            std::path::Path::new(env!("CARGO_BIN_EXE_tokenwarden")),
            &format!("{IMAGE_REGISTRY}/{IMAGE_REPOSITORY}:{version}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("image built in {:.1?}", started.elapsed());
    node.import_image(&image).unwrap_or_else(|e| panic!("{e}"));

    step("helm install into a namespace that enforces restricted: the pods become Ready");
    kubectl(&["create", "namespace", NS]);
    kubectl(&[
        "label",
        "namespace",
        NS,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    kubectl(&["create", "namespace", APPS]);
    provide_the_issuer_volume(node).await;
    install(cluster, RELEASE, NS, &values("", ""), false).unwrap_or_else(|e| panic!("{e}"));
    rolled_out("controller");
    rolled_out("issuer");

    step("the controller works on its in-cluster configuration");
    let controller = kubectl(&[
        "get",
        "deployment",
        "tokenwarden-controller",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name} {.spec.template.spec.automountServiceAccountToken}",
    ]);
    assert!(
        !controller.contains("KUBECONFIG"),
        "the controller pod is given no kubeconfig: {controller}"
    );
    let worker = scenario::apply_worker(cluster, APPS, SECRET).await;
    apply(
        cluster,
        &scenario::offline_policy_and_web_client(APPS, TODO_AUDIENCE, WEB_ID),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    scenario::wait_client_ready(cluster, APPS, "web").await;

    step("a token through the issuer's Service has exp - iat as declared");
    let base = issuer_base();
    serves(&base).await;
    let first = eventually(CONVERGE, "the issuer serves the worker", || async {
        let answer = worker.token(&base).await;
        (answer.status == 200).then_some(answer)
    })
    .await;
    assert_eq!(
        operator::lifetime(&first),
        600,
        "the policy declares 600 s: {first}"
    );

    step("an edit takes effect on the next token within 2 s");
    scenario::a_patched_lifetime_reaches_the_next_token(
        cluster,
        &base,
        &worker,
        Duration::from_secs(2),
    )
    .await;

    step("a refresh token issued before the issuer pod is deleted works from the new pod");
    let refresh_token = scenario::exchange_the_code(&base, WEB_ID, VERIFIER).await;
    let old = issuer_pods();
    kubectl(&[
        "delete",
        "pod",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/component=issuer",
        "--wait=true",
    ]);
    eventually(CONVERGE, "a new issuer pod, Ready", || async {
        let now = issuer_pods();
        let fresh = !now.is_empty() && now.iter().all(|pod| !old.contains(pod));
        (fresh
            && kubectl_ok(&[
                "wait",
                "--for=condition=Ready",
                "pod",
                "-n",
                NS,
                "-l",
                "app.kubernetes.io/component=issuer",
                "--timeout=1s",
            ]))
        .then_some(())
    })
    .await;
    serves(&base).await;
    // The ReplicaSet starts the new pod while the old one drains, on the same volume: the new
    // issuer waits for the store rather than crash (it did, before issue #20's fix).
    let restarts = kubectl(&[
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/component=issuer",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[*].restartCount}",
    ]);
    assert!(
        restarts.split_whitespace().all(|count| count == "0"),
        "the new issuer pod restarted ({restarts}): it did not wait for the store"
    );
    let refreshed = token(
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", WEB_ID),
            ("refresh_token", &refresh_token),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{refreshed}");
    assert!(refreshed["refresh_token"].is_string(), "{refreshed}");

    step("helm upgrade to PostgreSQL with two issuers and two controllers");
    let database_url = postgres_url().await;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: tokenwarden-database, namespace: {NS}}}\n\
         stringData: {{url: \"{database_url}\"}}\n"
    );
    apply(cluster, &secret).unwrap_or_else(|e| panic!("{e}"));
    const ON_POSTGRES: &str = "replicas: 2, storage: {type: postgresql, postgresql: {existingSecret: tokenwarden-database}}";
    install(
        cluster,
        RELEASE,
        NS,
        &values(", replicas: 2", ON_POSTGRES),
        true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rolled_out("controller");
    rolled_out("issuer");
    serves(&base).await;
    eventually(
        CONVERGE,
        "the issuers on PostgreSQL serve the worker",
        || async { (worker.token(&base).await.status == 200).then_some(()) },
    )
    .await;

    step("a rolling update under a steady stream of token requests: zero failed requests");
    let rolled = values(
        ", replicas: 2",
        &format!("{ON_POSTGRES}, podAnnotations: {{tokenwarden.test/rollout: \"2\"}}"),
    );
    a_rolling_update_fails_no_request(&worker, &base, rolled).await;

    step("the leading controller deleted: another replica leads within the Lease duration");
    a_follower_takes_over_within_the_lease_duration().await;
    apply(
        cluster,
        &machine_client_yaml(APPS, "after-failover", None, &worker.audience),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    scenario::wait_client_ready(cluster, APPS, "after-failover").await;

    step("helm uninstall leaves exactly what docs/helm.md says it leaves");
    helm_uninstall_leaves_what_the_docs_say(node);
}

/// The PersistentVolume the chart's claim binds to: a folder of the node owned by the chart's
/// user, holding an embedded store in which a sign-in left an authorization code.
async fn provide_the_issuer_volume(node: &node::Node) {
    let folder = node
        .volume_folder("issuer-data", NONROOT)
        .unwrap_or_else(|e| panic!("{e}"));
    scenario::seed_code(&folder, WEB_ID, TODO_AUDIENCE, CHALLENGE).await;
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{NONROOT}:{NONROOT}")])
        .arg(&folder)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown of the issuer's volume");
    let volume = format!(
        r#"apiVersion: v1
kind: PersistentVolume
metadata: {{name: tokenwarden-issuer-data}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  claimRef: {{namespace: {NS}, name: tokenwarden-issuer-data}}
  hostPath: {{path: "{}", type: Directory}}
"#,
        folder.display()
    );
    apply(node.cluster(), &volume).unwrap_or_else(|e| panic!("{e}"));
}

/// Values naming the image and the namespace of the client Secrets, with more fields of
/// `controller` and `issuer` (YAML flow mappings' insides).
fn values(controller: &str, issuer: &str) -> String {
    format!(
        "image: {{registry: {IMAGE_REGISTRY}, repository: {IMAGE_REPOSITORY}}}\n\
         controller: {{clientSecretNamespaces: [{APPS}]{controller}}}\n\
         issuer: {{{issuer}}}\n"
    )
}

/// The database URL for the pods: the test PostgreSQL server, reached at the node's address.
async fn postgres_url() -> String {
    let server = tokio::task::spawn_blocking(|| {
        support::postgres::postgres_reachable_from(NODE_IP, POD_RANGE)
    })
    .await
    .expect("starting PostgreSQL");
    let database = server.new_database().await;
    server
        .url(&database)
        .replace("@127.0.0.1:", &format!("@{NODE_IP}:"))
}

/// Four clients request tokens through the Service without pause while `helm upgrade` changes
/// the issuer's pod template and the Deployment replaces every pod; not one request fails.
async fn a_rolling_update_fails_no_request(worker: &Worker, base: &str, values: String) {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let served = std::sync::Arc::new(AtomicU64::new(0));
    let failures = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
    let before = issuer_pods();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (stop, served, failures) = (stop.clone(), served.clone(), failures.clone());
        let url = format!("{base}/oauth/token");
        let form = [
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", worker.client_id.clone()),
            ("client_secret", worker.secret.clone()),
            ("audience", worker.audience.clone()),
        ];
        load.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = http.post(&url).form(&form).send().await;
                match outcome {
                    Ok(response) if response.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => {
                        let status = response.status();
                        let body = response.text().await.unwrap_or_default();
                        failures
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{status} {body}"));
                    }
                    Err(error) => failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{error:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let upgrade = tokio::task::spawn_blocking(move || {
        install(support::cluster(), RELEASE, NS, &values, true)
    })
    .await
    .expect("helm upgrade");
    upgrade.unwrap_or_else(|e| panic!("{e}"));
    tokio::task::spawn_blocking(|| rolled_out("issuer"))
        .await
        .expect("rollout");
    // The old pods' drain and exit, after the rollout counted them gone from the Service.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("a load task");
    }
    let after = issuer_pods();
    let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let served = served.load(Ordering::Relaxed);
    eprintln!(
        "rolling update: {served} tokens served, {} failed; pods {before:?} -> {after:?}",
        failures.len()
    );
    assert!(
        before.iter().all(|pod| !after.contains(pod)),
        "every issuer pod was replaced: {before:?} -> {after:?}"
    );
    assert!(served > 100, "a steady stream: only {served} tokens served");
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the rolling update, the first: {:?}",
        failures.len(),
        failures.len() as u64 + served,
        &failures[..failures.len().min(5)]
    );
}

async fn a_follower_takes_over_within_the_lease_duration() {
    let holder = || {
        kubectl(&[
            "get",
            "lease",
            "tokenwarden-controller",
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    };
    let leader = holder();
    let pods = kubectl(&[
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/component=controller",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    // The identity is the pod's name and a random suffix (tokenwarden::controller::leader).
    let leading_pod = pods
        .split_whitespace()
        .find(|pod| leader.starts_with(&format!("{pod}-")))
        .unwrap_or_else(|| {
            panic!("the Lease is held by a controller pod: {leader:?} among {pods:?}")
        });
    kubectl(&["delete", "pod", "-n", NS, leading_pod, "--wait=false"]);
    let deleted = Instant::now();
    let lease_duration = Duration::from_secs(15); // tokenwarden::controller's LEASE_DURATION
    let next = eventually(
        lease_duration,
        "another controller holds the Lease",
        || async {
            let now = holder();
            (!now.is_empty() && !now.starts_with(&format!("{leading_pod}-"))).then_some(now)
        },
    )
    .await;
    eprintln!(
        "{next} leads {:.1?} after {leading_pod} was deleted",
        deleted.elapsed()
    );
}

fn helm_uninstall_leaves_what_the_docs_say(node: &node::Node) {
    let cluster = node.cluster();
    cluster
        .run_helm(&["uninstall", RELEASE, "-n", NS, "--wait", "--timeout=180s"])
        .unwrap_or_else(|e| panic!("{e}"));
    let names = |kinds: &str, ns: &str| -> Vec<String> {
        let mut names: Vec<String> = kubectl(&["get", kinds, "-n", ns, "-o", "name"])
            .lines()
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    };
    // Pods go once their grace period ends; the rest must be gone now.
    eventually_blocking("the release's pods are gone", || {
        names("pods", NS).is_empty()
    });
    let left = names(
        "deployments,replicasets,services,persistentvolumeclaims,serviceaccounts,roles,rolebindings,\
         configmaps,secrets,leases,poddisruptionbudgets",
        NS,
    );
    let mut expected: Vec<String> = [
        // What the controller wrote at run time (docs/helm.md, "Upgrades and uninstall").
        "configmap/tokenwarden-issuer-config",
        "secret/tokenwarden-signing-keys",
        "lease.coordination.k8s.io/tokenwarden-controller",
        // The test's own Secret, and what Kubernetes puts in every namespace.
        "secret/tokenwarden-database",
        "configmap/kube-root-ca.crt",
        "serviceaccount/default",
    ]
    .map(String::from)
    .to_vec();
    // The numbered issuer-config ConfigMaps, as many as the controller wrote.
    expected.extend(
        left.iter()
            .filter(|name| {
                name.strip_prefix("configmap/tokenwarden-issuer-config-")
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .cloned(),
    );
    expected.sort();
    assert_eq!(left, expected, "what helm uninstall left in {NS}");
    let cluster_wide = kubectl(&[
        "get",
        "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "name",
    ]);
    assert_eq!(
        cluster_wide.trim(),
        "",
        "cluster-wide objects of the release left"
    );
    let crds = kubectl(&["get", "crds", "-o", "name"]);
    assert!(
        crds.contains("apitokenpolicies.tokenwarden.dev"),
        "the CRDs stay: {crds}"
    );
    let in_apps = names("roles,rolebindings", APPS);
    assert!(
        in_apps.is_empty(),
        "the client-secret Role left in {APPS}: {in_apps:?}"
    );
}

fn issuer_base() -> String {
    let ip = kubectl(&[
        "get",
        "service",
        "tokenwarden-issuer",
        "-n",
        NS,
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    format!("http://{}:8080", ip.trim())
}

/// The issuer pods that are not terminating.
fn issuer_pods() -> Vec<String> {
    let list = kubectl(&[
        "get",
        "pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/component=issuer",
        "-o",
        "json",
    ]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("kubectl's JSON");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|pod| pod["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the Deployment of `component` has rolled out: every replica updated and Ready.
fn rolled_out(component: &str) {
    kubectl(&[
        "rollout",
        "status",
        &format!("deployment/tokenwarden-{component}"),
        "-n",
        NS,
        ROLLOUT_TIMEOUT,
    ]);
}

/// Whether kubectl succeeds with `args`.
fn kubectl_ok(args: &[&str]) -> bool {
    support::cluster().run_kubectl(args).is_ok()
}

/// Waits until the issuer's Service answers `/readyz` (kube-proxy has the endpoints).
async fn serves(base: &str) {
    let url = format!("{base}/readyz");
    eventually(CONVERGE, "the issuer's Service answers", || async {
        let answer = reqwest::get(&url).await;
        answer
            .is_ok_and(|answer| answer.status() == 200)
            .then_some(())
    })
    .await;
}

fn kubectl(args: &[&str]) -> String {
    support::cluster()
        .run_kubectl(args)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn eventually_blocking(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 120 s");
        std::thread::sleep(Duration::from_millis(500));
    }
}
