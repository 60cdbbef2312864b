//! A third-party client from PyPI against the real binary: authlib gets tokens with
//! client_credentials (Basic and post), exchanges a code with PKCE, refreshes with rotation,
//! introspects and revokes; PyJWT verifies every access token through the JWKS it fetches.
//! The checks are in `tests/interop/authlib_client.py`. For workload identity, authlib does a
//! token exchange (RFC 8693) with a CI job's token (`tests/interop/authlib_token_exchange.py`).
//!
//! Python comes from `TOKENWARDEN_TEST_PYTHON`, else from `scripts/python-env.sh`, which sets
//! up a pinned venv. If neither works the test fails: it never skips.

use crate::fixtures;

use fixtures::binary::{folder_with_policies, seed_code_in, start_standalone};
use fixtures::{CHALLENGE, STANDARD, VERIFIER};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CODE: &str = "interop-code";
/// Longest the Python client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// The interpreter of the interop venv.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("TOKENWARDEN_TEST_PYTHON").filter(|p| !p.is_empty()) {
        return python.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/python-env.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}): the authlib interop test needs Python 3 with venv and PyPI \
         (or TOKENWARDEN_TEST_PYTHON pointing at a python with tests/interop/requirements.txt)",
        script.display(),
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout.lines().last().unwrap_or_default().trim();
    assert!(
        Path::new(python).is_file(),
        "scripts/python-env.sh printed {python:?}, which is not a file"
    );
    python.into()
}

#[tokio::test]
async fn authlib_and_pyjwt_get_verify_refresh_introspect_and_revoke_tokens() {
    let python = python();
    let dir = folder_with_policies(STANDARD);
    seed_code_in(&dir.path().join("data"), CODE).await;
    let issuer = start_standalone(dir.path()).await;

    let stdout = run_python(
        &python,
        "authlib_client.py",
        &[
            ("TW_BASE", &issuer.base),
            ("TW_SECRET", fixtures::SECRET),
            ("TW_CODE", CODE),
            ("TW_VERIFIER", VERIFIER),
            ("TW_CHALLENGE", CHALLENGE),
        ],
    )
    .await;
    assert!(
        stdout.contains("authlib interop: all checks passed"),
        "{stdout}"
    );
}

/// Runs `tests/interop/<script>` with `env`; its stdout, once it exited successfully.
async fn run_python(python: &Path, script: &str, env: &[(&str, &str)]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut client = Command::new(python)
        .arg(&script)
        .envs(env.iter().copied())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = client.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > CLIENT_TIMEOUT {
            let _ = client.kill();
            let _ = client.wait();
            panic!("{} took more than {CLIENT_TIMEOUT:?}", script.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = client.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "{} failed ({status}):\n{stdout}\n{stderr}",
        script.display()
    );
    println!("{stdout}");
    stdout
}

/// Workload identity with a third-party client: authlib exchanges a CI job's OIDC token (from
/// node-oidc-provider) for the ApiClient's token at the real binary in standalone mode, which
/// reads the FederatedIssuer from the same YAML as the cluster would; the log never shows the
/// presented token.
#[tokio::test]
async fn authlib_exchanges_a_ci_jobs_oidc_token_for_its_clients_token() {
    let python = python();
    let port = crate::support::ports::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = crate::fixtures::upstream::start_ci_issuer(&base);
    let dir = folder_with_policies(&crate::workload_federated::policies(&provider, "[ci]"));
    let issuer = fixtures::binary::start_standalone_with(dir.path(), port, &[], &[]).await;
    let main = crate::fixtures::upstream::ci_job_token(&provider, "ci-main").await;
    let other = crate::fixtures::upstream::ci_job_token(&provider, "ci-other").await;
    let stdout = run_python(
        &python,
        "authlib_token_exchange.py",
        &[
            ("TW_BASE", &issuer.base),
            ("TW_CI_TOKEN", &main),
            ("TW_CI_OTHER", &other),
        ],
    )
    .await;
    assert!(
        stdout.contains("authlib token exchange: all checks passed"),
        "{stdout}"
    );
    let log = std::fs::read_to_string(&issuer.log).expect("the issuer's log");
    assert!(log.contains("a workload got a token"), "{log}");
    assert!(
        !log.contains(&main) && !log.contains(&other),
        "no token in the log"
    );
}
