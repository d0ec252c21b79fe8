package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// What the soak reads of the PBX while it runs: /metrics samples, profiles, calls up.

// profile saves the PBX's goroutine dump and heap profile to dir (nothing without a dir, or
// when officepbx runs without --pprof). With gc, the heap profile is taken after a collection,
// and the live heap is returned: go_memstats_heap_alloc_bytes just after it (0 if unknown).
func (s *soak) profile(dir, name string, gc bool) (live, objects float64) {
	if dir == "" {
		return 0, 0
	}
	root := strings.TrimSuffix(s.metricsURL, "/metrics") + "/debug/pprof/"
	heap := "heap"
	if gc {
		heap += "?gc=1"
	}
	ok := true
	if gc {
		// Two collections: the first moves sync.Pool contents to the victim cache, the second
		// frees them, so pooled buffers do not count as live.
		if res, err := scrapeClient.Get(root + heap); err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	for _, f := range [][2]string{{"goroutines-" + name + ".txt", "goroutine?debug=1"}, {"heap-" + name + ".pprof", heap}} {
		res, err := scrapeClient.Get(root + f[1])
		if err != nil {
			s.logf("profile %s: %v", f[1], err)
			ok = false
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil && res.StatusCode == 200 {
			err = os.WriteFile(filepath.Join(dir, f[0]), b, 0o644)
		}
		if err != nil || res.StatusCode != 200 {
			s.logf("profile %s: %s %v", f[1], res.Status, err)
			ok = false
		}
	}
	if !gc || !ok {
		return 0, 0
	}
	v, err := scrape(s.metricsURL)
	if err != nil {
		return 0, 0
	}
	return v[mHeapAlloc], v[mHeapObjects]
}

func (s *soak) waitPBX(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		_, err := scrape(s.metricsURL)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PBX metrics at %s: %v", s.metricsURL, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (s *soak) callsUp() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	up := 0
	for _, c := range s.calls {
		c.mu.Lock()
		if c.answered && c.end == "" {
			up++
		}
		c.mu.Unlock()
	}
	return up
}

func (s *soak) sample() (sample, error) {
	v, err := scrape(s.metricsURL)
	if err != nil {
		return sample{}, err
	}
	return sample{at: time.Now(), v: v, dbConns: s.proxy.Open(), up: s.callsUp()}, nil
}

func (x sample) String() string {
	return fmt.Sprintf("goroutines %.0f, fds %.0f (db %d), RSS %.1f MiB, heap %.1f MiB, calls %.0f, dialogs %.0f, rtp ports %.0f, records pending %.0f, lost %.0f; soak calls up %d",
		x.v[mGoroutines], x.v[mFDs], x.dbConns, x.v[mRSS]/(1<<20), x.v[mHeap]/(1<<20), x.v[mCalls], x.v[mDialogs], x.v[mPorts],
		x.v[mPending], x.v[mLost], x.up)
}

func (s *soak) writeCSV(x sample) {
	row := []string{fmt.Sprintf("%.1f", x.at.Sub(s.start).Seconds()), fmt.Sprint(x.up), fmt.Sprint(x.dbConns)}
	for _, m := range sampled {
		row = append(row, fmt.Sprintf("%.0f", x.v[m]))
	}
	fmt.Fprintln(s.csv, strings.Join(row, ","))
}

func (s *soak) sampleEvery(d time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(d)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		x, err := s.sample()
		if err != nil {
			s.logf("sample: %v", err)
			s.count("metrics scrapes failed")
			continue
		}
		s.mu.Lock()
		s.samples = append(s.samples, x)
		s.mu.Unlock()
		if s.csv != nil {
			s.writeCSV(x)
		}
		if i%3 == 2 {
			s.logf("%s", x)
		}
	}
}
