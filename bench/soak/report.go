package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The verdict at the end: what returned to its baseline, what did not, and the records.

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

// heapCheck is the PBX's live heap after a forced collection, at the baseline and the end; zero
// when not measured.
type heapCheck struct {
	baseLive, endLive       float64 // bytes
	baseObjects, endObjects float64
}

// milestones are the samples the table shows besides the baseline and the end.
type milestones struct {
	third    sample  // nearest a third of the way through the calls
	peak     sample  // the highest RSS
	maxUp    int     // soak calls up at once, at most
	maxCalls float64 // the PBX's pbxkit_calls_active, at most
}

// callTally counts the calls by how they went.
type callTally struct {
	placed, answered, shed, noFinal int
	silent, killed                  int // calls whose callee went silent, lost their callee in all
	silentAnswered                  int
	stuck, oneWay, killedLate       int
	aSent, aRecvd, bSent, bRecvd    int64
	maxKillToBye                    time.Duration
	statuses                        map[int]int    // final answer codes
	ends                            map[string]int // how answered calls ended
}

// recordTally compares the call records with the calls.
type recordTally struct {
	missing, dup, unexpected []string
	one                      int      // calls with exactly one record
	foreign                  []string // records not of the soak's calls
	silentReasons            int      // records of silent-callee calls with reason "callee silent"
}

// checker prints checks and remembers the failed ones.
type checker struct{ fails []string }

func (k *checker) check(ok bool, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if ok {
		fmt.Println("  ok    " + line)
	} else {
		fmt.Println("  FAIL  " + line)
		k.fails = append(k.fails, line)
	}
}

// report prints the summary and returns whether every check passed.
func (s *soak) report(cfg config, base, end sample, callsStart time.Time, settled time.Duration, records map[string]record, heap heapCheck) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.milestones(base, callsStart)
	calls := s.tallyCalls()
	recs := s.tallyRecords(records)

	fmt.Println()
	fmt.Println("== soak summary")
	s.printCalls(calls, ms)
	s.printFaults(calls)
	fmt.Println()
	s.printTable(base, ms, end)
	fmt.Printf("end sampled %v after the last call ended\n\n", settled.Round(time.Second))

	fmt.Println("checks:")
	var k checker
	s.checkGauges(&k, cfg, base, ms, end)
	checkHeap(&k, cfg, heap, calls.placed)
	checkRecords(&k, end, calls, recs)
	checkCalls(&k, calls, recs)
	fmt.Println("transactions: sipgo exposes no count, and a transaction waiting on its timers holds no goroutine (time.AfterFunc), so the goroutine check does not see them; the live heap after a forced collection does (the end is sampled after their 32 s timers).")
	fmt.Println()
	if len(k.fails) > 0 {
		fmt.Printf("SOAK: FAIL (%d checks)\n", len(k.fails))
		return false
	}
	fmt.Println("SOAK: PASS")
	return true
}

// milestones finds the sample nearest a third of the way through the calls, the peak, and the
// most calls up at once. The caller holds s.mu.
func (s *soak) milestones(base sample, callsStart time.Time) milestones {
	runEnd := callsStart
	if len(s.samples) > 0 {
		runEnd = s.samples[len(s.samples)-1].at
	}
	ms := milestones{third: base, peak: base}
	want := callsStart.Add(runEnd.Sub(callsStart) / 3)
	for _, x := range s.samples {
		if x.at.Sub(want).Abs() < ms.third.at.Sub(want).Abs() {
			ms.third = x
		}
		if x.v[mRSS] > ms.peak.v[mRSS] {
			ms.peak = x
		}
	}
	for _, x := range s.samples {
		ms.maxUp = max(ms.maxUp, x.up)
		ms.maxCalls = max(ms.maxCalls, x.v[mCalls])
	}
	return ms
}

// tallyCalls counts the calls by outcome. The caller holds s.mu.
func (s *soak) tallyCalls() callTally {
	t := callTally{statuses: map[int]int{}, ends: map[string]int{}}
	for _, c := range s.calls {
		t.placed++
		t.statuses[c.status]++
		if c.shed {
			t.shed++
		}
		if c.silent {
			t.silent++
		}
		if !c.killedAt.IsZero() {
			t.killed++
		}
		if c.end == "stuck" || c.calleeEnd == "stuck" {
			t.stuck++
		}
		if c.end == "no final answer" {
			t.noFinal++
		}
		if c.answered {
			s.tallyAnswered(&t, c)
		}
	}
	return t
}

// tallyAnswered counts an answered call's media and how it ended.
func (s *soak) tallyAnswered(t *callTally, c *call) {
	t.answered++
	t.ends[c.end]++
	t.aSent += c.aSent
	t.aRecvd += c.aRecvd
	t.bSent += c.bSent
	t.bRecvd += c.bRecvd
	if c.silent {
		t.silentAnswered++
	}
	if c.killedAt.IsZero() && (c.aRecvd == 0 || c.bRecvd == 0) {
		t.oneWay++
	}
	if !c.killedAt.IsZero() && c.end == "BYE from the PBX" && c.byeAt.After(c.killedAt) {
		d := c.byeAt.Sub(c.killedAt)
		t.maxKillToBye = max(t.maxKillToBye, d)
		if d > s.mediaTimeout+3*time.Second {
			t.killedLate++
		}
	}
}

// tallyRecords matches the call records with the calls: one each, none for a shed call. The
// caller holds s.mu.
func (s *soak) tallyRecords(records map[string]record) recordTally {
	var t recordTally
	soakIDs := map[string]bool{}
	for _, c := range s.calls {
		soakIDs[c.callID] = true
		r := records[c.callID]
		switch {
		case c.shed && r.n != 0:
			t.unexpected = append(t.unexpected, fmt.Sprintf("%s (shed 503, %d records)", c.callID, r.n))
		case c.shed:
		case r.n == 0:
			t.missing = append(t.missing, fmt.Sprintf("%s (status %d, end %q)", c.callID, c.status, c.end))
		case r.n > 1:
			t.dup = append(t.dup, fmt.Sprintf("%s (%d records)", c.callID, r.n))
		default:
			t.one++
		}
	}
	for id, r := range records {
		if !soakIDs[id] {
			t.foreign = append(t.foreign, fmt.Sprintf("%s (%d, %s)", id, r.n, r.reason))
		}
	}
	for _, c := range s.calls {
		if c.silent && c.answered && strings.Contains(records[c.callID].reason, "callee silent") {
			t.silentReasons++
		}
	}
	return t
}

// printCalls prints the lines about the calls: placed, answered, how they ended, RTP.
func (s *soak) printCalls(t callTally, ms milestones) {
	codes := []int{}
	for code := range t.statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	var cs []string
	for _, code := range codes {
		cs = append(cs, fmt.Sprintf("%d: %d", code, t.statuses[code]))
	}
	var es []string
	for e, n := range t.ends {
		es = append(es, fmt.Sprintf("%s: %d", e, n))
	}
	sort.Strings(es)
	fmt.Printf("calls placed %d over %v at %.1f/s; answered %d; final answers {%s}; shed (503 overloaded) %d; no final answer %d\n",
		t.placed, s.placing.Round(time.Second), float64(t.placed)/max(1, s.placing.Seconds()), t.answered, strings.Join(cs, ", "), t.shed, t.noFinal)
	fmt.Printf("calls up at once: at most %d (soak), PBX pbxkit_calls_active at most %.0f\n", ms.maxUp, ms.maxCalls)
	fmt.Printf("answered calls ended by {%s}\n", strings.Join(es, ", "))
	fmt.Printf("RTP: caller sides sent %d, received %d; callee sides sent %d, received %d\n", t.aSent, t.aRecvd, t.bSent, t.bRecvd)
}

// printFaults prints the faults injected, the garbage sent, and the soak's other counters.
func (s *soak) printFaults(t callTally) {
	fmt.Printf("faults: %d callees went silent mid-call, %d calls lost their callee in all (silent or phone killed); kill to the PBX's BYE at most %v (media timeout %v)\n",
		t.silent, t.killed, t.maxKillToBye.Round(10*time.Millisecond), s.mediaTimeout)
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
}

// printTable prints the gauges at the baseline, a third of the way, the RSS peak and the end.
func (s *soak) printTable(base sample, ms milestones, end sample) {
	fmt.Printf("%-32s %14s %14s %14s %14s\n", "", "baseline", "third", "peak RSS", "end")
	row := func(name string, f func(sample) string) {
		fmt.Printf("%-32s %14s %14s %14s %14s\n", name, f(base), f(ms.third), f(ms.peak), f(end))
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
	for _, m := range []string{mCalls, mDialogs, mPorts, mPending, mLost, mShed, mUnparsed} {
		row(m, num(m))
	}
}

// checkGauges checks that goroutines, descriptors, ports, dialogs, calls and pending records
// are back at their baseline and that RSS did not grow after the first third.
func (s *soak) checkGauges(k *checker, cfg config, base sample, ms milestones, end sample) {
	k.check(end.v[mGoroutines]-base.v[mGoroutines] <= float64(cfg.gorTol), "go_goroutines %.0f at the end, baseline %.0f (tolerance +%d)", end.v[mGoroutines], base.v[mGoroutines], cfg.gorTol)
	fdEnd, fdBase := end.v[mFDs]-float64(end.dbConns), base.v[mFDs]-float64(base.dbConns)
	k.check(fdEnd-fdBase <= float64(cfg.fdTol), "process_open_fds %.0f at the end, baseline %.0f; without the database pool's connections %.0f and %.0f (tolerance +%d)",
		end.v[mFDs], base.v[mFDs], fdEnd, fdBase, cfg.fdTol)
	for _, m := range []string{mPorts, mDialogs, mCalls, mPending} {
		k.check(end.v[m] == base.v[m], "%s %.0f at the end, baseline %.0f", m, end.v[m], base.v[m])
	}
	third, peak := ms.third, ms.peak
	k.check(end.v[mRSS] <= third.v[mRSS]*(1+cfg.rssGrowth), "RSS %s at the end, %s at a third of the run (%+.0f%%; at most %+.0f%%), %s at the baseline, peak %s",
		mib(end.v[mRSS]), mib(third.v[mRSS]), (end.v[mRSS]/third.v[mRSS]-1)*100, cfg.rssGrowth*100, mib(base.v[mRSS]), mib(peak.v[mRSS]))
}

// checkHeap checks the live heap's growth, if it was measured.
func checkHeap(k *checker, cfg config, h heapCheck, placed int) {
	if h.baseLive > 0 && h.endLive > 0 {
		k.check(h.endLive-h.baseLive <= cfg.heapTol, "live heap after a forced collection %s at the end, %s at the baseline (%+.1f MiB; at most %+.1f MiB); objects %.0f and %.0f (%+.0f, %.2f per call)",
			mib(h.endLive), mib(h.baseLive), (h.endLive-h.baseLive)/(1<<20), cfg.heapTol/(1<<20), h.endObjects, h.baseObjects, h.endObjects-h.baseObjects, (h.endObjects-h.baseObjects)/float64(max(1, placed)))
	} else {
		fmt.Println("  info  live heap not measured (officepbx without --pprof, or no -pprof-dir)")
	}
}

// checkRecords checks that no record was lost and each call but the shed ones has exactly one,
// and lists the first of those that do not.
func checkRecords(k *checker, end sample, calls callTally, t recordTally) {
	k.check(end.v[mLost] == 0, "pbxkit_call_records_lost_total %.0f", end.v[mLost])
	k.check(len(t.missing) == 0 && len(t.dup) == 0 && len(t.unexpected) == 0,
		"records: %d of %d calls (%d shed, expecting none) have exactly one; missing %d, twice or more %d, a record for a shed call %d",
		t.one, calls.placed-calls.shed, calls.shed, len(t.missing), len(t.dup), len(t.unexpected))
	for _, l := range [][]string{t.missing, t.dup, t.unexpected} {
		for i, x := range l {
			if i == 10 {
				fmt.Printf("          ... %d more\n", len(l)-10)
				break
			}
			fmt.Println("          " + x)
		}
	}
	fmt.Printf("  info  records not of the soak's calls: %d %s\n", len(t.foreign), strings.Join(first(t.foreign, 5), "; "))
}

// checkCalls checks how the calls ended: none stuck, dead callees noticed in time, silent
// callees recorded as such, audio both ways, and most calls answered.
func checkCalls(k *checker, t callTally, recs recordTally) {
	k.check(t.stuck == 0, "calls stuck past their hold time plus media timeout plus a minute: %d", t.stuck)
	k.check(t.killedLate == 0, "calls whose callee died ended by the PBX within the media timeout + 3 s: %d late (at most %v)", t.killedLate, t.maxKillToBye.Round(10*time.Millisecond))
	k.check(recs.silentReasons == t.silentAnswered, "records of silent-callee calls with reason \"callee silent\": %d of %d", recs.silentReasons, t.silentAnswered)
	k.check(t.oneWay == 0, "answered calls without a lost callee that lacked audio in a direction: %d", t.oneWay)
	k.check(t.placed > 0 && float64(t.answered) >= 0.95*float64(t.placed), "answered %d of %d calls (at least 95%%)", t.answered, t.placed)
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func first(l []string, n int) []string { return l[:min(n, len(l))] }
