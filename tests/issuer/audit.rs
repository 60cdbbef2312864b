//! The audit trail (docs/audit.md): one JSON line per decision of the token, revocation and
//! introspection endpoints and of a sign-in, with its fields, never a secret; and the request
//! id (`X-Request-Id`): a trusted proxy's sane one is kept, anything else is replaced.

use crate::fixtures::{
    ALICE, AuditLog, SECRET, TestIssuer, VERIFIER, WEB_CB, authorize_path, claims,
};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use std::sync::Arc;

const BANKING: &str = "https://banking.example.com";
const TODO: &str = "https://todo.example.com";

/// Nothing of `secrets` is in `line`.
#[track_caller]
fn holds_none_of(line: &Value, secrets: &[&str]) {
    let text = line.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
}

/// The fields every line has: its target, a request id (the response's), a latency.
#[track_caller]
fn common(line: &Value, request_id: Option<&str>) {
    assert_eq!(line["target"], "tokenwarden::audit", "{line}");
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert!(
        line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    let id = line["request_id"].as_str().expect("a request id");
    if let Some(expected) = request_id {
        assert_eq!(id, expected, "{line}");
    }
}

#[tokio::test]
async fn a_client_credentials_token_and_a_refusal_write_one_line_each_without_the_secret() {
    let issuer = TestIssuer::standard();
    let audit = AuditLog::capture();
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", BANKING),
        ("scope", "accounts:read"),
    ];
    let reply = issuer
        .post("/oauth/token", &form, Some(("worker", SECRET)))
        .await;
    let token = reply.ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["endpoint"], "token");
    assert_eq!(line["outcome"], "issued");
    assert_eq!(line["grant"], "client_credentials");
    assert_eq!(line["client_id"], "worker");
    assert_eq!(line["audience"], BANKING);
    assert_eq!(line["scope"], "accounts:read");
    assert_eq!(line["sub"], claims(&token)["sub"]);
    assert_eq!(line["jti"], claims(&token)["jti"]);
    assert!(
        line.get("error").is_none() && line.get("family_id").is_none(),
        "{line}"
    );
    holds_none_of(&line, &[SECRET, &token]);

    let wrong = "a-wrong-secret-that-must-not-be-logged";
    let reply = issuer
        .post("/oauth/token", &form, Some(("worker", wrong)))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["error"], "invalid_client");
    assert_eq!(line["grant"], "client_credentials");
    assert!(line.get("client_id").is_none(), "not authenticated: {line}");
    holds_none_of(&line, &[wrong]);

    let reply = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", TODO)],
            Some(("worker", SECRET)),
        )
        .await;
    let line = audit.one();
    assert_eq!(reply.error(), "invalid_target");
    assert_eq!(line["error"], "invalid_target");
    assert_eq!(line["client_id"], "worker", "authenticated, then refused");
}

#[tokio::test]
async fn a_code_exchange_and_a_refresh_name_the_subject_and_the_family_but_no_token() {
    let issuer = TestIssuer::standard();
    issuer
        .seed_code(
            "code-audit",
            "web",
            WEB_CB,
            TODO,
            "todos:read offline_access",
        )
        .await;
    let audit = AuditLog::capture();
    let reply = issuer.exchange_web("code-audit").await;
    let access = reply.ok()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let refresh = reply.ok()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["outcome"], "issued");
    assert_eq!(line["grant"], "authorization_code");
    assert_eq!(line["client_id"], "web");
    assert_eq!(line["sub"], "alice");
    assert_eq!(line["scope"], "offline_access todos:read");
    let family = claims(&access)["sid"].clone();
    assert!(family.is_string());
    assert_eq!(line["family_id"], family);
    holds_none_of(&line, &["code-audit", VERIFIER, &access, &refresh]);

    let reply = issuer.refresh_web(&refresh).await;
    let new_refresh = reply.ok()["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let line = audit.one();
    assert_eq!(line["grant"], "refresh_token");
    assert_eq!(line["outcome"], "issued");
    assert_eq!(line["family_id"], family);
    holds_none_of(&line, &[&refresh, &new_refresh]);

    // The retired token again: reuse, refused.
    let reply = issuer.refresh_web(&refresh).await;
    assert_eq!(reply.error(), "invalid_grant");
    let line = audit.one();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["error"], "invalid_grant");
    assert_eq!(line["client_id"], "web");
    holds_none_of(&line, &[&refresh]);
}

#[tokio::test]
async fn revocations_say_what_they_revoked_and_refusals_their_error() {
    let issuer = TestIssuer::standard();
    let refresh = issuer.web_refresh_token().await;
    let audit = AuditLog::capture();
    let reply = issuer
        .post(
            "/oauth/revoke",
            &[("client_id", "web"), ("token", &refresh)],
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["endpoint"], "revoke");
    assert_eq!(line["outcome"], "revoked");
    assert_eq!(line["client_id"], "web");
    assert_eq!(line["sub"], "alice");
    assert_eq!(line["audience"], TODO);
    assert!(line["family_id"].is_string(), "{line}");
    holds_none_of(&line, &[&refresh]);

    let junk = "not-a-token-but-never-logged";
    issuer
        .post(
            "/oauth/revoke",
            &[("client_id", "web"), ("token", junk)],
            None,
        )
        .await;
    let line = audit.one();
    assert_eq!(line["outcome"], "unknown");
    holds_none_of(&line, &[junk]);

    let token = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", BANKING)],
            Some(("worker", SECRET)),
        )
        .await
        .ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    audit.take();
    let reply = issuer
        .post(
            "/oauth/revoke",
            &[("client_id", "web"), ("token", &token)],
            None,
        )
        .await;
    assert_eq!(reply.error(), "unauthorized_client");
    let line = audit.one();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["error"], "unauthorized_client");
    assert_eq!(line["client_id"], "web");
    holds_none_of(&line, &[&token]);

    let reply = issuer
        .post(
            "/oauth/revoke",
            &[("token", &token)],
            Some(("worker", SECRET)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let line = audit.one();
    assert_eq!(line["outcome"], "revoked");
    assert_eq!(line["jti"], claims(&token)["jti"]);
    assert_eq!(line["sub"], claims(&token)["sub"]);
    holds_none_of(&line, &[&token, SECRET]);
}

#[tokio::test]
async fn introspections_say_active_or_inactive_and_a_public_caller_is_refused() {
    let issuer = TestIssuer::standard();
    let token = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("audience", BANKING)],
            Some(("worker", SECRET)),
        )
        .await
        .ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let audit = AuditLog::capture();
    let reply = issuer
        .post(
            "/oauth/introspect",
            &[("token", &token)],
            Some(("worker", SECRET)),
        )
        .await;
    assert_eq!(reply.ok()["active"], true);
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["endpoint"], "introspect");
    assert_eq!(line["outcome"], "active");
    assert_eq!(line["client_id"], "worker");
    assert_eq!(line["jti"], claims(&token)["jti"]);
    assert_eq!(line["audience"], BANKING);
    holds_none_of(&line, &[&token, SECRET]);

    let junk = "junk-presented-for-introspection";
    issuer
        .post(
            "/oauth/introspect",
            &[("token", junk)],
            Some(("worker", SECRET)),
        )
        .await;
    let line = audit.one();
    assert_eq!(line["outcome"], "inactive");
    assert!(line.get("jti").is_none(), "{line}");
    holds_none_of(&line, &[junk]);

    let reply = issuer
        .post(
            "/oauth/introspect",
            &[("client_id", "web"), ("token", &token)],
            None,
        )
        .await;
    assert_eq!(reply.error(), "invalid_client");
    let line = audit.one();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["error"], "invalid_client");
    holds_none_of(&line, &[&token]);
}

#[tokio::test]
async fn a_sign_in_writes_refused_with_its_reason_then_signed_in_and_never_the_password() {
    let issuer = TestIssuer::with_users(crate::fixtures::STANDARD);
    let mut browser = issuer.browser();
    let page = browser.get(&authorize_path(&[])).await;
    let form = page.login_form();
    let audit = AuditLog::capture();
    assert!(audit.take().is_empty(), "showing the form is no decision");

    let wrong = "wrong-password-never-logged";
    let reply = browser.submit(&form, ALICE.0, wrong).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["endpoint"], "sign_in");
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["reason"], "wrong_credentials");
    assert_eq!(line["client_id"], "web");
    assert_eq!(line["audience"], TODO);
    assert_eq!(line["client_address"], "192.0.2.10");
    assert!(line.get("sub").is_none(), "{line}");
    holds_none_of(&line, &[wrong, &form.csrf_token, &form.login]);

    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    let (_, query) = reply.redirect();
    let line = audit.one();
    assert_eq!(line["outcome"], "signed_in");
    assert_eq!(line["sub"], "alice");
    assert_eq!(line["scope"], "offline_access todos:read");
    holds_none_of(&line, &[ALICE.1, &query["code"], &form.csrf_token]);

    // The form again, after it was used: refused, expired.
    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let line = audit.one();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["reason"], "expired");
    holds_none_of(&line, &[ALICE.1]);

    // A cancelled sign-in goes back to the client with access_denied.
    let page = browser.get(&authorize_path(&[])).await;
    let form = page.login_form();
    audit.take();
    let reply = browser
        .post(
            "/authorize",
            &[
                ("login", &form.login),
                ("csrf_token", &form.csrf_token),
                ("cancel", "1"),
            ],
        )
        .await;
    assert_eq!(reply.redirect().1["error"], "access_denied");
    let line = audit.one();
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["error"], "access_denied");
    assert_eq!(line["reason"], "cancelled");
}

#[tokio::test]
async fn a_callback_with_an_unknown_state_is_a_refused_sign_in() {
    let issuer = TestIssuer::standard().with_upstream("http://127.0.0.1:9/provider");
    let audit = AuditLog::capture();
    let state = "forged-state-never-logged";
    let reply = issuer
        .get(&format!("/callback/oidc?state={state}&code=stolen-code"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let line = audit.one();
    common(&line, reply.header("x-request-id"));
    assert_eq!(line["endpoint"], "sign_in");
    assert_eq!(line["outcome"], "refused");
    assert_eq!(line["reason"], "unknown_state");
    holds_none_of(&line, &[state, "stolen-code"]);
}

/// A token request from `peer` with these `X-Request-Id` values.
fn from_peer(peer: &str, ids: &[&[u8]]) -> Request<Body> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("audience", BANKING),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ])
        .finish();
    let mut request = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.7");
    for id in ids {
        request = request.header("x-request-id", *id);
    }
    let peer: std::net::SocketAddr = peer.parse().expect("address");
    request
        .extension(axum::extract::ConnectInfo(peer))
        .body(Body::from(body))
        .expect("request")
}

#[tokio::test]
async fn a_trusted_proxys_sane_request_id_is_kept_and_any_other_is_replaced() {
    let mut issuer = TestIssuer::standard();
    issuer.issuer.trusted_proxies = Arc::new("10.0.0.0/8".parse().expect("networks"));
    let audit = AuditLog::capture();

    let reply = issuer
        .send(from_peer("10.0.0.5:4000", &[b"edge-42.abc"]))
        .await;
    assert_eq!(reply.header("x-request-id"), Some("edge-42.abc"));
    let line = audit.one();
    assert_eq!(line["request_id"], "edge-42.abc");
    assert_eq!(line["client_address"], "198.51.100.7", "the proxy's client");

    // The same header from a client talking directly: not believed.
    let reply = issuer
        .send(from_peer("198.51.100.9:4000", &[b"edge-42.abc"]))
        .await;
    let fresh = reply.header("x-request-id").expect("an id").to_owned();
    assert_ne!(fresh, "edge-42.abc");
    assert_eq!(fresh.len(), 32, "{fresh}");
    let line = audit.one();
    assert_eq!(line["request_id"], fresh.as_str());
    assert_eq!(line["client_address"], "198.51.100.9", "the peer itself");

    // Garbled ids from the trusted proxy: replaced.
    let too_long = "x".repeat(129);
    for garbled in [
        &[too_long.as_bytes()][..],
        &[b"two words"],
        &[b"one", b"two"],
        &[b"caf\xc3\xa9"],
    ] {
        let reply = issuer.send(from_peer("10.0.0.5:4000", garbled)).await;
        let id = reply.header("x-request-id").expect("an id").to_owned();
        assert_eq!(id.len(), 32, "{garbled:?} gave {id}");
        assert_eq!(audit.one()["request_id"], id.as_str());
    }

    // Every response has one, decision or not, and no line without a decision.
    let reply = issuer.get("/healthz").await;
    assert_eq!(reply.header("x-request-id").map(str::len), Some(32));
    assert!(audit.take().is_empty());
}

/// The binary writes the audit line as JSON while its other logs are text, with the client's
/// address from the connection; `RUST_LOG` switches the trail off like any other target.
#[tokio::test]
async fn the_binary_writes_json_audit_lines_among_text_logs_and_the_filter_switches_them_off() {
    use crate::fixtures::binary::{folder_with_policies, free_port, start_standalone_with};
    let dir = folder_with_policies(crate::fixtures::STANDARD);
    let issuer = start_standalone_with(dir.path(), free_port(), &[], &[]).await;
    let reply = crate::fixtures::client_credentials(&issuer.base, "worker", SECRET, BANKING).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    // The audit thread writes the line a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !issuer.log_text().contains("tokenwarden::audit") && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = issuer.log_text();
    let audit: Vec<Value> = log
        .lines()
        .filter(|line| line.contains("tokenwarden::audit"))
        .map(|line| serde_json::from_str(line).expect("a JSON audit line"))
        .collect();
    assert_eq!(audit.len(), 1, "{log}");
    assert_eq!(audit[0]["outcome"], "issued");
    assert_eq!(audit[0]["client_address"], "127.0.0.1");
    assert_eq!(
        audit[0]["request_id"],
        reply.header("x-request-id").expect("id")
    );
    assert!(
        log.lines().any(|line| !line.starts_with('{')),
        "the other logs stay text: {log}"
    );
    drop(issuer);

    let quiet = [("RUST_LOG", "info,tokenwarden::audit=off")];
    let mut issuer = start_standalone_with(dir.path(), free_port(), &[], &quiet).await;
    let reply = crate::fixtures::client_credentials(&issuer.base, "worker", SECRET, BANKING).await;
    assert_eq!(reply.status, StatusCode::OK);
    // After a graceful stop every queued line is written: none here.
    assert!(issuer.stop_gracefully());
    let log = issuer.log_text();
    assert!(!log.contains("tokenwarden::audit"), "{log}");
    assert!(!log.is_empty(), "other logs are still written");
}
