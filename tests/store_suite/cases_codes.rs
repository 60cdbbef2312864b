//! Suite cases for authorization codes, revocation, persistence and clean-up.

use super::*;
use tokenwarden::store::{
    AuthorizationCode, CodeGrant, CodeOutcome, RefreshOutcome, RefreshRules, RevocationReason,
    RevokeOutcome, Store,
};

fn code(expires_at: u64) -> AuthorizationCode {
    AuthorizationCode {
        client_id: CLIENT.into(),
        redirect_uri: "https://app.example.com/callback".into(),
        audience: AUDIENCE.into(),
        scope: "accounts:read offline_access".into(),
        subject: "alice".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        expires_at,
    }
}

pub async fn codes_are_single_use_and_a_second_use_revokes_what_the_first_issued<H: Harness>(
    h: &H,
) {
    let store = h.open().await;
    let hash = secret();
    store.put_code(hash, code(60)).await.unwrap();

    assert_eq!(
        store.take_code(hash, 10).await.unwrap(),
        CodeOutcome::Valid(code(60))
    );
    let (family, token) = start_family(&store, 11, ROTATING).await;
    let grant = CodeGrant {
        access_token_jti: "jti-1".into(),
        access_token_expires_at: 611,
        family: Some(family.id),
    };
    assert!(store.record_code_grant(hash, grant, 11).await.unwrap());

    assert_eq!(
        store.take_code(hash, 20).await.unwrap(),
        CodeOutcome::Replayed
    );
    assert!(store.is_access_token_revoked("jti-1", 21).await.unwrap());
    let (outcome, _) = refresh(&store, token, 21, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::Revoked);
    let view = store.lookup_refresh_token(token).await.unwrap().unwrap();
    assert_eq!(
        view.family.revoked.map(|r| r.reason),
        Some(RevocationReason::CodeReplay)
    );
}

pub async fn codes_expire_at_their_expiry_second<H: Harness>(h: &H) {
    let store = h.open().await;
    let (early, late) = (secret(), secret());
    store.put_code(early, code(60)).await.unwrap();
    store.put_code(late, code(60)).await.unwrap();

    assert!(matches!(
        store.take_code(early, 59).await.unwrap(),
        CodeOutcome::Valid(_)
    ));
    assert_eq!(
        store.take_code(late, 60).await.unwrap(),
        CodeOutcome::Expired
    );
    assert_eq!(
        store.take_code(secret(), 0).await.unwrap(),
        CodeOutcome::NotFound
    );
}

pub async fn a_grant_recorded_after_a_second_use_of_its_code_is_revoked_at_once<H: Harness>(h: &H) {
    let store = h.open().await;
    let hash = secret();
    store.put_code(hash, code(60)).await.unwrap();
    assert!(matches!(
        store.take_code(hash, 10).await.unwrap(),
        CodeOutcome::Valid(_)
    ));
    // The attacker's second use lands while the first exchange is still minting.
    assert_eq!(
        store.take_code(hash, 10).await.unwrap(),
        CodeOutcome::Replayed
    );

    let (family, token) = start_family(&store, 11, ROTATING).await;
    let grant = CodeGrant {
        access_token_jti: "jti-2".into(),
        access_token_expires_at: 611,
        family: Some(family.id),
    };
    assert!(!store.record_code_grant(hash, grant, 11).await.unwrap());
    assert!(store.is_access_token_revoked("jti-2", 12).await.unwrap());
    let (outcome, _) = refresh(&store, token, 12, ROTATING).await;
    assert_eq!(outcome, RefreshOutcome::Revoked);
}

/// Introspection asks whether the family an access token was minted from still stands.
pub async fn a_family_is_found_by_its_id_with_its_revocation_until_clean_up<H: Harness>(h: &H) {
    let store = h.open().await;
    // ROTATING: idle 100 s, so the family's deadline is 100.
    let (family, first) = start_family(&store, 0, ROTATING).await;
    let found = store
        .lookup_family(family.id)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(found, family);
    assert!(found.stands_at(99) && !found.stands_at(100));
    let unknown = FamilyId::generate().expect("entropy");
    assert_eq!(store.lookup_family(unknown).await.unwrap(), None);

    store.revoke_refresh_token(first, CLIENT, 30).await.unwrap();
    let revoked = store.lookup_family(family.id).await.unwrap().expect("kept");
    assert_eq!(
        revoked.revoked.map(|r| (r.reason, r.at)),
        Some((RevocationReason::ClientRequest, 30))
    );
    assert!(!revoked.stands_at(31));

    store.purge_expired(100, 100).await.unwrap();
    assert_eq!(store.lookup_family(family.id).await.unwrap(), None);
}

pub async fn revoking_any_token_of_a_family_revokes_the_whole_family<H: Harness>(h: &H) {
    let store = h.open().await;
    let rules = RefreshRules {
        reuse_interval_secs: 60,
        ..ROTATING
    };
    let (family, first) = start_family(&store, 0, rules).await;
    let (_, second) = refresh(&store, first, 10, rules).await;
    let (_, newest) = refresh(&store, second, 20, rules).await;

    let outcome = store.revoke_refresh_token(first, CLIENT, 30).await.unwrap();
    assert_eq!(
        outcome,
        RevokeOutcome::Revoked {
            family_id: family.id
        }
    );
    let (outcome, _) = refresh(&store, newest, 31, rules).await;
    assert_eq!(outcome, RefreshOutcome::Revoked);
    // Revoking again is idempotent (RFC 7009 §2.2) and keeps the first reason and time.
    let again = store
        .revoke_refresh_token(newest, CLIENT, 40)
        .await
        .unwrap();
    assert_eq!(
        again,
        RevokeOutcome::Revoked {
            family_id: family.id
        }
    );
    let view = store.lookup_refresh_token(newest).await.unwrap().unwrap();
    let revocation = view.family.revoked.unwrap();
    assert_eq!(
        (revocation.reason, revocation.at),
        (RevocationReason::ClientRequest, 30)
    );
    assert_eq!(
        store
            .revoke_refresh_token(secret(), CLIENT, 40)
            .await
            .unwrap(),
        RevokeOutcome::NotFound
    );
}

pub async fn revoking_a_token_of_another_client_changes_nothing<H: Harness>(h: &H) {
    let store = h.open().await;
    let (_, token) = start_family(&store, 0, ROTATING).await;
    let outcome = store
        .revoke_refresh_token(token, "someone.else", 5)
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::WrongClient);
    let (outcome, _) = refresh(&store, token, 6, ROTATING).await;
    assert!(is_granted(&outcome), "{outcome:?}");
}

pub async fn access_token_revocations_hold_until_the_token_expires<H: Harness>(h: &H) {
    let store = h.open().await;
    assert!(!store.is_access_token_revoked("jti-a", 0).await.unwrap());
    store.revoke_access_token("jti-a", 600).await.unwrap();
    assert!(store.is_access_token_revoked("jti-a", 599).await.unwrap());
    assert!(!store.is_access_token_revoked("jti-a", 600).await.unwrap());
    assert!(!store.is_access_token_revoked("jti-b", 1).await.unwrap());
}

pub async fn data_survives_closing_and_reopening_the_store<H: Harness>(h: &H) {
    let (family, token, code_hash) = {
        let store = h.open().await;
        let (family, first) = start_family(&store, 0, ROTATING).await;
        let (_, second) = refresh(&store, first, 10, ROTATING).await;
        let code_hash = secret();
        store.put_code(code_hash, code(60)).await.unwrap();
        store.revoke_access_token("jti-kept", 600).await.unwrap();
        (family, second, code_hash)
    };
    let store = h.open().await;
    let view = store.lookup_refresh_token(token).await.unwrap().unwrap();
    assert_eq!(view.family, after_refresh(&family, 10));
    assert!(store.is_access_token_revoked("jti-kept", 20).await.unwrap());
    assert_eq!(
        store.take_code(code_hash, 20).await.unwrap(),
        CodeOutcome::Valid(code(60))
    );
    let (outcome, _) = refresh(&store, token, 20, ROTATING).await;
    assert!(
        matches!(outcome, RefreshOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

/// The family as stored after one refresh at `at` under [`ROTATING`].
fn after_refresh(created: &tokenwarden::store::Family, at: u64) -> tokenwarden::store::Family {
    let mut family = created.clone();
    family.last_used_at = at;
    family.keep_until = at + ROTATING.idle_lifetime_secs;
    family
}

pub async fn clean_up_removes_only_expired_data<H: Harness>(h: &H) {
    let store = h.open().await;
    // Idle 100 s: `old` is kept until 110 (refreshed at 10), `young` until 150.
    let (_, old_first) = start_family(&store, 0, ROTATING).await;
    let (_, old_second) = refresh(&store, old_first, 10, ROTATING).await;
    let (_, young) = start_family(&store, 50, ROTATING).await;
    let (stale_code, live_code) = (secret(), secret());
    store.put_code(stale_code, code(100)).await.unwrap();
    store.put_code(live_code, code(200)).await.unwrap();
    store.revoke_access_token("jti-stale", 100).await.unwrap();
    store.revoke_access_token("jti-live", 300).await.unwrap();

    let report = store.purge_expired(120, 100).await.unwrap();
    assert_eq!(
        (
            report.families,
            report.refresh_tokens,
            report.codes,
            report.access_token_revocations
        ),
        (1, 2, 1, 1)
    );
    assert!(!report.more);
    assert!(
        store
            .lookup_refresh_token(old_first)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .lookup_refresh_token(old_second)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.lookup_refresh_token(young).await.unwrap().is_some());
    assert_eq!(
        store.take_code(stale_code, 50).await.unwrap(),
        CodeOutcome::NotFound
    );
    assert!(matches!(
        store.take_code(live_code, 120).await.unwrap(),
        CodeOutcome::Valid(_)
    ));
    assert!(
        store
            .is_access_token_revoked("jti-live", 120)
            .await
            .unwrap()
    );

    let report = store.purge_expired(120, 100).await.unwrap();
    assert_eq!(report, tokenwarden::store::PurgeReport::default());
}

/// A family started before refresh tokens named their family (its first key is a plain hash)
/// and rotated since (its later keys begin with its id) is removed whole, and only it.
pub async fn clean_up_removes_tokens_of_both_shapes<H: Harness>(h: &H) {
    let store = h.open().await;
    let older = secret();
    let family = store
        .create_family(new_family(), older, 0, ROTATING)
        .await
        .expect("create family");
    let second = refresh_key(family.id);
    let outcome = store
        .refresh(request(older, second), 10, ROTATING)
        .await
        .unwrap();
    assert!(is_granted(&outcome), "{outcome:?}");
    let (outcome, third) = refresh(&store, second, 20, ROTATING).await;
    assert!(is_granted(&outcome), "{outcome:?}");
    for token in [older, second, third] {
        let view = store.lookup_refresh_token(token).await.unwrap();
        assert_eq!(view.map(|v| v.family.id), Some(family.id));
    }
    // A neighbour that must survive: kept until 150.
    let (_, neighbour) = start_family(&store, 50, ROTATING).await;

    let report = store.purge_expired(130, 100).await.unwrap();
    assert_eq!((report.families, report.refresh_tokens), (1, 3));
    for token in [older, second, third] {
        assert!(store.lookup_refresh_token(token).await.unwrap().is_none());
    }
    assert!(
        store
            .lookup_refresh_token(neighbour)
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn clean_up_works_in_bounded_batches<H: Harness>(h: &H) {
    let store = h.open().await;
    for _ in 0..5 {
        start_family(&store, 0, ROTATING).await;
    }
    let mut removed = 0;
    let mut calls = 0;
    loop {
        let report = store.purge_expired(1_000, 2).await.unwrap();
        assert!(report.families <= 2);
        removed += report.families;
        calls += 1;
        if !report.more {
            break;
        }
    }
    assert_eq!(removed, 5);
    assert!(calls >= 3);
}

/// A code exchanged in its last second: clean-up running between the exchange and the
/// recording of what it issued (two transactions) keeps the code, so the grant is recorded and
/// not revoked as a second use would be.
pub async fn clean_up_between_an_exchange_and_its_grant_keeps_the_code<H: Harness>(h: &H) {
    let store = h.open().await;
    let hash = secret();
    store.put_code(hash, code(60)).await.unwrap();
    assert_eq!(
        store.take_code(hash, 59).await.unwrap(),
        CodeOutcome::Valid(code(60))
    );
    store.purge_expired(61, 100).await.unwrap();
    let grant = CodeGrant {
        access_token_jti: "jti-late".into(),
        access_token_expires_at: 659,
        family: None,
    };
    assert!(
        store.record_code_grant(hash, grant, 61).await.unwrap(),
        "the grant of a code exchanged once is recorded"
    );
    assert!(!store.is_access_token_revoked("jti-late", 62).await.unwrap());
    assert_eq!(
        store.take_code(hash, 62).await.unwrap(),
        CodeOutcome::Replayed,
        "and a second use still finds it"
    );
    assert!(store.is_access_token_revoked("jti-late", 63).await.unwrap());
}
