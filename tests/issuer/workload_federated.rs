//! Workload identity with a federated issuer: node-oidc-provider plays a CI system's OIDC
//! issuer (`tests/node/provider.mjs` with WORKLOAD_AUDIENCE), its jobs `ci-main` and
//! `ci-other` get real tokens from it, and a standalone issuer (the same YAML as in the
//! cluster: a FederatedIssuer and an ApiClient naming one of its subjects) exchanges them.

use crate::fixtures::upstream::{
    RunningProvider, ci_job_token, start_ci_issuer, start_ci_issuer_on,
};
use crate::fixtures::{self, ISSUER_URL, Reply, TestIssuer, claims, unix_now};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

pub fn policies(provider: &RunningProvider, namespaces: &str) -> String {
    format!(
        r#"
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {{name: deploy, namespace: ci}}
spec:
  audience: https://deploy.example.com
  tokenExpirationSeconds: 420
  scopes: [{{name: "releases:write"}}]
---
apiVersion: tokenwarden.dev/v1alpha1
kind: FederatedIssuer
metadata: {{name: ci-system}}
spec:
  issuerUrl: {issuer}
  namespaces: {namespaces}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: deployer, namespace: ci}}
spec:
  clientId: deployer
  grantTypes: [client_credentials]
  audiences: [{{audience: https://deploy.example.com, scopes: ["releases:write"]}}]
  workloadIdentity:
    federated:
      - {{issuer: ci-system, subject: ci-main, claims: {{client_id: ci-main}}}}
"#,
        issuer = provider.issuer
    )
}

/// The issuer enforcing `yaml`, its clock at the real time (the CI tokens are real).
fn issuer(yaml: &str) -> TestIssuer {
    let issuer = TestIssuer::new(yaml);
    if let tokenwarden::issuer::Clock::Manual(time) = issuer.clock() {
        time.store(unix_now(), std::sync::atomic::Ordering::SeqCst);
    }
    issuer
}

async fn by_assertion(issuer: &TestIssuer, token: &str) -> Reply {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", token),
    ];
    issuer.post("/oauth/token", &form, None).await
}

async fn by_exchange(issuer: &TestIssuer, token: &str) -> Reply {
    let form = [
        ("grant_type", EXCHANGE),
        ("subject_token_type", JWT),
        ("subject_token", token),
        ("audience", "https://deploy.example.com"),
    ];
    issuer.post("/oauth/token", &form, None).await
}

#[tokio::test]
async fn a_ci_job_with_the_declared_subject_gets_the_clients_token_by_assertion_and_by_exchange() {
    let provider = start_ci_issuer(ISSUER_URL);
    let issuer = issuer(&policies(&provider, "[ci]"));
    let token = ci_job_token(&provider, "ci-main").await;

    for reply in [
        by_assertion(&issuer, &token).await,
        by_exchange(&issuer, &token).await,
    ] {
        let body = reply.ok();
        assert_eq!(body["expires_in"], 420, "the policy's lifetime");
        assert!(body.get("refresh_token").is_none());
        let access = claims(body["access_token"].as_str().expect("token"));
        assert_eq!(
            access["sub"], "deployer@clients",
            "the client's token, as client_credentials"
        );
        assert_eq!(access["client_id"], "deployer");
        assert_eq!(access["aud"], "https://deploy.example.com");
        assert_eq!(access["scope"], "releases:write");
        assert_eq!(
            access["exp"].as_u64().expect("exp") - access["iat"].as_u64().expect("iat"),
            420
        );
    }
    let exchanged = by_exchange(&issuer, &token).await;
    assert_eq!(
        exchanged.json["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let metrics = issuer.issuer.metrics.render();
    assert!(
        metrics.contains(
            r#"tokenwarden_issuer_workload_tokens_total{kind="federated",workload="ci-system",subject="ci-main",audience="https://deploy.example.com"} 3"#
        ),
        "{metrics}"
    );
    assert!(!metrics.contains(&token));
}

#[tokio::test]
async fn a_ci_job_with_another_subject_is_refused_with_the_rfc_error_of_each_way_in() {
    let provider = start_ci_issuer(ISSUER_URL);
    let issuer = issuer(&policies(&provider, "[ci]"));
    let other = ci_job_token(&provider, "ci-other").await;

    let reply = by_assertion(&issuer, &other).await;
    assert_eq!(
        (reply.status.as_u16(), &reply.json["error"]),
        (401, &"invalid_client".into())
    );
    // RFC 8693 §2.2.2: an unacceptable subject token is invalid_request.
    let reply = by_exchange(&issuer, &other).await;
    assert_eq!(
        (reply.status.as_u16(), &reply.json["error"]),
        (400, &"invalid_request".into())
    );
    assert!(!reply.text.contains(&other), "the token is never echoed");
    let metrics = issuer.issuer.metrics.render();
    assert!(
        metrics.contains(
            r#"tokenwarden_issuer_workload_token_refusals_total{reason="unknown_subject"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_federated_issuer_that_does_not_allow_the_namespace_lets_no_job_in() {
    let provider = start_ci_issuer(ISSUER_URL);
    let issuer = issuer(&policies(&provider, "[build-*]"));
    let token = ci_job_token(&provider, "ci-main").await;
    assert_eq!(
        by_assertion(&issuer, &token).await.json["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let provider = start_ci_issuer("https://someone-else.example.com");
    let issuer = issuer(&policies(&provider, "[ci]"));
    let token = ci_job_token(&provider, "ci-main").await;
    assert_eq!(
        by_assertion(&issuer, &token).await.json["error"],
        "invalid_client"
    );
    assert_eq!(
        by_exchange(&issuer, &token).await.json["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn a_token_exchange_needs_a_jwt_subject_and_the_client_credentials_grant() {
    let provider = start_ci_issuer(ISSUER_URL);
    let issuer = issuer(&policies(&provider, "[ci]"));
    let token = ci_job_token(&provider, "ci-main").await;
    let form = [
        ("grant_type", EXCHANGE),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("subject_token", token.as_str()),
        ("audience", "https://deploy.example.com"),
    ];
    let reply = issuer.post("/oauth/token", &form, None).await;
    assert_eq!(reply.json["error"], "invalid_request");
    // A secret and the exchange: the subject must act as the same client.
    let form = [
        ("grant_type", EXCHANGE),
        ("subject_token_type", JWT),
        ("subject_token", token.as_str()),
        ("audience", "https://banking.example.com"),
    ];
    let with_worker = format!(
        "{}{}",
        fixtures::STANDARD,
        policies(&provider, "[ci, apps]")
    );
    let issuer = self::issuer(&with_worker);
    let reply = issuer
        .post("/oauth/token", &form, Some(("worker", fixtures::SECRET)))
        .await;
    assert_eq!(
        reply.json["error"], "invalid_request",
        "ci-main is deployer, not worker"
    );
}

/// The CI system rotates its signing key: a token under the new `kid` makes the issuer read the
/// keys again (at most every 10 s), and then it is accepted. A `jwksUri` given in the
/// FederatedIssuer is used instead of discovery.
#[tokio::test]
async fn a_new_kid_from_the_federated_issuer_makes_the_issuer_read_its_keys_again() {
    let port = crate::support::ports::free_port();
    let before = start_ci_issuer_on(port, ISSUER_URL, "key-before");
    let yaml = policies(&before, "[ci]").replace(
        "  namespaces: [ci]",
        &format!("  namespaces: [ci]\n  jwksUri: {}/jwks", before.issuer),
    );
    assert!(yaml.contains("jwksUri"), "{yaml}");
    let issuer = issuer(&yaml);
    by_assertion(&issuer, &ci_job_token(&before, "ci-main").await)
        .await
        .ok();
    drop(before);
    let after = start_ci_issuer_on(port, ISSUER_URL, "key-after");
    let rotated = ci_job_token(&after, "ci-main").await;
    let started = std::time::Instant::now();
    let mut refused = false;
    loop {
        let reply = by_assertion(&issuer, &rotated).await;
        if reply.status == 200 {
            break;
        }
        refused = true;
        assert_eq!(reply.json["error"], "invalid_client", "{reply}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "the new key is not read within 15 s: {reply}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let metrics = issuer.issuer.metrics.render();
    // Refused meanwhile (keys read less than 10 s before), then only for the unknown kid.
    assert_eq!(
        refused,
        metrics
            .contains(r#"tokenwarden_issuer_workload_token_refusals_total{reason="unknown_key"}"#),
        "{metrics}"
    );
}

/// With a `secretRef` as well, both the secret and the workload's token authenticate the
/// client; without one, no secret does.
#[tokio::test]
async fn a_client_with_a_secret_ref_and_workload_identity_takes_both_and_one_without_takes_no_secret()
 {
    let provider = start_ci_issuer(ISSUER_URL);
    let with_secret = policies(&provider, "[ci]").replace(
        "  clientId: deployer\n",
        "  clientId: deployer\n  secretRef: {name: deployer-oauth}\n",
    ) + &format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: deployer-oauth, namespace: ci}}\nstringData: {{clientSecret: {}}}\n",
        fixtures::SECRET
    );
    assert!(with_secret.contains("secretRef"), "{with_secret}");
    let token = ci_job_token(&provider, "ci-main").await;
    let by_secret = [
        ("grant_type", "client_credentials"),
        ("audience", "https://deploy.example.com"),
    ];
    let issuer = issuer(&with_secret);
    issuer
        .post(
            "/oauth/token",
            &by_secret,
            Some(("deployer", fixtures::SECRET)),
        )
        .await
        .ok();
    by_assertion(&issuer, &token).await.ok();

    let issuer = self::issuer(&policies(&provider, "[ci]"));
    let reply = issuer
        .post(
            "/oauth/token",
            &by_secret,
            Some(("deployer", fixtures::SECRET)),
        )
        .await;
    assert_eq!(reply.json["error"], "invalid_client", "{reply}");
    by_assertion(&issuer, &token).await.ok();
}
