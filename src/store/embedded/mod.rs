//! The embedded store: one redb file under the data directory, for a single issuer replica.
//! Sign-ins in progress and failed sign-ins stay in memory (`store::expiring`,
//! `store::lockout`): they matter for minutes, and only this process ever reads them.
//!
//! Owns: opening the file, and each [`Store`] operation as a transaction on it. Writes go to the
//! single writer thread (`writer`), which commits them in groups; lookups run on the caller's
//! thread, scans of a whole table on tokio's blocking pool, each in its own read snapshot, and
//! neither waits for the writer. Must not decide token rules itself (that is `store::rotation`)
//! nor know about HTTP.
//!
//! Why lookups stay on the caller's thread: a lookup reads a few B-tree pages, which redb's page
//! cache (1 GiB by default) keeps once touched, so it takes microseconds; a page not yet cached
//! is one read of 4 KiB from the local disk. Handing each lookup to tokio's blocking pool cost
//! two thread switches per refresh, more than the lookup itself: with lookups inline, a refresh
//! went from 2.7 to 0.5 context switches and from 308 to 262 µs of CPU (docs/benchmarks.md,
//! "What one refresh costs").
//!
//! Durability: a write is answered only after its transaction is committed with redb's default
//! `Durability::Immediate`, i.e. after an fsync of the file. So a process killed with SIGKILL
//! loses nothing it answered; an operating-system crash or power loss loses nothing it answered
//! either, provided the disk honours fsync. A write in flight at the crash is lost as a whole,
//! and its caller was never answered. After an unclean stop, redb repairs its allocator state
//! at the next open, which takes longer on a large file.

mod tables;
mod writer;

use crate::file_modes;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::expiring::Expiring;
use super::lockout::{self, Limits, LockoutKey};
use super::model::{
    AuthorizationCode, CodeGrant, CodeOutcome, Family, NewFamily, PurgeReport, RefreshOutcome,
    RefreshRequest, RefreshRules, RefreshTokenView, RevocationReason, RevokeOutcome, TokenRecord,
    UnixTime,
};
use super::secret::{FamilyId, TokenHash};
use super::{Store, StoreError, rotation};
use tables::{
    CODES, FAMILIES, FAMILY_TOKENS, REVOKED_JTI, StoredCode, TOKENS, decode, encode, get_code,
    get_family, get_token,
};

/// Name of the database file inside the data directory.
pub(crate) const FILE_NAME: &str = "tokenwarden.redb";

pub use super::{MAX_SIGN_INS, MAX_SIGN_INS_PER_ADDRESS};

/// Most keys (usernames and client addresses) whose failed sign-ins are counted at once.
pub(crate) const MAX_LOCKOUT_KEYS: usize = 20_000;

/// The embedded store. Cheap to clone; the file is closed when the last clone is dropped,
/// which waits for the writer to finish the batch in hand (milliseconds).
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    // Declared first so it is dropped (and its thread joined) before the database.
    writer: writer::Writer,
    db: Arc<Database>,
    path: PathBuf,
    sign_ins: Expiring<Vec<u8>>,
    failures: lockout::Table,
}

impl EmbeddedStore {
    /// Opens (or creates) `data_dir/tokenwarden.redb`. Blocking: call it at start-up. The
    /// folder is made 0700 and the file 0600 ([`crate::file_modes`]), or the store is not
    /// opened.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.clone(),
            source,
        };
        file_modes::create_private_dir(data_dir).map_err(|e| open_error(Box::new(e)))?;
        file_modes::make_private(data_dir).map_err(|e| open_error(Box::new(e)))?;
        // Created empty and private, then made a database by redb (which would create it with
        // the process's umask).
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(file_modes::PRIVATE_FILE)
            .open(&path)
            .map_err(|e| open_error(Box::new(e)))?;
        file_modes::make_private(&path).map_err(|e| open_error(Box::new(e)))?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            e => open_error(Box::new(e)),
        })?;
        let tx = db.begin_write()?;
        tables::init(&tx)?;
        tx.commit()?;
        let db = Arc::new(db);
        let writer = writer::Writer::start(Arc::clone(&db))?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer,
                db,
                path,
                sign_ins: Expiring::new(MAX_SIGN_INS, MAX_SIGN_INS_PER_ADDRESS),
                failures: lockout::Table::new(MAX_LOCKOUT_KEYS),
            }),
        })
    }

    /// Runs `work` in a fresh read snapshot, on this thread (see the module's comment).
    fn read<T>(
        &self,
        work: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        work(&self.inner.db.begin_read()?)
    }

    /// Runs `work` in a fresh read snapshot on tokio's blocking pool: for reads that walk a
    /// whole table, which could hold up the async worker for long.
    async fn scan<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.inner.db);
        tokio::task::spawn_blocking(move || work(&db.begin_read()?))
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store for EmbeddedStore {
    async fn create_family(
        &self,
        new: NewFamily,
        first: TokenHash,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<Family, StoreError> {
        let family = rotation::new_family(new, now, &rules);
        let token = TokenRecord {
            family: family.id,
            issued_at: now,
            last_used_at: None,
            retired_at: None,
            successor: None,
        };
        self.write(move |tx| {
            let mut tokens = tx.open_table(TOKENS)?;
            if tokens.get(first.0)?.is_some() {
                return Err(StoreError::Duplicate);
            }
            tokens.insert(first.0, encode(&token)?.as_slice())?;
            index_token(tx, family.id, first)?;
            tx.open_table(FAMILIES)?
                .insert(family.id.0, encode(&family)?.as_slice())?;
            Ok(family.clone())
        })
        .await
    }

    async fn refresh(
        &self,
        request: RefreshRequest,
        now: UnixTime,
        rules: RefreshRules,
    ) -> Result<RefreshOutcome, StoreError> {
        self.write(move |tx| refresh_in(tx, &request, now, &rules))
            .await
    }

    async fn lookup_refresh_token(
        &self,
        hash: TokenHash,
    ) -> Result<Option<RefreshTokenView>, StoreError> {
        self.read(move |tx| {
            let Some(token) = get_token(&tx.open_table(TOKENS)?, hash)? else {
                return Ok(None);
            };
            let family = get_family(&tx.open_table(FAMILIES)?, token.family)?
                .ok_or(StoreError::Corrupt { table: "families" })?;
            Ok(Some(RefreshTokenView { family, token }))
        })
    }

    async fn lookup_family(&self, id: FamilyId) -> Result<Option<Family>, StoreError> {
        self.read(move |tx| get_family(&tx.open_table(FAMILIES)?, id))
    }

    async fn revoke_refresh_token(
        &self,
        hash: TokenHash,
        client_id: &str,
        now: UnixTime,
    ) -> Result<RevokeOutcome, StoreError> {
        let client_id = client_id.to_owned();
        self.write(move |tx| {
            let Some(token) = get_token(&tx.open_table(TOKENS)?, hash)? else {
                return Ok(RevokeOutcome::NotFound);
            };
            let mut families = tx.open_table(FAMILIES)?;
            let family = get_family(&families, token.family)?
                .ok_or(StoreError::Corrupt { table: "families" })?;
            if family.client_id != client_id {
                return Ok(RevokeOutcome::WrongClient);
            }
            let family = rotation::revoked(&family, RevocationReason::ClientRequest, now);
            families.insert(family.id.0, encode(&family)?.as_slice())?;
            Ok(RevokeOutcome::Revoked {
                family_id: family.id,
            })
        })
        .await
    }

    async fn put_code(&self, hash: TokenHash, code: AuthorizationCode) -> Result<(), StoreError> {
        let stored = StoredCode {
            code,
            consumed_at: None,
            replayed: false,
            grant: None,
        };
        self.write(move |tx| {
            let mut codes = tx.open_table(CODES)?;
            if codes.get(hash.0)?.is_some() {
                return Err(StoreError::Duplicate);
            }
            codes.insert(hash.0, encode(&stored)?.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn take_code(&self, hash: TokenHash, now: UnixTime) -> Result<CodeOutcome, StoreError> {
        self.write(move |tx| {
            let mut codes = tx.open_table(CODES)?;
            let Some(mut stored) = get_code(&codes, hash)? else {
                return Ok(CodeOutcome::NotFound);
            };
            if stored.consumed_at.is_some() {
                stored.replayed = true;
                codes.insert(hash.0, encode(&stored)?.as_slice())?;
                if let Some(grant) = &stored.grant {
                    revoke_code_grant(tx, grant, now)?;
                }
                return Ok(CodeOutcome::Replayed);
            }
            if now >= stored.code.expires_at {
                return Ok(CodeOutcome::Expired);
            }
            stored.consumed_at = Some(now);
            codes.insert(hash.0, encode(&stored)?.as_slice())?;
            Ok(CodeOutcome::Valid(stored.code))
        })
        .await
    }

    async fn record_code_grant(
        &self,
        hash: TokenHash,
        grant: CodeGrant,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| {
            let mut codes = tx.open_table(CODES)?;
            match get_code(&codes, hash)? {
                Some(mut stored) if !stored.replayed => {
                    stored.grant = Some(grant.clone());
                    codes.insert(hash.0, encode(&stored)?.as_slice())?;
                    Ok(true)
                }
                _ => {
                    revoke_code_grant(tx, &grant, now)?;
                    Ok(false)
                }
            }
        })
        .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
        let jti = jti.to_owned();
        self.write(move |tx| revoke_jti(tx, &jti, expires_at)).await
    }

    async fn is_access_token_revoked(&self, jti: &str, now: UnixTime) -> Result<bool, StoreError> {
        let jti = jti.to_owned();
        self.read(move |tx| {
            let exp = tx
                .open_table(REVOKED_JTI)?
                .get(jti.as_str())?
                .map(|v| v.value());
            Ok(exp.is_some_and(|exp| now < exp))
        })
    }

    async fn put_sign_in(
        &self,
        key: TokenHash,
        sealed: Vec<u8>,
        from: Option<LockoutKey>,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // Full of sign-ins in progress: the new one is refused (503), not one of those.
        self.inner
            .sign_ins
            .insert(key, sealed, from, expires_at, now)
            .map_err(|full| StoreError::Unavailable(Box::new(full)))
    }

    async fn get_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.sign_ins.get(&key, now))
    }

    async fn take_sign_in(
        &self,
        key: TokenHash,
        now: UnixTime,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.sign_ins.take(&key, now))
    }

    async fn locked_until(
        &self,
        keys: &[LockoutKey],
        now: UnixTime,
    ) -> Result<Option<UnixTime>, StoreError> {
        Ok(self.inner.failures.locked_until(keys, now))
    }

    async fn count_failure(
        &self,
        key: LockoutKey,
        limits: Limits,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.failures.count_failure(key, &limits, now);
        Ok(())
    }

    async fn forget_failures(&self, key: LockoutKey) -> Result<(), StoreError> {
        self.inner.failures.forget(&key);
        Ok(())
    }

    async fn purge_expired(&self, now: UnixTime, limit: usize) -> Result<PurgeReport, StoreError> {
        // What is in memory (sign-ins, failures) is bounded and stale entries make room on
        // their own. Find candidates in a read snapshot, which never holds up the writer; then
        // delete them in one bounded write, checking each again since it may have been
        // refreshed meanwhile.
        let (families, codes, jtis) = self
            .scan(move |tx| {
                let families = expired_keys(&tx.open_table(FAMILIES)?, limit, |bytes| {
                    Ok(decode::<Family>(bytes, "families")?.keep_until <= now)
                })?;
                let codes = expired_keys(&tx.open_table(CODES)?, limit, |bytes| {
                    Ok(decode::<StoredCode>(bytes, "codes")?.keep_until() <= now)
                })?;
                let mut jtis = Vec::new();
                for row in tx.open_table(REVOKED_JTI)?.iter()? {
                    let (jti, exp) = row?;
                    if exp.value() <= now {
                        jtis.push(jti.value().to_owned());
                        if jtis.len() >= limit {
                            break;
                        }
                    }
                }
                Ok((families, codes, jtis))
            })
            .await?;
        let more = [families.len(), codes.len(), jtis.len()].contains(&limit);
        let mut report = self
            .write(move |tx| purge_in(tx, &families, &codes, &jtis, now))
            .await?;
        report.more = more;
        Ok(report)
    }
}

/// One refresh inside the writer's transaction: read, decide, write.
fn refresh_in(
    tx: &WriteTransaction,
    request: &RefreshRequest,
    now: UnixTime,
    rules: &RefreshRules,
) -> Result<RefreshOutcome, StoreError> {
    let mut tokens = tx.open_table(TOKENS)?;
    let Some(presented) = get_token(&tokens, request.presented)? else {
        return Ok(RefreshOutcome::NotFound);
    };
    let mut families = tx.open_table(FAMILIES)?;
    let family = get_family(&families, presented.family)?
        .ok_or(StoreError::Corrupt { table: "families" })?;
    let successor = match presented.successor {
        Some(hash) => get_token(&tokens, hash)?,
        None => None,
    };
    let transition =
        rotation::refresh_transition(request, &family, &presented, successor.as_ref(), now, rules);
    let issues_new = transition.tokens.iter().any(|(h, _)| *h == request.new);
    if issues_new && tokens.get(request.new.0)?.is_some() {
        return Err(StoreError::Duplicate);
    }
    if let Some(family) = &transition.family {
        families.insert(family.id.0, encode(family)?.as_slice())?;
    }
    for (hash, record) in &transition.tokens {
        tokens.insert(hash.0, encode(record)?.as_slice())?;
    }
    if issues_new {
        // Only the new token is missing from the family's index; the others are there.
        index_token(tx, family.id, request.new)?;
    }
    Ok(transition.outcome)
}

/// Lists `hash` in `family_tokens`, unless its key begins with the family's id (a refresh
/// token of the current format, [`crate::store::OpaqueToken::refresh_key`]): those are found
/// by a range of `refresh_tokens` alone, which saves a write to a third place per refresh.
fn index_token(tx: &WriteTransaction, family: FamilyId, hash: TokenHash) -> Result<(), StoreError> {
    if !tables::keyed_by_family(family, hash) {
        tx.open_table(FAMILY_TOKENS)?
            .insert((family.0, hash.0), ())?;
    }
    Ok(())
}

/// Revokes what an exchange issued from a code that was used twice.
fn revoke_code_grant(
    tx: &WriteTransaction,
    grant: &CodeGrant,
    now: UnixTime,
) -> Result<(), StoreError> {
    revoke_jti(tx, &grant.access_token_jti, grant.access_token_expires_at)?;
    if let Some(id) = grant.family {
        let mut families = tx.open_table(FAMILIES)?;
        if let Some(family) = get_family(&families, id)? {
            let family = rotation::revoked(&family, RevocationReason::CodeReplay, now);
            families.insert(id.0, encode(&family)?.as_slice())?;
        }
    }
    Ok(())
}

fn revoke_jti(tx: &WriteTransaction, jti: &str, expires_at: UnixTime) -> Result<(), StoreError> {
    let mut revoked = tx.open_table(REVOKED_JTI)?;
    let known = revoked.get(jti)?.map(|v| v.value()).unwrap_or(0);
    revoked.insert(jti, known.max(expires_at))?;
    Ok(())
}

/// Keys of up to `limit` rows whose value `is_expired` says so.
fn expired_keys<const N: usize>(
    table: &impl ReadableTable<[u8; N], &'static [u8]>,
    limit: usize,
    is_expired: impl Fn(&[u8]) -> Result<bool, StoreError>,
) -> Result<Vec<[u8; N]>, StoreError> {
    let mut keys = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        if is_expired(value.value())? {
            keys.push(key.value());
            if keys.len() >= limit {
                break;
            }
        }
    }
    Ok(keys)
}

fn purge_in(
    tx: &WriteTransaction,
    families: &[[u8; 16]],
    codes: &[[u8; 32]],
    jtis: &[String],
    now: UnixTime,
) -> Result<PurgeReport, StoreError> {
    let mut report = PurgeReport::default();
    let mut family_table = tx.open_table(FAMILIES)?;
    let mut token_table = tx.open_table(TOKENS)?;
    let mut family_tokens = tx.open_table(FAMILY_TOKENS)?;
    for id in families {
        match get_family(&family_table, FamilyId(*id))? {
            Some(family) if family.keep_until <= now => {}
            _ => continue,
        }
        let mut listed = Vec::new();
        for row in family_tokens.range((*id, [0u8; 32])..=(*id, [0xffu8; 32]))? {
            listed.push(row?.0.value().1);
        }
        for hash in &listed {
            family_tokens.remove((*id, *hash))?;
        }
        let mut keyed = Vec::new();
        for row in token_table.range(tables::family_range(FamilyId(*id)))? {
            let (key, value) = row?;
            if decode::<TokenRecord>(value.value(), "refresh_tokens")?
                .family
                .0
                == *id
            {
                keyed.push(key.value());
            }
        }
        for hash in listed.into_iter().chain(keyed) {
            if token_table.remove(hash)?.is_some() {
                report.refresh_tokens += 1;
            }
        }
        family_table.remove(id)?;
        report.families += 1;
    }
    let mut code_table = tx.open_table(CODES)?;
    for hash in codes {
        if get_code(&code_table, TokenHash(*hash))?.is_some_and(|c| c.keep_until() <= now) {
            code_table.remove(hash)?;
            report.codes += 1;
        }
    }
    let mut jti_table = tx.open_table(REVOKED_JTI)?;
    for jti in jtis {
        let exp = jti_table.get(jti.as_str())?.map(|v| v.value());
        if exp.is_some_and(|exp| exp <= now) {
            jti_table.remove(jti.as_str())?;
            report.access_token_revocations += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpaqueToken;

    const RULES: RefreshRules = RefreshRules {
        rotating: true,
        absolute_lifetime_secs: 1000,
        idle_lifetime_secs: 100,
        reuse_interval_secs: 0,
    };

    fn new_family(id: FamilyId) -> NewFamily {
        NewFamily {
            id,
            client_id: "web".into(),
            audience: "https://api.example.com".into(),
            subject: "alice".into(),
            scope: "offline_access".into(),
        }
    }

    /// What `family_tokens` lists for `family`.
    fn listed(store: &EmbeddedStore, family: FamilyId) -> Vec<[u8; 32]> {
        let tx = store.inner.db.begin_read().unwrap();
        let table = tx.open_table(FAMILY_TOKENS).unwrap();
        table
            .range((family.0, [0u8; 32])..=(family.0, [0xffu8; 32]))
            .unwrap()
            .map(|row| row.unwrap().0.value().1)
            .collect()
    }

    #[tokio::test]
    async fn only_tokens_not_keyed_by_their_family_are_listed_in_family_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let id = FamilyId::generate().unwrap();
        let older = OpaqueToken::generate().unwrap().hash();
        store
            .create_family(new_family(id), older, 0, RULES)
            .await
            .unwrap();
        let keyed = OpaqueToken::generate_refresh(id).unwrap().refresh_key();
        let request = RefreshRequest {
            presented: older,
            new: keyed,
            client_id: "web".into(),
            audience: "https://api.example.com".into(),
        };
        let outcome = store.refresh(request, 10, RULES).await.unwrap();
        assert!(outcome.granted().is_some(), "{outcome:?}");
        assert_eq!(listed(&store, id), vec![older.0]);
    }
}
