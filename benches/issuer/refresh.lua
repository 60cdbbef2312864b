-- wrk: refresh_token with rotation. Every request presents a refresh token that has never been
-- used: a pool starts with the seeded tokens of one file and each 200 puts the rotated token
-- back, so each chain of refreshes continues with its newest token.
--   wrk ... -s refresh.lua URL -- TOKENS_FILE CLIENT_ID [BASIC_CREDENTIALS]
-- A public client names itself with client_id; a confidential one also sends HTTP Basic.
local report = dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")

local pool, head, tail = {}, 1, 0
local prefix

function init(args)
  for line in io.lines(args[1]) do
    tail = tail + 1
    pool[tail] = line
  end
  prefix = "grant_type=refresh_token&client_id=" .. args[2] .. "&refresh_token="
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  if args[3] and args[3] ~= "" then
    wrk.headers["Authorization"] = "Basic " .. args[3]
  end
end

function request()
  local token = "exhausted"
  if head <= tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  end
  return wrk.format(nil, nil, nil, prefix .. token)
end

function response(status, headers, body)
  if status == 200 then
    local token = body:match('"refresh_token":"([^"]+)"')
    if token then
      tail = tail + 1
      pool[tail] = token
    end
  end
end

done = report.done
