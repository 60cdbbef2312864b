//! Two real issuer processes on one PostgreSQL database, as several replicas run: concurrent
//! refreshes of one token across both give one successor and no double spend, a replay on
//! one replica after a rotation on the other revokes the family, a revocation on one is
//! refused by the other at once (neither caches what the store holds), and a sign-in begun on
//! one is finished on the other (no session affinity needed), and failed sign-ins on both
//! count towards one lockout.

use crate::fixtures;
use crate::support;

use fixtures::binary::{
    HttpLoginForm, RunningIssuer, alice_users_flags, folder_with_policies, free_port, jwks_kids,
    seed_code_in_database, start_standalone_with, start_two_replicas, worker_kid,
};
use fixtures::{ALICE, Reply, STANDARD, VERIFIER, WEB_CB, post_form};
use support::postgres::postgres;
use tokenwarden::store::OpaqueToken;

struct Replicas {
    _dir: tempfile::TempDir,
    db: String,
    url: String,
    a: RunningIssuer,
    b: RunningIssuer,
}

/// A fresh database and two issuers on it, sharing one folder of policies and keys.
async fn two_replicas() -> Replicas {
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(STANDARD);
    let (a, b) = start_two_replicas(dir.path(), &url, &alice_users_flags(dir.path())).await;
    Replicas {
        _dir: dir,
        db,
        url,
        a,
        b,
    }
}

async fn post(client: &reqwest::Client, base: &str, path: &str, form: &[(&str, &str)]) -> Reply {
    post_form(client, &format!("{base}{path}"), form).await
}

async fn refresh(client: &reqwest::Client, base: &str, token: &str) -> Reply {
    post(
        client,
        base,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "web"),
            ("refresh_token", token),
        ],
    )
    .await
}

/// Exchanges a freshly seeded code on `base`; returns the refresh token.
async fn first_refresh_token(replicas: &Replicas, base: &str) -> String {
    let code = OpaqueToken::generate().expect("entropy");
    seed_code_in_database(&replicas.url, code.expose()).await;
    let Reply {
        status, json: body, ..
    } = post(
        &reqwest::Client::new(),
        base,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", code.expose()),
            ("redirect_uri", "https://app.example.com/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

/// The key the store keeps a refresh token under.
fn key(token: &str) -> Vec<u8> {
    OpaqueToken::from_presented(token).refresh_key().0.to_vec()
}

/// `(tokens stored in the family of token, whether the family is revoked)`, read directly.
async fn family_of(db: &str, token: &str) -> (i64, bool) {
    let row = postgres()
        .client(db)
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM refresh_tokens t WHERE t.family = f.id), \
                    f.revoked_at IS NOT NULL \
             FROM families f WHERE f.id = (SELECT family FROM refresh_tokens WHERE hash = $1)",
            &[&key(token)],
        )
        .await
        .expect("read the family");
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_refreshes_of_one_token_on_two_replicas_give_one_successor() {
    let replicas = two_replicas().await;
    let token = first_refresh_token(&replicas, &replicas.a.base).await;

    let client = reqwest::Client::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(1000));
    let requests: Vec<_> = (0..1000)
        .map(|i| {
            let base = if i % 2 == 0 {
                &replicas.a.base
            } else {
                &replicas.b.base
            }
            .clone();
            let (client, token, barrier) = (client.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                refresh(&client, &base, &token).await
            })
        })
        .collect();
    let mut granted = Vec::new();
    let mut refused = 0;
    for request in requests {
        let Reply {
            status, json: body, ..
        } = request.await.expect("task");
        match status.as_u16() {
            200 => granted.push(body["refresh_token"].as_str().expect("token").to_owned()),
            400 => {
                assert_eq!(body["error"], "invalid_grant", "{body}");
                refused += 1;
            }
            // A request that waited too long for a connection is told to come back; it spent
            // nothing.
            503 => assert_eq!(body["error"], "temporarily_unavailable", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(granted.len(), 1, "exactly one refresh wins: {granted:?}");
    assert!(refused > 0);
    // One chain: the original and its one successor, and the replays revoked the family
    // (the reuse interval of this policy is 0).
    assert_eq!(family_of(&replicas.db, &token).await, (2, true));
    let Reply { status, .. } = refresh(&client, &replicas.b.base, &granted[0]).await;
    assert_eq!(
        status, 400,
        "the successor of a replayed family is revoked too"
    );
    for issuer in [&replicas.a, &replicas.b] {
        assert!(
            !issuer.log_text().contains("panicked"),
            "{}",
            issuer.log_text()
        );
    }
}

#[tokio::test]
async fn a_replay_on_one_replica_after_a_rotation_on_the_other_revokes_the_family() {
    let replicas = two_replicas().await;
    let client = reqwest::Client::new();
    let first = first_refresh_token(&replicas, &replicas.a.base).await;
    let Reply {
        status, json: body, ..
    } = refresh(&client, &replicas.a.base, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = body["refresh_token"].as_str().expect("rotated").to_owned();

    let Reply {
        status, json: body, ..
    } = refresh(&client, &replicas.b.base, &first).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for base in [&replicas.a.base, &replicas.b.base] {
        let Reply {
            status, json: body, ..
        } = refresh(&client, base, &second).await;
        assert_eq!(
            (status.as_u16(), body["error"].as_str()),
            (400, Some("invalid_grant")),
            "the newest token of a replayed family is dead on every replica"
        );
    }
    assert_eq!(family_of(&replicas.db, &first).await, (2, true));
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_refused_by_the_other_at_once() {
    let replicas = two_replicas().await;
    let client = reqwest::Client::new();
    let token = first_refresh_token(&replicas, &replicas.a.base).await;
    let Reply { status, .. } = post(
        &client,
        &replicas.b.base,
        "/oauth/revoke",
        &[("token", &token), ("client_id", "web")],
    )
    .await;
    assert_eq!(status, 200);
    let Reply {
        status, json: body, ..
    } = refresh(&client, &replicas.a.base, &token).await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

/// The login form shown by A is posted to B, the code B issues is exchanged at A, and the same
/// POST replayed at A finds the sign-in gone.
#[tokio::test]
async fn a_sign_in_begun_on_one_replica_finishes_on_the_other() {
    let replicas = two_replicas().await;
    let (a, b) = (&replicas.a.base, &replicas.b.base);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = HttpLoginForm::from(&http, a).await;

    let reply = form.submit(&http, b, ALICE.0, ALICE.1).await;
    let reply = reply.expect("the form posted to B");
    assert_eq!(reply.status(), 303, "{}", replicas.b.log_text());
    let location = reply.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let url = reqwest::Url::parse(&location).expect("a URL");
    assert!(location.starts_with(WEB_CB), "{location}");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");

    let Reply {
        status, json: body, ..
    } = post(
        &http,
        a,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());

    let replay = form.submit(&http, a, ALICE.0, ALICE.1).await;
    let replay = replay.expect("the form posted again to A");
    assert_eq!(
        replay.status(),
        400,
        "a sign-in completes once, on any replica"
    );
}

#[tokio::test]
async fn failed_sign_ins_on_both_replicas_count_together() {
    let replicas = two_replicas().await;
    let (a, b) = (&replicas.a.base, &replicas.b.base);
    let http = reqwest::Client::new();
    let form = HttpLoginForm::from(&http, a).await;
    // 5 failures lock a username: 3 on A and 2 on B, fewer than 5 on either.
    for base in [a, a, a, b, b] {
        let reply = form.submit(&http, base, ALICE.0, "wrong").await;
        assert_eq!(reply.expect("posted").status(), 401);
    }
    for base in [a, b] {
        let reply = form.submit(&http, base, ALICE.0, ALICE.1).await;
        let reply = reply.expect("posted");
        assert_eq!(reply.status(), 429, "locked on every replica");
        // 60 s from the lockout, counted down in whole seconds by the time it is asked.
        let wait: u64 = reply.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((55..=60).contains(&wait), "Retry-After {wait}");
    }
    let rows: i64 = postgres()
        .client(&replicas.db)
        .await
        .query_one("SELECT count(*) FROM sign_in_failures", &[])
        .await
        .expect("count the failure rows")
        .get(0);
    assert_eq!(rows, 2, "alice and the test's address, once each");
}

#[tokio::test]
async fn the_database_password_never_reaches_the_log() {
    let replicas = two_replicas().await;
    let _ = first_refresh_token(&replicas, &replicas.b.base).await;
    let password = postgres().password();
    for issuer in [&replicas.a, &replicas.b] {
        let log = issuer.log_text();
        assert!(log.contains("postgresql"), "the log names the store: {log}");
        assert!(!log.contains(password), "{log}");
    }
}

#[tokio::test]
async fn the_database_url_can_come_from_a_file_as_a_mounted_secret_would() {
    let replicas = two_replicas().await;
    let dir = folder_with_policies(STANDARD);
    let file = dir.path().join("database-url");
    std::fs::write(&file, format!("{}\n", replicas.url)).expect("write the URL");
    let file = file.to_str().expect("utf-8 path");
    let c = start_standalone_with(
        dir.path(),
        free_port(),
        &[],
        &[("TOKENWARDEN_DATABASE_URL_FILE", file)],
    )
    .await;
    // A token from replica A refreshes on the third issuer: one database.
    let token = first_refresh_token(&replicas, &replicas.a.base).await;
    let Reply {
        status, json: body, ..
    } = refresh(&reqwest::Client::new(), &c.base, &token).await;
    assert_eq!(status, 200, "{body}");
}

/// Runs `tokenwarden issuer ARGS`, which must stop with a start-up error; returns its
/// stderr. An issuer still running after 30 s started: it is killed and the test fails.
fn failed_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = dir.path().join("stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
        .args(["issuer", "--policies"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("create the stderr file"))
        .spawn()
        .expect("run the issuer");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the issuer") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the issuer started with {args:?}:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr).expect("read its stderr");
    assert!(
        !status.success(),
        "the issuer exited with success: {stderr}"
    );
    stderr
}

#[test]
fn an_unreadable_url_file_or_both_flags_stop_the_start_without_showing_the_url() {
    let stderr = failed_start(&["--database-url-file", "/nonexistent/database-url"]);
    assert!(
        stderr.contains("cannot read --database-url-file /nonexistent/database-url"),
        "{stderr}"
    );
    let stderr = failed_start(&[
        "--database-url",
        "postgres://u:hunter2@db/tw",
        "--database-url-file",
        "/nonexistent/database-url",
    ]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let stderr = failed_start(&["--database-url", "postgres://u:hunter2@db/tw?sslmode=bogus"]);
    assert!(stderr.contains("sslmode must be"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// Two standalone replicas on one data folder rotate their signing keys as one: one of them
/// stages the next key, the other puts it in force from the file, so at every moment the key
/// either one signs with is in the JWKS of both (a client may fetch the JWKS from one replica
/// and get its tokens from the other). Each staging its own key would fail that.
#[tokio::test]
async fn replicas_sharing_a_data_folder_rotate_to_the_same_keys() {
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(STANDARD);
    let env = [
        ("TOKENWARDEN_DATABASE_URL", url.as_str()),
        // The lead leaves the other replica several of its one-second checks to take up a
        // staged key before it signs, on a machine busy with other tests.
        ("TOKENWARDEN_KEY_ROTATION_INTERVAL", "6s"),
        ("TOKENWARDEN_KEY_PUBLISH_LEAD", "4s"),
        ("TOKENWARDEN_KEY_CLOCK_SKEW", "1s"),
    ];
    let a = start_standalone_with(dir.path(), free_port(), &[], &env).await;
    let b = start_standalone_with(dir.path(), free_port(), &[], &env).await;
    // Keys seen signing, in order. During a switch one replica may still sign with the old
    // key for a moment (both are published), so a kid can come back: count new keys only.
    let mut seen = vec![worker_kid(&a.base).await];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while seen.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} rotations within 40 s",
            seen.len() - 1
        );
        for (signer, other) in [(&a, &b), (&b, &a)] {
            let kid = worker_kid(&signer.base).await;
            // The other's JWKS is read after the token was signed.
            let published = jwks_kids(&other.base).await;
            assert!(
                published.contains(&kid),
                "{} signs with {kid}, which {} does not publish ({published:?})",
                signer.base,
                other.base
            );
            if !seen.contains(&kid) {
                seen.push(kid);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A data folder another user owns, as Kubernetes mounts a volume (root's, group the pod's
/// `fsGroup`, 2775; or 0777, as an `emptyDir` or a local-path volume of kind and k3s), cannot
/// be made 0700 by the issuer: it starts all the same, says so naming the folder and its mode,
/// and its files with secrets are its own and 0600. As root the test runs the issuer as
/// `nobody` on such a folder; otherwise the folder is the issuer's own, and it is made 0700.
#[tokio::test]
async fn a_volume_owned_by_root_is_used_and_its_files_are_private() {
    for volume_mode in [0o2775, 0o777] {
        a_volume_of_mode_is_used_and_its_files_are_private(volume_mode).await;
    }
}

async fn a_volume_of_mode_is_used_and_its_files_are_private(volume_mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = folder_with_policies(STANDARD);
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("the data folder");
    let ids = support::postgres::unprivileged_ids().expect("the unprivileged user");
    if let Some((_, gid)) = ids {
        std::os::unix::fs::chown(&data, Some(0), Some(gid)).expect("chown");
    }
    mode(dir.path(), 0o755);
    mode(&dir.path().join("policies"), 0o755);
    mode(&data, volume_mode);
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_tokenwarden"));
    let log = dir.path().join("volume.log");
    let stderr = std::fs::File::create(&log).expect("the issuer's log");
    let issuer = fixtures::binary::start_standalone_through(
        support::postgres::unprivileged(program),
        dir.path(),
        free_port(),
        &[],
        &[],
        stderr.into(),
    )
    .await;
    assert!(!jwks_kids(&issuer.base).await.is_empty(), "it signs");
    let said = std::fs::read_to_string(&log).expect("the issuer's log");
    let folder_mode = std::fs::metadata(&data).expect("data").permissions().mode() & 0o7777;
    if ids.is_some() {
        assert_eq!(folder_mode, volume_mode, "left as it is");
        let warned = said.lines().any(|line| {
            line.contains("WARN")
                && line.contains(&format!("path={}", data.display()))
                && line.contains(&format!("found={volume_mode:04o}"))
        });
        assert!(warned, "{said}");
    } else {
        assert_eq!(folder_mode, 0o700, "its own folder is made private");
    }
    for file in ["keys.json", "tokenwarden.redb"] {
        let meta = std::fs::metadata(data.join(file)).expect("the file is there");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{file}");
        if let Some((uid, _)) = ids {
            assert_eq!(
                std::os::unix::fs::MetadataExt::uid(&meta),
                uid,
                "{file} is the issuer's"
            );
        }
    }
}

/// A replica that may not write its data folder (`keys.json` mounted from a Secret, say)
/// starts read-only: it signs with the keys saved there and says it will not rotate them. As
/// root the test runs it as `nobody` (root may write anywhere); otherwise the folder is made
/// read-only.
#[tokio::test]
async fn a_replica_that_may_not_write_its_data_folder_uses_the_keys_saved_there() {
    use std::os::unix::fs::PermissionsExt as _;
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(STANDARD);
    let env = [("TOKENWARDEN_DATABASE_URL", url.as_str())];
    let mut writer = start_standalone_with(dir.path(), free_port(), &[], &env).await;
    let kids = jwks_kids(&writer.base).await;
    assert!(writer.stop_gracefully(), "the writer stops");

    let data = dir.path().join("data");
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    mode(dir.path(), 0o755);
    mode(&dir.path().join("policies"), 0o755);
    mode(&data.join("keys.json"), 0o444);
    mode(&data, 0o555);
    let program = std::path::Path::new(env!("CARGO_BIN_EXE_tokenwarden"));
    let log = dir.path().join("reader.log");
    let stderr = std::fs::File::create(&log).expect("the reader's log");
    let reader = fixtures::binary::start_standalone_through(
        support::postgres::unprivileged(program),
        dir.path(),
        free_port(),
        &[],
        &env,
        stderr.into(),
    )
    .await;
    assert_eq!(jwks_kids(&reader.base).await, kids, "the keys saved there");
    assert!(kids.contains(&worker_kid(&reader.base).await));
    let said = std::fs::read_to_string(&log).expect("the reader's log");
    assert!(said.contains("read-only"), "{said}");
    mode(&data, 0o755);
}

/// A rolling restart behind a load balancer that follows readiness, as a Service's endpoints
/// do: haproxy (Debian's) health-checks `/readyz` of two replicas and sends a steady stream of
/// token requests, over kept-alive connections, to those that are up, without retrying. One
/// replica gets SIGTERM, drains, exits and starts again on its port; not one request fails,
/// and the restarted replica serves again. Without the drain, requests in the window before
/// the next health check meet a closed port.
// Two workers: the stream of requests goes on while the test waits for the replica to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restarting_behind_a_load_balancer_that_follows_readiness_loses_no_request() {
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(STANDARD);
    let drain = ["--shutdown-drain-seconds".to_owned(), "2".to_owned()];
    let (mut a, b) = start_two_replicas(dir.path(), &url, &drain).await;
    let port_of = |base: &str| base.rsplit(':').next().expect("port").to_owned();
    let (port_a, port_b) = (port_of(&a.base), port_of(&b.base));
    let front = free_port();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n  maxconn 256\n  log stdout format raw local0\n\
             defaults\n  mode http\n  log global\n  option httplog\n  retries 0\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n\
             frontend tokens\n  bind 127.0.0.1:{front}\n  default_backend issuers\n\
             backend issuers\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n\
               default-server inter 200ms fall 1 rise 2\n\
               server a 127.0.0.1:{port_a} check\n  server b 127.0.0.1:{port_b} check\n"
        ),
    )
    .expect("haproxy.cfg");
    /// Stopped when dropped, also when an assertion fails.
    struct Haproxy(std::process::Child);
    impl Drop for Haproxy {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("haproxy log");
    let mut haproxy = Haproxy(
        std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("haproxy (scripts/test.sh installs Debian's haproxy)"),
    );
    let base = format!("http://127.0.0.1:{front}");
    let http = reqwest::Client::new();
    let token = |http: reqwest::Client, base: String| async move {
        let answer = http
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "worker"),
                ("client_secret", fixtures::SECRET),
            ])
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == 200 => Ok(()),
            Ok(r) => Err(format!(
                "{}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        }
    };
    // Both replicas up behind the balancer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while token(http.clone(), base.clone()).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "haproxy never served");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = tokio::spawn({
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        async move {
            let (mut sent, mut failed) = (0u32, Vec::new());
            // Bounded: at most 20,000 requests, and the test stops it after the restart.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 20_000 {
                sent += 1;
                if let Err(e) = token(http.clone(), base.clone()).await {
                    failed.push(e);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (sent, failed)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(a.stop_gracefully(), "replica a drains and exits");
    let env = [("TOKENWARDEN_DATABASE_URL", url.as_str())];
    let port: u16 = port_a.parse().expect("port");
    let a = start_standalone_with(dir.path(), port, &drain, &env).await;
    // Up again (rise 2 × 200 ms), then some traffic on both.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, failed) = stream.await.expect("the stream");
    assert!(
        haproxy.0.try_wait().expect("haproxy").is_none(),
        "haproxy died: {}",
        std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default()
    );
    assert!(sent > 100, "a steady stream: {sent} requests");
    let balancer_said = std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default();
    assert!(
        failed.is_empty(),
        "{} of {sent} failed: {:?}\nhaproxy: {}",
        failed.len(),
        &failed[..failed.len().min(5)],
        balancer_said
            .lines()
            .filter(|l| !l.contains(" 200 "))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        token(http.clone(), a.base.clone()).await.is_ok(),
        "a serves again"
    );
    drop(b);
}
