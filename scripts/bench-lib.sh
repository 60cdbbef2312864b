# Shared by scripts/bench-issuer.sh, scripts/bench-refresh-stores.sh, scripts/bench-peers.sh,
# scripts/profile-issuer.sh and scripts/cost-refresh.sh (sourced, not run): the settings of a load
# run, the policies the issuer loads, how it is started, and the one way a scenario is measured,
# so every server of a run is driven alike.
#
# A scenario is measured by `bench_measure`: from CLIENT_CPU, wrk -t1 -cN over keep-alive
# connections, one warm-up run, then REPS runs of DURATION seconds; only 2xx answers count
# (benches/issuer/report.lua). It prints a Markdown row and appends a row to OUT/results.tsv,
# which scripts/bench-peers.sh turns into the comparison table and plot.
#
# The caller sets BENCH_NAME (for messages) and OUT before sourcing, and defines a function that
# sets the array WRK_ARGS for one wrk run (see bench_measure).

bench_fail() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# bench_write_policies DIR SECRET: the benchmarks' policies and clients
# (benches/issuer/policies.yaml) as DIR/bench.yaml, with SECRET as the client secret of `worker`.
bench_write_policies() {
  sed "s|@SECRET@|$2|" benches/issuer/policies.yaml >"$1/bench.yaml" \
    || bench_fail "could not write the policies into $1"
}

CONNS="${CONNS:-8 64}"
REPS="${REPS:-3}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-3}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || bench_fail "$tool is missing (wrk: apt-get install wrk)"
done
[ "$(nproc)" -ge 2 ] || bench_fail "needs two cores: one for the server, one for the load generator"
mkdir -p "$OUT"
# A run starts its results afresh, also in an OUT given again (bench-peers.sh sources this file
# before bench-issuer.sh does, and neither has measured anything by then).
: >"$OUT/results.tsv"

# bench_port_free PORT WHAT: fails if something already listens on 127.0.0.1:PORT, which would
# otherwise answer the readiness check and the load in the server's stead.
bench_port_free() {
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    bench_fail "port $1 for $2 is in use by another process: stop it or set the port variable"
  fi
}

# bench_wait_ready URL SECONDS PID LOG WHAT: waits until URL answers 2xx; fails, naming LOG, when
# the server's process PID ends first or SECONDS pass.
bench_wait_ready() {
  local url=$1 seconds=$2 pid=$3 log=$4 what=$5 waited=0
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || bench_fail "$what exited before it answered $url: see $log"
    [ "$waited" -lt $((seconds * 10)) ] || bench_fail "$what did not answer $url within ${seconds}s: see $log"
    sleep 0.1
    waited=$((waited + 1))
  done
}

# bench_start_issuer BIN POLICIES DATA PORT LOG: the standalone issuer BIN on SERVER_CPU, on PORT
# and its metrics on PORT + 1 (both must be free), its log in LOG; sets `server` to its process
# and returns once it is ready.
bench_start_issuer() {
  local bin=$1 policies=$2 data=$3 port=$4 log=$5
  bench_port_free "$port" "the issuer"
  bench_port_free "$((port + 1))" "the issuer's metrics"
  taskset -c "$SERVER_CPU" "$bin" issuer --policies "$policies" --data-dir "$data" \
    --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" 2>"$log" &
  server=$!
  bench_wait_ready "http://127.0.0.1:$port/readyz" 60 "$server" "$log" "the issuer"
}

# bench_wrk LOG: one wrk run with WRK_ARGS on CLIENT_CPU; sets RESULT to its RESULT line.
bench_wrk() {
  local log=$1
  taskset -c "$CLIENT_CPU" wrk "${WRK_ARGS[@]}" >"$log" 2>&1 || bench_fail "wrk failed: see $log"
  RESULT="$(grep '^RESULT' "$log")" || bench_fail "no result in $log"
  case "$RESULT" in
    *" ok=0 "*) bench_fail "no 2xx answer at all in $log: the server refused every request" ;;
  esac
}

bench_field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p"; }
bench_median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

# bench_measure SERVER SCENARIO ALG CONNS PID ARGS_FN [WARMUP_SECONDS]
# ARGS_FN is called (in this shell, so it may count its calls) as `ARGS_FN CONNS SECONDS` before
# each wrk run and sets WRK_ARGS. PID is the server's process, whose RSS is read after the runs.
bench_measure() {
  local server=$1 scenario=$2 alg=$3 conns=$4 pid=$5 args_fn=$6 warmup=${7:-$WARMUP}
  local label="$scenario-${alg,,}" all="" rates med p50 p99 non2xx rss hwm
  [ "$alg" != - ] || label="$scenario"
  local stem="$OUT/$server-$label-c$conns"
  "$args_fn" "$conns" "$warmup"
  bench_wrk "$stem-warmup.txt"
  for rep in $(seq "$REPS"); do
    "$args_fn" "$conns" "$DURATION"
    bench_wrk "$stem-$rep.txt"
    all+="$RESULT"$'\n'
  done
  rates="$(bench_field rate <<<"$all" | awk '{printf "%d ", $1}')"
  med="$(bench_field rate <<<"$all" | bench_median)"
  p50="$(bench_field p50_us <<<"$all" | bench_median)"
  p99="$(bench_field p99_us <<<"$all" | bench_median)"
  non2xx="$(bench_field non2xx <<<"$all" | awk '{s+=$1} END {print s}')"
  [ -r "/proc/$pid/status" ] || bench_fail "the $server server (pid $pid) is gone after $scenario: see $OUT"
  # Every thread of the server (runtime workers, GC and JIT threads, thread pools) on SERVER_CPU.
  if grep -h '^Cpus_allowed_list:' /proc/"$pid"/task/*/status 2>/dev/null | grep -qv "[[:space:]]$SERVER_CPU\$"; then
    bench_fail "a thread of the $server server (pid $pid) may run outside core $SERVER_CPU"
  fi
  rss="$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")"
  hwm="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  printf '%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$scenario" "$alg" "$conns" \
    "$med" "$p50" "$p99" "$non2xx" "$rss" "$hwm" "${rates% }" >>"$OUT/results.tsv"
  BENCH_ROW="$(printf '| %s | %s | %.0f (%s) | %.2f | %.2f | %s | %.0f (%.0f) |' "$label" "$conns" \
    "$med" "${rates% }" "$(awk "BEGIN {print $p50 / 1000}")" "$(awk "BEGIN {print $p99 / 1000}")" \
    "$non2xx" "$(awk "BEGIN {print $rss / 1024}")" "$(awk "BEGIN {print $hwm / 1024}")")"
}
