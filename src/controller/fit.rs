//! Fitting the configuration into what the issuer reads ([`config_objects::MAX_SHARDS`]
//! ConfigMaps, [`config_objects::MAX_DECODED_BYTES`] uncompressed). When all the declared
//! objects do not fit, the oldest that do are published and the newer ones are refused with
//! `ConfigurationTooLarge`, as the older of two conflicting objects wins: oversized objects
//! then leave out the newest objects (whoever's they are) instead of stopping every reconcile.
//! A client kept whose audience's newer policy was left out says `UnknownAudience`. Finding the
//! cut builds and encodes the configuration about log2(objects) times: CPU work, which the
//! reconcile runs off the async runtime.

use crate::api::{ApiClient, ApiTokenPolicy, Kind};
use crate::config::{self, Built, Declared, Reason, Verdict};
use crate::config_objects::{self, Encoded, Limits, ObjectsError};
use kube::ResourceExt as _;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The configuration of `declared` and its encoding, or of the oldest objects that fit.
pub(crate) fn fit(declared: &Declared) -> Result<(Built, Encoded), ObjectsError> {
    fit_within(declared, Limits::ISSUER)
}

/// [`fit`] within `limits`.
pub(crate) fn fit_within(
    declared: &Declared,
    limits: Limits,
) -> Result<(Built, Encoded), ObjectsError> {
    let built = config::build(declared);
    match config_objects::encode_within(&built.config, limits) {
        Ok(encoded) => return Ok((built, encoded)),
        Err(e) if e.is_too_large() => {}
        Err(e) => return Err(e),
    }
    let by_age = objects_by_age(declared);
    // The largest number of oldest objects whose configuration fits: none always does.
    let (mut fits, mut too_many) = (0, by_age.len());
    let mut best = None;
    while too_many - fits > 1 {
        let middle = fits + (too_many - fits) / 2;
        let built = config::build(&oldest(declared, &by_age[..middle]));
        match config_objects::encode_within(&built.config, limits) {
            Ok(encoded) => {
                fits = middle;
                best = Some((built, encoded));
            }
            Err(e) if e.is_too_large() => too_many = middle,
            Err(e) => return Err(e),
        }
    }
    let (mut built, encoded) = match best {
        Some(best) => best,
        None => {
            let built = config::build(&oldest(declared, &by_age[..fits]));
            let encoded = config_objects::encode_within(&built.config, limits)?;
            (built, encoded)
        }
    };
    let left_out = by_age.len() - fits;
    tracing::warn!(
        left_out,
        "the configuration of every object is more than the issuer reads; the newest objects are left out"
    );
    for (kind, namespace, name) in &by_age[fits..] {
        built.verdicts.push(Verdict {
            kind: *kind,
            namespace: namespace.clone(),
            name: name.clone(),
            reason: Reason::ConfigurationTooLarge,
            message: format!(
                "with this object the issuer's configuration would be more than it reads ({} ConfigMaps of at most {} KiB compressed); the {left_out} newest objects are left out until the rest fits: delete objects, or make them smaller (redirectUris, scopes, descriptions)",
                limits.max_shards,
                limits.shard_bytes / 1024
            ),
            stalled: true,
        });
    }
    Ok((built, encoded))
}

type ObjectKey = (Kind, String, String);

/// Every declared object, oldest first (creation time, then kind, namespace and name).
fn objects_by_age(declared: &Declared) -> Vec<ObjectKey> {
    let policies = declared.policies.iter().map(|p| {
        (
            p.creation_timestamp().map(|t| t.0),
            (
                Kind::ApiTokenPolicy,
                p.namespace().unwrap_or_default(),
                p.name_any(),
            ),
        )
    });
    let clients = declared.clients.iter().map(|c| {
        (
            c.creation_timestamp().map(|t| t.0),
            (
                Kind::ApiClient,
                c.namespace().unwrap_or_default(),
                c.name_any(),
            ),
        )
    });
    let mut all: Vec<_> = policies.chain(clients).collect();
    all.sort();
    all.into_iter().map(|(_, key)| key).collect()
}

/// `declared` with only the objects of `kept`, in their order.
fn oldest(declared: &Declared, kept: &[ObjectKey]) -> Declared {
    let kept: BTreeSet<&ObjectKey> = kept.iter().collect();
    let has = |kind: Kind, namespace: Option<String>, name: String| {
        kept.contains(&(kind, namespace.unwrap_or_default(), name))
    };
    Declared {
        policies: declared
            .policies
            .iter()
            .filter(|p| has(Kind::ApiTokenPolicy, p.namespace(), p.name_any()))
            .cloned()
            .collect::<Vec<Arc<ApiTokenPolicy>>>(),
        clients: declared
            .clients
            .iter()
            .filter(|c| has(Kind::ApiClient, c.namespace(), c.name_any()))
            .cloned()
            .collect::<Vec<Arc<ApiClient>>>(),
        // Guardrails are rules, not published objects: every cut keeps them all.
        guardrails: declared.guardrails.clone(),
        secrets: declared.secrets.clone(),
        federated_issuers: declared.federated_issuers.clone(),
        service_accounts: declared.service_accounts.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::at_scale;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    /// `n` policies and clients of the scale generator, created one second apart in the
    /// order policy 0, client 0, policy 1, client 1, ...
    fn aged(n: usize) -> Declared {
        let mut declared = at_scale::declared(n);
        let at = |i: usize| {
            Some(Time(
                Timestamp::from_second(1_000 + i as i64).expect("time"),
            ))
        };
        for (i, policy) in declared.policies.iter_mut().enumerate() {
            Arc::make_mut(policy).metadata.creation_timestamp = at(2 * i);
        }
        for (i, client) in declared.clients.iter_mut().enumerate() {
            Arc::make_mut(client).metadata.creation_timestamp = at(2 * i + 1);
        }
        declared
    }

    /// Two shards of 16 KiB: about 300 objects of the scale generator.
    const SMALL: Limits = Limits {
        shard_bytes: 16 * 1024,
        max_shards: 2,
    };

    #[test]
    fn what_fits_is_published_whole() {
        let declared = aged(50);
        let (built, encoded) = fit_within(&declared, SMALL).expect("fits");
        assert!(encoded.shards.len() <= 2);
        assert_eq!(built.verdicts.len(), 100);
        assert!(built.verdicts.iter().all(Verdict::is_ready));
    }

    #[test]
    fn the_newest_objects_are_left_out_until_the_rest_fits() {
        let declared = aged(1_000);
        assert!(
            config_objects::encode_within(&config::build(&declared).config, SMALL)
                .is_err_and(|e| e.is_too_large()),
            "the test needs a configuration of more than two shards"
        );
        let (built, encoded) = fit_within(&declared, SMALL).expect("the oldest objects fit");
        assert!(encoded.shards.len() <= 2);
        assert_eq!(built.verdicts.len(), 2_000, "a verdict for every object");
        let refused: Vec<&Verdict> = built
            .verdicts
            .iter()
            .filter(|v| v.reason == Reason::ConfigurationTooLarge)
            .collect();
        assert!(!refused.is_empty());
        assert!(refused.iter().all(|v| v.stalled));
        // Exactly the newest: every refused object is newer than every published one.
        let index = |v: &Verdict| {
            let number: usize = v.name.rsplit('-').next().unwrap().parse().unwrap();
            2 * number + usize::from(v.kind == Kind::ApiClient)
        };
        let newest_kept = built
            .verdicts
            .iter()
            .filter(|v| v.reason != Reason::ConfigurationTooLarge)
            .map(index)
            .max()
            .unwrap();
        let oldest_refused = refused.iter().map(|v| index(v)).min().unwrap();
        assert_eq!(oldest_refused, newest_kept + 1);
        // One more object would not have fitted.
        let one_more = config::build(&oldest(
            &declared,
            &objects_by_age(&declared)[..newest_kept + 2],
        ));
        assert!(config_objects::encode_within(&one_more.config, SMALL).is_err());
        assert_eq!(
            built.config.apis.len() + built.config.clients.len(),
            newest_kept + 1
        );
    }
}
