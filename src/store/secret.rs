//! Opaque secrets and the keys they are stored under.
//!
//! Owns: generating opaque refresh tokens and authorization codes (256 bits from the operating
//! system's CSPRNG, base64url without padding), the keys they are stored under (hashes), and
//! the identifiers of refresh-token families. Must not touch storage: only the hash of a secret
//! ever reaches a store, and no `Debug` or `Display` here shows a secret.
//!
//! A refresh token also names its family: it is the family id (16 bytes, not secret) followed
//! by the 256 random bits, base64url-encoded (64 characters). Its key is that family id
//! followed by the first 16 bytes of the SHA-256 of the whole value ([`OpaqueToken::refresh_key`]),
//! so a store ordered by key keeps a family's tokens side by side: a rotation then rewrites
//! one region of the store rather than two random ones, which is most of what a refresh costs
//! on the embedded store (docs/benchmarks.md). A value of any other shape, such as a refresh
//! token issued before this format, is keyed by its plain SHA-256, as codes are.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::fmt;

use super::StoreError;

/// Bytes of randomness in every opaque token and authorization code (256 bits).
pub(crate) const SECRET_BYTES: usize = 32;

/// Bytes of a refresh token's value before encoding: its family id, then the secret.
const REFRESH_BYTES: usize = 16 + SECRET_BYTES;

/// An opaque refresh token or authorization code, as handed to or presented by a client.
///
/// Its `Debug` never shows the value; read it only to put it into a response with
/// [`OpaqueToken::expose`]. It has no `PartialEq` on purpose: compare hashes, or look them up.
#[derive(Clone)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    /// A fresh secret: 256 bits from the CSPRNG, base64url-encoded without padding (43 chars).
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; SECRET_BYTES];
        random(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A fresh refresh token of `family`: its id, then 256 bits from the CSPRNG, base64url
    /// without padding (64 chars). Store it under [`OpaqueToken::refresh_key`].
    pub fn generate_refresh(family: FamilyId) -> Result<Self, StoreError> {
        let mut bytes = [0u8; REFRESH_BYTES];
        bytes[..16].copy_from_slice(&family.0);
        random(&mut bytes[16..])?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Wraps a value a client presented, so it is handled as a secret from here on.
    pub fn from_presented(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key it is stored and looked up under, as a code or any other secret.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.0.as_bytes())
    }

    /// The key it is stored and looked up under, as a refresh token: the family id it names
    /// and the first half of its SHA-256 (see the module's comment); the plain SHA-256 for a
    /// value of another shape.
    pub fn refresh_key(&self) -> TokenHash {
        let mut bytes = [0u8; REFRESH_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(&self.0, &mut bytes) {
            Ok(REFRESH_BYTES) => {
                let digest = TokenHash::of(self.0.as_bytes());
                let mut key = [0u8; 32];
                key[..16].copy_from_slice(&bytes[..16]);
                key[16..].copy_from_slice(&digest.0[..16]);
                TokenHash(key)
            }
            _ => self.hash(),
        }
    }
}

pub(crate) fn random(out: &mut [u8]) -> Result<(), StoreError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| StoreError::Entropy)
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

/// SHA-256 of an opaque token or code (for a refresh token, its family id and half of that):
/// the only form in which one is stored.
///
/// Lookups are by exact key in the store, so no secret is ever compared in this process.
/// `Debug` shows a short prefix, enough to correlate log lines and useless to an attacker.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// SHA-256 of `secret`.
    pub(crate) fn of(secret: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Self(out)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", hex(&self.0[..4]))
    }
}

impl Serialize for TokenHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a token hash has 32 bytes"))?;
        Ok(Self(array))
    }
}

/// Identifier of a refresh-token family: 128 random bits, shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(pub [u8; 16]);

impl FamilyId {
    /// A fresh random identifier.
    pub fn generate() -> Result<Self, StoreError> {
        let mut bytes = [0u8; 16];
        random(&mut bytes)?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FamilyId({self})")
    }
}

impl Serialize for FamilyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl std::str::FromStr for FamilyId {
    type Err = &'static str;

    /// 32 hex digits, as [`fmt::Display`] writes them (and an access token's `sid` carries).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const SHAPE: &str = "a family id has 32 hex digits";
        let mut out = [0u8; 16];
        if text.len() != 32 || !text.is_ascii() {
            return Err(SHAPE);
        }
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| SHAPE)?;
        }
        Ok(Self(out))
    }
}

impl<'de> Deserialize<'de> for FamilyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_256_bits_as_unpadded_base64url() {
        let token = OpaqueToken::generate().unwrap();
        assert_eq!(token.expose().len(), 43);
        let decoded = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(decoded.len(), SECRET_BYTES);
        assert_ne!(token.hash(), OpaqueToken::generate().unwrap().hash());
    }

    #[test]
    fn refresh_tokens_name_their_family_and_are_keyed_next_to_its_other_tokens() {
        let family = FamilyId::generate().unwrap();
        let token = OpaqueToken::generate_refresh(family).unwrap();
        assert_eq!(token.expose().len(), 64);
        let decoded = URL_SAFE_NO_PAD.decode(token.expose()).unwrap();
        assert_eq!(decoded[..16], family.0);

        let key = token.refresh_key();
        let sibling = OpaqueToken::generate_refresh(family).unwrap().refresh_key();
        assert_eq!(key.0[..16], family.0);
        assert_eq!(sibling.0[..16], family.0);
        assert_ne!(key, sibling);
        // The rest of the key is half of the SHA-256 of the whole value, not of the secret alone.
        assert_eq!(key.0[16..], token.hash().0[..16]);
        // Presented again (from the client), the same value gives the same key.
        let presented = OpaqueToken::from_presented(token.expose().to_owned());
        assert_eq!(presented.refresh_key(), key);
    }

    #[test]
    fn a_value_of_another_shape_is_keyed_by_its_plain_hash() {
        let legacy = OpaqueToken::generate().unwrap();
        assert_eq!(legacy.refresh_key(), legacy.hash());
        for odd in [
            "",
            "not base64 at all but 64 characters long, padded out to be that.",
            "a",
        ] {
            let odd = OpaqueToken::from_presented(odd);
            assert_eq!(odd.refresh_key(), odd.hash());
        }
        let too_long = OpaqueToken::from_presented("A".repeat(68));
        assert_eq!(too_long.refresh_key(), too_long.hash());
    }

    #[test]
    fn debug_of_a_token_never_shows_its_value() {
        let token = OpaqueToken::from_presented("s3cr3t-value");
        let shown = format!("{token:?} {:?}", token.hash());
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn hash_is_sha256_of_the_token_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let hash = OpaqueToken::from_presented("abc").hash();
        assert_eq!(
            hex(&hash.0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn family_ids_and_hashes_round_trip_through_serde() {
        let id = FamilyId::generate().unwrap();
        let hash = OpaqueToken::generate().unwrap().hash();
        let text = serde_json::to_string(&(id, hash)).unwrap();
        let back: (FamilyId, TokenHash) = serde_json::from_str(&text).unwrap();
        assert_eq!(back, (id, hash));
    }
}
