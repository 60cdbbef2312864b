//! `GET /authorize` and `POST /authorize`: the authorization code flow's front door. The GET
//! validates the request ([`authorization::validate`]) and shows the login page, which offers
//! the static users' password form and the upstream provider, whichever are configured (with
//! only the provider, the GET sends the browser there at once). The POST checks the CSRF token
//! and the browser cookie ([`login`]); then either sends the browser to the upstream provider
//! ([`upstream`]; it comes back at `/callback/oidc`), or has the sign-in ([`sign_in`]) check
//! the password under the brute-force limits and store a code, and sends the browser back to
//! the client with it (RFC 6749 §4.1.2, RFC 9207 `iss`). This file only renders: the pages,
//! their messages and status codes.
//!
//! [`authorization::validate`]: crate::issuer::authorization::validate
//! [`login`]: crate::issuer::login
//! [`sign_in`]: crate::issuer::grants::sign_in
//! [`upstream`]: crate::issuer::upstream

use crate::config::IssuerConfig;
use crate::issuer::audit::Decision;
use crate::issuer::authorization::{self, AuthorizationRequest, Rejection};
use crate::issuer::error::{ErrorCode, OAuthError};
use crate::issuer::form::Form;
use crate::issuer::grants::sign_in::{self, PERMIT_WAIT, PasswordSignIn, SignInError};
use crate::issuer::login::{self, LoginError, Pending};
use crate::issuer::page::{self, LoginView, UpstreamButton};
use crate::issuer::routes::respond::require_form_content_type;
use crate::issuer::state::Issuer;
use crate::issuer::throttle;
use crate::issuer::upstream::{Upstream, pending};
use crate::store::{LockoutKey, OpaqueToken};
use axum::body::Bytes;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{RawQuery, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};

/// The message of every failed sign-in: it never says which of the two was wrong.
const WRONG_CREDENTIALS: &str = "The username or password is incorrect.";
const EXPIRED: &str = "This sign-in page has expired or was already used.";
const FORGED: &str = "This sign-in could not be verified. Make sure cookies are enabled.";
const PROVIDER_DOWN: &str =
    "The identity provider cannot be reached right now. Try again in a moment.";

/// `GET /authorize`: validate, then show the login form.
pub(crate) async fn show(
    State(issuer): State<Issuer>,
    RawQuery(query): RawQuery,
    extensions: Extensions,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let snapshot = issuer.in_force.current();
    let Ok(form) = Form::parse(query.as_bytes()) else {
        return reject(&issuer, authorization::malformed());
    };
    // The user has not acted yet: an error goes back at once to a first-party client only.
    let unprompted = |rejection| {
        let rejection =
            authorization::unprompted(&snapshot.config, &issuer.first_party, &form, rejection);
        reject(&issuer, rejection)
    };
    let request = match authorization::validate(&snapshot.config, &form) {
        Ok(request) => request,
        Err(rejection) => return unprompted(rejection),
    };
    if issuer.users.is_empty() && issuer.upstream.is_none() {
        tracing::warn!(
            "an authorization request arrived, but no one can sign in (--users, --oidc-issuer)"
        );
        return unprompted(Rejection::Redirect {
            redirect_uri: request.redirect_uri.clone(),
            state: request.state.clone(),
            error: OAuthError::new(
                ErrorCode::AccessDenied,
                "no sign-in method is configured on this issuer",
            ),
        });
    }
    let skips_agreement =
        authorization::skips_agreement(&snapshot.config, &issuer.first_party, &request);
    let secure = issuer.issuer_url.starts_with("https://");
    // One cookie per browser, reused by every form it opens (two tabs both work).
    let browser = match login::cookie_value(cookie_headers(&headers), secure) {
        Some(value) => OpaqueToken::from_presented(value),
        None => match OpaqueToken::generate() {
            Ok(value) => value,
            Err(e) => return unavailable(e),
        },
    };
    let now = issuer.clock.now();
    let from = client_address(&issuer, &extensions, &headers).map(throttle::address_key);
    let started =
        match login::start(&issuer.store, form, request.clone(), &browser, from, now).await {
            Ok(started) => started,
            Err(e) => return unavailable(e),
        };
    let mut response = match &issuer.upstream {
        // The provider is the only way in, and the platform vouches for the client: go there
        // without a page. Any other client is shown first, and the user agrees with the
        // provider's button (a POST with the form's CSRF token and cookie).
        Some(upstream) if issuer.users.is_empty() && skips_agreement => {
            let (login_id, browser) = (started.login_id.expose(), browser.expose());
            match depart(&issuer, upstream, login_id, browser, from, now).await {
                Ok(url) => redirect(StatusCode::FOUND, &url),
                Err(NoDeparture::ProviderDown) => {
                    page::error(StatusCode::BAD_GATEWAY, PROVIDER_DOWN)
                }
                Err(NoDeparture::Store(e)) => unavailable(e),
            }
        }
        _ => {
            let endpoint = authorization_endpoint(&issuer);
            let view = view(
                &issuer,
                &snapshot.config,
                &request,
                (started.login_id.expose(), started.csrf_token.expose()),
                "",
                None,
                endpoint.as_deref(),
            );
            page::login(&view, StatusCode::OK)
        }
    };
    // Sent again each time, so its lifetime follows the newest form.
    if let Ok(value) = HeaderValue::from_str(&login::set_cookie(&browser, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Why the browser cannot be sent to the provider.
enum NoDeparture {
    /// The provider cannot be used (502, logged).
    ProviderDown,
    /// The trip cannot be stored (503, [`unavailable`]).
    Store(crate::store::StoreError),
}

/// Send the browser of sign-in `login_id` to the provider: the URL of its authorization
/// endpoint with a fresh `state`, `nonce` and PKCE challenge.
async fn depart(
    issuer: &Issuer,
    upstream: &Upstream,
    login_id: &str,
    browser: &str,
    from: Option<LockoutKey>,
    now: u64,
) -> Result<String, NoDeparture> {
    let metadata = upstream.provider.metadata().await.map_err(|e| {
        tracing::error!(error = %e, "the upstream OpenID Provider cannot be used");
        NoDeparture::ProviderDown
    })?;
    let departure = pending::depart(&issuer.store, login_id, browser, from, now)
        .await
        .map_err(NoDeparture::Store)?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &upstream.client_id)
        .append_pair("redirect_uri", &upstream.redirect_uri)
        .append_pair("scope", &upstream.scope)
        .append_pair("state", departure.state.expose())
        .append_pair("nonce", departure.nonce.expose())
        .append_pair("code_challenge", &departure.code_challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let endpoint = &metadata.authorization_endpoint;
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    Ok(format!("{endpoint}{separator}{query}"))
}

/// The provider's authorization endpoint if its metadata is cached, for the login page's CSP.
/// Never waits for the network, so a provider that is down does not slow the password form;
/// the CSP always allows the issuer's own origin, where authorization endpoints usually are.
fn authorization_endpoint(issuer: &Issuer) -> Option<String> {
    let upstream = issuer.upstream.as_ref()?;
    upstream
        .provider
        .cached_metadata()
        .map(|m| m.authorization_endpoint)
}

/// `POST /authorize`: the login form. Every answer but the departure to the upstream provider
/// (whose decision comes at the callback) is a sign-in decision of the audit trail.
pub(crate) async fn submit(
    State(issuer): State<Issuer>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let malformed =
        || refused_sign_in("malformed", None).attach(page::error(StatusCode::BAD_REQUEST, EXPIRED));
    if require_form_content_type(&headers).is_err() {
        return malformed();
    }
    let Ok(form) = Form::parse(&body) else {
        return malformed();
    };
    let (Some(login_id), Some(csrf_token)) = (form.get("login"), form.get("csrf_token")) else {
        return malformed();
    };
    let secure = issuer.issuer_url.starts_with("https://");
    let cookie = login::cookie_value(cookie_headers(&headers), secure);
    let now = issuer.clock.now();
    let pending = match login::check(&issuer.store, login_id, csrf_token, cookie, now).await {
        Ok(pending) => pending,
        Err(LoginError::Store(e)) => return sign_in_unavailable(e, None),
        Err(LoginError::Unknown) => {
            return refused_sign_in("expired", None)
                .attach(page::error(StatusCode::BAD_REQUEST, EXPIRED));
        }
        Err(LoginError::Forged) => {
            tracing::warn!("a login form was posted without its CSRF token or cookie");
            return refused_sign_in("forged", None)
                .attach(page::error(StatusCode::FORBIDDEN, FORGED));
        }
    };
    let refused = |reason| refused_sign_in(reason, Some(&pending.request));
    let endpoint = authorization_endpoint(&issuer);
    let snapshot = issuer.in_force.current();
    let form_page = |username: &str, error: &str, status: StatusCode| {
        page::login(
            &view(
                &issuer,
                &snapshot.config,
                &pending.request,
                (login_id, csrf_token),
                username,
                Some(error),
                endpoint.as_deref(),
            ),
            status,
        )
    };

    if form.get("cancel").is_some() {
        return finish(&issuer, login_id, None, now).await;
    }
    let address = client_address(&issuer, &extensions, &headers);
    if form.get("connector") == Some("oidc")
        && let (Some(upstream), Some(browser)) = (&issuer.upstream, cookie)
    {
        let from = address.map(throttle::address_key);
        return match depart(&issuer, upstream, login_id, browser, from, now).await {
            Ok(url) => redirect(StatusCode::SEE_OTHER, &url),
            Err(NoDeparture::ProviderDown) => form_page("", PROVIDER_DOWN, StatusCode::BAD_GATEWAY),
            Err(NoDeparture::Store(e)) => unavailable(e),
        };
    }
    let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
        return refused("incomplete").attach(form_page(
            form.get("username").unwrap_or_default(),
            "Enter your username and password.",
            StatusCode::BAD_REQUEST,
        ));
    };
    let attempt = PasswordSignIn {
        username,
        password,
        address,
    };
    match sign_in::verify_password(&issuer.store, &issuer.users, &attempt, now).await {
        // Taken only now, so a wrong password can be retried; once, so a replay finds nothing.
        Ok(subject) => finish(&issuer, login_id, Some(&subject), now).await,
        Err(SignInError::Locked { wait }) => {
            let page = form_page(
                username,
                &locked_message(wait),
                StatusCode::TOO_MANY_REQUESTS,
            );
            refused("locked").attach(with_retry_after(page, wait))
        }
        Err(SignInError::Busy) => refused("busy").attach(with_retry_after(
            page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many sign-ins are being checked right now. Try again in a few seconds.",
            ),
            PERMIT_WAIT.as_secs(),
        )),
        Err(SignInError::WrongCredentials) => refused("wrong_credentials").attach(form_page(
            username,
            WRONG_CREDENTIALS,
            StatusCode::UNAUTHORIZED,
        )),
        Err(SignInError::Incomplete) => refused("server_error").attach(page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-in could not be completed. Try again.",
        )),
        Err(SignInError::Store(e)) => sign_in_unavailable(e, Some(&pending.request)),
    }
}

/// The name of sign-ins in the audit trail.
pub(crate) const SIGN_IN: &str = "sign_in";

/// A refused sign-in: `reason` says why, in a word; the authorization request, when known,
/// names the client, the audience and the scope.
pub(crate) fn refused_sign_in(
    reason: &'static str,
    request: Option<&AuthorizationRequest>,
) -> Decision {
    Decision {
        reason: Some(reason),
        ..about(request, Decision::new(SIGN_IN, "refused"))
    }
}

/// `decision` naming the client, audience and scope of `request`.
fn about(request: Option<&AuthorizationRequest>, decision: Decision) -> Decision {
    match request {
        Some(request) => Decision {
            client_id: Some(request.client_id.clone()),
            audience: Some(request.audience.clone()),
            scope: Some(request.scope.clone()),
            ..decision
        },
        None => decision,
    }
}

/// [`unavailable`] as a refused sign-in (`temporarily_unavailable`).
pub(crate) fn sign_in_unavailable(
    error: crate::store::StoreError,
    request: Option<&AuthorizationRequest>,
) -> Response {
    let decision = Decision {
        error: Some(ErrorCode::TemporarilyUnavailable.as_str()),
        ..refused_sign_in("store_unavailable", request)
    };
    decision.attach(unavailable(error))
}

/// Take the sign-in `login_id` (once: a replay finds nothing) and [`complete`] it.
async fn finish(issuer: &Issuer, login_id: &str, subject: Option<&str>, now: u64) -> Response {
    match login::take(&issuer.store, login_id, now).await {
        Ok(Some(pending)) => complete(issuer, &pending, subject).await,
        Ok(None) => {
            refused_sign_in("expired", None).attach(page::error(StatusCode::BAD_REQUEST, EXPIRED))
        }
        Err(e) => sign_in_unavailable(e, None),
    }
}

/// Finish a sign-in ([`sign_in::issue_code`]): send the browser back to the client with a
/// code (`signed_in`), or with the error (`refused`).
pub(crate) async fn complete(
    issuer: &Issuer,
    pending: &Pending,
    subject: Option<&str>,
) -> Response {
    let snapshot = issuer.in_force.current();
    let now = issuer.clock.now();
    let issued = sign_in::issue_code(
        &issuer.store,
        &snapshot.config,
        &issuer.issuer_url,
        pending,
        subject,
        now,
    )
    .await;
    let decision = Decision {
        subject: subject.map(str::to_owned),
        ..about(Some(&pending.request), Decision::new(SIGN_IN, "signed_in"))
    };
    match issued {
        Ok(url) => decision.attach(redirect(StatusCode::SEE_OTHER, &url)),
        Err(rejection) => {
            let decision = Decision {
                outcome: "refused",
                error: rejection.error().map(|e| e.code.as_str()),
                reason: Some(if subject.is_some() {
                    "request_refused"
                } else {
                    "cancelled"
                }),
                ..decision
            };
            decision.attach(reject(issuer, rejection))
        }
    }
}

fn view<'a>(
    issuer: &'a Issuer,
    config: &'a IssuerConfig,
    request: &'a AuthorizationRequest,
    (login_id, csrf_token): (&'a str, &'a str),
    username: &'a str,
    error: Option<&'a str>,
    authorization_endpoint: Option<&'a str>,
) -> LoginView<'a> {
    LoginView {
        password: !issuer.users.is_empty(),
        upstream: issuer.upstream.as_ref().map(|u| UpstreamButton {
            name: u.display_name.as_str(),
            destinations: [Some(u.provider.issuer()), authorization_endpoint]
                .into_iter()
                .flatten()
                .collect(),
        }),
        client_id: &request.client_id,
        client_name: config
            .clients
            .get(&request.client_id)
            .and_then(|c| c.display_name.as_deref()),
        audience: &request.audience,
        scopes: request
            .api_scopes()
            .map(|scope| {
                let description = config
                    .apis
                    .get(&request.audience)
                    .and_then(|api| api.scope_descriptions.get(scope))
                    .map(String::as_str);
                (scope, description)
            })
            .collect(),
        offline_access: request.offline_access(),
        login_id,
        csrf_token,
        username,
        error,
        redirect_uri: &request.redirect_uri,
    }
}

pub(crate) fn reject(issuer: &Issuer, rejection: Rejection) -> Response {
    match rejection {
        Rejection::Untrusted(cause) => page::error(StatusCode::BAD_REQUEST, cause.message()),
        Rejection::Confirm {
            client_id,
            redirect_uri,
            state,
            error,
        } => {
            let snapshot = issuer.in_force.current();
            let client_name = snapshot
                .config
                .clients
                .get(&client_id)
                .and_then(|c| c.display_name.as_deref());
            let return_url = authorization::error_url(
                &redirect_uri,
                &error,
                state.as_deref(),
                &issuer.issuer_url,
            );
            page::error_with_return(
                StatusCode::BAD_REQUEST,
                &page::ReturnView {
                    client_id: &client_id,
                    client_name,
                    message: error.description,
                    return_url: &return_url,
                },
            )
        }
        Rejection::Redirect {
            redirect_uri,
            state,
            error,
        } => redirect(
            StatusCode::FOUND,
            &authorization::error_url(&redirect_uri, &error, state.as_deref(), &issuer.issuer_url),
        ),
    }
}

pub(crate) fn redirect_error(
    issuer: &Issuer,
    request: &AuthorizationRequest,
    error: OAuthError,
) -> Response {
    redirect(
        StatusCode::FOUND,
        &authorization::error_url(
            &request.redirect_uri,
            &error,
            request.state.as_deref(),
            &issuer.issuer_url,
        ),
    )
}

pub(crate) fn redirect(status: StatusCode, url: &str) -> Response {
    let Ok(location) = HeaderValue::from_str(url) else {
        // Every part is percent-encoded or a registered URI; this cannot happen.
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-in could not be completed.",
        );
    };
    let mut response = status.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    page::no_store(response.headers_mut());
    response
}

/// The page when the store cannot keep or give back a sign-in in progress.
pub(crate) fn unavailable(error: crate::store::StoreError) -> Response {
    tracing::error!(error = %error, "the state of a sign-in cannot be stored or read");
    page::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable right now. Try again shortly.",
    )
}

fn with_retry_after(mut response: Response, wait: u64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn locked_message(wait: u64) -> String {
    let minutes = wait.div_ceil(60).max(1);
    let unit = if minutes == 1 { "minute" } else { "minutes" };
    format!("Too many failed sign-in attempts. Try again in {minutes} {unit}.")
}

pub(crate) fn cookie_headers(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

/// The client's address: the peer, when the server was started with connection info (tests
/// in-process may set it too), or behind a trusted proxy the address it forwarded
/// ([`crate::issuer::client_address`]).
fn client_address(issuer: &Issuer, extensions: &Extensions, headers: &HeaderMap) -> Option<IpAddr> {
    let ConnectInfo(peer) = extensions.get::<ConnectInfo<SocketAddr>>()?;
    Some(issuer.trusted_proxies.client(peer.ip(), headers))
}
