//! Revocation (RFC 7009) and introspection (RFC 7662): what each makes of refresh tokens,
//! access tokens and junk; who may revoke or see which token; and the request rules both share.

use crate::fixtures;

use axum::http::StatusCode;
use fixtures::{Reply, SECRET, STANDARD, TestIssuer, VERIFIER};

const BANKING: &str = "https://banking.example.com";
const TODO: &str = "https://todo.example.com";

/// STANDARD plus `banking-api`, the banking API's own confidential client, which the banking
/// policy names as its resource server instead of `worker`.
fn with_resource_server() -> TestIssuer {
    TestIssuer::new(&resource_server_yaml())
}

fn resource_server_yaml() -> String {
    format!(
        "{}---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: banking-api, namespace: apps}}
spec:
  clientId: banking-api
  secretRef: {{name: worker-oauth}}
  grantTypes: [client_credentials]
  audiences: [{{audience: {BANKING}}}]
",
        STANDARD.replace(
            "introspectionClients: [worker]",
            "introspectionClients: [banking-api]"
        )
    )
}

async fn worker_access_token(issuer: &TestIssuer) -> String {
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("worker", SECRET)),
        )
        .await;
    reply.ok()["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

async fn revoke(issuer: &TestIssuer, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
    issuer.post("/oauth/revoke", form, basic).await
}

async fn revoke_as_web(issuer: &TestIssuer, token: &str) -> Reply {
    revoke(issuer, &[("token", token), ("client_id", "web")], None).await
}

async fn introspect(issuer: &TestIssuer, token: &str, client: &str) -> Reply {
    issuer
        .post(
            "/oauth/introspect",
            &[("token", token)],
            Some((client, SECRET)),
        )
        .await
}

#[track_caller]
fn assert_ok_no_store(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
}

#[track_caller]
fn assert_inactive(reply: &Reply) {
    assert_ok_no_store(reply);
    assert_eq!(reply.json, serde_json::json!({"active": false}));
}

/// A refresh token of `backend` (confidential), from a seeded code.
async fn backend_refresh_token(issuer: &TestIssuer) -> Reply {
    issuer
        .seed_code(
            "backend-code",
            "backend",
            "https://backend.example.com/cb",
            TODO,
            "todos:read offline_access",
        )
        .await;
    issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", "backend-code"),
                ("redirect_uri", "https://backend.example.com/cb"),
                ("code_verifier", VERIFIER),
            ],
            Some(("backend", SECRET)),
        )
        .await
}

#[tokio::test]
async fn a_revoked_refresh_token_cannot_refresh_and_its_familys_newest_token_is_dead_too() {
    let issuer = TestIssuer::standard();
    let first = issuer.web_refresh_token().await;
    let newest = issuer.refresh_web(&first).await.ok()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();

    // The retired token is revoked: its whole family goes.
    assert_ok_no_store(&revoke_as_web(&issuer, &first).await);
    for token in [&first, &newest] {
        let reply = issuer.refresh_web(token).await;
        assert_eq!(reply.error(), "invalid_grant", "{}", reply.text);
    }
    // Revoking it again is still a 200.
    assert_ok_no_store(&revoke_as_web(&issuer, &newest).await);

    // And the newest token revoked directly, with the hint.
    let other = issuer.web_refresh_token().await;
    let reply = revoke(
        &issuer,
        &[
            ("token", &other),
            ("token_type_hint", "refresh_token"),
            ("client_id", "web"),
        ],
        None,
    )
    .await;
    assert_ok_no_store(&reply);
    assert_eq!(issuer.refresh_web(&other).await.error(), "invalid_grant");
}

#[tokio::test]
async fn a_revoked_access_token_introspects_inactive() {
    let issuer = TestIssuer::standard();
    let token = worker_access_token(&issuer).await;
    let active = introspect(&issuer, &token, "worker").await;
    assert_ok_no_store(&active);
    let claims = active.json;
    assert_eq!(claims["active"], true);
    assert_eq!(claims["client_id"], "worker");
    assert_eq!(claims["sub"], "worker@clients");
    assert_eq!(claims["aud"], BANKING);
    assert_eq!(claims["iss"], fixtures::ISSUER_URL);
    assert_eq!(claims["scope"], "accounts:read");
    assert_eq!(claims["token_type"], "Bearer");
    assert_eq!(claims["iat"], fixtures::T0);
    assert_eq!(claims["exp"], fixtures::T0 + 600);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let reply = revoke(
        &issuer,
        &[("token", &token), ("token_type_hint", "access_token")],
        Some(("worker", SECRET)),
    )
    .await;
    assert_ok_no_store(&reply);
    assert_inactive(&introspect(&issuer, &token, "worker").await);
}

#[tokio::test]
async fn an_expired_access_token_is_inactive_and_revoking_it_is_a_200() {
    let issuer = TestIssuer::standard();
    let token = worker_access_token(&issuer).await;
    issuer.clock().advance(599);
    assert_eq!(
        introspect(&issuer, &token, "worker").await.json["active"],
        true
    );
    issuer.clock().advance(1);
    assert_inactive(&introspect(&issuer, &token, "worker").await);
    let reply = revoke(&issuer, &[("token", &token)], Some(("worker", SECRET))).await;
    assert_ok_no_store(&reply);
}

#[tokio::test]
async fn another_client_cannot_revoke_or_introspect_someone_elses_token() {
    let issuer = TestIssuer::standard();

    // web's refresh token: backend may neither revoke nor see it.
    let web_token = issuer.web_refresh_token().await;
    let reply = revoke(&issuer, &[("token", &web_token)], Some(("backend", SECRET))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error(), "unauthorized_client");
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_inactive(&introspect(&issuer, &web_token, "backend").await);
    let rotated = issuer.refresh_web(&web_token).await;
    assert!(rotated.ok()["refresh_token"].is_string(), "still alive");

    // worker's access token: backend has no grant for its audience.
    let access = worker_access_token(&issuer).await;
    let reply = revoke(&issuer, &[("token", &access)], Some(("backend", SECRET))).await;
    assert_eq!(reply.error(), "unauthorized_client");
    assert_inactive(&introspect(&issuer, &access, "backend").await);
    assert_eq!(
        introspect(&issuer, &access, "worker").await.json["active"],
        true,
        "still active"
    );
    // A public client can revoke only its own tokens too.
    let reply = revoke_as_web(&issuer, &access).await;
    assert_eq!(reply.error(), "unauthorized_client");
}

/// RFC 7662 §4: the token is shown to the resource servers of its API, which its policy names
/// in `introspectionClients`; to nobody else, not even the client it was issued to.
#[tokio::test]
async fn only_the_resource_servers_a_policy_names_may_introspect_its_access_tokens() {
    let issuer = with_resource_server();
    let access = worker_access_token(&issuer).await;
    let reply = introspect(&issuer, &access, "banking-api").await;
    assert_eq!(reply.ok()["active"], true);
    assert_eq!(reply.json["client_id"], "worker");
    assert_eq!(reply.json["sub"], "worker@clients");
    for other in ["worker", "backend"] {
        assert_inactive(&introspect(&issuer, &access, other).await);
    }
    // Without the policy's list, being granted the audience is not enough.
    issuer.rewrite(&resource_server_yaml().replace("  introspectionClients: [banking-api]\n", ""));
    assert_inactive(&introspect(&issuer, &access, "banking-api").await);
    issuer.rewrite(&resource_server_yaml());
    assert_eq!(
        introspect(&issuer, &access, "banking-api").await.json["active"],
        true
    );
    // Seeing is not owning: it may not revoke it.
    let reply = revoke(
        &issuer,
        &[("token", &access)],
        Some(("banking-api", SECRET)),
    )
    .await;
    assert_eq!(reply.error(), "unauthorized_client");
}

/// `web` (public) signs `alice` in with offline access: the first access token and refresh
/// token.
async fn web_sign_in(issuer: &TestIssuer, code: &str) -> (String, String) {
    issuer
        .seed_code(
            code,
            "web",
            fixtures::WEB_CB,
            TODO,
            "todos:read offline_access",
        )
        .await;
    let reply = issuer.exchange_web(code).await;
    let body = reply.ok();
    let token = |name: &str| body[name].as_str().expect(name).to_owned();
    (token("access_token"), token("refresh_token"))
}

/// Ending a refresh-token family ends the access tokens minted from it: revoking its refresh
/// token (RFC 7009), and presenting a retired one again (RFC 9700 §4.14.2). `backend` is the
/// to-do API's resource server.
#[tokio::test]
async fn access_tokens_of_a_revoked_refresh_family_introspect_inactive() {
    let issuer = TestIssuer::standard();
    let (first_access, first_refresh) = web_sign_in(&issuer, "code-1").await;
    let rotated = issuer.refresh_web(&first_refresh).await;
    let second_access = rotated.ok()["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    let second_refresh = rotated.json["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    for access in [&first_access, &second_access] {
        assert_eq!(
            introspect(&issuer, access, "backend").await.ok()["active"],
            true
        );
    }
    assert_ok_no_store(&revoke_as_web(&issuer, &second_refresh).await);
    for access in [&first_access, &second_access] {
        assert_inactive(&introspect(&issuer, access, "backend").await);
    }

    // Reuse detection: the retired token presented again revokes the family.
    let (_, first_refresh) = web_sign_in(&issuer, "code-2").await;
    let rotated = issuer.refresh_web(&first_refresh).await;
    let access = rotated.ok()["access_token"]
        .as_str()
        .expect("at")
        .to_owned();
    assert_eq!(
        introspect(&issuer, &access, "backend").await.json["active"],
        true
    );
    assert_eq!(
        issuer.refresh_web(&first_refresh).await.error(),
        "invalid_grant"
    );
    assert_inactive(&introspect(&issuer, &access, "backend").await);

    // A token from a sign-in without offline access belongs to no family, and stays.
    issuer
        .seed_code("code-3", "web", fixtures::WEB_CB, TODO, "todos:read")
        .await;
    let reply = issuer.exchange_web("code-3").await;
    let plain = reply.ok()["access_token"].as_str().expect("at").to_owned();
    assert!(fixtures::claims(&plain).get("sid").is_none());
    assert_eq!(
        introspect(&issuer, &plain, "backend").await.json["active"],
        true
    );
}

/// A family ends at its deadline too: its access tokens with it, whether or not clean-up
/// has removed it yet.
#[tokio::test]
async fn access_tokens_of_an_expired_refresh_family_introspect_inactive() {
    // Idle lifetime 600 s, below the access tokens' 86400 s.
    let issuer = TestIssuer::new(
        &STANDARD.replace("idleLifetimeSeconds: 86400", "idleLifetimeSeconds: 600"),
    );
    let (access, _) = web_sign_in(&issuer, "code").await;
    issuer.clock().advance(599);
    assert_eq!(
        introspect(&issuer, &access, "backend").await.json["active"],
        true
    );
    issuer.clock().advance(1);
    assert_inactive(&introspect(&issuer, &access, "backend").await);
}

/// A token still verifies after its client or its policy is deleted, but what it was issued
/// under is gone.
#[tokio::test]
async fn an_access_token_whose_client_or_policy_was_deleted_introspects_inactive() {
    let issuer = with_resource_server();
    let access = worker_access_token(&issuer).await;
    let without_worker =
        resource_server_yaml().replace("clientId: worker\n", "clientId: worker-2\n");
    issuer.rewrite(&without_worker);
    assert_inactive(&introspect(&issuer, &access, "banking-api").await);
    issuer.rewrite(&resource_server_yaml());
    assert_eq!(
        introspect(&issuer, &access, "banking-api").await.json["active"],
        true,
        "the client is back"
    );

    let (access, _) = web_sign_in(&issuer, "code").await;
    assert_eq!(
        introspect(&issuer, &access, "backend").await.json["active"],
        true
    );
    // The policy deleted (and another declared for another audience).
    issuer.rewrite(
        &resource_server_yaml()
            .replace(
                "{name: todo, namespace: apps}",
                "{name: todo-2, namespace: apps}",
            )
            .replace(TODO, "https://todo-2.example.com"),
    );
    assert_inactive(&introspect(&issuer, &access, "backend").await);
}

#[tokio::test]
async fn a_refresh_token_is_active_for_its_own_client_while_it_is_the_current_one() {
    let issuer = TestIssuer::standard();
    let granted = backend_refresh_token(&issuer).await;
    let first = granted.ok()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    let reply = introspect(&issuer, &first, "backend").await;
    let info = reply.ok();
    assert_eq!(info["active"], true);
    assert_eq!(info["token_type"], "refresh_token");
    assert_eq!(info["client_id"], "backend");
    assert_eq!(info["sub"], "alice");
    assert_eq!(info["aud"], TODO);
    assert_eq!(info["scope"], "offline_access todos:read");
    assert_eq!(info["iat"], fixtures::T0);
    // Idle lifetime 86400 s ends before the absolute 864000 s.
    assert_eq!(info["exp"], fixtures::T0 + 86_400);

    // After rotation the old token is inactive and the new one active.
    let rotated = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &first)],
            Some(("backend", SECRET)),
        )
        .await;
    let second = rotated.ok()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_owned();
    assert_inactive(&introspect(&issuer, &first, "backend").await);
    assert_eq!(
        introspect(&issuer, &second, "backend").await.json["active"],
        true
    );

    // Once the policy stops allowing offline access, no refresh token is active.
    issuer.rewrite(&STANDARD.replace("offlineAccess: true", "offlineAccess: false"));
    assert_inactive(&introspect(&issuer, &second, "backend").await);
}

#[tokio::test]
async fn a_public_client_cannot_introspect() {
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    let reply = issuer
        .post(
            "/oauth/introspect",
            &[("token", &token), ("client_id", "web")],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.error(), "invalid_client");
    // Nor can anyone unauthenticated, or with a wrong secret.
    let reply = issuer
        .post("/oauth/introspect", &[("token", &token)], None)
        .await;
    assert_eq!(reply.error(), "invalid_client");
    let reply = issuer
        .post(
            "/oauth/introspect",
            &[("token", &token)],
            Some(("backend", "wrong")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn an_unknown_token_is_200_on_revoke_and_inactive_on_introspect() {
    let issuer = TestIssuer::standard();
    let garbage = [
        "no-such-token",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    ];
    for token in garbage {
        for hint in ["access_token", "refresh_token", "id_token", ""] {
            let form = [("token", token), ("token_type_hint", hint)];
            let reply = revoke(&issuer, &form, Some(("worker", SECRET))).await;
            assert_ok_no_store(&reply);
            assert_eq!(reply.text, "", "{token} {hint}");
            let reply = issuer
                .post("/oauth/introspect", &form, Some(("worker", SECRET)))
                .await;
            assert_inactive(&reply);
        }
    }
}

#[tokio::test]
async fn a_wrong_hint_still_finds_the_token() {
    let issuer = TestIssuer::standard();
    let refresh = issuer.web_refresh_token().await;
    let reply = revoke(
        &issuer,
        &[
            ("token", &refresh),
            ("token_type_hint", "access_token"),
            ("client_id", "web"),
        ],
        None,
    )
    .await;
    assert_ok_no_store(&reply);
    assert_eq!(issuer.refresh_web(&refresh).await.error(), "invalid_grant");

    let access = worker_access_token(&issuer).await;
    let form = [("token", &*access), ("token_type_hint", "refresh_token")];
    let reply = issuer
        .post("/oauth/introspect", &form, Some(("worker", SECRET)))
        .await;
    assert_eq!(reply.ok()["active"], true);
}

#[tokio::test]
async fn both_endpoints_refuse_repeated_or_missing_parameters_and_other_content_types() {
    let issuer = TestIssuer::standard();
    for path in ["/oauth/revoke", "/oauth/introspect"] {
        let reply = issuer
            .post(
                path,
                &[("token", "a"), ("token", "b")],
                Some(("worker", SECRET)),
            )
            .await;
        assert_eq!(reply.error(), "invalid_request", "{path}");
        assert_eq!(reply.headers["cache-control"], "no-store");
        let reply = issuer.post(path, &[], Some(("worker", SECRET))).await;
        assert_eq!(
            reply.error(),
            "invalid_request",
            "{path}: token is required"
        );

        let request = axum::http::Request::post(path)
            .header("content-type", "application/json")
            .header("authorization", fixtures::basic_header("worker", SECRET))
            .body(axum::body::Body::from(r#"{"token":"a"}"#))
            .expect("request");
        assert_eq!(issuer.send(request).await.error(), "invalid_request");
    }
}

#[tokio::test]
async fn the_metadata_names_both_endpoints_and_their_auth_methods() {
    let issuer = TestIssuer::standard();
    let meta = issuer.get("/.well-known/oauth-authorization-server").await;
    let meta = meta.ok();
    assert_eq!(
        meta["revocation_endpoint"],
        "https://issuer.test/oauth/revoke"
    );
    assert_eq!(
        meta["introspection_endpoint"],
        "https://issuer.test/oauth/introspect"
    );
    let methods = meta["introspection_endpoint_auth_methods_supported"]
        .as_array()
        .expect("methods");
    assert!(!methods.contains(&serde_json::json!("none")));
}
