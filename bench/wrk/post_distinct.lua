-- POST a different document on every request: BENCH_TEMPLATE (a file) holds a JSON body whose text contains
-- "%d", replaced by a counter modulo BENCH_DISTINCT (the number of distinct documents). done() as post.lua.
local file = assert(io.open(os.getenv("BENCH_TEMPLATE"), "rb"))
local template = file:read("*a")
file:close()
local distinct = tonumber(os.getenv("BENCH_DISTINCT"))
local auth = os.getenv("BENCH_AUTH")
local headers = {["Content-Type"] = "application/json"}
if auth and auth ~= "" then headers["Authorization"] = auth end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

counter = 0
errors = 0

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, string.format(template, counter % distinct))
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local errs = 0
  for _, thread in ipairs(threads) do
    errs = errs + thread:get("errors")
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), errs,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
