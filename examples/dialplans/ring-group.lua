-- Ring group: calls to 600 ring the sales team's phones all at once; the first to answer takes
-- the call. If nobody answers in 20 seconds, the call goes to the team lead.

local GROUPS = {
  ["600"] = { members = { "201", "202", "203" }, fallback = "200" },
}

function route(call)
  local group = GROUPS[call.to]
  if group then
    local r = call:connect(group.members, { timeout = 20 })
    if r.answered then return end
    if group.fallback then
      return call:forward(group.fallback, { reason = "no-answer" })
    end
    return call:reject(r.status)
  end
  local r = call:connect(call.to)
  if not r.answered then call:reject(r.status) end
end
