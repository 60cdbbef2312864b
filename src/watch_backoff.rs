//! The retry backoff of every watch the controller and the issuer's cluster mode keep: from
//! 250 ms doubling to at most 4 s, starting over once the watch has gone [`CALM`] without an
//! error. kube's default (up to 30 s) is kind to a struggling API server, but would leave an
//! issuer behind for half a minute after an outage; these watches are few (two per issuer; per
//! controller three, plus one per `--secret-namespaces` namespace, or one for all), so a
//! shorter cap costs the API server little and keeps the catch-up within seconds.
//!
//! Not reset by the next item the watch yields: kube's watcher yields `Init` before each LIST,
//! so a LIST that keeps failing (the API server away at start, a 403) would otherwise be tried
//! every 250 ms for ever.

use kube::runtime::utils::Backoff;
use std::time::Duration;
use tokio::time::Instant;

const FIRST: Duration = Duration::from_millis(250);
const LONGEST: Duration = Duration::from_secs(4);
/// A watch this long without an error starts its backoff over.
pub(crate) const CALM: Duration = Duration::from_secs(30);

/// Doubling from 250 ms to 4 s.
#[derive(Debug, Clone)]
pub(crate) struct WatchBackoff {
    next: Duration,
    last_failure: Option<Instant>,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self {
            next: FIRST,
            last_failure: None,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.last_failure.is_some_and(|at| at.elapsed() >= CALM) {
            self.next = FIRST;
        }
        self.last_failure = Some(Instant::now());
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    /// Nothing: the watcher calls this for every item, `Init` before a LIST included; the
    /// backoff starts over after [`CALM`] instead.
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(backoff: &mut WatchBackoff) -> u128 {
        backoff.next().expect("a wait").as_millis()
    }

    #[tokio::test(start_paused = true)]
    async fn a_list_failing_again_and_again_waits_longer_each_time_up_to_four_seconds() {
        let mut backoff = WatchBackoff::default();
        let mut waits = Vec::new();
        for _ in 0..7 {
            // What kube's watcher does: an `Init` item (a reset) before each LIST, which fails.
            backoff.reset();
            let wait = millis(&mut backoff);
            waits.push(wait);
            tokio::time::advance(Duration::from_millis(wait as u64)).await;
        }
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_calm_spell_the_wait_starts_over() {
        let mut backoff = WatchBackoff::default();
        for _ in 0..5 {
            millis(&mut backoff);
        }
        tokio::time::advance(CALM).await;
        assert_eq!(millis(&mut backoff), 250);
        assert_eq!(millis(&mut backoff), 500);
    }
}
