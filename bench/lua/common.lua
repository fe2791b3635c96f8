-- Shared by every benchmark script: load the pre-minted owner cookies (and task ids), report JSON when done.
-- BENCH_DATA names a file of tab-separated lines: "<cookie>\t<path>" (path may be empty).

local M = {}

function M.load(path)
  local lines = {}
  local file = assert(io.open(path, "r"))
  for line in file:lines() do
    local cookie, target = line:match("^([^\t]*)\t(.*)$")
    lines[#lines + 1] = { cookie = "genkeep_owner=" .. cookie, path = target }
  end
  file:close()
  assert(#lines > 0, "no lines in " .. path)
  return lines
end

function M.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCHJSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end

return M
