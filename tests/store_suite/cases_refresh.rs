//! Suite cases for refresh-token families: rotation, reuse detection, lifetimes, concurrency.

use super::*;
use tokenwarden::store::{ExpiryKind, RefreshOutcome, RefreshRules, Store};

pub async fn rotation_returns_a_new_token_and_retires_the_old_one<H: Harness>(h: &H) {
    let store = h.open().await;
    let (family, first) = start_family(&store, 1_000, ROTATING).await;

    let (outcome, second) = refresh(&store, first, 1_010, ROTATING).await;
    let RefreshOutcome::Rotated { family: after } = outcome else {
        panic!("expected a rotation, got {outcome:?}");
    };
    assert_eq!(after.id, family.id);
    assert_eq!(after.last_used_at, 1_010);
    assert_eq!(after.scope, "accounts:read offline_access");

    let old = store.lookup_refresh_token(first).await.unwrap().unwrap();
    assert_eq!(old.token.retired_at, Some(1_010));
    assert_eq!(old.token.successor, Some(second));
    let new = store.lookup_refresh_token(second).await.unwrap().unwrap();
    assert_eq!(new.token.retired_at, None);
    assert_eq!(new.token.issued_at, 1_010);

    let (outcome, _) = refresh(&store, second, 1_020, ROTATING).await;
    assert!(
        matches!(outcome, RefreshOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

pub async fn replay_of_a_retired_token_after_the_reuse_interval_revokes_the_family_and_its_newest_token<
    H: Harness,
>(
    h: &H,
) {
    let (store, rules, family, first) = family_with_reuse_interval(h, 5).await;
    let (_, second) = refresh(&store, first, 10, rules).await;
    let (_, newest) = refresh(&store, second, 20, rules).await;

    // `second` was retired at 20: at 25 the 5 s interval is over.
    let (outcome, not_stored) = refresh(&store, second, 25, rules).await;
    assert_eq!(
        outcome,
        RefreshOutcome::ReplayDetected {
            family_id: family.id
        }
    );
    assert!(
        store
            .lookup_refresh_token(not_stored)
            .await
            .unwrap()
            .is_none()
    );

    let (outcome, _) = refresh(&store, newest, 26, rules).await;
    assert_eq!(outcome, RefreshOutcome::Revoked);
    let view = store.lookup_refresh_token(newest).await.unwrap().unwrap();
    assert!(!view.is_active(26, &rules));
    assert!(view.family.revoked.is_some());
}

pub async fn replay_inside_the_reuse_interval_issues_a_fresh_successor_and_retires_the_unused_one<
    H: Harness,
>(
    h: &H,
) {
    let (store, rules, _, first) = family_with_reuse_interval(h, 5).await;
    let (_, lost) = refresh(&store, first, 10, rules).await;

    // The response carrying `lost` never arrived; the client retries 4 s later.
    let (outcome, fresh) = refresh(&store, first, 14, rules).await;
    assert!(
        matches!(outcome, RefreshOutcome::ReuseWithinGrace { .. }),
        "{outcome:?}"
    );
    let lost_view = store.lookup_refresh_token(lost).await.unwrap().unwrap();
    assert_eq!(lost_view.token.retired_at, Some(14));
    assert!(!lost_view.is_active(14, &rules));
    assert!(
        store
            .lookup_refresh_token(fresh)
            .await
            .unwrap()
            .unwrap()
            .is_active(14, &rules)
    );

    let (outcome, _) = refresh(&store, fresh, 20, rules).await;
    assert!(
        matches!(outcome, RefreshOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

pub async fn replay_inside_the_reuse_interval_after_the_successor_was_used_revokes_the_family<
    H: Harness,
>(
    h: &H,
) {
    let (store, rules, _, first) = family_with_reuse_interval(h, 30).await;
    let (_, second) = refresh(&store, first, 10, rules).await;
    let (_, third) = refresh(&store, second, 11, rules).await;

    let (outcome, _) = refresh(&store, first, 12, rules).await;
    assert!(
        matches!(outcome, RefreshOutcome::ReplayDetected { .. }),
        "{outcome:?}"
    );
    let (outcome, _) = refresh(&store, third, 13, rules).await;
    assert_eq!(outcome, RefreshOutcome::Revoked);
}

pub async fn non_rotating_refresh_keeps_the_same_token_and_records_its_use<H: Harness>(h: &H) {
    let store = h.open().await;
    let rules = RefreshRules {
        rotating: false,
        ..ROTATING
    };
    let (_, token) = start_family(&store, 0, rules).await;

    for now in [50, 140, 230] {
        let (outcome, unused) = refresh(&store, token, now, rules).await;
        let RefreshOutcome::NonRotating { family } = outcome else {
            panic!("expected non-rotating, got {outcome:?}");
        };
        assert_eq!(family.last_used_at, now);
        assert!(store.lookup_refresh_token(unused).await.unwrap().is_none());
    }
    let view = store.lookup_refresh_token(token).await.unwrap().unwrap();
    assert_eq!(view.token.last_used_at, Some(230));
    assert_eq!(view.token.retired_at, None);
}

pub async fn absolute_lifetime_ends_at_the_second_even_for_a_family_in_use<H: Harness>(h: &H) {
    let store = h.open().await;
    let (_, mut token) = start_family(&store, 1_000, ROTATING).await;
    // Refreshing every 99 s keeps it from idling; absolute ends at 1_000 + 1_000.
    for now in (1_099..2_000).step_by(99) {
        let (outcome, new) = refresh(&store, token, now, ROTATING).await;
        assert!(is_granted(&outcome), "at {now}: {outcome:?}");
        token = new;
    }
    let (outcome, new) = refresh(&store, token, 1_999, ROTATING).await;
    assert!(is_granted(&outcome), "{outcome:?}");
    let (outcome, _) = refresh(&store, new, 2_000, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::Expired(ExpiryKind::Absolute));
}

pub async fn idle_lifetime_ends_at_the_second_after_the_last_refresh<H: Harness>(h: &H) {
    let store = h.open().await;
    let (_, first) = start_family(&store, 0, ROTATING).await;
    let (outcome, second) = refresh(&store, first, 99, ROTATING).await;
    assert!(is_granted(&outcome), "{outcome:?}");

    let (outcome, _) = refresh(&store, second, 199, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::Expired(ExpiryKind::Idle));

    let (_, other) = start_family(&store, 0, ROTATING).await;
    let (outcome, _) = refresh(&store, other, 99, ROTATING).await;
    assert!(
        is_granted(&outcome),
        "idle ends at 100, not before: {outcome:?}"
    );
}

pub async fn refresh_by_another_client_or_for_another_audience_changes_nothing<H: Harness>(h: &H) {
    let store = h.open().await;
    let (_, token) = start_family(&store, 0, ROTATING).await;
    let mut wrong_client = request(token, secret());
    wrong_client.client_id = "someone.else".into();
    let mut wrong_audience = request(token, secret());
    wrong_audience.audience = "https://other.example.com".into();

    for req in [wrong_client, wrong_audience] {
        let outcome = store.refresh(req, 10, ROTATING).await.unwrap();
        assert_eq!(outcome, RefreshOutcome::WrongClient);
    }
    let view = store.lookup_refresh_token(token).await.unwrap().unwrap();
    assert!(view.is_active(10, &ROTATING));
    assert_eq!(view.token.last_used_at, None);
}

pub async fn an_unknown_refresh_token_is_not_found<H: Harness>(h: &H) {
    let store = h.open().await;
    let (outcome, _) = refresh(&store, secret(), 0, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::NotFound);
    assert!(
        store
            .lookup_refresh_token(secret())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn lookup_shows_the_active_token_as_active_and_a_retired_one_as_inactive<H: Harness>(
    h: &H,
) {
    let store = h.open().await;
    let (family, first) = start_family(&store, 0, ROTATING).await;
    let (_, second) = refresh(&store, first, 10, ROTATING).await;

    let old = store.lookup_refresh_token(first).await.unwrap().unwrap();
    let new = store.lookup_refresh_token(second).await.unwrap().unwrap();
    assert!(!old.is_active(11, &ROTATING));
    assert!(new.is_active(11, &ROTATING));
    assert!(!new.is_active(110, &ROTATING), "idle since 10, over at 110");
    assert_eq!(new.family.id, family.id);
    assert_eq!(new.family.subject, "alice");
}

pub async fn concurrent_refreshes_of_one_token_yield_exactly_one_successor<H: Harness>(h: &H) {
    let store = h.open().await;
    let (_, first) = start_family(&store, 0, ROTATING).await;

    let outcomes = race(&store, first, 64, 10, ROTATING).await;
    let winners: Vec<_> = outcomes.iter().filter(|(o, _)| is_granted(o)).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(matches!(winners[0].0, RefreshOutcome::Rotated { .. }));
    let mut stored = 0;
    for (_, new) in &outcomes {
        stored += usize::from(store.lookup_refresh_token(*new).await.unwrap().is_some());
    }
    assert_eq!(stored, 1, "only the winner's token is stored");
    // Without a reuse interval the losers are replays: the family is revoked.
    let view = store
        .lookup_refresh_token(winners[0].1)
        .await
        .unwrap()
        .unwrap();
    assert!(view.family.revoked.is_some());
}

pub async fn concurrent_refreshes_inside_the_reuse_interval_leave_exactly_one_active_token<
    H: Harness,
>(
    h: &H,
) {
    let (store, rules, _, first) = family_with_reuse_interval(h, 10).await;

    let outcomes = race(&store, first, 64, 5, rules).await;
    let rotated = outcomes
        .iter()
        .filter(|(o, _)| matches!(o, RefreshOutcome::Rotated { .. }))
        .count();
    assert_eq!(rotated, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|(o, _)| is_granted(o)), "{outcomes:?}");
    let mut active = 0;
    for (_, new) in &outcomes {
        let view = store.lookup_refresh_token(*new).await.unwrap().unwrap();
        active += usize::from(view.is_active(5, &rules));
    }
    assert_eq!(active, 1);
}

/// A store and a family started at 0 under [`ROTATING`] with a reuse interval of
/// `reuse_interval_secs`: the store, those rules, the family and its first token.
async fn family_with_reuse_interval<H: Harness>(
    h: &H,
    reuse_interval_secs: u64,
) -> (H::S, RefreshRules, Family, TokenHash) {
    let store = h.open().await;
    let rules = RefreshRules {
        reuse_interval_secs,
        ..ROTATING
    };
    let (family, first) = start_family(&store, 0, rules).await;
    (store, rules, family, first)
}

/// `tasks` refreshes of `presented` at once, each with its own new token.
async fn race<S: Store + Clone + 'static>(
    store: &S,
    presented: tokenwarden::store::TokenHash,
    tasks: usize,
    now: u64,
    rules: RefreshRules,
) -> Vec<(RefreshOutcome, tokenwarden::store::TokenHash)> {
    at_once(store, tasks, move |store| async move {
        refresh(&store, presented, now, rules).await
    })
    .await
}

/// Longer lifetimes apply from a family's next refresh: one whose deadline under the rules of
/// its last use has passed stays expired (as clean-up, which goes by that deadline, would have
/// it either way), one refreshed before then lives by the longer rules. Shorter lifetimes apply
/// at once.
pub async fn changed_lifetimes_apply_to_a_family_from_its_next_refresh<H: Harness>(h: &H) {
    let store = h.open().await;
    let longer = RefreshRules {
        idle_lifetime_secs: 500,
        ..ROTATING
    };
    // Idle 100 s when last used at 0: the longer rules do not bring it back at 150.
    let (_, lapsed) = start_family(&store, 0, ROTATING).await;
    let (outcome, _) = refresh(&store, lapsed, 150, longer).await;
    assert_eq!(outcome, RefreshOutcome::Expired(ExpiryKind::Idle));

    // Refreshed at 50 under the longer rules: alive at 400, by them.
    let (_, used) = start_family(&store, 0, ROTATING).await;
    let (outcome, next) = refresh(&store, used, 50, longer).await;
    assert!(is_granted(&outcome), "{outcome:?}");
    let report = store.purge_expired(400, 100).await.unwrap();
    assert_eq!(
        report.families, 1,
        "only the lapsed family is gone: {report:?}"
    );
    let (outcome, next) = refresh(&store, next, 400, longer).await;
    assert!(is_granted(&outcome), "{outcome:?}");

    // Shorter again: idle 100 s from the refresh at 400.
    let (outcome, _) = refresh(&store, next, 550, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::Expired(ExpiryKind::Idle));
}
