//! `tokenwarden validate PATH...`: the offline check for GitOps pipelines. Every document is
//! admitted as the API server would, then the whole set is built into an issuer configuration
//! to find what only a set shows (two policies with one audience, a client granted an audience
//! no policy declares). Exit 1 if anything is wrong, with one line per problem.

use crate::api::{FieldError, Kind};
use crate::config::{self, Declared, Reason};
use crate::manifests::{self, Loaded, Problem};
use std::path::PathBuf;
use std::process::ExitCode;

/// Check `paths` and return every problem, in file order.
pub fn check(paths: &[PathBuf]) -> (Loaded, Vec<Problem>) {
    let loaded = manifests::load(paths);
    let mut problems = loaded.problems.clone();
    let declared = Declared {
        policies: loaded.declared.policies.clone(),
        clients: loaded.declared.clients.clone(),
        guardrails: loaded.declared.guardrails.clone(),
        // Secrets are usually not in Git; they are checked where they live.
        secrets: None,
        federated_issuers: loaded.declared.federated_issuers.clone(),
        // ServiceAccounts exist only in the cluster.
        service_accounts: None,
    };
    for verdict in config::build(&declared).verdicts {
        if verdict.is_ready() {
            continue;
        }
        let key = (
            verdict.kind,
            verdict.namespace.clone(),
            verdict.name.clone(),
        );
        let Some(location) = loaded.locations.get(&key) else {
            continue;
        };
        let mut message = format!("{}: {}", verdict.reason.as_str(), verdict.message);
        if verdict.reason == Reason::UnknownAudience {
            let refused = loaded
                .declared
                .clients
                .iter()
                .filter(|c| c.metadata.namespace.as_deref() == Some(verdict.namespace.as_str()))
                .filter(|c| c.metadata.name.as_deref() == Some(verdict.name.as_str()))
                .flat_map(|c| &c.spec.audiences)
                .filter(|grant| loaded.refused_audiences.contains(&grant.audience));
            for grant in refused {
                message.push_str(&format!(
                    " ({:?} is declared by an ApiTokenPolicy that is itself invalid: see its problem)",
                    grant.audience
                ));
            }
        }
        problems.push(Problem {
            location: location.clone(),
            object: Some(manifests::object_name(
                verdict.kind,
                &verdict.namespace,
                &verdict.name,
            )),
            error: FieldError {
                path: field_of(verdict.reason).to_owned(),
                message,
            },
        });
    }
    loaded.sort(&mut problems);
    (loaded, problems)
}

/// The field a problem of `reason` points at: the one mapping from a verdict's reason to a
/// field (guardrail breaches included).
fn field_of(reason: Reason) -> &'static str {
    match reason {
        Reason::AudienceConflict | Reason::AudienceReserved | Reason::AudienceNotAllowed => {
            "spec.audience"
        }
        Reason::TokenLifetimeAboveMaximum => "spec.tokenExpirationSeconds",
        Reason::OfflineAccessForbidden => "spec.offlineAccess",
        Reason::SigningAlgorithmNotAllowed => "spec.signingAlgorithm",
        Reason::ClientIdConflict => "spec.clientId",
        Reason::UnknownAudience
        | Reason::NamespaceNotAllowed
        | Reason::UnknownScope
        | Reason::RotationRequired => "spec.audiences",
        Reason::SecretNotFound
        | Reason::InvalidSecret
        | Reason::SecretNotAccessible
        | Reason::SecretNotCreated => "spec.secretRef",
        Reason::ServiceAccountNotFound => "spec.workloadIdentity.serviceAccounts",
        Reason::UnknownFederatedIssuer | Reason::FederatedIssuerNotAllowed => {
            "spec.workloadIdentity.federated"
        }
        Reason::Enforced | Reason::ConfigurationTooLarge => "",
    }
}

/// Run the subcommand: print the problems, or a summary when there are none.
pub(crate) fn run(paths: &[PathBuf]) -> ExitCode {
    let (loaded, problems) = check(paths);
    for problem in &problems {
        println!("{problem}");
    }
    let count = |kind: Kind| loaded.locations.keys().filter(|k| k.0 == kind).count();
    // An empty folder is valid (kubeconform agrees), but a pipeline pointed at the wrong one
    // should hear of it.
    if problems.is_empty() && crate::manifests::files(paths).is_empty() {
        eprintln!(
            "warning: no .yaml or .yml file found under {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if problems.is_empty() {
        let guardrails = match count(Kind::AudienceGuardrail) {
            0 => String::new(),
            n => format!(", within {n} AudienceGuardrail objects"),
        };
        let guardrails = match count(Kind::FederatedIssuer) {
            0 => guardrails,
            n => format!("{guardrails}, with {n} FederatedIssuer objects"),
        };
        println!(
            "ok: {} ApiTokenPolicy and {} ApiClient objects are valid{guardrails}",
            count(Kind::ApiTokenPolicy),
            count(Kind::ApiClient)
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("{} problem(s) found", problems.len());
        ExitCode::from(1)
    }
}
