package pbx

import (
	"context"
	"errors"
	"fmt"

	"github.com/pbxkit/pbxkit/b2bua"
)

// What an admin interface (officepbx's HTTP API) reads and does beside the SIP traffic: the calls
// in progress, hanging one up, the store, readiness.

// ErrNoCall is returned (wrapped) by Hangup when no call in progress has that ID.
var ErrNoCall = errors.New("pbx: no such call")

// Calls returns a snapshot of the calls in progress, oldest first.
func (p *PBX) Calls() []b2bua.CallInfo { return p.calls.Calls() }

// Hangup ends the call in progress whose caller's Call-ID is id: an answered call gets BYE on
// both sides, a call still ringing is cancelled and its caller gets 487. reason goes into the
// call's record.
func (p *PBX) Hangup(id, reason string) error {
	c := p.calls.Call(id)
	if c == nil {
		return fmt.Errorf("%w: %q", ErrNoCall, id)
	}
	p.log.Info("call hung up by the PBX", "call_id", id, "reason", reason)
	c.Hangup(reason)
	return nil
}

// StartRecording records the call in progress whose caller's Call-ID is id (Call.RecordCall) and
// returns the file's path: from now on for an answered call, from the answer for one still
// ringing. Errors: ErrNoCall (wrapped), b2bua.ErrRecording, b2bua.ErrNoMedia, b2bua.ErrUndecodable.
func (p *PBX) StartRecording(id string) (string, error) {
	c := p.calls.Call(id)
	if c == nil {
		return "", fmt.Errorf("%w: %q", ErrNoCall, id)
	}
	return c.RecordCall()
}

// StopRecording stops recording the call whose caller's Call-ID is id and returns the completed
// file's path. Errors: ErrNoCall (wrapped), b2bua.ErrNotRecording.
func (p *PBX) StopRecording(id string) (string, error) {
	c := p.calls.Call(id)
	if c == nil {
		return "", fmt.Errorf("%w: %q", ErrNoCall, id)
	}
	return c.StopRecordCall()
}

// Store returns the store the PBX uses: the one WithStore gave, or the one it opened from
// Config.Database (valid until Shutdown). An admin interface asserts the interfaces it needs
// (*store.Store implements them all).
func (p *PBX) Store() Store { return p.store }

// pinger is a store that can say whether its database answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// Ready says whether the PBX can take calls: Health (the listeners serve) and, when the store can
// tell, whether its database answers within ctx. Load balancers ask it (officepbx's /readyz),
// and /healthz reports it.
func (p *PBX) Ready(ctx context.Context) error {
	if err := p.Health(); err != nil {
		return err
	}
	if s, ok := p.store.(pinger); ok {
		if err := s.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
	}
	return nil
}
