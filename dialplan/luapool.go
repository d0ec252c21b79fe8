package dialplan

import (
	"sync/atomic"
	"time"
)

// trimEvery is how often a version's pool lets go of the states no call needed meanwhile. A burst
// of calls leaves the pool as large as the burst was (up to statePool, 120 KB a state); without
// trimming a PBX that once routed 200 calls at a time would keep 24 MB of Lua states for good.
const trimEvery = 30 * time.Second

// poolStats is what a version's pool saw since its last trim.
type poolStats struct {
	idleLow atomic.Int64 // the fewest idle states at any get since the last trim
}

// initPool makes the version's empty pool.
func (s *script) initPool() {
	s.pool = make(chan *state, statePool)
	s.stats.idleLow.Store(statePool) // more than can be idle: nothing seen yet
}

// noteIdle records that n states were idle after a get.
func (p *poolStats) noteIdle(n int) {
	for {
		low := p.idleLow.Load()
		if int64(n) >= low || p.idleLow.CompareAndSwap(low, int64(n)) {
			return
		}
	}
}

// trim closes the states that stayed idle since the last trim: the pool never went below that
// many, so no call needed them.
func (s *script) trim() {
	unused := min(int(s.stats.idleLow.Load()), len(s.pool))
	for range unused {
		select {
		case st := <-s.pool:
			st.Close()
		default:
		}
	}
	s.stats.idleLow.Store(int64(len(s.pool)))
}

// trimLoop trims the running version's pool every trimEvery until the engine is closed.
func (l *Lua) trimLoop() {
	defer l.watchWG.Done()
	t := time.NewTicker(trimEvery)
	defer t.Stop()
	for {
		select {
		case <-l.quit:
			return
		case <-t.C:
			l.cur.Load().trim()
		}
	}
}
