//! The upstream OpenID Connect connector: people sign in at the company's OpenID Provider
//! (Okta, Entra ID, Keycloak, Google, Dex, ...) instead of with a static password, as Dex's
//! `oidc` connector does. Authorization code flow with PKCE S256, `state` and `nonce`; the ID
//! token is validated against the provider's JWKS; the subject comes from
//! `--oidc-subject-claim`; then tokenwarden's own code flow continues, so tokens follow the
//! ApiTokenPolicy of the requested API exactly as after a password sign-in.
//!
//! - [`provider`]: discovery, keys and the code exchange (HTTP).
//! - [`id_token`]: ID-token validation, pure.
//! - [`pending`]: trips to the provider in progress (`state`, `nonce`, verifier).
//!
//! This module owns the configuration (`--oidc-*`) and the client secret, which never reaches
//! a log, an error or `Debug` output. The HTTP handlers live in `routes::authorize` (the way
//! out) and `routes::callback` (the way back).

pub(crate) mod id_token;
pub(crate) mod pending;
pub(crate) mod provider;

use provider::Provider;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The issuer's callback path, registered at the provider as `<--issuer-url>/callback/oidc`.
pub(crate) const CALLBACK_PATH: &str = "/callback/oidc";

/// The `--oidc-*` options of `tokenwarden issuer`. Each also reads `TOKENWARDEN_OIDC_<...>`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct UpstreamOptions {
    /// Upstream sign-in: the issuer URL of the company's OpenID Provider; its discovery
    /// document is `<URL>/.well-known/openid-configuration`. Needs --oidc-client-id and
    /// --oidc-client-secret-file.
    #[arg(
        long = "oidc-issuer",
        env = "TOKENWARDEN_OIDC_ISSUER",
        value_name = "URL"
    )]
    pub issuer: Option<String>,
    /// The client id tokenwarden has at the provider.
    #[arg(
        long = "oidc-client-id",
        env = "TOKENWARDEN_OIDC_CLIENT_ID",
        value_name = "ID"
    )]
    pub client_id: Option<String>,
    /// A file holding the client secret (e.g. a mounted Kubernetes Secret).
    #[arg(
        long = "oidc-client-secret-file",
        env = "TOKENWARDEN_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE"
    )]
    pub client_secret_file: Option<PathBuf>,
    /// The ID-token claim that becomes the user's `sub` in tokenwarden's tokens.
    #[arg(
        long = "oidc-subject-claim",
        env = "TOKENWARDEN_OIDC_SUBJECT_CLAIM",
        value_name = "CLAIM",
        default_value = "sub"
    )]
    pub subject_claim: String,
}

/// Why the connector cannot start; each says which flag to fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(
        "--oidc-issuer, --oidc-client-id and --oidc-client-secret-file go together; missing: {0}"
    )]
    Incomplete(String),
    #[error("--oidc-issuer must be an https URL (http only on a loopback host, for development)")]
    IssuerUrl,
    #[error("--oidc-client-id must not be empty")]
    ClientId,
    #[error("--oidc-client-secret-file {path}: {reason}")]
    SecretFile { path: PathBuf, reason: String },
    #[error("--oidc-subject-claim must not be empty")]
    SubjectClaim,
    #[error(
        "--oidc-subject-claim {0}: not an identifier (users may choose it, and several may share \
         it); use sub, email (verified addresses only) or a claim your provider keeps unique"
    )]
    SubjectNotAnIdentifier(String),
    #[error("--issuer-url must be set to an URL the provider can redirect to")]
    CallbackUrl,
    #[error("cannot create the HTTP client for the provider: {0}")]
    Http(#[from] reqwest::Error),
}

/// The client secret at the provider: zeroed on drop, never shown.
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub(crate) fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// For the one place that sends it to the provider's token endpoint.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// The configured connector.
#[derive(Debug)]
pub struct Upstream {
    pub provider: Provider,
    pub client_id: String,
    pub client_secret: ClientSecret,
    pub subject_claim: String,
    /// `<--issuer-url>/callback/oidc`.
    pub redirect_uri: String,
    /// The scopes asked for: `openid`, and what the subject claim needs.
    pub scope: String,
    /// The provider's host, for the button on the login page.
    pub display_name: String,
}

impl Upstream {
    /// The connector of `options`, or `None` when `--oidc-issuer` is not set. Reads the secret
    /// file; does not contact the provider (the issuer discovers it in the background, so it
    /// starts while the provider is down).
    pub fn from_options(
        options: &UpstreamOptions,
        issuer_url: &str,
    ) -> Result<Option<Self>, UpstreamError> {
        let (issuer, client_id, secret_file) = match (
            &options.issuer,
            &options.client_id,
            &options.client_secret_file,
        ) {
            (None, None, None) => return Ok(None),
            (Some(i), Some(c), Some(s)) => (i, c, s),
            (i, c, s) => {
                let missing: Vec<&str> = [
                    (i.is_none(), "--oidc-issuer"),
                    (c.is_none(), "--oidc-client-id"),
                    (s.is_none(), "--oidc-client-secret-file"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                return Err(UpstreamError::Incomplete(missing.join(" and ")));
            }
        };
        if !provider::acceptable_url(issuer) {
            return Err(UpstreamError::IssuerUrl);
        }
        if client_id.trim().is_empty() {
            return Err(UpstreamError::ClientId);
        }
        let subject_claim = options.subject_claim.trim();
        if subject_claim.is_empty() {
            return Err(UpstreamError::SubjectClaim);
        }
        if NOT_IDENTIFIERS.contains(&subject_claim) {
            return Err(UpstreamError::SubjectNotAnIdentifier(
                subject_claim.to_owned(),
            ));
        }
        let secret = read_secret(secret_file)?;
        if !(issuer_url.starts_with("http://") || issuer_url.starts_with("https://")) {
            return Err(UpstreamError::CallbackUrl);
        }
        Ok(Some(Self {
            provider: Provider::new(issuer.clone())?,
            client_id: client_id.clone(),
            client_secret: secret,
            subject_claim: subject_claim.to_owned(),
            redirect_uri: format!("{}{CALLBACK_PATH}", issuer_url.trim_end_matches('/')),
            scope: scope_for(subject_claim),
            display_name: reqwest::Url::parse(issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "your organization".to_owned()),
        }))
    }
}

/// Standard claims that name a person without identifying one: display names users edit at
/// will, `preferred_username` (which OpenID Connect Core §5.7 says is neither unique nor
/// stable: the provider may let users choose it, or hand a freed one to someone else), and a
/// boolean. Refused as `--oidc-subject-claim`, since the subject decides whose tokens a
/// sign-in gets.
const NOT_IDENTIFIERS: [&str; 7] = [
    "name",
    "nickname",
    "given_name",
    "family_name",
    "middle_name",
    "preferred_username",
    "email_verified",
];

/// `openid`, plus the standard scope that releases the subject claim when it is `email`
/// (OpenID Connect Core §5.4).
fn scope_for(subject_claim: &str) -> String {
    let extra = match subject_claim {
        "email" => " email",
        _ => "",
    };
    format!("openid{extra}")
}

/// The secret: the file's content without surrounding whitespace (a trailing newline is
/// usual); an empty or unreadable file is an error that never shows the content.
fn read_secret(path: &PathBuf) -> Result<ClientSecret, UpstreamError> {
    let error = |reason: String| UpstreamError::SecretFile {
        path: path.clone(),
        reason,
    };
    let raw = Zeroizing::new(std::fs::read(path).map_err(|e| error(e.to_string()))?);
    let text = std::str::from_utf8(&raw).map_err(|_| error("not UTF-8 text".into()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(error("the file is empty".into()));
    }
    Ok(ClientSecret::new(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &std::path::Path, secret: &str) -> UpstreamOptions {
        let path = dir.join("secret");
        std::fs::write(&path, secret).expect("write");
        UpstreamOptions {
            issuer: Some("https://login.example.com".into()),
            client_id: Some("tokenwarden".into()),
            client_secret_file: Some(path),
            subject_claim: "sub".into(),
        }
    }

    #[test]
    fn the_connector_needs_all_three_flags_or_none() {
        let dir = tempfile::tempdir().expect("dir");
        let none = UpstreamOptions {
            subject_claim: "sub".into(),
            ..UpstreamOptions::default()
        };
        assert!(matches!(
            Upstream::from_options(&none, "https://tw"),
            Ok(None)
        ));
        let mut partial = options(dir.path(), "s3cret");
        partial.client_secret_file = None;
        let err = Upstream::from_options(&partial, "https://tw").expect_err("incomplete");
        assert!(
            err.to_string().contains("--oidc-client-secret-file"),
            "{err}"
        );
        // Every missing flag is named at once.
        partial.issuer = None;
        let err = Upstream::from_options(&partial, "https://tw").expect_err("incomplete");
        assert!(
            err.to_string()
                .ends_with("missing: --oidc-issuer and --oidc-client-secret-file"),
            "{err}"
        );
        let mut plain_http = options(dir.path(), "s3cret");
        plain_http.issuer = Some("http://login.example.com".into());
        assert!(matches!(
            Upstream::from_options(&plain_http, "https://tw"),
            Err(UpstreamError::IssuerUrl)
        ));
    }

    #[test]
    fn the_secret_is_read_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let upstream =
            Upstream::from_options(&options(dir.path(), "s3cret-value\n"), "https://tw/")
                .expect("valid")
                .expect("configured");
        assert_eq!(upstream.client_secret.expose(), "s3cret-value");
        assert_eq!(upstream.redirect_uri, "https://tw/callback/oidc");
        assert_eq!(upstream.display_name, "login.example.com");
        let debug = format!("{upstream:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let empty = Upstream::from_options(&options(dir.path(), " \n"), "https://tw")
            .expect_err("empty secret");
        assert!(empty.to_string().contains("empty"), "{empty}");
    }

    #[test]
    fn the_scope_releases_the_subject_claim() {
        assert_eq!(scope_for("sub"), "openid");
        assert_eq!(scope_for("email"), "openid email");
        assert_eq!(scope_for("employee_id"), "openid");
    }

    #[test]
    fn preferred_username_cannot_be_the_subject_since_it_is_neither_unique_nor_stable() {
        let dir = tempfile::tempdir().expect("dir");
        let error = Upstream::from_options(
            &UpstreamOptions {
                subject_claim: " preferred_username ".into(),
                ..options(dir.path(), "s3cret")
            },
            "https://issuer.example.com",
        )
        .expect_err("preferred_username");
        assert!(
            error
                .to_string()
                .starts_with("--oidc-subject-claim preferred_username: not an identifier"),
            "{error}"
        );
    }

    #[test]
    fn a_display_name_cannot_be_the_subject() {
        let dir = tempfile::tempdir().expect("dir");
        for claim in ["name", "nickname", "given_name", "family_name", " name "] {
            let error = Upstream::from_options(
                &UpstreamOptions {
                    subject_claim: claim.into(),
                    ..options(dir.path(), "s3cret")
                },
                "https://issuer.example.com",
            )
            .expect_err(claim);
            assert!(
                error.to_string().contains("not an identifier"),
                "{claim}: {error}"
            );
        }
        for claim in ["sub", "email", "employee_id"] {
            let upstream = Upstream::from_options(
                &UpstreamOptions {
                    subject_claim: claim.into(),
                    ..options(dir.path(), "s3cret")
                },
                "https://issuer.example.com",
            );
            assert!(matches!(upstream, Ok(Some(_))), "{claim}");
        }
    }
}
