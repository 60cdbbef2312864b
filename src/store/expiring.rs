//! A bounded table of short-lived entries in memory, keyed by the hash of a secret a browser
//! holds: the embedded store keeps the sign-ins in progress here (one process owns its file,
//! so its memory is all replicas' memory; see [`super::Store::put_sign_in`]).
//!
//! Owns: expiry (an entry is gone at its `expires_at`, to the second) and the bound (when a
//! new entry would exceed the capacity, the expired entries go; if none has, the new entry is
//! refused, so a flood of new entries cannot push out those in use). Must not read the clock
//! (calls take `now`) nor know what the entries mean.

use crate::store::TokenHash;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The table holds `capacity` entries, none expired.
#[derive(Debug, thiserror::Error)]
#[error("{capacity} entries in use, the most kept at once")]
pub struct Full {
    pub capacity: usize,
}

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

    /// Keeps `value` under `key` until `expires_at`; when the table is full, the expired
    /// entries go first, and if none has expired the new entry is refused.
    pub fn insert(&self, key: TokenHash, value: V, expires_at: u64, now: u64) -> Result<(), Full> {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires_at, _)| now < *expires_at);
        }
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            return Err(Full {
                capacity: self.capacity,
            });
        }
        entries.insert(key, (expires_at, value));
        Ok(())
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
        table.insert(key(1), "a", 100, 0).expect("room");
        assert_eq!(table.get(&key(1), 99), Some("a"));
        assert_eq!(table.get(&key(1), 100), None);
        assert_eq!(table.take(&key(1), 99), Some("a"));
        assert_eq!(table.take(&key(1), 99), None);
    }

    #[test]
    fn a_full_table_drops_the_expired_then_refuses_new_entries_keeping_those_in_use() {
        let table = Expiring::new(3);
        for (k, expires_at) in [(1, 50), (2, 300), (3, 200)] {
            table.insert(key(k), k, expires_at, 0).expect("room");
        }
        table
            .insert(key(4), 4, 400, 60)
            .expect("key 1 expired at 50");
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(&key(1), 0), None, "expired at 50, dropped first");
        let full = table.insert(key(5), 5, 500, 60).expect_err("none expired");
        assert_eq!(full.capacity, 3);
        for (k, v) in [(2, 2), (3, 3), (4, 4)] {
            assert_eq!(table.get(&key(k), 60), Some(v), "kept: {k}");
        }
        table
            .insert(key(4), 40, 400, 60)
            .expect("a key already in it is replaced");
        assert_eq!(table.take(&key(3), 60), Some(3));
        table
            .insert(key(5), 5, 500, 60)
            .expect("room once one is taken");
    }
}
