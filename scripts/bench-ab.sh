#!/usr/bin/env bash
# A/B load run of two tokenwarden binaries (say, before and after a refactor), in one run on one
# machine: client_credentials ES256 and RS256 over 64 kept-alive connections, the issuer pinned
# to core 0 and wrk to core 1, the two binaries alternating, ROUNDS rounds of a 3 s warm-up and
# a DURATION-second measured run. Prints round, binary, algorithm, requests/s and non-2xx
# answers (tab-separated), then the ratio B/A of the means.
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
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
basic="$(printf 'worker:%s' "$SECRET" | base64 -w0)"
work="$(mktemp -d)"; pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
results="$work/results.tsv"
for round in $(seq "$ROUNDS"); do
  for name in A B; do
    bin="$a"; [ "$name" = B ] && bin="$b"
    for alg in ES256 RS256; do
      dir="$work/run"; rm -rf "$dir"; mkdir -p "$dir/policies"
      sed "s|@SECRET@|$SECRET|" benches/issuer/policies.yaml >"$dir/policies/bench.yaml"
      taskset -c 0 "$bin" issuer --policies "$dir/policies" --data-dir "$dir/data" \
        --listen "127.0.0.1:$PORT" --metrics-listen 127.0.0.1:0 >"$dir/log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
      audience="https://$(tr '[:upper:]' '[:lower:]' <<<"$alg").bench"
      run() { taskset -c 1 wrk -t1 -c64 -d"$1"s -s benches/issuer/client_credentials.lua \
        "http://127.0.0.1:$PORT/oauth/token" -- "$basic" "audience=$audience"; }
      run 3 >/dev/null
      out="$(run "$DURATION")"
      rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
      non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$alg" "$rps" "${non2xx:-0}" | tee -a "$results"
      kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1])]
for alg in ("ES256", "RS256"):
    mean = lambda name: statistics.mean(float(r[3]) for r in rows if r[1] == name and r[2] == alg)
    print(f"{alg}: A {mean('A'):.0f}/s, B {mean('B'):.0f}/s, B/A {mean('B') / mean('A'):.3f}")
PY
