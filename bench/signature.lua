-- wrk script for `bash bench/run.sh`: every request is one Meeting SDK signature.
--
-- The API key comes from the environment, never from this file, so no key is ever
-- committed; run.sh creates a throw-away key per run and exports it as ZTV_BENCH_KEY.

local key = os.getenv("ZTV_BENCH_KEY")
if key == nil or key == "" then
  error("ZTV_BENCH_KEY is not set (run this through bench/run.sh)")
end

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"meetingNumber":"123456789","role":0}'
