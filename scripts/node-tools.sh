#!/usr/bin/env bash
# Builds the tools of the real node (tests/real_node.rs), once, into a cache outside the repo;
# the sibling of scripts/test-tools.sh, which builds the control plane every test binary uses.
# Each group is built from pinned Go modules (or a C file) and keyed by its own inputs, so a
# change rebuilds that group only, and nothing of the control plane:
#   k8s         kubelet, kube-controller-manager, kube-scheduler, kube-proxy from
#               tests/cluster/node (the same k8s.io/kubernetes pin as tests/cluster/apiserver)
#   containerd  containerd, ctr, containerd-shim-runc-v2 from tests/cluster/containerd
#   runc        runc from tests/cluster/runc, with cgo and `-tags seccomp` (libseccomp-dev)
#   cni         bridge, host-local, loopback, portmap from tests/cluster/cni
#   pause       the sandbox image: tests/cluster/pause/pause.c, `gcc -static`, on scratch, as
#               an OCI archive made with buildah (pause.tar, named tokenwarden.test/pause:1)
#
# Tools dir: ${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/node/<key>, a folder of links into
# the groups' folders. Progress goes to stderr; the last line on stdout is the tools dir, for
# TOKENWARDEN_NODE_TOOLS. Needs: go, gcc with a static glibc (libc6-dev), pkg-config,
# libseccomp-dev, buildah, sha256sum.
#
# Measured on the 2-core machine, Go build cache warm from the control plane's kube-apiserver,
# empty for the rest, other builds running beside it: see tests/cluster/README.md.
set -euo pipefail

KUBE_VERSION=v1.36.3 # must match k8s.io/kubernetes in tests/cluster/node/go.mod
PAUSE_IMAGE=tokenwarden.test/pause:1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src="$repo/tests/cluster"

say() { printf 'node-tools: %s\n' "$*" >&2; }
die() {
    printf 'node-tools: error: %s\n' "$*" >&2
    exit 1
}
need() {
    command -v "$1" > /dev/null 2>&1 || die "$1 not found on PATH. $2"
}

need go "Install a Go toolchain >= 1.26 and put it on PATH."
need gcc "apt-get install gcc libc6-dev (runc needs cgo; the pause program is linked statically)."
need pkg-config "apt-get install pkg-config libseccomp-dev (runc is built with seccomp)."
need buildah "apt-get install buildah (the pause image is built with it)."
need sha256sum "Install coreutils."
pkg-config --exists libseccomp || die "libseccomp not found by pkg-config: apt-get install libseccomp-dev"

go_version=$(go env GOVERSION)
cache=${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/node
mkdir -p "$cache/parts"
if command -v flock > /dev/null 2>&1; then
    exec 9> "$cache/.lock"
    flock 9
fi

# group_key NAME FILES...: NAME-<hash of the files, the Go version and the pins>.
group_key() {
    local name=$1
    shift
    echo "$name-$({
        cat "$@"
        echo "$go_version $KUBE_VERSION $PAUSE_IMAGE $(gcc -dumpfullversion)"
    } | sha256sum | cut -c1-16)"
}

# build_group KEY COMMAND...: runs COMMAND with $out set to a fresh folder, which becomes
# $cache/parts/KEY when it succeeds; nothing when that folder exists.
build_group() {
    local key=$1
    shift
    if [[ -d "$cache/parts/$key" ]]; then
        return
    fi
    say "building $key"
    local start=$SECONDS
    out="$cache/parts/$key.partial"
    rm -rf "$out"
    mkdir -p "$out"
    if ! "$@" >&2; then
        rm -rf "$out"
        die "building $key failed (see above). Check that the Go module proxy is reachable and that go is >= the version in the module's go.mod; then run this script again."
    fi
    mv "$out" "$cache/parts/$key"
    say "built $key in $((SECONDS - start))s"
}

k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    minor=${KUBE_VERSION#v*.}
    k8s_ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION:1:1}"
    k8s_ldflags+=" -X $pkg.gitMinor=${minor%%.*} -X $pkg.gitTreeState=clean"
done
build_k8s() {
    (cd "$src/node" && go build -trimpath -buildvcs=false -ldflags "$k8s_ldflags" -o "$out/" \
        ./kubelet ./kube-controller-manager ./kube-scheduler ./kube-proxy)
}
build_containerd() {
    local cmd=github.com/containerd/containerd/v2/cmd
    (cd "$src/containerd" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/" \
        "$cmd/containerd" "$cmd/ctr" "$cmd/containerd-shim-runc-v2")
}
build_runc() {
    (cd "$src/runc" && CGO_ENABLED=1 go build -trimpath -buildvcs=false -tags seccomp \
        -ldflags "-s -w" -o "$out/runc" github.com/opencontainers/runc)
}
build_cni() {
    local plugins=github.com/containernetworking/plugins/plugins
    mkdir -p "$out/cni" &&
    (cd "$src/cni" && go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$out/cni/" \
        "$plugins/main/bridge" "$plugins/ipam/host-local" "$plugins/main/loopback" \
        "$plugins/meta/portmap")
}
# (Each step chained: errexit does not apply inside the `if` of build_group.)
build_pause() (
    work=$(mktemp -d)
    bah=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
    trap '"${bah[@]}" rm --all > /dev/null 2>&1; rm -rf "$work"' EXIT
    mkdir -p "$work/rootfs" &&
        gcc -static -Os -s -o "$work/rootfs/pause" "$src/pause/pause.c" &&
        touch -d @0 "$work/rootfs/pause" &&
        container=$("${bah[@]}" from scratch) &&
        "${bah[@]}" copy "$container" "$work/rootfs/pause" /pause > /dev/null &&
        "${bah[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$container" &&
        "${bah[@]}" commit --quiet --timestamp 0 --rm "$container" "$PAUSE_IMAGE" > /dev/null &&
        "${bah[@]}" push --quiet "$PAUSE_IMAGE" "oci-archive:$out/pause.tar:$PAUSE_IMAGE"
)

k8s=$(group_key k8s "$src"/node/{go.mod,go.sum,kubelet/main.go,kube-controller-manager/main.go,kube-scheduler/main.go,kube-proxy/main.go})
containerd=$(group_key containerd "$src"/containerd/{go.mod,go.sum})
runc=$(group_key runc "$src"/runc/{go.mod,go.sum})
cni=$(group_key cni "$src"/cni/{go.mod,go.sum})
pause=$(group_key pause "$src"/pause/pause.c)
build_group "$containerd" build_containerd
build_group "$runc" build_runc
build_group "$cni" build_cni
build_group "$pause" build_pause
build_group "$k8s" build_k8s

tools="$cache/$(echo "$k8s $containerd $runc $cni $pause" | sha256sum | cut -c1-16)"
if [[ ! -d $tools ]]; then
    mkdir -p "$tools.partial"
    for part in "$k8s" "$containerd" "$runc" "$cni" "$pause"; do
        for file in "$cache/parts/$part"/*; do
            ln -sfn "../parts/$part/$(basename "$file")" "$tools.partial/$(basename "$file")"
        done
    done
    echo "$PAUSE_IMAGE" > "$tools.partial/pause.name"
    rm -rf "$tools"
    mv "$tools.partial" "$tools"
fi

# A tool that cannot run here is a failure now, not a riddle in a test later.
for tool in kubelet kube-controller-manager kube-scheduler kube-proxy; do
    "$tools/$tool" --version 2>&1 | grep -q "Kubernetes $KUBE_VERSION" ||
        die "$tools/$tool does not report $KUBE_VERSION; delete $cache and try again."
done
"$tools/containerd" --version > /dev/null || die "$tools/containerd does not run."
"$tools/runc" --version | grep -q 'libseccomp' || die "$tools/runc was built without seccomp."
[[ -x $tools/cni/bridge && -s $tools/pause.tar ]] || die "$tools lacks the CNI plugins or the pause image."

say "node tools ready"
echo "$tools"
