//! A bounded table of short-lived entries in memory, keyed by the hash of a secret a browser
//! holds: the sign-ins in progress ([`super::login`]) and the trips to the upstream provider
//! ([`super::upstream::pending`]) keep their entries here.
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

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<TokenHash, (u64, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
