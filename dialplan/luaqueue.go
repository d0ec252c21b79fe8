package dialplan

import (
	"cmp"
	"errors"
	"fmt"

	lua "github.com/yuin/gopher-lua"

	"github.com/pbxkit/pbxkit/b2bua"
)

// The Lua API of queues, agents and ring groups (docs/dialplan.md).

// call:queue(name [, opts]) -> {answered, status, reason}
func luaQueue(L *lua.LState) int {
	r := checkCall(L)
	name := L.CheckString(2)
	t := options(L, 3)
	o := QueueOptions{Timeout: optSeconds(L, t, "timeout"), Announce: optSeconds(L, t, "announce"),
		RingTimeout: optSeconds(L, t, "ring_timeout"), Music: optString(L, t, "music"),
		Announcement: optString(L, t, "announcement")}
	dir := r.directory(L)
	var q *Queue
	var err error
	r.wait(func() { q, err = dir.Queue(r.ctx, name) })
	if err != nil {
		r.log.Error("queue look-up failed", "queue", name, "error", err)
		return failed(L, r.c, 503, "queue look-up failed")
	}
	if q == nil {
		return failed(L, r.c, 404, fmt.Sprintf("no queue named %s", name))
	}
	var res b2bua.Result
	r.wait(func() { res, err = r.l.cfg.Queues.Wait(r.ctx, r.c, q, o) })
	verbError(L, err)
	return result(L, res)
}

func (r *run) directory(L *lua.LState) Directory {
	if r.l.cfg.Directory == nil {
		L.RaiseError("the dialplan has no directory to find queues and groups in")
	}
	return r.l.cfg.Directory
}

func (r *run) agents(L *lua.LState) AgentDirectory {
	ad, ok := r.directory(L).(AgentDirectory)
	if !ok {
		L.RaiseError("the dialplan's directory cannot change queue agents")
	}
	return ad
}

// setAgent applies ch to ext in queue ("" or "*": every queue of ext) and pushes whether ext is
// a member there.
func (r *run) setAgent(L *lua.LState, queue, ext string, ch AgentChange) int {
	if queue == "*" {
		queue = ""
	}
	ad := r.agents(L)
	var err error
	r.wait(func() { _, err = ad.SetAgent(r.ctx, queue, ext, ch) })
	switch {
	case errors.Is(err, ErrNotMember):
		L.Push(lua.LFalse)
		return 1
	case err != nil:
		L.RaiseError("changing agent %s of queue %s: %s", ext, queue, err.Error())
	}
	L.Push(lua.LTrue)
	return 1
}

// pbx.queue_pause(queue, ext, paused [, reason]) -> true, or false when ext is no member of queue
func (r *run) luaQueuePause(L *lua.LState) int {
	queue, ext := L.CheckString(1), L.CheckString(2)
	paused := L.CheckBool(3)
	reason := L.OptString(4, "")
	if len(reason) > 64 {
		L.ArgError(4, "a pause reason is at most 64 characters")
	}
	return r.setAgent(L, queue, ext, AgentChange{Paused: &paused, Reason: reason})
}

// pbx.queue_login(queue, ext, logged_in) -> true, or false when ext is no member of queue
func (r *run) luaQueueLogin(L *lua.LState) int {
	queue, ext := L.CheckString(1), L.CheckString(2)
	out := !L.CheckBool(3)
	return r.setAgent(L, queue, ext, AgentChange{LoggedOut: &out})
}

// pbx.queue_stats(queue) -> {waiting, longest_wait, answered, abandoned, timed_out, full}; the
// waiting callers of every node, with several (Queues.StatsAcross)
func (r *run) luaQueueStats(L *lua.LState) int {
	s := r.l.cfg.Queues.StatsAcross(r.ctx, L.CheckString(1))
	t := L.CreateTable(0, 6)
	t.RawSetString("waiting", lua.LNumber(s.Waiting))
	t.RawSetString("longest_wait", lua.LNumber(s.LongestWait.Seconds()))
	t.RawSetString("answered", lua.LNumber(s.Answered))
	t.RawSetString("abandoned", lua.LNumber(s.Abandoned))
	t.RawSetString("timed_out", lua.LNumber(s.TimedOut))
	t.RawSetString("full", lua.LNumber(s.Full))
	L.Push(t)
	return 1
}

// pbx.queue_size(name) -> how many callers wait in the queue, on every node
func (r *run) luaQueueSize(L *lua.LState) int {
	L.Push(lua.LNumber(r.l.cfg.Queues.StatsAcross(r.ctx, L.CheckString(1)).Waiting))
	return 1
}

// pbx.group(number) -> nil, or {number, strategy, members, member_timeout}
func (r *run) luaGroup(L *lua.LState) int {
	gd, ok := r.directory(L).(GroupDirectory)
	if !ok {
		L.Push(lua.LNil)
		return 1
	}
	var g *Group
	var err error
	number := L.CheckString(1)
	r.wait(func() { g, err = gd.Group(r.ctx, number) })
	if err != nil {
		L.RaiseError("looking up ring group %s: %s", number, err.Error())
	}
	if g == nil {
		L.Push(lua.LNil)
		return 1
	}
	members := L.CreateTable(len(g.Members), 0)
	for _, m := range g.Members {
		members.Append(lua.LString(m))
	}
	t := L.CreateTable(0, 4)
	t.RawSetString("number", lua.LString(g.Number))
	t.RawSetString("strategy", lua.LString(cmp.Or(g.Strategy, GroupParallel)))
	t.RawSetString("members", members)
	t.RawSetString("member_timeout", lua.LNumber(g.MemberTimeout.Seconds()))
	L.Push(t)
	return 1
}
