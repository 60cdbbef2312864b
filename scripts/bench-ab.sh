#!/usr/bin/env bash
# A/B load run of two tokenwarden binaries (say, before and after a refactor), in one run on one
# machine: client_credentials ES256 and RS256 over 64 kept-alive connections, the issuer pinned
# to core 0 and wrk to core 1, the two binaries alternating (A first in odd rounds, B first in
# even ones), ROUNDS rounds of a 3 s warm-up and a DURATION-second measured run. Prints round, binary, algorithm, requests/s, non-2xx answers
# and the issuer's CPU time per request (user + system, from /proc; tab-separated), then per
# algorithm the ratio B/A of the mean throughputs, the median of the rounds' ratios and the
# ratio of the CPU per request.
#
# The issuers' logs go to LOG_DIR, by default /dev/shm (memory): an issuer whose audit trail
# writes megabytes a second to a disk makes this VM's disk emulation slow both cores, the load
# generator's too, which is the disk's cost, not the binary's (docs/benchmarks.md, "The audit
# trail's cost"). LOG_DIR=/tmp measures with the disk.
#
#   cargo build --release --bin tokenwarden && cp target/release/tokenwarden /tmp/tw-b
#   git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release --bin tokenwarden)
#   scripts/bench-ab.sh /tmp/old/target/release/tokenwarden /tmp/tw-b
#
# Needs wrk (apt-get install wrk), taskset, curl, python3 and two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/bench-ab.sh BINARY_A BINARY_B" >&2; exit 2; }
a="$1"; b="$2"
ROUNDS="${ROUNDS:-3}"; DURATION="${DURATION:-10}"; PORT="${PORT:-18080}"
LOG_DIR="${LOG_DIR:-/dev/shm}"
[ -d "$LOG_DIR" ] && [ -w "$LOG_DIR" ] || { echo "bench-ab: LOG_DIR $LOG_DIR is not a writable folder" >&2; exit 2; }
ticks="$(getconf CLK_TCK)"
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
work="$(mktemp -d)"; pid=""
log="$(mktemp "$LOG_DIR/tokenwarden-bench-ab.XXXXXX")"
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work" "$log"; }
trap cleanup EXIT
results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  # A before B in odd rounds, B before A in even ones, so that a machine that slows down or
  # speeds up during the run favours neither.
  order="A B"; [ $((round % 2)) -eq 1 ] || order="B A"
  for name in $order; do
    bin="$a"; [ "$name" = B ] && bin="$b"
    for alg in ES256 RS256; do
      dir="$work/run"; rm -rf "$dir"; mkdir -p "$dir/policies"
      sed "s|@SECRET@|$SECRET|" benches/issuer/policies.yaml >"$dir/policies/bench.yaml"
      taskset -c 0 "$bin" issuer --policies "$dir/policies" --data-dir "$dir/data" \
        --listen "127.0.0.1:$PORT" --metrics-listen 127.0.0.1:0 >"$log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
      audience="https://$(tr '[:upper:]' '[:lower:]' <<<"$alg").bench"
      run() { taskset -c 1 wrk -t1 -c64 -d"$1"s -s benches/issuer/client_credentials.lua \
        "http://127.0.0.1:$PORT/oauth/token" -- "$basic" "audience=$audience"; }
      run 3 >/dev/null
      cpu_before="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
      out="$(run "$DURATION")"
      cpu_after="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
      rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
      requests="$(awk '/requests in/ {print $1}' <<<"$out")"
      non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
      cpu_us="$(awk -v t="$((cpu_after - cpu_before))" -v hz="$ticks" -v n="$requests" \
        'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$alg" "$rps" "${non2xx:-0}" "$cpu_us" \
        | tee -a "$results"
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1])]
for alg in ("ES256", "RS256"):
    of = lambda name, col: [float(r[col]) for r in rows if r[1] == name and r[2] == alg]
    a, b = statistics.mean(of("A", 3)), statistics.mean(of("B", 3))
    rounds = statistics.median(y / x for x, y in zip(of("A", 3), of("B", 3)))
    cpu = statistics.median(of("B", 5)) / statistics.median(of("A", 5))
    print(f"{alg}: A {a:.0f}/s, B {b:.0f}/s, B/A {b / a:.3f} (median of rounds {rounds:.3f});"
          f" CPU per request B/A {cpu:.3f}")
PY
