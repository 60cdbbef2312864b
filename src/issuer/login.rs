//! The password form: between `GET /authorize` (which shows the login form) and the form's
//! `POST`, the validated request waits in the store ([`super::sign_ins`], so the `POST` may
//! reach another replica) under a random id. The form carries only that id and a CSRF token;
//! nothing in a hidden field is trusted.
//!
//! Owns: the pending requests (expiring), their CSRF tokens and the binding of each to the
//! browser that started it. Must not read the clock (calls take `now`) nor know about HTTP
//! beyond the cookie's value.
//!
//! CSRF protection is a synchronizer token bound to the pending request *and* to a cookie:
//! the POST must carry the form's token and the cookie the browser got with the form
//! (`HttpOnly`, `SameSite=Lax`, `Secure` and `__Host-` when the issuer is https). A login form
//! posted from another site (login CSRF) has no cookie and fails; a leaked form without its
//! cookie fails too. A pending request is used once: a successful sign-in (or a cancel) removes
//! it, so a replayed POST finds nothing.

use super::authorization::AuthorizationRequest;
use super::form::Form;
use super::sign_ins;
use crate::store::{LockoutKey, OpaqueToken, Store, StoreError, TokenHash};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// How long the login form may stay open.
pub(crate) const LOGIN_TTL_SECS: u64 = 10 * 60;

/// A sign-in in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The request as sent, validated again against the configuration in force at sign-in.
    pub query: Form,
    /// The request as validated when the form was shown (for the page).
    pub request: AuthorizationRequest,
    csrf: TokenHash,
    browser: TokenHash,
}

/// What the form and the cookie carry for one sign-in.
#[derive(Debug)]
pub(crate) struct Started {
    pub login_id: OpaqueToken,
    pub csrf_token: OpaqueToken,
}

/// Why a login POST cannot continue.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// No such sign-in: never started, expired, or already completed (a replay).
    Unknown,
    /// The CSRF token or the browser cookie does not match.
    Forged,
    /// The store cannot say.
    Store(StoreError),
}

/// Keep `request` for the browser whose cookie is `browser`; returns the id and CSRF token
/// to put in the form.
pub(crate) async fn start(
    store: &impl Store,
    query: Form,
    request: AuthorizationRequest,
    browser: &OpaqueToken,
    from: Option<LockoutKey>,
    now: u64,
) -> Result<Started, StoreError> {
    let started = Started {
        login_id: OpaqueToken::generate()?,
        csrf_token: OpaqueToken::generate()?,
    };
    let pending = Pending {
        query,
        request,
        csrf: started.csrf_token.hash(),
        browser: browser.hash(),
    };
    let expires_at = now.saturating_add(LOGIN_TTL_SECS);
    sign_ins::put(store, &started.login_id, &pending, from, expires_at, now).await?;
    Ok(started)
}

/// The sign-in `login_id`, if `csrf_token` and the browser's cookie are its own. It stays
/// pending (a wrong password may be retried).
pub(crate) async fn check(
    store: &impl Store,
    login_id: &str,
    csrf_token: &str,
    browser: Option<&str>,
    now: u64,
) -> Result<Pending, LoginError> {
    let pending: Pending = sign_ins::get(store, login_id, now)
        .await
        .map_err(LoginError::Store)?
        .ok_or(LoginError::Unknown)?;
    let csrf = OpaqueToken::from_presented(csrf_token).hash();
    let cookie = browser.map(|b| OpaqueToken::from_presented(b).hash());
    let csrf_ok: bool = csrf.0.ct_eq(&pending.csrf.0).into();
    let browser_ok: bool = cookie.is_some_and(|c| c.0.ct_eq(&pending.browser.0).into());
    if csrf_ok && browser_ok {
        Ok(pending)
    } else {
        Err(LoginError::Forged)
    }
}

/// Complete the sign-in `login_id`: it is removed, so this succeeds once.
pub(crate) async fn take(
    store: &impl Store,
    login_id: &str,
    now: u64,
) -> Result<Option<Pending>, StoreError> {
    sign_ins::take(store, login_id, now).await
}

/// The name of the browser-binding cookie: `__Host-` (Secure, Path=/, no Domain, so no other
/// host can plant it) when the issuer is https; browsers refuse that prefix over http.
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-tokenwarden-login"
    } else {
        "tokenwarden-login"
    }
}

/// The `Set-Cookie` value for the browser binding.
pub(crate) fn set_cookie(value: &OpaqueToken, secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={}; Path=/; Max-Age={LOGIN_TTL_SECS}; HttpOnly; SameSite=Lax{secure}",
        value.expose()
    )
}

/// The browser-binding cookie of a request, if it has a well-formed one (43 base64url
/// characters, as generated).
pub(crate) fn cookie_value<'h>(
    cookie_headers: impl Iterator<Item = &'h str>,
    secure: bool,
) -> Option<&'h str> {
    let name = cookie_name(secure);
    cookie_headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| {
            v.len() == 43
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    const T: u64 = 1_000;

    fn request() -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: "web".into(),
            redirect_uri: "https://app.example.com/cb".into(),
            state: None,
            audience: "https://todo.example.com".into(),
            scope: "read".into(),
            code_challenge: "c".into(),
            nonce: None,
        }
    }

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        (dir, store)
    }

    async fn start(store: &EmbeddedStore, browser: &OpaqueToken, now: u64) -> Started {
        super::start(store, Form::default(), request(), browser, None, now)
            .await
            .expect("started")
    }

    #[tokio::test]
    async fn a_sign_in_needs_its_csrf_token_and_its_browsers_cookie() {
        let (_dir, store) = store();
        let browser = OpaqueToken::generate().expect("random");
        let other = OpaqueToken::generate().expect("random");
        let s = start(&store, &browser, T).await;
        let (id, csrf) = (s.login_id.expose(), s.csrf_token.expose());
        let mine = Some(browser.expose());
        let pending = check(&store, id, csrf, mine, T).await;
        assert_eq!(pending.expect("its own").request, request());
        for (id, csrf, cookie, why) in [
            (id, csrf, None, "no cookie"),
            (id, csrf, Some(other.expose()), "another browser's cookie"),
            (id, "x", mine, "another CSRF token"),
        ] {
            let forged = check(&store, id, csrf, cookie, T).await;
            assert!(matches!(forged, Err(LoginError::Forged)), "{why}");
        }
        let unknown = check(&store, "x", csrf, mine, T).await;
        assert!(matches!(unknown, Err(LoginError::Unknown)));
    }

    #[tokio::test]
    async fn a_sign_in_completes_once_and_expires_after_ten_minutes() {
        let (_dir, store) = store();
        let browser = OpaqueToken::generate().expect("random");
        let s = start(&store, &browser, T).await;
        let id = s.login_id.expose();
        assert!(take(&store, id, T).await.expect("store").is_some());
        assert!(take(&store, id, T).await.expect("store").is_none());

        let s = start(&store, &browser, T).await;
        let (id, csrf) = (s.login_id.expose(), s.csrf_token.expose());
        let late = T + LOGIN_TTL_SECS;
        assert!(matches!(
            check(&store, id, csrf, Some(browser.expose()), late).await,
            Err(LoginError::Unknown)
        ));
        assert!(take(&store, id, late).await.expect("store").is_none());
    }

    #[test]
    fn only_a_well_formed_cookie_of_our_name_is_read() {
        let value = "a".repeat(43);
        let header = format!("x=1; tokenwarden-login={value}; y=2");
        assert_eq!(
            cookie_value([header.as_str()].into_iter(), false),
            Some(value.as_str())
        );
        assert_eq!(cookie_value([header.as_str()].into_iter(), true), None);
        let secure = format!("__Host-tokenwarden-login={value}");
        assert_eq!(
            cookie_value([secure.as_str()].into_iter(), true),
            Some(value.as_str())
        );
        assert_eq!(
            cookie_value(["tokenwarden-login=short"].into_iter(), false),
            None
        );
        let bad = format!("tokenwarden-login={}", "<".repeat(43));
        assert_eq!(cookie_value([bad.as_str()].into_iter(), false), None);
    }

    #[test]
    fn the_cookie_is_http_only_same_site_and_secure_over_https() {
        let value = OpaqueToken::from_presented("v");
        let https = set_cookie(&value, true);
        assert!(https.starts_with("__Host-tokenwarden-login=v; Path=/;"));
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure"] {
            assert!(https.contains(attribute), "{https}");
        }
        assert!(!set_cookie(&value, false).contains("Secure"));
    }
}
