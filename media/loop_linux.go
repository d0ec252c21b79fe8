//go:build linux

package media

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"golang.org/x/sys/unix"
)

// On Linux the relay's sockets are served by a few event loops, one per CPU the process may use,
// instead of a goroutine per socket: each loop waits on an epoll set of its own and handles every
// datagram that is ready with one recvfrom and (when forwarded) one sendto. A goroutine per socket
// costs, per packet, a wake-up through Go's network poller and a second recvfrom that finds
// nothing; docs/benchmarks.md has the figures. A call's four sockets all belong to one loop, so
// its packets are handled in order by one thread. A loop runs while it serves a call and ends
// with its last one, so an idle relay holds no goroutine.
//
// The loop does not block in epoll_wait itself: the epoll descriptor is handed to Go's network
// poller (an epoll set is readable while one of its sockets is), and the loop asks it with a zero
// timeout when woken. A goroutine parked in the runtime's poller holds no thread; one blocked in
// a system call makes the runtime hand its processor to another thread and back for every
// wake-up, which cost more than the forwarding itself.

// relayEngine spreads calls over the loops.
type relayEngine struct {
	mu    sync.Mutex
	loops []*loop
	next  int
}

// sessionEngine is where a call's sockets are registered.
type sessionEngine struct {
	l     *loop
	slots [4]int32
}

// loop is one event loop and the epoll set it waits on.
type loop struct {
	epfd    int           // the epoll set; owned by file
	file    *os.File      // epfd in Go's network poller; closing it ends the loop
	done    chan struct{} // closed when the loop's goroutine has returned
	telling atomic.Bool   // the loop is telling key presses: a listener may end the call from there

	mu       sync.Mutex // held while the loop handles a batch of events, and to change entries
	entries  []*entry   // indexed by the epoll event's data
	free     []int32
	sessions int
	stopping bool
}

// entry is a registered socket: whose it is, and whether it is the RTCP one.
type entry struct {
	s    *Session
	sd   *side
	sock *socket
	rtcp bool
}

var errLoopStopping = errors.New("media: event loop stopping")

// startEngine registers the call's sockets with one of the relay's loops.
func (s *Session) startEngine() error {
	re := &s.r.eng
	re.mu.Lock()
	defer re.mu.Unlock()
	if re.loops == nil {
		n := s.r.cfg.Loops
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		re.loops = make([]*loop, n)
	}
	i := re.next % len(re.loops)
	re.next++
	if l := re.loops[i]; l != nil {
		if err := l.add(s); err == nil {
			return nil
		} else if !errors.Is(err, errLoopStopping) {
			return err
		}
	}
	l, err := newLoop()
	if err != nil {
		return err
	}
	re.loops[i] = l
	if err := l.add(s); err != nil {
		l.shutdown()
		re.loops[i] = nil
		return err
	}
	go l.run()
	return nil
}

// stopEngine takes the call's sockets out of their loop (waiting for a batch being handled, so
// no packet of the call is in flight), then closes them; the loop ends if it was its last call.
func (s *Session) stopEngine() {
	if l := s.eng.l; l != nil {
		l.remove(s)
	}
	s.a.pair.Close()
	s.b.pair.Close()
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	// Non-blocking, so that os.NewFile gives it to the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("media: epoll: %w", err)
	}
	return &loop{epfd: epfd, file: os.NewFile(uintptr(epfd), "media-epoll"), done: make(chan struct{})}, nil
}

// shutdown closes a loop whose goroutine never started.
func (l *loop) shutdown() {
	l.file.Close()
	close(l.done)
}

// add registers the four sockets of s.
func (l *loop) add(s *Session) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return errLoopStopping
	}
	socks := [4]*entry{
		{s: s, sd: s.a, sock: s.a.pair.rtp}, {s: s, sd: s.a, sock: s.a.pair.rtcp, rtcp: true},
		{s: s, sd: s.b, sock: s.b.pair.rtp}, {s: s, sd: s.b, sock: s.b.pair.rtcp, rtcp: true},
	}
	for i, e := range socks {
		var slot int32
		if n := len(l.free); n > 0 {
			slot, l.free = l.free[n-1], l.free[:n-1]
		} else {
			slot = int32(len(l.entries))
			l.entries = append(l.entries, nil)
		}
		// Level-triggered: the loop reads one datagram per event, and a socket with more waiting
		// is reported again by the next epoll_wait.
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, e.sock.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: slot}); err != nil {
			l.free = append(l.free, slot)
			for _, done := range s.eng.slots[:i] {
				l.release(done)
			}
			return fmt.Errorf("media: epoll: %w", err)
		}
		l.entries[slot] = e
		s.eng.slots[i] = slot
	}
	s.eng.l = l
	l.sessions++
	return nil
}

// release takes a slot's socket out of the epoll set (its descriptor is still open).
func (l *loop) release(slot int32) {
	if e := l.entries[slot]; e != nil {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, e.sock.fd, nil)
		l.entries[slot] = nil
		l.free = append(l.free, slot)
	}
}

// remove takes the sockets of s out; the loop stops after its last call.
func (l *loop) remove(s *Session) {
	l.mu.Lock()
	for _, slot := range s.eng.slots {
		l.release(slot)
	}
	l.sessions--
	last := l.sessions == 0
	if last {
		l.stopping = true
	}
	l.mu.Unlock()
	if last {
		l.file.Close() // wakes the loop's wait; the descriptor closes once the loop let go of it
		if !l.telling.Load() {
			<-l.done
		} // else the call may be ending from its own key press, on the loop: the loop ends next
	}
}

// run handles ready sockets until the loop is stopped.
func (l *loop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 256)
	b := batch{buf: make([]byte, maxPacket)}
	rc, err := l.file.SyscallConn()
	if err != nil {
		return
	}
	for {
		// Read calls the function until it reports done, waiting in the runtime's poller for
		// the epoll set to become readable whenever it reports nothing ready.
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err != nil || n <= 0 {
				return err == unix.EINTR // EINTR: ask again; nothing ready: wait
			}
			l.handle(events[:n], &b)
			return true
		})
		if err != nil {
			return // closed: the last call left
		}
		l.tell(&b) // outside Read: a listener that ends the last call closes the file
	}
}

// batch is what the loop reuses from one batch of events to the next.
type batch struct {
	buf  []byte
	h    rtp.Header
	keys []keyPress
}

// handle reads one datagram from each ready socket and relays it.
func (l *loop) handle(events []unix.EpollEvent, b *batch) {
	l.mu.Lock()
	for _, ev := range events {
		if ev.Fd < 0 || int(ev.Fd) >= len(l.entries) {
			continue
		}
		e := l.entries[ev.Fd]
		if e == nil {
			continue // removed after epoll_wait returned
		}
		size, src, err := e.sock.recv(b.buf)
		if err != nil {
			continue
		}
		if e.rtcp {
			e.s.fromRTCPPort(e.sd, b.buf[:size], src)
		} else {
			b.keys = e.s.fromRTPPort(e.sd, b.buf[:size], src, &b.h, time.Now(), b.keys)
		}
	}
	l.mu.Unlock()
}

// tell tells the key presses of the last batch. Outside the lock: the listener may take locks of
// its own, and the lock holds up every call of the loop.
func (l *loop) tell(b *batch) {
	if len(b.keys) == 0 {
		return
	}
	l.telling.Store(true)
	for i := range b.keys {
		b.keys[i].tell()
		b.keys[i] = keyPress{}
	}
	l.telling.Store(false)
	b.keys = b.keys[:0]
}
