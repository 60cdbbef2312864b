//! AudienceGuardrail on a real API server, in the three places its rules are enforced:
//! - at admission, by the chart's ValidatingAdmissionPolicy: it refuses what `tokenwarden
//!   validate` refuses offline, with the same message;
//! - for a team whose RBAC reaches only its own namespace: it cannot claim an audience reserved
//!   for another namespace (also after the owner's policy is deleted), nor go beyond the bounds
//!   of its own guardrail, on create or on update;
//! - by the controller, for a policy admitted before its guardrail existed: not enforced
//!   (`Ready=False`, `Stalled`), no token for that audience, and the owner's newer policy wins.
//!
//! And FederatedIssuer, the platform team's other admission rule: an ApiClient may name only a
//! FederatedIssuer that allows its namespace, with `validate`'s message.

mod fixtures;
mod operator;
mod support;

use fixtures::client_credentials;
use operator::scenario::CONVERGE;
use operator::{apply, eventually, policy_conditions, policy_ready};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use support::ControlPlane;

/// Installs the chart's ValidatingAdmissionPolicy and its binding once per test binary, as
/// `helm template` renders them with the default values.
fn install_admission_policy(cluster: &ControlPlane) {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        cluster.install_crds();
        let objects = operator::chart::render(cluster, "tw", "tokenwarden-system", "{}")
            .unwrap_or_else(|e| panic!("helm template: {e}"));
        let admission: Vec<String> = objects
            .iter()
            .filter(|o| {
                o["kind"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("ValidatingAdmissionPolicy"))
            })
            .map(|o| serde_json::to_string(o).expect("json"))
            .collect();
        assert_eq!(
            admission.len(),
            4,
            "the chart renders two ValidatingAdmissionPolicies (AudienceGuardrail, FederatedIssuer) and their bindings by default"
        );
        apply(cluster, &admission.join("\n---\n"))
            .unwrap_or_else(|e| panic!("applying the admission policy: {e}"));
    });
}

/// An AudienceGuardrail named `name` for `namespaces` and `audiences`, with `bounds` (YAML
/// fields of its spec, indented by two spaces).
fn guardrail_yaml(name: &str, namespaces: &str, audiences: &str, bounds: &str) -> String {
    format!(
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: AudienceGuardrail\nmetadata: {{name: {name}}}\n\
         spec:\n  namespaces: [{namespaces}]\n  audiences: [\"{audiences}\"]\n{bounds}"
    )
}

/// The ApiTokenPolicy `name` in `ns` with `spec` (a flow mapping's fields).
fn policy_yaml(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
         metadata: {{name: {name}, namespace: {ns}}}\nspec: {{{spec}}}\n"
    )
}

/// `kubectl create` of `yaml` as the user of `context`, with `dry_run` as the API server does
/// it (every admission step, nothing stored): kubectl's output or its error.
fn create_as(
    cluster: &ControlPlane,
    context: &str,
    yaml: &str,
    dry_run: bool,
) -> Result<String, String> {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), yaml).expect("write yaml");
    let path = file.path().to_string_lossy().into_owned();
    let mut args = vec!["--context", context, "create", "-f", path.as_str()];
    if dry_run {
        args.push("--dry-run=server");
    }
    let output = cluster.kubectl().args(&args).output().expect("kubectl");
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Waits until the API server's admission refuses `yaml` (a guardrail just created takes a
/// moment to reach the policy's informer), and returns its message.
async fn refused_within(cluster: &ControlPlane, yaml: &str) -> String {
    eventually(
        CONVERGE,
        "the admission policy refuses the probe",
        || async { create_as(cluster, "admin", yaml, true).err() },
    )
    .await
}

/// What `tokenwarden validate` says of `files`: (reason, message) of each problem.
fn offline(files: &[PathBuf]) -> Vec<(String, String)> {
    let (_, problems) = tokenwarden::validate::check(files);
    problems
        .iter()
        .map(|p| {
            let (reason, message) = p.error.message.split_once(": ").unwrap_or(("", ""));
            (reason.to_owned(), message.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_admission_policy_refuses_what_validate_refuses_with_the_same_message() {
    let cluster = support::cluster();
    install_admission_policy(cluster);
    let team = cluster.new_namespace("parity-team").await;
    let other = cluster.new_namespace("parity-other").await;
    let domain = format!("{team}.example.com");
    let guardrail = guardrail_yaml(
        &team,
        &team,
        &format!("https://*.{domain}"),
        "  maxTokenExpirationSeconds: 3600\n  offlineAccess: Forbidden\n  signingAlgorithms: [ES256, EdDSA]\n",
    );
    apply(cluster, &guardrail).expect("apply the guardrail");
    let own = format!("https://api.{domain}");
    let cases: [(&str, &str, String, Option<&str>); 6] = [
        (
            "within-bounds",
            &team,
            format!("audience: \"{own}\", tokenExpirationSeconds: 3600, signingAlgorithm: EdDSA"),
            None,
        ),
        (
            "reserved",
            &other,
            format!("audience: \"{own}\", signingAlgorithm: ES256"),
            Some("AudienceReserved"),
        ),
        (
            "elsewhere",
            &team,
            "audience: \"https://elsewhere.example.com\", signingAlgorithm: ES256".into(),
            Some("AudienceNotAllowed"),
        ),
        (
            "too-long",
            &team,
            format!("audience: \"{own}\", tokenExpirationSeconds: 3601, signingAlgorithm: ES256"),
            Some("TokenLifetimeAboveMaximum"),
        ),
        (
            "offline",
            &team,
            format!(
                "audience: \"{own}\", tokenExpirationSeconds: 60, offlineAccess: true, signingAlgorithm: ES256"
            ),
            Some("OfflineAccessForbidden"),
        ),
        (
            "default-rs256",
            &team,
            format!("audience: \"{own}\", tokenExpirationSeconds: 60"),
            Some("SigningAlgorithmNotAllowed"),
        ),
    ];
    // The guardrail is in force at admission once the reserved case is refused.
    refused_within(cluster, &policy_yaml(&other, "probe", &cases[1].2)).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let guardrail_file = dir.path().join("guardrail.yaml");
    std::fs::write(&guardrail_file, &guardrail).expect("write");
    let mut disagreements = Vec::new();
    for (name, ns, spec, expected) in &cases {
        let yaml = policy_yaml(ns, name, spec);
        let policy_file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&policy_file, &yaml).expect("write");
        let offline = offline(&[guardrail_file.clone(), policy_file]);
        let server = create_as(cluster, "admin", &yaml, true);
        match (expected, offline.as_slice(), &server) {
            (None, [], Ok(_)) => {}
            (Some(reason), [(offline_reason, message)], Err(refusal))
                if offline_reason == reason && refusal.contains(message.as_str()) => {}
            _ => disagreements.push(format!(
                "{name}: expected {expected:?}; validate said {offline:?}; the API server said {server:?}"
            )),
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// A Role in `ns` that lets the user `user` manage ApiTokenPolicies there, and nothing else.
fn team_rights(cluster: &ControlPlane, ns: &str, user: &str) {
    let yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n\
         metadata: {{name: policy-editor, namespace: {ns}}}\n\
         rules: [{{apiGroups: [tokenwarden.dev], resources: [apitokenpolicies], verbs: [get, list, watch, create, update, patch, delete]}}]\n\
         ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {{name: {user}-edits-policies, namespace: {ns}}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: policy-editor}}\n\
         subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {user}}}]\n"
    );
    apply(cluster, &yaml).expect("the team's Role and RoleBinding");
}

#[tokio::test]
async fn a_team_with_rights_in_its_own_namespace_cannot_claim_a_reserved_audience_or_leave_its_bounds()
 {
    let cluster = support::cluster();
    install_admission_policy(cluster);
    let owner = cluster.new_namespace("owner").await;
    // Two namespaces of bob's: one that no guardrail names, one whose guardrail bounds it (a
    // claim from the second would break both guardrails, and the API server names either).
    let intruder = cluster.new_namespace("intruder").await;
    let team = cluster.new_namespace("team").await;
    team_rights(cluster, &intruder, support::BOB);
    team_rights(cluster, &team, support::BOB);
    let owned = format!("https://api.{owner}.example.com");
    apply(
        cluster,
        &(guardrail_yaml(
            &owner,
            &owner,
            &format!("https://*.{owner}.example.com"),
            "",
        ) + "---\n"
            + &guardrail_yaml(
                &team,
                &team,
                &format!("https://*.{team}.example.com"),
                "  maxTokenExpirationSeconds: 600\n  offlineAccess: Forbidden\n",
            )),
    )
    .expect("the platform team's guardrails");
    apply(
        cluster,
        &policy_yaml(&owner, "api", &format!("audience: \"{owned}\"")),
    )
    .expect("the owner's policy");

    // Claiming the owner's audience in bob's namespace.
    let claim = policy_yaml(&intruder, "claim", &format!("audience: \"{owned}\""));
    let refusal = refused_within(cluster, &claim).await;
    assert!(
        refusal.contains("is reserved by AudienceGuardrail"),
        "{refusal}"
    );
    let refusal = create_as(cluster, support::BOB, &claim, false).expect_err("reserved");
    assert!(
        refusal.contains(&format!("audience {owned} is reserved")),
        "{refusal}"
    );
    // Nor in the owner's namespace, where the team has no rights at all.
    let refusal = create_as(
        cluster,
        support::BOB,
        &policy_yaml(&owner, "claim", &format!("audience: \"{owned}\"")),
        false,
    )
    .expect_err("no rights there");
    assert!(refusal.contains("forbidden"), "{refusal}");
    // The owner's policy deleted (a GitOps replace, a restore): still the owner's.
    cluster
        .run_kubectl(&["delete", "apitokenpolicy", "-n", &owner, "api", "--wait"])
        .expect("delete the owner's policy");
    let refusal = create_as(cluster, support::BOB, &claim, false).expect_err("still reserved");
    assert!(
        refusal.contains("is reserved by AudienceGuardrail"),
        "{refusal}"
    );

    // The team's own audience, beyond its bounds, then within them, then an update beyond.
    let own = format!("https://api.{team}.example.com");
    let refusal = create_as(
        cluster,
        support::BOB,
        &policy_yaml(
            &team,
            "api",
            &format!("audience: \"{own}\", tokenExpirationSeconds: 601"),
        ),
        false,
    )
    .expect_err("above the maximum");
    assert!(refusal.contains("is above the maximum 600"), "{refusal}");
    let refusal = create_as(
        cluster,
        support::BOB,
        &policy_yaml(
            &team,
            "api",
            &format!("audience: \"{own}\", tokenExpirationSeconds: 600, offlineAccess: true"),
        ),
        false,
    )
    .expect_err("offline access forbidden");
    assert!(refusal.contains("forbids offlineAccess"), "{refusal}");
    create_as(
        cluster,
        support::BOB,
        &policy_yaml(
            &team,
            "api",
            &format!("audience: \"{own}\", tokenExpirationSeconds: 600"),
        ),
        false,
    )
    .expect("within its bounds");
    let patched = cluster
        .kubectl()
        .args([
            "--context",
            support::BOB,
            "patch",
            "apitokenpolicy",
            "-n",
            &team,
            "api",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"offlineAccess":true}}"#,
        ])
        .output()
        .expect("kubectl patch");
    assert!(
        !patched.status.success(),
        "an update is held to the bounds too"
    );
    assert!(
        String::from_utf8_lossy(&patched.stderr).contains("forbids offlineAccess"),
        "{patched:?}"
    );
}

#[tokio::test]
async fn a_policy_admitted_before_its_guardrail_is_not_enforced_and_the_owners_newer_policy_wins() {
    let system = operator::shared_controller().await;
    let cluster = support::cluster();
    let early = cluster.new_namespace("early").await;
    let owner = cluster.new_namespace("owner").await;
    let audience = format!("https://api.{owner}.example.com");
    let secret = "guardrail-secret-0123456789abcdefghijklmnop";
    let client_id = format!("{early}-worker");
    apply(
        cluster,
        &operator::policy_and_client(&early, &audience, 600, &client_id, secret),
    )
    .expect("the early claim, before any guardrail");
    operator::scenario::wait_client_ready(cluster, &early, "worker").await;
    let data = tempfile::tempdir().expect("data dir");
    let issuer =
        operator::start_issuer(cluster, &format!("issuer-{early}"), system, data.path()).await;
    let answer = client_credentials(&issuer.base, &client_id, secret, &audience).await;
    assert!(answer["access_token"].is_string(), "{answer}");

    apply(
        cluster,
        &guardrail_yaml(
            &owner,
            &owner,
            &format!("https://*.{owner}.example.com"),
            "",
        ),
    )
    .expect("the platform team declares the owner");
    let conditions = eventually(CONVERGE, "the early policy is refused", || async {
        let conditions = policy_conditions(cluster, &early, "api").await?;
        let ready = conditions.iter().find(|c| c.0 == "Ready")?;
        (ready.1 == "False" && ready.2 == "AudienceReserved").then_some(conditions)
    })
    .await;
    assert!(
        conditions.iter().any(|c| c.0 == "Stalled" && c.1 == "True"),
        "only a person can fix it: {conditions:?}"
    );
    eventually(
        Duration::from_secs(5),
        "no more tokens for the audience",
        || async {
            let answer = client_credentials(&issuer.base, &client_id, secret, &audience).await;
            (answer["error"] == "invalid_target").then_some(())
        },
    )
    .await;

    // The owner's policy is newer than the early claim, and wins.
    apply(
        cluster,
        &policy_yaml(
            &owner,
            "api",
            &format!("audience: \"{audience}\", tokenExpirationSeconds: 300"),
        ),
    )
    .expect("the owner's policy");
    eventually(CONVERGE, "the owner's policy is enforced", || async {
        policy_ready(cluster, &owner, "api")
            .await
            .filter(|(status, reason, current)| {
                status == "True" && reason == "Enforced" && *current
            })
    })
    .await;
    let early_policy: Value = serde_json::from_str(
        &cluster
            .run_kubectl(&["get", "apitokenpolicy", "-n", &early, "api", "-o", "json"])
            .expect("get"),
    )
    .expect("json");
    let message = early_policy["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains(&format!("is reserved by AudienceGuardrail {owner}")),
        "the condition names the rule and the guardrail: {message}"
    );
}

#[tokio::test]
async fn an_api_client_may_name_only_a_federated_issuer_that_allows_its_namespace() {
    let cluster = support::cluster();
    install_admission_policy(cluster);
    let allowed = cluster.new_namespace("fedi-allowed").await;
    let other = cluster.new_namespace("fedi-other").await;
    let issuer = format!(
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: FederatedIssuer\nmetadata: {{name: {allowed}-ci}}\n\
         spec: {{issuerUrl: https://ci.example.com, namespaces: [{allowed}]}}\n"
    );
    apply(cluster, &issuer).expect("apply the FederatedIssuer");
    let client = |ns: &str, issuer_name: &str| {
        format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\nmetadata: {{name: deployer, namespace: {ns}}}\n\
             spec:\n  grantTypes: [client_credentials]\n  workloadIdentity:\n    federated: [{{issuer: {issuer_name}, subject: ci-main}}]\n"
        )
    };
    let refused = client(&other, &format!("{allowed}-ci"));
    let refusal = refused_within(cluster, &refused).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let issuer_file = dir.path().join("issuer.yaml");
    let client_file = dir.path().join("client.yaml");
    std::fs::write(&issuer_file, &issuer).expect("write");
    std::fs::write(&client_file, &refused).expect("write");
    let offline = offline(&[issuer_file, client_file]);
    let [(reason, message)] = offline.as_slice() else {
        panic!("validate: {offline:?}");
    };
    assert_eq!(reason, "FederatedIssuerNotAllowed");
    assert!(
        refusal.contains(message.as_str()),
        "the API server and validate disagree:\n{refusal}\n{message}"
    );
    create_as(
        cluster,
        "admin",
        &client(&allowed, &format!("{allowed}-ci")),
        true,
    )
    .expect("its own namespace may name it");
    create_as(cluster, "admin", &client(&other, "not-there-yet"), true)
        .expect("an issuer that does not exist yet is the controller's to report");
}
