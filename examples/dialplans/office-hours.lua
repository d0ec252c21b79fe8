-- Office hours: extensions ring Monday to Friday, 08:00 to 18:00 (the PBX's time zone, or the
-- one named below). Outside them callers hear 480 with a reason, unless they call an emergency
-- number, which always rings.

local OPEN_HOUR, CLOSE_HOUR = 8, 18
local ZONE = nil            -- e.g. "Europe/Berlin"; nil: the PBX's local time
local ALWAYS = { ["110"] = true, ["112"] = true }

local function open_now()
  local t = pbx.time(ZONE)
  local weekday = t.wday >= 2 and t.wday <= 6   -- 1 is Sunday
  return weekday and t.hour >= OPEN_HOUR and t.hour < CLOSE_HOUR
end

function route(call)
  if not ALWAYS[call.to] and not open_now() then
    pbx.log("info", "closed", "to", call.to)
    return call:reject(480, "Office Closed")
  end
  local ext = pbx.extension(call.to)
  if not ext then return call:reject(404) end
  local r = call:connect(call.to, { timeout = 25 })
  if not r.answered then return call:reject(r.status) end
end
