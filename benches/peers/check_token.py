"""Asserts that a server of the benchmark issues a valid JWT access token before it is measured.

Asks TOKEN_URL for one token with the same request the load generator sends, verifies its
signature against the server's JWKS, and checks the header's `alg` and `exp - iat`. Exits
non-zero with the reason otherwise; prints one line of what it saw.

    python check_token.py TOKEN_URL JWKS_URL BASIC_CREDENTIALS FORM ALG LIFETIME
"""

import base64
import json
import sys
import urllib.request

import jwt


def fetch(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def main():
    token_url, jwks_url, basic, form, alg, lifetime = sys.argv[1:]
    answer = fetch(
        token_url,
        data=form.encode(),
        headers={
            "Authorization": "Basic " + basic,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    token = answer.get("access_token")
    if not token:
        sys.exit(f"{token_url} answered without an access_token: {sorted(answer)}")
    header = jwt.get_unverified_header(token)
    if header.get("alg") != alg:
        sys.exit(f"{token_url} signed with {header.get('alg')}, not {alg}")
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(fetch(jwks_url)).keys}
    key = keys.get(header.get("kid"))
    if key is None:
        sys.exit(f"the key {header.get('kid')} of the token is not in {jwks_url}")
    claims = jwt.decode(
        token, key=key, algorithms=[alg], options={"verify_aud": False, "verify_iss": False}
    )
    if claims["exp"] - claims["iat"] != int(lifetime):
        sys.exit(f"{token_url}: exp - iat is {claims['exp'] - claims['iat']}, not {lifetime}")
    print(
        f"valid {alg} JWT: kid={header['kid']} exp-iat={claims['exp'] - claims['iat']}"
        f" iss={claims.get('iss')} aud={claims.get('aud')}"
        f" refresh_token={'yes' if answer.get('refresh_token') else 'no'}"
    )


if __name__ == "__main__":
    main()
