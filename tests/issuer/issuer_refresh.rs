//! Offline access over the token endpoint: exactly when refresh tokens exist, rotation and
//! replay detection, the reuse interval, absolute and idle expiry on a settable clock, and
//! refresh after the policy changes.

use crate::fixtures;

use fixtures::{SECRET, STANDARD, TestIssuer, claims};

const WEB_CB: &str = "https://app.example.com/cb";
const TODO: &str = "https://todo.example.com";

#[tokio::test]
async fn the_offline_matrix_gives_refresh_tokens_exactly_where_the_contract_says() {
    for offline in [true, false] {
        let yaml = STANDARD.replace("offlineAccess: true", &format!("offlineAccess: {offline}"));
        let issuer = TestIssuer::new(&yaml);
        for asked in [true, false] {
            // authorization_code
            let scope = if asked {
                "todos:read offline_access"
            } else {
                "todos:read"
            };
            let code = format!("code-{offline}-{asked}");
            issuer.seed_code(&code, "web", WEB_CB, TODO, scope).await;
            let reply = issuer.exchange_web(&code).await;
            let refresh = reply
                .ok()
                .get("refresh_token")
                .and_then(|t| t.as_str())
                .map(str::to_owned);
            assert_eq!(
                refresh.is_some(),
                offline && asked,
                "code: offline={offline} asked={asked}"
            );

            // refresh_token: possible only where a refresh token exists; it yields a new one
            // while its scope keeps offline_access (left out, the original scope applies)
            if let Some(refresh) = refresh {
                let again = issuer.refresh_web(&refresh).await;
                let next = again.ok()["refresh_token"].as_str().expect("rotated");
                let kept = refresh_with_scope(&issuer, next, "todos:read offline_access").await;
                let next = kept.ok()["refresh_token"].as_str().expect("asked");
                let dropped = refresh_with_scope(&issuer, next, "todos:read").await;
                assert!(dropped.ok().get("refresh_token").is_none(), "not asked");
                assert_eq!(dropped.json["scope"], "todos:read");
            }

            // client_credentials: never
            let scope = if asked {
                "accounts:read offline_access"
            } else {
                "accounts:read"
            };
            let reply = issuer
                .post(
                    "/oauth/token",
                    &[("grant_type", "client_credentials"), ("scope", scope)],
                    Some(("worker", SECRET)),
                )
                .await;
            assert!(reply.ok().get("refresh_token").is_none());
        }
    }
}

#[tokio::test]
async fn a_client_without_the_refresh_grant_gets_no_refresh_token() {
    let yaml = STANDARD.replace(
        "grantTypes: [authorization_code, refresh_token]\n  redirectUris: [https://app",
        "grantTypes: [authorization_code]\n  redirectUris: [https://app",
    );
    let issuer = TestIssuer::new(&yaml);
    issuer
        .seed_code("c1", "web", WEB_CB, TODO, "todos:read offline_access")
        .await;
    assert!(
        issuer
            .exchange_web("c1")
            .await
            .ok()
            .get("refresh_token")
            .is_none()
    );
}

#[tokio::test]
async fn the_access_token_of_a_code_exchange_follows_the_policy() {
    let issuer = TestIssuer::standard();
    issuer
        .seed_code("c1", "web", WEB_CB, TODO, "todos:read offline_access")
        .await;
    let reply = issuer.exchange_web("c1").await;
    let body = reply.ok();
    assert_eq!(body["expires_in"], 86400);
    assert_eq!(body["scope"], "offline_access todos:read");
    let claims = claims(body["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "todos:read");
}

#[tokio::test]
async fn a_code_exchange_may_name_only_the_api_it_was_granted_for() {
    let issuer = TestIssuer::standard();
    let exchange = |code: &'static str, name: &'static str, api: &'static str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", fixtures::VERIFIER),
            (name, api),
        ];
        let issuer = &issuer;
        async move { issuer.post("/oauth/token", &form, None).await }
    };
    for (code, name) in [("c-aud", "audience"), ("c-res", "resource")] {
        issuer
            .seed_code(code, "web", WEB_CB, TODO, "todos:read")
            .await;
        let reply = exchange(code, name, "https://banking.example.com").await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_target")
        );
    }
    issuer
        .seed_code("c-same", "web", WEB_CB, TODO, "todos:read")
        .await;
    let reply = exchange("c-same", "resource", TODO).await;
    assert_eq!(
        claims(reply.ok()["access_token"].as_str().expect("token"))["aud"],
        TODO
    );
}

#[tokio::test]
async fn a_code_is_single_use_and_needs_the_right_verifier_client_and_redirect() {
    let issuer = TestIssuer::standard();
    issuer
        .seed_code("once", "web", WEB_CB, TODO, "todos:read")
        .await;
    issuer.exchange_web("once").await.ok();
    assert_eq!(issuer.exchange_web("once").await.error(), "invalid_grant");

    issuer
        .seed_code("bad-verifier", "web", WEB_CB, TODO, "todos:read")
        .await;
    let reply = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "web"),
                ("code", "bad-verifier"),
                ("redirect_uri", WEB_CB),
                (
                    "code_verifier",
                    "wrong-verifier-wrong-verifier-wrong-verifier-0",
                ),
            ],
            None,
        )
        .await;
    assert_eq!(reply.error(), "invalid_grant");

    issuer
        .seed_code(
            "for-backend",
            "backend",
            "https://backend.example.com/cb",
            TODO,
            "todos:read",
        )
        .await;
    assert_eq!(
        issuer.exchange_web("for-backend").await.error(),
        "invalid_grant"
    );

    let reply = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "web"),
                ("code", "x"),
                ("redirect_uri", WEB_CB),
            ],
            None,
        )
        .await;
    assert_eq!(reply.error(), "invalid_request", "PKCE is required");
}

#[tokio::test]
async fn rotation_retires_the_old_token_and_a_replay_revokes_the_whole_family() {
    let issuer = TestIssuer::standard();
    let first = issuer.web_refresh_token().await;
    let second = issuer.refresh_web(&first).await.ok()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(first, second);
    issuer.clock().advance(1);
    let third = issuer.refresh_web(&second).await.ok()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();

    // The first token again: a replay. The family, the newest token included, is revoked.
    let replay = issuer.refresh_web(&first).await;
    assert_eq!(
        (replay.status.as_u16(), replay.error()),
        (400, "invalid_grant")
    );
    assert_eq!(issuer.refresh_web(&third).await.error(), "invalid_grant");
    assert!(
        issuer
            .issuer
            .metrics
            .render()
            .contains("tokenwarden_issuer_refresh_token_reuse_detected_total 1")
    );
}

#[tokio::test]
async fn within_the_reuse_interval_a_retired_token_still_refreshes_once() {
    let issuer = TestIssuer::new(&STANDARD.replace(
        "idleLifetimeSeconds: 86400}",
        "idleLifetimeSeconds: 86400, reuseIntervalSeconds: 10}",
    ));
    let first = issuer.web_refresh_token().await;
    let _lost = issuer.refresh_web(&first).await.ok()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    issuer.clock().advance(5);
    let retry = issuer.refresh_web(&first).await;
    let replacement = retry.ok()["refresh_token"]
        .as_str()
        .expect("a fresh successor")
        .to_owned();
    issuer.refresh_web(&replacement).await.ok();

    // After the interval, the same retired token is a replay.
    issuer.clock().advance(30);
    assert_eq!(issuer.refresh_web(&first).await.error(), "invalid_grant");
}

async fn refresh_with_scope(issuer: &TestIssuer, token: &str, scope: &str) -> fixtures::Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "web"),
        ("refresh_token", token),
        ("scope", scope),
    ];
    issuer.post("/oauth/token", &form, None).await
}

/// A refresh token of `backend` (confidential: its refresh tokens may stay NonRotating).
async fn backend_refresh_token(issuer: &TestIssuer) -> String {
    let code = "backend-code";
    let cb = "https://backend.example.com/cb";
    issuer
        .seed_code(code, "backend", cb, TODO, "todos:read offline_access")
        .await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", cb),
        ("code_verifier", fixtures::VERIFIER),
    ];
    let reply = issuer
        .post("/oauth/token", &form, Some(("backend", SECRET)))
        .await;
    reply.ok()["refresh_token"]
        .as_str()
        .expect("a refresh token")
        .to_owned()
}

/// A refresh by `backend`, with `scope` if given.
async fn refresh_backend(issuer: &TestIssuer, token: &str, scope: Option<&str>) -> fixtures::Reply {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend(scope.map(|s| ("scope", s)));
    issuer
        .post("/oauth/token", &form, Some(("backend", SECRET)))
        .await
}

#[tokio::test]
async fn a_refresh_that_leaves_out_offline_access_ends_its_family_in_either_rotation_mode() {
    for rotation in ["Rotating", "NonRotating"] {
        let issuer = TestIssuer::new(&STANDARD.replace(
            "{absoluteLifetimeSeconds: 864000",
            &format!("{{rotation: {rotation}, absoluteLifetimeSeconds: 864000"),
        ));
        let first = backend_refresh_token(&issuer).await;
        let reply = refresh_backend(&issuer, &first, None).await;
        let newest = match reply.ok()["refresh_token"].as_str() {
            Some(rotated) => rotated.to_owned(),
            None => first.clone(),
        };
        let last = refresh_backend(&issuer, &newest, Some("todos:read")).await;
        let body = last.ok();
        assert!(body.get("refresh_token").is_none(), "{rotation}");
        assert_eq!(body["scope"], "todos:read", "{rotation}");
        assert_eq!(
            claims(body["access_token"].as_str().expect("token"))["scope"],
            "todos:read"
        );
        for token in [&first, &newest] {
            assert_eq!(
                refresh_backend(&issuer, token, None).await.error(),
                "invalid_grant",
                "{rotation}"
            );
        }
    }
}

#[tokio::test]
async fn non_rotating_refresh_tokens_of_a_confidential_client_stay_the_same() {
    let issuer = TestIssuer::new(&STANDARD.replace(
        "{absoluteLifetimeSeconds: 864000",
        "{rotation: NonRotating, absoluteLifetimeSeconds: 864000",
    ));
    let token = backend_refresh_token(&issuer).await;
    for _ in 0..3 {
        let reply = refresh_backend(&issuer, &token, None).await;
        assert!(reply.ok().get("refresh_token").is_none());
        issuer.clock().advance(60);
    }
}

/// RFC 9700 §4.14.2: a Public client's refresh tokens rotate. A policy made NonRotating
/// takes its audience from the Public client that may refresh (`config::build`), so the
/// family it holds refreshes no more.
#[tokio::test]
async fn a_public_client_loses_an_api_whose_refresh_tokens_stop_rotating() {
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    issuer.rewrite(&STANDARD.replace(
        "{absoluteLifetimeSeconds: 864000",
        "{rotation: NonRotating, absoluteLifetimeSeconds: 864000",
    ));
    assert_eq!(issuer.refresh_web(&token).await.error(), "invalid_grant");
    let token = backend_refresh_token(&issuer).await;
    let reply = refresh_backend(&issuer, &token, None).await;
    assert!(
        reply.ok().get("refresh_token").is_none(),
        "backend keeps it"
    );
}

#[tokio::test]
async fn idle_and_absolute_lifetimes_are_enforced_to_the_second() {
    // The standard todo policy: idle 86400 s, absolute 864000 s. A lifetime of N seconds
    // means valid while less than N seconds have passed, as a JWT's `exp`.
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    issuer.clock().advance(86_399);
    let token = issuer.refresh_web(&token).await.ok()["refresh_token"]
        .as_str()
        .expect("one second left")
        .to_owned();
    issuer.clock().advance(86_400);
    assert_eq!(
        issuer.refresh_web(&token).await.error(),
        "invalid_grant",
        "idle"
    );

    let issuer = TestIssuer::standard();
    let mut token = issuer.web_refresh_token().await;
    for _ in 0..10 {
        issuer.clock().advance(86_399);
        token = issuer.refresh_web(&token).await.ok()["refresh_token"]
            .as_str()
            .expect("within the absolute lifetime")
            .to_owned();
    }
    assert_eq!(issuer.clock().now() - fixtures::T0, 863_990);
    issuer.clock().advance(9);
    token = issuer.refresh_web(&token).await.ok()["refresh_token"]
        .as_str()
        .expect("one second left")
        .to_owned();
    issuer.clock().advance(1);
    let reply = issuer.refresh_web(&token).await;
    assert_eq!(reply.error(), "invalid_grant", "absolute");
    assert!(reply.text.contains("expired"), "{}", reply.text);
}

#[tokio::test]
async fn refresh_fails_once_the_policy_drops_offline_access_or_is_deleted() {
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    issuer.rewrite(&STANDARD.replace("offlineAccess: true", "offlineAccess: false"));
    let reply = issuer.refresh_web(&token).await;
    assert_eq!(reply.error(), "invalid_grant");
    assert!(reply.json.get("refresh_token").is_none());

    // Allowed again: the family was not touched by the refusal.
    issuer.rewrite(STANDARD);
    let token = issuer.refresh_web(&token).await.ok()["refresh_token"]
        .as_str()
        .expect("ok")
        .to_owned();

    let without_todo: String = STANDARD
        .split("---")
        .filter(|d| !d.contains("name: todo,"))
        .collect::<Vec<_>>()
        .join("---");
    issuer.rewrite(&without_todo);
    assert_eq!(issuer.refresh_web(&token).await.error(), "invalid_grant");
}

#[tokio::test]
async fn the_new_access_token_follows_the_policy_as_it_is_now() {
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    issuer.rewrite(&STANDARD.replace(
        "tokenExpirationSeconds: 86400",
        "tokenExpirationSeconds: 300",
    ));
    let reply = issuer.refresh_web(&token).await;
    assert_eq!(reply.ok()["expires_in"], 300);
    let claims = claims(reply.json["access_token"].as_str().expect("token"));
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        300
    );
}

#[tokio::test]
async fn refresh_by_another_client_for_another_audience_or_with_a_wider_scope_fails() {
    let issuer = TestIssuer::standard();
    let token = issuer.web_refresh_token().await;
    let by_backend = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            Some(("backend", SECRET)),
        )
        .await;
    assert_eq!(by_backend.error(), "invalid_grant");
    let other_audience = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &token),
                ("audience", "https://banking.example.com"),
            ],
            None,
        )
        .await;
    assert_eq!(other_audience.error(), "invalid_target");
    let wider = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", "web"),
                ("refresh_token", &token),
                ("scope", "todos:read todos:write"),
            ],
            None,
        )
        .await;
    assert_eq!(wider.error(), "invalid_scope");
    // None of these spent the token.
    issuer.refresh_web(&token).await.ok();
}
