//! Talking to the upstream OpenID Provider over HTTP: discovery
//! (`<issuer>/.well-known/openid-configuration`, OpenID Connect Discovery §4), its JWKS, and
//! the code exchange at its token endpoint with the client secret (RFC 6749 §4.1.3, RFC 7636).
//!
//! Owns: the HTTP client (timeouts, no redirects, bounded answers), the cached metadata and
//! keys, and the rules for the provider's URLs (https, or http on a loopback host). Must not
//! decide about users or tokens: [`super::id_token`] validates, the routes decide. Errors name
//! the step and the HTTP status or the provider's `error` code, never the secret or a code.

use super::ClientSecret;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::Instrument as _;

/// How long one request to the provider may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// Metadata and keys are fetched again after this long.
const CACHE_FOR: Duration = Duration::from_secs(60 * 60);
/// An unknown `kid` fetches the JWKS again at most this often.
pub(crate) const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// After a failed fetch, the provider is not asked again for this long: requests meanwhile get
/// the value fetched before (stale), or the failure at once, instead of each waiting out
/// another HTTP timeout (10 s) in turn.
pub(crate) const AFTER_A_FAILURE: Duration = Duration::from_secs(5);
/// The oldest copy used when the provider fails: past a day, a failure is told as it is (a key
/// the provider withdrew must not stay trusted while it is down).
pub(crate) const STALE_AT_MOST: Duration = Duration::from_secs(24 * 60 * 60);

/// A step with the provider that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    #[error("{step}: cannot reach the provider: {source}")]
    Unreachable {
        step: &'static str,
        source: reqwest::Error,
    },
    #[error("{step}: the provider answered HTTP {status}{}", error_code.as_deref().map(|c| format!(" with error {c}")).unwrap_or_default())]
    Status {
        step: &'static str,
        status: u16,
        /// The OAuth `error` code of a token-endpoint error, if it sent one.
        error_code: Option<String>,
    },
    #[error("{step}: the provider's answer is not valid: {reason}")]
    Invalid { step: &'static str, reason: String },
    #[error(
        "{step}: failed {}s ago, not asked again before {}s",
        .since.as_secs(),
        AFTER_A_FAILURE.as_secs()
    )]
    FailedJustNow { step: &'static str, since: Duration },
}

/// The parts of the discovery document the connector uses.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

/// A document fetched from the provider (or a workload's token issuer: `workload_identity`): cached, fetched by one request at a time (the others
/// wait for that fetch and take its result), and after a failure neither fetched again nor
/// waited for during [`AFTER_A_FAILURE`].
pub(crate) struct Fetched<T> {
    step: &'static str,
    state: std::sync::Mutex<FetchState<T>>,
    /// Held while fetching; never while holding `state`.
    fetching: Mutex<()>,
}

struct FetchState<T> {
    value: Option<(T, Instant)>,
    failed: Option<Instant>,
}

impl<T> FetchState<T> {
    /// The value fetched before, if younger than [`STALE_AT_MOST`]: what a failure answers.
    fn stale(&self) -> Option<&T> {
        self.value
            .as_ref()
            .filter(|(_, at)| at.elapsed() < STALE_AT_MOST)
            .map(|(value, _)| value)
    }
}

impl<T: Clone> Fetched<T> {
    pub(crate) fn new(step: &'static str) -> Self {
        Self {
            step,
            state: std::sync::Mutex::new(FetchState {
                value: None,
                failed: None,
            }),
            fetching: Mutex::new(()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FetchState<T>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The value as last fetched, however old, without waiting.
    fn peek(&self) -> Option<T> {
        self.state().value.as_ref().map(|(value, _)| value.clone())
    }

    /// Without asking the provider: the value if fetched less than `fresh_for` ago; after a
    /// recent failure, the older value or that failure; `None` when it is time to fetch.
    fn without_fetching(&self, fresh_for: Duration) -> Option<Result<T, ProviderError>> {
        let state = self.state();
        if let Some((value, at)) = &state.value
            && at.elapsed() < fresh_for
        {
            return Some(Ok(value.clone()));
        }
        let since = state.failed?.elapsed();
        (since < AFTER_A_FAILURE).then(|| match state.stale() {
            Some(value) => Ok(value.clone()),
            None => Err(ProviderError::FailedJustNow {
                step: self.step,
                since,
            }),
        })
    }

    /// The value fetched less than `fresh_for` ago, else fetched now by `fetch`. A failed
    /// fetch answers with the older value when there is one younger than [`STALE_AT_MOST`]
    /// (the provider's discovery document and keys change rarely).
    pub(crate) async fn get<F>(&self, fresh_for: Duration, fetch: F) -> Result<T, ProviderError>
    where
        F: AsyncFnOnce() -> Result<T, ProviderError>,
    {
        if let Some(known) = self.without_fetching(fresh_for) {
            return known;
        }
        let _turn = self.fetching.lock().await;
        // Another request may have fetched, or failed, while this one waited.
        if let Some(known) = self.without_fetching(fresh_for) {
            return known;
        }
        let fetched = fetch().await;
        let mut state = self.state();
        match fetched {
            Ok(value) => {
                state.value = Some((value.clone(), Instant::now()));
                state.failed = None;
                Ok(value)
            }
            Err(e) => {
                state.failed = Some(Instant::now());
                match state.stale() {
                    Some(stale) => {
                        tracing::warn!(error = %e, step = self.step, "a key or discovery fetch failed; using what was fetched before");
                        Ok(stale.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

/// The provider at `issuer`, with its metadata and keys cached.
pub struct Provider {
    issuer: String,
    http: reqwest::Client,
    metadata: Fetched<Metadata>,
    keys: Fetched<JwkSet>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Whether the connector may send a secret or a code to `url`: https, or http to a loopback
/// host (development and tests).
pub(crate) fn acceptable_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => parsed.host().is_some(),
        "http" => parsed.host_str().is_some_and(|host| {
            host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

impl Provider {
    pub(crate) fn new(issuer: String) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tokenwarden/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            issuer,
            http,
            metadata: Fetched::new("discovery"),
            keys: Fetched::new("JWKS"),
        })
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The discovery document if it was ever fetched, without waiting for the network (also
    /// while it is being fetched again).
    pub(crate) fn cached_metadata(&self) -> Option<Metadata> {
        self.metadata.peek()
    }

    /// The discovery document, fetched when not cached or stale.
    pub(crate) async fn metadata(&self) -> Result<Metadata, ProviderError> {
        self.metadata
            .get(CACHE_FOR, async || self.discover().await)
            .await
    }

    #[tracing::instrument(name = "upstream.discovery", skip_all, fields(otel.kind = "client"))]
    async fn discover(&self) -> Result<Metadata, ProviderError> {
        const STEP: &str = "discovery";
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let response = self.http.get(&url).send().await;
        let metadata: Metadata = read_json(STEP, response).await?;
        let invalid = |reason: &str| ProviderError::Invalid {
            step: STEP,
            reason: reason.to_owned(),
        };
        // OpenID Connect Discovery §4.3: exactly the issuer asked for.
        if metadata.issuer != self.issuer {
            return Err(invalid(
                "its issuer is not --oidc-issuer (they must be identical, trailing slash included)",
            ));
        }
        for endpoint in [
            &metadata.authorization_endpoint,
            &metadata.token_endpoint,
            &metadata.jwks_uri,
        ] {
            if !acceptable_url(endpoint) {
                return Err(invalid(
                    "an endpoint is not an https URL (http only on a loopback host)",
                ));
            }
        }
        Ok(metadata)
    }

    /// The provider's keys; `refresh` fetches them again (an unknown `kid`: the provider may
    /// have rotated), at most once per [`REFETCH_AT_MOST_EVERY`].
    pub(crate) async fn keys(&self, refresh: bool) -> Result<JwkSet, ProviderError> {
        let fresh_for = if refresh {
            REFETCH_AT_MOST_EVERY
        } else {
            CACHE_FOR
        };
        self.keys
            .get(fresh_for, async || {
                let metadata = self.metadata().await?;
                let span = tracing::info_span!("upstream.jwks", otel.kind = "client");
                let response = self
                    .http
                    .get(&metadata.jwks_uri)
                    .send()
                    .instrument(span)
                    .await;
                read_json("JWKS", response).await
            })
            .await
    }

    /// Exchange `code` at the token endpoint; returns the ID token. Its span records nothing
    /// of the request (the code, the verifier, the secret).
    #[tracing::instrument(name = "upstream.exchange", skip_all, fields(otel.kind = "client"))]
    pub(crate) async fn exchange(
        &self,
        client_id: &str,
        secret: &ClientSecret,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<String, ProviderError> {
        const STEP: &str = "code exchange";
        let metadata = self.metadata().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        let methods = &metadata.token_endpoint_auth_methods_supported;
        // client_secret_basic is the default (RFC 8414 §2); post only when basic is not offered.
        let use_post = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        let mut request = self.http.post(&metadata.token_endpoint);
        if use_post {
            form.push(("client_id", client_id));
            form.push(("client_secret", secret.expose()));
        } else {
            // RFC 6749 §2.3.1: both form-encoded before Basic.
            let encode =
                |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(client_id), Some(encode(secret.expose())));
        }
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await;
        let answer: TokenAnswer = read_json(STEP, response).await?;
        answer.id_token.ok_or_else(|| ProviderError::Invalid {
            step: STEP,
            reason: "no id_token (is the openid scope allowed for this client?)".into(),
        })
    }
}

/// Read a JSON answer of at most [`MAX_ANSWER_BYTES`]; a non-2xx is a [`ProviderError::Status`]
/// with the OAuth `error` code when the body has one.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    step: &'static str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, ProviderError> {
    let mut response = response.map_err(|source| ProviderError::Unreachable { step, source })?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ProviderError::Unreachable { step, source })?
    {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProviderError::Invalid {
                step,
                reason: "the answer is too large".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let error_code = serde_json::from_slice::<ErrorAnswer>(&body)
            .ok()
            .and_then(|e| e.error)
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_graphic()));
        return Err(ProviderError::Status {
            step,
            status: status.as_u16(),
            error_code,
        });
    }
    serde_json::from_slice(&body).map_err(|e| ProviderError::Invalid {
        step,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn secrets_go_over_https_or_to_loopback_only() {
        for good in [
            "https://login.example.com",
            "https://login.example.com/realms/x",
            "http://127.0.0.1:8080",
            "http://localhost:5556/dex",
            "http://[::1]:9000",
        ] {
            assert!(acceptable_url(good), "{good}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.1",
            "ftp://login.example.com",
            "login.example.com",
            "",
        ] {
            assert!(!acceptable_url(bad), "{bad}");
        }
    }

    fn invalid() -> ProviderError {
        ProviderError::Invalid {
            step: "test",
            reason: "down".into(),
        }
    }

    #[tokio::test]
    async fn a_failed_fetch_answers_with_the_older_value_and_is_not_repeated_at_once() {
        let fetched = Fetched::<u32>::new("test");
        let calls = AtomicUsize::new(0);
        assert_eq!(
            fetched.get(Duration::ZERO, async || Ok(1)).await.ok(),
            Some(1)
        );
        let failing = async || {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(invalid())
        };
        assert_eq!(fetched.get(Duration::ZERO, failing).await.ok(), Some(1));
        let working = async || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(2)
        };
        assert_eq!(fetched.get(Duration::ZERO, working).await.ok(), Some(1));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "asked again right after a failure"
        );
    }

    #[tokio::test]
    async fn with_nothing_fetched_before_a_recent_failure_is_told_at_once() {
        let fetched = Fetched::<u32>::new("discovery");
        assert!(matches!(
            fetched.get(CACHE_FOR, async || Err(invalid())).await,
            Err(ProviderError::Invalid { .. })
        ));
        let again = fetched.get(CACHE_FOR, async || Ok(2)).await;
        assert!(
            matches!(
                again,
                Err(ProviderError::FailedJustNow {
                    step: "discovery",
                    ..
                })
            ),
            "{again:?}"
        );
        assert_eq!(fetched.peek(), None);
    }
}
