#!/usr/bin/env bash
# What one client_credentials request costs two tokenwarden binaries, counted rather than timed:
# each standalone issuer runs under valgrind's callgrind with its cache simulation, gets REQUESTS
# ES256 requests over one kept-alive connection after a warm-up, and the counts of those
# requests alone (the counters are zeroed after the warm-up) are divided by REQUESTS. Prints per
# request the instructions, the L1 instruction-cache misses and the L1 data misses of both, and
# B/A; keeps the callgrind files in OUT for `callgrind_annotate`.
#
# Counts do not depend on what else the machine runs, which timed runs here do (bench-ab.sh's
# rounds spread by ±10 %): use this to see what a change costs, and bench-ab.sh for throughput.
# Time is not instructions: a miss of the instruction cache costs cycles no count shows, so a
# change that adds code on the path costs more than its share of instructions.
#
#   scripts/instructions-ab.sh /tmp/tw-a /tmp/tw-b      # docs/benchmarks.md
#
# Needs valgrind (Debian: valgrind), curl, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/instructions-ab.sh BINARY_A BINARY_B" >&2; exit 2; }
command -v callgrind_control >/dev/null || { echo "instructions-ab: valgrind is missing (Debian: valgrind)" >&2; exit 1; }
REQUESTS="${REQUESTS:-2000}"; PORT="${PORT:-18095}"
SECRET="bench-secret-0123456789abcdefghijklmnopqrstuvwxyz"
work="$(mktemp -d)"; OUT="${OUT:-$work/out}"; mkdir -p "$OUT"; pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$work/run"; }
trap cleanup EXIT

# requests N: N client_credentials requests, one connection; fails on any answer but 200.
requests() {
  python3 - "$PORT" "$1" "$SECRET" <<'PY'
import base64, http.client, sys
port, count, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
basic = base64.b64encode(f"worker:{secret}".encode()).decode()
headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
connection = http.client.HTTPConnection("127.0.0.1", port)
for _ in range(count):
    connection.request("POST", "/oauth/token", "grant_type=client_credentials&audience=https://es256.bench", headers)
    answer = connection.getresponse()
    answer.read()
    if answer.status != 200:
        sys.exit(f"instructions-ab: the issuer answered {answer.status}")
PY
}

for name in A B; do
  bin="$1"; [ "$name" = B ] && bin="$2"
  dir="$work/run"; rm -rf "$dir"; mkdir -p "$dir/policies"
  sed "s|@SECRET@|$SECRET|" benches/issuer/policies.yaml >"$dir/policies/bench.yaml"
  valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$OUT/$name.%p" \
    "$bin" issuer --policies "$dir/policies" --data-dir "$dir/data" \
    --listen "127.0.0.1:$PORT" --metrics-listen 127.0.0.1:0 >"$OUT/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "instructions-ab: $bin did not get ready: $OUT/$name.log" >&2; exit 1; }
  requests 200
  callgrind_control --zero "$pid" >/dev/null 2>&1
  requests "$REQUESTS"
  callgrind_control --dump "$pid" >/dev/null 2>&1
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  # The dump of the measured requests is the one with a part number.
  ls "$OUT/$name".*.* >/dev/null 2>&1 || { echo "instructions-ab: no dump of $bin" >&2; exit 1; }
done

python3 - "$OUT" "$REQUESTS" <<'PY'
import glob, re, subprocess, sys
out, count = sys.argv[1], int(sys.argv[2])
def totals(name):
    dump = sorted(glob.glob(f"{out}/{name}.*.*"))[0]
    text = subprocess.run(["callgrind_annotate", "--threshold=100", dump], capture_output=True, text=True, check=True).stdout
    events = re.search(r"^Events shown:\s+(.*)$", text, re.M).group(1).split()
    line = next(l for l in text.splitlines() if "PROGRAM TOTALS" in l)
    values = [int(v.replace(",", "")) for v in re.findall(r"([\d,]+) \(", line)]
    return dict(zip(events, values))
a, b = totals("A"), totals("B")
for event, label in (("Ir", "instructions"), ("I1mr", "L1 instruction misses"), ("D1mr", "L1 data read misses"), ("D1mw", "L1 data write misses")):
    x, y = a[event] / count, b[event] / count
    print(f"{label}: A {x:,.0f}, B {y:,.0f} per request, B/A {y / x:.3f}")
print(f"callgrind files: {out}")
PY
