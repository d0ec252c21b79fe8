//go:build !linux

package media

import (
	"errors"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// Outside Linux each of a call's four sockets has a goroutine that reads it (loop_linux.go has
// the event loops used on Linux).

type relayEngine struct{}

type sessionEngine struct{ wg sync.WaitGroup }

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
	s.eng.wg.Wait()
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
		for _, k := range keys {
			k.tell()
		}
	}
}
