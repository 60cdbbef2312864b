//! Standalone mode's signing keys: `keys.json` under `--data-dir`, rotated by the issuer itself
//! on the schedule of [`crate::tokens::rotation`] (the same decision the controller makes for
//! the cluster's Secret). A key set is put in force only after it is saved (fsync), so a
//! restart never loses a key that signed a token.
//!
//! Several standalone issuers may share one data folder (replicas on PostgreSQL with a shared
//! volume). Every change to the file is made under the folder's lock (`keys.lock`) from the file
//! as it is at that moment, and each issuer puts in force, within a second, a key set another
//! one saved. So one of them stages the next key, and all of them publish it and later sign
//! with it.

use super::snapshot::Policies;
use super::state::{Clock, Keys};
use crate::tokens::keyset::io;
use crate::tokens::rotation::{self, Changes, Schedule};
use crate::tokens::{Algorithm, KeySet, TokenError};
use arc_swap::ArcSwap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// How often the schedule, the file and the policies' longest lifetime are checked. A check
/// with nothing due and no change on disk reads only the file's metadata and writes nothing.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// `keys.json` of one data folder, and that folder's lock.
pub struct KeyFile {
    path: PathBuf,
    lock: File,
    /// The file as this issuer last saved or read it.
    seen: Option<Stamp>,
}

/// A saved key set, told apart from another (each save writes a new file, renamed in place).
type Stamp = (SystemTime, u64);

/// What one [`KeyFile::check`] found.
struct Checked {
    set: KeySet,
    changes: Changes,
    /// Whether the set came from the file, saved there by another issuer.
    adopted: bool,
}

impl KeyFile {
    /// The keys of the data folder `dir`: loaded, or generated and saved when there are none,
    /// under the folder's lock. Returns the key set and whether it was generated.
    pub fn open(dir: &Path, now: u64) -> Result<(Self, KeySet, bool), TokenError> {
        let lock_path = dir.join("keys.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let mut file = Self {
            path: dir.join("keys.json"),
            lock,
            seen: None,
        };
        let generated = !file.path.exists();
        let set = file.locked(|file| {
            let set = KeySet::load_or_generate(&file.path, &Algorithm::ALL, now)?;
            file.seen = stamp(&file.path);
            Ok(set)
        })?;
        Ok((file, set, generated))
    }

    /// Under the lock: the key set as saved (when another issuer changed the file since, else
    /// `current`), advanced to `now` and saved when that changed it. `None` when the set in
    /// force stays as it is.
    fn check(
        &mut self,
        current: &KeySet,
        schedule: &Schedule,
        now: u64,
        longest_lifetime: u64,
    ) -> Result<Option<Checked>, TokenError> {
        self.locked(|file| {
            let on_disk = stamp(&file.path);
            let adopted = on_disk.is_some() && on_disk != file.seen;
            let mut set = if adopted {
                KeySet::load(&file.path)?
            } else {
                current.clone()
            };
            let changes = rotation::advance(&mut set, schedule, now, longest_lifetime)?;
            // A file someone removed is written again, from the keys in force.
            if changes.any() || on_disk.is_none() {
                set.save(&file.path)?;
            }
            file.seen = stamp(&file.path);
            Ok((adopted || changes.any()).then_some(Checked {
                set,
                changes,
                adopted,
            }))
        })
    }

    fn locked<T>(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        let lock_path = self.path.with_file_name("keys.lock");
        self.lock.lock().map_err(io("lock", &lock_path))?;
        let result = work(self);
        // Closing the file would release it too; an error here leaves it to that.
        let _ = self.lock.unlock();
        result
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// Keep the key file and the keys in force on schedule until `shutdown`.
pub async fn rotate(
    mut file: KeyFile,
    schedule: Schedule,
    keys: Arc<ArcSwap<Keys>>,
    policies: Policies,
    clock: Clock,
    shutdown: CancellationToken,
) {
    loop {
        let now = clock.now();
        let longest = policies
            .current()
            .config
            .apis
            .values()
            .map(|api| u64::try_from(api.token_expiration_seconds).unwrap_or(0))
            .max()
            .unwrap_or(0);
        let current = keys.load().set.clone();
        // The lock may be held by another issuer while it generates a key: off the runtime.
        let checked = tokio::task::spawn_blocking(move || {
            let checked = file.check(&current, &schedule, now, longest);
            (file, checked)
        })
        .await;
        let checked = match checked {
            Ok((back, checked)) => {
                file = back;
                checked
            }
            Err(e) => {
                tracing::error!(error = %e, "the signing-key check failed; keys no longer rotate");
                return;
            }
        };
        match checked {
            Ok(Some(Checked {
                set,
                changes,
                adopted,
            })) => {
                keys.store(Arc::new(Keys::new(set, now)));
                if adopted {
                    tracing::info!(file = %file.path.display(), "put in force the signing keys another issuer saved");
                }
                if changes.any() {
                    tracing::info!(
                        file = %file.path.display(),
                        created = changes.created.len(),
                        staged = changes.staged.len(),
                        promoted = changes.promoted.len(),
                        pruned = changes.pruned,
                        lifetime_recorded = changes.lifetime_recorded,
                        "signing keys updated"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not rotate or save the signing keys; keeping the keys in force, will retry")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
