//! Every bound and rule of the CRDs, both sides, checked offline: the cases in `tests/cases`
//! (also applied to the real API server by `tests/apiserver/cluster_admission.rs`), plus
//! defaults and the transition rules that need an old object.

use crate::cases;

use serde_json::json;
use tokenwarden::api::{self, Kind};

#[test]
fn every_valid_case_is_admitted() {
    for case in cases::valid() {
        let problems = tokenwarden::manifests::load(std::slice::from_ref(&case.path)).problems;
        assert!(problems.is_empty(), "{}: {problems:#?}", case.name);
    }
}

#[test]
fn every_invalid_case_is_rejected_naming_its_field() {
    for case in cases::invalid() {
        let problems = tokenwarden::manifests::load(std::slice::from_ref(&case.path)).problems;
        assert!(!problems.is_empty(), "{} was admitted", case.name);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            text.iter().any(|t| t.contains(&case.field)),
            "{}: no problem names {}: {text:#?}",
            case.name,
            case.field
        );
    }
}

fn policy(spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "tokenwarden.dev/v1alpha1",
        "kind": "ApiTokenPolicy",
        "metadata": {"name": "banking", "namespace": "payments"},
        "spec": spec,
    })
}

#[test]
fn omitted_token_expiration_is_filled_in_as_86400() {
    let admitted = api::admit(
        Kind::ApiTokenPolicy,
        &policy(json!({"audience": "https://a"})),
    )
    .expect("admitted");
    assert_eq!(admitted["spec"]["tokenExpirationSeconds"], json!(86400));
    assert_eq!(admitted["spec"]["offlineAccess"], json!(false));
    assert_eq!(admitted["spec"]["signingAlgorithm"], json!("RS256"));
    assert_eq!(
        admitted["spec"]["refreshTokens"],
        json!({"rotation": "Rotating", "absoluteLifetimeSeconds": 2592000,
               "idleLifetimeSeconds": 1296000, "reuseIntervalSeconds": 0})
    );
}

#[test]
fn token_expiration_bounds_are_inclusive_and_messages_name_the_field() {
    for ok in [1, 600, 86400, 2_592_000] {
        let object = policy(json!({"audience": "https://a", "tokenExpirationSeconds": ok}));
        assert!(
            api::admit(Kind::ApiTokenPolicy, &object).is_ok(),
            "{ok} rejected"
        );
    }
    for (bad, says) in [
        (json!(0), "should be greater than or equal to 1"),
        (json!(-1), "should be greater than or equal to 1"),
        (json!(2_592_001), "should be less than or equal to 2592000"),
        (json!("86400"), "must be of type integer"),
    ] {
        let object = policy(json!({"audience": "https://a", "tokenExpirationSeconds": bad}));
        let errors = api::admit(Kind::ApiTokenPolicy, &object).expect_err("rejected");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].path, "spec.tokenExpirationSeconds");
        assert!(errors[0].message.contains(says), "{}", errors[0]);
    }
}

#[test]
fn audience_cannot_change_but_other_fields_can() {
    let old = api::admit(
        Kind::ApiTokenPolicy,
        &policy(json!({"audience": "https://a"})),
    )
    .expect("admitted");
    let longer = policy(json!({"audience": "https://a", "tokenExpirationSeconds": 1200}));
    assert!(api::admit_update(Kind::ApiTokenPolicy, &longer, &old).is_ok());

    let moved = policy(json!({"audience": "https://b"}));
    let errors = api::admit_update(Kind::ApiTokenPolicy, &moved, &old).expect_err("immutable");
    assert_eq!(errors[0].path, "spec.audience");
    assert!(errors[0].message.contains("immutable"), "{}", errors[0]);
}

#[test]
fn status_is_dropped_on_create_as_by_the_status_subresource() {
    let mut object = policy(json!({"audience": "https://a"}));
    object["status"] = json!({"observedGeneration": "not even an integer"});
    let admitted = api::admit(Kind::ApiTokenPolicy, &object).expect("admitted");
    assert!(admitted.get("status").is_none());
}

#[test]
fn metadata_needs_a_valid_name() {
    let mut object = policy(json!({"audience": "https://a"}));
    object["metadata"]["name"] = json!("Not_A_Name");
    let errors = api::admit(Kind::ApiTokenPolicy, &object).expect_err("rejected");
    assert_eq!(errors[0].path, "metadata.name");

    object["metadata"] = json!({"namespace": "payments"});
    let errors = api::admit(Kind::ApiTokenPolicy, &object).expect_err("rejected");
    assert_eq!(errors[0].path, "metadata.name");
}

#[test]
fn a_secret_key_defaults_to_client_secret() {
    let client = json!({
        "apiVersion": "tokenwarden.dev/v1alpha1", "kind": "ApiClient",
        "metadata": {"name": "worker", "namespace": "payments"},
        "spec": {"secretRef": {"name": "worker-oauth"}, "grantTypes": ["client_credentials"]},
    });
    let admitted = api::admit(Kind::ApiClient, &client).expect("admitted");
    assert_eq!(admitted["spec"]["secretRef"]["key"], json!("clientSecret"));
    assert_eq!(admitted["spec"]["type"], json!("Confidential"));
}
