#!/usr/bin/env bash
# The controller at scale (docs/benchmarks-controller.md): loads BENCH_OBJECTS (default 10000)
# ApiTokenPolicies and as many ApiClients with their Secrets into the test control plane (real
# etcd and kube-apiserver, as the tests start it), cold-starts the controller and a cluster-mode
# issuer (release build) and prints convergence time, controller memory, configuration size,
# issuer reload time, apply-to-enforced p50/p99 and steady-state API requests per minute.
#
#   scripts/bench-controller.sh
#   BENCH_OBJECTS=1000 BENCH_PATCHES=20 scripts/bench-controller.sh
#
# Needs what scripts/test.sh needs (the test tools are built or found the same way); takes
# about 10 minutes at 10,000 on two cores, most of it loading the objects.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${TOKENWARDEN_TEST_TOOLS:-}" ]; then
  TOKENWARDEN_TEST_TOOLS="$(scripts/test-tools.sh | tail -n 1)"
  export TOKENWARDEN_TEST_TOOLS
fi
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(free -g | awk '/Mem:/ {print $2 " GiB RAM"}'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
exec cargo bench --bench controller_scale "$@"
