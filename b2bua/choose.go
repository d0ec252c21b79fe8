package b2bua

import (
	"errors"

	"github.com/emiago/sipgo/sip"
)

// outcome collects why B-legs failed, to choose the caller's answer once all have.
type outcome struct {
	codes       []int // final answers of the contacts
	unreachable int   // legs whose transaction ended without any answer but a timeout
}

// answered records a contact's final refusal.
func (o *outcome) answered(code int) { o.codes = append(o.codes, code) }

// ended records a leg whose transaction ended without a final answer: a timeout is 408, anything
// else means the contact could not be reached.
func (o *outcome) ended(err error) {
	if errors.Is(err, sip.ErrTransactionTimeout) {
		o.codes = append(o.codes, 408)
		return
	}
	o.unreachable++
}

// final is the status for the caller: 503 when no contact answered anything (the PBX failed to
// reach them, not the callee), otherwise chooseFinal's pick, where a callee's challenge (401/407)
// becomes 403: it was meant for the PBX, and the caller could not answer it.
func (o *outcome) final() int {
	if len(o.codes) == 0 {
		return 503
	}
	switch f := chooseFinal(o.codes); f {
	case 401, 407:
		return 403
	default:
		return f
	}
}

// chooseFinal picks the final response for the caller when every B-leg failed, as a forking proxy
// does (RFC 3261 §16.7 step 6): a 6xx if there is one; otherwise the lowest class, preferring
// within 4xx the codes that tell the caller how to retry (401, 407, 415, 420, 484); 503 becomes
// 500, since the callee's overload says nothing about this PBX. No answers at all is 408.
func chooseFinal(codes []int) int {
	best := 0
	for _, c := range codes {
		if c < 300 || c > 699 {
			continue
		}
		switch {
		case best == 0:
			best = c
		case c/100 == 6 && best/100 != 6:
			best = c
		case best/100 == 6:
		case c/100 < best/100:
			best = c
		case c/100 == best/100 && c/100 == 4 && informative(c) && !informative(best):
			best = c
		}
	}
	switch best {
	case 0:
		return 408
	case 503:
		return 500
	}
	return best
}

func informative(code int) bool {
	switch code {
	case 401, 407, 415, 420, 484:
		return true
	}
	return false
}
