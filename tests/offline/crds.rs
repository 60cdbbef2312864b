//! The generated CRDs: the committed copies in `crds/` and the chart are current, and the
//! schema has what the API server and kubectl users rely on.

use std::path::Path;
use tokenwarden::api;

const REGENERATE: &str =
    "regenerate with: cargo run -- crds --output-dir crds --output-dir charts/tokenwarden/crds";

#[test]
fn committed_crds_match_the_generated_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["crds", "charts/tokenwarden/crds"] {
        for crd in api::crds() {
            let path = root.join(dir).join(api::crd_file_name(&crd));
            let committed = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; {REGENERATE}", path.display()));
            assert!(
                committed == api::crd_yaml(&crd),
                "{} is stale; {REGENERATE}",
                path.display()
            );
        }
    }
}

#[test]
fn crds_print_as_one_stream_of_both_kinds() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
        .arg("crds")
        .output()
        .expect("run tokenwarden crds");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text, api::crds_yaml());
    assert!(text.contains("name: apitokenpolicies.tokenwarden.dev"));
    assert!(text.contains("name: apiclients.tokenwarden.dev"));
}

#[test]
fn crds_written_into_a_new_folder_equal_the_committed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("new").join("crds");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
        .args(["crds", "--output-dir"])
        .arg(&target)
        .output()
        .expect("run tokenwarden crds");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in [
        "tokenwarden.dev_apitokenpolicies.yaml",
        "tokenwarden.dev_apiclients.yaml",
    ] {
        let written = std::fs::read_to_string(target.join(file)).expect(file);
        let committed =
            std::fs::read_to_string(std::path::Path::new("crds").join(file)).expect(file);
        assert_eq!(written, committed, "{file}");
    }
}

#[test]
fn policy_crd_has_names_columns_and_status_subresource() {
    let crd = api::Kind::ApiTokenPolicy.crd();
    assert_eq!(crd.spec.group, "tokenwarden.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["atp".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["tokenwarden".to_owned()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Audience", "Lifetime", "Offline", "Ready", "Age"]);

    let client = api::Kind::ApiClient.crd();
    assert_eq!(client.spec.names.short_names, Some(vec!["apic".to_owned()]));
}

#[test]
fn token_expiration_bounds_and_default_are_in_the_schema() {
    let crd = serde_json::to_value(api::Kind::ApiTokenPolicy.crd()).expect("json");
    let field = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["tokenExpirationSeconds"];
    assert_eq!(field["type"], "integer");
    assert_eq!(field["minimum"].as_f64(), Some(1.0));
    assert_eq!(field["maximum"].as_f64(), Some(2_592_000.0));
    assert_eq!(field["default"], 86400);
}
