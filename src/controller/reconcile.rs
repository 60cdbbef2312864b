//! One global reconcile: everything declared in the cluster -> [`crate::config::build`] ->
//! the configuration objects -> statuses and Events. It dispatches; the steps are the small
//! functions of [`super::secrets`], [`super::keys`], [`super::publish`] and
//! [`super::status`]. Statuses are written after the configuration, so `Ready=True` means the
//! issuers can already see it.

use super::metrics::{KindLabel, Metrics, StepLabel};
use super::pacing::Now;
use super::publish::{self, Published};
use super::reconcile_loop::Reconcile;
use super::secrets::ClientSecrets;
use super::{ControllerError, FIELD_MANAGER, fit, keys, status};
use crate::api::{ApiClient, ApiTokenPolicy, AudienceGuardrail, FederatedIssuer, Kind};
use crate::config::{self, Declared, Verdict};
use crate::config_objects::ObjectsError;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// How many status writes run at once.
const STATUS_CONCURRENCY: usize = 16;

/// What a reconcile did.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub published: Published,
    pub status_writes: usize,
    pub secrets_generated: u64,
    /// When the signing keys are next due to change (unix seconds).
    pub keys_due: Option<u64>,
    /// Milliseconds each step took, in order: where a slow reconcile spends its time.
    pub steps: Steps,
}

/// Milliseconds of each step of one reconcile.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Steps {
    /// Client Secrets found, read or created.
    pub secrets: u64,
    /// Signing keys checked (and rotated when due).
    pub keys: u64,
    /// `config::build` over every object.
    pub build: u64,
    /// Encoding and writing the configuration objects.
    pub publish: u64,
    /// Computing every status and writing those that differ.
    pub statuses: u64,
}

/// Milliseconds since `*mark`, which moves to now.
fn lap(mark: &mut Instant) -> u64 {
    let now = Instant::now();
    let ms = now.duration_since(*mark).as_millis() as u64;
    *mark = now;
    ms
}

/// The UIDs of the ServiceAccounts that `clients` name in `spec.workloadIdentity`, as the
/// cache has them now: a ServiceAccount deleted and created again has a new UID, so the tokens
/// of the old one stop acting as the client with the next configuration.
fn named_service_accounts(
    cache: &Store<PartialObjectMeta<ServiceAccount>>,
    clients: &[Arc<ApiClient>],
) -> config::ServiceAccounts {
    let mut found = config::ServiceAccounts::new();
    for client in clients {
        let Some(identity) = &client.spec.workload_identity else {
            continue;
        };
        let namespace = client.namespace().unwrap_or_default();
        for name in &identity.service_accounts {
            let key = ObjectRef::new(name).within(&namespace);
            if let Some(uid) = cache.get(&key).and_then(|sa| sa.metadata.uid.clone()) {
                found.insert((namespace.clone(), name.clone()), uid);
            }
        }
    }
    found
}

/// The controller's view of the cluster and its handles to change it.
pub(crate) struct Reconciler {
    pub client: Client,
    pub namespace: String,
    pub policies: Store<ApiTokenPolicy>,
    pub clients: Store<ApiClient>,
    pub guardrails: Store<AudienceGuardrail>,
    pub federated_issuers: Store<FederatedIssuer>,
    /// Every ServiceAccount's metadata; a reconcile reads the UIDs of those that clients name.
    pub service_accounts: Store<PartialObjectMeta<ServiceAccount>>,
    pub secrets: ClientSecrets,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub keys: keys::SigningKeys,
    /// The manifest the controller last wrote (see [`publish::is_own`]).
    pub own_manifest: publish::OwnManifest,
}

impl Reconciler {
    /// Reconcile everything once at `now`. `verify` also re-reads what is normally trusted
    /// (the configuration shards, the signing keys), for the periodic resync.
    #[tracing::instrument(name = "reconcile", skip_all, fields(verify))]
    pub(crate) async fn reconcile(
        &mut self,
        verify: bool,
        now: Now,
    ) -> Result<Report, ControllerError> {
        let mut steps = Steps::default();
        let mut mark = Instant::now();
        let policies = self.policies.state();
        let clients = self.clients.state();
        self.metrics
            .objects
            .get_or_create(&KindLabel {
                kind: "ApiTokenPolicy",
            })
            .set(policies.len() as i64);
        self.metrics
            .objects
            .get_or_create(&KindLabel { kind: "ApiClient" })
            .set(clients.len() as i64);

        let (secrets, generated) = self
            .secrets
            .resolve(&clients, now.instant.into_std(), verify)
            .await
            .inspect_err(|_| self.failed("secrets"))?;
        let secrets_generated = generated.created + generated.keys_added;
        self.metrics.secrets_created.inc_by(secrets_generated);
        steps.secrets = lap(&mut mark);

        // Before the configuration: a longer lifetime is recorded with the signing keys
        // before any issuer can mint a token that lives that long.
        if verify {
            self.keys.forget();
        }
        let keys = self
            .keys
            .reconcile(now.unix_seconds(), longest_lifetime(&policies))
            .await
            .inspect_err(|_| self.failed("signing_keys"))?;
        if keys.changes.any() {
            self.metrics.key_changes.inc();
        }
        steps.keys = lap(&mut mark);

        let declared = Declared::from_caches(
            policies.clone(),
            clients.clone(),
            self.guardrails.state(),
            secrets,
            self.federated_issuers.state(),
            named_service_accounts(&self.service_accounts, &clients),
        );
        // Building and compressing is CPU work (about 130 ms at 10,000 objects, several times
        // that when the configuration has to be cut): off the runtime that renews the Lease.
        let (mut built, encoded) = tokio::task::spawn_blocking(move || fit::fit(&declared))
            .await
            .map_err(|e| ControllerError::from(ObjectsError::Encode(e.to_string())))?
            .map_err(ControllerError::from)
            .inspect_err(|_| self.failed("publish"))?;
        self.secrets.explain_missing(&clients, &mut built.verdicts);
        steps.build = lap(&mut mark);

        let config_api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let published = publish::publish(
            &config_api,
            &self.namespace,
            &encoded,
            verify,
            &self.own_manifest,
        )
        .await
        .inspect_err(|_| self.failed("publish"))?;
        self.record_published(&published);
        steps.publish = lap(&mut mark);

        let status_writes = self
            .write_statuses(&policies, &clients, &built.verdicts, now)
            .await
            .inspect_err(|_| self.failed("status"))?;
        steps.statuses = lap(&mut mark);
        Ok(Report {
            published,
            status_writes,
            secrets_generated,
            keys_due: keys.next_due,
            steps,
        })
    }

    fn failed(&self, step: &'static str) {
        self.metrics
            .reconcile_errors
            .get_or_create(&StepLabel { step })
            .inc();
    }

    fn record_published(&self, published: &Published) {
        let m = &self.metrics;
        m.config_revision
            .set(i64::try_from(published.revision).unwrap_or(i64::MAX));
        m.config_bytes
            .set(i64::try_from(published.uncompressed_bytes).unwrap_or(i64::MAX));
        m.config_compressed_bytes
            .set(i64::try_from(published.compressed_bytes).unwrap_or(i64::MAX));
        m.config_shards
            .set(i64::try_from(published.shards).unwrap_or(i64::MAX));
        if published.written {
            m.config_writes.inc();
        }
    }

    /// Write every status that differs from what is stored; publish an Event for every
    /// transition. Returns how many were written. Each write is computed when the stream
    /// reaches it, so at 10,000 objects the pending writes are never all in memory at once.
    async fn write_statuses(
        &self,
        policies: &[Arc<ApiTokenPolicy>],
        clients: &[Arc<ApiClient>],
        verdicts: &[Verdict],
        now: Now,
    ) -> Result<usize, ControllerError> {
        let mut not_ready = [0i64; 2];
        for verdict in verdicts.iter().filter(|v| !v.is_ready()) {
            not_ready[usize::from(verdict.kind == Kind::ApiClient)] += 1;
        }
        for (i, kind) in ["ApiTokenPolicy", "ApiClient"].into_iter().enumerate() {
            self.metrics
                .not_ready
                .get_or_create(&KindLabel { kind })
                .set(not_ready[i]);
        }

        let now = Time(
            i64::try_from(now.unix_seconds())
                .ok()
                .and_then(|second| Timestamp::from_second(second).ok())
                .unwrap_or_default(),
        );
        let policies: HashMap<(&str, &str), &ApiTokenPolicy> =
            policies.iter().map(|p| (key_of(&**p), &**p)).collect();
        let clients: HashMap<(&str, &str), &ApiClient> =
            clients.iter().map(|c| (key_of(&**c), &**c)).collect();
        let needed = verdicts.iter().filter_map(|verdict| {
            let key = (verdict.namespace.as_str(), verdict.name.as_str());
            match verdict.kind {
                Kind::ApiTokenPolicy => policies.get(&key).and_then(|p| {
                    let stored = p.status.as_ref();
                    let desired = status::policy_status(verdict, p.meta().generation, stored, &now);
                    StatusWrite::needed(Kind::ApiTokenPolicy, *p, stored, &desired)
                }),
                Kind::ApiClient => clients.get(&key).and_then(|c| {
                    let stored = c.status.as_ref();
                    let desired = status::client_status(
                        verdict,
                        c.meta().generation,
                        config::client_id_of(c),
                        stored,
                        &now,
                    );
                    StatusWrite::needed(Kind::ApiClient, *c, stored, &desired)
                }),
                // Guardrails and issuers are rules without a status: no verdict is about one.
                Kind::AudienceGuardrail | Kind::FederatedIssuer => None,
            }
        });
        let mut total = 0;
        let failures: Vec<ControllerError> = futures::stream::iter(needed)
            .map(|w| {
                total += 1;
                self.write_status(w)
            })
            .buffer_unordered(STATUS_CONCURRENCY)
            .filter_map(|r| async move { r.err() })
            .collect()
            .await;
        match failures.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(total),
        }
    }

    async fn write_status(&self, write: StatusWrite) -> Result<(), ControllerError> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = match write.kind {
            Kind::ApiTokenPolicy => {
                Api::<ApiTokenPolicy>::namespaced(self.client.clone(), &write.namespace)
                    .patch_status(&write.name, &params, &Patch::Apply(&write.body))
                    .await
                    .map(drop)
            }
            Kind::ApiClient => Api::<ApiClient>::namespaced(self.client.clone(), &write.namespace)
                .patch_status(&write.name, &params, &Patch::Apply(&write.body))
                .await
                .map(drop),
            Kind::AudienceGuardrail | Kind::FederatedIssuer => return Ok(()),
        };
        match result {
            Ok(()) => {}
            // Deleted since the cache saw it: nothing to say about it any more.
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
            Err(e) => return Err(ControllerError::Api(e)),
        }
        self.metrics
            .status_writes
            .get_or_create(&KindLabel {
                kind: write.kind.as_str(),
            })
            .inc();
        if status::is_transition(write.previous.as_ref(), &write.ready) {
            self.publish_event(&write).await;
        }
        Ok(())
    }

    /// An Event for a transition of `Ready`. Its note is the verdict's message, which names
    /// objects and fields, never a secret. A failure is logged: Events are best effort.
    async fn publish_event(&self, write: &StatusWrite) {
        let ready = write.ready.status == "True";
        let event = Event {
            type_: if ready {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: write.ready.reason.clone(),
            note: Some(truncate(&write.ready.message, 1000)),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &write.reference).await {
            tracing::warn!(kind = write.kind.as_str(), namespace = %write.namespace, name = %write.name, error = %e, "could not publish an Event");
        }
    }
}

impl Reconcile for Reconciler {
    fn reconcile(
        &mut self,
        verify: bool,
        now: Now,
    ) -> impl std::future::Future<Output = Result<Report, ControllerError>> {
        Reconciler::reconcile(self, verify, now)
    }

    fn forget_keys(&mut self) {
        self.keys.forget();
    }
}

/// One status to write: the object, its `Ready` before and after, and the apply body.
struct StatusWrite {
    kind: Kind,
    namespace: String,
    name: String,
    reference: k8s_openapi::api::core::v1::ObjectReference,
    previous: Option<Condition>,
    ready: Condition,
    body: serde_json::Value,
}

impl StatusWrite {
    /// The write that takes `object` from its `stored` status to `desired`, if one is needed.
    fn needed<K: Resource<DynamicType = ()>, S: status::OwnedStatus>(
        kind: Kind,
        object: &K,
        stored: Option<&S>,
        desired: &S,
    ) -> Option<Self> {
        let ready = status::ready_of(desired.conditions())?;
        desired.needs_write(stored).then(|| StatusWrite {
            kind,
            namespace: object.namespace().unwrap_or_default(),
            name: object.name_any(),
            reference: object.object_ref(&()),
            previous: stored
                .and_then(|s| status::ready_of(s.conditions()))
                .cloned(),
            ready: ready.clone(),
            body: serde_json::json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "status": desired,
            }),
        })
    }
}

/// The longest access-token lifetime any policy declares (0 without policies).
fn longest_lifetime(policies: &[Arc<ApiTokenPolicy>]) -> u64 {
    policies
        .iter()
        .map(|p| u64::try_from(p.spec.token_expiration_seconds).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

fn key_of<K: Resource>(object: &K) -> (&str, &str) {
    let meta = object.meta();
    (
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
