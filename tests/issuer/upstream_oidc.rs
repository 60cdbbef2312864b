//! Upstream sign-in against a real OpenID Provider (node-oidc-provider, `tests/node/`): the
//! real `tokenwarden issuer` binary with only the OIDC connector, an HTTP client with a cookie
//! jar as the browser, and the provider's development login. The whole flow — application,
//! `/authorize`, provider login and consent, `/callback/oidc`, code, tokens — with a refresh
//! token exactly when the API's policy allows offline access; and the ways it must fail: the
//! user refusing at the provider, a replayed and a tampered `state`, a callback in another
//! browser. With two replicas on one PostgreSQL database, the callback may reach the replica
//! that did not send the browser away.

use crate::fixtures;
use crate::support;

use fixtures::binary::{folder_with_policies, free_port, start_standalone_with};
use fixtures::upstream::{
    APP_CB, CLIENT_SECRET, exchange, oidc_flags, policies, start_provider_tampering,
};
use fixtures::{authorize_path, claims, query};
use std::sync::{Arc, Mutex};
use support::postgres::postgres;

/// The issuer and the provider, each knowing the other.
struct Setup {
    _dir: tempfile::TempDir,
    _provider: fixtures::upstream::RunningProvider,
    issuer: fixtures::binary::RunningIssuer,
}

async fn setup() -> Setup {
    setup_with(&[], "").await
}

/// With `extra` issuer flags, and a provider that misbehaves as `tamper` says.
async fn setup_with(extra: &[&str], tamper: &str) -> Setup {
    setup_with_env(extra, tamper, &[]).await
}

/// [`setup_with`], the issuer with these environment variables.
async fn setup_with_env(extra: &[&str], tamper: &str, env: &[(&str, &str)]) -> Setup {
    let dir = folder_with_policies(&policies());
    let port = free_port();
    let provider =
        start_provider_tampering(&format!("http://127.0.0.1:{port}/callback/oidc"), tamper);
    let mut flags = oidc_flags(&provider, dir.path());
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    let issuer = start_standalone_with(dir.path(), port, &flags, env).await;
    Setup {
        _dir: dir,
        _provider: provider,
        issuer,
    }
}

/// A browser: a cookie jar that follows redirects, except to the application and, when
/// `stop_at_callback`, to tokenwarden's callback. Every URL it was sent to is recorded.
struct Browser {
    http: reqwest::Client,
    visited: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    fn new(stop_at_callback: bool) -> Self {
        let visited = Arc::new(Mutex::new(Vec::new()));
        let seen = visited.clone();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            let url = attempt.url().to_string();
            seen.lock().expect("lock").push(url.clone());
            if url.starts_with(APP_CB) || (stop_at_callback && url.contains("/callback/oidc")) {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(policy)
            .build()
            .expect("client");
        Self { http, visited }
    }

    /// Open `url` (an `/authorize` request of `web`, which is not first-party) and agree on
    /// tokenwarden's page: press its button. Returns the provider's login page.
    async fn agree(&self, url: &str) -> reqwest::Response {
        let page = self.http.get(url).send().await.expect("authorize");
        assert_eq!(page.status(), 200);
        let at = page.url().clone();
        let html = page.text().await.expect("html");
        assert!(
            html.contains(r#"name="connector" value="oidc""#),
            "expected tokenwarden's page at {at}:\n{html}"
        );
        let hidden = |name: &str| {
            let marker = format!(r#"type="hidden" name="{name}" value=""#);
            let start = html.find(&marker).expect("hidden field") + marker.len();
            html[start..start + html[start..].find('"').expect("end")].to_owned()
        };
        let (login, csrf_token) = (hidden("login"), hidden("csrf_token"));
        let action = at.join("/authorize").expect("the form's action");
        self.http
            .post(action)
            .form(&[
                ("login", login.as_str()),
                ("csrf_token", csrf_token.as_str()),
                ("connector", "oidc"),
            ])
            .send()
            .await
            .expect("press the provider's button")
    }

    /// Open `url`, agree on tokenwarden's page, and answer the provider's login and consent
    /// pages as `user`; returns the last response (a redirect the browser stopped at).
    async fn sign_in_upstream(&self, url: &str, user: &str) -> reqwest::Response {
        let page = self.agree(url).await;
        self.answer_provider(page, user).await
    }

    /// Answer the provider's login and consent pages, starting at `page`, as `user`.
    async fn answer_provider(&self, mut page: reqwest::Response, user: &str) -> reqwest::Response {
        for prompt in ["login", "consent"] {
            assert_eq!(page.status(), 200, "the provider's {prompt} page");
            let action = page.url().clone();
            let html = page.text().await.expect("html");
            assert!(
                html.contains(&format!(r#"name="prompt" value="{prompt}""#)),
                "expected the provider's {prompt} page:\n{html}"
            );
            page = self
                .http
                .post(action)
                .form(&[("prompt", prompt), ("login", user), ("password", "any")])
                .send()
                .await
                .expect("submit");
        }
        page
    }
}

fn authorize_url(base: &str, audience: &str, scope: &str) -> String {
    let path = authorize_path(&[
        ("redirect_uri", APP_CB),
        ("state", "app-state-1"),
        ("audience", audience),
        ("scope", scope),
    ]);
    format!("{base}{path}")
}

fn location(response: &reqwest::Response) -> String {
    assert!(
        response.status().is_redirection(),
        "{}: {}",
        response.status(),
        response.url()
    );
    response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test]
async fn an_upstream_sign_in_gets_tokens_with_a_refresh_token_exactly_when_the_policy_allows_offline_access()
 {
    let setup = setup().await;
    let base = &setup.issuer.base;
    for (audience, scope, lifetime, offline) in [
        (
            "https://todo.example.com",
            "todos:read offline_access",
            900,
            true,
        ),
        (
            "https://reports.example.com",
            "reports:read offline_access",
            300,
            false,
        ),
    ] {
        let browser = Browser::new(false);
        let last = browser
            .sign_in_upstream(&authorize_url(base, audience, scope), "carol")
            .await;
        let back = location(&last);
        assert!(back.starts_with(APP_CB), "{back}");
        let params = query(&back);
        assert_eq!(params["state"], "app-state-1");
        assert_eq!(params["iss"], *base);
        let visited = browser.visited.lock().expect("lock").clone();
        let to_provider = visited
            .iter()
            .find(|u| u.contains("/auth?"))
            .expect("sent to the provider");
        let sent = query(to_provider);
        assert_eq!(sent["code_challenge_method"], "S256");
        assert_eq!(sent["scope"], "openid");
        assert!(sent["state"].len() >= 43 && sent["nonce"].len() >= 43);

        let tokens = exchange(base, &params["code"]).await;
        let access = claims(tokens["access_token"].as_str().expect("access token"));
        assert_eq!(access["sub"], "carol", "the subject is the provider's sub");
        assert_eq!(access["aud"], audience);
        assert_eq!(tokens["expires_in"], lifetime);
        assert_eq!(
            tokens.get("refresh_token").is_some(),
            offline,
            "refresh token for {audience}: {tokens}"
        );
    }
    let log = setup.issuer.log_text();
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret is in the log:\n{log}"
    );
}

/// The upstream provider's calls are spans of the sign-in's requests, in a real OTLP receiver
/// (Jaeger), and no span holds the client secret, the provider's code or tokenwarden's.
#[tokio::test]
async fn an_upstream_sign_in_traces_the_providers_calls_without_their_secrets() {
    let jaeger = support::jaeger::jaeger();
    let service = format!(
        "tokenwarden-upstream-{}-{}",
        std::process::id(),
        free_port()
    );
    let otlp = jaeger.otlp_endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", service.as_str()),
    ];
    let mut setup = setup_with_env(&[], "", &env).await;
    let base = setup.issuer.base.clone();
    let browser = Browser::new(false);
    let last = browser
        .sign_in_upstream(
            &authorize_url(&base, "https://todo.example.com", "todos:read"),
            "carol",
        )
        .await;
    let code = query(&location(&last))["code"].clone();
    let tokens = exchange(&base, &code).await;
    let provider_codes: Vec<String> = browser
        .visited
        .lock()
        .expect("lock")
        .iter()
        .filter(|u| u.contains("/callback/oidc?"))
        .map(|u| query(u)["code"].clone())
        .collect();
    assert!(!provider_codes.is_empty(), "the provider sent a code back");
    assert!(
        setup.issuer.stop_gracefully(),
        "{}",
        setup.issuer.log_text()
    );

    let traces = jaeger
        .wait_for_spans(&service, 5, std::time::Duration::from_secs(30))
        .await;
    let spans: Vec<&serde_json::Value> = traces
        .iter()
        .flat_map(|t| t["spans"].as_array().into_iter().flatten())
        .collect();
    let by_id = |id: &str| spans.iter().find(|s| s["spanID"] == id).copied();
    let parent_name = |span: &serde_json::Value| {
        let reference = span["references"].as_array()?.first()?;
        by_id(reference["spanID"].as_str()?).map(|p| p["operationName"].clone())
    };
    let exchange_span = spans
        .iter()
        .find(|s| s["operationName"] == "upstream.exchange")
        .unwrap_or_else(|| panic!("no upstream.exchange span: {spans:#?}"));
    assert_eq!(
        parent_name(exchange_span),
        Some(serde_json::json!("GET /callback/oidc")),
        "{exchange_span:#}"
    );
    for name in ["upstream.discovery", "upstream.jwks"] {
        assert!(
            spans.iter().any(|s| s["operationName"] == name),
            "no {name} span: {spans:#?}"
        );
    }
    let text = serde_json::to_string(&traces).expect("JSON");
    let access = tokens["access_token"].as_str().expect("access token");
    for secret in [CLIENT_SECRET, &code, access]
        .into_iter()
        .chain(provider_codes.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "{secret:?} in the spans");
    }
}

/// A client the platform does not vouch for could get a code silently for anyone with a
/// session at the provider, if `/authorize` went there at once. It stops at tokenwarden's page,
/// which shows the client, the API and the scopes; nothing goes to the provider or the
/// application until the user presses the button, and a POST without the page's CSRF token
/// and cookie is refused. A first-party client goes straight to the provider.
#[tokio::test]
async fn a_client_that_is_not_first_party_waits_for_the_users_agreement_and_a_first_party_one_does_not()
 {
    let setup = setup_with(&["--first-party-clients", "platform/web"], "").await;
    let base = &setup.issuer.base;
    let url = authorize_url(
        base,
        "https://todo.example.com",
        "todos:read offline_access",
    );
    let browser = Browser::new(false);
    let page = browser.http.get(&url).send().await.expect("authorize");
    assert_eq!(page.status(), 200);
    assert!(
        page.url().as_str().starts_with(base.as_str()),
        "{}",
        page.url()
    );
    let html = page.text().await.expect("html");
    for needle in [
        "<strong>To-do Web</strong> <span class=\"client-id\">(<code>web</code>)</span>",
        "<strong>https://todo.example.com</strong>",
        "<li><code>todos:read</code>: Read your to-do lists</li>",
        "offline access",
    ] {
        assert!(html.contains(needle), "missing {needle}:\n{html}");
    }
    assert!(
        browser.visited.lock().expect("lock").is_empty(),
        "the browser was sent on before the user agreed"
    );

    // Another site makes the victim's browser post the button without the page's token.
    let hidden = |name: &str| {
        let marker = format!(r#"type="hidden" name="{name}" value=""#);
        let start = html.find(&marker).expect("hidden field") + marker.len();
        html[start..start + html[start..].find('"').expect("end")].to_owned()
    };
    let forged = browser
        .http
        .post(format!("{base}/authorize"))
        .form(&[
            ("login", hidden("login").as_str()),
            (
                "csrf_token",
                "forged-token-0123456789abcdefghijklmnopqrstuv",
            ),
            ("connector", "oidc"),
        ])
        .send()
        .await
        .expect("forged post");
    assert_eq!(forged.status(), 403);
    let foreign = Browser::new(false)
        .http
        .post(format!("{base}/authorize"))
        .form(&[
            ("login", hidden("login").as_str()),
            ("csrf_token", hidden("csrf_token").as_str()),
            ("connector", "oidc"),
        ])
        .send()
        .await
        .expect("post from another browser");
    assert_eq!(foreign.status(), 403);
    assert!(browser.visited.lock().expect("lock").is_empty());

    // Agreed: the provider, then the code.
    let last = browser.sign_in_upstream(&url, "carol").await;
    let back = location(&last);
    assert!(back.starts_with(APP_CB), "{back}");
    let tokens = exchange(base, &query(&back)["code"]).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // First-party: straight to the provider's login page, no page of tokenwarden's.
    let setup = setup_with(&["--first-party-clients", "apps/web"], "").await;
    let url = authorize_url(&setup.issuer.base, "https://todo.example.com", "todos:read");
    let browser = Browser::new(false);
    let page = browser.http.get(&url).send().await.expect("authorize");
    let visited = browser.visited.lock().expect("lock").clone();
    assert!(
        visited.first().is_some_and(|u| u.contains("/auth?")),
        "sent straight to the provider: {visited:?}"
    );
    let last = browser.answer_provider(page, "carol").await;
    let back = location(&last);
    assert!(query(&back).contains_key("code"), "{back}");
}

/// Replica B sends the browser to the provider; the provider sends it back to replica A (the
/// issuer URL both are configured with, as behind one ingress), which finishes the sign-in
/// from the trip B left in the database.
#[tokio::test]
async fn a_callback_reaching_the_other_replica_finishes_the_sign_in() {
    let server = postgres();
    let url = server.url(&server.new_database().await);
    let env = [("TOKENWARDEN_DATABASE_URL", url.as_str())];
    let dir = folder_with_policies(&policies());
    let (port_a, port_b) = (free_port(), free_port());
    let a_base = format!("http://127.0.0.1:{port_a}");
    let provider = start_provider_tampering(&format!("{a_base}/callback/oidc"), "");
    let mut flags = oidc_flags(&provider, dir.path());
    flags.extend(["--issuer-url".to_owned(), a_base.clone()]);
    // A first, alone: it writes the signing keys B then reads.
    let a = start_standalone_with(dir.path(), port_a, &flags, &env).await;
    let b = start_standalone_with(dir.path(), port_b, &flags, &env).await;

    let browser = Browser::new(false);
    let scope = "todos:read offline_access";
    let url = authorize_url(&b.base, "https://todo.example.com", scope);
    let last = browser.sign_in_upstream(&url, "carol").await;
    let back = location(&last);
    assert!(back.starts_with(APP_CB), "{back}\n{}", a.log_text());
    let visited = browser.visited.lock().expect("lock").clone();
    let callback = visited.iter().find(|u| u.contains("/callback/oidc"));
    let callback = callback.expect("the provider sent the browser back");
    assert!(callback.starts_with(&a_base), "{callback}");

    let params = query(&back);
    let tokens = exchange(&b.base, &params["code"]).await;
    let access = claims(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["sub"], "carol");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
}

#[tokio::test]
async fn the_subject_comes_from_the_configured_claim_of_the_id_token() {
    let setup = setup_with(&["--oidc-subject-claim", "email"], "").await;
    let base = &setup.issuer.base;
    let browser = Browser::new(false);
    let last = browser
        .sign_in_upstream(
            &authorize_url(base, "https://todo.example.com", "todos:read"),
            "grace",
        )
        .await;
    let visited = browser.visited.lock().expect("lock").clone();
    let to_provider = visited.iter().find(|u| u.contains("/auth?")).expect("sent");
    assert_eq!(query(to_provider)["scope"], "openid email");
    let tokens = exchange(base, &query(&location(&last))["code"]).await;
    let access = claims(tokens["access_token"].as_str().expect("access token"));
    assert_eq!(access["sub"], "grace@example.com");
}

#[tokio::test]
async fn refusing_at_the_provider_sends_access_denied_to_the_application() {
    let setup = setup().await;
    let browser = Browser::new(false);
    let url = authorize_url(&setup.issuer.base, "https://todo.example.com", "todos:read");
    let login = browser.agree(&url).await;
    assert_eq!(login.status(), 200);
    let abort = format!("{}/abort", login.url());
    let last = browser.http.get(abort).send().await.expect("abort");
    let back = location(&last);
    assert!(back.starts_with(APP_CB), "{back}");
    let params = query(&back);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "app-state-1");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn a_replayed_tampered_or_foreign_state_gets_an_error_page_and_never_a_code() {
    let setup = setup().await;
    let url = authorize_url(&setup.issuer.base, "https://todo.example.com", "todos:read");

    // Tampered: the state changed on the way back. The real one still works afterwards.
    let browser = Browser::new(true);
    let callback = location(&browser.sign_in_upstream(&url, "dave").await);
    let state = query(&callback)["state"].clone();
    let mut forged = state.clone();
    forged.replace_range(
        ..4,
        if state.starts_with("AAAA") {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let tampered = callback.replace(&state, &forged);
    let page = browser.http.get(&tampered).send().await.expect("tampered");
    assert_eq!(page.status(), 400);
    assert!(page.text().await.expect("html").contains("not known here"));
    let good = browser.http.get(&callback).send().await.expect("callback");
    let back = location(&good);
    assert!(
        back.starts_with(APP_CB) && query(&back).contains_key("code"),
        "{back}"
    );

    // Replayed: the same callback again.
    let again = browser.http.get(&callback).send().await.expect("replay");
    assert_eq!(again.status(), 400);
    assert!(!again.headers().contains_key("location"));

    // Foreign: another browser (no login cookie) brings a fresh, unused callback.
    let victim = Browser::new(true);
    let callback = location(&victim.sign_in_upstream(&url, "erin").await);
    let attacker = Browser::new(true);
    let page = attacker.http.get(&callback).send().await.expect("foreign");
    assert_eq!(page.status(), 403);
    assert!(!page.headers().contains_key("location"));
    // ...and the state is spent: the victim's own browser cannot use it either.
    let late = victim.http.get(&callback).send().await.expect("late");
    assert_eq!(late.status(), 400);
}

#[tokio::test]
async fn an_id_token_with_another_nonce_or_a_bad_signature_from_the_provider_gets_no_code() {
    for (tamper, reason) in [
        ("nonce", "nonce is missing or is not the one sent"),
        ("signature", "signature does not verify"),
    ] {
        let setup = setup_with(&[], tamper).await;
        let browser = Browser::new(false);
        let url = authorize_url(
            &setup.issuer.base,
            "https://todo.example.com",
            "todos:read offline_access",
        );
        let last = browser.sign_in_upstream(&url, "mallory").await;
        assert_eq!(last.status(), 502, "{tamper}: {}", last.url());
        assert!(last.url().path().ends_with("/callback/oidc"), "{tamper}");
        assert!(!last.headers().contains_key("location"), "{tamper}");
        let html = last.text().await.expect("html");
        assert!(html.contains("could not be verified"), "{tamper}: {html}");
        let visited = browser.visited.lock().expect("lock").clone();
        assert!(
            !visited.iter().any(|u| u.starts_with(APP_CB)),
            "{tamper}: the application got an answer: {visited:?}"
        );
        let log = setup.issuer.log_text();
        assert!(
            log.contains(reason),
            "{tamper}: the log does not say why:\n{log}"
        );
    }
}

/// RFC 9068 §5: `<client_id>@clients` is the subject of clients' own tokens, so a user whose
/// subject at the provider ends with `@clients` would share one: the sign-in fails as an
/// answer that cannot be verified, and the log says why without naming the subject.
#[tokio::test]
async fn a_provider_subject_in_the_form_reserved_for_clients_gets_no_code() {
    let setup = setup().await;
    let browser = Browser::new(false);
    let url = authorize_url(&setup.issuer.base, "https://todo.example.com", "todos:read");
    let last = browser
        .sign_in_upstream(&url, "billing-worker@clients")
        .await;
    assert_eq!(last.status(), 502, "{}", last.url());
    assert!(!last.headers().contains_key("location"));
    let html = last.text().await.expect("html");
    assert!(html.contains("could not be verified"), "{html}");
    let visited = browser.visited.lock().expect("lock").clone();
    assert!(
        !visited.iter().any(|u| u.starts_with(APP_CB)),
        "the application got an answer: {visited:?}"
    );
    let log = setup.issuer.log_text();
    assert!(log.contains("ends with @clients"), "{log}");
    assert!(!log.contains("billing-worker@clients"), "{log}");
}

/// A store that refuses the trip to the provider (PostgreSQL turned read-only, as a demoted
/// primary is) is the sign-in being unavailable for a moment (503), not the provider being
/// down (502): the provider is up, and the password form's sign-in read still works.
#[tokio::test]
async fn a_store_that_cannot_keep_the_trip_is_unavailable_not_the_provider() {
    let server = postgres();
    let db = server.new_database().await;
    let url = server.url(&db);
    let env = [("TOKENWARDEN_DATABASE_URL", url.as_str())];
    let dir = folder_with_policies(&policies());
    let port = free_port();
    let provider = start_provider_tampering(&format!("http://127.0.0.1:{port}/callback/oidc"), "");
    let mut flags = oidc_flags(&provider, dir.path());
    flags.extend(fixtures::binary::alice_users_flags(dir.path()));
    let issuer = start_standalone_with(dir.path(), port, &flags, &env).await;

    // The login page, with both the password form and the provider's button.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = fixtures::binary::HttpLoginForm::open(
        &http,
        &authorize_url(&issuer.base, "https://todo.example.com", "todos:read"),
    )
    .await;

    server.make_read_only(&db).await;
    for attempt in 0..3 {
        let answer = form
            .post(&http, &issuer.base, &[("connector", "oidc")])
            .await
            .expect("press the provider's button");
        let status = answer.status();
        let text = answer.text().await.expect("page");
        assert_eq!(status, 503, "attempt {attempt}: {text}");
        assert!(text.contains("Sign-in is unavailable right now"), "{text}");
    }
}
