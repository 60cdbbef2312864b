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

use super::snapshot::InForce;
use super::state::{Clock, Keys};
use crate::file_modes;
use crate::tokens::keyset::io;
use crate::tokens::rotation::{self, Changes, Schedule};
use crate::tokens::{Algorithm, KeySet, TokenError};
use arc_swap::ArcSwap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the schedule, the file and the policies' longest lifetime are checked. A check
/// with nothing due and no change on disk reads the file (a few KiB) and writes nothing.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// `keys.json` of one data folder, and that folder's lock.
pub(crate) struct KeyFile {
    path: PathBuf,
    /// `None` in a read-only folder where no lock file exists.
    lock: Option<File>,
    /// A read-only folder (keys.json from a Secret, say): this issuer puts in force what is
    /// saved there, and never rotates or saves itself.
    read_only: bool,
    /// The content as this issuer last saved or read it.
    seen: Option<Fingerprint>,
}

/// SHA-256 of the file's content: a change is seen whatever the file system's time stamps
/// (one-second granularity, attribute caches on NFS); the file is a few KiB.
type Fingerprint = [u8; 32];

/// What one [`KeyFile::check`] found.
struct Checked {
    set: KeySet,
    changes: Changes,
    /// Whether the set came from the file, saved there by another issuer.
    adopted: bool,
}

impl KeyFile {
    /// The keys of the data folder `dir`: loaded, or generated and saved when there are none,
    /// under the folder's lock. Returns the key set and whether it was generated. A folder this
    /// issuer may not write is used read-only: `keys.json` must be there.
    ///
    /// The folder and `keys.json` are made private first (0700 and 0600, [`file_modes`]);
    /// a read-only folder is only checked.
    pub(crate) fn open(dir: &Path, now: u64) -> Result<(Self, KeySet, bool), TokenError> {
        let lock_path = dir.join("keys.lock");
        let writable = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path);
        let (lock, read_only) = match writable {
            Ok(lock) => (Some(lock), false),
            Err(e) if read_only_folder(&e) => {
                let file_system = e.kind() == std::io::ErrorKind::ReadOnlyFilesystem;
                // A missing keys.json is reported by the load below.
                for path in [dir, &dir.join("keys.json")] {
                    if path.exists() {
                        file_modes::check_read_only(path, file_system)?;
                    }
                }
                (File::open(&lock_path).ok(), true)
            }
            Err(e) => return Err(io("open", &lock_path)(e)),
        };
        let keys = dir.join("keys.json");
        if !read_only {
            file_modes::make_private(dir)?;
            if keys.exists() {
                file_modes::make_private(&keys)?;
            }
        }
        let mut file = Self {
            path: keys,
            lock,
            read_only,
            seen: None,
        };
        let (set, generated) = file.locked(|file| {
            let generated = !file.read_only && !file.path.exists();
            let set = if file.read_only {
                tracing::warn!(
                    folder = %dir.display(),
                    "the data folder is read-only: this issuer does not rotate the signing keys; it follows keys.json as something else saves it"
                );
                KeySet::load(&file.path)?
            } else {
                KeySet::load_or_generate(&file.path, &Algorithm::ALL, now)?
            };
            file.seen = fingerprint(&file.path)?;
            Ok((set, generated))
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
            let on_disk = fingerprint(&file.path)?;
            let adopted = on_disk.is_some() && on_disk != file.seen;
            let mut set = if adopted {
                KeySet::load(&file.path)?
            } else {
                current.clone()
            };
            // Whatever the file says, the keys that signed here stay published until their
            // tokens expire (a file removed and made anew by a replica starting, say).
            let kept = adopted && set.keep_published(current, now, schedule.clock_skew);
            if file.read_only {
                file.seen = on_disk;
                return Ok(adopted.then_some(Checked {
                    set,
                    changes: Changes::default(),
                    adopted,
                }));
            }
            let changes = rotation::advance(&mut set, schedule, now, longest_lifetime)?;
            // A file someone removed is written again, from the keys in force.
            file.seen = if changes.any() || kept || on_disk.is_none() {
                set.save(&file.path)?;
                fingerprint(&file.path)?
            } else {
                on_disk
            };
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
        if let Some(lock) = &self.lock {
            lock.lock().map_err(io("lock", &lock_path))?;
        }
        let result = work(self);
        // Closing the file would release it too; an error here leaves it to that.
        if let Some(lock) = &self.lock {
            let _ = lock.unlock();
        }
        result
    }
}

/// Whether opening a file for writing failed because the folder is read-only to us.
fn read_only_folder(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    )
}

/// The file's fingerprint; `None` when there is no such file. Any other error is an error, not
/// a missing file (which would be written again from the keys in force).
fn fingerprint(path: &Path) -> Result<Option<Fingerprint>, TokenError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            Ok(Some(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes)
                    .as_ref()
                    .try_into()
                    .expect("SHA-256 is 32 bytes"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", path)(e)),
    }
}

/// Keep the key file and the keys in force on schedule until `shutdown`.
pub(crate) async fn rotate(
    mut file: KeyFile,
    schedule: Schedule,
    keys: Arc<ArcSwap<Keys>>,
    in_force: InForce,
    clock: Clock,
    shutdown: CancellationToken,
) {
    loop {
        let now = clock.now();
        let longest = in_force
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
