//! A third-party client from PyPI against the real binary: authlib gets tokens with
//! client_credentials (Basic and post), exchanges a code with PKCE, refreshes with rotation,
//! introspects and revokes; PyJWT verifies every access token through the JWKS it fetches.
//! The checks are in `tests/interop/authlib_client.py`.
//!
//! Python comes from `TOKENWARDEN_TEST_PYTHON`, else from `scripts/python-env.sh`, which sets
//! up a pinned venv. If neither works the test fails: it never skips.

mod fixtures;

use fixtures::{CHALLENGE, STANDARD, VERIFIER};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokenwarden::store::{AnyStore, AuthorizationCode, EmbeddedStore, OpaqueToken, Store as _};

const CODE: &str = "interop-code";
/// Longest the Python client may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
}

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

/// Store the code `web` exchanges, before the issuer opens the store.
async fn seed_code(data_dir: &Path) {
    let store = AnyStore::Embedded(EmbeddedStore::open(data_dir).expect("store"));
    let granted = AuthorizationCode {
        client_id: "web".into(),
        redirect_uri: "https://app.example.com/cb".into(),
        audience: "https://todo.example.com".into(),
        scope: "todos:read offline_access".into(),
        subject: "alice".into(),
        code_challenge: CHALLENGE.into(),
        nonce: None,
        expires_at: now() + 600,
    };
    store
        .put_code(OpaqueToken::from_presented(CODE).hash(), granted)
        .await
        .expect("put code");
}

async fn start(dir: &Path) -> Running {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tokenwarden"))
        .args(["issuer", "--policies"])
        .arg(dir.join("policies"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the issuer");
    let running = Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", running.base)).await
            && r.status() == 200
        {
            return running;
        }
        assert!(Instant::now() < deadline, "the issuer did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn authlib_and_pyjwt_get_verify_refresh_introspect_and_revoke_tokens() {
    let python = python();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("policies")).expect("policies");
    std::fs::write(dir.path().join("policies/all.yaml"), STANDARD).expect("write");
    seed_code(&dir.path().join("data")).await;
    let issuer = start(dir.path()).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/authlib_client.py");
    let mut client = Command::new(&python)
        .arg(&script)
        .env("TW_BASE", &issuer.base)
        .env("TW_SECRET", fixtures::SECRET)
        .env("TW_CODE", CODE)
        .env("TW_VERIFIER", VERIFIER)
        .env("TW_CHALLENGE", CHALLENGE)
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
            panic!("the authlib client took more than {CLIENT_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = client.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "the authlib client failed ({status}):\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    assert!(
        stdout.contains("authlib interop: all checks passed"),
        "{stdout}\n{stderr}"
    );
}
