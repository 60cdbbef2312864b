//! PostgreSQL taken away under load, and brought back: two issuer replicas keep refreshing,
//! the server stops (fast shutdown), and every request that needs the store gets 503
//! `temporarily_unavailable` with `Retry-After` (the login page, which keeps its sign-in in the
//! store, a 503 page) while client_credentials, which needs no store, keeps working; no issuer
//! panics, no refresh token is handed out that was not stored, and when the server is back the
//! replicas serve again without a restart (no pooled connection stays broken). Its own test
//! binary, since it stops the binary's PostgreSQL server.

mod fixtures;
mod support;

use fixtures::binary::{
    RunningIssuer, alice_users_flags, folder_with_policies, seed_code_in_database,
    start_two_replicas,
};
use fixtures::{Reply, SECRET, STANDARD, VERIFIER, authorize_path, post_form};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::postgres::postgres;
use tokenwarden::store::OpaqueToken;

const CHAINS: usize = 8;

async fn refresh(client: &reqwest::Client, base: &str, token: &str) -> Reply {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "web"),
        ("refresh_token", token),
    ];
    post_form(client, &format!("{base}/oauth/token"), &form).await
}

async fn exchange(client: &reqwest::Client, base: &str, code: &str) -> Reply {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", "web"),
        ("code", code),
        ("redirect_uri", "https://app.example.com/cb"),
        ("code_verifier", VERIFIER),
    ];
    post_form(client, &format!("{base}/oauth/token"), &form).await
}

async fn client_credentials(client: &reqwest::Client, base: &str) -> Reply {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "worker"),
        ("client_secret", SECRET),
        ("audience", "https://banking.example.com"),
    ];
    post_form(client, &format!("{base}/oauth/token"), &form).await
}

/// `GET /authorize` as a browser would: the status and the page.
async fn login_page(client: &reqwest::Client, base: &str) -> (u16, String) {
    let page = client
        .get(format!("{base}{}", authorize_path(&[])))
        .send()
        .await
        .expect("the login page");
    (page.status().as_u16(), page.text().await.expect("html"))
}

fn assert_unavailable(answer: &Reply, what: &str) {
    assert_eq!(answer.status, 503, "{what}: {}", answer.json);
    assert_eq!(answer.json["error"], "temporarily_unavailable", "{what}");
    assert!(
        answer.header("retry-after").is_some(),
        "{what}: 503 without Retry-After"
    );
}

/// A code seeded and exchanged on `base`: the family's first refresh token.
async fn new_family(url: &str, base: &str) -> String {
    let code = OpaqueToken::generate().expect("entropy");
    seed_code_in_database(url, code.expose()).await;
    let answer = exchange(&reqwest::Client::new(), base, code.expose()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    answer.json["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned()
}

/// What one chain of refreshes has seen so far, shared with the test while the chain runs.
#[derive(Default)]
struct Progress {
    /// 503 answers.
    unavailable: AtomicUsize,
    /// Granted after the first 503: the chain went on once the database was back.
    resumed: AtomicBool,
}

impl Progress {
    fn saw_unavailable(&self) -> bool {
        self.unavailable.load(Ordering::Relaxed) > 0
    }

    fn resumed(&self) -> bool {
        self.resumed.load(Ordering::Relaxed)
    }
}

/// Refreshes one family over and over, alternating replicas, until `stop`; returns every
/// refresh token a 200 handed out. A 503 keeps the token and tries again; so does the 400
/// that can follow it, when the database committed a rotation whose answer the broken
/// connection lost (the documented lost-response case): then the chain starts over with a
/// family of its own.
async fn run_chain(
    bases: [String; 2],
    url: String,
    first: String,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut issued = Vec::new();
    let mut token = first;
    let mut after_unavailable = false;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let base = &bases[n % 2];
        n += 1;
        let answer = refresh(&client, base, &token).await;
        match answer.status.as_u16() {
            200 => {
                token = answer.json["refresh_token"]
                    .as_str()
                    .expect("rotated")
                    .to_owned();
                issued.push(token.clone());
                if progress.saw_unavailable() {
                    progress.resumed.store(true, Ordering::Relaxed);
                }
                after_unavailable = false;
            }
            503 => {
                assert_unavailable(&answer, "refresh under load");
                progress.unavailable.fetch_add(1, Ordering::Relaxed);
                after_unavailable = true;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            400 if after_unavailable => {
                token = new_family(&url, base).await;
                after_unavailable = false;
            }
            _ => panic!("refresh under load: {} {}", answer.status, answer.json),
        }
    }
    issued
}

fn alive(issuer: &mut RunningIssuer) {
    assert!(
        matches!(issuer.child.try_wait(), Ok(None)),
        "the issuer exited:\n{}",
        issuer.log_text()
    );
    assert!(
        !issuer.log_text().contains("panicked"),
        "{}",
        issuer.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgresql_stopped_under_load_store_requests_get_503_and_service_resumes_when_it_is_back()
 {
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let dir = folder_with_policies(STANDARD);
    let (mut a, mut b) = start_two_replicas(dir.path(), &url, &alice_users_flags(dir.path())).await;
    let bases = [a.base.clone(), b.base.clone()];
    let client = reqwest::Client::new();

    // Prepared while the database is up: the chains, a code and a token to try during the
    // outage, and a family to use after it.
    let mut firsts = Vec::new();
    for i in 0..CHAINS {
        firsts.push(new_family(&url, &bases[i % 2]).await);
    }
    let outage_code = OpaqueToken::generate().expect("entropy");
    seed_code_in_database(&url, outage_code.expose()).await;
    let outage_token = new_family(&url, &a.base).await;
    let later = new_family(&url, &b.base).await;

    let stop = Arc::new(AtomicBool::new(false));
    let progress: Vec<Arc<Progress>> = (0..CHAINS).map(|_| Arc::default()).collect();
    let chains: Vec<_> = firsts
        .into_iter()
        .zip(&progress)
        .map(|(first, progress)| {
            let chain = run_chain(
                bases.clone(),
                url.clone(),
                first,
                stop.clone(),
                progress.clone(),
            );
            tokio::spawn(chain)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    tokio::task::spawn_blocking(|| postgres().stop())
        .await
        .expect("stop PostgreSQL");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for base in &bases {
        assert_unavailable(&refresh(&client, base, &outage_token).await, "refresh");
        assert_unavailable(
            &exchange(&client, base, outage_code.expose()).await,
            "code exchange",
        );
        let revoke = [("token", outage_token.as_str()), ("client_id", "web")];
        assert_unavailable(
            &post_form(&client, &format!("{base}/oauth/revoke"), &revoke).await,
            "revocation",
        );
        let answer = client_credentials(&client, base).await;
        assert_eq!(
            answer.status, 200,
            "client_credentials needs no store: {}",
            answer.json
        );
        // Whether an access token was revoked is in the store.
        let access_token = answer.json["access_token"].as_str().expect("token");
        let introspect = [
            ("token", access_token),
            ("client_id", "worker"),
            ("client_secret", SECRET),
        ];
        assert_unavailable(
            &post_form(&client, &format!("{base}/oauth/introspect"), &introspect).await,
            "introspection",
        );
        // The login page keeps its sign-in in the store: a page that says so, not a form
        // whose POST would find nothing.
        let page = login_page(&client, base).await;
        assert_eq!(page.0, 503, "{}", page.1);
        assert!(
            page.1.contains("Sign-in is unavailable right now"),
            "{}",
            page.1
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    tokio::task::spawn_blocking(|| postgres().start())
        .await
        .expect("start PostgreSQL");
    // Service resumes by itself: the prepared family refreshes on both replicas.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token = later;
    for base in &bases {
        loop {
            let answer = refresh(&client, base, &token).await;
            if answer.status == 200 {
                token = answer.json["refresh_token"]
                    .as_str()
                    .expect("token")
                    .to_owned();
                break;
            }
            assert_unavailable(&answer, "refresh after the restart");
            assert!(
                Instant::now() < deadline,
                "no service 30 s after PostgreSQL came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for base in &bases {
        let page = login_page(&client, base).await;
        assert_eq!(page.0, 200, "the login page after the restart: {}", page.1);
    }
    // The code the outage refused is still unused.
    let answer = exchange(&client, &a.base, outage_code.expose()).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    // Every chain that met the outage goes on by itself: wait until each has been granted a
    // refresh after its 503s, then stop them all.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting = progress
            .iter()
            .filter(|p| p.saw_unavailable() && !p.resumed())
            .count();
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} of {CHAINS} chains that got 503 had no refresh granted 30 s after \
             PostgreSQL came back"
        );
        assert!(
            chains.iter().all(|chain| !chain.is_finished()),
            "a chain stopped early (panicked)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let mut issued = Vec::new();
    for chain in chains {
        issued.extend(chain.await.expect("a chain panicked"));
    }
    assert!(
        progress.iter().any(|p| p.saw_unavailable()),
        "the load never met the outage"
    );
    assert!(issued.len() > CHAINS, "too little load to mean anything");
    // Nothing was handed out without being stored.
    let db_client = postgres().client(&db).await;
    for token in &issued {
        let key = OpaqueToken::from_presented(token.as_str())
            .refresh_key()
            .0
            .to_vec();
        let stored = db_client
            .query_opt("SELECT 1 FROM refresh_tokens WHERE hash = $1", &[&key])
            .await
            .expect("look up");
        assert!(
            stored.is_some(),
            "a refresh token was issued but not stored"
        );
    }
    alive(&mut a);
    alive(&mut b);
}
