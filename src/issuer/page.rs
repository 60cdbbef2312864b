//! The HTML the issuer shows people: the login form and the error page. Server-rendered, no
//! script, no external assets; one inline stylesheet allowed by its hash in the
//! Content-Security-Policy. Every value that reaches the page is HTML-escaped, and the pages
//! carry the headers that keep them out of frames, caches and `Referer` headers.
//!
//! Owns: markup, styling, escaping and the page headers. Must not decide anything: the caller
//! says what to show.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// What the login form shows. No `Debug`: it holds the sign-in id and the CSRF token.
pub(crate) struct LoginView<'a> {
    pub client_id: &'a str,
    /// The client's `spec.displayName`, shown before its id.
    pub client_name: Option<&'a str>,
    pub audience: &'a str,
    /// The API scopes asked for, each with the policy's description when it has one.
    pub scopes: Vec<(&'a str, Option<&'a str>)>,
    pub offline_access: bool,
    pub login_id: &'a str,
    pub csrf_token: &'a str,
    /// The username typed before, shown again after a failure.
    pub username: &'a str,
    /// A fixed message about the last attempt.
    pub error: Option<&'a str>,
    /// Where the browser goes after the form: allowed as a form target by the CSP.
    pub redirect_uri: &'a str,
    /// Offer the username and password form (static users are configured).
    pub password: bool,
    /// Offer the upstream provider: its name on the button, and where the button's form
    /// redirects (so the CSP must allow it).
    pub upstream: Option<UpstreamButton<'a>>,
}

/// The button that sends the user to the upstream OpenID Provider.
#[derive(Debug)]
pub(crate) struct UpstreamButton<'a> {
    pub name: &'a str,
    /// The provider's issuer URL and, once known, its authorization endpoint.
    pub destinations: Vec<&'a str>,
}

/// `&`, `<`, `>`, `"` and `'` as character references: safe in text and in quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What an error page that offers the way back shows ([`error_with_return`]).
pub(crate) struct ReturnView<'a> {
    pub client_id: &'a str,
    pub client_name: Option<&'a str>,
    /// A fixed description of what is wrong with the request.
    pub message: &'a str,
    /// The error response at the client's redirect URI.
    pub return_url: &'a str,
}

/// The client as people see it: its display name, then its id; or its id alone.
fn client_label(client_id: &str, client_name: Option<&str>) -> String {
    match client_name {
        Some(name) => format!(
            r#"<strong>{}</strong> <span class="client-id">(<code>{}</code>)</span>"#,
            escape(name),
            escape(client_id)
        ),
        None => format!("<strong>{}</strong>", escape(client_id)),
    }
}

/// The login form, with `status` (200 first, 401 after a failure, 429 when locked out).
pub(crate) fn login(view: &LoginView<'_>, status: StatusCode) -> Response {
    let client = client_label(view.client_id, view.client_name);
    let (alert, invalid) = match view.error {
        Some(message) => (
            format!(
                r#"<p class="alert" role="alert" id="form-error">{}</p>"#,
                escape(message)
            ),
            // The fields are at fault only after a password attempt.
            if view.username.is_empty() {
                ""
            } else {
                r#" aria-invalid="true" aria-describedby="form-error""#
            },
        ),
        None => (String::new(), ""),
    };
    let mut access: String = view
        .scopes
        .iter()
        .map(|(name, description)| match description {
            Some(description) => format!(
                "<li><code>{}</code>: {}</li>",
                escape(name),
                escape(description)
            ),
            None => format!("<li><code>{}</code></li>", escape(name)),
        })
        .collect();
    if view.offline_access {
        access.push_str("<li>Staying signed in (offline access)</li>");
    }
    if access.is_empty() {
        access.push_str("<li>Your identity</li>");
    }
    // First field on a first visit without a provider button; the password after a failure.
    let autofocus = match (view.username.is_empty(), view.upstream.is_some()) {
        (true, false) => (" autofocus", ""),
        (true, true) => ("", ""),
        (false, _) => ("", " autofocus"),
    };
    let hidden = format!(
        r#"<input type="hidden" name="login" value="{}">
<input type="hidden" name="csrf_token" value="{}">"#,
        escape(view.login_id),
        escape(view.csrf_token)
    );
    let upstream = match &view.upstream {
        Some(button) => format!(
            r#"<form method="post" action="authorize" class="sso">
{hidden}
<button class="{class}" type="submit" name="connector" value="oidc">{SSO_ICON}<span>Continue with <strong>{name}</strong></span></button>
</form>
"#,
            class = if view.password {
                "secondary"
            } else {
                "primary"
            },
            name = escape(button.name),
        ),
        None => String::new(),
    };
    let divider = if view.upstream.is_some() && view.password {
        r#"<p class="divider"><span>or use a password</span></p>
"#
    } else {
        ""
    };
    let password = if view.password {
        format!(
            r#"<form method="post" action="authorize">
{hidden}
<label for="username">Username</label>
<input id="username" name="username" type="text" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required{focus_user}{invalid}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required{focus_password}{invalid}>
<button class="primary" type="submit">Sign in</button>
<button class="secondary" type="submit" name="cancel" value="1" formnovalidate>Cancel</button>
</form>
"#,
            username = escape(view.username),
            focus_user = autofocus.0,
            focus_password = autofocus.1,
        )
    } else {
        format!(
            r#"<form method="post" action="authorize">
{hidden}
<button class="secondary" type="submit" name="cancel" value="1">Cancel</button>
</form>
"#
        )
    };
    let body = format!(
        r#"<h1>Sign in</h1>
<p class="lead">to continue to {client}</p>
{alert}{upstream}{divider}{password}<section class="access" aria-labelledby="access-title">
<h2 id="access-title">{client} will get access to <strong>{audience}</strong>:</h2>
<ul>{access}</ul>
</section>"#,
        audience = escape(view.audience),
    );
    let mut targets: Vec<String> = std::iter::once(view.redirect_uri)
        .chain(
            view.upstream
                .iter()
                .flat_map(|b| b.destinations.iter().copied()),
        )
        .map(form_action_source)
        .collect::<Option<_>>()
        .unwrap_or_default();
    targets.dedup();
    let form_action = if targets.is_empty() {
        // A target that cannot be named in a CSP: leave form targets unrestricted rather
        // than break the redirect after sign-in.
        String::new()
    } else {
        format!("form-action 'self' {}", targets.join(" "))
    };
    render(status, "Sign in", &body, &form_action)
}

/// The error page: a fixed message, no way back to a client that cannot be trusted.
pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        r#"<h1>Sign-in cannot continue</h1>
<p class="alert" role="alert">{}</p>
<p class="lead">Return to the application you came from and start again.</p>"#,
        escape(message)
    );
    render(status, "Sign-in error", &body, "form-action 'none'")
}

/// The error page of a request that the client's redirect URI may hear about, though no one
/// vouches for that URI: the error, who sent the request, and a link back that the user may
/// follow (RFC 9700 §4.11.2). Nothing goes there unless the user chooses to.
pub(crate) fn error_with_return(status: StatusCode, view: &ReturnView<'_>) -> Response {
    let destination = form_action_source(view.return_url)
        .map(|origin| format!("<strong>{}</strong>", escape(&origin)))
        .unwrap_or_else(|| "the application's address".to_owned());
    let body = format!(
        r#"<h1>Sign-in cannot continue</h1>
<p class="alert" role="alert">The sign-in to {client} cannot continue: {message}.</p>
<p class="lead">If you trust this application, you may return to it at {destination} and let it know. Otherwise, close this page.</p>
<a class="secondary" href="{url}" rel="noreferrer">Return to the application</a>"#,
        client = client_label(view.client_id, view.client_name),
        message = escape(view.message),
        url = escape(view.return_url),
    );
    render(status, "Sign-in error", &body, "form-action 'none'")
}

const STYLE: &str = r#":root{color-scheme:light dark;--bg:#f3f5f9;--card:#fff;--text:#182031;--muted:#5a6476;--border:#d3d9e3;--accent:#2d5be3;--on-accent:#fff;--alert-bg:#fdeded;--alert-text:#9a1b1b;--ring:rgba(45,91,227,.35)}
@media (prefers-color-scheme:dark){:root{--bg:#0e131d;--card:#171f2e;--text:#e5e9f1;--muted:#9ba5b6;--border:#2b3547;--accent:#7195ff;--on-accent:#0b1020;--alert-bg:#3b1818;--alert-text:#ffbcbc;--ring:rgba(113,149,255,.4)}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;justify-content:center;padding:24px 16px;background:var(--bg);color:var(--text);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{width:100%;max-width:400px;background:var(--card);border:1px solid var(--border);border-radius:14px;padding:32px;box-shadow:0 12px 32px rgba(16,24,40,.08)}
.brand{display:flex;align-items:center;gap:8px;margin:0 0 24px;font-size:14px;font-weight:600;color:var(--muted)}
.brand svg{width:22px;height:22px;color:var(--accent)}
h1{margin:0 0 4px;font-size:24px;line-height:1.25}
.lead{margin:0 0 24px;color:var(--muted)}
strong{color:var(--text);overflow-wrap:anywhere}
label{display:block;margin:16px 0 6px;font-size:14px;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:10px 12px;border:1px solid var(--border);border-radius:8px;background:transparent;color:inherit;font:inherit}
input:focus{outline:3px solid var(--ring);outline-offset:0;border-color:var(--accent)}
input[aria-invalid=true]{border-color:var(--alert-text)}
button{width:100%;padding:11px 12px;border-radius:8px;font:inherit;font-weight:600;cursor:pointer}
button:focus-visible{outline:3px solid var(--ring);outline-offset:2px}
.primary{margin-top:24px;border:0;background:var(--accent);color:var(--on-accent)}
.primary:hover{filter:brightness(1.08)}
.secondary{margin-top:8px;border:1px solid var(--border);background:transparent;color:var(--text);font-weight:500}
a.secondary{display:block;padding:11px 12px;border-radius:8px;text-align:center;text-decoration:none}
.client-id{color:var(--muted)}
.sso button{display:flex;align-items:center;justify-content:center;gap:10px;margin-top:0}
.sso svg{width:18px;height:18px;flex:none}
.sso strong{color:inherit}
.divider{display:flex;align-items:center;gap:12px;margin:20px 0 0;font-size:13px;color:var(--muted)}
.divider::before,.divider::after{content:"";flex:1;border-top:1px solid var(--border)}
.divider+form label:first-of-type{margin-top:12px}
h1+.alert{margin-top:16px}
.alert{margin:0 0 16px;padding:10px 12px;border-radius:8px;background:var(--alert-bg);color:var(--alert-text);font-size:14px}
.access{margin-top:24px;padding-top:16px;border-top:1px solid var(--border);font-size:14px;color:var(--muted)}
.access h2{margin:0;font-size:14px;font-weight:400}
.access ul{margin:8px 0 0;padding-left:20px}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{margin-top:16px;font-size:12px;color:var(--muted)}"#;

/// A key: the provider button's icon.
const SSO_ICON: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><circle cx="8" cy="15" r="4"/><path d="m10.85 12.15 8.15-8.15"/><path d="m16 7 3 3"/><path d="m18 5 2 2"/></svg>"#;

const LOGO: &str = r#"<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false"><path d="M12 2 4 5v6c0 5 3.4 9.4 8 11 4.6-1.6 8-6 8-11V5z"/><circle cx="12" cy="11" r="2.5"/><path d="M12 13.5V17"/></svg>"#;

/// `style-src` allows exactly [`STYLE`], by its SHA-256.
static STYLE_SOURCE: LazyLock<String> = LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(STYLE.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
});

fn render(status: StatusCode, title: &str, body: &str, form_action: &str) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} · tokenwarden</title>
<style>{STYLE}</style>
</head>
<body>
<main>
<p class="brand">{LOGO}<span>tokenwarden</span></p>
{body}
</main>
<footer>Secured by tokenwarden</footer>
</body>
</html>
"#,
        title = escape(title),
    );
    let csp = format!(
        "default-src 'none'; style-src {}; {form_action}{}frame-ancestors 'none'; base-uri 'none'",
        *STYLE_SOURCE,
        if form_action.is_empty() { "" } else { "; " },
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    no_store(headers);
    response
}

/// `Cache-Control: no-store`, `Pragma: no-cache` and `Referrer-Policy: no-referrer`: for pages
/// and for the redirects that carry codes.
pub(crate) fn no_store(headers: &mut axum::http::HeaderMap) {
    super::routes::respond::forbid_caching(headers);
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The CSP source that allows the form's redirect to `uri`: the origin of an http(s) URI, the
/// scheme of another (a native app's `com.example.app:/cb`). `None` when it cannot be said
/// safely in a header.
pub(crate) fn form_action_source(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    if !scheme_ok {
        return None;
    }
    let lower = scheme.to_ascii_lowercase();
    if lower != "http" && lower != "https" {
        return Some(format!("{lower}:"));
    }
    let authority = rest.strip_prefix("//")?;
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    let host = &authority[..end];
    let host_ok = !host.is_empty()
        && !host.contains('@')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    host_ok.then(|| format!("{lower}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attribute_contexts() {
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
    }

    fn view(upstream: Option<UpstreamButton<'static>>, password: bool) -> LoginView<'static> {
        LoginView {
            client_id: "web",
            client_name: None,
            audience: "https://todo.example.com",
            scopes: vec![("todos:read", None)],
            offline_access: false,
            login_id: "login-id",
            csrf_token: "csrf",
            username: "",
            error: None,
            redirect_uri: "https://app.example.com/cb",
            password,
            upstream,
        }
    }

    async fn html_and_csp(view: &LoginView<'_>) -> (String, String) {
        let response = login(view, StatusCode::OK);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (String::from_utf8(body.to_vec()).expect("utf-8"), csp)
    }

    #[tokio::test]
    async fn with_both_connectors_the_page_offers_both_and_the_csp_allows_the_provider() {
        let button = UpstreamButton {
            name: "login.example.com",
            destinations: vec![
                "https://login.example.com/realms/staff",
                "https://sso.example.com/auth",
            ],
        };
        let (html, csp) = html_and_csp(&view(Some(button), true)).await;
        assert!(html.contains(r#"name="connector" value="oidc""#), "{html}");
        assert!(html.contains("Continue with <strong>login.example.com</strong>"));
        assert!(html.contains(r#"name="password""#));
        assert!(
            csp.contains(
                "form-action 'self' https://app.example.com https://login.example.com https://sso.example.com;"
            ),
            "{csp}"
        );

        let (html, csp) = html_and_csp(&view(None, true)).await;
        assert!(!html.contains("connector"));
        assert!(
            csp.contains("form-action 'self' https://app.example.com;"),
            "{csp}"
        );
    }

    #[test]
    fn the_form_may_redirect_to_the_clients_origin_only() {
        assert_eq!(
            form_action_source("https://app.example.com:8443/cb?x=1").as_deref(),
            Some("https://app.example.com:8443")
        );
        assert_eq!(
            form_action_source("http://[::1]:3000/cb").as_deref(),
            Some("http://[::1]:3000")
        );
        assert_eq!(
            form_action_source("com.example.app:/oauth").as_deref(),
            Some("com.example.app:")
        );
        for bad in [
            "https://a.example.com;script-src *",
            "https://user@a.example.com/",
            "https:/x",
            "no-scheme",
            "1x:/y",
        ] {
            assert_eq!(form_action_source(bad), None, "{bad}");
        }
    }
}
