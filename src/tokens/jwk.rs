//! Public JSON Web Keys (RFC 7517) and the key set document served at
//! `/.well-known/jwks.json`, plus the RFC 7638 thumbprint that names each key (`kid`).
//!
//! Only public parameters exist in these types: a `Jwk` cannot carry private key material.

use super::Algorithm;
use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The key-type specific public parameters of a JWK, tagged by `kty`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kty")]
pub enum JwkKey {
    /// RSA public key (RFC 7518 §6.3.1): modulus and exponent, base64url big-endian.
    #[serde(rename = "RSA")]
    Rsa { n: String, e: String },
    /// Elliptic-curve public key (RFC 7518 §6.2.1); `crv` is `P-256`.
    #[serde(rename = "EC")]
    Ec { crv: String, x: String, y: String },
    /// Octet key pair (RFC 8037 §2); `crv` is `Ed25519`.
    #[serde(rename = "OKP")]
    Okp { crv: String, x: String },
}

impl JwkKey {
    /// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order,
    /// base64url without padding.
    pub(crate) fn thumbprint(&self) -> String {
        // The members are base64url strings and fixed names, so no JSON escaping is needed.
        let canonical = match self {
            JwkKey::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            JwkKey::Ec { crv, x, y } => {
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            JwkKey::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
    }
}

/// One public signing key as published: `kty` and its parameters, `use: sig`, `alg`, `kid`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(flatten)]
    pub key: JwkKey,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: Algorithm,
    pub kid: String,
}

impl Jwk {
    /// A signing JWK for `alg` whose `kid` is the key's RFC 7638 thumbprint.
    pub(crate) fn new(alg: Algorithm, key: JwkKey) -> Self {
        let kid = key.thumbprint();
        Jwk {
            key,
            use_: "sig".to_owned(),
            alg,
            kid,
        }
    }
}

/// A JWK Set (RFC 7517 §5): `{"keys": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_key_has_the_thumbprint_the_rfc_gives() {
        // RFC 7638 §3.1.
        let key = JwkKey::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".to_owned(),
            e: "AQAB".to_owned(),
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn jwk_serialises_with_use_sig_and_no_private_members() {
        let jwk = Jwk::new(
            Algorithm::EdDsa,
            JwkKey::Okp {
                crv: "Ed25519".into(),
                x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
            },
        );
        let value = serde_json::to_value(&jwk).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "use": "sig", "alg": "EdDSA",
                "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
            })
        );
        let back: Jwk = serde_json::from_value(value).unwrap();
        assert_eq!(back, jwk);
    }
}
