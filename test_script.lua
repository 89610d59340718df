-- The spec's wrk script: wrk -t12 -c400 -d30s --script=test_script.lua http://localhost:8000/api/v1/predict
-- Every request is the spec's single prediction, POSTed as JSON. LOADTEST_API_KEY, when set, is
-- sent as X-API-Key (a key with its own rate limits: see the documentation, Load testing).
wrk.method = "POST"
wrk.body = '{"features": [5.1, 3.5, 1.4, 0.2]}'
wrk.headers["Content-Type"] = "application/json"

local key = os.getenv("LOADTEST_API_KEY")
if key ~= nil and key ~= "" then
    wrk.headers["X-API-Key"] = key
end
