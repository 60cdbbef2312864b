//! The Helm chart `charts/tokenwarden`, with helm 4 from the test tools: it lints, and what it
//! renders (CRDs included) is accepted by a real API server in a server-side dry run.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn chart() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/tokenwarden")
}

fn run(mut command: Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn helm_lint_passes_on_the_chart() {
    let mut lint = support::cluster().helm();
    lint.arg("lint").arg("--strict").arg(chart());
    let out = run(lint, "helm lint --strict");
    assert!(out.contains("0 chart(s) failed"), "helm lint said:\n{out}");
}

#[tokio::test]
async fn helm_template_renders_manifests_the_api_server_accepts() {
    let cluster = support::cluster();
    let ns = cluster.new_namespace("helm").await;

    // --validate checks against the live cluster, including the chart's kubeVersion.
    let mut template = cluster.helm();
    template
        .args([
            "template",
            "tokenwarden",
            "--namespace",
            &ns,
            "--include-crds",
            "--validate",
        ])
        .arg(chart());
    let manifests = run(template, "helm template --validate");
    assert!(
        manifests.contains("kind: CustomResourceDefinition"),
        "helm template rendered no CRDs:\n{manifests}"
    );

    let mut dry_run = cluster.kubectl();
    dry_run
        .args(["apply", "--dry-run=server", "--namespace", &ns, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = dry_run
        .spawn()
        .expect("running kubectl apply --dry-run=server");
    child
        .stdin
        .take()
        .expect("kubectl's stdin")
        .write_all(manifests.as_bytes())
        .expect("writing the manifests to kubectl");
    let output = child.wait_with_output().expect("waiting for kubectl");
    assert!(
        output.status.success(),
        "the API server rejected the chart's manifests:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
