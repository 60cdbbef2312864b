//! The controller at scale, against the test control plane (real etcd and kube-apiserver):
//! N ApiTokenPolicies and N ApiClients with their Secrets (N = `BENCH_OBJECTS`, default
//! 10,000), then a cold start of the controller and a cluster-mode issuer (release binary, as
//! processes). Reports convergence time, controller peak memory, the configuration objects,
//! the issuer's reload time, apply-to-enforced latency for one change under that load, the
//! initial status-write rate and the API requests per minute in steady state, by verb.
//! Run it with `scripts/bench-controller.sh`; results go to docs/benchmarks-controller.md.
//!
//! Not a criterion benchmark (`harness = false`): each number is one measurement of a
//! system of processes, so it prints them with the machine's load average.

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;
#[path = "../tests/operator/mod.rs"]
mod operator;
#[path = "../tests/support/mod.rs"]
mod support;

use fixtures::client_credentials;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use operator::{START_TIMEOUT, spawn_controller, spawn_issuer};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokenwarden::api::{ApiClient, ApiTokenPolicy};

/// Policies (and clients) per namespace.
const PER_NAMESPACE: usize = 100;
/// Creates in flight at once while loading the cluster.
const CREATE_CONCURRENCY: usize = 32;
const SECRET: &str = "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123";

/// Client `i`'s secret: each its own, as in a real cluster, so that the configuration holds
/// 10,000 different hashes (one shared secret gave one hash, which gzip folded away).
fn secret(i: usize) -> String {
    format!("{SECRET}-{i:05}")
}
/// How long the steady state is watched.
const QUIET: Duration = Duration::from_secs(60);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The processes whose CPU the benchmark reports, by name, and their pids.
fn processes(cluster: &support::ControlPlane) -> Vec<(&'static str, String)> {
    let mut all = vec![("benchmark", "self".to_owned())];
    for name in ["etcd", "kube-apiserver", "controller", "issuer"] {
        if let Some(pid) = cluster.component_pid(name) {
            all.push((name, pid.to_string()));
        }
    }
    all
}

fn audience(i: usize) -> String {
    format!("https://api-{i}.bench.example.com")
}

fn client_id(i: usize) -> String {
    format!("bench-client-{i}")
}

/// Creates `n` policies, `n` clients and their Secrets in namespaces of `PER_NAMESPACE`.
async fn load(client: &kube::Client, namespaces: &[String], n: usize) {
    let started = Instant::now();
    let objects = (0..n).map(|i| {
        let client = client.clone();
        let ns = namespaces[i / PER_NAMESPACE].clone();
        async move {
            let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
                serde_json::json!({"metadata": {"name": format!("client-{i}")},
                                   "stringData": {"clientSecret": secret(i)}}),
            )
            .expect("secret");
            let policy: ApiTokenPolicy = serde_json::from_value(serde_json::json!({
                "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiTokenPolicy",
                "metadata": {"name": format!("api-{i}")},
                "spec": {"audience": audience(i), "tokenExpirationSeconds": 600,
                         "signingAlgorithm": "ES256", "scopes": [{"name": "read"}]}}))
            .expect("policy");
            let api_client: ApiClient = serde_json::from_value(serde_json::json!({
                "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiClient",
                "metadata": {"name": format!("client-{i}")},
                "spec": {"clientId": client_id(i), "secretRef": {"name": format!("client-{i}")},
                         "grantTypes": ["client_credentials"],
                         "audiences": [{"audience": audience(i), "scopes": ["read"]}]}}))
            .expect("client");
            let pp = PostParams::default();
            Api::namespaced(client.clone(), &ns)
                .create(&pp, &secret)
                .await?;
            Api::namespaced(client.clone(), &ns)
                .create(&pp, &policy)
                .await?;
            Api::namespaced(client, &ns)
                .create(&pp, &api_client)
                .await?;
            Ok::<_, kube::Error>(())
        }
    });
    futures::stream::iter(objects)
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .expect("creating the objects");
    println!(
        "loaded {n} Secrets, {n} ApiTokenPolicies, {n} ApiClients in {:.1} s (load {})",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

/// Counts objects whose `Ready` is True for their current generation, from a watch.
async fn count_ready<K, F>(api: Api<K>, counter: tokio::sync::watch::Sender<usize>, ready: F)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(&K) -> bool,
{
    let mut state: HashMap<(String, String), bool> = HashMap::new();
    let stream = watcher(api, watcher::Config::default()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        let Ok(object) = event else { continue };
        let meta = object.meta();
        let key = (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        state.insert(key, ready(&object));
        let _ = counter.send(state.values().filter(|r| **r).count());
    }
}

fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// `apiserver_request_total` summed by (verb, resource, subresource).
async fn request_counts(client: &kube::Client) -> BTreeMap<(String, String, String), f64> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(request).await.expect("/metrics");
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *counts
            .entry((label("verb"), label("resource"), label("subresource")))
            .or_insert(0.0) += value;
    }
    counts
}

/// A metric's value from a Prometheus text page (the first sample of that name).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// `took_ms` of every "configuration loaded from the cluster" line of the issuer's log.
fn issuer_reloads(log: &std::path::Path) -> Vec<(u64, u64, u64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let strip = regex::Regex::new("\x1b\\[[0-9;]*m").expect("regex");
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    text.lines()
        .map(|l| strip.replace_all(l, "").into_owned())
        .filter(|l| l.contains("configuration loaded from the cluster"))
        .map(|l| {
            (
                field(&l, "apis"),
                field(&l, "clients"),
                field(&l, "took_ms"),
            )
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it,
    // and a ten-minute load of the API server is no test.
    if !std::env::args().any(|a| a == "--bench") {
        println!("controller_scale: a benchmark; run it with scripts/bench-controller.sh");
        return;
    }
    let n = env_usize("BENCH_OBJECTS", 10_000);
    let patches = env_usize("BENCH_PATCHES", 50);
    let cluster = support::cluster();
    cluster.install_crds();
    let client = cluster.client();
    println!(
        "tokenwarden controller benchmark: {n} policies, {n} clients; {} cores; load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );

    let system = cluster.new_namespace("tokenwarden-system").await;
    let mut namespaces = Vec::new();
    for _ in 0..n.div_ceil(PER_NAMESPACE) {
        namespaces.push(cluster.new_namespace("bench").await);
    }
    load(&client, &namespaces, n).await;

    // Watch statuses before the controller starts, so the watch's initial list is not timed.
    let (policies_tx, mut policies_ready) = tokio::sync::watch::channel(0usize);
    let (clients_tx, mut clients_ready) = tokio::sync::watch::channel(0usize);
    let watchers = [
        tokio::spawn(count_ready(
            Api::<ApiTokenPolicy>::all(client.clone()),
            policies_tx,
            |p: &ApiTokenPolicy| {
                p.status.as_ref().is_some_and(|s| {
                    s.observed_generation == p.metadata.generation && ready_condition(&s.conditions)
                })
            },
        )),
        tokio::spawn(count_ready(
            Api::<ApiClient>::all(client.clone()),
            clients_tx,
            |c: &ApiClient| {
                c.status.as_ref().is_some_and(|s| {
                    s.observed_generation == c.metadata.generation && ready_condition(&s.conditions)
                })
            },
        )),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Cold start: the controller and an issuer at once, no configuration objects yet.
    let requests_at_start = request_counts(&client).await;
    let started = Instant::now();
    let load_at_start = load_average();
    let data = tempfile::tempdir().expect("data dir");
    // The controller is ready only after its first reconcile, statuses included: do not wait.
    let controller = spawn_controller(cluster, "controller", &system);
    let issuer = spawn_issuer(cluster, "issuer", &system, data.path());
    let controller_pid = cluster.component_pid("controller").expect("controller pid");
    let measured = processes(cluster);
    let cpu_at_start: Vec<f64> = measured.iter().map(|(_, pid)| cpu_seconds(pid)).collect();
    let mut statuses_at = None;
    let mut issuer_at = None;
    let deadline = Instant::now() + START_TIMEOUT * 10;
    while statuses_at.is_none() || issuer_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "not converged within {:?}",
            START_TIMEOUT * 10
        );
        if statuses_at.is_none()
            && *policies_ready.borrow_and_update() >= n
            && *clients_ready.borrow_and_update() >= n
        {
            statuses_at = Some(started.elapsed());
        }
        if issuer_at.is_none()
            && issuer_reloads(&issuer.log)
                .iter()
                .any(|(apis, clients, _)| *apis as usize >= n && *clients as usize >= n)
        {
            issuer_at = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged = statuses_at.max(issuer_at).expect("converged");
    let requests_during = request_counts(&client).await;
    let cpu_during: Vec<(&str, f64)> = measured
        .iter()
        .zip(&cpu_at_start)
        .map(|((name, pid), start)| (*name, cpu_seconds(pid) - start))
        .collect();
    let load_at_converged = load_average();
    for watcher in watchers {
        watcher.abort();
    }
    let controller_metrics = reqwest::get(format!("{}/metrics", controller.base))
        .await
        .expect("controller metrics")
        .text()
        .await
        .expect("text");
    let status_writes = metric(
        &controller_metrics,
        "tokenwarden_controller_status_writes_total",
    );
    let (peak_kib, rss_kib) = memory_kib(controller_pid);

    // The issuer serves every audience.
    let served = futures::stream::iter(0..n)
        .map(|i| {
            let base = issuer.base.clone();
            async move {
                client_credentials(&base, &client_id(i), &secret(i), &audience(i)).await["expires_in"]
                    == 600
            }
        })
        .buffer_unordered(16)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(served, n, "the issuer serves a token for every audience");

    // One change under that load, `patches` times: patch, then ask for tokens until one
    // follows.
    let api = Api::<ApiTokenPolicy>::namespaced(client.clone(), &namespaces[0]);
    let mut latencies = Vec::with_capacity(patches);
    let load_at_patches = load_average();
    for k in 0..patches {
        let lifetime = 700 + k as i64;
        let patch = serde_json::json!({"spec": {"tokenExpirationSeconds": lifetime}});
        let sent = Instant::now();
        api.patch("api-0", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("patch");
        loop {
            let answer =
                client_credentials(&issuer.base, &client_id(0), &secret(0), &audience(0)).await;
            if answer["expires_in"] == lifetime {
                latencies.push(sent.elapsed());
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(30),
                "patch {k} not enforced: {answer}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies.sort();
    let reloads = issuer_reloads(&issuer.log);
    let mut reload_ms: Vec<u64> = reloads
        .iter()
        .filter(|(apis, _, _)| *apis as usize >= n)
        .map(|(_, _, ms)| *ms)
        .collect();
    reload_ms.sort();
    let (peak_after_kib, _) = memory_kib(controller_pid);

    // Steady state: a quiet minute with nothing changing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let load_at_quiet = load_average();
    let before = request_counts(&client).await;
    tokio::time::sleep(QUIET).await;
    let after = request_counts(&client).await;
    let load_after_quiet = load_average();

    let configmaps =
        Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &system)
            .list(&Default::default())
            .await
            .expect("configmaps");
    println!();
    println!("| measure | result | target | load average |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| convergence from a cold start (statuses / issuer) | {:.1} s ({:.1} s / {:.1} s) | 60 s | {load_at_start} -> {load_at_converged} |",
        converged.as_secs_f64(),
        statuses_at.unwrap_or_default().as_secs_f64(),
        issuer_at.unwrap_or_default().as_secs_f64()
    );
    println!(
        "| controller peak RSS (VmHWM) at convergence / after the patches; RSS now | {:.1} MiB / {:.1} MiB; {:.1} MiB | 128 MiB | {load_at_converged} |",
        peak_kib as f64 / 1024.0,
        peak_after_kib as f64 / 1024.0,
        rss_kib as f64 / 1024.0
    );
    println!(
        "| CPU during convergence (2 cores = {:.0} CPU s) | {} | | |",
        converged.as_secs_f64() * 2.0,
        cpu_during
            .iter()
            .map(|(name, s)| format!("{name} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| initial status writes | {status_writes} in {:.1} s = {:.0}/s | | {load_at_converged} |",
        statuses_at.unwrap_or_default().as_secs_f64(),
        status_writes / statuses_at.unwrap_or_default().as_secs_f64().max(0.001)
    );
    println!(
        "| issuer reloads at full size (took_ms) | min {} / median {} / max {} ms over {} | 100 ms | {load_at_patches} |",
        reload_ms.first().unwrap_or(&0),
        reload_ms.get(reload_ms.len() / 2).unwrap_or(&0),
        reload_ms.last().unwrap_or(&0),
        reload_ms.len()
    );
    println!(
        "| apply-to-enforced ({patches} patches) | p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms | p99 1 s | {load_at_patches} |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().unwrap_or(&Duration::ZERO).as_secs_f64() * 1000.0
    );
    println!(
        "| configuration: uncompressed / compressed / shards | {:.0} KiB / {:.0} KiB / {} | 1 MiB per object | |",
        metric(&controller_metrics, "tokenwarden_controller_config_bytes") / 1024.0,
        metric(
            &controller_metrics,
            "tokenwarden_controller_config_compressed_bytes"
        ) / 1024.0,
        metric(&controller_metrics, "tokenwarden_controller_config_shards")
    );
    println!();
    println!("API requests during convergence, by verb, resource and subresource (100 or more):");
    for (key, value) in &requests_during {
        let delta = value - requests_at_start.get(key).copied().unwrap_or(0.0);
        if delta >= 100.0 {
            println!("- {} {} {}: {delta}", key.0, key.1, key.2);
        }
    }
    println!();
    println!("ConfigMaps in {system}:");
    for map in &configmaps.items {
        let bytes: usize = map
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + map
                .binary_data
                .iter()
                .flatten()
                .map(|(k, v)| k.len() + v.0.len())
                .sum::<usize>();
        println!(
            "- {}: {bytes} bytes of data",
            map.metadata.name.as_deref().unwrap_or("?")
        );
    }
    println!();
    println!(
        "API requests in a quiet minute ({:.0} s, load {load_at_quiet} -> {load_after_quiet}), by verb, resource and subresource (whole API server, its own included):",
        QUIET.as_secs_f64()
    );
    let mut by_verb: BTreeMap<String, f64> = BTreeMap::new();
    for (key, value) in &after {
        let delta = value - before.get(key).copied().unwrap_or(0.0);
        if delta > 0.0 {
            println!("- {} {} {}: {delta}", key.0, key.1, key.2);
            *by_verb.entry(key.0.clone()).or_insert(0.0) += delta;
        }
    }
    println!("by verb: {by_verb:?}");
    assert!(cluster.component_running("controller") && cluster.component_running("issuer"));
}
