//! The records a store keeps and the answers it gives.
//!
//! Owns: plain data types shared by every store implementation and by their callers. Must not
//! touch I/O or read the clock: every time here is a value in unix seconds ([`UnixTime`]) that
//! the caller passed in.

use serde::{Deserialize, Serialize};

use super::secret::{FamilyId, TokenHash};

/// Seconds since the unix epoch. Every store method takes `now` as one of these.
pub type UnixTime = u64;

/// What the policy of the audience says about refresh, as it is at the moment of the request.
///
/// The issuer decides beforehand whether the policy allows refresh at all; these rules only
/// drive the store's state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshRules {
    /// `true`: every refresh retires the presented token and activates a new one.
    pub rotating: bool,
    /// A family is dead once `now >= created_at + absolute_lifetime_secs`.
    pub absolute_lifetime_secs: u64,
    /// A family is dead once `now >= last_used_at + idle_lifetime_secs`.
    pub idle_lifetime_secs: u64,
    /// A retired token presented again less than this many seconds after it was retired, whose
    /// successor has not been used, gets a fresh successor instead of revoking the family.
    pub reuse_interval_secs: u64,
}

/// What is known when a family is started (at a code exchange).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewFamily {
    /// Chosen by the caller ([`FamilyId::generate`]), since every refresh token of the family
    /// carries it ([`crate::store::OpaqueToken::generate_refresh`]).
    pub id: FamilyId,
    pub client_id: String,
    pub audience: String,
    pub subject: String,
    /// The scope granted, space-separated as in OAuth; refreshes may narrow, never widen it.
    pub scope: String,
}

/// A refresh-token family: every token obtained by refreshing one original grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub id: FamilyId,
    pub client_id: String,
    pub audience: String,
    pub subject: String,
    pub scope: String,
    /// Start of the absolute lifetime.
    pub created_at: UnixTime,
    /// Last successful refresh (or `created_at`): start of the idle lifetime.
    pub last_used_at: UnixTime,
    /// Until when the store keeps the family, computed with the rules of its last refresh:
    /// `min(created_at + absolute, last_used_at + idle)`. Clean-up removes it after that.
    pub keep_until: UnixTime,
    pub revoked: Option<Revocation>,
}

impl Family {
    /// Whether access tokens minted from this family may still be active at `now`: it is not
    /// revoked (by RFC 7009, a replay, a code used twice, or a refresh that gave up offline
    /// access) and its stored deadline has not passed. That deadline is when clean-up removes
    /// it, so the answer never depends on whether clean-up has run: a family that is gone
    /// stands no more either.
    pub fn stands_at(&self, now: UnixTime) -> bool {
        self.revoked.is_none() && now < self.keep_until
    }
}

/// Why and when a family was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason: RevocationReason,
    pub at: UnixTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevocationReason {
    /// RFC 7009 revocation request by the client.
    ClientRequest,
    /// A retired refresh token was presented again (RFC 9700 §4.14.2).
    ReplayDetected,
    /// The authorization code the family came from was used twice (RFC 6749 §4.1.2).
    CodeReplay,
}

/// One refresh token of a family, stored under the hash of its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub family: FamilyId,
    pub issued_at: UnixTime,
    /// Last time it was presented and accepted; `None` while it has never been used.
    pub last_used_at: Option<UnixTime>,
    /// When a refresh replaced it; `None` while it is the family's active token.
    pub retired_at: Option<UnixTime>,
    /// The token that replaced it.
    pub successor: Option<TokenHash>,
}

/// A refresh request as the store sees it: the presented token, the one to activate if the
/// state machine rotates, and who asks (a token of another client or audience is refused and
/// left untouched).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshRequest {
    pub presented: TokenHash,
    pub new: TokenHash,
    pub client_id: String,
    pub audience: String,
}

/// What a refresh did. Only the three first variants allow the issuer to answer with tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The presented token is retired; the request's `new` token is the family's active token.
    Rotated {
        family: Family,
    },
    /// Non-rotating rules: the presented token stays active and its last use is now.
    NonRotating {
        family: Family,
    },
    /// The presented token was retired less than the reuse interval ago and its successor was
    /// never used (a lost response): that unused successor is retired too and the request's
    /// `new` token is the active one. The lost value cannot be sent again, since only its
    /// hash is stored, so a fresh one is the only safe answer.
    ReuseWithinGrace {
        family: Family,
    },
    /// A retired token was presented outside the grace: the whole family, its newest token
    /// included, is now revoked.
    ReplayDetected {
        family_id: FamilyId,
    },
    Expired(ExpiryKind),
    Revoked,
    /// The token belongs to another client or another audience; nothing changed.
    WrongClient,
    NotFound,
}

impl RefreshOutcome {
    /// The family, when the issuer may answer with tokens.
    pub fn granted(&self) -> Option<&Family> {
        match self {
            Self::Rotated { family }
            | Self::NonRotating { family }
            | Self::ReuseWithinGrace { family } => Some(family),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryKind {
    Absolute,
    Idle,
}

/// A refresh token and its family, for introspection (RFC 7662).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenView {
    pub family: Family,
    pub token: TokenRecord,
}

impl RefreshTokenView {
    /// Active in the sense of RFC 7662: the family is alive under `rules` and this token is
    /// its current one.
    pub fn is_active(&self, now: UnixTime, rules: &RefreshRules) -> bool {
        self.family.revoked.is_none()
            && self.token.retired_at.is_none()
            && super::rotation::expiry(&self.family, now, rules).is_none()
    }
}

/// What an RFC 7009 revocation of a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The family of the token is revoked (or already was).
    Revoked {
        family_id: FamilyId,
    },
    /// The token belongs to another client; nothing changed.
    WrongClient,
    NotFound,
}

/// How long a code's row is kept after the code was exchanged, at least: the exchange records
/// what it issued ([`crate::store::Store::record_code_grant`]) after minting, in a transaction
/// of its own, and clean-up must not delete the row in between (a code exchanged in its last
/// second would otherwise see its grant revoked as if the code had been used twice). Longer
/// than any request may take.
pub(crate) const CODE_EXCHANGE_WINDOW_SECS: UnixTime = 120;

/// An authorization code, stored under the hash of its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub audience: String,
    pub scope: String,
    pub subject: String,
    /// PKCE S256 `code_challenge` (RFC 7636), as sent to `/authorize`.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: UnixTime,
}

/// What an exchange issued from a code, recorded so a second use of the code can revoke it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub access_token_jti: String,
    pub access_token_expires_at: UnixTime,
    pub family: Option<FamilyId>,
}

/// What taking a code did. A code is single-use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeOutcome {
    /// First use: the code is now consumed and here is what it was issued for.
    Valid(AuthorizationCode),
    /// Second use: what was issued from the first use is revoked (RFC 6749 §4.1.2).
    Replayed,
    Expired,
    NotFound,
}

/// How much one clean-up call removed. `more` says a call now would find more to remove.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub families: u64,
    pub refresh_tokens: u64,
    pub codes: u64,
    pub access_token_revocations: u64,
    pub sign_ins: u64,
    /// Keys whose failed sign-ins were forgotten.
    pub lockout_keys: u64,
    pub more: bool,
}
