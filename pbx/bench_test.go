package pbx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/pbxkit/pbxkit/store"
)

const benchInvite = "INVITE sip:200@pbx.test SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-bench;rport\r\n" +
	"Max-Forwards: 70\r\nFrom: \"Alice\" <sip:100@pbx.test>;tag=a1\r\nTo: <sip:200@pbx.test>\r\n" +
	"Call-ID: bench-1@192.0.2.10\r\nCSeq: 1 INVITE\r\nContact: <sip:100@192.0.2.10:5060>\r\n" +
	"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\nSupported: replaces, timer\r\nUser-Agent: bench\r\n" +
	"Content-Type: application/sdp\r\nContent-Length: 129\r\n\r\n" +
	"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"

func benchPBX(b *testing.B, cfg Config) *PBX {
	b.Helper()
	cfg.SIP, cfg.Database, cfg.Domain = "127.0.0.1:0", "sqlite::memory:", "pbx.test"
	p, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

// BenchmarkReadFilter is the front door's cost per datagram before sipgo sees it (one parse).
func BenchmarkReadFilter(b *testing.B) {
	p := benchPBX(b, Config{})
	props := sip.TransportReadProps{Transport: "udp", RemoteAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}}
	data := []byte(benchInvite)
	b.ReportAllocs()
	for b.Loop() {
		if out, _ := p.readFilter(props, data); len(out) == 0 {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkValidate is the cost of the validation rules on a parsed INVITE.
func BenchmarkValidate(b *testing.B) {
	p := benchPBX(b, Config{})
	msg, err := p.parser.ParseSIP([]byte(benchInvite))
	if err != nil {
		b.Fatal(err)
	}
	req := msg.(*sip.Request)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// A new Call-ID each time, so merge detection sees distinct requests as in real traffic.
		req.RemoveHeader("Call-ID")
		req.AppendHeader(sip.NewHeader("Call-ID", fmt.Sprintf("bench-%d", i)))
		if rej := p.validate(req); rej != nil {
			b.Fatalf("rejected: %d %s", rej.code, rej.warning)
		}
	}
}

// BenchmarkAuthCheck compares digest verification for a wrong password, an unknown user and the
// right password. The first two must cost the same: a difference would tell an attacker which
// extensions exist.
func BenchmarkAuthCheck(b *testing.B) {
	p := benchPBX(b, Config{AuthFailLimit: -1, DigestAlgorithms: []string{"MD5", "SHA-256"}})
	ext := &store.Extension{Number: "100", Enabled: true}
	ext.SetPassword("pbx.test", "right")
	if err := p.owned.CreateExtension(context.Background(), ext); err != nil {
		b.Fatal(err)
	}
	msg, _ := p.parser.ParseSIP([]byte(benchInvite))
	req := msg.(*sip.Request)
	for _, alg := range []string{"MD5", "SHA-256"} {
		for _, tc := range []struct{ name, user, password string }{
			{"wrong-password", "100", "wrong"},
			{"unknown-user", "999", "wrong"},
			{"right-password", "100", "right"},
		} {
			b.Run(alg+"/"+tc.name, func(b *testing.B) {
				chal, _ := digest.ParseChallenge(p.auth.challenges(false)[0])
				chal.Algorithm = alg
				b.ReportAllocs()
				nc := 0
				for b.Loop() {
					nc++
					cred, _ := digest.Digest(chal, digest.Options{Method: "INVITE", URI: "sip:200@pbx.test", Username: tc.user, Password: tc.password, Count: nc, Cnonce: "c"})
					req.RemoveHeader("Proxy-Authorization")
					req.AppendHeader(sip.NewHeader("Proxy-Authorization", cred.String()))
					ip, _ := sourceIP(req)
					_, err := p.auth.check(context.Background(), req, "Proxy-Authorization", ip)
					if tc.password == "right" && err != nil || tc.password != "right" && !errors.Is(err, errBadCredentials) {
						b.Fatalf("check: %v", err)
					}
				}
			})
		}
	}
}
