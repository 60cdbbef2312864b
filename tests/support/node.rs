//! A real node for the test control plane, for `tests/real_node.rs`: kube-controller-manager,
//! kube-scheduler, kube-proxy (iptables), containerd with runc and the CNI bridge, and the
//! kubelet, with etcd and the API server of [`super::cluster_facing_node`], all inside network
//! and mount namespaces the test process makes for itself. Pod and Service addresses exist only
//! there; the namespace has loopback and the pods' bridge, and no route out.
//!
//! [`seal`] must run first, while the process has one thread (a mount namespace can only be
//! entered then): the test binary has no libtest harness, and its `main` calls it. After that
//! everything the process starts (the control plane, PostgreSQL, kubectl, helm, buildah) and
//! every socket it opens lives in the sealed network namespace.
//!
//! containerd and the kubelet, and so the shims and the pods' processes, run in a PID namespace
//! (and a mount namespace inside the sealed one) whose first process is tied to the test
//! process: when the test process ends, however it ends, the kernel kills every process of the
//! node, and the namespaces, mounts, bridges, veths and iptables rules go with the last of
//! them. What outlives processes: the kubelet's cgroups, kept under a root of the run's own
//! (`tokenwarden-node-<pid>` in every hierarchy), removed at exit; a run killed outright
//! leaves them, and the next run removes those of dead processes.
//!
//! Tools: `TOKENWARDEN_NODE_TOOLS`, else what `scripts/node-tools.sh` builds or finds.
#![allow(unsafe_code)] // libc: unshare(2) and geteuid(2)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{ControlPlane, log_tail, process, write_file};

/// The node's address, on the sealed namespace's loopback (RFC 5737 documentation range).
pub const NODE_IP: &str = "192.0.2.10";
/// The node's name.
pub const NODE_NAME: &str = "tokenwarden-node";
/// The `kubernetes` Service's address: the first of the API server's Service range.
pub const SERVICE_IP: &str = "10.0.0.1";
/// The API server's `--service-cluster-ip-range`.
const SERVICE_RANGE: &str = "10.0.0.0/24";
/// The pods' addresses, on the bridge [`BRIDGE`].
pub const POD_RANGE: &str = "10.244.0.0/24";
const BRIDGE: &str = "cni0";
const CGROUP_PREFIX: &str = "tokenwarden-node-";
const CGROUPS: &str = "/sys/fs/cgroup";
const READY_TIMEOUT: Duration = Duration::from_secs(180);

static NODE: OnceLock<Result<Node, String>> = OnceLock::new();

/// Moves this process into new network and mount namespaces and sets up the network: loopback
/// up with [`NODE_IP`] on it, the pods' bridge, the Service range routed to it (kube-proxy's
/// DNAT runs after routing), no default route. Private tmpfs over `/run` and `/var/log`, so the
/// netns, sockets and logs the node's programs put there vanish with the namespace.
///
/// Call it first in `main`, before any thread exists. Needs root.
pub fn seal() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "the real node needs root (network and mount namespaces, cgroups, mounts). \
             Run the tests as root, as CI does, or leave the node out with \
             TOKENWARDEN_SKIP_NODE_TESTS=1 (README, \"Testing\")."
                .to_owned(),
        );
    }
    // SAFETY: unshare(2) with namespace flags; the process has one thread, so the mount
    // namespace may be unshared too.
    if unsafe { libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS) } == -1 {
        return Err(format!(
            "unshare(CLONE_NEWNET | CLONE_NEWNS): {}",
            std::io::Error::last_os_error()
        ));
    }
    run("mount", &["--make-rprivate", "/"])?;
    for folder in ["/run", "/var/log"] {
        run(
            "mount",
            &["-t", "tmpfs", "-o", "mode=0755", "tokenwarden-node", folder],
        )?;
    }
    run("ip", &["link", "set", "lo", "up"])?;
    run(
        "ip",
        &["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"],
    )?;
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    run("ip", &["route", "add", SERVICE_RANGE, "dev", BRIDGE])?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| format!("turning on forwarding in the node's network namespace: {e}"))?;
    let routes = run("ip", &["-4", "route", "show", "default"])?;
    if !routes.trim().is_empty() {
        return Err(format!(
            "the sealed namespace has a default route: {routes}"
        ));
    }
    Ok(())
}

/// The node of this test binary, started on first use (after [`seal`]), with the control
/// plane it registers with. Panics with the reason and the failing component's log.
pub fn node() -> &'static Node {
    match NODE.get_or_init(Node::start) {
        Ok(node) => node,
        Err(message) => panic!("the real node did not start: {message}"),
    }
}

/// The node, when it has started.
pub fn started() -> Option<&'static Node> {
    NODE.get().and_then(|node| node.as_ref().ok())
}

/// A running node: containerd, the kubelet, kube-proxy, and the controller-manager and
/// scheduler of the control plane.
pub struct Node {
    cluster: &'static ControlPlane,
    dir: PathBuf,
    tools: PathBuf,
}

impl Node {
    /// The control plane the node belongs to.
    pub fn cluster(&self) -> &'static ControlPlane {
        self.cluster
    }

    /// The node's folder: the components' logs and configuration, the volumes' folders.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports the OCI archive `file` into containerd's `k8s.io` namespace, where the kubelet
    /// finds images: an import, never a pull.
    pub fn import_image(&self, file: &Path) -> Result<(), String> {
        let socket = self.socket();
        let mut ctr = Command::new(self.tools.join("ctr"));
        process::dies_with_spawning_thread(&mut ctr);
        let output = ctr
            .args([
                "--address",
                &socket,
                "--namespace",
                "k8s.io",
                "images",
                "import",
            ])
            .arg(file)
            .output()
            .map_err(|e| format!("running ctr: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "ctr images import {} failed ({}):\n{}{}",
                file.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(())
    }

    /// The image `name` built by `scripts/image.sh` from `binary` (stripped), as the release
    /// image is built, into an OCI archive in the node's folder; its temporary files there too,
    /// so a killed run leaves nothing elsewhere.
    pub fn build_image(&self, binary: &Path, name: &str) -> Result<PathBuf, String> {
        let output = self.dir.join("tokenwarden-image.tar");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image.sh");
        let mut command = Command::new("bash");
        process::dies_with_spawning_thread(&mut command);
        let status = command
            .arg(&script)
            .arg("--binary")
            .arg(binary)
            .arg("--output")
            .arg(&output)
            .args(["--name", name])
            .env("TMPDIR", &self.dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !status.success() {
            return Err(format!(
                "{} failed ({status}); its message is above",
                script.display()
            ));
        }
        Ok(output)
    }

    /// A folder for a hostPath PersistentVolume, owned by `uid` with mode 0700.
    pub fn volume_folder(&self, name: &str, uid: u32) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let folder = self.dir.join("volumes").join(name);
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("creating {}: {e}", folder.display()))?;
        std::os::unix::fs::chown(&folder, Some(uid), Some(uid))
            .map_err(|e| format!("chown {}: {e}", folder.display()))?;
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", folder.display()))?;
        Ok(folder)
    }

    /// What explains a red step: pods (wide), events, `describe` and the logs (also of the
    /// previous container) of the pods in `namespaces`, and the ends of the node's logs.
    pub fn report(&self, namespaces: &[&str]) -> String {
        let kubectl = |args: &[&str]| match self.cluster.run_kubectl(args) {
            Ok(out) => out,
            Err(message) => message,
        };
        let mut report = String::new();
        let mut section = |title: String, body: String| {
            report.push_str(&format!("===== {title} =====\n{body}\n"));
        };
        section(
            "kubectl get nodes,pods -A -o wide".to_owned(),
            kubectl(&["get", "nodes,pods", "-A", "-o", "wide"]),
        );
        section(
            "kubectl get events -A".to_owned(),
            kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        );
        for ns in namespaces {
            section(
                format!("kubectl describe pods -n {ns}"),
                kubectl(&["describe", "pods", "-n", ns]),
            );
            let pods = kubectl(&["get", "pods", "-n", ns, "-o", "name"]);
            for pod in pods.lines().filter(|line| line.starts_with("pod/")) {
                for previous in ["--previous=false", "--previous=true"] {
                    section(
                        format!("kubectl logs -n {ns} {pod} {previous}"),
                        kubectl(&["logs", "-n", ns, pod, "--all-containers", previous]),
                    );
                }
            }
        }
        for log in ["containerd", "kubelet", "kube-proxy"] {
            section(
                log.to_owned(),
                log_tail(&self.dir.join(format!("{log}.log"))),
            );
        }
        for log in ["kube-controller-manager", "kube-scheduler"] {
            section(
                log.to_owned(),
                log_tail(&self.cluster.dir().join(format!("{log}.log"))),
            );
        }
        report
    }

    fn socket(&self) -> String {
        self.dir
            .join("containerd/containerd.sock")
            .display()
            .to_string()
    }

    fn start() -> Result<Node, String> {
        let cluster = super::cluster_facing_node(NODE_IP, SERVICE_IP);
        let tools = tools_dir()?;
        remove_orphaned_cgroups();
        let dir = process::temporary_folder("tokenwarden-node-")?;
        let cgroup_root = make_cgroup_root()?;
        process::at_exit(remove_own_cgroups);
        let node = Node {
            cluster,
            dir,
            tools,
        };
        let init = node.start_pid_namespace()?;
        node.start_containerd(init)?;
        node.import_image(&node.tools.join("pause.tar"))?;
        node.start_kubelet(init, &cgroup_root)?;
        node.start_control_plane_rest()?;
        node.wait_ready()?;
        Ok(node)
    }

    /// The first process of the node's PID namespace (and mount namespace, with its own
    /// `/proc`), killed by `unshare` when the test process ends; returns its process id.
    fn start_pid_namespace(&self) -> Result<u32, String> {
        const NAME: &str = "node-namespaces";
        // bash reaps the orphans (shims re-parent to it) while it waits.
        let args: Vec<String> = [
            "--pid",
            "--fork",
            "--kill-child=SIGKILL",
            "--mount-proc",
            "--propagation=private",
            "--",
            "bash",
            "-c",
            "while :; do sleep 3600 & wait $!; done",
        ]
        .map(String::from)
        .to_vec();
        process::spawn(
            NAME,
            Path::new("unshare"),
            &args,
            &self.dir.join("namespaces.log"),
        )?;
        let unshare = process::pid(NAME).ok_or("unshare is gone")?;
        let children = format!("/proc/{unshare}/task/{unshare}/children");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let first = std::fs::read_to_string(&children)
                .ok()
                .and_then(|pids| pids.split_whitespace().next()?.parse().ok());
            if let Some(pid) = first {
                return Ok(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "the node's PID namespace did not start\n{}",
            log_tail(&self.dir.join("namespaces.log"))
        ))
    }

    /// Starts `program args` as the child `name` inside the node's PID and mount namespaces.
    fn spawn_in_node(
        &self,
        init: u32,
        name: &str,
        program: &Path,
        args: &[String],
    ) -> Result<(), String> {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--target={init}"))
            .args(["--pid", "--mount", "--"])
            .arg(program)
            .args(args)
            .env("PATH", path_with(&self.tools));
        process::spawn_command(name, command, &self.dir.join(format!("{name}.log")))
    }

    fn start_containerd(&self, init: u32) -> Result<(), String> {
        let root = self.dir.join("containerd");
        let cni = self.dir.join("cni");
        std::fs::create_dir_all(cni.join("net.d"))
            .map_err(|e| format!("creating {}: {e}", cni.display()))?;
        let pause = std::fs::read_to_string(self.tools.join("pause.name"))
            .map_err(|e| format!("reading the pause image's name: {e}"))?;
        let config = format!(
            r#"version = 3
root = "{root}/root"
state = "{root}/state"

[grpc]
  address = "{socket}"

[plugins.'io.containerd.cri.v1.runtime']
  # The sandbox lacks CAP_SYS_RESOURCE: no process may lower its oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = ["{tools}/cni"]
  conf_dir = "{cni}/net.d"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  BinaryName = "{tools}/runc"
  SystemdCgroup = false

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{pause}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
"#,
            root = root.display(),
            socket = self.socket(),
            tools = self.tools.display(),
            cni = cni.display(),
            pause = pause.trim(),
        );
        write_file(&self.dir.join("containerd.toml"), &config)?;
        write_file(
            &cni.join("net.d/10-tokenwarden.conflist"),
            &format!(
                r#"{{"cniVersion": "1.0.0", "name": "tokenwarden", "plugins": [
  {{"type": "bridge", "bridge": "{BRIDGE}", "isGateway": true, "hairpinMode": true,
    "ipam": {{"type": "host-local", "dataDir": "{ipam}", "ranges": [[{{"subnet": "{POD_RANGE}"}}]],
              "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
  {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
]}}
"#,
                ipam = cni.join("ipam").display()
            ),
        )?;
        let args = vec![
            format!("--config={}", self.dir.join("containerd.toml").display()),
            "--log-level=warn".to_owned(),
        ];
        self.spawn_in_node(init, "containerd", &self.tools.join("containerd"), &args)?;
        let socket = self.socket();
        self.wait_for("containerd", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        })
    }

    fn start_kubelet(&self, init: u32, cgroup_root: &str) -> Result<(), String> {
        write_file(
            &self.dir.join("resolv.conf"),
            "# no DNS in the sealed namespace\n",
        )?;
        let config = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines boot cgroup v1 (hybrid); since 1.35 the kubelet refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup_root}
containerRuntimeEndpoint: unix://{socket}
failSwapOn: false
address: {NODE_IP}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization: {{mode: AlwaysAllow}}
podLogsDir: {logs}
resolvConf: {resolv}
clusterDomain: cluster.local
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}}
syncFrequency: 5s
fileCheckFrequency: 5s
"#,
            socket = self.socket(),
            logs = self.dir.join("pod-logs").display(),
            resolv = self.dir.join("resolv.conf").display(),
        );
        write_file(&self.dir.join("kubelet.yaml"), &config)?;
        let args = vec![
            format!("--config={}", self.dir.join("kubelet.yaml").display()),
            format!("--kubeconfig={}", self.cluster.kubeconfig_path().display()),
            format!("--root-dir={}", self.dir.join("kubelet").display()),
            format!("--hostname-override={NODE_NAME}"),
            format!("--node-ip={NODE_IP}"),
            "--v=1".to_owned(),
        ];
        self.spawn_in_node(init, "kubelet", &self.tools.join("kubelet"), &args)
    }

    /// kube-controller-manager (ServiceAccounts, `kube-root-ca.crt`, Deployments, endpoints,
    /// the PersistentVolume binder, garbage collection), kube-scheduler and kube-proxy, as
    /// processes of the sealed namespace with the admin kubeconfig.
    fn start_control_plane_rest(&self) -> Result<(), String> {
        let plane = self.cluster.dir();
        let file = |name: &str| plane.join(name).display().to_string();
        self.cluster.start_component(
            "kube-controller-manager",
            &self.tools.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={}", file("kubeconfig")),
                format!("--service-account-private-key-file={}", file("sa.key")),
                format!("--root-ca-file={}", file("ca.crt")),
                "--use-service-account-credentials=false".to_owned(),
                "--leader-elect=false".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
                "--controllers=*".to_owned(),
                "--concurrent-deployment-syncs=5".to_owned(),
            ],
        )?;
        self.cluster.start_component(
            "kube-scheduler",
            &self.tools.join("kube-scheduler"),
            &[
                format!("--kubeconfig={}", file("kubeconfig")),
                "--leader-elect=false".to_owned(),
                "--bind-address=127.0.0.1".to_owned(),
            ],
        )?;
        let config = format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {{kubeconfig: {kubeconfig}}}
hostnameOverride: {NODE_NAME}
bindAddress: {NODE_IP}
clusterCIDR: {POD_RANGE}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {{masqueradeAll: true, syncPeriod: 10s, minSyncPeriod: 0s}}
# The sealed namespace may not change the machine's conntrack table size.
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"#,
            kubeconfig = file("kubeconfig"),
        );
        write_file(&self.dir.join("kube-proxy.yaml"), &config)?;
        let log = self.dir.join("kube-proxy.log");
        let mut command = Command::new(self.tools.join("kube-proxy"));
        command
            .arg(format!(
                "--config={}",
                self.dir.join("kube-proxy.yaml").display()
            ))
            .env("PATH", path_with(&self.tools));
        process::spawn_command("kube-proxy", command, &log)
    }

    /// Waits until the node is Ready and the `default` ServiceAccount of `default` exists (the
    /// controller-manager works).
    fn wait_ready(&self) -> Result<(), String> {
        let cluster = self.cluster;
        let outcome = self.wait_for("the node Ready", || {
            cluster
                .run_kubectl(&[
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .is_ok_and(|status| status.trim() == "True")
                && cluster
                    .run_kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                    .is_ok()
        });
        outcome.map_err(|message| format!("{message}\n{}", self.report(&[])))
    }

    fn wait_for(&self, what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if done() {
                return Ok(());
            }
            for component in ["containerd", "kubelet", "kube-proxy"] {
                if process::pid(component).is_some() && !process::running(component) {
                    return Err(format!(
                        "{component} exited while waiting for {what}\n{}",
                        log_tail(&self.dir.join(format!("{component}.log")))
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!("{what}: not within {READY_TIMEOUT:?}"))
    }
}

/// The node tools' folder: `TOKENWARDEN_NODE_TOOLS`, else the last line of
/// `scripts/node-tools.sh`.
fn tools_dir() -> Result<PathBuf, String> {
    super::tools::folder(
        "TOKENWARDEN_NODE_TOOLS",
        "scripts/node-tools.sh",
        "",
        &[
            "kubelet",
            "kube-controller-manager",
            "kube-scheduler",
            "kube-proxy",
            "containerd",
            "ctr",
            "containerd-shim-runc-v2",
            "runc",
            "cni/bridge",
            "cni/host-local",
            "cni/loopback",
            "cni/portmap",
            "pause.tar",
            "pause.name",
        ],
    )
}

/// `cgroup_root` of this run: `tokenwarden-node-<pid>` in every hierarchy, cpuset filled from
/// the parent (a v1 cpuset without CPUs takes no tasks). Returns its name.
fn make_cgroup_root() -> Result<String, String> {
    let name = format!("{CGROUP_PREFIX}{}", std::process::id());
    for hierarchy in hierarchies() {
        let folder = hierarchy.join(&name);
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("creating the cgroup {}: {e}", folder.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(parent) = std::fs::read_to_string(hierarchy.join(file)) {
                std::fs::write(folder.join(file), parent.trim())
                    .map_err(|e| format!("writing {}/{file}: {e}", folder.display()))?;
            }
        }
    }
    Ok(name)
}

/// The cgroup hierarchies (folders, not the links between co-mounted ones).
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir(CGROUPS)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .map(|entry| entry.path())
        .collect()
}

fn remove_own_cgroups() {
    remove_cgroups(&format!("{CGROUP_PREFIX}{}", std::process::id()));
}

/// Removes the cgroup roots of runs whose process is gone (killed before their exit hook).
fn remove_orphaned_cgroups() {
    for hierarchy in hierarchies() {
        for entry in std::fs::read_dir(&hierarchy)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix(CGROUP_PREFIX)
                .and_then(|pid| pid.parse::<libc::pid_t>().ok());
            if owner.is_some_and(process::gone) {
                remove_cgroups(&name);
            }
        }
    }
}

/// Removes the cgroup `name` and everything under it in every hierarchy, deepest first; the
/// node's processes may take a moment to die, so it tries for up to 10 s.
fn remove_cgroups(name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for hierarchy in hierarchies() {
        let root = hierarchy.join(name);
        while root.exists() {
            let mut folders = Vec::new();
            collect_folders(&root, &mut folders);
            folders.sort_by_key(|folder| std::cmp::Reverse(folder.components().count()));
            for folder in folders {
                let _ = std::fs::remove_dir(folder);
            }
            if Instant::now() > deadline {
                eprintln!("real node: could not remove the cgroup {}", root.display());
                break;
            }
            if root.exists() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn collect_folders(folder: &Path, into: &mut Vec<PathBuf>) {
    into.push(folder.to_owned());
    for entry in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            collect_folders(&entry.path(), into);
        }
    }
}

fn path_with(tools: &Path) -> String {
    format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".to_owned())
    )
}

/// Runs `program args`; its stdout, or a message with its output.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let mut command = Command::new(program);
    process::dies_with_spawning_thread(&mut command);
    let output = command
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
