//! Sign-ins in progress: opaque sealed bytes under the hash of a browser's secret, kept until
//! their expiry second, read any number of times, taken once.

use super::{Harness, at_once, secret};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokenwarden::store::{
    LockoutKey, MAX_SIGN_INS, MAX_SIGN_INS_PER_ADDRESS, Store, StoreError, TokenHash,
};

pub async fn a_sign_in_is_kept_until_its_expiry_second_and_taken_once<H: Harness>(h: &H) {
    let store = h.open().await;
    let (key, other) = (secret(), secret());
    store
        .put_sign_in(key, b"sealed".to_vec(), None, 100, 0)
        .await
        .unwrap();
    for now in [0, 50, 99] {
        let kept = store.get_sign_in(key, now).await.unwrap();
        assert_eq!(kept.as_deref(), Some(&b"sealed"[..]), "read at {now}");
    }
    assert_eq!(store.get_sign_in(key, 100).await.unwrap(), None, "expired");
    assert_eq!(store.get_sign_in(other, 0).await.unwrap(), None);
    assert_eq!(store.take_sign_in(other, 0).await.unwrap(), None);

    let taken = store.take_sign_in(key, 99).await.unwrap();
    assert_eq!(taken.as_deref(), Some(&b"sealed"[..]));
    assert_eq!(
        store.take_sign_in(key, 99).await.unwrap(),
        None,
        "taken once"
    );
    assert_eq!(
        store.get_sign_in(key, 99).await.unwrap(),
        None,
        "taken is gone"
    );

    let late = secret();
    store
        .put_sign_in(late, vec![1], None, 100, 0)
        .await
        .unwrap();
    assert_eq!(
        store.take_sign_in(late, 100).await.unwrap(),
        None,
        "expired"
    );
}

pub async fn concurrent_takes_of_a_sign_in_give_it_to_exactly_one<H: Harness>(h: &H) {
    let store = h.open().await;
    let key = secret();
    store
        .put_sign_in(key, vec![7; 300], None, 100, 0)
        .await
        .unwrap();
    let takes = at_once(&store, 16, move |store| async move {
        store.take_sign_in(key, 1).await.unwrap()
    })
    .await;
    let winners = takes.iter().filter(|taken| taken.is_some()).count();
    assert_eq!(winners, 1);
}

/// Clean-up leaves a live sign-in alone. (Where an expired one goes is each store's own
/// business: the embedded store's memory drops it when full; PostgreSQL deletes the row.)
pub async fn clean_up_keeps_live_sign_ins<H: Harness>(h: &H) {
    let store = h.open().await;
    let (stale, live) = stale_and_live_sign_ins(&store).await;
    let report = store.purge_expired(150, 100).await.unwrap();
    assert!(report.sign_ins <= 1);
    assert_eq!(store.get_sign_in(live, 150).await.unwrap(), Some(vec![2]));
    assert_eq!(store.get_sign_in(stale, 150).await.unwrap(), None);
}

/// Two sign-ins, `[1]` expiring at 100 and `[2]` at 200: the clean-up at 150 finds one of each.
pub async fn stale_and_live_sign_ins(store: &impl Store) -> (TokenHash, TokenHash) {
    let (stale, live) = (secret(), secret());
    store
        .put_sign_in(stale, vec![1], None, 100, 0)
        .await
        .unwrap();
    store
        .put_sign_in(live, vec![2], None, 200, 0)
        .await
        .unwrap();
    (stale, live)
}

/// All sign-ins in use and none expired: a new one is refused as unavailable (503 on the page),
/// and every one in progress stays; once one expires there is room again. On PostgreSQL the
/// cap holds for every replica together.
pub async fn a_full_table_of_sign_ins_refuses_new_ones_and_keeps_those_in_progress<H: Harness>(
    h: &H,
) {
    let store = h.open().await;
    let first = secret();
    store
        .put_sign_in(first, vec![1], None, 100, 0)
        .await
        .unwrap();
    // The rest of the table, by 16 writers at once (PostgreSQL takes a while one by one).
    let left = Arc::new(AtomicUsize::new(MAX_SIGN_INS - 1));
    at_once(&store, 16, move |store| {
        let left = left.clone();
        async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                store
                    .put_sign_in(secret(), vec![2], None, 600, 0)
                    .await
                    .unwrap();
            }
        }
    })
    .await;
    let refused = store.put_sign_in(secret(), vec![3], None, 600, 10).await;
    assert!(
        matches!(refused, Err(StoreError::Unavailable(_))),
        "{refused:?}"
    );
    assert_eq!(store.get_sign_in(first, 10).await.unwrap(), Some(vec![1]));
    let late = secret();
    store
        .put_sign_in(late, vec![4], None, 700, 100)
        .await
        .unwrap();
    assert_eq!(store.get_sign_in(late, 100).await.unwrap(), Some(vec![4]));
}

/// One address at its share loses its own oldest sign-in for a new one; another address's
/// sign-in stays.
pub async fn an_address_at_its_share_loses_its_own_oldest_sign_in_and_no_one_elses<H: Harness>(
    h: &H,
) {
    let store = h.open().await;
    let (flood, user) = (Some(LockoutKey([7; 32])), Some(LockoutKey([8; 32])));
    let users = secret();
    store
        .put_sign_in(users, vec![0], user, 600, 0)
        .await
        .unwrap();
    let floods: Vec<TokenHash> = (0..MAX_SIGN_INS_PER_ADDRESS).map(|_| secret()).collect();
    for key in &floods {
        store
            .put_sign_in(*key, vec![1], flood, 600, 0)
            .await
            .unwrap();
    }
    for key in &floods {
        assert!(
            store.get_sign_in(*key, 1).await.unwrap().is_some(),
            "within the share"
        );
    }
    store
        .put_sign_in(secret(), vec![2], flood, 600, 1)
        .await
        .unwrap();
    assert_eq!(
        store.get_sign_in(floods[0], 1).await.unwrap(),
        None,
        "the address's oldest went"
    );
    assert_eq!(
        store.get_sign_in(floods[1], 1).await.unwrap(),
        Some(vec![1])
    );
    assert_eq!(store.get_sign_in(users, 1).await.unwrap(), Some(vec![0]));
}
