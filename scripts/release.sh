#!/usr/bin/env bash
# Cuts a release of tokenwarden from a clean checkout: the crate's, the chart's and the image's
# versions are one (Cargo.toml `version`, Chart.yaml `version` and `appVersion`), and
# CHANGELOG.md has its section. Writes into DIR (default dist/):
#   tokenwarden-VERSION.tgz           the chart, from `helm package` (push it with
#                                     `helm push DIR/tokenwarden-VERSION.tgz oci://REGISTRY/charts`)
#   tokenwarden-VERSION.cdx.json      a CycloneDX SBOM of the Rust dependencies (cargo-cyclonedx)
#   tokenwarden-VERSION-linux-ARCH    the release binary
# and builds the image IMAGE:VERSION from the Dockerfile and the release binary (docker; or, with
# IMAGE_BUILDER=buildah, scripts/image.sh on a base from Debian packages into
# DIR/tokenwarden-VERSION-image.tar), which users push to their registry (docs/helm.md, "The image").
#
#   scripts/release.sh [--check] [--skip-image] [--output DIR]
#
# --check only checks the versions and the changelog (CI runs it through tests/offline/release.rs).
# IMAGE (default tokenwarden/tokenwarden) names the image; HELM names helm (default: helm on
# PATH, else the test tools' one).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/release.sh: $*" >&2; exit 1; }

check_only=false
skip_image=false
out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check_only=true ;;
    --skip-image) skip_image=true ;;
    --output) shift; out="${1:?--output needs a folder}" ;;
    *) fail "unknown argument $1 (see the header of this script)" ;;
  esac
  shift
done

# The one version, and everything that must name it.
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[ -n "$version" ] || fail "no version in Cargo.toml"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] \
  || fail "Cargo.toml's version $version is not a semantic version"
chart="charts/tokenwarden/Chart.yaml"
chart_version="$(sed -n 's/^version: *//p' "$chart")"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart")"
[ "$chart_version" = "$version" ] || fail "$chart has version $chart_version, Cargo.toml $version"
[ "$app_version" = "$version" ] || fail "$chart has appVersion $app_version, Cargo.toml $version"
grep -q "^## \[$version\] - [0-9]\{4\}-[0-9]\{2\}-[0-9]\{2\}$" CHANGELOG.md \
  || fail "CHANGELOG.md has no section '## [$version] - YYYY-MM-DD'"
lock_version="$(grep -A1 '^name = "tokenwarden"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')"
[ "$lock_version" = "$version" ] || fail "Cargo.lock has tokenwarden $lock_version: run cargo update -p tokenwarden"
echo "tokenwarden $version: Cargo.toml, Cargo.lock, Chart.yaml and CHANGELOG.md agree"
$check_only && exit 0

[ -z "$(git status --porcelain)" ] || fail "the work tree has changes: release from a clean checkout"
mkdir -p "$out"

echo "== release binary" >&2
cargo build --release --locked --bin tokenwarden
target="${CARGO_TARGET_DIR:-target}"
install -m 0755 "$target/release/tokenwarden" "$out/tokenwarden-$version-linux-$(uname -m)"

echo "== chart" >&2
helm="${HELM:-$(command -v helm || true)}"
if [ -z "$helm" ]; then
  tools="$(scripts/test-tools.sh | tail -n 1)" || fail "no helm on PATH, and the test tools failed"
  helm="$tools/helm"
fi
"$helm" lint --strict charts/tokenwarden --set image.repository=tokenwarden/tokenwarden
"$helm" package charts/tokenwarden --destination "$out"

echo "== SBOM of the Rust dependencies (CycloneDX)" >&2
cyclonedx_version=0.5.9
cache="${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/cargo-cyclonedx-$cyclonedx_version"
if [ ! -x "$cache/bin/cargo-cyclonedx" ]; then
  cargo install --locked --root "$cache" cargo-cyclonedx --version "$cyclonedx_version" \
    || fail "could not install cargo-cyclonedx $cyclonedx_version"
fi
PATH="$cache/bin:$PATH" cargo cyclonedx --format json --spec-version 1.5 \
  --override-filename "tokenwarden-$version.cdx"
mv "tokenwarden-$version.cdx.json" "$out/"

if $skip_image; then
  echo "== image: skipped (--skip-image)" >&2
else
  echo "== image" >&2
  image="${IMAGE:-tokenwarden/tokenwarden}:$version"
  builder="${IMAGE_BUILDER:-docker}"
  command -v "$builder" >/dev/null || fail "$builder is missing: set IMAGE_BUILDER, or pass --skip-image"
  case "$builder" in
    # No registry needed: the base from Debian packages, the image into an OCI archive.
    buildah)
      scripts/image.sh --binary "$target/release/tokenwarden" --name "$image" \
        --output "$out/tokenwarden-$version-image.tar" > /dev/null
      ;;
    *)
      # The Dockerfile's build context holds only the release binary.
      context="$(mktemp -d)"
      cp "$target/release/tokenwarden" "$context/"
      "$builder" build -t "$image" -f Dockerfile "$context"
      rm -rf "$context"
      ;;
  esac
  echo "built $image: push it to your registry"
fi
ls -l "$out"
