//! The chart's monitoring: the PrometheusRule (`templates/prometheusrule.yaml`) rendered with
//! helm, checked by `promtool check rules` and unit-tested by `promtool test rules` with the
//! cases of `tests/alerts/*.yaml`; the Grafana dashboard (`dashboards/tokenwarden.json`) in its
//! ConfigMap, its queries parsed by promtool; and every metric that the alerts and the
//! dashboard query, found on the `/metrics` of a real issuer and a real controller after a
//! short load. promtool comes from the test tools (scripts/test-tools.sh
//! builds it from the Prometheus Go module); without it these tests fail, they never skip.

mod fixtures;
mod operator;
mod support;

use operator::chart::{find, render};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The values the unit tests of `tests/alerts/` are written for: release `tw` in `tw-system`.
const RULE_VALUES: &str = r#"
prometheusRule:
  enabled: true
  runbookBaseUrl: https://docs.example.com/alerts.md
dashboard: {enabled: true}
"#;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool() -> PathBuf {
    let promtool = support::cluster().tools_dir().join("promtool");
    assert!(
        promtool.is_file(),
        "{} is missing: run scripts/test-tools.sh, which builds it from the Prometheus Go \
         module (pinned in tests/cluster/promtool)",
        promtool.display()
    );
    promtool
}

/// Runs `command` and gives its output; panics with the output when it fails.
fn run(mut command: Command, what: &str) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{text}",
        output.status
    );
    text
}

/// The chart's rendered objects with [`RULE_VALUES`].
fn rendered() -> Vec<Value> {
    render(support::cluster(), "tw", "tw-system", RULE_VALUES).expect("helm template")
}

/// The rules of the rendered PrometheusRule.
fn rules(objects: &[Value]) -> Vec<Value> {
    let rule = find(objects, "PrometheusRule", "tw-tokenwarden");
    rule["spec"]["groups"]
        .as_array()
        .expect("spec.groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").clone())
        .collect()
}

#[tokio::test]
async fn the_charts_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = promtool();
    let objects = rendered();
    let rule = find(&objects, "PrometheusRule", "tw-tokenwarden");
    let dir = tempfile::tempdir().expect("temp dir");
    let groups = serde_json::json!({"groups": rule["spec"]["groups"]});
    std::fs::write(dir.path().join("rules.yaml"), groups.to_string()).expect("write rules.yaml");
    let mut check = Command::new(&promtool);
    check
        .current_dir(dir.path())
        .args(["check", "rules", "rules.yaml"]);
    let checked = run(check, "promtool check rules");
    let alerts = rules(&objects);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{checked}"
    );

    let mut cases = String::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("tests/alerts")).expect("tests/alerts") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().expect("name").to_owned();
            std::fs::copy(&path, dir.path().join(&name)).expect("copy a test file");
            cases.push_str(&std::fs::read_to_string(&path).expect("read a test file"));
            files.push(name);
        }
    }
    files.sort();
    let mut test = Command::new(&promtool);
    test.current_dir(dir.path())
        .args(["test", "rules"])
        .args(&files);
    run(test, "promtool test rules");

    // Every alert has unit tests, a summary, a description, a runbook section and its link.
    let runbook = std::fs::read_to_string(repo().join("docs/alerts.md")).expect("docs/alerts.md");
    for alert in &alerts {
        let name = alert["alert"].as_str().expect("an alert name");
        assert!(
            cases.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "no test of tests/alerts/ shows {name} firing"
        );
        assert!(
            cases.contains(&format!("alertname: {name}\n        exp_alerts: []")),
            "no test of tests/alerts/ shows {name} quiet"
        );
        for annotation in ["summary", "description"] {
            assert!(
                alert["annotations"][annotation]
                    .as_str()
                    .is_some_and(|a| !a.is_empty()),
                "{name} has no {annotation}"
            );
        }
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "docs/alerts.md has no section `## {name}`"
        );
        assert_eq!(
            alert["annotations"]["runbook_url"],
            format!("https://docs.example.com/alerts.md#{}", name.to_lowercase())
        );
    }
}

/// Each query of the dashboard is PromQL that Prometheus parses: written as recording rules
/// (Grafana's `$__rate_interval` and `$namespace` filled in), checked by `promtool check rules`.
#[tokio::test]
async fn every_query_of_the_dashboard_is_promql_that_promtool_accepts() {
    let promtool = promtool();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("charts/tokenwarden/dashboards/tokenwarden.json"))
            .expect("the dashboard file"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    let rules: Vec<Value> = queries
        .iter()
        .filter(|(place, _)| place.starts_with("panel"))
        .enumerate()
        .map(|(i, (_, expr))| {
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$namespace", "tw-system");
            serde_json::json!({"record": format!("tokenwarden:dashboard_query_{i}"), "expr": expr})
        })
        .collect();
    assert!(rules.len() >= 20, "{} queries", rules.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("dashboard.yaml");
    let groups = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    std::fs::write(&file, groups.to_string()).expect("write the rules");
    let mut check = Command::new(&promtool);
    check.args(["check", "rules"]).arg(&file);
    let checked = run(check, "promtool check rules (the dashboard's queries)");
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{checked}"
    );
}

#[tokio::test]
async fn the_dashboard_is_a_configmap_with_the_sidecar_label_and_the_charts_json() {
    let objects = rendered();
    let map = find(&objects, "ConfigMap", "tw-tokenwarden-dashboard");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let file =
        std::fs::read_to_string(repo().join("charts/tokenwarden/dashboards/tokenwarden.json"))
            .expect("the dashboard file");
    assert_eq!(
        map["data"]["tokenwarden.json"].as_str(),
        Some(file.trim_end())
    );
    let dashboard: Value = serde_json::from_str(&file).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "tokenwarden");

    // The label is the sidecar's to choose; without `dashboard.enabled`, nothing.
    let objects = render(
        support::cluster(),
        "tw",
        "tw-system",
        "dashboard: {enabled: true, labels: {grafana_dashboard: platform}, annotations: {grafana_folder: Platform}}",
    )
    .expect("helm template");
    let map = find(&objects, "ConfigMap", "tw-tokenwarden-dashboard");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "platform");
    assert_eq!(map["metadata"]["annotations"]["grafana_folder"], "Platform");
    let objects = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    assert!(
        !objects.iter().any(|o| o["kind"] == "PrometheusRule"
            || o["metadata"]["name"] == "tw-tokenwarden-dashboard"),
        "monitoring objects without being asked for"
    );
}

#[tokio::test]
async fn helm_lint_passes_with_the_alerts_and_the_dashboard_on() {
    let values = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a values file");
    std::fs::write(values.path(), RULE_VALUES).expect("write the values");
    let cluster = support::cluster();
    let chart = support::chart_dir();
    let out = cluster
        .run_helm(&[
            "lint",
            "--strict",
            &chart.to_string_lossy(),
            "-f",
            &operator::chart::image_values().to_string_lossy(),
            "-f",
            &values.path().to_string_lossy(),
        ])
        .map(|(out, _)| out)
        .unwrap_or_else(|e| panic!("helm lint --strict failed: {e}"));
    assert!(out.contains("0 chart(s) failed"), "helm lint said:\n{out}");
}

/// `up` of another scrape set-up: the issuer's `job` is a value; the thresholds are too.
#[tokio::test]
async fn the_issuers_job_and_the_thresholds_come_from_the_values() {
    let objects = render(
        support::cluster(),
        "tw",
        "tw-system",
        "prometheusRule: {enabled: true, issuerJob: tokenwarden-issuer, tokenErrorRatio: 0.5, configNotTakenUpFor: 3m}",
    )
    .expect("helm template");
    let alerts = rules(&objects);
    let alert = |name: &str| {
        alerts
            .iter()
            .find(|a| a["alert"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let down = alert("TokenwardenIssuerDown");
    let expr = down["expr"].as_str().expect("expr");
    assert!(
        expr.contains(r#"up{job="tokenwarden-issuer", namespace="tw-system"}"#),
        "{expr}"
    );
    assert!(down["annotations"].get("runbook_url").is_none(), "{down}");
    let ratio = alert("TokenwardenTokenErrorRatioHigh");
    assert!(
        ratio["expr"].as_str().expect("expr").ends_with("> 0.5"),
        "{ratio}"
    );
    assert_eq!(alert("TokenwardenIssuerConfigNotTakenUp")["for"], "3m");
}

/// The schema refuses each `--set`, naming the value.
#[tokio::test]
async fn the_schema_refuses_alert_thresholds_out_of_range_and_unknown_keys() {
    let cluster = support::cluster();
    let chart = support::chart_dir();
    for (set, expected) in [
        (
            "prometheusRule.tokenErrorRatio=2",
            "at '/prometheusRule/tokenErrorRatio': maximum",
        ),
        (
            "prometheusRule.tokenLatencyP99Seconds=0",
            "at '/prometheusRule/tokenLatencyP99Seconds'",
        ),
        (
            "prometheusRule.configNotTakenUpFor=ten",
            "at '/prometheusRule/configNotTakenUpFor'",
        ),
        (
            "prometheusRule.signingKeyMaxAgeDays=0",
            "at '/prometheusRule/signingKeyMaxAgeDays': minimum",
        ),
        (
            "prometheusRule.runbookBaseUrl=docs/alerts.md",
            "at '/prometheusRule/runbookBaseUrl'",
        ),
        (
            "dashboard.lables.grafana_dashboard=1",
            "additional properties 'lables' not allowed",
        ),
    ] {
        let error = cluster
            .run_helm(&[
                "template",
                "tw",
                &chart.to_string_lossy(),
                "-f",
                &operator::chart::image_values().to_string_lossy(),
                "--set",
                set,
            ])
            .expect_err(&format!("the schema accepted {set}"));
        assert!(error.contains(expected), "{expected:?} not in:\n{error}");
    }
}

/// The PromQL expressions of the dashboard's panels (rows' nested panels included) and of its
/// variables, with where each comes from.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            if panel["type"] == "row" {
                panels(&panel["panels"], out);
                continue;
            }
            let targets = panel["targets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            assert!(!targets.is_empty(), "the panel {title:?} queries nothing");
            for target in targets {
                let expr = target["expr"].as_str().expect("a target's expr");
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            out.push((format!("variable {}", variable["name"]), query.to_owned()));
        }
    }
    out
}

/// The metric names of tokenwarden in a PromQL expression: every identifier that starts with
/// `tokenwarden_` (label names, functions and keywords never do).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("tokenwarden_"))
        .map(str::to_owned)
        .collect()
}

/// The sample names of `/metrics` expositions.
#[derive(Default)]
struct Exposition {
    samples: BTreeSet<String>,
}

impl Exposition {
    fn add(&mut self, text: &str) {
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            self.samples.insert(line[..end].to_owned());
        }
    }

    /// Whether a sample named `name` is there: a family without series is not rendered at all,
    /// so nothing less than a sample shows that a query finds data.
    fn has(&self, name: &str) -> bool {
        self.samples.contains(name)
    }
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_on_the_components_metrics_after_a_short_load()
 {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace("tokenwarden-system").await;
    let controller = operator::start_controller(cluster, "controller", &system).await;
    operator::scenario::apply_worker(
        cluster,
        &cluster.new_namespace("load").await,
        fixtures::SECRET,
    )
    .await;
    let dir = fixtures::binary::folder_with_policies(fixtures::STANDARD);
    let issuer = fixtures::binary::start_standalone(dir.path()).await;
    for secret in [fixtures::SECRET, fixtures::SECRET, "not-the-secret"] {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "worker"),
            ("client_secret", secret),
            ("audience", "https://banking.example.com"),
        ];
        let answer = fixtures::token(&issuer.base, &form).await;
        assert_eq!(answer.status == 200, secret == fixtures::SECRET, "{answer}");
    }
    let scrape = |url: String| async move {
        reqwest::get(&url)
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .expect("the metrics text")
    };
    let mut exposition = Exposition::default();
    exposition.add(&scrape(format!("{}/metrics", issuer.metrics)).await);
    exposition.add(&scrape(format!("{}/metrics", controller.base)).await);

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("charts/tokenwarden/dashboards/tokenwarden.json"))
            .expect("the dashboard file"),
    )
    .expect("the dashboard is JSON");
    let mut queries = dashboard_queries(&dashboard);
    for rule in rules(&rendered()) {
        let name = rule["alert"].as_str().expect("an alert name");
        queries.push((
            format!("alert {name}"),
            rule["expr"].as_str().expect("expr").to_owned(),
        ));
    }
    let mut missing = Vec::new();
    let mut queried = BTreeSet::new();
    for (place, expr) in &queries {
        let names = metric_names(expr);
        // Prometheus' own `up` is the one other metric, in the alerts of an issuer that does
        // not answer.
        assert!(
            !names.is_empty() || (place.starts_with("alert") && expr.contains("up{job=")),
            "{place} queries no tokenwarden metric: {expr}"
        );
        for name in names {
            if !exposition.has(&name) {
                missing.push(format!("{place}: {name}"));
            }
            queried.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "not on the issuer's or the controller's /metrics:\n{}",
        missing.join("\n")
    );
    // The parser found what it should: the metrics item 3 of issue #23 is about.
    for name in [
        "tokenwarden_issuer_config_manifest_revision",
        "tokenwarden_controller_config_revision",
        "tokenwarden_issuer_token_request_duration_seconds_bucket",
    ] {
        assert!(queried.contains(name), "{name} is queried nowhere");
    }
}
