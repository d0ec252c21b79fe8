package main

import (
	"math/rand/v2"
	"sync"
	"time"
)

// scheduleFaults starts the faults that run while calls are placed: silent callees and garbage
// bursts at intervals; a profile at a third of the run, a callee phone killed at 30% and 70%,
// the database cut at half-time. They stop when stop is closed; wait on the WaitGroup returned.
func (s *soak) scheduleFaults(cfg config, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	every := func(d time.Duration, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					f()
				}
			}
		}()
	}
	at := func(frac float64, f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-stop:
			case <-time.After(time.Duration(frac * float64(cfg.duration))):
				f()
			}
		}()
	}
	every(cfg.silentEvery, func() { s.silentNext.Store(true) })
	every(cfg.garbageEvery, func() { s.garbage(cfg.garbageN) })
	at(1.0/3, func() { s.profile(cfg.pprofDir, "third", false) })
	at(0.3, func() { s.killPhone(cfg.phoneDown) })
	at(0.7, func() { s.killPhone(cfg.phoneDown) })
	at(0.5, func() { s.cutDatabase(cfg.dbCut) })
	return &wg
}

// killPhone closes the socket of a callee phone that is up, with no BYE for its dialogs, and
// brings it back after down.
func (s *soak) killPhone(down time.Duration) {
	up := s.upCallees()
	if len(up) == 0 {
		return
	}
	p := up[rand.IntN(len(up))]
	p.mu.Lock()
	n := len(p.legs)
	p.mu.Unlock()
	s.fault("callee phone %s killed (socket closed, %d dialogs on it, no BYE), back in %v", p.user, n, down)
	p.kill(down)
}

// cutDatabase stops the proxy in front of the database for d.
func (s *soak) cutDatabase(d time.Duration) {
	s.fault("database cut for %v (%d connections through the proxy)", d, s.proxy.Open())
	s.proxy.SetDown(true)
	time.Sleep(d)
	s.proxy.SetDown(false)
	s.fault("database back")
}
