-- wrk_report.lua — wrk's end-of-run summary as one JSON line for `gillab run`.
--
-- Used as `wrk -s experiments/clients/wrk_report.lua ...`. wrk calls done()
-- once, after its own text report; the line printed here starts with
-- "GILLAB_WRK_JSON " so the runner finds it whatever wrk printed before
-- (experiments/clients.cc parses it). Units: wrk measures in microseconds.
-- errors.status counts replies with a status above 399: that is the
-- non_2xx figure (wrk does not count 3xx as errors; our servers send none).
--
--   wrk -c 8 -t 2 -d 10 --latency -s experiments/clients/wrk_report.lua http://127.0.0.1:8000/static

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'GILLAB_WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "min": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.min, latency.mean))
end
