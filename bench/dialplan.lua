-- The dialplan of bench/call-rate.sh and bench/held-calls.sh: look the dialled extension up and
-- connect the caller to it, the smallest dialplan that does what an office PBX's does.
function route(call)
  local ext = pbx.extension(call.to)
  if not ext then return call:reject(404) end
  local r = call:connect(call.to, {timeout = 20})
  if r.answered then return end
  return call:reject(r.status)
end
