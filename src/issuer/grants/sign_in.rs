//! The sign-in that ends in an authorization code (RFC 6749 §4.1.2): a person's password is
//! checked under the brute-force limits ([`verify_password`]), or the upstream provider vouches
//! for them (`routes/callback.rs`); then the code is stored and only then handed to the browser
//! ([`issue_code`]).
//!
//! Owns the order of a password sign-in: the limits are checked, a permit to check a password
//! is waited for, the limits are checked again (the guesses that waited before are counted by
//! then), the password is verified off the async runtime, and the outcome is counted before it
//! is answered: a guess never goes uncounted. Must not touch HTTP: the pages, their messages
//! and status codes are `routes/authorize.rs`'s.

use crate::config::IssuerConfig;
use crate::issuer::authorization::{self, Rejection};
use crate::issuer::error::{ErrorCode, OAuthError, store_error};
use crate::issuer::login::Pending;
use crate::issuer::throttle;
use crate::issuer::users::Users;
use crate::store::{AuthorizationCode, OpaqueToken, Store, StoreError};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long an authorization code may wait for its exchange (RFC 6749 §4.1.2 recommends at
/// most 10 minutes; a browser redirect takes seconds).
pub(crate) const CODE_LIFETIME_SECS: u64 = 60;

/// How long a sign-in waits for a password check to start
/// ([`crate::issuer::users::concurrent_checks`]) before it is refused as [`SignInError::Busy`].
pub(crate) const PERMIT_WAIT: Duration = Duration::from_secs(5);

/// A password sign-in as the login form posted it, and where it came from.
pub(crate) struct PasswordSignIn<'f> {
    pub username: &'f str,
    pub password: &'f str,
    /// The client's address, counted against like the username; `None` when unknown.
    pub address: Option<IpAddr>,
}

impl std::fmt::Debug for PasswordSignIn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordSignIn")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Why a password sign-in did not sign anyone in.
#[derive(Debug)]
pub(crate) enum SignInError {
    /// The username or the address is locked out for `wait` more seconds.
    Locked { wait: u64 },
    /// No password check could start within [`PERMIT_WAIT`].
    Busy,
    /// The username or the password is wrong; the failure is counted.
    WrongCredentials,
    /// The password check did not complete (logged).
    Incomplete,
    /// The store cannot read or count (nothing was answered uncounted).
    Store(StoreError),
}

impl From<StoreError> for SignInError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

/// Check `attempt` under the brute-force limits ([`throttle`]); the user's subject.
pub(crate) async fn verify_password<S: Store>(
    store: &S,
    users: &Arc<Users>,
    attempt: &PasswordSignIn<'_>,
    now: u64,
) -> Result<String, SignInError> {
    let (username, address) = (attempt.username, attempt.address);
    if let Some(wait) = throttle::check(store, username, address, now).await? {
        return Err(SignInError::Locked { wait });
    }
    // Held until the outcome is counted. A burst of guesses waits here, and each checks the
    // limits again once it may go on: by then the guesses before it are counted.
    let Some(_permit) = users.check_permit(PERMIT_WAIT).await else {
        return Err(SignInError::Busy);
    };
    if let Some(wait) = throttle::check(store, username, address, now).await? {
        return Err(SignInError::Locked { wait });
    }
    let users = users.clone();
    let (name, secret) = (username.to_owned(), attempt.password.to_owned());
    let verified = tokio::task::spawn_blocking(move || {
        users.verify(&name, &secret).map(|u| u.subject().to_owned())
    })
    .await;
    let subject = match verified {
        Ok(Some(subject)) => subject,
        Ok(None) => {
            tracing::info!("failed sign-in");
            // Not counted, so not answered: a guess must never go uncounted.
            throttle::failure(store, username, address, now).await?;
            return Err(SignInError::WrongCredentials);
        }
        Err(e) => {
            tracing::error!(error = %e, "password verification did not complete");
            return Err(SignInError::Incomplete);
        }
    };
    throttle::success(store, username).await?;
    Ok(subject)
}

/// Finish the sign-in `pending`: with `subject`, store a code for the request as the
/// configuration in force allows it now, and return the URL that hands it to the client;
/// without, the user cancelled (`access_denied`). Every refusal is a [`Rejection`]: a page
/// when the request is no longer valid, else an error sent to the client's redirect URI.
pub(crate) async fn issue_code<S: Store>(
    store: &S,
    config: &IssuerConfig,
    issuer_url: &str,
    pending: &Pending,
    subject: Option<&str>,
    now: u64,
) -> Result<String, Rejection> {
    // The policy or the client may have changed while the form was open.
    let request = authorization::validate(config, &pending.query)?;
    let refuse = |error| Rejection::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        error,
    };
    let Some(subject) = subject else {
        return Err(refuse(OAuthError::new(
            ErrorCode::AccessDenied,
            "the user cancelled the sign-in",
        )));
    };
    let code = OpaqueToken::generate().map_err(|e| refuse(store_error(e)))?;
    let stored = AuthorizationCode {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        audience: request.audience.clone(),
        scope: request.scope.clone(),
        subject: subject.to_owned(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        expires_at: now.saturating_add(CODE_LIFETIME_SECS),
    };
    if let Err(e) = store.put_code(code.hash(), stored).await {
        tracing::error!(error = %e, "cannot store an authorization code");
        return Err(refuse(store_error(e)));
    }
    Ok(authorization::redirect_url(
        &request.redirect_uri,
        &[("code", code.expose())],
        request.state.as_deref(),
        issuer_url,
    ))
}
