//! One signing key: generation from the CSPRNG, PKCS#8 PEM import and export, the public JWK
//! with its RFC 7638 `kid`, and the raw JWS signature.
//!
//! The parsed key pair is kept, so signing never re-parses key material. `Debug` prints the
//! algorithm and `kid` only.

use super::jwk::{Jwk, JwkKey};
use super::{Algorithm, TokenError};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::fmt;
use zeroize::Zeroizing;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

enum Pair {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private signing key for one algorithm, with its public JWK.
pub struct SigningKey {
    alg: Algorithm,
    created_at: u64,
    pair: Pair,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.jwk.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the system CSPRNG: RSA 2048 for RS256 and PS256, P-256 for ES256,
    /// Ed25519 for EdDSA.
    pub(crate) fn generate(alg: Algorithm, now: u64) -> Result<Self, TokenError> {
        let failed = |_| TokenError::KeyGeneration(alg);
        let pair = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                Pair::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?)
            }
            Algorithm::Es256 => Pair::Ecdsa(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?,
            ),
            Algorithm::EdDsa => Pair::Ed25519(Ed25519KeyPair::generate().map_err(failed)?),
        };
        Self::from_pair(alg, pair, now).ok_or(TokenError::KeyGeneration(alg))
    }

    /// Parses an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`) for `alg`.
    /// The error says what is wrong without repeating any of the input.
    #[cfg(test)]
    pub(crate) fn from_pkcs8_pem(
        alg: Algorithm,
        pem: &str,
        created_at: u64,
    ) -> Result<Self, TokenError> {
        Self::parse_pem(alg, pem, created_at)
            .map_err(|reason| TokenError::KeyRejected { alg, reason })
    }

    pub(crate) fn parse_pem(alg: Algorithm, pem: &str, created_at: u64) -> Result<Self, String> {
        let body = pem
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|rest| rest.strip_suffix(PEM_END))
            .ok_or_else(|| format!("not a PEM block between {PEM_BEGIN} and {PEM_END}"))?;
        let b64: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_whitespace()).collect());
        let der = Zeroizing::new(
            STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| "the PEM body is not valid base64".to_owned())?,
        );
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            format!(
                "not a valid {alg} PKCS#8 private key ({})",
                e.description_()
            )
        };
        let pair = match alg {
            Algorithm::Rs256 | Algorithm::Ps256 => {
                let pair = RsaKeyPair::from_pkcs8(&der).map_err(rejected)?;
                if pair.public_modulus_len() < 256 {
                    return Err("RSA keys must have at least 2048 bits".to_owned());
                }
                Pair::Rsa(pair)
            }
            Algorithm::Es256 => Pair::Ecdsa(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(rejected)?,
            ),
            Algorithm::EdDsa => Pair::Ed25519(Ed25519KeyPair::from_pkcs8(&der).map_err(rejected)?),
        };
        Self::from_pair(alg, pair, created_at)
            .ok_or_else(|| "the public key could not be derived".to_owned())
    }

    /// The private key as unencrypted PKCS#8 v1 PEM, wiped from memory when dropped.
    pub(crate) fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, TokenError> {
        let failed = |_| TokenError::KeyEncoding(self.alg);
        let der = match &self.pair {
            Pair::Rsa(pair) => Zeroizing::new(pair.as_der().map_err(failed)?.as_ref().to_vec()),
            Pair::Ecdsa(pair) => {
                Zeroizing::new(pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec())
            }
            Pair::Ed25519(pair) => {
                Zeroizing::new(pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec())
            }
        };
        let b64 = Zeroizing::new(STANDARD.encode(&*der));
        let mut pem = Zeroizing::new(String::with_capacity(b64.len() + b64.len() / 64 + 64));
        pem.push_str(PEM_BEGIN);
        pem.push('\n');
        for line in b64.as_bytes().chunks(64) {
            // base64 output is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).map_err(|_| TokenError::KeyEncoding(self.alg))?);
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        Ok(pem)
    }

    fn from_pair(alg: Algorithm, pair: Pair, created_at: u64) -> Option<Self> {
        let key = match &pair {
            Pair::Rsa(pair) => {
                let public = pair.public_key();
                JwkKey::Rsa {
                    n: URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    e: URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                }
            }
            Pair::Ecdsa(pair) => {
                // Uncompressed SEC1 point: 0x04 || x || y, 32 bytes each on P-256.
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return None;
                }
                JwkKey::Ec {
                    crv: "P-256".to_owned(),
                    x: URL_SAFE_NO_PAD.encode(&point[1..33]),
                    y: URL_SAFE_NO_PAD.encode(&point[33..65]),
                }
            }
            Pair::Ed25519(pair) => JwkKey::Okp {
                crv: "Ed25519".to_owned(),
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            },
        };
        Some(SigningKey {
            alg,
            created_at,
            pair,
            jwk: Jwk::new(alg, key),
        })
    }

    pub(crate) fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The RFC 7638 thumbprint of the public key, base64url.
    pub(crate) fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// When the key was made (unix seconds).
    pub(crate) fn created_at(&self) -> u64 {
        self.created_at
    }

    /// The public key as published in the JWKS.
    pub(crate) fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The JWS signature of `msg` (RFC 7518: PKCS#1 v1.5 or PSS for RSA, r||s for ECDSA,
    /// the 64-byte Ed25519 signature).
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, TokenError> {
        let failed = |_| TokenError::Signing(self.alg);
        match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn signature::RsaEncoding = match self.alg {
                    Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &SystemRandom::new(), msg, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
            Pair::Ecdsa(pair) => Ok(pair
                .sign(&SystemRandom::new(), msg)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Pair::Ed25519(pair) => Ok(pair.try_sign(msg).map_err(failed)?.as_ref().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_generates_a_key_that_survives_a_pem_round_trip() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg, 7).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            assert!(pem.starts_with(PEM_BEGIN), "{alg}");
            let back = SigningKey::from_pkcs8_pem(alg, &pem, 7).unwrap();
            assert_eq!(back.jwk(), key.jwk(), "{alg}");
            assert_eq!(back.kid(), key.jwk().key.thumbprint(), "{alg}");
        }
    }

    #[test]
    fn rsa_keys_are_2048_bits_and_ec_keys_are_p256() {
        let rsa = SigningKey::generate(Algorithm::Rs256, 0).unwrap();
        let JwkKey::Rsa { n, e } = &rsa.jwk().key else {
            panic!("not RSA")
        };
        assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len(), 256);
        assert_eq!(e, "AQAB");
        let ec = SigningKey::generate(Algorithm::Es256, 0).unwrap();
        assert!(matches!(&ec.jwk().key, JwkKey::Ec { crv, .. } if crv == "P-256"));
    }

    #[test]
    fn two_generated_keys_differ() {
        for alg in Algorithm::ALL {
            let a = SigningKey::generate(alg, 0).unwrap();
            let b = SigningKey::generate(alg, 0).unwrap();
            assert_ne!(a.kid(), b.kid(), "{alg}");
        }
    }

    #[test]
    fn debug_output_shows_the_kid_and_no_private_material() {
        for alg in Algorithm::ALL {
            let key = SigningKey::generate(alg, 0).unwrap();
            let debug = format!("{key:?} {key:#?}");
            assert!(debug.contains(key.kid()), "{debug}");
            let pem = key.to_pkcs8_pem().unwrap();
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            // No 16-character window of the private key's encoding shows up.
            for window in body.as_bytes().windows(16).step_by(8) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!debug.contains(window), "{alg}: {debug}");
            }
            assert!(!debug.contains("PRIVATE"), "{debug}");
        }
    }

    #[test]
    fn a_key_of_the_wrong_type_is_rejected_with_a_reason() {
        let ed = SigningKey::generate(Algorithm::EdDsa, 0).unwrap();
        let pem = ed.to_pkcs8_pem().unwrap();
        let err = SigningKey::from_pkcs8_pem(Algorithm::Es256, &pem, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not a valid ES256 PKCS#8 private key"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_pem_is_rejected_without_echoing_it() {
        let garbage = format!("{PEM_BEGIN}\nnot*base64*SECRETSAUCE\n{PEM_END}\n");
        let err = SigningKey::parse_pem(Algorithm::Rs256, &garbage, 0).unwrap_err();
        assert!(err.contains("not valid base64"), "{err}");
        assert!(!err.contains("SECRETSAUCE"));
        let truncated = format!("{PEM_BEGIN}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n{PEM_END}\n");
        let err = SigningKey::parse_pem(Algorithm::Rs256, &truncated, 0).unwrap_err();
        assert!(
            err.contains("not a valid RS256 PKCS#8 private key"),
            "{err}"
        );
        let err = SigningKey::parse_pem(Algorithm::Rs256, "hello", 0).unwrap_err();
        assert!(err.contains("not a PEM block"), "{err}");
    }
}
