//! The authorization code flow with the static-users connector, in-process: `GET /authorize`,
//! the login form (CSRF token, cookie), the POST with credentials, the redirect with code,
//! `state` and `iss`, and the exchange at the token endpoint. Also every way the flow must
//! refuse, the brute-force limits on a manual clock, and the page's escaping and headers.

use crate::fixtures;

use axum::http::{StatusCode, header};
use fixtures::{
    ALICE, BOB, ISSUER_URL, STANDARD, TestIssuer, VERIFIER, WEB_CB, authorize_path, claims,
};

const TODO: &str = "https://todo.example.com";

async fn exchange(issuer: &TestIssuer, code: &str) -> fixtures::Reply {
    issuer
        .post(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "web"),
                ("code", code),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
            None,
        )
        .await
}

#[tokio::test]
async fn a_user_signs_in_and_the_client_exchanges_the_code_for_tokens_with_offline_access() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let reply = browser.sign_in(&authorize_path(&[]), ALICE).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let (target, params) = reply.redirect();
    assert_eq!(target, WEB_CB);
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], ISSUER_URL);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(reply.headers[header::REFERRER_POLICY], "no-referrer");

    let tokens = exchange(&issuer, &params["code"]).await;
    let body = tokens.ok();
    assert_eq!(body["scope"], "offline_access todos:read");
    assert_eq!(body["expires_in"], 86400);
    let access = claims(body["access_token"].as_str().expect("token"));
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["aud"], TODO);
    assert_eq!(access["client_id"], "web");
    let refresh = body["refresh_token"].as_str().expect("a refresh token");
    assert!(issuer.refresh_web(refresh).await.ok()["refresh_token"].is_string());
}

#[tokio::test]
async fn a_refresh_token_comes_exactly_when_offline_access_is_asked_and_the_policy_allows_it() {
    for offline in [true, false] {
        let yaml = STANDARD.replace("offlineAccess: true", &format!("offlineAccess: {offline}"));
        let issuer = TestIssuer::with_users(&yaml);
        for (scope, asked) in [("todos:read offline_access", true), ("todos:read", false)] {
            let mut browser = issuer.browser();
            let reply = browser
                .sign_in(&authorize_path(&[("scope", scope)]), ALICE)
                .await;
            let (_, params) = reply.redirect();
            let tokens = exchange(&issuer, &params["code"]).await;
            assert_eq!(
                tokens.ok().get("refresh_token").is_some(),
                offline && asked,
                "offlineAccess={offline} asked={asked}"
            );
        }
    }
}

#[tokio::test]
async fn a_bcrypt_user_signs_in_as_their_configured_subject() {
    let issuer = TestIssuer::with_users(STANDARD);
    let reply = issuer.browser().sign_in(&authorize_path(&[]), BOB).await;
    let (_, params) = reply.redirect();
    let tokens = exchange(&issuer, &params["code"]).await;
    let access = claims(tokens.ok()["access_token"].as_str().expect("token"));
    assert_eq!(access["sub"], "user-0002");
}

#[tokio::test]
async fn the_code_lives_sixty_seconds() {
    let issuer = TestIssuer::with_users(STANDARD);
    let code = || async {
        let reply = issuer.browser().sign_in(&authorize_path(&[]), ALICE).await;
        reply.redirect().1["code"].clone()
    };
    let on_time = code().await;
    issuer.clock().advance(59);
    exchange(&issuer, &on_time).await.ok();
    let late = code().await;
    issuer.clock().advance(60);
    assert_eq!(exchange(&issuer, &late).await.error(), "invalid_grant");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_generic_answer() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let wrong = browser
        .sign_in(&authorize_path(&[]), ("alice", "nope"))
        .await;
    let unknown = browser
        .sign_in(&authorize_path(&[]), ("mallory", "alice-password"))
        .await;
    for reply in [&wrong, &unknown] {
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(
            reply
                .text
                .contains("The username or password is incorrect.")
        );
        assert!(reply.headers.get(header::LOCATION).is_none());
        // The form is shown again, ready for another try.
        let form = reply.login_form();
        assert!(!form.login.is_empty() && !form.csrf_token.is_empty());
    }
    // A retry in the same form succeeds.
    let retry = browser.submit(&wrong.login_form(), ALICE.0, ALICE.1).await;
    assert_eq!(retry.status, StatusCode::SEE_OTHER);
}

/// The errors a request can have once its client and redirect URI are known, with the code
/// each sends back.
const REQUEST_ERRORS: &[(&[(&str, &str)], &str)] = &[
    (&[("code_challenge", "")], "invalid_request"),
    (&[("code_challenge_method", "")], "invalid_request"),
    (&[("code_challenge_method", "plain")], "invalid_request"),
    (
        &[
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
        "invalid_request",
    ),
    (&[("response_type", "token")], "unsupported_response_type"),
    (&[("scope", "admin")], "invalid_scope"),
    (
        &[("audience", "https://banking.example.com")],
        "invalid_target",
    ),
    (
        &[("resource", "https://nowhere.example.com")],
        "invalid_target",
    ),
    (&[("prompt", "none")], "login_required"),
];

#[tokio::test]
async fn errors_of_a_first_party_clients_request_go_back_to_it_at_once_with_state_and_iss() {
    let issuer = TestIssuer::with_users(STANDARD).with_first_party("apps/web");
    for (changes, code) in REQUEST_ERRORS {
        let reply = issuer.browser().get(&authorize_path(changes)).await;
        assert_eq!(reply.status, StatusCode::FOUND, "{changes:?}");
        let (target, params) = reply.redirect();
        assert_eq!(target, WEB_CB);
        assert_eq!(params["error"], *code, "{changes:?}");
        assert_eq!(params["state"], "xyz");
        assert_eq!(params["iss"], ISSUER_URL);
    }
}

/// RFC 9700 §4.11.2: any team may register a client with any redirect URI, so an error in a
/// request the user has not acted on is not sent there by itself: the page says what is
/// wrong and who asked, and the user may follow a link back with `error`, `state` and `iss`.
#[tokio::test]
async fn errors_of_other_clients_requests_show_a_page_and_go_back_only_if_the_user_follows_its_link()
 {
    let yaml = STANDARD.replace(
        "  clientId: web\n",
        "  clientId: web\n  displayName: \"To-do <b>Web</b>\"\n",
    );
    // The same client id in another namespace is not the first-party one.
    let issuer = TestIssuer::with_users(&yaml).with_first_party("platform/web");
    for (changes, code) in REQUEST_ERRORS {
        let reply = issuer.browser().get(&authorize_path(changes)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{changes:?}");
        assert!(!reply.headers.contains_key(header::LOCATION), "{changes:?}");
        let html = &reply.text;
        assert!(html.contains("Sign-in cannot continue"), "{html}");
        assert!(
            html.contains("<strong>To-do &lt;b&gt;Web&lt;/b&gt;</strong>")
                && html.contains("(<code>web</code>)"),
            "{html}"
        );
        assert!(
            html.contains("<strong>https://app.example.com</strong>"),
            "{html}"
        );
        let start = html
            .find(r#"<a class="secondary" href=""#)
            .expect("a link back")
            + r#"<a class="secondary" href=""#.len();
        let href = html[start..start + html[start..].find('"').expect("end")].replace("&amp;", "&");
        assert!(href.starts_with(&format!("{WEB_CB}?")), "{href}");
        let params = fixtures::query(&href);
        assert_eq!(params["error"], *code, "{changes:?}");
        assert_eq!(params["state"], "xyz");
        assert_eq!(params["iss"], ISSUER_URL);
    }
}

#[tokio::test]
async fn a_malformed_query_gets_an_error_page_and_never_a_redirect() {
    let first_party = TestIssuer::with_users(STANDARD).with_first_party("apps/web");
    let other = TestIssuer::with_users(STANDARD);
    for issuer in [&first_party, &other] {
        for extra in [
            "&scope=todos:write",
            "&x=%FF",
            "&nonce=a&nonce=b",
            "&client_id=web",
            "&redirect_uri=https://evil.example.com/cb",
        ] {
            let path = authorize_path(&[]) + extra;
            let reply = issuer.browser().get(&path).await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{extra}");
            assert!(reply.headers.get(header::LOCATION).is_none(), "{extra}");
            assert!(reply.text.contains("The sign-in request is malformed."));
            assert!(!reply.text.contains("href="), "no way back: {}", reply.text);
        }
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_unknown_client_gets_an_error_page_and_no_redirect() {
    let issuer = TestIssuer::with_users(STANDARD);
    for changes in [
        &[("redirect_uri", "https://evil.example.com/cb")][..],
        &[("redirect_uri", "https://app.example.com/cb/other")],
        &[("redirect_uri", "")],
        &[("client_id", "nobody")],
        &[("client_id", "")],
        &[("client_id", "worker")],
    ] {
        let reply = issuer.browser().get(&authorize_path(changes)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{changes:?}");
        assert!(reply.headers.get(header::LOCATION).is_none());
        assert!(reply.text.contains("Sign-in cannot continue"));
        assert!(!reply.text.contains("evil.example.com") && !reply.text.contains("nobody"));
    }
    let repeated = issuer
        .browser()
        .get(&format!("{}&client_id=web", authorize_path(&[])))
        .await;
    assert_eq!(repeated.status, StatusCode::BAD_REQUEST);
    assert!(repeated.headers.get(header::LOCATION).is_none());
}

#[tokio::test]
async fn a_login_post_with_a_wrong_csrf_token_or_without_its_cookie_is_refused() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let page = browser.get(&authorize_path(&[])).await;
    let form = page.login_form();

    let mut forged = form.clone();
    forged.csrf_token = "A".repeat(43);
    let reply = browser.submit(&forged, ALICE.0, ALICE.1).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.headers.get(header::LOCATION).is_none());

    // Another site posting the victim's form: no cookie (SameSite) or another browser's.
    let mut attacker = issuer.browser();
    attacker.get(&authorize_path(&[])).await;
    assert_eq!(
        attacker.submit(&form, ALICE.0, ALICE.1).await.status,
        StatusCode::FORBIDDEN
    );
    let mut cookieless = issuer.browser();
    assert_eq!(
        cookieless.submit(&form, ALICE.0, ALICE.1).await.status,
        StatusCode::FORBIDDEN
    );

    // The real browser still signs in with the real form.
    assert_eq!(
        browser.submit(&form, ALICE.0, ALICE.1).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_replayed_login_post_gets_no_second_code() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    let first = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER);
    let again = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.headers.get(header::LOCATION).is_none());
    assert!(again.text.contains("expired or was already used"));
}

#[tokio::test]
async fn the_login_form_expires_after_ten_minutes() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    issuer.clock().advance(599);
    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.text);
    let form = browser.get(&authorize_path(&[])).await.login_form();
    issuer.clock().advance(600);
    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.text.contains("expired"), "{}", reply.text);
}

#[tokio::test]
async fn cancel_sends_access_denied_back_to_the_client() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
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
    let (target, params) = reply.redirect();
    assert_eq!(target, WEB_CB);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "xyz");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn five_failures_lock_the_username_out_with_retry_after_until_the_window_passes() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    for attempt in 1..=5 {
        let reply = browser
            .submit(&form, "alice", &format!("guess-{attempt}"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Locked: even the right password is refused, without checking it.
    let locked = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(locked.headers[header::RETRY_AFTER], "60");
    assert!(locked.text.contains("Too many failed sign-in attempts"));
    // Another user is not locked by alice's failures.
    let mut other = issuer.browser();
    other.address = Some(([198, 51, 100, 7], 1).into());
    assert_eq!(
        other.sign_in(&authorize_path(&[]), BOB).await.status,
        StatusCode::SEE_OTHER
    );

    issuer.clock().advance(30);
    let still = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(still.headers[header::RETRY_AFTER], "30");
    issuer.clock().advance(30);
    let reply = browser.sign_in(&authorize_path(&[]), ALICE).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
}

/// Forty wrong guesses sent at once: each waits for a permit to check a password and checks
/// the limits again once it holds one, so the burst gets at most the limit plus the permits
/// less one checked; the rest are locked out without a hash being computed.
#[tokio::test]
async fn a_burst_of_guesses_at_once_cannot_overrun_the_limit() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    let mut browsers: Vec<_> = (0..40)
        .map(|_| {
            let mut copy = issuer.browser();
            copy.cookies = browser.cookies.clone();
            copy
        })
        .collect();
    let replies = futures::future::join_all(
        browsers
            .iter_mut()
            .map(|b| b.submit(&form, "alice", "a-wrong-guess")),
    )
    .await;
    let checked = replies
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let locked = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + locked, 40, "only checked or locked out");
    let most = 5 + tokenwarden::issuer::users::concurrent_checks() - 1;
    assert!(
        (5..=most).contains(&checked),
        "{checked} guesses checked, at most {most}"
    );
}

#[tokio::test]
async fn the_second_lockout_of_a_username_lasts_twice_as_long() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    for round in [60, 120] {
        for _ in 0..5 {
            browser.submit(&form, "alice", "wrong").await;
        }
        let locked = browser.submit(&form, "alice", "wrong").await;
        assert_eq!(
            locked.headers[header::RETRY_AFTER],
            round.to_string().as_str()
        );
        issuer.clock().advance(round);
    }
}

#[tokio::test]
async fn unknown_usernames_are_locked_out_like_known_ones() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    for _ in 0..5 {
        browser.submit(&form, "mallory", "x").await;
    }
    let reply = browser.submit(&form, "mallory", "x").await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn one_address_guessing_many_usernames_is_locked_out() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    for i in 0..20 {
        let reply = browser.submit(&form, &format!("user{i}"), "x").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let locked = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    let mut elsewhere = issuer.browser();
    elsewhere.address = Some(([203, 0, 113, 9], 1).into());
    assert_eq!(
        elsewhere.sign_in(&authorize_path(&[]), ALICE).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn the_login_page_is_an_accessible_form_with_security_headers_and_a_secure_cookie() {
    let issuer = TestIssuer::with_users(STANDARD);
    let page = issuer.browser().get(&authorize_path(&[])).await;
    assert_eq!(page.status, StatusCode::OK);
    let h = &page.headers;
    assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii");
    for directive in [
        "default-src 'none'",
        "style-src 'sha256-",
        "frame-ancestors 'none'",
        "form-action 'self' https://app.example.com",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let cookie = h[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-tokenwarden-login="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    let html = &page.text;
    for needle in [
        r#"<html lang="en">"#,
        r#"<form method="post" action="authorize">"#,
        r#"<label for="username">"#,
        r#"<input id="username" name="username" type="text""#,
        r#"autocomplete="username""#,
        r#"<label for="password">"#,
        r#"<input id="password" name="password" type="password" autocomplete="current-password""#,
        "to continue to <strong>web</strong>",
        "<strong>https://todo.example.com</strong>",
        "<code>todos:read</code>",
        "offline access",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    for absent in ["<script", "src=\"http", "href=\"http", " style=\""] {
        assert!(!html.contains(absent), "found {absent}");
    }
    // The stylesheet is the one the CSP hash allows.
    use base64::Engine as _;
    use sha2::Digest as _;
    let start = html.find("<style>").expect("style") + "<style>".len();
    let end = html.find("</style>").expect("end of style");
    let hash = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(&html.as_bytes()[start..end]));
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
}

#[tokio::test]
async fn a_hostile_state_username_audience_and_scope_are_escaped_on_the_page_and_round_trip() {
    let hostile_scope = "<img/src=x>";
    let hostile_audience = "https://todo.example.com/<script>alert('aud')</script>";
    let yaml = STANDARD
        .replace("https://todo.example.com", hostile_audience)
        .replace(
            r#"{name: "todos:read"}"#,
            &format!(r#"{{name: "{hostile_scope}"}}"#),
        )
        .replace(
            r#"scopes: ["todos:read", "todos:write"]"#,
            &format!(r#"scopes: ["{hostile_scope}"]"#),
        );
    let issuer = TestIssuer::with_users(&yaml);
    let state = r#""><script>alert(1)</script>&x='"#;
    let path = authorize_path(&[("state", state), ("scope", hostile_scope)]);
    let mut browser = issuer.browser();
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(!page.text.contains("<script"), "{}", page.text);
    assert!(!page.text.contains("<img"));
    assert!(page.text.contains("&lt;img/src=x&gt;"));
    assert!(
        page.text
            .contains("&lt;script&gt;alert(&#39;aud&#39;)&lt;/script&gt;")
    );

    let form = page.login_form();
    let failed = browser
        .submit(&form, r#""><script>alert(2)</script>"#, "nope")
        .await;
    assert!(!failed.text.contains("<script"));
    assert!(
        failed
            .text
            .contains(r#"value="&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;""#)
    );

    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    let (_, params) = reply.redirect();
    assert_eq!(params["state"], state);
    assert_eq!(params["iss"], ISSUER_URL);
}

#[tokio::test]
async fn without_users_the_client_gets_access_denied() {
    let issuer = TestIssuer::standard().with_first_party("apps/web");
    let reply = issuer.browser().get(&authorize_path(&[])).await;
    let (_, params) = reply.redirect();
    assert_eq!(params["error"], "access_denied");
    // Another client, only through the page's link.
    let issuer = TestIssuer::standard();
    let reply = issuer.browser().get(&authorize_path(&[])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.headers.contains_key(header::LOCATION));
    assert!(reply.text.contains("error=access_denied"), "{}", reply.text);
}

#[tokio::test]
async fn a_client_removed_while_the_form_is_open_gets_no_code() {
    let issuer = TestIssuer::with_users(STANDARD);
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    issuer.rewrite(&STANDARD.replace("clientId: web", "clientId: web2"));
    let reply = browser.submit(&form, ALICE.0, ALICE.1).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.headers.get(header::LOCATION).is_none());
}

/// A login form of `issuer` served on a real port, posted over HTTP from 127.0.0.1.
struct RealPortForm {
    http: reqwest::Client,
    base: String,
    cookie: String,
    form: fixtures::LoginForm,
}

impl RealPortForm {
    async fn of(issuer: &TestIssuer) -> Self {
        let base = issuer.serve().await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let page = http
            .get(format!("{base}{}", authorize_path(&[])))
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = page.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let text = page.text().await.expect("html");
        let reply = fixtures::Reply {
            status: StatusCode::OK,
            headers: Default::default(),
            json: serde_json::Value::Null,
            text,
        };
        let form = reply.login_form();
        Self {
            http,
            base,
            cookie,
            form,
        }
    }

    /// Posts the credentials, with an `X-Forwarded-For` header when `forwarded` is given.
    async fn post(&self, username: &str, password: &str, forwarded: Option<&str>) -> StatusCode {
        let mut request = self
            .http
            .post(format!("{}/authorize", self.base))
            .header(header::COOKIE, &self.cookie)
            .form(&[
                ("login", self.form.login.as_str()),
                ("csrf_token", self.form.csrf_token.as_str()),
                ("username", username),
                ("password", password),
            ]);
        if let Some(forwarded) = forwarded {
            request = request.header("x-forwarded-for", forwarded);
        }
        request.send().await.expect("post").status()
    }

    /// 20 failures over 10 usernames (2 each: no username is locked), each claiming to be
    /// forwarded for `forwarded(i)`.
    async fn fail_20_times(&self, forwarded: impl Fn(usize) -> Option<String>) {
        for i in 0..20 {
            let name = format!("u{}", i % 10);
            let status = self.post(&name, "x", forwarded(i).as_deref()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
}

#[tokio::test]
async fn the_flow_works_over_a_real_port_and_counts_failures_by_peer_address() {
    let issuer = TestIssuer::with_users(STANDARD);
    let form = RealPortForm::of(&issuer).await;
    // Without trusted proxies, X-Forwarded-For means nothing: a client choosing a new
    // address for every guess is still one peer.
    form.fail_20_times(|i| Some(format!("198.51.100.{i}")))
        .await;
    let locked = form.post(ALICE.0, ALICE.1, Some("198.51.100.200")).await;
    assert_eq!(locked, StatusCode::TOO_MANY_REQUESTS);
    let peer = tokenwarden::issuer::throttle::address_key([127, 0, 0, 1].into());
    let now = issuer.issuer.clock.now();
    let store = &issuer.issuer.store;
    let until = tokenwarden::store::Store::locked_until(store, &[peer], now).await;
    assert_eq!(until.expect("store"), Some(now + 60), "the peer is locked");
}

#[tokio::test]
async fn behind_a_trusted_proxy_failures_count_by_the_forwarded_address() {
    let mut issuer = TestIssuer::with_users(STANDARD);
    issuer.issuer.trusted_proxies = std::sync::Arc::new("127.0.0.0/8".parse().expect("valid"));
    let form = RealPortForm::of(&issuer).await;
    form.fail_20_times(|_| Some("203.0.113.9, 198.51.100.7".to_owned()))
        .await;
    let attacker = form.post(ALICE.0, ALICE.1, Some("198.51.100.7")).await;
    assert_eq!(
        attacker,
        StatusCode::TOO_MANY_REQUESTS,
        "the forwarded address"
    );
    // Someone else behind the same proxy signs in: the proxy's own address was not counted.
    let other = form.post(ALICE.0, ALICE.1, Some("198.51.100.8")).await;
    assert_eq!(other, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn garbled_forwarded_headers_from_a_trusted_proxy_never_lock_out_the_proxy() {
    let mut issuer = TestIssuer::with_users(STANDARD);
    issuer.issuer.trusted_proxies = std::sync::Arc::new("127.0.0.0/8".parse().expect("valid"));
    let form = RealPortForm::of(&issuer).await;
    form.fail_20_times(|i| {
        Some(
            if i % 2 == 0 {
                "unknown"
            } else {
                "198.51.100.7, ::1::"
            }
            .to_owned(),
        )
    })
    .await;
    // Garbled requests share one count of their own, and it is full.
    let garbled = form.post(ALICE.0, ALICE.1, Some("unknown")).await;
    assert_eq!(garbled, StatusCode::TOO_MANY_REQUESTS);
    // The proxy's own address was not counted: a request it sends for itself signs in.
    let proxy = form.post(ALICE.0, ALICE.1, None).await;
    assert_eq!(proxy, StatusCode::SEE_OTHER);
}

/// `text` as it goes into a query in raw form: stray `&`, `=` and `+` and every `%` (bad
/// escapes too) as they are; only the bytes that no URI may hold (non-ASCII, controls, space,
/// `#`, ...) percent-encoded, so that the request can be made at all.
fn unencoded(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&byte) {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// Any query at all: the issuer answers with a page (200 or 400) or a redirect to a
/// registered URI, never a server error and never a redirect elsewhere.
#[test]
fn any_authorize_query_gets_a_page_or_a_redirect_to_a_registered_uri_never_a_5xx() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let issuer = TestIssuer::with_users(STANDARD);
    let name = prop_oneof![
        Just("response_type".to_owned()),
        Just("client_id".to_owned()),
        Just("redirect_uri".to_owned()),
        Just("code_challenge".to_owned()),
        Just("code_challenge_method".to_owned()),
        Just("scope".to_owned()),
        Just("state".to_owned()),
        Just("audience".to_owned()),
        Just("resource".to_owned()),
        Just("prompt".to_owned()),
        "[a-z_%+=&]{0,12}",
    ];
    let value = prop_oneof![
        Just("code".to_owned()),
        Just("web".to_owned()),
        Just("backend".to_owned()),
        Just(WEB_CB.to_owned()),
        Just(fixtures::CHALLENGE.to_owned()),
        Just("S256".to_owned()),
        Just(TODO.to_owned()),
        Just("todos:read offline_access".to_owned()),
        "\\PC{0,30}",
        "[%&=+a-f0-9]{0,30}",
    ];
    let raw = proptest::collection::vec((name, value, any::<bool>()), 0..12);
    let mut runner = TestRunner::new(Config {
        cases: 256,
        ..Config::default()
    });
    runner
        .run(&raw, |params| {
            // Half the pairs are encoded properly, half go in raw (bad escapes, stray `&`).
            let query: String = params
                .iter()
                .map(|(n, v, encode)| {
                    if *encode {
                        form_urlencoded::Serializer::new(String::new())
                            .append_pair(n, v)
                            .finish()
                    } else {
                        format!("{}={}", unencoded(n), unencoded(v))
                    }
                })
                .collect::<Vec<_>>()
                .join("&");
            // Every case reaches the issuer: none is dropped as an invalid URI.
            let uri = axum::http::Uri::try_from(format!("/authorize?{query}"));
            prop_assert!(uri.is_ok(), "not a URI: /authorize?{query}");
            let uri = uri.expect("checked");
            let reply = runtime.block_on(issuer.browser().get(&uri.to_string()));
            prop_assert!(!reply.status.is_server_error(), "{}", reply.status);
            if reply.status.is_redirection() {
                let location = reply.headers[header::LOCATION].to_str().expect("ascii");
                prop_assert!(
                    location.starts_with(&format!("{WEB_CB}?"))
                        || location.starts_with("https://backend.example.com/cb?"),
                    "{location}"
                );
            } else {
                prop_assert!(
                    reply.status == StatusCode::OK || reply.status == StatusCode::BAD_REQUEST,
                    "{}",
                    reply.status
                );
            }
            Ok(())
        })
        .expect("property holds");
}

#[test]
fn the_demo_users_file_lets_alice_sign_in_with_the_documented_password() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/users.yaml");
    let users = tokenwarden::issuer::users::Users::load(&path).expect("valid users file");
    let alice = users.verify("alice", "alice-demo-password").expect("alice");
    assert_eq!(alice.subject(), "alice");
    assert!(users.verify("alice", "alice-password").is_none());
}

/// A loopback address where nothing listens: a provider that is down.
fn unreachable_provider() -> String {
    format!("http://127.0.0.1:{}", fixtures::binary::free_port())
}

#[tokio::test]
async fn a_provider_that_is_down_leaves_the_password_form_working_and_says_so_on_its_button() {
    let issuer = TestIssuer::with_users(STANDARD).with_upstream(&unreachable_provider());
    let mut browser = issuer.browser();
    let page = browser.get(&authorize_path(&[])).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.text.contains(r#"name="connector" value="oidc""#),
        "{}",
        page.text
    );
    assert!(page.text.contains(r#"name="password""#));
    let form = page.login_form();

    let pressed = browser.press_upstream(&form).await;
    assert_eq!(pressed.status, StatusCode::BAD_GATEWAY);
    assert!(pressed.text.contains(r#"role="alert""#));
    assert!(pressed.text.contains("identity provider cannot be reached"));

    // The sign-in is still pending: the password works.
    let signed_in = browser.submit(&form, ALICE.0, ALICE.1).await;
    let (target, params) = signed_in.redirect();
    assert_eq!(target, WEB_CB);
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn the_upstream_button_needs_the_forms_csrf_token_and_cookie() {
    let issuer = TestIssuer::with_users(STANDARD).with_upstream(&unreachable_provider());
    let mut browser = issuer.browser();
    let form = browser.get(&authorize_path(&[])).await.login_form();
    let mut other = issuer.browser();
    let forged = other.press_upstream(&form).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.headers.contains_key(header::LOCATION));
}

#[tokio::test]
async fn a_callback_with_an_unknown_state_or_without_a_connector_is_an_error_page() {
    let without = TestIssuer::with_users(STANDARD);
    let reply = without.get("/callback/oidc?code=c&state=s").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let issuer = TestIssuer::with_users(STANDARD).with_upstream(&unreachable_provider());
    let mut browser = issuer.browser();
    for path in [
        "/callback/oidc?code=c&state=never-sent",
        "/callback/oidc?error=access_denied&state=never-sent",
        "/callback/oidc?code=c",
    ] {
        let reply = browser.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(!reply.headers.contains_key(header::LOCATION), "{path}");
        assert!(reply.text.contains(r#"role="alert""#), "{path}");
    }
}

#[tokio::test]
async fn with_only_the_provider_and_it_down_authorize_shows_an_error_page() {
    let issuer = TestIssuer::standard()
        .with_upstream(&unreachable_provider())
        .with_first_party("apps/web");
    let reply = issuer.browser().get(&authorize_path(&[])).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.text.contains("identity provider cannot be reached"));
}

/// With only the provider, a client the platform does not vouch for could otherwise get a
/// code silently for anyone with a session there: the page shows who asks for which API and
/// scopes, and only its button (with the form's CSRF token and cookie) leaves for the provider.
#[tokio::test]
async fn with_only_the_provider_another_clients_request_waits_on_a_page_for_the_users_agreement() {
    let yaml = STANDARD
        .replace(
            "  clientId: web\n",
            "  clientId: web\n  displayName: \"To-do <b>Web</b>\"\n",
        )
        .replace(
            r#"{name: "todos:read"}"#,
            r#"{name: "todos:read", description: "Read your <to-do> lists"}"#,
        );
    let issuer = TestIssuer::new(&yaml).with_upstream(&unreachable_provider());
    let mut browser = issuer.browser();
    let page = browser.get(&authorize_path(&[])).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(!page.headers.contains_key(header::LOCATION));
    let html = &page.text;
    for needle in [
        "to continue to <strong>To-do &lt;b&gt;Web&lt;/b&gt;</strong> <span class=\"client-id\">(<code>web</code>)</span>",
        "will get access to <strong>https://todo.example.com</strong>",
        "<li><code>todos:read</code>: Read your &lt;to-do&gt; lists</li>",
        "offline access",
        r#"name="connector" value="oidc""#,
        r#"name="cancel""#,
    ] {
        assert!(html.contains(needle), "missing {needle}:\n{html}");
    }
    assert!(!html.contains(r#"name="password""#));
    let form = page.login_form();

    // Without the form's cookie (another browser) or with another CSRF token: refused.
    let forged = issuer.browser().press_upstream(&form).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.headers.contains_key(header::LOCATION));
    let wrong = fixtures::LoginForm {
        csrf_token: "A".repeat(43),
        ..form.clone()
    };
    let forged = browser.press_upstream(&wrong).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // The button leaves for the provider (down here: its page says so).
    let pressed = browser.press_upstream(&form).await;
    assert_eq!(pressed.status, StatusCode::BAD_GATEWAY, "{}", pressed.text);
    assert!(pressed.text.contains("identity provider cannot be reached"));
}

/// A first-party client goes straight to the provider, as before (down here: 502 at once).
#[tokio::test]
async fn with_only_the_provider_a_first_party_client_goes_straight_there() {
    let issuer = TestIssuer::standard()
        .with_upstream(&unreachable_provider())
        .with_first_party("apps/web");
    let reply = issuer.browser().get(&authorize_path(&[])).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
    assert!(!reply.text.contains(r#"name="connector""#));
}

/// The server's own refusals on the pages are the pages' error page, with their headers: a
/// body declared too large is refused from its `Content-Length` (over a socket, nothing else
/// would answer until the whole body or the request timeout came). Every answer, also a 404,
/// carries `nosniff`.
#[tokio::test]
async fn refusals_on_the_pages_are_error_pages_and_every_answer_says_nosniff() {
    use axum::body::Body;
    use axum::http::Request;
    let issuer = TestIssuer::with_users(STANDARD);
    let too_large = Request::post("/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, "100000")
        .body(Body::empty())
        .expect("request");
    let reply = issuer.send(too_large).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html"),
        "{:?}",
        reply.headers
    );
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    assert!(reply.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    assert!(reply.text.contains("The request is too large."));
    for path in ["/nope", "/healthz", "/.well-known/jwks.json", "/authorize"] {
        let reply = issuer.get(path).await;
        assert_eq!(
            reply.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
    }
    let token = issuer
        .post(
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(("worker", fixtures::SECRET)),
        )
        .await;
    assert_eq!(token.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

/// One address opening login forms over and over (a flood of `GET /authorize`) churns its own
/// share of the embedded store's sign-ins: the oldest of its own forms expires, and a form
/// another address opened before the flood still signs in.
#[tokio::test]
async fn a_flood_of_login_forms_from_one_address_only_expires_its_own() {
    use tokenwarden::store::embedded::MAX_SIGN_INS_PER_ADDRESS;
    let issuer = TestIssuer::with_users(STANDARD);
    let mut user = issuer.browser();
    user.address = Some(([198, 51, 100, 7], 40000).into());
    let users_form = user.get(&authorize_path(&[])).await.login_form();
    let mut flood = issuer.browser();
    flood.address = Some(([203, 0, 113, 9], 40000).into());
    let floods_first = flood.get(&authorize_path(&[])).await.login_form();
    for _ in 0..MAX_SIGN_INS_PER_ADDRESS {
        let page = flood.get(&authorize_path(&[])).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    }
    let expired = flood.submit(&floods_first, ALICE.0, ALICE.1).await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST, "{}", expired.text);
    let signed_in = user.submit(&users_form, ALICE.0, ALICE.1).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.text
    );
}

/// A provider that accepts connections and never answers: requests to it hang until the
/// connector's HTTP timeout (10 s).
async fn silent_provider() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    format!("http://{address}")
}

/// Sign-ins that arrive while a provider hangs wait for one fetch of its discovery document,
/// not each for one of their own in turn: the failure of that fetch answers all of them (502)
/// and is not tried again for a few seconds. One after the other, the fourth would have waited
/// 40 s and met the 30 s request timeout (408).
#[tokio::test]
async fn sign_ins_while_the_provider_hangs_share_one_failed_fetch() {
    let issuer = TestIssuer::standard()
        .with_upstream(&silent_provider().await)
        .with_first_party("apps/web");
    let replies = futures::future::join_all(
        (0..4).map(|_| async { issuer.browser().get(&authorize_path(&[])).await }),
    )
    .await;
    for reply in replies {
        assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text);
        assert!(reply.text.contains("identity provider cannot be reached"));
    }
}
