//! Access tokens from the token endpoint: verified independently against the JWKS fetched over
//! HTTP, for every algorithm and the lifetimes at the bounds; and the endpoint's errors.

use crate::fixtures;

use fixtures::{Reply, SECRET, TestIssuer};
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};

fn policies_for(alg: &str) -> String {
    let mut yaml = String::new();
    let mut grants = String::new();
    for lifetime in [1, 600, 2_592_000] {
        yaml += &format!(
            "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiTokenPolicy\n\
             metadata: {{name: api-{lifetime}, namespace: apps}}\n\
             spec: {{audience: https://api-{lifetime}.example.com, tokenExpirationSeconds: {lifetime}, signingAlgorithm: {alg}, scopes: [{{name: read}}]}}\n---\n"
        );
        grants += &format!("{{audience: https://api-{lifetime}.example.com, scopes: [read]}},");
    }
    yaml += &format!(
        "apiVersion: tokenwarden.dev/v1alpha1\nkind: ApiClient\nmetadata: {{name: worker, namespace: apps}}\n\
         spec: {{clientId: worker, secretRef: {{name: worker-oauth}}, grantTypes: [client_credentials], audiences: [{grants}]}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: worker-oauth, namespace: apps}}\nstringData: {{clientSecret: {SECRET}}}\n"
    );
    yaml
}

#[tokio::test]
async fn tokens_of_every_algorithm_and_lifetime_verify_against_the_jwks_over_http() {
    let http = reqwest::Client::new();
    for alg in ["RS256", "PS256", "ES256", "EdDSA"] {
        let issuer = TestIssuer::new(&policies_for(alg));
        let base = issuer.serve().await;
        let jwks: JwkSet = http
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        for lifetime in [1u64, 600, 2_592_000] {
            let audience = format!("https://api-{lifetime}.example.com");
            let response = http
                .post(format!("{base}/oauth/token"))
                .basic_auth("worker", Some(SECRET))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("audience", &audience),
                ])
                .send()
                .await
                .expect("token");
            assert_eq!(response.status(), 200, "{alg} {lifetime}");
            assert_eq!(response.headers()["cache-control"], "no-store");
            assert_eq!(response.headers()["pragma"], "no-cache", "RFC 6749 §5.1");
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], lifetime);
            assert!(body.get("refresh_token").is_none());
            let token = body["access_token"].as_str().expect("access_token");

            let header = jsonwebtoken::decode_header(token).expect("header");
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(
                format!("{:?}", header.alg).to_uppercase(),
                alg.to_uppercase()
            );
            let kid = header.kid.expect("kid");
            let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
            let key = DecodingKey::from_jwk(jwk).expect("decoding key");
            let mut validation = Validation::new(header.alg);
            validation.set_audience(&[&audience]);
            validation.set_issuer(&[fixtures::ISSUER_URL]);
            // The test clock is in the future; expiry is checked below as exp - iat.
            validation.validate_exp = false;
            validation.required_spec_claims.clear();
            let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
                .unwrap_or_else(|e| panic!("{alg} {lifetime}: {e}"))
                .claims;
            // A client's subject cannot be a user's (RFC 9068 §5).
            assert_eq!(claims["sub"], "worker@clients");
            assert_eq!(claims["client_id"], "worker");
            assert_eq!(claims["aud"], audience.as_str());
            assert_eq!(claims["scope"], "read");
            assert_eq!(claims["iat"], fixtures::T0);
            assert_eq!(
                claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
                lifetime
            );
            assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 22));
        }
    }
}

#[tokio::test]
async fn the_jwks_has_public_keys_only() {
    let issuer = TestIssuer::standard();
    let reply = issuer.get("/.well-known/jwks.json").await;
    let keys = reply.ok()["keys"].as_array().expect("keys").clone();
    assert_eq!(keys.len(), 4);
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.get(private).is_none(), "{key}");
        }
        assert_eq!(key["use"], "sig");
    }
}

#[tokio::test]
async fn metadata_is_one_document_at_both_well_known_paths() {
    let issuer = TestIssuer::standard();
    let a = issuer.get("/.well-known/oauth-authorization-server").await;
    let b = issuer.get("/.well-known/openid-configuration").await;
    assert_eq!(a.ok(), b.ok());
    assert_eq!(a.json["issuer"], fixtures::ISSUER_URL);
    assert_eq!(a.json["token_endpoint"], "https://issuer.test/oauth/token");
    assert_eq!(
        a.json["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    // Only the client authentication methods the token endpoint accepts: a workload's token
    // as a client assertion under a name of its own, not private_key_jwt (the client holds no
    // key of its own), so no signing algorithms for private_key_jwt either.
    assert_eq!(
        a.json["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "none",
            "federated_jwt"
        ])
    );
    assert_eq!(
        a.json["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert!(
        a.json
            .get("token_endpoint_auth_signing_alg_values_supported")
            .is_none()
    );
}

async fn client_credentials(issuer: &TestIssuer, extra: &[(&str, &str)]) -> Reply {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    issuer
        .post("/oauth/token", &form, Some(("worker", SECRET)))
        .await
}

#[tokio::test]
async fn the_api_is_chosen_by_audience_or_resource_and_an_unknown_one_is_invalid_target() {
    // `worker` may ask for both APIs here, so every choice below is the parameter's.
    let issuer = TestIssuer::new(&fixtures::STANDARD.replace(
        r#"audiences: [{audience: https://banking.example.com, scopes: ["accounts:read"]}]"#,
        r#"audiences: [{audience: https://banking.example.com, scopes: ["accounts:read"]}, {audience: https://todo.example.com, scopes: ["todos:read"]}]"#,
    ));
    for (param, value) in [
        ("audience", "https://banking.example.com"),
        ("resource", "https://banking.example.com"),
        ("audience", "https://todo.example.com"),
        ("resource", "https://todo.example.com"),
    ] {
        let reply = client_credentials(&issuer, &[(param, value)]).await;
        let access = fixtures::claims(reply.ok()["access_token"].as_str().expect("token"));
        assert_eq!(access["aud"], value, "{param}={value}");
    }
    let reply = client_credentials(&issuer, &[]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_request"),
        "two APIs and none named"
    );
    for (param, value) in [
        ("audience", "https://unknown.example.com"),
        ("resource", "https://unknown.example.com"),
    ] {
        let reply = client_credentials(&issuer, &[(param, value)]).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.error(), "invalid_target");
        assert!(
            !reply.text.contains(value),
            "the error echoes input: {}",
            reply.text
        );
    }
    // An API that exists but is not this client's: the standard worker may not ask for todo.
    let standard = TestIssuer::standard();
    let reply = client_credentials(&standard, &[("audience", "https://todo.example.com")]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_target")
    );
    client_credentials(&standard, &[]).await.ok();
}

/// RFC 9068 §5: a client named like a user must not get that user's `sub`.
#[tokio::test]
async fn a_client_with_a_users_name_gets_a_sub_of_its_own() {
    let issuer =
        TestIssuer::new(&fixtures::STANDARD.replace("clientId: worker", "clientId: alice"));
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("alice", SECRET)),
        )
        .await;
    let client = fixtures::claims(reply.ok()["access_token"].as_str().expect("token"));
    assert_eq!(client["sub"], "alice@clients");
    assert_eq!(client["client_id"], "alice", "the client id stays bare");

    // The user alice (the seeded code's subject) keeps hers.
    issuer
        .seed_code(
            "code",
            "web",
            "https://app.example.com/cb",
            "https://todo.example.com",
            "todos:read",
        )
        .await;
    let reply = issuer.exchange_web("code").await;
    let user = fixtures::claims(reply.ok()["access_token"].as_str().expect("token"));
    assert_eq!(user["sub"], "alice");
    assert_ne!(user["sub"], client["sub"]);
}

#[tokio::test]
async fn client_credentials_never_returns_a_refresh_token() {
    let issuer = TestIssuer::standard();
    let reply = client_credentials(&issuer, &[("scope", "accounts:read offline_access")]).await;
    assert!(reply.ok().get("refresh_token").is_none());
    assert_eq!(reply.json["scope"], "accounts:read");
}

#[tokio::test]
async fn a_scope_the_client_may_not_have_is_invalid_scope() {
    let issuer = TestIssuer::standard();
    let reply = client_credentials(&issuer, &[("scope", "payments:write")]).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_scope")
    );
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let issuer = TestIssuer::standard();
    let reply = client_credentials(
        &issuer,
        &[("scope", "accounts:read"), ("scope", "accounts:read")],
    )
    .await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_request")
    );
}

#[tokio::test]
async fn a_wrong_secret_over_basic_is_401_with_www_authenticate_and_no_store() {
    let issuer = TestIssuer::standard();
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("worker", "wrong-secret")),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (401, "invalid_client")
    );
    assert!(
        reply.headers["www-authenticate"]
            .to_str()
            .expect("ascii")
            .starts_with("Basic ")
    );
    assert_eq!(reply.headers["cache-control"], "no-store");
    assert_eq!(reply.headers["pragma"], "no-cache");
}

#[tokio::test]
async fn client_secret_post_works_and_an_unknown_client_is_invalid_client() {
    let issuer = TestIssuer::standard();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "worker"),
        ("client_secret", SECRET),
    ];
    issuer.post("/oauth/token", &form, None).await.ok();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "nobody"),
        ("client_secret", SECRET),
    ];
    let reply = issuer.post("/oauth/token", &form, None).await;
    assert_eq!(reply.error(), "invalid_client");
}

#[tokio::test]
async fn unsupported_and_unauthorized_grants_are_told_apart() {
    let issuer = TestIssuer::standard();
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "password")],
            Some(("worker", SECRET)),
        )
        .await;
    assert_eq!(reply.error(), "unsupported_grant_type");
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "x")],
            Some(("worker", SECRET)),
        )
        .await;
    assert_eq!(reply.error(), "unauthorized_client");
    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", "web")],
            None,
        )
        .await;
    assert_eq!(reply.error(), "unauthorized_client");
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_invalid_request() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let issuer = TestIssuer::standard();
    let request = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            fixtures::basic_header("worker", SECRET),
        )
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .expect("request");
    let reply = issuer.send(request).await;
    assert_eq!(
        (reply.status.as_u16(), reply.error()),
        (400, "invalid_request")
    );

    let huge = "a=".to_owned() + &"x".repeat(64 * 1024);
    let request = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(huge))
        .expect("request");
    let reply = issuer.send(request).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error(), "invalid_request", "RFC 6749 §5.2 JSON");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let issuer = TestIssuer::standard();
    let base = issuer.serve().await;
    let mut client = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .expect("connect");
    client
        .write_all(
            b"POST /oauth/token HTTP/1.1\r\nHost: issuer\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 1000000000000\r\n\r\ngrant_type=",
        )
        .await
        .expect("the head and a start of the body");
    let mut answer = vec![0; 4096];
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(5), client.read(&mut answer)).await;
    let n = read.expect("answered at once").expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error":"invalid_request""#), "{answer}");
}

#[tokio::test]
async fn a_policy_change_applies_to_the_next_token() {
    let issuer = TestIssuer::standard();
    let first = client_credentials(&issuer, &[]).await;
    assert_eq!(first.ok()["expires_in"], 600);
    issuer.rewrite(&fixtures::STANDARD.replace(
        "tokenExpirationSeconds: 600",
        "tokenExpirationSeconds: 1200",
    ));
    let second = client_credentials(&issuer, &[]).await;
    assert_eq!(second.ok()["expires_in"], 1200);
}

#[tokio::test]
async fn an_edited_audience_is_refused_as_the_api_server_would_and_the_policy_keeps_working() {
    let issuer = TestIssuer::standard();
    let expiry = |audience: &str| {
        let snapshot = issuer.issuer.in_force.current();
        let api = snapshot.config.apis.get(audience);
        api.map(|api| api.token_expiration_seconds)
    };
    // One file: the banking policy moves to another audience (refused: audience is
    // immutable) and todo gets a shorter lifetime (accepted).
    let moved = fixtures::STANDARD
        .replace(
            "audience: https://banking.example.com\n  tokenExpirationSeconds: 600",
            "audience: https://bank2.example.com\n  tokenExpirationSeconds: 1200",
        )
        .replace(
            "tokenExpirationSeconds: 86400",
            "tokenExpirationSeconds: 3600",
        );
    assert_ne!(moved, fixtures::STANDARD);
    issuer.rewrite(&moved);
    assert_eq!(
        expiry("https://banking.example.com"),
        Some(600),
        "kept whole"
    );
    assert_eq!(expiry("https://bank2.example.com"), None);
    assert_eq!(
        expiry("https://todo.example.com"),
        Some(3600),
        "the rest loads"
    );
    let kept = client_credentials(&issuer, &[("audience", "https://banking.example.com")]).await;
    assert_eq!(kept.ok()["expires_in"], 600);

    // Removed, then declared again: a delete and a create, which the API server allows.
    let without: String = moved
        .split("---")
        .filter(|document| !document.contains("name: banking"))
        .collect::<Vec<_>>()
        .join("---");
    issuer.rewrite(&without);
    assert_eq!(expiry("https://banking.example.com"), None);
    issuer.rewrite(&moved);
    assert_eq!(expiry("https://bank2.example.com"), Some(1200));
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let issuer = TestIssuer::standard();
    let base = issuer.serve().await;
    let address = base.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    slow.write_all(b"POST /oauth/token HTTP/1.1\r\nHost: issuer\r\n")
        .await
        .expect("half a request");
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "still open after 20 s");
    let waited = started.elapsed();
    let timeout = tokenwarden::serve::HEADER_READ_TIMEOUT;
    assert!(
        waited >= timeout - std::time::Duration::from_secs(1),
        "{waited:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The server itself is fine.
    client_credentials(&issuer, &[]).await.ok();
}

#[tokio::test]
async fn request_heads_beyond_the_limit_are_refused_with_431() {
    let issuer = TestIssuer::standard();
    let base = issuer.serve().await;
    let client = reqwest::Client::new();
    let limit = tokenwarden::serve::MAX_HEAD_BYTES;
    let with_header = |bytes: usize| {
        client
            .get(format!("{base}/healthz"))
            .header("x-padding", "a".repeat(bytes))
            .send()
    };
    let fits = with_header(limit - 1024).await.expect("answer");
    assert_eq!(fits.status(), 200);
    let too_large = with_header(limit + 1024).await.expect("answer");
    assert_eq!(too_large.status(), 431);
}

#[tokio::test]
async fn a_second_authorization_or_content_type_header_is_an_invalid_request() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let issuer = TestIssuer::standard();
    let body = "grant_type=client_credentials";
    let form = "application/x-www-form-urlencoded";
    let twice = |headers: &[(header::HeaderName, String)]| {
        let mut request = Request::post("/oauth/token");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(Body::from(body)).expect("request")
    };
    let worker = fixtures::basic_header("worker", SECRET);
    let other = fixtures::basic_header("web", "");
    for request in [
        twice(&[
            (header::CONTENT_TYPE, form.into()),
            (header::AUTHORIZATION, worker.clone()),
            (header::AUTHORIZATION, other),
        ]),
        twice(&[
            (header::CONTENT_TYPE, form.into()),
            (header::CONTENT_TYPE, "application/json".into()),
            (header::AUTHORIZATION, worker),
        ]),
    ] {
        let reply = issuer.send(request).await;
        assert_eq!(
            (reply.status.as_u16(), reply.error()),
            (400, "invalid_request")
        );
    }
}

#[tokio::test]
async fn the_metrics_count_a_percent_encoded_grant_type_under_its_grant() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let issuer = TestIssuer::standard();
    let request = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::AUTHORIZATION,
            fixtures::basic_header("worker", SECRET),
        )
        .body(Body::from("grant%5Ftype=client%5Fcredentials"))
        .expect("request");
    issuer.send(request).await.ok();
    let metrics = issuer.issuer.metrics.render();
    let line = r#"tokenwarden_issuer_token_requests_total{grant="client_credentials",audience="https://banking.example.com",outcome="issued"} 1"#;
    assert!(metrics.contains(line), "{metrics}");
}

#[tokio::test]
async fn the_metrics_count_token_requests_by_grant_audience_and_outcome_never_raw_input() {
    let issuer = TestIssuer::standard();
    let worker = Some(("worker", SECRET));
    for _ in 0..2 {
        let reply = issuer
            .post(
                "/oauth/token",
                &[("grant_type", "client_credentials")],
                worker,
            )
            .await;
        assert_eq!(reply.status.as_u16(), 200);
    }
    let reply = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://unknown.example/attacker"),
            ],
            worker,
        )
        .await;
    assert_eq!(reply.error(), "invalid_target");
    let metrics = issuer.issuer.metrics.render();
    for line in [
        r#"tokenwarden_issuer_token_requests_total{grant="client_credentials",audience="https://banking.example.com",outcome="issued"} 2"#,
        r#"tokenwarden_issuer_token_requests_total{grant="client_credentials",audience="",outcome="invalid_target"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(!metrics.contains("attacker"), "{metrics}");
}

#[tokio::test]
async fn readyz_fails_while_draining_and_every_answer_then_closes_its_connection() {
    let issuer = TestIssuer::new(&policies_for("ES256"));
    let ready = issuer.get("/readyz").await;
    assert_eq!((ready.status.as_u16(), ready.text.as_str()), (200, "ok"));
    assert!(ready.headers.get("connection").is_none());

    issuer.issuer.draining.start();
    let ready = issuer.get("/readyz").await;
    assert_eq!(
        (ready.status.as_u16(), ready.text.as_str()),
        (503, "shutting down")
    );
    let token = issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("audience", "https://api-600.example.com"),
            ],
            Some(("worker", SECRET)),
        )
        .await;
    assert!(token.ok()["access_token"].is_string(), "still served");
    assert_eq!(token.headers["connection"], "close");
}

#[tokio::test]
async fn readyz_fails_while_a_policy_names_an_algorithm_without_an_active_key() {
    let issuer = TestIssuer::new(&policies_for("PS256"));
    assert_eq!(issuer.get("/readyz").await.status.as_u16(), 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let only_es256 = tokenwarden::tokens::KeySet::load_or_generate(
        &dir.path().join("keys.json"),
        &[tokenwarden::tokens::Algorithm::Es256],
        fixtures::T0,
    )
    .expect("keys");
    issuer
        .issuer
        .keys
        .store(std::sync::Arc::new(tokenwarden::issuer::Keys::new(
            only_es256,
            fixtures::T0,
        )));
    let ready = issuer.get("/readyz").await;
    assert_eq!(ready.status.as_u16(), 503);
    assert_eq!(
        ready.text,
        "no active PS256 signing key, which a policy names"
    );
}

/// The state gauges follow the issuer at each scrape: ready while `/readyz` is 200, when each
/// active key was made, a key that is gone no longer shown, and in standalone mode no
/// controller revision (there is no manifest).
#[tokio::test]
async fn the_metrics_say_whether_the_issuer_is_ready_and_when_each_active_key_was_made() {
    let issuer = TestIssuer::standard();
    let metrics = &issuer.issuer.metrics;
    metrics.observe(&issuer.issuer);
    let text = metrics.render();
    for line in [
        "tokenwarden_issuer_ready 1\n",
        "tokenwarden_issuer_config_manifest_revision 0\n",
        "tokenwarden_issuer_config_last_sync_timestamp_seconds 0\n",
        "tokenwarden_issuer_signing_key_created_timestamp_seconds{algorithm=\"ES256\"} 1800000000\n",
        "tokenwarden_issuer_signing_key_created_timestamp_seconds{algorithm=\"EdDSA\"} 1800000000\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    // Without keys: not ready, and no key to date.
    issuer
        .issuer
        .keys
        .store(std::sync::Arc::new(tokenwarden::issuer::Keys::new(
            tokenwarden::tokens::KeySet::new(),
            fixtures::T0,
        )));
    metrics.observe(&issuer.issuer);
    let text = metrics.render();
    assert!(text.contains("tokenwarden_issuer_ready 0\n"), "{text}");
    assert!(
        !text.contains("tokenwarden_issuer_signing_key_created_timestamp_seconds{"),
        "{text}"
    );
}
