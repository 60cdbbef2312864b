//! `tokenwarden validate` as a pipeline runs it: exit codes, and one line per problem that
//! names the file, the document, the object and the field.

use std::path::{Path, PathBuf};
use std::process::Command;

fn validate(paths: &[&Path]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
        .arg("validate")
        .args(paths)
        .output()
        .expect("run tokenwarden validate");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().expect("exit code"), text)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

#[test]
fn the_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let (code, text) = validate(&[&examples]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok: 2 ApiTokenPolicy and 2 ApiClient objects are valid"),
        "{text}"
    );
}

#[test]
fn a_bad_document_is_reported_by_file_document_object_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "policies.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: skipped}\n---\n\
         apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
         metadata: {name: banking, namespace: payments}\n\
         spec: {audience: https://banking.example.com, tokenExpirationSeconds: 2592001}\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    let expected = format!(
        "{}: document 2 (ApiTokenPolicy payments/banking): spec.tokenExpirationSeconds: Invalid value: 2592001: spec.tokenExpirationSeconds in body should be less than or equal to 2592000",
        file.display()
    );
    assert!(text.lines().any(|l| l == expected), "{text}");
}

/// A client of an API whose policy is refused is told so, not that no policy declares it.
#[test]
fn a_client_of_an_invalid_policy_is_told_its_policy_is_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "api.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
         metadata: {name: banking, namespace: payments}\n\
         spec: {audience: https://banking.example.com, tokenExpirationSeconds: 0}\n---\n\
         apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\n\
         metadata: {name: worker, namespace: payments}\n\
         spec: {grantTypes: [client_credentials], audiences: [{audience: https://banking.example.com}]}\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("(ApiClient payments/worker): spec.audiences: UnknownAudience:")
            && text.contains(
                "(\"https://banking.example.com\" is declared by an ApiTokenPolicy that is itself invalid"
            ),
        "{text}"
    );
}

#[test]
fn other_kinds_are_skipped_quietly() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "deploy.yml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n",
    );
    write(dir.path(), "notes.txt", "not yaml at all: [");
    let (code, text) = validate(&[dir.path()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok: 0 ApiTokenPolicy and 0 ApiClient"),
        "{text}"
    );
}

#[test]
fn invalid_yaml_is_an_error_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "broken.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: [\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("document 1: invalid YAML"), "{text}");
    assert!(text.contains("line"), "{text}");
}

/// As kubectl, which refuses such a file before it reaches the API server.
#[test]
fn a_key_given_twice_is_an_error_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "twice.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {name: twice}\n\
         spec:\n  audience: https://twice.example.com\n  tokenExpirationSeconds: 600\n  \
         tokenExpirationSeconds: 700\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "document 1: invalid YAML: spec: mapping key \"tokenExpirationSeconds\" already defined"
        ),
        "{text}"
    );
    assert!(text.contains("at line 5"), "the mapping's position: {text}");
    assert!(!text.contains("700"), "no value repeated: {text}");
}

#[test]
fn a_missing_path_is_an_error() {
    let (code, text) = validate(&[Path::new("/nonexistent/policies")]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("/nonexistent/policies: cannot read"),
        "{text}"
    );
}

/// An empty folder is valid, as kubeconform has it, but the run says it found no file: a
/// pipeline pointed at the wrong folder should not pass in silence.
#[test]
fn an_empty_folder_is_valid_and_said_to_be_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "notes.txt", "not a manifest");
    let (code, text) = validate(&[dir.path()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok: 0 ApiTokenPolicy and 0 ApiClient objects are valid"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "warning: no .yaml or .yml file found under {}",
            dir.path().display()
        )),
        "{text}"
    );
}

#[test]
fn two_policies_with_one_audience_are_reported_on_the_newer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = |name: &str| {
        format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
             metadata: {{name: {name}, namespace: payments}}\n\
             spec: {{audience: https://banking.example.com}}\n"
        )
    };
    let file = write(
        dir.path(),
        "p.yaml",
        &(policy("first") + "---\n" + &policy("second")),
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "document 2 (ApiTokenPolicy payments/second): spec.audience: AudienceConflict"
        ),
        "{text}"
    );
    assert!(!text.contains("payments/first)"), "{text}");
}

#[test]
fn a_client_granted_an_undeclared_audience_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "c.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\n\
         metadata: {name: worker, namespace: payments}\n\
         spec: {grantTypes: [client_credentials], audiences: [{audience: https://nowhere.example.com}]}\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("spec.audiences: UnknownAudience"), "{text}");
    assert!(text.contains("https://nowhere.example.com"), "{text}");
}

#[test]
fn a_public_client_refreshing_at_an_api_whose_refresh_tokens_never_rotate_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "p.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
         metadata: {name: todo, namespace: apps}\n\
         spec: {audience: https://todo.example.com, offlineAccess: true, refreshTokens: {rotation: NonRotating}}\n\
         ---\n\
         apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\n\
         metadata: {name: spa, namespace: apps}\n\
         spec: {type: Public, grantTypes: [authorization_code, refresh_token], redirectUris: [https://app.example.com/cb], audiences: [{audience: https://todo.example.com}]}\n",
    );
    let (code, text) = validate(&[&file]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("(ApiClient apps/spa): spec.audiences: RotationRequired"),
        "{text}"
    );
    assert!(text.contains("ApiTokenPolicy apps/todo"), "{text}");
}

#[test]
fn a_problem_in_one_file_does_not_hide_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "a.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {name: a}\nspec: {audience: x, tokenExpirationSeconds: 0}\n",
    );
    write(
        dir.path(),
        "b.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\nmetadata: {name: b}\nspec: {audience: y, offlineAccess: maybe}\n",
    );
    let (code, text) = validate(&[dir.path()]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("a.yaml: document 1 (ApiTokenPolicy default/a): spec.tokenExpirationSeconds"),
        "{text}"
    );
    assert!(
        text.contains("b.yaml: document 1 (ApiTokenPolicy default/b): spec.offlineAccess"),
        "{text}"
    );
}

#[test]
fn a_policy_that_breaks_an_audience_guardrail_given_alongside_is_reported_with_the_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let guardrail = write(
        dir.path(),
        "platform.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: AudienceGuardrail\n\
         metadata: {name: payments, namespace: ignored-for-a-cluster-scoped-kind}\n\
         spec: {namespaces: [payments], audiences: [\"https://*.payments.example.com\"]}\n",
    );
    let policy = write(
        dir.path(),
        "team.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
         metadata: {name: claim, namespace: marketing}\n\
         spec: {audience: https://bank.payments.example.com}\n",
    );
    let (code, text) = validate(&[&policy]);
    assert_eq!(code, 0, "without the guardrail the policy is valid: {text}");
    let (code, text) = validate(&[&guardrail, &policy]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "team.yaml: document 1 (ApiTokenPolicy marketing/claim): spec.audience: AudienceReserved: audience https://bank.payments.example.com is reserved by AudienceGuardrail payments for the namespaces payments"
        ),
        "{text}"
    );
    let (code, text) = validate(&[&guardrail]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ok: 0 ApiTokenPolicy and 0 ApiClient objects are valid, within 1 AudienceGuardrail objects"),
        "{text}"
    );
}

#[test]
fn a_client_naming_a_federated_issuer_that_does_not_allow_its_namespace_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = write(
        dir.path(),
        "platform.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: FederatedIssuer\n\
         metadata: {name: github}\n\
         spec: {issuerUrl: https://token.actions.githubusercontent.com, namespaces: [ci-*]}\n",
    );
    let client = write(
        dir.path(),
        "team.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\n\
         metadata: {name: deployer, namespace: payments}\n\
         spec:\n  grantTypes: [client_credentials]\n  workloadIdentity:\n    serviceAccounts: [deployer]\n    federated:\n      - {issuer: github, subject: \"repo:octo/app:ref:refs/heads/main\"}\n",
    );
    let (code, text) = validate(&[&issuer, &client]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "team.yaml: document 1 (ApiClient payments/deployer): spec.workloadIdentity.federated: FederatedIssuerNotAllowed: FederatedIssuer github does not allow ApiClients of namespace \"payments\""
        ),
        "{text}"
    );
    let (code, text) = validate(&[&client]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("spec.workloadIdentity.federated: UnknownFederatedIssuer: no FederatedIssuer is named \"github\""),
        "{text}"
    );
    // Allowed: valid; the ServiceAccount exists only in the cluster, so validate does not ask.
    let allowed = write(
        dir.path(),
        "platform.yaml",
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: FederatedIssuer\n\
         metadata: {name: github}\n\
         spec: {issuerUrl: https://token.actions.githubusercontent.com, namespaces: [payments]}\n",
    );
    let (code, text) = validate(&[&allowed, &client]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(
            "ok: 0 ApiTokenPolicy and 1 ApiClient objects are valid, with 1 FederatedIssuer objects"
        ),
        "{text}"
    );
}
