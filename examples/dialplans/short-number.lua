-- Dialled numbers: internal extensions have three digits. Fewer digits are incomplete (484
-- Address Incomplete, so phones that dial digit by digit keep collecting), the 9 prefix reaches a
-- trunk, and anything else does not exist (404).

local TRUNK = "sip:%s@127.0.0.1:5070"   -- where 9-prefixed numbers go

function route(call)
  local n = call.to
  if not n:match("^%d+$") then return call:reject(404) end
  if #n < 3 then return call:reject(484) end
  if #n == 3 then
    local r = call:connect(n)
    if not r.answered then call:reject(r.status) end
    return
  end
  if n:sub(1, 1) == "9" and #n > 4 then
    call:set_caller_id("+4930123456", "Office")
    local r = call:connect(string.format(TRUNK, n:sub(2)), { timeout = 60 })
    if not r.answered then call:reject(r.status) end
    return
  end
  call:reject(404)
end
