//! Failed sign-ins: counted per key under the limits the caller passes, every concurrent
//! failure counted, the latest lockout of several keys reported, forgotten on request.

use super::{Harness, at_once};
use tokenwarden::store::{Limits, LockoutKey, Store};

const T: u64 = 1_000_000;

/// 5 failures lock for a minute; forgotten an hour after the last.
pub const LIMITS: Limits = Limits {
    max_failures: 5,
    window_secs: 15 * 60,
    first_lockout_secs: 60,
    max_lockout_secs: 15 * 60,
    forget_after_secs: 60 * 60,
};

/// A key no other test uses (the PostgreSQL harness shares one database).
pub fn lockout_key() -> LockoutKey {
    LockoutKey(super::secret().0)
}

pub async fn failures_lock_a_key_out_until_forgotten<H: Harness>(h: &H) {
    let store = h.open().await;
    let (key, other) = (lockout_key(), lockout_key());
    for i in 0..4 {
        store.count_failure(key, LIMITS, T + i).await.unwrap();
        assert_eq!(store.locked_until(&[key], T + i).await.unwrap(), None);
    }
    store.count_failure(key, LIMITS, T + 4).await.unwrap();
    assert_eq!(
        store.locked_until(&[other, key], T + 4).await.unwrap(),
        Some(T + 64)
    );
    assert_eq!(store.locked_until(&[key], T + 64).await.unwrap(), None);
    assert_eq!(store.locked_until(&[other], T + 4).await.unwrap(), None);
    assert_eq!(store.locked_until(&[], T + 4).await.unwrap(), None);

    store.forget_failures(key).await.unwrap();
    assert_eq!(store.locked_until(&[key], T + 4).await.unwrap(), None);
    for _ in 0..4 {
        store.count_failure(key, LIMITS, T + 5).await.unwrap();
    }
    assert_eq!(
        store.locked_until(&[key], T + 5).await.unwrap(),
        None,
        "forgotten: counting starts again"
    );
}

pub async fn the_latest_lockout_among_keys_is_reported<H: Harness>(h: &H) {
    let store = h.open().await;
    let (once, twice) = (lockout_key(), lockout_key());
    for _ in 0..5 {
        store.count_failure(once, LIMITS, T).await.unwrap();
        store.count_failure(twice, LIMITS, T).await.unwrap();
    }
    for _ in 0..5 {
        store.count_failure(twice, LIMITS, T + 60).await.unwrap();
    }
    let until = store.locked_until(&[once, twice], T + 61).await.unwrap();
    assert_eq!(until, Some(T + 180), "the second lockout doubles");
}

pub async fn concurrent_failures_of_one_key_all_count<H: Harness>(h: &H) {
    let store = h.open().await;
    let key = lockout_key();
    let limits = Limits {
        max_failures: 24,
        ..LIMITS
    };
    at_once(&store, 24, move |store| async move {
        store.count_failure(key, limits, T).await.unwrap()
    })
    .await;
    assert_eq!(
        store.locked_until(&[key], T).await.unwrap(),
        Some(T + 60),
        "24 concurrent failures, the 24th locks"
    );
}
