//! The controller's loop: it waits for a change, a change of leadership or a timer of
//! [`Pacing`], and runs one reconcile when this replica leads. When to reconcile is
//! [`Pacing`]'s decision; what a reconcile does is [`super::reconcile`]'s. The loop owns only
//! the waiting, the abandoning of a pass when leadership is lost, the outcome's metrics and
//! logs, and readiness. It must not decide timing itself nor reach the cluster (the reconcile
//! does, behind [`Reconcile`]), and it reads the time through a [`Clock`] only, so tests
//! drive its timers with paused tokio time.

use super::ControllerError;
use super::metrics::{Metrics, OutcomeLabel};
use super::pacing::{Clock, Now, Pacing, Role};
use super::reconcile::Report;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One reconcile of everything ([`super::reconcile::Reconciler`]).
pub(crate) trait Reconcile {
    /// Reconcile once at `now`; `verify` also re-reads what is normally trusted.
    fn reconcile(
        &mut self,
        verify: bool,
        now: Now,
    ) -> impl Future<Output = Result<Report, ControllerError>>;
    /// Trust no signing keys read before (a new leader).
    fn forget_keys(&mut self);
}

/// What the loop waits on and reports to.
pub(crate) struct Signals<'a> {
    /// Pulled by the watches on every change that calls for a reconcile.
    pub trigger: &'a Notify,
    /// Whether this replica leads (a closed channel: no election, it always leads).
    pub leading: watch::Receiver<bool>,
    pub shutdown: &'a CancellationToken,
    pub metrics: &'a Metrics,
    /// Set once the caches are filled and, when leading, a reconcile succeeded.
    pub ready: &'a AtomicBool,
}

/// Reconcile whenever [`Pacing`] says so, until `shutdown`. The first pass starts at once.
pub(crate) async fn run_loop(reconciler: &mut impl Reconcile, clock: Clock, mut s: Signals<'_>) {
    let mut pacing = Pacing::new(clock.now().instant);
    s.trigger.notify_one();
    loop {
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = s.trigger.notified() => {}
            Ok(()) = s.leading.changed() => {}
            () = sleep_until(pacing.next_wake()) => {}
        }
        let is_leading = *s.leading.borrow_and_update();
        s.metrics.leader.set(i64::from(is_leading));
        match pacing.on_leadership(clock.now().instant, is_leading) {
            // A follower is ready once its caches are filled, to take over at once.
            Role::Follower => {
                s.ready.store(true, Ordering::Release);
                continue;
            }
            Role::NewLeader => reconciler.forget_keys(),
            Role::Leader => {}
        }
        tokio::select! {
            () = s.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(pacing.not_before(clock.now().instant)) => {}
        }
        let now = clock.now();
        let verify = pacing.start(now.instant);
        // A replica that stops leading stops reconciling at once, even in the middle of a
        // pass (which may hang on a connection gone silent): the new leader redoes it all.
        let outcome = tokio::select! {
            outcome = reconciler.reconcile(verify, now) => outcome,
            () = until_not_leading(&mut s.leading) => {
                tracing::warn!("stopped leading during a reconcile; abandoning it");
                // `wait_for` saw the change, so `changed()` will not: go round at once.
                s.trigger.notify_one();
                continue;
            }
        };
        let took = now.instant.elapsed();
        s.metrics.reconcile_duration.observe(took.as_secs_f64());
        let label = OutcomeLabel {
            outcome: if outcome.is_ok() { "success" } else { "error" },
        };
        s.metrics.reconciles.get_or_create(&label).inc();
        match outcome {
            Ok(report) => {
                pacing.on_success(clock.now(), report.keys_due);
                s.ready.store(true, Ordering::Release);
                log_reconciled(&report, took);
            }
            Err(e) => {
                let wait = pacing.on_failure(clock.now().instant);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "reconcile failed; will retry");
            }
        }
    }
}

/// Resolves at `at`; never without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves once this replica no longer leads; never without leader election.
async fn until_not_leading(leading: &mut watch::Receiver<bool>) {
    if leading.wait_for(|leads| !*leads).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn log_reconciled(report: &Report, took: std::time::Duration) {
    tracing::debug!(
        revision = report.published.revision,
        configuration_written = report.published.written,
        status_writes = report.status_writes,
        secrets_generated = report.secrets_generated,
        took_ms = took.as_millis() as u64,
        secrets_ms = report.steps.secrets,
        keys_ms = report.steps.keys,
        build_ms = report.steps.build,
        publish_ms = report.steps.publish,
        statuses_ms = report.steps.statuses,
        "reconciled"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::publish::Published;
    use crate::controller::reconcile::Steps;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// What the stand-in answers to one reconcile.
    enum Answer {
        /// Success; the signing keys are next due at this unix second.
        Done(Option<u64>),
        Failed,
        /// No answer, ever (a connection gone silent).
        Hangs,
    }

    /// A stand-in for the reconciler, so that the loop's timers run on paused time without a
    /// cluster: it answers from a script and notes when it was called and whether to verify.
    /// Once the script is used up it stops the loop.
    struct Script {
        t0: Instant,
        answers: VecDeque<Answer>,
        calls: Vec<(u128, bool)>,
        forgotten: usize,
        shutdown: CancellationToken,
    }

    impl Reconcile for Script {
        fn reconcile(
            &mut self,
            verify: bool,
            now: Now,
        ) -> impl Future<Output = Result<Report, ControllerError>> {
            let offset = now.instant.duration_since(self.t0).as_millis();
            self.calls.push((offset, verify));
            let answer = self.answers.pop_front().unwrap_or(Answer::Done(None));
            if self.answers.is_empty() {
                self.shutdown.cancel();
            }
            async move {
                match answer {
                    Answer::Done(keys_due) => Ok(report(keys_due)),
                    Answer::Failed => Err(ControllerError::Timeout(Duration::from_secs(10))),
                    Answer::Hangs => std::future::pending().await,
                }
            }
        }

        fn forget_keys(&mut self) {
            self.forgotten += 1;
        }
    }

    fn report(keys_due: Option<u64>) -> Report {
        Report {
            published: Published {
                revision: 1,
                written: false,
                uncompressed_bytes: 0,
                compressed_bytes: 0,
                shards: 1,
            },
            status_writes: 0,
            secrets_generated: 0,
            keys_due,
            steps: Steps::default(),
        }
    }

    /// Run the real loop on paused time, the wall clock at unix second 1,000,000 at the start,
    /// until the script is used up; `lead` changes leadership meanwhile.
    async fn run_script(
        answers: Vec<Answer>,
        leading: watch::Receiver<bool>,
        lead: impl Future<Output = ()>,
    ) -> (Script, u64) {
        let t0 = Instant::now();
        let shutdown = CancellationToken::new();
        let mut script = Script {
            t0,
            answers: answers.into(),
            calls: Vec::new(),
            forgotten: 0,
            shutdown: shutdown.clone(),
        };
        let (trigger, metrics, ready) = (Notify::new(), Metrics::default(), AtomicBool::new(false));
        let clock = Clock::FollowsTokio {
            at: t0,
            since_epoch: Duration::from_secs(1_000_000),
        };
        let signals = Signals {
            trigger: &trigger,
            leading,
            shutdown: &shutdown,
            metrics: &metrics,
            ready: &ready,
        };
        tokio::join!(run_loop(&mut script, clock, signals), lead);
        assert!(ready.load(Ordering::Acquire), "ready at the end");
        let errors = metrics
            .reconciles
            .get_or_create(&OutcomeLabel { outcome: "error" })
            .get();
        (script, errors)
    }

    /// Leading without an election: the sender is gone, leadership never changes.
    fn always_leading() -> watch::Receiver<bool> {
        watch::channel(true).1
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_reconciles_at_once_backs_off_from_200_ms_doubling_and_verifies_every_300_s() {
        let answers = vec![
            Answer::Failed,
            Answer::Failed,
            Answer::Failed,
            Answer::Done(None),
            Answer::Done(None),
            Answer::Done(None),
        ];
        let (script, errors) = run_script(answers, always_leading(), async {}).await;
        // Each pass waits the debounce (50 ms) after its wake: the retries wake 200, 400 and
        // 800 ms after a failure, the resyncs 300 s after the verifying pass started.
        assert_eq!(
            script.calls,
            [
                (50, true),
                (300, false),
                (750, false),
                (1600, false),
                (300_100, true),
                (600_150, true),
            ]
        );
        assert_eq!(errors, 3);
        assert_eq!(script.forgotten, 1, "a new leader reads the keys again");
    }

    #[tokio::test(start_paused = true)]
    async fn the_leader_reconciles_when_the_signing_keys_are_due() {
        let answers = vec![
            Answer::Done(Some(1_000_100)),
            Answer::Done(None),
            Answer::Done(None),
        ];
        let (script, _) = run_script(answers, always_leading(), async {}).await;
        // Due at unix second 1,000,100, 100 s after the start: woken 10 ms after, plus the
        // debounce; then the resync, 300 s after the first pass.
        assert_eq!(
            script.calls,
            [(50, true), (100_060, false), (300_100, true)]
        );
    }

    /// A follower reconciles nothing for an hour; when it leads it verifies at once. A leader
    /// that loses the lease in the middle of a pass abandons it, and verifies again when it
    /// leads again.
    #[tokio::test(start_paused = true)]
    async fn a_follower_waits_and_a_new_leader_verifies_at_once_even_after_an_abandoned_pass() {
        let (tx, rx) = watch::channel(false);
        let lead = async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            tx.send_replace(true);
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.send_replace(false);
            tokio::time::sleep(Duration::from_secs(10)).await;
            tx.send_replace(true);
            // Keep the channel open until the loop is done.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        };
        let answers = vec![Answer::Hangs, Answer::Done(None)];
        let (script, errors) = run_script(answers, rx, lead).await;
        assert_eq!(
            script.calls,
            [(3_600_050, true), (3_620_050, true)],
            "{:?}",
            script.calls
        );
        assert_eq!(errors, 0, "an abandoned pass is no failure");
        assert_eq!(script.forgotten, 2);
    }
}
