//! `GET /callback/oidc`: the browser comes back from the upstream OpenID Provider. The `state`
//! must be one this issuer sent, unused, to this browser ([`pending`]); then the provider's
//! answer is handled: an error (the user refused, say) goes to the client as `access_denied`
//! (RFC 6749 §4.1.2.1), a code is exchanged with the client secret and the PKCE verifier, the
//! ID token is validated ([`id_token`]), and tokenwarden's own code flow finishes for the user
//! the configured claim names, exactly as after a password sign-in.
//!
//! A `state` that is unknown, replayed, tampered with or from another browser gets an error
//! page and never a redirect: nothing then says which client request it belonged to. An answer
//! that cannot be verified gets an error page too; the details go to the log.
//!
//! [`pending`]: crate::issuer::upstream::pending
//! [`id_token`]: crate::issuer::upstream::id_token

use crate::issuer::audit::Decision;
use crate::issuer::error::{ErrorCode, OAuthError};
use crate::issuer::form::Form;
use crate::issuer::login;
use crate::issuer::page;
use crate::issuer::routes::authorize::{
    complete, cookie_headers, redirect_error, refused_sign_in, reject, sign_in_unavailable,
};
use crate::issuer::state::Issuer;
use crate::issuer::upstream::Upstream;
use crate::issuer::upstream::id_token::{self, Expected};
use crate::issuer::upstream::pending::{self, Arrival, TripError};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

const UNKNOWN_STATE: &str =
    "This sign-in is not known here: it expired, was already used, or the link was altered.";
const OTHER_BROWSER: &str =
    "This sign-in was started in another browser. Start again from the application.";
const UNVERIFIED: &str = "The identity provider's answer could not be verified, so you are not signed in. Try again; if it keeps happening, tell your administrator.";
const EXPIRED: &str = "This sign-in page has expired or was already used.";

/// `GET /callback/oidc`.
pub(crate) async fn callback(
    State(issuer): State<Issuer>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(upstream) = issuer.upstream.clone() else {
        return page::error(StatusCode::NOT_FOUND, UNKNOWN_STATE);
    };
    let unknown_state = || {
        refused_sign_in("unknown_state", None)
            .attach(page::error(StatusCode::BAD_REQUEST, UNKNOWN_STATE))
    };
    let query = query.unwrap_or_default();
    let Ok(form) = Form::parse(query.as_bytes()) else {
        return unknown_state();
    };
    let Some(state) = form.get("state") else {
        return unknown_state();
    };
    let secure = issuer.issuer_url.starts_with("https://");
    let cookie = login::cookie_value(cookie_headers(&headers), secure);
    let now = issuer.clock.now();
    let arrival = match pending::arrive(&issuer.store, state, cookie, now).await {
        Ok(arrival) => arrival,
        Err(TripError::Store(e)) => return sign_in_unavailable(e, None),
        Err(TripError::Unknown) => {
            tracing::warn!("a callback from the upstream provider carried an unknown state");
            return unknown_state();
        }
        Err(TripError::OtherBrowser) => {
            tracing::warn!("a callback from the upstream provider came to another browser");
            return refused_sign_in("other_browser", None)
                .attach(page::error(StatusCode::FORBIDDEN, OTHER_BROWSER));
        }
    };
    let login_id = arrival.login_id.expose();
    let pending = match login::take(&issuer.store, login_id, now).await {
        Ok(Some(pending)) => pending,
        Ok(None) => {
            return refused_sign_in("expired", None)
                .attach(page::error(StatusCode::BAD_REQUEST, EXPIRED));
        }
        Err(e) => return sign_in_unavailable(e, None),
    };
    let unverified = || {
        refused_sign_in("unverified", Some(&pending.request))
            .attach(page::error(StatusCode::BAD_GATEWAY, UNVERIFIED))
    };
    // RFC 9207: when the provider says who it is, it must be ours (mix-up defence).
    if form
        .get("iss")
        .is_some_and(|iss| iss != upstream.provider.issuer())
    {
        tracing::warn!("a callback named another issuer than --oidc-issuer");
        return refused_sign_in("unverified", Some(&pending.request))
            .attach(page::error(StatusCode::BAD_REQUEST, UNVERIFIED));
    }
    if let Some(error) = form.get("error") {
        let code: String = error
            .chars()
            .take(64)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        tracing::info!(error = %code, "the upstream provider did not sign the user in");
        let snapshot = issuer.in_force.current();
        let decision = Decision {
            error: Some(ErrorCode::AccessDenied.as_str()),
            ..refused_sign_in("upstream_refused", Some(&pending.request))
        };
        let response =
            match crate::issuer::authorization::validate(&snapshot.config, &pending.query) {
                Ok(request) => redirect_error(
                    &issuer,
                    &request,
                    OAuthError::new(
                        ErrorCode::AccessDenied,
                        "the identity provider did not sign the user in",
                    ),
                ),
                Err(rejection) => reject(&issuer, rejection),
            };
        return decision.attach(response);
    }
    let Some(code) = form.get("code") else {
        return refused_sign_in("unverified", Some(&pending.request))
            .attach(page::error(StatusCode::BAD_REQUEST, UNVERIFIED));
    };
    match subject(&upstream, code, &arrival, now).await {
        Ok(subject) => complete(&issuer, &pending, Some(&subject)).await,
        Err(()) => unverified(),
    }
}

/// Exchange `code` and validate the ID token; the user's subject. Failures are logged here.
async fn subject(
    upstream: &Upstream,
    code: &str,
    arrival: &Arrival,
    now: u64,
) -> Result<String, ()> {
    let id_token = upstream
        .provider
        .exchange(
            &upstream.client_id,
            &upstream.client_secret,
            code,
            &upstream.redirect_uri,
            arrival.code_verifier.expose(),
        )
        .await
        .map_err(|e| tracing::error!(error = %e, "the upstream sign-in failed"))?;
    let expected = Expected {
        issuer: upstream.provider.issuer(),
        client_id: &upstream.client_id,
        nonce: arrival.nonce.expose(),
        subject_claim: &upstream.subject_claim,
        now,
    };
    let mut refreshed = false;
    loop {
        let keys = upstream
            .provider
            .keys(refreshed)
            .await
            .map_err(|e| tracing::error!(error = %e, "the upstream sign-in failed"))?;
        match id_token::validate(&id_token, &keys, &expected) {
            Ok(subject) => return Ok(subject),
            Err(e) if e.key_may_be_new() && !refreshed => refreshed = true,
            Err(e) => {
                tracing::warn!(error = %e, "the upstream provider's ID token was refused");
                return Err(());
            }
        }
    }
}
