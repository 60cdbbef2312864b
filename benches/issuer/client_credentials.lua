-- wrk: client_credentials over HTTP Basic, the same request every time.
--   wrk ... -s client_credentials.lua URL -- AUDIENCE BASIC_CREDENTIALS
local report = dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")

function init(args)
  wrk.method = "POST"
  wrk.path = "/oauth/token"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Basic " .. args[2]
  wrk.body = "grant_type=client_credentials&audience=" .. args[1]
end

done = report.done
