// Package dialplan decides what becomes of each new call: Go code through the Handler
// interface, or a Lua script through the Lua engine.
//
// A Handler receives the call as a *b2bua.Call and uses its verbs:
//
//	h := dialplan.HandlerFunc(func(ctx context.Context, c *b2bua.Call) error {
//		if c.Callee() == "911" {
//			return c.Reject(403, "")
//		}
//		r, err := c.Connect(ctx, []string{c.Callee()}, b2bua.ConnectOptions{Timeout: 20 * time.Second})
//		if err != nil || r.Answered {
//			return err
//		}
//		if r.Status == 486 {
//			_, err = c.Forward(ctx, []string{"voicemail"}, b2bua.ForwardOptions{Reason: "user-busy"})
//		}
//		return err
//	})
//
// The Lua engine (NewLua) runs a script that defines route(call) and optionally
// on_hangup(call, cdr); docs/dialplan.md is the reference of its API. Scripts are compiled once
// and run on pooled Lua states, sandboxed (no io, os, debug, load, dofile; require only from the
// script's own folder), each call in fresh globals and under a run-time limit. A changed script
// is compiled before it replaces the running one, and calls in progress keep the version they
// started with.
//
// Queues (Queues.Wait) keep callers waiting with 182 Queued until a member of the queue is free
// and answers.
package dialplan
