-- wrk script of the ingest benchmark: every request POSTs the same visit, about 190 bytes of JSON.
--
--   wrk --latency -s bench/post_visit.lua http://127.0.0.1:8000/api/events -- SITE
--
-- The optional SITE argument sets the visit's site, so that warm-up traffic is counted apart
-- from the measured run. done() prints one `BENCH_RESULT {json}` line that bench/run.py reads.

local function visit_body(site)
  return string.format(
    '{"timezone":"Europe/Berlin","url":"https://example.com/pricing?plan=team&period=yearly",'
      .. '"referrer":"https://example.com/","title":"Pricing","site":"%s",'
      .. '"latitude":52.52,"longitude":13.405}',
    site
  )
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- A browser's User-Agent: footfall drops visits from wrk's default (none) as a bot's.
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
  .. "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
wrk.body = visit_body("default")

-- wrk builds its one static request after init() returns, and because this script defines no
-- request() function, no Lua code runs per request.
function init(args)
  if args[1] ~= nil then
    wrk.body = visit_body(args[1])
  end
end

-- Latencies are in microseconds. errors.status counts responses with a status of 400 or more.
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%.0f,"p99":%.0f,"mean":%.1f,"max":%.0f}}\n',
    summary.requests, summary.duration,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max
  ))
end
