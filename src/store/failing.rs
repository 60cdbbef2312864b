//! For the crate's unit tests: a real [`EmbeddedStore`] that can be told to fail at a chosen
//! call, and that records the order of the calls it received. Not a stand-in: every call that
//! does not fail runs on the embedded store underneath; only the failure is injected, as a
//! [`StoreError::Unavailable`] with nothing written (what a stopped PostgreSQL answers), or a
//! [`Race`]: another request's call, made to happen just before a chosen one.

use super::{
    AuthorizationCode, CodeGrant, CodeOutcome, EmbeddedStore, Family, FamilyId, Limits, LockoutKey,
    NewFamily, PurgeReport, RefreshOutcome, RefreshRequest, RefreshRules, RefreshTokenView,
    RevokeOutcome, Store, StoreError, TokenHash, UnixTime,
};
use std::sync::Mutex;

/// A [`Store`] method, as the wrapper names the calls it records and fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    CreateFamily,
    Refresh,
    LookupRefreshToken,
    LookupFamily,
    RevokeRefreshToken,
    PutCode,
    TakeCode,
    RecordCodeGrant,
    RevokeAccessToken,
    IsAccessTokenRevoked,
    PutSignIn,
    GetSignIn,
    TakeSignIn,
    LockedUntil,
    CountFailure,
    ForgetFailures,
    PurgeExpired,
}

/// What a concurrent request does to the real store, just before a chosen call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Race {
    /// Another exchange of the code with this hash.
    TakeCode(TokenHash, UnixTime),
}

/// An [`EmbeddedStore`] in a temporary folder, failing at the calls it is told to.
pub(crate) struct FailingStore {
    inner: EmbeddedStore,
    failing: Mutex<Vec<Call>>,
    races: Mutex<Vec<(Call, Race)>>,
    calls: Mutex<Vec<Call>>,
    _dir: tempfile::TempDir,
}

impl FailingStore {
    /// A new, empty store that fails nowhere yet.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let inner = EmbeddedStore::open(dir.path()).expect("embedded store");
        Self {
            inner,
            failing: Mutex::default(),
            races: Mutex::default(),
            calls: Mutex::default(),
            _dir: dir,
        }
    }

    /// The real store underneath, to seed and inspect without failures or records.
    pub(crate) fn inner(&self) -> &EmbeddedStore {
        &self.inner
    }

    /// From now on, every `call` fails as unavailable, without reaching the store.
    pub(crate) fn fail_at(&self, call: Call) {
        self.failing.lock().expect("lock").push(call);
    }

    /// The next `call` is preceded by `race`, run on the real store.
    pub(crate) fn race_before(&self, call: Call, race: Race) {
        self.races.lock().expect("lock").push((call, race));
    }

    /// Stop failing.
    pub(crate) fn recover(&self) {
        self.failing.lock().expect("lock").clear();
    }

    /// The calls received so far, in order (the failed ones too), and forget them.
    pub(crate) fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("lock"))
    }

    async fn enter(&self, call: Call) -> Result<(), StoreError> {
        self.calls.lock().expect("lock").push(call);
        let race = {
            let mut races = self.races.lock().expect("lock");
            let due = races.iter().position(|(before, _)| *before == call);
            due.map(|i| races.remove(i).1)
        };
        match race {
            Some(Race::TakeCode(hash, now)) => {
                self.inner.take_code(hash, now).await.expect("raced");
            }
            None => {}
        }
        if self.failing.lock().expect("lock").contains(&call) {
            Err(StoreError::Unavailable(
                format!("injected failure at {call:?}").into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl Store for FailingStore {
    async fn create_family(
        &self,
        family: NewFamily,
        first: TokenHash,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<Family, StoreError> {
        self.enter(Call::CreateFamily).await?;
        self.inner.create_family(family, first, now, rules).await
    }

    async fn refresh(
        &self,
        request: RefreshRequest,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<RefreshOutcome, StoreError> {
        self.enter(Call::Refresh).await?;
        self.inner.refresh(request, now, rules).await
    }

    async fn lookup_refresh_token(
        &self,
        hash: TokenHash,
    ) -> Result<Option<RefreshTokenView>, StoreError> {
        self.enter(Call::LookupRefreshToken).await?;
        self.inner.lookup_refresh_token(hash).await
    }

    async fn lookup_family(&self, id: FamilyId) -> Result<Option<Family>, StoreError> {
        self.enter(Call::LookupFamily).await?;
        self.inner.lookup_family(id).await
    }

    async fn revoke_refresh_token(
        &self,
        hash: TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        self.enter(Call::RevokeRefreshToken).await?;
        self.inner.revoke_refresh_token(hash, client_id, now).await
    }

    async fn put_code(&self, hash: TokenHash, code: AuthorizationCode) -> Result<(), StoreError> {
        self.enter(Call::PutCode).await?;
        self.inner.put_code(hash, code).await
    }

    async fn take_code(&self, hash: TokenHash, now: UnixTime) -> Result<CodeOutcome, StoreError> {
        self.enter(Call::TakeCode).await?;
        self.inner.take_code(hash, now).await
    }

    async fn record_code_grant(
        &self,
        hash: TokenHash,
        grant: CodeGrant,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.enter(Call::RecordCodeGrant).await?;
        self.inner.record_code_grant(hash, grant, now).await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        self.enter(Call::RevokeAccessToken).await?;
        self.inner.revoke_access_token(jti, expires_at).await
    }

    async fn is_access_token_revoked(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        self.enter(Call::IsAccessTokenRevoked).await?;
        self.inner.is_access_token_revoked(jti, now).await
    }

    async fn put_sign_in(
        &self,
        key: TokenHash,
        sealed: Vec<u8>,
        from: Option<LockoutKey>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.enter(Call::PutSignIn).await?;
        self.inner
            .put_sign_in(key, sealed, from, expires_at, now)
            .await
    }

    async fn get_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.enter(Call::GetSignIn).await?;
        self.inner.get_sign_in(key, now).await
    }

    async fn take_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.enter(Call::TakeSignIn).await?;
        self.inner.take_sign_in(key, now).await
    }

    async fn locked_until(
        &self,
        keys: &[LockoutKey],
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        self.enter(Call::LockedUntil).await?;
        self.inner.locked_until(keys, now).await
    }

    async fn count_failure(
        &self,
        key: LockoutKey,
        limits: Limits,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.enter(Call::CountFailure).await?;
        self.inner.count_failure(key, limits, now).await
    }

    async fn forget_failures(&self, key: LockoutKey) -> Result<(), StoreError> {
        self.enter(Call::ForgetFailures).await?;
        self.inner.forget_failures(key).await
    }

    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<PurgeReport, StoreError> {
        self.enter(Call::PurgeExpired).await?;
        self.inner.purge_expired(now, limit).await
    }
}
