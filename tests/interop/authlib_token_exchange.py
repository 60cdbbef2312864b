"""A third-party OAuth client (authlib) does an RFC 8693 token exchange with a CI job's OIDC
token against a running tokenwarden; PyJWT verifies the access token through the JWKS.

Run by tests/issuer/interop_authlib.rs, which starts node-oidc-provider as the CI system's
issuer and tokenwarden in standalone mode with a FederatedIssuer and the ApiClient `deployer`
that accepts the subject `ci-main`. Through the environment:

  TW_BASE       tokenwarden's base URL (its `iss`)
  TW_CI_TOKEN   the OIDC token of job `ci-main`
  TW_CI_OTHER   the OIDC token of job `ci-other`, which acts as no client

It prints one line per check and exits non-zero at the first one that fails.
"""

import os

import jwt
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from jwt import PyJWKClient

BASE = os.environ["TW_BASE"]
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
DEPLOY = "https://deploy.example.com"


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


meta = requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=10).json()
check(EXCHANGE in meta["grant_types_supported"], "metadata lists the token exchange grant")
TOKEN_URL = meta["token_endpoint"]

# The subject token is the client's only credential: no secret, client_id alone.
session = OAuth2Session("deployer", token_endpoint_auth_method="none")
token = session.fetch_token(
    TOKEN_URL,
    grant_type=EXCHANGE,
    subject_token=os.environ["TW_CI_TOKEN"],
    subject_token_type=JWT_TYPE,
    audience=DEPLOY,
)
check(
    token["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token",
    "issued_token_type is an access token",
)
check("refresh_token" not in token, "no refresh token")
key = PyJWKClient(meta["jwks_uri"]).get_signing_key_from_jwt(token["access_token"])
claims = jwt.decode(
    token["access_token"], key.key, algorithms=["RS256"], audience=DEPLOY, issuer=BASE
)
check(claims["client_id"] == "deployer", "the token is the client's")
check(claims["exp"] - claims["iat"] == 420, "exp - iat is the policy's 420 s")

try:
    OAuth2Session("deployer", token_endpoint_auth_method="none").fetch_token(
        TOKEN_URL,
        grant_type=EXCHANGE,
        subject_token=os.environ["TW_CI_OTHER"],
        subject_token_type=JWT_TYPE,
        audience=DEPLOY,
    )
    check(False, "another job's token is refused")
except OAuthError as error:
    check(error.error == "invalid_request", "another job's token is refused: invalid_request")

print("authlib token exchange: all checks passed", flush=True)
