//! The issuer's key set, in three stages per algorithm: the *next* key (published in the JWKS,
//! not signing yet), the *active* key (signs every new token), and the *retired* public keys
//! that must stay published until every token they signed has expired. When and how keys move
//! from one stage to the next is [`super::rotation`]'s business; this module holds the stages.
//!
//! Its serialised form is stable JSON (`version: 1`), the same bytes in a file under
//! `--data-dir` or in a Kubernetes Secret:
//!
//! ```json
//! {"version": 1,
//!  "keys": [{"alg": "ES256", "kid": "…", "createdAt": 1700000000,
//!            "longestTokenLifetime": 86400,
//!            "privateKeyPem": "-----BEGIN PRIVATE KEY-----\n…"}],
//!  "next": [{"alg": "ES256", "kid": "…", "createdAt": 1702588900, "privateKeyPem": "…"}],
//!  "retired": [{"jwk": {"kty": "EC", …}, "retiredAt": 1700000500, "publishUntil": 1702592500}]}
//! ```
//!
//! `next` and `longestTokenLifetime` (the longest lifetime any policy had while the key was
//! active, so the key's public half is kept long enough) may be absent. Retired keys keep only
//! their public JWK: nothing can sign with them any more.

use super::jwk::{Jwk, Jwks};
use super::keys::SigningKey;
use super::mint::Minter;
use super::verify::Verifier;
use super::{Algorithm, TokenError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

const VERSION: u32 = 1;

/// A public key that no longer signs but stays in the JWKS while `now < publish_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetiredKey {
    pub jwk: Jwk,
    pub retired_at: u64,
    pub publish_until: u64,
}

/// Signing keys by algorithm, the next keys already published, and the retired keys still
/// published.
#[derive(Clone, Default)]
pub struct KeySet {
    active: [Option<Arc<SigningKey>>; 4],
    /// Per algorithm, the longest access-token lifetime (seconds) any policy had while the
    /// active key signed: how long its public half must outlive it.
    longest_lifetime: [u64; 4],
    next: [Option<Arc<SigningKey>>; 4],
    retired: Vec<RetiredKey>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("active", &self.active.iter().flatten().collect::<Vec<_>>())
            .field("longest_lifetime", &self.longest_lifetime)
            .field("next", &self.next.iter().flatten().collect::<Vec<_>>())
            .field("retired", &self.retired)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredKey {
    alg: Algorithm,
    kid: String,
    created_at: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    longest_token_lifetime: u64,
    private_key_pem: Zeroizing<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeySet {
    version: u32,
    keys: Vec<StoredKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    next: Vec<StoredKey>,
    #[serde(default)]
    retired: Vec<RetiredKey>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key that signs tokens for `alg`, if there is one.
    pub(crate) fn signing_key(&self, alg: Algorithm) -> Option<&Arc<SigningKey>> {
        self.active[alg.index()].as_ref()
    }

    /// The key that will sign for `alg` next: published, not signing yet.
    pub(crate) fn next_key(&self, alg: Algorithm) -> Option<&Arc<SigningKey>> {
        self.next[alg.index()].as_ref()
    }

    /// The longest token lifetime recorded for the active key of `alg`.
    #[cfg(test)]
    pub(crate) fn longest_lifetime(&self, alg: Algorithm) -> u64 {
        self.longest_lifetime[alg.index()]
    }

    /// Records that a token the active key of `alg` signs may live `seconds`; keeps the
    /// largest value. Returns whether it grew.
    pub(crate) fn record_lifetime(&mut self, alg: Algorithm, seconds: u64) -> bool {
        let slot = &mut self.longest_lifetime[alg.index()];
        let grew = seconds > *slot && self.active[alg.index()].is_some();
        if grew {
            *slot = seconds;
        }
        grew
    }

    /// Retired public keys, published until their deadline.
    pub(crate) fn retired(&self) -> &[RetiredKey] {
        &self.retired
    }

    /// Generates the next key of `alg` (published from now on, signing only once promoted),
    /// unless there is one already. Returns whether one was made.
    pub(crate) fn stage(&mut self, alg: Algorithm, now: u64) -> Result<bool, TokenError> {
        if self.next[alg.index()].is_some() {
            return Ok(false);
        }
        self.next[alg.index()] = Some(Arc::new(SigningKey::generate(alg, now)?));
        Ok(true)
    }

    /// Makes the next key of `alg` the active one. The previous active key is retired, its
    /// public half published until `now + its longest token lifetime + skew`. The new key's
    /// longest lifetime starts at `lifetime`. Returns whether there was a next key.
    pub(crate) fn promote(&mut self, alg: Algorithm, now: u64, lifetime: u64, skew: u64) -> bool {
        let Some(next) = self.next[alg.index()].take() else {
            return false;
        };
        let longest = std::mem::replace(&mut self.longest_lifetime[alg.index()], lifetime);
        if let Some(old) = self.active[alg.index()].replace(next) {
            self.retired.push(RetiredKey {
                jwk: old.jwk().clone(),
                retired_at: now,
                publish_until: now.saturating_add(longest).saturating_add(skew),
            });
        }
        true
    }

    /// Keeps published every key of `before` that signed and that this set no longer has: an
    /// active key becomes retired (published for the longest lifetime it signed, plus `skew`),
    /// a retired one stays as it was. For a set read from a file someone else wrote, so that
    /// tokens the keys in force here signed keep verifying whatever the file says. Next keys
    /// signed nothing and are not kept. Returns whether anything was added.
    pub(crate) fn keep_published(&mut self, before: &KeySet, now: u64, skew: u64) -> bool {
        let mut known: std::collections::HashSet<String> = self
            .active
            .iter()
            .chain(self.next.iter())
            .flatten()
            .map(|key| key.kid().to_owned())
            .chain(self.retired.iter().map(|r| r.jwk.kid.clone()))
            .collect();
        let mut added = false;
        for alg in Algorithm::ALL {
            if let Some(key) = &before.active[alg.index()]
                && known.insert(key.kid().to_owned())
            {
                self.retired.push(RetiredKey {
                    jwk: key.jwk().clone(),
                    retired_at: now,
                    publish_until: now
                        .saturating_add(before.longest_lifetime[alg.index()])
                        .saturating_add(skew),
                });
                added = true;
            }
        }
        for retired in &before.retired {
            if known.insert(retired.jwk.kid.clone()) {
                self.retired.push(retired.clone());
                added = true;
            }
        }
        added
    }

    /// Generates a key for every algorithm in `algs` that has none. Returns whether anything
    /// was added (so the caller knows to save).
    pub fn ensure(&mut self, algs: &[Algorithm], now: u64) -> Result<bool, TokenError> {
        let mut changed = false;
        for &alg in algs {
            if self.active[alg.index()].is_none() {
                self.active[alg.index()] = Some(Arc::new(SigningKey::generate(alg, now)?));
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Replaces the signing key of `alg` with a fresh one, effective at once. The previous key's
    /// public half stays published for `publish_old_for` seconds: pass at least the longest
    /// lifetime a token it signed can have, plus how long clients may cache the JWKS.
    #[cfg(test)]
    pub(crate) fn rotate(
        &mut self,
        alg: Algorithm,
        now: u64,
        publish_old_for: u64,
    ) -> Result<(), TokenError> {
        let fresh = Arc::new(SigningKey::generate(alg, now)?);
        self.longest_lifetime[alg.index()] = 0;
        if let Some(old) = self.active[alg.index()].replace(fresh) {
            self.retired.push(RetiredKey {
                jwk: old.jwk().clone(),
                retired_at: now,
                publish_until: now.saturating_add(publish_old_for),
            });
        }
        Ok(())
    }

    /// Forgets retired keys whose deadline has passed. Returns whether any were removed.
    pub(crate) fn prune(&mut self, now: u64) -> bool {
        let before = self.retired.len();
        self.retired.retain(|key| now < key.publish_until);
        self.retired.len() != before
    }

    /// The public keys a verifier may need at `now`: every active key, every next key (so
    /// that verifiers know it before it signs), then every retired key before its deadline.
    pub fn jwks(&self, now: u64) -> Jwks {
        let active = self.active.iter().flatten().map(|key| key.jwk().clone());
        let next = self.next.iter().flatten().map(|key| key.jwk().clone());
        let retired = self
            .retired
            .iter()
            .filter(|key| now < key.publish_until)
            .map(|key| key.jwk.clone());
        Jwks {
            keys: active.chain(next).chain(retired).collect(),
        }
    }

    /// A minter over the current signing keys; cheap to clone and share across threads.
    pub fn minter(&self) -> Minter {
        Minter::new(self.active.clone())
    }

    /// A verifier over the published public keys (active, and retired until their deadline).
    pub(crate) fn verifier(&self) -> Verifier {
        Verifier::new(self)
    }

    /// The stable serialised form, private keys included: treat the bytes as a secret.
    pub fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let stored = |key: &Arc<SigningKey>, longest_token_lifetime: u64| {
            Ok(StoredKey {
                alg: key.alg(),
                kid: key.kid().to_owned(),
                created_at: key.created_at(),
                longest_token_lifetime,
                private_key_pem: key.to_pkcs8_pem()?,
            })
        };
        let keys = Algorithm::ALL
            .into_iter()
            .filter_map(|alg| {
                let key = self.active[alg.index()].as_ref()?;
                Some(stored(key, self.longest_lifetime[alg.index()]))
            })
            .collect::<Result<Vec<_>, TokenError>>()?;
        let next = self
            .next
            .iter()
            .flatten()
            .map(|key| stored(key, 0))
            .collect::<Result<Vec<_>, TokenError>>()?;
        let stored = StoredKeySet {
            version: VERSION,
            keys,
            next,
            retired: self.retired.clone(),
        };
        // Room for eight keys up front, so no reallocation leaves a stray copy of key material.
        let mut out = Zeroizing::new(Vec::with_capacity(32 * 1024));
        serde_json::to_writer_pretty(&mut *out, &stored)
            .map_err(|e| TokenError::KeySetFormat(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    /// Parses the serialised form, checking every key: its PEM, its type, and that its `kid`
    /// is the thumbprint of the key it names.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, TokenError> {
        let VersionOnly { version } = serde_json::from_slice(bytes).map_err(format_error)?;
        if version != VERSION {
            return Err(TokenError::UnsupportedVersion(version));
        }
        let stored: StoredKeySet = serde_json::from_slice(bytes).map_err(format_error)?;
        let mut set = KeySet::new();
        let mut kids = std::collections::HashSet::new();
        let entries = (stored.keys.iter().enumerate().map(|(i, e)| ("keys", i, e)))
            .chain(stored.next.iter().enumerate().map(|(i, e)| ("next", i, e)));
        for (list, i, entry) in entries {
            let invalid = |reason: String| TokenError::InvalidKey {
                entry: format!("{list}[{i}]"),
                alg: entry.alg,
                kid: entry.kid.clone(),
                reason,
            };
            let key = SigningKey::parse_pem(entry.alg, &entry.private_key_pem, entry.created_at)
                .map_err(invalid)?;
            if key.kid() != entry.kid {
                return Err(invalid(
                    "the kid is not the thumbprint of the key".to_owned(),
                ));
            }
            if !kids.insert(entry.kid.clone()) {
                return Err(TokenError::DuplicateKid(entry.kid.clone()));
            }
            let slot = match list {
                "keys" => {
                    set.longest_lifetime[entry.alg.index()] = entry.longest_token_lifetime;
                    &mut set.active[entry.alg.index()]
                }
                _ => &mut set.next[entry.alg.index()],
            };
            if slot.is_some() {
                return Err(TokenError::DuplicateKey {
                    list,
                    alg: entry.alg,
                });
            }
            *slot = Some(Arc::new(key));
        }
        for (i, retired) in stored.retired.iter().enumerate() {
            if retired.jwk.key.thumbprint() != retired.jwk.kid {
                return Err(TokenError::InvalidKey {
                    entry: format!("retired[{i}]"),
                    alg: retired.jwk.alg,
                    kid: retired.jwk.kid.clone(),
                    reason: "the kid is not the thumbprint of the key".to_owned(),
                });
            }
            if !kids.insert(retired.jwk.kid.clone()) {
                return Err(TokenError::DuplicateKid(retired.jwk.kid.clone()));
            }
        }
        set.retired = stored.retired;
        Ok(set)
    }

    /// Reads a key set saved by [`KeySet::save`].
    pub(crate) fn load(path: &Path) -> Result<Self, TokenError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io("read", path))?);
        Self::from_json(&bytes)
    }

    /// Writes the key set atomically (temporary file, fsync, rename), readable by the owner
    /// only.
    pub(crate) fn save(&self, path: &Path) -> Result<(), TokenError> {
        let json = self.to_json()?;
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io("create", &tmp))?;
        file.write_all(&json).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))?;
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", dir))?;
        }
        Ok(())
    }

    /// Loads the key set at `path`, or starts an empty one if there is no file; makes sure
    /// every algorithm in `algs` has a key, drops retired keys past their deadline, and saves
    /// when anything changed. This is what the standalone issuer runs at start.
    pub fn load_or_generate(path: &Path, algs: &[Algorithm], now: u64) -> Result<Self, TokenError> {
        let (mut set, mut changed) = match Self::load(path) {
            Ok(set) => (set, false),
            Err(TokenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                (KeySet::new(), true)
            }
            Err(e) => return Err(e),
        };
        changed |= set.ensure(algs, now)?;
        changed |= set.prune(now);
        if changed {
            set.save(path)?;
        }
        Ok(set)
    }
}

/// An I/O error on `path` while doing `action`, as a [`TokenError`].
pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TokenError {
    let path = path.to_path_buf();
    move |source| TokenError::Io {
        action,
        path,
        source,
    }
}

/// serde_json's message, unless it could quote part of the input (a string value in the wrong
/// place might be key material): then only where it went wrong.
fn format_error(e: serde_json::Error) -> TokenError {
    let message = e.to_string();
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        TokenError::KeySetFormat(format!(
            "a value of the wrong type at line {} column {}",
            e.line(),
            e.column()
        ))
    } else {
        TokenError::KeySetFormat(message)
    }
}
