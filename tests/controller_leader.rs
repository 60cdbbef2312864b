//! Two controller replicas: one leads (holds the Lease and reconciles), the other follows with
//! warm caches and takes over when the leader dies. A test binary of its own, because it runs
//! and kills its own controllers.

mod fixtures;
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

/// User and system CPU seconds of process `pid` so far (`/proc/PID/stat`, clock ticks of
/// 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
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
    // Following is waiting: the follower's process uses next to no CPU while nothing changes
    // (it used to run its loop without pause once its resync time had passed).
    let follower = cluster
        .component_pid(&second.name)
        .expect("the follower's pid");
    let before = cpu_seconds(follower);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu_seconds(follower) - before;
    assert!(used < 1.0, "the follower used {used:.2} CPU seconds in 3 s");
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

/// A TCP relay to the API server whose connections can all be made to go silent at once:
/// bytes are still accepted, but none are passed on, as with a network path that drops
/// everything without closing the connection.
struct Relay {
    address: std::net::SocketAddr,
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    async fn to(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let silent = std::sync::Arc::new(AtomicBool::new(false));
        let (target, flag) = (target.to_owned(), silent.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                for (mut from, mut to, flag) in [
                    (
                        Box::new(in_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(out_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                        flag.clone(),
                    ),
                    (Box::new(out_read), Box::new(in_write), flag.clone()),
                ] {
                    tokio::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buffer = vec![0; 64 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buffer).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            if to.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { address, silent }
    }

    fn go_silent(&self) {
        self.silent.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_leader_whose_connection_goes_silent_steps_down_before_its_lease_runs_out() {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let api_server = cluster.url().trim_start_matches("https://").to_owned();
    let relay = Relay::to(&api_server).await;
    let kubeconfig = tempfile::NamedTempFile::new().expect("temp file");
    let text = std::fs::read_to_string(cluster.kubeconfig_path()).expect("kubeconfig");
    std::fs::write(
        kubeconfig.path(),
        text.replace(&api_server, &relay.address.to_string()),
    )
    .expect("write the relayed kubeconfig");
    let first = operator::spawn_controller_as(cluster, "silent-a", &system, kubeconfig.path(), &[]);
    eventually(
        Duration::from_secs(30),
        "the relayed replica leads",
        || async { leads(&first.base).await.filter(|l| *l) },
    )
    .await;
    let second = spawn_controller(cluster, "silent-b", &system);
    eventually(Duration::from_secs(30), "the other follows", || async {
        leads(&second.base).await.filter(|l| !*l)
    })
    .await;

    relay.go_silent();
    let silent_at = std::time::Instant::now();
    eventually(
        Duration::from_secs(14),
        "the silent leader steps down before its 15 s lease runs out",
        || async { leads(&first.base).await.filter(|l| !*l) },
    )
    .await;
    let stepped_down = silent_at.elapsed();
    eventually(Duration::from_secs(40), "the other takes over", || async {
        leads(&second.base).await.filter(|l| *l)
    })
    .await;
    assert!(
        stepped_down < Duration::from_secs(15),
        "stepped down after {stepped_down:?}"
    );
    cluster.kill_component(&first.name);
    cluster.stop_component(&second.name);
}
