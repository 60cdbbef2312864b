//! Standalone mode's signing keys: `keys.json` under `--data-dir`, rotated by the issuer itself
//! on the schedule of [`crate::tokens::rotation`] (the same decision the controller makes for
//! the cluster's Secret). Standalone mode runs one issuer per data folder, so this process is
//! the only writer; a key set is put in force only after it is saved (fsync), so a restart
//! never loses a key that signed a token.

use super::snapshot::Policies;
use super::state::{Clock, Keys};
use crate::tokens::rotation::{self, Schedule};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the schedule and the policies' longest lifetime are checked. A check with nothing
/// due reads no file and writes nothing.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Keep the key file and the keys in force on schedule until `shutdown`.
pub async fn rotate(
    path: PathBuf,
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
        let mut set = keys.load().set.clone();
        match rotation::advance(&mut set, &schedule, now, longest) {
            Ok(changes) if changes.any() => match set.save(&path) {
                Ok(()) => {
                    keys.store(Arc::new(Keys::new(set, now)));
                    tracing::info!(
                        file = %path.display(),
                        created = changes.created.len(),
                        staged = changes.staged.len(),
                        promoted = changes.promoted.len(),
                        pruned = changes.pruned,
                        lifetime_recorded = changes.lifetime_recorded,
                        "signing keys updated"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not save the rotated signing keys; keeping the keys in force, will retry")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not rotate the signing keys; will retry"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
