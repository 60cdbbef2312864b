-- wrk: client_credentials over HTTP Basic, the same request every time.
--   wrk ... -s client_credentials.lua URL -- BASIC_CREDENTIALS [FORM]
-- FORM is what follows grant_type in the body, e.g. `audience=https://api` (tokenwarden) or
-- `resource=https://api&scope=read` (resource indicators); URL's path is the token endpoint.
local report = dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = "Basic " .. args[1]
  wrk.body = "grant_type=client_credentials"
  if args[2] and args[2] ~= "" then
    wrk.body = wrk.body .. "&" .. args[2]
  end
end

done = report.done
