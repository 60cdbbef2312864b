//! The PostgreSQL store's schema: versioned migrations, and rows to records and back.
//!
//! Owns: the list of migrations ([`MIGRATIONS`], append-only: a released entry never changes),
//! applying them at start-up, and the conversion of columns to [`crate::store::model`] types.
//! Must not decide anything about tokens: the state machine is `store::rotation`.
//!
//! Migrations run in one transaction under a transaction-scoped advisory lock, so replicas
//! that start at the same moment apply them once: the second waits for the first, then finds
//! nothing left to do. A database whose schema is newer than this build is refused.
//!
//! | table                    | key            | what                                            |
//! | ------------------------ | -------------- | ----------------------------------------------- |
//! | `families`               | `id`           | a refresh-token family; revocation as columns   |
//! | `refresh_tokens`         | `hash`         | key of a token, its family and successor        |
//! | `authorization_codes`    | `hash`         | SHA-256 of a code, its grant and what it issued |
//! | `revoked_access_tokens`  | `jti`          | until the token's `exp`                         |
//! | `sign_ins`               | `key`          | a sign-in in progress, sealed, until it expires, and its address |
//! | `sign_in_failures`       | `key`          | failed sign-ins of a username or an address     |
//! | `tokenwarden_migrations` | `version`      | which migrations are applied                    |
//!
//! Times are unix seconds in `bigint`; ids and hashes are `bytea`.

use tokio_postgres::Row;

use crate::store::StoreError;
use crate::store::lockout::Failures;
use crate::store::model::{
    AuthorizationCode, CodeGrant, Family, Revocation, RevocationReason, TokenRecord, UnixTime,
};
use crate::store::secret::{FamilyId, TokenHash};

/// Key of the advisory lock held while migrating ("tokenwarden" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x746f_6b65_6e77_6172;

/// `(version, SQL)`, in order. Append only.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE families (
        id bytea PRIMARY KEY,
        client_id text NOT NULL,
        audience text NOT NULL,
        subject text NOT NULL,
        scope text NOT NULL,
        created_at bigint NOT NULL,
        last_used_at bigint NOT NULL,
        keep_until bigint NOT NULL,
        revoked_reason smallint,
        revoked_at bigint
    );
    CREATE INDEX families_keep_until ON families (keep_until);
    CREATE TABLE refresh_tokens (
        hash bytea PRIMARY KEY,
        family bytea NOT NULL,
        issued_at bigint NOT NULL,
        last_used_at bigint,
        retired_at bigint,
        successor bytea
    );
    CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
    CREATE TABLE authorization_codes (
        hash bytea PRIMARY KEY,
        client_id text NOT NULL,
        redirect_uri text NOT NULL,
        audience text NOT NULL,
        scope text NOT NULL,
        subject text NOT NULL,
        code_challenge text NOT NULL,
        nonce text,
        expires_at bigint NOT NULL,
        consumed_at bigint,
        replayed boolean NOT NULL DEFAULT false,
        grant_jti text,
        grant_expires_at bigint,
        grant_family bytea,
        keep_until bigint NOT NULL
    );
    CREATE INDEX authorization_codes_keep_until ON authorization_codes (keep_until);
    CREATE TABLE revoked_access_tokens (
        jti text PRIMARY KEY,
        expires_at bigint NOT NULL
    );
    CREATE INDEX revoked_access_tokens_expires_at ON revoked_access_tokens (expires_at);",
    ),
    (
        2,
        // Unlogged: a sign-in lives minutes and costs no WAL flush (so a flood of login pages
        // is no flood of fsyncs); a crash or a failover to a standby loses the sign-ins in
        // progress, and their users start again.
        "CREATE UNLOGGED TABLE sign_ins (
        key bytea PRIMARY KEY,
        sealed bytea NOT NULL,
        expires_at bigint NOT NULL
    );
    CREATE INDEX sign_ins_expires_at ON sign_ins (expires_at);",
    ),
    (
        3,
        // Unlogged like `sign_ins`: a crash or a failover forgets the counts, as a restart
        // does on the embedded store.
        "CREATE UNLOGGED TABLE sign_in_failures (
        key bytea PRIMARY KEY,
        failures integer NOT NULL,
        last_failure bigint NOT NULL,
        locked_until bigint NOT NULL,
        lockouts integer NOT NULL,
        forget_at bigint NOT NULL
    );
    CREATE INDEX sign_in_failures_forget_at ON sign_in_failures (forget_at);",
    ),
    (
        4,
        // Sign-ins in progress are capped as on the embedded store: each remembers the client
        // address it came from (its lockout key), and the order it came in, so an address at
        // its share loses its own oldest.
        "ALTER TABLE sign_ins ADD COLUMN holder bytea,
        ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY;
    CREATE INDEX sign_ins_holder ON sign_ins (holder, expires_at, number);",
    ),
];

/// The newest schema version this build knows.
pub(crate) fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Applies the migrations the database lacks; returns how many it applied.
pub(super) async fn migrate(client: &mut deadpool_postgres::Client) -> Result<usize, StoreError> {
    let tx = client.transaction().await?;
    // Waiting for another replica's migration, and a migration itself, may take longer than
    // the limits every session starts with (`connect::SESSION_LIMITS`).
    tx.batch_execute("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tokenwarden_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM tokenwarden_migrations",
            &[],
        )
        .await?
        .get(0);
    if found > latest() {
        return Err(StoreError::SchemaVersion {
            found: u64::try_from(found).unwrap_or(0),
            supported: u64::try_from(latest()).unwrap_or(0),
        });
    }
    let mut applied = 0;
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > found) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO tokenwarden_migrations (version) VALUES ($1)",
            &[version],
        )
        .await?;
        applied += 1;
    }
    tx.commit().await?;
    Ok(applied)
}

/// A time for a `bigint` column (times beyond 2^63 s are clamped; none is reached).
pub(super) fn time(value: UnixTime) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn read_time(row: &Row, column: &str, table: &'static str) -> Result<UnixTime, StoreError> {
    u64::try_from(row.try_get::<_, i64>(column)?).map_err(|_| StoreError::Corrupt { table })
}

fn read_opt_time(
    row: &Row,
    column: &str,
    table: &'static str,
) -> Result<Option<UnixTime>, StoreError> {
    row.try_get::<_, Option<i64>>(column)?
        .map(|t| u64::try_from(t).map_err(|_| StoreError::Corrupt { table }))
        .transpose()
}

fn read_bytes<const N: usize>(bytes: &[u8], table: &'static str) -> Result<[u8; N], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt { table })
}

pub(super) fn reason_code(reason: RevocationReason) -> i16 {
    match reason {
        RevocationReason::ClientRequest => 1,
        RevocationReason::ReplayDetected => 2,
        RevocationReason::CodeReplay => 3,
    }
}

fn reason_of(code: i16) -> Result<RevocationReason, StoreError> {
    match code {
        1 => Ok(RevocationReason::ClientRequest),
        2 => Ok(RevocationReason::ReplayDetected),
        3 => Ok(RevocationReason::CodeReplay),
        _ => Err(StoreError::Corrupt { table: "families" }),
    }
}

/// Columns of `families`, in the order [`family`] reads them.
pub(super) const FAMILY_COLUMNS: &str = "id, client_id, audience, subject, scope, created_at, \
     last_used_at, keep_until, revoked_reason, revoked_at";

pub(super) fn family(row: &Row) -> Result<Family, StoreError> {
    const T: &str = "families";
    let revoked = match (
        row.try_get::<_, Option<i16>>("revoked_reason")?,
        read_opt_time(row, "revoked_at", T)?,
    ) {
        (Some(reason), Some(at)) => Some(Revocation {
            reason: reason_of(reason)?,
            at,
        }),
        (None, None) => None,
        _ => return Err(StoreError::Corrupt { table: T }),
    };
    Ok(Family {
        id: FamilyId(read_bytes(row.try_get("id")?, T)?),
        client_id: row.try_get("client_id")?,
        audience: row.try_get("audience")?,
        subject: row.try_get("subject")?,
        scope: row.try_get("scope")?,
        created_at: read_time(row, "created_at", T)?,
        last_used_at: read_time(row, "last_used_at", T)?,
        keep_until: read_time(row, "keep_until", T)?,
        revoked,
    })
}

/// Columns of `refresh_tokens`, in the order [`token`] reads them.
pub(super) const TOKEN_COLUMNS: &str = "family, issued_at, last_used_at, retired_at, successor";

pub(super) fn token(row: &Row) -> Result<TokenRecord, StoreError> {
    const T: &str = "refresh_tokens";
    let successor = row
        .try_get::<_, Option<&[u8]>>("successor")?
        .map(|bytes| read_bytes(bytes, T).map(TokenHash))
        .transpose()?;
    Ok(TokenRecord {
        family: FamilyId(read_bytes(row.try_get("family")?, T)?),
        issued_at: read_time(row, "issued_at", T)?,
        last_used_at: read_opt_time(row, "last_used_at", T)?,
        retired_at: read_opt_time(row, "retired_at", T)?,
        successor,
    })
}

/// An authorization code row: the code and what became of it.
pub(super) struct CodeRow {
    pub code: AuthorizationCode,
    pub consumed_at: Option<UnixTime>,
    pub grant: Option<CodeGrant>,
}

/// Columns of `authorization_codes`, in the order [`code`] reads them.
pub(super) const CODE_COLUMNS: &str = "client_id, redirect_uri, audience, scope, subject, \
     code_challenge, nonce, expires_at, consumed_at, grant_jti, grant_expires_at, \
     grant_family";

pub(super) fn code(row: &Row) -> Result<CodeRow, StoreError> {
    const T: &str = "authorization_codes";
    let grant = match row.try_get::<_, Option<String>>("grant_jti")? {
        Some(access_token_jti) => Some(CodeGrant {
            access_token_jti,
            access_token_expires_at: read_opt_time(row, "grant_expires_at", T)?
                .ok_or(StoreError::Corrupt { table: T })?,
            family: row
                .try_get::<_, Option<&[u8]>>("grant_family")?
                .map(|bytes| read_bytes(bytes, T).map(FamilyId))
                .transpose()?,
        }),
        None => None,
    };
    Ok(CodeRow {
        code: AuthorizationCode {
            client_id: row.try_get("client_id")?,
            redirect_uri: row.try_get("redirect_uri")?,
            audience: row.try_get("audience")?,
            scope: row.try_get("scope")?,
            subject: row.try_get("subject")?,
            code_challenge: row.try_get("code_challenge")?,
            nonce: row.try_get("nonce")?,
            expires_at: read_time(row, "expires_at", T)?,
        },
        consumed_at: read_opt_time(row, "consumed_at", T)?,
        grant,
    })
}

/// Columns of `sign_in_failures` after the key, in the order [`failures`] reads them.
pub(super) const FAILURE_COLUMNS: &str =
    "failures, last_failure, locked_until, lockouts, forget_at";

pub(super) fn failures(row: &Row) -> Result<Failures, StoreError> {
    const T: &str = "sign_in_failures";
    let count = |column: &str| {
        u32::try_from(row.try_get::<_, i32>(column)?).map_err(|_| StoreError::Corrupt { table: T })
    };
    Ok(Failures {
        failures: count("failures")?,
        last_failure: read_time(row, "last_failure", T)?,
        locked_until: read_time(row, "locked_until", T)?,
        lockouts: count("lockouts")?,
        forget_at: read_time(row, "forget_at", T)?,
    })
}

/// A count for an `integer` column (clamped; the counts stay small).
pub(super) fn integer(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
