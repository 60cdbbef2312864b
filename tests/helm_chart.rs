//! The Helm chart `charts/tokenwarden`, with helm 4 from the test tools: it lints with default
//! and non-default values, renders what those values ask for, its schema refuses bad values
//! (one test per case, with helm's message), and what it renders (CRDs included) is accepted
//! by a real API server in a server-side dry run. Installing it is `helm_release.rs`.

mod fixtures;
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
  extraArgs: [--key-rotation-interval=7d]
  extraVolumes: [{name: company-ca, configMap: {name: company-ca}}]
  extraVolumeMounts: [{name: company-ca, mountPath: /etc/company-ca, readOnly: true}]
  startupProbe: {httpGet: {path: /healthz, port: http-metrics}, failureThreshold: 30, periodSeconds: 2}
  resources: {limits: {cpu: null}}
issuer:
  autoscaling: {enabled: true, minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 70, targetMemoryUtilizationPercentage: 85}
  storage: {type: postgresql, postgresql: {existingSecret: tokenwarden-database}}
  users: {existingSecret: tokenwarden-users}
  oidc: {issuer: https://login.example.com, clientId: tokenwarden, clientSecret: {existingSecret: tokenwarden-oidc}, subjectClaim: email}
  service: {annotations: {example.com/internal: "true"}, labels: {example.com/expose: internal}}
  ingress: {enabled: true, className: nginx, host: auth.example.com, tlsSecretName: auth-tls}
  httpRoute: {enabled: true, parentRefs: [{name: public, namespace: gateway-system, sectionName: https}], hostnames: [auth.example.com], labels: {gateway: public}}
  trustedProxies: [10.244.0.0/16, 192.0.2.10]
  firstPartyClients: [platform/portal, platform/platform.console]
  extraArgs: [--key-publish-lead=2h]
  extraVolumes: [{name: company-ca, configMap: {name: company-ca}}]
  extraVolumeMounts: [{name: company-ca, mountPath: /etc/company-ca, readOnly: true}]
  startupProbe: {httpGet: {path: /readyz, port: http}, failureThreshold: 30, periodSeconds: 2}
networkPolicy:
  enabled: true
  egress:
    enabled: true
    apiServer: {to: [{ipBlock: {cidr: 172.18.0.2/32}}]}
    postgresql: {to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: databases}}, podSelector: {matchLabels: {app: postgresql}}}]}
    extraEgress: {issuer: [{to: [{ipBlock: {cidr: 10.0.0.10/32}}], ports: [{port: 4317, protocol: TCP}]}]}
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
    assert!(
        issuer["spec"]["replicas"].is_null(),
        "the autoscaler owns the count"
    );
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
        "HTTPRoute",
        "HorizontalPodAutoscaler",
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

/// `kubectl apply --dry-run=server` of `manifests` (YAML or JSON), into `namespace` if given,
/// else into the namespace each object names: the API server's admission, schemas and
/// defaults, nothing stored.
fn api_server_accepts(namespace: Option<&str>, manifests: &str, what: &str) {
    let mut dry_run = support::cluster().kubectl();
    dry_run.args(["apply", "--dry-run=server", "-f", "-"]);
    if let Some(namespace) = namespace {
        dry_run.args(["--namespace", namespace]);
    }
    dry_run
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
        "the API server rejected the chart's manifests ({what}):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
    api_server_accepts(Some(&ns), &manifests, "default values");
}

/// Every option on, the new ones included (the autoscaler, the egress rules, extra volumes,
/// startup probes), through the same dry run. The test API server has no Prometheus Operator
/// and no Gateway API CRDs, so the objects of those groups (ServiceMonitors, HTTPRoute) are
/// left out here; their fields are checked by rendering in the tests above.
#[tokio::test]
async fn with_every_option_on_the_api_server_accepts_every_object_it_has_a_kind_for() {
    const NOT_SERVED: [&str; 2] = ["monitoring.coreos.com/", "gateway.networking.k8s.io/"];
    let cluster = support::cluster();
    let ns = cluster.new_namespace("helm-full").await;
    let payments = cluster.new_namespace("helm-full-payments").await;
    let billing = cluster.new_namespace("helm-full-billing").await;
    let values = FULL_VALUES.replace(
        "clientSecretNamespaces: [payments, billing]",
        &format!("clientSecretNamespaces: [{payments}, {billing}]"),
    );
    assert_ne!(
        values, FULL_VALUES,
        "the client-secret namespaces of FULL_VALUES"
    );
    let objects = render(cluster, "tokenwarden", &ns, &values).expect("helm template");
    let served: Vec<Value> = objects
        .into_iter()
        .filter(|o| {
            let api_version = o["apiVersion"].as_str().unwrap_or_default();
            !NOT_SERVED
                .iter()
                .any(|group| api_version.starts_with(group))
        })
        .collect();
    for kind in ["HorizontalPodAutoscaler", "NetworkPolicy", "Deployment"] {
        assert!(served.iter().any(|o| o["kind"] == kind), "no {kind}");
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": served});
    // No --namespace: the client-secret Roles are in namespaces of their own.
    api_server_accepts(None, &list.to_string(), "every option on");
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

/// The first container of a Deployment.
fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// `extraArgs` come after the chart's own arguments, `extraVolumes` and `extraVolumeMounts`
/// beside the chart's, and a `startupProbe` only when one is given.
#[tokio::test]
async fn extra_args_volumes_mounts_and_a_startup_probe_reach_both_components() {
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    for (component, arg, probe_path) in [
        ("controller", "--key-rotation-interval=7d", "/healthz"),
        ("issuer", "--key-publish-lead=2h", "/readyz"),
    ] {
        let deployment = find(&objects, "Deployment", component);
        let args = args_of(deployment);
        assert_eq!(args.last().map(String::as_str), Some(arg), "{args:?}");
        let pod = &deployment["spec"]["template"]["spec"];
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == "company-ca")
            .unwrap_or_else(|| panic!("no extra volume in the {component}: {pod}"));
        assert_eq!(volume["configMap"]["name"], "company-ca");
        let mount = container(deployment)["volumeMounts"]
            .as_array()
            .expect("volume mounts")
            .iter()
            .find(|m| m["name"] == "company-ca")
            .unwrap_or_else(|| panic!("no extra mount in the {component}"));
        assert_eq!(mount["mountPath"], "/etc/company-ca");
        assert_eq!(mount["readOnly"], true);
        let probe = &container(deployment)["startupProbe"];
        assert_eq!(probe["httpGet"]["path"], probe_path, "{component}");
        assert_eq!(probe["failureThreshold"], 30);
        assert_eq!(probe["periodSeconds"], 2);
    }
    let issuer = find(&objects, "Deployment", "issuer");
    let mounts: Vec<&Value> = container(issuer)["volumeMounts"]
        .as_array()
        .expect("volume mounts")
        .iter()
        .map(|m| &m["name"])
        .collect();
    assert_eq!(
        mounts,
        ["data", "tmp", "database", "users", "oidc", "company-ca"],
        "the chart's mounts stay"
    );

    let defaults = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    for component in ["controller", "issuer"] {
        let deployment = find(&defaults, "Deployment", component);
        assert!(
            container(deployment)["startupProbe"].is_null(),
            "no startup probe by default in the {component}"
        );
    }
    assert!(
        find(&defaults, "Deployment", "controller")["spec"]["template"]["spec"]["volumes"]
            .is_null(),
        "the controller has no volume by default"
    );
}

#[tokio::test]
async fn the_issuer_service_carries_extra_labels_beside_its_annotations() {
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let metadata = &find(&objects, "Service", "issuer")["metadata"];
    assert_eq!(metadata["labels"]["example.com/expose"], "internal");
    assert_eq!(
        metadata["labels"]["app.kubernetes.io/component"], "issuer",
        "the chart's labels stay"
    );
    assert_eq!(metadata["annotations"]["example.com/internal"], "true");
}

/// A CPU limit throttles password hashing and the tail latency of token requests: it may be
/// left out (what is given is rendered as given). A memory limit stays required.
#[tokio::test]
async fn cpu_limits_are_optional_and_render_as_given() {
    let values = "issuer: {resources: {limits: {cpu: null}}}";
    let objects = render(support::cluster(), "tw", "tw-system", values).expect("helm template");
    let resources = &container(find(&objects, "Deployment", "issuer"))["resources"];
    assert!(resources["limits"]["cpu"].is_null(), "{resources}");
    assert_eq!(resources["limits"]["memory"], "512Mi");
    assert_eq!(resources["requests"]["cpu"], "100m");
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let resources = &container(find(&objects, "Deployment", "controller"))["resources"];
    assert_eq!(
        resources,
        &serde_json::json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
}

/// With an autoscaler the Deployment has no `replicas`, so that `helm upgrade` does not reset
/// the count the autoscaler chose; the autoscaler targets the issuer's Deployment.
#[tokio::test]
async fn an_autoscaled_issuer_gets_a_horizontal_pod_autoscaler_and_its_deployment_no_replicas() {
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let hpa = find(&objects, "HorizontalPodAutoscaler", "issuer");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    let spec = &hpa["spec"];
    assert_eq!(spec["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        spec["scaleTargetRef"]["name"],
        find(&objects, "Deployment", "issuer")["metadata"]["name"]
    );
    assert_eq!(spec["minReplicas"], 3);
    assert_eq!(spec["maxReplicas"], 12);
    let targets: Vec<(&Value, &Value)> = spec["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                &m["resource"]["name"],
                &m["resource"]["target"]["averageUtilization"],
            )
        })
        .collect();
    assert_eq!(
        targets,
        [(&"cpu".into(), &70.into()), (&"memory".into(), &85.into())]
    );
    let issuer = find(&objects, "Deployment", "issuer");
    assert!(issuer["spec"]["replicas"].is_null(), "{}", issuer["spec"]);
    assert_eq!(
        issuer["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname",
        "autoscaled issuers are spread like several replicas"
    );

    let cpu_only = "issuer: {autoscaling: {enabled: true}, storage: {type: postgresql, postgresql: {existingSecret: db}}}";
    let objects = render(support::cluster(), "tw", "tw-system", cpu_only).expect("helm template");
    let metrics = &find(&objects, "HorizontalPodAutoscaler", "issuer")["spec"]["metrics"];
    assert_eq!(metrics.as_array().map(Vec::len), Some(1), "{metrics}");
    assert_eq!(metrics[0]["resource"]["target"]["averageUtilization"], 80);

    let defaults = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    assert!(
        !defaults
            .iter()
            .any(|o| o["kind"] == "HorizontalPodAutoscaler")
    );
    assert_eq!(
        find(&defaults, "Deployment", "issuer")["spec"]["replicas"],
        1
    );

    let inverted = "issuer: {autoscaling: {enabled: true, minReplicas: 5, maxReplicas: 2}, storage: {type: postgresql, postgresql: {existingSecret: db}}}";
    let refused = render(support::cluster(), "tw", "tw-system", inverted)
        .expect_err("maxReplicas below minReplicas");
    assert!(
        refused.contains(
            "issuer.autoscaling.maxReplicas (2) is below issuer.autoscaling.minReplicas (5)"
        ),
        "{refused}"
    );
}

/// The HTTPRoute sends every path of its host names to the issuer's Service; without an
/// Ingress or issuer.url, its first host name over https is the issuer URL.
#[tokio::test]
async fn the_http_route_sends_its_hostnames_to_the_issuer_and_its_first_hostname_is_the_issuer_url()
{
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let route = find(&objects, "HTTPRoute", "issuer");
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["metadata"]["labels"]["gateway"], "public");
    let spec = &route["spec"];
    assert_eq!(
        spec["parentRefs"],
        serde_json::json!([{"name": "public", "namespace": "gateway-system", "sectionName": "https"}])
    );
    assert_eq!(spec["hostnames"], serde_json::json!(["auth.example.com"]));
    let rule = &spec["rules"][0];
    assert_eq!(
        rule["matches"],
        serde_json::json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    let service = find(&objects, "Service", "issuer");
    assert_eq!(rule["backendRefs"][0]["name"], service["metadata"]["name"]);
    assert_eq!(
        rule["backendRefs"][0]["port"],
        service["spec"]["ports"][0]["port"]
    );

    // Upstream sign-in needs a public URL: the HTTPRoute's is one.
    let route_only = "issuer: {service: {port: 80}, oidc: {issuer: https://login.example.com, clientId: tw, clientSecret: {existingSecret: oidc}}, httpRoute: {enabled: true, parentRefs: [{name: public}], hostnames: [auth.example.com, login.example.com], annotations: {example.com/owner: platform}}}";
    let objects = render(support::cluster(), "tw", "tw-system", route_only).expect("helm template");
    let route = find(&objects, "HTTPRoute", "issuer");
    assert_eq!(
        route["metadata"]["annotations"]["example.com/owner"],
        "platform"
    );
    assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["port"], 80);
    let args = args_of(find(&objects, "Deployment", "issuer"));
    assert!(
        args.iter()
            .any(|a| a == "--issuer-url=https://auth.example.com"),
        "{args:?}"
    );
    let defaults = render(support::cluster(), "tw", "tw-system", "{}").expect("helm template");
    assert!(!defaults.iter().any(|o| o["kind"] == "HTTPRoute"));
}

/// The rules of a rendered NetworkPolicy's `egress`, keyed by their first port.
fn egress_by_port(policy: &Value) -> Vec<(i64, Value)> {
    policy["spec"]["egress"]
        .as_array()
        .expect("egress rules")
        .iter()
        .map(|rule| {
            (
                rule["ports"][0]["port"].as_i64().expect("a port number"),
                rule.clone(),
            )
        })
        .collect()
}

/// With egress on, each component may reach DNS and the API server, the issuer also
/// PostgreSQL and the OpenID Provider when it uses them, and each its extra rules: nothing
/// else, since a policy with `Egress` denies what no rule allows.
#[tokio::test]
async fn egress_policies_allow_each_component_only_what_it_uses() {
    let objects =
        render(support::cluster(), "tw", "tw-system", FULL_VALUES).expect("helm template");
    let dns = serde_json::json!({
        "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
    });
    let api_server = serde_json::json!({
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}],
    });
    let controller = find(&objects, "NetworkPolicy", "controller");
    assert_eq!(
        controller["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(
        egress_by_port(controller),
        [(53, dns.clone()), (443, api_server.clone())]
    );
    let issuer = find(&objects, "NetworkPolicy", "issuer");
    assert_eq!(
        issuer["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let postgresql = serde_json::json!({
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "databases"}}, "podSelector": {"matchLabels": {"app": "postgresql"}}}],
        "ports": [{"port": 5432, "protocol": "TCP"}],
    });
    let provider = serde_json::json!({"ports": [{"port": 443, "protocol": "TCP"}]});
    let collector = serde_json::json!({
        "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}],
        "ports": [{"port": 4317, "protocol": "TCP"}],
    });
    assert_eq!(
        egress_by_port(issuer),
        [
            (53, dns.clone()),
            (443, api_server.clone()),
            (5432, postgresql),
            (443, provider),
            (4317, collector)
        ]
    );

    // The embedded store and no provider: no rule for either; a provider's peers narrow it.
    let embedded = "networkPolicy: {enabled: true, egress: {enabled: true, apiServer: {to: [{ipBlock: {cidr: 172.18.0.2/32}}], ports: [{port: 6443}]}, dns: {to: []}}}";
    let objects = render(support::cluster(), "tw", "tw-system", embedded).expect("helm template");
    let rules = egress_by_port(find(&objects, "NetworkPolicy", "issuer"));
    let ports: Vec<i64> = rules.iter().map(|(port, _)| *port).collect();
    assert_eq!(ports, [53, 6443], "{rules:?}");
    assert!(
        rules[0].1["to"].is_null(),
        "an empty dns.to allows the DNS ports anywhere"
    );

    // Egress off (the default with networkPolicy.enabled): ingress only, as before.
    let ingress_only = "networkPolicy: {enabled: true}";
    let objects =
        render(support::cluster(), "tw", "tw-system", ingress_only).expect("helm template");
    for component in ["controller", "issuer"] {
        let policy = find(&objects, "NetworkPolicy", component);
        assert_eq!(
            policy["spec"]["policyTypes"],
            serde_json::json!(["Ingress"])
        );
        assert!(policy["spec"]["egress"].is_null(), "{policy}");
    }
}

schema_refuses! {
    schema_refuses_an_extra_volume_with_a_name_the_chart_uses:
        "issuer.extraVolumes[0].name=data,issuer.extraVolumes[0].emptyDir.medium=Memory" => "at '/issuer/extraVolumes/0/name': 'not' failed";
    schema_refuses_a_misspelt_startup_probe_field:
        "issuer.startupProbe.failureTreshold=30" => "at '/issuer/startupProbe': additional properties 'failureTreshold' not allowed";
    schema_refuses_a_startup_probe_without_a_handler:
        "controller.startupProbe.periodSeconds=2" => "at '/controller/startupProbe': missing property 'httpGet'";
    schema_refuses_an_extra_mount_without_a_path:
        "controller.extraVolumeMounts[0].name=x" => "at '/controller/extraVolumeMounts/0': missing property 'mountPath'";
    schema_refuses_resources_without_a_memory_limit:
        "controller.resources.limits.memory=null" => "at '/controller/resources/limits': missing property 'memory'";
    schema_refuses_an_autoscaler_on_the_embedded_store:
        "issuer.autoscaling.enabled=true" => "at '/issuer/storage/type': value must be 'postgresql'";
    schema_refuses_an_autoscaler_above_a_hundred_replicas:
        "issuer.autoscaling.maxReplicas=101" => "at '/issuer/autoscaling/maxReplicas': maximum";
    schema_refuses_an_http_route_without_a_gateway_or_a_hostname:
        "issuer.httpRoute.enabled=true" => "at '/issuer/httpRoute/parentRefs': minItems", "at '/issuer/httpRoute/hostnames': minItems";
    schema_refuses_a_wildcard_first_http_route_hostname_without_an_issuer_url:
        "issuer.httpRoute.enabled=true,issuer.httpRoute.parentRefs[0].name=public,issuer.httpRoute.hostnames={*.example.com}" => "at '/issuer/url': minLength";
    schema_refuses_a_misspelt_parent_reference_field:
        "issuer.httpRoute.parentRefs[0].name=public,issuer.httpRoute.parentRefs[0].sectionname=https" => "additional properties 'sectionname' not allowed";
    schema_refuses_egress_without_the_api_servers_address:
        "networkPolicy.enabled=true,networkPolicy.egress.enabled=true" => "at '/networkPolicy/egress/apiServer/to': minItems";
    schema_refuses_egress_without_network_policies:
        "networkPolicy.egress.enabled=true,networkPolicy.egress.apiServer.to[0].ipBlock.cidr=10.0.0.1/32" => "at '/networkPolicy/enabled': value must be true";
    schema_refuses_egress_with_postgresql_without_its_address:
        "networkPolicy.enabled=true,networkPolicy.egress.enabled=true,networkPolicy.egress.apiServer.to[0].ipBlock.cidr=10.0.0.1/32,issuer.storage.type=postgresql,issuer.storage.postgresql.existingSecret=db" => "at '/networkPolicy/egress/postgresql/to': minItems";
    schema_refuses_an_ip_block_with_a_selector_in_one_peer:
        "networkPolicy.egress.oidc.to[0].ipBlock.cidr=10.0.0.1/32,networkPolicy.egress.oidc.to[0].podSelector.matchLabels.a=b" => "at '/networkPolicy/egress/oidc/to/0': 'not' failed";
}
