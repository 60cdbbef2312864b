#!/usr/bin/env bash
# Load benchmark of the token endpoint, with the numbers docs/benchmarks.md reports.
#
# Builds the release binary, measures the raw signing rate of the same keys on the server's core
# (criterion, benches/mint.rs), then starts the standalone issuer pinned to core 0 and drives it
# from core 1 with wrk (Debian package) over keep-alive connections: client_credentials ES256 and
# RS256, refresh_token with rotation (ES256 and RS256, embedded store), and an empty round trip
# (/healthz). For each scenario and connection count: one warm-up run, then REPS measured runs;
# only 2xx answers count (scripts/bench-lib.sh). Then measures the raw signing rate again and
# gives the RS256 ratio against the rates before and after the load. Prints a Markdown table and
# keeps the raw wrk output in OUT, with OUT/results.tsv for scripts/bench-peers.sh.
#
#   scripts/bench-issuer.sh                 # defaults: 8 and 64 connections, 3 x 10 s runs
#   CONNS="8" REPS=5 DURATION=20 scripts/bench-issuer.sh
#
# BENCH_PYTHON: a python with PyJWT; when set, one token per algorithm is checked first
# (benches/peers/check_token.py).
# Needs: cargo, wrk (apt-get install wrk), taskset (util-linux), curl, python3, two or more cores.
# The data directory goes to BENCH_DIR (default: a temporary folder), which should be on the
# disk the issuer would use, not tmpfs, for refresh's fsync to be real.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_NAME=scripts/bench-issuer.sh
command -v cargo >/dev/null || { echo "$BENCH_NAME: cargo is missing" >&2; exit 1; }
PORT="${PORT:-18080}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-bench.XXXXXX")"
OUT="${OUT:-$work/out}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
fail() { bench_fail "$@"; }
mkdir -p "$work/policies" "$work/tokens-es256" "$work/tokens-rs256"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work/data" "$work"/tokens-*
}
trap cleanup EXIT

echo "== build (release)" >&2
cargo build --release --bin tokenwarden --example bench-seed >&2
bin="$target/release/tokenwarden"
seed="$target/release/examples/bench-seed"

# criterion (benches/mint.rs) on the server's core: the benchmarks FILTER selects, output in LOG.
mint_bench() {
  taskset -c "$SERVER_CPU" cargo bench --bench mint -- --warm-up-time 1 --measurement-time 5 "$1" \
    >"$2" 2>&1 || fail "the mint benchmark failed: see $2"
}
echo "== raw signing rate on core $SERVER_CPU (criterion, benches/mint.rs)" >&2
mint_bench '^(ES256|RS256)/' "$OUT/criterion.txt"
# ns per iteration -> per second, from criterion's estimates.
rate() {
  local file
  file="$(find "$target/criterion/$1" -path "*/new/estimates.json" | grep -F "/$2/new/" | head -n 1)"
  [ -n "$file" ] || fail "no criterion estimate for $1 $2"
  python3 -c 'import json,sys; print(round(1e9 / json.load(open(sys.argv[1]))["mean"]["point_estimate"]))' "$file"
}

SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
bench_write_policies "$work/policies" "$SECRET"

# Refresh tokens: one file per wrk run (warm-up included) and algorithm, 256 chains each.
runs=$(( $(wc -w <<<"$CONNS") * (REPS + 1) ))
echo "== seed 2 x $runs x 256 refresh-token families" >&2
"$seed" "$work/data" "$work/tokens-es256" "$runs" 256 web "https://offline.bench"
"$seed" "$work/data" "$work/tokens-rs256" "$runs" 256 web "https://offline-rs256.bench"

echo "== start the issuer on core $SERVER_CPU" >&2
bench_start_issuer "$bin" "$work/policies" "$work/data" "$PORT" "$OUT/issuer.log"

basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
url="http://127.0.0.1:$PORT"
lua=benches/issuer
declare -A token_file=([ES256]=0 [RS256]=0)
declare -A audience=([ES256]="https://es256.bench" [RS256]="https://rs256.bench")

# With BENCH_PYTHON (a python with PyJWT, as scripts/bench-peers.sh passes), first assert that
# the measured request gives a valid JWT of the right algorithm and lifetime.
if [ -n "${BENCH_PYTHON:-}" ]; then
  for alg in ES256 RS256; do
    "$BENCH_PYTHON" benches/peers/check_token.py "$url/oauth/token" "$url/.well-known/jwks.json" \
      "$basic" "grant_type=client_credentials&audience=${audience[$alg]}" "$alg" 600 >&2 \
      || fail "the issuer's $alg token is not what the benchmark measures"
  done
fi

# One wrk run of the current scenario (SCENARIO, ALG). Each refresh run takes the next file of
# seeded tokens of its algorithm.
wrk_args() {
  WRK_ARGS=(-t1 -c"$1" -d"${2}s" --latency --timeout 5s)
  case "$SCENARIO" in
    cc) WRK_ARGS+=(-s "$lua/client_credentials.lua" "$url/oauth/token" -- "$basic" "audience=${audience[$ALG]}") ;;
    refresh)
      WRK_ARGS+=(-s "$lua/refresh.lua" "$url/oauth/token" -- "$work/tokens-${ALG,,}/refresh-${token_file[$ALG]}.txt" web)
      token_file[$ALG]=$(( token_file[$ALG] + 1 )) ;;
    healthz) WRK_ARGS+=(-s "$lua/get.lua" "$url/healthz") ;;
  esac
}

es_raw="$(rate ES256 'raw signature')"
rs_raw="$(rate RS256 'raw signature')"
es_mint="$(rate ES256 mint)"
rs_mint="$(rate RS256 mint)"
printf 'raw-signature\tsign\tES256\t-\t%s\t-\t-\t-\t-\t-\t-\nraw-signature\tsign\tRS256\t-\t%s\t-\t-\t-\t-\t-\t-\n' \
  "$es_raw" "$rs_raw" >>"$OUT/results.tsv"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -r)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "raw signature on core $SERVER_CPU: ES256 $es_raw/s, RS256 $rs_raw/s; mint: ES256 $es_mint/s, RS256 $rs_mint/s"
  echo
  echo "| scenario | conns | tokens/s (median of $REPS; all runs) | p50 ms | p99 ms | non-2xx | server RSS MiB (peak) |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee "$OUT/summary.md"

for scenario in cc:ES256 cc:RS256 refresh:ES256 refresh:RS256 healthz:-; do
  SCENARIO="${scenario%%:*}" ALG="${scenario#*:}"
  for conns in $CONNS; do
    bench_measure tokenwarden "$SCENARIO" "$ALG" "$conns" "$server" wrk_args
    echo "$BENCH_ROW" | tee -a "$OUT/summary.md"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"

# One core of this kind of VM drifts by about 10 % from one minute to the next, enough to decide
# the RS256 ratio: measure the raw rates again now, and judge the ratio against both.
echo "== raw signing rate on core $SERVER_CPU again, after the load" >&2
mint_bench '^(ES256|RS256)/raw' "$OUT/criterion-after.txt"
es_after="$(rate ES256 'raw signature')"
rs_after="$(rate RS256 'raw signature')"
{
  echo "raw signature on core $SERVER_CPU after the load: ES256 $es_after/s, RS256 $rs_after/s"
  for conns in $CONNS; do
    rs_load="$(awk -F'\t' -v c="$conns" '$1 == "tokenwarden" && $2 == "cc" && $3 == "RS256" && $4 == c {print $5}' "$OUT/results.tsv")"
    python3 -c 'import sys; load, before, after = map(float, sys.argv[2:]); print(f"cc-rs256 at {sys.argv[1]} connections: {100 * load / before:.0f} % of the raw rate before the load, {100 * load / after:.0f} % after, {200 * load / (before + after):.0f} % of their mean")' \
      "$conns" "$rs_load" "$rs_raw" "$rs_after"
  done
} | tee -a "$OUT/summary.md"
echo "raw output: $OUT" >&2
