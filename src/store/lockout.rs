//! Failed sign-ins and the lockouts they earn: the counting rules every store applies, and the
//! bounded table in memory where the embedded store keeps them.
//!
//! Owns: what one more failure does to a key's [`Failures`] under given [`Limits`]
//! ([`count_failure`], pure), when a key is locked ([`Failures::locked_at`]) and when it may be
//! forgotten ([`Failures::forget_at`]). Must not read the clock (every call takes `now`), nor
//! know what a key stands for: the issuer derives keys from usernames and client addresses
//! (`crate::issuer::throttle`) and passes the limits in, as it passes the refresh rules.
//!
//! Stores keep these where every replica sees them (PostgreSQL: one unlogged table), so the
//! limits hold for the whole deployment, not once per replica.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use super::model::UnixTime;

/// What a key's failures count towards.
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
}

/// What is counted against: a fixed-size digest the issuer derives (a username, an address).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct LockoutKey(pub [u8; 32]);

/// The failures counted against one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Failures {
    /// Failures in the current window since the last lockout.
    pub failures: u32,
    pub last_failure: UnixTime,
    /// Locked out while `now < locked_until`.
    pub locked_until: UnixTime,
    /// Lockouts so far: each doubles the next.
    pub lockouts: u32,
    /// From this second on, the entry means nothing and may be deleted.
    pub forget_at: UnixTime,
}

impl Failures {
    /// Until when the key is locked out, if it is at `now`.
    pub(crate) fn locked_at(&self, now: UnixTime) -> Option<UnixTime> {
        (now < self.locked_until).then_some(self.locked_until)
    }

    fn is_stale(&self, now: UnixTime) -> bool {
        now >= self.forget_at
    }
}

/// The key's failures after one more at `now`: the last failure allowed starts a lockout.
/// `previous` is what the store holds (none for a key never seen or already forgotten).
pub(crate) fn count_failure(
    previous: Option<&Failures>,
    now: UnixTime,
    limits: &Limits,
) -> Failures {
    let mut entry = previous
        .filter(|e| !e.is_stale(now))
        .copied()
        .unwrap_or_default();
    if now >= entry.last_failure.saturating_add(limits.window_secs) {
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
    entry.forget_at = entry
        .locked_until
        .max(now.saturating_add(limits.forget_after_secs));
    entry
}

/// The latest lockout among `entries` in force at `now`.
pub(crate) fn latest_lockout<'a>(
    entries: impl IntoIterator<Item = &'a Failures>,
    now: UnixTime,
) -> Option<UnixTime> {
    entries.into_iter().filter_map(|e| e.locked_at(now)).max()
}

/// Failures in memory, at most `capacity` keys: the embedded store's (one process serves every
/// request, so its memory is the whole deployment's; a restart forgets them).
#[derive(Debug)]
pub(crate) struct Table {
    capacity: usize,
    entries: Mutex<HashMap<LockoutKey, Failures>>,
}

impl Table {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn locked_until(&self, keys: &[LockoutKey], now: UnixTime) -> Option<UnixTime> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        latest_lockout(keys.iter().filter_map(|k| entries.get(k)), now)
    }

    pub(crate) fn count_failure(&self, key: LockoutKey, limits: &Limits, now: UnixTime) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            make_room(&mut entries, self.capacity, now);
        }
        let counted = count_failure(entries.get(&key), now, limits);
        entries.insert(key, counted);
    }

    pub(crate) fn forget(&self, key: &LockoutKey) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Drop stale entries; if the table is still full, drop the entry that matters least: not
/// locked, and failed least recently (a locked entry goes only when every entry is locked,
/// the one unlocking first).
fn make_room(entries: &mut HashMap<LockoutKey, Failures>, capacity: usize, now: UnixTime) {
    entries.retain(|_, e| !e.is_stale(now));
    if entries.len() < capacity {
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

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_000_000;

    const LIMITS: Limits = Limits {
        max_failures: 5,
        window_secs: 15 * 60,
        first_lockout_secs: 60,
        max_lockout_secs: 15 * 60,
        forget_after_secs: 60 * 60,
    };

    fn key(n: u32) -> LockoutKey {
        let mut key = [0; 32];
        key[..4].copy_from_slice(&n.to_be_bytes());
        LockoutKey(key)
    }

    /// `count` failures at `now`, starting from `entry`.
    fn fail(mut entry: Option<Failures>, count: usize, now: u64) -> Failures {
        for _ in 0..count {
            entry = Some(count_failure(entry.as_ref(), now, &LIMITS));
        }
        entry.expect("counted at least once")
    }

    #[test]
    fn five_failures_lock_a_key_for_a_minute_then_it_recovers() {
        let mut entry = None;
        for i in 0..4 {
            let counted = count_failure(entry.as_ref(), T + i, &LIMITS);
            assert_eq!(counted.locked_at(T + i), None);
            entry = Some(counted);
        }
        let locked = count_failure(entry.as_ref(), T + 4, &LIMITS);
        assert_eq!(locked.locked_at(T + 4), Some(T + 64));
        assert_eq!(locked.locked_at(T + 63), Some(T + 64));
        assert_eq!(locked.locked_at(T + 64), None);
    }

    #[test]
    fn each_further_lockout_doubles_up_to_fifteen_minutes() {
        let mut now = T;
        let mut entry = None;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let locked = fail(entry, 5, now);
            let until = locked.locked_at(now).expect("locked");
            delays.push(until - now);
            now = until;
            entry = Some(locked);
        }
        assert_eq!(delays, [60, 120, 240, 480, 900, 900, 900]);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let entry = fail(None, 4, T);
        let later = count_failure(Some(&entry), T + 15 * 60, &LIMITS);
        assert_eq!(later.locked_at(T + 15 * 60), None);
        assert_eq!(later.failures, 1);
    }

    #[test]
    fn lockout_history_is_forgotten_after_an_hour_without_failures() {
        let first = fail(None, 5, T);
        assert_eq!(first.forget_at, T + 60 * 60);
        let later = T + 60 * 60;
        assert_eq!(
            fail(Some(first), 5, later).locked_at(later),
            Some(later + 60)
        );
        let sooner = later - 1;
        assert_eq!(
            fail(Some(first), 5, sooner).locked_at(sooner),
            Some(sooner + 120),
            "still remembered a second earlier: the second lockout doubles"
        );
    }

    #[test]
    fn a_lockout_longer_than_the_forget_delay_is_kept_until_it_ends() {
        let limits = Limits {
            forget_after_secs: 10,
            ..LIMITS
        };
        let entry = (0..5).fold(None, |e, _| Some(count_failure(e.as_ref(), T, &limits)));
        assert_eq!(entry.expect("counted").forget_at, T + 60);
    }

    #[test]
    fn the_latest_lockout_of_several_keys_counts() {
        let short = fail(None, 5, T);
        let long = fail(Some(short), 5, T + 60);
        let free = fail(None, 1, T);
        assert_eq!(
            latest_lockout([&short, &long, &free], T + 61),
            Some(T + 180)
        );
        assert_eq!(latest_lockout([&short, &free], T + 60), None);
    }

    #[test]
    fn the_table_never_grows_past_its_capacity_and_keeps_locked_keys() {
        let table = Table::new(3);
        for _ in 0..5 {
            table.count_failure(key(0), &LIMITS, T);
        }
        for n in 1..1000u32 {
            table.count_failure(key(n), &LIMITS, T + u64::from(n));
            assert!(table.len() <= 3);
        }
        assert!(table.locked_until(&[key(0)], T + 10).is_some());
    }

    #[test]
    fn the_table_forgets_a_key_on_request() {
        let table = Table::new(3);
        for _ in 0..5 {
            table.count_failure(key(1), &LIMITS, T);
        }
        assert_eq!(table.locked_until(&[key(2), key(1)], T), Some(T + 60));
        table.forget(&key(1));
        assert_eq!(table.locked_until(&[key(1)], T), None);
        assert!(table.is_empty());
    }
}
