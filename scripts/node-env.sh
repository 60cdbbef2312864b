#!/usr/bin/env bash
# Installs, or reuses, the Node.js tools of the upstream-OIDC and browser tests (oidc-provider
# and playwright-core, pinned in tests/node/package-lock.json) into tests/node/node_modules
# (ignored by Git; the npm download cache lives outside the checkout), finds Debian's Chromium,
# and prints its path on the last line of stdout.
#
#   export TOKENWARDEN_TEST_CHROMIUM="$(scripts/node-env.sh | tail -n 1)"
#
# The npm cache is ${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/npm. Chromium is
# $TOKENWARDEN_TEST_CHROMIUM, else /usr/bin/chromium (Debian: apt-get install chromium), else
# /usr/bin/chromium-headless-shell. Concurrent callers wait on a lock.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/node-env.sh: $*" >&2; exit 1; }
dir=tests/node
lock="$dir/package-lock.json"
[ -f "$lock" ] || fail "$lock is missing"
command -v node >/dev/null || fail "node is missing: install Node.js 20.19 or newer (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || fail "npm is missing (Debian: apt-get install npm)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
  || fail "node $(node --version) is too old: oidc-provider 9 needs Node.js 20.19 or newer"
# The lock names packages and versions only: no registry host (npm's
# omit-lockfile-registry-resolved, set in tests/node/.npmrc).
if grep -q '"resolved"' "$lock"; then
  fail "$lock has 'resolved' fields (registry URLs): regenerate it with 'npm install' in $dir, whose .npmrc omits them"
fi

cache="${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}"
mkdir -p "$cache/npm"
hash="$(cat "$dir/package.json" "$lock" | sha256sum | cut -c1-16)"
stamp="$dir/node_modules/.tokenwarden-$hash"
exec 9>"$cache/node-env.lock"
flock 9
if [ ! -f "$stamp" ]; then
  echo "scripts/node-env.sh: npm ci in $dir" >&2
  (cd "$dir" && npm ci --cache "$cache/npm" --no-audit --no-fund --loglevel=error) >&2 \
    || fail "npm ci in $dir failed (see above)"
  (cd "$dir" && node --input-type=module -e "await import('oidc-provider'); await import('playwright-core');") >&2 \
    || fail "the packages in $dir/node_modules cannot be imported"
  touch "$stamp"
fi

chromium=""
if [ -n "${TOKENWARDEN_TEST_CHROMIUM:-}" ]; then
  [ -x "$TOKENWARDEN_TEST_CHROMIUM" ] || fail "TOKENWARDEN_TEST_CHROMIUM=$TOKENWARDEN_TEST_CHROMIUM is not an executable"
  chromium="$TOKENWARDEN_TEST_CHROMIUM"
fi
for candidate in /usr/bin/chromium /usr/bin/chromium-headless-shell; do
  if [ -z "$chromium" ] && [ -x "$candidate" ]; then chromium="$candidate"; fi
done
[ -n "$chromium" ] || fail "no Chromium: install Debian's package (apt-get install chromium; .ci/run does) or set TOKENWARDEN_TEST_CHROMIUM"
echo "$chromium"
