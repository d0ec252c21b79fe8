package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The series the soak compares, as officepbx's /metrics names them.
const (
	mGoroutines  = "go_goroutines"
	mFDs         = "process_open_fds"
	mRSS         = "process_resident_memory_bytes"
	mCalls       = "pbxkit_calls_active"
	mDialogs     = "pbxkit_dialogs"
	mPorts       = "pbxkit_rtp_ports_in_use"
	mPending     = "pbxkit_call_records_pending"
	mLost        = "pbxkit_call_records_lost_total"
	mHeap        = "go_memstats_heap_inuse_bytes"
	mHeapAlloc   = "go_memstats_heap_alloc_bytes"
	mHeapObjects = "go_memstats_heap_objects"
	mShed        = "pbxkit_requests_shed_total"
	mUnparsed    = "pbxkit_sip_unparseable_total"
)

var sampled = []string{mGoroutines, mFDs, mRSS, mHeap, mCalls, mDialogs, mPorts, mPending, mLost, mShed, mUnparsed}

// sample is one scrape of /metrics: each series summed over its labels, plus the soak's own view
// at that moment.
type sample struct {
	at      time.Time
	v       map[string]float64
	dbConns int // the PBX's database connections open through the proxy
	up      int // calls the soak had up
}

var scrapeClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// scrape reads the metrics at url. Keep-alives are off, so the scrape holds no descriptor of the
// PBX between scrapes (each scrape's own connection is the same one descriptor every time).
func scrape(url string) (map[string]float64, error) {
	res, err := scrapeClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	v := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Labels may hold spaces: take the value after the closing brace.
			j := strings.LastIndexByte(line, '}')
			name, rest, ok = line[:i], strings.TrimSpace(line[j+1:]), j > 0
		}
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			continue
		}
		v[name] += f
	}
	return v, sc.Err()
}
