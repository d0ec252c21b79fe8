package b2bua

import (
	"sync"
	"time"
)

// table finds calls from what arrives: in-dialog requests by their dialog, responses to B-leg
// INVITEs by their Via branch. It also remembers dialogs that ended a moment ago, so that a BYE
// crossing the PBX's own is answered 200 rather than 481.
type table struct {
	mu      sync.Mutex
	dialogs map[string]dialogRef // dialog key (as seen in requests to us) -> call and side
	byCall  map[*Call][]string   // each call's dialog keys, to remove them without a scan
	legs    map[string]*leg      // Via branch of a B-leg INVITE -> leg, while its transaction lives
	retired map[string]time.Time // keys of dialogs that ended, until when a BYE gets 200
	expiry  []retiredKey         // retired keys in the order they expire
}

type dialogRef struct {
	call *Call
	aleg bool // the caller's side
}

type retiredKey struct {
	key string
	at  time.Time
}

// retireFor is how long an ended dialog still answers a crossing BYE: 64*T1, the time a BYE sent
// just before the end can take to arrive with its retransmissions.
const retireFor = 32 * time.Second

func newTable() *table {
	return &table{dialogs: map[string]dialogRef{}, byCall: map[*Call][]string{}, legs: map[string]*leg{},
		retired: map[string]time.Time{}}
}

// add files dialog key under call c, on the caller's side (aleg) or the callee's.
func (t *table) add(key string, c *Call, aleg bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.dialogs[key]; ok && old.call != c {
		t.dropKey(old.call, key)
	}
	t.dialogs[key] = dialogRef{call: c, aleg: aleg}
	t.byCall[c] = append(t.byCall[c], key)
}

// lookup finds the call that owns a dialog.
func (t *table) lookup(key string) (dialogRef, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ref, ok := t.dialogs[key]
	return ref, ok
}

// remove forgets one dialog (a side that left the call) and retires its key.
func (t *table) remove(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ref, ok := t.dialogs[key]; ok {
		delete(t.dialogs, key)
		t.dropKey(ref.call, key)
	}
	t.retire(key, now)
}

// removeCall forgets every dialog of c, retiring their keys, and returns how many there were.
func (t *table) removeCall(c *Call, now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := t.byCall[c]
	for _, k := range keys {
		if ref, ok := t.dialogs[k]; ok && ref.call == c {
			delete(t.dialogs, k)
			t.retire(k, now)
		}
	}
	delete(t.byCall, c)
	return len(keys)
}

func (t *table) dropKey(c *Call, key string) {
	keys := t.byCall[c]
	for i, k := range keys {
		if k == key {
			t.byCall[c] = append(keys[:i:i], keys[i+1:]...)
			break
		}
	}
	if len(t.byCall[c]) == 0 {
		delete(t.byCall, c)
	}
}

// retire remembers an ended dialog for retireFor and forgets those whose time is up.
func (t *table) retire(key string, now time.Time) {
	for len(t.expiry) > 0 && now.After(t.expiry[0].at) {
		if at, ok := t.retired[t.expiry[0].key]; ok && !now.Before(at) {
			delete(t.retired, t.expiry[0].key)
		}
		t.expiry = t.expiry[1:]
	}
	at := now.Add(retireFor)
	t.retired[key] = at
	t.expiry = append(t.expiry, retiredKey{key: key, at: at})
}

// ended reports whether key names a dialog of the engine that ended within retireFor.
func (t *table) ended(key string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.retired[key]
	return ok && now.Before(at)
}

// size is the number of live dialogs.
func (t *table) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dialogs)
}

// addLeg files a B-leg under the branch of its INVITE, for ordered delivery of its responses.
func (t *table) addLeg(branch string, l *leg) {
	t.mu.Lock()
	t.legs[branch] = l
	t.mu.Unlock()
}

func (t *table) removeLeg(branch string) {
	t.mu.Lock()
	delete(t.legs, branch)
	t.mu.Unlock()
}

func (t *table) leg(branch string) *leg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.legs[branch]
}
