use super::*;
use crate::api::{ClientType, RefreshTokenSettings, SigningAlgorithm};
use crate::issuer::error::ErrorCode;
use std::collections::BTreeMap;

fn api(audience: &str, offline: bool) -> ApiConfig {
    ApiConfig {
        audience: audience.into(),
        token_expiration_seconds: 600,
        offline_access: offline,
        signing_algorithm: SigningAlgorithm::Es256,
        scopes: ["read", "write"].map(String::from).into(),
        refresh_tokens: RefreshTokenSettings::default(),
        scope_descriptions: Default::default(),
        introspection_clients: Default::default(),
    }
}

fn client(grants: &[GrantType], audiences: &[(&str, &[&str])]) -> ClientConfig {
    ClientConfig {
        client_id: "apps.web".into(),
        namespace: "apps".into(),
        display_name: None,
        client_type: ClientType::Public,
        secret_sha256: None,
        grant_types: grants.iter().copied().collect(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        audiences: audiences
            .iter()
            .map(|(a, s)| ((*a).to_owned(), s.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
    }
}

fn config(apis: &[ApiConfig]) -> IssuerConfig {
    IssuerConfig {
        apis: apis
            .iter()
            .map(|a| (a.audience.clone(), a.clone()))
            .collect(),
        clients: BTreeMap::new(),
        workload_identity: Default::default(),
    }
}

const ALL: &[GrantType] = &[
    GrantType::ClientCredentials,
    GrantType::AuthorizationCode,
    GrantType::RefreshToken,
];

#[test]
fn refresh_tokens_exist_exactly_where_the_contract_says() {
    for offline in [true, false] {
        for asked in [true, false] {
            for grant in ALL.iter().copied() {
                for client_may_refresh in [true, false] {
                    let grants: Vec<GrantType> = ALL
                        .iter()
                        .copied()
                        .filter(|g| client_may_refresh || *g != GrantType::RefreshToken)
                        .collect();
                    let c = client(&grants, &[("https://a", &[])]);
                    let expected = offline
                        && asked
                        && client_may_refresh
                        && grant != GrantType::ClientCredentials;
                    assert_eq!(
                        may_issue_refresh_token(grant, &api("https://a", offline), &c, asked),
                        expected,
                        "offline={offline} asked={asked} grant={grant:?} client_may_refresh={client_may_refresh}"
                    );
                }
            }
        }
    }
}

#[test]
fn audience_and_resource_select_the_api() {
    let cfg = config(&[api("https://a", false), api("https://b", false)]);
    let c = client(ALL, &[("https://a", &["read"])]);
    assert_eq!(
        select_api(&cfg, &c, Some("https://a"), &[])
            .expect("a")
            .audience,
        "https://a"
    );
    assert_eq!(
        select_api(&cfg, &c, None, &["https://a"])
            .expect("a")
            .audience,
        "https://a"
    );
    assert_eq!(
        select_api(&cfg, &c, None, &[]).expect("only").audience,
        "https://a"
    );
    let code = |r: Result<&ApiConfig, OAuthError>| r.expect_err("error").code;
    assert_eq!(
        code(select_api(&cfg, &c, Some("https://nope"), &[])),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        code(select_api(&cfg, &c, Some("https://b"), &[])),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        code(select_api(&cfg, &c, Some("https://a"), &["https://b"])),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        code(select_api(&cfg, &c, None, &["https://a", "https://b"])),
        ErrorCode::InvalidTarget
    );
    let two = client(ALL, &[("https://a", &[]), ("https://b", &[])]);
    assert_eq!(
        code(select_api(&cfg, &two, None, &[])),
        ErrorCode::InvalidRequest
    );
}

#[test]
fn scopes_default_to_all_allowed_and_unknown_ones_are_invalid_scope() {
    let a = api("https://a", true);
    let c = client(ALL, &[("https://a", &["read"])]);
    let all = grant_scopes(&a, &c, None).expect("ok");
    assert_eq!(all.api_scopes, ["read".to_owned()].into());
    assert!(!all.offline_access);
    let offline = grant_scopes(&a, &c, Some("read offline_access")).expect("ok");
    assert!(offline.offline_access);
    assert_eq!(scope_string(&offline.api_scopes), "read");
    let err = grant_scopes(&a, &c, Some("write")).expect_err("not allowed");
    assert_eq!(err.code, ErrorCode::InvalidScope);
}

#[test]
fn refresh_must_come_from_the_same_client_for_the_same_api_with_no_wider_scope() {
    let cfg = config(&[api("https://a", true), api("https://b", true)]);
    let c = client(
        ALL,
        &[("https://a", &["read", "write"]), ("https://b", &[])],
    );
    let original: BTreeSet<String> = ["read".to_owned()].into();
    let family = FamilyGrant {
        client_id: "apps.web",
        audience: "https://a",
        scopes: &original,
    };
    let (api, scopes) = check_refresh(&cfg, &c, &family, None, &[], None).expect("ok");
    assert_eq!(
        (api.audience.as_str(), scope_string(&scopes).as_str()),
        ("https://a", "read")
    );

    let code = |r: Result<(&ApiConfig, BTreeSet<String>), OAuthError>| r.expect_err("error").code;
    let other = FamilyGrant {
        client_id: "apps.other",
        ..family.clone()
    };
    assert_eq!(
        code(check_refresh(&cfg, &c, &other, None, &[], None)),
        ErrorCode::InvalidGrant
    );
    assert_eq!(
        code(check_refresh(
            &cfg,
            &c,
            &family,
            Some("https://b"),
            &[],
            None
        )),
        ErrorCode::InvalidTarget
    );
    assert_eq!(
        code(check_refresh(&cfg, &c, &family, None, &["https://b"], None)),
        ErrorCode::InvalidTarget
    );
    // Naming the family's own API again is fine.
    check_refresh(&cfg, &c, &family, Some("https://a"), &["https://a"], None).expect("same API");
    assert_eq!(
        code(check_refresh(
            &cfg,
            &c,
            &family,
            None,
            &[],
            Some("read write")
        )),
        ErrorCode::InvalidScope
    );
    let no_refresh = client(&[GrantType::AuthorizationCode], &[("https://a", &["read"])]);
    assert_eq!(
        code(check_refresh(&cfg, &no_refresh, &family, None, &[], None)),
        ErrorCode::UnauthorizedClient
    );
}

#[test]
fn refresh_fails_with_invalid_grant_once_the_policy_forbids_offline_access_or_is_gone() {
    let c = client(ALL, &[("https://a", &["read"])]);
    let original: BTreeSet<String> = ["read".to_owned()].into();
    let family = FamilyGrant {
        client_id: "apps.web",
        audience: "https://a",
        scopes: &original,
    };
    for cfg in [config(&[api("https://a", false)]), config(&[])] {
        let err = check_refresh(&cfg, &c, &family, None, &[], None).expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidGrant);
    }
}

#[test]
fn lifetime_is_the_policys_token_expiration() {
    for seconds in [1, 600, 2_592_000] {
        let mut a = api("https://a", false);
        a.token_expiration_seconds = seconds;
        assert_eq!(access_token_lifetime(&a), seconds as u64);
    }
}

#[test]
fn only_the_resource_servers_an_api_names_may_introspect_its_access_tokens() {
    let mut rs = client(&[GrantType::ClientCredentials], &[("https://a", &[])]);
    rs.client_type = ClientType::Confidential;
    let mut a = api("https://a", false);
    // Granted the audience, and the token may be its own: not enough.
    assert!(!may_introspect_access_token(&rs, &a));
    a.introspection_clients.insert("apps.web".into());
    assert!(may_introspect_access_token(&rs, &a));
    assert!(!may_introspect_access_token(&rs, &api("https://b", false)));
    // A public client may not introspect at all, even where it is named.
    let public = client(ALL, &[("https://a", &[])]);
    assert!(!may_introspect_access_token(&public, &a));
    // Refresh tokens: their own client only.
    assert!(may_introspect_refresh_token(&rs, "apps.web"));
    assert!(!may_introspect_refresh_token(&rs, "someone-else"));
    assert!(!may_introspect_refresh_token(&public, "apps.web"));
}

#[test]
fn an_access_token_whose_policy_or_client_is_gone_has_no_api() {
    let mut config = config(&[api("https://a", false)]);
    let web = client(ALL, &[("https://a", &[])]);
    config.clients.insert(web.client_id.clone(), web);
    assert!(api_of_access_token(&config, "https://a", "apps.web").is_some());
    assert!(api_of_access_token(&config, "https://gone", "apps.web").is_none());
    assert!(api_of_access_token(&config, "https://a", "deleted-client").is_none());
}

#[test]
fn a_clients_subject_is_its_client_id_at_clients_and_a_users_is_their_own() {
    assert_eq!(Subject::Client("alice").claim(), "alice@clients");
    assert_eq!(Subject::User("alice").claim(), "alice");
    assert_ne!(
        Subject::Client("alice").claim(),
        Subject::User("alice").claim(),
        "a client named like a user gets another sub"
    );
    assert!(is_reserved_for_clients(&Subject::Client("x").claim()));
    assert!(!is_reserved_for_clients("alice@example.com"));
    assert!(!is_reserved_for_clients("clients"));
}

#[test]
fn a_public_clients_refresh_tokens_rotate_whatever_the_policy_says() {
    let mut api = api("https://a", true);
    api.refresh_tokens.rotation = crate::api::RotationMode::NonRotating;
    assert!(refresh_rotates(&api, ClientType::Public));
    assert!(!refresh_rotates(&api, ClientType::Confidential));
    api.refresh_tokens.rotation = crate::api::RotationMode::Rotating;
    assert!(refresh_rotates(&api, ClientType::Public));
    assert!(refresh_rotates(&api, ClientType::Confidential));
}
