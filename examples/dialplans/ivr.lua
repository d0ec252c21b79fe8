-- An auto attendant on 500: the PBX answers, asks for an extension (a beep stands in for a
-- recorded prompt: put "prompts/menu.wav" beside this script and name it instead), connects the
-- caller to the extension dialled, and takes a message when nobody answers. Needs the media
-- relay (officepbx serve --rtp-ports 20000-30000); without it the caller gets 480. Messages go
-- under the data directory (--data-dir), one folder per extension.

local function attendant(call)
  local a = call:answer()
  if not a.answered then return call:reject(480) end
  for _ = 1, 3 do
    local ext = call:gather({ max = 4, timeout = 5, terminator = "#", prompt = "tone:beep" })
    if ext ~= "" then
      if not pbx.extension(ext) then
        call:play("tone:busy")
      else
        local r = call:connect(ext, { timeout = 20 })
        if r.answered then return end
        -- A name the PBX makes up: the caller chooses its Call-ID (call.id), so it must not name
        -- files. An existing file is never replaced.
        local name = string.format("messages/%s/%d-%d.wav", ext, pbx.time().unix, math.random(1e9))
        local msg = call:record(name, { max = 120, silence = 5, beep = true })
        if msg then
          pbx.log("info", "message left", "ext", ext, "seconds", msg.seconds)
        end
        return call:hangup()
      end
    end
  end
  call:hangup()
end

function route(call)
  if call.to == "500" then return attendant(call) end
  return call:connect(call.to)
end

-- Key presses during a bridged call: "*" from the caller ends it.
function on_dtmf(call, digit, side)
  pbx.log("debug", "key", "digit", digit, "side", side)
  if side == "caller" and digit == "*" then call:hangup() end
end
