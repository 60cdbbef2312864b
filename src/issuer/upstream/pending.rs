//! Trips to the upstream provider in progress: between sending the browser to the provider
//! and its return to `/callback/oidc`, what is needed to finish waits here, in memory, under
//! the hash of the `state` sent.
//!
//! Owns: the `state`, `nonce` and PKCE verifier of each trip (256 bits each from the CSPRNG),
//! their binding to the browser (the login cookie) and to the pending tokenwarden sign-in (its
//! login id), their expiry and their single use. Must not read the clock (calls take `now`)
//! nor know HTTP beyond the cookie's value.

use crate::issuer::expiring::Expiring;
use crate::store::{OpaqueToken, StoreError, TokenHash};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// How long the user may take at the provider. The tokenwarden sign-in it belongs to expires
/// after [`crate::issuer::login::LOGIN_TTL_SECS`] anyway.
pub const TRIP_TTL_SECS: u64 = 10 * 60;
/// Most trips in progress; the oldest goes when a new one would exceed it.
pub const MAX_TRIPS: usize = 4096;

/// What the authorization request to the provider carries.
#[derive(Debug)]
pub struct Departure {
    pub state: OpaqueToken,
    pub nonce: OpaqueToken,
    /// RFC 7636 S256 challenge of the verifier kept here.
    pub code_challenge: String,
}

/// A trip that came back to its own browser: what the callback needs to finish.
#[derive(Debug)]
pub struct Arrival {
    /// The pending tokenwarden sign-in ([`crate::issuer::login`]).
    pub login_id: OpaqueToken,
    pub nonce: OpaqueToken,
    pub code_verifier: OpaqueToken,
}

/// Why a callback cannot continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TripError {
    /// No such `state`: never sent, tampered with, expired, or already used (a replay).
    Unknown,
    /// The `state` is real but came back in another browser.
    OtherBrowser,
}

struct Trip {
    login_id: OpaqueToken,
    nonce: OpaqueToken,
    code_verifier: OpaqueToken,
    browser: TokenHash,
}

/// Every trip in progress, by the hash of its `state`.
pub struct Trips {
    entries: Expiring<Trip>,
}

impl Default for Trips {
    fn default() -> Self {
        Self {
            entries: Expiring::new(MAX_TRIPS),
        }
    }
}

impl std::fmt::Debug for Trips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trips({})", self.len())
    }
}

impl Trips {
    /// Start a trip for the sign-in `login_id` of the browser whose cookie is `browser`.
    pub fn depart(&self, login_id: &str, browser: &str, now: u64) -> Result<Departure, StoreError> {
        let state = OpaqueToken::generate()?;
        let nonce = OpaqueToken::generate()?;
        let code_verifier = OpaqueToken::generate()?;
        let code_challenge =
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(code_verifier.expose().as_bytes()));
        let trip = Trip {
            login_id: OpaqueToken::from_presented(login_id),
            nonce: nonce.clone(),
            code_verifier,
            browser: OpaqueToken::from_presented(browser).hash(),
        };
        let expires_at = now.saturating_add(TRIP_TTL_SECS);
        self.entries.insert(state.hash(), trip, expires_at, now);
        Ok(Departure {
            state,
            nonce,
            code_challenge,
        })
    }

    /// The trip of `state`, removed: a `state` is good for one callback, whatever its outcome.
    pub fn arrive(
        &self,
        state: &str,
        browser: Option<&str>,
        now: u64,
    ) -> Result<Arrival, TripError> {
        let key = OpaqueToken::from_presented(state).hash();
        let trip = self.entries.take(&key, now).ok_or(TripError::Unknown)?;
        let cookie = browser.map(|b| OpaqueToken::from_presented(b).hash());
        let same_browser = cookie.is_some_and(|c| bool::from(c.0.ct_eq(&trip.browser.0)));
        if !same_browser {
            return Err(TripError::OtherBrowser);
        }
        Ok(Arrival {
            login_id: trip.login_id,
            nonce: trip.nonce,
            code_verifier: trip.code_verifier,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_800_000_000;
    const BROWSER: &str = "browser-cookie-value";

    #[test]
    fn a_state_comes_back_once_in_its_own_browser() {
        let trips = Trips::default();
        let d = trips.depart("login-1", BROWSER, T).expect("random");
        let a = trips
            .arrive(d.state.expose(), Some(BROWSER), T + 5)
            .expect("arrives");
        assert_eq!(a.login_id.expose(), "login-1");
        assert_eq!(a.nonce.expose(), d.nonce.expose());
        let challenge =
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(a.code_verifier.expose().as_bytes()));
        assert_eq!(challenge, d.code_challenge);
        assert_eq!(
            trips
                .arrive(d.state.expose(), Some(BROWSER), T + 6)
                .map(|_| ()),
            Err(TripError::Unknown),
            "a replayed state"
        );
    }

    #[test]
    fn a_state_from_another_browser_is_refused_and_spent() {
        let trips = Trips::default();
        let d = trips.depart("login-1", BROWSER, T).expect("random");
        for browser in [Some("someone-else"), None] {
            let d = trips.depart("login-1", BROWSER, T).expect("random");
            assert_eq!(
                trips.arrive(d.state.expose(), browser, T).map(|_| ()),
                Err(TripError::OtherBrowser)
            );
            assert_eq!(
                trips.arrive(d.state.expose(), Some(BROWSER), T).map(|_| ()),
                Err(TripError::Unknown)
            );
        }
        let mut tampered = d.state.expose().to_owned();
        tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            trips.arrive(&tampered, Some(BROWSER), T).map(|_| ()),
            Err(TripError::Unknown)
        );
    }

    #[test]
    fn a_trip_expires_and_states_nonces_and_verifiers_differ() {
        let trips = Trips::default();
        let a = trips.depart("l", BROWSER, T).expect("random");
        let b = trips.depart("l", BROWSER, T).expect("random");
        assert_ne!(a.state.expose(), b.state.expose());
        assert_ne!(a.nonce.expose(), b.nonce.expose());
        assert_ne!(a.code_challenge, b.code_challenge);
        assert_eq!(a.state.expose().len(), 43);
        assert_eq!(
            trips
                .arrive(a.state.expose(), Some(BROWSER), T + TRIP_TTL_SECS)
                .map(|_| ()),
            Err(TripError::Unknown)
        );
    }

    #[test]
    fn the_number_of_trips_is_bounded() {
        let trips = Trips::default();
        let first = trips.depart("l", BROWSER, T).expect("random");
        for i in 0..MAX_TRIPS as u64 {
            trips.depart("l", BROWSER, T + 1 + i / 100).expect("random");
        }
        assert_eq!(trips.len(), MAX_TRIPS);
        assert_eq!(
            trips
                .arrive(first.state.expose(), Some(BROWSER), T + 1)
                .map(|_| ()),
            Err(TripError::Unknown)
        );
    }
}
