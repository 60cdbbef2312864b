//! Releases: the crate, the chart and the image share one semantic version, and CHANGELOG.md
//! has its section, as `scripts/release.sh --check` verifies before it builds anything.

use std::path::Path;
use std::process::Command;

#[test]
fn the_crate_the_chart_and_the_changelog_agree_on_one_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(root.join("scripts/release.sh"))
        .arg("--check")
        .output()
        .expect("run scripts/release.sh --check");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        said.contains(&format!(
            "tokenwarden {version}: Cargo.toml, Cargo.lock, Chart.yaml and CHANGELOG.md agree"
        )),
        "{said}"
    );
}

#[test]
fn release_check_refuses_a_chart_whose_version_differs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().expect("tempdir");
    for file in ["Cargo.toml", "Cargo.lock", "CHANGELOG.md"] {
        std::fs::copy(root.join(file), copy.path().join(file)).expect("copy");
    }
    std::fs::create_dir_all(copy.path().join("scripts")).expect("scripts");
    std::fs::copy(
        root.join("scripts/release.sh"),
        copy.path().join("scripts/release.sh"),
    )
    .expect("copy the script");
    std::fs::create_dir_all(copy.path().join("charts/tokenwarden")).expect("chart dir");
    let chart = std::fs::read_to_string(root.join("charts/tokenwarden/Chart.yaml")).expect("chart");
    let bumped = chart.replace(
        &format!("version: {}", env!("CARGO_PKG_VERSION")),
        "version: 9.9.9",
    );
    assert_ne!(bumped, chart);
    std::fs::write(copy.path().join("charts/tokenwarden/Chart.yaml"), bumped).expect("write");
    let output = Command::new("bash")
        .arg(copy.path().join("scripts/release.sh"))
        .arg("--check")
        .output()
        .expect("run the copy");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(said.contains("has version 9.9.9"), "{said}");
}
