//! The signing keys: a Secret in the controller's namespace holding the `KeySet` JSON
//! (see [`crate::tokens::keyset`]), generated when missing and rotated on the schedule of
//! [`crate::tokens::rotation`], which decides everything; this module only reads and writes
//! the Secret. The controller owns it; issuers in cluster mode only read it.
//!
//! The state lives in the Secret (absolute times), so a restarted controller or a new leader
//! continues where the last one stopped. Every write is an update with the `resourceVersion`
//! that was read, so two replicas (say, a leader that lost its Lease without knowing it yet)
//! cannot overwrite each other: the loser re-reads and decides again. An existing Secret that
//! does not parse is reported, never replaced (that would invalidate every token out there).
//!
//! The key set read last is kept, so a reconcile with nothing due makes no API request.

use super::ControllerError;
use crate::config_objects::{self, SIGNING_KEYS_KEY, SIGNING_KEYS_SECRET};
use crate::tokens::KeySet;
use crate::tokens::rotation::{self, Changes, Schedule};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use std::collections::BTreeMap;

/// How often a write that lost a race is decided again before the reconcile fails.
const ATTEMPTS: usize = 3;

/// The signing-keys Secret as the controller last read or wrote it.
pub(crate) struct SigningKeys {
    api: Api<Secret>,
    namespace: String,
    schedule: Schedule,
    known: Option<(Secret, KeySet)>,
}

/// What a keys step did.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeysReport {
    pub changes: Changes,
    /// When the schedule next has something to do (unix seconds).
    pub next_due: Option<u64>,
}

impl SigningKeys {
    pub(crate) fn new(api: Api<Secret>, namespace: String, schedule: Schedule) -> Self {
        Self {
            api,
            namespace,
            schedule,
            known: None,
        }
    }

    /// Forget what was read, so the next step reads the Secret again (a new leader, the
    /// periodic resync).
    pub(crate) fn forget(&mut self) {
        self.known = None;
    }

    /// Make the Secret hold the key set the schedule wants at `now`, given the longest token
    /// lifetime of any policy. Writes only when something changed.
    pub(crate) async fn reconcile(
        &mut self,
        now: u64,
        longest_lifetime: u64,
    ) -> Result<KeysReport, ControllerError> {
        for _ in 0..ATTEMPTS {
            let (stored, mut set) = match self.known.take() {
                Some(known) => (Some(known.0), known.1),
                None => self.read().await?,
            };
            let changes = rotation::advance(&mut set, &self.schedule, now, longest_lifetime)
                .map_err(|e| ControllerError::SigningKeys(e.to_string()))?;
            let next_due = rotation::next_due(&set, &self.schedule);
            if !changes.any() {
                self.known = stored.map(|s| (s, set));
                return Ok(KeysReport { changes, next_due });
            }
            match self.write(stored, &set).await? {
                Some(written) => {
                    log(&self.namespace, &changes);
                    self.known = Some((written, set));
                    return Ok(KeysReport { changes, next_due });
                }
                // Someone else wrote first: read again and decide again.
                None => tracing::info!(
                    secret = SIGNING_KEYS_SECRET,
                    "the signing keys changed under us; reading them again"
                ),
            }
        }
        Err(ControllerError::SigningKeys(format!(
            "Secret {}/{SIGNING_KEYS_SECRET} kept changing while it was being rotated",
            self.namespace
        )))
    }

    /// The Secret and its key set; no Secret is an empty key set.
    async fn read(&self) -> Result<(Option<Secret>, KeySet), ControllerError> {
        let Some(secret) = self
            .api
            .get_opt(SIGNING_KEYS_SECRET)
            .await
            .map_err(ControllerError::Api)?
        else {
            return Ok((None, KeySet::new()));
        };
        let set = secret
            .data
            .as_ref()
            .and_then(|d| d.get(SIGNING_KEYS_KEY))
            .ok_or_else(|| {
                ControllerError::SigningKeys(format!(
                    "Secret {}/{SIGNING_KEYS_SECRET} has no key {SIGNING_KEYS_KEY}",
                    self.namespace
                ))
            })
            .and_then(|bytes| {
                KeySet::from_json(&bytes.0).map_err(|e| ControllerError::SigningKeys(e.to_string()))
            })?;
        Ok((Some(secret), set))
    }

    /// Create the Secret, or update it on the `resourceVersion` it was read at. `None` when
    /// another writer got there first.
    async fn write(
        &self,
        stored: Option<Secret>,
        set: &KeySet,
    ) -> Result<Option<Secret>, ControllerError> {
        let json = set
            .to_json()
            .map_err(|e| ControllerError::SigningKeys(e.to_string()))?;
        let data = BTreeMap::from([(SIGNING_KEYS_KEY.to_owned(), ByteString(json.to_vec()))]);
        let result = match stored {
            Some(mut secret) => {
                // Keeps metadata.resourceVersion: the API server refuses a stale one (409).
                secret.data = Some(data);
                secret.metadata.managed_fields = None;
                self.api
                    .replace(SIGNING_KEYS_SECRET, &super::post_params(), &secret)
                    .await
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(SIGNING_KEYS_SECRET.to_owned()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(config_objects::labels()),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".to_owned()),
                    data: Some(data),
                    ..Secret::default()
                };
                self.api.create(&super::post_params(), &secret).await
            }
        };
        match result {
            Ok(written) => Ok(Some(written)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(e) => Err(ControllerError::Api(e)),
        }
    }
}

fn log(namespace: &str, changes: &Changes) {
    let names = |algs: &[crate::tokens::Algorithm]| {
        algs.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    tracing::info!(
        namespace,
        secret = SIGNING_KEYS_SECRET,
        created = %names(&changes.created),
        staged = %names(&changes.staged),
        promoted = %names(&changes.promoted),
        pruned = changes.pruned,
        lifetime_recorded = changes.lifetime_recorded,
        "signing keys updated"
    );
}
