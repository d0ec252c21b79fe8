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
