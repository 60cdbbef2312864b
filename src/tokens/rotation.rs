//! The signing-key rotation schedule: what the key set should be at time `now`, as a pure
//! function of the key set, the schedule, the time and the longest access-token lifetime of
//! any policy. The controller (for the Secret every cluster-mode issuer reads) and the
//! standalone issuer (for `keys.json` under `--data-dir`) both call [`advance`]; neither
//! decides anything about keys itself. See docs/key-rotation.md.
//!
//! Per algorithm, a key goes through three stages:
//! 1. **next**: made `interval` after the active key was made; published in the JWKS, signs
//!    nothing, so every verifier can learn it before the first token that names it;
//! 2. **active**: promoted `publish_lead` after it was made; signs every new token;
//! 3. **retired**: the previous active key keeps only its public JWK, published until
//!    `retired_at + the longest token lifetime any policy had while it signed + clock_skew`,
//!    then pruned.
//!
//! All times are absolute unix seconds stored in the key set, so the decision is the same
//! after a restart, on another replica, or late: a controller that was down for a month stages
//! the next key when it comes back and still waits the full lead before promoting it.

use super::{Algorithm, KeySet, TokenError};
use std::time::Duration;

/// The longest access-token lifetime a policy can declare (30 days), and so the longest a
/// retired key must stay published, clock skew aside.
pub(crate) const MAX_TOKEN_LIFETIME: u64 = crate::api::policy::MAX_TOKEN_EXPIRATION_SECONDS as u64;

/// When keys move from stage to stage, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Schedule {
    /// From one key's creation to the next key's creation.
    pub interval: u64,
    /// From a key's creation (and publication) to its first signature.
    pub publish_lead: u64,
    /// Added to a retired key's publication, for clocks of issuers and verifiers that differ
    /// and for issuers that sign with it until they see the promotion.
    pub clock_skew: u64,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            interval: 30 * 86_400,
            publish_lead: 3_600,
            clock_skew: 300,
        }
    }
}

/// What [`advance`] did, for logs and for knowing whether to save.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Next keys made and published.
    pub staged: Vec<Algorithm>,
    /// Next keys that became active (and active keys retired).
    pub promoted: Vec<Algorithm>,
    /// Active keys made because an algorithm had none (a new key set).
    pub created: Vec<Algorithm>,
    /// Retired keys dropped from the JWKS because every token they signed has expired.
    pub pruned: usize,
    /// Whether an active key's recorded longest token lifetime grew.
    pub lifetime_recorded: bool,
}

impl Changes {
    /// Whether the key set differs from before.
    pub(crate) fn any(&self) -> bool {
        !(self.staged.is_empty()
            && self.promoted.is_empty()
            && self.created.is_empty()
            && self.pruned == 0
            && !self.lifetime_recorded)
    }
}

/// Brings `set` to what it should be at `now`: a key for every algorithm, the longest token
/// lifetime recorded, next keys staged and promoted when due, retired keys pruned after their
/// deadline. `longest_lifetime` is the longest `tokenExpirationSeconds` of any policy now
/// (capped at [`MAX_TOKEN_LIFETIME`]). Calling it again at the same `now` changes nothing.
pub(crate) fn advance(
    set: &mut KeySet,
    schedule: &Schedule,
    now: u64,
    longest_lifetime: u64,
) -> Result<Changes, TokenError> {
    let lifetime = longest_lifetime.min(MAX_TOKEN_LIFETIME);
    let mut changes = Changes::default();
    for alg in Algorithm::ALL {
        if set.signing_key(alg).is_none() {
            // A new key set (or a new algorithm): nothing verifies against it yet, so there is
            // nothing to publish ahead of.
            set.ensure(&[alg], now)?;
            changes.created.push(alg);
        }
        changes.lifetime_recorded |= set.record_lifetime(alg, lifetime);
        if let Some(next) = set.next_key(alg)
            && now >= next.created_at().saturating_add(schedule.publish_lead)
        {
            set.promote(alg, now, lifetime, schedule.clock_skew);
            changes.promoted.push(alg);
        }
        let due = set
            .signing_key(alg)
            .map(|key| key.created_at().saturating_add(schedule.interval));
        if set.next_key(alg).is_none() && due.is_some_and(|due| now >= due) {
            set.stage(alg, now)?;
            changes.staged.push(alg);
        }
    }
    let before = set.retired().len();
    set.prune(now);
    changes.pruned = before - set.retired().len();
    Ok(changes)
}

/// The earliest time after which [`advance`] has something to do (stage, promote or prune),
/// if any. Callers sleep until then, or until a policy's lifetime changes.
pub(crate) fn next_due(set: &KeySet, schedule: &Schedule) -> Option<u64> {
    let keys = Algorithm::ALL.into_iter().filter_map(|alg| {
        match (set.next_key(alg), set.signing_key(alg)) {
            (Some(next), _) => Some(next.created_at().saturating_add(schedule.publish_lead)),
            (None, Some(active)) => Some(active.created_at().saturating_add(schedule.interval)),
            (None, None) => None,
        }
    });
    let retired = set.retired().iter().map(|key| key.publish_until);
    keys.chain(retired).min()
}

/// The rotation flags, shared by `tokenwarden controller` and the standalone issuer. Each also
/// reads `TOKENWARDEN_<FLAG>`. Durations are a number with a unit: `s`, `m`, `h` or `d`.
#[derive(Clone, Debug, clap::Args)]
pub struct RotationOptions {
    /// How often a new signing key is made, per algorithm.
    #[arg(long, env = "TOKENWARDEN_KEY_ROTATION_INTERVAL", default_value = "30d", value_parser = parse_duration)]
    pub key_rotation_interval: Duration,
    /// How long a new key is published in the JWKS before it signs: long enough for every
    /// issuer to load it and every verifier's JWKS cache to expire. Less than the interval.
    #[arg(long, env = "TOKENWARDEN_KEY_PUBLISH_LEAD", default_value = "1h", value_parser = parse_duration)]
    pub key_publish_lead: Duration,
    /// Added to a retired key's publication after the longest token lifetime.
    #[arg(long, env = "TOKENWARDEN_KEY_CLOCK_SKEW", default_value = "5m", value_parser = parse_duration)]
    pub key_clock_skew: Duration,
}

impl RotationOptions {
    /// The schedule, or why the flags do not make one.
    pub(crate) fn schedule(&self) -> Result<Schedule, String> {
        let schedule = Schedule {
            interval: self.key_rotation_interval.as_secs(),
            publish_lead: self.key_publish_lead.as_secs(),
            clock_skew: self.key_clock_skew.as_secs(),
        };
        if schedule.publish_lead >= schedule.interval {
            return Err(format!(
                "--key-publish-lead ({} s) must be shorter than --key-rotation-interval ({} s)",
                schedule.publish_lead, schedule.interval
            ));
        }
        Ok(schedule)
    }
}

/// `90s`, `15m`, `1h`, `30d` (or plain seconds) as a duration of at least one second.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: expected a number with s, m, h or d, e.g. 30d"
            ));
        }
    };
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{text:?}: expected a positive number with s, m, h or d"))?;
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;
    const DAY: u64 = 86_400;
    const SCHEDULE: Schedule = Schedule {
        interval: 30 * DAY,
        publish_lead: 3_600,
        clock_skew: 300,
    };

    fn kid(set: &KeySet, alg: Algorithm) -> String {
        set.signing_key(alg).expect("active key").kid().to_owned()
    }

    fn published(set: &KeySet, now: u64) -> Vec<String> {
        set.jwks(now).keys.into_iter().map(|k| k.kid).collect()
    }

    fn fresh() -> KeySet {
        let mut set = KeySet::new();
        let changes = advance(&mut set, &SCHEDULE, T0, 600).unwrap();
        assert_eq!(changes.created, Algorithm::ALL.to_vec());
        set
    }

    #[test]
    fn an_empty_set_gets_an_active_key_per_algorithm_and_then_nothing_changes_until_due() {
        let mut set = fresh();
        for now in [T0, T0 + 1, T0 + 30 * DAY - 1] {
            let changes = advance(&mut set, &SCHEDULE, now, 600).unwrap();
            assert!(!changes.any(), "{now}: {changes:?}");
        }
        assert_eq!(next_due(&set, &SCHEDULE), Some(T0 + 30 * DAY));
    }

    #[test]
    fn the_next_key_is_published_for_the_whole_lead_before_it_signs() {
        let mut set = fresh();
        let old = kid(&set, Algorithm::Es256);
        let staged_at = T0 + 30 * DAY;
        let changes = advance(&mut set, &SCHEDULE, staged_at, 600).unwrap();
        assert_eq!(changes.staged, Algorithm::ALL.to_vec());
        let next = set.next_key(Algorithm::Es256).unwrap().kid().to_owned();
        assert!(published(&set, staged_at).contains(&next));
        assert_eq!(
            kid(&set, Algorithm::Es256),
            old,
            "the next key does not sign yet"
        );
        assert_eq!(
            set.minter().signing_key(Algorithm::Es256).map(|k| k.kid()),
            Some(old.as_str())
        );
        assert_eq!(next_due(&set, &SCHEDULE), Some(staged_at + 3_600));

        let almost = advance(&mut set, &SCHEDULE, staged_at + 3_599, 600).unwrap();
        assert!(almost.promoted.is_empty(), "{almost:?}");
        let changes = advance(&mut set, &SCHEDULE, staged_at + 3_600, 600).unwrap();
        assert_eq!(changes.promoted, Algorithm::ALL.to_vec());
        assert_eq!(kid(&set, Algorithm::Es256), next);
        assert!(set.next_key(Algorithm::Es256).is_none());
        // The next rotation counts from the new key's creation, not its promotion.
        assert_eq!(next_due(&set, &SCHEDULE), Some(staged_at + 3_600 + 900));
    }

    #[test]
    fn a_retired_key_stays_published_for_the_longest_lifetime_plus_skew_then_is_pruned() {
        let mut set = fresh();
        let old = kid(&set, Algorithm::Rs256);
        let staged_at = T0 + 30 * DAY;
        advance(&mut set, &SCHEDULE, staged_at, 600).unwrap();
        let promoted_at = staged_at + 3_600;
        advance(&mut set, &SCHEDULE, promoted_at, 600).unwrap();
        let retired = set
            .retired()
            .iter()
            .find(|r| r.jwk.kid == old)
            .expect("retired");
        assert_eq!(retired.retired_at, promoted_at);
        assert_eq!(retired.publish_until, promoted_at + 600 + 300);
        assert!(published(&set, promoted_at + 899).contains(&old));
        assert_eq!(next_due(&set, &SCHEDULE), Some(promoted_at + 900));

        let changes = advance(&mut set, &SCHEDULE, promoted_at + 900, 600).unwrap();
        assert_eq!(changes.pruned, Algorithm::ALL.len());
        assert!(!published(&set, promoted_at + 900).contains(&old));
    }

    #[test]
    fn a_lifetime_lowered_before_the_promotion_still_keeps_the_old_key_for_the_longest() {
        let mut set = fresh();
        // A 30-day policy existed while the key signed, then was lowered to 10 minutes.
        let recorded = advance(&mut set, &SCHEDULE, T0 + DAY, 3 * MAX_TOKEN_LIFETIME).unwrap();
        assert!(recorded.lifetime_recorded, "capped at 30 days, recorded");
        assert_eq!(set.longest_lifetime(Algorithm::Es256), MAX_TOKEN_LIFETIME);
        let lowered = advance(&mut set, &SCHEDULE, T0 + 2 * DAY, 600).unwrap();
        assert!(
            !lowered.any(),
            "a lower lifetime changes nothing: {lowered:?}"
        );

        advance(&mut set, &SCHEDULE, T0 + 30 * DAY, 600).unwrap();
        let promoted_at = T0 + 30 * DAY + 3_600;
        advance(&mut set, &SCHEDULE, promoted_at, 600).unwrap();
        assert_eq!(
            set.retired().len(),
            Algorithm::ALL.len(),
            "one per algorithm"
        );
        for retired in set.retired() {
            assert_eq!(
                retired.publish_until,
                promoted_at + MAX_TOKEN_LIFETIME + 300
            );
        }
        // The new active key starts from the lifetime in force at its promotion.
        assert_eq!(set.longest_lifetime(Algorithm::Es256), 600);
    }

    #[test]
    fn a_controller_back_after_a_long_outage_stages_first_and_still_waits_the_lead() {
        let mut set = fresh();
        let late = T0 + 400 * DAY;
        let changes = advance(&mut set, &SCHEDULE, late, 600).unwrap();
        assert_eq!(changes.staged.len(), 4);
        assert!(changes.promoted.is_empty());
        assert_eq!(next_due(&set, &SCHEDULE), Some(late + 3_600));
    }

    #[test]
    fn the_stages_survive_serialisation_so_a_restart_decides_the_same() {
        let mut set = fresh();
        advance(&mut set, &SCHEDULE, T0 + DAY, 7_200).unwrap();
        advance(&mut set, &SCHEDULE, T0 + 30 * DAY, 7_200).unwrap();
        let json = set.to_json().unwrap();
        let mut read = KeySet::from_json(&json).unwrap();
        assert_eq!(read.to_json().unwrap(), json);
        assert_eq!(read.longest_lifetime(Algorithm::Ps256), 7_200);
        let mut again = set.clone();
        let promoted_at = T0 + 30 * DAY + 3_600;
        advance(&mut read, &SCHEDULE, promoted_at, 60).unwrap();
        advance(&mut again, &SCHEDULE, promoted_at, 60).unwrap();
        assert_eq!(read.to_json().unwrap(), again.to_json().unwrap());
        assert_eq!(
            read.retired()[0].publish_until,
            promoted_at + 7_200 + 300,
            "the recorded lifetime, not the one in force at the promotion"
        );
    }

    #[test]
    fn durations_take_a_unit_and_the_lead_must_be_shorter_than_the_interval() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(2_592_000)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
        let options = RotationOptions {
            key_rotation_interval: Duration::from_secs(60),
            key_publish_lead: Duration::from_secs(60),
            key_clock_skew: Duration::from_secs(1),
        };
        let error = options.schedule().unwrap_err();
        assert!(error.contains("--key-publish-lead"), "{error}");
    }
}
