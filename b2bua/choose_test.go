package b2bua

import (
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestChooseFinal(t *testing.T) {
	for _, tc := range []struct {
		codes []int
		want  int
	}{
		{nil, 408},
		{[]int{486}, 486},
		{[]int{486, 603}, 603},
		{[]int{603, 486, 500}, 603},
		{[]int{500, 486}, 486},
		{[]int{503}, 500},
		{[]int{503, 504}, 500},
		{[]int{404, 484}, 484},
		{[]int{480, 407, 486}, 407},
		{[]int{302, 486}, 302},
		{[]int{600, 603}, 600},
		{[]int{100, 180}, 408},
	} {
		if got := chooseFinal(tc.codes); got != tc.want {
			t.Errorf("chooseFinal(%v) = %d, want %d", tc.codes, got, tc.want)
		}
	}
}

func TestOutcomeFinal(t *testing.T) {
	var unreachable outcome
	unreachable.ended(errors.New("connection refused"))
	if got := unreachable.final(); got != 503 {
		t.Errorf("only unreachable contacts: %d, want 503", got)
	}
	var timedOut outcome
	timedOut.ended(sip.ErrTransactionTimeout)
	timedOut.ended(errors.New("connection refused"))
	if got := timedOut.final(); got != 408 {
		t.Errorf("a timeout and an unreachable contact: %d, want 408", got)
	}
	var challenged outcome
	challenged.answered(407)
	challenged.answered(486)
	if got := challenged.final(); got != 403 {
		t.Errorf("a callee's challenge: %d, want 403", got)
	}
	var busy outcome
	busy.answered(486)
	busy.ended(errors.New("connection refused"))
	if got := busy.final(); got != 486 {
		t.Errorf("one busy, one unreachable: %d, want 486", got)
	}
}
