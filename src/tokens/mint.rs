//! Minting RFC 9068 access tokens: a compact JWS with header `{"alg","typ":"at+jwt","kid"}`
//! and claims `iss sub aud client_id iat exp jti scope` (and `sid` for a token minted from a
//! refresh-token family), with `exp = iat + lifetime` exactly.
//!
//! The [`Minter`] holds the parsed signing keys and each key's encoded header, behind one
//! `Arc`: cloning it is cheap, and minting takes no lock and parses no key.

use super::keys::SigningKey;
use super::{Algorithm, TokenError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// Bytes of randomness in a `jti` (128 bits).
const JTI_BYTES: usize = 16;

/// What the caller decides about a token; the minter adds `iat`, `exp` and `jti`.
#[derive(Clone, Copy, Debug)]
pub struct AccessTokenClaims<'a> {
    /// `iss`: the issuer URL.
    pub issuer: &'a str,
    /// `sub`: as `crate::issuer::protocol::Subject::claim` decides it.
    pub subject: &'a str,
    /// `aud`: the policy's audience.
    pub audience: &'a str,
    /// `client_id`: the client the token was issued to.
    pub client_id: &'a str,
    /// `scope`: space-separated granted scopes (emitted as given, even when empty).
    pub scope: &'a str,
    /// `sid`: the refresh-token family the token was minted from, if any (not a secret), so
    /// that ending the family ends the token at introspection too.
    pub session: Option<&'a str>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    iat: u64,
    exp: u64,
    jti: &'a str,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
}

/// A signed access token and the values the issuer reports or stores about it.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The compact JWS.
    pub token: String,
    pub jti: String,
    pub kid: String,
    pub issued_at: u64,
    pub expires_at: u64,
    /// `sub`, for the audit trail.
    pub subject: String,
    /// `sid`: the refresh-token family, if any, for the audit trail.
    pub session: Option<String>,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a bearer credential: leave it out.
        f.debug_struct("MintedToken")
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("subject", &self.subject)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

struct Signer {
    key: Arc<SigningKey>,
    /// base64url of the JSON header, computed once.
    header: String,
}

/// Signs access tokens with the key set's active keys. Clone it freely.
#[derive(Clone, Default)]
pub struct Minter {
    signers: Arc<[Option<Signer>; 4]>,
}

impl fmt::Debug for Minter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.signers.iter().flatten().map(|s| &s.key))
            .finish()
    }
}

impl Minter {
    pub(crate) fn new(keys: [Option<Arc<SigningKey>>; 4]) -> Self {
        let signers = keys.map(|key| {
            key.map(|key| {
                let header = format!(
                    r#"{{"alg":"{}","typ":"at+jwt","kid":"{}"}}"#,
                    key.alg(),
                    key.kid()
                );
                Signer {
                    header: URL_SAFE_NO_PAD.encode(header),
                    key,
                }
            })
        });
        Minter {
            signers: Arc::new(signers),
        }
    }

    /// The key that signs `alg` tokens, if any.
    pub fn signing_key(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.signers[alg.index()].as_ref().map(|s| &*s.key)
    }

    /// Signs an access token valid from `now` for exactly `lifetime` seconds.
    pub fn mint(
        &self,
        alg: Algorithm,
        claims: &AccessTokenClaims<'_>,
        lifetime: u64,
        now: u64,
    ) -> Result<MintedToken, TokenError> {
        let signer = self.signers[alg.index()]
            .as_ref()
            .ok_or(TokenError::NoSigningKey(alg))?;
        let exp = now
            .checked_add(lifetime)
            .ok_or(TokenError::Lifetime(lifetime))?;
        let mut random = [0u8; JTI_BYTES];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| TokenError::Signing(alg))?;
        let jti = URL_SAFE_NO_PAD.encode(random);
        let payload = serde_json::to_vec(&Claims {
            iss: claims.issuer,
            sub: claims.subject,
            aud: claims.audience,
            client_id: claims.client_id,
            iat: now,
            exp,
            jti: &jti,
            scope: claims.scope,
            sid: claims.session,
        })
        .map_err(TokenError::Claims)?;

        let mut token = String::with_capacity(signer.header.len() + payload.len() * 4 / 3 + 400);
        token.push_str(&signer.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = signer.key.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(MintedToken {
            token,
            jti,
            kid: signer.key.kid().to_owned(),
            issued_at: now,
            expires_at: exp,
            subject: claims.subject.to_owned(),
            session: claims.session.map(str::to_owned),
        })
    }
}
