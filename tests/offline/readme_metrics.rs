//! The README's metrics table names every metric the issuer and the controller export, and
//! nothing they do not.

use std::collections::BTreeSet;
use tokenwarden::controller::metrics::{KindLabel, OutcomeLabel, StepLabel};
use tokenwarden::issuer::metrics::{
    AlgorithmLabel, GrantLabel, GrantLabels, WorkloadLabels, WorkloadRefusalLabel,
};

/// The sample names a registry exports (`_total` for counters), from its `# TYPE` lines.
fn exported(rendered: &str) -> BTreeSet<String> {
    rendered
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|line| match line.split_once(' ') {
            Some((name, "counter")) => format!("{name}_total"),
            Some((name, _)) => name.to_owned(),
            None => panic!("a # TYPE line without a type: {line}"),
        })
        .collect()
}

#[test]
fn the_readme_names_exactly_the_exported_metrics() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("### Metrics")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("a ### Metrics section in README.md");
    let documented: BTreeSet<String> = table
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| name.starts_with("tokenwarden_"))
        .map(str::to_owned)
        .collect();
    // A family is rendered once it has a series.
    let issuer = tokenwarden::issuer::metrics::Metrics::default();
    let grant = "client_credentials";
    let audience = "https://api.example.com".to_owned();
    let labels = GrantLabels {
        grant,
        audience,
        outcome: "issued",
    };
    issuer.token_requests.get_or_create(&labels).inc();
    issuer
        .token_latency
        .get_or_create(&GrantLabel { grant })
        .observe(0.001);
    issuer
        .workload_tokens
        .get_or_create(&WorkloadLabels {
            kind: "serviceaccount",
            workload: "apps/worker".into(),
            subject: String::new(),
            audience: "https://api.example.com".into(),
        })
        .inc();
    issuer
        .workload_refusals
        .get_or_create(&WorkloadRefusalLabel { reason: "expired" })
        .inc();
    issuer
        .signing_key_created
        .get_or_create(&AlgorithmLabel { algorithm: "ES256" })
        .set(1);
    let controller = tokenwarden::controller::metrics::Metrics::default();
    let kind = KindLabel { kind: "ApiClient" };
    let success = OutcomeLabel { outcome: "success" };
    controller.reconciles.get_or_create(&success).inc();
    let step = StepLabel { step: "status" };
    controller.reconcile_errors.get_or_create(&step).inc();
    controller.status_writes.get_or_create(&kind).inc();
    controller.objects.get_or_create(&kind).set(1);
    controller.not_ready.get_or_create(&kind).set(0);
    let mut metrics = exported(&issuer.render());
    metrics.extend(exported(&controller.render()));
    assert!(metrics.len() >= 15, "{metrics:?}");
    assert_eq!(
        documented, metrics,
        "README.md's ### Metrics against the registries"
    );
}
