//! The embedded store: the conformance suite in a temporary directory, a kill -9 test, and
//! the issuer's store file holding codes and refresh tokens only as hashes.

use crate::fixtures;
use crate::store_suite;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};
use tokenwarden::store::{EmbeddedStore, Store, TokenHash};

use store_suite::{Harness, ROTATING, refresh, start_family};

struct Embedded {
    dir: tempfile::TempDir,
}

impl Embedded {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }
}

impl Harness for Embedded {
    type S = EmbeddedStore;
    async fn open(&self) -> EmbeddedStore {
        EmbeddedStore::open(self.dir.path()).expect("open the embedded store")
    }
}

store_suite!(Embedded::new());

/// Set for the child process of the kill -9 test: the data directory it writes to.
const CHILD_DIR: &str = "TOKENWARDEN_STORE_KILL_TEST_DIR";

fn hex(hash: &TokenHash) -> String {
    hash.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> TokenHash {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    TokenHash(out)
}

/// Not a test on its own (so ignored): the child of the kill -9 test, which runs it with
/// `--ignored`. It writes families and rotations from several tasks and prints each one only
/// after the store has acknowledged it, until killed.
#[test]
#[ignore = "the child process of committed_writes_survive_a_kill_9_in_the_middle_of_writing"]
fn child_process_of_the_kill_test_writes_until_it_is_killed() {
    let dir = std::env::var_os(CHILD_DIR).expect("run by the kill -9 test, which sets the folder");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let store = EmbeddedStore::open(std::path::Path::new(&dir)).expect("open");
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    loop {
                        let (_, first) = start_family(&store, 0, ROTATING).await;
                        println!("family {}", hex(&first));
                        let (outcome, second) = refresh(&store, first, 1, ROTATING).await;
                        assert!(outcome.granted().is_some());
                        println!("rotated {} {}", hex(&first), hex(&second));
                    }
                })
            })
            .collect();
        // The writers stop only by failing, or with the process when it is killed.
        let (stopped, _, _) = futures::future::select_all(writers).await;
        panic!("a writer stopped: {stopped:?}");
    });
}

/// The name the test harness gives the test function `name` of this module: its path
/// without the crate's name.
fn test_path(name: &str) -> String {
    match module_path!().split_once("::") {
        Some((_crate, module)) => format!("{module}::{name}"),
        None => name.to_owned(),
    }
}

#[tokio::test]
async fn committed_writes_survive_a_kill_9_in_the_middle_of_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &test_path("child_process_of_the_kill_test_writes_until_it_is_killed"),
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The child's lines are read on a thread of their own, so that a child that stalls
    // fails the test at the deadline instead of blocking it for ever.
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 400 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the child acknowledged {} writes within 60 s, not 400",
                    acknowledged.len()
                );
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the child stopped early"),
        };
        if line.starts_with("family ") || line.starts_with("rotated ") {
            acknowledged.push(line);
        }
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, the writer mid-batch.
    child.kill().unwrap();
    child.wait().unwrap();
    // Lines printed before the kill but not yet read were acknowledged too: the pipe ends
    // with the child, and so does the reader.
    reader.join().expect("the reader thread");
    acknowledged.extend(lines.try_iter().filter(|l| l.contains(' ')));

    let store = EmbeddedStore::open(dir.path()).expect("reopen after kill -9");
    let mut rotations = 0;
    for line in &acknowledged {
        let words: Vec<_> = line.split(' ').collect();
        match words[..] {
            ["family", first] => {
                let view = store.lookup_refresh_token(unhex(first)).await.unwrap();
                assert!(view.is_some(), "lost an acknowledged family: {line}");
            }
            ["rotated", first, second] => {
                let old = store
                    .lookup_refresh_token(unhex(first))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(old.token.successor, Some(unhex(second)));
                let new = store.lookup_refresh_token(unhex(second)).await.unwrap();
                assert!(new.is_some_and(|v| v.is_active(1, &ROTATING)));
                rotations += 1;
            }
            _ => {}
        }
    }
    assert!(rotations > 0);
    // And the reopened store takes new writes.
    let (_, token) = start_family(&store, 0, ROTATING).await;
    assert!(store.lookup_refresh_token(token).await.unwrap().is_some());
}

/// Every file under `dir` (the data dir: the store file, the keys, ...) with its bytes.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the data dir") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).expect("read a file of the data dir");
            files.push((path, bytes));
        }
    }
    files
}

/// Fails if a file under `dir` holds `token` or its secret bytes; and, so that the search is
/// known to look where the store writes, if none holds `stored`, the key the store keeps it
/// under.
fn assert_only_hashed(dir: &std::path::Path, what: &str, token: &str, stored: &TokenHash) {
    let files = files_under(dir);
    for (path, bytes) in &files {
        for form in fixtures::binary::plaintext_forms(token) {
            assert!(
                !fixtures::binary::contains(bytes, &form),
                "{what} is in {} in the clear",
                path.display()
            );
        }
    }
    assert!(
        files
            .iter()
            .any(|(_, bytes)| fixtures::binary::contains(bytes, &stored.0)),
        "the key of {what} is in no file under {}",
        dir.display()
    );
}

/// The issuer (the real binary) keeps the authorization codes and refresh tokens it hands out
/// in its store file under `--data-dir` only as hashes. The store commits durably before the
/// answer goes out, so the file is read while the issuer runs, and again after it stopped.
#[tokio::test]
async fn the_issuer_keeps_codes_and_refresh_tokens_in_its_store_file_only_as_hashes() {
    use fixtures::binary::{
        alice_users_flags, folder_with_policies, free_port, sign_in_for_a_code,
        start_standalone_with,
    };
    use tokenwarden::store::OpaqueToken;
    let dir = folder_with_policies(fixtures::STANDARD);
    let flags = alice_users_flags(dir.path());
    let mut issuer = start_standalone_with(dir.path(), free_port(), &flags, &[]).await;
    let data = dir.path().join("data");

    let code = sign_in_for_a_code(&issuer.base).await;
    let code_key = OpaqueToken::from_presented(code.as_str()).hash();
    assert_only_hashed(&data, "the authorization code", &code, &code_key);
    let (first, second) = fixtures::binary::exchange_and_refresh(&issuer.base, &code).await;
    let issued = [
        ("the first refresh token", &first),
        ("its successor", &second),
    ];
    for (what, token) in issued {
        let key = OpaqueToken::from_presented(token.as_str()).refresh_key();
        assert_only_hashed(&data, what, token, &key);
    }
    assert!(issuer.stop_gracefully(), "the issuer stops");
    for (what, token) in issued {
        let key = OpaqueToken::from_presented(token.as_str()).refresh_key();
        assert_only_hashed(&data, what, token, &key);
    }
    for form in fixtures::binary::plaintext_forms(&code) {
        for (path, bytes) in files_under(&data) {
            assert!(
                !fixtures::binary::contains(&bytes, &form),
                "the code is in {} in the clear",
                path.display()
            );
        }
    }
}
