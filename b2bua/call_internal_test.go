package b2bua

import (
	"errors"
	"testing"
)

func TestCallErr(t *testing.T) {
	c := &Call{}
	if c.Err() != nil {
		t.Fatal("Err of a live call")
	}
	c.ended, c.rec.Status, c.rec.Reason = true, 486, "no contact answered"
	err := c.Err()
	var fe *FailedError
	if !errors.Is(err, ErrCallFailed) || !errors.As(err, &fe) || fe.Status != 486 {
		t.Fatalf("Err = %v", err)
	}
	c.answered = true
	if c.Err() != nil {
		t.Fatal("Err of an answered call that ended")
	}
}
