//! Storage of refresh-token families, authorization codes, access-token revocations, the
//! sign-ins in progress and the failed ones.
//!
//! Owns: the [`Store`] interface the issuer talks to, its records ([`model`]), the refresh
//! state machine ([`rotation`], pure, shared by every implementation), the lockout rules of
//! failed sign-ins ([`lockout`], likewise), opaque secrets and their
//! hashes ([`secret`]), and the implementations: [`EmbeddedStore`] (one redb file, one issuer
//! replica) and [`PostgresStore`] (several replicas sharing one database). Must not touch
//! HTTP, policies or token minting: the issuer decides whether a policy allows a refresh at all
//! and passes the rules in; the store enforces the state machine atomically.
//!
//! Rules every implementation keeps:
//! - Secrets are stored only as hashes ([`TokenHash`]: the SHA-256 of a code; for a refresh
//!   token, the family id it names and half of its SHA-256) and looked up by them.
//! - Time is always a parameter (`now`, unix seconds); no store reads the clock.
//! - A method returns `Ok` only once its writes are durable, so the issuer never hands out a
//!   token that was not stored. A store it cannot reach gives [`StoreError::Unavailable`]
//!   (HTTP 503 `temporarily_unavailable`).
//! - A refresh reads the presented token, its family and its successor and writes the
//!   [`rotation::refresh_transition`] in one transaction, serialised per family, so concurrent
//!   refreshes of one token yield exactly one active successor.
//!
//! - A call whose future is dropped after it was sent may still take effect (a refresh may
//!   rotate with nobody to hand the new token to); the reuse interval is the remedy for that,
//!   as for a lost response.
//!
//! Dispatch: the trait uses `async fn` (return-position `impl Future + Send`), which keeps
//! calls static and allocation-free. The binary picks an implementation at start-up through the
//! enum [`AnyStore`], which implements [`Store`] by delegation, one variant per
//! implementation. No boxed futures, no `dyn`.

pub mod embedded;
mod expiring;
#[cfg(test)]
pub(crate) mod failing;
pub(crate) mod lockout;
pub(crate) mod model;
pub mod postgres;
pub(crate) mod rotation;
pub(crate) mod secret;

use std::future::Future;
use std::path::PathBuf;

pub use embedded::EmbeddedStore;

/// Most sign-ins in progress kept at once (password forms and trips to the upstream provider
/// together), by either store; when a new one would exceed it, the expired go, and if none
/// has, the new one is refused (`StoreError::Unavailable`: the page says to try again
/// shortly), so a flood of `GET /authorize` cannot push out the sign-ins of people already at
/// the form.
pub const MAX_SIGN_INS: usize = 8192;

/// Most of those one client address holds (IPv6 by /64, as the brute-force limits count it);
/// beyond it, that address's own sign-in expiring first goes. A flood of `GET /authorize` from
/// one address so churns its own share, and the other addresses' sign-ins are untouched.
pub const MAX_SIGN_INS_PER_ADDRESS: usize = MAX_SIGN_INS / 16;
pub use lockout::{Limits, LockoutKey};
pub use model::{
    AuthorizationCode, CodeGrant, CodeOutcome, ExpiryKind, Family, NewFamily, PurgeReport,
    RefreshOutcome, RefreshRequest, RefreshRules, RefreshTokenView, RevocationReason,
    RevokeOutcome, UnixTime,
};
pub use postgres::{DatabaseUrl, PostgresStore};
pub use secret::{FamilyId, OpaqueToken, TokenHash};

/// Everything that can go wrong in a store. No variant carries a secret or a record's content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or could not commit; nothing was stored. Temporary: the HTTP
    /// layer answers 503 `temporarily_unavailable`.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot open the store at {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another process has the embedded store open: a pod that still drains beside the one
    /// replacing it on the same volume. Temporary at start-up (`issuer::run` waits).
    #[error("the store at {path} is open in another process")]
    Locked { path: PathBuf },
    #[error("the store's schema version is {found}; this build supports {supported}")]
    SchemaVersion { found: u64, supported: u64 },
    #[error("a stored record in {table} cannot be read")]
    Corrupt { table: &'static str },
    /// A token or code with this hash is already stored (a caller bug, or 2^-256 bad luck).
    #[error("a token or code with this hash is already stored")]
    Duplicate,
    #[error("the system random number generator failed")]
    Entropy,
    /// The PostgreSQL connection string cannot be used; the text never contains it.
    #[error("invalid database URL: {0}")]
    InvalidDatabaseUrl(String),
    /// PostgreSQL refused a statement for a reason retrying will not fix (HTTP 500).
    #[error("the database refused a statement")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether retrying later may succeed (503 rather than 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The storage interface of the issuer. Every method is one atomic operation.
pub trait Store: Send + Sync {
    /// Starts a family (at a code exchange with offline access) with `first` as its active
    /// token. `rules` only set how long the store keeps the family.
    fn create_family(
        &self,
        family: NewFamily,
        first: TokenHash,
        now: UnixTime,
        rules: RefreshRules,
    ) -> impl Future<Output = Result<Family, StoreError>> + Send;

    /// Runs the refresh state machine for `request.presented` (see [`rotation`]); when the
    /// outcome is `Rotated` or `ReuseWithinGrace`, `request.new` is now the active token.
    fn refresh(
        &self,
        request: RefreshRequest,
        now: UnixTime,
        rules: RefreshRules,
    ) -> impl Future<Output = Result<RefreshOutcome, StoreError>> + Send;

    /// The token stored under `hash` and its family, for introspection.
    fn lookup_refresh_token(
        &self,
        hash: TokenHash,
    ) -> impl Future<Output = Result<Option<RefreshTokenView>, StoreError>> + Send;

    /// The family with this id, revoked or not, until clean-up removes it: introspection asks
    /// whether the family an access token was minted from still stands.
    fn lookup_family(
        &self,
        id: FamilyId,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// RFC 7009: revokes the whole family of the token, if it was issued to `client_id`.
    fn revoke_refresh_token(
        &self,
        hash: TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<RevokeOutcome, StoreError>> + Send;

    /// Stores a new authorization code.
    fn put_code(
        &self,
        hash: TokenHash,
        code: AuthorizationCode,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Consumes a code. The first use gets it; a second use revokes what the first issued.
    /// The code is consumed even if the caller then rejects the exchange (wrong PKCE
    /// verifier, client or redirect URI), so a code can never be guessed at twice.
    fn take_code(
        &self,
        hash: TokenHash,
        now: UnixTime,
    ) -> impl Future<Output = Result<CodeOutcome, StoreError>> + Send;

    /// Records what the exchange of a taken code issued. Returns `false`, having revoked the
    /// grant, when the code was used a second time in between: the issuer must then refuse.
    fn record_code_grant(
        &self,
        hash: TokenHash,
        grant: CodeGrant,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records the revocation of an access token until its `exp`.
    fn revoke_access_token(
        &self,
        jti: &str,
        expires_at: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether the access token `jti` is revoked (and not yet expired) at `now`.
    fn is_access_token_revoked(
        &self,
        jti: &str,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Keeps the state of a sign-in in progress under `key` (the hash of the secret the browser
    /// holds) until `expires_at`, for whichever replica the browser comes back to. `sealed` is
    /// opaque here: the issuer encrypts it with a key only that secret gives
    /// (`crate::issuer::sign_ins`). Both stores keep at most [`MAX_SIGN_INS`] live ones
    /// (then a new one is refused as unavailable), at most [`MAX_SIGN_INS_PER_ADDRESS`] of
    /// one client address `from` (then that address's own oldest goes). The embedded store
    /// keeps them in memory: its one process is every replica, and a sign-in interrupted by a
    /// restart starts again. PostgreSQL keeps them in an unlogged table, for all replicas.
    fn put_sign_in(
        &self,
        key: TokenHash,
        sealed: Vec<u8>,
        from: Option<LockoutKey>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sign-in state under `key` if it has not expired at `now`; it stays.
    fn get_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// The sign-in state under `key`, removed, if it has not expired at `now`: of two
    /// concurrent calls, one gets it.
    fn take_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Until when the latest lockout among `keys` lasts, if one of them is locked out at `now`
    /// ([`lockout`]).
    fn locked_until(
        &self,
        keys: &[LockoutKey],
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<UnixTime>, StoreError>> + Send;

    /// Counts a failed sign-in against `key` under `limits` ([`lockout::count_failure`]).
    /// Concurrent failures of one key all count, on any replica. The embedded store keeps
    /// these in memory, at most [`embedded::MAX_LOCKOUT_KEYS`] (stale, then unlocked keys go
    /// first).
    fn count_failure(
        &self,
        key: LockoutKey,
        limits: Limits,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the failures counted against `key`.
    fn forget_failures(
        &self,
        key: LockoutKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes up to `limit` expired rows of each kind: families past their `keep_until` with
    /// their tokens, codes past [`AuthorizationCode::expires_at`] and the `exp` of what they
    /// issued, revocations past the token's `exp`, sign-ins past their `expires_at`, failures
    /// past their [`lockout::Failures::forget_at`]. Call it periodically, again at once while the
    /// report says `more`; a small `limit` keeps each write short.
    fn purge_expired(
        &self,
        now: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<PurgeReport, StoreError>> + Send;
}

/// The store chosen at start-up.
#[derive(Clone, Debug)]
pub enum AnyStore {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

/// Call `$method` on the store chosen, in a span named after the operation (`store.refresh`)
/// that says which store it is, when traces are on; the arguments (hashes, sealed sign-ins)
/// are not recorded.
macro_rules! delegate {
    ($self:ident, $method:ident($($arg:expr),*)) => {{
        use tracing::Instrument as _;
        let (store, system) = match $self {
            AnyStore::Embedded(_) => ("embedded", "redb"),
            AnyStore::Postgres(_) => ("postgresql", "postgresql"),
        };
        let span = if crate::telemetry::traces_on() {
            tracing::info_span!(
                "store",
                otel.name = concat!("store.", stringify!($method)),
                otel.kind = "client",
                db.system.name = system,
                db.operation.name = stringify!($method),
                store,
            )
        } else {
            tracing::Span::none()
        };
        match $self {
            AnyStore::Embedded(s) => s.$method($($arg),*).instrument(span).await,
            AnyStore::Postgres(s) => s.$method($($arg),*).instrument(span).await,
        }
    }};
}

impl Store for AnyStore {
    async fn create_family(
        &self,
        family: NewFamily,
        first: TokenHash,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<Family, StoreError> {
        delegate!(self, create_family(family, first, now, rules))
    }

    async fn refresh(
        &self,
        request: RefreshRequest,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<RefreshOutcome, StoreError> {
        delegate!(self, refresh(request, now, rules))
    }

    async fn lookup_refresh_token(
        &self,
        hash: TokenHash,
    ) -> Result<Option<RefreshTokenView>, StoreError> {
        delegate!(self, lookup_refresh_token(hash))
    }

    async fn lookup_family(&self, id: FamilyId) -> Result<Option<Family>, StoreError> {
        delegate!(self, lookup_family(id))
    }

    async fn revoke_refresh_token(
        &self,
        hash: TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        delegate!(self, revoke_refresh_token(hash, client_id, now))
    }

    async fn put_code(&self, hash: TokenHash, code: AuthorizationCode) -> Result<(), StoreError> {
        delegate!(self, put_code(hash, code))
    }

    async fn take_code(&self, hash: TokenHash, now: UnixTime) -> Result<CodeOutcome, StoreError> {
        delegate!(self, take_code(hash, now))
    }

    async fn record_code_grant(
        &self,
        hash: TokenHash,
        grant: CodeGrant,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        delegate!(self, record_code_grant(hash, grant, now))
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        delegate!(self, revoke_access_token(jti, expires_at))
    }

    async fn is_access_token_revoked(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        delegate!(self, is_access_token_revoked(jti, now))
    }

    async fn put_sign_in(
        &self,
        key: TokenHash,
        sealed: Vec<u8>,
        from: Option<LockoutKey>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        delegate!(self, put_sign_in(key, sealed, from, expires_at, now))
    }

    async fn get_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, get_sign_in(key, now))
    }

    async fn take_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, take_sign_in(key, now))
    }

    async fn locked_until(
        &self,
        keys: &[LockoutKey],
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        delegate!(self, locked_until(keys, now))
    }

    async fn count_failure(
        &self,
        key: LockoutKey,
        limits: Limits,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        delegate!(self, count_failure(key, limits, now))
    }

    async fn forget_failures(&self, key: LockoutKey) -> Result<(), StoreError> {
        delegate!(self, forget_failures(key))
    }

    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<PurgeReport, StoreError> {
        delegate!(self, purge_expired(now, limit))
    }
}
