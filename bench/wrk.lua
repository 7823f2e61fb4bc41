-- wrk script for bench/run.py: an optional request body, and the results as one JSON line.
--
--   wrk -s bench/wrk.lua URL                   GET, as wrk does without a script
--   wrk -s bench/wrk.lua URL -- upload BYTES   POST of BYTES bytes (application/octet-stream)
--
-- No request() or response() function: wrk then sends one pre-formatted request and runs no
-- Lua per request, so the script costs nothing during the measurement. done() prints the
-- summary wrk keeps anyway: requests, microseconds, bytes read, errors by kind, latency
-- percentiles in microseconds.

function init(args)
   if args[1] == "upload" then
      wrk.method = "POST"
      wrk.body = string.rep("x", tonumber(args[2]))
      wrk.headers["Content-Type"] = "application/octet-stream"
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
      '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
