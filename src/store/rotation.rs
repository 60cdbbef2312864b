//! The refresh-token state machine, as a pure function.
//!
//! Owns: deciding what one refresh does, given the records a store read inside its transaction,
//! and which records it must write back. Every store (embedded, PostgreSQL) reads the
//! presented token, its family and its successor with a lock or a single writer, calls
//! [`refresh_transition`], and writes the result in the same transaction; that is what makes a
//! refresh atomic and gives one successor under concurrent refreshes. Must not touch I/O or
//! the clock.
//!
//! Order of the checks: wrong client or audience (nothing changes, nothing is revealed),
//! revoked family, absolute then idle expiry, then the token's own state: active (rotate, or
//! touch when non-rotating), retired inside the reuse interval with an unused successor (grace),
//! or retired otherwise (replay: revoke the family). Both lifetimes end at
//! `start + lifetime`: a token is refused at that second exactly, as a JWT is at its `exp`.

use super::model::{
    ExpiryKind, Family, NewFamily, RefreshOutcome, RefreshRequest, RefreshRules, Revocation,
    RevocationReason, TokenRecord, UnixTime,
};
use super::secret::TokenHash;

/// What a refresh decided: the answer, and the records to write (all in one transaction).
#[derive(Debug)]
pub(crate) struct Transition {
    pub outcome: RefreshOutcome,
    /// The family as it must be stored, when it changed.
    pub family: Option<Family>,
    /// Tokens to insert or overwrite, keyed by hash; the new token comes last when there is one.
    pub tokens: Vec<(TokenHash, TokenRecord)>,
}

impl Transition {
    fn only(outcome: RefreshOutcome) -> Self {
        Self {
            outcome,
            family: None,
            tokens: Vec::new(),
        }
    }
}

/// The expiry that applies to `family` at `now`, if any: under `rules`, so a policy shortened
/// since its last use applies at once; and at the latest at the deadline stored at its last
/// use (`keep_until`, from the rules in force then), which is also when clean-up deletes it.
/// So a policy lengthened since applies from the family's next refresh, and whether a family
/// still works never depends on whether clean-up has run. That stored deadline is reported as
/// the idle lifetime's, which is what ends most families.
pub(crate) fn expiry(family: &Family, now: UnixTime, rules: &RefreshRules) -> Option<ExpiryKind> {
    if now
        >= family
            .created_at
            .saturating_add(rules.absolute_lifetime_secs)
    {
        Some(ExpiryKind::Absolute)
    } else if now >= family.last_used_at.saturating_add(rules.idle_lifetime_secs)
        || now >= family.keep_until
    {
        Some(ExpiryKind::Idle)
    } else {
        None
    }
}

/// When [`expiry`] ends `family` under `rules`, if it is not used before.
pub(crate) fn expires_at(family: &Family, rules: &RefreshRules) -> UnixTime {
    keep_until(family, rules).min(family.keep_until)
}

/// A new family for `new`, started at `now`, kept as long as `rules` say.
pub(crate) fn new_family(new: NewFamily, now: UnixTime, rules: &RefreshRules) -> Family {
    let mut family = Family {
        id: new.id,
        client_id: new.client_id,
        audience: new.audience,
        subject: new.subject,
        scope: new.scope,
        created_at: now,
        last_used_at: now,
        keep_until: 0,
        revoked: None,
    };
    family.keep_until = keep_until(&family, rules);
    family
}

/// Until when a store keeps a family last used at `family.last_used_at` under `rules`.
pub(crate) fn keep_until(family: &Family, rules: &RefreshRules) -> UnixTime {
    let absolute = family
        .created_at
        .saturating_add(rules.absolute_lifetime_secs);
    let idle = family.last_used_at.saturating_add(rules.idle_lifetime_secs);
    absolute.min(idle)
}

/// `family`, revoked at `now` for `reason` (an earlier revocation is kept as it was).
pub(crate) fn revoked(family: &Family, reason: RevocationReason, now: UnixTime) -> Family {
    let mut family = family.clone();
    family.revoked.get_or_insert(Revocation { reason, at: now });
    family
}

/// Decides one refresh. `presented` is the record stored under `request.presented`, `family`
/// its family and `successor` the record its `successor` points to, if any.
pub(crate) fn refresh_transition(
    request: &RefreshRequest,
    family: &Family,
    presented: &TokenRecord,
    successor: Option<&TokenRecord>,
    now: UnixTime,
    rules: &RefreshRules,
) -> Transition {
    if family.client_id != request.client_id || family.audience != request.audience {
        return Transition::only(RefreshOutcome::WrongClient);
    }
    if family.revoked.is_some() {
        return Transition::only(RefreshOutcome::Revoked);
    }
    if let Some(kind) = expiry(family, now, rules) {
        return Transition::only(RefreshOutcome::Expired(kind));
    }

    let mut used_family = family.clone();
    used_family.last_used_at = now;
    used_family.keep_until = keep_until(&used_family, rules);
    let mut used = presented.clone();
    used.last_used_at = Some(now);
    let fresh = TokenRecord {
        family: family.id,
        issued_at: now,
        last_used_at: None,
        retired_at: None,
        successor: None,
    };

    let Some(retired_at) = presented.retired_at else {
        if !rules.rotating {
            return Transition {
                outcome: RefreshOutcome::NonRotating {
                    family: used_family.clone(),
                },
                family: Some(used_family),
                tokens: vec![(request.presented, used)],
            };
        }
        used.retired_at = Some(now);
        used.successor = Some(request.new);
        return Transition {
            outcome: RefreshOutcome::Rotated {
                family: used_family.clone(),
            },
            family: Some(used_family),
            tokens: vec![(request.presented, used), (request.new, fresh)],
        };
    };

    let in_grace = now < retired_at.saturating_add(rules.reuse_interval_secs);
    match (in_grace, presented.successor, successor) {
        (true, Some(unused_hash), Some(unused))
            if unused.last_used_at.is_none() && unused.retired_at.is_none() =>
        {
            // The unused successor is retired and points to the new token, so a late
            // presentation of it inside the interval takes this same path.
            let mut unused = unused.clone();
            unused.retired_at = Some(now);
            unused.successor = Some(request.new);
            used.successor = Some(request.new);
            Transition {
                outcome: RefreshOutcome::ReuseWithinGrace {
                    family: used_family.clone(),
                },
                family: Some(used_family),
                tokens: vec![
                    (request.presented, used),
                    (unused_hash, unused),
                    (request.new, fresh),
                ],
            }
        }
        _ => Transition {
            outcome: RefreshOutcome::ReplayDetected {
                family_id: family.id,
            },
            family: Some(revoked(family, RevocationReason::ReplayDetected, now)),
            tokens: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::secret::FamilyId;

    const RULES: RefreshRules = RefreshRules {
        rotating: true,
        absolute_lifetime_secs: 1000,
        idle_lifetime_secs: 100,
        reuse_interval_secs: 10,
    };

    fn family() -> Family {
        Family {
            id: FamilyId([7; 16]),
            client_id: "app".into(),
            audience: "https://api".into(),
            subject: "alice".into(),
            scope: "offline_access".into(),
            created_at: 0,
            last_used_at: 0,
            keep_until: 100,
            revoked: None,
        }
    }

    fn token() -> TokenRecord {
        TokenRecord {
            family: FamilyId([7; 16]),
            issued_at: 0,
            last_used_at: None,
            retired_at: None,
            successor: None,
        }
    }

    fn request() -> RefreshRequest {
        RefreshRequest {
            presented: TokenHash([1; 32]),
            new: TokenHash([2; 32]),
            client_id: "app".into(),
            audience: "https://api".into(),
        }
    }

    #[test]
    fn lifetimes_end_at_start_plus_lifetime_exactly() {
        let mut f = family();
        assert_eq!(expiry(&f, 99, &RULES), None);
        assert_eq!(expiry(&f, 100, &RULES), Some(ExpiryKind::Idle));
        f.last_used_at = 950;
        f.keep_until = keep_until(&f, &RULES);
        assert_eq!(expiry(&f, 999, &RULES), None);
        assert_eq!(expiry(&f, 1000, &RULES), Some(ExpiryKind::Absolute));
    }

    #[test]
    fn another_client_gets_wrong_client_and_no_write() {
        let mut req = request();
        req.client_id = "other".into();
        let t = refresh_transition(&req, &family(), &token(), None, 5, &RULES);
        assert_eq!(t.outcome, RefreshOutcome::WrongClient);
        assert!(t.family.is_none() && t.tokens.is_empty());
    }

    #[test]
    fn rotation_retires_the_presented_token_and_writes_the_new_one_last() {
        let t = refresh_transition(&request(), &family(), &token(), None, 5, &RULES);
        assert!(matches!(t.outcome, RefreshOutcome::Rotated { .. }));
        let (old_hash, old) = &t.tokens[0];
        assert_eq!(*old_hash, TokenHash([1; 32]));
        assert_eq!(old.retired_at, Some(5));
        assert_eq!(old.successor, Some(TokenHash([2; 32])));
        assert_eq!(t.tokens[1].0, TokenHash([2; 32]));
        assert_eq!(t.family.map(|f| f.keep_until), Some(105));
    }

    #[test]
    fn a_retired_token_whose_successor_was_used_is_a_replay_even_inside_the_interval() {
        let mut presented = token();
        presented.retired_at = Some(5);
        presented.successor = Some(TokenHash([3; 32]));
        let mut successor = token();
        successor.last_used_at = Some(6);
        let t = refresh_transition(
            &request(),
            &family(),
            &presented,
            Some(&successor),
            7,
            &RULES,
        );
        assert!(matches!(t.outcome, RefreshOutcome::ReplayDetected { .. }));
        assert!(t.family.and_then(|f| f.revoked).is_some());
    }

    #[test]
    fn a_zero_reuse_interval_never_grants_grace() {
        let mut presented = token();
        presented.retired_at = Some(5);
        presented.successor = Some(TokenHash([3; 32]));
        let rules = RefreshRules {
            reuse_interval_secs: 0,
            ..RULES
        };
        let t = refresh_transition(&request(), &family(), &presented, Some(&token()), 5, &rules);
        assert!(matches!(t.outcome, RefreshOutcome::ReplayDetected { .. }));
    }
}
