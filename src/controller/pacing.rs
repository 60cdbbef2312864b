//! When the controller reconciles: a small synchronous state machine over the time, with no
//! I/O (linkerd2's policy index: a state machine tested by calling it). It owns the retry
//! backoff of a failed reconcile, the periodic resync (a reconcile that verifies), the time
//! the signing keys are next due and what a change of leadership resets. The loop in
//! [`super::run`] asks it when to wake and tells it what happened; tests drive it with plain
//! instants.
//!
//! It must not touch the cluster, the metrics or a clock of its own: every instant comes in
//! as a value, read from a [`Clock`] by the caller.

use std::time::Duration;
use tokio::time::Instant;

/// How long the controller waits after a change for more changes before it reconciles.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(50);
/// How often everything is reconciled and re-read even without a change.
pub(crate) const RESYNC: Duration = Duration::from_secs(300);
/// First and longest wait before a failed reconcile is retried.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long after the signing keys are due the controller wakes, so that the reconcile then
/// sees the wall clock at or past the time they are due.
const KEYS_DUE_MARGIN: Duration = Duration::from_millis(10);

/// One reading of the controller's clocks: the monotonic instant (tokio's, which paused time in
/// tests moves) and the wall clock (since the Unix epoch), taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub instant: Instant,
    pub since_epoch: Duration,
}

impl Now {
    /// Unix seconds (for key creation times and status time stamps).
    pub(crate) fn unix_seconds(&self) -> u64 {
        self.since_epoch.as_secs()
    }

    /// The monotonic instant of unix second `at` (a little after it, so that a reconcile then
    /// sees the wall clock at or past `at`); this instant when `at` has passed.
    pub(crate) fn instant_of(&self, at: u64) -> Instant {
        let wait = Duration::from_secs(at).saturating_sub(self.since_epoch);
        self.instant + wait + KEYS_DUE_MARGIN
    }
}

/// Where the controller reads the time: the system's clocks, or, in tests, a wall clock that
/// moves with tokio's (paused) time from a chosen start.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    System,
    /// The wall clock read `since_epoch` at tokio instant `at`.
    #[cfg(test)]
    FollowsTokio {
        at: Instant,
        since_epoch: Duration,
    },
}

impl Clock {
    pub(crate) fn now(&self) -> Now {
        let instant = Instant::now();
        let since_epoch = match self {
            Self::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
            #[cfg(test)]
            Self::FollowsTokio { at, since_epoch } => {
                *since_epoch + instant.saturating_duration_since(*at)
            }
        };
        Now {
            instant,
            since_epoch,
        }
    }
}

/// This replica's part, as [`Pacing::on_leadership`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Another replica leads: no reconcile, no timer.
    Follower,
    /// This replica has just started to lead: it trusts nothing it did not write itself.
    NewLeader,
    /// This replica led already.
    Leader,
}

/// When the next reconcile is due, and whether it verifies.
#[derive(Debug, Clone)]
pub(crate) struct Pacing {
    leading: bool,
    /// The wait after the next failure.
    backoff: Duration,
    /// When a failed reconcile is retried.
    retry_at: Option<Instant>,
    /// When the next reconcile verifies (re-reads what is normally trusted).
    next_resync: Instant,
    /// When the signing keys are next due to be staged, promoted or pruned.
    keys_due: Option<Instant>,
}

impl Pacing {
    /// Started at `now`, not leading yet.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            leading: false,
            backoff: BACKOFF_MIN,
            retry_at: None,
            next_resync: now + RESYNC,
            keys_due: None,
        }
    }

    /// When the loop wakes by itself: the retry, the resync or the keys, whichever is first.
    /// `None` for a follower, which waits for a change or for leadership.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if !self.leading {
            return None;
        }
        let mut wake = self.next_resync;
        for at in [self.retry_at, self.keys_due].into_iter().flatten() {
            wake = wake.min(at);
        }
        Some(wake)
    }

    /// Leadership as known at `now`. A new leader verifies at once and drops a pending retry:
    /// whatever changed while no controller led, a deleted configuration shard above all, is
    /// put right at once. A follower forgets when the keys were due (the leader knows).
    pub(crate) fn on_leadership(&mut self, now: Instant, leading: bool) -> Role {
        let was_leading = std::mem::replace(&mut self.leading, leading);
        match (was_leading, leading) {
            (_, false) => {
                self.keys_due = None;
                Role::Follower
            }
            (false, true) => {
                self.next_resync = now;
                self.retry_at = None;
                Role::NewLeader
            }
            (true, true) => Role::Leader,
        }
    }

    /// The earliest start of a reconcile woken at `now`: after [`DEBOUNCE`], which coalesces
    /// a burst of changes, and not before a pending retry.
    pub(crate) fn not_before(&self, now: Instant) -> Instant {
        let debounced = now + DEBOUNCE;
        self.retry_at
            .map_or(debounced, |retry| retry.max(debounced))
    }

    /// A reconcile starts at `now`: whether it verifies (the resync is due, which then moves
    /// [`RESYNC`] on).
    pub(crate) fn start(&mut self, now: Instant) -> bool {
        let verify = now >= self.next_resync;
        if verify {
            self.next_resync = now + RESYNC;
        }
        verify
    }

    /// A reconcile succeeded at `now`; the signing keys are next due at unix second
    /// `keys_due`. The backoff starts over.
    pub(crate) fn on_success(&mut self, now: Now, keys_due: Option<u64>) {
        self.backoff = BACKOFF_MIN;
        self.retry_at = None;
        self.on_keys_due(now, keys_due);
    }

    /// A reconcile failed at `now`: it is retried after the backoff, which doubles up to
    /// [`BACKOFF_MAX`]. Returns the wait.
    pub(crate) fn on_failure(&mut self, now: Instant) -> Duration {
        let wait = self.backoff;
        self.retry_at = Some(now + wait);
        self.backoff = (wait * 2).min(BACKOFF_MAX);
        wait
    }

    /// The signing keys are next due at unix second `at` (`None`: nothing is scheduled).
    pub(crate) fn on_keys_due(&mut self, now: Now, at: Option<u64>) {
        self.keys_due = at.map(|at| now.instant_of(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A reading at `t0 + offset`, when the wall clock said unix second 1,000,000 at `t0`.
    fn now(t0: Instant, offset: Duration) -> Now {
        Now {
            instant: t0 + offset,
            since_epoch: secs(1_000_000) + offset,
        }
    }

    /// Leading since `t0`, its first reconcile done.
    fn leader(t0: Instant) -> Pacing {
        let mut pacing = Pacing::new(t0);
        assert_eq!(pacing.on_leadership(t0, true), Role::NewLeader);
        assert!(pacing.start(t0));
        pacing
    }

    #[test]
    fn a_failed_reconcile_is_retried_after_200_ms_doubling_up_to_60_s() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        let waits: Vec<u128> = (0..11).map(|_| pacing.on_failure(t0).as_millis()).collect();
        assert_eq!(
            waits,
            [
                200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000
            ]
        );
        assert_eq!(pacing.next_wake(), Some(t0 + secs(60)));
    }

    #[test]
    fn a_success_starts_the_backoff_over_and_drops_the_retry() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        pacing.on_failure(t0);
        pacing.on_failure(t0);
        pacing.on_success(now(t0, secs(1)), None);
        assert_eq!(pacing.next_wake(), Some(t0 + RESYNC));
        assert_eq!(pacing.on_failure(t0 + secs(2)), BACKOFF_MIN);
    }

    #[test]
    fn a_change_during_a_backoff_waits_for_the_retry_and_otherwise_only_for_the_debounce() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        assert_eq!(pacing.not_before(t0), t0 + DEBOUNCE);
        pacing.on_failure(t0);
        pacing.on_failure(t0 + ms(200));
        // Retried at 600 ms: a change at 300 ms does not bring it forward.
        assert_eq!(pacing.not_before(t0 + ms(300)), t0 + ms(600));
        assert_eq!(pacing.not_before(t0 + ms(590)), t0 + ms(640));
    }

    #[test]
    fn the_leader_verifies_every_300_s_and_not_in_between() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        assert_eq!(pacing.next_wake(), Some(t0 + RESYNC));
        assert!(!pacing.start(t0 + secs(10)));
        assert!(!pacing.start(t0 + RESYNC - ms(1)));
        assert!(pacing.start(t0 + RESYNC));
        assert_eq!(pacing.next_wake(), Some(t0 + RESYNC + RESYNC));
    }

    #[test]
    fn the_leader_wakes_just_after_the_signing_keys_are_due() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        // Read half a second into a wall-clock second: due 100 s on is 99.5 s on.
        let reading = Now {
            instant: t0,
            since_epoch: secs(1_000_000) + ms(500),
        };
        pacing.on_success(reading, Some(1_000_100));
        assert_eq!(pacing.next_wake(), Some(t0 + ms(99_500) + KEYS_DUE_MARGIN));
        // Keys already due: at once.
        pacing.on_keys_due(reading, Some(999_000));
        assert_eq!(pacing.next_wake(), Some(t0 + KEYS_DUE_MARGIN));
        // Nothing scheduled: the resync.
        pacing.on_success(reading, None);
        assert_eq!(pacing.next_wake(), Some(t0 + RESYNC));
    }

    /// A follower has no timer: it waits for a change or for leadership, however long ago its
    /// resync or its keys were due (it used to spin once its resync time had passed).
    #[test]
    fn a_follower_never_wakes_by_itself() {
        let t0 = Instant::now();
        let mut pacing = Pacing::new(t0);
        assert_eq!(pacing.on_leadership(t0, false), Role::Follower);
        assert_eq!(pacing.next_wake(), None);
        let mut pacing = leader(t0);
        pacing.on_success(now(t0, secs(1)), Some(1_000_002));
        pacing.on_failure(t0 + secs(1));
        assert_eq!(
            pacing.on_leadership(t0 + RESYNC + secs(1), false),
            Role::Follower
        );
        assert_eq!(pacing.next_wake(), None);
    }

    #[test]
    fn a_new_leader_verifies_at_once_without_waiting_for_an_old_retry() {
        let t0 = Instant::now();
        let mut pacing = leader(t0);
        pacing.on_failure(t0);
        pacing.on_failure(t0);
        assert_eq!(pacing.on_leadership(t0 + ms(100), false), Role::Follower);
        let back = t0 + secs(5);
        assert_eq!(pacing.on_leadership(back, true), Role::NewLeader);
        assert_eq!(pacing.not_before(back), back + DEBOUNCE);
        assert!(pacing.start(back + DEBOUNCE));
        assert_eq!(pacing.on_leadership(back + secs(1), true), Role::Leader);
        assert!(!pacing.start(back + secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_that_follows_tokio_moves_the_wall_clock_with_paused_time() {
        let at = Instant::now();
        let clock = Clock::FollowsTokio {
            at,
            since_epoch: secs(1_000_000),
        };
        tokio::time::advance(ms(1500)).await;
        let reading = clock.now();
        assert_eq!(reading.instant, at + ms(1500));
        assert_eq!(reading.unix_seconds(), 1_000_001);
        assert_eq!(reading.since_epoch, secs(1_000_000) + ms(1500));
    }
}
