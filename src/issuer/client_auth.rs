//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, and
//! public clients that send only `client_id` (and prove themselves with PKCE). Secrets are
//! compared as SHA-256 hashes in constant time; an unknown client costs the same work.
//!
//! A workload authenticates with its own token instead (workload identity): a JWT client
//! assertion (RFC 7523 §2.2, `assertion`), or the subject token of a token exchange (RFC
//! 8693), which [`crate::issuer::workload_identity`] verifies; `token_request_client` decides
//! which credential counts at the token endpoint.

use super::error::OAuthError;
use super::form::Form;
use crate::api::ClientType;
use crate::config::{ClientConfig, IssuerConfig, hash_client_secret};
use crate::issuer::error::ErrorCode;
use crate::issuer::grants::token_exchange;
use crate::issuer::workload_identity::verify::{Workload, WorkloadTokenError};
use crate::issuer::workload_identity::{JWT_BEARER_ASSERTION, Resolved};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// How the client presented itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Basic,
    Post,
    /// A public client: `client_id` only.
    None,
}

/// The client of a token request, and the workload whose token authenticated it, if any:
/// - a client assertion: the workload it names (`invalid_client` when refused);
/// - a token exchange without other credentials: the workload its subject token names
///   (`invalid_request` when refused, RFC 8693 §2.2.2);
/// - otherwise a secret, or a public client's id ([`authenticate`]); in a token exchange the
///   subject token must then act as that same client (`invalid_request`), and so it must after
///   a client assertion.
///
/// `verifier` checks a workload's token, and the client it acts as (the one named, if any).
pub(crate) async fn token_request_client<'c>(
    config: &'c IssuerConfig,
    headers: &HeaderMap,
    form: &Form,
    verifier: &impl VerifyWorkload,
) -> Result<(&'c ClientConfig, Option<Workload>), OAuthError> {
    let verify = |token, client_id| verifier.verify(token, client_id);
    let exchange = form.get("grant_type") == Some(token_exchange::GRANT_TYPE);
    let subject_refused = OAuthError::invalid_request("the subject_token is not acceptable");
    let (client, workload) = if let Some(assertion) = assertion(headers, form)? {
        let resolved = verify(assertion, form.get("client_id")).await;
        let (client, resolved) = by_workload(config, resolved, OAuthError::invalid_client(false))?;
        (client, Some(resolved.workload))
    } else if exchange && !presents_credentials(headers, form) {
        // The subject token is the client's only credential.
        let subject = form.require("subject_token", "subject_token is required")?;
        let resolved = verify(subject, form.get("client_id")).await;
        let (client, resolved) = by_workload(config, resolved, subject_refused)?;
        return Ok((client, Some(resolved.workload)));
    } else {
        (authenticate(config, headers, form)?.0, None)
    };
    match form.get("subject_token").filter(|_| exchange) {
        Some(subject) => {
            let resolved = verify(subject, Some(&client.client_id)).await;
            let (_, resolved) = by_workload(config, resolved, subject_refused)?;
            Ok((client, Some(resolved.workload)))
        }
        None => Ok((client, workload)),
    }
}

/// Verifies a workload's token and finds the client it acts as (the one `client_id` names, if
/// any): [`crate::issuer::workload_identity::Workloads::resolve`] with the request's context.
pub(crate) trait VerifyWorkload {
    fn verify(
        &self,
        token: &str,
        client_id: Option<&str>,
    ) -> impl Future<Output = Result<Resolved, WorkloadTokenError>> + Send;
}

/// The JWT client assertion of the request (RFC 7523 §2.2), if it carries one, for
/// [`crate::issuer::workload_identity`] to verify. An assertion and a secret at once are two
/// methods (`invalid_request`); an assertion type other than JWT bearer is `invalid_client`.
pub(crate) fn assertion<'f>(
    headers: &HeaderMap,
    form: &'f Form,
) -> Result<Option<&'f str>, OAuthError> {
    let (kind, assertion) = match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (None, None) => return Ok(None),
        (Some(kind), Some(assertion)) => (kind, assertion),
        _ => {
            return Err(OAuthError::invalid_request(
                "client_assertion and client_assertion_type go together",
            ));
        }
    };
    if headers.contains_key(header::AUTHORIZATION) || form.get("client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not both",
        ));
    }
    if kind != JWT_BEARER_ASSERTION {
        return Err(OAuthError::invalid_client(false));
    }
    Ok(Some(assertion))
}

/// Whether the request carries client credentials of any kind (a secret, Basic, an assertion).
pub(crate) fn presents_credentials(headers: &HeaderMap, form: &Form) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || form.get("client_secret").is_some()
        || form.get("client_assertion").is_some()
        || form.get("client_assertion_type").is_some()
}

/// The client a verified workload acts as. A refused workload token is `refused`
/// (`invalid_client` for a client assertion, `invalid_request` for a token exchange's subject
/// token, RFC 8693 §2.2.2); keys that cannot be read now are `temporarily_unavailable`.
pub(crate) fn by_workload(
    config: &IssuerConfig,
    resolved: Result<Resolved, WorkloadTokenError>,
    refused: OAuthError,
) -> Result<(&ClientConfig, Resolved), OAuthError> {
    let resolved = match resolved {
        Ok(resolved) => resolved,
        Err(WorkloadTokenError::KeysUnavailable) => {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the keys of the token's issuer cannot be read now; try again shortly",
            ));
        }
        Err(_) => return Err(refused),
    };
    match config.clients.get(&resolved.client_id) {
        Some(client) if client.client_type == ClientType::Confidential => Ok((client, resolved)),
        _ => Err(refused),
    }
}

/// Authenticate the client of a token, revocation or introspection request.
pub(crate) fn authenticate<'c>(
    config: &'c IssuerConfig,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(&'c ClientConfig, Method), OAuthError> {
    let basic = basic_credentials(headers)?;
    let (client_id, secret, method) = match (basic, form.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not both",
            ));
        }
        (Some((id, secret)), None) => {
            if form.get("client_id").is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_client(true));
            }
            (id, Some(secret), Method::Basic)
        }
        (None, Some(secret)) => {
            let id = form
                .get("client_id")
                .ok_or(OAuthError::invalid_client(false))?;
            (id.to_owned(), Some(secret.to_owned()), Method::Post)
        }
        (None, None) => {
            let id = form
                .get("client_id")
                .ok_or(OAuthError::invalid_client(false))?;
            (id.to_owned(), None, Method::None)
        }
    };
    let fail = OAuthError::invalid_client(method == Method::Basic);
    let client = config.clients.get(&client_id);
    match (client, secret) {
        (Some(client), Some(secret)) if client.client_type == ClientType::Confidential => {
            let presented = hash_client_secret(secret.as_bytes());
            let stored = client.secret_sha256.unwrap_or([0; 32]);
            let equal: bool = presented.ct_eq(&stored).into();
            if equal && client.secret_sha256.is_some() {
                Ok((client, method))
            } else {
                Err(fail)
            }
        }
        (Some(client), None) if client.client_type == ClientType::Public => Ok((client, method)),
        (None, Some(secret)) => {
            // Same work as for a known client, so timing does not tell which ids exist.
            let presented = hash_client_secret(secret.as_bytes());
            let _: bool = presented.ct_eq(&[0; 32]).into();
            Err(fail)
        }
        _ => Err(fail),
    }
}

/// `Authorization: Basic` credentials, each part form-urlencoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        // Not a list header: which one counts would be anyone's guess (RFC 6749 §2.3).
        return Err(OAuthError::invalid_request(
            "send one Authorization header, not several",
        ));
    }
    let bad = OAuthError::invalid_client(true);
    let value = value.to_str().map_err(|_| bad.clone())?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(bad);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad.clone())?;
    let text = String::from_utf8(decoded).map_err(|_| bad.clone())?;
    let (id, secret) = text.split_once(':').ok_or(bad.clone())?;
    let unescape = |s: &str| super::form::decode(s.as_bytes()).map_err(|_| bad.clone());
    Ok(Some((unescape(id)?, unescape(secret)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::GrantType;
    use crate::issuer::error::ErrorCode;
    use axum::http::HeaderValue;

    const SECRET: &str = "s3cr3t-with:colon-and+plus-0123456789abcdef";

    fn config() -> IssuerConfig {
        let mut config = IssuerConfig::default();
        for (id, client_type, secret) in [
            ("worker", ClientType::Confidential, Some(SECRET)),
            ("web", ClientType::Public, None),
        ] {
            config.clients.insert(
                id.into(),
                ClientConfig {
                    client_id: id.into(),
                    namespace: "apps".into(),
                    display_name: None,
                    client_type,
                    secret_sha256: secret.map(|s| hash_client_secret(s.as_bytes())),
                    grant_types: [GrantType::ClientCredentials].into(),
                    redirect_uris: vec![],
                    audiences: Default::default(),
                },
            );
        }
        config
    }

    fn basic(id: &str, secret: &str) -> HeaderMap {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let token = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(id),
            enc(secret)
        ));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).expect("header"),
        );
        headers
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).expect("form")
    }

    #[test]
    fn basic_and_post_authenticate_a_confidential_client() {
        let config = config();
        let (client, method) =
            authenticate(&config, &basic("worker", SECRET), &form("")).expect("basic");
        assert_eq!(
            (client.client_id.as_str(), method),
            ("worker", Method::Basic)
        );
        let body = format!(
            "client_id=worker&client_secret={}",
            form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>()
        );
        let (_, method) = authenticate(&config, &HeaderMap::new(), &form(&body)).expect("post");
        assert_eq!(method, Method::Post);
    }

    #[test]
    fn a_wrong_secret_over_basic_is_a_401_challenge() {
        let config = config();
        let err = authenticate(&config, &basic("worker", "wrong"), &form("")).expect_err("wrong");
        assert_eq!(err.code, ErrorCode::InvalidClient);
        assert!(err.basic_challenge);
        assert_eq!(
            crate::issuer::routes::respond::status(&err),
            axum::http::StatusCode::UNAUTHORIZED
        );
        let err = authenticate(&config, &basic("nobody", SECRET), &form("")).expect_err("unknown");
        assert_eq!(err.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn public_clients_send_only_their_id_and_confidential_ones_cannot() {
        let config = config();
        let (client, method) =
            authenticate(&config, &HeaderMap::new(), &form("client_id=web")).expect("public");
        assert_eq!((client.client_id.as_str(), method), ("web", Method::None));
        let err = authenticate(&config, &HeaderMap::new(), &form("client_id=worker"))
            .expect_err("no secret");
        assert_eq!(err.code, ErrorCode::InvalidClient);
        assert!(!err.basic_challenge);
    }

    #[test]
    fn basic_parts_are_each_decoded_whole_even_with_an_ampersand_or_equals_sign() {
        let mut config = config();
        let secret = "a&b=c%26";
        let mut client = config.clients["worker"].clone();
        client.secret_sha256 = Some(hash_client_secret(b"a&b=c&"));
        config.clients.insert("worker".into(), client);
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("worker:{secret}"));
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Basic {raw}")).expect("header");
        headers.insert(header::AUTHORIZATION, value);
        let (client, _) = authenticate(&config, &headers, &form("")).expect("authenticated");
        assert_eq!(client.client_id, "worker");
    }

    #[test]
    fn two_methods_at_once_are_an_invalid_request() {
        let config = config();
        let err = authenticate(&config, &basic("worker", SECRET), &form("client_secret=x"))
            .expect_err("both");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn malformed_authorization_headers_are_invalid_client() {
        let config = config();
        for value in ["Basic !!!", "Bearer abc", "Basic", "Basic Zm9v"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            let err = authenticate(&config, &headers, &form("")).expect_err(value);
            assert_eq!(err.code, ErrorCode::InvalidClient, "{value}");
        }
    }

    #[test]
    fn a_client_assertion_is_one_method_of_one_type_with_both_parameters() {
        let jwt = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=e30.e30.sig";
        assert_eq!(
            assertion(&HeaderMap::new(), &form(jwt)).expect("assertion"),
            Some("e30.e30.sig")
        );
        assert_eq!(
            assertion(&HeaderMap::new(), &form("client_id=web")),
            Ok(None)
        );
        let err = assertion(&basic("worker", SECRET), &form(jwt)).expect_err("two methods");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = assertion(&HeaderMap::new(), &form(&format!("{jwt}&client_secret=x")))
            .expect_err("two methods");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let err = assertion(&HeaderMap::new(), &form("client_assertion=e30.e30.sig"))
            .expect_err("no type");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let saml = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Asaml2-bearer&client_assertion=x";
        let err = assertion(&HeaderMap::new(), &form(saml)).expect_err("other type");
        assert_eq!(err.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn a_workload_acts_only_as_a_confidential_client_and_unreadable_keys_are_unavailable() {
        use crate::issuer::workload_identity::verify::Workload;
        let config = config();
        let resolved = |client_id: &str| {
            Ok(Resolved {
                client_id: client_id.into(),
                workload: Workload::Federated {
                    issuer: "ci".into(),
                    subject: "job".into(),
                },
            })
        };
        let refused = OAuthError::invalid_client(false);
        let (client, _) =
            by_workload(&config, resolved("worker"), refused.clone()).expect("worker");
        assert_eq!(client.client_id, "worker");
        let err = by_workload(&config, resolved("web"), refused.clone()).expect_err("public");
        assert_eq!(err.code, ErrorCode::InvalidClient);
        let err = by_workload(&config, Err(WorkloadTokenError::Expired), refused.clone())
            .expect_err("expired");
        assert_eq!(err.code, ErrorCode::InvalidClient);
        let err = by_workload(&config, Err(WorkloadTokenError::KeysUnavailable), refused)
            .expect_err("keys");
        assert_eq!(err.code, ErrorCode::TemporarilyUnavailable);
    }

    /// A stand-in for the verification of a workload's token (tested in `workload_identity`):
    /// `good-for-X` acts as client X, anything else is refused.
    struct VerifyStub;

    impl VerifyWorkload for VerifyStub {
        async fn verify(
            &self,
            token: &str,
            client_id: Option<&str>,
        ) -> Result<Resolved, WorkloadTokenError> {
            use crate::issuer::workload_identity::verify::choose_client;
            let acts_as = token
                .strip_prefix("good-for-")
                .ok_or(WorkloadTokenError::Signature)?;
            let client_id = choose_client(&[acts_as.to_owned()].into(), client_id)?;
            Ok(Resolved {
                client_id,
                workload: Workload::Federated {
                    issuer: "ci".into(),
                    subject: acts_as.into(),
                },
            })
        }
    }

    const EXCHANGE: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt";
    const ASSERTION: &str =
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

    async fn client_of(headers: HeaderMap, body: &str) -> Result<(String, bool), ErrorCode> {
        let config = config();
        token_request_client(&config, &headers, &form(body), &VerifyStub)
            .await
            .map(|(client, workload)| (client.client_id.clone(), workload.is_some()))
            .map_err(|e| e.code)
    }

    #[tokio::test]
    async fn a_client_assertion_authenticates_its_client_and_a_refused_one_is_invalid_client() {
        let ok =
            format!("grant_type=client_credentials&{ASSERTION}&client_assertion=good-for-worker");
        assert_eq!(
            client_of(HeaderMap::new(), &ok).await,
            Ok(("worker".into(), true))
        );
        let bad = format!("grant_type=client_credentials&{ASSERTION}&client_assertion=forged");
        assert_eq!(
            client_of(HeaderMap::new(), &bad).await,
            Err(ErrorCode::InvalidClient)
        );
        let named = format!("{ok}&client_id=web");
        assert_eq!(
            client_of(HeaderMap::new(), &named).await,
            Err(ErrorCode::InvalidClient)
        );
    }

    #[tokio::test]
    async fn a_subject_token_alone_authenticates_a_token_exchange_and_a_refused_one_is_invalid_request()
     {
        let ok = format!("{EXCHANGE}&subject_token=good-for-worker");
        assert_eq!(
            client_of(HeaderMap::new(), &ok).await,
            Ok(("worker".into(), true))
        );
        let bad = format!("{EXCHANGE}&subject_token=forged");
        assert_eq!(
            client_of(HeaderMap::new(), &bad).await,
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            client_of(HeaderMap::new(), EXCHANGE).await,
            Err(ErrorCode::InvalidRequest),
            "no subject_token"
        );
        // A public client cannot be a workload's client.
        let public = format!("{EXCHANGE}&subject_token=good-for-web");
        assert_eq!(
            client_of(HeaderMap::new(), &public).await,
            Err(ErrorCode::InvalidRequest)
        );
    }

    #[tokio::test]
    async fn with_a_secret_as_well_the_subject_token_must_act_as_the_same_client() {
        let same = format!("{EXCHANGE}&subject_token=good-for-worker");
        assert_eq!(
            client_of(basic("worker", SECRET), &same).await,
            Ok(("worker".into(), true))
        );
        let other = format!("{EXCHANGE}&subject_token=good-for-backend");
        assert_eq!(
            client_of(basic("worker", SECRET), &other).await,
            Err(ErrorCode::InvalidRequest)
        );
        // Not a token exchange: a subject_token means nothing, the secret decides.
        assert_eq!(
            client_of(
                basic("worker", SECRET),
                "grant_type=client_credentials&subject_token=x"
            )
            .await,
            Ok(("worker".into(), false))
        );
    }
}
