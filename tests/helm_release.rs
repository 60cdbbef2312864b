//! The Helm chart installed on the real API server of the test harness: `helm install` into a
//! namespace that enforces the Pod Security Standard "restricted", `helm upgrade`, `helm
//! uninstall`; and the chart's RBAC proven by running the controller and the issuer as the
//! chart's ServiceAccounts (tokens from TokenRequest) through the end-to-end scenario, with
//! `kubectl auth can-i` showing what they may not do.
//!
//! No kube-controller-manager runs here, so the chart's Deployments create no Pods: each pod
//! template is checked by creating a Pod from it with a server-side dry run, and the
//! components run as processes with the chart's arguments and identities.

mod fixtures;
mod operator;
mod support;

use fixtures::client_credentials;
use operator::chart::{args_of, can_i, dry_run_create, find, install, pod_of, render};
use operator::scenario::{self, CONVERGE};
use operator::{
    apply, client_ready, documents, eventually, lifetime, machine_client_yaml, policy_yaml, ready,
    spawn_controller_as, spawn_issuer_as,
};
use serde_json::Value;

const SECRET: &str = "chart-secret-0123456789abcdefghijklmnopqrstuvwxyz";

/// Controllers follow every object of the cluster and own their statuses: the tests that run
/// one take turns.
static ONE_CONTROLLER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Values that turn on every optional part that needs no other CRDs or Secrets to render.
const FULL_VALUES: &str = r#"
controller:
  replicas: 2
  podDisruptionBudget: {enabled: true, minAvailable: 1}
  extraVolumes: [{name: company-ca, configMap: {name: company-ca}}]
  extraVolumeMounts: [{name: company-ca, mountPath: /etc/company-ca, readOnly: true}]
  startupProbe: {httpGet: {path: /healthz, port: http-metrics}, failureThreshold: 30, periodSeconds: 2}
issuer:
  autoscaling: {enabled: true, minReplicas: 3}
  extraVolumes: [{name: company-ca, configMap: {name: company-ca}}]
  extraVolumeMounts: [{name: company-ca, mountPath: /etc/company-ca, readOnly: true}]
  startupProbe: {httpGet: {path: /readyz, port: http}, failureThreshold: 30, periodSeconds: 2}
  storage: {type: postgresql, postgresql: {existingSecret: tokenwarden-database}}
  users: {existingSecret: tokenwarden-users}
  oidc: {issuer: https://login.example.com, clientId: tokenwarden, clientSecret: {existingSecret: tokenwarden-oidc}}
  ingress: {enabled: true, className: nginx, host: auth.example.com, tlsSecretName: auth-tls}
networkPolicy: {enabled: true}
"#;

async fn restricted_namespace(prefix: &str) -> String {
    let cluster = support::cluster();
    let ns = cluster.new_namespace(prefix).await;
    cluster
        .run_kubectl(&[
            "label",
            "namespace",
            &ns,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ])
        .expect("labelling the namespace");
    ns
}

/// Names (Kind/name) of the objects in `namespace` of the kinds a release could leave behind,
/// except those already deleted and waiting for a finalizer (the PersistentVolumeClaim's
/// `kubernetes.io/pvc-protection`, which only kube-controller-manager removes).
fn namespaced_objects(namespace: &str) -> Vec<String> {
    let out = support::cluster()
        .run_kubectl(&[
            "get",
            "deployments,services,serviceaccounts,configmaps,secrets,persistentvolumeclaims,\
             poddisruptionbudgets,roles,rolebindings,networkpolicies,ingresses,leases",
            "-n",
            namespace,
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name} {.metadata.deletionTimestamp}{'\\n'}{end}",
        ])
        .expect("listing the namespace");
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|line| line.strip_suffix(' '))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// Installs the CRDs, and the chart as `release` with `values` into a new namespace
/// `prefix-…`, which it returns.
async fn install_release(prefix: &str, release: &str, values: &str) -> String {
    let cluster = support::cluster();
    cluster.install_crds();
    let system = cluster.new_namespace(prefix).await;
    install(cluster, release, &system, values, false).expect("helm install");
    system
}

fn cluster_objects_of(release: &str) -> String {
    support::cluster()
        .run_kubectl(&[
            "get",
            "clusterroles,clusterrolebindings",
            "-l",
            &format!("app.kubernetes.io/instance={release}"),
            "-o",
            "name",
        ])
        .expect("listing cluster-scoped objects")
}

#[tokio::test]
async fn install_into_a_restricted_namespace_admits_every_object_and_pod_then_upgrade_and_uninstall_leave_only_the_crds()
 {
    let cluster = support::cluster();
    cluster.install_crds();
    let ns = restricted_namespace("helm-restricted").await;
    let release = "tw";

    let warnings = install(cluster, release, &ns, "{}", false).expect("helm install");
    assert!(
        !warnings.to_lowercase().contains("warning"),
        "helm install printed warnings:\n{warnings}"
    );
    let installed = render(cluster, release, &ns, "{}").expect("helm template");
    for object in &installed {
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or(&ns);
        cluster
            .run_kubectl(&["get", kind, name, "-n", namespace])
            .unwrap_or_else(|e| panic!("{kind}/{name} was not created: {e}"));
    }

    // PodSecurity only warns about Deployments; Pods from their templates must be admitted,
    // with the default values and with every option on.
    for (values, label) in [("{}", "default"), (FULL_VALUES, "full")] {
        let objects = render(cluster, release, &ns, values).expect("helm template");
        for component in ["controller", "issuer"] {
            let pod = pod_of(
                find(&objects, "Deployment", component),
                &format!("{component}-{label}"),
            );
            dry_run_create(cluster, &ns, &pod).unwrap_or_else(|e| {
                panic!("the {component} pod ({label} values) was refused: {e}")
            });
        }
    }
    // The namespace does enforce: the same pod without its security contexts is refused.
    let mut weakened = pod_of(find(&installed, "Deployment", "controller"), "weakened");
    weakened["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("securityContext");
    weakened["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("securityContext");
    let refused = dry_run_create(cluster, &ns, &weakened).expect_err("a non-restricted pod");
    assert!(refused.contains("violates PodSecurity"), "{refused}");
    // And helm passes on the API server's warning about such a Deployment, so the absence of
    // warnings above means something.
    let weak_ns = restricted_namespace("helm-weakened").await;
    let warnings = install(
        cluster,
        "weak",
        &weak_ns,
        "containerSecurityContext: {allowPrivilegeEscalation: true}\n",
        false,
    )
    .expect("helm install of a Deployment PodSecurity only warns about");
    assert!(
        warnings.contains("would violate PodSecurity"),
        "no warning from helm:\n{warnings}"
    );
    cluster
        .run_helm(&["uninstall", "weak", "--namespace", &weak_ns])
        .expect("helm uninstall");

    // Upgrade with changed values.
    let apps = cluster.new_namespace("helm-apps").await;
    let changed = format!(
        "controller: {{replicas: 2, clientSecretNamespaces: [{apps}]}}\nissuer: {{service: {{port: 80}}}}\n"
    );
    let warnings = install(cluster, release, &ns, &changed, true).expect("helm upgrade");
    assert!(
        !warnings.to_lowercase().contains("warning"),
        "helm upgrade printed warnings:\n{warnings}"
    );
    let replicas = cluster
        .run_kubectl(&[
            "get",
            "deployment",
            "tw-tokenwarden-controller",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .expect("the controller Deployment");
    assert_eq!(replicas, "2");
    let port = cluster
        .run_kubectl(&[
            "get",
            "service",
            "tw-tokenwarden-issuer",
            "-n",
            &ns,
            "-o",
            "jsonpath={.spec.ports[0].port}",
        ])
        .expect("the issuer Service");
    assert_eq!(port, "80");
    cluster
        .run_kubectl(&[
            "get",
            "role,rolebinding",
            "tw-tokenwarden-controller-client-secrets",
            "-n",
            &apps,
        ])
        .expect("the upgrade granted the new client-secret namespace");

    // Uninstall: nothing of the release is left, in its namespace, in the client-secret
    // namespace or cluster-wide; the CRDs stay.
    cluster
        .run_helm(&["uninstall", release, "--namespace", &ns])
        .expect("helm uninstall");
    assert_eq!(namespaced_objects(&ns), Vec::<String>::new());
    assert_eq!(namespaced_objects(&apps), Vec::<String>::new());
    assert_eq!(cluster_objects_of(release), "");
    cluster
        .run_kubectl(&[
            "get",
            "crd",
            "apitokenpolicies.tokenwarden.dev",
            "apiclients.tokenwarden.dev",
        ])
        .expect("the CRDs stay");
}

/// A component's arguments from the chart, without the subcommand and those the test sets
/// itself (namespace, addresses, data folder).
fn chart_args(objects: &[Value], component: &str) -> Vec<String> {
    args_of(find(objects, "Deployment", component))
        .into_iter()
        .filter(|a| {
            a != component
                && ![
                    "--namespace=",
                    "--listen=",
                    "--metrics-listen=",
                    "--data-dir=",
                ]
                .iter()
                .any(|own| a.starts_with(own))
        })
        .collect()
}

#[tokio::test]
async fn the_controller_and_the_issuer_do_their_whole_job_as_the_charts_service_accounts_and_nothing_more()
 {
    let _turn = ONE_CONTROLLER.lock().await;
    let cluster = support::cluster();
    let apps = cluster.new_namespace("apps").await;
    let other = cluster.new_namespace("other").await;
    let release = "tokenwarden";
    let values = format!("controller: {{clientSecretNamespaces: [{apps}]}}\n");
    let system = install_release("tw-system", release, &values).await;
    // Secrets the components must not read: one in their namespace, one elsewhere.
    apply(
        cluster,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: tokenwarden-database, namespace: {system}}}\nstringData: {{url: postgres://x}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: unrelated, namespace: {other}}}\nstringData: {{k: v}}\n"
        ),
    )
    .expect("apply the unrelated Secrets");

    let controller_kc = cluster
        .service_account_kubeconfig(&system, "tokenwarden-controller")
        .await;
    let issuer_kc = cluster
        .service_account_kubeconfig(&system, "tokenwarden-issuer")
        .await;
    let objects = render(cluster, release, &system, &values).expect("helm template");
    let extra = chart_args(&objects, "controller");
    assert!(
        extra.contains(&format!("--secret-namespaces={apps}")),
        "{extra:?}"
    );
    let controller =
        spawn_controller_as(cluster, "chart-controller", &system, &controller_kc, &extra);
    ready(cluster, controller).await;

    // What they may not do.
    let no = |kubeconfig: &std::path::Path, args: &[&str]| {
        assert!(
            !can_i(cluster, kubeconfig, args),
            "allowed, but should not be: can-i {args:?}"
        );
    };
    let yes = |kubeconfig: &std::path::Path, args: &[&str]| {
        assert!(
            can_i(cluster, kubeconfig, args),
            "refused, but needed: can-i {args:?}"
        );
    };
    for kc in [&controller_kc, &issuer_kc] {
        no(kc, &["list", "secrets", "--all-namespaces"]);
        no(kc, &["watch", "secrets", "--all-namespaces"]);
        no(kc, &["get", "secrets/unrelated", "-n", &other]);
        no(kc, &["get", "secrets/tokenwarden-database", "-n", &system]);
        no(kc, &["list", "secrets", "-n", &system]);
        no(kc, &["escalate", "clusterroles"]);
        no(kc, &["escalate", "roles", "-n", &system]);
        no(kc, &["bind", "clusterroles"]);
        no(kc, &["bind", "roles", "-n", &system]);
        no(kc, &["create", "rolebindings", "-n", &system]);
        no(kc, &["create", "clusterrolebindings"]);
        no(kc, &["impersonate", "users"]);
        no(kc, &["impersonate", "serviceaccounts", "-n", &system]);
        no(kc, &["impersonate", "groups"]);
        no(kc, &["create", "pods", "-n", &system]);
        no(kc, &["create", "serviceaccounts/token", "-n", &system]);
        no(
            kc,
            &[
                "update",
                "configmaps/tokenwarden-issuer-config",
                "-n",
                &system,
            ],
        );
        no(kc, &["get", "configmaps/unrelated", "-n", &system]);
        yes(
            kc,
            &["get", "secrets/tokenwarden-signing-keys", "-n", &system],
        );
    }
    // Workload identity: the controller reads ServiceAccounts (their UIDs) and
    // FederatedIssuers; the issuer reviews tokens and reads the service-account issuer's keys,
    // and neither reads more.
    yes(
        &controller_kc,
        &["list", "serviceaccounts", "--all-namespaces"],
    );
    yes(
        &controller_kc,
        &["watch", "federatedissuers.tokenwarden.dev"],
    );
    yes(&issuer_kc, &["create", "tokenreviews"]);
    yes(&issuer_kc, &["get", "/openid/v1/jwks"]);
    no(&issuer_kc, &["list", "serviceaccounts", "--all-namespaces"]);
    no(&issuer_kc, &["list", "pods", "--all-namespaces"]);
    no(&controller_kc, &["create", "tokenreviews"]);
    yes(&controller_kc, &["list", "secrets", "-n", &apps]);
    yes(&controller_kc, &["create", "secrets", "-n", &apps]);
    yes(
        &controller_kc,
        &[
            "patch",
            "configmaps/tokenwarden-issuer-config",
            "-n",
            &system,
        ],
    );
    no(&controller_kc, &["list", "secrets", "-n", &other]);
    // Rotation replaces the signing keys (with the resourceVersion it read); nothing deletes them.
    yes(
        &controller_kc,
        &["update", "secrets/tokenwarden-signing-keys", "-n", &system],
    );
    no(
        &controller_kc,
        &["delete", "secrets/tokenwarden-signing-keys", "-n", &system],
    );
    no(&controller_kc, &["update", "apitokenpolicies", "-n", &apps]);
    no(&issuer_kc, &["get", "secrets", "-n", &apps]);
    no(&issuer_kc, &["create", "secrets", "-n", &system]);
    no(
        &issuer_kc,
        &[
            "patch",
            "configmaps/tokenwarden-issuer-config",
            "-n",
            &system,
        ],
    );
    no(&issuer_kc, &["list", "apiclients", "--all-namespaces"]);
    yes(
        &issuer_kc,
        &[
            "watch",
            "configmaps/tokenwarden-issuer-config",
            "-n",
            &system,
        ],
    );

    // The scenario. A code for the offline-access client, seeded before the issuer starts.
    let todo_audience = format!("https://todo.{apps}.example.com");
    let web_id = format!("{apps}-web");
    let data = tempfile::tempdir().expect("data dir");
    scenario::seed_code(data.path(), &web_id, &todo_audience, fixtures::CHALLENGE).await;
    let worker = scenario::apply_worker(cluster, &apps, SECRET).await;
    let audience = &worker.audience;
    apply(
        cluster,
        &scenario::offline_policy_and_web_client(&apps, &todo_audience, &web_id),
    )
    .expect("apply the offline-access policy and client");
    apply(
        cluster,
        &documents(&[
            machine_client_yaml(&apps, "job", Some(&format!("{apps}-job")), audience),
            machine_client_yaml(
                &other,
                "outsider",
                Some(&format!("{other}-outsider")),
                audience,
            ),
        ]),
    )
    .expect("apply the other objects");
    for name in ["web", "job"] {
        scenario::wait_client_ready(cluster, &apps, name).await;
    }
    // What kstatus-style waiters (kubectl wait, Flux) see: Ready at the current generation.
    cluster
        .run_kubectl(&[
            "wait",
            "-n",
            &apps,
            "--for=condition=Ready",
            "--timeout=30s",
            "atp/api",
            "atp/todo",
            "apic/worker",
            "apic/job",
        ])
        .expect("kubectl wait for Ready");
    // And what kstatus itself (sigs.k8s.io/cli-utils, Flux's health checks) computes.
    for (kind, name) in [
        ("apitokenpolicy", "api"),
        ("apitokenpolicy", "todo"),
        ("apiclient", "worker"),
        ("apiclient", "job"),
    ] {
        let status = cluster.kstatus(&apps, kind, name);
        assert_eq!(status.as_deref(), Ok("Current"), "{kind}/{name}");
    }
    let issuer_args = chart_args(&objects, "issuer");
    let issuer_url = format!("http://tokenwarden-issuer.{system}.svc:8080");
    assert_eq!(
        issuer_args,
        [
            format!("--issuer-url={issuer_url}"),
            "--shutdown-drain-seconds=5".to_owned()
        ]
    );
    let issuer = spawn_issuer_as(
        cluster,
        "chart-issuer",
        &system,
        data.path(),
        &issuer_kc,
        &issuer_args,
    );
    let issuer = ready(cluster, issuer).await;

    // 600 s, then 1200 s after a patch.
    let first = scenario::a_patched_lifetime_reaches_the_next_token(
        cluster,
        &issuer.base,
        &worker,
        CONVERGE,
    )
    .await;
    let claims = fixtures::claims(first["access_token"].as_str().expect("a token"));
    assert_eq!(claims["iss"], issuer_url.as_str(), "the chart's issuer URL");

    // A generated secret (create, and the labelled watch, in the client-secret namespace).
    let generated = cluster
        .run_kubectl(&[
            "get",
            "secret",
            "job-oauth",
            "-n",
            &apps,
            "-o",
            "jsonpath={.data.clientSecret}",
        ])
        .expect("the generated Secret");
    let generated = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, generated.trim())
            .expect("base64"),
    )
    .expect("utf-8");
    let answer =
        client_credentials(&issuer.base, &format!("{apps}-job"), &generated, audience).await;
    assert_eq!(lifetime(&answer), 1200, "{answer}");

    // A Confidential client outside the client-secret namespaces: told why, not loaded.
    let (status, reason, _) = eventually(CONVERGE, "the outsider gets a status", || async {
        client_ready(cluster, &other, "outsider").await
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotAccessible")
    );

    // Offline access, then not.
    scenario::refresh_fails_once_offline_access_is_revoked(
        cluster,
        &apps,
        &issuer.base,
        &web_id,
        fixtures::VERIFIER,
        CONVERGE,
    )
    .await;

    // Two policies with one audience: the newer one (in another namespace) is refused.
    scenario::a_newer_policy_for_the_audience_gets_audience_conflict(
        cluster, &other, "copy", audience,
    )
    .await;
    let still = worker.token(&issuer.base).await;
    assert_eq!(lifetime(&still), 1200, "{still}");

    // Uninstall: what the controller wrote at run time stays (docs/helm.md), nothing else.
    cluster.stop_component("chart-issuer");
    cluster.stop_component("chart-controller");
    cluster
        .run_helm(&["uninstall", release, "--namespace", &system])
        .expect("helm uninstall");
    assert_eq!(
        namespaced_objects(&system),
        vec![
            "ConfigMap/tokenwarden-issuer-config".to_owned(),
            "ConfigMap/tokenwarden-issuer-config-1".to_owned(),
            "Lease/tokenwarden-controller".to_owned(),
            "Secret/tokenwarden-database".to_owned(),
            "Secret/tokenwarden-signing-keys".to_owned(),
        ]
    );
    assert_eq!(cluster_objects_of(release), "");
}

#[tokio::test]
async fn with_client_secret_namespaces_star_the_controller_may_use_secrets_in_every_namespace_and_still_not_escalate()
 {
    let _turn = ONE_CONTROLLER.lock().await;
    let cluster = support::cluster();
    let release = "all";
    let values = "controller: {clientSecretNamespaces: [\"*\"]}\n";
    let system = install_release("tw-all-system", release, values).await;
    let anywhere = cluster.new_namespace("anywhere").await;
    let kubeconfig = cluster
        .service_account_kubeconfig(&system, "all-tokenwarden-controller")
        .await;
    // The documented price of "*".
    assert!(can_i(
        cluster,
        &kubeconfig,
        &["list", "secrets", "--all-namespaces"]
    ));
    for args in [
        &["escalate", "clusterroles"][..],
        &["bind", "clusterroles"],
        &["impersonate", "users"],
        &["create", "clusterrolebindings"],
        &["delete", "secrets", "-n", &anywhere],
        &["update", "secrets", "-n", &anywhere],
    ] {
        assert!(!can_i(cluster, &kubeconfig, args), "allowed: {args:?}");
    }
    let objects = render(cluster, release, &system, values).expect("helm template");
    let extra = chart_args(&objects, "controller");
    assert!(
        extra.contains(&"--secret-namespaces=*".to_owned()),
        "{extra:?}"
    );
    let controller = spawn_controller_as(cluster, "star-controller", &system, &kubeconfig, &extra);
    ready(cluster, controller).await;

    let audience = format!("https://{anywhere}.example.com");
    apply(
        cluster,
        &documents(&[
            policy_yaml(&anywhere, &audience, None),
            machine_client_yaml(&anywhere, "job", None, &audience),
        ]),
    )
    .expect("apply");
    eventually(
        CONVERGE,
        "the client is Ready with a generated Secret",
        || async {
            client_ready(cluster, &anywhere, "job")
                .await
                .filter(|(status, _, _)| status == "True")
        },
    )
    .await;
    cluster
        .run_kubectl(&["get", "secret", "job-oauth", "-n", &anywhere])
        .expect("the generated Secret");

    cluster.stop_component("star-controller");
    cluster
        .run_helm(&["uninstall", release, "--namespace", &system])
        .expect("helm uninstall");
    assert_eq!(cluster_objects_of(release), "");
}

#[tokio::test]
async fn with_the_default_values_the_controller_touches_no_secret_and_confidential_clients_say_why()
{
    let _turn = ONE_CONTROLLER.lock().await;
    let cluster = support::cluster();
    let release = "plain";
    let system = install_release("tw-plain-system", release, "").await;
    let apps = cluster.new_namespace("plain-apps").await;
    let kubeconfig = cluster
        .service_account_kubeconfig(&system, "plain-tokenwarden-controller")
        .await;
    assert!(!can_i(
        cluster,
        &kubeconfig,
        &["list", "secrets", "-n", &apps]
    ));
    let objects = render(cluster, release, &system, "").expect("helm template");
    let extra = chart_args(&objects, "controller");
    let controller = spawn_controller_as(cluster, "plain-controller", &system, &kubeconfig, &extra);
    // Ready means it reconciled: it waits for no Secret watch it may not have.
    ready(cluster, controller).await;

    let audience = format!("https://{apps}.example.com");
    let spa = format!(
        r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: spa, namespace: {apps}}}
spec:
  type: Public
  grantTypes: [authorization_code]
  redirectUris: ["https://spa.example.com/callback"]
  audiences: [{{audience: "{audience}"}}]
"#
    );
    apply(
        cluster,
        &documents(&[
            policy_yaml(&apps, &audience, None),
            machine_client_yaml(&apps, "job", None, &audience),
            spa,
        ]),
    )
    .expect("apply");
    eventually(CONVERGE, "the public client is Ready", || async {
        client_ready(cluster, &apps, "spa")
            .await
            .filter(|(status, _, _)| status == "True")
    })
    .await;
    let (status, reason, _) = eventually(CONVERGE, "the confidential client's verdict", || async {
        client_ready(cluster, &apps, "job").await
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotAccessible")
    );
    let found = cluster.run_kubectl(&["get", "secret", "job-oauth", "-n", &apps]);
    assert!(
        found.as_ref().is_err_and(|e| e.contains("NotFound")),
        "no Secret was created: {found:?}"
    );

    cluster.stop_component("plain-controller");
    cluster
        .run_helm(&["uninstall", release, "--namespace", &system])
        .expect("helm uninstall");
    assert_eq!(cluster_objects_of(release), "");
}

/// A namespace in `clientSecretNamespaces` whose Secrets the controller may not list (its Role
/// deleted, as when someone removes the namespace) does not keep the controller from
/// reconciling the others: the first reconcile waits for that watch only so long, and a client
/// there is `SecretNotAccessible` instead of failing every pass.
#[tokio::test]
async fn a_secret_namespace_the_controller_cannot_list_does_not_stop_the_others() {
    let _turn = ONE_CONTROLLER.lock().await;
    let cluster = support::cluster();
    let release = "blind";
    let apps = cluster.new_namespace("blind-apps").await;
    let lost = cluster.new_namespace("blind-lost").await;
    let values = format!("controller: {{clientSecretNamespaces: [\"{apps}\", \"{lost}\"]}}\n");
    let system = install_release("tw-blind-system", release, &values).await;
    let kubeconfig = cluster
        .service_account_kubeconfig(&system, "blind-tokenwarden-controller")
        .await;
    assert!(can_i(
        cluster,
        &kubeconfig,
        &["list", "secrets", "-n", &lost]
    ));
    cluster
        .run_kubectl(&["delete", "roles,rolebindings", "--all", "-n", &lost])
        .expect("delete the chart's Role in one namespace");
    assert!(!can_i(
        cluster,
        &kubeconfig,
        &["list", "secrets", "-n", &lost]
    ));

    let objects = render(cluster, release, &system, &values).expect("helm template");
    let extra = chart_args(&objects, "controller");
    let controller = spawn_controller_as(cluster, "blind-controller", &system, &kubeconfig, &extra);
    // Ready means it reconciled.
    ready(cluster, controller).await;
    let audience = format!("https://{apps}.example.com");
    // A client in the namespace it may not read too: that client's problem, not the pass's.
    apply(
        cluster,
        &documents(&[
            policy_yaml(&apps, &audience, None),
            machine_client_yaml(&apps, "job", None, &audience),
            policy_yaml(&lost, &format!("https://{lost}.example.com"), None),
            machine_client_yaml(
                &lost,
                "stranded",
                None,
                &format!("https://{lost}.example.com"),
            ),
        ]),
    )
    .expect("apply");
    eventually(
        CONVERGE,
        "the client is Ready with a generated Secret",
        || async {
            client_ready(cluster, &apps, "job")
                .await
                .filter(|(status, _, _)| status == "True")
        },
    )
    .await;
    cluster
        .run_kubectl(&["get", "secret", "job-oauth", "-n", &apps])
        .expect("the generated Secret");
    let (status, reason, _) = eventually(CONVERGE, "the stranded client's verdict", || async {
        client_ready(cluster, &lost, "stranded").await
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretNotAccessible")
    );

    cluster.stop_component("blind-controller");
    cluster
        .run_helm(&["uninstall", release, "--namespace", &system])
        .expect("helm uninstall");
    assert_eq!(cluster_objects_of(release), "");
}

/// A controller of this version under the RBAC of the chart before workload identity (no
/// ServiceAccounts, no FederatedIssuers: a binary rolled out before the chart's RBAC, or custom
/// RBAC) still reconciles everything else; a client naming a ServiceAccount says it is not found.
#[tokio::test]
async fn a_controller_that_may_not_read_service_accounts_or_federated_issuers_still_reconciles() {
    let _turn = ONE_CONTROLLER.lock().await;
    let cluster = support::cluster();
    let release = "oldrbac";
    let system = install_release("tw-oldrbac-system", release, "").await;
    let apps = cluster.new_namespace("oldrbac-apps").await;
    cluster
        .run_kubectl(&[
            "patch",
            "clusterrole",
            "oldrbac-tokenwarden-controller",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/rules/0/resources","value":["apitokenpolicies","apiclients","audienceguardrails"]},{"op":"remove","path":"/rules/1"}]"#,
        ])
        .expect("the previous chart's ClusterRole");
    let kubeconfig = cluster
        .service_account_kubeconfig(&system, "oldrbac-tokenwarden-controller")
        .await;
    assert!(!can_i(
        cluster,
        &kubeconfig,
        &["list", "serviceaccounts", "--all-namespaces"]
    ));
    let objects = render(cluster, release, &system, "").expect("helm template");
    let extra = chart_args(&objects, "controller");
    let controller =
        spawn_controller_as(cluster, "oldrbac-controller", &system, &kubeconfig, &extra);
    ready(cluster, controller).await;

    let audience = format!("https://{apps}.example.com");
    cluster
        .service_account_token(&apps, "worker", &[], 600)
        .await;
    let worker = format!(
        r#"apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: worker, namespace: {apps}}}
spec:
  grantTypes: [client_credentials]
  audiences: [{{audience: "{audience}"}}]
  workloadIdentity: {{serviceAccounts: [worker]}}
"#
    );
    apply(
        cluster,
        &documents(&[policy_yaml(&apps, &audience, None), worker]),
    )
    .expect("apply");
    eventually(CONVERGE, "the policy is enforced", || async {
        operator::policy_ready(cluster, &apps, "api")
            .await
            .filter(|(status, _, _)| status == "True")
    })
    .await;
    let (status, reason, _) = eventually(CONVERGE, "the client's verdict", || async {
        client_ready(cluster, &apps, "worker").await
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ServiceAccountNotFound")
    );
    cluster.stop_component("oldrbac-controller");
    cluster
        .run_helm(&["uninstall", release, "--namespace", &system])
        .expect("helm uninstall");
}
