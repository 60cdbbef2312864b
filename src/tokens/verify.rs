//! Verifying the issuer's own access tokens, for revocation (RFC 7009) and introspection
//! (RFC 7662): the signature with a published key named by `kid` (active, or retired and still
//! published), then `typ: at+jwt`, `iss` and `exp`.
//!
//! The [`Verifier`] holds the public keys only, decoded once from the key set's JWKs, so it
//! trusts exactly what the JWKS publishes. It does not decide who may see a token, nor whether
//! it was revoked: that is the issuer's and the store's business.

use super::jwk::{Jwk, JwkKey};
use super::keyset::KeySet;
use super::{Algorithm, TokenError};
use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// Longest token the verifier looks at; the issuer's tokens are well under 2 KiB.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims of a verified access token.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct VerifiedClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    pub scope: String,
    /// The refresh-token family the token was minted from, if any.
    #[serde(default)]
    pub sid: Option<String>,
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
    typ: Option<&'a str>,
    kid: Option<&'a str>,
}

enum PublicKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The SEC1 point of a P-256 key, or the 32 bytes of an Ed25519 key.
    Raw(Vec<u8>),
}

struct Entry {
    alg: Algorithm,
    kid: String,
    /// Retired keys verify only while they are published.
    publish_until: Option<u64>,
    key: PublicKey,
}

/// Verifies access tokens signed by a key set's keys. Cheap to clone.
#[derive(Clone, Default)]
pub struct Verifier {
    keys: Arc<[Entry]>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|k| (k.alg, &k.kid)))
            .finish()
    }
}

impl Verifier {
    /// A verifier for the active and next keys of `set` and its retired keys until their
    /// deadline.
    pub(crate) fn new(set: &KeySet) -> Self {
        let active = Algorithm::ALL
            .into_iter()
            .flat_map(|alg| [set.signing_key(alg), set.next_key(alg)])
            .flatten()
            .map(|key| (key.jwk(), None));
        let retired = set
            .retired()
            .iter()
            .map(|key| (&key.jwk, Some(key.publish_until)));
        let keys = active
            .chain(retired)
            .filter_map(|(jwk, publish_until)| entry(jwk, publish_until))
            .collect();
        Self { keys }
    }

    /// Checks `token` as of `now`: a compact JWS with `typ: at+jwt`, signed with the key its
    /// `kid` names using that key's algorithm, issued by `issuer`, and not expired
    /// (`now < exp`). Returns its claims.
    pub(crate) fn verify(
        &self,
        token: &str,
        issuer: &str,
        now: u64,
    ) -> Result<VerifiedClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = decode(header_b64)?;
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        let typ_ok = header.typ.is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenError::WrongType);
        }
        let alg: Algorithm = header.alg.parse().map_err(|_| TokenError::UnknownKey)?;
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let entry = self
            .keys
            .iter()
            .find(|k| k.kid == kid && k.alg == alg && k.publish_until.is_none_or(|t| now < t))
            .ok_or(TokenError::UnknownKey)?;
        let signature = decode(signature_b64)?;
        let signed = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        check_signature(entry, signed, &signature)?;
        let claims: VerifiedClaims =
            serde_json::from_slice(&decode(payload_b64)?).map_err(|_| TokenError::Malformed)?;
        if claims.iss != issuer {
            return Err(TokenError::WrongIssuer);
        }
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

fn decode(part: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)
}

fn entry(jwk: &Jwk, publish_until: Option<u64>) -> Option<Entry> {
    let key = match &jwk.key {
        JwkKey::Rsa { n, e } => PublicKey::Rsa {
            n: URL_SAFE_NO_PAD.decode(n).ok()?,
            e: URL_SAFE_NO_PAD.decode(e).ok()?,
        },
        JwkKey::Ec { x, y, .. } => {
            let mut point = vec![4];
            point.extend(URL_SAFE_NO_PAD.decode(x).ok()?);
            point.extend(URL_SAFE_NO_PAD.decode(y).ok()?);
            PublicKey::Raw(point)
        }
        JwkKey::Okp { x, .. } => PublicKey::Raw(URL_SAFE_NO_PAD.decode(x).ok()?),
    };
    Some(Entry {
        alg: jwk.alg,
        kid: jwk.kid.clone(),
        publish_until,
        key,
    })
}

fn check_signature(entry: &Entry, signed: &[u8], sig: &[u8]) -> Result<(), TokenError> {
    let ok = match (&entry.key, entry.alg) {
        (PublicKey::Rsa { n, e }, Algorithm::Rs256) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signed, sig)
            .is_ok(),
        (PublicKey::Rsa { n, e }, Algorithm::Ps256) => RsaPublicKeyComponents { n, e }
            .verify(&signature::RSA_PSS_2048_8192_SHA256, signed, sig)
            .is_ok(),
        (PublicKey::Raw(point), Algorithm::Es256) => {
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, sig)
                .is_ok()
        }
        (PublicKey::Raw(x), Algorithm::EdDsa) => UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(signed, sig)
            .is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::AccessTokenClaims;
    use crate::tokens::keys::SigningKey;

    const ISS: &str = "https://issuer.example.com";
    const NOW: u64 = 1_800_000_000;

    fn claims() -> AccessTokenClaims<'static> {
        AccessTokenClaims {
            issuer: ISS,
            subject: "alice",
            audience: "https://api.example.com",
            client_id: "web",
            scope: "read",
            session: Some("0123456789abcdef0123456789abcdef"),
        }
    }

    fn set() -> KeySet {
        crate::tokens::tests::full_set()
    }

    /// A JWS over `header` and `payload` (JSON) signed with `key`.
    fn sign(key: &SigningKey, header: &str, payload: &str) -> String {
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let sig = key.sign(token.as_bytes()).unwrap();
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(sig));
        token
    }

    #[test]
    fn tokens_of_every_algorithm_verify_until_the_second_of_their_exp() {
        let set = set();
        let (minter, verifier) = (set.minter(), set.verifier());
        for alg in Algorithm::ALL {
            let minted = minter.mint(alg, &claims(), 600, NOW).unwrap();
            let verified = verifier.verify(&minted.token, ISS, NOW + 599).unwrap();
            assert_eq!(
                verified,
                VerifiedClaims {
                    iss: ISS.into(),
                    sub: "alice".into(),
                    aud: "https://api.example.com".into(),
                    client_id: "web".into(),
                    iat: NOW,
                    exp: NOW + 600,
                    jti: minted.jti.clone(),
                    scope: "read".into(),
                    sid: Some("0123456789abcdef0123456789abcdef".into()),
                },
                "{alg}"
            );
            assert!(matches!(
                verifier.verify(&minted.token, ISS, NOW + 600),
                Err(TokenError::Expired)
            ));
        }
    }

    #[test]
    fn another_issuer_a_tampered_payload_or_garbage_is_rejected() {
        let set = set();
        let verifier = set.verifier();
        let token = set
            .minter()
            .mint(Algorithm::Es256, &claims(), 600, NOW)
            .unwrap()
            .token;
        assert!(matches!(
            verifier.verify(&token, "https://other.example.com", NOW),
            Err(TokenError::WrongIssuer)
        ));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(
            r#"{"iss":"https://issuer.example.com","sub":"mallory","aud":"a","client_id":"web","iat":1,"exp":9999999999,"jti":"x","scope":"admin"}"#,
        );
        assert!(matches!(
            verifier.verify(&parts.join("."), ISS, NOW),
            Err(TokenError::BadSignature)
        ));
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**", "opaque-refresh-token"] {
            assert!(
                matches!(
                    verifier.verify(garbage, ISS, NOW),
                    Err(TokenError::Malformed)
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn the_key_is_the_one_kid_names_with_its_own_algorithm_and_typ_must_be_at_jwt() {
        let set = set();
        let verifier = set.verifier();
        let es = set.signing_key(Algorithm::Es256).unwrap();
        let payload = r#"{"iss":"https://issuer.example.com","sub":"s","aud":"a","client_id":"c","iat":1,"exp":9999999999,"jti":"j","scope":""}"#;
        let header = |alg: &str, typ: &str| {
            format!(r#"{{"alg":"{alg}","typ":"{typ}","kid":"{}"}}"#, es.kid())
        };
        assert!(
            verifier
                .verify(&sign(es, &header("ES256", "at+jwt"), payload), ISS, NOW)
                .is_ok()
        );
        assert!(matches!(
            verifier.verify(&sign(es, &header("ES256", "JWT"), payload), ISS, NOW),
            Err(TokenError::WrongType)
        ));
        // The ES256 kid with another algorithm in the header: no such key.
        assert!(matches!(
            verifier.verify(&sign(es, &header("EdDSA", "at+jwt"), payload), ISS, NOW),
            Err(TokenError::UnknownKey)
        ));
        // A key of another key set.
        let stranger = SigningKey::generate(Algorithm::Es256, NOW).unwrap();
        let header = format!(
            r#"{{"alg":"ES256","typ":"at+jwt","kid":"{}"}}"#,
            stranger.kid()
        );
        assert!(matches!(
            verifier.verify(&sign(&stranger, &header, payload), ISS, NOW),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn a_retired_key_verifies_while_it_is_published_and_not_after() {
        let mut set = set();
        let old = set
            .minter()
            .mint(Algorithm::EdDsa, &claims(), 2_592_000, NOW)
            .unwrap();
        set.rotate(Algorithm::EdDsa, NOW + 10, 100).unwrap();
        let verifier = set.verifier();
        assert!(verifier.verify(&old.token, ISS, NOW + 109).is_ok());
        assert!(matches!(
            verifier.verify(&old.token, ISS, NOW + 110),
            Err(TokenError::UnknownKey)
        ));
        let new = set
            .minter()
            .mint(Algorithm::EdDsa, &claims(), 600, NOW + 10)
            .unwrap();
        assert!(verifier.verify(&new.token, ISS, NOW + 110).is_ok());
    }
}
