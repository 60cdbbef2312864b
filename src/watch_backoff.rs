//! The retry backoff of every watch the controller and the issuer's cluster mode keep: from
//! 250 ms doubling to at most 4 s, reset by the first success. kube's default (up to 30 s)
//! is kind to a struggling API server, but would leave an issuer behind for half a minute
//! after an outage; these watches are few (two per issuer; per controller three, plus one per
//! `--secret-namespaces` namespace, or one for all), so a shorter cap costs the API server
//! little and keeps the catch-up within seconds.

use kube::runtime::utils::Backoff;
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(250);
const LONGEST: Duration = Duration::from_secs(4);

/// Doubling from 250 ms to 4 s.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_four_seconds_and_starts_over_after_a_success() {
        let mut backoff = WatchBackoff::default();
        let waits: Vec<u128> = backoff.by_ref().take(7).map(|d| d.as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(FIRST));
    }
}
