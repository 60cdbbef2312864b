//! The sign-in: a guess is counted before it is answered, and a code is stored before the
//! browser is sent back with it.

use super::{Bed, CHALLENGE, REDIRECT, T};
use crate::issuer::authorization::{self, Rejection};
use crate::issuer::error::OAuthError;
use crate::issuer::form::Form;
use crate::issuer::grants::sign_in::{self, PasswordSignIn, SignInError};
use crate::issuer::login::{self, Pending};
use crate::issuer::users::{MIN_BCRYPT_COST, Users};
use crate::store::failing::Call;
use crate::store::{CodeOutcome, OpaqueToken, Store};
use std::sync::Arc;

const PASSWORD: &str = "alice-password";

fn users() -> Arc<Users> {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("users.yaml");
    let hash = bcrypt::hash(PASSWORD, MIN_BCRYPT_COST).expect("bcrypt");
    std::fs::write(
        &path,
        format!("- {{username: alice, passwordHash: '{hash}'}}\n"),
    )
    .expect("written");
    Arc::new(Users::load(&path).expect("valid users"))
}

async fn sign_in(bed: &Bed, users: &Arc<Users>, password: &str) -> Result<String, SignInError> {
    let attempt = PasswordSignIn {
        username: "alice",
        password,
        address: Some([192, 0, 2, 1].into()),
    };
    sign_in::verify_password(&bed.store, users, &attempt, T).await
}

/// A sign-in in progress for the bed's client, as `GET /authorize` leaves it.
async fn pending(bed: &Bed) -> Pending {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "apps.web"),
            ("redirect_uri", REDIRECT),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("scope", "read"),
            ("state", "xyz"),
        ])
        .finish();
    let query = Form::parse(query.as_bytes()).expect("query");
    let request = authorization::validate(&bed.config, &query).expect("valid request");
    let browser = OpaqueToken::generate().expect("random");
    let inner = bed.store.inner();
    let started = login::start(inner, query, request, &browser, None, T)
        .await
        .expect("stored");
    login::take(inner, started.login_id.expose(), T)
        .await
        .expect("readable")
        .expect("pending")
}

#[tokio::test]
async fn a_wrong_password_is_counted_before_it_is_answered() {
    let (bed, users) = (Bed::new(), users());

    let wrong = sign_in(&bed, &users, "guess").await;

    assert!(matches!(wrong, Err(SignInError::WrongCredentials)));
    assert_eq!(
        bed.store.take_calls(),
        [
            Call::LockedUntil,
            Call::LockedUntil,
            Call::CountFailure,
            Call::CountFailure
        ],
        "the limits, again after the permit, then the failure for the username and the address"
    );
}

#[tokio::test]
async fn a_wrong_password_that_cannot_be_counted_is_not_answered_as_wrong() {
    let (bed, users) = (Bed::new(), users());
    bed.store.fail_at(Call::CountFailure);

    let wrong = sign_in(&bed, &users, "guess").await;

    assert!(matches!(wrong, Err(SignInError::Store(e)) if e.is_unavailable()));
}

#[tokio::test]
async fn the_sixth_wrong_password_in_a_row_finds_the_username_locked_without_a_check() {
    let (bed, users) = (Bed::new(), users());
    for _ in 0..5 {
        let wrong = sign_in(&bed, &users, "guess").await;
        assert!(matches!(wrong, Err(SignInError::WrongCredentials)));
    }
    bed.store.take_calls();

    let locked = sign_in(&bed, &users, PASSWORD).await;

    assert!(matches!(locked, Err(SignInError::Locked { wait }) if wait > 0));
    assert_eq!(bed.store.take_calls(), [Call::LockedUntil]);
}

#[tokio::test]
async fn the_right_password_forgets_the_usernames_failures_before_it_signs_in() {
    let (bed, users) = (Bed::new(), users());

    let subject = sign_in(&bed, &users, PASSWORD).await.expect("signed in");

    assert_eq!(subject, "alice");
    assert_eq!(
        bed.store.take_calls(),
        [Call::LockedUntil, Call::LockedUntil, Call::ForgetFailures]
    );
}

#[tokio::test]
async fn a_code_is_stored_before_the_browser_is_sent_back_with_it() {
    let bed = Bed::new();
    let pending = pending(&bed).await;
    let issue = |subject| {
        let config = &bed.config;
        let store = &bed.store;
        let pending = &pending;
        async move {
            sign_in::issue_code(
                store,
                config,
                "https://issuer.example.com",
                pending,
                subject,
                T,
            )
            .await
        }
    };
    bed.store.fail_at(Call::PutCode);

    let refused = issue(Some("alice")).await.expect_err("not stored");

    let Rejection::Redirect { error, .. } = refused else {
        panic!("an error for the client, sent to its redirect URI");
    };
    assert_eq!(error, OAuthError::unavailable());
    bed.store.recover();
    let url = issue(Some("alice")).await.expect("stored");
    let (_, query) = url.split_once('?').expect("a query");
    let code = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.into_owned())
        .expect("a code");
    let taken = bed
        .store
        .inner()
        .take_code(OpaqueToken::from_presented(code).hash(), T + 1)
        .await
        .expect("readable");
    assert!(matches!(taken, CodeOutcome::Valid(c) if c.subject == "alice"));
}
