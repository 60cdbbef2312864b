//! The time claims of a JWT that another party signed (an upstream provider's ID token, a
//! workload's token): `exp` required and not past, `iat` required and not in the future, `nbf`
//! honoured when present (RFC 7519 §4.1.5), each with the caller's clock skew.

use serde_json::Value;

/// The time claim a token fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeClaim {
    /// `exp` missing, not a number, or at or before `now - skew`.
    Expired,
    /// `iat` missing, not a number, or after `now + skew`.
    IssuedAt,
    /// `nbf` not a number, or after `now + skew`.
    NotYetValid,
}

/// Check `exp`, `iat` and `nbf` of `claims` at `now` (unix seconds), allowing `skew` seconds.
pub(crate) fn check(claims: &Value, now: u64, skew: u64) -> Result<(), TimeClaim> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(TimeClaim::Expired)?;
    if now >= exp.saturating_add(skew) {
        return Err(TimeClaim::Expired);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or(TimeClaim::IssuedAt)?;
    if iat > now.saturating_add(skew) {
        return Err(TimeClaim::IssuedAt);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_u64().ok_or(TimeClaim::NotYetValid)?;
        if nbf > now.saturating_add(skew) {
            return Err(TimeClaim::NotYetValid);
        }
    }
    Ok(())
}
