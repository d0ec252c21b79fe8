//go:build !linux

package media

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// Outside Linux each of a call's four sockets has a goroutine that reads it (loop_linux.go has
// the event loops used on Linux).

type relayEngine struct{}

type sessionEngine struct {
	wg      sync.WaitGroup
	telling atomic.Bool // a reader goroutine is telling a key press: the listener may close s
}

func (s *Session) startEngine() error {
	for _, sd := range []*side{s.a, s.b} {
		s.eng.wg.Add(2)
		go s.read(sd, sd.pair.rtp, false)
		go s.read(sd, sd.pair.rtcp, true)
	}
	return nil
}

// stopEngine closes the sockets, which ends their goroutines, and waits for them.
func (s *Session) stopEngine() {
	s.a.pair.Close()
	s.b.pair.Close()
	if !s.eng.telling.Load() {
		s.eng.wg.Wait()
	} // else the call may be ending from its own key press, on a reader: they end next
}

func (s *Session) read(sd *side, sock *socket, rtcp bool) {
	defer s.eng.wg.Done()
	buf := make([]byte, maxPacket)
	var h rtp.Header
	var keys []keyPress
	for {
		n, src, err := sock.recv(buf)
		if errors.Is(err, errClosed) {
			return
		} else if err != nil {
			continue
		}
		if rtcp {
			s.fromRTCPPort(sd, buf[:n], src)
			continue
		}
		keys = s.fromRTPPort(sd, buf[:n], src, &h, time.Now(), keys[:0])
		if len(keys) > 0 {
			s.eng.telling.Store(true)
			for _, k := range keys {
				k.tell()
			}
			s.eng.telling.Store(false)
		}
	}
}
