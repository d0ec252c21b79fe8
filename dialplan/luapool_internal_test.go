package dialplan

import "testing"

// TestTrimClosesStatesNoCallNeeded: trim lets go of as many states as stayed idle since the last
// trim, and keeps those a call took meanwhile.
func TestTrimClosesStatesNoCallNeeded(t *testing.T) {
	s := &script{}
	s.initPool()
	for range 5 {
		s.put(newState())
	}
	s.get() // one call: 4 stayed idle
	s.trim()
	if len(s.pool) != 0 {
		t.Fatalf("after one call that kept its state, trim left %d states, want 0", len(s.pool))
	}
	for range 5 {
		s.put(newState())
	}
	s.trim() // no gets since the last trim, which saw an empty pool
	if len(s.pool) != 5 {
		t.Fatalf("trim after an empty pool was filled left %d states, want 5", len(s.pool))
	}
	a, b := s.get(), s.get() // two calls at once: 3 stayed idle
	s.put(a)
	s.put(b)
	s.trim()
	if len(s.pool) != 2 {
		t.Fatalf("after two calls at once, trim left %d states, want 2", len(s.pool))
	}
	s.trim() // no call at all
	if len(s.pool) != 0 {
		t.Fatalf("after no calls, trim left %d states, want 0", len(s.pool))
	}
	st := s.get() // an empty pool makes a state
	if st == nil {
		t.Fatal("get from an empty pool returned nil")
	}
	st.Close()
}
