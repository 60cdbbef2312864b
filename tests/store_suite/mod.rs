//! The store conformance suite: every behaviour of `tokenwarden::store::Store`, written once as
//! generic async functions, run against each implementation by `store_suite!`.
//!
//! An implementation's test file provides a [`Harness`] (a store over some backing data, which
//! it can open again over the same data) and invokes `store_suite!(make_harness())`; each case
//! becomes a `#[tokio::test]` named after it. Time is always passed in, so lifetimes are checked
//! to the second. Owns no implementation detail: only the trait is used here.

#![allow(dead_code)]

mod cases_codes;
mod cases_lockout;
mod cases_refresh;
mod cases_sign_ins;

pub use cases_codes::*;
pub use cases_lockout::*;
pub use cases_refresh::*;
pub use cases_sign_ins::*;

use std::future::Future;
use tokenwarden::store::{
    Family, FamilyId, NewFamily, OpaqueToken, RefreshOutcome, RefreshRequest, RefreshRules, Store,
    TokenHash,
};

/// Opens stores over one backing (a directory, a database). Opening again after dropping the
/// previous store must show the same data.
pub trait Harness {
    type S: Store + Clone + 'static;
    fn open(&self) -> impl Future<Output = Self::S>;
}

/// Instantiates every case of the suite as a test, with a fresh harness from `$make` each.
#[macro_export]
macro_rules! store_suite {
    ($make:expr) => {
        $crate::store_suite!(@cases $make;
            rotation_returns_a_new_token_and_retires_the_old_one,
            replay_of_a_retired_token_after_the_reuse_interval_revokes_the_family_and_its_newest_token,
            replay_inside_the_reuse_interval_issues_a_fresh_successor_and_retires_the_unused_one,
            replay_inside_the_reuse_interval_after_the_successor_was_used_revokes_the_family,
            non_rotating_refresh_keeps_the_same_token_and_records_its_use,
            absolute_lifetime_ends_at_the_second_even_for_a_family_in_use,
            idle_lifetime_ends_at_the_second_after_the_last_refresh,
            changed_lifetimes_apply_to_a_family_from_its_next_refresh,
            refresh_by_another_client_or_for_another_audience_changes_nothing,
            an_unknown_refresh_token_is_not_found,
            lookup_shows_the_active_token_as_active_and_a_retired_one_as_inactive,
            concurrent_refreshes_of_one_token_yield_exactly_one_successor,
            concurrent_refreshes_inside_the_reuse_interval_leave_exactly_one_active_token,
            codes_are_single_use_and_a_second_use_revokes_what_the_first_issued,
            codes_expire_at_their_expiry_second,
            a_grant_recorded_after_a_second_use_of_its_code_is_revoked_at_once,
            clean_up_between_an_exchange_and_its_grant_keeps_the_code,
            a_family_is_found_by_its_id_with_its_revocation_until_clean_up,
            revoking_any_token_of_a_family_revokes_the_whole_family,
            revoking_a_token_of_another_client_changes_nothing,
            access_token_revocations_hold_until_the_token_expires,
            data_survives_closing_and_reopening_the_store,
            clean_up_removes_only_expired_data,
            clean_up_removes_tokens_of_both_shapes,
            clean_up_works_in_bounded_batches,
            a_sign_in_is_kept_until_its_expiry_second_and_taken_once,
            concurrent_takes_of_a_sign_in_give_it_to_exactly_one,
            clean_up_keeps_live_sign_ins,
            a_full_table_of_sign_ins_refuses_new_ones_and_keeps_those_in_progress,
            an_address_at_its_share_loses_its_own_oldest_sign_in_and_no_one_elses,
            failures_lock_a_key_out_until_forgotten,
            the_latest_lockout_among_keys_is_reported,
            concurrent_failures_of_one_key_all_count
        );
    };
    (@cases $make:expr; $($case:ident),+) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            let harness = $make;
            $crate::store_suite::$case(&harness).await;
        }
    )+};
}

pub const CLIENT: &str = "payments.billing";
pub const AUDIENCE: &str = "https://banking.example.com";

/// Rotating rules: absolute 1000 s, idle 100 s, no reuse interval.
pub const ROTATING: RefreshRules = RefreshRules {
    rotating: true,
    absolute_lifetime_secs: 1000,
    idle_lifetime_secs: 100,
    reuse_interval_secs: 0,
};

/// The key of a fresh code, or of a refresh token of the shape issued before refresh tokens
/// named their family.
pub fn secret() -> TokenHash {
    OpaqueToken::generate().expect("entropy").hash()
}

/// The key of a fresh refresh token of `family`, as the issuer makes it.
pub fn refresh_key(family: FamilyId) -> TokenHash {
    OpaqueToken::generate_refresh(family)
        .expect("entropy")
        .refresh_key()
}

/// The key of a fresh refresh token of the same family as `presented`: the family its key
/// names, or a random one for a key of the older shape (the store must not care).
fn successor_key(presented: TokenHash) -> TokenHash {
    let mut family = [0u8; 16];
    family.copy_from_slice(&presented.0[..16]);
    refresh_key(FamilyId(family))
}

pub fn new_family() -> NewFamily {
    NewFamily {
        id: FamilyId::generate().expect("entropy"),
        client_id: CLIENT.into(),
        audience: AUDIENCE.into(),
        subject: "alice".into(),
        scope: "accounts:read offline_access".into(),
    }
}

/// A family started at `now`, and the hash of its first token.
pub async fn start_family<S: Store>(
    store: &S,
    now: u64,
    rules: RefreshRules,
) -> (Family, TokenHash) {
    let new = new_family();
    let first = refresh_key(new.id);
    let family = store
        .create_family(new, first, now, rules)
        .await
        .expect("create family");
    (family, first)
}

pub fn request(presented: TokenHash, new: TokenHash) -> RefreshRequest {
    RefreshRequest {
        presented,
        new,
        client_id: CLIENT.into(),
        audience: AUDIENCE.into(),
    }
}

/// Refreshes `presented` at `now` with a fresh new token; returns the outcome and that token.
pub async fn refresh<S: Store>(
    store: &S,
    presented: TokenHash,
    now: u64,
    rules: RefreshRules,
) -> (RefreshOutcome, TokenHash) {
    let new = successor_key(presented);
    let outcome = store
        .refresh(request(presented, new), now, rules)
        .await
        .expect("refresh");
    (outcome, new)
}

/// `op` run by `tasks` tasks at once, each given a clone of `store`; their results in order.
/// A round of reads first opens every connection of a store with a pool: otherwise each task
/// waits for a connection of its own, and the calls hardly overlap.
pub async fn at_once<S, F, Fut>(store: &S, tasks: usize, op: F) -> Vec<Fut::Output>
where
    S: Store + Clone + 'static,
    F: Fn(S) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let reads: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.is_access_token_revoked("warm-up", 0).await })
        })
        .collect();
    for read in reads {
        read.await.unwrap().expect("read");
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let (call, barrier) = (op(store.clone()), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

pub fn is_granted(outcome: &RefreshOutcome) -> bool {
    outcome.granted().is_some()
}
