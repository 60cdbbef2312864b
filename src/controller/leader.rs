//! Leader election through a `coordination.k8s.io/v1` Lease, so that two controller replicas
//! are safe: every replica keeps its caches warm, only the leader reconciles.
//!
//! The Lease `tokenwarden-controller` in the controller's namespace names its holder and when
//! it last renewed. The holder renews every [`RENEW_EVERY`]; a replica takes over a Lease not
//! renewed for its `leaseDurationSeconds` ([`LEASE_DURATION`]). Every write is a replace with
//! the resourceVersion read, so two replicas cannot both win. A leader that cannot renew for
//! [`RENEW_DEADLINE`] (shorter than [`LEASE_DURATION`]; a call that hangs counts as failed)
//! steps down; at a graceful shutdown it releases the Lease so another
//! replica takes over at once. The decision is the pure [`decide`].

use super::ControllerError;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Name of the Lease.
pub const LEASE_NAME: &str = "tokenwarden-controller";
/// How long a Lease not renewed stays with its holder.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a follower looks at the Lease.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// A leader that has not renewed for this long steps down; each Lease call is given at most
/// this long. Shorter than [`LEASE_DURATION`], so the leader has stopped before a follower may
/// take the Lease over, even when a call hangs on a connection that went silent (kube sets no
/// read timeout).
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What to do with the Lease as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renews it: wait.
    Follow,
}

/// The decision for `me` at `now` on the Lease as read (`None`: there is none).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => Decision::Acquire,
        Some(holder) if holder == me => Decision::Renew,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .map_or(LEASE_DURATION.as_secs() as i64, i64::from);
            let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref());
            match renewed {
                Some(MicroTime(at)) if *at + SignedDuration::from_secs(duration) > now => {
                    Decision::Follow
                }
                _ => Decision::Acquire,
            }
        }
    }
}

/// How long to wait before the next attempt. A leader whose renewal failed (a 500, a reset
/// connection) tries again sooner than it renews, so one failed call does not make it step
/// down: the next renewal would come too late for [`RENEW_DEADLINE`].
pub fn next_attempt_after(leading: bool, succeeded: bool) -> Duration {
    if leading && succeeded {
        RENEW_EVERY
    } else {
        RETRY_EVERY
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    identity: String,
}

impl Elector {
    pub fn new(api: Api<Lease>, identity: String) -> Self {
        Self { api, identity }
    }

    /// Take part until `shutdown`, telling `leading` whether this replica leads.
    pub async fn run(self, leading: watch::Sender<bool>, shutdown: CancellationToken) {
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
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
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
pub fn identity() -> String {
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

    #[test]
    fn a_missing_or_released_lease_is_taken() {
        assert_eq!(decide(None, "a", at(100)), Decision::Acquire);
        let released = LeaseSpec::default();
        assert_eq!(decide(Some(&released), "a", at(100)), Decision::Acquire);
    }

    #[test]
    fn the_holder_renews_and_the_others_follow_until_it_expires() {
        let lease = held_by("a", 100);
        assert_eq!(decide(Some(&lease), "a", at(105)), Decision::Renew);
        assert_eq!(decide(Some(&lease), "b", at(105)), Decision::Follow);
        assert_eq!(decide(Some(&lease), "b", at(114)), Decision::Follow);
        assert_eq!(decide(Some(&lease), "b", at(115)), Decision::Acquire);
    }
}
