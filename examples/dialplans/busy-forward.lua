-- Forwarding as the extension settings say (officepbx ext set N --forward-always/--forward-busy/
-- --forward-noanswer), do-not-disturb, and a CDR line for every call. Default routing does the
-- forwarding alone (docs/dialplan.md, "Default routing"); this script shows it written out, with
-- 603 instead of the busy path for do-not-disturb.

function route(call)
  local ext = pbx.extension(call.to)
  if not ext then return call:reject(404) end
  if not ext.enabled then return call:reject(410) end
  if ext.dnd then return call:reject(603) end
  if ext.forward_always ~= "" then
    return call:forward(ext.forward_always, { reason = "unconditional" })
  end
  local timeout = ext.ring_timeout > 0 and ext.ring_timeout or 20
  local r = call:connect(call.to, { timeout = timeout })
  if r.answered then return end
  call:set("first_status", r.status)
  if r.status == 486 and ext.forward_busy ~= "" then
    return call:forward(ext.forward_busy, { reason = "user-busy" })
  end
  if (r.status == 480 or r.status == 408) and ext.forward_noanswer ~= "" then
    return call:forward(ext.forward_noanswer, { reason = "no-answer" })
  end
  call:reject(r.status)
end

function on_hangup(call, cdr)
  pbx.log("info", "cdr", "from", call.from, "to", call.to, "disposition", cdr.disposition,
    "billsec", cdr.billsec, "first_status", call:get("first_status") or "-")
end
