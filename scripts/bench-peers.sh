#!/usr/bin/env bash
# The token endpoint of tokenwarden beside its peers, on one machine in one run, with the numbers
# and the plot docs/benchmarks.md reports ("Against peers").
#
# 1. Prepares everything a peer needs before measuring anything, in a cache outside the checkout
#    (BENCH_CACHE, default ~/.cache/tokenwarden/bench): node-oidc-provider (`npm ci` of
#    benches/peers/oidc-provider), Keycloak's server distribution (org.keycloak:keycloak-quarkus-dist,
#    fetched with mvn, unpacked and `kc.sh build`), the Python venv with PyJWT and matplotlib.
# 2. scripts/bench-issuer.sh: tokenwarden standalone (client_credentials and refresh, ES256 and
#    RS256), the raw signing rate of the same keys on the server's core (criterion) and the empty
#    round trip (/healthz) - the physical limit.
# 3. node-oidc-provider 9: client_credentials, JWT access tokens through resource indicators.
# 4. Keycloak (`start --optimized`, realms imported at start): client_credentials, and refresh
#    with rotation through a client that gets refresh tokens from client_credentials.
# Each server runs alone, pinned to SERVER_CPU; wrk drives it from CLIENT_CPU with the same
# settings (scripts/bench-lib.sh); one token per server and algorithm is decoded and checked
# (signature, alg, exp - iat = 600) before it is measured. Then benches/peers/report.py writes
# OUT/peers.md (the table with ratios) and OUT/peers.png.
#
#   scripts/bench-peers.sh                           # defaults: 8 and 64 connections, 3 x 10 s
#   DURATION=3 REPS=1 WARMUP=1 KEYCLOAK_WARMUP=5 scripts/bench-peers.sh   # a smoke test
#   PEERS=oidc-provider scripts/bench-peers.sh       # only some peers (oidc-provider keycloak)
#
# Needs: what scripts/bench-issuer.sh needs, node >= 20.19 and npm, Java 17 or newer (JAVA_HOME
# or java on PATH), mvn, unzip, flock; the npm registry and Maven Central on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_NAME=scripts/bench-peers.sh
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-peers.XXXXXX")"
OUT="${OUT:-$work/out}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
fail() { bench_fail "$@"; }

PEERS="${PEERS:-oidc-provider keycloak}"
KEYCLOAK_VERSION="${KEYCLOAK_VERSION:-26.4.7}"
KEYCLOAK_WARMUP="${KEYCLOAK_WARMUP:-20}"
KEYCLOAK_START_TIMEOUT="${KEYCLOAK_START_TIMEOUT:-600}"
NODE_PORT="${NODE_PORT:-18090}"
KEYCLOAK_PORT="${KEYCLOAK_PORT:-18100}"
cache="${BENCH_CACHE:-${TOKENWARDEN_CACHE:-$HOME/.cache/tokenwarden}/bench}"
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
mkdir -p "$cache"

for peer in $PEERS; do
  case "$peer" in
    oidc-provider) needs=(node npm) ;;
    keycloak) needs=(mvn unzip flock) ;;
    *) fail "unknown peer '$peer' in PEERS (known: oidc-provider keycloak)" ;;
  esac
  for tool in "${needs[@]}"; do
    command -v "$tool" >/dev/null || fail "$tool is missing, needed for $peer"
  done
done

server=""
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  server=""
}
cleanup() {
  stop_server
  rm -rf "$work"/keycloak-*   # the seeded refresh tokens
}
trap cleanup EXIT

# -- preparation: everything that downloads, before the first measurement ----------------------

echo "== the benchmark's Python venv (PyJWT, matplotlib)" >&2
python="$(scripts/python-env.sh benches/peers/requirements.txt | tail -n 1)" \
  || fail "could not make the Python venv of benches/peers/requirements.txt"

# node-oidc-provider: package.json, its lock and server.mjs, installed with `npm ci` into a
# folder named after their hash.
prepare_oidc_provider() {
  local src=benches/peers/oidc-provider hash dir
  node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' \
    || fail "node $(node --version) is too old for oidc-provider 9: needs 20.19 or newer"
  ! grep -q '"resolved"' "$src/package-lock.json" \
    || fail "$src/package-lock.json names registry addresses (\"resolved\"): strip them"
  hash="$(cat "$src/package.json" "$src/package-lock.json" "$src/server.mjs" | sha256sum | cut -c1-16)"
  dir="$cache/oidc-provider-$hash"
  if [ ! -f "$dir/.complete" ]; then
    echo "== npm ci of $src into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$src/server.mjs" "$dir/"
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund) >&2 || fail "npm ci of $src failed (in $dir)"
    touch "$dir/.complete"
  fi
  OIDC_PROVIDER_DIR="$dir"
}

# Keycloak: the zip from Maven Central through mvn, unpacked and built once per version.
java_major() {
  "${JAVA_HOME:+$JAVA_HOME/bin/}java" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1
}
prepare_keycloak() {
  local dir="$cache/keycloak-$KEYCLOAK_VERSION" zip major
  major="$(java_major)"
  [ -n "$major" ] || fail "java is missing (set JAVA_HOME or put java on PATH): Keycloak needs Java 17 or newer"
  [ "$major" -ge 17 ] || fail "Keycloak $KEYCLOAK_VERSION needs Java 17 or newer, found $major"
  zip="$dir/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
  if [ ! -f "$dir/.complete" ]; then
    echo "== Keycloak $KEYCLOAK_VERSION into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
      -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" -DoutputDirectory="$dir" >&2 \
      || fail "mvn could not fetch org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip"
    [ -f "$zip" ] || fail "mvn left no $zip"
    unzip -q "$zip" -d "$dir" || fail "could not unpack $zip"
    rm -f "$zip"
    # The build-time options of a production start: the embedded H2 file database (see
    # docs/benchmarks.md for why not PostgreSQL), everything else Keycloak's defaults.
    "$dir/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" build --db=dev-file >"$dir/build.log" 2>&1 \
      || fail "kc.sh build failed: see $dir/build.log"
    touch "$dir/.complete"
  fi
  KEYCLOAK_HOME="$dir/keycloak-$KEYCLOAK_VERSION"
}

for peer in $PEERS; do
  case "$peer" in
    oidc-provider) prepare_oidc_provider ;;
    keycloak) prepare_keycloak ;;
  esac
done

# -- tokenwarden and the physical limit --------------------------------------------------------

echo "== tokenwarden (scripts/bench-issuer.sh)" >&2
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date -u +%s)"
started_at="$(date -u '+%Y-%m-%d %H:%M')"
OUT="$OUT" BENCH_PYTHON="$python" scripts/bench-issuer.sh >&2 \
  || fail "scripts/bench-issuer.sh failed: see $OUT"

lua=benches/issuer
check() { # check NAME TOKEN_URL JWKS_URL FORM ALG [BASIC]
  local seen
  seen="$("$python" benches/peers/check_token.py "$2" "$3" "${6:-$basic}" "$4" "$5" 600)" \
    || fail "$1 did not issue a valid $5 token of 600 s (the reason is above)"
  echo "   $1: $seen" >&2
}

# -- node-oidc-provider -------------------------------------------------------------------------

bench_oidc_provider() {
  local url="http://127.0.0.1:$NODE_PORT" node_version
  node_version="$(node --version)"
  echo "== node-oidc-provider $(node -p 'require(process.argv[1]).version' "$OIDC_PROVIDER_DIR/node_modules/oidc-provider/package.json") on node $node_version, core $SERVER_CPU" >&2
  bench_port_free "$NODE_PORT" node-oidc-provider
  (cd "$OIDC_PROVIDER_DIR" && NODE_ENV=production exec taskset -c "$SERVER_CPU" node server.mjs "$NODE_PORT" "$SECRET") \
    2>"$OUT/oidc-provider.log" &
  server=$!
  bench_wait_ready "$url/.well-known/openid-configuration" 120 "$server" "$OUT/oidc-provider.log" "node-oidc-provider"
  declare -gA resource=([ES256]="https://es256.bench" [RS256]="https://rs256.bench")
  for alg in ES256 RS256; do
    check node-oidc-provider "$url/token" "$url/jwks" "grant_type=client_credentials&resource=${resource[$alg]}&scope=read" "$alg"
  done
  oidc_provider_args() {
    WRK_ARGS=(-t1 -c"$1" -d"${2}s" --latency --timeout 5s
      -s "$lua/client_credentials.lua" "$url/token" -- "$basic" "resource=${resource[$ALG]}&scope=read")
  }
  for ALG in ES256 RS256; do
    for conns in $CONNS; do
      bench_measure node-oidc-provider cc "$ALG" "$conns" "$server" oidc_provider_args
      echo "$BENCH_ROW" >&2
    done
  done
  stop_server
}

# -- Keycloak -----------------------------------------------------------------------------------

bench_keycloak() {
  local url="http://127.0.0.1:$KEYCLOAK_PORT" java_pid realm alg runs refresher
  exec 8>"$KEYCLOAK_HOME/.bench.lock"
  flock -n 8 || fail "another benchmark uses $KEYCLOAK_HOME"
  # A fresh database every run; the two realms are imported at start.
  rm -rf "$KEYCLOAK_HOME/data"
  mkdir -p "$KEYCLOAK_HOME/data/import"
  for alg in ES256 RS256; do
    realm="bench-${alg,,}"
    sed -e "s/@REALM@/$realm/" -e "s/@ALG@/$alg/" -e "s/@SECRET@/$SECRET/" benches/peers/keycloak/realm.json \
      >"$KEYCLOAK_HOME/data/import/$realm.json"
  done
  echo "== Keycloak $KEYCLOAK_VERSION on Java $(java_major), core $SERVER_CPU (start, up to ${KEYCLOAK_START_TIMEOUT}s)" >&2
  bench_port_free "$KEYCLOAK_PORT" Keycloak
  bench_port_free "$((KEYCLOAK_PORT + 1))" "Keycloak's management interface"
  taskset -c "$SERVER_CPU" "$KEYCLOAK_HOME/bin/kc.sh" start --optimized --import-realm \
    --http-enabled=true --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" \
    --http-management-port="$((KEYCLOAK_PORT + 1))" --hostname-strict=false --cache=local \
    >"$OUT/keycloak.log" 2>&1 &
  server=$!
  bench_wait_ready "$url/realms/bench-rs256/.well-known/openid-configuration" "$KEYCLOAK_START_TIMEOUT" \
    "$server" "$OUT/keycloak.log" "Keycloak"
  # kc.sh runs java as its child; RSS is java's.
  java_pid="$(cat "/proc/$server/task/$server/children" | awk '{print $1}')"
  [ -n "$java_pid" ] || fail "found no java process under kc.sh (pid $server)"
  refresher="$(printf 'refresher:%s' "$SECRET" | base64 -w0)"
  for alg in ES256 RS256; do
    realm="$url/realms/bench-${alg,,}/protocol/openid-connect"
    check Keycloak "$realm/token" "$realm/certs" grant_type=client_credentials "$alg"
    check "Keycloak (refresher)" "$realm/token" "$realm/certs" grant_type=client_credentials "$alg" "$refresher"
  done
  runs=$(( $(wc -w <<<"$CONNS") * (REPS + 1) ))
  echo "   seeding 2 x $runs x 256 refresh tokens" >&2
  for alg in ES256 RS256; do
    taskset -c "$CLIENT_CPU" "$python" benches/peers/seed_refresh.py \
      "$url/realms/bench-${alg,,}/protocol/openid-connect/token" "$refresher" "$runs" 256 "$work/keycloak-${alg,,}" \
      || fail "could not seed Keycloak's refresh tokens"
  done
  declare -gA kc_file=([ES256]=0 [RS256]=0)
  keycloak_args() {
    local endpoint="$url/realms/bench-${ALG,,}/protocol/openid-connect/token"
    WRK_ARGS=(-t1 -c"$1" -d"${2}s" --latency --timeout 5s)
    case "$SCENARIO" in
      cc) WRK_ARGS+=(-s "$lua/client_credentials.lua" "$endpoint" -- "$basic") ;;
      refresh)
        WRK_ARGS+=(-s "$lua/refresh.lua" "$endpoint" -- "$work/keycloak-${ALG,,}/refresh-${kc_file[$ALG]}.txt" refresher "$refresher")
        kc_file[$ALG]=$(( kc_file[$ALG] + 1 )) ;;
    esac
  }
  for scenario in cc:ES256 cc:RS256 refresh:ES256 refresh:RS256; do
    SCENARIO="${scenario%%:*}" ALG="${scenario#*:}"
    for conns in $CONNS; do
      bench_measure keycloak "$SCENARIO" "$ALG" "$conns" "$java_pid" keycloak_args "$KEYCLOAK_WARMUP"
      echo "$BENCH_ROW" >&2
    done
  done
  stop_server
  flock -u 8
}

for peer in $PEERS; do
  case "$peer" in
    oidc-provider) bench_oidc_provider ;;
    keycloak) bench_keycloak ;;
  esac
done

# -- the report ---------------------------------------------------------------------------------

minutes="$(( ($(date -u +%s) - started + 59) / 60 ))"
cat >"$OUT/run.txt" <<EOF
date: $started_at UTC (start of the measuring)
machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), Linux $(uname -r)
load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)
settings: CONNS="$CONNS" REPS=$REPS DURATION=$DURATION WARMUP=$WARMUP KEYCLOAK_WARMUP=$KEYCLOAK_WARMUP, server on core $SERVER_CPU, wrk on core $CLIENT_CPU
versions: node $(node --version 2>/dev/null || echo -), Java $(java_major 2>/dev/null || echo -), Keycloak $KEYCLOAK_VERSION
measuring took: about $minutes min
EOF
"$python" benches/peers/report.py "$OUT" || fail "benches/peers/report.py failed on $OUT/results.tsv"
cat "$OUT/peers.md"
echo "table: $OUT/peers.md  plot: $OUT/peers.png  raw output: $OUT" >&2
