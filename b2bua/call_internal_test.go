package b2bua

import (
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestCallErr(t *testing.T) {
	c := &Call{log: slog.New(slog.DiscardHandler)}
	if c.Err() != nil {
		t.Fatal("Err of a live call")
	}
	c.state, c.rec.Status, c.rec.Reason = stateEnded, 486, "no contact answered"
	err := c.Err()
	var fe *FailedError
	if !errors.Is(err, ErrCallFailed) || !errors.As(err, &fe) || fe.Status != 486 {
		t.Fatalf("Err = %v", err)
	}
	c.rec.Answer = time.Now()
	if c.Err() != nil {
		t.Fatal("Err of an answered call that ended")
	}
}

func TestStateMachine(t *testing.T) {
	allowed := map[[2]callState]bool{
		{stateSetup, stateRefused}: true, {stateSetup, stateAnswered}: true, {stateSetup, stateEnded}: true,
		{stateRefused, stateEnded}:         true,
		{stateAnswered, stateTransferring}: true, {stateAnswered, stateEnded}: true,
		{stateTransferring, stateAnswered}: true, {stateTransferring, stateEnded}: true,
	}
	for from := stateSetup; from <= stateEnded; from++ {
		for to := stateSetup; to <= stateEnded; to++ {
			if got := from.canMove(to); got != allowed[[2]callState{from, to}] {
				t.Errorf("%v -> %v allowed = %v", from, to, got)
			}
		}
	}
	c := &Call{log: slog.New(slog.DiscardHandler)}
	if c.moveLocked(stateTransferring) {
		t.Fatal("a call being set up was transferred")
	}
	if !c.moveLocked(stateAnswered) || !c.moveLocked(stateTransferring) || !c.moveLocked(stateAnswered) || !c.moveLocked(stateEnded) {
		t.Fatal("answered, transferred and ended: some move was refused")
	}
	if c.moveLocked(stateAnswered) || c.state != stateEnded {
		t.Fatal("an ended call moved")
	}
	if got := callState(9).String(); got != "callState(9)" {
		t.Fatalf("String of an unknown state = %q", got)
	}
}
