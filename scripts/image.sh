#!/usr/bin/env bash
# Builds the tokenwarden image without a registry or a container engine daemon, into an OCI
# archive: a distroless-style base assembled from this machine's Debian packages, then the
# repository's Dockerfile on top of it (the binary from the build context, the base as the
# build argument BASE). Users with a registry build the same Dockerfile on the public base.
#
#   scripts/image.sh [--binary FILE] [--output FILE] [--name NAME:TAG] [--no-strip]
#
#   --binary  the tokenwarden binary (default: $CARGO_TARGET_DIR or target, then release/tokenwarden)
#   --output  the OCI archive to write (default: next to the binary, tokenwarden-image.tar)
#   --name    the image's name inside the archive (default: tokenwarden/tokenwarden:<version>)
#   --no-strip  copy the binary as it is (by default a stripped copy goes into the image)
#
# The base holds: glibc's shared libraries and loader (libc6), libgcc_s (libgcc-s1), the CA
# bundle (ca-certificates), /etc/passwd and /etc/group with the non-root user 65532, /tmp 1777,
# no shell and no package manager. The exact package versions go into the image as the label
# dev.tokenwarden.base-packages and into the file /usr/share/tokenwarden/base-packages.
# Timestamps: every file and the image's creation date are SOURCE_DATE_EPOCH (default: the
# commit time of HEAD), so the same binary and packages give the same layers.
#
# buildah keeps its storage in a temporary folder removed at exit, so nothing is left on the
# machine but the archive. Needs (Debian): buildah, binutils (strip), libc6, libgcc-s1,
# ca-certificates. Progress goes to stderr; the last line on stdout is the archive's path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'image: %s\n' "$*" >&2; }
die() {
    printf 'image: error: %s\n' "$*" >&2
    exit 1
}

target=${CARGO_TARGET_DIR:-$repo/target}
binary=$target/release/tokenwarden
output=
name=
strip=1
while [[ $# -gt 0 ]]; do
    case $1 in
        --binary) binary=$2; shift 2 ;;
        --output) output=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --no-strip) strip=0; shift ;;
        *) die "unknown argument $1 (see the head of $0)" ;;
    esac
done
[[ -x $binary ]] || die "no binary at $binary: run cargo build --release --bin tokenwarden first, or pass --binary"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
name=${name:-tokenwarden/tokenwarden:$version}
output=${output:-$(dirname "$binary")/tokenwarden-image.tar}
command -v buildah > /dev/null || die "buildah not found: apt-get install buildah"
command -v dpkg-query > /dev/null || die "dpkg-query not found: the base is assembled from Debian packages"

epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2> /dev/null || echo 0)}
work=$(mktemp -d "${TMPDIR:-/tmp}/tokenwarden-image.XXXXXX")
cleanup() {
    # buildah's storage may hold mounts of its own: let buildah undo them first.
    buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs rm --all > /dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
bah() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }

# --- the base: files of installed Debian packages, never downloaded from a registry ---
rootfs=$work/rootfs
lib=usr/lib/x86_64-linux-gnu
mkdir -p "$rootfs/$lib" "$rootfs/usr/lib64" "$rootfs/etc/ssl/certs" "$rootfs/tmp" \
    "$rootfs/usr/share/tokenwarden" "$rootfs/home/nonroot"
packages=
for package in libc6 libgcc-s1 ca-certificates; do
    version_of=$(dpkg-query -W -f='${Version}' "$package:amd64" 2> /dev/null ||
        dpkg-query -W -f='${Version}' "$package" 2> /dev/null) ||
        die "the Debian package $package is not installed"
    packages+="$package=$version_of "
done
# glibc's libraries and loader (not its gconv modules or tools), and libgcc_s: what every Rust
# binary linked against glibc may load.
while read -r file; do
    case $file in
        */x86_64-linux-gnu/*.so* | */x86_64-linux-gnu/libmemusage.so) ;;
        *) continue ;;
    esac
    [[ $file == */gconv/* ]] && continue
    cp -L "$file" "$rootfs/$lib/$(basename "$file")"
done < <(dpkg -L libc6 libgcc-s1 | grep '^/lib/\|^/usr/lib/')
[[ -e $rootfs/$lib/ld-linux-x86-64.so.2 && -e $rootfs/$lib/libgcc_s.so.1 ]] ||
    die "libc6 or libgcc-s1 did not give the loader and libgcc_s"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$rootfs/usr/lib64/ld-linux-x86-64.so.2"
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt" ||
    die "no CA bundle at /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$rootfs/etc/group"
printf '%s\n' $packages > "$rootfs/usr/share/tokenwarden/base-packages"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"
find "$rootfs" -exec touch -h -d "@$epoch" {} +
say "base from ${packages% }"

base=localhost/tokenwarden-base:$version
container=$(bah from scratch)
bah copy "$container" "$rootfs/" / > /dev/null
bah config --label "dev.tokenwarden.base-packages=${packages% }" "$container"
bah commit --quiet --timestamp "$epoch" --rm "$container" "$base" > /dev/null

# --- the image: the Dockerfile, its build context holding only the binary ---
context=$work/context
mkdir -p "$context"
if [[ $strip == 1 ]]; then
    command -v strip > /dev/null || die "strip not found: apt-get install binutils (or pass --no-strip)"
    strip -o "$context/tokenwarden" "$binary"
else
    cp "$binary" "$context/tokenwarden"
fi
touch -d "@$epoch" "$context/tokenwarden"
bah bud --quiet --timestamp "$epoch" --build-arg "BASE=$base" -f "$repo/Dockerfile" -t "$name" "$context" > /dev/null
mkdir -p "$(dirname "$output")"
rm -f "$output"
bah push --quiet "$name" "oci-archive:$output:$name"
say "$name: $(du -h "$output" | cut -f1) in $output (binary $(du -h "$context/tokenwarden" | cut -f1))"
echo "$output"
