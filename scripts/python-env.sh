#!/usr/bin/env bash
# Creates, or reuses, a Python venv with the packages pinned in a requirements file, and prints
# its python on the last line of stdout. Without an argument, the interop tests' venv (authlib,
# PyJWT, requests: tests/interop/requirements.txt).
#
#   export TOKENWARDEN_TEST_PYTHON="$(scripts/python-env.sh | tail -n 1)"
#   scripts/python-env.sh benches/peers/requirements.txt     # the benchmark's (matplotlib, PyJWT)
#
# The venv lives in ${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/venv-<hash of the
# requirements>, so a change of a pin makes a new one. Concurrent callers wait on a lock.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/python-env.sh: $*" >&2; exit 1; }
req="${1:-tests/interop/requirements.txt}"
[ -f "$req" ] || fail "$req is missing"
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || fail "$python is missing: install Python 3.9 or newer"
"$python" -c 'import sys, venv; sys.exit(sys.version_info < (3, 9))' \
  || fail "$python is older than 3.9 or has no venv module (Debian: apt-get install python3-venv)"

hash="$(sha256sum "$req" | cut -c1-16)"
cache="${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}"
venv="$cache/venv-$hash"
mkdir -p "$cache"
exec 9>"$cache/venv-$hash.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "scripts/python-env.sh: creating $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2 || fail "could not create a venv in $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2 \
    || fail "could not install $req into $venv"
  imports="$(sed -n 's/^# imports: //p' "$req")"
  [ -n "$imports" ] || fail "$req names no '# imports: ...' line to check the venv with"
  "$venv/bin/python" -c "import $imports" >&2 || fail "the venv $venv cannot import its packages"
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
