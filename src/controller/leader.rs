//! Leader election through a `coordination.k8s.io/v1` Lease, so that two controller replicas
//! are safe: every replica keeps its caches warm, only the leader reconciles.
//!
//! The Lease `tokenwarden-controller` in the controller's namespace names its holder and when
//! it last renewed. The holder renews every [`RENEW_EVERY`]; a replica takes over a Lease it
//! has seen unchanged for its `leaseDurationSeconds` ([`LEASE_DURATION`]) by its own clock, so
//! the clocks of two nodes need not agree (a replica that starts beside a Lease left by a dead
//! holder waits that long once). Every write is a replace with
//! the resourceVersion read, so two replicas cannot both win. A leader that cannot renew for
//! [`RENEW_DEADLINE`] (shorter than [`LEASE_DURATION`]; a call that hangs counts as failed)
//! steps down; at a graceful shutdown it releases the Lease so another
//! replica takes over at once. The decision is the pure [`decide`].

use super::ControllerError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Name of the Lease.
pub(crate) const LEASE_NAME: &str = "tokenwarden-controller";
/// How long a Lease not renewed stays with its holder.
pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a follower looks at the Lease.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(2);
/// A leader that has not renewed for this long steps down; each Lease call is given at most
/// this long. Shorter than [`LEASE_DURATION`], so the leader has stopped before a follower may
/// take the Lease over, even when a call hangs on a connection that went silent (kube sets no
/// read timeout).
pub(crate) const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What to do with the Lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renews it: wait.
    Follow,
}

/// The decision for `me` on the Lease as read (`None`: there is none), which this replica has
/// seen unchanged for `unchanged_for` (by its own clock). Another holder's Lease expires when
/// it has not changed for its `leaseDurationSeconds` as this replica observed it, never by the
/// holder's time stamps: clocks of two nodes need not agree (as client-go decides).
pub(crate) fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(LEASE_DURATION, Duration::from_secs);
            if unchanged_for >= duration {
                Decision::Acquire
            } else {
                Decision::Follow
            }
        }
    }
}

/// How long to wait before the next attempt. A leader whose renewal failed (a 500, a reset
/// connection) tries again sooner than it renews, so one failed call does not make it step
/// down: the next renewal would come too late for [`RENEW_DEADLINE`].
pub(crate) fn next_attempt_after(leading: bool, succeeded: bool) -> Duration {
    if leading && succeeded {
        RENEW_EVERY
    } else {
        RETRY_EVERY
    }
}

/// One replica's side of the election.
pub(crate) struct Elector {
    api: Api<Lease>,
    identity: String,
    /// The Lease's resourceVersion as last read, and when this replica first read it so.
    seen: std::sync::Mutex<Option<(String, tokio::time::Instant)>>,
}

impl Elector {
    pub(crate) fn new(api: Api<Lease>, identity: String) -> Self {
        Self {
            api,
            identity,
            seen: std::sync::Mutex::new(None),
        }
    }

    /// How long the Lease has been at `version` as this replica saw it.
    fn unchanged_for(&self, version: Option<&str>) -> Duration {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let version = version.unwrap_or_default();
        match &*seen {
            Some((known, since)) if known == version => since.elapsed(),
            _ => {
                *seen = Some((version.to_owned(), tokio::time::Instant::now()));
                Duration::ZERO
            }
        }
    }

    /// Take part until `shutdown`, telling `leading` whether this replica leads.
    pub(crate) async fn run(self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
        let mut last_renewed: Option<tokio::time::Instant> = None;
        loop {
            // The Lease says it was renewed when this attempt started, so count from then. A
            // leader's attempt may last only until its renew deadline: stepping down must not
            // wait for a call that hangs.
            let attempt = tokio::time::Instant::now();
            let deadline = match last_renewed {
                Some(at) if *leading.borrow() => at + RENEW_DEADLINE,
                _ => attempt + RENEW_DEADLINE,
            };
            let outcome = tokio::time::timeout_at(deadline, self.try_once())
                .await
                .unwrap_or(Err(ControllerError::Timeout(RENEW_DEADLINE)));
            let succeeded = outcome.is_ok();
            match outcome {
                Ok(true) => {
                    if !*leading.borrow() {
                        tracing::info!(identity = %self.identity, "leading");
                    }
                    last_renewed = Some(attempt);
                    leading.send_replace(true);
                }
                Ok(false) => {
                    if *leading.borrow() {
                        tracing::warn!(identity = %self.identity, "another replica took the lease; following");
                    }
                    leading.send_replace(false);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot read or renew the lease");
                    if last_renewed.is_some_and(|at| at.elapsed() >= RENEW_DEADLINE)
                        && *leading.borrow()
                    {
                        tracing::warn!("could not renew the lease in time; stepping down");
                        leading.send_replace(false);
                    }
                }
            }
            let wait = next_attempt_after(*leading.borrow(), succeeded);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            if let Err(e) = self.release().await {
                tracing::warn!(error = %e, "could not release the lease; another replica takes over when it expires");
            }
        }
    }

    /// Read the Lease and act on it; whether this replica holds it now.
    async fn try_once(&self) -> Result<bool, ControllerError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(ControllerError::Api)?;
        let unchanged_for = self.unchanged_for(
            current
                .as_ref()
                .and_then(|l| l.metadata.resource_version.as_deref()),
        );
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            unchanged_for,
        );
        let spec = |acquired: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: acquired,
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let result = match (decision, current) {
            (Decision::Follow, _) => return Ok(false),
            (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.to_owned()),
                        labels: Some(crate::config_objects::labels()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec(Some(MicroTime(now)), 0)),
                };
                self.api.create(&super::post_params(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let old = lease.spec.take().unwrap_or_default();
                let transitions = old.lease_transitions.unwrap_or(0);
                lease.spec = Some(if decision == Decision::Renew {
                    spec(old.acquire_time, transitions)
                } else {
                    spec(Some(MicroTime(now)), transitions + 1)
                });
                // A replace carries the resourceVersion read: it fails if anyone wrote since.
                self.api
                    .replace(LEASE_NAME, &super::post_params(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(ControllerError::Api(e)),
        }
    }

    /// Give the Lease up, so that another replica takes it at once.
    async fn release(&self) -> Result<(), ControllerError> {
        let Some(mut lease) = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(ControllerError::Api)?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        self.api
            .replace(LEASE_NAME, &super::post_params(), &lease)
            .await
            .map_err(ControllerError::Api)?;
        tracing::info!("released the lease");
        Ok(())
    }
}

/// This replica's identity: `POD_NAME` or `HOSTNAME`, with a random suffix so that two
/// processes on one host differ.
pub(crate) fn identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "tokenwarden-controller".to_owned());
    let suffix = super::secrets::random_secret()
        .map(|s| s.chars().take(8).collect::<String>())
        .unwrap_or_default();
    format!("{base}-{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("time")
    }

    /// Renewed at 0, the renewal at [`RENEW_EVERY`] fails at once: two more attempts fit
    /// before [`RENEW_DEADLINE`], so one failed call is not a step-down.
    #[test]
    fn a_leader_retries_a_failed_renewal_before_its_deadline() {
        let failed_at = RENEW_EVERY;
        let next = failed_at + next_attempt_after(true, false);
        assert!(next + next_attempt_after(true, false) < RENEW_DEADLINE);
        assert_eq!(next_attempt_after(true, true), RENEW_EVERY);
        assert_eq!(next_attempt_after(false, true), RETRY_EVERY);
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_missing_or_released_lease_is_taken() {
        assert_eq!(decide(None, "a", secs(0)), Decision::Acquire);
        let released = LeaseSpec::default();
        assert_eq!(decide(Some(&released), "a", secs(0)), Decision::Acquire);
    }

    #[test]
    fn the_holder_renews_and_the_others_follow_until_it_has_not_changed_for_its_duration() {
        let lease = held_by("a", 100);
        assert_eq!(decide(Some(&lease), "a", secs(5)), Decision::Renew);
        assert_eq!(decide(Some(&lease), "b", secs(5)), Decision::Follow);
        assert_eq!(decide(Some(&lease), "b", secs(14)), Decision::Follow);
        assert_eq!(decide(Some(&lease), "b", secs(15)), Decision::Acquire);
    }

    /// The holder's time stamps do not count: a lease renewed "long ago" by the holder's clock
    /// (this replica's clock runs ahead) is followed until it stops changing.
    #[test]
    fn clocks_that_disagree_do_not_hand_over_a_live_lease() {
        let renewed_an_hour_ago = held_by("a", 100);
        assert_eq!(
            decide(Some(&renewed_an_hour_ago), "b", secs(1)),
            Decision::Follow
        );
    }
}
