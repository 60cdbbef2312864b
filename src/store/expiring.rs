//! A bounded table of short-lived entries in memory, keyed by the hash of a secret a browser
//! holds: the embedded store keeps the sign-ins in progress here (one process owns its file,
//! so its memory is all replicas' memory; see [`super::Store::put_sign_in`]).
//!
//! Owns: expiry (an entry is gone at its `expires_at`, to the second) and the bounds. The table
//! holds at most `capacity` entries: when a new one would exceed it, the expired entries go,
//! and if none has, the new entry is refused, so a flood cannot push out the entries in use.
//! One holder (a client address) holds at most `per_holder` of them: beyond that its own entry
//! expiring first goes, so one source cannot fill the table for everyone. Must not read the
//! clock (calls take `now`) nor know what the entries mean.

use crate::store::{LockoutKey, TokenHash};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The table holds `capacity` entries, none expired.
#[derive(Debug, thiserror::Error)]
#[error("{capacity} entries in use, the most kept at once")]
pub(super) struct Full {
    pub capacity: usize,
}

/// At most `capacity` entries, at most `per_holder` of one holder, each with the second it
/// expires at.
#[derive(Debug)]
pub(super) struct Expiring<V> {
    capacity: usize,
    per_holder: usize,
    table: Mutex<Table<V>>,
}

#[derive(Debug)]
struct Table<V> {
    entries: HashMap<TokenHash, Entry<V>>,
    /// How many entries each holder has, expired ones included until they are dropped.
    held: HashMap<LockoutKey, usize>,
    /// Insertions so far: orders entries that expire in the same second.
    inserted: u64,
}

#[derive(Debug)]
struct Entry<V> {
    expires_at: u64,
    /// The table's insertion count when this was inserted.
    number: u64,
    holder: Option<LockoutKey>,
    value: V,
}

impl<V> Table<V> {
    /// How many entries `holder` has.
    fn held_by(&self, holder: LockoutKey) -> usize {
        self.held.get(&holder).copied().unwrap_or(0)
    }

    fn remove(&mut self, key: &TokenHash) -> Option<Entry<V>> {
        let entry = self.entries.remove(key)?;
        if let Some(holder) = entry.holder
            && let Some(count) = self.held.get_mut(&holder)
        {
            *count -= 1;
            if *count == 0 {
                self.held.remove(&holder);
            }
        }
        Some(entry)
    }

    fn drop_expired(&mut self, now: u64) {
        let expired: Vec<TokenHash> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= e.expires_at)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }
}

impl<V> Expiring<V> {
    pub(super) fn new(capacity: usize, per_holder: usize) -> Self {
        Self {
            capacity,
            per_holder,
            table: Mutex::new(Table {
                entries: HashMap::new(),
                held: HashMap::new(),
                inserted: 0,
            }),
        }
    }

    /// Keeps `value` under `key` until `expires_at`, for `holder`. A holder at its share first
    /// loses its own expired entries, then its entry expiring first (of those, the oldest). A full table first loses
    /// its expired entries; if none has expired the new entry is refused.
    pub(super) fn insert(
        &self,
        key: TokenHash,
        value: V,
        holder: Option<LockoutKey>,
        expires_at: u64,
        now: u64,
    ) -> Result<(), Full> {
        let mut table = self.lock();
        table.remove(&key);
        if let Some(holder) = holder
            && table.held_by(holder) >= self.per_holder
        {
            table.drop_expired(now);
            if table.held_by(holder) >= self.per_holder
                && let Some(first) = table
                    .entries
                    .iter()
                    .filter(|(_, e)| e.holder == Some(holder))
                    .min_by_key(|(_, e)| (e.expires_at, e.number))
                    .map(|(k, _)| *k)
            {
                table.remove(&first);
            }
        }
        if table.entries.len() >= self.capacity {
            table.drop_expired(now);
        }
        if table.entries.len() >= self.capacity {
            return Err(Full {
                capacity: self.capacity,
            });
        }
        if let Some(holder) = holder {
            *table.held.entry(holder).or_default() += 1;
        }
        table.inserted += 1;
        let entry = Entry {
            expires_at,
            number: table.inserted,
            holder,
            value,
        };
        table.entries.insert(key, entry);
        Ok(())
    }

    /// The entry under `key` if it has not expired at `now`; it stays.
    pub(super) fn get(&self, key: &TokenHash, now: u64) -> Option<V>
    where
        V: Clone,
    {
        self.lock()
            .entries
            .get(key)
            .filter(|e| now < e.expires_at)
            .map(|e| e.value.clone())
    }

    /// The entry under `key`, removed, if it has not expired at `now`: each key serves once.
    pub(super) fn take(&self, key: &TokenHash, now: u64) -> Option<V> {
        self.lock()
            .remove(key)
            .filter(|e| now < e.expires_at)
            .map(|e| e.value)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table<V>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
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
        let table = Expiring::new(4, 4);
        table.insert(key(1), "a", None, 100, 0).expect("room");
        assert_eq!(table.get(&key(1), 99), Some("a"));
        assert_eq!(table.get(&key(1), 100), None);
        assert_eq!(table.take(&key(1), 99), Some("a"));
        assert_eq!(table.take(&key(1), 99), None);
    }

    #[test]
    fn a_full_table_drops_the_expired_then_refuses_new_entries_keeping_those_in_use() {
        let table = Expiring::new(3, 3);
        for (k, expires_at) in [(1, 50), (2, 300), (3, 200)] {
            table.insert(key(k), k, None, expires_at, 0).expect("room");
        }
        table
            .insert(key(4), 4, None, 400, 60)
            .expect("key 1 expired at 50");
        assert_eq!(table.len(), 3);
        assert_eq!(table.get(&key(1), 0), None, "expired at 50, dropped first");
        let full = table
            .insert(key(5), 5, None, 500, 60)
            .expect_err("none expired");
        assert_eq!(full.capacity, 3);
        for (k, v) in [(2, 2), (3, 3), (4, 4)] {
            assert_eq!(table.get(&key(k), 60), Some(v), "kept: {k}");
        }
        table
            .insert(key(4), 40, None, 400, 60)
            .expect("a key already in it is replaced");
        assert_eq!(table.take(&key(3), 60), Some(3));
        table
            .insert(key(5), 5, None, 500, 60)
            .expect("room once one is taken");
    }

    #[test]
    fn a_holder_at_its_share_loses_its_own_entry_expiring_first_not_anyone_elses() {
        let (flood, other) = (LockoutKey([1; 32]), LockoutKey([2; 32]));
        let table = Expiring::new(10, 3);
        table
            .insert(key(100), 100, Some(other), 500, 0)
            .expect("room");
        for k in 1..=3 {
            table
                .insert(key(k), k, Some(flood), 100 + k, 0)
                .expect("room");
        }
        for k in 4..=20 {
            table
                .insert(key(k), k, Some(flood), 100 + k, 0)
                .expect("its own share makes room");
        }
        assert_eq!(table.len(), 4, "three of the flood's, one of the other's");
        assert_eq!(
            table.get(&key(100), 0),
            Some(100),
            "the other holder's stays"
        );
        for k in 18..=20 {
            assert_eq!(table.get(&key(k), 0), Some(k), "the flood's newest");
        }
        assert_eq!(table.get(&key(17), 0), None);
        // Of entries expiring in the same second, the oldest goes first.
        for k in 30..=32 {
            table.insert(key(k), k, Some(other), 900, 0).expect("room");
        }
        assert_eq!(table.get(&key(100), 0), None, "other's, expiring first");
        table
            .insert(key(33), 33, Some(other), 900, 0)
            .expect("room");
        assert_eq!(
            table.get(&key(30), 0),
            None,
            "then its oldest of second 900"
        );
        assert_eq!(table.get(&key(31), 0), Some(31));
        // Taken entries no longer count against their holder.
        assert_eq!(table.take(&key(20), 0), Some(20));
        table
            .insert(key(21), 21, Some(flood), 300, 0)
            .expect("room");
        assert_eq!(
            table.get(&key(18), 0),
            Some(18),
            "none dropped: a share was free"
        );
    }
}
