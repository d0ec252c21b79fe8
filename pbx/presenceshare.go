package pbx

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pbxkit/pbxkit/b2bua"
	"github.com/pbxkit/pbxkit/store"
)

// Busy lamps across nodes (docs/architecture.md, "Busy lamps across nodes"): a phone's
// subscription reaches one node, the calls of the extension it watches may be on any. While
// other nodes are live, each node shares through the database (mirrors, mirror.go):
//   - the extensions its phones watch (watched_extensions);
//   - the dialogs of the extensions the others' phones watch (dialog_states), as its calls' events
//     change them;
//
// and reads the others' dialogs of the extensions its own phones watch: when Postgres says they
// changed (NOTIFY dialogs:EXT), when a phone starts watching, and at each heartbeat (which also
// rereads what the others watch and drops the dialogs of nodes gone). The others' dialogs are
// shown beside this node's own (presence.remote). Only watched extensions cost a write.
type presenceShare struct {
	cs     clusterStore
	node   string
	others func() []string // the live nodes but this one
	log    *slog.Logger

	watched *mirror[string, bool]                  // extensions this node's phones watch
	dialogs *mirror[store.DialogKey, sharedDialog] // dialogs of extensions watched elsewhere

	mu        sync.Mutex
	elsewhere map[string]bool            // extensions the others' phones watch, as last read
	shared    map[string]map[string]bool // extension -> its dialogs in the dialogs mirror
	pending   map[string]bool            // extensions whose others' dialogs to read again
	all       bool                       // read every watched extension's again
	kick      chan struct{}
}

// sharedDialog is a row of dialog_states, but its keys.
type sharedDialog struct{ direction, state, peer string }

func newPresenceShare(cs clusterStore, node string, ttl time.Duration, others func() []string, log *slog.Logger) *presenceShare {
	live := func() bool { return len(others()) > 0 }
	sh := &presenceShare{cs: cs, node: node, others: others, log: log,
		elsewhere: map[string]bool{}, shared: map[string]map[string]bool{}, pending: map[string]bool{},
		kick: make(chan struct{}, 1)}
	sh.watched = newMirror("extensions watched", func(ctx context.Context, put map[string]bool, remove []string) error {
		return cs.SyncWatched(ctx, node, slices.Collect(maps.Keys(put)), remove, ttl)
	}, live, log)
	sh.dialogs = newMirror("busy lamp dialogs", func(ctx context.Context, put map[store.DialogKey]sharedDialog, remove []store.DialogKey) error {
		rows := make([]store.DialogState, 0, len(put))
		for k, d := range put {
			rows = append(rows, store.DialogState{Extension: k.Extension, DialogID: k.DialogID, Direction: d.direction,
				State: d.state, Peer: d.peer})
		}
		return cs.SyncDialogs(ctx, node, rows, remove, ttl)
	}, live, log)
	return sh
}

// dialogSet shares a dialog of ext, if the others watch ext. The presence's lock is held.
func (sh *presenceShare) dialogSet(ext string, d dialogState) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.elsewhere[ext] {
		sh.put(ext, d)
	}
}

// dialogEnded stops sharing a dialog of ext. The presence's lock is held.
func (sh *presenceShare) dialogEnded(ext, id string) {
	if sh == nil {
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.shared[ext][id] {
		delete(sh.shared[ext], id)
		if len(sh.shared[ext]) == 0 {
			delete(sh.shared, ext)
		}
		sh.dialogs.del(store.DialogKey{Extension: ext, DialogID: id})
	}
}

// put shares d. sh.mu is held.
func (sh *presenceShare) put(ext string, d dialogState) {
	ids := sh.shared[ext]
	if ids == nil {
		ids = map[string]bool{}
		sh.shared[ext] = ids
	}
	ids[d.ID] = true
	sh.dialogs.set(store.DialogKey{Extension: ext, DialogID: d.ID}, sharedDialog{d.Direction, d.State, d.Peer})
}

// setElsewhere takes the extensions the others watch, as just read; byExt is this node's
// dialogs, under the presence's lock, which is held.
func (sh *presenceShare) setElsewhere(exts []string, byExt map[string]map[string]dialogState) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := make(map[string]bool, len(exts))
	for _, ext := range exts {
		now[ext] = true
		if !sh.elsewhere[ext] {
			for _, d := range byExt[ext] {
				sh.put(ext, d)
			}
		}
	}
	for ext := range sh.elsewhere {
		if now[ext] {
			continue
		}
		for id := range sh.shared[ext] {
			sh.dialogs.del(store.DialogKey{Extension: ext, DialogID: id})
		}
		delete(sh.shared, ext)
	}
	sh.elsewhere = now
}

// watch shares that this node's phones watch ext, and has the others' dialogs of it read.
func (sh *presenceShare) watch(ext string) {
	if sh == nil {
		return
	}
	sh.watched.set(ext, true)
	sh.readSoon(ext)
}

// unwatch shares that this node's phones no longer watch ext.
func (sh *presenceShare) unwatch(ext string) {
	if sh == nil {
		return
	}
	sh.watched.del(ext)
}

// readSoon has the others' dialogs of ext read again ("": of every extension watched here).
func (sh *presenceShare) readSoon(ext string) {
	sh.mu.Lock()
	if ext == "" {
		sh.all = true
	} else {
		sh.pending[ext] = true
	}
	sh.mu.Unlock()
	select {
	case sh.kick <- struct{}{}:
	default:
	}
}

// run reads the others' dialogs when asked, until stop is closed, and runs the mirrors' writers.
func (sh *presenceShare) run(stop <-chan struct{}, pr *presence) {
	if sh == nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sh.watched.run(stop) }()
	go func() { defer wg.Done(); sh.dialogs.run(stop) }()
	defer wg.Wait()
	stopWatch := sh.cs.WatchDialogs(sh.readSoon)
	defer stopWatch()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sh.kick:
			sh.read(ctx, pr)
		}
	}
}

// read reads the others' dialogs of the extensions asked for, in one query, and shows them.
func (sh *presenceShare) read(ctx context.Context, pr *presence) {
	sh.mu.Lock()
	asked, all := sh.pending, sh.all
	sh.pending, sh.all = map[string]bool{}, false
	sh.mu.Unlock()
	if all {
		for _, ext := range pr.watchedExtensions() {
			asked[ext] = true
		}
	}
	var exts []string
	for ext := range asked {
		if pr.watching(ext) {
			exts = append(exts, ext)
		}
	}
	var rows []store.DialogState
	if others := sh.others(); len(others) > 0 && len(exts) > 0 {
		rctx, cancel := context.WithTimeout(ctx, clusterWriteTime)
		var err error
		rows, err = sh.cs.DialogsOf(rctx, exts, others)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				sh.log.Warn("busy lamps: the other nodes' dialogs not read; read again at the next heartbeat", "error", err)
			}
			return
		}
	}
	byExt := make(map[string][]dialogState, len(exts))
	for _, r := range rows {
		byExt[r.Extension] = append(byExt[r.Extension], dialogState{ID: r.NodeID + "-" + r.DialogID,
			Direction: r.Direction, State: r.State, Peer: r.Peer})
	}
	for _, ext := range exts {
		pr.setRemote(ext, byExt[ext])
	}
}

// beat is the heartbeat's part: what the others watch is read again, every watched extension's
// dialogs too (notifications may have been lost, nodes may have gone), and the mirrors woken.
func (sh *presenceShare) beat(ctx context.Context, pr *presence) {
	if sh == nil {
		return
	}
	sh.refreshWatched(ctx, pr)
	sh.readSoon("")
	sh.watched.wake()
	sh.dialogs.wake()
}

// watchedChanged rereads what the others watch, when Postgres says it changed.
func (sh *presenceShare) watchedChanged(pr *presence, wait time.Duration) {
	if sh == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	sh.refreshWatched(ctx, pr)
}

// refreshWatched reads what the others watch.
func (sh *presenceShare) refreshWatched(ctx context.Context, pr *presence) {
	var exts []string
	if others := sh.others(); len(others) > 0 {
		var err error
		if exts, err = sh.cs.WatchedBy(ctx, others); err != nil {
			sh.log.Warn("busy lamps: what the other nodes watch not read", "error", err)
			return
		}
	}
	pr.mu.Lock()
	sh.setElsewhere(exts, pr.byExt)
	pr.mu.Unlock()
}

// fromPeerCall reports whether ev is of a call another node sent here (PBX.peerCalls), and
// forgets the call with its end.
func (p *PBX) fromPeerCall(ev b2bua.Event) bool {
	if ev.Kind == b2bua.CallEnded {
		_, ok := p.peerCalls.LoadAndDelete(ev.CallID)
		return ok
	}
	_, ok := p.peerCalls.Load(ev.CallID)
	return ok
}
