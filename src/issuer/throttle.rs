//! Brute-force protection of the login form: failed sign-ins are counted per username and per
//! client address; too many within a window lock that username or address out for a delay that
//! doubles with each lockout. Memory is bounded: each table keeps at most a fixed number of
//! entries, keyed by fixed-size values (a username is kept as its SHA-256).
//!
//! Owns: the counting and the lockout decision. Must not read the clock (every call takes
//! `now`) nor know about HTTP. A locked-out attempt is refused before any password hash is
//! computed, so a lockout also stops the attacker from spending the issuer's CPU.
//!
//! Unknown usernames are counted exactly like known ones, so a lockout says nothing about
//! whether a username exists.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// The numbers of one table. See docs/decisions.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failures within `window_secs` that lock the key out.
    pub max_failures: u32,
    /// Failures older than this (counted from the last one) are forgotten.
    pub window_secs: u64,
    /// The first lockout; each further one doubles, up to `max_lockout_secs`.
    pub first_lockout_secs: u64,
    pub max_lockout_secs: u64,
    /// After this long without a failure (and not locked), the key is forgotten entirely,
    /// lockout history included.
    pub forget_after_secs: u64,
    /// Most keys kept.
    pub capacity: usize,
}

/// Per username: 5 failures in 15 minutes lock it for 1 minute, then 2, 4, 8, 15 at most.
pub const PER_USERNAME: Limits = Limits {
    max_failures: 5,
    window_secs: 15 * 60,
    first_lockout_secs: 60,
    max_lockout_secs: 15 * 60,
    forget_after_secs: 60 * 60,
    capacity: 10_000,
};

/// Per client address (IPv6 by /64): more, since many people may share one address (NAT).
pub const PER_ADDRESS: Limits = Limits {
    max_failures: 20,
    ..PER_USERNAME
};

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    failures: u32,
    last_failure: u64,
    locked_until: u64,
    lockouts: u32,
}

impl Entry {
    fn is_stale(&self, now: u64, limits: &Limits) -> bool {
        now >= self.locked_until
            && now >= self.last_failure.saturating_add(limits.forget_after_secs)
    }
}

/// One table of failures.
#[derive(Debug)]
pub struct Tracker<K> {
    limits: Limits,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Copy> Tracker<K> {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Until when `key` is locked out, if it is at `now`.
    pub fn locked_until(&self, key: &K, now: u64) -> Option<u64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .map(|e| e.locked_until)
            .filter(|until| now < *until)
    }

    /// Count a failure; the last one allowed starts a lockout.
    pub fn failure(&self, key: K, now: u64) {
        let limits = &self.limits;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= limits.capacity {
            make_room(&mut entries, now, limits);
        }
        let entry = entries.entry(key).or_default();
        if entry.is_stale(now, limits) {
            *entry = Entry::default();
        } else if now >= entry.last_failure.saturating_add(limits.window_secs) {
            entry.failures = 0;
        }
        entry.failures += 1;
        entry.last_failure = now;
        if entry.failures >= limits.max_failures {
            let doubling = 1u64.checked_shl(entry.lockouts).unwrap_or(u64::MAX);
            let delay = limits
                .first_lockout_secs
                .saturating_mul(doubling)
                .min(limits.max_lockout_secs);
            entry.locked_until = now.saturating_add(delay);
            entry.lockouts = entry.lockouts.saturating_add(1);
            entry.failures = 0;
        }
    }

    /// Forget `key` (after a successful sign-in).
    pub fn forget(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drop stale entries; if the table is still full, drop the entry that matters least: not
/// locked, and failed least recently (a locked entry goes only when every entry is locked,
/// the one unlocking first).
fn make_room<K: Hash + Eq + Copy>(entries: &mut HashMap<K, Entry>, now: u64, limits: &Limits) {
    entries.retain(|_, e| !e.is_stale(now, limits));
    if entries.len() < limits.capacity {
        return;
    }
    let victim = entries
        .iter()
        .min_by_key(|(_, e)| (now < e.locked_until, e.locked_until, e.last_failure))
        .map(|(k, _)| *k);
    if let Some(key) = victim {
        entries.remove(&key);
    }
}

/// The client address as counted: IPv4 as is, IPv6 by its /64 (one subscriber's prefix, so
/// that rotating through one's own addresses does not reset the count).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum AddressKey {
    V4(u32),
    V6Prefix(u64),
}

impl AddressKey {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.to_bits()),
                None => Self::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// A username as counted: its SHA-256, so a key has a fixed size whatever is typed.
pub type UsernameKey = [u8; 32];

fn username_key(username: &str) -> UsernameKey {
    use sha2::Digest as _;
    sha2::Sha256::digest(username.as_bytes()).into()
}

/// Both tables.
#[derive(Debug)]
pub struct Throttle {
    pub usernames: Tracker<UsernameKey>,
    pub addresses: Tracker<AddressKey>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            usernames: Tracker::new(PER_USERNAME),
            addresses: Tracker::new(PER_ADDRESS),
        }
    }
}

impl Throttle {
    /// `Err(seconds to wait)` when the username or the address is locked out.
    pub fn check(&self, username: &str, address: Option<IpAddr>, now: u64) -> Result<(), u64> {
        let by_name = self.usernames.locked_until(&username_key(username), now);
        let by_address = address.and_then(|a| self.addresses.locked_until(&AddressKey::of(a), now));
        match by_name.max(by_address) {
            Some(until) => Err(until - now),
            None => Ok(()),
        }
    }

    pub fn failure(&self, username: &str, address: Option<IpAddr>, now: u64) {
        self.usernames.failure(username_key(username), now);
        if let Some(address) = address {
            self.addresses.failure(AddressKey::of(address), now);
        }
    }

    /// A successful sign-in clears the username's failures. The address keeps its count: one
    /// account of the attacker's own must not reset the count of its guesses at others.
    pub fn success(&self, username: &str) {
        self.usernames.forget(&username_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    fn limits() -> Limits {
        Limits {
            capacity: 3,
            ..PER_USERNAME
        }
    }

    #[test]
    fn five_failures_lock_a_key_for_a_minute_then_it_recovers() {
        let tracker = Tracker::new(limits());
        for i in 0..4 {
            tracker.failure(1u8, T + i);
            assert_eq!(tracker.locked_until(&1, T + i), None);
        }
        tracker.failure(1, T + 4);
        assert_eq!(tracker.locked_until(&1, T + 4), Some(T + 64));
        assert_eq!(tracker.locked_until(&1, T + 63), Some(T + 64));
        assert_eq!(tracker.locked_until(&1, T + 64), None);
        assert_eq!(
            tracker.locked_until(&2, T + 4),
            None,
            "other keys are not locked"
        );
    }

    #[test]
    fn each_further_lockout_doubles_up_to_fifteen_minutes() {
        let tracker = Tracker::new(limits());
        let mut now = T;
        let mut delays = Vec::new();
        for _ in 0..7 {
            for _ in 0..5 {
                tracker.failure(1u8, now);
            }
            let until = tracker.locked_until(&1, now).expect("locked");
            delays.push(until - now);
            now = until;
        }
        assert_eq!(delays, [60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let tracker = Tracker::new(limits());
        for i in 0..4 {
            tracker.failure(1u8, T + i);
        }
        tracker.failure(1, T + 3 + 15 * 60);
        assert_eq!(tracker.locked_until(&1, T + 3 + 15 * 60), None);
    }

    #[test]
    fn lockout_history_is_forgotten_after_an_hour_without_failures() {
        let tracker = Tracker::new(limits());
        for _ in 0..5 {
            tracker.failure(1u8, T);
        }
        let later = T + 60 * 60;
        for _ in 0..5 {
            tracker.failure(1u8, later);
        }
        assert_eq!(tracker.locked_until(&1, later), Some(later + 60));
    }

    #[test]
    fn the_table_never_grows_past_its_capacity_and_keeps_locked_keys() {
        let tracker = Tracker::new(limits());
        for _ in 0..5 {
            tracker.failure(0u32, T);
        }
        for key in 1..1000u32 {
            tracker.failure(key, T + u64::from(key));
            assert!(tracker.len() <= 3);
        }
        assert!(tracker.locked_until(&0, T + 10).is_some());
    }

    #[test]
    fn a_success_clears_the_username_but_not_the_address() {
        let throttle = Throttle::default();
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        for _ in 0..4 {
            throttle.failure("alice", address, T);
        }
        throttle.success("alice");
        throttle.failure("alice", address, T);
        assert_eq!(throttle.check("alice", None, T), Ok(()));
        assert_eq!(throttle.addresses.len(), 1);
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_across_usernames() {
        let throttle = Throttle::default();
        let address = Some(IpAddr::from([192, 0, 2, 1]));
        for i in 0..20 {
            assert_eq!(throttle.check(&format!("user{i}"), address, T), Ok(()));
            throttle.failure(&format!("user{i}"), address, T);
        }
        assert_eq!(throttle.check("someone-else", address, T), Err(60));
        assert_eq!(
            throttle.check("someone-else", Some(IpAddr::from([192, 0, 2, 2])), T),
            Ok(())
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_bit_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(AddressKey::of(a), AddressKey::of(b));
        assert_ne!(AddressKey::of(a), AddressKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        assert_eq!(
            AddressKey::of(mapped),
            AddressKey::of(IpAddr::from([192, 0, 2, 1]))
        );
        assert_ne!(
            AddressKey::of("::c000:201".parse().expect("ip")),
            AddressKey::of(IpAddr::from([192, 0, 2, 1]))
        );
    }
}
