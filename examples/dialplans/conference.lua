-- Conference rooms: dial 8 and two digits to join room NN, mixed by the PBX (each caller hears
-- everyone but themselves). Room 10 is the board's: it asks for the PIN 2468, and 101 is its
-- moderator (when 101 leaves, the meeting ends for everyone). Needs the media relay (officepbx
-- serve --rtp-ports 20000-30000). Rooms, mute and kick: GET /api/conferences and
-- /api/conferences/{room}/participants/{id} in the admin API.

local boards = { ["10"] = { pin = "2468", moderator = "101" } }

function route(call)
  local room = call.to:match("^8(%d%d)$")
  if not room then return call:connect(call.to) end
  local opts = {}
  local board = boards[room]
  if board then opts = { pin = board.pin, moderator = call.from == board.moderator } end
  local r = call:conference(room, opts)
  pbx.log("info", "conference over", "room", room, "status", r.status, "reason", r.reason)
  if r.status == 403 then call:play("tone:busy") end
  if r.status == 501 then return call:reject(480) end
end
