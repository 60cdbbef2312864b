//! The signing keys: a Secret in the controller's namespace holding the `KeySet` JSON
//! (see [`crate::tokens::keyset`]), generated with a key for every algorithm when missing.
//! The controller owns it; issuers in cluster mode only read it. An existing Secret is never
//! overwritten: one that does not parse is reported, not replaced (that would invalidate
//! every token out there).

use super::ControllerError;
use crate::config_objects::{self, SIGNING_KEYS_KEY, SIGNING_KEYS_SECRET};
use crate::tokens::{Algorithm, KeySet};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;

/// Whether the signing keys exist now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysState {
    Present,
    Created,
}

/// Create the signing-keys Secret if it does not exist.
pub async fn ensure(
    api: &Api<Secret>,
    namespace: &str,
    now: u64,
) -> Result<KeysState, ControllerError> {
    if let Some(existing) = api
        .get_opt(SIGNING_KEYS_SECRET)
        .await
        .map_err(ControllerError::Api)?
    {
        let parsed = existing
            .data
            .as_ref()
            .and_then(|d| d.get(SIGNING_KEYS_KEY))
            .ok_or_else(|| {
                ControllerError::SigningKeys(format!(
                    "Secret {namespace}/{SIGNING_KEYS_SECRET} has no key {SIGNING_KEYS_KEY}"
                ))
            })
            .and_then(|bytes| {
                KeySet::from_json(&bytes.0).map_err(|e| ControllerError::SigningKeys(e.to_string()))
            });
        return parsed.map(|_| KeysState::Present);
    }
    let mut set = KeySet::new();
    set.ensure(&Algorithm::ALL, now)
        .map_err(|e| ControllerError::SigningKeys(e.to_string()))?;
    let json = set
        .to_json()
        .map_err(|e| ControllerError::SigningKeys(e.to_string()))?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SIGNING_KEYS_SECRET.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(config_objects::labels()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            SIGNING_KEYS_KEY.to_owned(),
            ByteString(json.to_vec()),
        )])),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(
                namespace,
                secret = SIGNING_KEYS_SECRET,
                "generated the signing keys"
            );
            Ok(KeysState::Created)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(KeysState::Present),
        Err(e) => Err(ControllerError::Api(e)),
    }
}
