-- One machine-readable line per wrk run. Only 2xx responses count as tokens: `ok` is the
-- requests less non-2xx/3xx answers and socket errors.
local M = {}

function M.done(summary, latency, requests)
  local e = summary.errors
  local failed = e.status + e.connect + e.read + e.write + e.timeout
  local ok = summary.requests - e.status
  io.write(string.format(
    "RESULT ok=%d non2xx=%d socket_errors=%d seconds=%.3f rate=%.1f p50_us=%d p99_us=%d max_us=%d\n",
    ok, e.status, failed - e.status, summary.duration / 1e6, ok / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency.max))
end

return M
