package media

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"
)

// recordingApp keeps what the side sent and answers with a constant frame.
type recordingApp struct {
	mu   sync.Mutex
	got  []int16
	sent int
}

func (a *recordingApp) Receive(pcm []int16) {
	a.mu.Lock()
	a.got = append(a.got, pcm...)
	a.mu.Unlock()
}

func (a *recordingApp) Send(dst []int16) {
	for i := range dst {
		dst[i] = 1000
	}
	a.mu.Lock()
	a.sent++
	a.mu.Unlock()
}

func (a *recordingApp) received() []int16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int16(nil), a.got...)
}

// TestAttachTakesTheSideOver: while an App is attached to the caller, the caller's audio reaches
// the App decoded and not the callee, the callee's audio does not reach the caller, and the App's
// frames do, from the port the caller knows; after detaching, relaying goes on.
func TestAttachTakesTheSideOver(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := newEndpoint(t), newEndpoint(t)
	if _, err := s.Rewrite(true, a.sdp("")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rewrite(false, b.sdp("")); err != nil {
		t.Fatal(err)
	}
	pa, pb := s.Ports()
	app := &recordingApp{}
	detach, err := s.Attach(true, PCMU, app)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Attach(true, PCMU, app); err != ErrAttached {
		t.Fatalf("second attach: %v, want ErrAttached", err)
	}
	want := string([]byte{g711.EncodeUlawFrame(5000), g711.EncodeUlawFrame(-5000)})
	// The App's frames reach the caller from its port; the callee's audio does not.
	b.send(pb, 1, "from the callee")
	deadline := time.Now().Add(5 * time.Second)
	for heard := 0; heard < 3; {
		p, from := a.recv(time.Until(deadline))
		switch {
		case p == "":
			t.Fatal("no frames from the App")
		case strings.Contains(p, "callee"):
			t.Fatal("the callee reached the caller while the App owns it")
		case from != pa || len(p) != 160 || p[0] != g711.EncodeUlawFrame(1000):
			t.Fatalf("frame of %d bytes from port %d, want 160 of the App's from %d", len(p), from, pa)
		}
		heard++
	}
	// The caller's audio reaches the App, decoded, and not the callee.
	for seq := uint16(1); len(app.received()) < 2; seq++ {
		a.send(pa, seq, want)
		if time.Now().After(deadline) {
			t.Fatal("the App never received the caller's audio")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := app.received(); got[0] != g711.DecodeUlawFrame(g711.EncodeUlawFrame(5000)) || got[1] >= 0 {
		t.Fatalf("App received %v", got[:2])
	}
	if p, _ := b.recv(100 * time.Millisecond); p == want {
		t.Fatal("the caller's audio reached the callee while the App owns the caller")
	}
	detach()
	detach() // idempotent
	a.send(pa, 100, "after")
	for {
		p, _ := b.recv(time.Until(deadline))
		if p == "after" {
			break
		}
		if p == "" {
			t.Fatal("relaying did not resume after detach")
		}
	}
}

// BenchmarkAppPath is the per-packet work of an attached App: one caller packet decoded and
// handed over, one frame asked for and encoded. It allocates nothing.
func BenchmarkAppPath(b *testing.B) {
	app := &nopApp{}
	at := &attachment{app: app, codec: PCMU}
	src := &appSource{app: app, codec: PCMU}
	s := &Session{}
	pkt := make([]byte, 12+160)
	pkt[0], pkt[1] = 0x80, 0
	var h rtp.Header
	if _, err := h.Unmarshal(pkt); err != nil {
		b.Fatal(err)
	}
	frame := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		s.toApp(at, &h, pkt, nil)
		src.Frame(frame)
	}
}

type nopApp struct{ n int }

func (a *nopApp) Receive(pcm []int16) { a.n += len(pcm) }
func (a *nopApp) Send(dst []int16)    { dst[0] = int16(a.n) }

// countingApp counts the frames asked of it.
type countingApp struct{ sent atomic.Int64 }

func (a *countingApp) Receive([]int16)  {}
func (a *countingApp) Send(dst []int16) { a.sent.Add(1) }

// A send that fails (here an IPv6 destination for the IPv4 port; in the field a full socket
// buffer or a firewall) loses that frame only: the App keeps being paced, so a sound playing
// to the side still ends.
func TestAttachKeepsPacingWhenSendsFail(t *testing.T) {
	r := newTestRelay(t, 2, Config{})
	s, err := r.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	offer := "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	if _, err := s.Rewrite(true, []byte(offer)); err != nil {
		t.Fatal(err)
	}
	app := &countingApp{}
	detach, err := s.Attach(true, PCMU, app)
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	deadline := time.Now().Add(5 * time.Second)
	for app.sent.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("the App was asked for %d frames, want it paced on (10) despite the failed sends", app.sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
