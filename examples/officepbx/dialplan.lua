-- The office dialplan officepbx loads by default (see README: "First run"). Edit it while the
-- PBX runs: a saved change is compiled and takes over; a broken edit is logged and the running
-- version stays. The Lua API is described in docs/dialplan.md.
--
--   100-103   the demo extensions (any extension in the database rings)
--   600       ring group: the front desk, 100 and 101 ring together
--   650       support queue: agents 102 and 103, hold tone while callers wait (not 700:
--             that is the park number, and a transfer to it parks the call)
--   blocked   callers in BLOCKED are declined with 603
--   hours     the group and the queue answer Monday to Friday, 08:00 to 18:00
--
-- What route leaves alone (it returns without acting) goes on to default routing, which knows
-- the feature codes, the trunks and the extensions' forwarding settings.
--
-- No answer: an extension that is not answered forwards to its "forward on no answer" target
-- (officepbx ext set 100 --forward-noanswer 101) when it has one; else, with its voicemail on
-- (officepbx ext set 100 --voicemail on --pin 1234) and the media relay running (--rtp-ports),
-- the caller leaves a message; else the caller hears why the call failed. *97 and *98 (your own
-- mailbox, any mailbox) are left to default routing.

local BLOCKED = { ["0900123456"] = true, ["spam"] = true }
local GROUPS = { ["600"] = { "100", "101" } }
local QUEUES = { ["650"] = "support" }
local OPEN_HOUR, CLOSE_HOUR = 8, 18
local ZONE = nil -- e.g. "Europe/Berlin"; nil: the PBX's local time

local function open_now()
  local t = pbx.time(ZONE)
  local weekday = t.wday >= 2 and t.wday <= 6 -- 1 is Sunday
  return weekday and t.hour >= OPEN_HOUR and t.hour < CLOSE_HOUR
end

-- mailbox sends the caller to ext's voicemail when it is on, else refuses it with status.
local function mailbox(call, ext, status)
  if ext.voicemail then
    local r = call:voicemail(ext.number)
    if r.answered then return end
  end
  return call:reject(status)
end

local function extension(call, ext)
  if not ext.enabled then return call:reject(404) end
  if ext.dnd then return mailbox(call, ext, 486) end
  if ext.forward_always ~= "" then return call:forward(ext.forward_always) end
  local r = call:connect(ext.number)
  if r.answered then return end
  if r.status == 486 and ext.forward_busy ~= "" then
    return call:forward(ext.forward_busy, { reason = "user-busy" })
  end
  if (r.status == 408 or r.status == 480) and ext.forward_noanswer ~= "" then
    return call:forward(ext.forward_noanswer, { reason = "no-answer" })
  end
  if r.status == 408 or r.status == 480 or r.status == 486 or r.status == 600 or r.status == 603 then
    return mailbox(call, ext, r.status)
  end
  return call:reject(r.status)
end

function route(call)
  if BLOCKED[call.from] then
    pbx.log("info", "blocked caller", "from", call.from, "source", call.source)
    return call:reject(603)
  end
  local group, queue = GROUPS[call.to], QUEUES[call.to]
  if (group or queue) and not open_now() then
    return call:reject(480, "Office Closed")
  end
  if group then
    local r = call:connect(group, { timeout = 25 })
    if not r.answered then return call:reject(r.status) end
    return
  end
  if queue then
    local r = call:queue(queue, { music = "tone", announce = 30, timeout = 300 })
    if not r.answered then return call:reject(r.status) end
    return
  end
  -- Feature codes (*8, **NNN, park slots) and numbers that are no extension (out through a trunk,
  -- or 404) are left to default routing: route returns without acting.
  local ext = pbx.extension(call.to)
  if not ext or call.to:sub(1, 1) == "*" then return end
  return extension(call, ext)
end
