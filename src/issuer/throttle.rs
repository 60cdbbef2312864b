//! Brute-force protection of the login form: failed sign-ins are counted per username and per
//! client address; too many within a window lock that username or address out for a delay that
//! doubles with each lockout ([`crate::store::lockout`] has the rules).
//!
//! Owns: what is counted (a username as its SHA-256, an address as itself or its IPv6 /64),
//! the numbers ([`PER_USERNAME`], [`PER_ADDRESS`]) and the three steps of a sign-in
//! ([`check`], [`failure`], [`success`]). The counts live in the store, so with PostgreSQL
//! every replica sees every failure: the limits hold for the deployment, however requests are
//! spread. Must not read the clock (every call takes `now`) nor know about HTTP. A locked-out
//! attempt is refused before any password hash is computed, so a lockout also stops the
//! attacker from spending the issuer's CPU; the login route checks again once it holds one of
//! the few permits to check a password (`crate::issuer::users::concurrent_checks`), so guesses
//! sent at once cannot all pass the check before any is counted.
//!
//! Unknown usernames are counted exactly like known ones, so a lockout says nothing about
//! whether a username exists.

use std::net::IpAddr;

use sha2::Digest as _;

use crate::store::{Limits, LockoutKey, Store, StoreError};

/// Per username: 5 failures in 15 minutes lock it for 1 minute, then 2, 4, 8, 15 at most.
pub(crate) const PER_USERNAME: Limits = Limits {
    max_failures: 5,
    window_secs: 15 * 60,
    first_lockout_secs: 60,
    max_lockout_secs: 15 * 60,
    forget_after_secs: 60 * 60,
};

/// Per client address (IPv6 by /64): more, since many people may share one address (NAT).
pub(crate) const PER_ADDRESS: Limits = Limits {
    max_failures: 20,
    ..PER_USERNAME
};

/// What a username is counted under: its SHA-256 after a label, so a key has a fixed size
/// whatever is typed and never equals an address's.
pub(crate) fn username_key(username: &str) -> LockoutKey {
    key(b"username", username.as_bytes())
}

/// What a client address is counted under: IPv4 as is, IPv6 by its /64 (one subscriber's
/// prefix, so that rotating through one's own addresses does not reset the count).
pub fn address_key(address: IpAddr) -> LockoutKey {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => key(b"ipv6/64", &v6.octets()[..8]),
        IpAddr::V6(v6) => key(b"ipv4", &v6.octets()[12..]),
        IpAddr::V4(v4) => key(b"ipv4", &v4.octets()),
    }
}

fn key(label: &[u8], value: &[u8]) -> LockoutKey {
    let mut hash = sha2::Sha256::new();
    hash.update(label);
    hash.update([0]);
    hash.update(value);
    LockoutKey(hash.finalize().into())
}

/// `Some(seconds to wait)` when the username or the address is locked out at `now`.
pub(crate) async fn check(
    store: &impl Store,
    username: &str,
    address: Option<IpAddr>,
    now: u64,
) -> Result<Option<u64>, StoreError> {
    let keys: Vec<LockoutKey> = std::iter::once(username_key(username))
        .chain(address.map(address_key))
        .collect();
    let until = store.locked_until(&keys, now).await?;
    Ok(until.map(|until| until.saturating_sub(now)))
}

/// Counts a failed sign-in against the username and the address.
pub(crate) async fn failure(
    store: &impl Store,
    username: &str,
    address: Option<IpAddr>,
    now: u64,
) -> Result<(), StoreError> {
    store
        .count_failure(username_key(username), PER_USERNAME, now)
        .await?;
    if let Some(address) = address {
        store
            .count_failure(address_key(address), PER_ADDRESS, now)
            .await?;
    }
    Ok(())
}

/// A successful sign-in clears the username's failures. The address keeps its count: one
/// account of the attacker's own must not reset the count of its guesses at others.
pub(crate) async fn success(store: &impl Store, username: &str) -> Result<(), StoreError> {
    store.forget_failures(username_key(username)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    const T: u64 = 1_000_000;

    fn store() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        (dir, store)
    }

    #[tokio::test]
    async fn five_failures_lock_the_username_for_a_minute() {
        let (_dir, store) = store();
        for _ in 0..4 {
            failure(&store, "alice", None, T).await.unwrap();
            assert_eq!(check(&store, "alice", None, T).await.unwrap(), None);
        }
        failure(&store, "alice", None, T).await.unwrap();
        assert_eq!(check(&store, "alice", None, T + 1).await.unwrap(), Some(59));
        assert_eq!(check(&store, "bob", None, T + 1).await.unwrap(), None);
        assert_eq!(check(&store, "alice", None, T + 60).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_success_clears_the_username_but_not_the_address() {
        let (_dir, store) = store();
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..4 {
            failure(&store, "alice", address, T).await.unwrap();
        }
        success(&store, "alice").await.unwrap();
        failure(&store, "alice", address, T).await.unwrap();
        assert_eq!(check(&store, "alice", None, T).await.unwrap(), None);
        for i in 0..15 {
            failure(&store, &format!("user{i}"), address, T)
                .await
                .unwrap();
        }
        assert_eq!(
            check(&store, "carol", address, T).await.unwrap(),
            Some(60),
            "the address kept its 5 failures: 20 in all"
        );
    }

    #[tokio::test]
    async fn an_address_is_locked_after_twenty_failures_across_usernames() {
        let (_dir, store) = store();
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        for i in 0..20 {
            let name = format!("user{i}");
            assert_eq!(check(&store, &name, address, T).await.unwrap(), None);
            failure(&store, &name, address, T).await.unwrap();
        }
        assert_eq!(
            check(&store, "someone-else", address, T).await.unwrap(),
            Some(60)
        );
        let elsewhere = Some(IpAddr::from([192, 0, 2, 2]));
        assert_eq!(
            check(&store, "someone-else", elsewhere, T).await.unwrap(),
            None
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let key = |text: &str| address_key(text.parse().expect("ip"));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("::c000:201"), key("192.0.2.1"));
    }

    #[test]
    fn a_username_never_shares_a_key_with_an_address() {
        assert_ne!(
            username_key("192.0.2.1"),
            address_key([192, 0, 2, 1].into())
        );
        assert_ne!(username_key("alice"), username_key("alice "));
    }
}
