package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/pion/rtp"

	"github.com/pbxkit/pbxkit/b2bua/b2buatest"
	"github.com/pbxkit/pbxkit/internal/testenv"
	"github.com/pbxkit/pbxkit/store"
)

// The helpers of the cluster test: Kamailio's dispatcher in front of officepbx nodes, and
// in-process phones (b2buatest) that talk SIP to Kamailio and RTP to the nodes' relays.

// kamailio is a running Kamailio with bench/kamailio/dispatcher.cfg.
type kamailio struct {
	cmd  *exec.Cmd
	addr *net.UDPAddr
	log  string // its log file
}

// startKamailio runs the dispatcher in front of the nodes at addrs, on a free port; it is
// stopped when the test ends.
func startKamailio(t *testing.T, addrs ...string) *kamailio {
	t.Helper()
	bin, modules := testenv.Kamailio(t)
	dir := t.TempDir()
	var list strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&list, "1 sip:%s\n", a)
	}
	if err := os.WriteFile(filepath.Join(dir, "dispatcher.list"), []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	k := &kamailio{addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, log: filepath.Join(dir, "kamailio.log")}
	logf, err := os.Create(k.log)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(bin, "-f", mustAbs(t, "../bench/kamailio/dispatcher.cfg"), "-L", modules,
		"-l", fmt.Sprintf("udp:127.0.0.1:%d", port), "-A", `DS_LIST="`+filepath.Join(dir, "dispatcher.list")+`"`,
		"-A", "FR_TIMER=1500", "-m", "64", "-w", dir, "-P", filepath.Join(dir, "kamailio.pid"), "-DD", "-E")
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	// Its own process group: the test ends Kamailio's worker processes with it.
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-k.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { k.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(k.log)
			t.Logf("kamailio log:\n%s", b)
		}
	})
	return k
}

// clusterPhone is a phone registered through the balancer: SIP from one socket, RTP from another.
type clusterPhone struct {
	*b2buatest.Phone
	t     *testing.T
	ext   string
	media *net.UDPConn
	regs  int // REGISTER transactions sent (CSeq)
	regID string
}

func newClusterPhone(t *testing.T, k *kamailio, ext string) *clusterPhone {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &clusterPhone{Phone: b2buatest.NewPhone(t, k.addr), t: t, ext: ext, media: c, regID: fmt.Sprintf("reg-%s-%d", ext, rand.Int64())}
}

// answer computes the digest credentials for a 401/407 challenge (password "pw"+ext).
func (p *clusterPhone) answer(chal *sip.Response, method, uri string) string {
	p.t.Helper()
	chalHeader, credHeader := "WWW-Authenticate", "Authorization"
	if chal.StatusCode == 407 {
		chalHeader, credHeader = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := chal.GetHeader(chalHeader)
	if h == nil {
		p.t.Fatalf("%d without %s", chal.StatusCode, chalHeader)
	}
	c, err := digest.ParseChallenge(h.Value())
	if err != nil {
		p.t.Fatal(err)
	}
	cred, err := digest.Digest(c, digest.Options{Method: method, URI: uri, Username: p.ext, Password: "pw" + p.ext,
		Count: 1, Cnonce: fmt.Sprint(rand.Int64())})
	if err != nil {
		p.t.Fatal(err)
	}
	return credHeader + ": " + cred.String()
}

// register registers the phone's contact through the balancer, answering the challenge, and
// returns the final status.
func (p *clusterPhone) register() int {
	p.t.Helper()
	spec := func(extra ...string) b2buatest.Request {
		p.regs++
		return b2buatest.Request{Method: "REGISTER", URI: "sip:pbx.test", From: p.ext, To: p.ext, CallID: p.regID, CSeq: p.regs,
			Headers: append([]string{"Contact: <" + p.Contact(p.ext) + ">", "Expires: 300"}, extra...)}
	}
	res := p.Do(p.Build(spec()))
	if res.StatusCode == 401 {
		res = p.Do(p.Build(spec(p.answer(res, "REGISTER", "sip:pbx.test"))))
	}
	return res.StatusCode
}

func (p *clusterPhone) rtpPort() int { return p.media.LocalAddr().(*net.UDPAddr).Port }

func (p *clusterPhone) sdp() string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", p.rtpPort())
}

// sendRTP sends one RTP packet to a relay port.
func (p *clusterPhone) sendRTP(port int, seq uint16, payload string) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 7}, Payload: []byte(payload)}
	b, _ := pkt.Marshal()
	p.media.WriteToUDP(b, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}

// hears sends packets with talk until p receives payload (a relay starts forwarding once it has
// seen both sides), or fails after 5 s.
func (p *clusterPhone) hears(payload string, talk func(seq uint16)) {
	p.t.Helper()
	buf := make([]byte, 1500)
	deadline := time.Now().Add(5 * time.Second)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		talk(seq)
		p.media.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := p.media.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		var pkt rtp.Packet
		if pkt.Unmarshal(buf[:n]) == nil && string(pkt.Payload) == payload {
			return
		}
	}
	p.t.Fatalf("%s never heard %q", p.ext, payload)
}

// routeSet is the Route header line for requests inside the dialog a message's Record-Route set
// (the balancer's), "" without one.
func routeSet(m interface{ GetHeaders(string) []sip.Header }) string {
	var rr []string
	for _, h := range m.GetHeaders("Record-Route") {
		rr = append(rr, h.Value())
	}
	if len(rr) == 0 {
		return ""
	}
	return "Route: " + strings.Join(rr, ", ") + "\r\n"
}

// sdpPort returns the port of the m=audio line of an SDP body.
func sdpPort(t *testing.T, body []byte) int {
	t.Helper()
	for _, line := range strings.Split(string(body), "\r\n") {
		var port int
		if _, err := fmt.Sscanf(line, "m=audio %d", &port); err == nil {
			return port
		}
	}
	t.Fatalf("no m=audio in %q", body)
	return 0
}

// nodeOf is the node that holds ext's registration, "" when it has none.
func nodeOf(t *testing.T, s *store.Store, ext string) string {
	t.Helper()
	bs, err := s.Bindings(context.Background(), ext)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) == 0 {
		return ""
	}
	return bs[0].NodeID
}
