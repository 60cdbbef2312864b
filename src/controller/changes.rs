//! Which watch events can change what a reconcile computes.
//!
//! A reconcile reads the specs of ApiTokenPolicies and ApiClients, never their status; the
//! status is what it writes. An event for an object whose `metadata.generation` is the one
//! already seen is a status (or metadata) write, mostly the controller's own, and needs no
//! reconcile: without this filter every status write would trigger a second, useless reconcile
//! of everything. Kinds without a generation (Secrets, ConfigMaps) count every change.

use kube::Resource;
use kube::runtime::watcher::Event;
use std::collections::HashMap;

/// The generation last seen per object (by uid), for one watch.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    seen: HashMap<String, i64>,
    /// Filled during a relist (`Init` .. `InitDone`), then swapped in: objects deleted while
    /// the watch was down drop out.
    relisted: HashMap<String, i64>,
}

impl Generations {
    /// Whether `event` may change the outcome of a reconcile.
    pub(crate) fn changed<K: Resource>(&mut self, event: &Event<K>) -> bool {
        match event {
            Event::Apply(object) => match key(object) {
                Some((uid, generation)) => self.seen.insert(uid, generation) != Some(generation),
                None => true,
            },
            Event::Delete(object) => {
                if let Some(uid) = object.meta().uid.as_ref() {
                    self.seen.remove(uid);
                }
                true
            }
            Event::Init => {
                self.relisted.clear();
                false
            }
            Event::InitApply(object) => {
                if let Some((uid, generation)) = key(object) {
                    self.relisted.insert(uid, generation);
                }
                false
            }
            Event::InitDone => {
                self.seen = std::mem::take(&mut self.relisted);
                true
            }
        }
    }
}

/// The uid and generation of an object that has both.
fn key<K: Resource>(object: &K) -> Option<(String, i64)> {
    let meta = object.meta();
    Some((meta.uid.clone()?, meta.generation?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    fn secret(uid: &str, generation: Option<i64>) -> Secret {
        Secret {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                generation,
                ..ObjectMeta::default()
            },
            ..Secret::default()
        }
    }

    #[test]
    fn a_write_that_keeps_the_generation_triggers_nothing() {
        let mut g = Generations::default();
        assert!(g.changed(&Event::Apply(secret("a", Some(1)))), "new object");
        assert!(
            !g.changed(&Event::Apply(secret("a", Some(1)))),
            "status write"
        );
        assert!(
            g.changed(&Event::Apply(secret("a", Some(2)))),
            "spec change"
        );
        assert!(
            g.changed(&Event::Apply(secret("b", Some(2)))),
            "another object"
        );
    }

    #[test]
    fn objects_without_a_generation_always_count() {
        let mut g = Generations::default();
        assert!(g.changed(&Event::Apply(secret("s", None))));
        assert!(g.changed(&Event::Apply(secret("s", None))));
    }

    #[test]
    fn a_deleted_and_recreated_object_counts_again() {
        let mut g = Generations::default();
        assert!(g.changed(&Event::Apply(secret("a", Some(1)))));
        assert!(g.changed(&Event::Delete(secret("a", Some(1)))));
        assert!(g.changed(&Event::Apply(secret("a", Some(1)))));
    }

    #[test]
    fn a_relist_triggers_once_at_its_end_and_forgets_what_is_gone() {
        let mut g = Generations::default();
        assert!(g.changed(&Event::Apply(secret("gone", Some(1)))));
        assert!(g.changed(&Event::Apply(secret("kept", Some(1)))));
        assert!(!g.changed(&Event::<Secret>::Init));
        assert!(!g.changed(&Event::InitApply(secret("kept", Some(1)))));
        assert!(g.changed(&Event::<Secret>::InitDone));
        assert!(!g.changed(&Event::Apply(secret("kept", Some(1)))));
        assert!(
            g.changed(&Event::Apply(secret("gone", Some(1)))),
            "deleted while the watch was down, then created again"
        );
    }
}
