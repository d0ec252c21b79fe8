-- Blacklist: known nuisance callers are declined (603 Decline: "do not try elsewhere"), and
-- anonymous callers must identify themselves (433 Anonymity Disallowed).

local BLOCKED = {
  ["0900123456"] = true,
  ["spam"] = true,
}

function route(call)
  if BLOCKED[call.from] then
    pbx.log("info", "blocked caller", "from", call.from, "source", call.source)
    return call:reject(603)
  end
  if call.from == "anonymous" or call.from == "" then
    return call:reject(433)
  end
  local r = call:connect(call.to)
  if not r.answered then call:reject(r.status) end
end
