//! Parsing of `application/x-www-form-urlencoded` request bodies and query strings, treating
//! every byte as hostile: bounded sizes and counts, UTF-8 only, and a parameter sent twice is an
//! `invalid_request` (RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be
//! included more than once"). Only RFC 8707's `resource` may repeat.

use super::error::OAuthError;
use std::collections::BTreeMap;

/// Largest request body accepted by the OAuth endpoints.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most parameters in one request.
pub(crate) const MAX_PARAMS: usize = 32;
/// Longest value of one parameter.
pub(crate) const MAX_VALUE_BYTES: usize = 4096;

/// Parameters that may be sent more than once.
const REPEATABLE: &[&str] = &["resource"];

/// The parameters of one request.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Form {
    params: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for Form {
    /// Parameter names only: values may be secrets, codes or tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.params.keys()).finish()
    }
}

impl Form {
    /// Parse an encoded form (a body or a query string).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, OAuthError> {
        if bytes.len() > MAX_BODY_BYTES {
            return Err(OAuthError::invalid_request("the request is too large"));
        }
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut count = 0;
        for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            count += 1;
            if count > MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let name = decode(name)?;
            let value = decode(value)?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(OAuthError::invalid_request("a parameter value is too long"));
            }
            let values = params.entry(name).or_default();
            values.push(value);
        }
        for (name, values) in &params {
            if values.len() > 1 && !REPEATABLE.contains(&name.as_str()) {
                return Err(OAuthError::invalid_request(
                    "a parameter was sent more than once",
                ));
            }
        }
        Ok(Self { params })
    }

    /// The value of a parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A parameter that must be present.
    pub(crate) fn require(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or(OAuthError::invalid_request(missing))
    }

    /// Every value of a repeatable parameter, empty values left out.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.params
            .get(name)
            .map(|v| {
                v.iter()
                    .map(String::as_str)
                    .filter(|v| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Percent-decode one component (`+` is a space), requiring UTF-8 and no control characters.
pub(crate) fn decode(raw: &[u8]) -> Result<String, OAuthError> {
    let bad = OAuthError::invalid_request("the request is not a well-formed form");
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3).ok_or_else(|| bad.clone())?;
                let text = std::str::from_utf8(hex).map_err(|_| bad.clone())?;
                out.push(u8::from_str_radix(text, 16).map_err(|_| bad.clone())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8(out).map_err(|_| bad.clone())?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(bad);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::error::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn values_are_percent_decoded_and_plus_is_a_space() {
        let form = Form::parse(b"grant_type=client_credentials&scope=a%3Aread+b&x=").expect("ok");
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("a:read b"));
        assert_eq!(form.get("x"), None);
    }

    #[test]
    fn a_repeated_parameter_is_invalid_request_but_resource_may_repeat() {
        let err = Form::parse(b"scope=a&scope=b").expect_err("repeated");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let form = Form::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").expect("ok");
        assert_eq!(form.all("resource"), ["https://a", "https://b"]);
    }

    #[test]
    fn malformed_encoding_and_limits_are_rejected() {
        for bad in [&b"a=%zz"[..], b"a=%f", b"a=%ff%fe", b"a=%00"] {
            assert_eq!(
                Form::parse(bad).expect_err("bad").code,
                ErrorCode::InvalidRequest
            );
        }
        let params = |n: usize| (0..n).map(|i| format!("p{i}=1&")).collect::<String>();
        assert!(Form::parse(params(MAX_PARAMS).as_bytes()).is_ok());
        assert_eq!(
            Form::parse(params(MAX_PARAMS + 1).as_bytes())
                .expect_err("one too many")
                .code,
            ErrorCode::InvalidRequest
        );
        let long = format!("a={}", "x".repeat(MAX_VALUE_BYTES + 1));
        assert!(Form::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn debug_shows_names_not_values() {
        let form = Form::parse(b"client_secret=hunter2hunter2").expect("ok");
        let text = format!("{form:?}");
        assert!(text.contains("client_secret") && !text.contains("hunter2"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Form::parse(&bytes);
        }

        #[test]
        fn any_encoded_pair_round_trips(name in "[a-z_]{1,20}", value in "\\PC{0,64}") {
            let encoded: String = form_urlencoded::Serializer::new(String::new())
                .append_pair(&name, &value)
                .finish();
            let form = Form::parse(encoded.as_bytes()).expect("well-formed");
            let expected = if value.is_empty() { None } else { Some(value.as_str()) };
            prop_assert_eq!(form.get(&name), expected);
        }
    }
}
