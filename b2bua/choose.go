package b2bua

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
