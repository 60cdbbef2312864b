//! What an object's status should say, and whether the stored one already says it. Pure: the
//! verdict comes from [`crate::config::build`], the time is passed in.
//!
//! The controller owns `observedGeneration`, the `Ready` and `Stalled` conditions and
//! (ApiClient) `clientId`; it writes them only when they differ from what is stored, so a
//! reconcile that changes nothing writes nothing (no hot loop). `lastTransitionTime` stays as
//! stored while a condition's status and reason stay the same.
//!
//! `Stalled=True` (kstatus' convention) is added beside `Ready=False` when only a change by a
//! person can fix the object (see [`crate::config::Reason::needs_a_person`]), so kstatus-based waiters (Flux's health
//! checks, cli-utils) report it as Failed at once instead of waiting for their timeout.
//! Problems that usually clear by themselves (a Secret or a policy not created yet) leave it
//! out: those stay InProgress.

use crate::api::{ApiClientStatus, ApiTokenPolicyStatus};
use crate::config::Verdict;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition types the controller owns.
pub(crate) const READY: &str = "Ready";
pub(crate) const STALLED: &str = "Stalled";

/// The controller's conditions for `verdict`: `Ready`, and `Stalled` when any of its problems
/// needs a person (`Verdict::stalled`); each keeps its stored transition time while its
/// status and reason stay the same.
pub(crate) fn conditions(
    verdict: &Verdict,
    generation: Option<i64>,
    stored: &[Condition],
    now: &Time,
) -> Vec<Condition> {
    let ready = if verdict.is_ready() { "True" } else { "False" };
    let mut conditions = vec![condition(READY, ready, verdict, generation, stored, now)];
    if verdict.stalled {
        conditions.push(condition(STALLED, "True", verdict, generation, stored, now));
    }
    conditions
}

fn condition(
    type_: &str,
    status: &str,
    verdict: &Verdict,
    generation: Option<i64>,
    stored: &[Condition],
    now: &Time,
) -> Condition {
    let reason = verdict.reason.as_str();
    let last_transition_time = match of_type(stored, type_) {
        Some(p) if p.status == status && p.reason == reason => p.last_transition_time.clone(),
        _ => now.clone(),
    };
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: verdict.message.clone(),
        observed_generation: generation,
        last_transition_time,
    }
}

fn of_type<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The stored `Ready` condition, if any.
pub(crate) fn ready_of(conditions: &[Condition]) -> Option<&Condition> {
    of_type(conditions, READY)
}

/// Whether two lists differ in a condition the controller owns.
fn owned_differ(stored: &[Condition], desired: &[Condition]) -> bool {
    [READY, STALLED]
        .into_iter()
        .any(|type_| of_type(stored, type_) != of_type(desired, type_))
}

/// Whether going from `previous` to `desired` is a transition worth an Event: a change of
/// status or reason, or a first condition that says something is wrong. A first `Ready=True`
/// is not announced: the status says it, and a cold start or a bulk apply of 10,000 objects
/// would otherwise write 10,000 Events that report nothing to act on (docs/decisions.md).
pub(crate) fn is_transition(previous: Option<&Condition>, desired: &Condition) -> bool {
    match previous {
        None => desired.status != "True",
        Some(p) => p.status != desired.status || p.reason != desired.reason,
    }
}

/// The status the controller wants on a policy, with only the fields it owns.
pub(crate) fn policy_status(
    verdict: &Verdict,
    generation: Option<i64>,
    stored: Option<&ApiTokenPolicyStatus>,
    now: &Time,
) -> ApiTokenPolicyStatus {
    let stored = stored.map_or(&[][..], |s| &s.conditions);
    ApiTokenPolicyStatus {
        observed_generation: generation,
        conditions: conditions(verdict, generation, stored, now),
    }
}

/// The status the controller wants on a client, with only the fields it owns.
pub(crate) fn client_status(
    verdict: &Verdict,
    generation: Option<i64>,
    client_id: String,
    stored: Option<&ApiClientStatus>,
    now: &Time,
) -> ApiClientStatus {
    let stored = stored.map_or(&[][..], |s| &s.conditions);
    ApiClientStatus {
        observed_generation: generation,
        client_id: Some(client_id),
        conditions: conditions(verdict, generation, stored, now),
    }
}

/// The status of either kind, as the controller writes it.
pub(crate) trait OwnedStatus: serde::Serialize {
    fn conditions(&self) -> &[Condition];

    /// Whether `stored` differs from `self` (the desired status) in a field the controller
    /// owns; a missing status always does.
    fn needs_write(&self, stored: Option<&Self>) -> bool;
}

impl OwnedStatus for ApiTokenPolicyStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn needs_write(&self, stored: Option<&Self>) -> bool {
        stored.is_none_or(|stored| {
            stored.observed_generation != self.observed_generation
                || owned_differ(&stored.conditions, &self.conditions)
        })
    }
}

impl OwnedStatus for ApiClientStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    fn needs_write(&self, stored: Option<&Self>) -> bool {
        stored.is_none_or(|stored| {
            stored.observed_generation != self.observed_generation
                || stored.client_id != self.client_id
                || owned_differ(&stored.conditions, &self.conditions)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Kind;
    use crate::config::Reason;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).expect("time"))
    }

    fn verdict(reason: Reason, message: &str) -> Verdict {
        Verdict {
            kind: Kind::ApiTokenPolicy,
            namespace: "payments".into(),
            name: "banking".into(),
            reason,
            message: message.into(),
            stalled: reason.needs_a_person(),
        }
    }

    #[test]
    fn a_status_that_says_the_same_is_not_written_again() {
        let v = verdict(Reason::Enforced, "access tokens live 600 s");
        let first = policy_status(&v, Some(1), None, &at(100));
        assert!(first.needs_write(None));
        let again = policy_status(&v, Some(1), Some(&first), &at(200));
        assert_eq!(again, first, "the transition time is kept");
        assert!(!again.needs_write(Some(&first)));
        assert!(!is_transition(
            ready_of(&first.conditions),
            &again.conditions[0]
        ));
    }

    #[test]
    fn a_new_generation_or_message_is_written_but_keeps_the_transition_time() {
        let v = verdict(Reason::Enforced, "access tokens live 600 s");
        let first = policy_status(&v, Some(1), None, &at(100));
        let patched = verdict(Reason::Enforced, "access tokens live 1200 s");
        let second = policy_status(&patched, Some(2), Some(&first), &at(200));
        assert!(second.needs_write(Some(&first)));
        assert_eq!(second.observed_generation, Some(2));
        assert_eq!(second.conditions[0].observed_generation, Some(2));
        assert_eq!(second.conditions[0].last_transition_time, at(100));
        assert!(!is_transition(
            ready_of(&first.conditions),
            &second.conditions[0]
        ));
    }

    #[test]
    fn a_change_of_reason_is_a_transition_with_a_new_time() {
        let first = policy_status(&verdict(Reason::Enforced, "ok"), Some(1), None, &at(100));
        let conflict = verdict(Reason::AudienceConflict, "taken by payments/older");
        let second = policy_status(&conflict, Some(1), Some(&first), &at(200));
        let ready = &second.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "AudienceConflict")
        );
        assert_eq!(ready.last_transition_time, at(200));
        assert!(is_transition(ready_of(&first.conditions), ready));
        assert!(is_transition(None, ready), "a first problem is announced");
        assert!(
            !is_transition(None, &first.conditions[0]),
            "a first Ready=True is not"
        );
        let back = policy_status(
            &verdict(Reason::Enforced, "ok"),
            Some(2),
            Some(&second),
            &at(300),
        );
        assert!(
            is_transition(Some(ready), &back.conditions[0]),
            "a recovery is"
        );
    }

    #[test]
    fn conditions_of_other_types_do_not_make_a_write() {
        let v = verdict(Reason::Enforced, "ok");
        let mut stored = client_status(&v, Some(3), "apps.web".into(), None, &at(1));
        stored.conditions.push(Condition {
            type_: "Progressing".into(),
            status: "True".into(),
            reason: "SomeoneElse".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: at(5),
        });
        let desired = client_status(&v, Some(3), "apps.web".into(), Some(&stored), &at(9));
        assert!(!desired.needs_write(Some(&stored)));
        let renamed = client_status(&v, Some(3), "other".into(), Some(&stored), &at(9));
        assert!(renamed.needs_write(Some(&stored)));
    }

    fn types(status: &ApiTokenPolicyStatus) -> Vec<(&str, &str, &str)> {
        let c = &status.conditions;
        c.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_conflict_adds_stalled_until_it_is_resolved() {
        let ok = verdict(Reason::Enforced, "ok");
        let first = policy_status(&ok, Some(1), None, &at(100));
        assert_eq!(types(&first), [("Ready", "True", "Enforced")]);

        let conflict = verdict(Reason::AudienceConflict, "taken by payments/older");
        let stalled = policy_status(&conflict, Some(1), Some(&first), &at(200));
        assert_eq!(
            types(&stalled),
            [
                ("Ready", "False", "AudienceConflict"),
                ("Stalled", "True", "AudienceConflict")
            ]
        );
        assert!(stalled.needs_write(Some(&first)));
        assert_eq!(stalled.conditions[1].message, "taken by payments/older");
        assert_eq!(stalled.conditions[1].observed_generation, Some(1));

        let again = policy_status(&conflict, Some(1), Some(&stalled), &at(300));
        assert!(!again.needs_write(Some(&stalled)));
        assert_eq!(again.conditions[1].last_transition_time, at(200));

        let resolved = policy_status(&ok, Some(1), Some(&stalled), &at(400));
        assert_eq!(types(&resolved), [("Ready", "True", "Enforced")]);
        assert!(resolved.needs_write(Some(&stalled)), "Stalled must go");
    }

    #[test]
    fn problems_that_clear_by_themselves_are_not_stalled() {
        for reason in [Reason::SecretNotFound, Reason::UnknownAudience] {
            let status = policy_status(&verdict(reason, "soon"), Some(1), None, &at(1));
            assert_eq!(types(&status), [("Ready", "False", reason.as_str())]);
        }
        for reason in [
            Reason::ClientIdConflict,
            Reason::InvalidSecret,
            Reason::SecretNotAccessible,
            Reason::SecretNotCreated,
            Reason::NamespaceNotAllowed,
            Reason::UnknownScope,
            Reason::RotationRequired,
            Reason::ConfigurationTooLarge,
        ] {
            assert!(reason.needs_a_person(), "{}", reason.as_str());
        }
    }
}
