package dialplan

import (
	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// call:pickup(ext) -> {answered, status, reason}: answers the call ringing at ext (directed
// pickup); status 480 when nothing rings there.
func luaPickup(L *lua.LState) int {
	r := checkCall(L)
	ext := L.CheckString(2)
	var res b2bua.Result
	var err error
	r.wait(func() { res, err = r.c.Pickup(r.ctx, ext) })
	verbError(L, err)
	return result(L, res)
}

// call:group_pickup() -> {answered, status, reason}: answers the call ringing longest in the
// caller's pickup group; status 480 when none rings or the caller is in no group.
func luaGroupPickup(L *lua.LState) int {
	r := checkCall(L)
	var res b2bua.Result
	var err error
	d := Default{Directory: r.l.cfg.Directory}
	r.wait(func() { res, err = d.groupPickup(r.ctx, r.c) })
	verbError(L, err)
	return result(L, res)
}

// call:unpark(slot) -> {answered, status, reason}: retrieves the call parked at slot; status 404
// when nothing is parked there.
func luaUnpark(L *lua.LState) int {
	r := checkCall(L)
	slot := L.CheckString(2)
	var res b2bua.Result
	var err error
	r.wait(func() { res, err = r.c.Unpark(r.ctx, slot) })
	verbError(L, err)
	return result(L, res)
}
