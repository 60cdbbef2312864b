//! Trips to the upstream provider in progress: between sending the browser to the provider
//! and its return to `/callback/oidc`, what is needed to finish waits in the store
//! ([`crate::issuer::sign_ins`], so the callback may reach another replica) under the hash of
//! the `state` sent.
//!
//! Owns: the `state`, `nonce` and PKCE verifier of each trip (256 bits each from the CSPRNG),
//! their binding to the browser (the login cookie) and to the pending tokenwarden sign-in (its
//! login id), their expiry and their single use. Must not read the clock (calls take `now`)
//! nor know HTTP beyond the cookie's value.

use crate::issuer::sign_ins;
use crate::store::{LockoutKey, OpaqueToken, Store, StoreError, TokenHash};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// How long the user may take at the provider. The tokenwarden sign-in it belongs to expires
/// after [`crate::issuer::login::LOGIN_TTL_SECS`] anyway.
pub(crate) const TRIP_TTL_SECS: u64 = 10 * 60;

/// What the authorization request to the provider carries.
#[derive(Debug)]
pub(crate) struct Departure {
    pub state: OpaqueToken,
    pub nonce: OpaqueToken,
    /// RFC 7636 S256 challenge of the verifier kept here.
    pub code_challenge: String,
}

/// A trip that came back to its own browser: what the callback needs to finish.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// The pending tokenwarden sign-in ([`crate::issuer::login`]).
    pub login_id: OpaqueToken,
    pub nonce: OpaqueToken,
    pub code_verifier: OpaqueToken,
}

/// Why a callback cannot continue.
#[derive(Debug)]
pub(crate) enum TripError {
    /// No such `state`: never sent, tampered with, expired, or already used (a replay).
    Unknown,
    /// The `state` is real but came back in another browser.
    OtherBrowser,
    /// The store cannot say.
    Store(StoreError),
}

/// What is kept of a trip, sealed with its `state` ([`sign_ins`]).
#[derive(Serialize, Deserialize)]
struct Trip {
    login_id: String,
    nonce: String,
    code_verifier: String,
    browser: TokenHash,
}

/// Start a trip for the sign-in `login_id` of the browser whose cookie is `browser`.
pub(crate) async fn depart(
    store: &impl Store,
    login_id: &str,
    browser: &str,
    from: Option<LockoutKey>,
    now: u64,
) -> Result<Departure, StoreError> {
    let state = OpaqueToken::generate()?;
    let nonce = OpaqueToken::generate()?;
    let code_verifier = OpaqueToken::generate()?;
    let code_challenge =
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(code_verifier.expose().as_bytes()));
    let trip = Trip {
        login_id: login_id.to_owned(),
        nonce: nonce.expose().to_owned(),
        code_verifier: code_verifier.expose().to_owned(),
        browser: OpaqueToken::from_presented(browser).hash(),
    };
    let expires_at = now.saturating_add(TRIP_TTL_SECS);
    sign_ins::put(store, &state, &trip, from, expires_at, now).await?;
    Ok(Departure {
        state,
        nonce,
        code_challenge,
    })
}

/// The trip of `state`, removed: a `state` is good for one callback, whatever its outcome.
pub(crate) async fn arrive(
    store: &impl Store,
    state: &str,
    browser: Option<&str>,
    now: u64,
) -> Result<Arrival, TripError> {
    let trip: Trip = sign_ins::take(store, state, now)
        .await
        .map_err(TripError::Store)?
        .ok_or(TripError::Unknown)?;
    let cookie = browser.map(|b| OpaqueToken::from_presented(b).hash());
    let same_browser = cookie.is_some_and(|c| bool::from(c.0.ct_eq(&trip.browser.0)));
    if !same_browser {
        return Err(TripError::OtherBrowser);
    }
    Ok(Arrival {
        login_id: OpaqueToken::from_presented(&trip.login_id),
        nonce: OpaqueToken::from_presented(&trip.nonce),
        code_verifier: OpaqueToken::from_presented(&trip.code_verifier),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    const T: u64 = 1_800_000_000;
    const BROWSER: &str = "browser-cookie-value";

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        (dir, store)
    }

    async fn depart(store: &EmbeddedStore, now: u64) -> Departure {
        super::depart(store, "login-1", BROWSER, None, now)
            .await
            .expect("random")
    }

    #[tokio::test]
    async fn a_state_comes_back_once_in_its_own_browser() {
        let (_dir, store) = store();
        let d = depart(&store, T).await;
        let a = arrive(&store, d.state.expose(), Some(BROWSER), T + 5)
            .await
            .expect("arrives");
        assert_eq!(a.login_id.expose(), "login-1");
        assert_eq!(a.nonce.expose(), d.nonce.expose());
        let challenge =
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(a.code_verifier.expose().as_bytes()));
        assert_eq!(challenge, d.code_challenge);
        let replay = arrive(&store, d.state.expose(), Some(BROWSER), T + 6).await;
        assert!(
            matches!(replay, Err(TripError::Unknown)),
            "a replayed state"
        );
    }

    #[tokio::test]
    async fn a_state_from_another_browser_is_refused_and_spent() {
        let (_dir, store) = store();
        for browser in [Some("someone-else"), None] {
            let d = depart(&store, T).await;
            let state = d.state.expose();
            let other = arrive(&store, state, browser, T).await;
            assert!(matches!(other, Err(TripError::OtherBrowser)));
            let mine = arrive(&store, state, Some(BROWSER), T).await;
            assert!(matches!(mine, Err(TripError::Unknown)));
        }
        let d = depart(&store, T).await;
        let mut tampered = d.state.expose().to_owned();
        tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
        let arrival = arrive(&store, &tampered, Some(BROWSER), T).await;
        assert!(matches!(arrival, Err(TripError::Unknown)));
    }

    #[tokio::test]
    async fn a_trip_expires_and_states_nonces_and_verifiers_differ() {
        let (_dir, store) = store();
        let a = depart(&store, T).await;
        let b = depart(&store, T).await;
        assert_ne!(a.state.expose(), b.state.expose());
        assert_ne!(a.nonce.expose(), b.nonce.expose());
        assert_ne!(a.code_challenge, b.code_challenge);
        assert_eq!(a.state.expose().len(), 43);
        let late = T + TRIP_TTL_SECS;
        let arrival = arrive(&store, a.state.expose(), Some(BROWSER), late).await;
        assert!(matches!(arrival, Err(TripError::Unknown)));
    }
}
