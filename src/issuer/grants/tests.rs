//! The grants against a real embedded store that fails where a test says
//! ([`crate::store::failing`]): code replay, the order of the store writes, and what a failure
//! at each write leaves (503 `temporarily_unavailable`, and no token).

use super::*;
use crate::api::{ClientType, RefreshTokenSettings, SigningAlgorithm};
use crate::issuer::routes::respond;
use crate::store::AuthorizationCode;
use crate::store::failing::{Call, FailingStore, Race};
use crate::store::model::RevocationReason;
use crate::tokens::KeySet;
use axum::http::StatusCode;

const T: u64 = 1_800_000_000;
const API: &str = "https://api.example.com";
const REDIRECT: &str = "https://app.example.com/cb";
/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A public client with the code and refresh grants, at one API that allows offline access.
struct Bed {
    store: FailingStore,
    config: IssuerConfig,
    client: ClientConfig,
    minter: Minter,
    reuse_detected: Counter,
}

impl Bed {
    fn new() -> Self {
        let api = ApiConfig {
            audience: API.into(),
            token_expiration_seconds: 600,
            offline_access: true,
            signing_algorithm: SigningAlgorithm::Es256,
            scopes: ["read", "write"].map(String::from).into(),
            refresh_tokens: RefreshTokenSettings::default(),
            scope_descriptions: Default::default(),
            introspection_clients: Default::default(),
        };
        let client = ClientConfig {
            client_id: "apps.web".into(),
            namespace: "apps".into(),
            display_name: None,
            client_type: ClientType::Public,
            secret_sha256: None,
            grant_types: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
            redirect_uris: vec![REDIRECT.into()],
            audiences: [(API.to_owned(), ["read", "write"].map(String::from).into())].into(),
        };
        let config = IssuerConfig {
            apis: [(API.to_owned(), api)].into(),
            clients: [(client.client_id.clone(), client.clone())].into(),
            workload_identity: Default::default(),
        };
        let mut keys = KeySet::new();
        keys.ensure(&[SigningAlgorithm::Es256], T).expect("a key");
        Self {
            store: FailingStore::new(),
            config,
            client,
            minter: keys.minter(),
            reuse_detected: Counter::default(),
        }
    }

    fn context(&self, now: u64) -> Context<'_, FailingStore> {
        Context {
            config: &self.config,
            client: &self.client,
            store: &self.store,
            minter: &self.minter,
            issuer_url: "https://issuer.example.com",
            now,
            refresh_reuse_detected: &self.reuse_detected,
        }
    }

    /// A code for the client, as a finished sign-in stores it.
    async fn code(&self, scope: &str) -> String {
        let code = OpaqueToken::generate().expect("random");
        let stored = AuthorizationCode {
            client_id: self.client.client_id.clone(),
            redirect_uri: REDIRECT.into(),
            audience: API.into(),
            scope: scope.into(),
            subject: "alice".into(),
            code_challenge: CHALLENGE.into(),
            nonce: None,
            expires_at: T + 60,
        };
        self.store
            .inner()
            .put_code(code.hash(), stored)
            .await
            .expect("stored");
        code.expose().to_owned()
    }

    async fn exchange(&self, code: &str, now: u64) -> Result<Issued, OAuthError> {
        let exchange = authorization_code::CodeExchange {
            code,
            redirect_uri: REDIRECT,
            code_verifier: VERIFIER,
            target: Target::default(),
        };
        authorization_code::issue(&self.context(now), &exchange).await
    }

    async fn refresh(
        &self,
        token: &OpaqueToken,
        scope: Option<&str>,
        now: u64,
    ) -> Result<Issued, OAuthError> {
        let refresh = refresh_token::Refresh {
            refresh_token: token.expose(),
            target: Target {
                scope,
                ..Target::default()
            },
        };
        refresh_token::issue(&self.context(now), &refresh).await
    }

    /// A refresh token of a new family, and forget the calls that made it.
    async fn refresh_token(&self) -> OpaqueToken {
        let code = self.code("read offline_access").await;
        let issued = self.exchange(&code, T).await.expect("issued");
        self.store.take_calls();
        issued.refresh_token.expect("a refresh token")
    }

    async fn is_stored(&self, token: &OpaqueToken) -> bool {
        refresh_token::find(self.store.inner(), token.expose())
            .await
            .expect("readable")
            .is_some()
    }

    async fn family_revocation(&self, token: &OpaqueToken) -> Option<RevocationReason> {
        let (_, view) = refresh_token::find(self.store.inner(), token.expose())
            .await
            .expect("readable")
            .expect("stored");
        view.family.revoked.map(|r| r.reason)
    }
}

/// What a store that cannot be reached leaves a client with: 503 `temporarily_unavailable`.
fn assert_unavailable(result: Result<Issued, OAuthError>) {
    let error = result.expect_err("no token while the store fails");
    assert_eq!(error, OAuthError::unavailable());
    assert_eq!(respond::status(&error), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_code_exchanged_twice_revokes_what_the_first_exchange_issued() {
    let bed = Bed::new();
    let code = bed.code("read offline_access").await;
    let first = bed.exchange(&code, T).await.expect("first exchange");
    let refresh = first.refresh_token.expect("offline access was granted");
    let inner = bed.store.inner();
    assert!(
        !inner
            .is_access_token_revoked(&first.access_token.jti, T)
            .await
            .expect("readable")
    );

    let second = bed.exchange(&code, T + 1).await;

    assert_eq!(second.expect_err("replayed"), authorization_code::REPLAYED);
    assert!(
        inner
            .is_access_token_revoked(&first.access_token.jti, T + 1)
            .await
            .expect("readable"),
        "the access token of the first exchange is revoked"
    );
    assert_eq!(
        bed.family_revocation(&refresh).await,
        Some(RevocationReason::CodeReplay)
    );
    let error = bed
        .refresh(&refresh, None, T + 2)
        .await
        .expect_err("revoked");
    assert_eq!(error.code, ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn a_code_replayed_while_its_first_exchange_runs_leaves_that_exchange_without_a_token() {
    let bed = Bed::new();
    let code = bed.code("read offline_access").await;
    let hash = OpaqueToken::from_presented(code.as_str()).hash();
    bed.store
        .race_before(Call::RecordCodeGrant, Race::TakeCode(hash, T));

    let first = bed.exchange(&code, T).await;

    assert_eq!(first.expect_err("replayed"), authorization_code::REPLAYED);
    assert_eq!(
        bed.store.take_calls(),
        [Call::TakeCode, Call::CreateFamily, Call::RecordCodeGrant]
    );
}

#[tokio::test]
async fn a_code_exchange_stores_the_family_then_records_the_grant_before_it_returns_tokens() {
    let bed = Bed::new();
    let code = bed.code("read offline_access").await;

    let issued = bed.exchange(&code, T).await.expect("issued");

    assert_eq!(
        bed.store.take_calls(),
        [Call::TakeCode, Call::CreateFamily, Call::RecordCodeGrant]
    );
    assert_eq!(issued.scope, "offline_access read");
    assert!(
        bed.is_stored(issued.refresh_token.as_ref().expect("refresh"))
            .await
    );
}

#[tokio::test]
async fn a_code_exchange_whose_family_cannot_be_stored_returns_no_token_and_spends_the_code() {
    let bed = Bed::new();
    let code = bed.code("read offline_access").await;
    bed.store.fail_at(Call::CreateFamily);

    assert_unavailable(bed.exchange(&code, T).await);

    assert_eq!(bed.store.take_calls(), [Call::TakeCode, Call::CreateFamily]);
    bed.store.recover();
    let again = bed.exchange(&code, T + 1).await;
    assert_eq!(again.expect_err("spent"), authorization_code::REPLAYED);
}

#[tokio::test]
async fn a_code_exchange_whose_grant_cannot_be_recorded_returns_no_token() {
    let bed = Bed::new();
    let code = bed.code("read").await;
    bed.store.fail_at(Call::RecordCodeGrant);

    assert_unavailable(bed.exchange(&code, T).await);

    assert_eq!(
        bed.store.take_calls(),
        [Call::TakeCode, Call::RecordCodeGrant]
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_before_it_is_returned() {
    let bed = Bed::new();
    let presented = bed.refresh_token().await;
    bed.store.fail_at(Call::Refresh);

    assert_unavailable(bed.refresh(&presented, None, T + 10).await);

    assert_eq!(
        bed.store.take_calls(),
        [Call::LookupRefreshToken, Call::Refresh]
    );
    bed.store.recover();
    let issued = bed
        .refresh(&presented, None, T + 20)
        .await
        .expect("the failed refresh retired nothing");
    let new = issued.refresh_token.expect("rotated");
    assert_ne!(new.expose(), presented.expose());
    assert!(bed.is_stored(&new).await, "stored when it is returned");
    assert_eq!(issued.scope, "offline_access read");
}

#[tokio::test]
async fn giving_up_offline_access_revokes_the_family_before_the_access_token_is_returned() {
    let bed = Bed::new();
    let presented = bed.refresh_token().await;

    let issued = bed
        .refresh(&presented, Some("read"), T + 10)
        .await
        .expect("issued");

    assert!(issued.refresh_token.is_none());
    assert_eq!(issued.scope, "read");
    assert_eq!(
        bed.store.take_calls(),
        [
            Call::LookupRefreshToken,
            Call::Refresh,
            Call::RevokeRefreshToken
        ]
    );
    assert_eq!(
        bed.family_revocation(&presented).await,
        Some(RevocationReason::ClientRequest)
    );
}

#[tokio::test]
async fn giving_up_offline_access_while_the_family_cannot_be_revoked_returns_no_token() {
    let bed = Bed::new();
    let presented = bed.refresh_token().await;
    bed.store.fail_at(Call::RevokeRefreshToken);

    assert_unavailable(bed.refresh(&presented, Some("read"), T + 10).await);

    assert_eq!(
        bed.store.take_calls(),
        [
            Call::LookupRefreshToken,
            Call::Refresh,
            Call::RevokeRefreshToken
        ]
    );
}

#[tokio::test]
async fn a_retired_refresh_token_presented_again_revokes_its_family_and_is_counted() {
    let bed = Bed::new();
    let retired = bed.refresh_token().await;
    let active = bed
        .refresh(&retired, None, T + 10)
        .await
        .expect("rotated")
        .refresh_token
        .expect("rotated");

    let replay = bed.refresh(&retired, None, T + 20).await;

    assert_eq!(replay.expect_err("replay").code, ErrorCode::InvalidGrant);
    assert_eq!(bed.reuse_detected.get(), 1);
    assert_eq!(
        bed.family_revocation(&active).await,
        Some(RevocationReason::ReplayDetected)
    );
    let error = bed
        .refresh(&active, None, T + 30)
        .await
        .expect_err("revoked");
    assert_eq!(error.code, ErrorCode::InvalidGrant);
    assert_eq!(bed.reuse_detected.get(), 1, "a revoked family is no replay");
}

#[test]
fn a_client_hears_that_it_may_not_use_a_grant_before_it_hears_what_the_grant_lacks() {
    let bed = Bed::new();
    let form = Form::parse(b"grant_type=client_credentials").expect("form");
    let error = TokenRequest::parse(&form, &bed.client).expect_err("not allowed");
    assert_eq!(error.code, ErrorCode::UnauthorizedClient);

    let form = Form::parse(b"grant_type=authorization_code&code=c").expect("form");
    let error = TokenRequest::parse(&form, &bed.client).expect_err("incomplete");
    assert_eq!(
        error,
        OAuthError::invalid_request("redirect_uri is required")
    );

    let form = Form::parse(b"grant_type=password").expect("form");
    let error = TokenRequest::parse(&form, &bed.client).expect_err("unsupported");
    assert_eq!(error.code, ErrorCode::UnsupportedGrantType);
}

mod sign_in;
