"""A third-party OAuth client (authlib) and JWT verifier (PyJWT) against a running tokenwarden.

Run by tests/issuer/interop_authlib.rs, which starts the issuer with the policies of
tests/fixtures/mod.rs (STANDARD) and seeds one authorization code. Everything comes in through
the environment:

  TW_BASE       the issuer's base URL (also its `iss`)
  TW_SECRET     the secret of the confidential clients `worker` and `backend`
  TW_CODE       an authorization code for the public client `web` (todo API, offline_access)
  TW_VERIFIER   the PKCE verifier of that code's challenge
  TW_CHALLENGE  that challenge, to check authlib computes the same S256 value

It prints one line per check and exits non-zero at the first one that fails.
"""

import os
import sys
import time

import jwt
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from jwt import PyJWKClient

BASE = os.environ["TW_BASE"]
SECRET = os.environ["TW_SECRET"]
CODE = os.environ["TW_CODE"]
VERIFIER = os.environ["TW_VERIFIER"]
CHALLENGE = os.environ["TW_CHALLENGE"]

BANKING = "https://banking.example.com"
TODO = "https://todo.example.com"
WEB_CB = "https://app.example.com/cb"


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


meta = requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=10).json()
check(meta["issuer"] == BASE, "metadata names this issuer")
TOKEN_URL = meta["token_endpoint"]
jwks = PyJWKClient(meta["jwks_uri"])


def verify(token, audience, alg, lifetime):
    """Verify a token as a resource server would: key by kid from the JWKS, alg pinned."""
    header = jwt.get_unverified_header(token)
    check(header["typ"] == "at+jwt" and header["alg"] == alg, f"{alg} header is at+jwt")
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[alg],
        audience=audience,
        issuer=BASE,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    check(claims["exp"] - claims["iat"] == lifetime, f"exp - iat == {lifetime}")
    check(abs(claims["iat"] - time.time()) < 60, "iat is now")
    return claims


def sent(session):
    """Record the requests a session sends, to check how the client authenticated."""
    seen = []
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    return seen


# client_credentials, with each way of sending the secret.
for method in ("client_secret_basic", "client_secret_post"):
    worker = OAuth2Session(
        "worker", SECRET, token_endpoint_auth_method=method, scope="accounts:read"
    )
    requests_seen = sent(worker)
    token = worker.fetch_token(TOKEN_URL, grant_type="client_credentials", audience=BANKING)
    request = requests_seen[-1]
    body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
    if method == "client_secret_basic":
        basic = request.headers.get("Authorization", "").startswith("Basic ")
        check(basic and b"client_secret=" not in body, "the secret went over Basic")
    else:
        check(b"client_secret=" in body, "the secret went in the body")
    check(token["token_type"] == "Bearer" and token["expires_in"] == 600, f"{method}: token")
    check("refresh_token" not in token, "client_credentials gives no refresh token")
    claims = verify(token["access_token"], BANKING, "ES256", 600)
    check(claims["sub"] == "worker@clients" and claims["client_id"] == "worker", "sub and client_id")
    check(claims["scope"] == "accounts:read", "scope")

# A wrong secret is refused.
try:
    OAuth2Session("worker", "wrong-" + SECRET).fetch_token(
        TOKEN_URL, grant_type="client_credentials", audience=BANKING
    )
    check(False, "a wrong secret is refused")
except OAuthError as e:
    check(e.error == "invalid_client", "a wrong secret is invalid_client")

# Introspection and revocation of that access token by its client.
worker = OAuth2Session("worker", SECRET, token_endpoint_auth_method="client_secret_basic")
info = worker.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
check(info["active"] is True and info["aud"] == BANKING, "introspection: active")
response = worker.revoke_token(
    meta["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token"
)
check(response.status_code == 200, "revocation: 200")
info = worker.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()
check(info == {"active": False}, "introspection after revocation: inactive")

# authorization_code with PKCE for the public client, then refresh with rotation.
web = OAuth2Session(
    "web",
    token_endpoint_auth_method="none",
    revocation_endpoint_auth_method="none",
    redirect_uri=WEB_CB,
    scope="todos:read offline_access",
    code_challenge_method="S256",
)
url, state = web.create_authorization_url(
    meta["authorization_endpoint"], code_verifier=VERIFIER, audience=TODO
)
check(f"code_challenge={CHALLENGE}" in url, "authlib's S256 challenge is ours")
token = web.fetch_token(
    TOKEN_URL,
    authorization_response=f"{WEB_CB}?code={CODE}&state={state}&iss={BASE}",
    code_verifier=VERIFIER,
)
check(token["expires_in"] == 86400 and "offline_access" in token["scope"].split(), "code exchange")
claims = verify(token["access_token"], TODO, "RS256", 86400)
check(claims["sub"] == "alice" and claims["client_id"] == "web", "user token: sub is the user")
first = token["refresh_token"]

token = web.refresh_token(TOKEN_URL, refresh_token=first)
second = token["refresh_token"]
check(second != first, "refresh rotates the refresh token")
verify(token["access_token"], TODO, "RS256", 86400)
token = web.refresh_token(TOKEN_URL, refresh_token=second)
third = token["refresh_token"]
check(third not in (first, second), "and again")

# Replaying a retired token revokes the family, the newest token included.
for name, retired in (("replayed", first), ("newest after the replay", third)):
    try:
        web.refresh_token(TOKEN_URL, refresh_token=retired)
        check(False, f"{name} token is refused")
    except OAuthError as e:
        check(e.error == "invalid_grant", f"{name} token is invalid_grant")

print("authlib interop: all checks passed", flush=True)
sys.exit(0)
