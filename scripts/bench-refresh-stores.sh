#!/usr/bin/env bash
# Refresh throughput by store, in one run: one issuer on the embedded store against two issuer
# replicas sharing one PostgreSQL server, with the load script and seeding of
# scripts/bench-issuer.sh (benches/issuer/refresh.lua, the bench-seed example). Prints a
# Markdown table for docs/benchmarks.md and keeps the raw wrk output in OUT.
#
#   scripts/bench-refresh-stores.sh                  # 32 connections in all, 3 x 10 s runs
#   CONNS=64 REPS=5 DURATION=20 scripts/bench-refresh-stores.sh
#   STORES=postgresql BIN=/path/to/tokenwarden SEED=/path/to/bench-seed scripts/bench-refresh-stores.sh
#                                                    # one store; another build (no cargo build)
#
# Every refresh is a durable write: the embedded store fsyncs its file (group commit), and
# PostgreSQL runs with its default durability (fsync on, synchronous_commit on). No process is
# pinned to a core: the issuers, PostgreSQL and wrk share the machine, as they would on one node.
# With two replicas, wrk runs twice at once, each with half the connections to one replica; the
# rates are summed.
#
# Needs: cargo, wrk (apt-get install wrk), curl, PostgreSQL's server binaries (apt-get install
# postgresql). PostgreSQL refuses to run as root: as root the script runs it as `nobody` with
# setpriv (util-linux). The data goes to BENCH_DIR (default: a temporary folder), which should be
# on a real disk, not tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "scripts/bench-refresh-stores.sh: $*" >&2; exit 1; }
for tool in cargo setpriv; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done
pgbin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$pgbin" ] || [ ! -x "$pgbin/postgres" ]; then
  pgbin="$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")"
fi
[ -x "$pgbin/postgres" ] && [ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_isready" ] ||
  fail "PostgreSQL's server binaries are missing: apt-get install postgresql"

CONNS="${CONNS:-32}"
PORT="${PORT:-18180}"
PGPORT="${PGPORT:-18190}"
target="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/tokenwarden-bench-stores.XXXXXX")"
OUT="${OUT:-$work/out}"
BENCH_NAME=scripts/bench-refresh-stores.sh
# The settings (REPS, DURATION, WARMUP), tool checks and wrk result helpers of every load run.
. scripts/bench-lib.sh
mkdir -p "$OUT" "$work/policies" "$work/tokens-embedded" "$work/tokens-pg"
pids=()
pg=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  if [ -n "$pg" ]; then kill -INT "$pg" 2>/dev/null || true; wait "$pg" 2>/dev/null || true; fi
  rm -rf "$work/data-embedded" "$work/data-pg" "$work/pgdata"
}
trap cleanup EXIT

as_pg_user=()
if [ "$(id -u)" = 0 ]; then
  as_pg_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  chown nobody:nogroup "$work"
fi

STORES="${STORES:-embedded postgresql}"
if [ -n "${BIN:-}" ]; then
  [ -x "$BIN" ] && [ -x "${SEED:-}" ] || fail "BIN needs SEED, the bench-seed example of the same build"
  bin="$BIN" seed="$SEED"
else
  echo "== build (release)" >&2
  cargo build --release --bin tokenwarden --example bench-seed >&2
  bin="$target/release/tokenwarden"
  seed="$target/release/examples/bench-seed"
fi

echo "== PostgreSQL ($pgbin) on 127.0.0.1:$PGPORT, default durability" >&2
"${as_pg_user[@]}" "$pgbin/initdb" --no-instructions -U tokenwarden --auth=trust -E UTF8 \
  -D "$work/pgdata" >"$OUT/initdb.log" 2>&1 || fail "initdb failed: see $OUT/initdb.log"
"${as_pg_user[@]}" "$pgbin/postgres" -D "$work/pgdata" -p "$PGPORT" -k "$work" \
  -c listen_addresses=127.0.0.1 -c max_connections=100 >"$OUT/postgres.log" 2>&1 &
pg=$!
for _ in $(seq 100); do
  "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break
  sleep 0.1
done
"$pgbin/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" || fail "PostgreSQL did not start: see $OUT/postgres.log"
dsn="postgres://tokenwarden@127.0.0.1:$PGPORT/postgres?sslmode=disable"

bench_write_policies "$work/policies" "bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"

# One token file per wrk process and run (warm-up included), 256 chains each.
runs=$((REPS + 1))
echo "== seed refresh-token families" >&2
"$seed" "$work/data-embedded" "$work/tokens-embedded" "$runs" 256 web "https://offline.bench"
"$seed" "$dsn" "$work/tokens-pg" "$((2 * runs))" 256 web "https://offline.bench"

start_issuer() { # PORT DATA_DIR [DSN]
  local port=$1 data=$2 env=()
  [ -n "${3:-}" ] && env=(env "TOKENWARDEN_DATABASE_URL=$3")
  "${env[@]}" "$bin" issuer --policies "$work/policies" --data-dir "$data" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 50))" 2>"$OUT/issuer-$port.log" &
  pids+=($!)
  bench_wait_ready "http://127.0.0.1:$port/readyz" 10 "$!" "$OUT/issuer-$port.log" "the issuer on $port"
}

# wrk_run PORT CONNS SECONDS TOKENS_FILE -> one RESULT line
wrk_run() {
  local log="$OUT/wrk-$1-c$2-$(date +%s%N).txt"
  wrk -t1 -c"$2" -d"$3s" --latency --timeout 5s -s benches/issuer/refresh.lua \
    "http://127.0.0.1:$1/oauth/token" -- "$4" web >"$log" 2>&1 || fail "wrk failed: see $log"
  grep '^RESULT' "$log" || fail "no result in $log"
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(uname -r); PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}')"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| store | issuers | conns in all | refreshes/s (median of $REPS; all runs) | p50 ms | p99 ms | non-2xx |"
  echo "| --- | --- | --- | --- | --- | --- | --- |"
} | tee "$OUT/summary.md"

report() { # LABEL ISSUERS RESULTS (one line per run: summed rate, p50, p99, non2xx)
  local rates med p50 p99 non2xx
  rates="$(awk '{printf "%d ", $1}' <<<"$3")"
  med="$(awk '{print $1}' <<<"$3" | bench_median)"
  p50="$(awk '{print $2}' <<<"$3" | bench_median)"
  p99="$(awk '{print $3}' <<<"$3" | bench_median)"
  non2xx="$(awk '{s+=$4} END {print s}' <<<"$3")"
  printf '| %s | %s | %s | %.0f (%s) | %.2f | %.2f | %s |\n' "$1" "$2" "$CONNS" "$med" "${rates% }" \
    "$(awk "BEGIN {print $p50 / 1000}")" "$(awk "BEGIN {print $p99 / 1000}")" "$non2xx" | tee -a "$OUT/summary.md"
}

if [[ " $STORES " == *" embedded "* ]]; then
echo "== embedded store, one issuer" >&2
bench_port_free "$PORT" "the issuer"
start_issuer "$PORT" "$work/data-embedded"
wrk_run "$PORT" "$CONNS" "$WARMUP" "$work/tokens-embedded/refresh-0.txt" >/dev/null
lines=""
for rep in $(seq "$REPS"); do
  r="$(wrk_run "$PORT" "$CONNS" "$DURATION" "$work/tokens-embedded/refresh-$rep.txt")"
  lines+="$(bench_field rate <<<"$r") $(bench_field p50_us <<<"$r") $(bench_field p99_us <<<"$r") $(bench_field non2xx <<<"$r")"$'\n'
done
report embedded 1 "${lines%$'\n'}"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
fi

if [[ " $STORES " == *" postgresql "* ]]; then
echo "== PostgreSQL, two issuers" >&2
start_issuer "$((PORT + 1))" "$work/data-pg" "$dsn"
start_issuer "$((PORT + 2))" "$work/data-pg" "$dsn"
half=$((CONNS / 2))
both() { # FILE_A FILE_B SECONDS -> "summed-rate p50 p99 non2xx" (latencies: the worse replica)
  wrk_run "$((PORT + 1))" "$half" "$3" "$1" >"$work/a.result" &
  local job=$!
  wrk_run "$((PORT + 2))" "$half" "$3" "$2" >"$work/b.result"
  wait "$job" || fail "wrk against the first replica failed"
  cat "$work/a.result" "$work/b.result" | awk '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      r += v["rate"]; n += v["non2xx"]
      if (v["p50_us"] + 0 > p) p = v["p50_us"] + 0
      if (v["p99_us"] + 0 > q) q = v["p99_us"] + 0
    } END { printf "%.1f %d %d %d\n", r, p, q, n }'
}
both "$work/tokens-pg/refresh-0.txt" "$work/tokens-pg/refresh-1.txt" "$WARMUP" >/dev/null
lines=""
for rep in $(seq "$REPS"); do
  lines+="$(both "$work/tokens-pg/refresh-$((2 * rep)).txt" "$work/tokens-pg/refresh-$((2 * rep + 1)).txt" "$DURATION")"$'\n'
done
report postgresql 2 "${lines%$'\n'}"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.md"
echo "raw output: $OUT" >&2
