//! The PostgreSQL store: several issuer replicas share refresh tokens, codes, revocations and
//! the sign-ins in progress (a login form shown by one replica may be posted to another).
//!
//! Owns: each [`Store`] operation as SQL on a pooled connection (`connect` makes the pool,
//! `schema` the tables and row mapping), and the mapping of PostgreSQL errors to
//! [`StoreError`]. Must not decide token rules itself (that is `store::rotation`), cache any
//! stored state (every replica must see a revocation at once), nor know about HTTP.
//!
//! Concurrency: a refresh locks the family row (`SELECT ... FOR UPDATE`), then reads the
//! presented token and its successor, runs [`rotation::refresh_transition`] and writes the
//! result before `COMMIT`; the three reads go as one pipeline, and so do the writes, so a
//! refresh is four round trips. Refreshes of one family, on any replica, are so serialised: the
//! second reads what the first wrote, which gives exactly one successor. Revocations lock the
//! same row. Reads that decide nothing (introspection, revoked `jti`) take no lock.
//!
//! Durability: a method returns `Ok` only after `COMMIT` succeeded, i.e. after PostgreSQL has
//! flushed its WAL under the server's `synchronous_commit` (on by default). A connection that
//! breaks before that gives [`StoreError::Unavailable`]: nothing was answered as stored.
//!
//! Clean-up deletes in bounded batches with `FOR UPDATE SKIP LOCKED`, so it never waits for a
//! refresh, and several replicas cleaning up at once do not collide.

mod connect;
mod schema;

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

pub use connect::DatabaseUrl;
pub use schema::MIGRATIONS;

use super::expiring::Full;
use super::lockout::{self, Limits, LockoutKey};
use super::model::{
    AuthorizationCode, CODE_EXCHANGE_WINDOW_SECS, CodeGrant, CodeOutcome, Family, NewFamily,
    PurgeReport, RefreshOutcome, RefreshRequest, RefreshRules, RefreshTokenView, RevocationReason,
    RevokeOutcome, TokenRecord, UnixTime,
};
use super::secret::{FamilyId, TokenHash};
use super::{MAX_SIGN_INS, MAX_SIGN_INS_PER_ADDRESS, Store, StoreError, rotation};
use schema::{
    CODE_COLUMNS, FAILURE_COLUMNS, FAMILY_COLUMNS, TOKEN_COLUMNS, integer, reason_code, time,
};

/// The PostgreSQL store. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish()
    }
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PostgresStore {
    /// Connects to `url` and applies the migrations the database lacks. Fails with
    /// [`StoreError::Unavailable`] when the server cannot be reached.
    pub async fn connect(url: &DatabaseUrl) -> Result<Self, StoreError> {
        let store = Self {
            pool: connect::pool(url)?,
        };
        let mut client = store
            .pool
            .get()
            .await
            .map_err(|e| connect::explain_declined_tls(e.into()))?;
        let applied = schema::migrate(&mut client).await?;
        if applied > 0 {
            tracing::info!(
                applied,
                version = schema::latest(),
                "applied database migrations"
            );
        }
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Runs one statement outside a transaction and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    /// Deletes up to `limit` rows of `table` (keyed by `key`) whose `until` is at or before
    /// `now`, skipping rows a writer holds; one row with one column, how many it deleted.
    async fn purge_rows(
        &self,
        table: &str,
        key: &str,
        until: &str,
        now: UnixTime,
        limit: i64,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let sql = format!(
            "WITH gone AS (DELETE FROM {table} WHERE {key} IN \
               (SELECT {key} FROM {table} WHERE {until} <= $1 \
                ORDER BY {until} LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1) \
             SELECT count(*) FROM gone"
        );
        self.query(&sql, &[&time(now), &limit]).await
    }
}

/// The first row (or none) of each of `queries`, all with `params`, run by PostgreSQL in this
/// order as one pipeline: every statement is prepared (or found in the connection's cache)
/// first, then all are sent before any answer is awaited. That order holds because
/// tokio-postgres sends a query of a prepared statement when its future is first polled, and
/// `try_join_all` polls its futures in order.
async fn in_order(
    tx: &Transaction<'_>,
    queries: &[String],
    params: Params<'_>,
) -> Result<Vec<Option<tokio_postgres::Row>>, StoreError> {
    let prepared = queries.iter().map(|sql| tx.prepare_cached(sql));
    let statements = futures::future::try_join_all(prepared).await?;
    let queries = statements.iter().map(|s| tx.query_opt(s, params));
    Ok(futures::future::try_join_all(queries).await?)
}

/// One row (or none) of `sql` inside `tx`, with a cached prepared statement.
async fn row(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<tokio_postgres::Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&statement, params).await?)
}

async fn execute(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

/// The family of token `hash`, locked until the transaction ends.
async fn lock_family_of(
    tx: &Transaction<'_>,
    hash: TokenHash,
) -> Result<Option<Family>, StoreError> {
    let id = "(SELECT family FROM refresh_tokens WHERE hash = $1)";
    lock_family_where(tx, id, &hash.0).await
}

/// The family `id`, locked until the transaction ends.
async fn lock_family(tx: &Transaction<'_>, id: FamilyId) -> Result<Option<Family>, StoreError> {
    lock_family_where(tx, "$1", &id.0).await
}

/// The family whose id is the SQL expression `id` (of `$1` = `key`), locked until the
/// transaction ends.
async fn lock_family_where(
    tx: &Transaction<'_>,
    id: &str,
    key: &[u8],
) -> Result<Option<Family>, StoreError> {
    let sql = format!("SELECT {FAMILY_COLUMNS} FROM families WHERE id = {id} FOR UPDATE");
    row(tx, &sql, &[&key])
        .await?
        .map(|r| schema::family(&r))
        .transpose()
}

async fn write_family(tx: &Transaction<'_>, family: &Family) -> Result<(), StoreError> {
    let reason = family.revoked.map(|r| reason_code(r.reason));
    let at = family.revoked.map(|r| time(r.at));
    execute(
        tx,
        "UPDATE families SET last_used_at = $2, keep_until = $3, revoked_reason = $4, \
         revoked_at = $5 WHERE id = $1",
        &[
            &&family.id.0[..],
            &time(family.last_used_at),
            &time(family.keep_until),
            &reason,
            &at,
        ],
    )
    .await?;
    Ok(())
}

/// Writes token `hash`: inserts it, or overwrites what a refresh changes (last use,
/// retirement, successor) when `overwrite` allows and it exists; an existing hash that may
/// not be overwritten (a new token) is [`StoreError::Duplicate`].
async fn write_token(
    tx: &Transaction<'_>,
    hash: TokenHash,
    token: &TokenRecord,
    overwrite: bool,
) -> Result<(), StoreError> {
    let successor = token.successor.map(|s| s.0.to_vec());
    let written = execute(
        tx,
        "INSERT INTO refresh_tokens (hash, family, issued_at, last_used_at, retired_at, successor) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (hash) DO UPDATE SET last_used_at = excluded.last_used_at, \
           retired_at = excluded.retired_at, successor = excluded.successor WHERE $7",
        &[
            &&hash.0[..],
            &&token.family.0[..],
            &time(token.issued_at),
            &token.last_used_at.map(time),
            &token.retired_at.map(time),
            &successor,
            &overwrite,
        ],
    )
    .await?;
    if written == 0 {
        return Err(StoreError::Duplicate);
    }
    Ok(())
}

async fn revoke_jti(
    tx: &Transaction<'_>,
    jti: &str,
    expires_at: UnixTime,
) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES ($1, $2) \
         ON CONFLICT (jti) DO UPDATE \
         SET expires_at = greatest(revoked_access_tokens.expires_at, excluded.expires_at)",
        &[&jti, &time(expires_at)],
    )
    .await?;
    Ok(())
}

/// Revokes what an exchange issued from a code that was used twice.
async fn revoke_code_grant(
    tx: &Transaction<'_>,
    grant: &CodeGrant,
    now: UnixTime,
) -> Result<(), StoreError> {
    revoke_jti(tx, &grant.access_token_jti, grant.access_token_expires_at).await?;
    if let Some(id) = grant.family
        && let Some(family) = lock_family(tx, id).await?
    {
        write_family(
            tx,
            &rotation::revoked(&family, RevocationReason::CodeReplay, now),
        )
        .await?;
    }
    Ok(())
}

impl Store for PostgresStore {
    async fn create_family(
        &self,
        new: NewFamily,
        first: TokenHash,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<Family, StoreError> {
        let family = rotation::new_family(new, now, &rules);
        // One statement, so atomic without a transaction; a duplicate hash fails it whole.
        self.query(
            "WITH f AS (INSERT INTO families (id, client_id, audience, subject, scope, \
               created_at, last_used_at, keep_until) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)) \
             INSERT INTO refresh_tokens (hash, family, issued_at) VALUES ($8, $1, $6)",
            &[
                &&family.id.0[..],
                &family.client_id,
                &family.audience,
                &family.subject,
                &family.scope,
                &time(now),
                &time(family.keep_until),
                &&first.0[..],
            ],
        )
        .await?;
        Ok(family)
    }

    async fn refresh(
        &self,
        request: RefreshRequest,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Four round trips: BEGIN, the reads, the writes, COMMIT. The reads go as one
        // pipeline: the family's row lock first, then the presented token and its successor,
        // each in a snapshot PostgreSQL takes when the statement starts, so after the lock:
        // what the last holder committed.
        let reads = [
            format!(
                "SELECT {FAMILY_COLUMNS} FROM families \
                 WHERE id = (SELECT family FROM refresh_tokens WHERE hash = $1) FOR UPDATE"
            ),
            format!("SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE hash = $1"),
            format!(
                "SELECT {TOKEN_COLUMNS} FROM refresh_tokens \
                 WHERE hash = (SELECT successor FROM refresh_tokens WHERE hash = $1)"
            ),
        ];
        let mut rows = in_order(&tx, &reads, &[&&request.presented.0[..]])
            .await?
            .into_iter();
        let mut next = || rows.next().flatten();
        let (family, presented, successor) = (next(), next(), next());
        let Some(family) = family.map(|r| schema::family(&r)).transpose()? else {
            return Ok(RefreshOutcome::NotFound);
        };
        let presented =
            presented
                .map(|r| schema::token(&r))
                .transpose()?
                .ok_or(StoreError::Corrupt {
                    table: "refresh_tokens",
                })?;
        let successor = successor.map(|r| schema::token(&r)).transpose()?;
        let transition = rotation::refresh_transition(
            &request,
            &family,
            &presented,
            successor.as_ref(),
            now,
            &rules,
        );
        if transition.family.is_none() && transition.tokens.is_empty() {
            return Ok(transition.outcome);
        }
        // The writes touch distinct rows under the lock, so their order does not matter: they
        // go as one pipeline too (tokio-postgres sends the statements of futures polled
        // together without waiting for the answers).
        let family_write = async {
            match &transition.family {
                Some(family) => write_family(&tx, family).await,
                None => Ok(()),
            }
        };
        let token_writes = transition
            .tokens
            .iter()
            .map(|(hash, record)| write_token(&tx, *hash, record, *hash != request.new));
        tokio::try_join!(family_write, futures::future::try_join_all(token_writes))?;
        tx.commit().await?;
        Ok(transition.outcome)
    }

    async fn lookup_refresh_token(
        &self,
        hash: TokenHash,
    ) -> Result<Option<RefreshTokenView>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM refresh_tokens WHERE hash = $1");
        let Some(token) = self
            .query(&sql, &[&&hash.0[..]])
            .await?
            .first()
            .map(schema::token)
        else {
            return Ok(None);
        };
        let token = token?;
        let sql = format!("SELECT {FAMILY_COLUMNS} FROM families WHERE id = $1");
        // Two statements, two snapshots: a family purged in between is simply gone.
        match self.query(&sql, &[&&token.family.0[..]]).await?.first() {
            Some(row) => Ok(Some(RefreshTokenView {
                family: schema::family(row)?,
                token,
            })),
            None => Ok(None),
        }
    }

    async fn lookup_family(&self, id: FamilyId) -> Result<Option<Family>, StoreError> {
        let sql = format!("SELECT {FAMILY_COLUMNS} FROM families WHERE id = $1");
        match self.query(&sql, &[&&id.0[..]]).await?.first() {
            Some(row) => schema::family(row).map(Some),
            None => Ok(None),
        }
    }

    async fn revoke_refresh_token(
        &self,
        hash: TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(family) = lock_family_of(&tx, hash).await? else {
            return Ok(RevokeOutcome::NotFound);
        };
        if family.client_id != client_id {
            return Ok(RevokeOutcome::WrongClient);
        }
        write_family(
            &tx,
            &rotation::revoked(&family, RevocationReason::ClientRequest, now),
        )
        .await?;
        tx.commit().await?;
        Ok(RevokeOutcome::Revoked {
            family_id: family.id,
        })
    }

    async fn put_code(&self, hash: TokenHash, code: AuthorizationCode) -> Result<(), StoreError> {
        self.query(
            "INSERT INTO authorization_codes (hash, client_id, redirect_uri, audience, scope, \
               subject, code_challenge, nonce, expires_at, keep_until) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            &[
                &&hash.0[..],
                &code.client_id,
                &code.redirect_uri,
                &code.audience,
                &code.scope,
                &code.subject,
                &code.code_challenge,
                &code.nonce,
                &time(code.expires_at),
            ],
        )
        .await?;
        Ok(())
    }

    async fn take_code(&self, hash: TokenHash, now: UnixTime) -> Result<CodeOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let sql =
            format!("SELECT {CODE_COLUMNS} FROM authorization_codes WHERE hash = $1 FOR UPDATE");
        let Some(stored) = row(&tx, &sql, &[&&hash.0[..]]).await? else {
            return Ok(CodeOutcome::NotFound);
        };
        let stored = schema::code(&stored)?;
        if stored.consumed_at.is_some() {
            execute(
                &tx,
                "UPDATE authorization_codes SET replayed = true WHERE hash = $1",
                &[&&hash.0[..]],
            )
            .await?;
            if let Some(grant) = &stored.grant {
                revoke_code_grant(&tx, grant, now).await?;
            }
            tx.commit().await?;
            return Ok(CodeOutcome::Replayed);
        }
        if now >= stored.code.expires_at {
            return Ok(CodeOutcome::Expired);
        }
        execute(
            &tx,
            "UPDATE authorization_codes SET consumed_at = $2, \
             keep_until = greatest(keep_until, $3) WHERE hash = $1",
            &[
                &&hash.0[..],
                &time(now),
                &time(now.saturating_add(CODE_EXCHANGE_WINDOW_SECS)),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(CodeOutcome::Valid(stored.code))
    }

    async fn record_code_grant(
        &self,
        hash: TokenHash,
        grant: CodeGrant,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let replayed = row(
            &tx,
            "SELECT replayed FROM authorization_codes WHERE hash = $1 FOR UPDATE",
            &[&&hash.0[..]],
        )
        .await?
        .map(|r| r.try_get::<_, bool>(0))
        .transpose()?;
        let recorded = if replayed == Some(false) {
            let family = grant.family.map(|f| f.0.to_vec());
            // Kept while what it issued could be used, so a late second use can revoke it.
            execute(
                &tx,
                "UPDATE authorization_codes SET grant_jti = $2, grant_expires_at = $3, \
                 grant_family = $4, keep_until = greatest(expires_at, $3) WHERE hash = $1",
                &[
                    &&hash.0[..],
                    &grant.access_token_jti,
                    &time(grant.access_token_expires_at),
                    &family,
                ],
            )
            .await?;
            true
        } else {
            revoke_code_grant(&tx, &grant, now).await?;
            false
        };
        tx.commit().await?;
        Ok(recorded)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        revoke_jti(&tx, jti, expires_at).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let rows = self
            .query(
                "SELECT 1 FROM revoked_access_tokens WHERE jti = $1 AND expires_at > $2",
                &[&jti, &time(now)],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Capped as the embedded store caps them, for the whole deployment: an address at its
    /// share ([`MAX_SIGN_INS_PER_ADDRESS`]) first loses its own sign-ins expiring first, and a
    /// new sign-in is refused while [`MAX_SIGN_INS`] live ones are stored. The count and the
    /// insert are not one atomic step, so inserts racing on several connections may pass the
    /// caps by as many as run at once (at most the pools' connections); the next insert of
    /// that address trims its share back.
    async fn put_sign_in(
        &self,
        key: TokenHash,
        sealed: Vec<u8>,
        from: Option<LockoutKey>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let holder = from.map(|from| from.0.to_vec());
        if let Some(holder) = &holder {
            let keep = i64::try_from(MAX_SIGN_INS_PER_ADDRESS - 1).unwrap_or(i64::MAX);
            self.query(
                "DELETE FROM sign_ins WHERE key IN (SELECT key FROM sign_ins WHERE holder = $1 \
                 ORDER BY expires_at DESC, number DESC OFFSET $2)",
                &[holder, &keep],
            )
            .await?;
        }
        let capacity = i64::try_from(MAX_SIGN_INS).unwrap_or(i64::MAX);
        let inserted = self
            .query(
                "INSERT INTO sign_ins (key, sealed, expires_at, holder) \
                 SELECT $1, $2, $3, $4 \
                 WHERE (SELECT count(*) FROM sign_ins WHERE expires_at > $5) < $6 \
                 RETURNING 1",
                &[
                    &&key.0[..],
                    &sealed,
                    &time(expires_at),
                    &holder,
                    &time(now),
                    &capacity,
                ],
            )
            .await?;
        if inserted.is_empty() {
            // Full of sign-ins in progress: the new one is refused (503), not one of those.
            return Err(StoreError::Unavailable(Box::new(Full {
                capacity: MAX_SIGN_INS,
            })));
        }
        Ok(())
    }

    async fn get_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self
            .query(
                "SELECT sealed FROM sign_ins WHERE key = $1 AND expires_at > $2",
                &[&&key.0[..], &time(now)],
            )
            .await?;
        Ok(rows.first().map(|r| r.try_get(0)).transpose()?)
    }

    async fn take_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        // Deleted whether or not it expired; only one DELETE returns the row.
        let rows = self
            .query(
                "DELETE FROM sign_ins WHERE key = $1 RETURNING sealed, expires_at",
                &[&&key.0[..]],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let expires_at: i64 = row.try_get(1)?;
        Ok((time(now) < expires_at)
            .then(|| row.try_get(0))
            .transpose()?)
    }

    async fn locked_until(
        &self,
        keys: &[LockoutKey],
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
        let rows = self
            .query(
                &format!("SELECT {FAILURE_COLUMNS} FROM sign_in_failures WHERE key = ANY($1)"),
                &[&keys],
            )
            .await?;
        let entries = rows
            .iter()
            .map(schema::failures)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lockout::latest_lockout(&entries, now))
    }

    async fn count_failure(
        &self,
        key: LockoutKey,
        limits: Limits,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The row exists (a stale zero row for a new key) and is locked before it is read, so
        // concurrent failures of one key, on any replica, each count.
        execute(
            &tx,
            "INSERT INTO sign_in_failures (key, failures, last_failure, locked_until, lockouts, \
             forget_at) VALUES ($1, 0, 0, 0, 0, 0) ON CONFLICT (key) DO NOTHING",
            &[&&key.0[..]],
        )
        .await?;
        let current = row(
            &tx,
            &format!("SELECT {FAILURE_COLUMNS} FROM sign_in_failures WHERE key = $1 FOR UPDATE"),
            &[&&key.0[..]],
        )
        .await?
        .ok_or(StoreError::Corrupt {
            table: "sign_in_failures",
        })?;
        let counted = lockout::count_failure(Some(&schema::failures(&current)?), now, &limits);
        execute(
            &tx,
            "UPDATE sign_in_failures SET failures = $2, last_failure = $3, locked_until = $4, \
             lockouts = $5, forget_at = $6 WHERE key = $1",
            &[
                &&key.0[..],
                &integer(counted.failures),
                &time(counted.last_failure),
                &time(counted.locked_until),
                &integer(counted.lockouts),
                &time(counted.forget_at),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_failures(&self, key: LockoutKey) -> Result<(), StoreError> {
        self.query(
            "DELETE FROM sign_in_failures WHERE key = $1",
            &[&&key.0[..]],
        )
        .await?;
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<PurgeReport, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let count = |rows: Vec<tokio_postgres::Row>, column: usize| -> Result<u64, StoreError> {
            let n: i64 = rows.first().map_or(Ok(0), |r| r.try_get(column))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        // Each kind in its own short statement; rows locked by a refresh are skipped, and
        // `FOR UPDATE` sees a family refreshed meanwhile with its new `keep_until`. A family
        // keeps every token it ever rotated through (thousands for a month of five-minute
        // refreshes), so one batch of families may be millions of rows: that statement is
        // exempt from the sessions' `statement_timeout`, or a batch too big for it would be
        // tried again, and fail again, for ever. The rows it locks are expired ones.
        let families = {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
            let statement = tx
                .prepare_cached(
                    "WITH doomed AS (SELECT id FROM families WHERE keep_until <= $1 \
                       ORDER BY keep_until LIMIT $2 FOR UPDATE SKIP LOCKED), \
                     tokens AS (DELETE FROM refresh_tokens \
                       WHERE family IN (SELECT id FROM doomed) RETURNING 1), \
                     gone AS (DELETE FROM families WHERE id IN (SELECT id FROM doomed) \
                       RETURNING 1) \
                     SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM tokens)",
                )
                .await?;
            let rows = tx.query(&statement, &[&time(now), &limit]).await?;
            tx.commit().await?;
            rows
        };
        let codes = self
            .purge_rows("authorization_codes", "hash", "keep_until", now, limit)
            .await?;
        let jtis = self
            .purge_rows("revoked_access_tokens", "jti", "expires_at", now, limit)
            .await?;
        let sign_ins = self
            .purge_rows("sign_ins", "key", "expires_at", now, limit)
            .await?;
        let failures = self
            .purge_rows("sign_in_failures", "key", "forget_at", now, limit)
            .await?;
        let report = PurgeReport {
            families: count(families.clone(), 0)?,
            refresh_tokens: count(families, 1)?,
            codes: count(codes, 0)?,
            access_token_revocations: count(jtis, 0)?,
            sign_ins: count(sign_ins, 0)?,
            lockout_keys: count(failures, 0)?,
            more: false,
        };
        let limit = u64::try_from(limit).unwrap_or(u64::MAX);
        Ok(PurgeReport {
            more: [
                report.families,
                report.codes,
                report.access_token_revocations,
                report.sign_ins,
                report.lockout_keys,
            ]
            .contains(&limit),
            ..report
        })
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(code) = error.code() else {
            // No SQLSTATE: the connection broke, timed out or was closed (try again), or a
            // value or row did not have the shape this build expects (a bug, or the schema
            // changed behind its back: retrying will not mend it).
            if is_shape_error(&error) {
                return StoreError::Database(Box::new(error));
            }
            return StoreError::Unavailable(Box::new(error));
        };
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Duplicate;
        }
        // Connection exceptions (08), insufficient resources (53), operator intervention such
        // as a shutdown (57), failed authentication (28), serialisation failures and
        // deadlocks (40): temporary, or at least not the request's fault. So is a write to a
        // server that is read-only (25006): a primary demoted in a failover, still in the pool.
        // So is a row lock not granted within `lock_timeout` (55P03; a statement past
        // `statement_timeout` is 57014): another session holds it, see `SESSION_LIMITS`.
        let class = &code.code()[..2];
        if matches!(class, "08" | "53" | "57" | "28" | "40")
            || *code == SqlState::READ_ONLY_SQL_TRANSACTION
            || *code == SqlState::LOCK_NOT_AVAILABLE
        {
            StoreError::Unavailable(Box::new(error))
        } else {
            StoreError::Database(Box::new(error))
        }
    }
}

/// Whether `error` is about the shape of what was sent or read: a parameter or a column of
/// another type, a column or row count this build did not expect. tokio-postgres has no public
/// error kind; its text (the kind first, then the cause) is the only sign.
fn is_shape_error(error: &tokio_postgres::Error) -> bool {
    let text = error.to_string();
    [
        "error serializing parameter",
        "error deserializing column",
        "invalid column",
        "query returned an unexpected number of",
        "expected ",
    ]
    .iter()
    .any(|kind| text.starts_with(kind))
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => StoreError::Unavailable(Box::new(other)),
        }
    }
}
