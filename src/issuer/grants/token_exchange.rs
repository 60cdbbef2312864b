//! The token exchange grant (RFC 8693) for workload identity: a workload trades its own token
//! (the subject token: a ServiceAccount's projected token, or a federated issuer's) for an
//! access token of the API it names with `audience` or `resource`.
//!
//! The subject token is verified, and the client it acts as found, before the grant runs
//! (`crate::issuer::workload_identity`, which reads the issuers' keys): it is the client's
//! credential, as a secret is for client_credentials. What is issued then is exactly what
//! client_credentials issues the same client: the token follows the target API's policy, its
//! `sub` is the client id, no refresh token (RFC 8693 §2.2.1 makes it optional, and a workload
//! holds a renewable credential already). No `act` claim: nobody acts on the subject's behalf
//! (that would be an `actor_token`, which is refused), the workload *is* the client.

use super::{Context, Issued, Target, client_credentials};
use crate::issuer::error::{ErrorCode, OAuthError};
use crate::issuer::form::Form;

/// `grant_type` of a token exchange.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The only subject token type accepted: a JWT (RFC 8693 §3).
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// What is issued: an access token (RFC 8693 §3), as `issued_token_type` says.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A token exchange request: its target, the subject token checked to be a JWT. The subject
/// token itself is verified before (it authenticated the client) and kept out of `Debug`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exchange<'f> {
    pub target: Target<'f>,
}

impl<'f> Exchange<'f> {
    /// RFC 8693 §2.1: `subject_token` and `subject_token_type` (a JWT) are required;
    /// `requested_token_type`, if sent, asks for an access token; `actor_token` (delegation)
    /// is not supported.
    pub(crate) fn parse(form: &'f Form, target: Target<'f>) -> Result<Self, OAuthError> {
        form.require("subject_token", "subject_token is required")?;
        let kind = form.require("subject_token_type", "subject_token_type is required")?;
        if kind != JWT_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(
                "subject_token_type must be urn:ietf:params:oauth:token-type:jwt",
            ));
        }
        if form
            .get("requested_token_type")
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != JWT_TOKEN_TYPE)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "requested_token_type: only access tokens are issued",
            ));
        }
        if form.get("actor_token").is_some() || form.get("actor_token_type").is_some() {
            return Err(OAuthError::invalid_request(
                "actor_token is not supported: the workload is the client",
            ));
        }
        Ok(Self { target })
    }
}

/// Issue the client's token for the API the exchange names.
pub(crate) fn issue<S>(cx: &Context<'_, S>, exchange: &Exchange<'_>) -> Result<Issued, OAuthError> {
    let mut issued = client_credentials::issue(cx, &exchange.target)?;
    issued.issued_token_type = Some(ACCESS_TOKEN_TYPE);
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(), ErrorCode> {
        let form = Form::parse(body.as_bytes()).expect("form");
        Exchange::parse(&form, Target::default())
            .map(drop)
            .map_err(|e| e.code)
    }

    const JWT: &str =
        "subject_token=a.b.c&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt";

    #[test]
    fn a_jwt_subject_token_is_exchanged_for_an_access_token_and_nothing_else() {
        assert_eq!(parse(JWT), Ok(()));
        let access = "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";
        assert_eq!(parse(&format!("{JWT}&{access}")), Ok(()));
        let refresh =
            "requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token";
        assert_eq!(
            parse(&format!("{JWT}&{refresh}")),
            Err(ErrorCode::InvalidRequest)
        );
        assert_eq!(
            parse("subject_token=a.b.c"),
            Err(ErrorCode::InvalidRequest),
            "no subject_token_type"
        );
        let saml =
            "subject_token=x&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Asaml2";
        assert_eq!(parse(saml), Err(ErrorCode::InvalidRequest));
        assert_eq!(
            parse(&format!("{JWT}&actor_token=d.e.f")),
            Err(ErrorCode::InvalidRequest),
            "no delegation"
        );
    }
}
