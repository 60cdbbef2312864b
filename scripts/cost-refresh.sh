#!/usr/bin/env bash
# What one refresh with rotation costs the issuer on the embedded store (docs/benchmarks.md,
# "What a refresh costs"): the release issuer on SERVER_CPU, wrk on CLIENT_CPU with
# benches/issuer/refresh.lua, LOAD seconds of load to grow the file as a long run does, then
# SECONDS_ measured. Prints the rate, the issuer's CPU per refresh (in all, the store's writer
# thread, and the rest), its context switches per refresh and, when perf can read
# syscall tracepoints, the pages the store wrote (pwrite64) and the commits (fdatasync) per
# refresh. REPS runs, each with a fresh data directory.
#
#   scripts/cost-refresh.sh
#   CONNS=8 LOAD=10 REPS=5 scripts/cost-refresh.sh
#   BIN=/path/to/other/tokenwarden SEED=/path/to/its/bench-seed scripts/cost-refresh.sh   # A/B
#
# Needs: wrk, taskset, curl, python3 (and perf for the page counts), and what
# scripts/bench-issuer.sh builds.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_NAME=scripts/cost-refresh.sh
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-cost.XXXXXX")"
OUT="${OUT:-$work/out}"
conns="${CONNS:-64}" # one number here, before bench-lib.sh's default of "8 64"
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh
LOAD="${LOAD:-30}"
SECONDS_="${SECONDS_:-8}"
PORT="${PORT:-18380}"
target="${CARGO_TARGET_DIR:-target}"
BIN="${BIN:-$target/release/tokenwarden}"
SEED="${SEED:-$target/release/examples/bench-seed}"
tick="$(getconf CLK_TCK)"

if [ "$BIN" = "$target/release/tokenwarden" ]; then
  cargo build --release --bin tokenwarden --example bench-seed >&2
fi
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
server=
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work/run"' EXIT

# cpu TASK_DIR: user + system clock ticks of a process or thread.
cpu() { awk '{print $14 + $15}' "$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
per() { python3 -c 'import sys; a, b, n = map(float, sys.argv[1:]); print(f"{(b - a) / n:.2f}")' "$@"; }

for rep in $(seq "$REPS"); do
  rm -rf "$work/run"
  mkdir -p "$work/run/policies" "$work/run/tokens"
  bench_write_policies "$work/run/policies" "$SECRET"
  "$SEED" "$work/run/data" "$work/run/tokens" 2 4096 web "https://offline.bench" >/dev/null
  bench_start_issuer "$BIN" "$work/run/policies" "$work/run/data" "$PORT" "$OUT/issuer-$rep.log"
  writer="$(grep -l '^store-writer$' /proc/"$server"/task/*/comm | head -n 1)"
  writer="${writer%/comm}"

  WRK_ARGS=(-t1 -c"$conns" -d"${LOAD}s" --timeout 5s -s benches/issuer/refresh.lua
    "http://127.0.0.1:$PORT/oauth/token" -- "$work/run/tokens/refresh-0.txt" web)
  bench_wrk "$OUT/load-$rep.txt"

  cpu0="$(cpu /proc/"$server")" writer0="$(cpu "$writer")" switches0="$(switches "$server")"
  perf_pid=
  if command -v perf >/dev/null; then
    perf stat -x, -e syscalls:sys_enter_pwrite64,syscalls:sys_enter_fdatasync -p "$server" \
      -o "$OUT/syscalls-$rep.csv" -- sleep "$SECONDS_" 2>/dev/null &
    perf_pid=$!
  fi
  WRK_ARGS[2]="-d${SECONDS_}s"
  WRK_ARGS[9]="$work/run/tokens/refresh-1.txt"
  bench_wrk "$OUT/measure-$rep.txt"
  cpu1="$(cpu /proc/"$server")" writer1="$(cpu "$writer")" switches1="$(switches "$server")"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true

  ok="$(bench_field ok <<<"$RESULT")"
  line="run $rep: $(bench_field rate <<<"$RESULT") refreshes/s at $conns connections;"
  line+=" CPU µs per refresh: all $(per 0 "$(((cpu1 - cpu0) * 1000000 / tick))" "$ok"),"
  line+=" store writer $(per 0 "$(((writer1 - writer0) * 1000000 / tick))" "$ok"),"
  line+=" the rest (HTTP, tokio, minting) $(per 0 "$(((cpu1 - cpu0 - writer1 + writer0) * 1000000 / tick))" "$ok");"
  line+=" context switches per refresh $(per "$switches0" "$switches1" "$ok")"
  if [ -s "$OUT/syscalls-$rep.csv" ] && grep -q pwrite64 "$OUT/syscalls-$rep.csv"; then
    pages="$(awk -F, '/pwrite64/ {print $1}' "$OUT/syscalls-$rep.csv")"
    commits="$(awk -F, '/fdatasync/ {print $1}' "$OUT/syscalls-$rep.csv")"
    line+="; pages written per refresh $(per 0 "$pages" "$ok"), refreshes per commit $(per 0 "$ok" "$commits")"
  fi
  echo "$line" | tee -a "$OUT/summary.txt"
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=
done
echo "raw output: $OUT" >&2
