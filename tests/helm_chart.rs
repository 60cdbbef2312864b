//! The Helm chart `charts/tokenwarden`, with helm 4 from the test tools: it lints with default
//! and non-default values, renders what those values ask for, its schema refuses bad values
//! (one test per case, with helm's message), and what it renders (CRDs included) is accepted
//! by a real API server in a server-side dry run. Installing it is `helm_release.rs`.

mod operator;
mod support;

use operator::chart::{args_of, find, image_values, render};
use serde_json::Value;

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

/// Every optional part on, as docs/helm.md shows it.
const FULL_VALUES: &str = r#"
commonLabels: {team: platform}
image: {registry: registry.example.com, repository: platform/tokenwarden, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
controller:
  replicas: 2
  clientSecretNamespaces: [payments, billing]
  podDisruptionBudget: {enabled: true, minAvailable: 1}
issuer:
  replicas: 3
  storage: {type: postgresql, postgresql: {existingSecret: tokenwarden-database}}
  users: {existingSecret: tokenwarden-users}
  oidc: {issuer: https://login.example.com, clientId: tokenwarden, clientSecret: {existingSecret: tokenwarden-oidc}, subjectClaim: email}
  ingress: {enabled: true, className: nginx, host: auth.example.com, tlsSecretName: auth-tls}
  trustedProxies: [10.244.0.0/16, 192.0.2.10]
  firstPartyClients: [platform/portal, platform/platform.console]
networkPolicy: {enabled: true}
serviceMonitor: {enabled: true, labels: {release: prometheus}}
"#;

#[tokio::test]
async fn helm_lint_passes_on_the_chart() {
    let mut lint = support::cluster().helm();
    lint.arg("lint")
        .arg("--strict")
        .arg(chart())
        .arg("-f")
        .arg(image_values());
    let out = run(lint, "helm lint --strict");
    assert!(out.contains("0 chart(s) failed"), "helm lint said:\n{out}");
}

#[tokio::test]
async fn helm_lint_passes_with_every_option_on() {
    let values = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a values file");
    std::fs::write(values.path(), FULL_VALUES).expect("write the values");
    let mut lint = support::cluster().helm();
    lint.arg("lint")
        .arg("--strict")
        .arg(chart())
        .arg("-f")
        .arg(image_values())
        .arg("-f")
        .arg(values.path());
    let out = run(lint, "helm lint --strict -f full.yaml");
    assert!(out.contains("0 chart(s) failed"), "helm lint said:\n{out}");
}

#[test]
fn every_key_of_values_yaml_has_a_comment_above_it_except_inside_kubernetes_typed_values() {
    // Values whose content is a Kubernetes type, documented as a whole by the comment above.
    const KUBERNETES_TYPED: [&str; 4] = [
        "podSecurityContext",
        "containerSecurityContext",
        "resources",
        "metricsFrom",
    ];
    let text = std::fs::read_to_string(chart().join("values.yaml")).expect("values.yaml");
    let mut commented = false;
    // (indent, key) of the keys enclosing the current line.
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut undocumented = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            commented = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, _)) = trimmed.split_once(':') else {
            commented = false;
            continue;
        };
        if trimmed.starts_with('-') || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            commented = false;
            continue;
        }
        path.retain(|(i, _)| *i < indent);
        let inside_kubernetes_type = path
            .iter()
            .any(|(_, k)| KUBERNETES_TYPED.contains(&k.as_str()));
        if !commented && !inside_kubernetes_type {
            undocumented.push(format!("line {}: {key}", number + 1));
        }
        path.push((indent, key.to_owned()));
        commented = false;
    }
    assert!(
        undocumented.is_empty(),
        "keys without a comment: {undocumented:?}"
    );
}

/// Every RBAC rule of the rendered objects, with the kind and namespace of its role.
fn rules(objects: &[Value]) -> Vec<(String, String, Value)> {
    objects
        .iter()
        .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        .flat_map(|o| {
            let kind = o["kind"].as_str().unwrap_or_default().to_owned();
            let namespace = o["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
            o["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |rule| (kind.clone(), namespace.clone(), rule))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_default_rbac_has_no_wildcards_and_no_secret_access_beyond_the_signing_keys_by_name() {
    let objects = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    let rules = rules(&objects);
    assert!(!rules.is_empty());
    for (kind, namespace, rule) in &rules {
        for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
            assert!(
                !strings(&rule[field]).contains(&"*"),
                "a wildcard in {kind} {namespace}: {rule}"
            );
        }
        if strings(&rule["resources"]).contains(&"secrets") {
            assert_eq!(
                kind, "Role",
                "Secrets only through namespaced Roles: {rule}"
            );
            assert_eq!(namespace, "tw-system", "{rule}");
            let verbs = strings(&rule["verbs"]);
            let names = strings(&rule["resourceNames"]);
            assert!(
                names == ["tokenwarden-signing-keys"] || verbs == ["create"],
                "Secret access must be by name (create takes none): {rule}"
            );
        }
    }
}

#[tokio::test]
async fn helm_template_with_every_option_on_renders_postgresql_upstream_sign_in_and_client_secret_roles()
 {
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let issuer = find(&objects, "Deployment", "issuer");
    assert_eq!(issuer["spec"]["replicas"], 3);
    assert!(
        issuer["spec"]["strategy"].is_null(),
        "rolling updates with PostgreSQL"
    );
    let args = args_of(issuer);
    for expected in [
        "--database-url-file=/etc/tokenwarden/database/url",
        "--users=/etc/tokenwarden/users/users.yaml",
        "--oidc-issuer=https://login.example.com",
        "--oidc-client-id=tokenwarden",
        "--oidc-client-secret-file=/etc/tokenwarden/oidc/client-secret",
        "--oidc-subject-claim=email",
        "--issuer-url=https://auth.example.com",
        "--trusted-proxies=10.244.0.0/16,192.0.2.10",
        "--first-party-clients=platform/portal,platform/platform.console",
    ] {
        assert!(
            args.iter().any(|a| a == expected),
            "{expected} not in {args:?}"
        );
    }
    assert!(
        !objects.iter().any(|o| o["kind"] == "PersistentVolumeClaim"),
        "no volume claim with PostgreSQL"
    );
    let volumes = issuer["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let database = volumes
        .iter()
        .find(|v| v["name"] == "database")
        .expect("the database volume");
    assert_eq!(database["secret"]["secretName"], "tokenwarden-database");
    assert!(
        database["secret"]["items"].is_null(),
        "every key of the Secret is mounted, so a CA beside the URL is found: {database}"
    );
    let image = issuer["spec"]["template"]["spec"]["containers"][0]["image"].as_str();
    assert_eq!(
        image,
        Some(
            "registry.example.com/platform/tokenwarden@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )
    );
    let controller = args_of(find(&objects, "Deployment", "controller"));
    assert!(
        controller.contains(&"--secret-namespaces=payments,billing".to_owned()),
        "{controller:?}"
    );
    let secret_roles: Vec<&str> = objects
        .iter()
        .filter(|o| {
            o["kind"] == "Role"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("client-secrets"))
        })
        .filter_map(|o| o["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(secret_roles, ["payments", "billing"]);
    for kind in [
        "Ingress",
        "NetworkPolicy",
        "ServiceMonitor",
        "PodDisruptionBudget",
    ] {
        assert!(objects.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    assert_eq!(
        find(&objects, "PodDisruptionBudget", "controller")["spec"]["minAvailable"],
        1
    );

    // The defaults: one issuer on the embedded store, on a claim, replaced (not rolled).
    let objects = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    let issuer = find(&objects, "Deployment", "issuer");
    assert_eq!(issuer["spec"]["strategy"]["type"], "Recreate");
    find(&objects, "PersistentVolumeClaim", "issuer-data");
    assert!(
        args_of(issuer)
            .contains(&"--issuer-url=http://tw-tokenwarden-issuer.tw-system.svc:8080".to_owned())
    );
    let controller = args_of(find(&objects, "Deployment", "controller"));
    let scopes: Vec<_> = controller
        .iter()
        .filter(|a| a.starts_with("--secret-namespaces"))
        .collect();
    assert_eq!(
        scopes,
        ["--secret-namespaces="],
        "no client-secret namespace by default, said explicitly: without the flag the \
         controller would watch Secrets in every namespace, which the chart's RBAC forbids"
    );
}

/// The binary knows every flag the chart passes: each component's arguments, rendered with the
/// defaults and with every option on, followed by `--help`, which clap answers only when every
/// argument before it is one it knows.
#[tokio::test]
async fn the_binary_accepts_every_argument_the_chart_passes() {
    for values in ["{}", FULL_VALUES] {
        let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
        for component in ["controller", "issuer"] {
            let args = args_of(find(&objects, "Deployment", component));
            let output = Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
                .args(&args)
                .arg("--help")
                .output()
                .expect("run tokenwarden");
            assert!(
                output.status.success(),
                "the {component} refuses the chart's arguments {args:?}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

/// The notes `helm install` prints with `--set SET`.
fn notes(set: &str) -> String {
    let (out, _) = support::cluster()
        .run_helm(&[
            "install",
            "tw",
            &chart().to_string_lossy(),
            "--namespace",
            "tw-system",
            "--dry-run=client",
            "-f",
            &image_values().to_string_lossy(),
            "--set",
            set,
        ])
        .expect("helm install --dry-run=client");
    out.split_once("NOTES:")
        .map(|(_, notes)| notes.to_owned())
        .unwrap_or_else(|| panic!("no NOTES in:\n{out}"))
}

#[tokio::test]
async fn the_notes_walk_through_a_first_token_and_say_when_a_namespace_must_be_granted_first() {
    let default = notes("controller.logLevel=info");
    for expected in [
        "--set 'controller.clientSecretNamespaces={payments}'",
        "kind: ApiTokenPolicy",
        "kubectl wait -n payments --for=condition=Ready atp/banking apic/billing-worker",
        "kubectl port-forward -n tw-system svc/tw-tokenwarden-issuer 8080:8080",
        "grant_type=client_credentials",
    ] {
        assert!(
            default.contains(expected),
            "{expected:?} not in the notes:\n{default}"
        );
    }
    let granted = notes("controller.clientSecretNamespaces={billing}");
    assert!(!granted.contains("helm upgrade"), "{granted}");
    assert!(
        granted.contains("metadata: {name: banking, namespace: billing}"),
        "{granted}"
    );
}

/// `helm template --set SET` must fail with a message containing `expected`.
fn refuses(set: &str, expected: &[&str]) {
    let error = support::cluster()
        .run_helm(&[
            "template",
            "tw",
            &chart().to_string_lossy(),
            "-f",
            &image_values().to_string_lossy(),
            "--set",
            set,
        ])
        .expect_err("the schema accepted bad values");
    assert!(
        error.contains("values don't meet the specifications of the schema"),
        "{error}"
    );
    for part in expected {
        assert!(error.contains(part), "{part:?} not in:\n{error}");
    }
}

macro_rules! schema_refuses {
    ($($name:ident: $set:expr => $($expected:expr),+;)+) => {$(
        #[tokio::test]
        async fn $name() {
            refuses($set, &[$($expected),+]);
        }
    )+};
}

schema_refuses! {
    schema_refuses_two_issuers_on_the_embedded_store:
        "issuer.replicas=2" => "at '/issuer/storage/type': value must be 'postgresql'";
    schema_refuses_postgresql_without_the_secret_of_its_url:
        "issuer.storage.type=postgresql" => "at '/issuer/storage/postgresql/existingSecret': minLength";
    schema_refuses_an_unknown_storage_type:
        "issuer.storage.type=sqlite" => "at '/issuer/storage/type': value must be one of 'embedded', 'postgresql'";
    schema_refuses_an_unknown_key:
        "issuer.replicaz=1" => "at '/issuer': additional properties 'replicaz' not allowed";
    schema_refuses_a_misspelt_security_context_field:
        "containerSecurityContext.privilegd=true" => "additional properties 'privilegd' not allowed";
    schema_refuses_zero_controllers:
        "controller.replicas=0" => "at '/controller/replicas': minimum: got 0, want 1";
    schema_refuses_a_port_above_65535:
        "issuer.service.port=70000" => "at '/issuer/service/port': maximum";
    schema_refuses_upstream_sign_in_without_client_id_and_secret:
        "issuer.oidc.issuer=https://login.example.com" => "at '/issuer/oidc/clientId': minLength", "at '/issuer/oidc/clientSecret/existingSecret': minLength";
    schema_refuses_a_display_name_as_the_subject_claim:
        "issuer.oidc.subjectClaim=nickname" => "at '/issuer/oidc/subjectClaim': 'not' failed";
    schema_refuses_preferred_username_as_the_subject_claim:
        "issuer.oidc.subjectClaim=preferred_username" => "at '/issuer/oidc/subjectClaim': 'not' failed";
    schema_refuses_an_upstream_issuer_that_is_not_https:
        "issuer.oidc.issuer=http://login.example.com" => "at '/issuer/oidc/issuer'";
    schema_refuses_an_invalid_namespace_name:
        "controller.clientSecretNamespaces={Bad_NS}" => "'Bad_NS' does not match pattern";
    schema_refuses_an_ingress_without_a_host:
        "issuer.ingress.enabled=true" => "at '/issuer/ingress/host': minLength";
    schema_refuses_both_pdb_bounds:
        "controller.podDisruptionBudget.maxUnavailable=1,controller.podDisruptionBudget.minAvailable=1" => "at '/controller/podDisruptionBudget': 'not' failed";
    schema_refuses_a_memory_limit_that_is_not_a_quantity:
        "controller.resources.limits.memory=lots" => "at '/controller/resources/limits/memory'";
    schema_refuses_an_unknown_log_format:
        "issuer.logFormat=xml" => "at '/issuer/logFormat'";
    schema_refuses_a_label_the_chart_sets_itself:
        "issuer.podLabels.app\\.kubernetes\\.io/component=x" => "invalid propertyName 'app.kubernetes.io/component'";
    schema_refuses_a_wildcard_ingress_host_without_an_issuer_url:
        "issuer.ingress.enabled=true,issuer.ingress.host=*.example.com" => "at '/issuer/url': minLength";
    schema_refuses_no_image_repository:
        "image.repository=" => "at '/image/repository': minLength";
    schema_refuses_a_malformed_digest:
        "image.digest=latest" => "at '/image/digest'";
    schema_refuses_an_issuer_url_with_a_path:
        "issuer.url=https://auth.example.com/auth" => "at '/issuer/url'";
    schema_refuses_upstream_sign_in_without_a_public_issuer_url:
        "issuer.oidc.issuer=https://login.example.com,issuer.oidc.clientId=tw,issuer.oidc.clientSecret.existingSecret=oidc" => "at '/issuer/url': minLength", "at '/issuer/ingress/enabled': value must be true";
    schema_refuses_a_first_party_client_without_its_namespace:
        "issuer.firstPartyClients={portal}" => "at '/issuer/firstPartyClients/0'";
    schema_refuses_several_controllers_without_leader_election:
        "controller.replicas=2,controller.leaderElection=false" => "at '/controller/replicas': value must be 1";
}

#[tokio::test]
async fn a_disruption_budget_of_zero_unavailable_stays_zero() {
    let values = "issuer: {podDisruptionBudget: {enabled: true, maxUnavailable: 0}}\n";
    let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
    let pdb = find(&objects, "PodDisruptionBudget", "issuer");
    assert_eq!(pdb["spec"]["maxUnavailable"], 0, "{pdb}");
    let defaults = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    let pdb = find(&defaults, "PodDisruptionBudget", "issuer");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{pdb}");
}

#[tokio::test]
async fn every_service_name_is_a_dns_label_even_with_the_longest_fullname() {
    let values = format!(
        "fullnameOverride: {}\nserviceMonitor: {{enabled: true}}\n",
        "t".repeat(52)
    );
    let objects = render(support::cluster(), "tw", "tw-system", &values).expect("helm template");
    let services: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(services.len(), 3, "{services:?}");
    for name in services {
        assert!(name.len() <= 63, "{name} is {} characters", name.len());
    }
}

/// The issuer's own Service, which may be a LoadBalancer, carries only the OAuth port; the
/// metrics of both components are on ClusterIP Services of their own, which the
/// ServiceMonitors find.
#[tokio::test]
async fn metrics_are_never_on_the_issuers_public_service() {
    let values = "serviceMonitor: {enabled: true}\nissuer: {service: {type: LoadBalancer}}";
    let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
    let public = find(&objects, "Service", "issuer");
    assert_eq!(public["spec"]["type"], "LoadBalancer");
    let ports: Vec<&Value> = public["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .collect();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0]["name"], "http");
    for (component, port) in [("controller", 8081), ("issuer", 9090)] {
        let metrics = find(&objects, "Service", &format!("{component}-metrics"));
        assert_eq!(metrics["spec"]["type"], "ClusterIP");
        assert_eq!(metrics["spec"]["ports"][0]["name"], "http-metrics");
        assert_eq!(metrics["spec"]["ports"][0]["port"], port);
        let monitor = find(&objects, "ServiceMonitor", component);
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        for (key, value) in selector.as_object().expect("labels") {
            assert_eq!(
                &metrics["metadata"]["labels"][key], value,
                "{component} {key}"
            );
        }
    }
}

/// An empty `metricsFrom` admits no one to the metrics ports (an empty `from` in a
/// NetworkPolicy rule would admit everyone); the issuer's own port stays open.
#[tokio::test]
async fn an_empty_metrics_from_leaves_no_rule_that_admits_everyone() {
    let values = "networkPolicy: {enabled: true, metricsFrom: []}";
    let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
    let issuer = &find(&objects, "NetworkPolicy", "issuer")["spec"]["ingress"];
    let rules = issuer.as_array().expect("the issuer's rules");
    assert_eq!(rules.len(), 1, "{issuer}");
    assert_eq!(rules[0]["ports"][0]["port"], "http");
    let controller = &find(&objects, "NetworkPolicy", "controller")["spec"]["ingress"];
    assert_eq!(
        controller,
        &serde_json::json!([]),
        "no one reaches the controller"
    );
}

/// A wildcard Ingress host serves, as long as `issuer.url` names the host clients use.
#[tokio::test]
async fn a_wildcard_ingress_host_with_an_issuer_url_renders() {
    let values =
        "issuer: {url: https://auth.example.com, ingress: {enabled: true, host: '*.example.com'}}";
    let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
    let args = args_of(find(&objects, "Deployment", "issuer"));
    assert!(
        args.iter()
            .any(|a| a == "--issuer-url=https://auth.example.com"),
        "{args:?}"
    );
}

/// Several issuers with no spread or affinity of their own are spread over nodes (softly);
/// one issuer, or a spread or affinity given, gets no default.
#[tokio::test]
async fn several_issuers_are_spread_over_nodes_by_default() {
    let spread_of = |values: &str| {
        let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
        find(&objects, "Deployment", "issuer")["spec"]["template"]["spec"]
            ["topologySpreadConstraints"]
            .clone()
    };
    let three =
        "issuer: {replicas: 3, storage: {type: postgresql, postgresql: {existingSecret: db}}";
    let spread = spread_of(&format!("{three}}}"));
    assert_eq!(
        spread[0]["topologyKey"], "kubernetes.io/hostname",
        "{spread}"
    );
    assert_eq!(spread[0]["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(
        spread[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"],
        "issuer"
    );
    assert!(spread_of("{}").is_null(), "one issuer");
    let own = spread_of(&format!("{three}, affinity: {{podAntiAffinity: {{}}}}}}"));
    assert!(own.is_null(), "an affinity of the user's: {own}");
}

/// A parent chart may pass `global` values to this chart as a dependency.
#[tokio::test]
async fn the_chart_accepts_global_values_as_a_dependency() {
    let values = "global: {imageRegistry: registry.example.com}";
    render(support::cluster(), "tw", "tw-system", values).expect("helm template");
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
        .arg(chart())
        .arg("-f")
        .arg(image_values());
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

#[tokio::test]
async fn the_issuer_drains_for_its_configured_period_within_a_grace_period_that_covers_it() {
    for (values, drain) in [("{}", 5), ("issuer: {shutdown: {drainSeconds: 12}}", 12)] {
        let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
        let issuer = find(&objects, "Deployment", "issuer");
        assert!(
            args_of(issuer).contains(&format!("--shutdown-drain-seconds={drain}")),
            "{values}"
        );
        let grace = issuer["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_i64()
            .expect("a grace period");
        assert_eq!(
            grace,
            drain + 35,
            "drain, the 30 s request timeout, 5 s spare"
        );
    }
    let refused = render(
        support::cluster(),
        "tw",
        "tw-system",
        "issuer: {shutdown: {drainSeconds: 301}}",
    )
    .expect_err("the schema bounds the drain");
    assert!(refused.contains("drainSeconds"), "{refused}");
}
