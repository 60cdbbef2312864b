//! The operator as users install it: the Helm chart `charts/tokenwarden` rendered, installed
//! and inspected with helm and kubectl against the test control plane, and `kubectl auth
//! can-i` as the chart's identities.

use crate::support::{ControlPlane, chart_dir};
use serde_json::Value;
use std::path::Path;

/// A values file with the one value the chart requires, the image's repository (no image is
/// published: docs/helm.md), for every helm command of the tests. Pass it first: a later `-f`
/// overrides it. It lives in Cargo's folder for test files under one name (a static is never
/// dropped, so a temporary file would outlive every run), written whole by a rename.
pub fn image_values() -> &'static Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let path = folder.join("chart-image-values.yaml");
        let file = tempfile::Builder::new()
            .suffix(".yaml")
            .tempfile_in(folder)
            .expect("a temporary file");
        std::fs::write(
            file.path(),
            "image: {repository: tokenwarden-test/tokenwarden}\n",
        )
        .expect("writing the image values");
        file.persist(&path).expect("naming the image values");
        path
    })
}

/// The chart's objects from `helm template` of `values` (YAML) as `release` in `namespace`.
pub fn render(
    cluster: &ControlPlane,
    release: &str,
    namespace: &str,
    values: &str,
) -> Result<Vec<Value>, String> {
    let file = temp_yaml(values);
    let chart = chart_dir();
    let (out, _) = cluster.run_helm(&[
        "template",
        release,
        &chart.to_string_lossy(),
        "--namespace",
        namespace,
        "-f",
        &image_values().to_string_lossy(),
        "-f",
        &file.path().to_string_lossy(),
    ])?;
    Ok(documents(&out))
}

/// `helm install` (or `upgrade --install` when `upgrade`) of `values`; helm's stderr.
pub fn install(
    cluster: &ControlPlane,
    release: &str,
    namespace: &str,
    values: &str,
    upgrade: bool,
) -> Result<String, String> {
    let file = temp_yaml(values);
    let chart = chart_dir();
    let command: &[&str] = if upgrade {
        &["upgrade", "--install"]
    } else {
        &["install"]
    };
    let mut args: Vec<&str> = command.to_vec();
    let file_path = file.path().to_string_lossy().into_owned();
    let chart = chart.to_string_lossy().into_owned();
    let image = image_values().to_string_lossy().into_owned();
    args.extend([
        release,
        chart.as_str(),
        "--namespace",
        namespace,
        "-f",
        image.as_str(),
        "-f",
        file_path.as_str(),
    ]);
    cluster.run_helm(&args).map(|(_, stderr)| stderr)
}

/// The YAML documents of a multi-document stream, as JSON values (empty ones dropped).
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|document| {
            let value: Value = serde::Deserialize::deserialize(document).expect("valid YAML");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

/// The object of `kind` whose name ends with `suffix`.
pub fn find<'a>(objects: &'a [Value], kind: &str, suffix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("no {kind} named *{suffix} in the chart's output"))
}

/// A Pod with the metadata and spec of a Deployment's pod template.
pub fn pod_of(deployment: &Value, name: &str) -> Value {
    let template = &deployment["spec"]["template"];
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"]["labels"]},
        "spec": template["spec"],
    })
}

/// The container arguments of a Deployment's first container.
pub fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("a string argument").to_owned())
        .collect()
}

/// `kubectl create --dry-run=server` of `object` in `namespace`: the API server's verdict,
/// with admission (PodSecurity included) but nothing stored.
pub fn dry_run_create(
    cluster: &ControlPlane,
    namespace: &str,
    object: &Value,
) -> Result<String, String> {
    let file = temp_yaml(&serde_json::to_string(object).expect("JSON"));
    cluster.run_kubectl(&[
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        &file.path().to_string_lossy(),
    ])
}

/// `kubectl auth can-i ARGS` as the identity of `kubeconfig`: whether the API server says yes.
pub fn can_i(cluster: &ControlPlane, kubeconfig: &Path, args: &[&str]) -> bool {
    let output = cluster
        .kubectl()
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["auth", "can-i"])
        .args(args)
        .output()
        .expect("running kubectl auth can-i");
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => panic!(
            "kubectl auth can-i {args:?} answered {answer:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// A temporary `.yaml` file with `contents` (JSON is YAML too).
fn temp_yaml(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a temporary file");
    std::fs::write(file.path(), contents).expect("writing a temporary file");
    file
}
