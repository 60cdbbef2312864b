//! The clients the platform team vouches for (`--first-party-clients`): they skip the page
//! where a user agrees to a sign-in in upstream-only mode, and their redirect URIs are trusted
//! with an error at once (RFC 9700 §4.11.2). Every other client was registered by some team
//! with any redirect URI it liked, so the user sees who is asking before anything is sent
//! there.
//!
//! Owns: the parsing of the list and the matching. An entry names the namespace *and* the
//! client id, so a client id that another namespace took (client ids are first come, first
//! served across the cluster) never counts as first-party. Must not decide what first-party
//! means for a request: [`super::authorization`] does.

use crate::config::ClientConfig;
use std::collections::BTreeSet;
use std::str::FromStr;

/// `<namespace>/<clientId>` entries. Empty (the default): no client is first-party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirstPartyClients(BTreeSet<(String, String)>);

impl FromStr for FirstPartyClients {
    type Err = String;

    /// Comma-separated `<namespace>/<clientId>` entries; spaces around an entry are ignored.
    fn from_str(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(entry)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn entry(text: &str) -> Result<(String, String), String> {
    let problem =
        |what: &str| format!("{text:?} is not <namespace>/<clientId> ({what}), e.g. apps/portal");
    let (namespace, client_id) = text.split_once('/').ok_or_else(|| problem("no '/'"))?;
    let label = |s: &str| {
        (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !label(namespace) {
        return Err(problem("the namespace is not a DNS label"));
    }
    // As `spec.clientId`'s schema, which the default `<namespace>.<name>` also satisfies.
    let id_ok = (1..=253).contains(&client_id.len())
        && client_id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~:-".contains(&b));
    if !id_ok {
        return Err(problem("the client id is not a valid spec.clientId"));
    }
    Ok((namespace.to_owned(), client_id.to_owned()))
}

impl FirstPartyClients {
    /// Whether `client` is first-party: its namespace and its client id are listed together.
    pub(crate) fn contains(&self, client: &ClientConfig) -> bool {
        self.0
            .contains(&(client.namespace.clone(), client.client_id.clone()))
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(namespace: &str, client_id: &str) -> ClientConfig {
        ClientConfig {
            client_id: client_id.into(),
            namespace: namespace.into(),
            display_name: None,
            client_type: crate::api::ClientType::Public,
            secret_sha256: None,
            grant_types: Default::default(),
            redirect_uris: vec![],
            audiences: Default::default(),
        }
    }

    #[test]
    fn an_entry_counts_only_for_its_namespace_and_client_id_together() {
        let listed: FirstPartyClients = " platform/portal, apps/apps.console ,"
            .parse()
            .expect("valid");
        assert!(listed.contains(&client("platform", "portal")));
        assert!(listed.contains(&client("apps", "apps.console")));
        assert!(
            !listed.contains(&client("team-b", "portal")),
            "the same client id in another namespace is not first-party"
        );
        assert!(!listed.contains(&client("platform", "apps.console")));
        assert!("".parse::<FirstPartyClients>().expect("empty").is_empty());
    }

    #[test]
    fn a_bad_entry_is_refused_with_the_entry_and_the_reason() {
        for (text, reason) in [
            ("portal", "no '/'"),
            ("Platform/portal", "namespace"),
            ("/portal", "namespace"),
            ("platform/", "client id"),
            ("platform/por tal", "client id"),
            ("platform/a/b", "client id"),
        ] {
            let error = text.parse::<FirstPartyClients>().expect_err(text);
            assert!(error.contains(&format!("{text:?}")), "{error}");
            assert!(error.contains(reason), "{text}: {error}");
        }
    }
}
