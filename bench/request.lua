-- wrk script for `bash bench/run.sh`: every request is the same authenticated call to ztv.
-- The path is the URL given to wrk; the rest comes from the environment:
--
--   ZTV_BENCH_KEY     the API key, sent as `Authorization: Bearer …` (required)
--   ZTV_BENCH_METHOD  the HTTP method (default GET)
--   ZTV_BENCH_BODY    a JSON body, sent with `Content-Type: application/json` (default none)
--
-- The key comes from the environment, never from this file, so no key is ever committed;
-- run.sh creates a throw-away key per run.

local key = os.getenv("ZTV_BENCH_KEY")
if key == nil or key == "" then
  error("ZTV_BENCH_KEY is not set (run this through bench/run.sh)")
end

local method = os.getenv("ZTV_BENCH_METHOD")
if method == nil or method == "" then
  method = "GET"
end

wrk.method = method
wrk.headers["Authorization"] = "Bearer " .. key

local body = os.getenv("ZTV_BENCH_BODY")
if body ~= nil and body ~= "" then
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = body
end
