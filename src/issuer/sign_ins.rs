//! Sign-ins in progress, kept in the store so that any replica can finish what another began:
//! the password form between `GET /authorize` and its `POST` ([`super::login`]), and the trip
//! to the upstream provider ([`super::upstream::pending`]). With several replicas on
//! PostgreSQL the browser may reach a different one at each step; no session affinity needed.
//!
//! Owns: where an entry is stored (under the SHA-256 of the secret the browser holds: the
//! login id, or the `state` sent to the provider) and how its content is sealed: AES-256-GCM
//! under a key derived from the same secret with another hash, the stored key as associated
//! data. The store so holds nothing readable, nor anything it could swap between entries,
//! without the secret that only the browser has. Must not read the clock (calls take `now`)
//! nor know what the entries mean.

use crate::store::{LockoutKey, OpaqueToken, Store, StoreError, TokenHash};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Digest as _;
use zeroize::Zeroizing;

/// What a stored entry that cannot be opened is reported as.
const TABLE: &str = "sign_ins";

/// Keeps `value` for the holder of `secret` until `expires_at`; `from` is the client address's
/// key, which the embedded store counts its share of sign-ins by.
pub(crate) async fn put<V: Serialize>(
    store: &impl Store,
    secret: &OpaqueToken,
    value: &V,
    from: Option<LockoutKey>,
    expires_at: u64,
    now: u64,
) -> Result<(), StoreError> {
    let key = secret.hash();
    let plain = Zeroizing::new(
        serde_json::to_vec(value).map_err(|_| StoreError::Corrupt { table: TABLE })?,
    );
    let sealed = seal(secret.expose(), &key, &plain)?;
    store.put_sign_in(key, sealed, from, expires_at, now).await
}

/// The entry of `secret` if it has not expired at `now`; it stays.
pub(crate) async fn get<V: DeserializeOwned>(
    store: &impl Store,
    secret: &str,
    now: u64,
) -> Result<Option<V>, StoreError> {
    let key = OpaqueToken::from_presented(secret).hash();
    let sealed = store.get_sign_in(key, now).await?;
    sealed.map(|s| open(secret, &key, s)).transpose()
}

/// The entry of `secret`, removed, if it has not expired at `now`: each secret serves once.
pub(crate) async fn take<V: DeserializeOwned>(
    store: &impl Store,
    secret: &str,
    now: u64,
) -> Result<Option<V>, StoreError> {
    let key = OpaqueToken::from_presented(secret).hash();
    let sealed = store.take_sign_in(key, now).await?;
    sealed.map(|s| open(secret, &key, s)).transpose()
}

/// The sealing key of `secret`: SHA-256 of a label and the secret, unrelated to the
/// [`TokenHash`] (plain SHA-256) the entry is stored under.
fn cipher(secret: &str) -> Result<LessSafeKey, StoreError> {
    let mut digest = sha2::Sha256::new();
    digest.update(b"tokenwarden sign-in seal\0");
    digest.update(secret.as_bytes());
    let bytes = Zeroizing::new(<[u8; 32]>::from(digest.finalize()));
    // A 32-byte key for AES-256 is always accepted.
    let key = UnboundKey::new(&AES_256_GCM, bytes.as_slice())
        .map_err(|_| StoreError::Corrupt { table: TABLE })?;
    Ok(LessSafeKey::new(key))
}

/// Random nonce, then the ciphertext and its tag.
fn seal(secret: &str, key: &TokenHash, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::store::secret::random(&mut nonce)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plain);
    let tag = cipher(secret)?
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&key.0),
            &mut sealed[NONCE_LEN..],
        )
        .map_err(|_| StoreError::Corrupt { table: TABLE })?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(sealed)
}

fn open<V: DeserializeOwned>(
    secret: &str,
    key: &TokenHash,
    sealed: Vec<u8>,
) -> Result<V, StoreError> {
    let mut sealed = Zeroizing::new(sealed);
    let corrupt = || StoreError::Corrupt { table: TABLE };
    if sealed.len() < NONCE_LEN {
        return Err(corrupt());
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[..NONCE_LEN]);
    let plain = cipher(secret)?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&key.0),
            &mut sealed[NONCE_LEN..],
        )
        .map_err(|_| corrupt())?;
    serde_json::from_slice(plain).map_err(|_| corrupt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EmbeddedStore;

    const T: u64 = 1_000;

    #[tokio::test]
    async fn the_store_holds_only_a_sealed_entry_that_opens_under_its_own_key_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path()).expect("store");
        let (a, b) = (
            OpaqueToken::generate().unwrap(),
            OpaqueToken::generate().unwrap(),
        );
        let value = "a verifier the store must not see".to_owned();
        put(&store, &a, &value, None, T + 60, T).await.unwrap();

        let sealed = store.get_sign_in(a.hash(), T).await.unwrap().expect("kept");
        let visible = sealed.windows(8).any(|w| w == &b"verifier"[..]);
        assert!(!visible, "the content is sealed");
        let opened: Option<String> = get(&store, a.expose(), T).await.unwrap();
        assert_eq!(opened.as_deref(), Some(value.as_str()));

        // Moved under another key (a store that swapped rows), or altered: refused.
        store
            .put_sign_in(b.hash(), sealed.clone(), None, T + 60, T)
            .await
            .unwrap();
        let swapped = get::<String>(&store, b.expose(), T).await;
        assert!(matches!(swapped, Err(StoreError::Corrupt { .. })));
        let mut altered = sealed;
        altered[NONCE_LEN] ^= 1;
        store
            .put_sign_in(a.hash(), altered, None, T + 60, T)
            .await
            .unwrap();
        let altered = take::<String>(&store, a.expose(), T).await;
        assert!(matches!(altered, Err(StoreError::Corrupt { .. })));
    }
}
