//! A bounded table of short-lived entries in memory, keyed by the hash of a secret a browser
//! holds: the embedded store keeps the sign-ins in progress here (one process owns its file,
//! so its memory is all replicas' memory; see [`super::Store::put_sign_in`]).
//!
//! Owns: expiry (an entry is gone at its `expires_at`, to the second) and the bound (when a
//! new entry would exceed the capacity, the expired entries go, then the one that expires
//! first). Must not read the clock (calls take `now`) nor know what the entries mean.

use crate::store::TokenHash;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// At most `capacity` entries, each with the second it expires at.
#[derive(Debug)]
pub struct Expiring<V> {
    capacity: usize,
    entries: Mutex<HashMap<TokenHash, (u64, V)>>,
}

impl<V> Expiring<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `value` under `key` until `expires_at`, making room first if the table is full.
    pub fn insert(&self, key: TokenHash, value: V, expires_at: u64, now: u64) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires_at, _)| now < *expires_at);
        }
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (expires_at, _))| *expires_at)
                .map(|(k, _)| *k)
        {
            entries.remove(&oldest);
        }
        entries.insert(key, (expires_at, value));
    }

    /// The entry under `key` if it has not expired at `now`; it stays.
    pub fn get(&self, key: &TokenHash, now: u64) -> Option<V>
    where
        V: Clone,
    {
        self.lock()
            .get(key)
            .filter(|(expires_at, _)| now < *expires_at)
            .map(|(_, value)| value.clone())
    }

    /// The entry under `key`, removed, if it has not expired at `now`: each key serves once.
    pub fn take(&self, key: &TokenHash, now: u64) -> Option<V> {
        self.lock()
            .remove(key)
            .filter(|(expires_at, _)| now < *expires_at)
            .map(|(_, value)| value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenHash, (u64, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> TokenHash {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        TokenHash(bytes)
    }

    #[test]
    fn an_entry_is_read_until_its_expiry_second_and_taken_once() {
        let table = Expiring::new(4);
        table.insert(key(1), "a", 100, 0);
        assert_eq!(table.get(&key(1), 99), Some("a"));
        assert_eq!(table.get(&key(1), 100), None);
        assert_eq!(table.take(&key(1), 99), Some("a"));
        assert_eq!(table.take(&key(1), 99), None);
    }

    #[test]
    fn a_full_table_drops_the_expired_then_the_entry_expiring_first() {
        let table = Expiring::new(3);
        table.insert(key(1), 1, 50, 0);
        table.insert(key(2), 2, 300, 0);
        table.insert(key(3), 3, 200, 0);
        table.insert(key(4), 4, 400, 60);
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(&key(1), 0), None, "expired at 50, dropped first");
        table.insert(key(5), 5, 500, 60);
        assert_eq!(table.len(), 3);
        assert_eq!(
            table.get(&key(3), 60),
            None,
            "expires first of the live ones"
        );
        for (k, v) in [(2, 2), (4, 4), (5, 5)] {
            assert_eq!(table.get(&key(k), 60), Some(v));
        }
    }
}
