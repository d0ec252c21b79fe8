package b2bua

import (
	"errors"
	"fmt"
)

// ErrDecided is returned by a verb used on a call whose caller already has its final answer: it
// was answered, refused, redirected or cancelled, or the call has ended.
var ErrDecided = errors.New("b2bua: the call is already decided")

// ErrUnknownTrunk is wrapped by Config.ResolveTrunk's error for a trunk that does not exist;
// Connect returns it to routing (a script's mistake, not a callee's answer).
var ErrUnknownTrunk = errors.New("no such trunk")

// ErrCallFailed is the error of a call that ended without being answered; it wraps a
// *FailedError with the final status.
var ErrCallFailed = errors.New("b2bua: call not answered")

// ErrNoMedia is returned by PlayToCaller on a call without media relay.
var ErrNoMedia = errors.New("b2bua: the call has no media relay")

// Errors of requests the engine sends inside a call's dialogs (inviteIn).
var (
	errNoAnswer  = errors.New("b2bua: no final answer")
	errCallEnded = errors.New("b2bua: call ended")
)

// errTxReleased: a response for the caller's INVITE after its transaction was let go (releaseTx).
var errTxReleased = errors.New("b2bua: the caller's INVITE transaction is over")

// FailedError says how an unanswered call ended.
type FailedError struct {
	Status int    // the final status the caller got
	Reason string // why, in words
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("b2bua: call not answered: %d (%s)", e.Status, e.Reason)
}

// Is makes errors.Is(err, ErrCallFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrCallFailed }

// StatusError is a failure with the SIP status that describes it: a destination that cannot be
// called (404, 486, 480, ...), a description the media relay refuses (400, 488), no free media
// port (503).
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Reason) }

// statusOf is the status that describes err: its StatusError's code, or 500.
func statusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 500
}

func errString(err error) string {
	if err == nil {
		return "ended"
	}
	return err.Error()
}
