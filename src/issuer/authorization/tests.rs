use super::*;
use crate::api::{ClientType, RefreshTokenSettings, SigningAlgorithm};
use crate::config::{ApiConfig, ClientConfig};
use proptest::prelude::*;

const CB: &str = "https://app.example.com/cb";
const TODO: &str = "https://todo.example.com";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn config() -> IssuerConfig {
    let api = |audience: &str| ApiConfig {
        audience: audience.into(),
        token_expiration_seconds: 600,
        offline_access: true,
        signing_algorithm: SigningAlgorithm::Rs256,
        scopes: ["read", "write"].map(String::from).into(),
        refresh_tokens: RefreshTokenSettings::default(),
        scope_descriptions: Default::default(),
        introspection_clients: Default::default(),
    };
    let client = |id: &str, grants: &[GrantType], audiences: &[&str]| ClientConfig {
        client_id: id.into(),
        namespace: "apps".into(),
        display_name: None,
        client_type: ClientType::Public,
        secret_sha256: None,
        grant_types: grants.iter().copied().collect(),
        redirect_uris: vec![CB.into(), "https://app.example.com/cb?tenant=1".into()],
        audiences: audiences
            .iter()
            .map(|a| ((*a).to_owned(), ["read", "write"].map(String::from).into()))
            .collect(),
    };
    let code = [GrantType::AuthorizationCode, GrantType::RefreshToken];
    IssuerConfig {
        apis: [TODO, "https://other.example.com"]
            .map(|a| (a.to_owned(), api(a)))
            .into(),
        clients: [
            ("web", client("web", &code, &[TODO])),
            (
                "two",
                client("two", &code, &[TODO, "https://other.example.com"]),
            ),
            (
                "machine",
                client("machine", &[GrantType::ClientCredentials], &[TODO]),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v))
        .into(),
        workload_identity: Default::default(),
    }
}

/// A valid request for `web`, with `changes` applied (an empty value removes a parameter).
fn request(changes: &[(&str, &str)]) -> Form {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", CB),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if !value.is_empty() {
            params.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    Form::parse(query.as_bytes()).expect("well-formed")
}

fn untrusted(changes: &[(&str, &str)]) -> Untrusted {
    match validate(&config(), &request(changes)) {
        Err(Rejection::Untrusted(cause)) => cause,
        other => panic!("expected an error page, got {other:?}"),
    }
}

fn redirected(changes: &[(&str, &str)]) -> ErrorCode {
    match validate(&config(), &request(changes)) {
        Err(Rejection::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            assert_eq!(redirect_uri, CB);
            assert_eq!(state.as_deref(), Some("xyz"));
            error.code
        }
        other => panic!("expected an error redirect, got {other:?}"),
    }
}

#[test]
fn a_valid_request_is_for_the_clients_only_api_with_all_its_scopes() {
    let request = validate(&config(), &request(&[])).expect("valid");
    assert_eq!(request.client_id, "web");
    assert_eq!(request.audience, TODO);
    assert_eq!(request.scope, "read write");
    assert_eq!(request.state.as_deref(), Some("xyz"));
    assert_eq!(request.code_challenge, CHALLENGE);
    assert!(!request.offline_access());
}

#[test]
fn debug_output_leaves_out_the_clients_state_and_nonce() {
    let mut request = validate(&config(), &request(&[])).expect("valid");
    request.nonce = Some("n-0S6_WzA2Mj".to_owned());
    let shown = format!("{request:?}");
    assert!(shown.contains("client_id: \"web\""), "{shown}");
    assert!(shown.contains("state: Some(\"<given>\")"), "{shown}");
    assert!(
        !shown.contains("xyz") && !shown.contains("n-0S6_WzA2Mj"),
        "{shown}"
    );
}

#[test]
fn offline_access_is_kept_in_the_codes_scope_beside_the_api_scopes() {
    let request =
        validate(&config(), &request(&[("scope", "read offline_access")])).expect("valid");
    assert_eq!(request.scope, "offline_access read");
    assert!(request.offline_access());
    assert_eq!(request.api_scopes().collect::<Vec<_>>(), ["read"]);
}

#[test]
fn audience_or_resource_choose_the_api() {
    for name in ["audience", "resource"] {
        let request = validate(
            &config(),
            &request(&[("client_id", "two"), (name, "https://other.example.com")]),
        )
        .expect("valid");
        assert_eq!(request.audience, "https://other.example.com");
    }
    assert_eq!(
        redirected(&[("client_id", "two")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("audience", "https://nope.example.com")]),
        ErrorCode::InvalidTarget
    );
}

#[test]
fn a_bad_client_or_redirect_uri_is_never_redirected_to() {
    assert_eq!(untrusted(&[("client_id", "")]), Untrusted::MissingClientId);
    assert_eq!(
        untrusted(&[("client_id", "nobody")]),
        Untrusted::UnknownClient
    );
    assert_eq!(
        untrusted(&[("redirect_uri", "")]),
        Untrusted::MissingRedirectUri
    );
    for uri in [
        "https://evil.example.com/cb",
        "https://app.example.com/cb/",
        "https://app.example.com/CB",
        "https://app.example.com/cb?x=1",
        "https://app.example.com/cb#x",
    ] {
        assert_eq!(
            untrusted(&[("redirect_uri", uri)]),
            Untrusted::UnregisteredRedirectUri,
            "{uri}"
        );
    }
    // Even with other errors too: the redirect URI is checked first.
    assert_eq!(
        untrusted(&[
            ("redirect_uri", "https://evil.example.com/cb"),
            ("response_type", "token")
        ]),
        Untrusted::UnregisteredRedirectUri
    );
}

#[test]
fn errors_after_the_redirect_uri_is_trusted_go_back_to_the_client() {
    assert_eq!(
        redirected(&[("response_type", "")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("response_type", "token")]),
        ErrorCode::UnsupportedResponseType
    );
    assert_eq!(
        redirected(&[("response_type", "code id_token")]),
        ErrorCode::UnsupportedResponseType
    );
    assert_eq!(
        redirected(&[("response_mode", "fragment")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(redirected(&[("scope", "admin")]), ErrorCode::InvalidScope);
    assert_eq!(redirected(&[("prompt", "none")]), ErrorCode::LoginRequired);
}

#[test]
fn pkce_with_s256_is_required_and_plain_is_refused() {
    assert_eq!(
        redirected(&[("code_challenge", "")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("code_challenge_method", "")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("code_challenge_method", "plain")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("code_challenge", "too-short")]),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        redirected(&[("code_challenge", &"+".repeat(43))]),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn a_client_without_the_code_grant_is_unauthorized() {
    let mut config = config();
    if let Some(machine) = config.clients.get_mut("machine") {
        machine.redirect_uris = vec![CB.into()];
    }
    let result = validate(&config, &request(&[("client_id", "machine")]));
    assert!(
        matches!(&result, Err(Rejection::Redirect { error, .. }) if error.code == ErrorCode::UnauthorizedClient),
        "{result:?}"
    );
}

#[test]
fn the_redirect_keeps_the_registered_query_and_carries_state_and_iss() {
    let error = OAuthError::invalid_scope("nope");
    assert_eq!(
        error_url(CB, &error, Some("a b&c"), "https://issuer.test"),
        "https://app.example.com/cb?error=invalid_scope&error_description=nope&state=a+b%26c&iss=https%3A%2F%2Fissuer.test"
    );
    assert_eq!(
        redirect_url(
            "https://app.example.com/cb?tenant=1",
            &[("code", "c")],
            None,
            "https://i"
        ),
        "https://app.example.com/cb?tenant=1&code=c&iss=https%3A%2F%2Fi"
    );
    assert_eq!(
        redirect_url("https://app.example.com/cb?", &[("code", "c")], None, "i"),
        "https://app.example.com/cb?code=c&iss=i"
    );
}

proptest! {
    #[test]
    fn validation_never_panics_and_never_redirects_to_an_unregistered_uri(
        params in proptest::collection::vec(
            (
                prop_oneof![
                    Just("response_type"), Just("client_id"), Just("redirect_uri"),
                    Just("code_challenge"), Just("code_challenge_method"), Just("scope"),
                    Just("state"), Just("audience"), Just("resource"), Just("prompt"),
                ],
                prop_oneof![
                    Just("code".to_owned()), Just("web".to_owned()), Just("two".to_owned()),
                    Just(CB.to_owned()), Just(CHALLENGE.to_owned()), Just("S256".to_owned()),
                    Just(TODO.to_owned()), Just("offline_access read".to_owned()),
                    "\\PC{0,40}",
                ],
            ),
            0..10,
        )
    ) {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let Ok(form) = Form::parse(query.as_bytes()) else { return Ok(()) };
        match validate(&config(), &form) {
            Ok(request) => {
                prop_assert_eq!(form.get("response_type"), Some("code"));
                prop_assert!(config().clients[&request.client_id].redirect_uris.contains(&request.redirect_uri));
            }
            Err(Rejection::Redirect { redirect_uri, .. }) => {
                let client = &config().clients[form.get("client_id").unwrap_or_default()];
                prop_assert!(client.redirect_uris.contains(&redirect_uri));
            }
            Err(Rejection::Untrusted(_)) => {}
            Err(Rejection::Confirm { .. }) => prop_assert!(false, "validate never asks the user"),
        }
    }
}

#[test]
fn before_the_user_acts_an_error_goes_back_at_once_only_to_a_first_party_client() {
    let form = request(&[("response_type", "token")]);
    let rejection = validate(&config(), &form).expect_err("refused");
    let first_party: FirstPartyClients = "apps/web".parse().expect("valid");
    let elsewhere: FirstPartyClients = "platform/web".parse().expect("valid");
    assert!(matches!(
        unprompted(&config(), &first_party, &form, rejection.clone()),
        Rejection::Redirect { .. }
    ));
    match unprompted(&config(), &elsewhere, &form, rejection) {
        Rejection::Confirm {
            client_id,
            redirect_uri,
            state,
            error,
        } => {
            assert_eq!((client_id.as_str(), redirect_uri.as_str()), ("web", CB));
            assert_eq!(state.as_deref(), Some("xyz"));
            assert_eq!(error.code, ErrorCode::UnsupportedResponseType);
        }
        other => panic!("expected the user to be asked, got {other:?}"),
    }
    let untrusted = validate(&config(), &request(&[("client_id", "nobody")])).expect_err("no");
    assert_eq!(
        unprompted(&config(), &first_party, &form, untrusted.clone()),
        untrusted
    );
}

#[test]
fn only_a_first_party_client_skips_the_users_agreement() {
    let valid = validate(&config(), &request(&[])).expect("valid");
    let listed = |entries: &str| entries.parse::<FirstPartyClients>().expect("valid");
    assert!(skips_agreement(&config(), &listed("apps/web"), &valid));
    assert!(!skips_agreement(&config(), &listed("other/web"), &valid));
    assert!(!skips_agreement(
        &config(),
        &FirstPartyClients::default(),
        &valid
    ));
}
