//! Client authentication (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`, and
//! public clients that send only `client_id` (and prove themselves with PKCE). Secrets are
//! compared as SHA-256 hashes in constant time; an unknown client costs the same work.

use super::error::OAuthError;
use super::form::Form;
use crate::api::ClientType;
use crate::config::{ClientConfig, IssuerConfig, hash_client_secret};
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
}
