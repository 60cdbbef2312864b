-- wrk: a plain GET (the empty round trip: /healthz), reported like the others.
local report = dofile((debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./") .. "report.lua")
done = report.done
