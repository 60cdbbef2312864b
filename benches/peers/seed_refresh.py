"""Seeds refresh tokens from a peer's token endpoint for scripts/bench-peers.sh.

Writes FILES files OUT_DIR/refresh-<n>.txt of PER_FILE refresh tokens each, one a line, from
client_credentials grants of a client that gets refresh tokens (Keycloak's
`client_credentials.use_refresh_token`). One load run uses one file, so no run presents a token
that another run rotated. Fails on the first answer without a refresh token.

    python seed_refresh.py TOKEN_URL BASIC_CREDENTIALS FILES PER_FILE OUT_DIR
"""

import concurrent.futures
import json
import pathlib
import sys
import urllib.request


def main():
    token_url, basic, files, per_file, out_dir = sys.argv[1:]
    files, per_file, out_dir = int(files), int(per_file), pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(_):
        request = urllib.request.Request(
            token_url,
            data=b"grant_type=client_credentials",
            headers={
                "Authorization": "Basic " + basic,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            token = json.load(answer).get("refresh_token")
        if not token:
            raise SystemExit(f"{token_url} gave no refresh_token to a client_credentials grant")
        return token

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for n in range(files):
            tokens = list(pool.map(one, range(per_file)))
            (out_dir / f"refresh-{n}.txt").write_text("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
