package dialplan

import (
	"errors"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// call:voicemail(ext) -> {answered, status, reason}: the caller leaves a message in ext's
// mailbox (b2bua.Call.Voicemail); answered once the voicemail application took the call. Without
// a voicemail application the call is left alone and the result is status 480, reason "no
// voicemail", so the script can refuse or route on.
func luaVoicemail(L *lua.LState) int {
	r := checkCall(L)
	mailbox := L.CheckString(2)
	var err error
	r.wait(func() { err = r.c.Voicemail(r.ctx, mailbox) })
	if errors.Is(err, b2bua.ErrNoVoicemail) {
		return result(L, b2bua.Result{Status: 480, Reason: "no voicemail"})
	}
	verbError(L, err)
	if r.c.Decided() {
		return result(L, b2bua.Result{Answered: true, Status: 200, Reason: "voicemail"})
	}
	return result(L, b2bua.Result{Status: 480, Reason: "no message taken"})
}
