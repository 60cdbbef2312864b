//! The login pages in a real browser: Debian's Chromium, driven by playwright-core
//! (`tests/node/browser.mjs`), against the real `tokenwarden issuer` binary with both
//! connectors — static users and a real upstream OpenID Provider (node-oidc-provider). The
//! page offers both, in a sensible Tab order with labelled fields; a wrong password is
//! announced and the right one then signs in; the upstream sign-in comes back with a code;
//! a tampered `state` ends on an error page and never at the application. With only the
//! provider, a client that is not first-party stops at tokenwarden's page (its display name,
//! client id, API and scopes) until the user presses the button, a cross-site POST of that
//! button is refused, and a first-party client goes straight to the provider. The codes are
//! exchanged here for tokens of the right user.
//!
//! Screenshots of the pages are kept under `<cargo target dir>/tmp/browser-screenshots/`
//! (the test prints the paths).

use crate::fixtures;

use fixtures::binary::{alice_users_flags, folder_with_policies, free_port, start_standalone_with};
use fixtures::upstream::{
    APP_CB, chromium, exchange, node_dir, oidc_flags, policies, start_provider,
};
use fixtures::{ALICE, authorize_path, claims, query};

fn authorize_url(base: &str) -> String {
    authorize_url_for(base, "web")
}

fn authorize_url_for(base: &str, client_id: &str) -> String {
    let path = authorize_path(&[
        ("client_id", client_id),
        ("redirect_uri", APP_CB),
        ("state", "browser-state"),
        ("audience", "https://todo.example.com"),
    ]);
    format!("{base}{path}")
}

/// [`policies`] and a public client `portal`, which the platform names first-party.
fn policies_with_portal() -> String {
    format!(
        r#"{}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {{name: portal, namespace: apps}}
spec:
  clientId: portal
  type: Public
  grantTypes: [authorization_code]
  redirectUris: ["{APP_CB}"]
  audiences:
    - {{audience: https://todo.example.com, scopes: ["todos:read"]}}
"#,
        policies()
    )
}

/// Exchange the code the application received; the access token's `sub` and whether a
/// refresh token came with it.
async fn exchange_at(base: &str, application_url: &str) -> (String, bool) {
    let params = query(application_url);
    assert_eq!(params["state"], "browser-state");
    let tokens = exchange(base, &params["code"]).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let header = jsonwebtoken::decode_header(access).expect("a JWT");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = claims(access);
    (
        claims["sub"].as_str().expect("sub").to_owned(),
        tokens.get("refresh_token").is_some(),
    )
}

#[tokio::test]
async fn a_browser_signs_in_with_a_password_and_through_the_upstream_provider() {
    let chromium = chromium();
    let node = node_dir();
    let dir = folder_with_policies(&policies());
    let port = free_port();
    let provider = start_provider(&format!("http://127.0.0.1:{port}/callback/oidc"));
    let mut flags = oidc_flags(&provider, dir.path());
    flags.extend(alice_users_flags(dir.path()));
    let issuer = start_standalone_with(dir.path(), port, &flags, &[]).await;
    // Only the provider: `web` is not first-party, `portal` is.
    let only_dir = folder_with_policies(&policies_with_portal());
    let only_port = free_port();
    let only_provider = start_provider(&format!("http://127.0.0.1:{only_port}/callback/oidc"));
    let mut only_flags = oidc_flags(&only_provider, only_dir.path());
    only_flags.extend(["--first-party-clients".to_owned(), "apps/portal".to_owned()]);
    let upstream_only = start_standalone_with(only_dir.path(), only_port, &only_flags, &[]).await;

    let screenshots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&screenshots).expect("screenshots dir");
    let walk = serde_json::json!({
        "chromium": chromium,
        "screenshots": screenshots,
        "appCallback": APP_CB,
        "staticUrl": authorize_url(&issuer.base),
        "upstreamUrl": authorize_url(&issuer.base),
        "providerIssuer": provider.issuer,
        "user": ALICE.0,
        "password": ALICE.1,
        "upstreamUser": "frank",
        "upstreamOnlyBase": upstream_only.base,
        "agreementUrl": authorize_url(&upstream_only.base),
        "firstPartyUrl": authorize_url_for(&upstream_only.base, "portal"),
        "onlyProviderIssuer": only_provider.issuer,
        "attackerOrigin": "http://attacker.test",
    });
    let walking = tokio::process::Command::new("node")
        .arg(node.join("browser.mjs"))
        .env("WALK", walk.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), walking)
        .await
        .expect("tests/node/browser.mjs did not finish within 3 minutes")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "tests/node/browser.mjs failed:\n{stdout}\n{}\nissuer log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        issuer.log_text()
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a result line")).expect("JSON");

    let login = &result["static"];
    assert_eq!(login["status"], 200);
    assert_eq!(login["offers"]["upstream"], true, "{login}");
    assert_eq!(login["offers"]["password"], true, "{login}");
    let csp = login["csp"].as_str().expect("a CSP");
    assert!(
        csp.contains(&provider.issuer),
        "the form may go to the provider: {csp}"
    );
    assert_eq!(
        login["tabOrder"],
        serde_json::json!(["connector", "username", "password", "Sign in", "cancel"]),
        "{login}"
    );
    let wrong = &login["wrongPassword"];
    assert_eq!(wrong["alert"], "The username or password is incorrect.");
    assert_eq!(wrong["usernameKept"], ALICE.0);
    assert_eq!(wrong["passwordInvalid"], "true");
    assert_eq!(wrong["describedBy"], "form-error");
    assert_eq!(wrong["focused"], "password");
    let (subject, refresh) =
        exchange_at(&issuer.base, login["application"].as_str().expect("url")).await;
    assert_eq!((subject.as_str(), refresh), ("alice", true));

    let upstream = &result["upstream"];
    let (subject, refresh) =
        exchange_at(&issuer.base, upstream["application"].as_str().expect("url")).await;
    assert_eq!((subject.as_str(), refresh), ("frank", true));

    let tampered = &result["tampered"];
    assert_eq!(tampered["status"], 400, "{tampered}");
    assert_eq!(tampered["heading"], "Sign-in cannot continue");
    assert!(
        tampered["alert"]
            .as_str()
            .expect("alert")
            .contains("not known here"),
        "{tampered}"
    );
    assert_eq!(tampered["reachedApplication"], false);
    let settled = tampered["finalUrl"].as_str().expect("the page's URL");
    assert!(
        settled.starts_with(&format!("{}/callback/oidc?", issuer.base)),
        "the browser stays on the error page: {settled}"
    );

    let agreement = &result["agreement"];
    assert_eq!(agreement["status"], 200, "{agreement}");
    assert!(
        agreement["url"]
            .as_str()
            .expect("url")
            .starts_with(&format!("{}/authorize?", upstream_only.base)),
        "{agreement}"
    );
    assert_eq!(
        agreement["lead"], "to continue to To-do Web (web)",
        "{agreement}"
    );
    let access = agreement["access"].as_str().expect("the access section");
    assert!(
        access.starts_with("To-do Web (web) will get access to https://todo.example.com:")
            && access.contains("todos:read: Read your to-do lists")
            && access.contains("offline access"),
        "{agreement}"
    );
    assert_eq!(agreement["offersPassword"], false);
    assert_eq!(
        agreement["sentBeforeAgreeing"],
        serde_json::json!([]),
        "nothing goes to the provider or the application before the button"
    );
    assert_eq!(agreement["forged"]["status"], 403, "{agreement}");
    assert_eq!(agreement["sentAfterForgery"], serde_json::json!([]));
    let (subject, _) = exchange_at(
        &upstream_only.base,
        agreement["application"].as_str().expect("url"),
    )
    .await;
    assert_eq!(subject, "frank");

    let first_party = &result["firstParty"];
    assert!(
        first_party["landedAt"]
            .as_str()
            .expect("url")
            .starts_with(&only_provider.issuer),
        "{first_party}"
    );
    let chain = first_party["chain"].as_array().expect("the redirect chain");
    let starts = |hop: &serde_json::Value, prefix: &str| {
        hop["url"].as_str().is_some_and(|u| u.starts_with(prefix))
    };
    assert!(
        starts(&chain[0], &format!("{}/authorize?", upstream_only.base))
            && chain[0]["status"] == 302
            && starts(&chain[1], &format!("{}/auth?", only_provider.issuer)),
        "straight from /authorize to the provider: {first_party}"
    );
    let application = first_party["application"].as_str().expect("url");
    assert!(query(application).contains_key("code"), "{application}");

    for shot in [
        &agreement["screenshot"],
        &login["screenshot"],
        &login["errorScreenshot"],
        &tampered["screenshot"],
    ] {
        let path = shot.as_str().expect("path");
        let size = std::fs::metadata(path).expect("screenshot").len();
        assert!(size > 1000, "{path} is {size} bytes");
        println!("screenshot: {path}");
    }
}
