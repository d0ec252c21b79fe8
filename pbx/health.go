package pbx

import (
	"errors"
	"fmt"
	"sync"
)

// Errors of Health.
var (
	// ErrNotServing: Run has not started yet, or the PBX has shut down.
	ErrNotServing = errors.New("pbx: not serving")
	// ErrListenerStopped: a SIP listener stopped serving while the PBX runs.
	ErrListenerStopped = errors.New("listener stopped")
	// ErrAcceptFailing: the TCP listener cannot accept connections (out of file descriptors, for
	// one) and is backing off; it goes on by itself once the cause is gone.
	ErrAcceptFailing = errors.New("accept failing")
)

// serveState is what Health knows beyond the listeners themselves.
type serveState struct {
	mu      sync.Mutex
	running bool
	shut    bool
	stopped []error // listeners whose serving loop ended before Shutdown
}

func (s *serveState) start() {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
}

func (s *serveState) shutdown() {
	s.mu.Lock()
	s.shut = true
	s.mu.Unlock()
}

// listenerStopped records that a serving loop ended (err may be nil: sipgo's UDP loop ends without
// one).
func (s *serveState) listenerStopped(transport string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shut {
		return
	}
	if err != nil {
		err = fmt.Errorf("%s %w: %v", transport, ErrListenerStopped, err)
	} else {
		err = fmt.Errorf("%s %w", transport, ErrListenerStopped)
	}
	s.stopped = append(s.stopped, err)
}

// Health says whether the PBX can serve SIP: nil when it runs and both listeners take requests,
// else why not — ErrNotServing before Run and after Shutdown, ErrListenerStopped when a listener's
// serving loop ended, ErrAcceptFailing while the TCP listener backs off from accept errors (it
// recovers by itself, and Health says nil again within about two seconds of the cause going).
// Match the reasons with errors.Is. A health check endpoint (officepbx's /healthz) answers 503
// with the error's text when it is not nil.
func (p *PBX) Health() error {
	p.serving.mu.Lock()
	running, shut, stopped := p.serving.running, p.serving.shut, p.serving.stopped
	p.serving.mu.Unlock()
	if !running || shut {
		return ErrNotServing
	}
	errs := append([]error(nil), stopped...)
	if err := p.tcp.health(); err != nil && !errors.Is(err, ErrListenerStopped) {
		errs = append(errs, fmt.Errorf("tcp %w", err))
	}
	if p.tls != nil {
		if err := p.tls.health(); err != nil && !errors.Is(err, ErrListenerStopped) {
			errs = append(errs, fmt.Errorf("tls %w", err))
		}
	}
	return errors.Join(errs...)
}
