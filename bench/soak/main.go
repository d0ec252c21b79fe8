// Command soak drives a running officepbx for a bounded time with calls carrying media at a
// steady rate, injects faults, and checks that the PBX comes back to where it started: goroutines,
// descriptors, relay ports, dialogs, calls and pending records at their baseline, memory flat, and
// exactly one call record per call. bench/soak.sh builds and starts the PBX and runs this; see
// docs/benchmarks.md, "Soak (issue 12)".
//
// It starts nothing but its own phones (UDP on 127.0.0.1) and a TCP proxy in front of Postgres
// that the PBX's --db must name, so that it can cut the database.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pbxkit/pbxkit/internal/tcpproxy"
)

type soak struct {
	pbx          *net.UDPAddr
	pbxSIP       string
	metricsURL   string
	mediaTimeout time.Duration
	start        time.Time
	placing      time.Duration // how long calls were placed

	proxy *tcpproxy.Proxy
	media *mediaLoop
	wg    sync.WaitGroup

	callers, callees []*phone
	silentNext       atomic.Bool

	mu       sync.Mutex
	calls    []*call
	byUser   map[string]*call
	counters map[string]int
	samples  []sample
	faults   []string
	csv      *os.File
}

func (s *soak) logf(format string, args ...any) {
	fmt.Printf("[%7.1fs] %s\n", time.Since(s.start).Seconds(), fmt.Sprintf(format, args...))
}

// count adds one to a named counter of things worth reporting.
func (s *soak) count(what string) {
	s.mu.Lock()
	s.counters[what]++
	s.mu.Unlock()
}

func (s *soak) fault(format string, args ...any) {
	msg := fmt.Sprintf("%7.1fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.faults = append(s.faults, msg)
	s.mu.Unlock()
	s.logf("FAULT %s", fmt.Sprintf(format, args...))
}

func main() {
	cfg := parseFlags()
	s := newSoak(cfg)
	s.startPhones(cfg)
	base, heap := s.baseline(cfg)

	stopMedia := make(chan struct{})
	go s.media.run(stopMedia)
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	go s.sampleEvery(10*time.Second, stopSampling, samplingDone)

	// Faults on a schedule, while calls are placed.
	callsStart := time.Now()
	stopFaults := make(chan struct{})
	faults := s.scheduleFaults(cfg, stopFaults)
	n := s.placeCalls(cfg, callsStart)
	close(stopFaults)
	faults.Wait()
	lastCall := time.Now()
	s.placing = lastCall.Sub(callsStart)
	s.logf("placed %d calls in %v; waiting for them to end", n, time.Since(callsStart).Round(time.Second))
	s.waitCalls(cfg)
	close(stopMedia)
	allEnded := time.Now()
	s.logf("all calls ended %v after the last was placed; settling", allEnded.Sub(lastCall).Round(time.Second))

	end, err := s.settle(cfg, base)
	close(stopSampling)
	<-samplingDone
	heap.endLive, heap.endObjects = s.profile(cfg.pprofDir, "end", true)
	settled := time.Since(allEnded)
	if err != nil {
		fatal("final sample: %v", err)
	}
	s.keepFinal(end)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	records, err := readRecords(ctx, cfg.dbURL)
	if err != nil {
		fatal("reading the records: %v", err)
	}
	if !s.report(cfg, base, end, callsStart, settled, records, heap) {
		os.Exit(1)
	}
}

// newSoak starts the database proxy and the CSV file and waits for the PBX to answer on /metrics.
func newSoak(cfg config) *soak {
	s := &soak{pbx: cfg.pbx, pbxSIP: cfg.sipAddr, metricsURL: "http://" + cfg.httpAddr + "/metrics", mediaTimeout: cfg.mediaTimeout,
		start: time.Now(), media: &mediaLoop{streams: map[*stream]struct{}{}}, byUser: map[string]*call{}, counters: map[string]int{}}
	var err error
	if cfg.csvPath != "" {
		if s.csv, err = os.Create(cfg.csvPath); err != nil {
			fatal("%v", err)
		}
		fmt.Fprintf(s.csv, "seconds,calls_up,db_conns,%s\n", strings.Join(sampled, ","))
	}
	if s.proxy, err = tcpproxy.New(cfg.proxyListen, cfg.proxyTarget); err != nil {
		fatal("database proxy: %v", err)
	}
	s.logf("database proxy on %s -> %s; waiting for the PBX at %s", cfg.proxyListen, cfg.proxyTarget, s.metricsURL)
	if err := s.waitPBX(90 * time.Second); err != nil {
		fatal("%v", err)
	}
	return s
}

// startPhones makes the phones: callees register their extensions, callers need nothing
// (trusted source).
func (s *soak) startPhones(cfg config) {
	for n := cfg.lo; n <= cfg.hi; n++ {
		p, err := newPhone(s, fmt.Sprint(n))
		if err != nil {
			fatal("phone: %v", err)
		}
		s.callees = append(s.callees, p)
	}
	var regWG sync.WaitGroup
	var regErr atomic.Value
	for _, p := range s.callees {
		regWG.Add(1)
		go func() {
			defer regWG.Done()
			if err := p.register(); err != nil {
				regErr.Store(fmt.Errorf("extension %s: %w", p.user, err))
			}
		}()
	}
	regWG.Wait()
	if err, _ := regErr.Load().(error); err != nil {
		fatal("registration: %v", err)
	}
	for range cfg.nCallers {
		p, err := newPhone(s, "caller")
		if err != nil {
			fatal("phone: %v", err)
		}
		s.callers = append(s.callers, p)
	}
}

// baseline waits for the PBX to settle after the registrations and samples it, gauges and live
// heap.
func (s *soak) baseline(cfg config) (sample, heapCheck) {
	s.logf("%d callee phones registered, %d caller phones; baseline in %v", len(s.callees), len(s.callers), cfg.baseSettle)
	time.Sleep(cfg.baseSettle)
	base, err := s.sample()
	if err != nil {
		fatal("baseline: %v", err)
	}
	s.logf("baseline: %s", base)
	var h heapCheck
	h.baseLive, h.baseObjects = s.profile(cfg.pprofDir, "baseline", true)
	s.logf("live heap after a collection: %.1f MiB, %.0f objects", h.baseLive/(1<<20), h.baseObjects)
	return base, h
}

// upCallees is the callee phones not killed.
func (s *soak) upCallees() []*phone {
	return slices.DeleteFunc(slices.Clone(s.callees), func(p *phone) bool { return p.down.Load() })
}

// placeCalls places calls at a steady rate for cfg.duration from callsStart and returns how many.
func (s *soak) placeCalls(cfg config, callsStart time.Time) int {
	runID := time.Now().Unix() % 100000
	interval := time.Duration(float64(time.Second) / cfg.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	n := 0
	for time.Since(callsStart) < cfg.duration {
		<-tick.C
		up := s.upCallees()
		if len(up) == 0 {
			continue
		}
		n++
		c := &call{n: n, user: fmt.Sprintf("5%07d", n), callID: fmt.Sprintf("soak-%d-%d@127.0.0.1", runID, n),
			ext: up[rand.IntN(len(up))].user, byCallee: rand.IntN(2) == 0,
			hold: cfg.holdMin + time.Duration(rand.Int64N(int64(cfg.holdMax-cfg.holdMin)+1))}
		if s.silentNext.Swap(false) {
			c.silent = true
		}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.byUser[c.user] = c
		s.mu.Unlock()
		s.wg.Add(1)
		go s.place(c, s.callers[n%len(s.callers)])
	}
	return n
}

// waitCalls waits for the placed calls to end, or gives up after the longest a call can take
// plus three minutes.
func (s *soak) waitCalls(cfg config) {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.holdMax + cfg.mediaTimeout + 3*time.Minute):
		s.logf("calls still running after the wait: checking anyway")
	}
}

// settle samples the PBX until it is back at its baseline: at least cfg.endMin (the
// transactions' 32 s timers), at most cfg.endMax. It returns the last sample.
func (s *soak) settle(cfg config, base sample) (sample, error) {
	time.Sleep(cfg.endMin)
	var end sample
	var err error
	deadline := time.Now().Add(cfg.endMax - cfg.endMin)
	for {
		end, err = s.sample()
		if err == nil && len(s.leaks(base, end, cfg.gorTol, cfg.fdTol)) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	return end, err
}

// keepFinal adds the final sample to the samples and the CSV file, and closes that.
func (s *soak) keepFinal(end sample) {
	s.mu.Lock()
	s.samples = append(s.samples, end)
	s.mu.Unlock()
	if s.csv != nil {
		s.writeCSV(end)
		s.csv.Close()
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	fmt.Println("SOAK: FAIL (did not run to the end)")
	os.Exit(2)
}
