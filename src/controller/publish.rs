//! Writing the issuer's configuration into its ConfigMaps (layout in
//! [`crate::config_objects`]) with server-side apply, only when its content changed: shards
//! first, the manifest last, then shards no longer needed are deleted.

use super::{ControllerError, FIELD_MANAGER};
use crate::config_objects::{self, Encoded, MANIFEST_NAME, Manifest};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use std::sync::{Arc, Mutex, PoisonError};

/// The manifest the controller last wrote, recorded before the write so that the watch's
/// event of it is always recognised.
pub(crate) type OwnManifest = Arc<Mutex<Option<Manifest>>>;

/// Whether a manifest ConfigMap says exactly what the controller last wrote.
pub(crate) fn is_own(own: OwnManifest) -> impl Fn(&ConfigMap) -> bool + Send + 'static {
    move |map| {
        let written = own.lock().unwrap_or_else(PoisonError::into_inner);
        written.is_some() && config_objects::read_manifest(map).ok() == *written
    }
}

/// What a publication did.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    pub revision: u64,
    /// Whether anything was written.
    pub written: bool,
    pub uncompressed_bytes: usize,
    pub compressed_bytes: usize,
    pub shards: usize,
}

/// Make the configuration objects say `encoded` (a configuration that fits,
/// [`super::fit`]). With `verify`, the shards are read back too (a periodic check that nobody
/// changed or deleted one); otherwise a manifest with the same checksum means there is nothing
/// to do.
pub(crate) async fn publish(
    api: &Api<ConfigMap>,
    namespace: &str,
    encoded: &Encoded,
    verify: bool,
    own: &OwnManifest,
) -> Result<Published, ControllerError> {
    let current = api
        .get_opt(MANIFEST_NAME)
        .await
        .map_err(ControllerError::Api)?;
    let current = current
        .as_ref()
        .and_then(|m| config_objects::read_manifest(m).ok());
    let unchanged = match &current {
        Some(m) if m.sha256 == encoded.sha256 && m.shards == encoded.shards.len() => {
            !verify || shards_intact(api, m).await?
        }
        _ => false,
    };
    let mut published = Published {
        revision: current.as_ref().map_or(0, |m| m.revision),
        written: false,
        uncompressed_bytes: encoded.uncompressed_bytes,
        compressed_bytes: encoded.compressed_bytes,
        shards: encoded.shards.len(),
    };
    if unchanged {
        return Ok(published);
    }
    let revision = published.revision + 1;
    write(api, namespace, encoded, revision, own).await?;
    if let Some(old) = current {
        for index in encoded.shards.len() + 1..=old.shards {
            match api
                .delete(&config_objects::shard_name(index), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(ControllerError::Api(e)),
            }
        }
    }
    tracing::info!(
        revision,
        uncompressed_bytes = encoded.uncompressed_bytes,
        compressed_bytes = encoded.compressed_bytes,
        shards = encoded.shards.len(),
        "published the issuer configuration"
    );
    published.revision = revision;
    published.written = true;
    Ok(published)
}

async fn shards_intact(api: &Api<ConfigMap>, manifest: &Manifest) -> Result<bool, ControllerError> {
    let mut shards = Vec::with_capacity(manifest.shards);
    for index in 1..=manifest.shards {
        shards.push(
            api.get_opt(&config_objects::shard_name(index))
                .await
                .map_err(ControllerError::Api)?,
        );
    }
    Ok(config_objects::assemble(manifest, &shards).is_ok())
}

async fn write(
    api: &Api<ConfigMap>,
    namespace: &str,
    encoded: &Encoded,
    revision: u64,
    own: &OwnManifest,
) -> Result<(), ControllerError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for index in 1..=encoded.shards.len() {
        if let Some(shard) = config_objects::shard_object(namespace, encoded, index) {
            api.patch(
                &config_objects::shard_name(index),
                &params,
                &Patch::Apply(&shard),
            )
            .await
            .map_err(ControllerError::Api)?;
        }
    }
    let written = encoded.manifest(revision);
    *own.lock().unwrap_or_else(PoisonError::into_inner) = Some(written.clone());
    let manifest = config_objects::manifest_object(namespace, &written);
    api.patch(MANIFEST_NAME, &params, &Patch::Apply(&manifest))
        .await
        .map_err(ControllerError::Api)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_manifest_the_controller_last_wrote_is_its_own() {
        let own: OwnManifest = Arc::default();
        let is_own = is_own(own.clone());
        let written = Manifest {
            format: config_objects::Format::WRITTEN,
            revision: 7,
            sha256: "ab".repeat(32),
            shards: 1,
        };
        let map = config_objects::manifest_object("system", &written);
        assert!(!is_own(&map), "nothing written yet");
        *own.lock().expect("lock") = Some(written.clone());
        assert!(is_own(&map));
        let edited = config_objects::manifest_object(
            "system",
            &Manifest {
                revision: 8,
                ..written
            },
        );
        assert!(!is_own(&edited), "someone else's change");
    }
}
