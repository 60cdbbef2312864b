//! The embedded store's schema: redb tables, record encoding and typed access.
//!
//! Owns: table names and key layouts, the JSON encoding of records (versioned through
//! [`SCHEMA_VERSION`]), and the mapping of redb errors to [`StoreError`]. Must not decide
//! anything about tokens: the state machine is `store::rotation`.
//!
//! | table                   | key                      | value                        |
//! | ----------------------- | ------------------------ | ---------------------------- |
//! | `families`              | family id (16 bytes)     | [`Family`] as JSON           |
//! | `refresh_tokens`        | the token's key (1)      | [`TokenRecord`] as JSON      |
//! | `family_tokens`         | (family id, token hash)  | nothing: older tokens (2)    |
//! | `codes`                 | SHA-256 of the code      | [`StoredCode`] as JSON       |
//! | `revoked_access_tokens` | `jti`                    | the token's `exp`            |
//!
//! (1) [`crate::store::OpaqueToken::refresh_key`]: the family id, then half of the SHA-256 of
//! the token, so a family's tokens are neighbours and a rotation rewrites one leaf of
//! `refresh_tokens` rather than two random ones; for older tokens, their plain SHA-256.
//! (2) The family's tokens whose key does not begin with its id (refresh tokens issued before
//! that format); the others are found with [`family_range`]. Clean-up needs both to remove a
//! family whole.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::store::StoreError;
use crate::store::model::{
    AuthorizationCode, CODE_EXCHANGE_WINDOW_SECS, CodeGrant, Family, TokenRecord, UnixTime,
};
use crate::store::secret::{FamilyId, TokenHash};

/// Bumped when a record's encoding changes incompatibly; checked at open.
pub(super) const SCHEMA_VERSION: u64 = 1;

pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const FAMILIES: TableDefinition<[u8; 16], &[u8]> = TableDefinition::new("families");
pub(super) const TOKENS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("refresh_tokens");
pub(super) const FAMILY_TOKENS: TableDefinition<([u8; 16], [u8; 32]), ()> =
    TableDefinition::new("family_tokens");
pub(super) const CODES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("codes");
pub(super) const REVOKED_JTI: TableDefinition<&str, u64> =
    TableDefinition::new("revoked_access_tokens");

/// An authorization code with what became of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct StoredCode {
    pub code: AuthorizationCode,
    pub consumed_at: Option<UnixTime>,
    /// Set at the second use; a grant recorded after that is revoked at once.
    pub replayed: bool,
    pub grant: Option<CodeGrant>,
}

impl StoredCode {
    /// Kept while the code could be presented or what it issued could still be used, so that
    /// a late second use can still revoke it.
    pub(super) fn keep_until(&self) -> UnixTime {
        let access = self.grant.as_ref().map_or(0, |g| g.access_token_expires_at);
        let exchange = self
            .consumed_at
            .map_or(0, |at| at.saturating_add(CODE_EXCHANGE_WINDOW_SECS));
        self.code.expires_at.max(access).max(exchange)
    }
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|_| StoreError::Corrupt { table: "encode" })
}

pub(super) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    table: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|_| StoreError::Corrupt { table })
}

/// Whether `hash` is the key of a refresh token of `family` in the current format.
pub(super) fn keyed_by_family(family: FamilyId, hash: TokenHash) -> bool {
    hash.0[..16] == family.0
}

/// Every key of `refresh_tokens` that begins with `family`'s id.
pub(super) fn family_range(family: FamilyId) -> std::ops::RangeInclusive<[u8; 32]> {
    let mut low = [0u8; 32];
    let mut high = [0xffu8; 32];
    low[..16].copy_from_slice(&family.0);
    high[..16].copy_from_slice(&family.0);
    low..=high
}

pub(super) fn get_family(
    table: &impl ReadableTable<[u8; 16], &'static [u8]>,
    id: FamilyId,
) -> Result<Option<Family>, StoreError> {
    match table.get(id.0)? {
        Some(bytes) => decode(bytes.value(), "families").map(Some),
        None => Ok(None),
    }
}

pub(super) fn get_token(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    hash: TokenHash,
) -> Result<Option<TokenRecord>, StoreError> {
    match table.get(hash.0)? {
        Some(bytes) => decode(bytes.value(), "refresh_tokens").map(Some),
        None => Ok(None),
    }
}

pub(super) fn get_code(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    hash: TokenHash,
) -> Result<Option<StoredCode>, StoreError> {
    match table.get(hash.0)? {
        Some(bytes) => decode(bytes.value(), "codes").map(Some),
        None => Ok(None),
    }
}

/// Creates every table and checks the schema version, in one transaction.
pub(super) fn init(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(FAMILIES)?;
    tx.open_table(TOKENS)?;
    tx.open_table(FAMILY_TOKENS)?;
    tx.open_table(CODES)?;
    tx.open_table(REVOKED_JTI)?;
    let mut meta = tx.open_table(META)?;
    let found = meta.get("schema_version")?.map(|v| v.value());
    match found {
        None => {
            meta.insert("schema_version", SCHEMA_VERSION)?;
            Ok(())
        }
        Some(SCHEMA_VERSION) => Ok(()),
        Some(other) => Err(StoreError::SchemaVersion {
            found: other,
            supported: SCHEMA_VERSION,
        }),
    }
}

macro_rules! unavailable_from {
    ($($error:ty),+) => {$(
        impl From<$error> for StoreError {
            fn from(error: $error) -> Self {
                StoreError::Unavailable(Box::new(error))
            }
        }
    )+};
}

unavailable_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
