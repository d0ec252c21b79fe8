package dialplan

import (
	"errors"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// call:conference(room [, {pin=..., moderator=bool}]) -> {answered, status, reason}
//
// It answers the caller (unless the script did), asks for the PIN when one is given, and keeps the
// caller in the room until the caller hangs up or is taken out (docs/dialplan.md). A PBX without
// media relay or rooms returns status 501 (logged), as call:answer does: the script can fall back.
func luaConference(L *lua.LState) int {
	r := checkCall(L)
	room := L.CheckString(2)
	if room == "" {
		L.ArgError(2, "a conference room needs a name")
	}
	t := options(L, 3)
	o := b2bua.ConferenceOptions{PIN: pinOption(L, t), Moderator: optBool(L, t, "moderator")}
	var res b2bua.ConferenceResult
	var err error
	r.wait(func() { res, err = r.c.Conference(r.ctx, room, o) })
	var se *b2bua.StatusError
	switch {
	case err == nil:
		return result(L, b2bua.Result{Answered: true, Status: 200, Reason: "left the conference (" + res.Ended + ")"})
	case errors.Is(err, b2bua.ErrWrongPIN):
		return result(L, b2bua.Result{Answered: true, Status: 403, Reason: "wrong PIN"})
	case errors.Is(err, b2bua.ErrNoRelay), errors.Is(err, b2bua.ErrNoConferences):
		r.log.Warn("call:conference() needs the media relay (RTP ports): the call was not answered", "error", err)
		return result(L, b2bua.Result{Status: 501, Reason: "the pbx has no media relay for conferences"})
	case errors.Is(err, b2bua.ErrDecided):
		return result(L, b2bua.Result{Answered: r.c.Answered(), Status: 487, Reason: "the call ended"})
	case errors.As(err, &se):
		return result(L, b2bua.Result{Answered: r.c.Answered(), Status: se.Code, Reason: se.Reason})
	}
	r.log.Warn("call:conference failed", "error", err)
	return result(L, b2bua.Result{Answered: r.c.Answered(), Status: 500, Reason: err.Error()})
}

// pinOption reads option pin: a string or a whole number of keys 0-9, *, A-D ('#' ends the
// input, so it cannot be part of a PIN); "" when absent. A number is its decimal digits: its
// leading zeros are gone before the script runs (pin=0123 is "123"), so docs/dialplan.md asks
// for strings.
func pinOption(L *lua.LState, t *lua.LTable) string {
	var pin string
	switch v := t.RawGetString("pin").(type) {
	case *lua.LNilType:
		return ""
	case lua.LNumber:
		if float64(v) < 0 || float64(v) != float64(int64(v)) {
			L.RaiseError("option pin must be keys (0-9, *, A-D)")
		}
		pin = strconv.FormatInt(int64(v), 10)
	case lua.LString:
		pin = strings.ToUpper(string(v))
	default:
		L.RaiseError("option pin must be a string or a number")
	}
	if pin == "" || strings.Trim(pin, "0123456789*ABCD") != "" || len(pin) > 32 {
		L.RaiseError("option pin must be 1 to 32 keys (0-9, *, A-D)")
	}
	return pin
}
