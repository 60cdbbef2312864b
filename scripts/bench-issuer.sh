#!/usr/bin/env bash
# Load benchmark of the token endpoint, with the numbers docs/benchmarks.md reports.
#
# Builds the release binary, measures the raw signing rate of the same keys on the server's core
# (criterion, benches/mint.rs), then starts the standalone issuer pinned to core 0 and drives it
# from core 1 with wrk (Debian package) over keep-alive connections: client_credentials ES256 and
# RS256, refresh_token with rotation (ES256, embedded store), and an empty round trip (/healthz).
# For each scenario and connection count: one warm-up run, then REPS measured runs; only 2xx
# answers count. Prints a Markdown table and keeps the raw wrk output in OUT.
#
#   scripts/bench-issuer.sh                 # defaults: 8 and 64 connections, 3 x 10 s runs
#   CONNS="8" REPS=5 DURATION=20 scripts/bench-issuer.sh
#
# Needs: cargo, wrk (apt-get install wrk), taskset (util-linux), curl, two or more cores.
# The data directory goes to BENCH_DIR (default: a temporary folder), which should be on the
# disk the issuer would use, not tmpfs, for refresh's fsync to be real.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/bench-issuer.sh: $*" >&2; exit 1; }
for tool in cargo wrk taskset curl; do
  command -v "$tool" >/dev/null || fail "$tool is missing (wrk: apt-get install wrk)"
done
[ "$(nproc)" -ge 2 ] || fail "needs two cores: one for the issuer, one for the load generator"

CONNS="${CONNS:-8 64}"
REPS="${REPS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
PORT="${PORT:-18080}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-bench.XXXXXX")"
OUT="${OUT:-$work/out}"
mkdir -p "$OUT" "$work/policies" "$work/tokens"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work/data"
}
trap cleanup EXIT

echo "== build (release)" >&2
cargo build --release --bin tokenwarden --example bench-seed >&2
bin="$target/release/tokenwarden"
seed="$target/release/examples/bench-seed"

echo "== raw signing rate on core $SERVER_CPU (criterion, benches/mint.rs)" >&2
taskset -c "$SERVER_CPU" cargo bench --bench mint -- --warm-up-time 1 --measurement-time 5 \
  >"$OUT/criterion.txt" 2>&1 || fail "the mint benchmark failed: see $OUT/criterion.txt"
# ns per iteration -> per second, from criterion's estimates.
rate() {
  local file
  file="$(find "$target/criterion/$1" -path "*/new/estimates.json" | grep -F "/$2/new/" | head -n 1)"
  [ -n "$file" ] || fail "no criterion estimate for $1 $2"
  python3 -c 'import json,sys; print(round(1e9 / json.load(open(sys.argv[1]))["mean"]["point_estimate"]))' "$file"
}

SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
cat >"$work/policies/bench.yaml" <<YAML
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {name: es256, namespace: bench}
spec: {audience: "https://es256.bench", tokenExpirationSeconds: 600, signingAlgorithm: ES256, scopes: [{name: read}]}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {name: rs256, namespace: bench}
spec: {audience: "https://rs256.bench", tokenExpirationSeconds: 600, signingAlgorithm: RS256, scopes: [{name: read}]}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiTokenPolicy
metadata: {name: offline, namespace: bench}
spec: {audience: "https://offline.bench", tokenExpirationSeconds: 600, signingAlgorithm: ES256, offlineAccess: true, scopes: [{name: read}]}
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {name: worker, namespace: bench}
spec:
  clientId: worker
  grantTypes: [client_credentials]
  audiences: [{audience: "https://es256.bench", scopes: [read]}, {audience: "https://rs256.bench", scopes: [read]}]
---
apiVersion: tokenwarden.dev/v1alpha1
kind: ApiClient
metadata: {name: web, namespace: bench}
spec:
  clientId: web
  type: Public
  grantTypes: [authorization_code, refresh_token]
  redirectUris: ["https://app.bench/cb"]
  audiences: [{audience: "https://offline.bench", scopes: [read]}]
---
apiVersion: v1
kind: Secret
metadata: {name: worker-oauth, namespace: bench}
stringData: {clientSecret: $SECRET}
YAML

# Refresh tokens: one file per wrk run (warm-up included), 256 chains each.
runs=$(( $(wc -w <<<"$CONNS") * (REPS + 1) ))
echo "== seed $runs x 256 refresh-token families" >&2
"$seed" "$work/data" "$work/tokens" "$runs" 256 web "https://offline.bench"

echo "== start the issuer on core $SERVER_CPU" >&2
taskset -c "$SERVER_CPU" "$bin" issuer --policies "$work/policies" --data-dir "$work/data" \
  --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$((PORT + 1))" 2>"$OUT/issuer.log" &
server=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || fail "the issuer did not start: see $OUT/issuer.log"

basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
url="http://127.0.0.1:$PORT"
token_file=0
lua=benches/issuer

# run NAME CONNS SECONDS -> one RESULT line (and the raw output in OUT). Refresh runs each take
# the next file of seeded tokens: the caller counts them in token_file (run is in a subshell).
run() {
  local name=$1 conns=$2 seconds=$3 log="$OUT/$1-c$2-$(date +%s%N).txt"
  local args=(-t1 -c"$conns" -d"${seconds}s" --latency --timeout 5s)
  case "$name" in
    cc-es256) args+=(-s "$lua/client_credentials.lua" "$url/oauth/token" -- "https://es256.bench" "$basic") ;;
    cc-rs256) args+=(-s "$lua/client_credentials.lua" "$url/oauth/token" -- "https://rs256.bench" "$basic") ;;
    refresh)  args+=(-s "$lua/refresh.lua" "$url/oauth/token" -- "$work/tokens/refresh-$token_file.txt" web) ;;
    healthz)  args+=(-s "$lua/get.lua" "$url/healthz") ;;
  esac
  taskset -c "$CLIENT_CPU" wrk "${args[@]}" >"$log" 2>&1 || fail "wrk failed: see $log"
  grep '^RESULT' "$log" || fail "no result in $log"
}

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

es_raw="$(rate ES256 'raw signature')"
rs_raw="$(rate RS256 'raw signature')"
es_mint="$(rate ES256 mint)"
rs_mint="$(rate RS256 mint)"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -r)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "raw signature on core $SERVER_CPU: ES256 $es_raw/s, RS256 $rs_raw/s; mint: ES256 $es_mint/s, RS256 $rs_mint/s"
  echo
  echo "| scenario | conns | tokens/s (median of $REPS; all runs) | p50 ms | p99 ms | non-2xx | server RSS MiB (peak) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee "$OUT/summary.md"

for scenario in cc-es256 cc-rs256 refresh healthz; do
  for conns in $CONNS; do
    run "$scenario" "$conns" "$WARMUP" >/dev/null
    if [ "$scenario" = refresh ]; then token_file=$((token_file + 1)); fi
    results=()
    for _ in $(seq "$REPS"); do
      results+=("$(run "$scenario" "$conns" "$DURATION")")
      if [ "$scenario" = refresh ]; then token_file=$((token_file + 1)); fi
    done
    all="$(printf '%s\n' "${results[@]}")"
    rates="$(field rate <<<"$all" | awk '{printf "%d ", $1}')"
    med="$(field rate <<<"$all" | median)"
    p50="$(field p50_us <<<"$all" | median)"
    p99="$(field p99_us <<<"$all" | median)"
    non2xx="$(field non2xx <<<"$all" | awk '{s+=$1} END {print s}')"
    rss="$(awk '/VmRSS/ {r=$2} /VmHWM/ {h=$2} END {printf "%.0f (%.0f)", r/1024, h/1024}' "/proc/$server/status")"
    printf '| %s | %s | %.0f (%s) | %.2f | %.2f | %s | %s |\n' "$scenario" "$conns" "$med" "${rates% }" \
      "$(awk "BEGIN {print $p50 / 1000}")" "$(awk "BEGIN {print $p99 / 1000}")" "$non2xx" "$rss" | tee -a "$OUT/summary.md"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"
echo "raw output: $OUT" >&2
