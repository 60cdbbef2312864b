//! The standalone issuer as users run it: the real binary, a folder of policies, a data dir.
//! Refresh tokens issued before a restart — graceful or `kill -9` — still work after it, with
//! the same signing keys, and revoked access tokens stay revoked; and a change on disk takes effect without a restart. Signing keys
//! rotate on schedule in `keys.json`, published before they sign, across a restart. Its
//! Prometheus metrics are on the `--metrics-listen` port, never on the public one.

use crate::fixtures;

use fixtures::binary::{
    folder_with_policies, free_port, jwks_kids, seed_code_in, start_standalone as start,
    start_standalone_logging_to, start_standalone_with, worker_kid,
};
use fixtures::{Reply, SECRET, STANDARD, VERIFIER, post_form, token};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Exchange the code `seed_code_in` stored as "the-code" for `web`.
async fn exchange_the_code(base: &str) -> Reply {
    token(
        base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", "the-code"),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn refresh(base: &str, refresh_token: &str) -> Reply {
    token(
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "web"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// An access token of the confidential client `worker` (client_credentials).
async fn worker_token(base: &str) -> String {
    let answer = token(
        base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    answer["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Whether `worker` finds its access token active (RFC 7662).
async fn active(base: &str, token: &str) -> bool {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/oauth/introspect"))
        .form(&[
            ("token", token),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    answer["active"].as_bool().expect("active")
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("header")
        .kid
        .expect("kid")
}

/// `tokenwarden issuer ... 2>&1 | head -2`: once the reader of its log is gone, every log
/// line meets a closed pipe. The issuer goes on serving, requests that log still get their
/// answer, and SIGTERM still stops it cleanly.
#[tokio::test]
async fn a_closed_log_pipe_neither_breaks_requests_nor_stops_shutdown() {
    let dir = folder_with_policies(STANDARD);
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    seed_code_in(&dir.path().join("data"), "the-code").await;
    let port = free_port();
    let mut issuer = start_standalone_logging_to(dir.path(), port, &[], &[], Stdio::piped()).await;
    drop(issuer.child.stderr.take());

    let first = exchange_the_code(&issuer.base).await;
    let token = first["refresh_token"].as_str().expect("refresh token");
    assert!(refresh(&issuer.base, token).await["refresh_token"].is_string());
    // A replay, which is logged as a warning, still gets its answer.
    assert_eq!(refresh(&issuer.base, token).await["error"], "invalid_grant");
    assert!(issuer.stop_gracefully(), "a clean exit on SIGTERM");
}

/// SIGTERM with a drain period, as the chart sets it: `/readyz` fails at once (so a Service
/// stops sending new requests), tokens are still issued for the whole period and every answer
/// closes its connection (so kept-alive clients move to another replica), then the process
/// exits cleanly, not before.
#[tokio::test]
async fn on_sigterm_readiness_fails_at_once_and_the_issuer_serves_through_the_drain_then_exits() {
    let dir = folder_with_policies(STANDARD);
    let drain = ["--shutdown-drain-seconds".to_owned(), "2".to_owned()];
    let mut issuer = start_standalone_with(dir.path(), free_port(), &drain, &[]).await;
    let http = reqwest::Client::new();
    let token = |http: reqwest::Client, base: String| async move {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ];
        let answer = post_form(&http, &format!("{base}/oauth/token"), &form).await;
        let closes = answer.header("connection") == Some("close");
        (answer["access_token"].is_string(), closes)
    };
    assert_eq!(
        token(http.clone(), issuer.base.clone()).await,
        (true, false)
    );

    assert!(issuer.terminate(), "SIGTERM sent");
    let sent = Instant::now();
    loop {
        let ready = http
            .get(format!("{}/readyz", issuer.base))
            .send()
            .await
            .expect("still answering");
        if ready.status() == 503 {
            assert_eq!(ready.text().await.expect("text"), "shutting down");
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "readiness fails at once"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        token(http.clone(), issuer.base.clone()).await,
        (true, true),
        "served while draining, closing the connection"
    );
    tokio::time::sleep(Duration::from_millis(1_500).saturating_sub(sent.elapsed())).await;
    assert_eq!(token(http.clone(), issuer.base.clone()).await, (true, true));
    let status = loop {
        if let Some(status) = issuer.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "exits after the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{}", issuer.log_text());
    assert!(
        sent.elapsed() >= Duration::from_secs(2),
        "not before the drain period ends: {:?}",
        sent.elapsed()
    );
}

/// A pod of the embedded issuer deleted (or evicted) is replaced at once, on the same volume,
/// while it still drains: the new process waits for the store the old one has open, and serves
/// once the old one exits, rather than exiting with "Database already open" and crash-looping
/// (what the real node of tests/real_node.rs showed).
#[tokio::test]
async fn a_second_issuer_on_the_same_data_dir_waits_for_the_store_and_serves_once_the_first_exits()
{
    let dir = folder_with_policies(STANDARD);
    let drain = ["--shutdown-drain-seconds".to_owned(), "1".to_owned()];
    let mut first = start_standalone_with(dir.path(), free_port(), &drain, &[]).await;
    let shared = dir.path().to_owned();
    let second =
        tokio::spawn(async move { start_standalone_with(&shared, free_port(), &[], &[]).await });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        !second.is_finished(),
        "the second issuer waits while the first has the store"
    );
    assert!(first.stop_gracefully(), "{}", first.log_text());
    let second = second.await.expect("the second issuer becomes ready");
    assert!(
        second
            .log_text()
            .contains("another process has the store open"),
        "{}",
        second.log_text()
    );
    let answer = post_form(
        &reqwest::Client::new(),
        &format!("{}/oauth/token", second.base),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert!(answer["access_token"].is_string(), "{answer}");
}

/// The standalone issuer on a new port, under one `--issuer-url` across restarts: an access
/// token's `iss` must stay the issuer's for introspection to find it active.
async fn start_named(dir: &std::path::Path) -> fixtures::binary::RunningIssuer {
    let named = [
        "--issuer-url".to_owned(),
        "https://issuer.restart.test".to_owned(),
    ];
    start_standalone_with(dir, free_port(), &named, &[]).await
}

#[tokio::test]
async fn refresh_tokens_and_keys_survive_a_graceful_restart_and_kill_9() {
    let dir = folder_with_policies(STANDARD);
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    seed_code_in(&dir.path().join("data"), "the-code").await;

    let issuer = start_named(dir.path()).await;
    let first = exchange_the_code(&issuer.base).await;
    let token = first["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let kid_before = kid(first["access_token"].as_str().expect("access token"));

    // kill -9: the rotation committed before the response must survive, and so must a
    // revocation of an access token (its `jti` is kept until the token's `exp`).
    let rotated = refresh(&issuer.base, &token).await["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    let (revoked, kept) = (
        worker_token(&issuer.base).await,
        worker_token(&issuer.base).await,
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/oauth/revoke", issuer.base))
        .form(&[
            ("token", revoked.as_str()),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .expect("revoke");
    assert_eq!(answer.status(), 200);
    assert!(!active(&issuer.base, &revoked).await, "revoked");
    assert!(active(&issuer.base, &kept).await, "the other one active");
    let mut issuer = issuer;
    issuer.child.kill().expect("SIGKILL");
    issuer.child.wait().expect("reaped");
    drop(issuer);

    let issuer = start_named(dir.path()).await;
    assert!(
        !active(&issuer.base, &revoked).await,
        "revoked after kill -9"
    );
    assert!(
        active(&issuer.base, &kept).await,
        "the other one still active"
    );
    let after = refresh(&issuer.base, &rotated).await;
    let token = after["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("after kill -9: {after}"))
        .to_owned();
    assert_eq!(
        kid(after["access_token"].as_str().expect("access token")),
        kid_before,
        "same keys"
    );

    // A graceful stop (SIGTERM, as Kubernetes stops a pod): it exits with success, and the
    // token issued after the crash works on the next start, signed with the same keys.
    let mut issuer = issuer;
    assert!(issuer.stop_gracefully(), "a clean exit on SIGTERM");
    drop(issuer);
    let issuer = start_named(dir.path()).await;
    let after = refresh(&issuer.base, &token).await;
    assert!(
        after["refresh_token"].is_string(),
        "after a graceful restart: {after}"
    );
    assert_eq!(
        kid(after["access_token"].as_str().expect("access token")),
        kid_before,
        "same keys"
    );
    // The token retired before the crash is still retired: presenting it is a replay (which
    // also revokes the family, so this comes last).
    assert_eq!(
        refresh(&issuer.base, &rotated).await["error"],
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_change_on_disk_takes_effect_without_a_restart_and_an_invalid_one_is_reported() {
    let dir = folder_with_policies(STANDARD);
    let issuer = start(dir.path()).await;
    let cc = || {
        token(
            &issuer.base,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "worker"),
                ("client_secret", fixtures::SECRET),
            ],
        )
    };
    assert_eq!(cc().await["expires_in"], 600);
    std::fs::write(
        dir.path().join("policies/all.yaml"),
        STANDARD.replace(
            "tokenExpirationSeconds: 600",
            "tokenExpirationSeconds: 1200",
        ),
    )
    .expect("rewrite");
    // The contract's second comes from the folder's poll (`standalone::POLL_INTERVAL`, 250 ms);
    // a wall-clock bound here would fail on a busy machine, so the deadline is generous.
    let changed = Instant::now();
    loop {
        if cc().await["expires_in"] == 1200 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "the change never took effect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An invalid edit is reported and the last valid policy stays in force.
    std::fs::write(
        dir.path().join("policies/all.yaml"),
        STANDARD.replace(
            "tokenExpirationSeconds: 600",
            "tokenExpirationSeconds: 2592001",
        ),
    )
    .expect("rewrite");
    let rewritten = Instant::now();
    while !issuer
        .log_text()
        .lines()
        .any(|line| line.contains("not loaded") && line.contains("2592001"))
    {
        assert!(
            rewritten.elapsed() < Duration::from_secs(10),
            "the invalid edit was never reported: {}",
            issuer.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cc().await["expires_in"], 1200);
}

#[tokio::test]
async fn standalone_keys_rotate_on_schedule_published_first_and_kept_across_a_restart() {
    let dir = folder_with_policies(STANDARD);
    // The rotation flags through their environment variables, as a Deployment would set them.
    let flags = [
        ("TOKENWARDEN_KEY_ROTATION_INTERVAL", "6s"),
        ("TOKENWARDEN_KEY_PUBLISH_LEAD", "3s"),
        ("TOKENWARDEN_KEY_CLOCK_SKEW", "1s"),
    ];
    let issuer = start_standalone_with(dir.path(), free_port(), &[], &flags).await;
    let old = worker_kid(&issuer.base).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_before_signing: Vec<String> = Vec::new();
    let new = loop {
        assert!(Instant::now() < deadline, "no rotation within 30 s");
        let published = jwks_kids(&issuer.base).await;
        let signing = worker_kid(&issuer.base).await;
        if signing == old {
            seen_before_signing.extend(published.into_iter().filter(|k| *k != old));
        } else {
            assert!(
                seen_before_signing.contains(&signing),
                "the new key {signing} signed before the JWKS showed it"
            );
            break signing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The old key still verifies the 600 s tokens it signed; the new one is on disk.
    assert!(jwks_kids(&issuer.base).await.contains(&old));
    let file = std::fs::read_to_string(dir.path().join("data/keys.json")).expect("keys.json");
    assert!(file.contains(&new), "the promoted key is saved");
    drop(issuer);

    let again = start_standalone_with(dir.path(), free_port(), &[], &flags).await;
    let after = worker_kid(&again.base).await;
    assert_ne!(after, old, "a restart does not go back to the retired key");
    assert!(jwks_kids(&again.base).await.contains(&old));
}

/// `GET /metrics` is served over HTTP on the `--metrics-listen` port, as OpenMetrics (or
/// Prometheus) text that counts the tokens issued, and not on the public port.
#[tokio::test]
async fn metrics_are_served_on_the_metrics_port_and_not_on_the_public_one() {
    let dir = folder_with_policies(STANDARD);
    let issuer = start(dir.path()).await;
    for _ in 0..2 {
        worker_token(&issuer.base).await;
    }
    let response = reqwest::get(format!("{}/metrics", issuer.metrics))
        .await
        .expect("GET /metrics on the metrics port");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text")
            || content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.expect("text");
    let issued = r#"tokenwarden_issuer_token_requests_total{grant="client_credentials",audience="https://banking.example.com",outcome="issued"} 2"#;
    assert!(
        text.lines().any(|line| line == issued),
        "{issued} in:\n{text}"
    );
    assert!(
        text.lines()
            .any(|line| line == "# TYPE tokenwarden_issuer_token_requests counter"),
        "{text}"
    );
    if content_type.starts_with("application/openmetrics-text") {
        assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    }

    let public = reqwest::get(format!("{}/metrics", issuer.base))
        .await
        .expect("GET /metrics on the public port");
    assert_eq!(public.status(), 404, "/metrics on the public port");
}

/// The data directory is created 0700, the signing keys and the embedded database 0600. When
/// they were left open to group or others (an older version, a copy, a chmod), the next start
/// says so, naming each path and both modes, and takes those bits away.
#[tokio::test]
async fn the_data_directory_is_private_and_loose_modes_are_tightened_with_a_warning() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = folder_with_policies(STANDARD);
    let data = dir.path().join("data");
    // Each path, its mode as created, and a looser one.
    let files = [
        (data.clone(), 0o700, 0o755),
        (data.join("keys.json"), 0o600, 0o644),
        (data.join("tokenwarden.redb"), 0o600, 0o640),
    ];
    let modes = || -> Vec<u32> {
        files
            .iter()
            .map(|(path, _, _)| {
                let meta = std::fs::metadata(path).expect("the file is there");
                meta.permissions().mode() & 0o777
            })
            .collect()
    };
    let private: Vec<u32> = files.iter().map(|(_, mode, _)| *mode).collect();
    let mut issuer = start(dir.path()).await;
    assert!(issuer.stop_gracefully(), "the issuer stops");
    assert_eq!(modes(), private, "as created");

    for (path, _, loose) in &files {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(*loose)).expect("chmod");
    }
    let again = start(dir.path()).await;
    assert_eq!(modes(), private, "tightened");
    let log = again.log_text();
    for (path, private, loose) in &files {
        let (found, now) = (format!("found={loose:04o}"), format!("now={private:04o}"));
        let path = format!("path={}", path.display());
        let said = log.lines().any(|line| {
            line.contains("WARN")
                && line.split(' ').any(|field| field == path)
                && line.contains(&found)
                && line.contains(&now)
        });
        assert!(said, "no warning for {path} {found} {now}:\n{log}");
    }
}
