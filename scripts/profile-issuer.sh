#!/usr/bin/env bash
# Where the issuer's CPU goes under load (docs/benchmarks.md, "Where the rest goes"): the
# release issuer on SERVER_CPU, wrk on CLIENT_CPU with client_credentials at 8 connections,
# and `perf record -e cpu-clock` of the issuer's process only (this VM has no hardware
# counters; timer sampling works). Prints the top symbols and the shares of aws-lc, the
# kernel, malloc and the rest; keeps perf.data in OUT.
#
#   scripts/profile-issuer.sh                 # ES256, 6 s
#   ALG=RS256 SECONDS_=10 scripts/profile-issuer.sh
#   BINARY=/tmp/tw-b scripts/profile-issuer.sh  # a binary built elsewhere (no cargo build)
#
# Needs: perf, wrk, taskset, curl, python3, and what scripts/bench-issuer.sh builds.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_NAME=scripts/profile-issuer.sh
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-profile.XXXXXX")"
OUT="${OUT:-$work/out}"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
command -v perf >/dev/null || bench_fail "perf is missing (Debian: linux-perf)"
ALG="${ALG:-ES256}"
SECONDS_="${SECONDS_:-6}"
PORT="${PORT:-18280}"
target="${CARGO_TARGET_DIR:-target}"
case "$ALG" in
  ES256) audience="https://es256.bench" ;;
  RS256) audience="https://rs256.bench" ;;
  *) bench_fail "ALG must be ES256 or RS256" ;;
esac

if [ -n "${BINARY:-}" ]; then
  binary="$BINARY"
else
  cargo build --release --bin tokenwarden >&2
  binary="$target/release/tokenwarden"
fi
mkdir -p "$work/policies"
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
bench_write_policies "$work/policies" "$SECRET"
server=
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work/data"' EXIT
bench_start_issuer "$binary" "$work/policies" "$work/data" "$PORT" "$OUT/issuer.log"

basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
WRK_ARGS=(-t1 -c8 -d3s --latency --timeout 5s -s benches/issuer/client_credentials.lua
  "http://127.0.0.1:$PORT/oauth/token" -- "$basic" "audience=$audience")
bench_wrk "$OUT/warmup.txt"
WRK_ARGS[2]="-d$((SECONDS_ + 2))s"
taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" >"$OUT/wrk.txt" 2>&1 &
load=$!
sleep 1
perf record -q -e cpu-clock -F 5000 -p "$server" -o "$OUT/perf.data" -- sleep "$SECONDS_" 2>/dev/null
wait "$load"
grep '^RESULT' "$OUT/wrk.txt" >&2

perf report -i "$OUT/perf.data" --no-children --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' >"$OUT/symbols.txt"
head -n 25 "$OUT/symbols.txt"
python3 - "$OUT/symbols.txt" <<'PY'
import re, sys
shares = {"aws-lc": 0.0, "kernel": 0.0, "malloc/free/memcpy": 0.0, "the rest": 0.0}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
    if not m:
        continue
    share, space, symbol = float(m.group(1)), m.group(2), m.group(3)
    if space == "k":
        shares["kernel"] += share
    elif re.search(r"ecp_|bignum|aws_lc|sha\d|montx|bn_|Lbignum|p256|mulx|sqrx", symbol):
        shares["aws-lc"] += share
    elif re.match(r"(malloc|_int_|cfree|free|realloc|__mem|tcache|unlink_chunk)", symbol):
        shares["malloc/free/memcpy"] += share
    else:
        shares["the rest"] += share
print("shares of the issuer's CPU: " + ", ".join(f"{k} {v:.1f} %" for k, v in shares.items()))
PY
echo "perf data: $OUT/perf.data" >&2
