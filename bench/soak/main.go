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
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
	return sample{at: time.Now(), v: v, dbConns: s.proxy.open(), up: s.callsUp()}, nil
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

// leaks lists what is not back at its baseline.
func (s *soak) leaks(base, end sample, gorTol, fdTol int) []string {
	var out []string
	if d := end.v[mGoroutines] - base.v[mGoroutines]; d > float64(gorTol) {
		out = append(out, fmt.Sprintf("goroutines %+.0f (tolerance %d)", d, gorTol))
	}
	if d := (end.v[mFDs] - float64(end.dbConns)) - (base.v[mFDs] - float64(base.dbConns)); d > float64(fdTol) {
		out = append(out, fmt.Sprintf("descriptors %+.0f besides the database pool (tolerance %d)", d, fdTol))
	}
	for _, m := range []string{mPorts, mDialogs, mCalls, mPending} {
		if end.v[m] != base.v[m] {
			out = append(out, fmt.Sprintf("%s %.0f, baseline %.0f", m, end.v[m], base.v[m]))
		}
	}
	return out
}

// report prints the summary and returns whether every check passed.
func (s *soak) report(base, end sample, callsStart time.Time, settled time.Duration, records map[string]record, gorTol, fdTol int, rssGrowth float64, live [5]float64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fails []string
	check := func(ok bool, format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		if ok {
			fmt.Println("  ok    " + line)
		} else {
			fmt.Println("  FAIL  " + line)
			fails = append(fails, line)
		}
	}

	// The sample nearest a third of the way through the calls, and the peak.
	runEnd := callsStart
	if len(s.samples) > 0 {
		runEnd = s.samples[len(s.samples)-1].at
	}
	third, peak := base, base
	want := callsStart.Add(runEnd.Sub(callsStart) / 3)
	for _, x := range s.samples {
		if x.at.Sub(want).Abs() < third.at.Sub(want).Abs() {
			third = x
		}
		if x.v[mRSS] > peak.v[mRSS] {
			peak = x
		}
	}
	maxUp, maxCalls := 0, 0.0
	for _, x := range s.samples {
		maxUp = max(maxUp, x.up)
		maxCalls = max(maxCalls, x.v[mCalls])
	}

	// Calls.
	var placed, answered, shed, silent, killed, stuck, noFinal, oneWay, killedLate int
	var aSent, aRecvd, bSent, bRecvd int64
	var maxKillToBye time.Duration
	statuses := map[int]int{}
	ends := map[string]int{}
	for _, c := range s.calls {
		placed++
		statuses[c.status]++
		if c.shed {
			shed++
		}
		if c.silent {
			silent++
		}
		if !c.killedAt.IsZero() {
			killed++
		}
		if c.end == "stuck" || c.calleeEnd == "stuck" {
			stuck++
		}
		if c.end == "no final answer" {
			noFinal++
		}
		if c.answered {
			answered++
			ends[c.end]++
			aSent += c.aSent
			aRecvd += c.aRecvd
			bSent += c.bSent
			bRecvd += c.bRecvd
			if c.killedAt.IsZero() && (c.aRecvd == 0 || c.bRecvd == 0) {
				oneWay++
			}
			if !c.killedAt.IsZero() && c.end == "BYE from the PBX" && c.byeAt.After(c.killedAt) {
				d := c.byeAt.Sub(c.killedAt)
				maxKillToBye = max(maxKillToBye, d)
				if d > s.mediaTimeout+3*time.Second {
					killedLate++
				}
			}
		}
	}
	codes := []int{}
	for code := range statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var cs []string
	for _, code := range codes {
		cs = append(cs, fmt.Sprintf("%d: %d", code, statuses[code]))
	}
	var es []string
	for e, n := range ends {
		es = append(es, fmt.Sprintf("%s: %d", e, n))
	}
	sort.Strings(es)

	// Records.
	var missing, dup, unexpected []string
	one := 0
	soakIDs := map[string]bool{}
	for _, c := range s.calls {
		soakIDs[c.callID] = true
		r := records[c.callID]
		switch {
		case c.shed && r.n != 0:
			unexpected = append(unexpected, fmt.Sprintf("%s (shed 503, %d records)", c.callID, r.n))
		case c.shed:
		case r.n == 0:
			missing = append(missing, fmt.Sprintf("%s (status %d, end %q)", c.callID, c.status, c.end))
		case r.n > 1:
			dup = append(dup, fmt.Sprintf("%s (%d records)", c.callID, r.n))
		default:
			one++
		}
	}
	var foreign []string
	for id, r := range records {
		if !soakIDs[id] {
			foreign = append(foreign, fmt.Sprintf("%s (%d, %s)", id, r.n, r.reason))
		}
	}
	silentReasons := 0
	for _, c := range s.calls {
		if c.silent && c.answered && strings.Contains(records[c.callID].reason, "callee silent") {
			silentReasons++
		}
	}

	mib := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	fmt.Println()
	fmt.Println("== soak summary")
	fmt.Printf("calls placed %d over %v at %.1f/s; answered %d; final answers {%s}; shed (503 overloaded) %d; no final answer %d\n",
		placed, s.placing.Round(time.Second), float64(placed)/max(1, s.placing.Seconds()), answered, strings.Join(cs, ", "), shed, noFinal)
	fmt.Printf("calls up at once: at most %d (soak), PBX pbxkit_calls_active at most %.0f\n", maxUp, maxCalls)
	fmt.Printf("answered calls ended by {%s}\n", strings.Join(es, ", "))
	fmt.Printf("RTP: caller sides sent %d, received %d; callee sides sent %d, received %d\n", aSent, aRecvd, bSent, bRecvd)
	fmt.Printf("faults: %d callees went silent mid-call, %d calls lost their callee in all (silent or phone killed); kill to the PBX's BYE at most %v (media timeout %v)\n",
		silent, killed, maxKillToBye.Round(10*time.Millisecond), s.mediaTimeout)
	for _, f := range s.faults {
		fmt.Println("  " + f)
	}
	fmt.Printf("garbage bursts: %d datagrams, %d TCP connections; answers to them %d\n", s.counters["garbage datagrams sent"], s.counters["garbage TCP connections"], s.counters["answers to garbage"])
	var other []string
	for k, v := range s.counters {
		if !strings.HasPrefix(k, "garbage") && k != "answers to garbage" {
			other = append(other, fmt.Sprintf("%s: %d", k, v))
		}
	}
	sort.Strings(other)
	if len(other) > 0 {
		fmt.Printf("soak counters: %s\n", strings.Join(other, "; "))
	}
	fmt.Println()
	fmt.Printf("%-32s %14s %14s %14s %14s\n", "", "baseline", "third", "peak RSS", "end")
	row := func(name string, f func(sample) string) {
		fmt.Printf("%-32s %14s %14s %14s %14s\n", name, f(base), f(third), f(peak), f(end))
	}
	num := func(m string) func(sample) string {
		return func(x sample) string { return fmt.Sprintf("%.0f", x.v[m]) }
	}
	row("seconds into the run", func(x sample) string { return fmt.Sprintf("%.0f", x.at.Sub(s.start).Seconds()) })
	row("soak calls up", func(x sample) string { return fmt.Sprint(x.up) })
	row(mGoroutines, num(mGoroutines))
	row(mFDs, num(mFDs))
	row("  of which database (proxy)", func(x sample) string { return fmt.Sprint(x.dbConns) })
	row(mRSS, func(x sample) string { return mib(x.v[mRSS]) })
	row(mHeap, func(x sample) string { return mib(x.v[mHeap]) })
	row(mCalls, num(mCalls))
	row(mDialogs, num(mDialogs))
	row(mPorts, num(mPorts))
	row(mPending, num(mPending))
	row(mLost, num(mLost))
	row(mShed, num(mShed))
	row(mUnparsed, num(mUnparsed))
	fmt.Printf("end sampled %v after the last call ended\n\n", settled.Round(time.Second))

	fmt.Println("checks:")
	check(end.v[mGoroutines]-base.v[mGoroutines] <= float64(gorTol), "go_goroutines %.0f at the end, baseline %.0f (tolerance +%d)", end.v[mGoroutines], base.v[mGoroutines], gorTol)
	fdEnd, fdBase := end.v[mFDs]-float64(end.dbConns), base.v[mFDs]-float64(base.dbConns)
	check(fdEnd-fdBase <= float64(fdTol), "process_open_fds %.0f at the end, baseline %.0f; without the database pool's connections %.0f and %.0f (tolerance +%d)",
		end.v[mFDs], base.v[mFDs], fdEnd, fdBase, fdTol)
	for _, m := range []string{mPorts, mDialogs, mCalls, mPending} {
		check(end.v[m] == base.v[m], "%s %.0f at the end, baseline %.0f", m, end.v[m], base.v[m])
	}
	check(end.v[mRSS] <= third.v[mRSS]*(1+rssGrowth), "RSS %s at the end, %s at a third of the run (%+.0f%%; at most %+.0f%%), %s at the baseline, peak %s",
		mib(end.v[mRSS]), mib(third.v[mRSS]), (end.v[mRSS]/third.v[mRSS]-1)*100, rssGrowth*100, mib(base.v[mRSS]), mib(peak.v[mRSS]))
	if live[0] > 0 && live[1] > 0 {
		check(live[1]-live[0] <= live[2], "live heap after a forced collection %s at the end, %s at the baseline (%+.1f MiB; at most %+.1f MiB); objects %.0f and %.0f (%+.0f, %.2f per call)",
			mib(live[1]), mib(live[0]), (live[1]-live[0])/(1<<20), live[2]/(1<<20), live[4], live[3], live[4]-live[3], (live[4]-live[3])/float64(max(1, placed)))
	} else {
		fmt.Println("  info  live heap not measured (officepbx without --pprof, or no -pprof-dir)")
	}
	check(end.v[mLost] == 0, "pbxkit_call_records_lost_total %.0f", end.v[mLost])
	check(len(missing) == 0 && len(dup) == 0 && len(unexpected) == 0,
		"records: %d of %d calls (%d shed, expecting none) have exactly one; missing %d, twice or more %d, a record for a shed call %d",
		one, placed-shed, shed, len(missing), len(dup), len(unexpected))
	for _, l := range [][]string{missing, dup, unexpected} {
		for i, x := range l {
			if i == 10 {
				fmt.Printf("          ... %d more\n", len(l)-10)
				break
			}
			fmt.Println("          " + x)
		}
	}
	fmt.Printf("  info  records not of the soak's calls: %d %s\n", len(foreign), strings.Join(first(foreign, 5), "; "))
	check(stuck == 0, "calls stuck past their hold time plus media timeout plus a minute: %d", stuck)
	check(killedLate == 0, "calls whose callee died ended by the PBX within the media timeout + 3 s: %d late (at most %v)", killedLate, maxKillToBye.Round(10*time.Millisecond))
	silentAnswered := 0
	for _, c := range s.calls {
		if c.silent && c.answered {
			silentAnswered++
		}
	}
	check(silentReasons == silentAnswered, "records of silent-callee calls with reason \"callee silent\": %d of %d", silentReasons, silentAnswered)
	check(oneWay == 0, "answered calls without a lost callee that lacked audio in a direction: %d", oneWay)
	check(placed > 0 && float64(answered) >= 0.95*float64(placed), "answered %d of %d calls (at least 95%%)", answered, placed)
	fmt.Println("transactions: sipgo exposes no count, and a transaction waiting on its timers holds no goroutine (time.AfterFunc), so the goroutine check does not see them; the live heap after a forced collection does (the end is sampled after their 32 s timers).")
	fmt.Println()
	if len(fails) > 0 {
		fmt.Printf("SOAK: FAIL (%d checks)\n", len(fails))
		return false
	}
	fmt.Println("SOAK: PASS")
	return true
}

func first(l []string, n int) []string { return l[:min(n, len(l))] }
