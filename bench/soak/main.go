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
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type soak struct {
	pbx          *net.UDPAddr
	pbxSIP       string
	metricsURL   string
	mediaTimeout time.Duration
	start        time.Time
	placing      time.Duration // how long calls were placed

	proxy *proxy
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
	var (
		sipAddr      = flag.String("sip", "127.0.0.1:5060", "the PBX's SIP address (UDP)")
		httpAddr     = flag.String("http", "127.0.0.1:8080", "the PBX's --http address (/metrics)")
		dbURL        = flag.String("db", "", "Postgres URL of the PBX's database, direct (for the record check)")
		proxyListen  = flag.String("proxy", "127.0.0.1:15432", "where the database proxy listens (the PBX's --db names it)")
		proxyTarget  = flag.String("proxy-target", "127.0.0.1:5432", "the database the proxy forwards to")
		exts         = flag.String("exts", "2000-2039", "callee extensions LO-HI, each a phone of the soak (they must exist)")
		nCallers     = flag.Int("callers", 4, "caller phones (from the trusted address)")
		duration     = flag.Duration("duration", 30*time.Minute, "how long calls are placed")
		rate         = flag.Float64("rate", 10, "new calls a second")
		holdMin      = flag.Duration("hold-min", 10*time.Second, "shortest hold time")
		holdMax      = flag.Duration("hold-max", 20*time.Second, "longest hold time")
		mediaTimeout = flag.Duration("media-timeout", 5*time.Second, "the PBX's --media-timeout")
		silentEvery  = flag.Duration("silent-every", 15*time.Second, "a callee goes silent mid-call (no BYE, no RTP, no answers) this often")
		garbageEvery = flag.Duration("garbage-every", 30*time.Second, "a burst of garbage datagrams, malformed SIP and garbage TCP this often")
		garbageN     = flag.Int("garbage", 400, "datagrams per garbage burst")
		dbCut        = flag.Duration("db-cut", 10*time.Second, "how long the database is cut (at half-time)")
		phoneDown    = flag.Duration("phone-down", 15*time.Second, "how long a killed callee phone stays away (killed at 30% and 70% of the run)")
		baseSettle   = flag.Duration("baseline-settle", 35*time.Second, "wait after the registrations before the baseline")
		endMin       = flag.Duration("settle-min", 35*time.Second, "wait at least this long after the last call before the final check")
		endMax       = flag.Duration("settle-max", 3*time.Minute, "wait at most this long for the gauges to come back")
		gorTol       = flag.Int("goroutine-tolerance", 10, "goroutines allowed above the baseline at the end")
		fdTol        = flag.Int("fd-tolerance", 2, "descriptors allowed above the baseline at the end, the database pool's aside")
		heapTol      = flag.Float64("heap-tolerance", 4<<20, "live heap (after a collection) allowed above the baseline's at the end, bytes")
		rssGrowth    = flag.Float64("rss-growth", 0.20, "RSS at the end may exceed its value at a third of the run by this fraction")
		csvPath      = flag.String("csv", "", "write every sample to this CSV file")
		pprofDir     = flag.String("pprof-dir", "", "save the PBX's goroutines and heap (officepbx --pprof) at the baseline, a third of the way and the end here")
	)
	flag.Parse()
	pbxAddr, err := net.ResolveUDPAddr("udp", *sipAddr)
	if err != nil {
		fatal("--sip: %v", err)
	}
	var lo, hi int
	if _, err := fmt.Sscanf(*exts, "%d-%d", &lo, &hi); err != nil || hi < lo {
		fatal("--exts %q: want LO-HI", *exts)
	}
	s := &soak{pbx: pbxAddr, pbxSIP: *sipAddr, metricsURL: "http://" + *httpAddr + "/metrics", mediaTimeout: *mediaTimeout,
		start: time.Now(), media: &mediaLoop{streams: map[*stream]struct{}{}}, byUser: map[string]*call{}, counters: map[string]int{}}
	if *csvPath != "" {
		if s.csv, err = os.Create(*csvPath); err != nil {
			fatal("%v", err)
		}
		fmt.Fprintf(s.csv, "seconds,calls_up,db_conns,%s\n", strings.Join(sampled, ","))
	}
	if s.proxy, err = newProxy(*proxyListen, *proxyTarget); err != nil {
		fatal("database proxy: %v", err)
	}
	s.logf("database proxy on %s -> %s; waiting for the PBX at %s", *proxyListen, *proxyTarget, s.metricsURL)
	if err := s.waitPBX(90 * time.Second); err != nil {
		fatal("%v", err)
	}

	// Phones: callees register their extensions, callers need nothing (trusted source).
	for n := lo; n <= hi; n++ {
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
	for range *nCallers {
		p, err := newPhone(s, "caller")
		if err != nil {
			fatal("phone: %v", err)
		}
		s.callers = append(s.callers, p)
	}
	s.logf("%d callee phones registered, %d caller phones; baseline in %v", len(s.callees), len(s.callers), *baseSettle)
	time.Sleep(*baseSettle)
	base, err := s.sample()
	if err != nil {
		fatal("baseline: %v", err)
	}
	s.logf("baseline: %s", base)
	baseLive, baseObjects := s.profile(*pprofDir, "baseline", true)
	s.logf("live heap after a collection: %.1f MiB, %.0f objects", baseLive/(1<<20), baseObjects)

	stopMedia := make(chan struct{})
	go s.media.run(stopMedia)
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	go s.sampleEvery(10*time.Second, stopSampling, samplingDone)

	// Faults on a schedule, while calls are placed.
	callsStart := time.Now()
	stopFaults := make(chan struct{})
	var faultWG sync.WaitGroup
	every := func(d time.Duration, f func()) {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			t := time.NewTicker(d)
			defer t.Stop()
			for {
				select {
				case <-stopFaults:
					return
				case <-t.C:
					f()
				}
			}
		}()
	}
	at := func(frac float64, f func()) {
		faultWG.Add(1)
		go func() {
			defer faultWG.Done()
			select {
			case <-stopFaults:
			case <-time.After(time.Duration(frac * float64(*duration))):
				f()
			}
		}()
	}
	every(*silentEvery, func() { s.silentNext.Store(true) })
	every(*garbageEvery, func() { s.garbage(*garbageN) })
	killPhone := func() {
		up := slices.DeleteFunc(slices.Clone(s.callees), func(p *phone) bool { return p.down.Load() })
		if len(up) == 0 {
			return
		}
		p := up[rand.IntN(len(up))]
		p.mu.Lock()
		n := len(p.legs)
		p.mu.Unlock()
		s.fault("callee phone %s killed (socket closed, %d dialogs on it, no BYE), back in %v", p.user, n, *phoneDown)
		p.kill(*phoneDown)
	}
	at(1.0/3, func() { s.profile(*pprofDir, "third", false) })
	at(0.3, killPhone)
	at(0.7, killPhone)
	at(0.5, func() {
		s.fault("database cut for %v (%d connections through the proxy)", *dbCut, s.proxy.open())
		s.proxy.setDown(true)
		time.Sleep(*dbCut)
		s.proxy.setDown(false)
		s.fault("database back")
	})

	// Calls at a steady rate.
	runID := time.Now().Unix() % 100000
	interval := time.Duration(float64(time.Second) / *rate)
	tick := time.NewTicker(interval)
	n := 0
	for time.Since(callsStart) < *duration {
		<-tick.C
		up := slices.DeleteFunc(slices.Clone(s.callees), func(p *phone) bool { return p.down.Load() })
		if len(up) == 0 {
			continue
		}
		n++
		c := &call{n: n, user: fmt.Sprintf("5%07d", n), callID: fmt.Sprintf("soak-%d-%d@127.0.0.1", runID, n),
			ext: up[rand.IntN(len(up))].user, byCallee: rand.IntN(2) == 0,
			hold: *holdMin + time.Duration(rand.Int64N(int64(*holdMax-*holdMin)+1))}
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
	tick.Stop()
	close(stopFaults)
	faultWG.Wait()
	lastCall := time.Now()
	s.placing = lastCall.Sub(callsStart)
	s.logf("placed %d calls in %v; waiting for them to end", n, time.Since(callsStart).Round(time.Second))
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(*holdMax + *mediaTimeout + 3*time.Minute):
		s.logf("calls still running after the wait: checking anyway")
	}
	close(stopMedia)
	allEnded := time.Now()
	s.logf("all calls ended %v after the last was placed; settling", allEnded.Sub(lastCall).Round(time.Second))

	// Back to baseline? At least endMin (the transactions' 32 s timers), at most endMax.
	time.Sleep(*endMin)
	var end sample
	deadline := time.Now().Add(*endMax - *endMin)
	for {
		end, err = s.sample()
		if err == nil && len(s.leaks(base, end, *gorTol, *fdTol)) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	close(stopSampling)
	<-samplingDone
	endLive, endObjects := s.profile(*pprofDir, "end", true)
	settled := time.Since(allEnded)
	if err != nil {
		fatal("final sample: %v", err)
	}
	s.mu.Lock()
	s.samples = append(s.samples, end)
	s.mu.Unlock()
	if s.csv != nil {
		s.writeCSV(end)
		s.csv.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	records, err := readRecords(ctx, *dbURL)
	if err != nil {
		fatal("reading the records: %v", err)
	}
	ok := s.report(base, end, callsStart, settled, records, *gorTol, *fdTol, *rssGrowth, [5]float64{baseLive, endLive, *heapTol, baseObjects, endObjects})
	if !ok {
		os.Exit(1)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "soak: "+format+"\n", args...)
	fmt.Println("SOAK: FAIL (did not run to the end)")
	os.Exit(2)
}
